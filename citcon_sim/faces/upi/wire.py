"""UPI v1 answers (``models``) built from ledger objects; no HTTP here."""

from __future__ import annotations

from citcon_sim.domain.ids import charge_token
from citcon_sim.domain.ledger import Capture, Refund, Status, Transaction
from citcon_sim.faces.upi import choices as c
from citcon_sim.faces.upi import models as m


def epoch(at: float | None) -> int | None:
    return None if at is None else int(at)


def status_word(txn: Transaction) -> str:
    return c.STATUS_WORDS[txn.status]


def country(txn: Transaction) -> str:
    found = (txn.extra or {}).get("country")
    return found if isinstance(found, str) else c.DEFAULT_COUNTRY


def _rate(amount: int, other: int) -> float | int:
    rate = round(other / amount, 6)
    return int(rate) if rate.is_integer() else rate


def client_entries(txn: Transaction, clients: tuple[str, ...], landing: str,
                   qr: str) -> list[m.UpiClientEntry]:
    """payment.client in the recorded order: desktop redirect, mobile_browser redirect,
    desktop qr (§1.2)."""
    method = txn.vendor.code
    entries = []
    mobile_only = method in c.MOBILE_ONLY_METHODS
    if "desktop" in clients and not mobile_only:
        entries.append(m.UpiClientEntry(client="desktop", format="redirect", method="GET",
                                     content=landing))
    if "mobile_browser" in clients:
        entries.append(m.UpiClientEntry(client="mobile_browser", format="redirect",
                                     method="GET", content=landing))
    wants_qr = method in c.QR_METHODS or (mobile_only and "mobile_browser" not in clients)
    if "desktop" in clients and wants_qr:
        entries.append(m.UpiClientEntry(client="desktop", format="qr", method="GET",
                                     content=qr))
    return entries


def charge(txn: Transaction, clients: tuple[str, ...], landing: str, qr: str) -> m.UpiCharge:
    exchange = (m.UpiExchange(amount=txn.trans_amount, currency=txn.trans_currency,
                           rate=_rate(txn.amount, txn.trans_amount))
                if txn.vendor.code in c.EXCHANGE_METHODS else None)
    answer = m.UpiCharge(
        object="charge", charge_token=charge_token(txn.id), id=txn.id,
        reference=txn.reference, amount=txn.amount, currency=txn.currency,
        time_created=int(txn.created_at), time_captured=epoch(txn.paid_at),
        auto_capture=txn.auto_capture, status=status_word(txn), country=country(txn),
        payment=m.UpiChargePayment(method=txn.vendor.code,
                                client=client_entries(txn, clients, landing, qr)),
    )
    if exchange is not None:
        answer.exchange = exchange
    return answer


def _when(txn: Transaction, event: str) -> int | None:
    for at, name, _ in reversed(txn.events or ()):
        if name == event:
            return int(at)
    return None


def transaction(txn: Transaction) -> m.UpiTransaction:
    return m.UpiTransaction(
        object="charge", id=txn.id, charge_token=charge_token(txn.id),
        reference=txn.reference, amount=txn.amount, amount_captured=txn.captured_amount,
        amount_refunded=txn.refunded_amount, currency=txn.currency, country=country(txn),
        auto_capture=txn.auto_capture, status=status_word(txn), note=txn.note,
        time_created=int(txn.created_at), time_authorized=_when(txn, Status.AUTHORIZED.value),
        time_captured=epoch(txn.paid_at),
        time_canceled=_when(txn, Status.CANCELLED.value) if txn.status is Status.CANCELLED
        else None,
        expiry=int(txn.expires_at), payment=m.UpiMethod(method=txn.vendor.code),
    )


def refund(r: Refund, txn: Transaction) -> m.UpiRefund:
    refunded = 0  # the charge's refunds up to this one
    for earlier in txn.refunds or ():
        refunded += earlier.amount
        if earlier is r:
            break
    return m.UpiRefund(
        id=r.id, object="refund", reference=r.reference, amount=r.amount,
        amount_refunded=refunded, currency=r.currency, country=country(txn),
        time_created=int(r.time), payment=m.UpiMethod(method=txn.vendor.code),
        status=c.REFUND_STATUS, time_completed=int(r.time),
        exchange=m.UpiExchange(amount=r.trans_amount, currency=r.trans_currency,
                            rate=_rate(r.amount, r.trans_amount) if r.amount else 1),
    )


def cancel(txn: Transaction, reference: str | None) -> m.UpiCancel:
    return m.UpiCancel(
        id=txn.id, object="cancel", reference=reference, amount=txn.amount,
        currency=txn.currency, time_created=int(txn.created_at), country=country(txn),
        payment=m.UpiCancelPayment(method=txn.vendor.code, type="",
                                data=m.UpiCancelPaymentData(pan="")),
        status=c.CANCEL_STATUS,
    )


def capture(cap: Capture, txn: Transaction) -> m.UpiCapture:
    return m.UpiCapture(
        id=txn.id, object="capture", reference=txn.reference, amount=cap.amount,
        amount_captured=txn.captured_amount, currency=txn.currency,
        time_created=int(txn.created_at), time_captured=int(cap.time),
        auto_capture=txn.auto_capture, status=status_word(txn), country=country(txn),
        payment=m.UpiMethod(method=txn.vendor.code),
    )
