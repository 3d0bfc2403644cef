"""IPN signatures, exactly as the API document's "Webhooks" section computes them.

Take the keys listed in ``fields`` plus ``fields`` itself, sort them, join as
``k=v&k=v`` (nothing URL-encoded), append ``&token=<merchant token>`` and MD5 the result
in lowercase hex. The sender and :func:`verify_ipn` share :func:`sign_ipn`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


def signing_string(form: Mapping[str, object], token: str) -> str:
    fields = str(form["fields"])
    keys = {k for k in fields.split(",") if k} | {"fields"}
    pairs = "&".join(f"{k}={form.get(k, '')}" for k in sorted(keys))
    return f"{pairs}&token={token}"


def sign_ipn(form: Mapping[str, object], token: str) -> str:
    """The ``sign`` value for an IPN form that carries a ``fields`` list.

    >>> sign_ipn({"amount": "1", "fields": "amount"}, "123456")
    '1c38221b6dae95dab96bd0624bfbba27'
    """
    return hashlib.md5(signing_string(form, token).encode("utf-8")).hexdigest()


def verify_ipn(form: Mapping[str, object], token: str) -> bool:
    """True when ``form`` (as posted to the merchant) carries a valid ``sign``."""
    if "fields" not in form or "sign" not in form:
        return False
    fields = str(form["fields"]).split(",")
    if any(k not in form for k in fields if k):
        return False
    return hmac.compare_digest(sign_ipn(form, token), str(form["sign"]).lower())


# -- UPI v1 -----------------------------------------------------------------------------
# Citcon's "How to verify UPI IPN signature": the keys listed in ``fields`` plus ``fields``,
# sorted, joined as ``k=v&k=v`` (nothing URL-encoded), then ``&secret=<merchant key>``,
# SHA-256 in lowercase hex. Values are rendered as a PHP receiver interpolates them: a
# number as its digits, a missing or null value as empty.


def _upi_value(value: object) -> str:
    return "" if value is None else str(value)


def upi_signing_string(body: Mapping[str, object], secret: str) -> str:
    keys = {k for k in str(body["fields"]).split(",") if k} | {"fields"}
    pairs = "&".join(f"{k}={_upi_value(body.get(k))}" for k in sorted(keys))
    return f"{pairs}&secret={secret}"


def sign_upi_ipn(body: Mapping[str, object], secret: str) -> str:
    """The ``sign`` of a UPI IPN body that carries a ``fields`` list.

    >>> sign_upi_ipn({"amount": 100, "fields": "amount"}, "key")[:16]
    '8b63133e9c075c15'
    """
    return hashlib.sha256(upi_signing_string(body, secret).encode("utf-8")).hexdigest()


def verify_upi_ipn(body: Mapping[str, object], secret: str) -> bool:
    """True when ``body`` (a UPI IPN's decoded JSON) carries a valid ``sign`` for the
    merchant's private key ``secret``."""
    if not isinstance(body.get("fields"), str) or not isinstance(body.get("sign"), str):
        return False
    if any(k not in body for k in str(body["fields"]).split(",") if k):
        return False
    return hmac.compare_digest(sign_upi_ipn(body, secret), str(body["sign"]).lower())
