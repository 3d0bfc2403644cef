"""The live dashboard at ``/_sim/``: every transaction, its timeline, and the controls.

The page is one static HTML shell (``templates/dashboard.html``) plus a small vanilla
script (``static/dashboard.js``) that reads the JSON control surface and acts through it;
nothing here changes state by itself. Three things are the dashboard's own:

- ``GET /_sim/dashboard/state`` — what the page shows in one call: transactions (all
  merchants or one), the merchants as token *hints* with an opaque key each, the virtual
  clock and the IPN counters. Tokens are never sent in clear: a merchant is picked by its
  key, or by typing its token once, which is answered with the key.
- ``GET /_sim/events`` — Server-Sent Events telling open pages that something changed:
  ``txn`` for every ledger event (a synchronous ledger listener), ``clock`` when virtual
  time jumps, ``ipn`` when a delivery attempt finishes, ``reset`` when transactions are
  forgotten (a light watcher, only while a page is connected). Each client has a bounded
  queue; on overflow it is emptied and a single ``resync`` takes its place, so a slow
  client costs a bounded amount of memory and still ends up current. A comment line goes
  out after 15 s (wall) of silence to keep proxies from closing the stream, and every
  stream ends when the app shuts down (``on_shutdown``), so shutdown never waits for them.
- ``GET /_sim`` redirects to ``/_sim/``; the assets are under ``/_sim/static/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from citcon_sim.domain.ledger import LedgerEvent, Merchant, Transaction, wire_status
from citcon_sim.faces.http import SIM, json_response
from citcon_sim.faces.online.wire import redact
from citcon_sim.faces.routes import HTML, JSON, TEXT, Reply, Route, RouteTable
from citcon_sim.web import schemas as S
from citcon_sim.web.pages import STATIC_DIR, render

if TYPE_CHECKING:
    from citcon_sim.simulator import Simulator

log = logging.getLogger("citcon_sim.dashboard")

HEARTBEAT_SECONDS = 15.0  # wall seconds of silence before a keep-alive comment
WATCH_SECONDS = 0.25  # how often the watcher looks at the clock and the IPN counters
CLIENT_QUEUE_SIZE = 256
DEFAULT_ROWS, MAX_ROWS = 200, 1000
ASSETS = ("dashboard.css", "dashboard.js")
# ISO 4217 exponents, so the page formats minor units exactly as the API holds them.


@functools.cache
def exponents() -> dict[str, int]:
    """ISO 4217 exponents for the page's amounts (iso4217 imported on first use)."""
    from iso4217 import Currency

    return {c.code: int(c.exponent) for c in Currency if c.exponent is not None}


def _sse(event: str, data: Any) -> bytes:
    # json.dumps never emits a raw newline, so one data: line always holds the message.
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


RESYNC = _sse("resync", {})


class _Client:
    """One connected page: a bounded queue of encoded messages (``None`` ends it)."""

    __slots__ = ("queue", "overflows")

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(size)
        self.overflows = 0

    def put(self, message: bytes) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # Coalesce: everything queued is superseded by one "fetch it all again".
            self.overflows += 1
            self._drain()
            self.queue.put_nowait(RESYNC)

    def end(self) -> None:
        self._drain()
        self.queue.put_nowait(None)

    def _drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()


