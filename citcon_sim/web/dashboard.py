"""The live dashboard at ``/_sim/``: every transaction, its timeline, and the controls.

The page is one static HTML shell (``templates/dashboard.html``) plus a small vanilla
script (``static/dashboard.js``) that reads the JSON control surface and acts through it;
nothing here changes state by itself. Three things are the dashboard's own:

- ``GET /_sim/dashboard/state`` — what the page shows in one call: transactions (all
  merchants or one), the merchants as token *hints* with an opaque key each, the virtual
  clock and the IPN counters. Tokens are never sent in clear: a merchant is picked by its
  key, or by typing its token once, which is answered with the key.
- ``GET /_sim/events`` — Server-Sent Events pushing exactly what changed, as the
  simulator's event bus announces it (no polling): ``txn`` for every transaction change
  (its id, kind, status, merchant key and the list ``row`` as ``state`` lists it),
  ``ipn`` for every notification recorded or attempted (the IPN counters, the
  ``notification`` and its transaction's ``row``), ``clock`` when virtual time jumps,
  ``reset`` when transactions are forgotten (``{}``, or ``{"merchant": key}`` for one
  merchant) or the state is replaced, ``request`` for every merchant API call journaled
  (its face, transaction id and merchant key; followed only while a page is open) and
  ``scenarios`` when scenarios are loaded or cleared. Each client has a bounded queue;
  on overflow it is emptied and a single ``resync`` takes its place, so a slow client
  costs a bounded amount of memory and still ends up current. At most
  ``--max-event-streams`` streams are open: a new one ends the oldest with a ``dropped``
  event and a long ``retry:``, so that page polls instead of reconnecting at once (and
  pushing the next one out); every event is encoded once and queued to each stream in
  O(1). A comment line goes out after 15 s (wall) of silence to keep proxies from
  closing the stream, and every stream ends when the app shuts down (``on_shutdown``),
  so shutdown never waits for them.
- ``GET /_sim/dashboard/requests`` (the request log: the journal filtered by merchant key
  and transaction id) and ``POST /_sim/dashboard/reset`` (one merchant, by key).
- ``GET /_sim`` redirects to ``/_sim/``; the assets are under ``/_sim/static/``.

What the page creates, refunds, captures and cancels goes to the merchant APIs
themselves (``/payment/*``, ``/chop/*``, ``/v1/*``) with the token the tester types, so
the journal shows real calls and every ledger rule applies; the faces and vendors it
offers come from the catalogue (``faces()``).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets
import threading
from collections.abc import AsyncIterator, Callable, KeysView
from typing import TYPE_CHECKING, Any

from aiohttp import web

from citcon_sim.domain.errors import BadRequest, NotFound
from citcon_sim.domain.events import (
    ClockMoved,
    IpnChanged,
    MerchantCalled,
    Reset,
    ScenarioLoaded,
    ScenariosCleared,
    StateRestored,
    TransactionChanged,
)
from citcon_sim.domain.ledger import Merchant, Transaction, wire_status
from citcon_sim.domain.redaction import token_digest, token_hint
from citcon_sim.domain.vendors import accepted_by
from citcon_sim.faces import FACES
from citcon_sim.faces.http import SIM, json_response, read_params, sse_message
from citcon_sim.faces.params import text as param_text
from citcon_sim.faces.routes import HTML, JSON, TEXT, Reply, Route, RouteTable
from citcon_sim.scenarios import shipped_scenarios
from citcon_sim.web import schemas as S
from citcon_sim.web.pages import STATIC_FILES, render

if TYPE_CHECKING:
    from citcon_sim.simulator import Simulator


HEARTBEAT_SECONDS = 15.0  # wall seconds of silence before a keep-alive comment
CLIENT_QUEUE_SIZE = 256
DEFAULT_ROWS, MAX_ROWS = 200, 1000
ASSETS = ("theme.css", "dashboard.css", "dashboard.js")
# The merchant token the page's "new payment" form starts with (README: Dashboard).
DEFAULT_TOKEN = "test-token"
FACE_LABELS = {"online": "Online API", "chop": "CHOP API", "upi": "UPI v1 API"}
# ISO 4217 exponents, so the page formats minor units exactly as the API holds them.


@functools.cache
def exponents() -> dict[str, int]:
    """ISO 4217 exponents for the page's amounts (iso4217 imported on first use)."""
    from iso4217 import Currency

    return {c.code: int(c.exponent) for c in Currency if c.exponent is not None}



