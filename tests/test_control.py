"""The ``/_sim/`` control surface: inspection, consumer actions, the clock, reset, catalogue."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from citcon_sim import Simulator

from .helpers import AUTH, TOKEN, create, expect_error, inquire

UNKNOWN_ID = "U0000000001-00000000000000000000"
ALL_VENDORS = {
    "alipay", "wechatpay", "jkopay", "alipay_hk", "kakaopay", "dana", "gcash", "klarna",
    "card", "banktransfer", "payco", "naverpay", "linepay", "paypay", "rakutenpay", "upop",
}


async def envelope(resp: Any, status: int) -> dict[str, Any]:
    return await expect_error(resp, 4100, status)


async def get(client: TestClient, path: str) -> Any:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def post(client: TestClient, path: str, **data: Any) -> Any:
    resp = await client.post(path, data={k: str(v) for k, v in data.items()})
    assert resp.status == 200, await resp.text()
    return await resp.json()


# -- health ---------------------------------------------------------------------------------------


async def test_health(client: TestClient) -> None:
    assert await get(client, "/_sim/health") == {"status": "ok"}


# -- listing and inspection ------------------------------------------------------------------------


async def test_list_all_newest_first_across_merchants(client: TestClient) -> None:
    a = await create(client, reference="a")
    b = await create(client, reference="b", token="other")
    c = await create(client, reference="c")
    body = await get(client, "/_sim/transactions")
    assert [t["id"] for t in body["transactions"]] == [c, b, a]


async def test_list_by_token(client: TestClient) -> None:
    a = await create(client, reference="a")
    await create(client, reference="b", token="other")
    c = await create(client, reference="c")
    body = await get(client, f"/_sim/transactions?token={TOKEN}")
    assert [t["id"] for t in body["transactions"]] == [c, a]
    assert await get(client, "/_sim/transactions?token=never-seen") == {"transactions": []}


async def test_list_limit_and_offset(client: TestClient) -> None:
    ids = [await create(client, reference=f"r{i}") for i in range(5)]
    body = await get(client, "/_sim/transactions?limit=2&offset=1")
    assert [t["id"] for t in body["transactions"]] == [ids[3], ids[2]]
    body = await get(client, "/_sim/transactions?limit=10&offset=4")
    assert [t["id"] for t in body["transactions"]] == [ids[0]]
    assert (await get(client, "/_sim/transactions?offset=5"))["transactions"] == []


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "offset=-1", "limit=5000",
                                   "token[x]=1", "limit[a]=1"])
async def test_list_rejects_bad_paging_and_tokens(client: TestClient, query: str) -> None:
    await envelope(await client.get(f"/_sim/transactions?{query}"), 400)


async def test_list_does_not_reveal_tokens(client: TestClient) -> None:
    await create(client, token="secret-merchant-token-123")
    resp = await client.get("/_sim/transactions")
    assert "secret-merchant-token-123" not in await resp.text()


async def test_get_one_with_refunds_and_timeline(client: TestClient, sim: Simulator) -> None:
    txn_id = await create(client, note="hello", ipn_url="http://127.0.0.1:9/ipn")
    await post(client, f"/_sim/transactions/{txn_id}/pay")
    sim.advance(60)
    resp = await client.post("/payment/refund", headers=AUTH, data={
        "transaction_id": txn_id, "amount": "250", "currency": "USD", "reason": "damaged"})
    refund_id = (await resp.json())["id"]
    body = await get(client, f"/_sim/transactions/{txn_id}")
    assert body["id"] == txn_id and body["type"] == "charge"
    assert (body["amount"], body["currency"], body["trans_amount"], body["trans_currency"]) == (
        1000, "USD", 7200, "CNY")
    assert body["status"] == "success" and body["internal_status"] == "success"
    assert body["note"] == "hello" and body["ipn_url"] == "http://127.0.0.1:9/ipn"
    assert body["refunded_amount"] == 250 and body["refunded_trans_amount"] == 1800
    assert [r["id"] for r in body["refunds"]] == [refund_id]
    refund = body["refunds"][0]
    assert (refund["amount"], refund["note"], refund["time"]) == (
        250, "damaged", "2026-03-02 09:01:00")
    assert [e["event"] for e in body["timeline"]] == ["created", "success", "refunded"]
    assert [e["time"] for e in body["timeline"]] == [
        "2026-03-02 09:00:00", "2026-03-02 09:00:00", "2026-03-02 09:01:00"]
    assert body["paid_time"] == "2026-03-02 09:00:00"
    assert TOKEN not in str(body)


async def test_get_one_shows_captures(client: TestClient) -> None:
    txn_id = await create(client, vendor="klarna", amount=4000)
    body = await post(client, f"/_sim/transactions/{txn_id}/pay")
    assert body["internal_status"] == "authorized" and body["captures"] == []
    resp = await client.post("/payment/capture", headers=AUTH, data={
        "transaction_id": txn_id, "amount": "1000", "multi_capture": "true"})
    assert resp.status == 200, await resp.text()
    body = await get(client, f"/_sim/transactions/{txn_id}")
    assert [c["amount"] for c in body["captures"]] == [1000]
    assert body["captured_amount"] == 1000 and body["status"] == "success"


async def test_unknown_id_is_404_envelope(client: TestClient, sim: Simulator) -> None:
    await envelope(await client.get(f"/_sim/transactions/{UNKNOWN_ID}"), 404)
    for action in ("pay", "fail", "expire", "cancel"):
        await envelope(await client.post(f"/_sim/transactions/{UNKNOWN_ID}/{action}"), 404)
    assert sim.ledger.by_id == {}


async def test_unknown_action_is_404_envelope(client: TestClient) -> None:
    txn_id = await create(client)
    await envelope(await client.post(f"/_sim/transactions/{txn_id}/refund"), 404)
    assert (await inquire(client, txn_id))["status"] is None


async def test_actions_need_post(client: TestClient) -> None:
    txn_id = await create(client)
    await envelope(await client.get(f"/_sim/transactions/{txn_id}/pay"), 405)
    assert (await inquire(client, txn_id))["status"] is None


# -- consumer actions ----------------------------------------------------------------------------


async def test_pay_action(client: TestClient, sim: Simulator) -> None:
    txn_id = await create(client)
    body = await post(client, f"/_sim/transactions/{txn_id}/pay")
    assert body["id"] == txn_id and body["status"] == "success"
    assert (await inquire(client, txn_id))["status"] == "success"
    assert sim.ledger.open_balance(sim.ledger.merchant(TOKEN)) == {"USD": 1000}


async def test_pay_action_authorises_a_delayed_capture_payment(client: TestClient) -> None:
    txn_id = await create(client, vendor="card", currency="KRW", amount=10000)
    body = await post(client, f"/_sim/transactions/{txn_id}/pay")
    assert body["status"] == "authorized" and body["captured_amount"] == 0


async def test_fail_action_records_the_reason(client: TestClient) -> None:
    txn_id = await create(client)
    body = await post(client, f"/_sim/transactions/{txn_id}/fail", reason="card declined")
    assert body["status"] == "fail"
    assert body["timeline"][-1]["event"] == "fail"
    assert body["timeline"][-1]["detail"] == {"reason": "card declined"}
    assert (await inquire(client, txn_id))["status"] == "fail"


async def test_expire_action(client: TestClient) -> None:
    txn_id = await create(client, timeout=3600)
    body = await post(client, f"/_sim/transactions/{txn_id}/expire")
    assert body["status"] == "expired"
    assert (await inquire(client, txn_id))["status"] == "expired"
    resp = await client.get(f"/payment/qr?q={txn_id}")
    assert await resp.json() == {"result": "fail", "reason": "QR code expired."}


async def test_cancel_action(client: TestClient) -> None:
    txn_id = await create(client)
    body = await post(client, f"/_sim/transactions/{txn_id}/cancel")
    assert body["status"] == "cancelled"
    assert body["timeline"][-1]["detail"] == {"by": "consumer"}
    resp = await client.post("/payment/cancel", data={"transaction_id": txn_id}, headers=AUTH)
    assert (await resp.json())["status"] == "Duplicate cancellation"


@pytest.mark.parametrize(
    ("first", "second"),
    [("pay", "pay"), ("pay", "fail"), ("pay", "expire"), ("pay", "cancel"),
     ("fail", "pay"), ("expire", "pay"), ("cancel", "pay"), ("cancel", "fail")],
)
async def test_invalid_transition_is_409_envelope(
    client: TestClient, first: str, second: str
) -> None:
    txn_id = await create(client)
    before = await post(client, f"/_sim/transactions/{txn_id}/{first}")
    body = await envelope(await client.post(f"/_sim/transactions/{txn_id}/{second}"), 409)
    assert before["internal_status"] in body["message"]
    after = await get(client, f"/_sim/transactions/{txn_id}")
    assert after["internal_status"] == before["internal_status"]
    assert after["timeline"] == before["timeline"]


async def test_pay_after_timeout_is_409(client: TestClient) -> None:
    txn_id = await create(client)
    await post(client, "/_sim/clock/advance", seconds=300)
    await envelope(await client.post(f"/_sim/transactions/{txn_id}/pay"), 409)
    assert (await inquire(client, txn_id))["status"] == "expired"


# -- the clock --------------------------------------------------------------------------------


async def test_clock_get(client: TestClient) -> None:
    body = await get(client, "/_sim/clock")
    assert body["time"] == "2026-03-02 09:00:00"
    assert body["iso"].startswith("2026-03-02T09:00:00")
    assert body["frozen"] is True and body["timezone"] == "UTC"


async def test_clock_is_frozen_until_advanced(client: TestClient) -> None:
    first = await get(client, "/_sim/clock")
    second = await get(client, "/_sim/clock")
    assert first["epoch"] == second["epoch"]


async def test_clock_advance_moves_time_and_expires(client: TestClient) -> None:
    txn_id = await create(client)
    body = await post(client, "/_sim/clock/advance", seconds=299.5)
    assert body["time"] == "2026-03-02 09:04:59"
    assert (await inquire(client, txn_id))["status"] is None
    body = await post(client, "/_sim/clock/advance", seconds="0.5")
    assert body["time"] == "2026-03-02 09:05:00"
    assert (await inquire(client, txn_id))["status"] == "expired"
    assert (await get(client, "/_sim/clock"))["time"] == "2026-03-02 09:05:00"


async def test_clock_advance_accepts_json_and_query(client: TestClient) -> None:
    resp = await client.post("/_sim/clock/advance", json={"seconds": 60})
    assert (await resp.json())["time"] == "2026-03-02 09:01:00"
    resp = await client.post("/_sim/clock/advance?seconds=3600")
    assert (await resp.json())["time"] == "2026-03-02 10:01:00"
    body = await post(client, "/_sim/clock/advance", seconds=0)
    assert body["time"] == "2026-03-02 10:01:00"


@pytest.mark.parametrize("seconds", ["-1", "-0.001", "nan", "NaN", "inf", "-inf", "abc", "",
                                     "1e12", "10s", None])
async def test_clock_advance_refuses_garbage(client: TestClient, seconds: str | None) -> None:
    data = {} if seconds is None else {"seconds": seconds}
    await envelope(await client.post("/_sim/clock/advance", data=data), 400)
    assert (await get(client, "/_sim/clock"))["time"] == "2026-03-02 09:00:00"


async def test_clock_advance_rolls_the_open_balance_over(client: TestClient) -> None:
    txn_id = await create(client)
    await post(client, f"/_sim/transactions/{txn_id}/pay")
    assert (await get(client, f"/_sim/balance?token={TOKEN}"))["open_balance"] == {"USD": 1000}
    await post(client, "/_sim/clock/advance", seconds=15 * 3600)  # 00:00 the next day
    body = await get(client, f"/_sim/balance?token={TOKEN}")
    assert body == {"day": "2026-03-03", "refund_exempt": False, "open_balance": {}}
    resp = await client.post("/payment/refund", headers=AUTH, data={
        "transaction_id": txn_id, "amount": "1", "currency": "USD"})
    assert await resp.json() == {"refunded": False, "status": "insufficient open balance"}


# -- reset -----------------------------------------------------------------------------------------


async def test_reset_all(client: TestClient, sim: Simulator) -> None:
    a = await create(client)
    await create(client, token="other")
    body = await post(client, "/_sim/reset")
    assert body["reset"] is True and body["scope"] == "all"
    assert await get(client, "/_sim/transactions") == {"transactions": []}
    await envelope(await client.get(f"/_sim/transactions/{a}"), 404)
    assert sim.ledger.by_id == {} and sim.ledger.merchants == {}


async def test_reset_one_merchant(client: TestClient, sim: Simulator) -> None:
    a = await create(client)
    await post(client, f"/_sim/transactions/{a}/pay")
    b = await create(client, token="other")
    body = await post(client, f"/_sim/reset?token={TOKEN}")
    assert body["scope"] == "merchant"
    assert [t["id"] for t in (await get(client, "/_sim/transactions"))["transactions"]] == [b]
    await envelope(await client.get(f"/_sim/transactions/{a}"), 404)
    assert (await get(client, f"/_sim/balance?token={TOKEN}"))["open_balance"] == {}
    # The merchant starts afresh: its old reference is free again.
    c = await create(client, reference="order-1")
    assert c not in (a, b)


async def test_reset_with_malformed_token_resets_nothing(
    client: TestClient, sim: Simulator
) -> None:
    await create(client)
    await envelope(await client.post("/_sim/reset", data={"token[x]": TOKEN}), 400)
    assert len(sim.ledger.by_id) == 1


# -- vendor catalogue --------------------------------------------------------------------------


async def test_vendors_catalogue_lists_the_online_apis_sixteen(client: TestClient) -> None:
    vendors = (await get(client, "/_sim/vendors"))["vendors"]
    online = [v for v in vendors if "online" in v["faces"]]
    assert {v["code"] for v in online} == ALL_VENDORS
    assert len(online) == 16
    # The CHOP and UPI methods join the one catalogue, not the Online API.
    assert {v["code"] for v in vendors} - ALL_VENDORS == {"paypal", "venmo", "cashapppay"}


async def test_vendors_catalogue_capabilities(client: TestClient) -> None:
    vendors = {v["code"]: v for v in (await get(client, "/_sim/vendors"))["vendors"]
               if "online" in v["faces"]}

    def having(key: str) -> set[str]:
        return {code for code, v in vendors.items() if v[key]}

    # QR Scan Pay is documented for Alipay, WeChat Pay, Kakao Pay and Alipay HK.
    assert having("qr_scan") == {"alipay", "wechatpay", "kakaopay", "alipay_hk"}
    # auto_capture appears in the klarna, card, payco, kakaopay and banktransfer examples.
    assert having("delayed_capture") == {"klarna", "card", "payco", "kakaopay", "banktransfer"}
    assert having("multi_capture") == {"klarna"}
    assert having("mobile_result_url") == {"alipay", "wechatpay"}
    for v in vendors.values():
        assert v["name"] and len(v["default_currency"]) == 3
        assert isinstance(v["cancel_window_seconds"], int) and v["cancel_window_seconds"] > 0
    assert vendors["alipay_hk"]["default_currency"] == "HKD"
    assert vendors["card"]["default_currency"] == "KRW"
    assert vendors["paypay"]["default_currency"] == "JPY"


@pytest.mark.parametrize("vendor", sorted(ALL_VENDORS))
async def test_every_catalogued_vendor_accepts_a_payment(
    client: TestClient, vendor: str
) -> None:
    txn_id = await create(client, vendor=vendor, reference=f"v-{vendor}")
    body = await post(client, f"/_sim/transactions/{txn_id}/pay")
    assert body["vendor"] == vendor
    assert body["internal_status"] in ("success", "authorized")


# -- open balance ----------------------------------------------------------------------------------


async def test_balance(client: TestClient) -> None:
    assert (await get(client, f"/_sim/balance?token={TOKEN}"))["open_balance"] == {}
    a = await create(client, reference="a")
    b = await create(client, reference="b", vendor="paypay", currency="JPY", amount=500)
    await create(client, reference="c")  # unpaid: no effect
    for txn_id in (a, b):
        await post(client, f"/_sim/transactions/{txn_id}/pay")
    await client.post("/payment/refund", headers=AUTH, data={
        "transaction_id": a, "amount": "300", "currency": "USD"})
    body = await get(client, f"/_sim/balance?token={TOKEN}")
    assert body == {"day": "2026-03-02", "refund_exempt": False,
                    "open_balance": {"USD": 700, "JPY": 500}}
    other = await get(client, "/_sim/balance?token=other")
    assert other["open_balance"] == {}


@pytest.mark.parametrize("query", ["", "?token[x]=1"])
async def test_balance_needs_a_token(client: TestClient, query: str) -> None:
    await envelope(await client.get(f"/_sim/balance{query}"), 400)
