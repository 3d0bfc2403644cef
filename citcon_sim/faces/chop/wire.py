"""CHOP's answers (``models``), built from ledger objects (no HTTP here)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from citcon_sim.domain.clock import VirtualClock
from citcon_sim.domain.ledger import CancelResult, RefundResult, Status, Transaction, wire_status
from citcon_sim.faces.chop import choices
from citcon_sim.faces.chop import models as m


def created(txn: Transaction, url: str) -> m.ChopCreated:
    return m.ChopCreated(
        result="success", transaction_id=txn.id, reference=txn.reference,
        payment_method=txn.vendor.code, amount=txn.amount, currency=txn.currency,
        trans_amount=txn.trans_amount, trans_currency=txn.trans_currency, url=url,
    )


def notify_result(txn: Transaction) -> Literal["success", "fail"] | None:
    """null until paid, then "success" for good (a later refund or cancel does not
    undo the notification); "fail" once the consumer's payment failed."""
    if txn.paid_at is not None:
        return "success"
    if txn.status is Status.FAILED:
        return "fail"
    return None


def transaction(txn: Transaction, clock: VirtualClock) -> m.ChopTransaction:
    time = txn.paid_at if txn.paid_at is not None else txn.created_at
    return m.ChopTransaction(
        transaction_id=txn.id, reference=txn.reference, payment_method=txn.vendor.code,
        amount=txn.amount, currency=txn.currency, trans_amount=txn.trans_amount,
        trans_currency=txn.trans_currency, status=wire_status(txn),
        notify_result=notify_result(txn),
        captured_amount=txn.captured_amount, refunded_amount=txn.refunded_amount,
        note=txn.note, time=clock.format(time), created_time=clock.format(txn.created_at),
    )


def transactions(txns: Iterable[Transaction], clock: VirtualClock) -> m.ChopTransactions:
    return m.ChopTransactions(result="success",
                              transactions=[transaction(t, clock) for t in txns])


def refund_result(result: RefundResult) -> m.ChopRefunded | m.ChopRefundRefused:
    r = result.refund
    if r is None:
        status = (choices.REFUND_NOT_ALLOWED if result.status in choices.NOT_ALLOWED_REASONS
                  else result.status)
        return m.ChopRefundRefused(refunded=False, status=status)
    return m.ChopRefunded(
        id=r.id, transaction_id=r.transaction_id, refunded=True, status="success",
        amount=r.amount, currency=r.currency, trans_amount=r.trans_amount,
        trans_currency=r.trans_currency,
    )


def cancel_result(result: CancelResult) -> m.ChopCancelled:
    txn = result.transaction
    return m.ChopCancelled(
        transaction_id=txn.id if txn else None,
        transaction_reference=txn.reference if txn else None,
        cancelled=result.cancelled, status=result.status,
    )
