"""The virtual clock and its scheduler: formatted times, the earliest job, and jobs that
fire (or fail) on a running clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from citcon_sim import Config, Simulator, create_app
from citcon_sim.domain.clock import TIME_FORMAT, Scheduler, VirtualClock
from citcon_sim.domain.events import EarliestJobChanged


@pytest.mark.parametrize("tz", [UTC, ZoneInfo("America/Los_Angeles"), ZoneInfo("Asia/Seoul")])
def test_formatted_time_matches_strftime(tz: Any) -> None:
    clock = VirtualClock(datetime(2026, 3, 8, 9, 59, 58, tzinfo=UTC), frozen=True, tz=tz)
    base = clock.time()
    for offset in (0, 0.25, 0.999, 1, 1.5, 86_400 * 200 + 0.5, -0.5, -3600.75):
        ts = base + offset
        for _ in range(2):  # miss, then hit
            assert clock.format(ts) == datetime.fromtimestamp(ts, tz).strftime(TIME_FORMAT)


def test_scheduler_reports_a_new_earliest_job() -> None:
    clock = VirtualClock(frozen=True)
    sched = Scheduler(clock)
    seen: list[float] = []
    sched.events.subscribe(EarliestJobChanged, lambda e: seen.append(e.due))
    now = clock.time()
    sched.at(now + 10, lambda: None)
    sched.at(now + 20, lambda: None)  # not the earliest: no call
    sched.at(now + 5, lambda: None)
    assert seen == [now + 10, now + 5]


async def test_running_clock_job_is_not_late(aiohttp_client: Callable[..., Any]) -> None:
    """The ticker sleeps up to 1 s; a job scheduled sooner wakes it."""
    sim = Simulator(Config(seed=1))
    await aiohttp_client(create_app(sim))
    await asyncio.sleep(0.05)  # the ticker is asleep now, for about a second
    fired: list[float] = []
    started = time.monotonic()
    sim.scheduler.after(0.05, lambda: fired.append(time.monotonic()))
    for _ in range(100):
        if fired:
            break
        await asyncio.sleep(0.01)
    assert fired and fired[0] - started < 0.5


async def test_failing_job_is_recorded(aiohttp_client: Callable[..., Any]) -> None:
    sim = Simulator(Config(seed=1))
    await aiohttp_client(create_app(sim))
    boom = RuntimeError("job")

    def bad() -> None:
        raise boom

    sim.scheduler.after(0.01, bad)
    for _ in range(100):
        if sim.errors:
            break
        await asyncio.sleep(0.01)
    assert sim.take_errors() == [boom]
