"""What the dashboard's actions stand on, server side: the page's catalogue of faces and
vendors, its request log (``GET /_sim/dashboard/requests``), resetting one merchant by key
(``POST /_sim/dashboard/reset``), and the ``request`` and ``scenarios`` events that keep
the request log and the scenarios tab live. The actions themselves are driven in
Chromium by tests/test_dashboard_actions_browser.py."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from citcon_sim import Config, Simulator, create_app
from citcon_sim.domain.events import MerchantCalled
from citcon_sim.domain.vendors import accepted_by
from citcon_sim.faces import FACES
from citcon_sim.web.dashboard import DEFAULT_TOKEN, HUB

from .helpers import AUTH, START, TOKEN, auth, create, create_paid
from .test_dashboard import next_event, open_stream

OTHER = "other-merchant-token-99"


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], sim: Simulator) -> TestClient:
    c: TestClient = await aiohttp_client(create_app(sim))
    return c


async def page_config(client: TestClient) -> dict[str, Any]:
    html = await (await client.get("/_sim/")).text()
    found = re.search(r'<script type="application/json" id="config">(.*?)</script>', html, re.S)
    assert found is not None
    return dict(json.loads(found.group(1)))


async def merchant_key(client: TestClient, token: str) -> str:
    state = await (await client.get("/_sim/dashboard/state", params={"token": token})).json()
    return str(state["merchant"])


async def log(client: TestClient, **params: str) -> list[dict[str, Any]]:
    resp = await client.get("/_sim/dashboard/requests", params=params)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    return list((await resp.json())["requests"])


# -- the page's catalogue -------------------------------------------------------------------


async def test_the_page_offers_every_face_with_the_vendors_the_catalogue_gives_it(
    client: TestClient,
) -> None:
    config = await page_config(client)
    assert [f["name"] for f in config["faces"]] == [f.name for f in FACES]
    for face in config["faces"]:
        catalogue = accepted_by(face["name"])
        assert [v["code"] for v in face["vendors"]] == list(catalogue)
        for v in face["vendors"]:
            vendor = catalogue[v["code"]]
            assert (v["name"], v["colour"], v["delayed_capture"]) == (
                vendor.name, vendor.colour, vendor.delayed_capture)
    assert config["default_token"] == DEFAULT_TOKEN
    assert "declines" in config["scenarios"]


# -- the request log ------------------------------------------------------------------------


async def test_request_log_filters_by_merchant_key_and_transaction(client: TestClient) -> None:
    mine = await create(client, reference="mine-1")
    await client.post("/payment/inquire", data={"transaction_id": mine}, headers=AUTH)
    theirs = await create(client, token=OTHER, reference="theirs-1")
    key, other_key = await merchant_key(client, TOKEN), await merchant_key(client, OTHER)

    everything = await log(client)
    assert [e["transaction_id"] for e in everything] == [theirs, mine, mine]  # newest first
    assert [e["merchant"] for e in everything] == [other_key, key, key]
    assert [e["path"] for e in await log(client, merchant=key)] == [
        "/payment/inquire", "/payment/pay_qr"]
    assert [e["transaction_id"] for e in await log(client, merchant=other_key)] == [theirs]
    assert [e["path"] for e in await log(client, transaction_id=mine)] == [
        "/payment/inquire", "/payment/pay_qr"]
    assert await log(client, merchant=other_key, transaction_id=mine) == []
    assert len(await log(client, limit="1")) == 1

    # Request and response bodies, as the journal keeps them.
    created = (await log(client, merchant=other_key))[0]
    assert created["params"]["reference"] == "theirs-1"
    assert theirs in created["response"]
    assert created["token"] != OTHER and OTHER not in json.dumps(created)


async def test_request_log_redacts_secrets_in_requests_and_answers(client: TestClient) -> None:
    key = "sk-dashboard-private-key-0123456789"
    resp = await client.post("/v1/access-tokens", json={"token_type": "server"},
                             headers=auth(key))
    access = (await resp.json())["data"]["access_token"]
    await client.post("/payment/inquire", data={"transaction_id": "x", "token": "leaked"},
                      headers=AUTH)
    text = json.dumps(await log(client))
    assert access not in text and key not in text and "leaked" not in text
    assert "[redacted]" in text


async def test_request_log_refuses_an_unknown_merchant_or_a_bad_limit(
    client: TestClient,
) -> None:
    resp = await client.get("/_sim/dashboard/requests", params={"merchant": "0123456789ab"})
    assert resp.status == 404
    assert await resp.json() == {"result": "fail", "code": 4100, "message": "Bad request: no "
                                 "merchant with that key (reset already, or never used)"}
    resp = await client.get("/_sim/dashboard/requests", params={"limit": "many"})
    assert resp.status == 400


async def test_request_log_says_when_the_journal_is_off(
    aiohttp_client: Callable[..., Any],
) -> None:
    sim = Simulator(Config(frozen_clock=True, start_time=START, journal_size=0))
    c: TestClient = await aiohttp_client(create_app(sim))
    await create(c)
    body = await (await c.get("/_sim/dashboard/requests")).json()
    assert body == {"requests": [], "enabled": False}


# -- resetting one merchant by key ----------------------------------------------------------


async def test_reset_one_merchant_by_key_leaves_the_others(
    client: TestClient, sim: Simulator
) -> None:
    await create_paid(client, reference="mine-1")
    theirs = await create(client, token=OTHER, reference="theirs-1")
    key = await merchant_key(client, TOKEN)
    resp = await client.post("/_sim/dashboard/reset", data={"merchant": key})
    assert resp.status == 200
    assert await resp.json() == {"reset": True, "scope": "merchant", "merchant": key}
    assert list(sim.ledger.by_id) == [theirs]
    assert TOKEN not in sim.ledger.merchants
    # The key now names nobody.
    again = await client.post("/_sim/dashboard/reset", data={"merchant": key})
    assert again.status == 404
    assert list(sim.ledger.by_id) == [theirs]


async def test_reset_by_key_needs_a_key(client: TestClient, sim: Simulator) -> None:
    txn = await create(client)
    assert (await client.post("/_sim/dashboard/reset")).status == 400
    assert (await client.post("/_sim/dashboard/reset", data={"merchant": ""})).status == 400
    assert list(sim.ledger.by_id) == [txn]  # a missing key never widens to everyone


# -- live: the request log and the scenarios tab follow the event stream -------------------


async def test_each_merchant_call_is_announced_with_its_merchant_key(
    client: TestClient, sim: Simulator
) -> None:
    stream = await open_stream(client)
    txn = await create(client, token=OTHER, reference="live-1")
    event = await next_event(stream, "request")
    assert event == {"face": "online", "transaction_id": txn,
                     "merchant": client.app[HUB].key(OTHER)}
    await client.post("/payment/inquire", data={"transaction_id": txn}, headers=auth(OTHER))
    assert (await next_event(stream, "request"))["transaction_id"] == txn
    anonymous = await client.post("/payment/inquire", data={"transaction_id": txn})
    assert anonymous.status == 401
    assert (await next_event(stream, "request"))["merchant"] is None
    stream.close()


async def test_scenario_loads_and_clears_are_announced(client: TestClient) -> None:
    stream = await open_stream(client)
    assert (await client.post("/_sim/scenarios", data={"name": "declines"})).status == 200
    assert await next_event(stream, "scenarios") == {"merchant": None}
    resp = await client.post("/_sim/scenarios", data={"name": "declines", "token": TOKEN})
    assert resp.status == 200
    assert await next_event(stream, "scenarios") == {"merchant": client.app[HUB].key(TOKEN)}
    assert (await client.delete("/_sim/scenarios")).status == 200
    assert await next_event(stream, "scenarios") == {"merchant": None}
    stream.close()


async def test_merchant_calls_are_followed_only_while_a_page_is_open(
    client: TestClient, sim: Simulator
) -> None:
    """Without an open dashboard no merchant call pays for a MerchantCalled event."""
    hub = client.app[HUB]
    hub.heartbeat = 0.05  # a closed page is noticed at the next write
    assert sim.events.handlers(MerchantCalled) == ()
    stream = await open_stream(client)
    assert sim.events.handlers(MerchantCalled) == (hub.on_request,)
    second = await open_stream(client)
    assert sim.events.handlers(MerchantCalled) == (hub.on_request,)  # once, not per page
    stream.close()
    second.close()
    for _ in range(200):
        if not hub.clients:
            break
        await asyncio.sleep(0.01)
    assert not hub.clients
    assert sim.events.handlers(MerchantCalled) == ()
    await create(client)  # and a call made now is simply journalled
    assert len(await log(client)) == 1


# -- behind an admin token -----------------------------------------------------------------


async def test_the_new_calls_are_locked_with_the_rest_of_sim(
    aiohttp_client: Callable[..., Any],
) -> None:
    sim = Simulator(Config(frozen_clock=True, start_time=START, admin_token="s3cret-admin"))
    c: TestClient = await aiohttp_client(create_app(sim))
    await create(c)  # the merchant API stays open
    assert (await c.get("/_sim/dashboard/requests")).status == 401
    assert (await c.post("/_sim/dashboard/reset", data={"merchant": "x"})).status == 401
    assert len(sim.ledger.by_id) == 1
    assert (await c.get("/_sim/", params={"admin_token": "s3cret-admin"})).status == 200
    # The cookie that set lets the page's own calls in.
    assert len(await log(c)) == 1
    key = await merchant_key(c, TOKEN)
    assert (await c.post("/_sim/dashboard/reset", data={"merchant": key})).status == 200
    assert sim.ledger.by_id == {}
