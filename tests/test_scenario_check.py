"""``citcon-sim scenarios check`` and scenario loading (issue 14, item 5): vendors and
currencies are checked against the catalogue, endpoints against the rule's faces, and
every problem of a file is reported (with its line), not only the first. Loading refuses
the same scenarios, with the same list."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from citcon_sim.cli import main
from citcon_sim.scenarios import ScenarioError, parse_scenario

from .helpers import client_for, create, internal_status

# Seven problems, of every kind the check knows.
SEVERAL = """\
name: typos
rules:
  - name: unknown vendor
    match: {vendor: alipya}
    payment: {outcome: fail}
  - name: bad outcome
    match: {vendor: [alipay, wechatpay]}
    payment: {outcome: fly}
  - name: unknown currency
    match:
      currency: XYZ
    payment: {outcome: pay}
  - name: endpoint that does not exist
    match: {endpoint: [pay, payqr]}
    api: {latency_ms: 5}
  - name: a vendor this API does not take, and one nobody has
    match:
      face: online
      vendor:
        - paypal
        - bitcoin
    refund: {status: refused}
  - name: an endpoint CHOP does not have
    match: {face: chop, endpoint: [chop, pay_qr]}
    api: {latency_ms: 5}
"""

EXPECTED = [  # (line, the problem as printed)
    (4, "rules/0/match/vendor: unknown vendor 'alipya' (one of: alipay, wechatpay"),
    (8, "rules/1/payment/outcome: 'fly' is not one of ['pay', 'fail'"),
    (11, "rules/2/match/currency: unknown currency 'XYZ'"),
    (14, "rules/3/match/endpoint/1: 'payqr' is not one of ['pay', 'pay_qr'"),
    (20, "rules/4/match/vendor/0: 'paypal' is not accepted by the online API (only chop, upi)"),
    (21, "rules/4/match/vendor/1: unknown vendor 'bitcoin'"),
    (24, "rules/5/match/endpoint/1: 'pay_qr' is not an endpoint of the chop API (only "
         "cancel, chop, inquire, list, refund)"),
]


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "typos.yaml"
    path.write_text(SEVERAL)
    result = CliRunner().invoke(main, ["scenarios", "check", str(path)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == len(EXPECTED), result.stderr
    for line, (number, problem) in zip(lines, EXPECTED, strict=True):
        assert line.startswith(f"invalid  {path}:{number}: {problem}"), (line, problem)
    assert result.stdout == ""


def test_each_file_is_checked_and_reported(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("rules:\n  - match: {vendor: KakaoPay, currency: krw}\n"
                    "    payment: {outcome: pay}\n")
    bad.write_text("rules:\n  - match: {vendor: alipay, currency: ABC}\n"
                   "    payment: {outcome: pay}\n  - api: {error: 1}\n")
    result = CliRunner().invoke(main, ["scenarios", "check", str(bad), str(good), "declines"])
    assert result.exit_code == 1
    assert f"ok       {good}: good, 1 rule(s)" in result.stdout
    assert "ok       declines: declines" in result.stdout
    assert result.stderr.splitlines() == [
        f"invalid  {bad}:2: rules/0/match/currency: unknown currency 'ABC'",
        f"invalid  {bad}:4: rules/1/api/error: 1 is not one of [4000, 4100, 4101, 4102, "
        "4103, 4104, 4105]",
    ]


@pytest.mark.parametrize(("match", "problem"), [
    ("{vendor: paypal, face: [online, chop]}", None),  # CHOP takes PayPal
    ("{vendor: cashapppay, face: online}", "not accepted by the online API"),
    ("{vendor: ' Alipay '}", None),  # as the faces read it: trimmed, any case
    ("{vendor: generic}", None),  # the Online API's vendor=generic
    ("{vendor: generic, face: chop}", "unknown vendor 'generic'"),
    ("{currency: XAU}", "XAU is not a payment currency"),
    ("{currency: jpy}", None),
])
def test_catalogue_checks(match: str, problem: str | None) -> None:
    text = f"rules:\n  - match: {match}\n    payment: {{outcome: pay}}\n"
    if problem is None:
        parse_scenario(text, "s.yaml")
        return
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml")
    assert (caught.value.line, len(caught.value.errors)) == (2, 1)
    assert problem in caught.value.problem


@pytest.mark.parametrize(("match", "problem"), [
    ("{face: chop, endpoint: pay_qr}", "rules/0/match/endpoint: 'pay_qr' is not an endpoint "
     "of the chop API (only cancel, chop, inquire, list, refund)"),
    ("{face: [chop], endpoint: capture}", "'capture' is not an endpoint of the chop API"),
    ("{face: online, endpoint: chop}", "'chop' is not an endpoint of the online API (only "
     "cancel, capture, inquire, list, pay, pay_qr, qr, refund)"),
    ("{face: upi, endpoint: list}", "'list' is not an endpoint of the upi API (only cancel, "
     "capture, inquire, pay, qr, refund)"),
    ("{face: [chop, upi], endpoint: [inquire, pay_qr]}",
     "rules/0/match/endpoint/1: 'pay_qr' is not an endpoint of the chop/upi API"),
    ("{face: upi, endpoint: [pay, inquire, refund, cancel, capture, qr]}", None),
    ("{face: chop, endpoint: [chop, inquire, refund, cancel, list]}", None),
    ("{face: [online, chop], endpoint: [pay, chop]}", None),  # Online's pay, CHOP's chop
    ("{face: [chop, upi], endpoint: pay}", None),  # a UPI charge is `pay`
    ("{endpoint: [chop, pay_qr]}", None),  # no face: any face's endpoint
])
def test_endpoints_are_checked_against_the_rules_faces(match: str, problem: str | None) -> None:
    text = f"rules:\n  - match: {match}\n    api: {{latency_ms: 5}}\n"
    if problem is None:
        parse_scenario(text, "s.yaml")
        return
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml")
    assert (caught.value.line, len(caught.value.errors)) == (2, 1)
    assert problem in caught.value.problem


@pytest.mark.parametrize("match", [
    "{face: bank, endpoint: pay_qr}", "{face: [{a: 1}], endpoint: pay_qr}",
    "{face: chop, endpoint: payqr}", "{face: [chop, 7], endpoint: [chop, {x: 1}]}",
])
def test_a_bad_face_or_endpoint_is_the_schemas_to_report(match: str) -> None:
    """Reported once, by the schema: the endpoint check adds nothing (and never fails)."""
    text = f"rules:\n  - match: {match}\n    api: {{latency_ms: 5}}\n"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml")
    assert "is not an endpoint" not in str(caught.value)
    assert all("is not one of" in e.problem or "is not valid under" in e.problem
               or "is not of type" in e.problem for e in caught.value.errors), str(caught.value)


async def test_posting_a_face_that_is_no_name_is_a_4100(
    aiohttp_client: Callable[..., Any],
) -> None:
    """``face: [{a: 1}]`` once made the check itself fail (an unhashable face): a 500."""
    client, _ = await client_for(aiohttp_client)
    resp = await client.post("/_sim/scenarios", data="rules:\n  - match: {face: [{a: 1}], "
                             "endpoint: pay_qr}\n    api: {latency_ms: 5}\n")
    assert resp.status == 400 and (await resp.json())["code"] == 4100
    resp = await client.post("/_sim/scenarios", data="rules:\n  - match: {face: chop, "
                             "endpoint: pay_qr}\n    api: {latency_ms: 5}\n")
    body = await resp.json()
    assert resp.status == 400 and body["code"] == 4100
    assert "'pay_qr' is not an endpoint of the chop API" in body["message"]


def test_the_error_carries_every_problem_in_file_order() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(SEVERAL, "typos.yaml")
    err = caught.value
    assert [e.line for e in err.errors] == [n for n, _ in EXPECTED]
    assert (err.line, err.problem) == (err.errors[0].line, err.errors[0].problem)
    assert str(err).splitlines() == [str(e) for e in err.errors]


async def test_loading_refuses_it_with_every_problem(
    aiohttp_client: Callable[..., Any], tmp_path: Path
) -> None:
    client, sim = await client_for(aiohttp_client)
    resp = await client.post("/_sim/scenarios", data=SEVERAL)
    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == 4100
    for number, problem in EXPECTED:
        assert f"<posted scenario>:{number}: {problem}" in body["message"]
    assert sim.scenarios.global_scenarios == []
    path = tmp_path / "typos.yaml"
    path.write_text(SEVERAL)
    result = CliRunner().invoke(main, ["serve", "--port", "0", "--scenario", str(path)])
    assert result.exit_code == 1
    assert f"{path}:4: rules/0/match/vendor: unknown vendor 'alipya'" in result.output
    assert f"{path}:21: rules/4/match/vendor/1: unknown vendor 'bitcoin'" in result.output


async def test_a_generic_vendor_rule_matches_the_online_apis_generic(
    aiohttp_client: Callable[..., Any],
) -> None:
    """``vendor: generic`` passes the check because it can match: the Online API's rules
    see the vendor as sent."""
    client, _ = await client_for(aiohttp_client)
    resp = await client.post("/_sim/scenarios", data="rules:\n  - match: {vendor: generic}\n"
                              "    payment: {outcome: fail}\n")
    assert resp.status == 200, await resp.text()
    declined = await create(client, vendor="generic", reference="g-1")
    paid_later = await create(client, vendor="alipay", reference="a-1")
    assert await internal_status(client, declined) == "fail"
    assert await internal_status(client, paid_later) == "pending"
