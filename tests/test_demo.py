"""``serve --demo``: a generated, reproducible history (README "Demo data")."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from citcon_sim import Config, Simulator, create_app
from citcon_sim.config import ConfigError
from citcon_sim.delivery.ipn import post_form
from citcon_sim.domain.ledger import Status

from .helpers import frozen_config

END = datetime(2026, 3, 6, 9, 30, tzinfo=UTC)


async def demo_sim(aiohttp_client: Any, **changes: Any) -> tuple[Any, Simulator]:
    sim = Simulator(frozen_config(demo=True, start_time=END, **changes))
    client = await aiohttp_client(create_app(sim))  # the app's start-up generates it
    return client, sim


async def test_the_demo_has_the_promised_variety(aiohttp_client):
    client, sim = await demo_sim(aiohttp_client)
    resp = await client.get("/_sim/transactions", params={"limit": "1000"})
    listed = (await resp.json())["transactions"]
    assert len(listed) >= 50 and len(listed) == len(sim.ledger.by_id)
    assert len({t["internal_status"] for t in listed}) >= 4
    assert len({t["token_hint"] for t in listed}) == len(sim.ledger.merchants) >= 3
    assert {t["face"] for t in listed} == {"online", "chop", "upi"}
    assert len({t["vendor"] for t in listed}) >= 10
    assert len({t["currency"] for t in listed} | {t["trans_currency"] for t in listed}) >= 5
    txns = list(sim.ledger.by_id.values())
    assert any(t.refunds and t.refunded_amount < t.paid_amount for t in txns)  # partial
    assert any(t.refunds and t.refunded_amount == t.paid_amount for t in txns)  # full
    assert any(len(t.captures or ()) > 1 for t in txns)  # Klarna, in parts
    assert {Status.AUTHORIZED, Status.EXPIRED, Status.FAILED, Status.CANCELLED} <= {
        t.status for t in txns}
    days = {sim.clock.day(t.created_at) for t in txns}
    assert len(days) >= 4 and max(t.created_at for t in txns) <= END.timestamp()
    assert sim.clock.time() == END.timestamp()  # the history ends where the clock starts
    names = {m.settings.name for m in sim.ledger.merchants.values()}
    assert len(names) == len(sim.ledger.merchants) and all(names)  # faker's companies


async def test_ipns_were_retried_on_the_senders_schedule_and_some_failed(aiohttp_client):
    _, sim = await demo_sim(aiohttp_client)
    notes = list(sim.ipn.notifications.values())
    states = Counter(n.state for n in notes)
    assert states["failed"] >= 1 and states["delivered"] >= 40
    assert set(states) <= {"delivered", "failed"}  # all settled: nothing left to post
    retried = [n for n in notes if n.state == "delivered" and len(n.attempts) > 1]
    assert retried
    for n in retried + [n for n in notes if n.state == "failed"]:
        gaps = [b.at - a.at for a, b in zip(n.attempts, n.attempts[1:], strict=False)]
        assert gaps == list(sim.ipn.backoff[:len(gaps)])  # the real retry schedule
        assert not any(a.ok for a in n.attempts[:-1])
    failed = next(n for n in notes if n.state == "failed")
    assert len(failed.attempts) == len(sim.ipn.backoff) + 1
    assert all(n.url and n.url.split("/")[2].endswith(".example") for n in notes)
    assert sim.ipn.post is post_form  # the network again, once the history is made
    assert sim.scheduler.pending() == []


async def test_every_demo_transaction_keeps_the_money_rules(aiohttp_client):
    _, sim = await demo_sim(aiohttp_client)
    for t in sim.ledger.by_id.values():
        assert 0 <= t.refunded_amount <= t.paid_amount <= t.amount, t.id
        assert 0 <= t.refunded_trans_amount <= t.captured_trans_amount <= t.trans_amount
        assert t.captured_amount == sum(c.amount for c in t.captures or ()) or not t.captures
        assert t.refunded_amount == sum(r.amount for r in t.refunds or ())
        if t.status in (Status.PENDING, Status.FAILED, Status.EXPIRED, Status.AUTHORIZED):
            assert t.paid_amount == 0 and not t.refunds
        assert t.created_at <= t.updated_at <= sim.clock.time()


async def test_the_same_seed_gives_the_same_history(aiohttp_client):
    exports = []
    for seed in (7, 7, 8):
        client, _ = await demo_sim(aiohttp_client, demo_seed=seed)
        state = await (await client.get("/_sim/state")).json()
        del state["clock"]["wall"]  # when it was exported: the one thing that differs
        exports.append(state)
    assert exports[0] == exports[1]
    assert exports[0] != exports[2]


async def test_an_ipn_allowlist_does_not_touch_the_made_up_endpoints(aiohttp_client,
                                                                     monkeypatch):
    looked_up: list[str] = []

    async def getaddrinfo(self: Any, host: str, *args: Any, **kwargs: Any) -> list[Any]:
        looked_up.append(host)
        raise OSError("no DNS in this test")

    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "getaddrinfo", getaddrinfo)
    _, sim = await demo_sim(aiohttp_client, ipn_allow=["10.0.0.0/8"])
    assert looked_up == []  # the allowlist would resolve each name: a lookup per attempt
    assert any(n.state == "delivered" for n in sim.ipn.notifications.values())
    assert not any(a.error and a.error.startswith("not sent")
                   for n in sim.ipn.notifications.values() for a in n.attempts)
    assert not sim.ipn.allow.open  # the server's own rules again afterwards


async def test_the_demo_fills_only_an_empty_simulator_once(aiohttp_client):
    client, sim = await demo_sim(aiohttp_client)
    made = len(sim.ledger.by_id)
    await client.close()
    await aiohttp_client(create_app(sim))  # the same simulator served again
    assert len(sim.ledger.by_id) == made


def test_the_demo_makes_its_own_merchants(tmp_path):
    for clash in ({"state_file": tmp_path / "s.jsonl"},
                  {"merchants_file": __file__}):  # checked before it is read as YAML
        with pytest.raises(ConfigError) as caught:
            Config(demo=True, **clash)
        assert caught.value.setting in ("demo", "merchants_file")


@pytest.mark.slow  # a subprocess
def test_serve_demo_starts_with_its_history():
    env = {**os.environ, "CITCON_SIM_DEMO": "true", "NO_COLOR": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "citcon_sim", "serve", "--port", "0", "--frozen-clock",
         "--start-time", "2026-03-06T09:30:00"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                base = found[1]
                break
        else:
            pytest.fail("no banner")
        took = time.perf_counter() - started
        with urllib.request.urlopen(f"{base}/_sim/transactions?limit=1000") as resp:
            listed = json.load(resp)["transactions"]
        assert len(listed) >= 50 and len({t["internal_status"] for t in listed}) >= 4
        assert took < 15  # measured ~1 s; generous for a loaded CI machine
        with pytest.raises(urllib.error.HTTPError) as caught:  # no token: a 401 line
            urllib.request.urlopen(f"{base}/payment/list")
        assert caught.value.code == 401
        caught.value.close()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert re.search(r"API GET /payment/list +- +- +401 ", out), out[-2000:]
    assert "\033" not in out  # piped: plain
