"""The vendor catalogue: every payment method the Online API documents, in one table.

Capabilities come from the API document: QR Scan Pay is documented for Alipay, WeChat
Pay, Kakao Pay and Alipay HK; ``auto_capture`` appears in the documented examples of
klarna, card, payco, kakaopay and banktransfer (delayed capture); ``multi_capture`` is
documented for klarna only; ``mobile_result_url`` for Alipay and WeChat Pay. The
documentation gives no cancellation windows, so the values below are the simulator's
choice (listed in the README) and can be changed per merchant.
"""

from __future__ import annotations

import msgspec

from citcon_sim.domain.errors import BankNotSupported, VendorNotSupported

HOUR = 3600
DAY = 24 * HOUR
FACES = frozenset({"online", "chop", "upi"})  # every API face


class Vendor(msgspec.Struct, frozen=True):
    """One payment method of the catalogue and what it supports."""

    code: str
    name: str
    currency: str  # default transaction currency when the merchant sends only amount+currency
    qr_scan: bool = False
    delayed_capture: bool = False
    multi_capture: bool = False
    in_app_result: bool = False  # honours mobile_result_url
    cancel_window: int = DAY  # seconds after payment during which cancel refunds in full
    colour: str = "#1f6feb"
    banks: frozenset[str] = frozenset()
    faces: frozenset[str] = FACES  # the APIs that accept this method


KOREAN_BANKS = frozenset(
    {"kb", "shinhan", "woori", "hana", "nh", "ibk", "sc", "citi", "kdb", "busan",
     "daegu", "gwangju", "jeonbuk", "kyongnam", "suhyup", "kakaobank", "kbank", "tossbank"}
)

_VENDORS = [
    Vendor("alipay", "Alipay", "CNY", qr_scan=True, in_app_result=True, colour="#1677ff"),
    Vendor("wechatpay", "WeChat Pay", "CNY", qr_scan=True, in_app_result=True,
           colour="#07c160"),
    Vendor("upop", "UnionPay", "CNY", colour="#e21836"),
    Vendor("jkopay", "JKOPAY", "TWD", colour="#c4161c"),
    Vendor("alipay_hk", "Alipay HK", "HKD", qr_scan=True, colour="#1677ff"),
    Vendor("kakaopay", "Kakao Pay", "KRW", qr_scan=True, delayed_capture=True,
           cancel_window=30 * DAY, colour="#ffcd00"),
    Vendor("dana", "DANA", "IDR", colour="#118eea"),
    Vendor("gcash", "GCash", "PHP", colour="#0057e4"),
    Vendor("klarna", "Klarna", "USD", delayed_capture=True, multi_capture=True,
           cancel_window=30 * DAY, colour="#ffb3c7"),
    Vendor("card", "Korean cards", "KRW", delayed_capture=True, cancel_window=30 * DAY,
           colour="#374151"),
    Vendor("banktransfer", "Korean bank transfer", "KRW", delayed_capture=True,
           cancel_window=DAY, colour="#0f766e", banks=KOREAN_BANKS),
    Vendor("payco", "PAYCO", "KRW", delayed_capture=True, cancel_window=30 * DAY,
           colour="#fa2828"),
    Vendor("naverpay", "Naver Pay", "KRW", cancel_window=30 * DAY, colour="#03c75a"),
    Vendor("linepay", "LINE Pay", "JPY", colour="#06c755"),
    Vendor("paypay", "PayPay", "JPY", colour="#ff0033"),
    Vendor("rakutenpay", "Rakuten Pay", "JPY", colour="#bf0000"),
    # CHOP and UPI methods (docs/evidence/upi-chop.md). A PayPal charge is answered with
    # auto_capture false in the recorded sandbox traffic, so it authorises first; Venmo
    # goes through the same PayPal/Braintree rails. Cash App Pay is the simulator's choice.
    Vendor("paypal", "PayPal", "USD", delayed_capture=True, cancel_window=30 * DAY,
           colour="#003087", faces=FACES - {"online"}),
    Vendor("venmo", "Venmo", "USD", delayed_capture=True, cancel_window=30 * DAY,
           colour="#008cff", faces=FACES - {"online"}),
    Vendor("cashapppay", "Cash App Pay", "USD", colour="#00d64f", faces=FACES - {"online"}),
]

VENDORS: dict[str, Vendor] = {v.code: v for v in _VENDORS}
# The Online API's vendor=generic: "the merchant's default wallet" (Citcon's QA suite
# sends it); a name, not a method of its own.
GENERIC_VENDOR = "generic"


def get_vendor(raw: str | None, face: str = "online") -> Vendor:
    """The method ``raw`` names, if the API ``face`` accepts it."""
    code = (raw or "").strip().lower()
    vendor = VENDORS.get(code)
    if vendor is None or face not in vendor.faces:
        raise VendorNotSupported(f"{raw!r}" if raw else "vendor is required")
    return vendor


def check_bank(vendor: Vendor, bank: str | None) -> str | None:
    """``bank`` selects the bank for Korean bank transfer; anything else is 4105."""
    if bank is None:
        return None
    code = bank.strip().lower()
    if code not in vendor.banks:
        raise BankNotSupported(f"{bank!r} for {vendor.code}")
    return code


def accepted_by(face: str) -> dict[str, Vendor]:
    """The methods the API ``face`` accepts, by code."""
    return {code: v for code, v in VENDORS.items() if face in v.faces}
