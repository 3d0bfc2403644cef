"""IPN delivery: signed notifications POSTed to the merchant's ``ipn_url``.

What notifies. A ledger ``paid`` event (auto-capture payment succeeded) and the *first*
``captured`` event of a delayed-capture payment, i.e. the moment the transaction's status
becomes ``success``. ``authorized`` does not notify: the documentation says the IPN is sent
"when the payment has a successful payment status", ``status`` only takes ``success`` /
``fail``, and the capture answer's ``notify_result`` is where Citcon reports the
notification for delayed-capture payments. Later captures of a multi-capture
authorisation do not notify again (the status does not change).

What is posted. Whatever the encoder of the API face that created the transaction
builds from :class:`IpnFacts` (the Online API's: ``faces/online/ipn.py``); the simulator
registers one encoder per face. A notification's form is built once, so retries and
redeliveries repeat it byte for byte, ``notify_id`` and ``sign`` included.

Delivery. Ledger events are published synchronously inside domain calls, so the handler
only records the notification and queues a send on a :class:`FairQueue`; ``workers`` tasks
sharing ONE ``aiohttp.ClientSession`` do the POSTs. The queue keeps one FIFO lane per
merchant within one per endpoint (scheme, host and port of the ``ipn_url``) and serves
endpoints round robin, then each endpoint's merchants round robin; an endpoint has at most
``per_endpoint`` POSTs in flight. So a merchant endpoint that hangs holds its own slots
(each for up to ``timeout`` wall seconds) and never the other merchants' turn, as long as
fewer than ``workers / per_endpoint`` endpoints hang at once.

Any 2xx acknowledges. Anything else (non-2xx including redirects, refused connection,
per-attempt wall timeout) is retried after the next delay of :data:`DEFAULT_BACKOFF`, on
the VIRTUAL clock via the scheduler, so advancing the clock makes due retries fire; after
the last delay the notification is ``failed``: only ever after a real POST.

The backlog limit (``queue_size``) is a local matter, not a delivery outcome: a send
queued beyond it is still held in its lane and sent in turn, the overflow is logged once
per crossing and counted in ``stats["queue_full"]``, and it is never an attempt, a retry
or a failure. (Every notification is kept until it is finished anyway, so refusing its
send would save no memory and only lose or delay an IPN — on a frozen clock, for ever.)

Scenario ``ipn:`` scripts (docs/scenarios.md) are applied here: delay, never, duplicates,
out_of_order, bad_signature, tamper_amount, status (the encoder applies the form faults).

Every change of a notification is published on the simulator's event bus as an
:class:`~citcon_sim.domain.events.IpnChanged` (the dashboard, ``--state`` and the test
helpers' waits subscribe); a worker's unexpected failure as an ``UnexpectedError``.

Listeners (``citcon-sim listen``, :class:`Listeners`). While a listener that wants a
merchant's IPNs is connected, each attempt of that merchant's notifications is handed to
it instead of being POSTed: the listener (a CLI on the developer's machine, which the
simulator may not be able to reach) posts the same form to its own endpoint and reports
the answer, which is recorded as the attempt (``via`` names the listener) and decides
retries exactly as a direct POST's answer would. A listener *replaces* direct delivery
(Citcon sends one notification to one ``ipn_url``: two deliveries of one attempt could
not both decide its outcome). The hand-off happens inside a worker's turn, holding the
endpoint's slot, so the queue's fairness and bounds are unchanged. A listener that goes
away gives back its attempts still waiting, which are then POSTed directly; one that does
not report in time is a timed-out attempt.

The worker and session live in an app ``cleanup_ctx`` (:meth:`IpnSender.start` /
:meth:`IpnSender.close`); recording works without them, sending waits for them.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import secrets
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import aiohttp
import msgspec

from citcon_sim.domain.clock import Scheduler, VirtualClock
from citcon_sim.domain.events import EventBus, IpnChanged, TransactionChanged, UnexpectedError
from citcon_sim.domain.ledger import Capture, Ledger, Transaction
from citcon_sim.domain.merchants import MerchantSettings
from citcon_sim.domain.netrules import Allowlist, target
from citcon_sim.domain.scripts import IpnScript

log = logging.getLogger("citcon_sim.ipn")

# Virtual seconds before retry n (15 s, 1 min, 5 min, 15 min, 1 h, 3 h, 6 h), then give up:
# eight attempts over about 10.3 hours.
DEFAULT_BACKOFF: tuple[float, ...] = (15, 60, 300, 900, 3600, 3 * 3600, 6 * 3600)
BODY_START = 200  # characters of the reply body kept per attempt
USER_AGENT = "citcon-sim IPN"

Encoding = Literal["form", "json"]  # how a notification's fields are posted

# Notification states.
PENDING = "pending"  # waiting for its first attempt (queued, or a scripted delay)
RETRYING = "retrying"  # failed at least once, a retry is scheduled
DELIVERED = "delivered"
FAILED = "failed"  # the backoff schedule is exhausted
NOT_SENT = "not_sent"  # no ipn_url on the transaction: nothing was due
SUPPRESSED = "suppressed"  # a scenario said never

TERMINAL = frozenset({DELIVERED, FAILED, NOT_SENT, SUPPRESSED})


class IpnFacts(msgspec.Struct, frozen=True):
    """What a notification says, before any API face's encoding of it."""

    transaction: Transaction
    notify_id: str
    status: str  # success, or a scenario's status
    time: str  # when it happened (paid or captured), as the clock formats it
    amount: int  # settlement side: the captured amount for a capture notification
    trans_amount: int
    partner_id: str


