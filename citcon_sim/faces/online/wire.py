"""The documented answers (``models``), built from ledger objects (no HTTP here)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from citcon_sim.domain.clock import VirtualClock
from citcon_sim.domain.ledger import (
    CancelResult,
    Capture,
    Refund,
    RefundResult,
    Transaction,
    wire_status,
)
from citcon_sim.domain.redaction import token_hint
from citcon_sim.faces.online import models as m


def charge(txn: Transaction, clock: VirtualClock) -> m.Charge:
    """Inquire's charge object: the documented fields first, then the simulator's extras."""
    time = txn.paid_at if txn.paid_at is not None else txn.created_at
    return m.Charge(
        id=txn.id,
        type="charge",
        amount=txn.amount,
        currency=txn.currency,
        trans_amount=txn.trans_amount,
        trans_currency=txn.trans_currency,
        time=clock.format(time),
        reference=txn.reference,
        # Production answers the merchant's reference as reference2 as well.
        reference2=txn.reference,
        status=wire_status(txn),
        # Production sends the string "null" for a missing note; clients compare to it.
        note=txn.note if txn.note is not None else "null",
        vendor=txn.vendor.code,
        method=txn.method,
        auto_capture=txn.auto_capture,
        captured_amount=txn.captured_amount,
        refunded_amount=txn.refunded_amount,
        refunded_trans_amount=txn.refunded_trans_amount,
        created_time=clock.format(txn.created_at),
        expiry_time=clock.format(txn.expires_at),
        refunds=[refund(r, clock) for r in txn.refunds or ()],
        captures=[capture(c, clock, txn.reference) for c in txn.captures or ()],
    )


def payment_created(txn: Transaction, url: str, created: bool) -> m.PaymentCreated:
    return m.PaymentCreated(
        transaction_id=txn.id,
        url=url,
        reference=txn.reference,
        vendor=txn.vendor.code,
        amount=txn.amount,
        currency=txn.currency,
        trans_amount=txn.trans_amount,
        trans_currency=txn.trans_currency,
        status=wire_status(txn),
        created=created,
    )


def refund(r: Refund, clock: VirtualClock) -> m.Refund:
    return m.Refund(
        id=r.id,
        type="refund",
        transaction_id=r.transaction_id,
        amount=r.amount,
        currency=r.currency,
        trans_amount=r.trans_amount,
        trans_currency=r.trans_currency,
        time=clock.format(r.time),
        status="success",
        note=r.note if r.note is not None else "null",
    )


def refund_result(result: RefundResult) -> m.RefundSucceeded | m.RefundFailed:
    if result.refund is None:
        return m.RefundFailed(refunded=False, status=result.status)
    return m.RefundSucceeded(id=result.refund.id, transaction_id=result.refund.transaction_id,
                             refunded=True, status="success")


def cancel_result(result: CancelResult) -> m.CancelResult:
    txn = result.transaction
    return m.CancelResult(
        transaction_id=txn.id if txn else None,
        transaction_reference=txn.reference if txn else None,
        cancelled=result.cancelled,
        status=result.status,
    )


def capture(c: Capture, clock: VirtualClock, reference: str) -> m.CaptureRecord:
    return m.CaptureRecord(
        transaction_id=c.transaction_id,
        type="capture",
        amount=c.amount,
        currency=c.currency,
        notify_result="success",
        reference=reference,
        time=clock.format(c.time),
    )


def capture_result(c: Capture, txn: Transaction, clock: VirtualClock) -> m.CaptureResult:
    return m.CaptureResult(
        transaction_id=c.transaction_id,
        type="capture",
        amount=c.amount,
        currency=c.currency,
        notify_result="success",
        reference=txn.reference,
        time=clock.format(c.time),
        # "The amount currently captured by the charge and expected to be settled".
        captured_amount=txn.captured_amount,
        last_capture=c.last,
    )


def transaction_list(txns: Iterable[Transaction], clock: VirtualClock) -> m.TransactionList:
    return m.TransactionList(transactions=[charge(t, clock) for t in txns])


def sim_transaction(txn: Transaction, clock: VirtualClock) -> dict[str, Any]:
    """The control surface's view: the charge plus everything a test may want to check."""
    body: dict[str, Any] = msgspec.to_builtins(charge(txn, clock))
    body.update(
        {
            "face": txn.face,  # the API that created it
            "token_hint": token_hint(txn.token),
            "internal_status": txn.status.value,
            "paid_time": clock.format(txn.paid_at) if txn.paid_at is not None else None,
            "ipn_url": txn.ipn_url,
            "callback_url_success": txn.callback_url_success,
            "callback_url_fail": txn.callback_url_fail,
            "callback_url_cancel": txn.callback_url_cancel,
            "mobile_result_url": txn.mobile_result_url,
            "goods": txn.goods,
            "extra": txn.extra or {},
            "timeline": [
                {"time": clock.format(txn.created_at), "event": "created", "detail": None},
                *(
                    {"time": clock.format(at), "event": event, "detail": detail}
                    for at, event, detail in txn.events or ()
                ),
            ],
        }
    )
    return body

