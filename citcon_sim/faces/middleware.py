"""The merchant APIs' middleware: scenario decisions, API misbehaviour and the journal.

Every face's sub-application gets one (:func:`merchant_api`). For every request the
scenario book decides once; the matching rule is put on the request (``CALL``) for the
handler to carry into the ledger, and its ``api`` behaviour (latency, an error, a 5xx, a
dropped connection, a timeout after the work is done) is applied here. Every call,
however it ends, is written to the journal. Errors take the face's own shape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web
from aiohttp.typedefs import Middleware

from citcon_sim.domain import errors
from citcon_sim.domain.endpoints import CREATES
from citcon_sim.domain.errors import CitconError
from citcon_sim.domain.events import MerchantCalled
from citcon_sim.domain.ledger import Merchant
from citcon_sim.domain.scripts import ApiScript, Rule
from citcon_sim.faces import surprises
from citcon_sim.faces.face import Face
from citcon_sim.faces.http import SIM, bearer_token, error_response, read_params
from citcon_sim.faces.journal import RESPONSE_BYTES
from citcon_sim.faces.params import Params

if TYPE_CHECKING:
    from citcon_sim.simulator import Simulator

log = logging.getLogger("citcon_sim")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ERRORS: dict[int, type[CitconError]] = {
    cls.code: cls
    for cls in (errors.UnknownError, errors.BadRequest, errors.VendorNotSupported,
                errors.InvalidAmount, errors.InvalidReference, errors.InvalidTimeout,
                errors.BankNotSupported)
}
def drop_connection(request: web.Request) -> web.Response:
    """Close the socket without answering; the client sees a disconnect."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)


def scripted_failure(face: Face, script: ApiScript) -> web.Response | None:
    if script.error is not None:
        return face.error(_ERRORS[script.error]("scripted by scenario"))
    if script.http_status is not None:
        return web.Response(status=script.http_status, text=f"HTTP {script.http_status}\n")
    return None


class MerchantCall(msgspec.Struct):
    """One ``/payment/`` request as the middleware read it; the handler takes its token,
    parameters and scenario rule from here (``CALL``) instead of reading them again."""

    endpoint: str
    token: str | None
    params: Params = msgspec.field(default_factory=dict)
    rule: Rule | None = None  # the scenario rule that matched this request, or None
    unsent: str | None = None  # the answer a scripted timeout never delivered


CALL: web.RequestKey[MerchantCall] = web.RequestKey("citcon_sim.call")


