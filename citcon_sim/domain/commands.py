"""Typed commands the ledger applies, and the value rules every API face shares.

Faces parse their own wire formats into these commands; the rules on single values
(amount, reference, timeout, URL) are stated here once. Nothing here knows about HTTP,
and nothing here touches the ledger.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import msgspec

from citcon_sim.domain.errors import (
    AmountNotWhole,
    BadRequest,
    InvalidAmount,
    InvalidReference,
    InvalidTimeout,
)
from citcon_sim.domain.vendors import Vendor

if TYPE_CHECKING:
    from citcon_sim.domain.scripts import Rule

DEFAULT_TIMEOUT = 300  # seconds; "recommended timeout is 5 minutes which equals ... 300"
MAX_TIMEOUT = 7 * 24 * 3600
MAX_REFERENCE_LENGTH = 128
MAX_AMOUNT = 10**15  # far above any real payment, far below float trouble anywhere
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INT = re.compile(r"^[0-9]+$")
_HTTP_URL = re.compile(r"^https?://[^\s/]+", re.IGNORECASE)  # compiled once, not per call


class Money(msgspec.Struct, frozen=True):
    """An amount in minor units and its ISO 4217 currency."""

    amount: int
    currency: str


class PaymentCommand(msgspec.Struct):
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
    extra: dict[str, Any] = msgspec.field(default_factory=dict)
    script: Rule | None = None  # the scenario rule that matched this request, if any
    face: str = "online"  # the API that creates it: its id shape and IPN format


class Lookup(msgspec.Struct, frozen=True):
    """How a request names a transaction: by id, by reference, or both."""

    transaction_id: str | None
    reference: str | None


class RefundCommand(msgspec.Struct, frozen=True):
    """A validated refund request: stated on the settlement or the transaction side."""

    lookup: Lookup
    settlement: Money | None
    transaction: Money | None
    note: str | None
    script: Rule | None = None
    reference: str | None = None  # the refund's own merchant reference (UPI), unique


class CaptureCommand(msgspec.Struct, frozen=True):
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
        raise AmountNotWhole(f"{name}={raw!r} (minor units: 999 for 9.99)")
    amount = int(raw)
    if amount <= 0:
        raise InvalidAmount(f"{name}={raw}")
    if amount > MAX_AMOUNT:
        raise BadRequest(f"{name} is too large")
    return amount


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


def check_url(raw: str | None, key: str) -> str | None:
    """An absolute http(s) URL a merchant gives for callbacks and notifications."""
    if raw is None:
        return None
    if not _HTTP_URL.match(raw) or _CONTROL.search(raw):
        raise BadRequest(f"{key} must be an absolute http(s) URL")
    return raw


def is_wire_safe(value: Any) -> bool:
    """Whether ``value`` can be answered as strict JSON in UTF-8 later.

    Python's JSON decoder accepts what no response may carry: NaN, Infinity (also from an
    overflowing ``1e999``) and lone surrogate escapes (``"\\ud800"``). Stored, such a value
    would make every later answer that shows it fail.
    """
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, TypeError, RecursionError):  # UnicodeEncodeError is a ValueError
        return False
    return True
