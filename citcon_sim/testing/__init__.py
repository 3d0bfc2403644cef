"""Run a simulator in a background thread, for test suites (with or without pytest).

    >>> import json, urllib.request
    >>> from citcon_sim import SimulatorServer
    >>> with SimulatorServer() as sim:
    ...     with urllib.request.urlopen(sim.url_for("/_sim/health")) as resp:
    ...         json.load(resp)
    {'status': 'ok'}

The server listens where its Config says (by default a free port of 127.0.0.1) and runs
its own event loop in a daemon thread; every helper runs its work on that loop (so the
simulator is only ever touched by one thread) and re-raises, in the calling thread, the
very exception the work raised (``NotFound`` for an unknown id, ``TransitionError`` for
paying a paid payment…).
Unexpected errors while *serving a request* (answered to the client as code 4000) are
recorded instead and re-raised by :meth:`SimulatorServer.check_assertions`, which the
pytest fixture calls after each test (pytest-httpserver's model).

Helpers block the calling thread. From an ``async`` test whose IPN receiver runs on the
test's own event loop, call the blocking waits through a thread, or the receiver cannot
answer while the loop is blocked::

    notification = await asyncio.to_thread(sim.wait_for_ipn, txn_id)
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, InvalidStateError
from typing import Any, ClassVar, Protocol, TypeVar

from aiohttp import web

from citcon_sim.config import Config
from citcon_sim.delivery import ipn as ipn_states
from citcon_sim.domain.events import IpnChanged, TransactionChanged
from citcon_sim.domain.ids import charge_token
from citcon_sim.domain.ledger import Status
from citcon_sim.faces.online.wire import sim_transaction
from citcon_sim.faces.upi import tokens as upi_tokens
from citcon_sim.scenarios import resolve_scenario
from citcon_sim.simulator import Simulator
from citcon_sim.testing.receiver import check_receiver, check_receiver_async
from citcon_sim.web.app import create_app
from citcon_sim.web.limits import Runner

__all__ = ["IpnNotAcknowledged", "ServerError", "ServerObserver", "SimulatorServer",
           "StartError", "check_receiver", "check_receiver_async"]

log = logging.getLogger("citcon_sim.testing")

T = TypeVar("T")

# How long an idle wait_for_ipn sleeps between looks. Any transaction or IPN event on the
# simulator's bus wakes it at once; this only bounds what publishes nothing (a pending
# transaction expiring on a running clock).
_IDLE_RECHECK = 0.05
_NO_IPN_STATUSES = frozenset({Status.FAILED, Status.EXPIRED, Status.CANCELLED})


class ServerError(AssertionError):
    """The simulator failed while serving a request during the test.

    Raised by :meth:`SimulatorServer.check_assertions` from the first recorded error
    (``__cause__``, with its server-side traceback); ``errors`` holds all of them.
    """

    def __init__(self, message: str, errors: list[BaseException]) -> None:
        super().__init__(message)
        self.errors = errors


class IpnNotAcknowledged(AssertionError):
    """The merchant's IPN endpoint did not acknowledge the attempt waited for: it answered
    something other than a 2xx, or nothing (refused, timed out). The message says what;
    ``notification`` is the notification as :meth:`SimulatorServer.ipn_log` shows it."""

    def __init__(self, message: str, notification: dict[str, Any]) -> None:
        super().__init__(message)
        self.notification = notification


class StartError(RuntimeError):
    """The server could not start (port in use, start-up timeout); ``__cause__`` says why."""


class ServerObserver(Protocol):
    """Something that watches every started server (behaviour coverage does): told when a
    server starts, before its state is cleared, and before it stops."""

    def attach(self, server: SimulatorServer) -> None: ...
    def harvest(self, server: SimulatorServer) -> None: ...
    def detach(self, server: SimulatorServer) -> None: ...


class SimulatorServer:
    """A simulator serving HTTP from a background thread, by default on a free port of
    127.0.0.1.

    ``config`` defaults to a frozen clock (tests move time with :meth:`advance`). It is
    honoured as given: ``Config.host``, and ``Config.port`` when set (unset or 0: a free
    port; a port in use makes :meth:`start` raise :class:`StartError`). ``host``/``port``
    here override the config's. Pass ``simulator`` to serve an existing
    :class:`~citcon_sim.Simulator` (its config decides where, likewise).
    ``start()``/``stop()`` may be called again; ``stop()`` is idempotent and bounded by
    ``stop_timeout`` wall seconds.

        >>> server = SimulatorServer().start()
        >>> server.base_url.startswith("http://127.0.0.1:")
        True
        >>> server.stop(); server.stop()  # idempotent
    """

    # Watchers of every server of this process (the pytest plugin's coverage recorder).
    observers: ClassVar[list[ServerObserver]] = []

    def __init__(
        self,
        config: Config | None = None,
        *,
        simulator: Simulator | None = None,
        host: str | None = None,
        port: int | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        base = simulator.config if simulator is not None else config or Config(
            frozen_clock=True, port=0)
        host = base.host if host is None else host
        port = (base.port or 0) if port is None else port
        # A copy (checked like any Config), so one Config object can configure several
        # servers; a served Simulator keeps its own.
        self.config: Config = (simulator.config if simulator is not None
                               else dataclasses.replace(base, host=host, port=port))
        self.host, self.port = host, port
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        self.base_url = ""  # http://<host>:<port> once started; kept after stop()
        self._sim = simulator
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def simulator(self) -> Simulator:
        """The served :class:`~citcon_sim.Simulator` (built by the first ``start()``).

        Touch it only through :meth:`call`: it belongs to the server's thread.
        """
        if self._sim is None:
            raise RuntimeError("the server has not been started")
        return self._sim

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> SimulatorServer:
        """Start serving (no-op when running); raises :class:`StartError` on failure.

        A bad configuration (unreadable merchants file, unknown timezone) raises its own
        exception before any thread starts.
        """
        with self._lock:
            if self._thread is not None:
                return self
            if self._sim is None:
                self._sim = Simulator(self.config)
            ready: Future[str] = Future()
            thread = threading.Thread(target=self._serve, args=(ready,), daemon=True,
                                      name=f"citcon-sim {self.host}:{self.port}")
            thread.start()
            where = f"{self.host}:{self.port}"
            try:
                self.base_url = ready.result(timeout=self.start_timeout)
            except BaseException as exc:
                if ready.cancel():  # still starting: the thread sees it and closes down
                    thread.join(self.stop_timeout)
                    self._loop = None
                    if isinstance(exc, TimeoutError):
                        raise StartError(f"citcon-sim did not start on {where} within "
                                         f"{self.start_timeout:g} s") from None
                    raise  # interrupted while waiting
                failure = ready.exception()
                if failure is not None:
                    thread.join(self.stop_timeout)
                    self._loop = None
                    raise StartError(f"citcon-sim could not start on {where}: "
                                     f"{failure}") from failure
                self.base_url = ready.result()  # it finished starting just now
            self._thread = thread
            for observer in self.observers:
                observer.attach(self)
            return self

    def _serve(self, ready: Future[str]) -> None:
        try:
            with asyncio.Runner() as runner:
                self._loop = runner.get_loop()
                runner.run(self._main(ready))
        except BaseException as exc:
            try:
                ready.set_exception(exc)  # a start-up failure: start() raises it
            except InvalidStateError:  # after start-up: nobody is waiting, say it at least
                log.exception("the citcon-sim server thread failed")

    async def _main(self, ready: Future[str]) -> None:
        sim = self.simulator
        # shutdown_timeout bounds how long stop() waits for requests still in flight.
        # The config's idle timeout and connection cap, as `citcon-sim serve` has them.
        runner = Runner(create_app(sim), sim.config, access_log=None,
                        shutdown_timeout=min(2.0, self.stop_timeout / 2))
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
            port = runner.addresses[0][1]
            host = f"[{self.host}]" if ":" in self.host else self.host
            base_url = sim.bound_url = f"http://{host}:{port}"
            self._stopped = asyncio.Event()
            try:
                ready.set_result(base_url)
            except InvalidStateError:
                return  # start() gave up waiting (cancelled): close down again
            await self._stopped.wait()
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        """Stop serving and wait (at most ``stop_timeout``) for the thread; idempotent."""
        with self._lock:
            if self._thread is not None:
                for observer in self.observers:
                    observer.detach(self)  # while the server can still answer
            thread, self._thread = self._thread, None
            if thread is None:
                return
            loop, stopped = self._loop, self._stopped
            if loop is not None and stopped is not None:
                try:
                    loop.call_soon_threadsafe(stopped.set)
                except RuntimeError:  # the loop has already closed: the thread is ending
                    pass
            thread.join(self.stop_timeout)
            self._loop, self._stopped = None, None
            if thread.is_alive():
                raise RuntimeError(f"the citcon-sim thread did not stop within "
                                   f"{self.stop_timeout:g} s")

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.base_url if self.running else "stopped"
        return f"<SimulatorServer {state}>"

    # -- running work on the server's loop ---------------------------------------------------

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Run ``fn()`` on the server's event loop; return its result or raise its error.

            >>> with SimulatorServer() as sim:
            ...     sim.call(lambda: sim.simulator.clock.frozen)
            True
        """
        async def run() -> T:
            return fn()
        return self.run(run(), timeout)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the server's event loop and wait (``timeout`` wall seconds)."""
        loop = self._loop
        if loop is None or self._thread is None:
            coro.close()
            raise RuntimeError("the server is not running (use start() or `with`)")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("called on the simulator's own thread, where waiting for "
                               "its loop would deadlock: use .simulator directly")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            if future.cancel():
                raise TimeoutError(f"the simulator did not finish within {timeout:g} s") \
                    from None
            return future.result()  # it finished just now

    # -- URLs ------------------------------------------------------------------------------------

    def url_for(self, path: str) -> str:
        """An absolute URL on this server, for the merchant code under test.

            >>> with SimulatorServer() as sim:
            ...     sim.url_for("/payment/pay_qr") == sim.base_url + "/payment/pay_qr"
            True

        Configure the code under test with ``base_url`` (its "Citcon host") and it calls
        ``/payment/...`` here; ``url_for`` builds links for the test itself.
        """
        if not self.base_url:
            raise RuntimeError("the server has not been started")
        return self.base_url + (path if path.startswith("/") else "/" + path)

    # -- the consumer's side and the clock ---------------------------------------------------

    def pay(self, txn_id: str) -> dict[str, Any]:
        """The consumer pays (authorises a delayed-capture payment); answers the transaction.

        The IPN is queued at once; :meth:`wait_for_ipn` waits for its delivery.
        """
        return self._view(lambda: self.simulator.ledger.consumer_act(txn_id, "pay"))

    def fail(self, txn_id: str, reason: str = "declined") -> dict[str, Any]:
        """The consumer's payment fails (no IPN is sent)."""
        return self._view(lambda: self.simulator.ledger.consumer_act(txn_id, "fail", reason))

    def expire(self, txn_id: str) -> dict[str, Any]:
        """Expire a pending payment now, as if its QR timeout had passed."""
        return self._view(lambda: self.simulator.ledger.consumer_act(txn_id, "expire"))

    def cancel(self, txn_id: str) -> dict[str, Any]:
        """The consumer abandons the wallet page (not the merchant's cancel API)."""
        return self._view(lambda: self.simulator.ledger.consumer_act(txn_id, "cancel"))

    def advance(self, seconds: float) -> int:
        """Move virtual time forward; everything due (expiry, IPN retries and delayed
        first attempts, scripted outcomes) fires. Answers how many jobs ran.

        The clock never goes back, and carries over from test to test.
        """
        return self.call(lambda: self.simulator.advance(seconds))

    # -- UPI v1 ----------------------------------------------------------------------------------

    def upi_access_token(self, private_key: str, token_type: str = "server") -> str:
        """A UPI access token for ``private_key``, as ``POST /v1/access-tokens`` would
        answer (valid for ``Config.upi_token_lifetime`` seconds of virtual time); with a
        merchants file, only for a listed key (else ``Unauthorized``).

            >>> with SimulatorServer() as sim:
            ...     sim.upi_access_token("sk-test").startswith("UPI_")
            True
        """
        if token_type not in ("server", "client"):
            raise ValueError("token_type is server or client")

        def mint() -> str:
            sim = self.simulator
            sim.ledger.merchant(private_key)  # strict mode: only listed keys
            return upi_tokens.store(sim).mint(private_key, token_type, sim.clock.time(),
                                              sim.config.upi_token_lifetime).token
        return self.call(mint)

    def upi_landing_url(self, txn_id: str) -> str:
        """The hosted page of a UPI charge (what its ``payment.client`` redirects name)."""
        return self.url_for(f"/v1/landing/{charge_token(txn_id)}")

    # -- inspecting state --------------------------------------------------------------------

    def transaction(self, txn_id: str) -> dict[str, Any]:
        """One transaction, as ``GET /_sim/transactions/{id}`` shows it (timeline included)."""
        return self._view(lambda: self.simulator.ledger.get(txn_id))

    def transactions(self, token: str | None = None) -> list[dict[str, Any]]:
        """Every transaction (or one merchant's), newest first."""
        def collect() -> list[dict[str, Any]]:
            sim = self.simulator
            merchant = sim.ledger.merchants.get(token) if token else None
            if token and merchant is None:
                return []
            found = sim.ledger.transactions(merchant, limit=len(sim.ledger.by_id))
            return [sim_transaction(t, sim.clock) for t in found]
        return self.call(collect)

    def requests(self, *, token: str | None = None, path: str | None = None,
                 transaction_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """The request journal (merchant API calls and answers), newest first.

        ``path`` is a path (``/payment/pay_qr``) or an endpoint name (``pay_qr``).
        """
        return self.call(lambda: [
            e.as_dict() for e in self.simulator.journal.query(
                token=token, path=path, transaction_id=transaction_id, limit=limit)
        ])

    def chop_requests(self, *, token: str | None = None, transaction_id: str | None = None,
                      limit: int = 1000) -> list[dict[str, Any]]:
        """The journal's CHOP calls (``/chop/*``) only, newest first."""
        return self.call(lambda: [
            e.as_dict() for e in self.simulator.journal.query(
                token=token, transaction_id=transaction_id, face="chop", limit=limit)
        ])

    def pay_url(self, url: str) -> dict[str, Any]:
        """The consumer pays the payment a hosted-page URL names: CHOP's ``url``, or the
        Online API's pay answer (the id follows the URL's first ``=``)."""
        _, found, rest = url.partition("=")
        txn_id = rest.split("&")[0]
        if not found or not txn_id:
            raise ValueError(f"{url!r} names no transaction (no q=<id>)")
        return self.pay(txn_id)

    def ipn_log(self, transaction_id: str | None = None) -> list[dict[str, Any]]:
        """Notifications recorded (sent, due or not sent), each with its delivery attempts,
        newest first — ``GET /_sim/ipn``'s ``notifications``."""
        return self.call(lambda: _plain(self.simulator.ipn.describe(
            transaction_id=transaction_id)))

    def wait_for_ipn(self, transaction_id: str, timeout: float = 10.0, *,
                     attempts: int = 1, acknowledged: bool = True) -> dict[str, Any]:
        """Wait until the transaction's notification has had ``attempts`` finished delivery
        attempts (answered, refused or timed out); answer it as :meth:`ipn_log` does.

        That attempt must have been acknowledged (a 2xx): otherwise
        :class:`IpnNotAcknowledged` (an ``AssertionError``) says what the merchant's
        endpoint answered, its HTTP status and the start of its body (or why nothing
        came back). ``acknowledged=False`` answers the notification whatever the endpoint
        said, for tests of retries.

        Waits on the delivery workers and the simulator's events, at most ``timeout`` wall
        seconds, then raises ``AssertionError`` listing the IPNs on record. It fails at
        once when no attempt can come: no ``ipn_url``, a scenario's ``never``, the
        retries exhausted, a payment that failed/expired — or, on a frozen clock, an
        attempt scheduled in virtual time (a scenario's ``delay``, a retry after a
        failure): call :meth:`advance` first, then wait.

            sim.pay(txn_id)
            assert sim.wait_for_ipn(txn_id)["state"] == "delivered"
            # a receiver that answers 500 first: the retry is due 15 virtual seconds later
            sim.wait_for_ipn(txn_id, acknowledged=False)
            sim.advance(15)
            sim.wait_for_ipn(txn_id, attempts=2)

        The stale notification of a scenario's ``out_of_order`` is not the one waited
        for; find it in :meth:`ipn_log`.
        """
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        found = self.run(self._await_ipn(transaction_id, attempts, timeout), timeout + 5)
        if acknowledged:
            _check_acknowledged(found, attempts, self.simulator.clock.frozen)
        return found

    async def _await_ipn(self, txn_id: str, want: int, timeout: float) -> dict[str, Any]:
        sim = self.simulator
        changed = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()

        def wake(event: TransactionChanged | IpnChanged) -> None:
            # A payment made meanwhile records the IPN; an attempt finishes. Either may be
            # published from another thread (a test touching the simulator directly).
            if threading.get_ident() == loop_thread:
                changed.set()
            else:
                loop.call_soon_threadsafe(changed.set)

        unsubscribe = (sim.events.subscribe(TransactionChanged, wake),
                       sim.events.subscribe(IpnChanged, wake))
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed.clear()
                    await sim.ipn.drain()  # at once when idle; else until sends finish
                    found = _main_notification(sim, txn_id)
                    if found is not None and _finished(found) >= want:
                        return _plain(sim.ipn.as_dict(found))
                    hopeless = _why_no_attempt(sim, txn_id, found, want)
                    if hopeless:
                        raise AssertionError(_ipn_report(sim, txn_id, want, hopeless))
                    if not changed.is_set():
                        try:
                            await asyncio.wait_for(changed.wait(), _IDLE_RECHECK)
                        except TimeoutError:
                            pass
        except TimeoutError:
            found = _main_notification(sim, txn_id)
            why = _why_waiting(sim, txn_id, found, want)
            raise AssertionError(_ipn_report(
                sim, txn_id, want, f"waited {timeout:g} s; {why}")) from None
        finally:
            for stop in unsubscribe:
                stop()

    def redeliver(self, notify_id: str, timeout: float = 30.0, *,
                  acknowledged: bool = True) -> dict[str, Any]:
        """Send a notification again now (same form and ``notify_id``) and wait for that
        attempt; answers the notification with it. Unless ``acknowledged=False``, an
        answer other than a 2xx raises :class:`IpnNotAcknowledged`, as
        :meth:`wait_for_ipn` does."""
        async def send() -> dict[str, Any]:
            ipn = self.simulator.ipn
            await asyncio.wait_for(ipn.redeliver(notify_id), timeout)
            return _plain(ipn.as_dict(ipn.notifications[notify_id]))
        found = self.run(send(), timeout + 5)
        if acknowledged:
            _check_acknowledged(found, len(found["attempts"]), frozen=False)
        return found

    # -- state between tests ---------------------------------------------------------------

    def reset(self, token: str | None = None) -> None:
        """Forget transactions, IPNs, due jobs and the journal (or one merchant's
        transactions and IPNs). Loaded scenarios stay loaded; the clock keeps its time."""
        for observer in self.observers:
            observer.harvest(self)
        self.call(lambda: self.simulator.reset(token))

    def load_scenario(self, scenario: str | os.PathLike[str], token: str | None = None) -> None:
        """Load a scenario (docs/scenarios.md), for every merchant or one ``token``.

        ``scenario`` is the name of a shipped scenario (``declines``, ``flaky-ipn``…), a
        file path (``pathlib.Path``, an existing file, or a string ending
        ``.yaml``/``.yml``/``.json``) or YAML text; precedence as in
        :func:`~citcon_sim.scenarios.resolve_scenario`. A bad scenario raises
        ``ScenarioError`` here, in the test.

            sim.load_scenario("declines")
            sim.load_scenario('''
                rules:
                  - match: {reference: "slow-*"}
                    payment: {outcome: pay, after: 30}
            ''')
        """
        parsed = resolve_scenario(scenario, text=True, source="<test scenario>")
        self.call(lambda: self.simulator.scenarios.load(parsed, token))

    def clear_scenarios(self, token: str | None = None) -> None:
        """Unload scenarios (all, or one merchant's), including the configured ones."""
        self.call(lambda: self.simulator.scenarios.clear(token))

    def clear(self) -> None:
        """A clean slate for the next test: :meth:`reset`, unload scenarios loaded since
        start (the configured ones are loaded afresh, their counters at zero) and discard
        recorded server-side errors. The pytest fixture calls it before each test."""
        for observer in self.observers:
            observer.harvest(self)

        def clear() -> None:
            sim = self.simulator
            sim.reset()
            sim.reload_scenarios()  # as parsed at start: no file is read again
            sim.take_errors()
        self.call(clear)

    def check_assertions(self) -> None:
        """Raise :class:`ServerError` (an ``AssertionError``) if the simulator failed while
        serving a request since the last check or :meth:`clear`; the first failure is
        its ``__cause__``, with the server-side traceback.

        Such a request was answered ``{"result":"fail","code":4000}``, so the merchant
        code under test saw a gateway error it should not have.
        """
        __tracebackhide__ = True  # pytest: show the test and the server, not this
        errors = self.call(lambda: self.simulator.take_errors())
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise ServerError(f"the simulator failed while serving a request: "
                              f"{errors[0]!r}{more}", errors) from errors[0]

    def _view(self, fn: Callable[[], Any]) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            return sim_transaction(fn(), self.simulator.clock)
        return self.call(run)


# -- helpers -----------------------------------------------------------------------------------


def _plain(value: T) -> T:
    """A deep, JSON-shaped copy: safe to hand to another thread."""
    copy: T = json.loads(json.dumps(value, default=str))
    return copy


def _check_acknowledged(notification: dict[str, Any], number: int, frozen: bool) -> None:
    """Raise :class:`IpnNotAcknowledged` unless finished attempt ``number`` got a 2xx."""
    finished = [a for a in notification["attempts"]
                if a["status"] is not None or a["error"] is not None]
    attempt = finished[number - 1]
    if attempt["ok"]:
        return
    which = (f"attempt {attempt['number']} ({attempt['trigger']}) of the IPN for "
             f"{notification['transaction_id']}")
    if attempt["status"] is not None:
        body = attempt["body"]  # its start: the sender keeps the first characters only
        what = (f"the merchant's IPN endpoint answered HTTP {attempt['status']} to {which}: "
                + (repr(body) if body else "(empty body)"))
    else:
        what = f"the merchant's IPN endpoint did not answer {which}: {attempt['error']}"
    if notification["state"] == ipn_states.FAILED:
        then = "delivery has given up"
    elif notification["next_attempt_time"] is not None:
        then = f"the next attempt is due at {notification['next_attempt_time']} (virtual)"
        if frozen:
            then += f"; advance the clock, then wait_for_ipn(..., attempts={number + 1})"
    else:
        then = f"the notification is {notification['state']}"
    raise IpnNotAcknowledged(
        f"{what}\n({then}; acknowledged=False answers the notification instead)",
        notification)


def _main_notification(sim: Simulator, txn_id: str) -> ipn_states.Notification | None:
    """The transaction's success notification (oldest non-stale one)."""
    for n in reversed(sim.ipn.for_transaction(txn_id)):
        if n.event != "stale":
            return n
    return None


def _finished(n: ipn_states.Notification) -> int:
    return sum(1 for a in n.attempts if a.status is not None or a.error is not None)


def _why_no_attempt(sim: Simulator, txn_id: str, n: ipn_states.Notification | None,
                    want: int) -> str | None:
    """Why attempt ``want`` can never come without the test acting; None if it may."""
    if n is None:
        txn = sim.ledger.by_id.get(txn_id)
        if txn is not None and sim.ledger.refresh(txn).status in _NO_IPN_STATUSES:
            return f"the transaction is {txn.status.value}: no IPN is due"
        return None
    if n.state == ipn_states.NOT_SENT:
        return "the transaction has no ipn_url: nothing was sent"
    if n.state == ipn_states.SUPPRESSED:
        return "a scenario suppressed its IPN (ipn: {never: true})"
    if n.state == ipn_states.FAILED:
        last = n.attempts[-1]
        said = (f"HTTP {last.status} {last.body!r}" if last.status is not None
                else last.error or "nothing")
        return f"delivery gave up after {_finished(n)} attempt(s); the last got {said}"
    if n.state == ipn_states.DELIVERED:  # duplicates were queued, and drained, already
        return f"it was acknowledged after {_finished(n)} attempt(s); no more are due"
    if n.next_attempt_at is not None and sim.clock.frozen:
        due = n.next_attempt_at - sim.clock.time()
        return (f"the next attempt is due {due:g} s later in virtual time, and the clock "
                f"is frozen: call advance({due:g}) first")
    return None


def _why_waiting(sim: Simulator, txn_id: str, n: ipn_states.Notification | None,
                 want: int) -> str:
    if n is not None:
        if n.next_attempt_at is not None:
            return (f"the next attempt is due at {sim.clock.format(n.next_attempt_at)} "
                    f"(virtual; now {sim.clock.format(sim.clock.time())})")
        return f"it is {n.state} with {_finished(n)} finished attempt(s)"
    txn = sim.ledger.by_id.get(txn_id)
    if txn is None:
        return "there is no such transaction"
    status = sim.ledger.refresh(txn).status
    if status is Status.PENDING:
        return "the transaction is still pending: nothing has paid it"
    if status is Status.AUTHORIZED:
        return "the transaction is only authorised: the first capture notifies"
    return f"the transaction is {status.value}, yet no IPN was recorded"


def _ipn_report(sim: Simulator, txn_id: str, want: int, problem: str) -> str:
    which = f" #{want}" if want > 1 else ""
    lines = [f"no IPN delivery attempt{which} for {txn_id}: {problem}.", "IPNs on record:"]
    notes = sim.ipn.query(limit=20)
    for n in notes:
        codes = ", ".join(str(a.status if a.status is not None else a.error or "in flight")
                          for a in n.attempts) or "no attempts"
        due = (f", next attempt at {sim.clock.format(n.next_attempt_at)}"
               if n.next_attempt_at is not None else "")
        lines.append(f"  {n.notify_id[:8]}… {n.event} for {n.transaction_id}: {n.state} "
                     f"[{codes}]{due} -> {n.url}")
    if not notes:
        lines.append("  (none)")
    return "\n".join(lines)