def merchant_api(face: Face) -> Middleware:
    """The middleware of ``face``'s sub-application: every merchant API call."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        sim = request.app[SIM]
        started = time.perf_counter()
        endpoint = face.endpoint(request.path.removeprefix(face.routes.prefix + "/"))
        call = MerchantCall(endpoint, None)
        try:
            if sim.failure is not None:  # the --state file failed: serve nothing more
                raise sim.failure
            # Inside the try: a refused Authorization header is a 401 in the face's shape.
            call.token = face.merchant_token(request)
            call.params = await read_params(request)
            book = sim.scenarios
            # Authenticated calls only: an anonymous caller (or, in strict mode, an
            # unknown token) must not make the simulator run a scenario's patterns.
            if book.could_match(call.endpoint, call.token) \
                    and face.authenticated(request, call.endpoint, call.token):
                facts = face.facts(call.endpoint, call.token, call.params)
                # The serving face, whatever its facts say: rules match on it (``face:``).
                call.rule = book.decide(msgspec.structs.replace(facts, face=face.name))
            request[CALL] = call
            if call.rule is None or not call.rule.shapes_answer:  # nearly every request
                response = await handler(request)
            else:
                response = await _scripted(request, handler, face, call, call.rule)
        except web.HTTPException:  # 404, 405, 413: the application's middleware answers
            raise
        except CitconError as exc:
            response = face.error(exc)
        except Exception as exc:
            response = error_response(request, exc)
        # The journal, and the console while it listens (a dict look-up when it does not).
        if sim.journal.enabled or sim.events.handlers(MerchantCalled):
            _journal(request, face, call, response, started)
        return response

    return middleware


async def _scripted(
    request: web.Request, handler: Handler, face: Face, call: MerchantCall, rule: Rule
) -> web.StreamResponse:
    """The scenario's ``api`` behaviour (and an IPN that must beat the answer) around the
    handler."""
    script = rule.api or _NO_API
    sim = request.app[SIM]
    if script.latency_ms and not script.timeout:
        await asyncio.sleep(script.latency_ms / 1000)  # real time: it is the client who waits
    if script.drop:
        return drop_connection(request)
    if script.rate_limit is not None:
        return surprises.rate_limited(script.rate_limit)
    if script.cdn_error is not None:
        return surprises.cdn_error_page(script.cdn_error, request, sim.clock.time())
    failure = scripted_failure(face, script)
    if failure is not None:
        return failure
    response = await handler(request)
    if rule.ipn is not None and rule.ipn.before_answer:
        await surprises.ipn_first(sim, face.transaction_id(
            call.endpoint, call.params, lambda: _text(response),
            lambda reference: _latest_with_reference(sim, call.token, reference)))
    if script.truncate:
        return surprises.truncated(response)
    if script.timeout:  # the work is done (the payment exists), but no answer arrives
        if isinstance(response, web.Response) and (
                response.content_type.startswith("text/") or "json" in response.content_type):
            call.unsent = response.text  # may name the payment created, for the journal
        await asyncio.sleep(script.latency_ms / 1000)
        return drop_connection(request)
    return response


_NO_API = ApiScript()


def _text(response: web.StreamResponse) -> str | None:
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        return response.body.decode(response.charset or "utf-8", "replace")
    return None


def _latest_with_reference(sim: Simulator, token: str | None, reference: str) -> str | None:
    """The id of the latest transaction of ``token``'s merchant with ``reference`` (the
    one a by-reference call finds unless it prefers another), or None. Two dict look-ups:
    no scan, and no merchant is created (:meth:`Ledger.known_merchant`)."""
    merchant = sim.ledger.known_merchant(token) if token else None
    found = merchant.with_reference(reference) if merchant is not None else None
    return found[-1].id if found else None


def _journal(
    request: web.Request, face: Face, call: MerchantCall, response: web.StreamResponse,
    started: float,
) -> None:
    sim = request.app[SIM]
    # Only textual answers are journalled: a QR image is binary and has no text. The
    # body is kept as bytes and decoded only when the journal is read (JournalEntry).
    body: bytes | None = None
    charset = "utf-8"
    if isinstance(response, web.Response):
        raw = response.body
        if isinstance(raw, bytes):
            # The header as set (aiohttp's parsed content_type/charset cost more than the
            # rest of the journal entry).
            mime, _, rest = response.headers.get("Content-Type", "").partition(";")
            mime = mime.strip().lower()
            if mime.startswith("text/") or mime.endswith("json"):
                charset = rest.partition("charset=")[2].split(";")[0].strip().strip('"') or "utf-8"
                body = raw if len(raw) <= RESPONSE_BYTES else raw[:RESPONSE_BYTES]
    def answer() -> str | None:
        return body.decode(charset, "replace") if body is not None else call.unsent

    def by_reference(reference: str) -> str | None:
        return _latest_with_reference(sim, call.token, reference)

    # Computed once, for the journal and the console alike.
    txn_id = face.transaction_id(call.endpoint, call.params, answer, by_reference)
    now, took = sim.clock.time(), time.perf_counter() - started
    if sim.journal.enabled:
        sim.journal.append(
            now,  # formatted when the journal is read
            request.method,
            request.path,
            call.endpoint,
            call.token,  # only its hint and digest are kept
            call.params,  # redacted when read (JournalEntry.as_dict)
            response.status,
            body,
            took,
            txn_id,
            call.rule.name if call.rule is not None else None,
            charset,
            face.name,
            call.rule.surprises(call.endpoint in CREATES) if call.rule is not None else None,
        )
    if sim.events.handlers(MerchantCalled):
        sim.events.publish(MerchantCalled(
            now, face.name, request.method, request.path, call.endpoint, call.token,
            response.status, took, txn_id, answer))


async def merchant_call(request: web.Request) -> tuple[Simulator, Merchant, MerchantCall]:
    """A form face's handler's view of its call: the simulator, the merchant the token
    authenticates (without creating it: ``Ledger.create_payment`` stores a new one) and
    what the middleware read (read here when no middleware is in front)."""
    sim = request.app[SIM]
    call = request.get(CALL)
    if call is None:
        endpoint = request.path.rpartition("/")[2]
        call = MerchantCall(endpoint, bearer_token(request), await read_params(request))
    return sim, sim.ledger.merchant(call.token), call
