"""UPI v1 handlers: authenticate, parse, call the ledger, answer in the envelope.

Between reading a charge and changing the ledger nothing awaits, so concurrent requests
on one charge are applied one after another and the ledger's money rules hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import msgspec
from aiohttp import web
from multidict import CIMultiDict

from citcon_sim.domain.commands import CaptureCommand, Lookup, Money, RefundCommand
from citcon_sim.domain.errors import CitconError
from citcon_sim.domain.ids import charge_id, charge_token
from citcon_sim.domain.ledger import (
    CANCEL_DUPLICATE,
    REFUND_DUPLICATE,
    REFUND_NOT_PAID,
    Merchant,
    Status,
    Transaction,
)
from citcon_sim.domain.netrules import allowlist
from citcon_sim.faces.http import SIM, bearer_token, model_response
from citcon_sim.faces.middleware import CALL
from citcon_sim.faces.upi import choices as c
from citcon_sim.faces.upi import models as m
from citcon_sim.faces.upi import requests as rq
from citcon_sim.faces.upi import tokens, wire
from citcon_sim.faces.upi.errors import UpiError, bad_request

if TYPE_CHECKING:
    from citcon_sim.domain.scripts import Rule
    from citcon_sim.simulator import Simulator

_PNG = CIMultiDict({"Cache-Control": "no-store", "Content-Type": "image/png"})


def _envelope(kind: type[m.UpiEnvelope], data: msgspec.Struct) -> web.Response:
    response = model_response(kind(status="success", app=c.APP, version=c.VERSION,
                                   data=data))
    response.headers.extend(c.SUCCESS_HEADERS)
    return response


async def _body(request: web.Request) -> rq.Body:
    return rq.parse_body(await request.read())


def _rule(request: web.Request) -> Rule | None:
    call = request.get(CALL)
    return call.rule if call is not None else None


def _merchant(request: web.Request, endpoint: str) -> tuple[Simulator, Merchant]:
    """The merchant an access token names; 401 4010 for a missing, unknown or expired
    token (checked on the virtual clock), 403 4030 for a token without the endpoint's
    permission (a client token refunding)."""
    sim = request.app[SIM]
    token = bearer_token(request)
    if token is None:
        raise UpiError(c.UNAUTHORIZED, "missing access token")
    found = tokens.store(sim).get(token)
    if found is None:
        raise UpiError(c.UNAUTHORIZED, "invalid access token")
    if sim.clock.time() >= found.expiry:
        raise UpiError(c.UNAUTHORIZED, "access token expired")
    needed = c.NEEDS[endpoint]
    if needed not in c.PERMISSIONS[found.token_type]:
        raise UpiError(c.FORBIDDEN, f"a {found.token_type} token has no {needed} permission")
    return sim, sim.ledger.merchant(found.key)


def _charge(sim: Simulator, merchant: Merchant, txn_id: str | None,
            reference: str | None = None) -> Transaction:
    if txn_id is None and reference is None:
        raise bad_request("id is required")
    txn = sim.ledger.find(merchant, Lookup(txn_id, reference if txn_id is None else None))
    if txn is None:
        raise UpiError(c.NOT_FOUND, "transaction not found")
    return txn


async def access_token(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    key = bearer_token(request)  # "Bearer <key>", or the bare key as shopeo sends it
    if key is None:
        raise UpiError(c.UNAUTHORIZED, "missing private key")
    body = await _body(request)
    raw_type = rq.text(body, "token_type") or "server"
    token_type: Literal["server", "client"]
    if raw_type == "server":
        token_type = "server"
    elif raw_type == "client":
        token_type = "client"
    else:
        raise bad_request("token_type must be server or client")
    try:
        sim.ledger.merchant(key)  # strict mode: only listed keys
    except CitconError:
        raise UpiError(c.UNAUTHORIZED, "invalid private key") from None
    minted = tokens.store(sim).mint(key, token_type, sim.clock.time(),
                                    sim.config.upi_token_lifetime)
    return _envelope(m.UpiTokenEnvelope, m.UpiAccessToken(
        access_token=minted.token, token_type=token_type, expiry=minted.expiry,
        permission=list(c.PERMISSIONS[token_type])))


def _urls(sim: Simulator, request: web.Request, txn: Transaction) -> tuple[str, str]:
    base = sim.base_url(request.host)
    token = charge_token(txn.id)
    return f"{base}{c.PREFIX}/landing/{token}", f"{base}{c.PREFIX}/qr/{token}"


async def charges(request: web.Request) -> web.Response:
    sim, merchant = _merchant(request, "charges")
    parsed = rq.parse_charge(await _body(request), _rule(request))
    # --ipn-allow: the envelope's 400 (a domain BadRequest takes the UPI shape).
    allowlist(sim.config.ipn_allow).check_url(parsed.command.ipn_url, "urls.ipn")
    # The sandbox refuses a reused reference (§1.3); checked and created with no await
    # in between, so two concurrent requests cannot both pass.
    if merchant.with_reference(parsed.command.reference):
        raise UpiError(c.DUPLICATE)
    txn, _ = sim.ledger.create_payment(merchant, parsed.command)
    landing, qr = _urls(sim, request, txn)
    return _envelope(m.UpiChargeEnvelope, wire.charge(txn, parsed.clients, landing, qr))


async def transaction(request: web.Request) -> web.Response:
    """By id, else by reference (the gem's guess, §0.1): ``/v1/transactions/{id}``, or
    ``/v1/transactions?reference=``. A refund's id answers the refund."""
    sim, merchant = _merchant(request, "transactions")
    key = request.match_info.get("id") or request.query.get("reference", "").strip()
    if not key:
        raise bad_request("an id or ?reference= is required")
    if "id" in request.match_info:
        found = sim.ledger.refunds_by_id.get(key)
        if found is not None and found.transaction_id in merchant.transactions:
            txn = sim.ledger.refresh(merchant.transactions[found.transaction_id])
            return _envelope(m.UpiRefundEnvelope, wire.refund(found, txn))
        txn_or_none = sim.ledger.find(merchant, Lookup(key, None))
        if txn_or_none is None:
            txn_or_none = sim.ledger.find(merchant, Lookup(None, key))
    else:
        txn_or_none = sim.ledger.find(merchant, Lookup(None, key))
    if txn_or_none is None:
        raise UpiError(c.NOT_FOUND, "transaction not found")
    return _envelope(m.UpiTransactionEnvelope, wire.transaction(txn_or_none))


async def refunds(request: web.Request) -> web.Response:
    sim, merchant = _merchant(request, "refunds")
    body = await _body(request)
    txn_id = rq.text(body, "id")
    txn_ref = rq.text(body, "transaction_reference")
    ref = rq.reference(body, "reference")
    value = rq.amount(body, "amount")
    assert value is not None
    currency = rq.text(body, "currency")
    note = rq.text(body, "note")
    txn = _charge(sim, merchant, txn_id, txn_ref)
    if ref in merchant.refund_references:
        raise UpiError(c.DUPLICATE)
    if currency is not None and currency.upper() != txn.currency:
        raise UpiError(c.REFUND_FAILED, f"currency is not the charge's {txn.currency}")
    left = txn.paid_amount - txn.refunded_amount
    if (txn.status is Status.SUCCESS and txn.vendor.code in c.FULL_REFUND_ONLY
            and value != left):
        raise UpiError(c.PARTIAL_REFUND, f"{txn.vendor.code} refunds the whole {left} only")
    result = sim.ledger.refund(merchant, RefundCommand(
        Lookup(txn.id, None), Money(value, txn.currency), None, note, _rule(request), ref))
    if result.refund is None:
        if result.status == REFUND_DUPLICATE:
            raise UpiError(c.DUPLICATE)
        # An unpaid charge gets the recorded answer byte for byte (§1.4); the other
        # refusals say why after the recorded text.
        raise UpiError(c.REFUND_FAILED,
                       None if result.status == REFUND_NOT_PAID else result.status)
    return _envelope(m.UpiRefundEnvelope, wire.refund(result.refund, txn))


async def cancels(request: web.Request) -> web.Response:
    sim, merchant = _merchant(request, "cancels")
    body = await _body(request)
    txn_id = rq.text(body, "id")
    txn_ref = rq.text(body, "transaction_reference")
    ref = rq.text(body, "reference")
    txn = _charge(sim, merchant, txn_id, txn_ref)
    result = sim.ledger.cancel(merchant, Lookup(txn.id, None))
    if not result.cancelled:
        detail = "already canceled" if result.status == CANCEL_DUPLICATE else result.status
        raise UpiError(c.CANCEL_FAILED, detail)
    return _envelope(m.UpiCancelEnvelope, wire.cancel(txn, ref))


async def captures(request: web.Request) -> web.Response:
    sim, merchant = _merchant(request, "captures")
    body = await _body(request)
    txn = _charge(sim, merchant, rq.text(body, "id"), rq.text(body, "reference"))
    value = rq.amount(body, "amount", required=False)
    try:
        cap = sim.ledger.capture(merchant, CaptureCommand(Lookup(txn.id, None), value,
                                                          False, False))
    except CitconError as exc:  # not delayed capture, not authorised, too much
        raise UpiError(c.CAPTURE_FAILED, exc.detail) from None
    return _envelope(m.UpiCaptureEnvelope, wire.capture(cap, txn))


def _by_token(request: web.Request) -> Transaction:
    sim = request.app[SIM]
    txn_id = charge_id(request.match_info["token"])
    txn = sim.ledger.by_id.get(txn_id) if txn_id is not None else None
    if txn is None or txn.face != "upi":
        raise UpiError(c.NOT_FOUND, "no such charge")
    return sim.ledger.refresh(txn)


async def landing(request: web.Request) -> web.Response:
    """The charge's hosted page: the simulator's wallet page for it."""
    txn = _by_token(request)
    raise web.HTTPFound(f"/u_landing?q={txn.id}")


async def qr(request: web.Request) -> web.Response:
    """A real PNG encoding the charge's landing URL, for a phone to scan."""
    sim = request.app[SIM]
    txn = _by_token(request)
    if txn.status is Status.EXPIRED:
        raise UpiError(c.QR_EXPIRED, "the charge expired before it was paid")
    landing_url, _ = _urls(sim, request, txn)
    return web.Response(body=sim.qr.png(landing_url), headers=_PNG)