class Hub:
    """Fans change notices out to the connected pages."""

    def __init__(self, sim: Simulator, *, heartbeat: float = HEARTBEAT_SECONDS,
                 queue_size: int = CLIENT_QUEUE_SIZE, watch: float = WATCH_SECONDS) -> None:
        self.sim = sim
        self.heartbeat = heartbeat
        self.queue_size = queue_size
        self.watch_interval = watch
        self.clients: set[_Client] = set()
        self.closed = False
        # Merchant keys are an HMAC of the token under a per-process secret: stable while
        # the server runs, useless for guessing a token offline.
        self._secret = secrets.token_bytes(16)
        self._wakeup = asyncio.Event()
        self._baseline()

    # -- merchants ------------------------------------------------------------------------

    def key(self, token: str) -> str:
        raw = token.encode("utf-8", "surrogateescape")  # as the header decoder left it
        return hmac.new(self._secret, raw, hashlib.sha256).hexdigest()[:12]

    def merchant_by_key(self, key: str) -> Merchant | None:
        if not key.isascii():  # keys are hex; compare_digest refuses non-ASCII str
            return None
        for token, merchant in self.sim.ledger.merchants.items():
            if hmac.compare_digest(self.key(token), key):
                return merchant
        return None

    # -- clients --------------------------------------------------------------------------

    def connect(self) -> _Client:
        if not self.clients:
            self._baseline()  # what the first page sees is what later changes compare to
        client = _Client(self.queue_size)
        self.clients.add(client)
        self._wakeup.set()
        return client

    def disconnect(self, client: _Client) -> None:
        self.clients.discard(client)

    def publish(self, event: str, data: Any) -> None:
        if not self.clients:
            return
        message = _sse(event, data)
        for client in self.clients:
            client.put(message)

    async def close(self, app: web.Application | None = None) -> None:
        """``on_shutdown``: end every stream so shutdown does not wait for them."""
        self.closed = True
        for client in list(self.clients):
            client.end()
        self._wakeup.set()

    # -- sources ----------------------------------------------------------------------------

    def on_ledger(self, event: LedgerEvent) -> None:
        """Ledger listener: runs inside domain calls, so it only queues, and never raises."""
        if not self.clients:
            return
        try:
            txn = event.transaction
            self._seen_ledger = self._ledger_part()  # announced here, not by the watcher
            self.publish("txn", {"id": txn.id, "kind": event.kind, "status": txn.status.value,
                                 "merchant": self.key(txn.token)})
        except Exception:  # a dashboard problem must never break a payment
            log.exception("dashboard listener failed")

    def _ledger_part(self) -> tuple[Any, ...]:
        ledger = self.sim.ledger
        # The newest id too: a restored snapshot may hold as many transactions as before.
        return len(ledger.by_id), len(ledger.merchants), next(reversed(ledger.by_id), None)

    def _ipn_part(self) -> tuple[Any, ...]:
        ipn = self.sim.ipn
        return *ipn.stats.values(), len(ipn.notifications)

    def _baseline(self) -> None:
        clock = self.sim.clock
        self._seen_ledger, self._seen_ipn = self._ledger_part(), self._ipn_part()
        self._virtual, self._wall, self._frozen = clock.time(), time.monotonic(), clock.frozen

    def check(self) -> None:
        """Publish what changed since the last look (the watcher calls this)."""
        clock = self.sim.clock
        virtual, wall = clock.time(), time.monotonic()
        expected = self._virtual + (0.0 if clock.frozen else wall - self._wall)
        if clock.frozen != self._frozen or abs(virtual - expected) > 0.5:
            self.publish("clock", clock_view(self.sim))
        self._virtual, self._wall, self._frozen = virtual, wall, clock.frozen
        ledger, ipn = self._ledger_part(), self._ipn_part()
        if ledger != self._seen_ledger:  # forgotten or replaced without a ledger event
            self._seen_ledger = ledger
            self.publish("reset", {})
        if ipn != self._seen_ipn:
            self._seen_ipn = ipn
            self.publish("ipn", self.sim.ipn.summary())

    async def watch(self) -> None:
        """Notice what the ledger does not announce: clock jumps, IPN attempts, resets.

        Looks only while a page is connected; each look is a few attribute reads.
        """
        self._baseline()
        while not self.closed:
            if not self.clients:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await asyncio.sleep(self.watch_interval)
            try:
                self.check()
            except Exception:
                log.exception("dashboard watcher failed")


HUB: web.AppKey[Hub] = web.AppKey("citcon_sim.dashboard", Hub)


# -- views ---------------------------------------------------------------------------------


def clock_view(sim: Simulator) -> dict[str, Any]:
    now = sim.clock.time()
    return {
        "time": sim.clock.format(now),
        "epoch": now,
        "frozen": sim.clock.frozen,
        "timezone": sim.config.timezone,
        "pending_jobs": len(sim.scheduler.pending()),
    }


def _row(hub: Hub, txn: Transaction) -> dict[str, Any]:
    """A list row: what the table shows, no more (the detail comes from the control API)."""
    sim = hub.sim
    fmt = sim.clock.format
    notes = sim.ipn.for_transaction(txn.id)
    latest = notes[0] if notes else None
    merchant = sim.ledger.merchants.get(txn.token)
    return {
        "id": txn.id,
        "status": txn.status.value,
        "wire_status": wire_status(txn),
        "vendor": txn.vendor.code,
        "vendor_name": txn.vendor.name,
        "vendor_colour": txn.vendor.colour,
        "method": txn.method,
        "amount": txn.amount,
        "currency": txn.currency,
        "trans_amount": txn.trans_amount,
        "trans_currency": txn.trans_currency,
        "refunded_amount": txn.refunded_amount,
        "captured_amount": txn.captured_amount,
        "auto_capture": txn.auto_capture,
        "reference": txn.reference,
        "created_time": fmt(txn.created_at),
        "updated_time": fmt(txn.updated_at),
        "expiry_time": fmt(txn.expires_at),
        "token_hint": redact(txn.token),
        "merchant": hub.key(txn.token),
        "merchant_name": merchant.settings.name if merchant is not None else "",
        "ipn": None if latest is None else
        {"state": latest.state, "attempts": len(latest.attempts), "count": len(notes)},
    }


