"""The vendor catalogue: every payment method the Online API documents, in one table.

Capabilities come from the API document: QR Scan Pay is documented for Alipay, WeChat
Pay, Kakao Pay and Alipay HK; ``auto_capture`` appears in the documented examples of
klarna, card, payco, kakaopay and banktransfer (delayed capture); ``multi_capture`` is
documented for klarna only; ``mobile_result_url`` for Alipay and WeChat Pay. The
documentation gives no cancellation windows, so the values below are the simulator's
choice (listed in the README) and can be changed per merchant.

Each method's consumer journey (``journey``) is the one the document's "Desktop/Mobile/h5
Payment Redirect" section describes: a QR to scan on a computer and the wallet app on a
phone (Alipay, WeChat Pay, Alipay HK, Kakao Pay); the wallet's own sign-in page (DANA,
Naver Pay, PAYCO, LINE Pay, PayPay, Rakuten Pay); a hosted page taking the card number
(UnionPay SecurePay, Korean cards); a choice of bank (Korean bank transfer). Methods the
document does not describe get a plain redirect page. ``app_switch`` marks the methods
whose phone journey offers to open the wallet's app, ``scan_option`` those whose computer
page also offers a QR for it (UnionPay's "Yunshanfu", LINE Pay, PayPay), ``mobile_login``
the QR methods whose phone page also lets the consumer sign in in the browser (Alipay,
Alipay HK); ``market`` is the locale of the consumers the pages show (a Faker locale).
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from citcon_sim.domain.errors import BankNotSupported, VendorNotSupported

HOUR = 3600
DAY = 24 * HOUR
FACES = frozenset({"online", "chop", "upi"})  # every API face


class Journey(StrEnum):
    """What the consumer does on the hosted page before the payment's outcome."""

    QR_APP = "qr_app"  # scan a QR on a computer; open the wallet app on a phone
    LOGIN = "login"  # the wallet's sign-in page: user name and password, then confirm
    CARD = "card"  # a hosted page taking the card number
    BANK = "bank"  # choose the bank, then confirm on the bank's page
    REDIRECT = "redirect"  # a confirmation page, signed in already


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
    journey: Journey = Journey.REDIRECT
    app_switch: bool = False  # on a phone, the page offers to open the wallet's app
    scan_option: bool = False  # on a computer, the page also offers a QR for the app
    mobile_login: bool = False  # on a phone, signing in in the browser is offered too
    market: str = "en_US"  # locale of the consumers shown on its pages (Faker's names)


# The bank codes ``bank`` accepts, with the names the bank-choice page lists.
KOREAN_BANK_NAMES = {
    "kb": "KB Kookmin Bank", "shinhan": "Shinhan Bank", "woori": "Woori Bank",
    "hana": "Hana Bank", "nh": "NongHyup Bank", "ibk": "IBK Industrial Bank",
    "sc": "SC First Bank", "citi": "Citibank Korea", "kdb": "KDB Korea Development Bank",
    "busan": "Busan Bank", "daegu": "Daegu Bank", "gwangju": "Gwangju Bank",
    "jeonbuk": "Jeonbuk Bank", "kyongnam": "Kyongnam Bank", "suhyup": "Suhyup Bank",
    "kakaobank": "KakaoBank", "kbank": "K bank", "tossbank": "Toss Bank",
}
KOREAN_BANKS = frozenset(KOREAN_BANK_NAMES)
QR_APP, LOGIN, CARD, BANK = Journey.QR_APP, Journey.LOGIN, Journey.CARD, Journey.BANK

_VENDORS = [
    Vendor("alipay", "Alipay", "CNY", qr_scan=True, in_app_result=True, colour="#1677ff",
           journey=QR_APP, app_switch=True, mobile_login=True, market="zh_CN"),
    Vendor("wechatpay", "WeChat Pay", "CNY", qr_scan=True, in_app_result=True,
           colour="#07c160", journey=QR_APP, app_switch=True, market="zh_CN"),
    # UnionPay SecurePay: the card number on a hosted page, or the UnionPay app on a phone.
    Vendor("upop", "UnionPay", "CNY", colour="#e21836", journey=CARD, app_switch=True,
           scan_option=True, market="zh_CN"),
    Vendor("jkopay", "JKOPAY", "TWD", colour="#c4161c", market="zh_TW"),
    # Faker has no Hong Kong locale: Traditional Chinese names are the closest.
    Vendor("alipay_hk", "Alipay HK", "HKD", qr_scan=True, colour="#1677ff",
           journey=QR_APP, app_switch=True, mobile_login=True, market="zh_TW"),
    Vendor("kakaopay", "Kakao Pay", "KRW", qr_scan=True, delayed_capture=True,
           cancel_window=30 * DAY, colour="#ffcd00", journey=QR_APP, app_switch=True,
           market="ko_KR"),
    Vendor("dana", "DANA", "IDR", colour="#118eea", journey=LOGIN, market="id_ID"),
    Vendor("gcash", "GCash", "PHP", colour="#0057e4", market="en_PH"),
    Vendor("klarna", "Klarna", "USD", delayed_capture=True, multi_capture=True,
           cancel_window=30 * DAY, colour="#ffb3c7"),
    Vendor("card", "Korean cards", "KRW", delayed_capture=True, cancel_window=30 * DAY,
           colour="#374151", journey=CARD, market="ko_KR"),
    Vendor("banktransfer", "Korean bank transfer", "KRW", delayed_capture=True,
           cancel_window=DAY, colour="#0f766e", banks=KOREAN_BANKS, journey=BANK,
           market="ko_KR"),
    Vendor("payco", "PAYCO", "KRW", delayed_capture=True, cancel_window=30 * DAY,
           colour="#fa2828", journey=LOGIN, app_switch=True, market="ko_KR"),
    Vendor("naverpay", "Naver Pay", "KRW", cancel_window=30 * DAY, colour="#03c75a",
           journey=LOGIN, app_switch=True, market="ko_KR"),
    Vendor("linepay", "LINE Pay", "JPY", colour="#06c755", journey=LOGIN, app_switch=True,
           scan_option=True, market="ja_JP"),
    Vendor("paypay", "PayPay", "JPY", colour="#ff0033", journey=LOGIN, app_switch=True,
           scan_option=True, market="ja_JP"),
    Vendor("rakutenpay", "Rakuten Pay", "JPY", colour="#bf0000", journey=LOGIN,
           market="ja_JP"),
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
