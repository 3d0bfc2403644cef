"""Online API requests turned into the domain's typed commands.

Each ``parse_*`` takes the normalised parameters (``faces.params``) and either returns a
command the ledger can apply or raises the documented error code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from citcon_sim.domain.commands import (
    CaptureCommand,
    Lookup,
    Money,
    PaymentCommand,
    RefundCommand,
    check_url,
    parse_amount,
    parse_reference,
    parse_timeout,
)
from citcon_sim.domain.errors import BadRequest, InvalidAmount
from citcon_sim.domain.merchants import DEFAULT_VENDOR
from citcon_sim.domain.money import normalise_currency
from citcon_sim.domain.vendors import GENERIC_VENDOR, check_bank, get_vendor
from citcon_sim.faces import params as p

if TYPE_CHECKING:
    from citcon_sim.domain.scripts import Rule

# Objects the documentation describes, kept on the transaction and shown on wallet pages.
EXTRA_FIELDS = ("country", "locale", "promo", "consumer", "billing_address", "ext", "bank")


def parse_money(params: dict[str, Any], amount_key: str, currency_key: str) -> Money | None:
    amount = parse_amount(p.text(params, amount_key), amount_key)
    currency_raw = p.text(params, currency_key)
    if amount is None:
        return None
    if currency_raw is None:
        raise BadRequest(f"{currency_key} is required with {amount_key}")
    return Money(amount, normalise_currency(currency_raw))


def parse_price(params: dict[str, Any]) -> tuple[Money | None, Money | None]:
    """A payment's or a refund's amount, on the settlement side (``amount`` +
    ``currency``), the transaction side (``trans_amount`` + ``trans_currency``) or both."""
    settlement = parse_money(params, "amount", "currency")
    transaction = parse_money(params, "trans_amount", "trans_currency")
    if settlement is None and transaction is None:
        raise InvalidAmount("amount+currency or trans_amount+trans_currency is required")
    return settlement, transaction


def parse_url(params: dict[str, Any], key: str) -> str | None:
    return check_url(p.text(params, key), key)


def parse_payment(
    params: dict[str, Any], method: str, script: Rule | None = None,
    default_vendor: str = DEFAULT_VENDOR,
) -> PaymentCommand:
    raw_vendor = p.text(params, "vendor")
    if raw_vendor is not None and raw_vendor.strip().lower() == GENERIC_VENDOR:
        raw_vendor = default_vendor
    vendor = get_vendor(raw_vendor)
    settlement, transaction = parse_price(params)
    reference = parse_reference(p.text(params, "reference"))
    extra: dict[str, Any] = {k: params[k] for k in EXTRA_FIELDS if k in params}
    if "bank" in extra:
        extra["bank"] = check_bank(vendor, p.text(params, "bank"))
    return PaymentCommand(
        method=method,
        vendor=vendor,
        reference=reference,
        settlement=settlement,
        transaction=transaction,
        allow_duplicates=p.flag(params, "allow_duplicates"),
        timeout=parse_timeout(p.text(params, "timeout")),
        auto_capture=p.flag(params, "auto_capture"),
        note=p.text(params, "note"),
        ipn_url=parse_url(params, "ipn_url"),
        # Real clients send callback_url alone (Citcon's QA suite, merchant code): it is
        # the success URL when callback_url_success is absent.
        callback_url_success=parse_url(params, "callback_url_success")
        or parse_url(params, "callback_url"),
        callback_url_fail=parse_url(params, "callback_url_fail"),
        callback_url_cancel=parse_url(params, "callback_url_cancel"),
        mobile_result_url=parse_url(params, "mobile_result_url"),
        goods=p.json_object(params, "goods"),
        extra=extra,
        script=script,
    )


def parse_lookup(params: dict[str, Any], reference_key: str, *, exclusive: bool) -> Lookup:
    txn_id = p.text(params, "transaction_id")
    reference = p.text(params, reference_key)
    if txn_id is None and reference is None:
        raise BadRequest(f"transaction_id or {reference_key} is required")
    if exclusive and txn_id is not None and reference is not None:
        raise BadRequest(f"only one of transaction_id and {reference_key} can be specified")
    return Lookup(txn_id, reference)


def parse_refund(params: dict[str, Any], script: Rule | None = None) -> RefundCommand:
    lookup = parse_lookup(params, "transaction_reference", exclusive=True)
    settlement, transaction = parse_price(params)
    # The documented examples send ``reason``; the attribute table calls it a note.
    note = p.text(params, "note") or p.text(params, "reason")
    return RefundCommand(lookup, settlement, transaction, note, script)


def parse_cancel(params: dict[str, Any]) -> Lookup:
    return parse_lookup(params, "transaction_reference", exclusive=False)


def parse_inquire(params: dict[str, Any]) -> Lookup:
    return parse_lookup(params, "reference", exclusive=False)


def parse_capture(params: dict[str, Any]) -> CaptureCommand:
    lookup = parse_lookup(params, "reference", exclusive=False)
    multi = p.flag(params, "multi_capture")
    last = p.flag(params, "last_capture")
    return CaptureCommand(lookup, parse_amount(p.text(params, "amount"), "amount"), multi, last)
