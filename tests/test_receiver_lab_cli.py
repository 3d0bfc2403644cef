"""``citcon-sim check-receiver`` (table, JSON, JUnit XML, exit status) and the test helpers
``citcon_sim.testing.check_receiver`` / ``check_receiver_async``."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from citcon_sim import Config, verify_ipn
from citcon_sim.cli import main
from citcon_sim.receiver_lab import CHECKS, FACES
from citcon_sim.testing import SimulatorServer, check_receiver, check_receiver_async

from .helpers import threaded_ipn_receiver
from .receiver_lab_support import CorrectReceiver, free_port, naive_app, serving, threaded

TOKEN = "cli-merchant-token"


@pytest.mark.parametrize("face", FACES)
def test_cli_passes_a_correct_receiver_that_inquires_the_lab_gateway(
        face: str, tmp_path: Path) -> None:
    port = free_port()
    receiver = CorrectReceiver(TOKEN, face, gateway=f"http://127.0.0.1:{port}")
    with threaded(receiver.app()) as url:
        result = CliRunner().invoke(main, [
            "check-receiver", url, "--token", TOKEN, "--face", face,
            "--gateway-port", str(port), "--json", str(tmp_path / "r.json"),
            "--junit", str(tmp_path / "r.xml")])
    assert result.exit_code == 0, result.output
    assert f"gateway=http://127.0.0.1:{port}" in result.output
    assert "-> OK" in result.output and "FAIL " not in result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["ok"] is True and data["exit_status"] == 0 and data["face"] == face
    by_id = {c["id"]: c for c in data["checks"]}
    assert list(by_id) == [c.id for c in CHECKS]
    assert by_id["inquiry"]["outcome"] == "pass"
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    assert len(suite.findall("testcase")) == len(CHECKS)


@pytest.mark.parametrize("face", FACES)
def test_cli_fails_a_naive_receiver_naming_the_forged_signature(
        face: str, tmp_path: Path) -> None:
    with threaded(naive_app()) as url:
        result = CliRunner().invoke(main, [
            "check-receiver", url, "--token", TOKEN, "--face", face,
            "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml")])
    assert result.exit_code == 1
    row = next(line for line in result.output.splitlines()
               if line.split()[1:2] == ["forged-signature"])
    assert row.startswith("FAIL") and "accepted" in row
    assert "FAILED: forged-signature" in result.output
    data = json.loads((tmp_path / "r.json").read_text())
    forged = next(c for c in data["checks"] if c["id"] == "forged-signature")
    assert data["ok"] is False and forged["outcome"] == "fail" and forged["status"] == 200
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "4"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    failure = cases["forged-signature"].find("failure")
    assert failure is not None and "accepted" in failure.get("message", "")
    assert cases["inquiry"].find("skipped") is not None  # not judged
    assert cases["valid"].find("failure") is None and cases["valid"].find("skipped") is None


def test_cli_refuses_a_url_that_is_not_http() -> None:
    result = CliRunner().invoke(main, ["check-receiver", "ftp://x/ipn", "--token", TOKEN])
    assert result.exit_code == 2 and "http://" in result.output


def test_cli_says_when_the_gateway_port_is_taken() -> None:
    with threaded(naive_app()) as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])  # the receiver holds it
        result = CliRunner().invoke(main, ["check-receiver", url, "--token", TOKEN,
                                           "--gateway-port", str(port)])
    assert result.exit_code == 1 and "--gateway-port" in result.output


# -- the test helpers ------------------------------------------------------------------------


def test_helper_with_the_tests_gateway_judges_inquiry() -> None:
    with SimulatorServer() as server:
        receiver = CorrectReceiver(TOKEN, "chop", gateway=server.base_url)
        with threaded(receiver.app()) as url:
            report = check_receiver(url, TOKEN, "chop", gateway=server)
        report.assert_ok()
        assert report.result("inquiry").outcome.value == "pass"
        assert report.gateway_url == server.base_url
        # The checks' transactions are in the test's simulator, under lab- references.
        refs = {t["reference"] for t in server.transactions(TOKEN)}
        assert refs and all(r.startswith("lab-") for r in refs)
        assert server.requests(token=TOKEN, path="inquire")


def test_helper_assert_ok_lists_the_failures() -> None:
    with SimulatorServer() as server, threaded(naive_app()) as url:
        report = check_receiver(url, TOKEN, gateway=server)
    assert [r.check.id for r in report.failed][0] == "forged-signature"
    # Told where the gateway is, the naive receiver's silence is advice.
    assert report.result("inquiry").outcome.value == "advice"
    with pytest.raises(AssertionError) as raised:
        report.assert_ok()
    text = str(raised.value)
    assert text.count("\n- ") == 4 and "- forged-signature: accepted" in text


async def test_async_helper_runs_on_the_tests_loop() -> None:
    receiver = CorrectReceiver(TOKEN, "upi")
    async with serving(receiver.app()) as url:
        report = await check_receiver_async(url, TOKEN, "upi")
        with pytest.raises(RuntimeError, match="check_receiver_async"):
            check_receiver(url, TOKEN, "upi")
    assert report.ok and report.result("inquiry").outcome.value == "not judged"


def test_a_chop_merchant_on_json_gets_json_and_a_form_as_the_other_encoding(
        tmp_path: Path) -> None:
    merchants = tmp_path / "merchants.yaml"
    merchants.write_text(f"merchants:\n  - token: {TOKEN}\n    chop_ipn_encoding: json\n")
    config = Config(frozen_clock=True, port=0, merchants_file=merchants)
    with SimulatorServer(config) as server, threaded_ipn_receiver() as receiver:
        report = check_receiver(receiver.url, TOKEN, "chop", gateway=server)
    kinds = [r.content_type for r in receiver.requests]
    assert kinds.count("application/x-www-form-urlencoded") == 1  # other-encoding only
    assert kinds.count("application/json") == len(kinds) - 1
    assert report.result("other-encoding").outcome.value == "pass"


# -- --url: a simulator already running is the gateway ----------------------------------------


@pytest.mark.parametrize("face", FACES)
def test_cli_with_url_judges_inquiry_from_the_running_simulators_journal(
        face: str, tmp_path: Path) -> None:
    with SimulatorServer(Config(frozen_clock=True, port=0, admin_token="adm")) as server:
        receiver = CorrectReceiver(TOKEN, face, gateway=server.base_url)
        with threaded(receiver.app()) as url:
            result = CliRunner().invoke(main, [
                "check-receiver", url, "--token", TOKEN, "--face", face,
                "--url", server.base_url, "--json", str(tmp_path / "r.json")],
                env={"CITCON_SIM_ADMIN_TOKEN": "adm"})
        assert result.exit_code == 0, result.output
        assert f"gateway={server.base_url}" in result.output
        by_id = {c["id"]: c for c in json.loads((tmp_path / "r.json").read_text())["checks"]}
        assert by_id["inquiry"]["outcome"] == "pass", by_id["inquiry"]
        assert by_id["forged-signature"]["outcome"] == "pass"
        # The receiver inquired the running simulator, which holds the checks'
        # transactions, made through the face's merchant API in the states they need.
        assert receiver.inquiries >= 1 and receiver.paid
        states = {t["reference"].split("-")[1]: t["internal_status"]
                  for t in server.transactions(TOKEN)}
        assert states["valid"] == "success" and states["forged"] == "pending"
        assert states["failure"] == "fail"
        assert {t["face"] for t in server.transactions(TOKEN)} == {face}
        valid_id = by_id["valid"]["transaction_id"]
        assert server.requests(token=TOKEN, path="inquire", transaction_id=valid_id)


def test_cli_with_url_fails_a_naive_receiver_and_calls_its_silence_advice() -> None:
    with SimulatorServer() as server, threaded(naive_app()) as url:
        result = CliRunner().invoke(main, [
            "check-receiver", url, "--token", TOKEN, "--url", server.base_url])
    assert result.exit_code == 1
    rows = {line.split()[1]: line for line in result.output.splitlines()
            if len(line.split()) > 1}
    assert rows["forged-signature"].startswith("FAIL")
    assert rows["inquiry"].startswith("advice") and server.base_url in rows["inquiry"]


def test_cli_with_url_says_in_one_line_when_no_simulator_runs() -> None:
    port = free_port()
    with threaded(naive_app()) as url:
        result = CliRunner().invoke(main, [
            "check-receiver", url, "--token", TOKEN, "--url", f"http://127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: no simulator at http://127.0.0.1:{port} (connection refused): start one "
        "with `citcon-sim serve`, or point --url / CITCON_SIM_URL at it"]


def test_cli_with_url_needs_the_admin_token_of_a_locked_simulator() -> None:
    with SimulatorServer(Config(frozen_clock=True, port=0, admin_token="adm")) as server, \
            threaded(naive_app()) as url:
        result = CliRunner().invoke(main, [
            "check-receiver", url, "--token", TOKEN, "--url", server.base_url],
            env={"CITCON_SIM_ADMIN_TOKEN": ""})
        assert not server.transactions(TOKEN)
    assert result.exit_code == 1 and "--admin-token" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_url_and_gateway_port_are_one_or_the_other() -> None:
    result = CliRunner().invoke(main, ["check-receiver", "http://127.0.0.1:1/ipn", "--token",
                                       TOKEN, "--url", "http://127.0.0.1:2",
                                       "--gateway-port", "3"])
    assert result.exit_code == 2 and "--gateway-port" in result.output


def test_cli_with_url_takes_the_simulators_ipn_timeout_and_sees_its_journal_off(
        tmp_path: Path) -> None:
    config = Config(frozen_clock=True, port=0, ipn_timeout=3.5, journal_size=0)
    with SimulatorServer(config) as server, threaded(naive_app()) as url:
        CliRunner().invoke(main, ["check-receiver", url, "--token", TOKEN, "--url",
                                  server.base_url, "--json", str(tmp_path / "r.json")])
    data = json.loads((tmp_path / "r.json").read_text())
    inquiry = next(c for c in data["checks"] if c["id"] == "inquiry")
    assert data["timeout"] == 3.5
    assert inquiry["outcome"] == "not judged" and "journal" in inquiry["detail"]


def test_cli_with_url_signs_what_that_simulator_would_post(tmp_path: Path) -> None:
    """The notifications carry the running simulator's ids, amounts and the partner id
    its merchants file gives the merchant, and verify with the merchant's token."""
    merchants = tmp_path / "merchants.yaml"
    merchants.write_text(f"merchants:\n  - token: {TOKEN}\n    partner_id: '123456789'\n")
    config = Config(frozen_clock=True, port=0, merchants_file=merchants)
    with SimulatorServer(config) as server, threaded_ipn_receiver() as receiver:
        result = CliRunner().invoke(main, ["check-receiver", receiver.url, "--token", TOKEN,
                                           "--url", server.base_url, "--json",
                                           str(tmp_path / "r.json")])
        known = {t["id"]: t for t in server.transactions(TOKEN)}
    assert result.exit_code in (0, 1), result.output
    valid = receiver.posts[0]
    assert verify_ipn(valid, TOKEN) and valid["partner_id"] == "123456789"
    txn = known[valid["id"]]
    assert (valid["reference"], valid["amount"], valid["trans_amount"], valid["time"]) == (
        txn["reference"], str(txn["amount"]), str(txn["trans_amount"]), txn["paid_time"])
