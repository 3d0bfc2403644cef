"""What the test helpers say when the merchant's IPN endpoint does not acknowledge: the
HTTP status and the start of its body (or why nothing came back), in plain words."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest

from citcon_sim import Config, SimulatorServer
from citcon_sim.testing import IpnNotAcknowledged

from .helpers import TOKEN, Answer, IpnReceiver


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer() as running:
        yield running


@pytest.fixture
def sim(server: SimulatorServer) -> SimulatorServer:
    server.clear()
    return server


def paid(sim: SimulatorServer, ipn_url: str, reference: str = "order-1") -> str:
    form = {"vendor": "alipay", "amount": "1000", "currency": "USD", "reference": reference,
            "ipn_url": ipn_url, "response_format": "json"}
    request = Request(sim.url_for("/payment/pay_qr"), urlencode(form).encode(),
                      {"Authorization": f"Bearer {TOKEN}"})
    with urlopen(request) as resp:
        txn_id = str(json.load(resp)["transaction_id"])
    sim.pay(txn_id)
    return txn_id


def test_a_500_is_reported_with_its_status_and_body(
    sim: SimulatorServer, threaded_receiver: IpnReceiver
) -> None:
    threaded_receiver.then(Answer(500, "Traceback: KeyError 'sign'"))
    txn_id = paid(sim, threaded_receiver.url)
    with pytest.raises(IpnNotAcknowledged) as info:
        sim.wait_for_ipn(txn_id)
    message = str(info.value)
    assert message.startswith(
        f"the merchant's IPN endpoint answered HTTP 500 to attempt 1 (first) of the IPN for "
        f"{txn_id}: \"Traceback: KeyError 'sign'\"\n"), message
    assert "advance the clock, then wait_for_ipn(..., attempts=2)" in message
    assert "{" not in message  # no dict, truncated or whole
    assert isinstance(info.value, AssertionError)
    assert info.value.notification["attempts"][0]["status"] == 500
    # The retry is acknowledged: waiting for it is quiet again.
    sim.advance(15)
    assert sim.wait_for_ipn(txn_id, attempts=2)["state"] == "delivered"


def test_acknowledged_false_answers_whatever_the_endpoint_said(
    sim: SimulatorServer, threaded_receiver: IpnReceiver
) -> None:
    threaded_receiver.then(Answer(404, ""))
    txn_id = paid(sim, threaded_receiver.url)
    with pytest.raises(IpnNotAcknowledged, match=r"answered HTTP 404 .*: \(empty body\)"):
        sim.wait_for_ipn(txn_id)
    notification = sim.wait_for_ipn(txn_id, acknowledged=False)
    assert notification["state"] == "retrying"
    assert [a["status"] for a in notification["attempts"]] == [404]


def test_a_refused_connection_says_nothing_answered(sim: SimulatorServer) -> None:
    txn_id = paid(sim, "http://127.0.0.1:9/ipn")  # the discard port: nobody listens
    with pytest.raises(IpnNotAcknowledged,
                       match=r"did not answer attempt 1 \(first\) of the IPN for U"):
        sim.wait_for_ipn(txn_id)


def test_a_given_up_delivery_names_the_last_answer(threaded_receiver: IpnReceiver) -> None:
    threaded_receiver.answer(503, "maintenance")
    with SimulatorServer(Config(frozen_clock=True, ipn_backoff=(1,))) as sim:
        txn_id = paid(sim, threaded_receiver.url)
        sim.wait_for_ipn(txn_id, acknowledged=False)
        sim.advance(1)
        with pytest.raises(IpnNotAcknowledged, match=r"HTTP 503 .*'maintenance'\n"
                                                     r"\(delivery has given up"):
            sim.wait_for_ipn(txn_id, attempts=2)
        with pytest.raises(AssertionError,
                           match=r"gave up after 2 attempt\(s\); the last got HTTP 503 "
                                 r"'maintenance'"):
            sim.wait_for_ipn(txn_id, attempts=3)


def test_redeliver_reports_a_refusal_too(
    sim: SimulatorServer, threaded_receiver: IpnReceiver
) -> None:
    txn_id = paid(sim, threaded_receiver.url)
    notify_id = sim.wait_for_ipn(txn_id)["notify_id"]
    threaded_receiver.then(Answer(502, "bad gateway"))
    with pytest.raises(IpnNotAcknowledged,
                       match=r"HTTP 502 to attempt 2 \(redeliver\) .*'bad gateway'"):
        sim.redeliver(notify_id)
    again = sim.redeliver(notify_id)  # the receiver says 200 again
    assert [a["status"] for a in again["attempts"]] == [200, 502, 200]
