"""Fair, honest IPN delivery (citcon_sim/delivery/ipn.py): per-endpoint and per-merchant
turns, a cap on one endpoint's sends in flight, a local backlog that is never an attempt
nor a failure, and the delivery settings from Config, flags and environment.

Receivers are real HTTP servers on 127.0.0.1. Assertions are on order and completion,
never on wall-clock speed; virtual-time retries are driven by advancing the clock.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from citcon_sim import Config, Simulator, create_app
from citcon_sim.config import ConfigError
from citcon_sim.delivery.ipn import DELIVERED, FAILED, FairQueue, _Send, endpoint_of
from citcon_sim.domain.events import IpnChanged
from citcon_sim.faces.online import requests

from .helpers import IpnReceiver, advance, create, examples, frozen_config

Server = Callable[..., Any]  # the aiohttp_server fixture


async def receiver_on(aiohttp_server: Server) -> IpnReceiver:
    """A merchant endpoint of its own (its own port: its own endpoint)."""
    receiver = IpnReceiver()
    server: TestServer = await aiohttp_server(receiver.app(), host="127.0.0.1")
    receiver.bound(str(server.make_url("")))
    return receiver


@pytest.fixture
async def two_receivers(aiohttp_server: Server) -> AsyncIterator[tuple[IpnReceiver, IpnReceiver]]:
    first, second = await receiver_on(aiohttp_server), await receiver_on(aiohttp_server)
    yield first, second
    first.release()
    second.release()


async def paid(client: TestClient[Any, Any], sim: Simulator, token: str, url: str,
               ref: str) -> str:
    """A payment created over HTTP and paid at once (its IPN is due now: frozen clock)."""
    txn_id = await create(client, token=token, ipn_url=url, reference=ref)
    sim.ledger.consumer_pay(txn_id)
    return txn_id


def delivered_future(sim: Simulator, txn_id: str) -> asyncio.Future[None]:
    """Resolves when ``txn_id``'s notification is delivered (an event, not a poll)."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def seen(event: IpnChanged) -> None:
        n = event.notification
        if n.transaction_id == txn_id and n.state == DELIVERED and not done.done():
            done.set_result(None)

    sim.events.subscribe(IpnChanged, seen)
    return done


# -- fairness -----------------------------------------------------------------------------


async def test_a_hanging_endpoint_does_not_hold_up_another_merchant(
    aiohttp_client: Callable[..., Any], two_receivers: tuple[IpnReceiver, IpnReceiver]
) -> None:
    """Four workers, eight notifications to an endpoint that never answers, then another
    merchant's: it is delivered while the hanging ones are still in their first attempt,
    and the hanging endpoint holds only its two slots."""
    hanging, healthy = two_receivers
    hanging.answer(delay=math.inf)
    # The attempt timeout outlasts the test: only fair turns can deliver the healthy IPN.
    client, sim = await _client(aiohttp_client, ipn_workers=4, ipn_per_endpoint=2,
                                ipn_timeout=600)
    stuck = [await paid(client, sim, "merchant-a", hanging.url, f"a{i}") for i in range(8)]
    ok = await create(client, token="merchant-b", ipn_url=healthy.url, reference="b1")
    arrived = delivered_future(sim, ok)
    sim.ledger.consumer_pay(ok)
    await asyncio.wait_for(arrived, 30)  # a failsafe only; old code never got there
    assert [p["id"] for p in healthy.posts] == [ok]
    started = [len(sim.ipn.for_transaction(t)[0].attempts) for t in stuck]
    assert sorted(started) == [0] * 6 + [1] * 2  # the endpoint's cap: two in flight
    assert all(sim.ipn.for_transaction(t)[0].attempts[-1].status is None
               for t, n in zip(stuck, started, strict=True) if n)  # none answered yet
    assert sim.ipn.summary()["in_flight"] == 2


