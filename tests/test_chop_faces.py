"""Face-awareness: a scenario rule's ``face`` key, and the request journal's face column
(``/_sim/requests?face=``), across the Online API and CHOP."""

from __future__ import annotations

import json
from typing import Any

import pytest

from citcon_sim import Simulator
from citcon_sim.domain.ledger import Status
from citcon_sim.domain.scripts import RequestFacts
from citcon_sim.scenarios import ScenarioError, parse_scenario

from .helpers import AUTH, IpnReceiver, TestClient, consumer_pays, create
from .test_chop import created_id, php_plugin_sign, post


async def load(client: TestClient, text: str) -> None:
    resp = await client.post("/_sim/scenarios", data=text)
    assert resp.status == 200, await resp.text()


async def test_a_face_rule_decides_only_that_faces_payments(client: TestClient,
                                                            sim: Simulator) -> None:
    await load(client, "rules:\n  - match: {face: chop}\n    payment: {outcome: fail}\n")
    chop_id = await created_id(client)
    online_id = await create(client, "pay")
    assert sim.ledger.by_id[chop_id].status is Status.FAILED
    assert sim.ledger.by_id[online_id].status is Status.PENDING


async def test_a_face_rule_on_a_shared_endpoint_name(client: TestClient, sim: Simulator) -> None:
    """``refund`` is an endpoint of both faces; ``face`` tells them apart."""
    await load(client, "rules:\n  - match: {face: online, endpoint: refund}\n"
                       "    refund: {status: refused by the online rule}\n")
    chop_id = await created_id(client)
    online_id = await create(client, "pay")
    for txn_id in (chop_id, online_id):
        await consumer_pays(client, txn_id)
    _, chop_answer = await post(client, "/chop/refund", {
        "transaction_id": chop_id, "amount": "10", "currency": "USD"})
    _, online_answer = await post(client, "/payment/refund", {
        "transaction_id": online_id, "amount": "10", "currency": "USD"})
    assert chop_answer["refunded"] is True
    assert online_answer == {"refunded": False, "status": "refused by the online rule"}


async def test_a_scripted_api_error_takes_the_faces_own_shape(client: TestClient,
                                                              sim: Simulator) -> None:
    await load(client, "rules:\n  - match: {face: [chop], endpoint: chop}\n"
                       "    api: {error: 4101}\n")
    resp = await client.post("/chop/chop", headers=AUTH, data={
        "payment_method": "alipay", "amount": "1", "currency": "USD", "reference": "r"})
    assert resp.status == 400
    assert (await resp.json()) == {"result": "fail", "code": 4101,
                                   "error": "Vendor not supported: scripted by scenario"}
    assert sim.ledger.by_id == {}
    await create(client, "pay")  # the Online API is not affected


async def test_scenario_ipn_faults_apply_to_chop_ipns(client: TestClient, sim: Simulator,
                                                     ipn_receiver: IpnReceiver) -> None:
    await load(client, "rules:\n  - match: {face: chop, endpoint: chop}\n"
                       "    ipn: {bad_signature: true}\n")
    txn_id = await created_id(client, ipn_url=ipn_receiver.url)
    await consumer_pays(client, txn_id)
    (form,) = await ipn_receiver.wait_for(1)
    assert form["id"] == txn_id and form["sign"] != php_plugin_sign(form, "test-token")


def test_a_face_rule_needs_the_request_to_name_that_face() -> None:
    rule = parse_scenario("rules:\n  - match: {face: upi}\n    api: {drop: true}\n").rules[0]
    assert rule.faces == frozenset({"upi"})
    assert rule.observe(RequestFacts(token="t", endpoint="charges", face="upi"))
    assert not rule.observe(RequestFacts(token="t", endpoint="charges", face="online"))
    assert not rule.observe(RequestFacts(token="t", endpoint="charges"))


@pytest.mark.parametrize("match", ["{face: soap}", "{face: []}", "{face: 1}"])
def test_the_face_key_is_validated(match: str) -> None:
    with pytest.raises(ScenarioError, match="rules/0/match/face"):
        parse_scenario(f"rules:\n  - match: {match}\n    api: {{drop: true}}\n")


async def test_the_journal_records_each_calls_face(client: TestClient) -> None:
    chop_id = await created_id(client)
    online_id = await create(client, "pay")
    await post(client, "/chop/inquire", {"q": chop_id})
    resp = await client.get("/_sim/requests")
    entries = (await resp.json())["requests"]
    assert [(e["face"], e["path"], e["transaction_id"]) for e in entries] == [
        ("chop", "/chop/inquire", chop_id),
        ("online", "/payment/pay", online_id),
        ("chop", "/chop/chop", chop_id),
    ]

    async def only(face: str) -> list[dict[str, Any]]:
        resp = await client.get("/_sim/requests", params={"face": face})
        assert resp.status == 200
        return (await resp.json())["requests"]  # type: ignore[no-any-return]

    assert [e["path"] for e in await only("chop")] == ["/chop/inquire", "/chop/chop"]
    assert [e["path"] for e in await only("online")] == ["/payment/pay"]
    assert await only("upi") == []
    # CHOP endpoints are named for scenarios and journal filters alike.
    resp = await client.get("/_sim/requests", params={"path": "chop"})
    assert [e["path"] for e in (await resp.json())["requests"]] == ["/chop/chop"]


async def test_failed_chop_calls_are_journaled_with_their_face(client: TestClient) -> None:
    await client.post("/chop/chop", data={"payment_method": "x"})  # no token: a 401
    resp = await client.get("/_sim/requests", params={"face": "chop"})
    (entry,) = (await resp.json())["requests"]
    assert entry["status"] == 401 and json.loads(entry["response"])["result"] == "fail"


async def test_the_documented_face_example_does_what_it_says(client: TestClient) -> None:
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "scenarios.md").read_text("utf-8")
    (example,) = [block.split("```", 1)[0] for block in doc.split("```yaml\n")[1:]
                  if "face: chop" in block.split("```", 1)[0]]
    await load(client, example)
    chop_id = await created_id(client)
    online_id = await create(client, "pay")
    for txn_id in (chop_id, online_id):
        await consumer_pays(client, txn_id)
    _, chop_answer = await post(client, "/chop/refund", {
        "transaction_id": chop_id, "amount": "10", "currency": "USD"})
    _, online_answer = await post(client, "/payment/refund", {
        "transaction_id": online_id, "amount": "10", "currency": "USD"})
    assert chop_answer == {"refunded": False, "status": "Refund amount greater than allowed."}
    assert online_answer["refunded"] is True
