"""Behaviour coverage (citcon_sim.testing.coverage): each behaviour is recorded when, and
only when, the simulator shows it; the pytest options report, write JSON and enforce a
threshold."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from citcon_sim import Config
from citcon_sim.testing import SimulatorServer
from citcon_sim.testing.coverage import CATALOGUE, Recorder

from .helpers import TOKEN, Http
from .upi_support import charge_request

pytest_plugins = ["pytester"]


def call(server: SimulatorServer, path: str, token: str | None = TOKEN,
         **fields: Any) -> tuple[int, str]:
    """POST a form to the server; answers (status, body)."""
    status, _, body = Http(server.base_url)("POST", path, fields, token)
    return status, body.decode()


def create(server: SimulatorServer, **fields: Any) -> str:
    payment = {"vendor": "alipay", "amount": 1000, "currency": "USD",
               "reference": "order-1", "allow_duplicates": "yes", **fields}
    status, body = call(server, "/payment/pay_qr", **payment)
    assert status == 200, body
    return str(json.loads(body)["transaction_id"]) if body.startswith("{") else \
        body.split("=")[1].split("&")[0]


def covered(actions: Callable[[SimulatorServer], None], **config: Any) -> set[str]:
    """The behaviours ``actions`` make a fresh server show, as the recorder saw them."""
    recorder = Recorder()
    SimulatorServer.observers.append(recorder)
    try:
        with SimulatorServer(Config(frozen_clock=True, port=0, **config)) as server:
            actions(server)
    finally:
        SimulatorServer.observers.remove(recorder)
    return {b.id for b, _, tests in recorder.report().rows if tests}


def test_consumer_outcomes_and_an_acknowledged_ipn(threaded_receiver: Any) -> None:
    def actions(server: SimulatorServer) -> None:
        server.expire(create(server))
        server.fail(create(server))
        server.cancel(create(server))  # the consumer abandons the wallet page
        paid = create(server, ipn_url=threaded_receiver.url)
        server.pay(paid)
        server.wait_for_ipn(paid)
    assert covered(actions) == {"qr_expired", "consumer_failed", "consumer_abandoned",
                                "paid_ipn_acknowledged"}


def test_refunds_partial_full_several_and_each_refusal() -> None:
    def actions(server: SimulatorServer) -> None:
        paid = create(server)
        server.pay(paid)
        for amount, refunded in ((300, True), (800, False), (700, True)):
            status, body = call(server, "/payment/refund", transaction_id=paid,
                                amount=amount, currency="USD")
            assert status == 200 and json.loads(body)["refunded"] is refunded, body
        pending = create(server)
        status, body = call(server, "/payment/refund", transaction_id=pending, amount=1,
                            currency="USD")
        assert json.loads(body)["status"] == "transaction not paid", body
        yesterday = create(server)
        server.pay(yesterday)
        server.advance(86400)  # the open balance is the new day's: nothing yet
        status, body = call(server, "/payment/refund", transaction_id=yesterday, amount=10,
                            currency="USD")
        assert json.loads(body)["status"] == "insufficient open balance", body
    assert covered(actions) == {"partial_refund", "full_refund", "several_refunds",
                                "over_refund_refused", "refund_unpaid_refused",
                                "open_balance_refused"}


def test_one_refund_of_everything_is_full_not_partial() -> None:
    def actions(server: SimulatorServer) -> None:
        paid = create(server)
        server.pay(paid)
        status, body = call(server, "/payment/refund", transaction_id=paid, amount=1000,
                            currency="USD")
        assert json.loads(body)["refunded"] is True, body
    assert covered(actions) == {"full_refund"}


def test_cancels_pending_paid_duplicate_and_outside_the_window() -> None:
    def actions(server: SimulatorServer) -> None:
        pending = create(server)
        paid = create(server)
        late = create(server)
        server.pay(paid)
        server.pay(late)
        for txn in (pending, paid, paid):
            assert call(server, "/payment/cancel", transaction_id=txn)[0] == 200
        server.advance(2 * 86400)  # Alipay's cancel window is a day
        status, body = call(server, "/payment/cancel", transaction_id=late)
        assert "Not in cancellation window" in body, body
    assert covered(actions) == {"cancel_pending", "cancel_paid", "duplicate_cancel",
                                "cancel_window_refused"}


def test_captures_multi_and_over_capture() -> None:
    def actions(server: SimulatorServer) -> None:
        txn = create(server, vendor="klarna")
        server.pay(txn)  # authorised only: Klarna captures later
        for amount, ok in ((300, True), (300, True), (1000, False)):
            status, body = call(server, "/payment/capture", transaction_id=txn,
                                amount=amount, multi_capture="true")
            assert (status == 200) is ok, body
    assert covered(actions) == {"capture", "multi_capture", "over_capture_refused",
                                "request_refused"}


def test_ipn_retried_redelivered_and_given_up(threaded_receiver: Any) -> None:
    def actions(server: SimulatorServer) -> None:
        threaded_receiver.then(500)  # the first attempt fails, the retry is acknowledged
        txn = create(server, ipn_url=threaded_receiver.url)
        server.pay(txn)
        server.wait_for_ipn(txn, acknowledged=False)
        server.advance(60)
        notification = server.wait_for_ipn(txn, attempts=2)
        assert notification["state"] == "delivered", notification
        server.redeliver(notification["notify_id"])
    assert covered(actions, ipn_backoff=(60.0,)) == {
        "paid_ipn_acknowledged", "ipn_retried", "duplicate_ipn"}

    def never(server: SimulatorServer) -> None:
        threaded_receiver.answer(503)
        txn = create(server, ipn_url=threaded_receiver.url)
        server.pay(txn)
        server.wait_for_ipn(txn, acknowledged=False)
        server.advance(60)
        assert server.wait_for_ipn(txn, attempts=2, acknowledged=False)["state"] == "failed"
    assert covered(never, ipn_backoff=(60.0,)) == {"ipn_given_up"}


def test_scripted_notifications_failure_forged_and_stale(threaded_receiver: Any) -> None:
    def actions(server: SimulatorServer) -> None:
        for ipn in ("{status: fail}", "{bad_signature: true}", "{out_of_order: true}"):
            server.clear_scenarios()
            server.load_scenario(f"rules:\n  - ipn: {ipn}\n")
            txn = create(server, ipn_url=threaded_receiver.url)
            server.pay(txn)
            server.advance(60)
            server.wait_for_ipn(txn)
    # The out-of-order case's real notification comes first, and is acknowledged.
    assert covered(actions) == {"failure_ipn", "forged_ipn", "stale_ipn",
                                "paid_ipn_acknowledged"}


def test_calls_read_from_the_journal() -> None:
    def actions(server: SimulatorServer) -> None:
        txn = create(server)
        assert call(server, "/payment/inquire", transaction_id=txn)[0] == 200
        assert call(server, "/payment/inquire", token=None, transaction_id=txn)[0] == 401
        assert call(server, "/payment/pay_qr", vendor="alipay")[0] == 400
        server.load_scenario("rules:\n  - match: {endpoint: refund}\n"
                             "    api: {http_status: 503}\n")
        assert call(server, "/payment/refund", transaction_id=txn, amount=1,
                    currency="USD")[0] == 503
    assert covered(actions) == {"inquired", "unauthorized", "request_refused",
                                "gateway_error"}


def test_only_the_faces_a_suite_used_count() -> None:
    recorder = Recorder()
    SimulatorServer.observers.append(recorder)
    try:
        with SimulatorServer(Config(frozen_clock=True, port=0)) as server:
            server.expire(create(server))
    finally:
        SimulatorServer.observers.remove(recorder)
    report = recorder.report()
    assert report.faces == ("online",)
    assert len(report.rows) == sum(1 for b in CATALOGUE if "online" in b.faces)
    assert report.covered == 1
    assert Recorder(faces=["online", "upi"]).report().faces == ("online", "upi")


def test_behaviours_are_attributed_to_the_running_test() -> None:
    recorder = Recorder()
    SimulatorServer.observers.append(recorder)
    try:
        with SimulatorServer(Config(frozen_clock=True, port=0)) as server:
            recorder.current = "test_a"
            server.expire(create(server))
            recorder.current = "test_b"
            server.fail(create(server))
            recorder.harvest_all()
    finally:
        SimulatorServer.observers.remove(recorder)
    tests = {b.id: t for b, _, t in recorder.report().rows if t}
    assert tests == {"qr_expired": ("test_a",), "consumer_failed": ("test_b",)}


# -- the pytest options, in a merchant's own suite --------------------------------------

MERCHANT_SUITE = '''
    import urllib.request, urllib.parse

    def create(citcon_sim):
        data = urllib.parse.urlencode({"vendor": "alipay", "amount": "1000",
                                       "currency": "USD", "reference": "o1"}).encode()
        req = urllib.request.Request(citcon_sim.url_for("/payment/pay_qr"), data=data,
                                     headers={"Authorization": "Bearer shop"})
        with urllib.request.urlopen(req) as resp:
            return resp.read().decode().split("=")[1].split("&")[0]

    def test_expiry(citcon_sim):
        citcon_sim.expire(create(citcon_sim))

    def test_failure(citcon_sim):
        citcon_sim.fail(create(citcon_sim))
'''


def run_suite(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(MERCHANT_SUITE)
    return pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function", *args)


def test_the_report_names_what_the_suite_never_tried(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "--citcon-sim-coverage")
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*citcon-sim behaviour coverage: 2/* on online",
        "*ok    QR expired unpaid*1 test",
        "*ok    consumer's payment failed*1 test",
        "*MISS  partial refund*",
    ])


def test_fail_under_fails_a_suite_that_misses_behaviours(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "--citcon-sim-coverage-fail-under=50")
    result.assert_outcomes(passed=2)  # every test passed, yet the run fails
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*FAIL: citcon-sim behaviour coverage *% is under 50%*"])

    assert run_suite(pytester, "--citcon-sim-coverage-fail-under=5").ret == 0


def test_json_report_lists_every_behaviour_with_its_tests(pytester: pytest.Pytester) -> None:
    out = pytester.path / "coverage.json"
    result = run_suite(pytester, f"--citcon-sim-coverage-json={out}")
    assert result.ret == 0
    report = json.loads(out.read_text())
    assert report["faces"] == ["online"] and report["covered"] == 2
    by_id = {b["id"]: b for b in report["behaviours"]}
    assert by_id["qr_expired"]["tests"] == ["test_json_report_lists_every_behaviour_with_its_"
                                            "tests.py::test_expiry"]
    assert by_id["partial_refund"] == {**by_id["partial_refund"], "covered": False,
                                       "tests": []}


def test_an_unknown_face_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "--citcon-sim-coverage-faces=online,paypal")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown face(s) paypal*"])


def test_without_the_option_nothing_is_watched(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester)
    assert result.ret == 0
    assert "behaviour coverage" not in result.stdout.str()
    assert SimulatorServer.observers == []


def test_each_face_is_counted_on_its_own() -> None:
    """A CHOP partial refund and a UPI expiry count for CHOP and UPI only."""
    recorder = Recorder()
    SimulatorServer.observers.append(recorder)
    try:
        with SimulatorServer(Config(frozen_clock=True, port=0)) as server:
            status, body = call(server, "/chop/chop", payment_method="alipay", amount=100,
                                currency="USD", reference="c-1")
            assert status == 200, body
            chop_id = json.loads(body)["transaction_id"]
            server.pay(chop_id)
            status, body = call(server, "/chop/refund", transaction_id=chop_id, amount=40,
                                currency="USD")
            assert status == 200, body
            request = charge_request(server, reference="u-1")
            with urllib.request.urlopen(request, timeout=10) as resp:
                upi_id = json.loads(resp.read())["data"]["id"]
            server.expire(upi_id)
    finally:
        SimulatorServer.observers.remove(recorder)
    report = recorder.report()
    assert report.faces == ("chop", "upi")
    assert {(b.id, face) for b, face, tests in report.rows if tests} == {
        ("partial_refund", "chop"), ("qr_expired", "upi")}
    assert not any(b.id == "capture" for b, face, _ in report.rows if face == "chop")


def test_the_docs_list_the_catalogue_as_the_code_has_it() -> None:
    from pathlib import Path
    text = (Path(__file__).resolve().parent.parent / "docs" / "coverage.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows == [f"| `{b.id}` | {b.title} | {', '.join(b.faces)} | {b.why} |"
                    for b in CATALOGUE]


def test_the_scenario_surprises_count_as_behaviours(threaded_receiver: Any) -> None:
    def actions(server: SimulatorServer) -> None:
        def rule(text: str) -> None:
            server.clear_scenarios()
            server.load_scenario(f"rules:\n  - {text}\n")
        rule("payment: {outcome: expire, late_confirm: 5}")
        late = create(server)
        server.advance(5)
        assert server.transaction(late)["status"] == "success"
        rule("payment: {outcome: pay, paid_twice: true}")
        create(server)
        rule("payment: {outcome: pay}\n    ipn: {amount_differs: 5, before_answer: true}")
        create(server, ipn_url=threaded_receiver.url)
        for api in ("{rate_limit: 9}", "{cdn_error: 502}", "{truncate: true}",
                    "{timeout: true}"):
            rule(f"api: {api}")
            try:
                call(server, "/payment/inquire", transaction_id=late)
            except ConnectionError:  # the timeout drops the connection
                pass
    found = covered(actions)
    assert found >= {"late_confirm", "paid_twice", "ipn_amount_differs",
                     "ipn_before_answer", "rate_limited", "cdn_error", "truncated_body",
                     "timeout_after_work"}
    # The everyday behaviours they also are, and nothing they are not:
    assert found - {b.id for b in CATALOGUE if b.title.startswith("surprise")} == {
        "qr_expired", "paid_ipn_acknowledged", "inquired", "request_refused",
        "gateway_error"}


def test_a_consumer_sent_back_to_the_fail_url() -> None:
    def actions(server: SimulatorServer) -> None:
        with_url = create(server, callback_url_fail="https://shop.example/failed")
        without = create(server)
        for txn, target in ((with_url, "https://shop.example/failed"), (without, None)):
            status, headers, _ = Http(server.base_url)(
                "POST", f"/u_landing/{txn}/fail", b"view=desktop")
            assert status == 303
            location = headers["Location"]
            assert (location == target) if target else location.startswith("/u_landing")
    # Only the payment with a fail URL sent its consumer back to the shop.
    assert covered(actions) == {"consumer_failed", "fail_redirect"}
