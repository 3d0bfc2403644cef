"""Scenario rules (docs/scenarios.md): matching, actions, loading and error reporting.

Everything runs on the frozen virtual clock; the only real waiting is a scenario's own
``latency_ms``, kept to a few tens of milliseconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner

from citcon_sim import Config, Simulator
from citcon_sim.cli import main
from citcon_sim.scenarios import (
    RequestFacts,
    ScenarioBook,
    ScenarioError,
    parse_scenario,
    shipped_scenarios,
)

from .helpers import (
    AUTH,
    PAYMENT,
    TOKEN,
    advance,
    auth,
    client_for,
    consumer_pays,
    create,
    frozen_config,
)
from .helpers import internal_status as status
from .helpers import sim_txn as txn

# -- helpers ---------------------------------------------------------------------------


@pytest.fixture
def config() -> Config:
    """Magic amounts on: this module tests them with the other rules (they are off by
    default; test_magic_amounts_are_off_by_default)."""
    return frozen_config(magic_amounts=True)


async def load(client: TestClient, text: str, token: str | None = None) -> dict[str, Any]:
    """POST a scenario (YAML body) and return the answer."""
    url = "/_sim/scenarios" + (f"?token={token}" if token else "")
    resp = await client.post(url, data=text)
    body = await resp.json()
    assert resp.status == 200, body
    return body  # type: ignore[no-any-return]


async def post(
    client: TestClient, endpoint: str = "pay_qr", token: str = TOKEN, **fields: Any
) -> aiohttp.ClientResponse:
    data = {**PAYMENT} if endpoint in ("pay", "pay_qr") else {}
    data.update({k: str(v) for k, v in fields.items()})
    drop = [k for k, v in data.items() if v == "<omit>"]
    for k in drop:
        del data[k]
    return await client.post(f"/payment/{endpoint}", data=data,
                             headers=auth(token))


def rule_503(match: str) -> str:
    """A scenario whose one rule answers HTTP 503 to the requests ``match`` selects."""
    return f"rules:\n  - match: {match}\n    api: {{http_status: 503}}\n"


# -- matching: every key, positive and negative -----------------------------------------

# (match, request that matches, request that does not). A request is (endpoint, token,
# fields); "<omit>" removes a default payment field. Before the scenario is loaded, an
# alipay payment with reference order-1 exists so that inquire/refund/cancel find it.
OTHER = "other-merchant"
MATCH_CASES = {
    "token": (f"{{token: {TOKEN}}}", ("pay_qr", TOKEN, {}), ("pay_qr", OTHER, {})),
    "vendor": ("{vendor: wechatpay}", ("pay_qr", TOKEN, {"vendor": "wechatpay"}),
               ("pay_qr", TOKEN, {"vendor": "alipay"})),
    "vendor case-insensitive": ("{vendor: WeChatPay}",
                                ("pay_qr", TOKEN, {"vendor": "wechatpay"}),
                                ("pay_qr", TOKEN, {"vendor": "alipay_hk"})),
    "vendor list": ("{vendor: [wechatpay, alipay_hk]}",
                    ("pay_qr", TOKEN, {"vendor": "alipay_hk"}),
                    ("pay_qr", TOKEN, {"vendor": "alipay"})),
    "endpoint": ("{endpoint: pay}", ("pay", TOKEN, {}), ("pay_qr", TOKEN, {})),
    "endpoint list": ("{endpoint: [inquire, refund]}",
                      ("inquire", TOKEN, {"reference": "order-1"}), ("pay_qr", TOKEN, {})),
    "endpoint list, other member": (
        "{endpoint: [inquire, refund]}",
        ("refund", TOKEN, {"transaction_reference": "order-1", "amount": 1,
                           "currency": "USD"}),
        ("cancel", TOKEN, {"transaction_reference": "order-1"})),
    "amount exact": ("{amount: 1500}", ("pay_qr", TOKEN, {"amount": 1500}),
                     ("pay_qr", TOKEN, {"amount": 1501})),
    "amount min (inclusive)": ("{amount: {min: 1000}}", ("pay_qr", TOKEN, {"amount": 1000}),
                               ("pay_qr", TOKEN, {"amount": 999})),
    "amount max (inclusive)": ("{amount: {max: 1000}}", ("pay_qr", TOKEN, {"amount": 1000}),
                               ("pay_qr", TOKEN, {"amount": 1001})),
    "amount range": ("{amount: {min: 100, max: 999}}", ("pay_qr", TOKEN, {"amount": 500}),
                     ("pay_qr", TOKEN, {"amount": 1000})),
    "amount suffix": ("{amount: {suffix: '77'}}", ("pay_qr", TOKEN, {"amount": 1277}),
                      ("pay_qr", TOKEN, {"amount": 1278})),
    "trans_amount when no amount": (
        "{amount: 4242}",
        ("pay_qr", TOKEN, {"amount": "<omit>", "currency": "<omit>", "trans_amount": 4242,
                           "trans_currency": "CNY"}),
        ("pay_qr", TOKEN, {"amount": "<omit>", "currency": "<omit>", "trans_amount": 4243,
                           "trans_currency": "CNY"})),
    "amount as sent wins over trans_amount": (
        "{amount: 4242}",
        ("pay_qr", TOKEN, {"amount": 4242, "trans_amount": 1000, "trans_currency": "CNY"}),
        ("pay_qr", TOKEN, {"amount": 1000, "trans_amount": 4242, "trans_currency": "CNY"})),
    "currency": ("{currency: krw}", ("pay_qr", TOKEN, {"currency": "KRW"}),
                 ("pay_qr", TOKEN, {"currency": "USD"})),
    "trans_currency when no amount": (
        "{currency: CNY}",
        ("pay_qr", TOKEN, {"amount": "<omit>", "currency": "<omit>", "trans_amount": 100,
                           "trans_currency": "CNY"}),
        ("pay_qr", TOKEN, {"amount": "<omit>", "currency": "<omit>", "trans_amount": 100,
                           "trans_currency": "HKD"})),
    "reference glob *": ("{reference: 'test-*'}", ("pay_qr", TOKEN, {"reference": "test-42"}),
                         ("pay_qr", TOKEN, {"reference": "my-test-42"})),
    "reference glob ?": ("{reference: 'a?c'}", ("pay_qr", TOKEN, {"reference": "abc"}),
                         ("pay_qr", TOKEN, {"reference": "abbc"})),
    "reference regex (searched)": ("{reference: {regex: 'vip-[0-9]+$'}}",
                                   ("pay_qr", TOKEN, {"reference": "order-vip-17"}),
                                   ("pay_qr", TOKEN, {"reference": "order-vip-x"})),
    "refund matches transaction_reference": (
        "{endpoint: refund, reference: 'order-*'}",
        ("refund", TOKEN, {"transaction_reference": "order-1", "amount": 1,
                           "currency": "USD"}),
        ("refund", TOKEN, {"transaction_reference": "other-1", "amount": 1,
                           "currency": "USD"})),
    "cancel matches transaction_reference": (
        "{endpoint: cancel, reference: {regex: '^order-'}}",
        ("cancel", TOKEN, {"transaction_reference": "order-1"}),
        ("cancel", TOKEN, {"transaction_reference": "x-order-1"})),
}


@pytest.mark.parametrize("case", list(MATCH_CASES), ids=list(MATCH_CASES))
async def test_match_keys(client, sim, case):
    match, hit, miss = MATCH_CASES[case]
    await create(client)  # order-1, so that inquire/refund/cancel have something to find
    await load(client, rule_503(match))
    for (endpoint, token, fields), expected in ((miss, 200), (hit, 503)):
        resp = await post(client, endpoint, token, **fields)
        assert resp.status == expected, (case, endpoint, fields, await resp.text())
    rule = sim.scenarios.global_scenarios[0].rules[0]
    assert (rule.seen, rule.applied) == (1, 1)


async def test_empty_match_matches_every_request(client):
    await create(client)
    await load(client, "rules:\n  - api: {http_status: 502}\n")
    assert (await post(client)).status == 502
    assert (await post(client, "inquire", reference="order-1")).status == 502
    assert (await client.get("/payment/list", headers=AUTH)).status == 502


async def test_every_key_given_must_match(client):
    await load(client, rule_503("{vendor: wechatpay, amount: {min: 5000}}"))
    assert (await post(client, vendor="wechatpay", amount=4999)).status == 200
    assert (await post(client, vendor="alipay", amount=5000)).status == 200
    assert (await post(client, vendor="wechatpay", amount=5000)).status == 503


async def test_nth_single(client, sim):
    await load(client, rule_503("{vendor: wechatpay, nth: 2}"))
    assert (await post(client, vendor="alipay")).status == 200  # not counted: no match
    assert (await post(client, vendor="wechatpay")).status == 200  # 1st
    assert (await post(client, vendor="alipay")).status == 200
    assert (await post(client, vendor="wechatpay")).status == 503  # 2nd
    assert (await post(client, vendor="wechatpay")).status == 200  # 3rd
    rule = sim.scenarios.global_scenarios[0].rules[0]
    assert (rule.seen, rule.applied) == (3, 1)


async def test_nth_list(client):
    await load(client, rule_503("{endpoint: pay_qr, nth: [1, 3, 4]}"))
    statuses = [(await post(client)).status for _ in range(5)]
    assert statuses == [503, 200, 503, 503, 200]


async def test_times_then_normal(client, sim):
    await load(client, "rules:\n  - match: {endpoint: pay_qr}\n    api: {http_status: 500}\n"
                       "    times: 2\n")
    statuses = [(await post(client)).status for _ in range(4)]
    assert statuses == [500, 500, 200, 200]
    assert len(sim.ledger.by_id) == 2


async def test_times_then_a_later_rule(client):
    await load(client, "rules:\n"
                       "  - match: {endpoint: pay_qr}\n    api: {http_status: 500}\n    times: 1\n"
                       "  - match: {endpoint: pay_qr}\n    api: {http_status: 503}\n")
    statuses = [(await post(client)).status for _ in range(3)]
    assert statuses == [500, 503, 503]


async def test_first_matching_rule_wins(client, sim):
    await load(client, "rules:\n"
                       "  - name: first\n    match: {vendor: wechatpay}\n"
                       "    api: {http_status: 501}\n"
                       "  - name: second\n    match: {endpoint: pay_qr}\n"
                       "    api: {http_status: 502}\n")
    assert (await post(client, vendor="wechatpay")).status == 501
    assert (await post(client, vendor="alipay")).status == 502
    first, second = sim.scenarios.global_scenarios[0].rules
    assert (first.applied, second.applied) == (1, 1)
    # The second rule still counted the request the first one took (for its nth).
    assert (first.seen, second.seen) == (1, 2)


async def test_nth_counts_requests_an_earlier_rule_took(client, sim):
    """nth is the n-th request matching the rule's keys, whichever rule decided it."""
    await load(client, "rules:\n"
                       "  - match: {endpoint: pay_qr, nth: 1}\n    api: {http_status: 501}\n"
                       "  - match: {endpoint: pay_qr, nth: 2}\n    api: {http_status: 502}\n"
                       "  - match: {endpoint: pay_qr, nth: 3}\n    api: {http_status: 503}\n")
    statuses = [(await post(client)).status for _ in range(4)]
    assert statuses == [501, 502, 503, 200]


