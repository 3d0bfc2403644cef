"""UPI v1 request bodies (JSON) turned into the domain's commands.

Every field is checked with its own 4100 message naming the field by its path
(``transaction.amount``); nothing reaches the ledger until the whole body is valid.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from citcon_sim.domain.commands import (
    MAX_AMOUNT,
    Money,
    PaymentCommand,
    check_url,
    is_wire_safe,
    parse_reference,
)
from citcon_sim.domain.money import normalise_currency
from citcon_sim.domain.vendors import accepted_by
from citcon_sim.faces.upi import choices as c
from citcon_sim.faces.upi.errors import bad_request

if TYPE_CHECKING:
    from citcon_sim.domain.scripts import Rule

Body = dict[str, Any]
MAX_TEXT = 4096
# The web-SDK demo sends urls inside transaction, suffixed _url (§2.3).
URL_KEYS = ("ipn", "success", "fail", "cancel", "mobile")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_body(raw: bytes) -> Body:
    """The request's JSON object (an empty body is an empty object)."""
    try:
        text = raw.decode("utf-8")
        data = json.loads(text, parse_constant=_reject_constant) if text.strip() else {}
    except (ValueError, RecursionError):
        raise bad_request("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("body must be a JSON object")
    if not is_wire_safe(data):
        raise bad_request("body holds text no answer could carry")
    return data


def obj(body: Body, key: str, path: str = "", *, required: bool = True) -> Body | None:
    value = body.get(key)
    if value is None:
        if required:
            raise bad_request(f"{path}{key} is required")
        return None
    if not isinstance(value, dict):
        raise bad_request(f"{path}{key} must be an object")
    return value


def text(body: Body, key: str, path: str = "", *, required: bool = False,
         limit: int = MAX_TEXT) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise bad_request(f"{path}{key} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise bad_request(f"{path}{key} must be a string")
    value = str(value).strip()
    if len(value) > limit:
        raise bad_request(f"{path}{key} is longer than {limit} characters")
    return value


def amount(body: Body, key: str, path: str = "", *, required: bool = True) -> int | None:
    """Minor units: an integer, or an integral float (the cassettes send 100.0)."""
    value = body.get(key)
    name = f"{path}{key}"
    if value is None:
        if required:
            raise bad_request(f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{name} must be a number of minor units")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise bad_request(f"{name} must be a whole number of minor units")
        value = int(value)
    if value <= 0:
        raise bad_request(f"{name} must be greater than 0")
    if value > MAX_AMOUNT:
        raise bad_request(f"{name} is too large")
    return value


def flag(body: Body, key: str, path: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"{path}{key} must be true or false")
    return value


def reference(body: Body, key: str, path: str = "") -> str:
    raw = text(body, key, path, required=True)
    assert raw is not None
    try:
        return parse_reference(raw, f"{path}{key}")
    except Exception as exc:  # the shared rule, in this API's words
        raise bad_request(getattr(exc, "detail", None) or f"{path}{key} is invalid") from None


@dataclass(frozen=True, slots=True)
class Charge:
    command: PaymentCommand
    clients: tuple[str, ...]
    country: str


def parse_charge(body: Body, rule: Rule | None) -> Charge:
    txn = obj(body, "transaction")
    payment = obj(body, "payment")
    assert txn is not None and payment is not None
    ref = reference(txn, "reference", "transaction.")
    value = amount(txn, "amount", "transaction.")
    assert value is not None
    currency_raw = text(txn, "currency", "transaction.", required=True)
    assert currency_raw is not None
    try:
        currency = normalise_currency(currency_raw)
    except Exception:
        raise bad_request(f"transaction.currency {currency_raw!r} is not an ISO 4217 code") \
            from None
    country = (text(txn, "country", "transaction.", limit=2) or c.DEFAULT_COUNTRY).upper()
    if len(country) != 2 or not country.isalpha():
        raise bad_request("transaction.country must be a 2-letter country code")
    note = text(txn, "note", "transaction.")
    method_raw = text(payment, "method", "payment.", required=True)
    assert method_raw is not None
    vendor = accepted_by("upi").get(method_raw.lower())
    if vendor is None:
        raise bad_request(f"payment.method {method_raw!r} is not supported "
                          f"(one of {', '.join(sorted(accepted_by('upi')))})")
    clients = _clients(payment)
    # Only methods that can hold an authorisation honour auto_capture false (ledger rule);
    # PayPal and Venmo hold by default, as the sandbox answered (§1.2).
    auto_capture = flag(txn, "auto_capture", "transaction.", not vendor.delayed_capture)
    urls = _urls(body, txn)
    extra: dict[str, Any] = {"country": country, "upi_clients": list(clients)}
    for key in ("consumer", "billing", "billing_address", "ext"):
        found = body.get(key) if key in body else payment.get(key)
        if found is not None:
            extra[key] = found
    if txn.get("country_accelerator") is not None:
        extra["country_accelerator"] = text(txn, "country_accelerator", "transaction.",
                                            limit=2)
    goods = obj(body, "goods", required=False)
    command = PaymentCommand(
        method="pay", vendor=vendor, reference=ref, settlement=Money(value, currency),
        transaction=None, allow_duplicates=True, timeout=c.CHARGE_TIMEOUT,
        auto_capture=auto_capture, note=note, ipn_url=urls.get("ipn"),
        callback_url_success=urls.get("success"), callback_url_fail=urls.get("fail"),
        callback_url_cancel=urls.get("cancel"), mobile_result_url=urls.get("mobile"),
        goods=goods, extra=extra, script=rule, face="upi",
    )
    return Charge(command, clients, country)


def _clients(payment: Body) -> tuple[str, ...]:
    raw = payment.get("client")
    if raw is None:
        return c.DEFAULT_CLIENTS
    if not isinstance(raw, list) or not raw or len(raw) > 10:
        raise bad_request("payment.client must be a non-empty list")
    for item in raw:
        if item not in c.CLIENTS:
            raise bad_request(f"payment.client {item!r} is not one of {', '.join(c.CLIENTS)}")
    return tuple(x for x in c.CLIENTS if x in raw)


def _urls(body: Body, txn: Body) -> dict[str, str]:
    out: dict[str, str] = {}
    urls = obj(body, "urls", required=False)
    nested = obj(txn, "urls", "transaction.", required=False)
    for key in URL_KEYS:
        for source, name, path in ((urls, key, "urls."), (nested, f"{key}_url",
                                                           "transaction.urls.")):
            if source is None or key in out:
                continue
            value = text(source, name, path)
            checked = check_url(value, f"{path}{name}") if value else None
            if checked is not None:
                out[key] = checked
    return out
