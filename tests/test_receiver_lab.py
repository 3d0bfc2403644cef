"""The IPN receiver lab (docs/receiver-lab.md): what it sends, how it judges, on each face.

Receivers run on 127.0.0.1 in this process: a correct one (tests/receiver_lab_support.py)
and a naive one that answers ``ok`` to everything, plus the mistakes real receivers make.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from citcon_sim import verify_ipn, verify_upi_ipn
from citcon_sim.delivery.ipn import PostResult
from citcon_sim.receiver_lab import (
    BY_ID,
    CHECKS,
    FACES,
    LabGateway,
    Order,
    Outcome,
    ReceiverReport,
    judge,
    lab_gateway,
    markdown,
    run_lab,
)
from citcon_sim.receiver_lab.runner import OTHER_TOKEN, TAMPERED_AMOUNT

from .example_support import load_example_merchant
from .helpers import IpnReceiver
from .receiver_lab_support import CorrectReceiver, naive_app, serving

TOKEN = "lab-merchant-token"
# What the lab POSTs, in order, when every check applies (other-encoding only on CHOP).
SENT = ["valid", "duplicate", "extra-unsigned-field", "uppercase-signature",
        "forged-signature", "other-merchant-token", "tampered-amount", "missing-field",
        "unknown-transaction", "failure-status", "other-encoding", "replay"]


@pytest.fixture
async def gateway() -> AsyncIterator[LabGateway]:
    async with lab_gateway() as gw:
        yield gw


async def lab(receiver: CorrectReceiver | None, gateway: LabGateway, face: str,
              **kwargs: Any) -> ReceiverReport:
    app = receiver.app() if receiver is not None else naive_app()
    async with serving(app) as url:
        return await run_lab(url, TOKEN, face, gateway=gateway, **kwargs)


def outcomes(report: ReceiverReport) -> dict[str, Outcome]:
    return {r.check.id: r.outcome for r in report.results}


# -- done when: a correct receiver passes and a naive one fails, on every face ------------


@pytest.mark.parametrize("face", FACES)
async def test_a_correct_receiver_passes_every_judged_check(gateway: LabGateway,
                                                            face: str) -> None:
    receiver = CorrectReceiver(TOKEN, face, gateway=gateway.base_url)
    report = await lab(receiver, gateway, face)
    assert report.ok and report.exit_status == 0, report.table()
    assert not report.advice and not report.not_judged
    assert outcomes(report)["inquiry"] is Outcome.PASS
    assert report.result("other-encoding").outcome is (
        Outcome.PASS if face == "chop" else Outcome.NOT_APPLICABLE)
    report.assert_ok()
    # Paid once each: the valid, extra-field, uppercase (and CHOP's JSON) transactions.
    assert len(receiver.paid) == (4 if face == "chop" else 3)


@pytest.mark.parametrize("face", FACES)
async def test_a_naive_receiver_fails_naming_the_forged_signature(gateway: LabGateway,
                                                                 face: str) -> None:
    report = await lab(None, gateway, face)
    assert not report.ok and report.exit_status == 1
    failed = {r.check.id for r in report.failed}
    assert failed == {"forged-signature", "other-merchant-token", "tampered-amount",
                      "missing-field"}
    assert outcomes(report)["unknown-transaction"] is Outcome.ADVICE
    # The lab's own gateway on a free port: nobody told the receiver where it is.
    assert outcomes(report)["inquiry"] is Outcome.NOT_JUDGED
    with pytest.raises(AssertionError, match="forged-signature") as raised:
        report.assert_ok()
    assert BY_ID["forged-signature"].why in str(raised.value)
    assert "FAILED: forged-signature" in report.table()


# -- what is sent ---------------------------------------------------------------------------


@pytest.mark.parametrize("face", FACES)
async def test_each_notification_is_what_its_check_says(
        gateway: LabGateway, ipn_receiver: IpnReceiver, face: str) -> None:
    orders: list[Order] = []
    report = await run_lab(ipn_receiver.url, TOKEN, face, gateway=gateway,
                           prepare=orders.append)
    sent = [c for c in SENT if face == "chop" or c != "other-encoding"]
    assert len(ipn_receiver.requests) == len(sent)
    got = dict(zip(sent, ipn_receiver.requests, strict=True))
    body = {k: r.form for k, r in got.items()}
    verify = verify_upi_ipn if face == "upi" else verify_ipn
    for check in ("valid", "extra-unsigned-field", "unknown-transaction", "failure-status",
                  "other-encoding", "uppercase-signature"):
        if check in body:
            assert verify(body[check], TOKEN), check
    assert body["duplicate"] == body["valid"] == body["replay"]
    assert body["uppercase-signature"]["sign"] == body["uppercase-signature"]["sign"].upper()
    assert not verify(body["forged-signature"], TOKEN)
    assert verify(body["other-merchant-token"], OTHER_TOKEN)
    assert not verify(body["other-merchant-token"], TOKEN)
    assert not verify(body["tampered-amount"], TOKEN)
    assert int(body["tampered-amount"]["amount"]) == TAMPERED_AMOUNT
    assert "amount" not in body["missing-field"]
    assert "amount" in body["missing-field"]["fields"].split(",")
    assert set(body["extra-unsigned-field"]) - set(body["valid"])
    status = body["failure-status"].get("notify_status", body["failure-status"].get("status"))
    assert status in ("fail", "failed")
    json_checks = {c for c, r in got.items() if r.content_type == "application/json"}
    assert json_checks == (set(sent) if face == "upi" else
                           {"other-encoding"} if face == "chop" else set())
    # The transactions: real at the gateway (paid, unpaid, failed), or not there at all.
    states = {o.check: o.state for o in orders}
    assert states["valid"] == "paid" and states["forged-signature"] == "pending"
    assert states["failure-status"] == "failed" and states["unknown-transaction"] == "none"
    ledger = gateway.simulator.ledger
    for order in orders:
        found = ledger.by_id.get(order.transaction_id)
        if order.state == "none":
            assert found is None
        else:
            assert found is not None and found.status.value == {
                "paid": "success", "pending": "pending", "failed": "fail"}[order.state]
    assert body["valid"]["id"] == report.result("valid").transaction_id
    # No notification of the gateway's own went anywhere: the lab sent them all.
    assert all(n.url is None for n in gateway.simulator.ipn.notifications.values())


# -- how answers are judged -----------------------------------------------------------------


def answer(status: int | None, body: str = "ok", error: str | None = None) -> PostResult:
    return PostResult(status, body, error, 5.0)


VALID = answer(200, "ok")


@pytest.mark.parametrize(("sent", "valid", "outcome"), [
    (answer(400, "bad sign"), VALID, Outcome.PASS),
    (answer(500, "error"), VALID, Outcome.PASS),  # retried by Citcon, harmless here
    (answer(200, "invalid signature"), VALID, Outcome.PASS),  # a refusal in the body
    (answer(200, " ok\n"), VALID, Outcome.FAIL),  # the valid answer again: accepted
    (answer(None, "", "timeout after 10 s"), VALID, Outcome.FAIL),
    (answer(400), answer(500), Outcome.NOT_JUDGED),  # refuses everything: proves nothing
    (answer(400), None, Outcome.NOT_JUDGED),
])
def test_a_refusal_is_an_answer_unlike_the_valid_ones(
        sent: PostResult, valid: PostResult | None, outcome: Outcome) -> None:
    assert judge(BY_ID["forged-signature"], sent, valid)[0] is outcome


@pytest.mark.parametrize(("sent", "outcome"), [
    (answer(200), Outcome.PASS), (answer(204, ""), Outcome.PASS),
    (answer(500), Outcome.FAIL), (answer(302), Outcome.FAIL),
    (answer(None, "", "ClientConnectorError"), Outcome.FAIL),
])
def test_an_acknowledgement_is_any_2xx(sent: PostResult, outcome: Outcome) -> None:
    assert judge(BY_ID["failure-status"], sent, VALID)[0] is outcome


@pytest.mark.parametrize(("sent", "outcome"), [
    (answer(200), Outcome.PASS), (answer(401, "no"), Outcome.PASS),
    (answer(500), Outcome.FAIL), (answer(None, "", "timeout"), Outcome.FAIL),
])
def test_uppercase_hex_may_be_accepted_or_refused_but_not_fallen_over(
        sent: PostResult, outcome: Outcome) -> None:
    assert judge(BY_ID["uppercase-signature"], sent, VALID)[0] is outcome


async def test_a_strict_case_compare_passes_and_says_so(gateway: LabGateway) -> None:
    receiver = CorrectReceiver(TOKEN, gateway=gateway.base_url, strict_case=True)
    report = await lab(receiver, gateway, "online")
    result = report.result("uppercase-signature")
    assert result.outcome is Outcome.PASS and "strict compare" in result.detail
    assert report.ok


async def test_answering_500_to_a_failure_notice_fails(gateway: LabGateway) -> None:
    """Citcon's WooCommerce plugin: a failure notice is answered 500, so resent for ever."""
    receiver = CorrectReceiver(TOKEN, "chop", gateway=gateway.base_url, failure_answer=500)
    report = await lab(receiver, gateway, "chop")
    assert [r.check.id for r in report.failed] == ["failure-status"]