async def test_merchants_sharing_an_endpoint_take_turns(
    aiohttp_client: Callable[..., Any], two_receivers: tuple[IpnReceiver, IpnReceiver]
) -> None:
    """One worker: merchant A's burst of 20 and B's single IPN to the same endpoint; B
    goes second, not 21st. Another endpoint's IPN goes in the first round too."""
    shared, other = two_receivers
    client, sim = await _client(aiohttp_client, ipn_workers=1)
    a_ids = [await create(client, token="merchant-a", ipn_url=shared.url, reference=f"a{i}")
             for i in range(20)]
    b_id = await create(client, token="merchant-b", ipn_url=shared.url, reference="b")
    c_id = await create(client, token="merchant-c", ipn_url=other.url, reference="c")
    sent: list[str] = []  # transaction ids in the order their attempts ended
    sim.events.subscribe(IpnChanged, lambda e: e.kind == "attempted" and sent.append(
        e.notification.transaction_id))
    for txn_id in [*a_ids, b_id, c_id]:  # all queued before the worker runs
        sim.ledger.consumer_pay(txn_id)
    await sim.ipn.drain()
    # Endpoints alternate (shared, other, shared...), and on the shared one the merchants
    # do (A, B, A...); A's own notifications keep their order.
    assert sent == [a_ids[0], c_id, b_id, *a_ids[1:]]
    assert [p["id"] for p in shared.posts] == [a_ids[0], b_id, *a_ids[1:]]
    assert all(len(n.attempts) == 1 and n.state == DELIVERED
               for n in sim.ipn.notifications.values())


async def test_a_redelivery_goes_first_in_its_merchants_lane(
    aiohttp_client: Callable[..., Any], two_receivers: tuple[IpnReceiver, IpnReceiver]
) -> None:
    """Asked for by hand ("send again now"): it does not wait behind the merchant's
    backlog."""
    receiver, _ = two_receivers
    client, sim = await _client(aiohttp_client, ipn_workers=1)
    first = await paid(client, sim, "merchant-a", receiver.url, "first")
    await sim.ipn.drain()
    later = [await create(client, token="merchant-a", ipn_url=receiver.url, reference=f"l{i}")
             for i in range(5)]
    for txn_id in later:
        sim.ledger.consumer_pay(txn_id)
    again = sim.ipn.redeliver(sim.ipn.for_transaction(first)[0].notify_id)
    await sim.ipn.drain()
    assert (await again).trigger == "redeliver"
    assert [p["id"] for p in receiver.posts] == [first, first, *later]


async def test_a_reset_takes_the_merchants_queued_sends_out(
    aiohttp_client: Callable[..., Any], two_receivers: tuple[IpnReceiver, IpnReceiver]
) -> None:
    receiver, _ = two_receivers
    client, sim = await _client(aiohttp_client, ipn_workers=1)
    gone = [await create(client, token="merchant-a", ipn_url=receiver.url, reference=f"a{i}")
            for i in range(5)]
    kept = await create(client, token="merchant-b", ipn_url=receiver.url, reference="b")
    for txn_id in [*gone, kept]:
        sim.ledger.consumer_pay(txn_id)
    sim.ipn.reset("merchant-a")
    assert sim.ipn.summary()["queued"] == 1  # not left for the workers to skip
    await sim.ipn.drain()
    assert [p["id"] for p in receiver.posts] == [kept]


# -- the backlog is local: never an attempt, never a failure --------------------------------


async def test_a_full_backlog_records_no_attempt_and_nothing_fails_unsent(
    aiohttp_client: Callable[..., Any], two_receivers: tuple[IpnReceiver, IpnReceiver]
) -> None:
    refusing, _ = two_receivers
    refusing.answer(500)
    client, sim = await _client(aiohttp_client, ipn_queue_size=2, ipn_workers=1,
                                ipn_backoff=(15,))
    ids = [await create(client, ipn_url=refusing.url, reference=f"o{i}") for i in range(6)]
    for txn_id in ids:  # six sends onto a backlog of two
        sim.ledger.consumer_pay(txn_id)
    assert sim.ipn.stats["queue_full"] == 4
    assert all(n.attempts == [] for n in sim.ipn.notifications.values())
    await sim.ipn.drain()
    assert len(refusing.posts) == 6 and sim.ipn.stats["attempts"] == 6
    assert {n.state for n in sim.ipn.notifications.values()} == {"retrying"}
    await advance(client, 15)
    await sim.ipn.drain()
    assert len(refusing.posts) == 12
    for n in sim.ipn.notifications.values():  # failed after its last real POST, only
        assert n.state == FAILED
        assert [(a.sent, a.status) for a in n.attempts] == [(True, 500), (True, 500)]
    # The retries, all due at once, overflowed the backlog again: counted, still sent.
    assert sim.ipn.stats == {**sim.ipn.stats, "failed": 6, "attempts": 12, "queue_full": 8}


