"""An open ``/_sim/`` (no admin token) against web pages: DNS rebinding (a foreign Host)
and cross-site requests (a foreign Origin) are refused with a 403 envelope and change
nothing; the names merchants, compose stacks and the dashboard use keep working."""

from __future__ import annotations

import pytest

from citcon_sim import Config
from citcon_sim.web.security import host_allowed, split_host

from .helpers import AUTH, client_for, create, expect_error

FOREIGN = ("evil.example.com", "evil.example.com:8080", "rebind.attacker.test.",
           "127.0.0.1.nip.io:8080", "localhost.evil.com")
FINE = ("localhost", "localhost:8080", "LOCALHOST.", "app.localhost:9", "127.0.0.1:8080",
        "[::1]:8080", "10.1.2.3", "citcon-sim:8080", "citcon-sim")


async def forbidden(resp) -> dict:
    body = await expect_error(resp, 4100, 403)
    assert "test-token" not in body["message"]
    return body


@pytest.mark.parametrize("host", FOREIGN)
async def test_a_foreign_host_reads_nothing_from_an_open_sim(aiohttp_client, host):
    client, sim = await client_for(aiohttp_client)
    await create(client)
    for path in ("/_sim/state", "/_sim/transactions", "/_sim/", "/_sim/requests",
                 "/_sim/events"):
        body = await forbidden(await client.get(path, headers={"Host": host}))
        assert "--allowed-hosts" in body["message"]


@pytest.mark.parametrize("host", FOREIGN)
async def test_a_foreign_host_changes_nothing(aiohttp_client, host):
    client, sim = await client_for(aiohttp_client)
    txn_id = await create(client)
    headers = {"Host": host}
    await forbidden(await client.post(f"/_sim/transactions/{txn_id}/pay", headers=headers))
    await forbidden(await client.post("/_sim/reset", headers=headers))
    await forbidden(await client.post("/_sim/scenarios", data={"name": "flaky-ipn"},
                                      headers=headers))
    await forbidden(await client.post("/_sim/clock/advance", data={"seconds": "60"},
                                      headers=headers))
    assert sim.ledger.get(txn_id).status.value == "pending"
    assert not sim.scenarios.describe(None)["global"]
    assert sim.clock.now().minute == 0


@pytest.mark.parametrize("host", FINE)
async def test_loopback_ip_and_single_label_hosts_are_served(aiohttp_client, host):
    client, _ = await client_for(aiohttp_client)
    txn_id = await create(client)
    resp = await client.get("/_sim/transactions", headers={"Host": host})
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"/_sim/transactions/{txn_id}/pay", headers={"Host": host})
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize(("config", "host"), [
    ({"public_url": "https://sim.qa.example.com"}, "sim.qa.example.com"),
    ({"public_url": "http://sim.qa.example.com:8080/"}, "sim.qa.example.com:8080"),
    ({"allowed_hosts": ["sim.qa.example.com"]}, "sim.qa.example.com:8080"),
    ({"allowed_hosts": ["sim.qa.example.com:8080"]}, "SIM.qa.example.com:8080"),
    ({"allowed_hosts": [".svc.cluster.local"]}, "citcon-sim.qa.svc.cluster.local:8080"),
    ({"allowed_hosts": ["*"]}, "anything.example.org"),
    ({"host": "sim.lan"}, "sim.lan:8080"),
])
async def test_configured_names_are_served(aiohttp_client, config, host):
    client, _ = await client_for(aiohttp_client, **config)
    resp = await client.get("/_sim/transactions", headers={"Host": host})
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize(("config", "host"), [
    ({"allowed_hosts": ["sim.qa.example.com:8080"]}, "sim.qa.example.com:9090"),
    ({"allowed_hosts": [".svc.cluster.local"]}, "evilsvc.cluster.local"),
    ({"public_url": "https://sim.qa.example.com"}, "other.qa.example.com"),
])
async def test_other_names_stay_refused(aiohttp_client, config, host):
    client, _ = await client_for(aiohttp_client, **config)
    await forbidden(await client.get("/_sim/transactions", headers={"Host": host}))