RESYNC = sse_message("resync", {})
# How long a dropped page waits before its browser reconnects (it polls meanwhile).
DROPPED_RETRY_MS = 10 * 60 * 1000


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

    def end(self, last: bytes | None = None) -> None:
        """Close the stream, after ``last`` if given (nothing queued before it is sent)."""
        self._drain()
        if last is not None:
            self.queue.put_nowait(last)
        self.queue.put_nowait(None)

    def _drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()


class Hub:
    """Fans what changed out to the connected pages: a subscriber of the simulator's
    event bus (while the app runs), with no loop of its own."""

    def __init__(self, sim: Simulator, *, heartbeat: float = HEARTBEAT_SECONDS,
                 queue_size: int = CLIENT_QUEUE_SIZE, max_clients: int | None = None) -> None:
        self.sim = sim
        self.heartbeat = heartbeat
        self.queue_size = queue_size
        self.max_clients = max_clients or sim.config.max_event_streams
        # Insertion-ordered: the first is the oldest, the one a new stream pushes out.
        self._clients: dict[_Client, None] = {}
        self.dropped = 0
        self.closed = False
        # Merchant keys are an HMAC of the token under a per-process secret: stable while
        # the server runs, useless for guessing a token offline.
        self._secret = secrets.token_bytes(16)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        # Merchant calls are followed only while a page is open: the middleware publishes
        # MerchantCalled only while someone listens, so an unwatched call pays nothing.
        self._following = False
        self._stop_requests: Callable[[], None] | None = None

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
        while len(self._clients) >= self.max_clients:
            oldest = next(iter(self._clients))
            del self._clients[oldest]
            self.dropped += 1
            oldest.end(self._dropped_message())
        client = _Client(self.queue_size)
        self._clients[client] = None
        self._follow_requests()
        return client

    @property
    def clients(self) -> KeysView[_Client]:
        """The open streams, oldest first (a set-like view)."""
        return self._clients.keys()

    def _dropped_message(self) -> bytes:
        notice = sse_message("dropped", {
            "reason": f"more than {self.max_clients} live dashboards are open: this one "
            "was the oldest, and now refreshes by polling",
            "max_event_streams": self.max_clients})
        return f"retry: {DROPPED_RETRY_MS}\n".encode() + notice

    def disconnect(self, client: _Client) -> None:
        self._clients.pop(client, None)
        self._follow_requests()

    def _follow_requests(self) -> None:
        """Subscribed to merchant calls exactly while the app runs and a page listens."""
        wanted = self._following and bool(self._clients)
        if wanted and self._stop_requests is None:
            self._stop_requests = self.sim.events.subscribe(MerchantCalled, self.on_request)
        elif not wanted and self._stop_requests is not None:
            self._stop_requests()
            self._stop_requests = None

    def publish(self, event: str, data: Any) -> None:
        if not self.clients:
            return
        message = sse_message(event, data)
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            # Published from another thread (a test driving the simulator directly): the
            # queues belong to the loop.
            loop.call_soon_threadsafe(self._fan_out, message)
        else:
            self._fan_out(message)

    def _fan_out(self, message: bytes) -> None:
        for client in self._clients:
            client.put(message)

    async def close(self, app: web.Application | None = None) -> None:
        """``on_shutdown``: end every stream so shutdown does not wait for them."""
        self.closed = True
        for client in list(self.clients):
            client.end()

    # -- the event bus ------------------------------------------------------------------------
    # Handlers run inside domain calls: they only queue, and only while a page listens. A
    # failure is the bus's to record; the publisher (a payment) goes on.

    def subscribe(self) -> Callable[[], None]:
        """Follow the simulator's events; returns what undoes it."""
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        events = self.sim.events
        stops = [
            events.subscribe(TransactionChanged, self.on_transaction),
            events.subscribe(IpnChanged, self.on_ipn),
            events.subscribe(ClockMoved, self.on_clock),
            events.subscribe(Reset, self.on_reset),
            events.subscribe(StateRestored, self.on_restored),
            events.subscribe(ScenarioLoaded, self.on_scenarios),
            events.subscribe(ScenariosCleared, self.on_scenarios),
        ]

        self._following = True
        self._follow_requests()

        def unsubscribe() -> None:
            for stop in stops:
                stop()
            self._following = False
            self._follow_requests()

        return unsubscribe

    def on_transaction(self, event: TransactionChanged) -> None:
        if not self.clients:
            return
        txn = event.transaction
        self.publish("txn", {"id": txn.id, "kind": event.kind, "status": txn.status.value,
                             "merchant": self.key(txn.token), "row": _row(self, txn)})

    def on_ipn(self, event: IpnChanged) -> None:
        if not self.clients:
            return
        n = event.notification
        txn = self.sim.ledger.by_id.get(n.transaction_id)
        self.publish("ipn", {
            **self.sim.ipn.summary(),  # the counters, as the page's header shows them
            "notification": {"notify_id": n.notify_id, "transaction_id": n.transaction_id,
                             "kind": event.kind, "state": n.state,
                             "attempts": len(n.attempts)},
            "row": None if txn is None else _row(self, txn),
        })

    def on_clock(self, event: ClockMoved) -> None:
        if self.clients:
            self.publish("clock", clock_view(self.sim))

    def on_reset(self, event: Reset) -> None:
        if self.clients:
            self.publish("reset", {} if event.token is None
                         else {"merchant": self.key(event.token)})

    def on_restored(self, event: StateRestored) -> None:
        if self.clients:
            self.publish("reset", {})

    def on_request(self, event: MerchantCalled) -> None:
        """A merchant API call was answered (and journaled): the request log fetches what
        its filters show (the event names the merchant by key, never by token)."""
        if self.clients:
            self.publish("request", {
                "face": event.face, "transaction_id": event.transaction_id,
                "merchant": None if event.token is None else self.key(event.token)})

    def on_scenarios(self, event: ScenarioLoaded | ScenariosCleared) -> None:
        if self.clients:
            self.publish("scenarios", {
                "merchant": None if event.token is None else self.key(event.token)})


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
        "face": txn.face,
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
        "token_hint": token_hint(txn.token),
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
        {"key": hub.key(tok), "hint": token_hint(tok), "name": m.settings.name,
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
    return resp


def _asset_version() -> str:
    return hashlib.sha256(b"".join(STATIC_FILES[name] for name in ASSETS)).hexdigest()[:10]


async def page(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    base = sim.base_url(request.host)
    config = {"base_url": base, "exponents": exponents(), "faces": faces(),
              "default_token": DEFAULT_TOKEN, "scenarios": sorted(shipped_scenarios())}
    return render("dashboard.html", base_url=base, config=config, version=_asset_version(),
                  clock=clock_view(sim))


def faces() -> list[dict[str, Any]]:
    """The APIs the page can create payments on, each with the methods the catalogue says
    it accepts (``accepted_by``): the page has no list of its own."""
    return [
        {"name": face.name, "label": FACE_LABELS.get(face.name, face.name),
         "vendors": [
             {"code": v.code, "name": v.name, "colour": v.colour, "currency": v.currency,
              "delayed_capture": v.delayed_capture, "multi_capture": v.multi_capture,
              "journey": v.journey.value}
             for v in accepted_by(face.name).values()]}
        for face in FACES
    ]


# -- what the page drives (its own calls: merchants by key, never by token) ---------------


def _merchant_token(hub: Hub, key: str) -> str:
    merchant = hub.merchant_by_key(key)
    if merchant is None:
        raise NotFound("no merchant with that key (reset already, or never used)")
    return merchant.token


async def requests_log(request: web.Request) -> web.Response:
    """The request journal as the page's request log shows it: ``merchant=<key>`` and
    ``transaction_id=`` filter; bodies with secrets redacted (the journal's rules)."""
    sim, hub = request.app[SIM], request.app[HUB]
    q = request.query
    try:
        limit = min(MAX_ROWS, max(1, int(q.get("limit", DEFAULT_ROWS))))
    except ValueError:
        raise BadRequest("limit must be a whole number") from None
    key, txn_id = q.get("merchant", "").strip(), q.get("transaction_id", "").strip()
    token = _merchant_token(hub, key) if key else None
    entries = sim.journal.query(token=token, transaction_id=txn_id or None, limit=limit)
    # The journal keeps a digest of each token: the merchants' keys by that digest.
    keys = {token_digest(tok): hub.key(tok) for tok in sim.ledger.merchants}
    rows = [{**e.as_dict(), "merchant": keys.get(e.token_digest or "")} for e in entries]
    resp = json_response({"requests": rows, "enabled": sim.journal.enabled})
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def reset_merchant(request: web.Request) -> web.Response:
    """``POST /_sim/reset`` for one merchant picked by its key (the page has no tokens)."""
    sim, hub = request.app[SIM], request.app[HUB]
    params = await read_params(request)
    key = param_text(params, "merchant")
    if not key:
        raise BadRequest("merchant is required (a key from /_sim/dashboard/state)")
    token = _merchant_token(hub, key)
    sim.reset(token)
    return json_response({"reset": True, "scope": "merchant", "merchant": key})


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
        await resp.write(b"retry: 2000\n\n" + sse_message("hello", clock_view(request.app[SIM])))
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
    hub = app[HUB]
    unsubscribe = hub.subscribe()
    yield
    await hub.close()
    unsubscribe()


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
          "`request`, `scenarios`, `resync` events; `dropped` (then the end) when a newer stream "
          "pushes this one out (`--max-event-streams`)."),
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
    Route("GET", "/dashboard/requests", requests_log, "dashboardRequests",
          "The request journal for the dashboard's request log",
          {200: Reply("Merchant API calls, newest first, with request and answer bodies "
                      "(secrets redacted) and each call's merchant key.", {JSON: S.obj({
                          "requests": {"type": "array", "items": {"type": "object"}},
                          "enabled": S.BOOL})})},
          errors=(400, 404),
          parameters=(S.query("merchant", S.STR, "A merchant key."),
                      S.query("transaction_id", S.STR),
                      S.query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}))),
    Route("POST", "/dashboard/reset", reset_merchant, "dashboardResetMerchant",
          "Forget one merchant, picked by its dashboard key",
          {200: Reply("Done.", {JSON: S.obj({"reset": {"const": True},
                                             "scope": {"const": "merchant"},
                                             "merchant": S.STR})})},
          errors=(400, 404, 413),
          body=S.form({"merchant": S.text("A merchant key from the dashboard's state.")})),
], prefix="/_sim", tags=("control",), security=S.ADMIN, replies={401: S.ADMIN_REQUIRED},
    static={"/static/": STATIC_FILES})


def add_routes(app: web.Application, control: web.Application) -> None:
    """Register the dashboard on the ``control`` (``/_sim``) sub-application, its hub on
    both (handlers read their own application's); ``create_app`` calls this once."""
    hub = app[HUB] = control[HUB] = Hub(app[SIM])
    ROUTES.register(control)
    app.on_shutdown.append(hub.close)
    app.cleanup_ctx.append(_lifetime)
