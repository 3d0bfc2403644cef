"""Locking the control surface, and keeping secrets out of logs.

``--admin-token`` (``Config.admin_token``) locks ``/_sim/`` for shared environments:
every ``/_sim`` route except ``GET /_sim/health`` then needs the admin token, sent as
``Authorization: Bearer <token>``, ``X-Admin-Token: <token>``, or — for a person opening
the dashboard in a browser — once as ``?admin_token=<token>``, which also sets an
HttpOnly, SameSite=Strict cookie so the page's own later calls are let in. Anything else
is a 401 envelope. The merchant API (``/payment/``) and the wallet pages stay open: they
are what merchants and consumers use, and merchants authenticate with their own tokens.

Without an admin token, ``/_sim/`` still refuses (403, the same envelope) what a web page
could make a browser send: a ``Host`` that is not a loopback name, an IP address, a
single-label name (a compose service), the public URL's or the listen address's host or
one listed in ``--allowed-hosts`` (DNS rebinding: a page's own name pointed at 127.0.0.1),
and a state-changing request whose ``Origin`` is another site's (cross-site requests).
With a token these add nothing: neither attack has it, and the cookie is SameSite=Strict.
The merchant API and the wallet pages keep answering any Host: a merchant calls them by
whatever name its network gives (``sim.qa.svc.cluster.local``), and what they give away
needs a merchant token or a transaction id the attacker does not have.

Every response also gets ``X-Content-Type-Options: nosniff`` (``app.errors``).

:class:`RedactingAccessLogger` is the access logger ``citcon-sim serve --access-log``
uses: token-like query parameters (``token``, ``admin_token``, …) and credential headers
are written as ``[redacted]``. :func:`setup` also puts two filters on aiohttp's loggers,
so any runner is covered: :class:`RedactAccessLog` (the same redaction on
``aiohttp.access``) and :class:`ScrubParseErrors` (no quoted header bytes from a request
aiohttp could not parse on ``aiohttp.server``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import unquote_plus, urlsplit

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_log import AccessLogger

from citcon_sim.config import Config
from citcon_sim.domain.errors import CitconError, Unauthorized
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


def _bearer_or_none(request: web.Request) -> str | None:
    """The Bearer token, or None for another scheme (answered below as any wrong token)."""
    try:
        return bearer_token(request)
    except Unauthorized:
        return None


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
    """The admin-token check, for a request ``locked()`` says needs it; without a token,
    the Host and Origin checks instead."""
    config = request.app[SIM].config
    admin = config.admin_token
    if not locked(request):
        return await handler(request)
    if not admin:
        refused = browser_attack(request, config)
        return envelope(refused) if refused is not None else await handler(request)
    from_query = _same(request.query.get(QUERY_KEY), admin)
    allowed = (
        from_query
        or _same(request.headers.get(HEADER), admin)
        or _same(_bearer_or_none(request), admin)
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


# -- Host and Origin (an open /_sim/) ---------------------------------------------------------


class Forbidden(CitconError):
    """A request /_sim/ will not serve whoever sends it (the envelope of a 400, as 403)."""

    code, message, http_status = 4100, "Bad request", 403


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SHOWN = re.compile(r"[A-Za-z0-9.:\[\]_-]{1,100}")
HostName = tuple[str, int | None]  # lower-case name without a trailing dot, port or None


def split_host(text: str, scheme: str | None = None) -> HostName | None:
    """``Host``-style ``name[:port]`` (``[v6]:port`` too) -> (name, port), or None when it
    is not one. A port that is ``scheme``'s default counts as none."""
    text = text.strip().lower()
    if text.startswith("["):
        name, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    else:
        name, _, port = text.partition(":")
        if ":" in port:
            return None
    if port and not (port.isascii() and port.isdigit() and len(port) <= 5):
        return None
    number = int(port) if port else None
    if scheme is not None and number == _DEFAULT_PORTS.get(scheme):
        number = None
    return name.rstrip("."), number


def _listed(host: HostName, patterns: tuple[str, ...]) -> bool:
    name, port = host
    for pattern in patterns:
        if pattern == "*":
            return True
        wanted = split_host(pattern)
        if wanted is None or (wanted[1] is not None and wanted[1] != port):
            continue
        if wanted[0] == name or (wanted[0].startswith(".") and (
                name.endswith(wanted[0]) or name == wanted[0][1:])):
            return True
    return False


def _own_hosts(config: Config) -> tuple[str, ...]:
    """The names the configuration itself gives the simulator, as allowed-host patterns."""
    own = [*config.allowed_hosts]
    if config.public_url:
        own.append(urlsplit(config.public_url).netloc.rpartition("@")[2])
    if config.host not in ("", "0.0.0.0", "::"):
        own.append(config.host)
    return tuple(own)


@functools.lru_cache(maxsize=1024)
def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    """Whether an open /_sim/ answers a request with this ``Host`` header: names DNS
    rebinding cannot use (loopback names, IP addresses, single labels such as compose
    service names) and ``patterns`` (the configured names)."""
    split = split_host(host)
    if split is None:
        return False
    name = split[0]
    if not name:
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    if name == "localhost" or name.endswith(".localhost") or "." not in name:
        return True
    return _listed(split, patterns)


def origin_allowed(request: web.Request, origin: str, config: Config) -> bool:
    """A state-changing request's ``Origin``: the simulator's own (the ``Host`` it was
    sent to, the public URL's, port and scheme included) or an ``--allowed-hosts`` one."""
    if origin == "null":
        # Sandboxed frames send "null"; the Fetch standard has a same-origin form POST
        # from a no-referrer page (as ours are) send it too. Sec-Fetch-Site tells them
        # apart, and no page can set it.
        return request.headers.get("Sec-Fetch-Site") == "same-origin"
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in _DEFAULT_PORTS or parts.path or parts.query:
        return False
    sender = split_host(parts.netloc, parts.scheme)
    if sender is None:
        return False
    own = split_host(request.headers.get("Host", ""), parts.scheme)
    return sender == own or _public_origin(config) == (parts.scheme, sender) or _listed(
        sender, tuple(config.allowed_hosts))


def _public_origin(config: Config) -> tuple[str, HostName | None] | None:
    if not config.public_url:
        return None
    parts = urlsplit(config.public_url)
    return parts.scheme, split_host(parts.netloc.rpartition("@")[2], parts.scheme)


def browser_attack(request: web.Request, config: Config) -> Forbidden | None:
    """Why an open /_sim/ refuses this request (the Host and Origin rules), or None."""
    patterns = _own_hosts(config)
    host = request.headers.get("Host")
    if host and not host_allowed(host, patterns):
        shown = repr(host) if _SHOWN.fullmatch(host) else "this Host"
        return Forbidden(f"/_sim/ does not answer to {shown} without an admin token: use "
                         "localhost or an IP address, or name it with --allowed-hosts")
    origin = request.headers.get("Origin")
    if origin is not None and request.method not in SAFE_METHODS and not origin_allowed(
            request, origin, config):
        return Forbidden("cross-site request refused: /_sim/ changes state only for its "
                         "own pages and for clients that send no Origin")
    return None


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
