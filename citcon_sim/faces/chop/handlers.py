"""CHOP handlers (``/chop/*``): parse, call the ledger, answer in CHOP's shapes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from citcon_sim.domain.errors import BadRequest, CitconError
from citcon_sim.domain.ledger import Refund, Status
from citcon_sim.domain.netrules import allowlist
from citcon_sim.faces.chop import choices, models, requests, wire
from citcon_sim.faces.http import model_response
from citcon_sim.faces.middleware import merchant_call
from citcon_sim.faces.params import page

if TYPE_CHECKING:
    pass


def error(exc: CitconError) -> web.Response:
    """A CHOP failure: ``{"result":"fail","code":…,"error":…}`` (see ``choices``)."""
    return model_response(models.ChopError.of(exc), status=exc.http_status)




async def chop(request: web.Request) -> web.Response:
    sim, merchant, call = await merchant_call(request)
    cmd = requests.parse_chop(call.params, call.rule)
    allowlist(sim.config.ipn_allow).check_url(cmd.ipn_url)  # --ipn-allow: a 4100
    txn, _ = sim.ledger.create_payment(merchant, cmd)
    url = sim.wallet_url(txn.id, sim.base_url(request.host))
    return model_response(wire.created(txn, url))


async def refund(request: web.Request) -> web.Response:
    sim, merchant, call = await merchant_call(request)
    cmd = requests.parse_refund(call.params, call.rule)
    if cmd.note is None:
        txn = sim.ledger.find(merchant, cmd.lookup,
                              prefer=lambda t: t.status is Status.SUCCESS)  # as refund()
        if txn is not None and txn.vendor.code in choices.REASON_REQUIRED:
            return model_response(models.ChopRefundRefused(
                refunded=False, status=choices.REFUND_REASON_REQUIRED))
    result = sim.ledger.refund(merchant, cmd)
    return model_response(wire.refund_result(result))


async def inquire(request: web.Request) -> web.Response:
    sim, merchant, call = await merchant_call(request)
    found = sim.ledger.inquire(merchant, requests.parse_inquire(call.params))
    if isinstance(found, Refund):  # CHOP inquires payments only
        raise BadRequest("transaction not found")
    return model_response(wire.transaction(found, sim.clock))


async def cancel(request: web.Request) -> web.Response:
    sim, merchant, call = await merchant_call(request)
    result = sim.ledger.cancel(merchant, requests.parse_cancel(call.params))
    return model_response(wire.cancel_result(result))


async def transactions(request: web.Request) -> web.Response:
    """The merchant's transactions, newest first (Citcon's QA suite reads its length)."""
    sim, merchant, call = await merchant_call(request)
    limit, offset = page(call.params)
    txns = sim.ledger.transactions(merchant, limit=limit, offset=offset)
    return model_response(wire.transactions(txns, sim.clock))
