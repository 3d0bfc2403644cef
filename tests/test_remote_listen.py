"""``citcon-sim listen`` and the listener surface it uses (``GET /_sim/listen``, ``POST
/_sim/listen/{listener}/{delivery}``): IPNs handed to a client the simulator cannot reach
otherwise, recorded as attempts, with delivery falling back to POSTs when it goes away."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import ClientResponse
from click.testing import CliRunner, Result

from citcon_sim import verify_ipn
from citcon_sim.cli import main
from citcon_sim.delivery.ipn import USER_AGENT
from citcon_sim.remote.commands import forward_target
from citcon_sim.testing import SimulatorServer

from .helpers import (
    TOKEN,
    TestClient,
    auth,
    client_for,
    create_paid,
    frozen_config,
    next_event,
)

ROOT = Path(__file__).resolve().parent.parent
NOWHERE = "http://127.0.0.1:9/ipn"  # what the simulator cannot reach (discard port, closed)


# -- helpers -----------------------------------------------------------------------------------


async def open_listener(client: TestClient, **query: str) -> tuple[ClientResponse, str]:
    resp = await client.get("/_sim/listen", params=query)
    assert resp.status == 200, await resp.text()
    event, hello = await next_event(resp)
    assert event == "hello"
    return resp, str(hello["listener"])


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def pay_new(sim: SimulatorServer, token: str = TOKEN, **extra: str) -> str:
    form = {"vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "r-1",
            "allow_duplicates": "yes", "response_format": "json", **extra}
    request = urllib.request.Request(sim.url_for("/payment/pay_qr"),
                                     urllib.parse.urlencode(form).encode(), auth(token))
    with urllib.request.urlopen(request) as response:
        txn_id = str(json.load(response)["transaction_id"])
    sim.pay(txn_id)
    return txn_id


class Listening:
    """``citcon-sim listen`` run by CliRunner in a thread, against ``server``."""

    def __init__(self, server: SimulatorServer, *args: str) -> None:
        self.server = server
        self.result: Result | None = None
        self.thread = threading.Thread(target=self._run, args=args, daemon=True)

    def _run(self, *args: str) -> None:
        self.result = CliRunner().invoke(main, ["listen", "--url", self.server.base_url, *args])

    def __enter__(self) -> Listening:
        self.thread.start()
        wait_until(lambda: self.server.call(lambda: len(self.server.simulator.ipn.listeners))
                   == 1 or not self.thread.is_alive())
        assert self.thread.is_alive(), self.result and self.result.output
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()  # the stream ends: so does the command
        self.thread.join(10)


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(frozen_config()) as running:
        yield running


# -- the command, end to end -------------------------------------------------------------------


def test_listen_forwards_a_payments_ipn_and_the_simulator_records_it(server, threaded_receiver):
    with Listening(server, "--forward-to", threaded_receiver.url) as listening:
        txn = pay_new(server, ipn_url=NOWHERE)  # the simulator could not deliver it itself
        note = server.wait_for_ipn(txn)
        (request,) = threaded_receiver.requests
    assert note["state"] == "delivered"
    (attempt,) = note["attempts"]
    assert attempt["status"] == 200 and attempt["body"] == "ok"
    assert attempt["via"].startswith("listener ") and threaded_receiver.url in attempt["via"]
    # As the simulator posts it: form-encoded, its User-Agent, validly signed, same form.
    assert request.content_type == "application/x-www-form-urlencoded"
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.form == note["form"] and verify_ipn(request.form, TOKEN)
    result = listening.result
    assert result is not None and result.exit_code == 1
    assert f"{note['notify_id']}  {txn}  attempt 1 (first)" in result.output
    assert "HTTP 200" in result.output and "ended the stream" in result.output
    assert "Traceback" not in result.output


def test_a_upi_ipn_is_forwarded_as_json_with_its_sha256_signature(server, threaded_receiver):
    from citcon_sim import verify_upi_ipn

    from .upi_support import charge_body

    access = server.upi_access_token("sk-upi")
    request = urllib.request.Request(
        server.url_for("/v1/charges"), json.dumps(charge_body("upi-1", ipn=NOWHERE)).encode(),
        {"Authorization": f"Bearer {access}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        txn = str(json.load(response)["data"]["id"])
    with Listening(server, "--forward-to", threaded_receiver.url):
        server.pay(txn)
        assert server.wait_for_ipn(txn)["state"] == "delivered"
    (received,) = threaded_receiver.requests
    assert received.content_type == "application/json"
    assert received.form["id"] == txn and verify_upi_ipn(received.form, "sk-upi")


def test_a_refusing_endpoint_is_retried_through_the_listener(server, threaded_receiver):
    threaded_receiver.then(500)
    with Listening(server, "--forward-to", threaded_receiver.url, "--json") as listening:
        txn = pay_new(server, ipn_url=NOWHERE)
        first = server.wait_for_ipn(txn, acknowledged=False)
        assert first["state"] == "retrying" and first["attempts"][0]["status"] == 500
        server.advance(15)  # the first retry falls due in virtual time
        again = server.wait_for_ipn(txn, attempts=2)
    assert again["state"] == "delivered"
    assert [a["via"] is not None for a in again["attempts"]] == [True, True]
    assert len(threaded_receiver.posts) == 2
    assert listening.result is not None
    lines = [json.loads(line) for line in listening.result.stdout.splitlines()]
    assert [(line["attempt"], line["status"]) for line in lines] == [(1, 500), (2, 200)]


def test_listen_for_one_merchant_leaves_the_others_to_direct_delivery(server):
    from .helpers import threaded_ipn_receiver

    with threaded_ipn_receiver() as forwarded, threaded_ipn_receiver() as direct:
        with Listening(server, "--forward-to", forwarded.url, "--token", "shop-a"):
            mine = pay_new(server, "shop-a", ipn_url=NOWHERE)
            theirs = pay_new(server, "shop-b", ipn_url=direct.url)
            assert server.wait_for_ipn(mine)["attempts"][0]["via"]
            assert server.wait_for_ipn(theirs)["attempts"][0]["via"] is None
        assert [p["id"] for p in forwarded.posts] == [mine]
        assert [p["id"] for p in direct.posts] == [theirs]


def test_keep_path_posts_to_the_ipn_urls_path(server, threaded_receiver):
    with Listening(server, "--forward-to", threaded_receiver.base_url, "--keep-path"):
        txn = pay_new(server, ipn_url="http://shop.internal:8000/hooks/citcon?order=7")
        server.wait_for_ipn(txn)
    (request,) = threaded_receiver.requests
    assert request.path == "/hooks/citcon"


def test_forward_target():
    assert forward_target("http://h:1/x", "http://a/b?c=1", False) == "http://h:1/x"
    assert forward_target("http://h:1/", "http://a/b?c=1", True) == "http://h:1/b?c=1"
    assert forward_target("http://h:1/p", "http://a", True) == "http://h:1/p/"


def test_listen_needs_an_http_forward_url():
    result = CliRunner().invoke(main, ["listen", "--forward-to", "localhost:9000"])
    assert result.exit_code == 2 and "--forward-to" in result.output


# -- the listener surface: fallback, fairness, reports, limits ---------------------------------


async def test_a_listener_that_goes_away_gives_its_attempt_back(client, sim, ipn_receiver):
    resp, _ = await open_listener(client)
    txn = await create_paid(client, ipn_url=ipn_receiver.url)
    event, delivery = await next_event(resp)
    assert event == "ipn" and delivery["transaction_id"] == txn
    assert delivery["form"] == sim.ipn.for_transaction(txn)[0].form
    resp.close()  # it dies before answering: the simulator posts the attempt itself
    await ipn_receiver.wait_for(1)
    await sim.ipn.drain()
    (n,) = sim.ipn.for_transaction(txn)
    assert n.state == "delivered" and n.attempts[0].via is None
    assert len(sim.ipn.listeners) == 0
    # And later IPNs go directly too.
    await create_paid(client, ipn_url=ipn_receiver.url)
    await ipn_receiver.wait_for(2)


async def test_handed_off_attempts_keep_the_endpoints_slots(aiohttp_client, ipn_receiver):
    client, sim = await client_for(aiohttp_client, ipn_per_endpoint=2)
    resp, listener = await open_listener(client, token="shop-a")
    assert sim.ipn.summary()["listeners"] == 1
    for _ in range(3):  # one endpoint: two in flight at most, the third waits its turn
        await create_paid(client, token="shop-a", ipn_url=NOWHERE)
    first = (await next_event(resp))[1]
    await next_event(resp)
    assert sim.ipn.summary()["in_flight"] == 2 and sim.ipn.summary()["queued"] == 1
    # Another merchant's endpoint is not held up by them.
    other = await create_paid(client, token="shop-b", ipn_url=ipn_receiver.url)
    await ipn_receiver.wait_for(1)
    assert ipn_receiver.posts[0]["id"] == other
    report = await client.post(f"/_sim/listen/{listener}/{first['delivery']}",
                               data={"status": "200", "body": "ok", "latency_ms": "3"})
    assert report.status == 200, await report.text()
    event, third = await next_event(resp)  # a slot came free
    assert event == "ipn" and third["transaction_id"] not in (first["transaction_id"],)
    resp.close()


async def test_the_console_says_a_listener_made_the_attempt(client, sim):
    import io

    from citcon_sim.console import Console

    out = io.StringIO()
    console = Console(out, sim.clock.format)
    console.attach(sim.events)
    resp, listener = await open_listener(client)
    await create_paid(client, ipn_url=NOWHERE)
    delivery = (await next_event(resp))[1]["delivery"]
    await client.post(f"/_sim/listen/{listener}/{delivery}", data={"status": "200"})
    await sim.ipn.drain()
    console.flush()  # lines are written in batches
    (line,) = [line for line in out.getvalue().splitlines() if " IPN " in line]
    assert "delivered via listener" in line and NOWHERE in line
    resp.close()


async def test_bad_reports_are_refused_and_change_nothing(client, sim):
    resp, listener = await open_listener(client)
    txn = await create_paid(client, ipn_url=NOWHERE)
    delivery = (await next_event(resp))[1]["delivery"]
    path = f"/_sim/listen/{listener}/{delivery}"
    for form, why in [({"status": "abc"}, "whole number"), ({"status": "700"}, "100 to 599"),
                      ({}, "send status"), ({"status": "200", "error": "x"}, "send status"),
                      ({"status": "200", "latency_ms": "nan"}, "milliseconds")]:
        answer = await client.post(path, data=form)
        assert answer.status == 400 and why in (await answer.json())["message"], form
    assert (await client.post(f"/_sim/listen/nope/{delivery}", data={"status": "200"})).status \
        == 404
    (n,) = sim.ipn.for_transaction(txn)
    assert n.state == "pending" and n.attempts[0].status is None  # still waiting
    answer = await client.post(path, json={"error": "ConnectionRefused", "latency_ms": 1})
    assert answer.status == 200
    await sim.ipn.drain()
    assert n.state == "retrying" and n.attempts[0].error == "ConnectionRefused"
    late = await client.post(path, data={"status": "200"})  # answered already
    assert late.status == 404
    resp.close()


async def test_a_listener_that_never_reports_is_a_timed_out_attempt(aiohttp_client):
    client, sim = await client_for(aiohttp_client, ipn_timeout=0.1)
    sim.ipn.listeners.grace = 0.0
    resp, listener = await open_listener(client)
    txn = await create_paid(client, ipn_url=NOWHERE)
    delivery = (await next_event(resp))[1]["delivery"]
    await sim.ipn.drain()
    (n,) = sim.ipn.for_transaction(txn)
    assert n.state == "retrying" and "did not report within 0.1 s" in str(n.attempts[0].error)
    late = await client.post(f"/_sim/listen/{listener}/{delivery}", data={"status": "200"})
    assert late.status == 404 and n.state == "retrying"
    resp.close()


async def test_listen_refuses_what_it_cannot_serve(aiohttp_client, tmp_path):
    client, sim = await client_for(aiohttp_client)
    bad = await client.get("/_sim/listen", params={"forward_to": "ftp://x"})
    assert bad.status == 400
    sim.ipn.listeners.limit = 1
    resp, _ = await open_listener(client)
    full = await client.get("/_sim/listen")
    assert full.status == 409 and "listeners are connected" in (await full.json())["message"]
    resp.close()
    merchants = tmp_path / "merchants.yaml"
    merchants.write_text("merchants:\n  - token: shop-a-secret\n")
    strict, _ = await client_for(aiohttp_client, merchants_file=str(merchants))
    unknown = await strict.get("/_sim/listen", params={"token": "guess"})
    assert unknown.status == 400 and "guess" not in await unknown.text()


async def test_a_page_elsewhere_cannot_open_a_listener(client, sim):
    refused = await client.get("/_sim/listen", headers={"Origin": "https://evil.example"})
    assert refused.status == 403 and "cross-site listener" in (await refused.json())["message"]
    assert len(sim.ipn.listeners) == 0
    own_origin = str(client.make_url("/")).rstrip("/")
    own = await client.get("/_sim/listen", headers={"Origin": own_origin})
    assert own.status == 200 and len(sim.ipn.listeners) == 1
    own.close()


async def test_the_attempts_listener_survives_a_snapshot(client, sim):
    resp, listener = await open_listener(client)
    txn = await create_paid(client, ipn_url=NOWHERE)
    delivery = (await next_event(resp))[1]["delivery"]
    await client.post(f"/_sim/listen/{listener}/{delivery}", data={"status": "204"})
    await sim.ipn.drain()
    resp.close()
    snapshot = await (await client.get("/_sim/state")).read()
    assert (await client.put("/_sim/state", data=snapshot)).status == 200
    (n,) = sim.ipn.for_transaction(txn)
    assert n.attempts[0].via == f"listener {listener}"


# -- real processes: Ctrl-C, and logs --follow -----------------------------------------------


class Process:
    """A ``citcon-sim`` process whose output (stdout and stderr) is read line by line."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-m", "citcon_sim", *args], env=env,
                                     text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: queue.Queue[str] = queue.Queue()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def line(self, timeout: float = 15.0) -> str:
        return self.lines.get(timeout=timeout)

    def interrupt(self) -> str:
        """Ctrl-C; waits for the exit and answers the output not read yet (once ended,
        nothing more)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        self.proc.wait(15)
        self.pump.join(5)
        assert self.proc.stdout is not None
        if not self.proc.stdout.closed:
            self.proc.stdout.close()
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        return "".join(rest)


@pytest.mark.slow  # starts a citcon-sim process
def test_listen_process_forwards_then_ctrl_c_restores_direct_delivery(server):
    from .helpers import threaded_ipn_receiver

    with threaded_ipn_receiver() as local, threaded_ipn_receiver() as direct:
        listen = Process("listen", "--url", server.base_url, "--forward-to", local.url)
        try:
            assert listen.line().startswith("Ready: IPNs of every merchant go to")
            txn = pay_new(server, ipn_url=direct.url)
            assert "HTTP 200" in listen.line()
            assert server.wait_for_ipn(txn)["attempts"][0]["via"]
            assert [p["id"] for p in local.posts] == [txn] and not direct.posts
        finally:
            rest = listen.interrupt()
        assert listen.proc.returncode == 0 and rest == "stopped\n"
        wait_until(lambda: server.call(lambda: len(server.simulator.ipn.listeners)) == 0)
        later = pay_new(server, ipn_url=direct.url)
        assert server.wait_for_ipn(later)["attempts"][0]["via"] is None
        assert [p["id"] for p in direct.posts] == [later]


@pytest.mark.slow  # starts a citcon-sim process
def test_listen_reconnect_waits_for_the_simulator_to_come_back():
    from .helpers import threaded_ipn_receiver

    with threaded_ipn_receiver() as local:
        first = SimulatorServer(frozen_config()).start()
        port = int(first.base_url.rsplit(":", 1)[1])
        listen = Process("listen", "--reconnect", "--url", first.base_url,
                         "--forward-to", local.url)
        try:
            assert listen.line().startswith("Ready:")
            first.stop()
            assert listen.line().startswith(f"lost the simulator at {first.base_url}; "
                                            "reconnecting")
            with SimulatorServer(frozen_config(), port=port) as again:
                assert listen.line().startswith("Ready:")
                txn = pay_new(again, ipn_url=NOWHERE)
                assert again.wait_for_ipn(txn)["state"] == "delivered"
                assert "HTTP 200" in listen.line()
                rest = listen.interrupt()  # while this simulator still runs
        finally:
            listen.interrupt()
        assert listen.proc.returncode == 0 and rest == "stopped\n"
        assert [p["id"] for p in local.posts] == [txn]


@pytest.mark.slow  # starts a citcon-sim process
def test_logs_follow_prints_each_new_call_once_as_the_simulator_announces_it(server):
    pay_new(server, reference="before")
    # A 30 s interval: the new calls show at once only because their changes are announced
    # on /_sim/events, which wakes the follower.
    logs = Process("logs", "--follow", "--interval", "30", "--url", server.base_url)
    try:
        assert "/payment/pay_qr -> 200" in logs.line()
        new = [pay_new(server, reference=f"during-{i}") for i in range(2)]
        assert [txn in logs.line(timeout=10) for txn in new] == [True, True]
    finally:
        rest = logs.interrupt()
    assert logs.proc.returncode == 0 and rest == "stopped\n"  # nothing printed twice


@pytest.mark.slow  # starts a citcon-sim process
def test_logs_follow_polls_for_calls_that_announce_nothing(server):
    logs = Process("logs", "--follow", "--interval", "0.1", "--url", server.base_url)
    try:
        request = urllib.request.Request(server.url_for("/payment/inquire"),
                                         b"reference=nothing-here", auth(TOKEN))
        with pytest.raises(urllib.error.HTTPError) as answer:  # journaled; no event
            urllib.request.urlopen(request)
        answer.value.close()
        assert "/payment/inquire ->" in logs.line()
    finally:
        rest = logs.interrupt()
    assert logs.proc.returncode == 0 and rest == "stopped\n"


def test_the_newest_listener_naming_the_merchant_takes_its_ipns():
    from citcon_sim.delivery.ipn import Listeners

    ears = Listeners(limit=3)
    everyone = ears.connect(None)
    shop_a = ears.connect(frozenset({"shop-a"}))
    assert ears.pick("shop-a") is shop_a and ears.pick("shop-b") is everyone
    newer = ears.connect(None)
    assert ears.pick("shop-a") is shop_a and ears.pick("shop-b") is newer
    with pytest.raises(ValueError):
        ears.connect(None)
    ears.disconnect(shop_a)
    ears.disconnect(shop_a)  # idempotent
    assert ears.pick("shop-a") is newer and len(ears) == 2
    ears.close()
    assert ears.pick("shop-a") is None and everyone.queue.get_nowait() is None
