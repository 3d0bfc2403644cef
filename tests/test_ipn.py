"""IPN delivery, received by real HTTP servers on 127.0.0.1 and checked independently.

Nothing here sleeps: ``sim.ipn.drain()`` returns once every queued send has been made,
and retries are driven by advancing the virtual clock. The only wall time spent waiting
is the 0.2 s per-attempt timeout against a receiver that hangs.
"""

from __future__ import annotations

import hashlib
import logging
import math
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from citcon_sim import Config, Simulator, create_app, verify_ipn
from citcon_sim.cli import main
from citcon_sim.config import Config as ConfigClass
from citcon_sim.delivery.ipn import DEFAULT_BACKOFF, IpnFacts, _Send
from citcon_sim.faces.online.ipn import SIGNED_FIELDS, OnlineIpnEncoder

from .conftest import AUTH, START, TOKEN, create
from .helpers import Answer, IpnReceiver, with_magic_amounts

Server = Callable[..., Any]  # the aiohttp_server fixture


def independent_sign(form: dict[str, str], token: str) -> str:
    """The document's algorithm, written here from scratch (no citcon_sim code)."""
    keys = sorted(set(form["fields"].split(",")) | {"fields"})
    return hashlib.md5(
        ("&".join(f"{k}={form[k]}" for k in keys) + "&token=" + token).encode("utf-8")
    ).hexdigest()


def error_page(status: int) -> Answer:
    """An answer with a long error page (only its start is kept in the log)."""
    return Answer(status, "E" * 500)


@pytest.fixture
def config() -> Config:
    return Config(frozen_clock=True, start_time=START, seed=1234, ipn_timeout=0.2)


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def pay(client: TestClient, ipn_url: str | None, token: str = TOKEN, **fields: Any) -> str:
    extra = {"ipn_url": ipn_url} if ipn_url else {}
    txn_id = await create(client, token=token, **extra, **fields)
    resp = await client.post(f"/_sim/transactions/{txn_id}/pay")
    assert resp.status == 200, await resp.text()
    return txn_id


async def advance(client: TestClient, sim: Simulator, seconds: float) -> None:
    resp = await client.post("/_sim/clock/advance", data={"seconds": str(seconds)})
    assert resp.status == 200
    await sim.ipn.drain()


async def ipn_log(client: TestClient, **query: str) -> list[dict[str, Any]]:
    resp = await client.get("/_sim/ipn", params=query)
    assert resp.status == 200
    return list((await resp.json())["notifications"])


def pending_ipn_jobs(sim: Simulator) -> list[str]:
    return [label for _, label in sim.scheduler.pending() if label.startswith("ipn ")]


# -- what is sent ---------------------------------------------------------------------------


async def test_paid_payment_posts_a_signed_form(client, sim, ipn_receiver) -> None:
    await advance(client, sim, 100)
    txn_id = await pay(client, ipn_receiver.url, amount=1234, note="gift & card = yes, é")
    await sim.ipn.drain()
    assert len(ipn_receiver.posts) == 1
    form = ipn_receiver.posts[0]
    assert [r.content_type for r in ipn_receiver.requests] == [
        "application/x-www-form-urlencoded"]
    listed = form["fields"].split(",")
    assert listed == list(SIGNED_FIELDS) and " " not in form["fields"]
    assert set(form) == {*listed, "fields", "sign"}  # every listed key is posted
    assert form["sign"] == independent_sign(form, TOKEN)
    assert verify_ipn(form, TOKEN) and not verify_ipn(form, "another-token")
    merchant = sim.ledger.merchants[TOKEN].settings
    assert {k: form[k] for k in listed if k != "notify_id"} == {
        "id": txn_id, "amount": "1234", "status": "success", "currency": "USD",
        "time": "2026-03-02 09:01:40", "reference": "order-1", "note": "gift & card = yes, é",
        "partner_id": merchant.partner_id, "vendor": "alipay", "notify_status": "success",
        # alipay's own side is CNY, derived with the FX table (as inquire reports it)
        "trans_amount": str(sim.ledger.get(txn_id).trans_amount), "trans_currency": "CNY",
    }
    [entry] = await ipn_log(client)
    assert entry["notify_id"] == form["notify_id"] and entry["state"] == "delivered"
    [attempt] = entry["attempts"]
    assert attempt["status"] == 200 and attempt["body"] == "ok" and attempt["ok"]
    assert attempt["time"] == "2026-03-02 09:01:40" and attempt["error"] is None
    assert isinstance(attempt["latency_ms"], float) and attempt["trigger"] == "first"


