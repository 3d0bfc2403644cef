"""CHOP requests turned into the domain's commands.

Same value rules as the Online API (``domain.commands``, ``faces.online.requests``): a
bad value raises the same documented code, which CHOP answers in its own shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from citcon_sim.domain.commands import Lookup, PaymentCommand, RefundCommand, parse_reference
from citcon_sim.domain.errors import BadRequest, VendorNotSupported
from citcon_sim.domain.vendors import get_vendor
from citcon_sim.faces import params as p
from citcon_sim.faces.online.requests import parse_lookup, parse_price, parse_url

if TYPE_CHECKING:
    from citcon_sim.domain.scripts import Rule

FACE = "chop"
# Kept on the transaction (shown on the wallet page and by /_sim/transactions).
EXTRA_FIELDS = ("country", "client_country", "source", "consumer", "billing_address", "ext")


def parse_chop(params: dict[str, Any], script: Rule | None = None) -> PaymentCommand:
    method = p.text(params, "payment_method")
    if method is None:
        raise VendorNotSupported("payment_method is required")
    vendor = get_vendor(method, FACE)
    settlement, transaction = parse_price(params)
    reference = parse_reference(p.text(params, "reference"))
    extra: dict[str, Any] = {k: params[k] for k in EXTRA_FIELDS if k in params}
    if "ext" in extra:
        extra["ext"] = p.json_object(params, "ext")  # the plugin's versions, as JSON text
    return PaymentCommand(
        method="pay",  # a hosted page, like the Online API's pay
        vendor=vendor,
        reference=reference,
        settlement=settlement,
        transaction=transaction,
        allow_duplicates=p.flag(params, "allow_duplicates"),
        auto_capture=p.flag(params, "auto_capture"),
        note=p.text(params, "note"),
        ipn_url=parse_url(params, "ipn_url"),
        callback_url_success=parse_url(params, "callback_url_success"),
        callback_url_fail=parse_url(params, "callback_url_fail"),
        callback_url_cancel=parse_url(params, "callback_url_cancel"),
        mobile_result_url=parse_url(params, "mobile_result_url"),
        goods=p.json_object(params, "goods"),
        extra=extra,
        script=script,
        face=FACE,
    )


def parse_refund(params: dict[str, Any], script: Rule | None = None) -> RefundCommand:
    lookup = parse_lookup(params, "transaction_reference", exclusive=True)
    settlement, transaction = parse_price(params)
    return RefundCommand(lookup, settlement, transaction, p.text(params, "reason"), script)


def parse_inquire(params: dict[str, Any]) -> Lookup:
    """By ``transaction_id``, or ``q`` (the hosted URL's id, as the QA suite sends it),
    or ``reference``."""
    txn_id = p.text(params, "transaction_id") or p.text(params, "q")
    reference = p.text(params, "reference")
    if txn_id is None and reference is None:
        raise BadRequest("transaction_id, q or reference is required")
    return Lookup(txn_id, reference)


def parse_cancel(params: dict[str, Any]) -> Lookup:
    return parse_lookup(params, "transaction_reference", exclusive=False)