async def test_first_loaded_scenario_wins(client):
    await load(client, rule_503("{endpoint: pay_qr}"))
    await load(client, "rules:\n  - api: {http_status: 502}\n")
    assert (await post(client)).status == 503
    assert (await post(client, "inquire", reference="order-1")).status == 502


async def test_per_token_scenarios_before_global(client):
    await load(client, "rules:\n  - match: {endpoint: pay_qr}\n    api: {http_status: 502}\n")
    await load(client, rule_503("{endpoint: pay_qr}"), token="shop-a")
    assert (await post(client, token="shop-a")).status == 503
    assert (await post(client, token="shop-b")).status == 502
    assert (await post(client, token=TOKEN)).status == 502


async def test_magic_amounts_are_tried_last(client):
    await load(client, "rules:\n  - match: {amount: {suffix: '01'}}\n    payment: {outcome: pay}\n")
    txn_id = await create(client, amount=19901)  # magic: would decline
    assert await status(client, txn_id) == "success"


async def test_magic_amounts_after_per_token_and_global_misses(client):
    await load(client, rule_503("{vendor: wechatpay}"))
    await load(client, rule_503("{vendor: wechatpay}"), token=TOKEN)
    txn_id = await create(client, amount=19903)
    assert await status(client, txn_id) == "success"


