"""Scenario patterns cannot be turned against the simulator (issue 13, item 8): patterns
that backtrack catastrophically are refused when a scenario loads, a reference longer
than any face accepts is never matched, and only authenticated calls reach scenario
matching (an anonymous caller, or in strict mode an unknown token, makes no pattern run
and counts towards no rule's ``nth``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from citcon_sim.domain.commands import MAX_REFERENCE_LENGTH
from citcon_sim.domain.scripts import RequestFacts
from citcon_sim.scenarios import (
    MAX_QUANTIFIERS,
    ScenarioBook,
    ScenarioError,
    parse_scenario,
    regex_problem,
)

from .helpers import AUTH, PAYMENT, TestClient, client_for, expect_error
from .upi_support import KEY, charge_body, token_for, upi


def with_regex(pattern: str) -> str:
    return ("name: r\nrules:\n  - name: by-ref\n    match:\n      reference:\n"
            f"        regex: '{pattern}'\n    payment: {{outcome: fail}}\n")


@pytest.mark.parametrize("pattern", [
    r"(a+)+$", r"(a*)*b", r"(x+x+)+y", r"(.*a){12}", r"(a|a)*$", r"(?:a|aa)*x",
    r"(a|)+b", r"(?:a|ab)+c", r"a*a*a*a*x", r"\w*\w*\w*\w*\w*x",
])
def test_catastrophic_patterns_are_refused_at_load(pattern: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(with_regex(pattern), "r.yaml")
    assert "reference regex refused" in str(caught.value)
    assert caught.value.line == 6  # the regex's own line


@pytest.mark.parametrize("pattern", [
    r"^ORDER-\d+$", r"fail$", r"^test-.*", r"(foo|bar)+", r"(?:ab|ac)+", r"a{2,5}",
    r"(\d{3}-)+", r"^(?:refund|cancel)-\d{4,8}$", r"(?i)^decline",
])
def test_ordinary_patterns_load(pattern: str) -> None:
    rule = parse_scenario(with_regex(pattern), "r.yaml").rules[0]
    assert rule.reference is not None and rule.reference.pattern == pattern
    assert regex_problem(pattern) is None


def test_the_quantifier_limit_is_counted() -> None:
    assert regex_problem("a*" * MAX_QUANTIFIERS + "x") is None
    assert "variable quantifiers" in (regex_problem("a*" * (MAX_QUANTIFIERS + 1) + "x") or "")


def test_allowed_patterns_stay_fast_on_the_longest_reference() -> None:
    # The worst of what loads: as many quantifiers as allowed over one character class.
    worst = [r"\w*\w*\w*x", r".*.*.*x", r"[ab]*[ab]*[ab]*c"]
    for pattern in worst:
        assert regex_problem(pattern) is None
        rule = parse_scenario(with_regex(pattern), "r.yaml").rules[0]
        assert rule.reference is not None
        started = time.perf_counter()
        assert rule.reference.search("a" * MAX_REFERENCE_LENGTH) is None
        assert time.perf_counter() - started < 0.5, pattern


def test_a_reference_longer_than_any_face_accepts_is_not_matched() -> None:
    book = ScenarioBook(magic=False)
    book.load(parse_scenario(with_regex("^a"), "r.yaml"))
    rule = book.global_scenarios[0].rules[0]

    def facts(reference: str) -> RequestFacts:
        return RequestFacts(token="t", endpoint="pay", vendor="alipay", amount=100,
                            currency="USD", reference=reference)

    assert book.decide(facts("a" * MAX_REFERENCE_LENGTH)) is rule
    assert book.decide(facts("a" * (MAX_REFERENCE_LENGTH + 1))) is None
    assert book.decide(facts("a" * 100_000)) is None


# -- authentication comes first ----------------------------------------------------------

SCRIPTED = ("name: s\nrules:\n  - name: vendor-down\n    match: {endpoint: [pay, pay_qr]}\n"
            "    api: {error: 4101}\n")


async def load(client: TestClient, text: str) -> None:
    resp = await client.post("/_sim/scenarios", data=text)
    assert resp.status == 200, await resp.text()


async def test_an_anonymous_call_reaches_no_scenario(aiohttp_client: Any) -> None:
    client, sim = await client_for(aiohttp_client)
    await load(client, SCRIPTED)
    rule = sim.scenarios.global_scenarios[0].rules[0]
    resp = await client.post("/payment/pay", data=PAYMENT)  # no Authorization
    body = await resp.json()
    assert resp.status == 401 and body["code"] != 4101, body
    assert rule.seen == 0 and rule.applied == 0
    resp = await client.post("/payment/pay", data=PAYMENT, headers=AUTH)
    await expect_error(resp, 4101)  # the same call, authenticated: the scenario applies
    assert rule.seen == 1 and rule.applied == 1


async def test_an_anonymous_call_does_not_run_a_pattern(aiohttp_client: Any) -> None:
    client, sim = await client_for(aiohttp_client)
    await load(client, with_regex("^order"))
    rule = sim.scenarios.global_scenarios[0].rules[0]
    calls: list[str] = []

    class Spy:  # counts every search the rule makes
        pattern = "^order"

        def search(self, text: str) -> Any:
            calls.append(text)
            return None

    rule.reference = Spy()  # type: ignore[assignment]
    await client.post("/payment/pay", data=PAYMENT)
    await client.post("/payment/pay", data=PAYMENT, headers={"Authorization": "Bearer "})
    assert calls == []
    await client.post("/payment/pay", data=PAYMENT, headers=AUTH)
    assert calls == ["order-1"]


async def test_in_strict_mode_an_unknown_token_reaches_no_scenario(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    merchants = tmp_path / "merchants.yaml"
    merchants.write_text("merchants:\n  - token: shop-a\n    name: Shop A\n", "utf-8")
    client, sim = await client_for(aiohttp_client, merchants_file=merchants)
    await load(client, SCRIPTED)
    rule = sim.scenarios.global_scenarios[0].rules[0]
    resp = await client.post("/payment/pay", data=PAYMENT,
                             headers={"Authorization": "Bearer intruder"})
    assert resp.status == 401 and rule.seen == 0
    resp = await client.post("/payment/pay", data=PAYMENT,
                             headers={"Authorization": "Bearer shop-a"})
    await expect_error(resp, 4101)
    assert rule.seen == 1


async def test_the_qr_image_needs_no_token_and_stays_scriptable(aiohttp_client: Any) -> None:
    client, sim = await client_for(aiohttp_client)
    await load(client, "name: q\nrules:\n  - match: {endpoint: qr}\n    api: {http_status: 503}\n")
    resp = await client.get("/payment/qr", params={"q": "nothing"})
    assert resp.status == 503  # a public endpoint: nothing to authenticate


async def test_upi_calls_reach_scenarios_only_with_a_live_access_token(
    aiohttp_client: Any
) -> None:
    client, sim = await client_for(aiohttp_client, upi_token_lifetime=60)
    await load(client, SCRIPTED)
    rule = sim.scenarios.global_scenarios[0].rules[0]
    for token in (None, "UPI_forged", KEY):  # none, unknown, a private key (not a token)
        status, _ = await upi(client, "POST", "/v1/charges", token, charge_body())
        assert status == 401
    assert rule.seen == 0
    token = await token_for(client, KEY)
    resp = await client.post("/_sim/clock/advance", data={"seconds": "61"})
    assert resp.status == 200
    status, _ = await upi(client, "POST", "/v1/charges", token, charge_body())
    assert status == 401 and rule.seen == 0  # expired on the virtual clock
    token = await token_for(client, KEY)
    status, answer = await upi(client, "POST", "/v1/charges", token, charge_body())
    assert status == 400 and rule.seen == 1, answer  # the scripted 4101, UPI's shape
