"""The performance changes keep behaviour: each fast path against the code it replaced."""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from citcon_sim import Config, Simulator, create_app
from citcon_sim.delivery.ipn import _Send
from citcon_sim.domain.clock import TIME_FORMAT, Scheduler, VirtualClock
from citcon_sim.domain.events import EarliestJobChanged
from citcon_sim.faces.online import requests
from citcon_sim.scenarios import _magic, parse_scenario, shipped_scenarios


def test_shipped_magic_amounts_pass_the_schema() -> None:
    """Start-up parses magic.yaml without schema validation; this is where it is checked."""
    validated = parse_scenario(shipped_scenarios()["magic"], "magic.yaml")
    assert _magic() == validated
    assert [r.line for r in _magic().rules] == [r.line for r in validated.rules]


@pytest.mark.parametrize("tz", [UTC, ZoneInfo("America/Los_Angeles"), ZoneInfo("Asia/Seoul")])
def test_cached_format_matches_strftime(tz: Any) -> None:
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


def _create(sim: Simulator, n: int) -> None:
    merchant = sim.ledger.merchant("gc-token")
    for i in range(n):
        # Fresh string objects each time, as from a request body.
        params = {"vendor": "alipay", "amount": "1000", "currency": "usd".upper(),
                  "reference": f"order-{i}", "ipn_url": "https://shop.example.com/ipn"[:],
                  "callback_url_fail": "".join(["https://shop.example.com/", "failed"]),
                  "note": f"order {i}"}
        sim.ledger.create_payment(merchant, requests.parse_payment(params, "pay_qr"))


@pytest.mark.slow
def test_frozen_ledger_is_freed_by_reset() -> None:
    sim = Simulator(Config(frozen_clock=True, seed=1))
    assert sim.freeze_stored() is False  # nothing stored yet
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _create(sim, Simulator.GC_FREEZE_STEP + 10)
        assert sim.freeze_stored() is True and gc.get_freeze_count() > 0
        assert sim.freeze_stored() is False  # not again until another step
        grown = tracemalloc.get_traced_memory()[0] - before
        sim.reset()
        assert gc.get_freeze_count() == 0  # unfrozen: cycles frozen alive can be collected
        left = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        gc.unfreeze()
    assert grown > 1_000_000
    assert left < grown / 10  # reference counting freed the frozen transactions


def test_shared_values_are_equal_and_bounded() -> None:
    sim = Simulator(Config(frozen_clock=True, seed=1))
    _create(sim, 5000)
    txns = list(sim.ledger.by_id.values())
    a, b = txns[-2], txns[-1]  # the shared table is emptied when full: neighbours share
    assert a.callback_url_fail is b.callback_url_fail == "https://shop.example.com/failed"
    assert a.currency is b.currency == "USD" and a.amount is b.amount == 1000
    assert [t.note for t in txns[:3]] == ["order 0", "order 1", "order 2"]
    assert len(sim.ledger._shared) <= 4096


async def test_ipn_worker_failure_is_recorded() -> None:
    sim = Simulator(Config(frozen_clock=True, seed=1))
    boom = RuntimeError("boom")

    async def broken(item: _Send) -> None:
        raise boom

    await sim.ipn.start()
    try:
        sim.ipn._send = broken  # type: ignore[method-assign]
        sim.ipn._queue.put_nowait(_Send("n-1", "first", None))
        await sim.ipn.drain()
    finally:
        await sim.ipn.close()
    assert sim.take_errors() == [boom]


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


# -- inquire's charge: every change shows in the next inquire ------------------------------

_AUTH = {"Authorization": "Bearer perf-token"}


async def _inquire(client: Any, txn_id: str) -> dict[str, Any]:
    resp = await client.post("/payment/inquire", data={"transaction_id": txn_id},
                             headers=_AUTH)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    return await resp.json()  # type: ignore[no-any-return]


async def _pay(client: Any, **fields: Any) -> str:
    data = {"vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "perf",
            "allow_duplicates": "yes", **{k: str(v) for k, v in fields.items()}}
    resp = await client.post("/payment/pay_qr", data=data, headers=_AUTH)
    assert resp.status == 200
    return (await resp.text()).split("q=")[1].split("&")[0]


def _fresh(sim: Simulator, txn_id: str) -> dict[str, Any]:
    """The charge as built from the ledger's transaction now."""
    import msgspec

    from citcon_sim.faces.online import wire

    return msgspec.to_builtins(wire.charge(sim.ledger.by_id[txn_id], sim.clock))  # type: ignore[no-any-return]


@pytest.fixture
async def frozen(aiohttp_client: Callable[..., Any]) -> tuple[Simulator, Any]:
    sim = Simulator(Config(frozen_clock=True, seed=99,
                           start_time=datetime(2026, 3, 2, 9, tzinfo=UTC)))
    return sim, await aiohttp_client(create_app(sim))


async def _check(sim: Simulator, client: Any, txn_id: str, before: dict[str, Any],
                 **expect: Any) -> dict[str, Any]:
    after = await _inquire(client, txn_id)
    assert after == _fresh(sim, txn_id) != before
    for key, value in expect.items():
        assert after[key] == value, key
    assert await _inquire(client, txn_id) == after  # the cached answer, once more
    return after


