"""``--ipn-allow``: where IPNs may go (issue 13, item 4). The rules' syntax and meaning,
the setting, and each face refusing an ``ipn_url`` outside the list in its own error
shape without touching the ledger; IPN reply bodies are shown only by ``/_sim/``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from citcon_sim import Config, Simulator
from citcon_sim.cli import main
from citcon_sim.config import ConfigError
from citcon_sim.domain.errors import BadRequest
from citcon_sim.domain.netrules import RuleError, allowlist, parse_allowlist, parse_rule

from .helpers import AUTH, PAYMENT, IpnReceiver, TestClient, client_for, expect_error
from .upi_support import KEY, charge_body, token_for, upi

RULES = ["billing.test", "*.example.com", "10.0.0.0/8", "[::1]:9000", "hooks.test:8443",
         ":7000"]


def allowed(url: str, rules: list[str] = RULES) -> bool:
    return parse_allowlist(rules).url_problem(url) is None


@pytest.mark.parametrize(("url", "ok"), [
    ("http://billing.test/ipn", True),
    ("https://BILLING.test./ipn", True),  # any case, a trailing dot
    ("http://billing.test:1234/ipn", True),  # a rule without a port: any port
    ("http://evil.test/ipn", False),
    ("http://shop.example.com/ipn", True),
    ("http://a.b.example.com/ipn", True),
    ("http://example.com/ipn", False),  # *.example.com is below it, not it
    ("http://notexample.com/ipn", False),
    ("http://10.20.30.40/ipn", True),
    ("http://11.0.0.1/ipn", False),
    ("http://127.0.0.1/ipn", False),
    ("http://169.254.169.254/latest/meta-data", False),
    ("http://[::1]:9000/ipn", True),
    ("http://[::1]:9001/ipn", False),
    ("https://hooks.test:8443/ipn", True),
    ("https://hooks.test/ipn", False),  # https: port 443
    ("http://anything.test:7000/ipn", True),  # :PORT, any host
    ("http://127.0.0.1:7000/ipn", True),
])
def test_rules_allow_exactly_what_they_say(url: str, ok: bool) -> None:
    assert allowed(url) is ok, url


def test_names_are_not_addresses_and_addresses_not_names() -> None:
    # A CIDR rule does not allow a name (it resolves at send time), nor a name rule an IP.
    assert not allowed("http://localhost/ipn", ["127.0.0.0/8"])
    assert not allowed("http://127.0.0.1/ipn", ["localhost"])
    assert allowed("http://127.0.0.1/ipn", ["127.0.0.1"])
    assert allowed("http://anything.test/", ["*"])
    assert not allowed("http://anything.test/", ["*:443"])
    assert allowed("https://anything.test/", ["*:443"])


def test_no_rule_allows_everything_as_before() -> None:
    assert allowlist([]).open and allowed("http://169.254.169.254/", [])
    allowlist([]).check_url("http://127.0.0.1:1/x")  # no error


@pytest.mark.parametrize("rule", ["", "   ", "host:", "host:0", "host:99999", ":x",
                                  "10.0.0.0/33", "[::1", "[::1]x", "*.", "a b", "*.*.com",
                                  "bad/rule"])
def test_unreadable_rules_are_refused_with_the_syntax(rule: str) -> None:
    with pytest.raises(RuleError):
        parse_rule(rule)


def test_a_refusal_names_the_destination_and_the_rules() -> None:
    with pytest.raises(BadRequest) as caught:
        allowlist(["billing.test"]).check_url("http://10.0.0.1:8080/ipn")
    assert "10.0.0.1:8080" in str(caught.value) and "billing.test" in str(caught.value)
    assert caught.value.code == 4100


def test_at_send_time_a_wildcard_name_may_not_resolve_inside() -> None:
    rules = parse_allowlist(["*.example.com", "billing.test", "10.0.0.0/8"])
    url = "http://hook.example.com/ipn"
    assert rules.resolved_problem(url, ["93.184.216.34"]) is None
    assert "127.0.0.1" in (rules.resolved_problem(url, ["93.184.216.34", "127.0.0.1"]) or "")
    assert rules.resolved_problem(url, ["169.254.169.254"]) is not None
    assert rules.resolved_problem(url, ["10.1.2.3"]) is None  # an address rule allows it
    # A name the operator named exactly is trusted wherever it resolves.
    assert rules.resolved_problem("http://billing.test/", ["127.0.0.1"]) is None
    assert rules.resolved_problem("http://evil.test/", ["93.184.216.34"]) is not None
    assert parse_allowlist([]).resolved_problem(url, ["127.0.0.1"]) is None


# -- the setting ------------------------------------------------------------------------


def test_the_setting_checks_its_rules() -> None:
    assert Config(ipn_allow=["billing.test"]).ipn_allow == ["billing.test"]
    assert Config(ipn_allow="billing.test").ipn_allow == ["billing.test"]  # type: ignore[arg-type]
    assert Config(ipn_allow=("a.test", "b.test")).ipn_allow == ["a.test", "b.test"]  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as caught:
        Config(ipn_allow=["billing.test", "host:99999"])
    assert caught.value.setting == "ipn_allow" and "host:99999" in caught.value.problem


def _serve(args: list[str], env: dict[str, str] | None = None) -> tuple[Any, list[Config]]:
    seen: list[Config] = []

    async def fake_serve(sim: Simulator, **_: object) -> None:
        seen.append(sim.config)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("citcon_sim.cli.serve_forever", fake_serve)
        result = CliRunner().invoke(main, args, env=env or {})
    return result, seen


def test_serve_takes_repeated_flags_and_the_variable() -> None:
    result, seen = _serve(["serve", "--ipn-allow", "billing.test", "--ipn-allow", ":7000"])
    assert result.exit_code == 0, result.output
    assert seen[0].ipn_allow == ["billing.test", ":7000"]
    result, seen = _serve(["serve"], {"CITCON_SIM_IPN_ALLOW": "a.test 10.0.0.0/8"})
    assert result.exit_code == 0, result.output
    assert seen[0].ipn_allow == ["a.test", "10.0.0.0/8"]
    bad, _ = _serve(["serve", "--ipn-allow", "10.0.0.0/99"])
    assert bad.exit_code == 2 and "'--ipn-allow'" in bad.output
    help_text = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "--ipn-allow" in help_text and "CITCON_SIM_IPN_ALLOW" in help_text


# -- each face refuses, in its own shape, and the ledger does not change ------------------


OUTSIDE = "http://169.254.169.254/latest/meta-data"
INSIDE = "http://billing.test/ipn"


@pytest.fixture
async def locked(aiohttp_client: Any) -> tuple[TestClient, Simulator]:
    return await client_for(aiohttp_client, ipn_allow=["billing.test"])


@pytest.mark.parametrize("endpoint", ["pay", "pay_qr"])
async def test_online_refuses_an_ipn_url_outside_with_a_4100(
    locked: tuple[TestClient, Simulator], endpoint: str
) -> None:
    client, sim = locked
    resp = await client.post(f"/payment/{endpoint}", data={**PAYMENT, "ipn_url": OUTSIDE},
                             headers=AUTH)
    body = await expect_error(resp, 4100)
    assert "ipn_url" in body["message"] and "169.254.169.254:80" in body["message"]
    assert not sim.ledger.by_id
    resp = await client.post(f"/payment/{endpoint}", data={**PAYMENT, "ipn_url": INSIDE},
                             headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert [t.ipn_url for t in sim.ledger.by_id.values()] == [INSIDE]


async def test_chop_refuses_an_ipn_url_outside_with_a_4100(
    locked: tuple[TestClient, Simulator]
) -> None:
    client, sim = locked
    data = {"payment_method": "alipay", "amount": "100", "currency": "USD",
            "reference": "order-1", "ipn_url": OUTSIDE}
    resp = await client.post("/chop/chop", data=data, headers=AUTH)
    body = await resp.json()
    assert resp.status == 400, body
    assert body["result"] == "fail" and body["code"] == 4100, body
    assert "ipn_url" in json.dumps(body)
    assert not sim.ledger.by_id
    resp = await client.post("/chop/chop", data={**data, "ipn_url": INSIDE}, headers=AUTH)
    assert resp.status == 200, await resp.text()


async def test_upi_refuses_an_ipn_url_outside_in_its_envelope(
    locked: tuple[TestClient, Simulator]
) -> None:
    client, sim = locked
    token = await token_for(client, KEY)
    status, answer = await upi(client, "POST", "/v1/charges", token,
                               charge_body(ipn=OUTSIDE))
    assert status == 400, answer
    assert "urls.ipn" in answer["data"]["message"], answer
    assert not sim.ledger.by_id
    status, answer = await upi(client, "POST", "/v1/charges", token,
                               charge_body(ipn=INSIDE, reference="order-2"))
    assert status == 200, answer


async def test_without_rules_any_ipn_url_is_taken(client: TestClient, sim: Simulator) -> None:
    resp = await client.post("/payment/pay", data={**PAYMENT, "ipn_url": OUTSIDE},
                             headers=AUTH)
    assert resp.status == 200, await resp.text()


# -- reply bodies: /_sim/ only ------------------------------------------------------------


SECRET_REPLY = "internal-service-secret-42"


async def test_ipn_reply_bodies_are_shown_by_sim_only(
    aiohttp_client: Any, ipn_receiver: IpnReceiver
) -> None:
    client, sim = await client_for(aiohttp_client, admin_token="admin-secret")
    ipn_receiver.answer(200, SECRET_REPLY)
    resp = await client.post("/payment/pay", data={**PAYMENT, "ipn_url": ipn_receiver.url},
                             headers=AUTH)
    assert resp.status == 200
    wallet_url = await resp.text()
    txn_id = wallet_url.split("q=")[1].split("&")[0]
    admin = {"Authorization": "Bearer admin-secret"}
    paid = await client.post(f"/_sim/transactions/{txn_id}/pay", headers=admin)
    assert paid.status == 200, await paid.text()
    await sim.ipn.drain()
    await ipn_receiver.wait_for(1)
    # The merchant API, the wallet page and the QR image do not show it…
    inquire = await client.post("/payment/inquire", data={"transaction_id": txn_id},
                                headers=AUTH)
    path = wallet_url.split("://", 1)[1].partition("/")[2]
    wallet = await client.get("/" + path)
    listing = await client.post("/payment/transactions", headers=AUTH)
    for page in (inquire, wallet, listing):
        assert SECRET_REPLY not in await page.text()
    # …nor /_sim/ without the admin token; /_sim/ with it does.
    assert (await client.get("/_sim/ipn")).status == 401
    shown = await client.get("/_sim/ipn", headers=admin)
    assert SECRET_REPLY in await shown.text()


# -- when the notification is sent -------------------------------------------------------


async def test_a_wildcard_name_resolving_to_loopback_is_not_posted_to(
    aiohttp_client: Any, ipn_receiver: IpnReceiver
) -> None:
    port = ipn_receiver.url.split(":")[2].split("/")[0]
    url = f"http://localhost:{port}/ipn"  # a name; it resolves to 127.0.0.1
    client, sim = await client_for(aiohttp_client, ipn_allow=[f"*:{port}"])
    resp = await client.post("/payment/pay", headers=AUTH,
                             data={**PAYMENT, "ipn_url": url, "reference": "w-1"})
    assert resp.status == 200, await resp.text()  # the name passes the rules at create
    txn_id = next(iter(sim.ledger.by_id))
    assert (await client.post(f"/_sim/transactions/{txn_id}/pay")).status == 200
    await sim.ipn.drain()
    assert ipn_receiver.posts == []  # the internal address was never posted to
    (n,) = sim.ipn.describe(transaction_id=txn_id)
    attempt = n["attempts"][0]
    assert attempt["sent"] and attempt["status"] is None
    assert "not sent" in attempt["error"] and "internal address" in attempt["error"]
    assert n["state"] == "retrying"


async def test_a_name_allowed_exactly_is_posted_to_wherever_it_resolves(
    aiohttp_client: Any, ipn_receiver: IpnReceiver
) -> None:
    port = ipn_receiver.url.split(":")[2].split("/")[0]
    client, sim = await client_for(aiohttp_client, ipn_allow=[f"localhost:{port}"])
    resp = await client.post("/payment/pay", headers=AUTH, data={
        **PAYMENT, "ipn_url": f"http://localhost:{port}/ipn", "reference": "e-1"})
    assert resp.status == 200, await resp.text()
    txn_id = next(iter(sim.ledger.by_id))
    assert (await client.post(f"/_sim/transactions/{txn_id}/pay")).status == 200
    await sim.ipn.drain()
    assert [p["id"] for p in ipn_receiver.posts] == [txn_id]