async def test_magic_amounts_can_be_switched_off(aiohttp_client):
    client, _ = await client_for(aiohttp_client, seed=None, magic_amounts=False)
    for amount in (19901, 19902, 19903, 19908):
        txn_id = await create(client, amount=amount)
        assert await status(client, txn_id) == "pending", amount
    resp = await post(client, amount=19909)
    assert resp.status == 200
    assert (await client.get("/_sim/scenarios")).status == 200
    assert (await (await client.get("/_sim/scenarios")).json())["magic_amounts"] is None


def test_book_decides_directly():
    """The book's order without HTTP: per token, then global, then magic, then nothing."""
    book = ScenarioBook(magic=True)
    book.load(parse_scenario("rules:\n  - name: g\n    match: {vendor: alipay}\n"
                             "    payment: {outcome: pay}\n"))
    book.load(parse_scenario("rules:\n  - name: t\n    payment: {outcome: fail}\n"), token="t1")
    facts = RequestFacts(token="t1", endpoint="pay", vendor="alipay", amount=19902)
    decided = book.decide(facts)
    assert decided is not None and decided.name == "t"
    other = RequestFacts(token="t2", endpoint="pay", vendor="alipay", amount=19902)
    decided = book.decide(other)
    assert decided is not None and decided.name == "g"
    magic = RequestFacts(token="t2", endpoint="pay", vendor="wechatpay", amount=19902)
    decided = book.decide(magic)
    assert decided is not None and decided.payment is not None
    assert decided.payment.outcome == "expire"
    assert book.decide(RequestFacts(token="t2", endpoint="pay", vendor="wechatpay",
                                    amount=1000)) is None
    book.magic_enabled = False
    assert book.decide(RequestFacts(token="t2", endpoint="pay", vendor="wechatpay",
                                    amount=19902)) is None


# -- payment actions ---------------------------------------------------------------------


async def test_payment_pay_at_once(client):
    await load(client, "rules:\n  - payment: {outcome: pay}\n")
    txn_id = await create(client)
    assert await status(client, txn_id) == "success"
    resp = await post(client, "inquire", transaction_id=txn_id)
    assert (await resp.json())["status"] == "success"


async def test_payment_pay_after_seconds_via_control(client):
    await load(client, "rules:\n  - payment: {outcome: pay, after: 10}\n")
    txn_id = await create(client)
    assert await status(client, txn_id) == "pending"
    await advance(client, 9)
    assert await status(client, txn_id) == "pending"
    await advance(client, 1.5)
    body = await txn(client, txn_id)
    assert body["internal_status"] == "success"
    assert body["paid_time"] == "2026-03-02 09:00:10"  # exactly `after` after creation


async def test_payment_pay_after_seconds_via_sim(client, sim):
    await load(client, "rules:\n  - match: {endpoint: pay}\n"
                       "    payment: {outcome: pay, after: 3}\n")
    txn_id = await create(client, "pay")
    sim.advance(2)
    assert await status(client, txn_id) == "pending"
    assert sim.advance(1) == 1
    assert await status(client, txn_id) == "success"