@pytest.mark.parametrize("action,status", [
    ("pay", "success"), ("fail", "fail"), ("cancel", "cancelled"), ("expire", "expired")])
async def test_cached_charge_follows_control_actions(
    frozen: tuple[Simulator, Any], action: str, status: str
) -> None:
    sim, client = frozen
    txn_id = await _pay(client)
    before = await _inquire(client, txn_id)
    assert before == await _inquire(client, txn_id) and before["status"] is None
    assert (await client.post(f"/_sim/transactions/{txn_id}/{action}")).status == 200
    await _check(sim, client, txn_id, before, status=status)


async def test_cached_charge_follows_lazy_expiry_and_merchant_calls(
    frozen: tuple[Simulator, Any]
) -> None:
    sim, client = frozen
    # Lazy expiry (Ledger.refresh) when the clock passes the timeout.
    txn_id = await _pay(client, timeout=60)
    before = await _inquire(client, txn_id)
    assert (await client.post("/_sim/clock/advance", json={"seconds": 120})).status == 200
    await _check(sim, client, txn_id, before, status="expired")

    # Merchant cancel.
    txn_id = await _pay(client)
    before = await _inquire(client, txn_id)
    resp = await client.post("/payment/cancel", data={"transaction_id": txn_id}, headers=_AUTH)
    assert resp.status == 200 and (await resp.json())["cancelled"] is True
    await _check(sim, client, txn_id, before, status="cancelled")

    # Refunds: each partial refund, even of the same amount, is a new answer.
    txn_id = await _pay(client)
    await client.post(f"/_sim/transactions/{txn_id}/pay")
    before = await _inquire(client, txn_id)
    for n in (1, 2):
        resp = await client.post("/payment/refund", headers=_AUTH,
                                 data={"transaction_id": txn_id, "amount": "10",
                                       "currency": "USD"})
        assert (await resp.json())["refunded"] is True
        before = await _check(sim, client, txn_id, before, refunded_amount=10 * n)
        assert len(before["refunds"]) == n


async def test_cached_charge_follows_captures_and_direct_changes(
    frozen: tuple[Simulator, Any]
) -> None:
    sim, client = frozen
    txn_id = await _pay(client, vendor="klarna", amount=4000, auto_capture="false")
    await client.post(f"/_sim/transactions/{txn_id}/pay")
    before = await _inquire(client, txn_id)
    assert before["status"] == "authorized"
    for n, last in ((1, "false"), (2, "true")):
        resp = await client.post("/payment/capture", headers=_AUTH, data={
            "transaction_id": txn_id, "amount": "100", "multi_capture": "true",
            "last_capture": last})
        assert resp.status == 200, await resp.text()
        before = await _check(sim, client, txn_id, before, captured_amount=100 * n)
    assert before["status"] == "success" and len(before["captures"]) == 2

    # Any field charge() reads, changed by any path (scenarios, --state), is seen.
    txn = sim.ledger.by_id[txn_id]
    txn.auto_capture = not txn.auto_capture
    before = await _check(sim, client, txn_id, before, auto_capture=txn.auto_capture)
    txn.note = "changed"
    await _check(sim, client, txn_id, before, note="changed")


async def test_cached_charge_is_not_reused_after_reset(frozen: tuple[Simulator, Any]) -> None:
    sim, client = frozen
    first = await _pay(client, reference="before-reset")
    await client.post(f"/_sim/transactions/{first}/pay")
    before = await _inquire(client, first)
    assert (await client.post("/_sim/reset")).status == 200
    sim.ledger.ids = type(sim.ledger.ids)(99)  # the same id sequence again
    again = await _pay(client, reference="after-reset")
    assert again == first
    after = await _check(sim, client, again, before, reference="after-reset", status=None)
    assert after["id"] == before["id"]


def test_long_field_limits_only_raise_the_default() -> None:
    """params.normalise looks up a field's own limit only past MAX_VALUE_LENGTH."""
    from citcon_sim.domain.errors import BadRequest
    from citcon_sim.faces import params

    assert all(limit >= params.MAX_VALUE_LENGTH for limit in params.LONG_FIELDS.values())
    with pytest.raises(BadRequest):
        params.normalise([("reference", "x" * (params.MAX_VALUE_LENGTH + 1))])
    assert params.normalise([("note", "x" * 4096)])["note"] == "x" * 4096
    with pytest.raises(BadRequest):
        params.normalise([("note", "x" * 4097)])


@pytest.mark.slow
def test_start_up_imports_nothing_it_does_not_need() -> None:
    """Start-up time: YAML, the currency table, templates, locale data, fake names and
    the JSON Schema validator are imported on first use, not by ``citcon-sim serve``."""
    import subprocess
    import sys

    heavy = ("yaml", "iso4217", "jinja2", "babel", "faker", "jsonschema", "segno")
    code = ("import sys, citcon_sim.cli, citcon_sim.web.app; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