class IpnEncoder(Protocol):
    """One API face's IPN format (the sender knows none)."""

    def encoding(self, merchant: MerchantSettings) -> Encoding:
        """How this merchant's notifications are posted: ``form`` or ``json``."""
        ...

    def encode(self, facts: IpnFacts, token: str, script: IpnScript | None) -> dict[str, Any]:
        """The signed form to post; ``script``'s form faults (bad_signature,
        tamper_amount) applied."""
        ...

    def restate(self, form: Mapping[str, Any], token: str, *, status: str, time: str,
                notify_id: str) -> dict[str, Any]:
        """``form`` told again with another status, time and ``notify_id``, correctly
        signed: a scenario's ``out_of_order`` stale notification."""
        ...


class PostResult(msgspec.Struct, frozen=True):
    """One HTTP POST: what came back, or why nothing did."""

    status: int | None
    body: str
    error: str | None
    latency_ms: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


async def post_form(
    session: aiohttp.ClientSession, url: str, form: Mapping[str, Any], timeout: float,
    encoding: Encoding = "form",
) -> PostResult:
    """POST ``form`` once, form-urlencoded or as a JSON object; never raises for network
    trouble (it is the result)."""
    started = time.perf_counter()

    def took() -> float:
        return round((time.perf_counter() - started) * 1000, 1)

    try:
        fields = dict(form)
        async with session.post(
            url,
            data=None if encoding == "json" else fields,
            json=fields if encoding == "json" else None,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,  # a redirect is not an acknowledgement
        ) as resp:
            raw = await _read_start(resp.content, BODY_START * 4)
            body = raw.decode(resp.charset or "utf-8", errors="replace")[:BODY_START]
            return PostResult(resp.status, body, None, took())
    except TimeoutError:
        return PostResult(None, "", f"timeout after {timeout:g} s", took())
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return PostResult(None, "", f"{type(exc).__name__}: {exc}", took())


# post_form's signature: (session, url, fields, timeout seconds, encoding) -> the result.
Poster = Callable[[aiohttp.ClientSession, str, Mapping[str, Any], float, Encoding],
                  Awaitable[PostResult]]


