"""Cancelling a paid payment reverses whatever is left on BOTH currency sides.

Regression: refunds stated on the transaction side round on the settlement side, so the
settlement side can be fully refunded while the transaction side still has money left.
A cancel then answered "Order cancelled" but reversed nothing (JPY 1 ↔ CNY 0.05: refund
CNY 0.02, then CNY 0.01, cancel → 3 of 5 fen refunded).
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp.test_utils import TestClient

from citcon_sim import Config, Simulator, create_app
from citcon_sim.domain.clock import VirtualClock
from citcon_sim.domain.commands import Lookup, Money, RefundCommand
from citcon_sim.domain.ids import IdFactory
from citcon_sim.domain.ledger import CANCEL_OK, Ledger, Status
from citcon_sim.faces.online import requests

START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
AUTH = {"Authorization": "Bearer cancel-reversal"}


def _refund(trans_amount: int, txn_id: str) -> RefundCommand:
    return RefundCommand(Lookup(txn_id, None), None, Money(trans_amount, "CNY"), None)


def test_cancel_reverses_the_transaction_side_left_after_rounded_refunds() -> None:
    ledger = Ledger(VirtualClock(START, frozen=True), ids=IdFactory(1))
    m = ledger.merchant("t")
    cmd = requests.parse_payment(
        {"vendor": "alipay", "amount": "1", "currency": "JPY", "reference": "r"}, "pay_qr")
    txn, _ = ledger.create_payment(m, cmd)
    assert (txn.amount, txn.trans_amount, txn.trans_currency) == (1, 5, "CNY")
    ledger.consumer_pay(txn.id)
    assert ledger.refund(m, _refund(2, txn.id)).refunded
    assert ledger.refund(m, _refund(1, txn.id)).refunded
    assert (txn.refunded_amount, txn.refunded_trans_amount) == (1, 3)

    result = ledger.cancel(m, Lookup(txn.id, None))

    assert result.cancelled and result.status == CANCEL_OK
    assert txn.status is Status.CANCELLED
    assert (txn.refunded_amount, txn.refunded_trans_amount) == (1, 5)
    reversal = (txn.refunds or [])[-1]
    assert reversal.by_cancel and (reversal.amount, reversal.trans_amount) == (0, 2)


async def test_cancel_reversal_over_http(aiohttp_client: type[TestClient]) -> None:
    sim = Simulator(Config(frozen_clock=True, start_time=START))
    client = await aiohttp_client(create_app(sim))  # type: ignore[operator]
    resp = await client.post("/payment/pay_qr", headers=AUTH, data={
        "vendor": "alipay", "amount": "1", "currency": "JPY", "reference": "jpy-1",
        "response_format": "json"})
    txn_id = (await resp.json())["transaction_id"]
    assert (await client.post(f"/_sim/transactions/{txn_id}/pay")).status == 200
    for fen in ("2", "1"):
        resp = await client.post("/payment/refund", headers=AUTH, data={
            "transaction_id": txn_id, "trans_amount": fen, "trans_currency": "CNY"})
        assert (await resp.json())["refunded"] is True

    resp = await client.post("/payment/cancel", headers=AUTH, data={"transaction_id": txn_id})
    assert (await resp.json())["status"] == "Order cancelled"

    charge = await (await client.post("/payment/inquire", headers=AUTH,
                                      data={"transaction_id": txn_id})).json()
    assert charge["status"] == "cancelled"
    assert (charge["refunded_amount"], charge["refunded_trans_amount"]) == (1, 5)
