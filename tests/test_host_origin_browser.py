"""The Host and Origin rules in a real browser: a page on another origin cannot drive an
open ``/_sim/``, a rebound name cannot read it, and the dashboard's own calls still work
(same-origin: Chromium sends the page's own ``Origin``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from .browser_support import CHROMIUM_ARGS, TIMEOUT_MS, chromium_path
from .helpers import AUTH, PAYMENT

pytestmark = pytest.mark.browser  # drives Chromium
REBOUND = "rebind.test"  # a name the browser resolves to 127.0.0.1, as a rebinding would


@pytest.fixture
async def rebinding_browser() -> AsyncIterator[Any]:
    async_api = pytest.importorskip("playwright.async_api", reason="playwright not installed")
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium binary found (apt-get install chromium)")
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1"]
    async with async_api.async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=path, args=args)
        try:
            yield launched
        finally:
            await launched.close()


async def create_payment(client_session: Any, base: str) -> str:
    async with client_session.post(f"{base}/payment/pay_qr", data=PAYMENT,
                                   headers=AUTH) as resp:
        text = await resp.text()
        assert resp.status == 200, text
        return text.split("=")[1].split("&")[0]


async def test_a_cross_site_form_cannot_pay(rebinding_browser, simulator, sim,
                                            aiohttp_server):
    from aiohttp import ClientSession

    base = str(simulator.make_url("")).rstrip("/")
    async with ClientSession() as session:
        txn_id = await create_payment(session, base)

    async def attacker(request: web.Request) -> web.Response:
        # An ordinary page elsewhere that posts to the simulator as soon as it loads.
        return web.Response(content_type="text/html", text=f"""<!doctype html>
<form id=f method=post action="{base}/_sim/transactions/{txn_id}/pay"></form>
<script>document.getElementById('f').submit()</script>""")

    app = web.Application()
    app.router.add_get("/", attacker)
    evil = await aiohttp_server(app, host="127.0.0.1")
    page = await rebinding_browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    async with page.expect_response(lambda r: "/_sim/transactions/" in r.url) as answer:
        await page.goto(str(evil.make_url("/")))
    resp = await answer.value
    assert resp.status == 403
    assert json.loads(await resp.text())["code"] == 4100
    assert sim.ledger.get(txn_id).status.value == "pending"


async def test_a_rebound_name_can_neither_read_nor_change(rebinding_browser, simulator, sim):
    from aiohttp import ClientSession

    base = str(simulator.make_url("")).rstrip("/")
    async with ClientSession() as session:
        await create_payment(session, base)
    page = await rebinding_browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    rebound = base.replace("127.0.0.1", REBOUND)
    resp = await page.goto(f"{rebound}/_sim/state")
    assert resp is not None and resp.status == 403
    assert "test-token" not in await resp.text()
    # The page is now same-origin with the "simulator": its own requests still fail.
    status = await page.evaluate(
        "fetch('/_sim/reset', {method: 'POST'}).then((r) => r.status)")
    assert status == 403
    assert len(sim.ledger.by_id) == 1


async def test_the_dashboard_still_acts_same_origin(rebinding_browser, simulator, sim):
    page = await rebinding_browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(str(simulator.make_url("/_sim/")))
    status = await page.evaluate(
        "fetch('/_sim/clock/advance', {method: 'POST', "
        "body: new URLSearchParams({seconds: '60'})}).then((r) => r.status)")
    assert status == 200
    assert sim.clock.now().minute == 1
