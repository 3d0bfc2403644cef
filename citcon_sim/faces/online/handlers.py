"""Merchant-facing Online API handlers: parse, call the ledger, serialise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from multidict import CIMultiDict

from citcon_sim.domain.errors import BadRequest
from citcon_sim.domain.ledger import Merchant, Refund, Status, Transaction, wire_status
from citcon_sim.faces.http import SIM, bearer_token, dumps, json_response, read_params
from citcon_sim.faces.middleware import CALL, MerchantCall
from citcon_sim.faces.online import requests, wire
from citcon_sim.faces.params import text as text_param

if TYPE_CHECKING:
    from citcon_sim.simulator import Simulator

QR_EXPIRED = {"result": "fail", "reason": "QR code expired."}
QR_UNKNOWN = {"result": "fail", "reason": "QR code not found."}
MAX_OFFSET = 10**9  # far past any ledger; itertools.islice refuses more than sys.maxsize


async def _merchant_call(request: web.Request) -> tuple[Simulator, Merchant, MerchantCall]:
    sim = request.app[SIM]
    call = request.get(CALL)
    if call is None:  # an app without the middleware (app.front) in front of the handler
        endpoint = request.path.rpartition("/")[2]
        call = MerchantCall(endpoint, bearer_token(request), await read_params(request))
    return sim, sim.ledger.merchant(call.token), call


async def _create(request: web.Request, method: str) -> web.Response:
    sim, merchant, call = await _merchant_call(request)
    params = call.params
    cmd = requests.parse_payment(params, method, call.rule)
    # Parsed before the ledger changes: a malformed value is a 4100, never a 500.
    as_json = (text_param(params, "response_format") or "").lower() == "json"
    txn, created = sim.ledger.create_payment(merchant, cmd)
    base = sim.base_url(request.host)
    url = sim.wallet_url(txn.id, base) if method == "pay" else sim.qr_url(txn.id, base)
    if as_json:
        return json_response(
            {
                "transaction_id": txn.id,
                "url": url,
                "reference": txn.reference,
                "vendor": txn.vendor.code,
                "amount": txn.amount,
                "currency": txn.currency,
                "trans_amount": txn.trans_amount,
                "trans_currency": txn.trans_currency,
                "status": wire_status(txn),
                "created": created,
            }
        )
    return web.Response(text=url, content_type="text/plain")


async def pay(request: web.Request) -> web.Response:
    return await _create(request, "pay")


async def pay_qr(request: web.Request) -> web.Response:
    return await _create(request, "pay_qr")


async def inquire(request: web.Request) -> web.Response:
    sim, merchant, call = await _merchant_call(request)
    found = sim.ledger.inquire(merchant, requests.parse_inquire(call.params))
    if isinstance(found, Refund):
        return json_response(wire.refund(found, sim.clock))
    return web.Response(body=_charge_body(sim, found), headers=_JSON_HEADERS)


# What json_response() sends: the same header, without parsing a content type per answer.
_JSON_HEADERS = CIMultiDict({"Content-Type": "application/json; charset=utf-8"})
_QR_HEADERS = CIMultiDict({"Cache-Control": "no-store", "Content-Type": "image/png"})


def _charge_body(sim: Simulator, txn: Transaction) -> bytes:
    """charge() encoded as json_response() would, kept per transaction while nothing it
    reads changes (wire.charge_state): a polled inquire was ~9 µs of building and
    encoding the same dict again. Bounded; emptied on reset."""
    state = wire.charge_state(txn)
    cache = sim.charge_cache
    hit = cache.get(txn.id)
    if hit is not None and hit[0] is txn and hit[1] == state:
        return hit[2]  # type: ignore[no-any-return]
    body = dumps(wire.charge(txn, sim.clock)).encode("utf-8")
    if len(cache) >= 4096:
        cache.clear()
    cache[txn.id] = (txn, state, body)
    return body


async def refund(request: web.Request) -> web.Response:
    sim, merchant, call = await _merchant_call(request)
    result = sim.ledger.refund(merchant, requests.parse_refund(call.params, call.rule))
    return json_response(wire.refund_result(result))


async def cancel(request: web.Request) -> web.Response:
    sim, merchant, call = await _merchant_call(request)
    result = sim.ledger.cancel(merchant, requests.parse_cancel(call.params))
    return json_response(wire.cancel_result(result))


async def capture(request: web.Request) -> web.Response:
    sim, merchant, call = await _merchant_call(request)
    cap = sim.ledger.capture(merchant, requests.parse_capture(call.params))
    txn = sim.ledger.get(cap.transaction_id)
    return json_response(wire.capture_result(cap, txn, sim.clock))


async def transactions(request: web.Request) -> web.Response:
    """The merchant's transactions, newest first (Citcon's QA collections call this)."""
    sim, merchant, call = await _merchant_call(request)
    limit, offset = page(call.params)
    txns = sim.ledger.transactions(merchant, limit=limit, offset=offset)
    return json_response({"transactions": [wire.charge(t, sim.clock) for t in txns]})


def page(params: dict) -> tuple[int, int]:
    try:
        limit = int(params.get("limit", 100))
        offset = int(params.get("offset", 0))
    except (TypeError, ValueError):
        raise BadRequest("limit and offset must be whole numbers") from None
    if not 1 <= limit <= 1000 or not 0 <= offset <= MAX_OFFSET:
        raise BadRequest(f"limit is 1..1000 and offset 0..{MAX_OFFSET}")
    return limit, offset


async def qr(request: web.Request) -> web.Response:
    """The QR image of a pay_qr transaction: a PNG of its wallet-page URL."""
    sim = request.app[SIM]
    txn = sim.ledger.by_id.get(request.query.get("q", "").strip())
    if txn is None:
        return json_response(QR_UNKNOWN, status=404)
    sim.ledger.refresh(txn)
    if txn.status is Status.EXPIRED:
        return json_response(QR_EXPIRED)
    png = sim.qr.png(sim.wallet_url(txn.id, sim.base_url(request.host)))
    return web.Response(body=png, headers=_QR_HEADERS)


def add_routes(app: web.Application) -> None:
    r = app.router
    for path, handler in (("/payment/pay", pay), ("/payment/pay_qr", pay_qr)):
        r.add_route("POST", path, handler)
        r.add_route("GET", path, handler)
    r.add_route("POST", "/payment/inquire", inquire)
    r.add_route("GET", "/payment/inquire", inquire)
    r.add_route("POST", "/payment/refund", refund)
    r.add_route("POST", "/payment/cancel", cancel)
    r.add_route("POST", "/payment/capture", capture)
    r.add_route("GET", "/payment/qr", qr)
    r.add_route("GET", "/payment/list", transactions)
    r.add_route("GET", "/payment/transactions", transactions)
