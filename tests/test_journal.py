"""The request journal, ``GET /_sim/requests`` (docs/scenarios.md, "The request journal")."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from . import helpers
from .helpers import AUTH, TOKEN, consumer_pays, create, with_magic_amounts

# Long and distinctive, so that any leak of it (or of its middle) is found by a plain search.
SECRET = "tok-Qz7vXk2Lw9Rj4Hn8Pb3Ys6Td1Mf5Gc0-secret"
SECRET_AUTH = {"Authorization": f"Bearer {SECRET}"}


async def journal(client: TestClient, **query: Any) -> list[dict[str, Any]]:
    resp = await client.get("/_sim/requests", params={k: str(v) for k, v in query.items()})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["requests"]  # type: ignore[no-any-return]


async def client_for(aiohttp_client: Any, **config: Any) -> TestClient:
    return (await helpers.client_for(aiohttp_client, seed=1, **config))[0]


async def test_records_a_create_call(client):
    txn_id = await create(client, reference="journal-1", note="hello")
    (entry,) = await journal(client)
    assert entry["method"] == "POST"
    assert entry["path"] == "/payment/pay_qr" and entry["endpoint"] == "pay_qr"
    assert entry["params"] == {"vendor": "alipay", "amount": "1000", "currency": "USD",
                               "reference": "journal-1", "allow_duplicates": "yes",
                               "note": "hello"}
    assert entry["status"] == 200
    assert entry["response"].endswith(f"/payment/qr?q={txn_id}")
    assert isinstance(entry["duration_ms"], int | float) and entry["duration_ms"] >= 0
    assert entry["transaction_id"] == txn_id  # from the URL in the answer
    assert entry["scenario_rule"] is None
    assert entry["time"] == "2026-03-02 09:00:00"
    assert entry["token"] == "te…en"  # a hint, never the token


async def test_transaction_id_from_pay_url_and_from_params(client):
    txn_id = await create(client, "pay")
    resp = await client.post("/payment/inquire", data={"transaction_id": txn_id}, headers=AUTH)
    assert resp.status == 200
    inquire, pay = await journal(client)
    assert pay["endpoint"] == "pay" and pay["transaction_id"] == txn_id
    assert "/u_landing?q=" in pay["response"]
    assert inquire["endpoint"] == "inquire" and inquire["transaction_id"] == txn_id
    assert inquire["params"] == {"transaction_id": txn_id}
    assert '"status":null' in inquire["response"]


async def test_transaction_id_with_json_response_format(client):
    resp = await client.post(
        "/payment/pay_qr", headers=AUTH,
        data={"vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "r-json",
              "response_format": "json"},
    )
    txn_id = (await resp.json())["transaction_id"]
    (entry,) = await journal(client)
    assert entry["transaction_id"] == txn_id


async def test_timed_out_create_is_journaled_with_its_transaction(client, sim):
    resp = await client.post(
        "/_sim/scenarios",
        data="rules:\n  - name: lost answer\n    api: {timeout: true, latency_ms: 20}\n",
    )
    assert resp.status == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.post("/payment/pay_qr", headers=AUTH,
                          data={"vendor": "alipay", "amount": "1000", "currency": "USD",
                                "reference": "r-timeout"})
    (txn_id,) = sim.ledger.by_id
    (entry,) = await journal(client)
    assert entry["scenario_rule"] == "lost answer"
    assert entry["response"] is None  # nothing reached the client
    assert entry["duration_ms"] >= 20
    assert entry["transaction_id"] == txn_id
    assert [e["seq"] for e in await journal(client, transaction_id=txn_id)] == [entry["seq"]]


@with_magic_amounts
async def test_scenario_rule_is_recorded(client):
    resp = await client.post("/_sim/scenarios",
                             data="rules:\n  - name: decline wechat\n"
                                  "    match: {vendor: wechatpay}\n"
                                  "    payment: {outcome: fail}\n")
    assert resp.status == 200
    await create(client, vendor="wechatpay")
    await create(client, vendor="alipay")
    await create(client, amount=9903)
    magic, alipay, wechat = await journal(client)
    assert wechat["scenario_rule"] == "decline wechat"
    assert alipay["scenario_rule"] is None
    assert magic["scenario_rule"] == "…9903 pays at once"


async def test_errors_are_journaled(client):
    resp = await client.post("/payment/pay_qr", headers=AUTH,
                             data={"vendor": "bitcoin", "amount": "1000", "currency": "USD",
                                   "reference": "r"})
    assert resp.status == 400
    resp = await client.post("/payment/inquire", data={"transaction_id": "x"})  # no token
    assert resp.status == 401
    no_token, bad_vendor = await journal(client)
    assert bad_vendor["status"] == 400
    assert '"code":4101' in bad_vendor["response"]
    assert bad_vendor["transaction_id"] is None
    assert no_token["status"] == 401 and no_token["token"] is None
    assert no_token["transaction_id"] == "x"


async def test_scripted_failures_are_journaled(client):
    resp = await client.post("/_sim/scenarios",
                             data="rules:\n  - name: e\n    match: {endpoint: pay}\n"
                                  "    api: {error: 4102}\n"
                                  "  - name: h\n    match: {endpoint: pay_qr}\n"
                                  "    api: {http_status: 502}\n")
    assert resp.status == 200
    data = {"vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "r"}
    assert (await client.post("/payment/pay", data=data, headers=AUTH)).status == 400
    assert (await client.post("/payment/pay_qr", data=data, headers=AUTH)).status == 502
    http, error = await journal(client)
    assert (error["status"], error["scenario_rule"]) == (400, "e")
    assert '"code":4102' in error["response"]
    assert (http["status"], http["scenario_rule"]) == (502, "h")


async def test_token_never_in_clear(client):
    # Calls of every kind, the token in the header, in a form field and in a JSON body.
    txn_id = await create(client, token=SECRET, reference="leak-check")
    await client.post("/payment/inquire", data={"transaction_id": txn_id, "token": SECRET},
                      headers=SECRET_AUTH)
    await client.post("/payment/refund", json={"transaction_id": txn_id, "amount": 1,
                                               "currency": "USD", "token": SECRET},
                      headers=SECRET_AUTH)
    await client.get("/payment/list", headers={"Authorization": SECRET})  # bare form
    await client.post("/payment/pay_qr", data={"vendor": "nope"}, headers=SECRET_AUTH)
    await client.post(f"/_sim/scenarios?token={SECRET}",
                      data="rules:\n  - api: {latency_ms: 0}\n")
    await create(client, token=SECRET, reference="scripted")
    everything = await client.get("/_sim/requests")
    raw = await everything.text()
    assert len((await everything.json())["requests"]) == 6
    for piece in (SECRET, SECRET[2:-2], SECRET[4:20]):
        assert piece not in raw
    newest = (await everything.json())["requests"][0]
    assert newest["scenario_rule"] == "<posted scenario>#1"  # the token-scoped scenario
    inquire = [e for e in (await everything.json())["requests"] if e["endpoint"] == "inquire"]
    assert inquire[0]["params"]["token"] == "[redacted]"
    # The scenario listing does not show it either.
    raw = await (await client.get("/_sim/scenarios")).text()
    assert SECRET not in raw and SECRET[2:-2] not in raw
    # Filtering by the token still finds its calls (by digest).
    filtered = await client.get("/_sim/requests", params={"token": SECRET})
    assert len((await filtered.json())["requests"]) == 6
    assert SECRET not in await filtered.text()


async def test_filter_by_token(client):
    await create(client, token="shop-a")
    await create(client, token="shop-b")
    await create(client, token="shop-a")
    a = await journal(client, token="shop-a")
    assert len(a) == 2
    b = await journal(client, token="shop-b")
    assert len(b) == 1 and b[0]["seq"] == 2
    assert await journal(client, token="shop-c") == []
    assert len(await journal(client)) == 3


async def test_filter_by_path_or_endpoint_name(client):
    txn_id = await create(client)
    await client.post("/payment/inquire", data={"transaction_id": txn_id}, headers=AUTH)
    await client.get("/payment/transactions", headers=AUTH)
    await client.get("/payment/list", headers=AUTH)
    assert [e["endpoint"] for e in await journal(client, path="/payment/inquire")] == ["inquire"]
    assert [e["path"] for e in await journal(client, path="inquire")] == ["/payment/inquire"]
    assert [e["path"] for e in await journal(client, path="pay_qr")] == ["/payment/pay_qr"]
    # /payment/transactions and /payment/list are both the "list" endpoint.
    assert [e["path"] for e in await journal(client, path="list")] == [
        "/payment/list", "/payment/transactions"]
    assert [e["path"] for e in await journal(client, path="/payment/transactions")] == [
        "/payment/transactions"]
    assert await journal(client, path="refund") == []


async def test_filter_by_transaction_id(client):
    first = await create(client, reference="a")
    second = await create(client, reference="b")
    for txn_id in (first, second, first):
        await client.post("/payment/inquire", data={"transaction_id": txn_id}, headers=AUTH)
    found = await journal(client, transaction_id=first)
    assert [e["endpoint"] for e in found] == ["inquire", "inquire", "pay_qr"]
    assert all(e["transaction_id"] == first for e in found)
    assert len(await journal(client, transaction_id=second)) == 2
    assert await journal(client, transaction_id="U0000000000-00000000000000000000") == []


async def test_filters_combine(client):
    txn_a = await create(client, token="shop-a")
    await create(client, token="shop-b")
    await client.post("/payment/inquire", data={"transaction_id": txn_a},
                      headers={"Authorization": "Bearer shop-a"})
    found = await journal(client, token="shop-a", path="pay_qr")
    assert len(found) == 1 and found[0]["transaction_id"] == txn_a


async def test_newest_first_and_limit(client):
    for i in range(5):
        await create(client, reference=f"r-{i}")
    entries = await journal(client)
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == 5
    assert [e["params"]["reference"] for e in entries] == [f"r-{i}" for i in (4, 3, 2, 1, 0)]
    limited = await journal(client, limit=2)
    assert [e["params"]["reference"] for e in limited] == ["r-4", "r-3"]
    resp = await client.get("/_sim/requests", params={"limit": "many"})
    assert resp.status == 400 and (await resp.json())["code"] == 4100


async def test_virtual_time_is_recorded(client, sim):
    await create(client)
    sim.advance(90)
    await create(client)
    later, earlier = await journal(client)
    assert earlier["time"] == "2026-03-02 09:00:00"
    assert later["time"] == "2026-03-02 09:01:30"


async def test_control_surface_is_not_journaled(client):
    txn_id = await create(client)
    await consumer_pays(client, txn_id)
    await client.get("/_sim/transactions")
    await client.post("/_sim/clock/advance", data={"seconds": "1"})
    await client.get("/_sim/health")
    assert [e["endpoint"] for e in await journal(client)] == ["pay_qr"]


async def test_bounded_ring_buffer(aiohttp_client):
    client = await client_for(aiohttp_client, journal_size=5)
    for i in range(8):
        await create(client, reference=f"r-{i}")
    entries = await journal(client, limit=100)
    assert len(entries) == 5
    assert [e["params"]["reference"] for e in entries] == [f"r-{i}" for i in (7, 6, 5, 4, 3)]
    assert [e["seq"] for e in entries] == [8, 7, 6, 5, 4]


async def test_size_zero_turns_it_off(aiohttp_client):
    client = await client_for(aiohttp_client, journal_size=0)
    txn_id = await create(client)
    resp = await client.post("/payment/inquire", data={"transaction_id": txn_id}, headers=AUTH)
    assert resp.status == 200  # the API works as usual
    assert await journal(client) == []


async def test_reset_clears_it(client):
    await create(client)
    await create(client, token="shop-a")
    resp = await client.post("/_sim/reset")
    assert resp.status == 200
    assert await journal(client) == []
    await create(client)
    (entry,) = await journal(client)
    assert entry["token"] == "te…en" and entry["params"]["reference"] == "order-1"


async def test_scenario_with_token_in_default_fixture_is_hinted(client):
    """The default test token (10 characters) shows only its two first and last."""
    await create(client)
    raw = await (await client.get("/_sim/requests")).text()
    assert TOKEN not in raw and "te…en" in raw


async def test_qr_image_request_carries_its_transaction(client):
    txn_id = await create(client)
    resp = await client.get("/payment/qr", params={"q": txn_id})
    assert resp.status == 200 and resp.content_type == "image/png"
    qr, pay_qr = await journal(client, transaction_id=txn_id)
    assert (qr["endpoint"], qr["method"], qr["params"]) == ("qr", "GET", {"q": txn_id})
    assert pay_qr["endpoint"] == "pay_qr"


async def test_timeout_on_the_qr_image(client):
    """A scripted timeout on a binary answer is journaled too (no text to keep)."""
    txn_id = await create(client)
    resp = await client.post("/_sim/scenarios",
                             data="rules:\n  - match: {endpoint: qr}\n"
                                  "    api: {timeout: true, latency_ms: 1}\n")
    assert resp.status == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.get("/payment/qr", params={"q": txn_id})
    qr, _ = await journal(client)
    assert qr["endpoint"] == "qr" and qr["response"] is None and qr["transaction_id"] == txn_id


async def test_a_upi_access_token_never_reaches_the_journal(client: TestClient) -> None:
    resp = await client.post("/v1/access-tokens", json={"token_type": "server"},
                             headers={"Authorization": "Bearer upi-private-key-for-journal"})
    access = (await resp.json())["data"]["access_token"]
    resp = await client.post("/v1/charges", headers={"Authorization": f"Bearer {access}"},
                             json={"transaction": {"reference": "j-1", "amount": 100,
                                                   "currency": "USD"},
                                   "payment": {"method": "alipay"}})
    assert resp.status == 200
    text = await (await client.get("/_sim/requests")).text()
    assert access not in text and "upi-private-key-for-journal" not in text
    entries = (await (await client.get("/_sim/requests", params={"face": "upi"})).json())
    token_answer = [e for e in entries["requests"] if e["path"] == "/v1/access-tokens"][0]
    assert '"access_token":"[redacted]"' in token_answer["response"]