async def test_payment_after_does_not_override_the_consumer(client, sim):
    await load(client, "rules:\n  - payment: {outcome: fail, after: 10}\n")
    txn_id = await create(client)
    await consumer_pays(client, txn_id)
    sim.advance(20)
    assert await status(client, txn_id) == "success"


async def test_payment_fail_reason_in_timeline(client):
    await load(client, "rules:\n  - payment: {outcome: fail, reason: card stolen}\n")
    txn_id = await create(client)
    body = await txn(client, txn_id)
    assert body["internal_status"] == "fail"
    events = {e["event"]: e for e in body["timeline"]}
    assert events["fail"]["detail"] == {"reason": "card stolen"}


async def test_payment_fail_default_reason(client):
    await load(client, "rules:\n  - payment: {outcome: fail}\n")
    body = await txn(client, await create(client))
    assert body["timeline"][-1]["detail"] == {"reason": "declined"}


async def test_payment_expire(client):
    await load(client, "rules:\n  - payment: {outcome: expire}\n")
    txn_id = await create(client)
    assert await status(client, txn_id) == "expired"
    resp = await post(client, "inquire", transaction_id=txn_id)
    assert (await resp.json())["status"] == "expired"


async def test_payment_pending_stops_magic_amounts(client, sim):
    await load(client, "rules:\n  - match: {amount: {suffix: '9903'}}\n"
                       "    payment: {outcome: pending}\n")
    txn_id = await create(client, amount=19903)
    assert await status(client, txn_id) == "pending"
    sim.advance(60)
    assert await status(client, txn_id) == "pending"
    assert sim.scheduler.pending() == []  # nothing was scheduled for it
    # Without the rule the same amount pays at once.
    await client.delete("/_sim/scenarios")
    assert await status(client, await create(client, amount=19903)) == "success"


async def test_payment_authorize_delayed_capture_vendor(client):
    await load(client, "rules:\n  - payment: {outcome: authorize}\n")
    txn_id = await create(client, "pay", vendor="klarna", auto_capture="true")
    assert await status(client, txn_id) == "authorized"
    resp = await post(client, "capture", transaction_id=txn_id)
    assert resp.status == 200, await resp.text()
    assert await status(client, txn_id) == "success"


async def test_payment_authorize_other_vendor_pays(client):
    await load(client, "rules:\n  - payment: {outcome: authorize}\n")
    txn_id = await create(client, vendor="alipay")
    assert await status(client, txn_id) == "success"


async def test_payment_script_ignored_on_other_endpoints(client):
    txn_id = await create(client)
    await load(client, "rules:\n  - payment: {outcome: pay}\n")
    resp = await post(client, "inquire", transaction_id=txn_id)
    assert resp.status == 200
    assert await status(client, txn_id) == "pending"


async def test_ipn_rules_parse_and_their_payment_part_works(client):
    scenario = parse_scenario(
        "rules:\n"
        "  - payment: {outcome: pay}\n"
        "    ipn: {delay: 5, duplicates: 2, out_of_order: true, bad_signature: true,\n"
        "          tamper_amount: 3, status: fail}\n"
        "  - ipn: {never: true}\n"
    )
    first, second = scenario.rules
    assert first.ipn is not None and second.ipn is not None
    assert (first.ipn.delay, first.ipn.duplicates, first.ipn.out_of_order,
            first.ipn.bad_signature, first.ipn.tamper_amount, first.ipn.status) == (
        5, 2, True, True, 3, "fail")
    assert second.ipn.never and second.payment is None
    await load(client, "rules:\n  - payment: {outcome: pay}\n    ipn: {delay: 5}\n")
    assert await status(client, await create(client)) == "success"


# -- api actions -------------------------------------------------------------------------


async def test_api_latency_is_applied(client, sim):
    await load(client, "rules:\n  - name: slow\n    api: {latency_ms: 40}\n")
    txn_id = await create(client)
    resp = await post(client, "inquire", transaction_id=txn_id)
    assert resp.status == 200
    entries = (await (await client.get("/_sim/requests")).json())["requests"]
    assert [e["endpoint"] for e in entries] == ["inquire", "pay_qr"]
    assert all(e["duration_ms"] >= 40 for e in entries)
    assert all(e["scenario_rule"] == "slow" for e in entries)
    assert await status(client, txn_id) == "pending"  # latency alone changes nothing else


@pytest.mark.parametrize(
    ("code", "http_status"),
    [(4000, 500), (4100, 400), (4101, 400), (4102, 400), (4103, 400), (4104, 400),
     (4105, 400)],
)
async def test_api_error_code(client, sim, code, http_status):
    await load(client, f"rules:\n  - match: {{endpoint: [pay, pay_qr]}}\n"
                       f"    api: {{error: {code}}}\n")
    resp = await post(client)
    assert resp.status == http_status
    body = await resp.json()
    assert body["result"] == "fail" and body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert sim.ledger.by_id == {}


async def test_api_error_on_a_lookup_endpoint(client):
    txn_id = await create(client)
    await load(client, "rules:\n  - match: {endpoint: inquire}\n    api: {error: 4103}\n")
    resp = await post(client, "inquire", transaction_id=txn_id)
    assert resp.status == 400 and (await resp.json())["code"] == 4103