async def _read_start(stream: aiohttp.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class Attempt(msgspec.Struct):
    """One delivery attempt of an IPN: when, how it ended, how long it took."""

    number: int
    trigger: str  # first | retry | redeliver | duplicate
    at: float  # virtual time the attempt started
    status: int | None = None
    error: str | None = None
    body: str = ""
    latency_ms: float | None = None
    sent: bool = True  # False only in logs saved by older versions (a full queue)
    via: str | None = None  # a listener's report (``listener <id> -> <url>``), not a POST

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Notification(msgspec.Struct):
    """One IPN (one ``notify_id``) and its delivery history."""

    notify_id: str
    transaction_id: str
    token: str
    event: str  # paid | captured | stale (scenario out_of_order)
    url: str | None
    form: dict[str, Any]  # the fields posted: strings in a form, also numbers in JSON
    created_at: float
    state: str = PENDING
    encoding: Encoding = "form"
    script: IpnScript | None = None
    attempts: list[Attempt] = msgspec.field(default_factory=list)
    retries_used: int = 0
    next_attempt_at: float | None = None
    retry_job: Any = None  # the scheduler job of the pending retry, to cancel it
    follow_ups_sent: bool = False


class IpnExport(msgspec.Struct, frozen=True):
    """An IPN log: its notifications, oldest first (:meth:`IpnSender.export`)."""

    notifications: list[Notification] = msgspec.field(default_factory=list)


class _Send(msgspec.Struct):
    """A queued delivery: which notification, what triggered it, who waits for it, and
    the lane it waits in (its endpoint, then its merchant)."""

    notify_id: str
    trigger: str
    waiter: asyncio.Future[Attempt] | None = None
    endpoint: str = ""
    merchant: str = ""


def endpoint_of(url: str) -> str:
    """The endpoint a URL is delivered to: ``scheme://host:port``, lower case, the port
    explicit (``http://Shop.example`` and ``http://shop.example:80/ipn`` are one)."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    except ValueError:
        return url  # unparseable: a lane of its own (its POST will fail and say why)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


class _Endpoint(msgspec.Struct):
    lanes: dict[str, deque[_Send]] = msgspec.field(default_factory=dict)  # merchant -> sends
    turns: deque[str] = msgspec.field(default_factory=deque)  # merchants with sends, in turn
    in_flight: int = 0
    ready: bool = False  # in FairQueue._ready

    def pop(self) -> _Send:
        merchant = self.turns.popleft()
        lane = self.lanes[merchant]
        item = lane.popleft()
        if lane:
            self.turns.append(merchant)  # its next send waits for the others' turn
        else:
            del self.lanes[merchant]
        return item


class FairQueue:
    """Queued IPN sends, served fairly: round robin over endpoints, then over each
    endpoint's merchants, FIFO within a merchant; at most ``per_endpoint`` sends of one
    endpoint in flight (taken by :meth:`get`, given back by :meth:`task_done`).

    Nothing is ever refused: ``maxsize`` is the backlog limit above which
    :meth:`put_nowait` answers False (the caller reports it) and still queues the send.
    The surface follows ``asyncio.Queue`` (``join`` waits until nothing is queued or in
    flight); no state is bound to an event loop between calls.
    """

    def __init__(self, maxsize: int, per_endpoint: int) -> None:
        self.maxsize = maxsize
        self.per_endpoint = max(1, per_endpoint)
        self._endpoints: dict[str, _Endpoint] = {}
        self._ready: deque[_Endpoint] = deque()  # queued sends and a free slot, in turn
        self._queued = 0
        self._in_flight = 0
        self._getters: deque[asyncio.Future[None]] = deque()
        self._joiners: list[asyncio.Future[None]] = []

    def qsize(self) -> int:
        return self._queued

    def empty(self) -> bool:
        return self._queued == 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def endpoints(self) -> int:
        """Endpoints with sends queued or in flight."""
        return len(self._endpoints)

    def put_nowait(self, item: _Send, *, front: bool = False) -> bool:
        """Queue ``item`` (first of its merchant's lane with ``front``); False when the
        backlog was already at ``maxsize`` (the send is queued all the same)."""
        within = self._queued < self.maxsize
        ep = self._endpoints.get(item.endpoint)
        if ep is None:
            ep = self._endpoints[item.endpoint] = _Endpoint()
        lane = ep.lanes.get(item.merchant)
        if lane is None:
            lane = ep.lanes[item.merchant] = deque()
            ep.turns.append(item.merchant)
        if front:
            lane.appendleft(item)
        else:
            lane.append(item)
        self._queued += 1
        if self._mark(ep):
            self._wake_one()
        return within

    async def get(self) -> _Send:
        """The next send in turn, its endpoint's slot taken; waits for one."""
        while True:
            item = self._take()
            if item is not None:
                if self._ready:
                    self._wake_one()  # more to take: another idle worker may
                return item
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except asyncio.CancelledError:
                if getter.done() and not getter.cancelled():
                    self._wake_one()  # woken, then cancelled: pass the turn on
                raise

    def task_done(self, item: _Send) -> None:
        """``item``'s send is over: its endpoint's slot is free again."""
        ep = self._endpoints.get(item.endpoint)
        self._in_flight -= 1
        if ep is not None:
            ep.in_flight -= 1
            if self._mark(ep):
                self._wake_one()
            elif not ep.lanes and ep.in_flight <= 0:
                del self._endpoints[item.endpoint]
        self._check_idle()

    async def join(self) -> None:
        """Return once nothing is queued and nothing is in flight."""
        if self._queued or self._in_flight:
            joiner = asyncio.get_running_loop().create_future()
            self._joiners.append(joiner)
            await joiner

    def remove(self, doomed: Callable[[_Send], bool]) -> list[_Send]:
        """Take every queued send ``doomed`` says out of the queue; returns them."""
        taken: list[_Send] = []
        for key, ep in list(self._endpoints.items()):
            for merchant, lane in list(ep.lanes.items()):
                keep = deque(item for item in lane if not doomed(item))
                taken += [item for item in lane if doomed(item)]
                if keep:
                    ep.lanes[merchant] = keep
                else:
                    del ep.lanes[merchant]
                    ep.turns.remove(merchant)
            if not ep.lanes and ep.in_flight <= 0:
                del self._endpoints[key]
        self._queued -= len(taken)
        self._check_idle()  # a stale _ready entry is skipped by _take
        return taken

    def forget_waiters(self) -> None:
        """Drop futures of a previous event loop (the sender restarts in a new one)."""
        self._getters.clear()
        for joiner in self._joiners:
            if not joiner.done():
                joiner.cancel()
        self._joiners.clear()

    def _mark(self, ep: _Endpoint) -> bool:
        """Put ``ep`` in turn if it has a send to take and a free slot; True if it is."""
        if ep.lanes and ep.in_flight < self.per_endpoint:
            if not ep.ready:
                ep.ready = True
                self._ready.append(ep)
            return True
        return False

    def _take(self) -> _Send | None:
        while self._ready:
            ep = self._ready.popleft()
            ep.ready = False
            if not ep.lanes or ep.in_flight >= self.per_endpoint:
                continue  # emptied by remove(), or its slots were taken meanwhile
            item = ep.pop()
            ep.in_flight += 1
            self._queued -= 1
            self._in_flight += 1
            self._mark(ep)  # to the back of the line, if it has more and a free slot
            return item
        return None

    def _wake_one(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    def _check_idle(self) -> None:
        if self._queued or self._in_flight:
            return
        joiners, self._joiners = self._joiners, []
        for joiner in joiners:
            if not joiner.done():
                joiner.set_result(None)


# -- listeners (``citcon-sim listen``) ----------------------------------------------------------

MAX_LISTENERS = 16  # connected at once: each holds a stream and up to `workers` attempts
LISTENER_GRACE = 5.0  # wall seconds a listener may take beyond the POST timeout to report


class Handoff(msgspec.Struct):
    """One delivery attempt handed to a listener, and the answer it reports."""

    id: str
    notification: Notification
    attempt: Attempt
    result: asyncio.Future[PostResult | None]  # None: the listener went away


class Listener:
    """One connected listener: the merchants it wants (None: all) and its hand-offs."""

    def __init__(self, listener_id: str, tokens: frozenset[str] | None,
                 forward_to: str) -> None:
        self.id, self.tokens, self.forward_to = listener_id, tokens, forward_to
        self.queue: asyncio.Queue[Handoff | None] = asyncio.Queue()  # None ends the stream
        self.pending: dict[str, Handoff] = {}  # handed off, answer not reported yet
        self.closed = False
        self._ids = itertools.count(1)

    def wants(self, token: str) -> bool:
        return self.tokens is None or token in self.tokens

    def next_id(self) -> str:
        return str(next(self._ids))

    @property
    def label(self) -> str:
        """What an attempt it made says: ``listener <id>`` and where it forwards."""
        return f"listener {self.id}" + (f" -> {self.forward_to}" if self.forward_to else "")


class Listeners:
    """The connected listeners. A merchant's attempts go to the newest listener naming its
    token, else to the newest listening for every merchant; with none, they are POSTed."""

    def __init__(self, limit: int = MAX_LISTENERS, grace: float = LISTENER_GRACE) -> None:
        self.limit = limit
        self.grace = grace  # beyond the POST timeout, for the report's round trip
        self._by_id: dict[str, Listener] = {}  # oldest first

    def __len__(self) -> int:
        return len(self._by_id)

    def connect(self, tokens: frozenset[str] | None, forward_to: str = "") -> Listener:
        """A new listener; ValueError when ``limit`` are connected already."""
        if len(self._by_id) >= self.limit:
            raise ValueError(f"{self.limit} listeners are connected already")
        listener = Listener(secrets.token_hex(6), tokens, forward_to)
        self._by_id[listener.id] = listener
        return listener

    def disconnect(self, listener: Listener) -> None:
        """End ``listener``: its stream stops and the attempts it still holds are given
        back (their workers POST them directly). Idempotent."""
        self._by_id.pop(listener.id, None)
        if listener.closed:
            return
        listener.closed = True
        for handoff in listener.pending.values():
            if not handoff.result.done():
                handoff.result.set_result(None)
        listener.pending.clear()
        listener.queue.put_nowait(None)

    def close(self) -> None:
        """End every listener (shutdown)."""
        for listener in list(self._by_id.values()):
            self.disconnect(listener)

    def pick(self, token: str) -> Listener | None:
        listening = [ear for ear in reversed(self._by_id.values()) if ear.wants(token)]
        named = [ear for ear in listening if ear.tokens is not None]
        return next(iter(named or listening), None)

    def report(self, listener_id: str, handoff_id: str, result: PostResult) -> None:
        """A listener's answer to a hand-off; KeyError when nothing waits for it (unknown,
        timed out already, or its listener is gone)."""
        listener = self._by_id[listener_id]
        handoff = listener.pending.pop(handoff_id)
        if not handoff.result.done():
            handoff.result.set_result(result)

    async def hand_off(self, listener: Listener, n: Notification, attempt: Attempt,
                       wait: float) -> PostResult | None:
        """Hand ``attempt`` to ``listener`` and wait (at most ``wait`` wall seconds) for
        its answer; None when the listener goes away first (POST it directly)."""
        if listener.closed:
            return None
        future: asyncio.Future[PostResult | None] = \
            asyncio.get_running_loop().create_future()
        handoff = Handoff(listener.next_id(), n, attempt, future)
        listener.pending[handoff.id] = handoff
        listener.queue.put_nowait(handoff)
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(future, wait)
        except TimeoutError:
            took = round((time.perf_counter() - started) * 1000, 1)
            return PostResult(None, "", f"timeout: {listener.label} did not report within "
                              f"{wait:g} s", took)
        finally:
            listener.pending.pop(handoff.id, None)


class IpnSender:
    """Records notifications, queues their sends and runs the delivery workers."""

    def __init__(
        self,
        clock: VirtualClock,
        scheduler: Scheduler,
        ledger: Ledger,
        *,
        encoders: Mapping[str, IpnEncoder],
        events: EventBus | None = None,
        timeout: float = 10.0,
        backoff: tuple[float, ...] = DEFAULT_BACKOFF,
        queue_size: int = 1000,
        workers: int = 16,
        per_endpoint: int = 2,
        allow: Allowlist | None = None,
        log_size: int = 10000,
    ) -> None:
        self.clock, self.scheduler, self.ledger = clock, scheduler, ledger
        self.encoders = dict(encoders)  # API face name -> its IPN format
        self.events = events if events is not None else ledger.events
        self.timeout = timeout
        self.backoff = tuple(backoff)
        self.workers = max(1, workers)
        self.per_endpoint = max(1, per_endpoint)
        self.allow = allow if allow is not None else Allowlist()  # --ipn-allow
        self.log_size = log_size
        self.notifications: dict[str, Notification] = {}  # insertion order = oldest first
        self._by_txn: dict[str, list[str]] = {}
        self._queue = FairQueue(queue_size, self.per_endpoint)
        self._backlog_warned = False  # the backlog limit was crossed and not left since
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self.listeners = Listeners()  # `citcon-sim listen` clients (they replace the POST)
        # How one attempt is POSTed; ``serve --demo`` puts its own in while it generates
        # its history (citcon_sim/demo.py), so retries take this very path, offline.
        self.post: Poster = post_form
        self.stats = {"notifications": 0, "attempts": 0, "delivered": 0, "failed": 0,
                      "retries_scheduled": 0, "queue_full": 0}

    def _changed(self, n: Notification, kind: str) -> None:
        self.events.publish(IpnChanged(kind, n))

    # -- recording (synchronous: a TransactionChanged handler) --------------------------

    def on_event(self, event: TransactionChanged) -> None:
        txn = event.transaction
        if event.kind == "paid":
            self.notify(txn, "paid")
        elif event.kind == "captured" and isinstance(event.detail, Capture) \
                and len(txn.captures or ()) == 1:
            self.notify(txn, "captured", event.detail)

    def notify(self, txn: Transaction, event: str, capture: Capture | None = None) -> Notification:
        """Record the notification a transaction's success is due, and queue its send."""
        script = txn.script.ipn if txn.script is not None else None
        at = capture.time if capture is not None else (txn.paid_at or self.clock.time())
        settings = self.ledger.merchants[txn.token].settings
        facts = IpnFacts(
            transaction=txn,
            notify_id=self.ledger.ids.notify(),
            status=script.status if script is not None and script.status else "success",
            time=self.clock.format(at),
            # A scenario's amount_differs: signed as sent, so only comparing the amount
            # with the order catches it.
            amount=(capture.amount if capture is not None else txn.amount)
            + (script.amount_differs if script is not None else 0),
            trans_amount=capture.trans_amount if capture is not None else txn.trans_amount,
            partner_id=settings.partner_id,
        )
        encoder = self.encoders[txn.face]
        form = encoder.encode(facts, settings.token, script)
        n = self._record(txn, event, facts.notify_id, form, script, encoder.encoding(settings))
        if n.state == NOT_SENT:
            log.info("no IPN for %s: the transaction has no ipn_url", txn.id)
        elif script is not None and script.never:
            n.state = SUPPRESSED
        elif script is not None and script.delay > 0:
            n.next_attempt_at = self.clock.time() + script.delay
            n.retry_job = self.scheduler.after(
                script.delay, lambda: self._enqueue(n, "first"), f"ipn {n.notify_id} delayed")
        else:
            self._enqueue(n, "first")
        self._changed(n, "recorded")
        return n

    def _record(self, txn: Transaction, event: str, notify_id: str, form: dict[str, Any],
                script: IpnScript | None, encoding: Encoding) -> Notification:
        n = Notification(
            notify_id=notify_id, transaction_id=txn.id, token=txn.token, event=event,
            url=txn.ipn_url, form=form, created_at=self.clock.time(), script=script,
            state=PENDING if txn.ipn_url else NOT_SENT, encoding=encoding,
        )
        self.notifications[n.notify_id] = n
        self._by_txn.setdefault(txn.id, []).append(n.notify_id)
        self.stats["notifications"] += 1
        self._trim()
        return n

    def _trim(self) -> None:
        """Keep the log bounded: forget the oldest finished notifications."""
        excess = len(self.notifications) - self.log_size
        if excess <= 0:
            return
        for nid in [k for k, n in self.notifications.items() if n.state in TERMINAL][:excess]:
            self._forget(nid)

    def _forget(self, notify_id: str) -> None:
        n = self.notifications.pop(notify_id)
        ids = self._by_txn.get(n.transaction_id, [])
        if notify_id in ids:
            ids.remove(notify_id)
        if not ids:
            self._by_txn.pop(n.transaction_id, None)
        if n.retry_job is not None:
            n.retry_job.cancelled = True

    def _enqueue(
        self, n: Notification, trigger: str, waiter: asyncio.Future[Attempt] | None = None
    ) -> None:
        if self.notifications.get(n.notify_id) is not n:
            return  # reset meanwhile
        if trigger in ("first", "retry"):  # the scheduled job that called us has fired
            n.retry_job, n.next_attempt_at = None, None
        item = _Send(n.notify_id, trigger, waiter, endpoint_of(n.url or ""), n.token)
        # A redelivery is asked for by hand, "now": first of its merchant's lane.
        if self._queue.put_nowait(item, front=trigger == "redeliver"):
            self._backlog_warned = False
            return
        # Over the backlog limit: queued all the same, counted, not an attempt.
        self.stats["queue_full"] += 1
        if not self._backlog_warned:
            self._backlog_warned = True
            log.warning("IPN backlog over its limit (%d sends queued): %s and the sends "
                        "after it wait their turn; none is dropped", self._queue.maxsize,
                        n.notify_id)

    def redeliver(self, notify_id: str) -> asyncio.Future[Attempt]:
        """Send again now, same form and ``notify_id``; resolves with the new attempt."""
        n = self.notifications[notify_id]  # KeyError: unknown id
        if n.url is None:
            raise ValueError("the transaction has no ipn_url")
        waiter: asyncio.Future[Attempt] = asyncio.get_running_loop().create_future()
        self._enqueue(n, "redeliver", waiter)  # a pending retry stays scheduled
        return waiter

    # -- delivery (asynchronous: the workers) ------------------------------------------

    async def start(self) -> None:
        if self._tasks:
            raise RuntimeError("the IPN sender is already running")
        self._queue.forget_waiters()  # any were a previous loop's; the sends are kept
        # force_close: one POST per notification; a pooled keep-alive connection the
        # merchant has since dropped would otherwise turn into a spurious failure.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            headers={"User-Agent": USER_AGENT},
        )
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    async def drain(self) -> None:
        """Return once the queue is empty and no attempt is in flight (no polling).

        Retries scheduled for later virtual times are not waited for: advance the clock.
        """
        if not self._tasks and not self._queue.empty():
            raise RuntimeError("IPN sends are queued but no worker runs (start the app)")
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            item = await self._queue.get()  # its endpoint's slot is ours until task_done
            try:
                await self._send(item)
            except Exception as exc:  # one bad send must not stop the worker
                log.exception("IPN send %s failed unexpectedly", item.notify_id)
                # The simulator records it; test helpers re-raise it.
                self.events.publish(UnexpectedError(exc, f"IPN send {item.notify_id}"))
                if item.waiter is not None and not item.waiter.done():
                    item.waiter.cancel()
            finally:
                self._queue.task_done(item)

    async def _send(self, item: _Send) -> None:
        n = self.notifications.get(item.notify_id)
        if n is None or n.url is None:
            return  # reset meanwhile
        if item.trigger in ("first", "retry") and n.state == DELIVERED:
            return  # a redelivery was acknowledged first
        assert self._session is not None
        attempt = Attempt(len(n.attempts) + 1, item.trigger, self.clock.time())
        n.attempts.append(attempt)
        result: PostResult | None = None
        listener = self.listeners.pick(n.token)
        if listener is not None:  # it posts from where it runs: no --ipn-allow check here
            attempt.via = listener.label
            result = await self.listeners.hand_off(listener, n, attempt,
                                                   self.timeout + self.listeners.grace)
            if result is None:  # it went away meanwhile: delivery falls back to a POST
                attempt.via = None
        if result is None:
            refused = await self._destination_problem(n.url)
            if refused is not None:  # a failed attempt, like a name that does not resolve
                result = PostResult(None, "", f"not sent: {refused}", 0.0)
            else:
                result = await self.post(self._session, n.url, n.form, self.timeout,
                                         n.encoding)
        attempt.status, attempt.error = result.status, result.error
        attempt.body, attempt.latency_ms = result.body, result.latency_ms
        self.stats["attempts"] += 1
        # The reply body stays in the IPN log (behind /_sim/), never in the server log.
        log.info("IPN %s #%d %s -> %s %.0f ms", n.notify_id, attempt.number, n.url,
                 attempt.status or attempt.error, attempt.latency_ms)
        if item.waiter is not None and not item.waiter.done():
            item.waiter.set_result(attempt)
        if self.notifications.get(n.notify_id) is not n:
            return  # reset while the POST was in flight: nothing more to schedule
        if result.ok:
            self._delivered(n)
        else:
            self._after_failure(n, item.trigger)
        self._changed(n, "attempted")

    async def _destination_problem(self, url: str) -> str | None:
        """With ``--ipn-allow`` rules, why ``url`` may not be posted to now that its host
        resolves where it does (a name allowed only by a wildcard must not reach an
        internal address); None to post. A name that does not resolve is left to the
        POST to report. (aiohttp resolves again for the POST: a name that changes its
        answer between the two is not caught.)"""
        if self.allow.open:
            return None
        try:
            host = target(url)
        except ValueError:
            return "the URL names no host"
        if host.address is not None:
            return self.allow.url_problem(url)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host.host, host.port, type=socket.SOCK_STREAM)
        except OSError:
            return None
        return self.allow.resolved_problem(url, [str(info[4][0]) for info in infos])

    def _delivered(self, n: Notification) -> None:
        if n.state != DELIVERED:
            self.stats["delivered"] += 1
        n.state = DELIVERED
        if n.retry_job is not None:
            n.retry_job.cancelled = True
        n.retry_job, n.next_attempt_at = None, None
        if n.follow_ups_sent or n.script is None:
            return
        n.follow_ups_sent = True
        for _ in range(n.script.duplicates):
            self._enqueue(n, "duplicate")
        if n.script.out_of_order:
            self._stale(n)

    def _stale(self, real: Notification) -> None:
        """Scenario out_of_order: a correctly signed ``pending`` notification, late."""
        txn = self.ledger.by_id.get(real.transaction_id)
        if txn is None:
            return
        notify_id = self.ledger.ids.notify()
        form = self.encoders[txn.face].restate(
            real.form, self.ledger.merchants[txn.token].settings.token, status="pending",
            time=self.clock.format(txn.created_at), notify_id=notify_id)
        stale = self._record(txn, "stale", notify_id, form, None, real.encoding)
        self._enqueue(stale, "first")
        self._changed(stale, "recorded")

    def _after_failure(self, n: Notification, trigger: str) -> None:
        """Schedule the next retry on the virtual clock, or give up."""
        if trigger not in ("first", "retry") or n.state == DELIVERED:
            return  # redeliveries and duplicates do not move the schedule
        if n.retries_used >= len(self.backoff):
            n.state = FAILED
            self.stats["failed"] += 1
            log.warning("IPN %s for %s failed after %d attempts", n.notify_id,
                        n.transaction_id, len(n.attempts))
            return
        delay = self.backoff[n.retries_used]
        n.retries_used += 1
        n.state = RETRYING
        n.next_attempt_at = self.clock.time() + delay
        n.retry_job = self.scheduler.at(
            n.next_attempt_at, lambda: self._enqueue(n, "retry"), f"ipn {n.notify_id} retry")
        self.stats["retries_scheduled"] += 1

    # -- control surface -----------------------------------------------------------------

    def reset(self, token: str | None = None) -> None:
        """Forget notifications (all, or one merchant's) and cancel their retries."""
        doomed = [k for k, n in self.notifications.items() if token is None or n.token == token]
        for nid in doomed:
            self._forget(nid)
        if token is None:
            for key in self.stats:
                self.stats[key] = 0
        # Their queued sends go too (a send in flight finishes, and is not followed up).
        for item in self._queue.remove(lambda item: item.notify_id not in self.notifications):
            if item.waiter is not None and not item.waiter.done():
                item.waiter.cancel()

    # -- export / load (citcon_sim.persistence) -------------------------------------------

    def export(self) -> IpnExport:
        """The log, oldest first (the notification objects themselves: encode the export
        before the next send changes them). Statistics and scheduler jobs are derived."""
        return IpnExport(list(self.notifications.values()))

    def load(self, export: IpnExport, ledger: Ledger) -> None:
        """Replace the log with ``export`` (empty: a full reset), for ``ledger``.

        The log's containers are fresh; statistics are recounted from it. The old log's
        queued sends are dropped (a waiting redelivery is cancelled) and its retries
        cancelled; the new log's sends still due are queued, or rescheduled at their
        original virtual time. The workers, the queue and the session are kept.
        """
        for old in self.notifications.values():
            if old.retry_job is not None:
                old.retry_job.cancelled = True
        for item in self._queue.remove(lambda item: True):
            if item.waiter is not None and not item.waiter.done():
                item.waiter.cancel()
        self.ledger = ledger
        notifications: dict[str, Notification] = {}
        by_txn: dict[str, list[str]] = {}
        stats = dict.fromkeys(self.stats, 0)
        for n in export.notifications:
            notifications[n.notify_id] = n
            by_txn.setdefault(n.transaction_id, []).append(n.notify_id)
            stats["notifications"] += 1
            stats["delivered"] += n.state == DELIVERED
            stats["failed"] += n.state == FAILED
            stats["retries_scheduled"] += n.retries_used
            for a in n.attempts:
                stats["attempts"] += a.sent
                stats["queue_full"] += not a.sent
        self.notifications, self._by_txn = notifications, by_txn
        self.stats.update(stats)
        for n in export.notifications:
            if n.state not in (PENDING, RETRYING) or n.url is None:
                continue
            trigger = "first" if n.state == PENDING else "retry"
            if n.next_attempt_at is None:
                self._enqueue(n, trigger)  # it was queued, or in flight, when saved
            else:
                n.retry_job = self.scheduler.at(
                    n.next_attempt_at, functools.partial(self._enqueue, n, trigger),
                    f"ipn {n.notify_id} {trigger}")
        self._trim()

    def for_transaction(self, txn_id: str) -> list[Notification]:
        return [self.notifications[k] for k in reversed(self._by_txn.get(txn_id, []))]

    def query(
        self, *, transaction_id: str | None = None, token: str | None = None, limit: int = 1000
    ) -> list[Notification]:
        """Newest first."""
        source = (self.for_transaction(transaction_id) if transaction_id is not None
                  else list(reversed(self.notifications.values())))
        keep: Callable[[Notification], bool] = (
            (lambda n: True) if token is None else (lambda n: n.token == token))
        return [n for n in source if keep(n)][:limit]

    def describe(
        self, *, transaction_id: str | None = None, token: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        return [self.as_dict(n) for n in
                self.query(transaction_id=transaction_id, token=token, limit=limit)]

    def as_dict(self, n: Notification) -> dict[str, Any]:
        fmt = self.clock.format
        return {
            "notify_id": n.notify_id,
            "transaction_id": n.transaction_id,
            "event": n.event,
            "url": n.url,
            "state": n.state,
            "created_time": fmt(n.created_at),
            "next_attempt_time": fmt(n.next_attempt_at) if n.next_attempt_at else None,
            "retries_used": n.retries_used,
            "retries_max": len(self.backoff),
            "form": dict(n.form),
            "script": None if n.script is None else
            {k: getattr(n.script, k) for k in n.script.__struct_fields__},
            "attempts": [
                {
                    "number": a.number,
                    "trigger": a.trigger,
                    "time": fmt(a.at),
                    "sent": a.sent,
                    "ok": a.ok,
                    "status": a.status,
                    "error": a.error,
                    "latency_ms": a.latency_ms,
                    "body": a.body,
                    "via": a.via,
                }
                for a in n.attempts
            ],
        }

    def summary(self) -> dict[str, Any]:
        return {**self.stats, "queued": self._queue.qsize(), "queue_size": self._queue.maxsize,
                "in_flight": self._queue.in_flight, "endpoints": self._queue.endpoints(),
                "workers": self.workers, "per_endpoint": self.per_endpoint,
                "running": self.running, "timeout": self.timeout, "backoff": list(self.backoff),
                "listeners": len(self.listeners)}


async def send_once(url: str, form: Mapping[str, str], timeout: float = 10.0) -> PostResult:
    """One POST with a session of its own (``citcon-sim ipn send``)."""
    async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session:
        return await post_form(session, url, form, timeout)