async def test_health_merchant_api_and_wallet_pages_answer_any_host(aiohttp_client):
    """Merchants call by whatever name their network gives; health probes likewise."""
    client, _ = await client_for(aiohttp_client)
    headers = {"Host": "citcon-sim.qa.svc.cluster.local:8080"}
    assert (await client.get("/_sim/health", headers=headers)).status == 200
    resp = await client.post("/payment/pay_qr", headers={**AUTH, **headers}, data={
        "vendor": "alipay", "amount": "100", "currency": "USD", "reference": "r-1"})
    assert resp.status == 200, await resp.text()
    txn_id = (await resp.text()).split("=")[1].split("&")[0]
    assert (await client.get(f"/u_landing?q={txn_id}", headers=headers)).status == 200


async def test_with_an_admin_token_the_token_decides(aiohttp_client):
    client, _ = await client_for(aiohttp_client, admin_token="adm1n-secret")
    headers = {"Host": "sim.qa.example.com", "Origin": "https://sim.qa.example.com"}
    resp = await client.post("/_sim/reset", headers={
        **headers, "Authorization": "Bearer adm1n-secret"})
    assert resp.status == 200, await resp.text()
    assert (await client.post("/_sim/reset", headers=headers)).status == 401


# -- Origin ------------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["http://evil.example.com", "null", "http://localhost:3000",
                                    "https://127.0.0.1:1", "file://", "not a url"])
async def test_cross_site_state_changes_are_refused(aiohttp_client, origin):
    client, sim = await client_for(aiohttp_client)
    txn_id = await create(client)
    headers = {"Origin": origin}
    body = await forbidden(await client.post(f"/_sim/transactions/{txn_id}/pay",
                                             headers=headers))
    assert "cross-site" in body["message"]
    await forbidden(await client.post("/_sim/reset", headers=headers))
    await forbidden(await client.post("/_sim/scenarios", headers=headers,
                                      data="rules: [{api: {drop: true}}]"))
    await forbidden(await client.delete("/_sim/scenarios", headers=headers))
    await forbidden(await client.put("/_sim/state", headers=headers, data="{}"))
    assert sim.ledger.get(txn_id).status.value == "pending"
    assert len(sim.ledger.by_id) == 1 and not sim.scenarios.describe(None)["global"]


async def test_same_origin_and_originless_state_changes_pass(aiohttp_client):
    client, sim = await client_for(aiohttp_client)
    own = f"http://{client.host}:{client.port}"
    for headers in ({}, {"Origin": own}, {"Origin": own + ":80".replace(":80", "")},
                    {"Origin": "null", "Sec-Fetch-Site": "same-origin"}):
        txn_id = await create(client)
        resp = await client.post(f"/_sim/transactions/{txn_id}/pay", headers=headers)
        assert resp.status == 200, (headers, await resp.text())


async def test_default_ports_and_configured_origins(aiohttp_client):
    client, _ = await client_for(aiohttp_client, public_url="https://sim.qa.example.com",
                                 allowed_hosts=["localhost:3000"])
    for headers in ({"Host": "sim.qa.example.com:443", "Origin": "https://sim.qa.example.com"},
                    {"Host": "citcon-sim:8080", "Origin": "https://sim.qa.example.com"},
                    {"Origin": "http://localhost:3000"}):
        resp = await client.post("/_sim/clock/advance", data={"seconds": "1"}, headers=headers)
        assert resp.status == 200, (headers, await resp.text())
    await forbidden(await client.post("/_sim/clock/advance", data={"seconds": "1"},
                                      headers={"Origin": "http://localhost:3001"}))


async def test_reads_with_a_foreign_origin_are_left_to_the_same_origin_policy(aiohttp_client):
    client, _ = await client_for(aiohttp_client)
    resp = await client.get("/_sim/clock", headers={"Origin": "http://evil.example.com"})
    assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers


def test_host_parsing():
    assert split_host("Example.COM.:8080") == ("example.com", 8080)
    assert split_host("[::1]:80", "http") == ("::1", None)
    assert split_host("example.com:https") is None and split_host("a:1:2") is None
    assert split_host("[::1") is None and split_host("x:１２") is None
    assert not host_allowed("", ()) and not host_allowed(":80", ())
    assert host_allowed("2130706433", ())  # one label: never a rebinding name


def test_allowed_hosts_setting_is_checked():
    assert Config(allowed_hosts=["a.example", ".b.example", "*"]).allowed_hosts
    for bad in (["a b"], [""], ["http://a.example/"], "a.example"):
        with pytest.raises(ValueError, match="allowed_hosts"):
            Config(allowed_hosts=bad)
