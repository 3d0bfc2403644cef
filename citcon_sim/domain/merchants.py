"""Merchants: who may call the API, and with which settings.

With no merchants file every non-empty token is accepted and becomes its own merchant on
first use (lenient mode), so a test suite can isolate tests just by using a fresh token.
A merchants file (YAML, read by ``citcon_sim.config``) switches to strict mode: only the
tokens it lists work.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from citcon_sim.domain.errors import CitconError
from citcon_sim.domain.money import normalise_currency
from citcon_sim.domain.vendors import VENDORS, accepted_by

IPN_ENCODINGS = ("form", "json")
DEFAULT_VENDOR = "alipay"  # what vendor=generic means unless a merchant says otherwise


class MerchantsFileError(ValueError):
    """A merchants file that cannot be used; the message names the file and the entry."""


class MerchantSettings(msgspec.Struct, frozen=True):
    """A merchant's configuration (from --merchants, or lenient defaults)."""

    token: str
    partner_id: str
    name: str = ""
    settlement_currency: str = "USD"
    refund_exempt: bool = False
    cancel_windows: dict[str, int] = msgspec.field(default_factory=dict)
    # The Online API's ``vendor=generic`` (Citcon's QA suite sends it): this wallet.
    default_vendor: str = DEFAULT_VENDOR
    # How CHOP IPNs are posted: the plugin up to 1.5 and the demos read a form; 1.6.0
    # tries a JSON body first (docs/evidence/upi-chop.md §3.1, §3.2).
    chop_ipn_encoding: str = "form"

    @classmethod
    def lenient(cls, token: str) -> MerchantSettings:
        # A stable 9-digit partner id per token, in the range the documented example uses.
        digest = int.from_bytes(hashlib.sha256(token.encode()).digest()[:8], "big")
        return cls(token=token, partner_id=str(300000000 + digest % 100000000))


_KEYS = {"token", "partner_id", "name", "settlement_currency", "refund_exempt",
         "cancel_windows", "default_vendor", "chop_ipn_encoding"}


def parse_merchants(data: Any, source: str = "<merchants>") -> dict[str, MerchantSettings]:
    """Validate the ``merchants:`` list of a merchants file."""
    entries = data.get("merchants") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise MerchantsFileError(f"{source}: expected a non-empty 'merchants:' list")
    out: dict[str, MerchantSettings] = {}
    for i, entry in enumerate(entries):
        where = f"{source}: merchants[{i}]"
        if not isinstance(entry, dict):
            raise MerchantsFileError(f"{where}: expected a mapping")
        unknown = set(entry) - _KEYS
        if unknown:
            raise MerchantsFileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        token = str(entry.get("token") or "").strip()
        if not token:
            raise MerchantsFileError(f"{where}: 'token' is required")
        if token in out:
            raise MerchantsFileError(f"{where}: token listed twice")
        base = MerchantSettings.lenient(token)
        windows = entry.get("cancel_windows") or {}
        if not isinstance(windows, dict) or any(
            v not in VENDORS or not isinstance(s, int) or s < 0 for v, s in windows.items()
        ):
            raise MerchantsFileError(
                f"{where}: cancel_windows maps vendor codes to whole seconds >= 0"
            )
        exempt = entry.get("refund_exempt", False)
        if not isinstance(exempt, bool):  # bool("no") would grant the exemption
            raise MerchantsFileError(f"{where}: refund_exempt must be true or false")
        default_vendor = entry.get("default_vendor", DEFAULT_VENDOR)
        if not isinstance(default_vendor, str) or default_vendor not in accepted_by("online"):
            raise MerchantsFileError(
                f"{where}: default_vendor must be one of {', '.join(sorted(accepted_by('online')))}"
            )
        encoding = entry.get("chop_ipn_encoding", "form")
        if encoding not in IPN_ENCODINGS:
            raise MerchantsFileError(
                f"{where}: chop_ipn_encoding must be form or json, got {encoding!r}")
        try:
            currency = normalise_currency(str(entry.get("settlement_currency", "USD")))
        except CitconError as exc:
            raise MerchantsFileError(f"{where}: {exc.detail}") from None
        out[token] = MerchantSettings(
            token=token,
            partner_id=str(entry.get("partner_id") or base.partner_id),
            name=str(entry.get("name") or ""),
            settlement_currency=currency,
            refund_exempt=exempt,
            cancel_windows=dict(windows),
            default_vendor=default_vendor,
            chop_ipn_encoding=encoding,
        )
    return out
