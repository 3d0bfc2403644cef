"""Surprises after the end (docs/scenarios.md): each one seen by a real client or a real
IPN receiver, tagged in the journal."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from citcon_sim import Config, verify_ipn
from citcon_sim.scenarios import ScenarioError, parse_scenario
from citcon_sim.testing import SimulatorServer

from .helpers import TOKEN, Http, IpnReceiver
from .upi_support import charge_request


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(Config(frozen_clock=True, port=0)) as s:
        yield s
        s.check_assertions()


def call(server: SimulatorServer, path: str, **fields: Any) -> tuple[int, dict[str, str], bytes]:
    """A merchant's POST: (status, headers, body)."""
    return Http(server.base_url)("POST", path, fields, TOKEN)


def create(server: SimulatorServer, **fields: Any) -> dict[str, Any]:
    status, _, body = call(server, "/payment/pay_qr", **{
        "vendor": "alipay", "amount": 1000, "currency": "USD", "reference": "order-1",
        "allow_duplicates": "yes", "response_format": "json", **fields})
    assert status == 200, body
    return dict(json.loads(body))


def inquire(server: SimulatorServer, txn_id: str) -> dict[str, Any]:
    status, _, body = call(server, "/payment/inquire", transaction_id=txn_id)
    assert status == 200, body
    return dict(json.loads(body))


def journal_tags(server: SimulatorServer) -> list[str | None]:
    """Each journalled call's surprise tag, oldest first."""
    return [e["surprise"] for e in reversed(server.requests())]


def stored(server: SimulatorServer) -> int:
    return server.call(lambda: len(server.simulator.ledger.by_id))


# -- the wallet confirms after the end --------------------------------------------------


def test_late_confirmation_after_the_qr_expired(server: SimulatorServer,
                                                threaded_receiver: IpnReceiver) -> None:
    server.load_scenario("rules:\n  - payment: {outcome: expire, after: 60, "
                         "late_confirm: 30}\n")
    txn = create(server, ipn_url=threaded_receiver.url)["transaction_id"]
    server.advance(60)
    assert inquire(server, txn)["status"] == "expired"
    assert threaded_receiver.posts == []
    server.advance(30)  # the consumer's wallet confirms anyway
    assert inquire(server, txn)["status"] == "success"
    notice = server.wait_for_ipn(txn)
    assert notice["state"] == "delivered"
    (form,) = threaded_receiver.posts
    assert form["id"] == txn and form["status"] == "success"
    assert verify_ipn(form, TOKEN)
    events = [e[1] for e in server.call(
        lambda: list(server.simulator.ledger.get(txn).events or []))]
    assert events[-3:] == ["expired", "late_confirm", "success"]
    assert journal_tags(server) == ["late_confirm", None, None]  # create, 2 inquiries


def test_late_confirmation_after_the_merchant_cancelled(server: SimulatorServer,
                                                        threaded_receiver: IpnReceiver) -> None:
    server.load_scenario("rules:\n  - payment: {outcome: pending, late_confirm: 5}\n")
    txn = create(server, ipn_url=threaded_receiver.url)["transaction_id"]
    status, _, body = call(server, "/payment/cancel", transaction_id=txn)
    assert status == 200 and b"Order cancelled" in body, body
    server.advance(5)
    assert inquire(server, txn)["status"] == "success"
    server.wait_for_ipn(txn)
    assert threaded_receiver.posts[0]["status"] == "success"
    # The shop must give the money back: a refund of the late payment works.
    status, _, body = call(server, "/payment/refund", transaction_id=txn, amount=1000,
                           currency="USD")
    assert json.loads(body)["refunded"] is True, body


def test_a_payment_cancelled_after_it_expired_is_confirmed_once(
        server: SimulatorServer, threaded_receiver: IpnReceiver) -> None:
    server.load_scenario("rules:\n  - payment: {outcome: expire, late_confirm: 30}\n")
    txn = create(server, ipn_url=threaded_receiver.url)["transaction_id"]
    assert inquire(server, txn)["status"] == "expired"
    assert call(server, "/payment/cancel", transaction_id=txn)[0] == 200
    server.advance(30)
    server.wait_for_ipn(txn)
    server.advance(60)
    assert len(server.ipn_log(txn)) == 1
    assert inquire(server, txn)["status"] == "success"


def test_one_qr_paid_twice(server: SimulatorServer, threaded_receiver: IpnReceiver) -> None:
    server.load_scenario("rules:\n  - payment: {outcome: pay, paid_twice: true}\n")
    first = create(server, ipn_url=threaded_receiver.url, reference="order-77")["transaction_id"]
    posts = threaded_receiver.wait_for_sync(2)
    assert [p["reference"] for p in posts] == ["order-77", "order-77"]
    assert posts[0]["id"] == first  # the first payment is notified first
    twin = posts[1]["id"]
    assert twin != first and all(verify_ipn(p, TOKEN) for p in posts)
    assert [inquire(server, t)["status"] for t in (first, twin)] == ["success", "success"]
    status, _, body = call(server, "/payment/refund", transaction_id=twin, amount=1000,
                           currency="USD")
    assert json.loads(body)["refunded"] is True, body
    assert journal_tags(server)[0] == "paid_twice"


# -- notifications that are not what they seem ------------------------------------------


