"""Merchant API requests turned into typed commands; every input rule lives here.

Each ``parse_*`` takes the normalised parameters (see ``params``) and either returns a
command the ledger can apply or raises the documented error code. Nothing here knows
about HTTP, and nothing here touches the ledger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import params as p
from .errors import BadRequest, InvalidAmount, InvalidReference, InvalidTimeout
from .money import normalise_currency
from .vendors import Vendor, check_bank, get_vendor

if TYPE_CHECKING:
    from .scenarios import Rule

DEFAULT_TIMEOUT = 300  # seconds; "recommended timeout is 5 minutes which equals ... 300"
MAX_TIMEOUT = 7 * 24 * 3600
MAX_REFERENCE_LENGTH = 128
MAX_AMOUNT = 10**15  # far above any real payment, far below float trouble anywhere
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INT = re.compile(r"^[0-9]+$")
_HTTP_URL = re.compile(r"^https?://[^\s/]+", re.IGNORECASE)  # compiled once, not per call
# Objects the documentation describes, kept on the transaction and shown on wallet pages.
EXTRA_FIELDS = ("country", "locale", "promo", "consumer", "billing_address", "ext", "bank")


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units and its ISO 4217 currency."""

    amount: int
    currency: str


@dataclass(slots=True)
class PaymentCommand:
    """A validated pay / pay_qr request."""

    method: str  # "pay" (hosted page) or "pay_qr" (QR image)
    vendor: Vendor
    reference: str
    settlement: Money | None
    transaction: Money | None
    allow_duplicates: bool = False
    timeout: int = DEFAULT_TIMEOUT
    auto_capture: bool = False
    note: str | None = None
    ipn_url: str | None = None
    callback_url_success: str | None = None
    callback_url_fail: str | None = None
    callback_url_cancel: str | None = None
    mobile_result_url: str | None = None
    goods: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    script: Rule | None = None  # the scenario rule that matched this request, if any


@dataclass(frozen=True, slots=True)
class Lookup:
    """How a request names a transaction: by id, by reference, or both."""

    transaction_id: str | None
    reference: str | None


@dataclass(frozen=True, slots=True, eq=False)  # by identity: less to compile at start-up
class RefundCommand:
    """A validated refund request: stated on the settlement or the transaction side."""

    lookup: Lookup
    settlement: Money | None
    transaction: Money | None
    note: str | None
    script: Rule | None = None


@dataclass(frozen=True, slots=True, eq=False)  # by identity: less to compile at start-up
class CaptureCommand:
    """A validated capture request (delayed-capture vendors)."""

    lookup: Lookup
    amount: int | None
    multi_capture: bool
    last_capture: bool


def parse_amount(raw: str | None, name: str) -> int | None:
    if raw is None:
        return None
    if raw.startswith("-") and _INT.match(raw[1:]):
        raise InvalidAmount(f"{name}={raw}")
    # "Only numbers without decimal places, thousand separators or $".
    if not _INT.match(raw):
        raise InvalidAmount(f"{name} must be a whole number of minor units, got {raw!r}")
    amount = int(raw)
    if amount <= 0:
        raise InvalidAmount(f"{name}={raw}")
    if amount > MAX_AMOUNT:
        raise BadRequest(f"{name} is too large")
    return amount


def parse_money(params: dict[str, Any], amount_key: str, currency_key: str) -> Money | None:
    amount = parse_amount(p.text(params, amount_key), amount_key)
    currency_raw = p.text(params, currency_key)
    if amount is None:
        return None
    if currency_raw is None:
        raise BadRequest(f"{currency_key} is required with {amount_key}")
    return Money(amount, normalise_currency(currency_raw))


def parse_reference(raw: str | None, name: str = "reference") -> str:
    if raw is None:
        raise InvalidReference(f"{name} is required")
    if len(raw) > MAX_REFERENCE_LENGTH:
        raise InvalidReference(f"{name} is longer than {MAX_REFERENCE_LENGTH} characters")
    if _CONTROL.search(raw):
        raise InvalidReference(f"{name} contains control characters")
    return raw


def parse_timeout(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_TIMEOUT
    if not _INT.match(raw) or not 1 <= int(raw) <= MAX_TIMEOUT:
        raise InvalidTimeout(f"expected whole seconds from 1 to {MAX_TIMEOUT}, got {raw!r}")
    return int(raw)


def parse_url(params: dict[str, Any], key: str) -> str | None:
    raw = p.text(params, key)
    if raw is None:
        return None
    if not _HTTP_URL.match(raw) or _CONTROL.search(raw):
        raise BadRequest(f"{key} must be an absolute http(s) URL")
    return raw


def parse_payment(
    params: dict[str, Any], method: str, script: Rule | None = None
) -> PaymentCommand:
    vendor = get_vendor(p.text(params, "vendor"))
    settlement = parse_money(params, "amount", "currency")
    transaction = parse_money(params, "trans_amount", "trans_currency")
    if settlement is None and transaction is None:
        raise InvalidAmount("amount+currency or trans_amount+trans_currency is required")
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
        callback_url_success=parse_url(params, "callback_url_success"),
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
    settlement = parse_money(params, "amount", "currency")
    transaction = parse_money(params, "trans_amount", "trans_currency")
    if settlement is None and transaction is None:
        raise InvalidAmount("amount+currency or trans_amount+trans_currency is required")
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