async def test_without_ipn_url_nothing_is_sent_but_it_is_recorded(
    client, sim, ipn_receiver
) -> None:
    txn_id = await pay(client, None)
    await sim.ipn.drain()
    assert ipn_receiver.posts == []
    [entry] = await ipn_log(client, transaction_id=txn_id)
    assert entry["state"] == "not_sent" and entry["url"] is None and entry["attempts"] == []
    resp = await client.post(f"/_sim/ipn/{entry['notify_id']}/redeliver")
    assert resp.status == 400


async def test_failed_expired_and_cancelled_payments_do_not_notify(
    client, sim, ipn_receiver
) -> None:
    for action in ("fail", "expire", "cancel"):
        txn_id = await create(client, ipn_url=ipn_receiver.url)
        assert (await client.post(f"/_sim/transactions/{txn_id}/{action}")).status == 200
    await sim.ipn.drain()
    assert ipn_receiver.posts == [] and await ipn_log(client) == []


async def test_delayed_capture_notifies_on_the_first_capture_only(
    client, sim, ipn_receiver
) -> None:
    txn_id = await pay(client, ipn_receiver.url, vendor="klarna", amount=4000, auto_capture="false")
    await sim.ipn.drain()
    assert ipn_receiver.posts == []  # authorised is not a successful payment status yet
    for amount in ("1000", "500"):
        resp = await client.post("/payment/capture", headers=AUTH, data={
            "transaction_id": txn_id, "amount": amount, "multi_capture": "true"})
        assert resp.status == 200, await resp.text()
        await sim.ipn.drain()
    [form] = ipn_receiver.posts
    assert form["id"] == txn_id and form["status"] == "success"
    assert form["amount"] == "1000" and form["vendor"] == "klarna"
    assert verify_ipn(form, TOKEN)


# -- retries on the virtual clock ---------------------------------------------------------


async def test_non_2xx_is_retried_on_the_backoff_schedule(client, sim, ipn_receiver) -> None:
    ipn_receiver.then(error_page(500), error_page(302), 200)
    txn_id = await pay(client, ipn_receiver.url)
    await sim.ipn.drain()
    [entry] = await ipn_log(client)
    assert entry["state"] == "retrying" and entry["next_attempt_time"] == "2026-03-02 09:00:15"
    assert entry["attempts"][0]["status"] == 500
    assert entry["attempts"][0]["body"] == "E" * 200  # the start of the reply only
    await advance(client, sim, 14)
    assert len(ipn_receiver.posts) == 1  # not due yet
    await advance(client, sim, 1)
    assert len(ipn_receiver.posts) == 2  # the redirect is not an acknowledgement
    await advance(client, sim, 60)
    assert len(ipn_receiver.posts) == 3
    [entry] = await ipn_log(client, transaction_id=txn_id)
    assert entry["state"] == "delivered" and entry["next_attempt_time"] is None
    assert [(a["time"], a["status"], a["trigger"]) for a in entry["attempts"]] == [
        ("2026-03-02 09:00:00", 500, "first"),
        ("2026-03-02 09:00:15", 302, "retry"),
        ("2026-03-02 09:01:15", 200, "retry"),
    ]
    # The same notification every time: same notify_id, same signature, same form.
    assert all(p == ipn_receiver.posts[0] for p in ipn_receiver.posts)
    assert pending_ipn_jobs(sim) == []


