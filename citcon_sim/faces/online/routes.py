"""The Online API's routes (mounted at ``/payment``): registered and documented from here."""

from __future__ import annotations

from citcon_sim.faces.online import handlers as h
from citcon_sim.faces.online import models as m
from citcon_sim.faces.routes import JSON, TEXT, OneOf, Reply, Route, RouteTable

MERCHANT: tuple[dict[str, list[str]], ...] = ({"bearerAuth": []},)
ERRORS = (400, 401, 413, 500)

# The documentation's first example, with an IPN URL that never resolves (.example).
PAY_EXAMPLE = {
    "vendor": "alipay", "amount": 1, "currency": "USD", "reference": "test_citcon_001",
    "allow_duplicates": "yes", "ipn_url": "https://merchant.example/ipn",
    "callback_url_success": "https://merchant.example/s",
    "callback_url_fail": "https://merchant.example/f",
}
_CREATED = ("The payment (a repeated reference without `allow_duplicates=yes` answers the "
            "existing one).")
_AS_QUERY = "The same parameters in the query string (some integrations GET)."
_INQUIRE = ("By `transaction_id` (a refund id works too) or `reference`; an unknown or "
            "foreign transaction is a 4100 envelope.")


def _create(method: str, endpoint: str) -> Route:
    what = ("the hosted wallet page URL (`…/u_landing?q=<id>`)" if endpoint == "pay"
            else "the QR image URL (`…/payment/qr?q=<id>`)")
    get = method == "GET"
    return Route(
        method, f"/{endpoint}", h.pay if endpoint == "pay" else h.pay_qr,
        f"{endpoint.replace('_q', 'Q')}{method.capitalize()}",
        f"Create a payment; answers {what}",
        {200: Reply(_CREATED, {TEXT: m.PaymentUrl, JSON: m.PaymentCreated})},
        description=_AS_QUERY if get else "",
        query=m.PaymentForm if get else None,
        body=None if get else m.PaymentForm, body_example=None if get else PAY_EXAMPLE,
    )


def _inquire(method: str) -> Route:
    get = method == "GET"
    return Route(
        method, "/inquire", h.inquire, f"inquire{method.capitalize()}", "Inquire a payment",
        {200: Reply("The charge (or, for a refund id, the refund).",
                    {JSON: OneOf((m.Charge, m.Refund))})},
        description=_INQUIRE,
        query=m.InquireForm if get else None, body=None if get else m.InquireForm)


def _listing(path: str, operation_id: str, description: str = "",
             method: str = "GET") -> Route:
    get = method == "GET"
    return Route(method, path, h.transactions, operation_id,
                 "The calling merchant's transactions, newest first",
                 {200: Reply("The transactions.", {JSON: m.TransactionList})},
                 description=description, query=m.PageQuery if get else None,
                 body=None if get else m.PageQuery, body_required=False)


ROUTES = RouteTable([
    _create("GET", "pay"), _create("POST", "pay"),
    _create("GET", "pay_qr"), _create("POST", "pay_qr"),
    _inquire("GET"), _inquire("POST"),
    Route("POST", "/refund", h.refund, "refund", "Refund a paid payment, fully or partly",
          {200: Reply("Refunded, or refused (still HTTP 200, `refunded: false`).",
                      {JSON: OneOf((m.RefundSucceeded, m.RefundFailed))})},
          description="By `transaction_id` or `transaction_reference` (not both).",
          body=m.RefundForm),
    Route("POST", "/cancel", h.cancel, "cancel",
          "Cancel a pending, void an authorised or reverse a paid payment",
          {200: Reply("The outcome.", {JSON: m.CancelResult})}, body=m.CancelForm),
    Route("POST", "/capture", h.capture, "capture",
          "Capture an authorisation (delayed-capture vendors)",
          {200: Reply("The capture; failures are 4100 envelopes.", {JSON: m.CaptureResult})},
          body=m.CaptureForm),
    Route("GET", "/qr", h.qr, "qrImage",
          "The QR code of a pay_qr payment (no token needed: a phone loads it)",
          {200: Reply("A PNG encoding the wallet-page URL; after the timeout, `QR code "
                      "expired.` as JSON.",
                      {"image/png": {"contentMediaType": "image/png"}, JSON: m.QrFailure}),
           404: Reply("No such transaction.", {JSON: m.QrFailure})},
          query=m.QrQuery, errors=(400, 413, 500), security=()),
    _listing("/list", "listTransactions"),
    _listing("/transactions", "listTransactionsAlias", "Same as `/payment/list`."),
    # Some clients POST it, with an empty body (docs/evidence/upi-chop.md §4).
    _listing("/transactions", "listTransactionsAliasPost", "Same as `/payment/list`; the "
             "body (often empty) may carry `limit` and `offset`.", "POST"),
], prefix="/payment", tags=("merchant",), security=MERCHANT, errors=ERRORS,
    head=False)  # GET only: a HEAD to /pay would create a payment
