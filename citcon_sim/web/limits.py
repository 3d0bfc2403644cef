"""Limits for a simulator many clients share: slow requests time out, connections are
capped, and a repeated log line is written a bounded number of times.

- **Request heads** (``--idle-timeout``): aiohttp's own keep-alive timer, which runs from
  a connection's start and from each answer until a complete request head has arrived,
  so a client that connects and sends nothing, or dribbles a header, is closed.
- **Request bodies** (``--body-timeout``, :func:`body_deadline`, armed by the app's
  ``errors`` middleware): a body still arriving after that many seconds makes the reader
  raise :class:`RequestTimeout`, answered 408 in the API's own error shape; the
  connection is then closed. aiohttp has no body timeout of its own.
- **Connections** (``--max-connections``, :class:`ConnectionCap`): past the cap the
  longest-idle connection (no request in progress: a half-open one, an idle keep-alive
  one) is closed to make room; when every one is busy, the new one is closed instead.
- **Log lines** (``--log-repeats``, :class:`RepeatLimit`): each kind of line (logger,
  level, message template) is written at most N times a minute; the next one written
  says how many were left out.

The first and third need the server runner (:class:`Runner`: ``citcon-sim serve`` and
``SimulatorServer``); the body timeout and the log limit are the application's, so they
hold under any runner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from citcon_sim.config import Config
from citcon_sim.domain.errors import CitconError

log = logging.getLogger("citcon_sim")

# -- request bodies ----------------------------------------------------------------------------


class RequestTimeout(CitconError, TimeoutError):
    """A request body that did not arrive in time. A TimeoutError too: after the answer,
    aiohttp drains what is left of a body and, on a timeout, closes the connection."""

    code, message, http_status = 4100, "Bad request", 408


class BodyDeadline:
    """Fails the body reader of ``request`` if its body is not in after ``seconds``."""

    __slots__ = ("_request", "_seconds", "_handle", "expired")

    def __init__(self, request: web.Request, seconds: float) -> None:
        self._request, self._seconds = request, seconds
        self.expired = False
        self._handle = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _expire(self) -> None:
        content = self._request.content
        if content.is_eof():
            return
        if getattr(self._request.protocol, "_reading_paused", False):
            # The server stopped reading (the handler has not read yet): not the
            # client's delay. Look again later.
            self._handle = asyncio.get_running_loop().call_later(self._seconds, self._expire)
            return
        self.expired = True
        content.set_exception(RequestTimeout(
            f"the request body did not arrive within {self._seconds:g} s"))

    def cancel(self) -> None:
        self._handle.cancel()


def body_deadline(request: web.Request, seconds: float) -> BodyDeadline | None:
    """A deadline for a body still arriving; None (nearly always: small bodies come with
    their head) when it is all in already."""
    return None if request.content.is_eof() else BodyDeadline(request, seconds)


# -- connections -------------------------------------------------------------------------------


def _busy(handler: RequestHandler) -> bool:
    # aiohttp keeps no public "handling a request" flag: these are its own.
    return bool(getattr(handler, "_request_in_progress", False)
                or getattr(handler, "_messages", None))


class ConnectionCap:
    """Holds a server to ``limit`` open connections. Installed on the ``aiohttp`` Server
    instance's ``connection_made``/``connection_lost``: the one place every connection
    passes, and aiohttp builds the Server itself."""

    def __init__(self, server: web.Server, limit: int) -> None:
        self.limit = limit
        self.evicted = 0  # idle connections closed to make room
        self.refused = 0  # new connections closed because every one was busy
        self._open: dict[RequestHandler, None] = {}  # oldest first
        self._made, self._lost = server.connection_made, server.connection_lost
        server.connection_made = self.connection_made  # type: ignore[method-assign]
        server.connection_lost = self.connection_lost  # type: ignore[method-assign]

    @property
    def open(self) -> int:
        return len(self._open)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        self._made(handler, transport)
        self._open[handler] = None
        if len(self._open) <= self.limit:
            return
        victim = next((h for h in self._open if h is not handler and not _busy(h)), None)
        if victim is None:
            victim = handler
            self.refused += 1
        else:
            self.evicted += 1
        del self._open[victim]
        victim.force_close()

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self._open.pop(handler, None)
        self._lost(handler, exc)


class Runner(web.AppRunner):
    """aiohttp's runner with ``config``'s idle timeout and connection cap."""

    def __init__(self, app: web.Application, config: Config, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=config.idle_timeout, **kwargs)
        self.max_connections = config.max_connections
        self.cap: ConnectionCap | None = None

    async def setup(self) -> None:
        await super().setup()
        assert self.server is not None
        self.cap = ConnectionCap(self.server, usable_connections(self.max_connections))


# File descriptors kept for everything else: listening sockets, IPN connections, --state.
SPARE_FDS = 64


def usable_connections(wanted: int) -> int:
    """``wanted``, or fewer when the process may not open that many files: the cap only
    works while an accepted connection can still be accepted (and then closed)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return wanted
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or wanted <= soft - SPARE_FDS:
        return wanted
    usable = max(1, soft - SPARE_FDS)
    log.warning("--max-connections %d is more than this process may open files for "
                "(ulimit -n %d): capping connections at %d", wanted, soft, usable)
    return usable