@pytest.mark.slow
async def test_a_burst_of_5000_on_a_frozen_clock_is_all_delivered(
    aiohttp_server: Server,
) -> None:
    """The pytest plugin's mode: nothing may wait for a clock that never moves."""
    receiver = await receiver_on(aiohttp_server)
    sim = Simulator(frozen_config())  # default delivery settings: a backlog of 1000
    await sim.ipn.start()
    try:
        merchant = sim.ledger.merchant("burst-token")
        ids = []
        for i in range(5000):
            params = {"vendor": "alipay", "amount": "1000", "currency": "USD",
                      "reference": f"burst-{i}", "ipn_url": receiver.url}
            txn, _ = sim.ledger.create_payment(merchant,
                                               requests.parse_payment(params, "pay_qr"))
            sim.ledger.consumer_pay(txn.id)
            ids.append(txn.id)
        assert sim.ipn.stats["queue_full"] == 4000  # counted, not refused
        await asyncio.wait_for(sim.ipn.drain(), 60)  # bounded: a failsafe
    finally:
        await sim.ipn.close()
    assert sorted(p["id"] for p in receiver.posts) == sorted(ids)
    assert sim.ipn.stats["delivered"] == 5000 and sim.ipn.stats["attempts"] == 5000
    assert sim.ipn.stats["retries_scheduled"] == 0


# -- the queue itself ---------------------------------------------------------------------


def test_endpoints_are_scheme_host_and_port() -> None:
    assert endpoint_of("http://Shop.Example/ipn") == endpoint_of("http://shop.example:80/x")
    assert endpoint_of("https://shop.example/ipn") == "https://shop.example:443"
    assert endpoint_of("http://shop.example:8080/ipn") != endpoint_of("http://shop.example/")
    assert endpoint_of("http://[::1/ipn") == "http://[::1/ipn"  # unparseable: its own lane


async def test_the_queue_caps_an_endpoint_and_serves_endpoints_in_turn() -> None:
    queue = FairQueue(maxsize=3, per_endpoint=2)
    sends = [_Send(f"a{i}", "first", None, "http://a:80", "m") for i in range(4)]
    sends.append(_Send("b0", "first", None, "http://b:80", "m"))
    assert [queue.put_nowait(s) for s in sends] == [True, True, True, False, False]
    assert queue.qsize() == 5  # over the backlog limit, queued all the same
    taken = [await queue.get() for _ in range(3)]
    assert [s.notify_id for s in taken] == ["a0", "b0", "a1"]  # a, then b, then a again
    getter = asyncio.ensure_future(queue.get())  # a's two slots are taken: it waits
    await asyncio.sleep(0)
    assert not getter.done() and queue.in_flight == 3
    queue.task_done(taken[0])  # a slot of a's is free again
    assert (await asyncio.wait_for(getter, 1)).notify_id == "a2"
    joined = asyncio.ensure_future(queue.join())
    queue.task_done(taken[1])
    queue.task_done(taken[2])
    last = await asyncio.wait_for(queue.get(), 1)
    assert last.notify_id == "a3" and queue.empty()
    for send in (getter.result(), last):
        await asyncio.sleep(0)
        assert not joined.done()  # one is still in flight
        queue.task_done(send)
    await asyncio.wait_for(joined, 1)  # nothing queued, nothing in flight
    assert queue.endpoints() == 0


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 3)),
                min_size=1, max_size=60),
       st.integers(1, 5), st.integers(1, 3))
