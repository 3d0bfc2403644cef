"""Calls that name a transaction only by the merchant's reference carry its id in the
request journal, the console's events and the journal's ``transaction_id`` filter, on
every face (docs/scenarios.md, "The request journal")."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient

from citcon_sim.domain.events import MerchantCalled
from citcon_sim.simulator import Simulator

from .helpers import AUTH, auth, consumer_pays, create, create_paid
from .upi_support import KEY, charge, token_for, upi

UNKNOWN = "no-such-reference"


async def journal(client: TestClient[Any, Any], **query: str) -> list[dict[str, Any]]:
    resp = await client.get("/_sim/requests", params=query)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["requests"]  # type: ignore[no-any-return]


async def newest(client: TestClient[Any, Any]) -> dict[str, Any]:
    return (await journal(client, limit="1"))[0]


async def form(client: TestClient[Any, Any], path: str, data: dict[str, str],
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    resp = await client.post(path, data=data, headers=headers or AUTH)
    return resp.status, json.loads(await resp.text())


# -- Online API -------------------------------------------------------------------------


async def test_online_inquire_refund_cancel_by_reference(client: TestClient[Any, Any]) -> None:
    txn_id = await create_paid(client, reference="ref-online")
    status, answer = await form(client, "/payment/inquire", {"reference": "ref-online"})
    assert status == 200 and answer["id"] == txn_id
    assert (await newest(client))["transaction_id"] == txn_id
    status, answer = await form(client, "/payment/refund", {
        "transaction_reference": "ref-online", "amount": "100", "currency": "USD"})
    assert status == 200 and answer["refunded"] is True and answer["id"] != txn_id
    entry = await newest(client)
    assert (entry["endpoint"], entry["transaction_id"]) == ("refund", txn_id)  # not the refund's
    status, answer = await form(client, "/payment/cancel",
                                {"transaction_reference": "ref-online"})
    assert status == 200 and answer["transaction_id"] == txn_id
    assert (await newest(client))["transaction_id"] == txn_id
    # The journal's filter finds them all, with the create call.
    found = await journal(client, transaction_id=txn_id)
    assert [e["endpoint"] for e in found] == ["cancel", "refund", "inquire", "pay_qr"]


async def test_online_refusals_by_reference_name_it_from_the_reference_index(
    client: TestClient[Any, Any]
) -> None:
    """Answers that do not name the transaction (a refused refund, a capture of a payment
    without delayed capture, a scripted error) still carry it: the merchant's index."""
    txn_id = await create(client, reference="ref-unpaid")
    status, answer = await form(client, "/payment/refund", {
        "transaction_reference": "ref-unpaid", "amount": "100", "currency": "USD"})
    assert status == 200 and answer["refunded"] is False and txn_id not in json.dumps(answer)
    assert (await newest(client))["transaction_id"] == txn_id
    status, answer = await form(client, "/payment/capture", {"reference": "ref-unpaid"})
    assert status == 400 and txn_id not in json.dumps(answer)
    assert (await newest(client))["transaction_id"] == txn_id
    resp = await client.post("/_sim/scenarios", data="rules:\n  - match: {endpoint: inquire}\n"
                                                      "    api: {error: 4102}\n")
    assert resp.status == 200
    status, answer = await form(client, "/payment/inquire", {"reference": "ref-unpaid"})
    assert status == 400 and answer["code"] == 4102
    assert (await newest(client))["transaction_id"] == txn_id


async def test_online_unknown_or_foreign_reference_stays_null(
    client: TestClient[Any, Any]
) -> None:
    await create_paid(client, reference="ref-mine")
    calls = [("/payment/inquire", {"reference": UNKNOWN}),
             ("/payment/refund", {"transaction_reference": UNKNOWN, "amount": "1",
                                  "currency": "USD"}),
             ("/payment/cancel", {"transaction_reference": UNKNOWN}),
             ("/payment/capture", {"reference": UNKNOWN})]
    for path, data in calls:
        await form(client, path, data)
    # Another merchant's reference is not theirs; an unauthenticated call has no merchant.
    await form(client, "/payment/inquire", {"reference": "ref-mine"}, auth("someone-else"))
    resp = await client.post("/payment/inquire", data={"reference": "ref-mine"})
    assert resp.status == 401
    entries = await journal(client)
    assert [e["transaction_id"] for e in entries[:6]] == [None] * 6
    assert [e["endpoint"] for e in entries[:6]] == [
        "inquire", "inquire", "capture", "cancel", "refund", "inquire"]


async def test_online_repeated_reference_is_the_latest_payment(
    client: TestClient[Any, Any], sim: Simulator
) -> None:
    first = await create(client, reference="ref-twice")
    second = await create(client, reference="ref-twice")  # allow_duplicates=yes
    assert first != second
    status, answer = await form(client, "/payment/inquire", {"reference": "ref-twice"})
    assert status == 200 and answer["id"] == second
    status, _ = await form(client, "/payment/cancel", {"transaction_reference": "ref-twice"})
    assert status == 200
    cancel, inquire = (await journal(client))[:2]
    assert inquire["transaction_id"] == second and cancel["transaction_id"] == second


async def test_the_console_sees_the_same_id(client: TestClient[Any, Any], sim: Simulator) -> None:
    txn_id = await create_paid(client, reference="ref-console")
    seen: list[MerchantCalled] = []
    sim.events.subscribe(MerchantCalled, seen.append)
    await form(client, "/payment/inquire", {"reference": "ref-console"})
    await form(client, "/payment/inquire", {"reference": UNKNOWN})
    assert [(e.endpoint, e.transaction_id) for e in seen] == [
        ("inquire", txn_id), ("inquire", None)]


