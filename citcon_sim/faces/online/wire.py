"""The documented response shapes, built from ledger objects (no HTTP here)."""

from __future__ import annotations

from typing import Any

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


def charge(txn: Transaction, clock: VirtualClock) -> dict[str, Any]:
    """Inquire's charge object: the documented fields first, then the simulator's extras."""
    time = txn.paid_at if txn.paid_at is not None else txn.created_at
    return {
        "id": txn.id,
        "type": "charge",
        "amount": txn.amount,
        "currency": txn.currency,
        "trans_amount": txn.trans_amount,
        "trans_currency": txn.trans_currency,
        "time": clock.format(time),
        "reference": txn.reference,
        # Production answers the merchant's reference as reference2 as well.
        "reference2": txn.reference,
        "status": wire_status(txn),
        # Production sends the string "null" for a missing note; clients compare to it.
        "note": txn.note if txn.note is not None else "null",
        "vendor": txn.vendor.code,
        "method": txn.method,
        "auto_capture": txn.auto_capture,
        "captured_amount": txn.captured_amount,
        "refunded_amount": txn.refunded_amount,
        "refunded_trans_amount": txn.refunded_trans_amount,
        "created_time": clock.format(txn.created_at),
        "expiry_time": clock.format(txn.expires_at),
        "refunds": [refund(r, clock) for r in txn.refunds or ()],
        "captures": [capture(c, clock, txn.reference) for c in txn.captures or ()],
    }


def charge_state(txn: Transaction) -> tuple[Any, ...]:
    """Every Transaction field charge() reads: while this tuple compares equal (and the
    clock is the same), so does charge()'s answer. inquire keeps the encoded answer with
    it (api._charge_body), so a changed field, by whatever path (ledger, control routes,
    scenarios, --state), is a new answer. Refunds and captures are only ever appended."""
    return (
        txn.id, txn.amount, txn.currency, txn.trans_amount, txn.trans_currency,
        txn.paid_at, txn.created_at, txn.reference, txn.status, txn.note, txn.vendor,
        txn.method, txn.auto_capture, txn.captured_amount, txn.refunded_amount,
        txn.refunded_trans_amount, txn.expires_at, len(txn.refunds or ()),
        len(txn.captures or ()),
    )


def refund(r: Refund, clock: VirtualClock) -> dict[str, Any]:
    return {
        "id": r.id,
        "type": "refund",
        "transaction_id": r.transaction_id,
        "amount": r.amount,
        "currency": r.currency,
        "trans_amount": r.trans_amount,
        "trans_currency": r.trans_currency,
        "time": clock.format(r.time),
        "status": "success",
        "note": r.note if r.note is not None else "null",
    }


def refund_result(result: RefundResult) -> dict[str, Any]:
    if result.refund is None:
        return {"refunded": False, "status": result.status}
    return {
        "id": result.refund.id,
        "transaction_id": result.refund.transaction_id,
        "refunded": True,
        "status": "success",
    }


def cancel_result(result: CancelResult) -> dict[str, Any]:
    txn = result.transaction
    return {
        "transaction_id": txn.id if txn else None,
        "transaction_reference": txn.reference if txn else None,
        "cancelled": result.cancelled,
        "status": result.status,
    }


def capture(c: Capture, clock: VirtualClock, reference: str) -> dict[str, Any]:
    return {
        "transaction_id": c.transaction_id,
        "type": "capture",
        "amount": c.amount,
        "currency": c.currency,
        "notify_result": "success",
        "reference": reference,
        "time": clock.format(c.time),
    }


def capture_result(c: Capture, txn: Transaction, clock: VirtualClock) -> dict[str, Any]:
    body = capture(c, clock, txn.reference)
    # "The amount currently captured by the charge and expected to be settled".
    body["captured_amount"] = txn.captured_amount
    body["last_capture"] = c.last
    return body


def sim_transaction(txn: Transaction, clock: VirtualClock) -> dict[str, Any]:
    """The control surface's view: the charge plus everything a test may want to check."""
    body = charge(txn, clock)
    body.update(
        {
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