# -- log lines ---------------------------------------------------------------------------------

# Loggers whose repeats are limited (their records do not pass through a parent logger's
# filters, so each is named). The access log is left alone: one line per request is what
# --access-log asks for.
LIMITED_LOGGERS = ("citcon_sim", "citcon_sim.ipn", "citcon_sim.state", "citcon_sim.events",
                   "citcon_sim.testing", "aiohttp.server", "aiohttp.web")
_COUNTED = "_citcon_sim_counted"


class RepeatLimit(logging.Filter):
    """At most ``limit`` records of one kind (logger, level, message template) per
    ``window`` seconds; the first one after a window in which some were dropped says how
    many. ``limit`` 0: no limit."""

    MAX_KINDS = 1000  # kinds tracked at once; past it, finished windows are forgotten

    def __init__(self, limit: int, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.limit, self.window, self.clock = limit, window, clock
        self._kinds: dict[tuple[str, int, str], list[float]] = {}  # [start, count, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.limit <= 0 or record.name == "aiohttp.access" or getattr(record, _COUNTED, False):
            return True
        setattr(record, _COUNTED, True)  # on a logger and a handler both: counted once
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        seen = self._kinds.get(key)
        if seen is None or now - seen[0] >= self.window:
            dropped = int(seen[2]) if seen is not None else 0
            if seen is None and len(self._kinds) >= self.MAX_KINDS:
                self._forget(now)
            self._kinds[key] = [now, 1, 0]
            if dropped:
                record.msg = (f"{record.getMessage()} ({dropped} more like this were not "
                              f"logged in the previous {self.window:g} s)")
                record.args = ()
            return True
        seen[1] += 1
        if seen[1] <= self.limit:
            return True
        seen[2] += 1
        return False

    def reset(self) -> None:
        """Forget every count (a new application starts afresh: one test's flood does not
        silence the next test's lines)."""
        self._kinds.clear()

    def _forget(self, now: float) -> None:
        self._kinds = {k: v for k, v in self._kinds.items() if now - v[0] < self.window}


def limit_repeats(limit: int, handlers: bool = False) -> None:
    """Put a :class:`RepeatLimit` on :data:`LIMITED_LOGGERS` (once; ``limit`` updates the
    one there and its counts start again), and with ``handlers`` on the root logger's
    handlers too (every logger, asyncio's included). Only ``citcon-sim serve`` calls it:
    a library must not change its host process's logging."""
    targets: list[logging.Filterer] = [logging.getLogger(n) for n in LIMITED_LOGGERS]
    if handlers:
        targets += logging.getLogger().handlers
    shared = next((f for t in targets for f in t.filters if isinstance(f, RepeatLimit)),
                  None) or RepeatLimit(limit)
    shared.limit = limit
    shared.reset()
    for target in targets:
        if shared not in target.filters:
            # First: it counts by the message template, before a filter rewrites the
            # message (ScrubParseErrors puts the client's address into it).
            target.filters.insert(0, shared)
