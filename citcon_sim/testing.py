"""Run a simulator in a background thread, for test suites (with or without pytest).

    from citcon_sim.testing import SimulatorServer

    with SimulatorServer() as sim:
        requests.post(sim.url_for("/payment/pay_qr"), ...)
        sim.pay(txn_id)
        sim.advance(300)

The server listens on a free port of 127.0.0.1 and runs in its own event loop thread;
every helper runs its work on that loop, so the ledger is only ever touched by one
thread. Unexpected server-side errors are collected and re-raised by
:meth:`SimulatorServer.check_assertions` (the pytest fixture calls it after each test).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from aiohttp import web

from .app import create_app
from .config import Config
from .scenarios import parse_scenario, shipped_scenarios
from .simulator import Simulator
from .wire import sim_transaction

T = TypeVar("T")


class ServerError(AssertionError):
    """The simulator failed while serving a request during the test."""


class SimulatorServer:
    def __init__(self, config: Config | None = None, *, simulator: Simulator | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or Config(frozen_clock=True)
        self.host, self.port = host, port
        self._sim = simulator
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopped: asyncio.Event | None = None
        self.base_url = ""

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def simulator(self) -> Simulator:
        if self._sim is None:
            raise RuntimeError("the server is not running")
        return self._sim

    def start(self) -> SimulatorServer:
        if self._thread is not None:
            return self
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True,
                                        name="citcon-sim")
        self._thread.start()
        ready.result(timeout=30)  # re-raises a start-up failure (port in use, bad config)
        return self

    def _serve(self, ready: Future[None]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(ready))
        except BaseException as exc:  # surfaced through `ready` when start-up failed
            if not ready.done():
                ready.set_exception(exc)
        finally:
            loop.close()

    async def _main(self, ready: Future[None]) -> None:
        if self._sim is None:
            self.config.host, self.config.port = self.host, self.port
            self._sim = Simulator(self.config)
        self._runner = web.AppRunner(create_app(self._sim), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = self._sim.bound_url = f"http://{self.host}:{port}"
        self._stopped = asyncio.Event()
        ready.set_result(None)
        try:
            await self._stopped.wait()
        finally:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._thread is None or self._loop is None or self._stopped is None:
            return
        self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout=30)
        self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- running work on the server's loop ---------------------------------------------------

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's event loop and return its result (or raise)."""
        async def run() -> T:
            return fn()
        return self.run(run())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        if self._loop is None:
            raise RuntimeError("the server is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- helpers a merchant test wants ---------------------------------------------------------

    def url_for(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def pay(self, txn_id: str) -> dict[str, Any]:
        return self._view(lambda: self.simulator.ledger.consumer_pay(txn_id))

    def fail(self, txn_id: str, reason: str = "declined") -> dict[str, Any]:
        return self._view(lambda: self.simulator.ledger.consumer_fail(txn_id, reason))

    def expire(self, txn_id: str) -> dict[str, Any]:
        return self._view(lambda: self.simulator.ledger.expire(txn_id))

    def transaction(self, txn_id: str) -> dict[str, Any]:
        return self._view(lambda: self.simulator.ledger.get(txn_id))

    def transactions(self, token: str | None = None) -> list[dict[str, Any]]:
        def collect() -> list[dict[str, Any]]:
            sim = self.simulator
            merchant = sim.ledger.merchants.get(token) if token else None
            if token and merchant is None:
                return []
            found = sim.ledger.transactions(merchant, limit=10**9)
            return [sim_transaction(t, sim.clock) for t in found]
        return self.call(collect)

    def advance(self, seconds: float) -> int:
        """Move virtual time forward; scheduled work (expiry, retries, scripts) fires."""
        return self.call(lambda: self.simulator.advance(seconds))

    def reset(self, token: str | None = None) -> None:
        self.call(lambda: self.simulator.reset(token))

    def load_scenario(self, scenario: str, token: str | None = None) -> None:
        """YAML text, or the name of a shipped scenario (``declines``, ``flaky-ipn``…)."""
        shipped = shipped_scenarios()
        parsed = (parse_scenario(shipped[scenario], f"{scenario}.yaml") if scenario in shipped
                  else parse_scenario(scenario, "<test scenario>"))
        self.call(lambda: self.simulator.scenarios.load(parsed, token))

    def clear_scenarios(self, token: str | None = None) -> None:
        self.call(lambda: self.simulator.scenarios.clear(token))

    def requests(self, *, token: str | None = None, path: str | None = None,
                 transaction_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """The request journal, newest first."""
        return self.call(lambda: [
            e.as_dict() for e in self.simulator.journal.query(
                token=token, path=path, transaction_id=transaction_id, limit=limit)
        ])

    def ipn_log(self, transaction_id: str | None = None) -> list[dict[str, Any]]:
        """Notifications sent (or due), with their delivery attempts, newest first."""
        def collect() -> list[dict[str, Any]]:
            ipn = getattr(self.simulator, "ipn", None)
            if ipn is None:
                return []
            items = ipn.describe(transaction_id=transaction_id)
            return json.loads(json.dumps(items, default=str))
        return self.call(collect)

    def wait_for_ipn(self, transaction_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the transaction's notification has had a delivery attempt.

        Waits on the delivery worker (no polling sleeps); ``timeout`` is wall time.
        """
        async def wait() -> None:
            ipn = getattr(self.simulator, "ipn", None)
            if ipn is not None:
                await ipn.drain()
        self.run(asyncio.wait_for(wait(), timeout), timeout + 5)
        log = self.ipn_log(transaction_id)
        if not log:
            raise AssertionError(f"no IPN for {transaction_id}")
        return log[0]

    def check_assertions(self) -> None:
        """Re-raise the first unexpected server-side error since the last check."""
        errors = self.call(lambda: self.simulator.take_errors())
        if errors:
            raise ServerError(f"the simulator failed while serving: {errors[0]!r}") from errors[0]

    def _view(self, fn: Callable[[], Any]) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            return sim_transaction(fn(), self.simulator.clock)
        return self.call(run)
