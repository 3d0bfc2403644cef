"""The commands that drive a running simulator (citcon_sim/remote): pay, fail, expire,
cancel, advance, trigger payment, logs, ipn resend, run against a real server."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from citcon_sim import verify_ipn
from citcon_sim.cli import main
from citcon_sim.remote.client import parse_duration
from citcon_sim.testing import SimulatorServer

from .helpers import TOKEN, IpnReceiver, frozen_config

REMOTE_COMMANDS = ("pay", "fail", "expire", "cancel", "advance", "trigger", "logs", "listen",
                   "ipn")


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(frozen_config()) as running:
        yield running


@pytest.fixture
def sim(server: SimulatorServer) -> SimulatorServer:
    server.clear()
    return server


def run(sim: SimulatorServer | str, *args: str, env: dict[str, str] | None = None) -> Result:
    url = sim if isinstance(sim, str) else sim.base_url
    return CliRunner().invoke(main, [*args], env={"CITCON_SIM_URL": url, **(env or {})})


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def created(sim: SimulatorServer, **extra: str) -> str:
    """A pending payment, created as the merchant would (``trigger`` makes paid ones)."""
    import urllib.parse
    import urllib.request

    form = {"vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "r-1",
            "allow_duplicates": "yes", "response_format": "json", **extra}
    request = urllib.request.Request(sim.url_for("/payment/pay_qr"),
                                     urllib.parse.urlencode(form).encode(),
                                     {"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request) as response:
        return str(json.load(response)["transaction_id"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- help and errors ---------------------------------------------------------------------------


def test_main_help_lists_every_remote_command():
    out = ok(CliRunner().invoke(main, ["--help"]))
    commands = out.split("Commands:")[1].split("Configuration")[0]
    listed = {line.split()[0] for line in commands.splitlines() if line.strip()}
    assert set(REMOTE_COMMANDS) <= listed
    assert "resend" in ok(CliRunner().invoke(main, ["ipn", "--help"]))
    assert "payment" in ok(CliRunner().invoke(main, ["trigger", "--help"]))


@pytest.mark.parametrize("args", [
    ["pay", "U0000000001-00000000000000000000"], ["advance", "5m"], ["logs"],
    ["trigger", "payment"], ["ipn", "resend", "n-1"],
    ["listen", "--forward-to", "http://127.0.0.1:9/ipn"],
])
def test_no_simulator_is_one_clear_line(args):
    url = f"http://127.0.0.1:{free_port()}"
    result = run(url, *args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: no simulator at {url} (connection refused): start "
                               "one with `citcon-sim serve`")
    assert "Traceback" not in result.output


def test_url_comes_from_the_option_over_the_environment(sim):
    txn = created(sim)
    result = CliRunner().invoke(main, ["pay", txn, "--url", sim.base_url],
                                env={"CITCON_SIM_URL": "http://127.0.0.1:9"})
    assert txn in ok(result)
    bad = CliRunner().invoke(main, ["pay", txn, "--url", "localhost:8080"])
    assert bad.exit_code == 2 and "is not an http:// or https:// URL" in bad.output


def test_an_unknown_id_is_the_simulators_message_on_one_line(sim):
    result = run(sim, "pay", "U0000000001-00000000000000000000")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "(HTTP 404)" in result.output and "Traceback" not in result.output


def test_a_locked_control_surface_needs_the_admin_token():
    with SimulatorServer(frozen_config(admin_token="s3cret")) as locked:
        txn = created(locked)
        refused = run(locked, "pay", txn)
        assert refused.exit_code == 1 and "--admin-token" in refused.output
        assert locked.transaction(txn)["internal_status"] == "pending"  # nothing changed
        assert "success" in ok(run(locked, "pay", txn, "--admin-token", "s3cret"))
        assert "clock" in ok(run(locked, "advance", "1s",
                                 env={"CITCON_SIM_ADMIN_TOKEN": "s3cret"}))


# -- the consumer's side -----------------------------------------------------------------------


@pytest.mark.parametrize(("action", "status"), [
    ("pay", "success"), ("fail", "fail"), ("expire", "expired"), ("cancel", "cancelled")])
def test_consumer_actions_change_the_transaction(sim, action, status):
    txn = created(sim)
    out = ok(run(sim, action, txn))
    assert out.split()[:2] == [txn, status]
    assert sim.transaction(txn)["internal_status"] == status


def test_fail_reason_and_json_output(sim):
    txn = created(sim)
    body = json.loads(ok(run(sim, "fail", txn, "--reason", "card stolen", "--json")))
    assert body["id"] == txn and body["internal_status"] == "fail"
    assert any("card stolen" in json.dumps(e["detail"]) for e in body["timeline"])


def test_an_action_the_transaction_does_not_allow_changes_nothing(sim):
    txn = created(sim)
    sim.pay(txn)
    result = run(sim, "expire", txn)
    assert result.exit_code == 1 and "(HTTP 409)" in result.output
    assert sim.transaction(txn)["internal_status"] == "success"


# -- the clock -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("90s", 90), ("5m", 300), ("2h", 7200), ("1d", 86400), ("1h30m", 5400),
    ("1.5m", 90), (" 2H ", 7200)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5x", "-5m", "1h30", "m5"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_advance_moves_the_virtual_clock_and_fires_what_is_due(sim):
    txn = created(sim, timeout="60")
    before = sim.call(lambda: sim.simulator.clock.time())
    out = ok(run(sim, "advance", "2m"))
    assert sim.call(lambda: sim.simulator.clock.time()) == before + 120
    assert "moved 120 s" in out
    assert sim.transaction(txn)["internal_status"] == "expired"
    body = json.loads(ok(run(sim, "advance", "1d", "--json")))
    assert body["epoch"] == before + 120 + 86400


def test_a_bad_duration_is_a_usage_error_and_moves_nothing(sim):
    before = sim.call(lambda: sim.simulator.clock.time())
    result = run(sim, "advance", "soon")
    assert result.exit_code == 2 and "is not a duration" in result.output
    too_far = run(sim, "advance", "4000d")
    assert too_far.exit_code == 1 and "ten years" in too_far.output
    assert sim.call(lambda: sim.simulator.clock.time()) == before


# -- trigger payment -------------------------------------------------------------------------


def test_trigger_payment_creates_pays_and_reports_the_ipn(sim, threaded_receiver: IpnReceiver):
    out = ok(run(sim, "trigger", "payment", "--vendor", "wechatpay", "--amount", "2500",
                 "--ipn-url", threaded_receiver.url))
    txn = out.split()[1]
    assert sim.transaction(txn)["internal_status"] == "success"
    assert sim.transaction(txn)["vendor"] == "wechatpay"
    assert "IPN" in out and "delivered: attempt 1 HTTP 200" in out
    (form,) = threaded_receiver.posts
    assert form["id"] == txn and verify_ipn(form, "test-token")


def test_trigger_payment_json_and_a_failing_endpoint(sim, threaded_receiver: IpnReceiver):
    threaded_receiver.answer(500, "no")
    body = json.loads(ok(run(sim, "trigger", "payment", "--token", "shop-b", "--json",
                             "--ipn-url", threaded_receiver.url, "--reference", "o-7")))
    assert body["created"]["reference"] == "o-7"
    assert body["transaction"]["token_hint"] == sim.transactions("shop-b")[0]["token_hint"]
    assert body["ipn"]["state"] == "retrying"
    assert body["ipn"]["attempts"][0]["status"] == 500


def test_trigger_payment_through_chop_signs_chops_ipn(sim, threaded_receiver: IpnReceiver):
    out = ok(run(sim, "trigger", "payment", "--face", "chop", "--vendor", "wechatpay",
                 "--ipn-url", threaded_receiver.url))
    txn = out.split()[1]
    assert sim.transaction(txn)["face"] == "chop" and "/u_landing?q=" in out
    (form,) = threaded_receiver.posts
    assert form["id"] == txn and "delivered" in out


def test_trigger_payment_through_upi_uses_the_private_key(sim, threaded_receiver: IpnReceiver):
    from citcon_sim import verify_upi_ipn

    out = ok(run(sim, "trigger", "payment", "--face", "upi", "--token", "sk-upi",
                 "--ipn-url", threaded_receiver.url))
    txn = out.split()[1]
    assert sim.transaction(txn)["face"] == "upi" and "/v1/landing/" in out
    (received,) = threaded_receiver.requests
    assert received.content_type == "application/json"
    assert received.form["id"] == txn and verify_upi_ipn(received.form, "sk-upi")
    refused = run(sim, "trigger", "payment", "--face", "upi", "--amount", "1.5")
    assert refused.exit_code == 1 and "(HTTP 400)" in refused.output


def test_trigger_payment_without_an_ipn_url(sim):
    out = ok(run(sim, "trigger", "payment", "--endpoint", "pay"))
    assert "not_sent" in out and "no ipn_url" in out and "/u_landing?q=" in out


def test_trigger_payment_with_a_delayed_ipn_says_when(sim, threaded_receiver: IpnReceiver):
    sim.load_scenario("rules: [{match: {reference: 'late-*'}, ipn: {delay: 30}}]")
    out = ok(run(sim, "trigger", "payment", "--reference", "late-1", "--ipn-url",
                 threaded_receiver.url, "--wait", "5"))
    assert "first attempt due at" in out and not threaded_receiver.posts


@pytest.mark.parametrize("face", ["online", "chop"])
def test_trigger_payment_refused_by_the_api_is_one_line(sim, face):
    result = run(sim, "trigger", "payment", "--vendor", "nosuchwallet", "--face", face)
    # Each API's error shape (CHOP's text is under "error") gives the one line.
    assert result.exit_code == 1
    assert result.output == "Error: Vendor not supported: 'nosuchwallet' (HTTP 400)\n"
    assert sim.transactions() == []


# -- logs ----------------------------------------------------------------------------------


def test_logs_shows_the_journal_oldest_first_with_filters(sim):
    first, second = created(sim, reference="a"), created(sim, reference="b")
    out = ok(run(sim, "logs"))
    lines = out.strip().splitlines()
    assert len(lines) == 2 and first in lines[0] and second in lines[1]
    assert "/payment/pay_qr -> 200" in lines[0]
    only = ok(run(sim, "logs", "--transaction", second, "--json"))
    entries = [json.loads(line) for line in only.strip().splitlines()]
    assert [e["transaction_id"] for e in entries] == [second]
    assert ok(run(sim, "logs", "--token", "someone-else")) == ""
    assert len(ok(run(sim, "logs", "-n", "1")).strip().splitlines()) == 1


def test_logs_follow_prints_new_calls_once(sim):
    created(sim, reference="old")
    # Bounded: follows for a short wall time; what came before it is printed once.
    out = ok(run(sim, "logs", "--follow", "--timeout", "0.3", "--interval", "0.05"))
    assert len(out.strip().splitlines()) == 1


def test_the_journal_after_parameter_returns_only_newer_calls(sim):
    import urllib.request

    created(sim, reference="a")
    created(sim, reference="b")
    with urllib.request.urlopen(sim.url_for("/_sim/requests?after=0")) as resp:
        both = json.load(resp)["requests"]
    newest = max(e["seq"] for e in both)
    with urllib.request.urlopen(sim.url_for(f"/_sim/requests?after={newest - 1}")) as resp:
        assert [e["seq"] for e in json.load(resp)["requests"]] == [newest]
    with pytest.raises(urllib.error.HTTPError) as refused:  # not a number: 400, not a 500
        urllib.request.urlopen(sim.url_for("/_sim/requests?after=x"))
    refused.value.close()
    assert refused.value.code == 400


# -- ipn resend ------------------------------------------------------------------------------


def _notify_id(sim: SimulatorServer, txn: str) -> str:
    note: dict[str, Any] = sim.wait_for_ipn(txn)
    return str(note["notify_id"])


def test_ipn_resend_sends_the_same_notification_again(sim, threaded_receiver: IpnReceiver):
    txn = created(sim, ipn_url=threaded_receiver.url)
    sim.pay(txn)
    notify_id = _notify_id(sim, txn)
    out = ok(run(sim, "ipn", "resend", notify_id))
    assert f"{notify_id}: attempt 2 HTTP 200" in out
    first, again = threaded_receiver.posts
    assert first == again and verify_ipn(again, TOKEN)
    attempts = sim.ipn_log(txn)[0]["attempts"]
    assert [a["trigger"] for a in attempts] == ["first", "redeliver"]


def test_ipn_resend_exits_1_when_not_acknowledged(sim, threaded_receiver: IpnReceiver):
    txn = created(sim, ipn_url=threaded_receiver.url)
    sim.pay(txn)
    notify_id = _notify_id(sim, txn)
    threaded_receiver.answer(503, "busy")
    result = run(sim, "ipn", "resend", notify_id, "--json")
    assert result.exit_code == 1
    assert json.loads(result.output)["attempt"]["status"] == 503


def test_ipn_resend_no_wait_queues_it(sim, threaded_receiver: IpnReceiver):
    txn = created(sim, ipn_url=threaded_receiver.url)
    sim.pay(txn)
    notify_id = _notify_id(sim, txn)
    out = ok(run(sim, "ipn", "resend", notify_id, "--no-wait"))
    # Answered before any worker could take it (the handler does not wait at all).
    assert out.strip() == f"{notify_id} queued for redelivery to {threaded_receiver.url}"
    assert sim.wait_for_ipn(txn, attempts=2)["attempts"][1]["trigger"] == "redeliver"


def test_ipn_resend_of_an_unknown_notification(sim):
    result = run(sim, "ipn", "resend", "nope")
    assert result.exit_code == 1 and "no notification 'nope' (HTTP 404)" in result.output
