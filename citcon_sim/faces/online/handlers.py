"""Merchant-facing Online API handlers: parse, call the ledger, serialise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from multidict import CIMultiDict

from citcon_sim.domain.ledger import Refund, Status
from citcon_sim.domain.netrules import allowlist
from citcon_sim.faces.http import SIM, model_response
from citcon_sim.faces.middleware import merchant_call
from citcon_sim.faces.online import models, requests, wire
from citcon_sim.faces.params import page
from citcon_sim.faces.params import text as text_param

if TYPE_CHECKING:
    pass

QR_EXPIRED = models.QrFailure(result="fail", reason="QR code expired.")
QR_UNKNOWN = models.QrFailure(result="fail", reason="QR code not found.")
_QR_HEADERS = CIMultiDict({"Cache-Control": "no-store", "Content-Type": "image/png"})




async def _create(request: web.Request, method: str) -> web.Response:
    sim, merchant, call = await merchant_call(request)
    params = call.params
    cmd = requests.parse_payment(params, method, call.rule,
                                 merchant.settings.default_vendor)
    allowlist(sim.config.ipn_allow).check_url(cmd.ipn_url)  # --ipn-allow: a 4100
    # Parsed before the ledger changes: a malformed value is a 4100, never a 500.
    as_json = (text_param(params, "response_format") or "").lower() == "json"
    txn, created = sim.ledger.create_payment(merchant, cmd)
    base = sim.base_url(request.host)
    url = sim.wallet_url(txn.id, base) if method == "pay" else sim.qr_url(txn.id, base)
    if as_json:
        return model_response(wire.payment_created(txn, url, created))
    return web.Response(text=url, content_type="text/plain")


async def pay(request: web.Request) -> web.Response:
    return await _create(request, "pay")


async def pay_qr(request: web.Request) -> web.Response:
    return await _create(request, "pay_qr")


async def inquire(request: web.Request) -> web.Response:
    sim, merchant, call = await merchant_call(request)
    found = sim.ledger.inquire(merchant, requests.parse_inquire(call.params))
    if isinstance(found, Refund):
        return model_response(wire.refund(found, sim.clock))
    return model_response(wire.charge(found, sim.clock))


async def refund(request: web.Request) -> web.Response:
    sim, merchant, call = await merchant_call(request)
    result = sim.ledger.refund(merchant, requests.parse_refund(call.params, call.rule))
    return model_response(wire.refund_result(result))


async def cancel(request: web.Request) -> web.Response:
    sim, merchant, call = await merchant_call(request)
    result = sim.ledger.cancel(merchant, requests.parse_cancel(call.params))
    return model_response(wire.cancel_result(result))


async def capture(request: web.Request) -> web.Response:
    sim, merchant, call = await merchant_call(request)
    cap = sim.ledger.capture(merchant, requests.parse_capture(call.params))
    txn = sim.ledger.get(cap.transaction_id)
    return model_response(wire.capture_result(cap, txn, sim.clock))


async def transactions(request: web.Request) -> web.Response:
    """The merchant's transactions, newest first (Citcon's QA collections call this)."""
    sim, merchant, call = await merchant_call(request)
    limit, offset = page(call.params)
    txns = sim.ledger.transactions(merchant, limit=limit, offset=offset)
    return model_response(wire.transaction_list(txns, sim.clock))


async def qr(request: web.Request) -> web.Response:
    """The QR image of a pay_qr transaction: a PNG of its wallet-page URL."""
    sim = request.app[SIM]
    txn = sim.ledger.by_id.get(request.query.get("q", "").strip())
    if txn is None:
        return model_response(QR_UNKNOWN, status=404)
    sim.ledger.refresh(txn)
    if txn.status is Status.EXPIRED:
        return model_response(QR_EXPIRED)
    png = sim.qr.png(sim.wallet_url(txn.id, sim.base_url(request.host)))
    return web.Response(body=png, headers=_QR_HEADERS)
