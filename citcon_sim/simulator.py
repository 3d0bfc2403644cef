"""The ``Simulator``: one object that owns the clock, the ledger and everything wired to
them. The CLI, the pytest plugin and the Docker image all run this same object.

Its parts talk through one :class:`~citcon_sim.domain.events.EventBus`, ``sim.events``:
the ledger publishes ``TransactionChanged``, the IPN sender ``IpnChanged``, the scheduler
``EarliestJobChanged``, the scenario book ``ScenarioLoaded`` / ``ScenariosCleared``, and
the simulator itself ``ClockMoved``, ``Reset`` and ``UnexpectedError``, an imported state
``StateRestored``. Anything that wants to follow the state (the ``--state`` journal, the
dashboard, a test) subscribes::

    sim.events.subscribe(TransactionChanged, journal_it)
"""

from __future__ import annotations

import functools
import gc
import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from citcon_sim.config import Config, load_merchants_file
from citcon_sim.delivery.ipn import IpnExport, IpnSender
from citcon_sim.delivery.qr import QrCache
from citcon_sim.domain.clock import Scheduler, VirtualClock
from citcon_sim.domain.errors import TransitionError, Unavailable
from citcon_sim.domain.events import (
    ClockMoved,
    EventBus,
    Reset,
    TransactionChanged,
    UnexpectedError,
)
from citcon_sim.domain.ids import IdFactory
from citcon_sim.domain.ledger import Ledger, Status, Transaction
from citcon_sim.domain.money import FxTable
from citcon_sim.domain.netrules import allowlist
from citcon_sim.domain.scripts import PaymentScript
from citcon_sim.faces import FACES
from citcon_sim.faces.journal import Journal
from citcon_sim.scenarios import Scenario, ScenarioBook, load_packaged_data, resolve_scenario

if TYPE_CHECKING:
    from citcon_sim.persistence.state import StateFile