async def test_refused_connections_give_up_after_the_last_retry(client, sim) -> None:
    url = f"http://127.0.0.1:{closed_port()}/ipn"
    await pay(client, url)
    await sim.ipn.drain()
    for delay in DEFAULT_BACKOFF:
        [entry] = await ipn_log(client)
        assert entry["state"] == "retrying"
        await advance(client, sim, delay)
    [entry] = await ipn_log(client)
    assert entry["state"] == "failed" and entry["next_attempt_time"] is None
    attempts = entry["attempts"]
    assert len(attempts) == len(DEFAULT_BACKOFF) + 1 == entry["retries_max"] + 1
    assert all(a["status"] is None and "Connect" in a["error"] for a in attempts)
    assert attempts[-1]["time"] == "2026-03-02 19:21:15"  # 10 h 21 min 15 s later
    await advance(client, sim, 30 * 86400)
    assert len((await ipn_log(client))[0]["attempts"]) == len(attempts)  # bounded
    assert pending_ipn_jobs(sim) == []
    stats = (await (await client.get("/_sim/ipn")).json())["stats"]
    assert stats["failed"] == 1 and stats["attempts"] == len(attempts)


async def test_a_hanging_receiver_times_out_and_is_retried(client, sim, ipn_receiver) -> None:
    ipn_receiver.then(Answer(delay=math.inf))  # answers only at teardown
    await pay(client, ipn_receiver.url)
    await sim.ipn.drain()  # ends after the 0.2 s per-attempt timeout
    [entry] = await ipn_log(client)
    assert entry["state"] == "retrying"
    assert entry["attempts"][0]["error"] == "timeout after 0.2 s"
    await advance(client, sim, 15)
    [entry] = await ipn_log(client)
    assert entry["state"] == "delivered" and len(ipn_receiver.posts) == 2


async def test_no_ipn_is_lost_while_the_receiver_is_down(
    client, sim, aiohttp_server: Server
) -> None:
    port = closed_port()
    url = f"http://127.0.0.1:{port}/ipn"
    ids = [await pay(client, url, reference=f"order-{i}") for i in range(3)]
    await sim.ipn.drain()
    await advance(client, sim, 15)
    await advance(client, sim, 60)
    assert {e["state"] for e in await ipn_log(client)} == {"retrying"}
    rec = IpnReceiver()  # the merchant comes back up, on the same address
    await aiohttp_server(rec.app(), host="127.0.0.1", port=port)
    await advance(client, sim, 300)
    log = await ipn_log(client)
    assert {e["state"] for e in log} == {"delivered"}
    assert sorted(p["id"] for p in rec.posts) == sorted(ids)  # each exactly once
    assert {p["notify_id"] for p in rec.posts} == {e["notify_id"] for e in log}
    assert all(p["sign"] == independent_sign(p, TOKEN) for p in rec.posts)


# -- control surface -------------------------------------------------------------------------


async def test_redeliver_sends_the_same_notification_again(client, sim, ipn_receiver) -> None:
    txn_id = await pay(client, ipn_receiver.url)
    await sim.ipn.drain()
    [entry] = await ipn_log(client)
    resp = await client.post(f"/_sim/ipn/{entry['notify_id']}/redeliver")
    assert resp.status == 200
    body = await resp.json()
    assert body["attempt"]["trigger"] == "redeliver" and body["attempt"]["status"] == 200
    assert body["attempt"]["number"] == 2
    assert len(ipn_receiver.posts) == 2 and ipn_receiver.posts[0] == ipn_receiver.posts[1]
    view = await (await client.get(f"/_sim/transactions/{txn_id}")).json()
    assert [a["trigger"] for a in view["ipn"][0]["attempts"]] == ["first", "redeliver"]
    resp = await client.post("/_sim/ipn/nope/redeliver")
    assert resp.status == 404


async def test_redeliver_while_retrying_ends_the_retries(client, sim, ipn_receiver) -> None:
    ipn_receiver.then(error_page(503))
    await pay(client, ipn_receiver.url)
    await sim.ipn.drain()
    [entry] = await ipn_log(client)
    assert entry["state"] == "retrying" and pending_ipn_jobs(sim)
    resp = await client.post(f"/_sim/ipn/{entry['notify_id']}/redeliver", data={"wait": "no"})
    assert resp.status in (200, 202)
    await sim.ipn.drain()
    [entry] = await ipn_log(client)
    assert entry["state"] == "delivered" and pending_ipn_jobs(sim) == []
    await advance(client, sim, 86400)
    assert len(ipn_receiver.posts) == 2


