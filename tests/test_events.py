"""The simulator's event bus: what is published, and that a failing handler is recorded
without breaking the publisher."""

from __future__ import annotations

from typing import Any

import pytest

from citcon_sim import Config, Simulator
from citcon_sim.domain.commands import Money, PaymentCommand
from citcon_sim.domain.errors import Unavailable
from citcon_sim.domain.events import (
    ClockMoved,
    EarliestJobChanged,
    EventBus,
    IpnChanged,
    Reset,
    ScenarioLoaded,
    ScenariosCleared,
    TransactionChanged,
    UnexpectedError,
)
from citcon_sim.domain.vendors import VENDORS
from citcon_sim.scenarios import parse_scenario

from .conftest import START


def test_handlers_run_in_order_and_unsubscribe() -> None:
    bus = EventBus()
    seen: list[str] = []
    stop_a = bus.subscribe(Reset, lambda e: seen.append(f"a:{e.token}"))
    bus.subscribe(Reset, lambda e: seen.append(f"b:{e.token}"))
    bus.subscribe(ClockMoved, lambda e: seen.append("clock"))
    bus.publish(Reset("t1"))
    stop_a()
    stop_a()  # twice is harmless
    bus.publish(Reset(None))
    assert seen == ["a:t1", "b:t1", "b:None"]


def test_a_failing_handler_is_published_as_an_unexpected_error() -> None:
    bus = EventBus()
    boom = RuntimeError("boom")
    errors: list[UnexpectedError] = []
    after: list[Reset] = []

    def broken(event: Reset) -> None:
        raise boom

    bus.subscribe(Reset, broken)
    bus.subscribe(Reset, after.append)
    bus.subscribe(UnexpectedError, errors.append)
    bus.publish(Reset())  # does not raise
    assert len(after) == 1  # later handlers still run
    assert [e.error for e in errors] == [boom] and "broken" in errors[0].where


def test_a_failing_error_handler_does_not_loop() -> None:
    bus = EventBus()

    def broken(event: UnexpectedError) -> None:
        raise RuntimeError("again")

    bus.subscribe(UnexpectedError, broken)
    bus.publish(UnexpectedError(RuntimeError("first")))  # logged, not republished


def test_a_critical_handler_error_reaches_the_publisher() -> None:
    bus = EventBus()
    seen: list[Any] = []
    bus.subscribe(UnexpectedError, seen.append)

    def write(event: Reset) -> None:
        raise OSError("disk full")

    bus.subscribe(Reset, write, critical=True)
    bus.subscribe(Reset, seen.append)
    with pytest.raises(OSError, match="disk full"):
        bus.publish(Reset())
    assert seen == []  # neither recorded as unexpected nor handed to later handlers


def test_a_failed_state_write_fails_the_operation(tmp_path: Any) -> None:
    sim = Simulator(Config(frozen_clock=True, start_time=START,
                           state_file=tmp_path / "state.jsonl"))
    assert sim.persistence is not None
    cmd = PaymentCommand("pay_qr", VENDORS["alipay"], "r", Money(100, "USD"), None)
    merchant = sim.ledger.merchant("t")
    sim.ledger.create_payment(merchant, cmd)  # written
    state = sim.persistence
    fd, state.fd = state.fd, -1  # the next write fails, as on a full disk
    try:
        # The domain's 503 (the simulator stops serving), caused by the OSError.
        with pytest.raises(Unavailable) as info:
            sim.ledger.create_payment(merchant, PaymentCommand(
                "pay_qr", VENDORS["alipay"], "r2", Money(100, "USD"), None))
        assert isinstance(info.value.__cause__, OSError) and sim.failure is info.value
    finally:
        state.fd = fd
        state.close()


def test_a_handler_may_unsubscribe_while_running() -> None:
    bus = EventBus()
    seen: list[int] = []

    def once(event: Reset) -> None:
        seen.append(1)
        stop()

    stop = bus.subscribe(Reset, once)
    bus.subscribe(Reset, lambda e: seen.append(2))
    bus.publish(Reset())
    bus.publish(Reset())
    assert seen == [1, 2, 2]


@pytest.fixture
def sim() -> Simulator:
    return Simulator(Config(frozen_clock=True, start_time=START, seed=3))


def _record(sim: Simulator, *kinds: type) -> list[Any]:
    seen: list[Any] = []
    for kind in kinds:
        sim.events.subscribe(kind, seen.append)
    return seen


def _txn(sim: Simulator, reference: str = "r1", **extra: Any) -> str:
    merchant = sim.ledger.merchant("tok-123456")
    cmd = PaymentCommand(method="pay_qr", vendor=VENDORS["alipay"], reference=reference,
                         settlement=Money(1000, "USD"), transaction=None, **extra)
    txn, _ = sim.ledger.create_payment(merchant, cmd)
    return txn.id


def test_one_bus_per_simulator_carries_every_part(sim: Simulator) -> None:
    assert sim.ledger.events is sim.events and sim.scheduler.events is sim.events
    assert sim.ipn.events is sim.events and sim.scenarios.events is sim.events
    assert Simulator(Config()).events is not sim.events


def test_simulator_publishes_clock_reset_and_scenarios(sim: Simulator) -> None:
    seen = _record(sim, ClockMoved, Reset, ScenarioLoaded, ScenariosCleared)
    sim.advance(30)
    sim.reset("tok-123456")
    sim.reset()
    sim.scenarios.load(parse_scenario("name: s1\nrules: []\n", "s1.yaml"), "tok-123456")
    sim.scenarios.clear()
    moved, one, every, loaded, cleared = seen
    assert isinstance(moved, ClockMoved) and moved.seconds == 30
    assert moved.now == sim.clock.time()
    assert (one.token, every.token) == ("tok-123456", None)
    assert (loaded.name, loaded.token, cleared.token) == ("s1", "tok-123456", None)


def test_transactions_and_ipn_changes_are_published(sim: Simulator) -> None:
    seen = _record(sim, TransactionChanged, IpnChanged)
    txn_id = _txn(sim, ipn_url="https://shop.example/ipn")
    sim.ledger.consumer_pay(txn_id)
    kinds = [(type(e).__name__, e.kind) for e in seen]
    # Synchronous and nested: the IPN sender (subscribed first) records the notification
    # while "paid" is being published, before later subscribers see "paid".
    assert kinds == [("TransactionChanged", "created"), ("IpnChanged", "recorded"),
                     ("TransactionChanged", "paid")]
    assert seen[1].notification.transaction_id == txn_id


def test_a_new_earliest_job_is_published(sim: Simulator) -> None:
    seen = _record(sim, EarliestJobChanged)
    now = sim.clock.time()
    sim.scheduler.at(now + 10, lambda: None)
    sim.scheduler.at(now + 20, lambda: None)
    assert [e.due for e in seen] == [now + 10]


def test_a_failing_subscriber_never_breaks_a_payment_and_is_recorded(sim: Simulator) -> None:
    boom = RuntimeError("subscriber bug")

    def broken(event: TransactionChanged) -> None:
        raise boom

    sim.events.subscribe(TransactionChanged, broken)
    txn_id = _txn(sim)
    assert sim.ledger.consumer_pay(txn_id).status.value == "success"
    assert sim.take_errors() == [boom, boom]  # created, paid


def test_record_error_is_published(sim: Simulator) -> None:
    seen = _record(sim, UnexpectedError)
    boom = ValueError("x")
    sim.record_error(boom, "somewhere")
    assert [(e.error, e.where) for e in seen] == [(boom, "somewhere")]
    assert sim.take_errors() == [boom]
