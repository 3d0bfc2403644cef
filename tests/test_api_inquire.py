"""POST /payment/inquire answers what the ledger holds now: every change, by any path
(control actions, lazy expiry, merchant calls, captures, direct changes, a reset), shows in
the next answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from citcon_sim import Config, Simulator, create_app
from citcon_sim.faces.online import wire

_AUTH = {"Authorization": "Bearer inquire-token"}


async def _inquire(client: Any, txn_id: str) -> dict[str, Any]:
    resp = await client.post("/payment/inquire", data={"transaction_id": txn_id},
                             headers=_AUTH)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    return await resp.json()  # type: ignore[no-any-return]


async def _pay(client: Any, **fields: Any) -> str:
    data = {"vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "order-1",
            "allow_duplicates": "yes", **{k: str(v) for k, v in fields.items()}}
    resp = await client.post("/payment/pay_qr", data=data, headers=_AUTH)
    assert resp.status == 200
    return (await resp.text()).split("q=")[1].split("&")[0]


def _fresh(sim: Simulator, txn_id: str) -> dict[str, Any]:
    """The charge as built from the ledger's transaction now."""
    charge = wire.charge(sim.ledger.by_id[txn_id], sim.clock)
    return msgspec.to_builtins(charge)  # type: ignore[no-any-return]


@pytest.fixture
async def frozen(aiohttp_client: Callable[..., Any]) -> tuple[Simulator, Any]:
    sim = Simulator(Config(frozen_clock=True, seed=99,
                           start_time=datetime(2026, 3, 2, 9, tzinfo=UTC)))
    return sim, await aiohttp_client(create_app(sim))


async def _check(sim: Simulator, client: Any, txn_id: str, before: dict[str, Any],
                 **expect: Any) -> dict[str, Any]:
    after = await _inquire(client, txn_id)
    assert after == _fresh(sim, txn_id) != before
    for key, value in expect.items():
        assert after[key] == value, key
    assert await _inquire(client, txn_id) == after  # asked again: the same answer
    return after


@pytest.mark.parametrize("action,status", [
    ("pay", "success"), ("fail", "fail"), ("cancel", "cancelled"), ("expire", "expired")])
async def test_inquire_follows_control_actions(
    frozen: tuple[Simulator, Any], action: str, status: str
) -> None:
    sim, client = frozen
    txn_id = await _pay(client)
    before = await _inquire(client, txn_id)
    assert before == await _inquire(client, txn_id) and before["status"] is None
    assert (await client.post(f"/_sim/transactions/{txn_id}/{action}")).status == 200
    await _check(sim, client, txn_id, before, status=status)


async def test_inquire_follows_lazy_expiry_and_merchant_calls(
    frozen: tuple[Simulator, Any]
) -> None:
    sim, client = frozen
    # Lazy expiry (Ledger.refresh) when the clock passes the timeout.
    txn_id = await _pay(client, timeout=60)
    before = await _inquire(client, txn_id)
    assert (await client.post("/_sim/clock/advance", json={"seconds": 120})).status == 200
    await _check(sim, client, txn_id, before, status="expired")

    # Merchant cancel.
    txn_id = await _pay(client)
    before = await _inquire(client, txn_id)
    resp = await client.post("/payment/cancel", data={"transaction_id": txn_id}, headers=_AUTH)
    assert resp.status == 200 and (await resp.json())["cancelled"] is True
    await _check(sim, client, txn_id, before, status="cancelled")

    # Refunds: each partial refund, even of the same amount, is a new answer.
    txn_id = await _pay(client)
    await client.post(f"/_sim/transactions/{txn_id}/pay")
    before = await _inquire(client, txn_id)
    for n in (1, 2):
        resp = await client.post("/payment/refund", headers=_AUTH,
                                 data={"transaction_id": txn_id, "amount": "10",
                                       "currency": "USD"})
        assert (await resp.json())["refunded"] is True
        before = await _check(sim, client, txn_id, before, refunded_amount=10 * n)
        assert len(before["refunds"]) == n


async def test_inquire_follows_captures_and_direct_changes(
    frozen: tuple[Simulator, Any]
) -> None:
    sim, client = frozen
    txn_id = await _pay(client, vendor="klarna", amount=4000, auto_capture="false")
    await client.post(f"/_sim/transactions/{txn_id}/pay")
    before = await _inquire(client, txn_id)
    assert before["status"] == "authorized"
    for n, last in ((1, "false"), (2, "true")):
        resp = await client.post("/payment/capture", headers=_AUTH, data={
            "transaction_id": txn_id, "amount": "100", "multi_capture": "true",
            "last_capture": last})
        assert resp.status == 200, await resp.text()
        before = await _check(sim, client, txn_id, before, captured_amount=100 * n)
    assert before["status"] == "success" and len(before["captures"]) == 2

    # Any field charge() reads, changed by any path (scenarios, --state), is seen.
    txn = sim.ledger.by_id[txn_id]
    txn.auto_capture = not txn.auto_capture
    before = await _check(sim, client, txn_id, before, auto_capture=txn.auto_capture)
    txn.note = "changed"
    await _check(sim, client, txn_id, before, note="changed")


async def test_inquire_after_a_reset_answers_for_the_new_transaction(
    frozen: tuple[Simulator, Any]
) -> None:
    sim, client = frozen
    first = await _pay(client, reference="before-reset")
    await client.post(f"/_sim/transactions/{first}/pay")
    before = await _inquire(client, first)
    assert (await client.post("/_sim/reset")).status == 200
    sim.ledger.ids = type(sim.ledger.ids)(99)  # the same id sequence again
    again = await _pay(client, reference="after-reset")
    assert again == first
    after = await _check(sim, client, again, before, reference="after-reset", status=None)
    assert after["id"] == before["id"]