async def test_ipn_log_filters_and_orders_newest_first(client, sim, ipn_receiver) -> None:
    a1 = await pay(client, ipn_receiver.url, token="merchant-a", reference="a1")
    b1 = await pay(client, ipn_receiver.url, token="merchant-b", reference="b1")
    a2 = await pay(client, ipn_receiver.url, token="merchant-a", reference="a2")
    await sim.ipn.drain()
    assert [e["transaction_id"] for e in await ipn_log(client)] == [a2, b1, a1]
    assert [e["transaction_id"] for e in await ipn_log(client, token="merchant-a")] == [a2, a1]
    assert [e["transaction_id"] for e in await ipn_log(client, transaction_id=b1)] == [b1]
    assert await ipn_log(client, transaction_id=b1, token="merchant-a") == []
    assert await ipn_log(client, token="nobody") == []
    by_token = {p["id"]: p for p in ipn_receiver.posts}
    assert verify_ipn(by_token[a1], "merchant-a") and verify_ipn(by_token[b1], "merchant-b")
    assert not verify_ipn(by_token[a1], "merchant-b")
    assert sim.ipn.describe(transaction_id=a1)[0]["transaction_id"] == a1  # testing.py uses it


async def test_reset_forgets_the_log_and_pending_retries(client, sim, ipn_receiver) -> None:
    ipn_receiver.answer(500, "E" * 500)
    await pay(client, ipn_receiver.url, token="merchant-a")
    await pay(client, ipn_receiver.url, token="merchant-b")
    await sim.ipn.drain()
    assert len(pending_ipn_jobs(sim)) == 2
    assert (await client.post("/_sim/reset", data={"token": "merchant-a"})).status == 200
    assert [e["state"] for e in await ipn_log(client)] == ["retrying"]
    assert len(pending_ipn_jobs(sim)) == 1
    assert (await client.post("/_sim/reset")).status == 200
    assert await ipn_log(client) == [] and pending_ipn_jobs(sim) == []
    await advance(client, sim, 86400)
    assert len(ipn_receiver.posts) == 2  # nothing was retried after the reset