def test_a_correctly_signed_ipn_whose_amount_is_not_the_orders(
        server: SimulatorServer, threaded_receiver: IpnReceiver) -> None:
    server.load_scenario("rules:\n  - payment: {outcome: pay}\n"
                         "    ipn: {amount_differs: -100}\n")
    txn = create(server, ipn_url=threaded_receiver.url)["transaction_id"]
    server.wait_for_ipn(txn)
    (form,) = threaded_receiver.posts
    assert verify_ipn(form, TOKEN)  # the signature holds: only the amount gives it away
    assert form["amount"] == "900" and inquire(server, txn)["amount"] == 1000
    assert journal_tags(server) == ["ipn_amount_differs", None]  # not the inquiry


@pytest.mark.parametrize("answer", [200, 500])
def test_the_ipn_arrives_before_the_api_answer(server: SimulatorServer,
                                               threaded_receiver: IpnReceiver, answer: int) -> None:
    threaded_receiver.answer(answer)
    server.load_scenario("rules:\n  - payment: {outcome: pay}\n"
                         "    ipn: {before_answer: true}\n")
    created = create(server, ipn_url=threaded_receiver.url)
    # No waiting: by the time the merchant has its answer, the notice has arrived.
    assert [p["id"] for p in threaded_receiver.posts] == [created["transaction_id"]]
    assert journal_tags(server) == ["ipn_before_answer"]


def test_before_answer_needs_a_payment_paid_at_once() -> None:
    for text in ("rules:\n  - ipn: {before_answer: true}\n",
                 "rules:\n  - payment: {outcome: pay, after: 5}\n    ipn: {before_answer: true}\n"):
        with pytest.raises(ScenarioError, match="before_answer needs payment"):
            parse_scenario(text)


# -- what the layers in front of the API do ---------------------------------------------


async def _aiohttp_post(url: str, data: dict[str, str]) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as session:
        resp = await session.post(url, data=data, headers={"Authorization": f"Bearer {TOKEN}"})
        await resp.read()
        return resp


def test_rate_limited_with_retry_after(server: SimulatorServer) -> None:
    server.load_scenario("rules:\n  - match: {endpoint: pay_qr}\n    api: {rate_limit: 30}\n")
    resp = asyncio.run(_aiohttp_post(server.url_for("/payment/pay_qr"), {
        "vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "r"}))
    assert resp.status == 429 and resp.headers["Retry-After"] == "30"
    assert stored(server) == 0
    assert journal_tags(server) == ["rate_limited"]


def test_the_cdns_html_error_page(server: SimulatorServer) -> None:
    server.load_scenario("rules:\n  - api: {cdn_error: 502}\n")
    status, headers, body = call(server, "/payment/pay_qr", vendor="alipay", amount=1,
                                 currency="USD", reference="r")
    assert status == 502 and headers["Content-Type"].startswith("text/html")
    assert headers["Server"] == "cloudflare" and headers["CF-RAY"].endswith("-SIM")
    assert b"<h1>Error 502</h1>" in body
    with pytest.raises(ValueError):
        json.loads(body)  # what a client that expects the API's JSON runs into
    assert stored(server) == 0
    assert journal_tags(server) == ["cdn_error"]


def test_the_cdn_page_stands_in_front_of_upi_too(server: SimulatorServer) -> None:
    server.load_scenario("rules:\n  - match: {face: upi}\n    api: {cdn_error: 522}\n")
    request = charge_request(server, reference="u-1")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)
    assert raised.value.code == 522
    assert b"Error 522" in raised.value.read()
    assert stored(server) == 0


def test_a_truncated_json_body_after_the_work_is_done(server: SimulatorServer) -> None:
    server.load_scenario("rules:\n  - api: {truncate: true}\n")
    status, _, body = call(server, "/payment/pay_qr", vendor="alipay", amount=1000,
                           currency="USD", reference="r", response_format="json")
    assert status == 200 and body.startswith(b'{"')
    with pytest.raises(ValueError):
        json.loads(body)
    assert stored(server) == 1  # the payment exists though its answer was cut
    assert journal_tags(server) == ["truncated_body"]


def test_the_operation_happened_although_the_client_timed_out(
        server: SimulatorServer) -> None:
    server.load_scenario("rules:\n  - api: {timeout: true, latency_ms: 50}\n")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        asyncio.run(_aiohttp_post(server.url_for("/payment/pay_qr"), {
            "vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "t-1"}))
    (txn,) = server.transactions()
    assert txn["reference"] == "t-1"
    assert journal_tags(server) == ["timeout_after_work"]


def test_surprise_scripts_survive_a_state_round_trip(server: SimulatorServer) -> None:
    server.load_scenario("rules:\n  - payment: {outcome: pending, late_confirm: 7, "
                         "paid_twice: true}\n    ipn: {amount_differs: 3}\n")
    txn = create(server)["transaction_id"]
    with urllib.request.urlopen(server.url_for("/_sim/state")) as resp:
        state = resp.read()
    with SimulatorServer(Config(frozen_clock=True, port=0)) as other:
        request = urllib.request.Request(other.url_for("/_sim/state"), data=state,
                                         method="PUT",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as resp:
            assert resp.status == 200
        script = other.call(lambda: other.simulator.ledger.get(txn).script)
        assert script is not None and script.payment is not None and script.ipn is not None
        assert (script.payment.late_confirm, script.payment.paid_twice,
                script.ipn.amount_differs) == (7, True, 3)
