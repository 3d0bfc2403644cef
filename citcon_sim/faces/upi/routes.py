"""The UPI v1 routes (mounted at ``/v1``): registered and documented from here."""

from __future__ import annotations

from citcon_sim.faces.routes import JSON, TEXT, Handler, Reply, Route, RouteTable
from citcon_sim.faces.upi import handlers as h
from citcon_sim.faces.upi import models as m

BEARER: tuple[dict[str, list[str]], ...] = ({"bearerAuth": []},)
_ERR = {JSON: m.UpiErrorEnvelope}


def _errors(*statuses: int) -> dict[int, Reply]:
    words = {400: "Bad request (4100), e.g. a duplicate reference.",
             401: "Missing, unknown or expired access token (4010).",
             403: "The token lacks the permission (4030): a client token refunding.",
             404: "No such transaction (4040).",
             406: "Refused by the charge's state (4202 refund, 4203 cancel, 4204 capture, "
                  "4208 partial refund).",
             410: "The charge expired before it was paid: its QR code is gone."}
    return {s: Reply(words[s], _ERR) for s in statuses}


def _post(path: str, handler: Handler, op: str, summary: str, body: object,
          answer: object, *errors: int, security: tuple[dict[str, list[str]], ...] = BEARER,
          description: str = "") -> Route:
    return Route("POST", path, handler, op, summary,
                 {200: Reply("The envelope with the answer in `data`.", {JSON: answer}),
                  **_errors(400, 401, *errors)},
                 body=body, body_types=(JSON,), security=security, description=description)


ROUTES = RouteTable([
    _post("/access-tokens", h.access_token, "upiAccessToken",
          "Trade the private key (`Authorization: Bearer <key>`, or the bare key) for an "
          "access token", m.UpiTokenBody, m.UpiTokenEnvelope,
          description="The token expires after 24 h of the simulator's clock."),
    _post("/charges", h.charges, "upiCharge", "Create a charge", m.UpiChargeBody,
          m.UpiChargeEnvelope),
    Route("GET", "/transactions/{id}", h.transaction, "upiTransaction",
          "A charge (or refund) by id; by the charge's reference when no id matches",
          {200: Reply("The charge as it is now, or the refund.",
                      {JSON: m.UpiTransactionEnvelope}), **_errors(401, 404)},
          security=BEARER),
    Route("GET", "/transactions", h.transaction, "upiTransactionByReference",
          "A charge by its reference (`?reference=`)",
          {200: Reply("The latest charge with that reference.",
                      {JSON: m.UpiTransactionEnvelope}), **_errors(400, 401, 404)},
          parameters=({"name": "reference", "in": "query", "required": True,
                       "schema": {"type": "string"}},), security=BEARER),
    _post("/refunds", h.refunds, "upiRefund", "Refund a succeeded charge, fully or partly",
          m.UpiRefundBody, m.UpiRefundEnvelope, 403, 404, 406),
    _post("/cancels", h.cancels, "upiCancel", "Cancel a charge", m.UpiCancelBody,
          m.UpiCancelEnvelope, 403, 404, 406),
    _post("/captures", h.captures, "upiCapture", "Capture an authorized charge",
          m.UpiCaptureBody, m.UpiCaptureEnvelope, 403, 404, 406),
    Route("GET", "/landing/{token}", h.landing, "upiLanding",
          "The charge's hosted page (redirects to the wallet page)",
          {302: Reply("To the wallet page.", {TEXT: {"type": "string"}},
                      headers={"Location": {"required": True, "schema": {"type": "string"}}}),
           **_errors(404)}, security=()),
    Route("GET", "/qr/{token}", h.qr, "upiQr", "The charge's QR code (PNG of its landing URL)",
          {200: Reply("A PNG.", {"image/png": {"contentMediaType": "image/png"}}),
           **_errors(404, 410)}, security=()),
], prefix="/v1", tags=("upi",), security=BEARER, errors=(), head=False)
