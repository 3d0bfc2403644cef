"""Locking the control surface, and keeping secrets out of logs.

``--admin-token`` (``Config.admin_token``) locks ``/_sim/`` for shared environments:
every ``/_sim`` route except ``GET /_sim/health`` then needs the admin token, sent as
``Authorization: Bearer <token>``, ``X-Admin-Token: <token>``, or — for a person opening
the dashboard in a browser — once as ``?admin_token=<token>``, which also sets an
HttpOnly, SameSite=Strict cookie so the page's own later calls are let in. Anything else
is a 401 envelope. The merchant API (``/payment/``) and the wallet pages stay open: they
are what merchants and consumers use, and merchants authenticate with their own tokens.

Every response also gets ``X-Content-Type-Options: nosniff`` (``app.nosniff``).

:class:`RedactingAccessLogger` is the access logger ``citcon-sim serve --access-log``
uses: token-like query parameters (``token``, ``admin_token``, …) and credential headers
are written as ``[redacted]``. :func:`setup` also puts two filters on aiohttp's loggers,
so any runner is covered: :class:`RedactAccessLog` (the same redaction on
``aiohttp.access``) and :class:`ScrubParseErrors` (no quoted header bytes from a request
aiohttp could not parse on ``aiohttp.server``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import unquote_plus

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_log import AccessLogger

from citcon_sim.domain.errors import Unauthorized
from citcon_sim.domain.redaction import SECRET_PARAMS
from citcon_sim.faces.http import SIM, bearer_token, envelope

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

COOKIE = "citcon_sim_admin"
QUERY_KEY = "admin_token"
HEADER = "X-Admin-Token"
OPEN = frozenset({"/_sim/health"})
# Query parameters and headers whose values never reach a log line.
SECRET_HEADERS = frozenset({"authorization", "x-admin-token", "cookie", "set-cookie"})
_QUERY_PAIR = re.compile(r"([?&;])([^=&;#\s]*)=([^&;#\s]*)")


def _digest(value: str) -> bytes:
    # Hashing first makes the comparison independent of either length.
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(_digest(given), _digest(expected))


def cookie_value(admin_token: str) -> str:
    """What the cookie holds: derived from the token, never the token itself."""
    key = admin_token.encode("utf-8", "surrogateescape")
    return hmac.new(key, b"citcon-sim admin cookie", hashlib.sha256).hexdigest()


def locked(request: web.Request) -> bool:
    """A /_sim request that needs the admin token (when one is configured)."""
    path = request.path
    if path != "/_sim" and not path.startswith("/_sim/"):
        return False
    return not (path in OPEN and request.method in ("GET", "HEAD"))


@web.middleware
async def admin_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The ``/_sim/`` sub-application's middleware."""
    return await guard(request, handler)


async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The admin-token check, for a request ``locked()`` says needs it."""
    admin = request.app[SIM].config.admin_token
    if not admin or not locked(request):
        return await handler(request)
    from_query = _same(request.query.get(QUERY_KEY), admin)
    allowed = (
        from_query
        or _same(request.headers.get(HEADER), admin)
        or _same(bearer_token(request), admin)
        or _same(request.cookies.get(COOKIE), cookie_value(admin))
    )
    if not allowed:
        # Never says which part was wrong, and never echoes what was sent.
        resp: web.StreamResponse = envelope(Unauthorized(
            "the control surface needs the admin token "
            "(Authorization: Bearer <token> or X-Admin-Token)"))
        resp.headers["WWW-Authenticate"] = 'Bearer realm="citcon-sim /_sim/"'
        return resp
    if not from_query:
        return await handler(request)
    # A browser that opened a /_sim/ page with ?admin_token= is let in from then on.
    try:
        resp = await handler(request)
    except web.HTTPException as exc:  # redirects (/_sim -> /_sim/) carry the cookie too
        _set_cookie(request, exc, admin)
        raise
    if not resp.prepared:  # a stream already sent its headers
        _set_cookie(request, resp, admin)
    return resp


def _set_cookie(request: web.Request, resp: web.StreamResponse, admin: str) -> None:
    resp.set_cookie(COOKIE, cookie_value(admin), path="/_sim", httponly=True,
                    samesite="Strict", secure=request.secure)


def setup(app: web.Application) -> None:
    """Put the log filters on aiohttp's loggers (``create_app``)."""
    # Also for runners this package does not make (aiohttp's test server, gunicorn…).
    for name, kind in (("aiohttp.server", ScrubParseErrors), ("aiohttp.access", RedactAccessLog)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


# -- logs ----------------------------------------------------------------------------------


def _hide(match: re.Match[str]) -> str:
    sep, key, value = match.groups()
    secret = unquote_plus(key).strip().lower() in SECRET_PARAMS and value
    return f"{sep}{key}=[redacted]" if secret else match.group(0)


def redact_url(text: str) -> str:
    """A URL, or a log line holding some, with the values of secret parameters hidden."""
    return _QUERY_PAIR.sub(_hide, text) if "=" in text else text


class RedactAccessLog(logging.Filter):
    """On the ``aiohttp.access`` logger, whatever access logger class writes to it: the
    line, and the structured fields aiohttp attaches for JSON log formatters."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_url(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        line = getattr(record, "first_request_line", None)
        if isinstance(line, str):
            record.first_request_line = redact_url(line)
        headers = getattr(record, "request_header", None)
        if isinstance(headers, dict):
            record.request_header = {
                k: "[redacted]" if k.lower() in SECRET_HEADERS
                else redact_url(v) if isinstance(v, str) else v
                for k, v in headers.items()
            }
        return True


class ScrubParseErrors(logging.Filter):
    """aiohttp logs a request it cannot parse (an over-long header line, say) with an
    exception quoting the first bytes of the offending value: an ``Authorization`` header
    over the size limit would put the start of its token in the log. Keep the event and
    the error's type, drop the quoted bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BadHttpMessage):
            record.msg = f"{record.getMessage()}: {type(exc).__name__} {exc.code} " \
                         "(the offending bytes are not logged)"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access logger, minus the secrets: the request line's and the Referer's
    token-like query values and any credential header a log format might name."""

    def _format_line(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float
    ) -> Iterable[tuple[str | tuple[str, str], str]]:
        out: list[tuple[str | tuple[str, str], str]] = []
        for key, value in super()._format_line(request, response, time):
            if key == "first_request_line" or (
                isinstance(key, tuple) and key[1].lower() == "referer"
            ):
                value = redact_url(str(value))
            elif isinstance(key, tuple) and key[1].lower() in SECRET_HEADERS and value != "-":
                value = "[redacted]"
            out.append((key, value))
        return out