async def test_api_http_status(client, sim):
    await load(client, "rules:\n  - api: {http_status: 503}\n")
    resp = await post(client, "pay")
    assert resp.status == 503
    assert sim.ledger.by_id == {}


async def test_api_drop(client, sim):
    await load(client, "rules:\n  - match: {endpoint: pay_qr}\n    api: {drop: true}\n")
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(client)
    assert sim.ledger.by_id == {}
    # The server is still there for the next request.
    assert (await post(client, "pay")).status == 200
    assert len(sim.ledger.by_id) == 1


async def test_api_timeout_payment_exists(client, sim):
    await load(client, "rules:\n  - match: {endpoint: pay_qr}\n"
                       "    api: {timeout: true, latency_ms: 20}\n")
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(client, reference="lost-answer")
    listed = (await (await client.get("/_sim/transactions")).json())["transactions"]
    assert [t["reference"] for t in listed] == ["lost-answer"]
    assert len(sim.ledger.by_id) == 1
    # The merchant can find it by reference, as it should after a timeout.
    resp = await post(client, "inquire", reference="lost-answer")
    assert resp.status == 200 and (await resp.json())["id"] == listed[0]["id"]


# -- refund action -----------------------------------------------------------------------


async def test_refund_refused_with_status(client, sim):
    txn_id = await create(client)
    await consumer_pays(client, txn_id)
    await load(client, "rules:\n  - match: {endpoint: refund}\n"
                       "    refund: {status: closed for the day}\n")
    resp = await post(client, "refund", transaction_id=txn_id, amount=100, currency="USD")
    assert resp.status == 200
    assert await resp.json() == {"refunded": False, "status": "closed for the day"}
    assert sim.ledger.by_id[txn_id].refunded_amount == 0
    # Without the rule the same refund goes through.
    await client.delete("/_sim/scenarios")
    resp = await post(client, "refund", transaction_id=txn_id, amount=100, currency="USD")
    assert (await resp.json())["refunded"] is True


# -- magic amounts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "expected"),
    [(19901, "fail"), (9902, "expired"), (29903, "success"), (9905, "success"),
     (19906, "success"), (9907, "success"), (9908, "success")],
)
async def test_magic_amount_outcomes(client, amount, expected):
    txn_id = await create(client, amount=amount)
    body = await txn(client, txn_id)
    assert body["internal_status"] == expected
    if expected == "fail":
        assert body["timeline"][-1]["detail"] == {"reason": "insufficient funds"}


async def test_magic_9904_pays_after_30_seconds(client, sim):
    txn_id = await create(client, amount=9904)
    await advance(client, 29)
    assert await status(client, txn_id) == "pending"
    await advance(client, 1)
    assert await status(client, txn_id) == "success"


async def test_magic_9908_authorises_delayed_capture_vendors(client):
    txn_id = await create(client, "pay", vendor="klarna", amount=9908)
    assert await status(client, txn_id) == "authorized"


async def test_magic_9909_error_4000_nothing_created(client, sim):
    resp = await post(client, amount=109909)
    assert resp.status == 500
    assert (await resp.json())["code"] == 4000
    assert sim.ledger.by_id == {}


async def test_magic_amount_from_trans_amount(client):
    resp = await post(client, amount="<omit>", currency="<omit>", trans_amount=19903,
                      trans_currency="CNY")
    assert resp.status == 200
    txn_id = (await resp.text()).split("q=")[1]
    assert await status(client, txn_id) == "success"


@pytest.mark.parametrize("amount", [1000, 4000, 1999, 9900, 9910, 99010, 990])
async def test_ordinary_amounts_unaffected(client, amount):
    assert await status(client, await create(client, amount=amount)) == "pending"


async def test_magic_amounts_apply_to_pay_and_pay_qr_only(client, sim):
    txn_id = await create(client, amount=1000)
    await consumer_pays(client, txn_id)
    resp = await post(client, "refund", transaction_id=txn_id, amount=9909, currency="USD")
    assert resp.status == 200  # not error 4000: refunds are not scripted by magic amounts


# -- loading -------------------------------------------------------------------------------


ONCE = ("name: once\nrules:\n  - match: {endpoint: pay_qr}\n    payment: {outcome: fail}\n"
        "    times: 1\n")


async def test_loading_a_loaded_name_replaces_it_and_it_fires_once(client):
    """Reloading a scenario (a changed file, a test's setup run twice) used to add a second
    copy: a ``times: 1`` rule then fired twice."""
    assert (await load(client, ONCE))["replaced"] is False
    assert (await load(client, ONCE))["replaced"] is True
    listing = await (await client.get("/_sim/scenarios")).json()
    assert [s["name"] for s in listing["global"]] == ["once"]
    first, second = await create(client), await create(client)
    assert (await status(client, first), await status(client, second)) == ("fail", "pending")


async def test_a_replaced_scenario_keeps_its_place_and_its_scope(client):
    await load(client, "name: a\nrules:\n  - match: {vendor: wechatpay}\n"
                       "    payment: {outcome: pay}\n")
    await load(client, "name: b\nrules:\n  - payment: {outcome: expire}\n")
    await load(client, "name: a\nrules:\n  - payment: {outcome: fail}\n")  # changed
    await load(client, "name: a\nrules:\n  - payment: {outcome: pay}\n", token="shop-a")
    listing = await (await client.get("/_sim/scenarios")).json()
    assert [s["name"] for s in listing["global"]] == ["a", "b"]  # tried first, as before
    [scoped] = listing["by_token"].values()
    assert [s["name"] for s in scoped] == ["a"]  # another scope: not a replacement
    assert await status(client, await create(client)) == "fail"  # the new a, before b
    assert await status(client, await create(client, token="shop-a")) == "success"


