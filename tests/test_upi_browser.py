"""A UPI v1 checkout end to end, with the consumer in a real headless Chromium:
access token → charge → landing page paid → signed JSON IPN → inquiry → refunds → cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from citcon_sim.domain.ledger import Status

from .browser_support import TIMEOUT_MS, watch
from .upi_support import KEY, JsonReceiver, bearer, charge_body, independent_sign

pytestmark = pytest.mark.browser

SUCCESS_PAGE = ("<!doctype html><meta charset='utf-8'><link rel='icon' href='data:,'>"
                "<title>Thanks</title><h1 id='thanks'>Order confirmed</h1>")


@pytest.fixture
async def merchant(aiohttp_server: Callable[..., Any]) -> AsyncIterator[JsonReceiver]:
    found = JsonReceiver()
    server: TestServer = await aiohttp_server(found.app(), host="127.0.0.1")
    found.bound(str(server.make_url("")))
    found.answer(body=SUCCESS_PAGE, content_type="text/html")
    yield found
    found.release()


async def call(session: ClientSession, method: str, path: str, token: str | None,
               body: Any = None) -> tuple[int, dict[str, Any]]:
    resp = await session.request(method, path, json=body,
                                 headers=bearer(token) if token else {})
    return resp.status, await resp.json()


async def test_upi_checkout_in_chromium(browser, simulator, sim, merchant):
    success_url = merchant.url_for("/checkout/success")
    async with ClientSession(str(simulator.make_url(""))) as api:
        status, answer = await call(api, "POST", "/v1/access-tokens", KEY,
                                    {"token_type": "server"})
        assert status == 200
        token = answer["data"]["access_token"]
        body = charge_body(reference="WC-1001", amount=4200, clients=["mobile_browser",
                                                                      "desktop"],
                           ipn=merchant.url, success=success_url)
        status, answer = await call(api, "POST", "/v1/charges", token, body)
        assert status == 200, answer
        made = answer["data"]
        # shopeo redirects to the last redirect entry (§2.2).
        landing = [e["content"] for e in made["payment"]["client"]
                   if e["format"] == "redirect"][-1]
        assert landing.startswith(str(simulator.make_url("/v1/landing/")))

        context = await browser.new_context(viewport={"width": 1100, "height": 760})
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        problems = watch(page, (str(simulator.make_url("")), merchant.base_url))
        await page.goto(landing)
        assert await page.locator("#reference").inner_text() == "WC-1001"
        await page.click("#pay")
        await page.wait_for_url(success_url)
        assert await page.locator("#thanks").inner_text() == "Order confirmed"
        await context.close()
        assert problems == []

        await sim.ipn.drain()
        [ipn] = merchant.bodies
        assert ipn["sign"] == independent_sign(ipn, KEY)
        assert (ipn["id"], ipn["reference"], ipn["status"]) == (made["id"], "WC-1001",
                                                                "succeeded")

        status, answer = await call(api, "GET", f"/v1/transactions/{made['id']}", token)
        assert status == 200 and answer["data"]["status"] == "succeeded"
        for n, amount in enumerate((1000, 2000), 1):
            status, answer = await call(api, "POST", "/v1/refunds", token, {
                "id": made["id"], "reference": f"WC-1001-R{n}", "amount": amount})
            assert status == 200 and answer["data"]["status"] == "succeeded", answer
        status, answer = await call(api, "POST", "/v1/refunds", token, {
            "id": made["id"], "reference": "WC-1001-R3", "amount": 1201})
        assert status == 406 and answer["data"]["code"] == "4202"
        status, answer = await call(api, "GET", f"/v1/transactions/{made['id']}", token)
        assert answer["data"]["amount_refunded"] == 3000

        status, answer = await call(api, "POST", "/v1/charges", token,
                                    charge_body(reference="WC-1002"))
        other = answer["data"]["id"]
        status, answer = await call(api, "POST", "/v1/cancels", token,
                                    {"id": other, "reference": "WC-1002-C"})
        assert status == 200 and answer["data"]["status"] == "canceled"
        status, answer = await call(api, "GET", f"/v1/transactions/{other}", token)
        assert answer["data"]["status"] == "canceled"
    assert sim.ledger.by_id[made["id"]].status is Status.SUCCESS
    assert sim.take_errors() == []