# -- CHOP -------------------------------------------------------------------------------


async def chop_create(client: TestClient[Any, Any], reference: str) -> str:
    status, answer = await form(client, "/chop/chop", {
        "payment_method": "alipay", "amount": "100", "currency": "USD",
        "reference": reference, "allow_duplicates": "yes"})
    assert status == 200, answer
    return str(answer["transaction_id"])


async def test_chop_inquire_refund_cancel_by_reference(client: TestClient[Any, Any]) -> None:
    txn_id = await chop_create(client, "ref-chop")
    # Refused while unpaid: the answer does not name it, the index does.
    status, answer = await form(client, "/chop/refund", {
        "transaction_reference": "ref-chop", "amount": "100", "currency": "USD"})
    assert status == 200 and answer["refunded"] is False and txn_id not in json.dumps(answer)
    assert (await newest(client))["transaction_id"] == txn_id
    await consumer_pays(client, txn_id)
    status, answer = await form(client, "/chop/inquire", {"reference": "ref-chop"})
    assert status == 200 and answer["transaction_id"] == txn_id
    assert (await newest(client))["transaction_id"] == txn_id
    status, answer = await form(client, "/chop/refund", {
        "transaction_reference": "ref-chop", "amount": "50", "currency": "USD"})
    assert status == 200 and answer["refunded"] is True and answer["id"] != txn_id
    assert (await newest(client))["transaction_id"] == txn_id
    status, answer = await form(client, "/chop/cancel", {"transaction_reference": "ref-chop"})
    assert status == 200 and answer["transaction_id"] == txn_id
    assert (await newest(client))["transaction_id"] == txn_id
    found = await journal(client, transaction_id=txn_id, face="chop")
    assert [e["endpoint"] for e in found] == ["cancel", "refund", "inquire", "refund", "chop"]


async def test_chop_unknown_reference_stays_null(client: TestClient[Any, Any]) -> None:
    await chop_create(client, "ref-chop-known")
    for path, data in (("/chop/inquire", {"reference": UNKNOWN}),
                       ("/chop/refund", {"transaction_reference": UNKNOWN, "amount": "1",
                                         "currency": "USD"}),
                       ("/chop/cancel", {"transaction_reference": UNKNOWN})):
        await form(client, path, data)
    entries = await journal(client, face="chop")
    assert [e["endpoint"] for e in entries] == ["cancel", "refund", "inquire", "chop"]
    assert [e["transaction_id"] for e in entries[:3]] == [None] * 3


# -- UPI --------------------------------------------------------------------------------


async def test_upi_inquire_refund_cancel_capture_by_reference(
    client: TestClient[Any, Any]
) -> None:
    token = await token_for(client)
    made = await charge(client, token, reference="ref-upi")
    txn_id = made["id"]
    # A refused capture (not authorised) names nothing: the index does.
    status, answer = await upi(client, "POST", "/v1/captures", token, {"reference": "ref-upi"})
    assert status == 406 and txn_id not in json.dumps(answer)
    assert (await newest(client))["transaction_id"] == txn_id
    await consumer_pays(client, txn_id)
    status, answer = await upi(client, "GET", "/v1/transactions?reference=ref-upi", token)
    assert status == 200 and answer["data"]["id"] == txn_id
    assert (await newest(client))["transaction_id"] == txn_id
    status, answer = await upi(client, "POST", "/v1/refunds", token, {
        "transaction_reference": "ref-upi", "reference": "R-upi-1", "amount": 10})
    assert status == 200 and answer["data"]["id"] != txn_id  # the refund's own id
    entry = await newest(client)
    assert (entry["endpoint"], entry["transaction_id"]) == ("refund", txn_id)
    status, answer = await upi(client, "POST", "/v1/cancels", token,
                               {"transaction_reference": "ref-upi"})
    assert status == 200 and answer["data"]["id"] == txn_id
    assert (await newest(client))["transaction_id"] == txn_id
    found = await journal(client, transaction_id=txn_id, face="upi")
    assert [e["endpoint"] for e in found] == ["cancel", "refund", "inquire", "capture", "pay"]
    assert {e["token"] for e in found} == {f"{KEY[:2]}…{KEY[-2:]}"}


async def test_upi_unknown_reference_stays_null(client: TestClient[Any, Any]) -> None:
    token = await token_for(client)
    await charge(client, token, reference="ref-upi-known")
    for method, path, body in (
            ("GET", f"/v1/transactions?reference={UNKNOWN}", None),
            ("GET", f"/v1/transactions/{UNKNOWN}", None),
            ("POST", "/v1/refunds", {"transaction_reference": UNKNOWN, "reference": "R-x",
                                     "amount": 1}),
            ("POST", "/v1/cancels", {"transaction_reference": UNKNOWN}),
            ("POST", "/v1/captures", {"reference": UNKNOWN})):
        status, _ = await upi(client, method, path, token, body)
        assert status == 404
    entries = await journal(client, face="upi")
    assert [e["endpoint"] for e in entries[:5]] == [
        "capture", "cancel", "refund", "inquire", "inquire"]
    assert [e["transaction_id"] for e in entries[:5]] == [None] * 5
