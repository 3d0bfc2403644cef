"""Request and response plumbing shared by the handlers."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web
from multidict import CIMultiDict

from citcon_sim.domain.errors import (
    BadRequest,
    CitconError,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnknownError,
)
from citcon_sim.faces.models import ErrorEnvelope
from citcon_sim.faces.params import MAX_KEYS, Params, normalise

if TYPE_CHECKING:
    from citcon_sim.simulator import Simulator

# The simulator an application serves (typed; the class is not imported at run time:
# the simulator module wires the faces, not the other way round).
SIM: web.AppKey[Simulator] = web.AppKey("simulator")
log = logging.getLogger("citcon_sim")
_PARAMS: web.RequestKey[Params] = web.RequestKey("citcon_sim.params")

# Compact, like production ({"id":"…"}); default=str keeps odd values from raising. One
# encoder for every answer: json.dumps() with any non-default option builds a new
# JSONEncoder per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def dumps(data: object) -> str:
    return _ENCODER.encode(data)


def json_response(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


# Structs encode in declaration order; the header is the one json_response() sends.
_MODEL_ENCODER = msgspec.json.Encoder()
_JSON_HEADERS = CIMultiDict({"Content-Type": "application/json; charset=utf-8"})


def model_response(model: msgspec.Struct, status: int = 200) -> web.Response:
    return web.Response(body=_MODEL_ENCODER.encode(model), status=status,
                        headers=_JSON_HEADERS)


def envelope(error: CitconError) -> web.Response:
    return model_response(ErrorEnvelope.of(error), status=error.http_status)


# nginx's "client closed request": what the journal shows for a call whose client left.
CLIENT_GONE = 499


def client_gone(request: web.Request, exc: BaseException) -> bool:
    """A connection error while the client's connection is closed: the client went away
    (mid-upload, say). That is the client's doing, not a server error."""
    if not isinstance(exc, ConnectionError):
        return False
    transport = request.transport
    return transport is None or transport.is_closing()


def error_response(request: web.Request, exc: Exception) -> web.Response:
    """The Citcon error envelope for a failure, never a traceback. aiohttp's own 404, 405
    and 413 become envelopes too; other HTTP exceptions (redirects) are raised again. A
    client that went away gets a 499 nobody reads: not logged, not recorded."""
    if isinstance(exc, CitconError):
        return envelope(exc)
    if client_gone(request, exc):
        return web.Response(status=CLIENT_GONE)
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return envelope(PayloadTooLarge("request body is larger than the limit"))
    if isinstance(exc, web.HTTPNotFound):
        return envelope(NotFound("no such endpoint"))
    if isinstance(exc, web.HTTPMethodNotAllowed):
        response = model_response(
            ErrorEnvelope.of(BadRequest(f"{request.method} is not allowed here")), status=405)
        response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        return response
    if isinstance(exc, web.HTTPException):
        raise exc
    log.exception("unexpected error on %s %s", request.method, request.path)
    request.app[SIM].record_error(exc)
    return envelope(UnknownError())


_FORM = "application/x-www-form-urlencoded"


async def read_params(request: web.Request) -> Params:
    """Query string and body together (body wins), normalised per ``params``.

    Parsed once per request: the middleware and the handler share the result."""
    cached = request.get(_PARAMS)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    params = request[_PARAMS] = await _read_params(request)
    return params


async def _read_params(request: web.Request) -> Params:
    pairs: list[tuple[str, str]] = (
        list(request.query.items()) if request.query_string else []
    )
    if request.body_exists:
        # The usual form header is taken as it is; anything else goes through aiohttp's
        # parse (parameters, case, whitespace).
        raw_ctype = request.headers.get("Content-Type")
        ctype = _FORM if raw_ctype == _FORM else request.content_type
        if ctype == "multipart/form-data":
            try:
                form = await request.post()
            except ValueError:  # no boundary, broken parts, undecodable text
                raise BadRequest("malformed multipart body") from None
            pairs += [(k, v) for k, v in form.items() if isinstance(v, str)]
        else:
            raw = await request.read()
            try:
                body = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest("body is not valid UTF-8") from None
            if ctype == "application/json":
                pairs += _json_pairs(body)
            elif body.strip():
                try:
                    pairs += _form_pairs(body)
                except UnicodeDecodeError:
                    raise BadRequest("form value is not valid UTF-8") from None
                except ValueError:
                    raise BadRequest(f"more than {MAX_KEYS} parameters") from None
    return normalise(pairs)


def _form_pairs(body: str) -> list[tuple[str, str]]:
    """``parse_qsl(body, keep_blank_values=True, errors="strict", max_num_fields=MAX_KEYS)``.
    A body with nothing %- or +-encoded (an inquire, a refund) is only split: parse_qsl's
    own work per field is then a third of a small call's parsing (docs/performance.md)."""
    if "%" in body or "+" in body:
        return parse_qsl(body, keep_blank_values=True, errors="strict",
                         max_num_fields=MAX_KEYS)
    if 1 + body.count("&") > MAX_KEYS:
        raise ValueError("Max number of fields exceeded")
    pairs = []
    for field in body.split("&"):
        if field:
            name, _, value = field.partition("=")
            pairs.append((name, value))
    return pairs


def _json_pairs(body: str) -> list[tuple[str, str]]:
    try:
        data = json.loads(body, parse_constant=_not_json) if body.strip() else {}
        # A lone surrogate escape ("\ud800") decodes, but no answer could ever show it.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):
        raise BadRequest("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("JSON body must be an object")
    pairs = []
    for key, value in data.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, dict | list):
            value = json.dumps(value)  # goods and friends arrive as JSON text, as documented
        elif value is None:
            continue
        pairs.append((str(key), str(value)))
    return pairs


def _not_json(constant: str) -> float:
    raise ValueError(f"{constant} is not JSON")  # NaN, Infinity: Python's extensions


def bearer_token(request: web.Request) -> str | None:
    """``Authorization: Bearer <token>`` or a bare ``Authorization: <token>``.

    Any other scheme (``Basic <credentials>``, ``Digest …``: a word, a space, the rest) is
    refused with a 401 rather than taken whole as a bare token: such a client is
    misconfigured, and in lenient mode it would silently become a merchant of its own."""
    header = request.headers.get("Authorization", "").strip()
    # "Bearer " with an empty token arrives as "Bearer" (trailing space stripped).
    if header[:7].lower() == "bearer " or header.lower() == "bearer":
        header = header[7:].strip()
    elif len(header.split(None, 1)) == 2:
        # Never echoes the header: the scheme word could be the start of a secret.
        raise Unauthorized("only Bearer tokens are accepted "
                           "(Authorization: Bearer <token>, or the bare token)")
    if not header.isascii():
        try:  # undecodable bytes arrive as lone surrogates, which no answer can carry
            header.encode("utf-8")
        except UnicodeEncodeError:
            raise Unauthorized("Authorization token is not valid UTF-8") from None
    return header or None


def sse_message(event: str, data: Any) -> bytes:
    """One Server-Sent Events message (the dashboard's and the listener's streams).
    json.dumps never emits a raw newline, so one ``data:`` line always holds it."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