# A Host header worth echoing: name or IPv4, or a bracketed IPv6 literal, and a port.
_HOST = re.compile(r"(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


class Simulator:
    def __init__(self, config: Config | None = None) -> None:
        self.config = config = config or Config()
        # Unexpected exceptions while serving (answered as 4000), in event handlers, IPN
        # workers and scheduled jobs; tests re-raise them.
        self.errors: list[BaseException] = []
        self.events = events = EventBus()
        events.subscribe(UnexpectedError, self._keep_error)
        self.tz = ZoneInfo(config.timezone)
        self.clock = VirtualClock(config.start_time, frozen=config.frozen_clock, tz=self.tz)
        self.scheduler = Scheduler(self.clock, events)
        merchants, fx = None, dict(config.fx)
        if config.merchants_file is not None:
            merchants, file_fx = load_merchants_file(config.merchants_file)
            fx = {**file_fx, **fx}
        self.fx = FxTable(fx)
        self.ledger = Ledger(
            self.clock, fx=self.fx, ids=IdFactory(config.seed), merchants=merchants,
            events=events,
        )
        self.qr = QrCache()
        self.journal = Journal(config.journal_size, self.clock.format,
                               max_bytes=config.journal_bytes)
        # The package's data files, read now: a request must never find them gone (a
        # `pip install` over the running install replaces them).
        load_packaged_data()
        self.scenarios = ScenarioBook(magic=config.magic_amounts, events=events)
        # --scenario files are read once, here; clear_scenarios() loads them again from these.
        self.configured_scenarios: tuple[Scenario, ...] = tuple(
            resolve_scenario(spec) for spec in config.scenarios)
        for scenario in self.configured_scenarios:
            self.scenarios.load(scenario.fresh())
        # Handlers run in subscription order: scripted outcomes, the IPN sender, then
        # --state (below) and the dashboard (when the app starts).
        events.subscribe(TransactionChanged, self._apply_payment_script)
        self.ipn = IpnSender(
            self.clock, self.scheduler, self.ledger, events=events,
            encoders={face.name: face.ipn for face in FACES},  # each face's IPN format
            timeout=config.ipn_timeout, backoff=config.ipn_backoff,
            queue_size=config.ipn_queue_size, workers=config.ipn_workers,
            per_endpoint=config.ipn_per_endpoint, allow=allowlist(config.ipn_allow),
        )
        events.subscribe(TransactionChanged, self.ipn.on_event)
        # After the IPN sender: a payment's own notification is recorded before the
        # surprise that follows it (a second payment of the same QR).
        events.subscribe(TransactionChanged, self._surprise)
        self.bound_url: str | None = None  # set once the server listens
        # freeze_stored(): ledger records (transactions + refunds) at the last gc.freeze().
        self._gc_mark = 0
        self._gc_frozen = False
        # --state FILE: load it, then journal every change to it (last: it restores all,
        # then subscribes to the events it journals).
        self.persistence: StateFile | None = None
        if config.state_file is not None:
            from citcon_sim.persistence.state import (
                StateFile,  # only with --state: not on every start-up
            )

            self.persistence = StateFile.open(self, config.state_file)

    @property
    def failure(self) -> Unavailable | None:
        """Set once the ``--state`` file could not be written: the simulator then answers
        every request with it (503) until a restart (``persistence/journal.py``)."""
        return None if self.persistence is None else self.persistence.failure

    # -- URLs handed to merchants and consumers -----------------------------------------

    def base_url(self, request_host: str | None = None) -> str:
        """Configured public URL, else the listening address; a wildcard listener
        (0.0.0.0) answers with the Host the client used to reach it."""
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        if self.config.host in ("0.0.0.0", "::", "") and request_host and _HOST.fullmatch(
                request_host):  # never echo junk (or undecodable bytes) into the URLs
            return f"http://{request_host}"
        if self.bound_url:
            return self.bound_url
        return f"http://{self.config.host}:{self.config.serve_port}"

    def wallet_url(self, txn_id: str, base: str | None = None) -> str:
        return f"{base or self.base_url()}/u_landing?q={txn_id}"

    def qr_url(self, txn_id: str, base: str | None = None) -> str:
        return f"{base or self.base_url()}/payment/qr?q={txn_id}"

    def advance(self, seconds: float) -> int:
        """Move virtual time forward and run everything that fell due."""
        now = self.clock.advance(seconds)
        self.events.publish(ClockMoved(seconds, now))
        return self.scheduler.run_due()

    def record_error(self, exc: BaseException, where: str = "") -> None:
        """An unexpected exception: published, and kept for the test helpers."""
        self.events.publish(UnexpectedError(exc, where))

    def _keep_error(self, event: UnexpectedError) -> None:
        if len(self.errors) < 100:
            self.errors.append(event.error)

    def take_errors(self) -> list[BaseException]:
        errors, self.errors = self.errors, []
        return errors

    # Stored transactions and refunds live until a reset, and every full garbage
    # collection walks all of them: 0.1 s at 200,000 stored, 0.5 s at 1,000,000, each time
    # the heap grows by a quarter. Those pauses were the p99 of every row. So each time the
    # ledger has grown by GC_FREEZE_STEP records, the objects not yet frozen are collected
    # (a pause bounded by one step's worth, not by the ledger) and gc.freeze() moves them
    # out of later collections. Ledger objects hold no reference cycles, so reference
    # counting still frees them on reset; a full reset also unfreezes, so that a cycle
    # frozen while alive (a connection's objects) can be collected once it is garbage.
    GC_FREEZE_STEP = 10_000

    def freeze_stored(self) -> bool:
        """gc.freeze() once the ledger has grown by a step; whether it did. Only
        ``citcon-sim serve`` calls it: a library user's process is never frozen."""
        stored = len(self.ledger.by_id) + len(self.ledger.refunds_by_id)
        if stored - self._gc_mark < self.GC_FREEZE_STEP:
            return False
        gc.collect()  # no garbage cycle is frozen: only what is alive now
        gc.freeze()
        self._gc_mark, self._gc_frozen = stored, True
        return True

    def reset(self, token: str | None = None) -> None:
        """Forget transactions (all, or one merchant's). Loaded scenarios stay loaded."""
        if token is None:
            self.install(self.ledger.empty(), IpnExport())
        else:
            self.ledger.forget(token)
            self.ipn.reset(token)  # the log, and the retries still pending
        self._gc_mark = min(self._gc_mark, len(self.ledger.by_id) + len(self.ledger.refunds_by_id))
        if token is None and self._gc_frozen:
            gc.unfreeze()  # the next full collection may look at everything again
            self._gc_frozen = False
        self.events.publish(Reset(token))  # last: subscribers see what is left

    def reload_scenarios(self) -> None:
        """Unload every scenario, then load the configured ones (``--scenario``) again,
        their counters at zero: the state they started in."""
        self.scenarios.clear()
        for scenario in self.configured_scenarios:
            self.scenarios.load(scenario.fresh())

    def install(self, ledger: Ledger, notifications: IpnExport) -> None:
        """Put ``ledger`` and the IPN log ``notifications`` in place of the current ones,
        wired the same way: a full reset and a restore (``citcon_sim.persistence``) both
        come here, so this is the one place a ledger is connected to the rest.

        Everything derived from the old world goes (due jobs, the request journal, cached
        answers); scripted payments of ``ledger`` still due are rescheduled at their
        virtual time, and its IPN sends still due are queued or rescheduled. Nothing here
        can fail halfway: validate before calling.
        """
        ledger.events = self.events  # the simulator's one bus: same subscribers, old and new
        self.scheduler.clear()
        self.journal.clear()
        self.ledger = ledger
        for txn in ledger.by_id.values():
            script = txn.script.payment if txn.script is not None else None
            if script is not None and script.after > 0 and script.outcome != "pending" \
                    and txn.status is Status.PENDING:
                self.scheduler.at(txn.created_at + script.after,
                                  functools.partial(self._play, txn, script),
                                  f"{script.outcome} {txn.id}")
        self.ipn.load(notifications, ledger)

    # -- scripted payment outcomes ---------------------------------------------------------

    def _apply_payment_script(self, event: TransactionChanged) -> None:
        """A scenario's payment outcome, played through the consumer's own operations."""
        txn = event.transaction
        if event.kind != "created" or txn.script is None or txn.script.payment is None:
            return
        script = txn.script.payment
        if script.outcome == "pending":
            return
        if script.after > 0:
            self.scheduler.after(script.after, lambda: self._play(txn, script),
                                 f"{script.outcome} {txn.id}")
        else:
            self._play(txn, script)

    def _surprise(self, event: TransactionChanged) -> None:
        """The scenario's surprises after the end: a second payment of the same QR (at
        once), a late confirmation of a payment that expired or was cancelled unpaid (on
        the virtual clock)."""
        txn, kind = event.transaction, event.kind
        if txn.script is None or txn.script.payment is None:
            return
        script = txn.script.payment
        if kind in ("paid", "authorized") and script.paid_twice:
            self.ledger.pay_twice(txn.id)
        elif kind in ("expired", "cancelled") and script.late_confirm is not None \
                and txn.paid_at is None:
            self.scheduler.at(txn.updated_at + script.late_confirm,
                              lambda: self._still(txn, self.ledger.late_confirm),
                              f"late confirmation {txn.id}")

    def _still(self, txn: Transaction, act: Callable[[str], object]) -> None:
        """``act`` on ``txn`` unless it was reset meanwhile or has moved on (an expired
        payment cancelled later is confirmed once, not twice)."""
        if self.ledger.by_id.get(txn.id) is not txn:
            return
        try:
            act(txn.id)
        except TransitionError:
            pass

    def _play(self, txn: Transaction, script: PaymentScript) -> None:
        self.ledger.refresh(txn)
        if txn.status is not Status.PENDING or self.ledger.by_id.get(txn.id) is not txn:
            return  # paid, cancelled or reset meanwhile: the script no longer applies
        if script.outcome == "authorize":
            # Only delayed-capture vendors can hold an authorisation; others simply pay.
            txn.auto_capture = not txn.vendor.delayed_capture
            self.ledger.consumer_act(txn.id, "pay")
        else:
            self.ledger.consumer_act(txn.id, script.outcome, script.reason)