async def test_a_full_backlog_is_reported_and_still_delivered(
    aiohttp_client: Callable[..., Any], ipn_receiver: IpnReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """The backlog limit is local: over it, sends wait their turn; no attempt is recorded
    for them, no retry scheduled, and they go out without the clock moving."""
    sim = Simulator(Config(frozen_clock=True, start_time=START, seed=1, ipn_queue_size=1,
                           ipn_workers=1, ipn_timeout=0.2))
    client = await aiohttp_client(create_app(sim))
    ids = [await create(client, ipn_url=ipn_receiver.url, reference=f"o{i}") for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="citcon_sim.ipn"):
        for txn_id in ids:  # three payments before the worker gets a chance to run
            sim.ledger.consumer_pay(txn_id)
    # One crossing of the limit, one warning; the two sends over it are counted.
    assert sum("IPN backlog over its limit" in r.getMessage() for r in caplog.records) == 1
    assert all(e["attempts"] == [] and e["state"] == "pending" for e in sim.ipn.describe())
    await sim.ipn.drain()  # the clock has not moved: nothing waited for a retry
    body = await (await client.get("/_sim/ipn")).json()
    assert body["stats"]["queue_full"] == 2 and body["stats"]["attempts"] == 3
    assert body["stats"]["retries_scheduled"] == 0 and pending_ipn_jobs(sim) == []
    assert all(e["state"] == "delivered" and [a["sent"] for a in e["attempts"]] == [True]
               for e in body["notifications"])
    assert sorted(p["id"] for p in ipn_receiver.posts) == sorted(ids)  # none lost, none twice


async def test_two_simulators_deliver_side_by_side(
    aiohttp_client: Callable[..., Any], ipn_receiver: IpnReceiver
) -> None:
    sims = [Simulator(Config(frozen_clock=True, start_time=START, seed=s)) for s in (1, 2)]
    clients = [await aiohttp_client(create_app(s)) for s in sims]
    for c in clients:
        await pay(c, ipn_receiver.url)
    for s in sims:
        await s.ipn.drain()
        assert [e["state"] for e in s.ipn.describe()] == ["delivered"]
    assert len(ipn_receiver.posts) == 2
    assert sims[0].ipn._session is not sims[1].ipn._session


async def test_worker_and_session_live_with_the_app(ipn_receiver: IpnReceiver) -> None:
    sim = Simulator(Config(frozen_clock=True, start_time=START))
    client = TestClient(TestServer(create_app(sim)))
    await client.start_server()
    try:
        assert sim.ipn.running
        await pay(client, ipn_receiver.url)
        await sim.ipn.drain()
        assert len(ipn_receiver.posts) == 1
    finally:
        await client.close()
    assert not sim.ipn.running and sim.ipn._session is None


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


def test_default_backoff_is_the_configured_default() -> None:
    assert ConfigClass().ipn_backoff == DEFAULT_BACKOFF
    assert DEFAULT_BACKOFF == (15, 60, 300, 900, 3600, 10800, 21600)


# -- scenario ipn scripts (docs/scenarios.md), via magic amounts --------------------------


@with_magic_amounts
async def test_magic_amount_scripts(client, sim, ipn_receiver) -> None:
    never = await create(client, ipn_url=ipn_receiver.url, amount=19905)
    twice = await create(client, ipn_url=ipn_receiver.url, amount=19906)
    bad = await create(client, ipn_url=ipn_receiver.url, amount=19907)
    await sim.ipn.drain()
    posts = {i: [p for p in ipn_receiver.posts if p["id"] == i] for i in (never, twice, bad)}
    assert posts[never] == [] and sim.ipn.describe(transaction_id=never)[0]["state"] == \
        "suppressed"
    assert len(posts[twice]) == 3 and len({p["notify_id"] for p in posts[twice]}) == 1
    assert all(verify_ipn(p, TOKEN) for p in posts[twice])
    [bad_post] = posts[bad]
    assert bad_post["sign"] != independent_sign(bad_post, TOKEN) and not verify_ipn(bad_post,
                                                                                    TOKEN)


@with_magic_amounts
async def test_magic_amount_late_ipn(client, sim, ipn_receiver) -> None:
    txn_id = await create(client, ipn_url=ipn_receiver.url, amount=19904)  # paid at 30 s, IPN +60 s
    await advance(client, sim, 30)
    assert ipn_receiver.posts == []
    assert sim.ipn.describe(transaction_id=txn_id)[0]["state"] == "pending"
    await advance(client, sim, 60)
    [form] = ipn_receiver.posts
    assert form["time"] == "2026-03-02 09:00:30"  # when the payment happened
    assert sim.ipn.describe(transaction_id=txn_id)[0]["attempts"][0]["time"] == \
        "2026-03-02 09:01:30"


async def test_scenario_stale_tampered_and_failed_notifications(client, sim, ipn_receiver) -> None:
    scenario = """
rules:
  - match: {reference: stale}
    payment: {outcome: pay}
    ipn: {out_of_order: true}
  - match: {reference: tampered}
    payment: {outcome: pay}
    ipn: {tamper_amount: 5}
  - match: {reference: failed}
    payment: {outcome: pay}
    ipn: {status: fail}
"""
    resp = await client.post("/_sim/scenarios", data=scenario,
                             headers={"Content-Type": "application/yaml"})
    assert resp.status == 200, await resp.text()
    stale = await create(client, ipn_url=ipn_receiver.url, reference="stale", amount=1000)
    tampered = await create(client, ipn_url=ipn_receiver.url, reference="tampered", amount=1000)
    failed = await create(client, ipn_url=ipn_receiver.url, reference="failed", amount=1000)
    await sim.ipn.drain()
    real, late = [p for p in ipn_receiver.posts if p["id"] == stale]
    assert (real["status"], late["status"], late["notify_status"]) == (
        "success", "pending", "pending")
    assert late["notify_id"] != real["notify_id"] and verify_ipn(late, TOKEN)
    [t] = [p for p in ipn_receiver.posts if p["id"] == tampered]
    assert t["amount"] == "1005" and not verify_ipn(t, TOKEN)
    [f] = [p for p in ipn_receiver.posts if p["id"] == failed]
    assert f["status"] == f["notify_status"] == "fail" and verify_ipn(f, TOKEN)


# -- citcon-sim ipn send ------------------------------------------------------------------


def test_cli_ipn_send_posts_a_verifiable_ipn(threaded_receiver: IpnReceiver) -> None:
    result = CliRunner().invoke(main, [
        "ipn", "send", threaded_receiver.url, "--token", "merchant-secret", "--amount", "250",
        "--currency", "HKD", "--reference", "order-9", "--vendor", "wechatpay",
        "--notify-status", "success", "--note", "hi there"])
    assert result.exit_code == 0, result.output
    assert "HTTP 200" in result.output and "'ok'" in result.output
    assert " ms" in result.output
    [form] = threaded_receiver.posts
    assert form["sign"] == independent_sign(form, "merchant-secret")
    assert verify_ipn(form, "merchant-secret")
    assert (form["amount"], form["currency"], form["trans_amount"], form["trans_currency"]) == (
        "250", "HKD", "250", "HKD")
    assert form["reference"] == "order-9" and form["vendor"] == "wechatpay"
    assert form["note"] == "hi there" and form["status"] == "success"
    assert form["fields"] == ",".join(SIGNED_FIELDS)


def test_cli_ipn_send_fails_on_non_2xx(threaded_receiver: IpnReceiver) -> None:
    threaded_receiver.answer(503, "nope")
    result = CliRunner().invoke(main, ["ipn", "send", threaded_receiver.url, "--token", "t"])
    assert result.exit_code == 1 and "HTTP 503" in result.output and "'nope'" in result.output
    assert len(threaded_receiver.posts) == 1


def test_cli_ipn_send_fails_when_refused() -> None:
    url = f"http://127.0.0.1:{closed_port()}/ipn"
    result = CliRunner().invoke(main, ["ipn", "send", url, "--token", "t", "--timeout", "2"])
    assert result.exit_code == 1 and "failed after" in result.output


def test_cli_ipn_send_bad_signature(threaded_receiver: IpnReceiver) -> None:
    result = CliRunner().invoke(main, ["ipn", "send", threaded_receiver.url, "--token", "t",
                                       "--bad-signature"])
    assert result.exit_code == 0
    assert not verify_ipn(threaded_receiver.posts[0], "t")


def test_cli_ipn_send_rejects_a_non_http_url() -> None:
    result = CliRunner().invoke(main, ["ipn", "send", "ftp://x", "--token", "t"])
    assert result.exit_code == 2 and "http" in result.output


# -- one encoder per API face ---------------------------------------------------------------


@dataclass
class PlainEncoder:
    """Another face's IPN format: the sender posts whatever the encoder builds."""

    facts: list[IpnFacts] = field(default_factory=list)

    def encoding(self, merchant: Any) -> str:
        return "json"

    def encode(self, facts: IpnFacts, token: str, script: Any) -> dict[str, Any]:
        self.facts.append(facts)
        return {"txn": facts.transaction.id, "state": facts.status, "total": facts.amount,
                "nid": facts.notify_id}

    def restate(self, form: Any, token: str, *, status: str, time: str,
                notify_id: str) -> dict[str, str]:
        return {**form, "state": status, "nid": notify_id}


async def test_the_transactions_face_picks_the_encoder(client, sim, ipn_receiver) -> None:
    assert isinstance(sim.ipn.encoders["online"], OnlineIpnEncoder)  # the simulator's wiring
    plain = sim.ipn.encoders["plain"] = PlainEncoder()
    online_id = await create(client, ipn_url=ipn_receiver.url, reference="o")
    plain_id = await create(client, ipn_url=ipn_receiver.url, reference="p", amount=700)
    sim.ledger.by_id[plain_id].face = "plain"
    for txn_id in (online_id, plain_id):
        await client.post(f"/_sim/transactions/{txn_id}/pay")
    await sim.ipn.drain()
    online, other = ipn_receiver.posts
    assert online["id"] == online_id and verify_ipn(online, TOKEN)
    (facts,) = plain.facts
    assert other == {"txn": plain_id, "state": "success", "total": 700,
                     "nid": facts.notify_id}  # posted as JSON, as the encoder asks
    assert [r.content_type for r in ipn_receiver.requests] == [
        "application/x-www-form-urlencoded", "application/json"]
    assert sim.ipn.describe(transaction_id=plain_id)[0]["notify_id"] == facts.notify_id