async def test_scenarios_without_a_name_are_added(client):
    """Text with no ``name:`` is anonymous: two such posts are two scenarios (both show
    as "<posted scenario>"); name one to make reloading replace it."""
    await load(client, "rules:\n  - match: {vendor: wechatpay}\n    payment: {outcome: pay}\n")
    body = await load(client, "rules:\n  - match: {vendor: alipay}\n    payment: {outcome: fail}\n")
    assert body["replaced"] is False
    listing = await (await client.get("/_sim/scenarios")).json()
    assert [s["name"] for s in listing["global"]] == ["<posted scenario>"] * 2
    assert await status(client, await create(client, vendor="wechatpay")) == "success"
    assert await status(client, await create(client, vendor="alipay")) == "fail"


async def test_a_file_or_shipped_scenario_is_named_by_its_file(aiohttp_client, tmp_path):
    unnamed = tmp_path / "refuse-first.yaml"
    unnamed.write_text("rules:\n  - match: {endpoint: pay_qr}\n    payment: {outcome: fail}\n"
                       "    times: 1\n")
    client, sim = await client_for(aiohttp_client, scenarios=[str(unnamed), str(unnamed),
                                                               "declines", "declines"])
    assert [s.name for s in sim.scenarios.global_scenarios] == ["refuse-first", "declines"]
    resp = await client.post("/_sim/scenarios", data={"name": "declines"})
    assert (await resp.json())["replaced"] is True
    assert len(sim.scenarios.global_scenarios) == 2
    first, second = await create(client), await create(client)
    assert (await status(client, first), await status(client, second)) == ("fail", "pending")


async def test_config_loads_shipped_and_file(aiohttp_client, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nrules:\n  - match: {vendor: wechatpay}\n"
                    "    payment: {outcome: expire}\n")
    client, sim = await client_for(aiohttp_client, seed=None, scenarios=["declines", str(path)])
    assert [s.name for s in sim.scenarios.global_scenarios] == ["declines", "mine"]
    declined = await create(client, reference="decline-1")
    expired = await create(client, vendor="wechatpay", reference="w-1")
    normal = await create(client, reference="order-1")
    assert await status(client, declined) == "fail"
    assert await status(client, expired) == "expired"
    assert await status(client, normal) == "pending"


