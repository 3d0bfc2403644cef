"""The simulator's only source of time, and a scheduler that runs on it.

Time is virtual: ``now()`` is a start instant plus, in ``running`` mode, the wall-clock
time elapsed since start, plus everything ``advance()`` has added. In ``frozen`` mode
only ``advance()`` moves it, which is what test suites want. The clock never goes back
(like trio's ``MockClock.jump``), so expiry, cancellation windows, day roll-over and IPN
backoff can all be driven by one call.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

import msgspec

from citcon_sim.domain.events import EarliestJobChanged, EventBus

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class VirtualClock:
    def __init__(
        self,
        start: datetime | None = None,
        *,
        frozen: bool = False,
        tz: tzinfo = UTC,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        start = start or datetime.now(tz)
        if start.tzinfo is None:
            start = start.replace(tzinfo=tz)
        self.tz = tz
        self.frozen = frozen
        self._start = start.timestamp()
        self._monotonic = monotonic
        self._mono0 = monotonic()
        self._offset = 0.0
        self._formatted: dict[int, str] = {}  # whole second -> format() text

    def time(self) -> float:
        """Seconds since the epoch, on the virtual clock."""
        elapsed = 0.0 if self.frozen else self._monotonic() - self._mono0
        return self._start + elapsed + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), self.tz)

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock never goes back")
        self._offset += seconds
        return self.time()

    def set_frozen(self, frozen: bool) -> None:
        """Switch mode without a jump in virtual time."""
        now = self.time()
        self.frozen = frozen
        self._mono0 = self._monotonic()
        self._offset = now - self._start

    def export(self) -> ClockExport:
        return ClockExport(self.time(), self.frozen, time.time())

    def load(self, export: ClockExport) -> None:
        """Set the saved time exactly (backwards too). The mode stays this clock's own: it
        is the server's choice, not the saved state's. The clock itself is not replaced:
        the scheduler, the ledger and the journal all read this one."""
        self._start = export.time
        self._offset = 0.0
        self._mono0 = self._monotonic()

    def format(self, ts: float) -> str:
        # The text has second resolution, so it depends only on the whole second; every
        # journal entry and inquire formats the same few seconds again and again.
        # Bounded: cleared when it holds 4096.
        second = math.floor(ts)
        text = self._formatted.get(second)
        if text is None:
            if len(self._formatted) >= 4096:
                self._formatted.clear()
            text = datetime.fromtimestamp(second, self.tz).strftime(TIME_FORMAT)
            self._formatted[second] = text
        return text

    def iso(self, ts: float) -> str:
        return datetime.fromtimestamp(ts, self.tz).isoformat()

    def day(self, ts: float | None = None) -> int:
        """Ordinal of the calendar day (in the clock's zone) holding ``ts``."""
        ts = self.time() if ts is None else ts
        return datetime.fromtimestamp(ts, self.tz).toordinal()

    def start_of_next_day(self, ts: float | None = None) -> float:
        ts = self.time() if ts is None else ts
        d = datetime.fromtimestamp(ts, self.tz).date() + timedelta(days=1)
        return datetime(d.year, d.month, d.day, tzinfo=self.tz).timestamp()


class ClockExport(msgspec.Struct, frozen=True):
    """A clock's virtual time and mode, and the wall time (epoch seconds) they were read
    at (None when unknown, as in a hand-written fixture)."""

    time: float
    frozen: bool = True
    wall: float | None = None

    def resumed(self, frozen: bool) -> ClockExport:
        """The time to restart at, for a clock now ``frozen`` or running: a running clock
        saved while running keeps its lead or lag over wall time, so the downtime passes
        as it would for a real gateway; otherwise the saved time, exactly."""
        if frozen or self.frozen or self.wall is None:
            return self
        now = time.time()
        return ClockExport(self.time + max(0.0, now - self.wall), self.frozen, now)


class _Job(msgspec.Struct, order=True):
    """A scheduled callback, ordered by due time then by scheduling order."""

    due: float
    seq: int
    # Jobs order by (due, seq); seq is unique, so no comparison reaches the fields below.
    action: Callable[[], object]
    label: str = ""
    cancelled: bool = False


class Scheduler:
    """Runs callbacks when the virtual clock reaches their due time.

    Jobs fire from ``run_due()``, which the simulator calls after every ``advance`` and
    from a background ticker in running mode. Callbacks are plain functions; anything
    asynchronous (an IPN POST) is handed to its own worker by the callback.
    """

    def __init__(self, clock: VirtualClock, events: EventBus | None = None) -> None:
        self.clock = clock
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        # EarliestJobChanged goes out when a new job becomes the earliest: the app's ticker
        # sleeps until the earliest job (at most 1 s) and must wake sooner for this one.
        self.events = events if events is not None else EventBus()

    def at(self, due: float, action: Callable[[], object], label: str = "") -> _Job:
        job = _Job(due, next(self._seq), action, label)
        heapq.heappush(self._heap, job)
        if self._heap[0] is job:
            self.events.publish(EarliestJobChanged(due))
        return job

    def after(self, seconds: float, action: Callable[[], object], label: str = "") -> _Job:
        return self.at(self.clock.time() + seconds, action, label)

    def next_due(self) -> float | None:
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].due if self._heap else None

    def pending(self) -> list[tuple[float, str]]:
        return sorted((j.due, j.label) for j in self._heap if not j.cancelled)

    def run_due(self) -> int:
        """Run every job due by now, in due order; jobs they schedule run too if due."""
        ran = 0
        while self._heap and self._heap[0].due <= self.clock.time():
            job = heapq.heappop(self._heap)
            if not job.cancelled:
                job.action()
                ran += 1
        return ran

    def clear(self) -> None:
        self._heap.clear()