async def state(request: web.Request) -> web.Response:
    """Everything the page shows, in one call. ``merchant=<key>`` or ``token=`` filter."""
    sim, hub = request.app[SIM], request.app[HUB]
    q = request.query
    try:
        limit = min(MAX_ROWS, max(1, int(q.get("limit", DEFAULT_ROWS))))
    except ValueError:
        limit = DEFAULT_ROWS
    selected: Merchant | None = None
    problem = None
    token, key = q.get("token", "").strip(), q.get("merchant", "").strip()
    if token:
        selected = sim.ledger.merchants.get(token)
        problem = None if selected else "No merchant has used that token yet."
    elif key:
        selected = hub.merchant_by_key(key)
        problem = None if selected else "That merchant has no transactions (any more)."
    txns = [] if problem else sim.ledger.transactions(selected, limit=limit)
    merchants = [
        {"key": hub.key(tok), "hint": redact(tok), "name": m.settings.name,
         "transactions": len(m.transactions)}
        for tok, m in sim.ledger.merchants.items()
    ]
    if selected is not None:
        total = len(selected.transactions)
    else:
        total = 0 if problem else len(sim.ledger.by_id)
    body = {
        "base_url": sim.base_url(request.host),
        "clock": clock_view(sim),
        "ipn": sim.ipn.summary(),
        "merchants": merchants,
        "merchant": hub.key(selected.token) if selected is not None else None,
        "merchant_error": problem,
        "total": total,
        "all_total": len(sim.ledger.by_id),
        "transactions": [_row(hub, t) for t in txns],
    }
    resp = json_response(body)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def _asset_version() -> str:
    stamp = "".join(str((STATIC_DIR / name).stat().st_mtime_ns) for name in ASSETS)
    return hashlib.sha256(stamp.encode()).hexdigest()[:10]


async def page(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    base = sim.base_url(request.host)
    config = {"base_url": base, "exponents": exponents()}
    return render("dashboard.html", base_url=base, config=config, version=_asset_version(),
                  clock=clock_view(sim))


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/_sim/")


async def events(request: web.Request) -> web.StreamResponse:
    """``text/event-stream`` of change notices; the page refetches what it shows."""
    hub = request.app[HUB]
    if hub.closed:
        raise web.HTTPServiceUnavailable(text="shutting down")
    resp = web.StreamResponse(headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        "X-Content-Type-Options": "nosniff",  # prepared here, before the middleware sees it
    })
    client = hub.connect()  # before the headers go out: a reader sees every later change
    try:
        await resp.prepare(request)
        await resp.write(b"retry: 2000\n\n" + _sse("hello", clock_view(request.app[SIM])))
        while True:
            try:
                message = await asyncio.wait_for(client.queue.get(), hub.heartbeat)
            except TimeoutError:
                message = b": heartbeat\n\n"
            if message is None:
                break
            await resp.write(message)
    except ConnectionError:
        pass  # the page went away
    finally:
        hub.disconnect(client)
    return resp


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    hub, sim = app[HUB], app[SIM]
    sim.ledger.listeners.append(hub.on_ledger)
    task = asyncio.create_task(hub.watch())
    yield
    await hub.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(ValueError):
        sim.ledger.listeners.remove(hub.on_ledger)


_HTML = {HTML: S.STR}

# On the /_sim sub-application.
ROUTES = RouteTable([
    # "" is /_sim itself: the sub-application answers it (and its 405s) like its paths.
    Route("GET", "", redirect, "dashboardRedirect", "Redirects to the dashboard",
          {302: Reply("To `/_sim/`.", {TEXT: S.STR}, headers={"Location": {"schema": S.STR}})}),
    Route("GET", "/", page, "dashboard", "The live dashboard (HTML)",
          {200: Reply("The page.", _HTML)}),
    Route("GET", "/events", events, "dashboardEvents",
          "Server-Sent Events telling open dashboards that something changed",
          {200: Reply("The stream.", {"text/event-stream": S.STR}),
           503: Reply("Shutting down.", {TEXT: S.STR})},
          description="A stream that stays open: `hello`, `txn`, `clock`, `ipn`, `reset`, "
          "`resync` events."),
    Route("GET", "/dashboard/state", state, "dashboardState",
          "What the dashboard shows, in one call",
          {200: Reply("Transactions, merchants (hints), clock, IPN counters.", {JSON: {
              "type": "object", "properties": {
                  "transactions": {"type": "array", "items": {"type": "object"}},
                  "merchants": {"type": "array", "items": {"type": "object"}},
                  "total": S.INT, "all_total": S.INT}}})},
          parameters=(S.query("merchant", S.STR, "A merchant key."),
                      S.query("token", S.STR, "A merchant token."),
                      S.query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}))),
], prefix="/_sim", tags=("control",), security=S.ADMIN, replies={401: S.ADMIN_REQUIRED},
    static={"/static/": STATIC_DIR})


def add_routes(app: web.Application, control: web.Application) -> None:
    """Register the dashboard on the ``control`` (``/_sim``) sub-application, its hub on
    both (handlers read their own application's); ``create_app`` calls this once."""
    hub = app[HUB] = control[HUB] = Hub(app[SIM])
    ROUTES.register(control)
    app.on_shutdown.append(hub.close)
    app.cleanup_ctx.append(_lifetime)