@settings(max_examples=examples(60))
def test_the_queue_keeps_its_promises(puts: list[tuple[int, int, int]], workers: int,
                                      cap: int) -> None:
    """Any puts, any worker count, any cap: every send taken once, an endpoint never over
    its cap, a merchant's sends in order, and join() waits for the last one."""

    async def run() -> None:
        queue = FairQueue(maxsize=5, per_endpoint=cap)
        busy: dict[str, int] = {}
        most = 0  # the most sends of one endpoint in flight at once
        taken: list[_Send] = []

        async def worker() -> None:
            nonlocal most
            while True:
                item = await queue.get()
                busy[item.endpoint] = busy.get(item.endpoint, 0) + 1
                most = max(most, busy[item.endpoint])
                taken.append(item)
                for _ in range(int(item.trigger)):  # a send of some length
                    await asyncio.sleep(0)
                busy[item.endpoint] -= 1
                queue.task_done(item)

        tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
        sends = [_Send(f"n{i}", str(length), None, f"e{ep}", f"m{merchant}")
                 for i, (ep, merchant, length) in enumerate(puts)]
        for i, send in enumerate(sends):
            queue.put_nowait(send)
            if i % 7 == 3:
                await asyncio.sleep(0)  # some puts while workers run
        await asyncio.wait_for(queue.join(), 5)
        assert most <= cap
        assert queue.qsize() == 0 and queue.in_flight == 0 and queue.endpoints() == 0
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert sorted(t.notify_id for t in taken) == sorted(s.notify_id for s in sends)
        lanes = {(s.endpoint, s.merchant) for s in sends}
        for lane in lanes:
            assert [t.notify_id for t in taken if (t.endpoint, t.merchant) == lane] == \
                [s.notify_id for s in sends if (s.endpoint, s.merchant) == lane]

    asyncio.run(run())


# -- settings -----------------------------------------------------------------------------


async def test_settings_reach_the_sender(aiohttp_client: Callable[..., Any]) -> None:
    client, sim = await _client(aiohttp_client, ipn_workers=3, ipn_per_endpoint=5,
                                ipn_queue_size=7, ipn_timeout=1.5)
    summary = (await (await client.get("/_sim/ipn")).json())["stats"]
    assert {k: summary[k] for k in ("workers", "per_endpoint", "queue_size", "timeout")} == \
        {"workers": 3, "per_endpoint": 5, "queue_size": 7, "timeout": 1.5}
    assert len(sim.ipn._tasks) == 3 and sim.ipn._queue.per_endpoint == 5


@pytest.mark.parametrize("field", ["ipn_workers", "ipn_per_endpoint", "ipn_queue_size"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True, "4"])
def test_delivery_settings_are_checked(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        Config(**{field: value})
    assert caught.value.setting == field


def test_delivery_settings_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from citcon_sim.cli import main

    seen: list[Config] = []
    monkeypatch.setattr("citcon_sim.cli.asyncio.run", lambda coro: coro.close())
    monkeypatch.setattr("citcon_sim.cli.Simulator", lambda config: seen.append(config))
    for key in ("CITCON_SIM_IPN_WORKERS", "CITCON_SIM_IPN_PER_ENDPOINT",
                "CITCON_SIM_IPN_BACKLOG", "CITCON_SIM_IPN_TIMEOUT"):
        monkeypatch.delenv(key, raising=False)
    flags = ["serve", "--ipn-workers", "9", "--ipn-per-endpoint", "3", "--ipn-backlog", "50",
             "--ipn-timeout", "2"]
    assert CliRunner().invoke(main, flags).exit_code == 0
    env = {"CITCON_SIM_IPN_WORKERS": "7", "CITCON_SIM_IPN_PER_ENDPOINT": "1",
           "CITCON_SIM_IPN_BACKLOG": "20", "CITCON_SIM_IPN_TIMEOUT": "4"}
    assert CliRunner().invoke(main, ["serve"], env=env).exit_code == 0
    assert CliRunner().invoke(main, ["serve"]).exit_code == 0
    got = [(c.ipn_workers, c.ipn_per_endpoint, c.ipn_queue_size, c.ipn_timeout) for c in seen]
    assert got == [(9, 3, 50, 2.0), (7, 1, 20, 4.0), (16, 2, 1000, 10.0)]
    bad = CliRunner().invoke(main, ["serve", "--ipn-per-endpoint", "0"])
    assert bad.exit_code == 2 and "--ipn-per-endpoint" in bad.output


async def _client(aiohttp_client: Callable[..., Any], **config: Any
                  ) -> tuple[TestClient[Any, Any], Simulator]:
    sim = Simulator(frozen_config(**config))
    client: TestClient[Any, Any] = await aiohttp_client(create_app(sim))
    return client, sim