def test_config_with_a_bad_scenario_raises(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("rules:\n  - payment: {outcome: fly}\n")
    with pytest.raises(ScenarioError) as info:
        Simulator(Config(scenarios=[str(path)]))
    assert info.value.line == 2 and str(path) in str(info.value)
    with pytest.raises(ScenarioError, match="cannot read"):
        Simulator(Config(scenarios=[str(tmp_path / "missing.yaml")]))


async def test_post_yaml_body(client):
    body = await load(client, "name: posted\nrules:\n  - payment: {outcome: expire}\n")
    assert body["scope"] == "all" and body["loaded"]["name"] == "posted"
    assert await status(client, await create(client)) == "expired"


async def test_post_json_body(client):
    scenario = {"name": "as-json", "rules": [{"match": {"vendor": "alipay"},
                                              "payment": {"outcome": "fail",
                                                          "reason": "json"}}]}
    resp = await client.post("/_sim/scenarios", json=scenario)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["loaded"]["name"] == "as-json"
    assert await status(client, await create(client)) == "fail"


async def test_post_shipped_name_form_field(client):
    resp = await client.post("/_sim/scenarios", data={"name": "qr-expiry"})
    assert resp.status == 200
    assert (await resp.json())["loaded"]["name"] == "qr-expiry"
    assert await status(client, await create(client, "pay_qr")) == "expired"
    assert await status(client, await create(client, "pay")) == "pending"


async def test_post_unknown_shipped_name(client, sim):
    resp = await client.post("/_sim/scenarios", data={"name": "no-such-scenario"})
    assert resp.status == 400
    assert (await resp.json())["code"] == 4100
    assert sim.scenarios.global_scenarios == []


async def test_post_token_scope(client, sim):
    body = await load(client, "rules:\n  - payment: {outcome: pay}\n", token="shop-a")
    assert body["scope"] == "merchant"
    assert sim.scenarios.global_scenarios == []
    assert await status(client, await create(client, token="shop-a")) == "success"
    assert await status(client, await create(client, token="shop-b")) == "pending"


async def test_post_token_scope_with_form_name(client):
    resp = await client.post("/_sim/scenarios?token=shop-a", data={"name": "qr-expiry"})
    assert (await resp.json())["scope"] == "merchant"
    assert await status(client, await create(client, token="shop-a")) == "expired"
    assert await status(client, await create(client, token="shop-b")) == "pending"


async def test_get_lists_with_counts(client):
    await load(client, "name: counted\nrules:\n"
                       "  - name: second wechat\n    match: {vendor: wechatpay, nth: 2}\n"
                       "    payment: {outcome: pay}\n")
    await load(client, "name: scoped\nrules:\n  - api: {latency_ms: 0}\n", token="shop-a")
    for _ in range(3):
        await create(client, vendor="wechatpay")
    await create(client, vendor="alipay")
    listing = await (await client.get("/_sim/scenarios")).json()
    (scenario,) = listing["global"]
    assert scenario["name"] == "counted"
    (rule,) = scenario["rules"]
    assert rule["name"] == "second wechat"
    assert (rule["seen"], rule["applied"]) == (3, 1)
    assert rule["source"] == "<posted scenario>:3"
    assert rule["payment"]["outcome"] == "pay"
    assert [s["name"] for ss in listing["by_token"].values() for s in ss] == ["scoped"]
    assert listing["magic_amounts"]["name"] == "magic"
    magic_rules = listing["magic_amounts"]["rules"]
    assert len(magic_rules) == 9 and all(r["applied"] == 0 for r in magic_rules)


async def test_get_lists_each_merchant_apart(client):
    """Two short tokens share the hint "…"; the listing must still show both."""
    await load(client, "name: for-a\nrules:\n  - payment: {outcome: pay}\n", token="shop-a")
    await load(client, "name: for-b\nrules:\n  - payment: {outcome: pay}\n", token="shop-b")
    listing = await (await client.get("/_sim/scenarios")).json()
    names = sorted(s["name"] for ss in listing["by_token"].values() for s in ss)
    assert names == ["for-a", "for-b"]
    scoped = await (await client.get("/_sim/scenarios?token=shop-a")).json()
    assert [s["name"] for ss in scoped["by_token"].values() for s in ss] == ["for-a"]


async def test_delete_clears_everything(client, sim):
    await load(client, "rules:\n  - payment: {outcome: pay}\n")
    await load(client, "rules:\n  - payment: {outcome: fail}\n", token="shop-a")
    resp = await client.delete("/_sim/scenarios")
    assert resp.status == 200 and (await resp.json())["scope"] == "all"
    listing = await (await client.get("/_sim/scenarios")).json()
    assert listing["global"] == [] and listing["by_token"] == {}
    assert listing["magic_amounts"] is not None  # magic amounts are not a loaded scenario
    assert await status(client, await create(client)) == "pending"
    assert await status(client, await create(client, token="shop-a")) == "pending"
    assert await status(client, await create(client, amount=9903)) == "success"


async def test_delete_one_merchant(client):
    await load(client, "rules:\n  - match: {vendor: wechatpay}\n    payment: {outcome: pay}\n")
    await load(client, "rules:\n  - payment: {outcome: fail}\n", token="shop-a")
    await load(client, "rules:\n  - payment: {outcome: expire}\n", token="shop-b")
    resp = await client.delete("/_sim/scenarios?token=shop-a")
    assert (await resp.json())["scope"] == "merchant"
    assert await status(client, await create(client, token="shop-a")) == "pending"
    assert await status(client, await create(client, token="shop-b")) == "expired"
    assert await status(client, await create(client, token="shop-a",
                                             vendor="wechatpay")) == "success"


async def test_reset_keeps_scenarios(client, sim):
    await load(client, "rules:\n  - payment: {outcome: pay}\n")
    await create(client)
    assert (await client.post("/_sim/reset")).status == 200
    assert sim.ledger.by_id == {}
    assert await status(client, await create(client)) == "success"


# -- errors name the source, the line and the problem ------------------------------------

# (text, line, words the problem must contain)
INVALID = {
    "bad YAML": ("name: x\nrules:\n  - match: {vendor: [alipay\n    payment: {outcome: pay}\n",
                 4, ["not valid YAML"]),
    "tab indentation": ("name: x\nrules:\n\t- payment: {outcome: pay}\n", 3, ["not valid YAML"]),
    "unknown top-level key": ("name: x\nrules:\n  - payment: {outcome: pay}\nrulez: []\n",
                              4, ["top level", "'rulez' was unexpected"]),
    "unknown rule key": ("name: x\nrules:\n  - name: a\n    payment: {outcome: pay}\n"
                         "    time: 3\n", 5, ["rules/0", "'time' was unexpected"]),
    "unknown match key": ("rules:\n  - payment: {outcome: pay}\n  - match:\n"
                          "      vendor: alipay\n      colour: red\n    payment: {outcome: pay}\n",
                          5, ["rules/1/match", "'colour' was unexpected"]),
    "misspelt action": ("rules:\n  - name: a\n    match: {vendor: alipay}\n"
                        "    paymnet: {outcome: pay}\n", 4, ["'paymnet' was unexpected"]),
    "bad outcome": ("name: x\nrules:\n  - match: {vendor: alipay}\n    payment:\n"
                    "      outcome: fly\n", 5, ["rules/0/payment/outcome", "'fly'", "'pay'"]),
    "bad endpoint": ("rules:\n  - match:\n      vendor: alipay\n      endpoint: [pay, payqr]\n"
                     "    payment: {outcome: pay}\n", 4, ["rules/0/match/endpoint/1", "'payqr'"]),
    "bad error code": ("rules:\n  - api:\n      error: 4999\n", 3, ["rules/0/api/error", "4999"]),
    "no action": ("name: x\nrules:\n  - payment: {outcome: pay}\n  - name: nothing\n"
                  "    match: {vendor: alipay}\n", 4, ["rules/1", "at least one action"]),
    "bad regex": ("rules:\n  - name: r\n    match:\n      endpoint: pay\n"
                  "      reference: {regex: '(unclosed'}\n    payment: {outcome: pay}\n",
                  5, ["bad reference regex"]),
    "times not a number": ("rules:\n  - payment: {outcome: pay}\n    times: three\n", 3,
                           ["rules/0/times", "'three'", "integer"]),
    "after not a number": ("rules:\n  - payment:\n      outcome: pay\n      after: soon\n", 4,
                           ["rules/0/payment/after", "'soon'"]),
    "rules not a list": ("name: x\nrules:\n  payment: {outcome: pay}\n", 3,
                         ["rules", "not of type 'array'"]),
    "nth zero": ("rules:\n  - match: {nth: 0}\n    payment: {outcome: pay}\n", 2,
                 ["rules/0/match/nth"]),
    "outcome missing": ("rules:\n  - payment:\n      after: 3\n", 3,
                        ["rules/0/payment", "'outcome' is a required property"]),
    "rules missing": ("name: x\ndescription: nothing\n", 1, ["'rules' is a required property"]),
}


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_invalid_scenarios_name_source_line_and_problem(case):
    text, line, words = INVALID[case]
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.yaml")
    err = info.value
    assert (err.source, err.line) == ("bad.yaml", line), str(err)
    assert str(err).startswith(f"bad.yaml:{line}: ")
    for word in words:
        assert word in err.problem, (word, str(err))


@pytest.mark.parametrize("case", ["bad YAML", "unknown rule key", "bad outcome", "no action",
                                  "bad regex", "times not a number"])
async def test_posting_an_invalid_scenario_is_a_400(client, sim, case):
    text, line, words = INVALID[case]
    resp = await client.post("/_sim/scenarios", data=text)
    assert resp.status == 400
    body = await resp.json()
    assert body["result"] == "fail" and body["code"] == 4100
    assert f"<posted scenario>:{line}: " in body["message"]
    for word in words:
        assert word in body["message"]
    assert sim.scenarios.global_scenarios == []


async def test_posting_invalid_json_names_the_line(client):
    text = '{\n  "rules": [\n    {"payment": {"outcome": "fly"}}\n  ]\n}\n'
    resp = await client.post("/_sim/scenarios", data=text,
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert "<posted scenario>:3: rules/0/payment/outcome" in (await resp.json())["message"]


async def test_posting_an_empty_scenario_is_a_400(client):
    resp = await client.post("/_sim/scenarios", data="")
    assert resp.status == 400
    assert "empty scenario" in (await resp.json())["message"]


# -- the command line ------------------------------------------------------------------------


def test_cli_check_valid_files(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text("name: good\nrules:\n  - payment: {outcome: pay}\n  - api: {drop: true}\n")
    result = CliRunner().invoke(main, ["scenarios", "check", str(path), "declines"])
    assert result.exit_code == 0, result.output
    assert f"{path}: good, 2 rule(s)" in result.output
    assert "declines: declines, 2 rule(s)" in result.output


def test_cli_check_invalid_file(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("rules:\n  - payment: {outcome: pay}\n")
    bad.write_text("name: bad\nrules:\n  - match: {vendor: alipay}\n    payment:\n"
                   "      outcome: fly\n")
    result = CliRunner().invoke(main, ["scenarios", "check", str(good), str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:5: rules/0/payment/outcome: 'fly' is not one of" in result.stderr
    assert f"ok       {good}" in result.stdout


def test_cli_check_missing_file(tmp_path):
    result = CliRunner().invoke(main, ["scenarios", "check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "nope.yaml" in result.output and "cannot read" in result.output


def test_cli_check_bad_yaml(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("rules:\n  - payment: {outcome: pay\n")
    result = CliRunner().invoke(main, ["scenarios", "check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:3: not valid YAML" in result.output


def test_cli_check_needs_a_file():
    result = CliRunner().invoke(main, ["scenarios", "check"])
    assert result.exit_code == 2


def test_cli_list_shows_every_shipped_scenario():
    result = CliRunner().invoke(main, ["scenarios", "list"])
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.output.splitlines() if line.strip()]
    assert listed == sorted(shipped_scenarios())
    assert set(listed) == {"happy-path", "declines", "flaky-ipn", "slow-gateway", "qr-expiry",
                           "refund-refused", "magic"}
    assert all(len(line.split(maxsplit=1)) == 2 for line in result.output.splitlines())


def test_scenario_file_round_trips_through_json(tmp_path):
    """A JSON scenario file is YAML too."""
    path = Path(tmp_path / "s.json")
    path.write_text(json.dumps({"rules": [{"api": {"latency_ms": 5}, "times": 2}]}))
    result = CliRunner().invoke(main, ["scenarios", "check", str(path)])
    assert result.exit_code == 0 and "1 rule(s)" in result.output


async def test_post_yaml_sent_as_form_content_type(client, sim):
    """``curl --data-binary @file.yaml`` sends a form content type; the body is still YAML."""
    text = (Path(__file__).parent.parent / "scenarios" / "declines.yaml").read_text()
    resp = await client.post("/_sim/scenarios", data=text.encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 200, await resp.text()
    assert [s.name for s in sim.scenarios.global_scenarios] == ["declines"]
