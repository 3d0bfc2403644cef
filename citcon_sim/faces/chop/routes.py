"""CHOP's routes (mounted at ``/chop``): registered and documented from here."""

from __future__ import annotations

from citcon_sim.faces.chop import handlers as h
from citcon_sim.faces.chop import models as m
from citcon_sim.faces.online.models import PageQuery
from citcon_sim.faces.routes import JSON, OneOf, Reply, Route, RouteTable

MERCHANT: tuple[dict[str, list[str]], ...] = ({"bearerAuth": []},)
# CHOP's own failure shape; a body over the limit (413) is the shared envelope.
FAILURES = {
    400: Reply("A bad request: `code` 41xx.", {JSON: m.ChopError}),
    401: Reply("No token, a scheme other than Bearer, or (merchants file) an unknown "
               "one: `code` 4100, `Unauthorized: …`.",
               {JSON: m.ChopError}),
    500: Reply("Unknown error: `code` 4000.", {JSON: m.ChopError}),
}

CHOP_EXAMPLE = {
    "payment_method": "alipay", "amount": 100, "currency": "USD",
    "reference": "20250101123000-57", "allow_duplicates": "yes",
    "ipn_url": "https://merchant.example/?wc-api=wc_citconpay",
    "callback_url_success": "https://merchant.example/order-received/57",
    "source": "woocommerce",
}

ROUTES = RouteTable([
    Route("POST", "/chop", h.chop, "chopCreate",
          "Create a payment; answers the hosted payment page's URL",
          {200: Reply("`result` success and `url` (the last key).", {JSON: m.ChopCreated}),
           **FAILURES},
          description="A repeated reference without `allow_duplicates=yes` answers the "
          "existing payment.", body=m.ChopForm, body_example=CHOP_EXAMPLE),
    Route("POST", "/refund", h.refund, "chopRefund", "Refund a paid payment, fully or partly",
          {200: Reply("Refunded, or refused (still HTTP 200, `refunded` false).",
                      {JSON: OneOf((m.ChopRefunded, m.ChopRefundRefused))}), **FAILURES},
          description="By `transaction_id` or `transaction_reference` (not both). PayPal "
          "refunds need a `reason`.", body=m.ChopRefundForm),
    Route("POST", "/inquire", h.inquire, "chopInquire", "Inquire a payment",
          {200: Reply("The payment; `notify_result` is null until paid.",
                      {JSON: m.ChopTransaction}), **FAILURES},
          description="By `transaction_id`, `q` or `reference`; an unknown or foreign "
          "payment is a 4100 failure.", body=m.ChopInquireForm),
    Route("POST", "/cancel", h.cancel, "chopCancel",
          "Cancel a pending, void an authorised or reverse a paid payment",
          {200: Reply("The outcome (`Order cancelled`, `Duplicate cancellation`, …).",
                      {JSON: m.ChopCancelled}), **FAILURES}, body=m.ChopCancelForm),
    Route("GET", "/transactions", h.transactions, "chopTransactions",
          "The calling merchant's payments, newest first",
          {200: Reply("The payments.", {JSON: m.ChopTransactions}), **FAILURES},
          query=PageQuery),
], prefix="/chop", tags=("merchant",), security=MERCHANT, errors=(413,), head=False)