async def test_signing_every_posted_field_fails_the_extra_field(gateway: LabGateway) -> None:
    receiver = CorrectReceiver(TOKEN, gateway=gateway.base_url, reject_unlisted=True)
    report = await lab(receiver, gateway, "online")
    assert [r.check.id for r in report.failed] == ["extra-unsigned-field"]


async def test_a_receiver_that_refuses_everything_fails_valid_and_is_not_judged_on_refusals(
        gateway: LabGateway) -> None:
    # Verifying with the wrong token refuses every notification, true or not.
    receiver = CorrectReceiver("not-" + TOKEN, gateway=gateway.base_url)
    report = await lab(receiver, gateway, "online")
    refusals = [c.id for c in CHECKS if c.expect.name == "REFUSE"]
    assert {r.check.id for r in report.not_judged} == set(refusals) | {"inquiry"}
    assert {"valid", "duplicate", "replay", "extra-unsigned-field"} <= {
        r.check.id for r in report.failed}


async def test_not_inquiring_a_declared_gateway_is_advice(gateway: LabGateway) -> None:
    declared = LabGateway(gateway.simulator, gateway.base_url, gateway.run, declared=True)
    receiver = CorrectReceiver(TOKEN, "upi")  # trusts a good signature, asks nobody
    report = await lab(receiver, declared, "upi")
    assert outcomes(report)["inquiry"] is Outcome.ADVICE
    assert outcomes(report)["unknown-transaction"] is Outcome.ADVICE  # cannot tell
    assert report.ok  # advice never fails the run


