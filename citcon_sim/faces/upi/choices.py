"""Every UPI v1 choice in one place: what the recorded sandbox traffic shows, and what the
simulator decides where the evidence is silent (docs/upi.md; evidence digest sections
in docs/evidence/upi-chop.md are cited as §n).
"""

from __future__ import annotations

from typing import Final

from citcon_sim.domain.ledger import Status

APP: Final = "citcon_upi"  # §1.0: every envelope
VERSION = "v1.0.0"
PREFIX = "/v1"
# Sent with every recorded success (§1.0): clients must not cache answers.
SUCCESS_HEADERS = {"Cache-Control": "no-cache, no-store, must-revalidate", "Expires": "0",
                   "Pragma": "no-cache"}
TOKEN_PREFIX = "UPI_"  # §1.1: "UPI_" + an opaque string (a JWT in the sandbox)
# §1.1: the permission list of a server token; a client token gets the browser's share
# (the simulator's choice: the web SDK only confirms and inquires).
PERMISSIONS = {
    "server": ("inquiry", "charge", "vault", "consult", "encryption-config", "refund",
               "capture"),
    "client": ("inquiry", "charge", "consult", "encryption-config"),
}
# The permission each endpoint needs (a server token has them all). Cancels need
# "refund" (the simulator's choice: the list has no "cancel", §1.1).
NEEDS = {"charges": "charge", "transactions": "inquiry", "refunds": "refund",
         "captures": "capture", "cancels": "refund"}

# Charge status words (§2.5). initiated and canceled (one L) are recorded (§1.2, §1.5);
# succeeded is what the shopeo plugin and the web-SDK demo wait for and what a refund
# answers (§2.2, §2.3, §1.4); authorized is the manual's word for a held charge (§2.3);
# failed and expired are the web-SDK demo's failure words (§2.3).
STATUS_WORDS: dict[Status, str] = {
    Status.PENDING: "initiated",
    Status.AUTHORIZED: "authorized",
    Status.SUCCESS: "succeeded",
    Status.FAILED: "failed",
    Status.EXPIRED: "expired",
    Status.CANCELLED: "canceled",
}
REFUND_STATUS: Final = "succeeded"  # §1.4
CANCEL_STATUS: Final = "canceled"  # §1.5
# The IPN says "succeeded" (the only real receiver, shopeo, accepts nothing else, §2.2);
# a scenario's IPN status is translated the same way.
IPN_STATUS = {"success": "succeeded", "fail": "failed", "pending": "initiated"}

# Error codes: (HTTP status, code, message). 4100 "duplicate request" (400) and 4202
# "refund failed" (406) are recorded (§1.3, §1.4); 4010 is the code the evidence names
# for a bad token (§0.3: no 401 is recorded); the rest are the simulator's, in the same
# pattern. Messages may add ": <detail>" after the text.
UNAUTHORIZED = (401, "4010", "unauthorized")
FORBIDDEN = (403, "4030", "forbidden")
BAD_REQUEST = (400, "4100", "bad request")
DUPLICATE = (400, "4100", "duplicate request")
NOT_FOUND = (404, "4040", "not found")
METHOD_NOT_ALLOWED = (405, "4050", "method not allowed")
TOO_LARGE = (413, "4130", "request entity too large")
CONFLICT = (409, "4090", "conflict")
# The Online API answers an expired QR with "QR code expired."; a UPI QR image of a charge
# past its time is gone (410), in UPI's envelope (the simulator's choice: no evidence).
QR_EXPIRED = (410, "4100", "QR code expired")
REFUND_FAILED = (406, "4202", "refund failed")
CANCEL_FAILED = (406, "4203", "cancel failed")
CAPTURE_FAILED = (406, "4204", "capture failed")
PARTIAL_REFUND = (406, "4208", "partial refund not supported")
UNKNOWN = (500, "4000", "unknown error")
ERROR_TABLE = (UNAUTHORIZED, FORBIDDEN, BAD_REQUEST, DUPLICATE, NOT_FOUND, METHOD_NOT_ALLOWED,
               TOO_LARGE, CONFLICT, REFUND_FAILED, CANCEL_FAILED, CAPTURE_FAILED,
               PARTIAL_REFUND, UNKNOWN)

# payment.client (§1.2). The answer lists desktop redirect, mobile_browser redirect, then
# desktop qr, whatever the request order. QR entries: alipay and upop are recorded with
# one; PayPal is recorded without; WeChat Pay answered only its mobile_browser redirect.
CLIENTS = ("desktop", "mobile_browser")
DEFAULT_CLIENTS = CLIENTS  # shopeo sends no payment.client at all (§2.2)
QR_METHODS = frozenset({"alipay", "upop"})
# WeChat Pay pays inside the WeChat app: no desktop redirect (recorded), and a desktop-only
# request gets the desktop QR to scan (the simulator's choice).
MOBILE_ONLY_METHODS = frozenset({"wechatpay"})
# Methods whose refunds must be for the whole amount left (4208): no evidence names one;
# the simulator picks UnionPay so that merchants can test the 4208 path.
FULL_REFUND_ONLY = frozenset({"upop"})
# Methods answered with an "exchange" object on the charge (§1.2: PayPal only).
EXCHANGE_METHODS = frozenset({"paypal", "venmo"})

DEFAULT_COUNTRY = "US"  # every cassette sends "US"; shopeo sends the shipping country
CHARGE_TIMEOUT = 1800  # seconds an initiated charge stays payable (silent; 30 minutes)
