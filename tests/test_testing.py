"""SimulatorServer without pytest fixtures: a simulator in a thread, driven by helpers.

The IPN tests receive on a real local HTTP server (the shared ``threaded_receiver``), and
nothing waits by sleeping: wait_for_ipn waits on the simulator's delivery workers.
"""

from __future__ import annotations

import asyncio
import doctest
import json
import math
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web

import citcon_sim
from citcon_sim import Config, SimulatorServer, verify_ipn
from citcon_sim.domain.errors import NotFound, TransitionError
from citcon_sim.domain.events import IpnChanged, TransactionChanged
from citcon_sim.domain.ids import IdFactory
from citcon_sim.scenarios import ScenarioError
from citcon_sim.simulator import Simulator
from citcon_sim.testing import ServerError, StartError

from .helpers import Answer, IpnReceiver

TOKEN = "shop-token"


# -- a merchant's side: an HTTP client and an IPN receiver ------------------------------------


def post(url: str, token: str | None = TOKEN, **form: Any) -> tuple[int, Any]:
    """POST a form; answers (HTTP status, parsed JSON or text)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = urlencode({k: str(v) for k, v in form.items()}).encode()
    request = urllib.request.Request(url, data, headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            status, body = resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            status, body = exc.code, exc.read().decode()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def create(sim: SimulatorServer, token: str = TOKEN, **form: Any) -> str:
    fields = {"vendor": "alipay", "amount": 1000, "currency": "USD", "reference": "order-1",
              "allow_duplicates": "yes", "response_format": "json", **form}
    status, body = post(sim.url_for("/payment/pay_qr"), token, **fields)
    assert status == 200, body
    return str(body["transaction_id"])


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(Config(frozen_clock=True, seed=3)) as server:
        yield server
        server.check_assertions()


def refused(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return False
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, ConnectionRefusedError)


# -- lifecycle ---------------------------------------------------------------------------------


def test_context_manager_serves_on_a_free_local_port_and_stops_on_exit() -> None:
    with SimulatorServer() as sim:
        assert sim.running and sim.base_url.startswith("http://127.0.0.1:")
        assert sim.url_for("_sim/health") == sim.base_url + "/_sim/health"
        with urllib.request.urlopen(sim.url_for("/_sim/health"), timeout=5) as resp:
            assert json.load(resp) == {"status": "ok"}
        assert sim.call(lambda: sim.simulator.clock.frozen) is True  # the default config
    assert not sim.running
    assert refused(sim.url_for("/_sim/health"))
    assert "stopped" in repr(sim)


def test_the_package_exports_the_server() -> None:
    assert citcon_sim.SimulatorServer is SimulatorServer
    assert "SimulatorServer" in citcon_sim.__all__


def test_stop_is_idempotent_and_the_server_can_start_again() -> None:
    sim = SimulatorServer()
    sim.stop()  # never started: nothing to do
    sim.start()
    assert sim.start() is sim  # already running: a no-op
    first = sim.base_url
    txn_id = create(sim)
    sim.stop()
    sim.stop()
    assert refused(first + "/_sim/health")
    with pytest.raises(RuntimeError, match="not running"):
        sim.pay(txn_id)
    with sim:  # the same simulator, served again (on another free port)
        assert sim.transaction(txn_id)["id"] == txn_id
    sim.stop()


def test_a_port_in_use_raises_a_clear_start_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sim = SimulatorServer(port=port)
        with pytest.raises(StartError, match=f"could not start on 127.0.0.1:{port}") as info:
            sim.start()
        assert isinstance(info.value.__cause__, OSError)
        assert not sim.running
        sim.stop()  # after a failed start too


@pytest.mark.slow
def test_a_start_that_hangs_times_out_and_closes_down_once_unblocked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    original = web.TCPSite.start

    async def stuck_start(site: web.TCPSite) -> None:
        await asyncio.to_thread(release.wait, 30)  # binding hangs until the test says
        await original(site)

    monkeypatch.setattr(web.TCPSite, "start", stuck_start)
    sim = SimulatorServer(start_timeout=0.2, stop_timeout=0.1)
    before = set(threading.enumerate())
    with pytest.raises(StartError, match="did not start on 127.0.0.1:0 within 0.2 s"):
        sim.start()
    assert not sim.running
    release.set()
    (server_thread,) = [t for t in set(threading.enumerate()) - before
                        if t.name.startswith("citcon-sim")]
    server_thread.join(10)  # it binds, sees that start() gave up, and closes down
    assert not server_thread.is_alive()


def test_a_bad_configuration_raises_before_any_thread_starts() -> None:
    with pytest.raises(Exception, match="Nowhere/Atlantis"):
        SimulatorServer(Config(timezone="Nowhere/Atlantis")).start()


def test_the_given_config_is_copied_not_changed() -> None:
    config = Config(frozen_clock=True, seed=5)
    with SimulatorServer(config) as a, SimulatorServer(config) as b:
        assert (config.host, config.port) == ("127.0.0.1", None)  # unset: a free port
        assert a.config.port == 0 and a.config.seed == 5
        assert a.base_url != b.base_url


def test_a_port_set_in_the_config_is_used() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with SimulatorServer(Config(frozen_clock=True, port=port)) as server:
        assert server.base_url == f"http://127.0.0.1:{port}"
        with pytest.raises(StartError, match=f"could not start on 127.0.0.1:{port}"):
            SimulatorServer(Config(port=port)).start()  # in use: by the first


def test_a_served_simulators_config_decides_where() -> None:
    sim = Simulator(Config(frozen_clock=True, port=0))
    with SimulatorServer(simulator=sim) as server:
        assert server.config is sim.config and server.base_url == sim.base_url()


@pytest.mark.slow
def test_two_servers_side_by_side_are_isolated() -> None:
    with SimulatorServer(Config(frozen_clock=True, seed=1)) as a, \
            SimulatorServer(Config(frozen_clock=True, seed=1)) as b:
        txn_id = create(a)
        assert txn_id == IdFactory(1).transaction()  # the seed makes ids reproducible
        assert [t["id"] for t in a.transactions()] == [txn_id]
        assert b.transactions() == [] and b.requests() == []
        with pytest.raises(NotFound):
            b.pay(txn_id)
        waiting = create(b)
        a.advance(3600)  # a's clock only
        assert a.transaction(txn_id)["status"] == "expired"
        assert b.transaction(waiting)["status"] is None


def test_helpers_re_raise_the_servers_own_exception_in_the_caller() -> None:
    with SimulatorServer() as sim:
        with pytest.raises(NotFound, match="no transaction") as info:
            sim.pay("U0000000000-nope")
        frames = [f.co_filename for f in _frames(info.value.__traceback__)]
        assert any(name.endswith("ledger.py") for name in frames)  # the server-side frames
        txn_id = create(sim)
        sim.pay(txn_id)
        with pytest.raises(TransitionError, match="cannot be paid"):
            sim.pay(txn_id)
        with pytest.raises(ValueError, match="never goes back"):
            sim.advance(-1)


def _frames(tb: Any) -> Iterator[Any]:
    while tb is not None:
        yield tb.tb_frame.f_code
        tb = tb.tb_next


def test_stop_does_not_hang_on_an_ipn_still_in_flight(threaded_receiver: IpnReceiver) -> None:
    threaded_receiver.then(Answer(delay=math.inf))  # the merchant hangs until the test ends
    sim = SimulatorServer(stop_timeout=10).start()
    txn_id = create(sim, ipn_url=threaded_receiver.url)
    sim.pay(txn_id)
    threaded_receiver.wait_for_sync(1, timeout=10)
    began = time.monotonic()
    sim.stop()  # raises if the thread is still alive after stop_timeout
    assert time.monotonic() - began < 5
    assert not sim.running


@pytest.mark.slow
def test_run_gives_up_after_its_wall_timeout() -> None:
    with SimulatorServer() as sim:
        never: asyncio.Event | None = None

        async def wait_forever() -> None:
            nonlocal never
            never = asyncio.Event()
            await never.wait()

        with pytest.raises(TimeoutError, match="did not finish within 0.2 s"):
            sim.run(wait_forever(), timeout=0.2)
        assert sim.call(lambda: 1 + 1) == 2  # the loop is still fine


def test_the_module_docstring_examples_run() -> None:
    from citcon_sim import testing

    result = doctest.testmod(testing, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0


# -- the consumer's side, the clock and the journal --------------------------------------------


def test_pay_fail_expire_cancel_and_the_transactions(sim: SimulatorServer) -> None:
    paid, failed, expired, abandoned = (create(sim, reference=f"order-{i}") for i in range(4))
    assert sim.pay(paid)["status"] == "success"
    assert sim.fail(failed, reason="card declined")["status"] == "fail"
    assert sim.expire(expired)["status"] == "expired"
    assert sim.cancel(abandoned)["status"] == "cancelled"
    listed = sim.transactions()
    assert [t["id"] for t in listed] == [abandoned, expired, failed, paid]  # newest first
    assert sim.transactions(token=TOKEN) == listed
    assert sim.transactions(token="someone-else") == []
    timeline = sim.transaction(failed)["timeline"]
    assert timeline[-1]["event"] == "fail" and timeline[-1]["detail"] == {
        "reason": "card declined"}
    status, body = post(sim.url_for("/payment/inquire"), reference="order-0")
    assert (status, body["status"]) == (200, "success")


def test_advance_moves_virtual_time_and_expires_the_qr(sim: SimulatorServer) -> None:
    txn_id = create(sim, timeout=300)
    sim.advance(299)
    assert sim.transaction(txn_id)["status"] is None  # inquire's null: not yet
    sim.advance(1)
    assert sim.transaction(txn_id)["status"] == "expired"
    with pytest.raises(TransitionError):
        sim.pay(txn_id)


def test_the_request_journal(sim: SimulatorServer) -> None:
    txn_id = create(sim, reference="order-j")
    post(sim.url_for("/payment/inquire"), transaction_id=txn_id)
    post(sim.url_for("/payment/inquire"), token="other-shop", reference="order-x")
    journal = sim.requests()
    assert [e["endpoint"] for e in journal][:3] == ["inquire", "inquire", "pay_qr"]
    mine = sim.requests(token=TOKEN)
    assert len(mine) == 2 and all(e["token"] != TOKEN for e in mine)  # never in clear
    assert [e["endpoint"] for e in sim.requests(path="pay_qr")] == ["pay_qr"]
    assert {e["endpoint"] for e in sim.requests(transaction_id=txn_id)} >= {"pay_qr"}
    assert sim.requests(path="/payment/pay_qr")[0]["params"]["reference"] == "order-j"
    sim.reset()
    assert sim.requests() == [] and sim.transactions() == []


# -- scenarios ---------------------------------------------------------------------------------


def test_load_a_shipped_scenario_by_name(sim: SimulatorServer) -> None:
    sim.load_scenario("declines")
    declined = create(sim, reference="decline-1")
    assert sim.transaction(declined)["status"] == "fail"
    assert sim.transaction(create(sim, reference="fine-1"))["status"] is None
    sim.clear_scenarios()
    assert sim.transaction(create(sim, reference="decline-2"))["status"] is None


def test_load_a_scenario_from_yaml_text_or_a_file_for_one_merchant(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    sim.load_scenario("""
        rules:
          - match: {reference: "late-*"}
            payment: {outcome: pay, after: 30}
    """, token=TOKEN)
    late = create(sim, reference="late-1")
    other = create(sim, token="other-shop", reference="late-2")  # another merchant
    sim.advance(30)
    assert sim.transaction(late)["status"] == "success"
    assert sim.transaction(other)["status"] is None

    path = tmp_path / "expire.yaml"
    path.write_text("rules:\n  - match: {reference: 'gone-*'}\n    payment: {outcome: expire}\n")
    sim.load_scenario(path)
    assert sim.transaction(create(sim, reference="gone-1"))["status"] == "expired"
    sim.clear_scenarios()
    sim.load_scenario(str(path))
    assert sim.transaction(create(sim, reference="gone-2"))["status"] == "expired"


def test_a_bad_scenario_raises_in_the_caller(sim: SimulatorServer) -> None:
    with pytest.raises(ScenarioError):
        sim.load_scenario("rules:\n  - payment: {outcome: explode}\n")


def test_clear_keeps_configured_scenarios_with_fresh_counters() -> None:
    config = Config(frozen_clock=True, scenarios=["flaky-ipn"])
    with SimulatorServer(config) as sim:
        sim.load_scenario("declines")
        first = create(sim, reference="decline-1")  # declines came later: flaky-ipn decides
        assert sim.transaction(first)["status"] == "success"
        sim.clear()
        assert sim.transactions() == []
        again = create(sim, reference="decline-2")  # nth: 1 again, and declines is gone
        assert sim.transaction(again)["status"] == "success"
        assert sim.ipn_log(again)[0]["script"]["duplicates"] == 1


# -- IPNs, against a real receiver -------------------------------------------------------------


def test_wait_for_ipn_returns_the_delivered_notification(
    sim: SimulatorServer, threaded_receiver: IpnReceiver
) -> None:
    txn_id = create(sim, ipn_url=threaded_receiver.url)
    assert sim.ipn_log(txn_id) == []
    sim.pay(txn_id)
    notification = sim.wait_for_ipn(txn_id)
    assert notification["state"] == "delivered"
    assert notification["transaction_id"] == txn_id
    assert [a["status"] for a in notification["attempts"]] == [200]
    assert threaded_receiver.posts == [notification["form"]]
    assert verify_ipn(threaded_receiver.posts[0], TOKEN)
    assert sim.ipn_log() == [notification] == sim.ipn_log(txn_id)


def test_wait_for_ipn_sees_a_payment_made_while_it_waits(
    sim: SimulatorServer, threaded_receiver: IpnReceiver
) -> None:
    txn_id = create(sim, ipn_url=threaded_receiver.url)
    subscribed_before = sim.simulator.events.handlers(TransactionChanged)
    ipn_subscribed_before = sim.simulator.events.handlers(IpnChanged)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(sim.wait_for_ipn, txn_id, 10.0)
        status, body = post(sim.url_for(f"/_sim/transactions/{txn_id}/pay"), token=None)
        assert status == 200, body
        assert waiting.result(timeout=15)["state"] == "delivered"
    assert len(threaded_receiver.posts) == 1
    events = sim.simulator.events  # the wait's subscriptions ended with it
    assert events.handlers(TransactionChanged) == subscribed_before
    assert events.handlers(IpnChanged) == ipn_subscribed_before


def test_a_failed_attempt_is_retried_when_the_clock_is_advanced(
    sim: SimulatorServer, threaded_receiver: IpnReceiver
) -> None:
    threaded_receiver.then(500)
    txn_id = create(sim, ipn_url=threaded_receiver.url)
    sim.pay(txn_id)
    first = sim.wait_for_ipn(txn_id, acknowledged=False)
    assert first["state"] == "retrying"
    assert [a["status"] for a in first["attempts"]] == [500]
    with pytest.raises(AssertionError, match=r"clock is frozen: call advance\(15\) first"):
        sim.wait_for_ipn(txn_id, attempts=2)  # at once, not after the timeout
    sim.advance(15)
    second = sim.wait_for_ipn(txn_id, attempts=2)
    assert second["state"] == "delivered"
    assert [a["status"] for a in second["attempts"]] == [500, 200]
    assert threaded_receiver.posts[0] == threaded_receiver.posts[1]  # the same form exactly
    with pytest.raises(AssertionError, match="acknowledged after 2 attempt"):
        sim.wait_for_ipn(txn_id, attempts=3)


@pytest.mark.slow
def test_on_a_running_clock_the_retry_comes_by_itself(threaded_receiver: IpnReceiver) -> None:
    threaded_receiver.then(503)
    config = Config(frozen_clock=False, ipn_backoff=(0.2,))  # retry 0.2 s later
    with SimulatorServer(config) as sim:
        txn_id = create(sim, ipn_url=threaded_receiver.url)
        sim.pay(txn_id)
        notification = sim.wait_for_ipn(txn_id, attempts=2)  # no advance(): time runs
        assert [a["status"] for a in notification["attempts"]] == [503, 200]
        assert notification["state"] == "delivered"


def test_a_delayed_ipn_needs_the_clock_advanced_first(
    sim: SimulatorServer, threaded_receiver: IpnReceiver
) -> None:
    sim.load_scenario("rules:\n  - match: {reference: 'slow-*'}\n    ipn: {delay: 60}\n")
    txn_id = create(sim, reference="slow-1", ipn_url=threaded_receiver.url)
    sim.pay(txn_id)
    with pytest.raises(AssertionError, match=r"call advance\(60\) first"):
        sim.wait_for_ipn(txn_id)
    assert threaded_receiver.posts == []
    sim.advance(60)
    assert sim.wait_for_ipn(txn_id)["state"] == "delivered"


def test_duplicates_are_waited_for_by_their_attempt_count(
    sim: SimulatorServer, threaded_receiver: IpnReceiver
) -> None:
    sim.load_scenario("flaky-ipn")  # the first payment's IPN arrives twice
    txn_id = create(sim, ipn_url=threaded_receiver.url)
    notification = sim.wait_for_ipn(txn_id, attempts=2)
    assert [a["trigger"] for a in notification["attempts"]] == ["first", "duplicate"]
    assert len(threaded_receiver.posts) == 2


@pytest.mark.parametrize(("setup", "problem"), [
    ("no_url", "no ipn_url"),
    ("never", "suppressed"),
    ("failed", "transaction is fail: no IPN is due"),
])
def test_wait_for_ipn_fails_at_once_when_no_attempt_can_come(
    sim: SimulatorServer, threaded_receiver: IpnReceiver, setup: str, problem: str
) -> None:
    if setup == "never":
        sim.load_scenario("rules:\n  - ipn: {never: true}\n")
    txn_id = create(sim, ipn_url=threaded_receiver.url) if setup != "no_url" else create(sim)
    if setup == "failed":
        sim.fail(txn_id)
    else:
        sim.pay(txn_id)
    with pytest.raises(AssertionError, match=problem):
        sim.wait_for_ipn(txn_id, timeout=30)  # at once: a 30 s wait would time the test out


@pytest.mark.slow
def test_a_timed_out_wait_lists_the_ipns_on_record(
    sim: SimulatorServer, threaded_receiver: IpnReceiver
) -> None:
    other = create(sim, reference="order-other", ipn_url=threaded_receiver.url)
    sim.pay(other)
    sim.wait_for_ipn(other)
    unpaid = create(sim, reference="order-unpaid", ipn_url=threaded_receiver.url)
    with pytest.raises(AssertionError) as info:
        sim.wait_for_ipn(unpaid, timeout=0.2)
    message = str(info.value)
    assert f"no IPN delivery attempt for {unpaid}" in message
    assert "waited 0.2 s" in message and "still pending: nothing has paid it" in message
    assert f"paid for {other}: delivered [200]" in message
    with pytest.raises(AssertionError, match="there is no such transaction"):
        sim.wait_for_ipn("U0000000000-nope", timeout=0.1)
    with pytest.raises(ValueError):
        sim.wait_for_ipn(unpaid, attempts=0)


def test_redeliver_sends_the_same_form_again(
    sim: SimulatorServer, threaded_receiver: IpnReceiver
) -> None:
    txn_id = create(sim, ipn_url=threaded_receiver.url)
    sim.pay(txn_id)
    notify_id = sim.wait_for_ipn(txn_id)["notify_id"]
    again = sim.redeliver(notify_id)
    assert [a["trigger"] for a in again["attempts"]] == ["first", "redeliver"]
    assert threaded_receiver.posts[0] == threaded_receiver.posts[1]


# -- server-side errors ------------------------------------------------------------------------


def test_check_assertions_re_raises_what_failed_while_serving(sim: SimulatorServer) -> None:
    sim.check_assertions()  # nothing yet
    ledger = sim.simulator.ledger
    original = ledger.inquire

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the ledger broke")

    ledger.inquire = broken  # type: ignore[method-assign]
    try:
        status, body = post(sim.url_for("/payment/inquire"), reference="order-1")
        post(sim.url_for("/payment/inquire"), reference="order-2")
    finally:
        ledger.inquire = original  # type: ignore[method-assign]
    assert (status, body["code"]) == (500, 4000)  # what the merchant code saw
    with pytest.raises(ServerError, match="the ledger broke.*and 1 more") as info:
        sim.check_assertions()
    assert isinstance(info.value, AssertionError)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert len(info.value.errors) == 2
    sim.check_assertions()  # taken: raised once

    post(sim.url_for("/payment/inquire"), reference="order-1")  # fine again
    ledger.inquire = broken  # type: ignore[method-assign]
    try:
        post(sim.url_for("/payment/inquire"), reference="order-3")
    finally:
        ledger.inquire = original  # type: ignore[method-assign]
    sim.clear()  # a clean slate drops recorded errors too
    sim.check_assertions()