async def test_a_slow_answer_fails_reply_time(gateway: LabGateway) -> None:
    receiver = CorrectReceiver(TOKEN, gateway=gateway.base_url, delay=0.6)
    report = await lab(receiver, gateway, "online", timeout=1.0)
    result = report.result("reply-time")
    assert result.outcome is Outcome.FAIL and "(valid)" in result.detail
    assert "of the 1 s timeout: over 50%" in result.detail
    assert [r.check.id for r in report.failed] == ["reply-time"]


async def test_no_answer_within_the_timeout_fails(gateway: LabGateway) -> None:
    receiver = CorrectReceiver(TOKEN, gateway=gateway.base_url, delay=0.4)
    report = await lab(receiver, gateway, "online", timeout=0.2)
    assert report.result("valid").outcome is Outcome.FAIL
    assert "timeout" in report.result("reply-time").detail


async def test_the_journal_off_means_inquiry_is_not_judged() -> None:
    from citcon_sim import Config

    async with lab_gateway(config=Config(frozen_clock=True, port=0, journal_size=0)) as gw:
        receiver = CorrectReceiver(TOKEN, gateway=gw.base_url)
        report = await lab(receiver, gw, "online")
    result = report.result("inquiry")
    assert result.outcome is Outcome.NOT_JUDGED and "journal" in result.detail


async def test_prepare_may_be_a_coroutine(gateway: LabGateway,
                                          ipn_receiver: IpnReceiver) -> None:
    seen: list[str] = []

    async def prepare(order: Order) -> None:
        seen.append(order.check)
    await run_lab(ipn_receiver.url, TOKEN, "online", gateway=gateway, prepare=prepare)
    assert seen == [c for c in SENT if c not in ("duplicate", "replay", "other-encoding")]


@pytest.mark.parametrize(("args", "problem"), [
    (("ftp://x/ipn", TOKEN, "online"), "http"), (("http://x/ipn", "", "online"), "token"),
    (("http://x/ipn", TOKEN, "soap"), "face"),
])
async def test_bad_arguments_are_refused(gateway: LabGateway, args: tuple[str, str, str],
                                         problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        await run_lab(*args, gateway=gateway)


def test_the_guide_documents_every_check_as_the_catalogue_says() -> None:
    guide = (Path(__file__).parent.parent / "docs" / "receiver-lab.md").read_text()
    for check in CHECKS:
        assert markdown(check) in guide, f"docs/receiver-lab.md: update {check.id}"
    assert guide.count("\n### `") == len(CHECKS)


async def test_the_example_merchant_passes_with_its_orders_prepared(
        gateway: LabGateway) -> None:
    """examples/merchant: it looks each notification's order up, so ``prepare`` creates
    the orders (all but the unknown transaction's); then what no answer shows, whether
    an order was marked paid, is asserted on its own records."""
    shop = load_example_merchant()
    app = shop.create_app(shop.Settings(citcon_token=TOKEN))
    orders = app[shop.ORDERS]
    made: dict[str, str] = {}

    def prepare(order: Order) -> None:
        if order.state != "none":
            orders[order.reference] = shop.Order(
                order.reference, order.amount, order.currency, "alipay",
                transaction_id=order.transaction_id)
            made[order.check] = order.reference
    async with serving(app) as url:
        report = await run_lab(url, TOKEN, "online", gateway=gateway, prepare=prepare)
    assert report.ok, report.table()
    assert outcomes(report)["unknown-transaction"] is Outcome.PASS  # 404 unknown order
    assert outcomes(report)["inquiry"] is Outcome.NOT_JUDGED  # it never inquires
    status = {check: orders[ref].status for check, ref in made.items()}
    assert status["valid"] == status["extra-unsigned-field"] == "paid"
    assert status["failure-status"] == "failed"
    for refused in ("forged-signature", "other-merchant-token", "tampered-amount",
                    "missing-field"):
        assert status[refused] == "pending", refused
    assert len(orders[made["valid"]].notify_ids) == 1  # duplicate and replay: one notice
