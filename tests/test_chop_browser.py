"""CHOP end to end in a real headless Chromium: /chop/chop → the hosted page, paid by
clicking → the merchant's success page and a signed IPN (form, or JSON for a merchant
that asks for it), verified by an independent MD5 → refund → inquire → cancel →
duplicate cancellation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from citcon_sim import Simulator, create_app
from citcon_sim.domain.ledger import Status

from .browser_support import ARTIFACTS, TIMEOUT_MS, watch
from .helpers import AUTH, TOKEN, frozen_config
from .test_chop import BodyReceiver, merchants_file

pytestmark = pytest.mark.browser

MERCHANT_PAGE = ("<!doctype html><meta charset='utf-8'><link rel='icon' href='data:,'>"
                 "<title>Order received</title><h1 id='thanks'>Order received</h1>")


def plugin_verifies(body: dict[str, str], token: str) -> bool:
    """The WooCommerce plugin's check, written from its description (§3.1)."""
    data = {"fields": body["fields"]}
    data.update({k: body[k] for k in body["fields"].split(",") if k in body})
    text = "".join(f"{k}={data[k]}&" for k in sorted(data)) + f"token={token}"
    return hashlib.md5(text.encode()).hexdigest() == body["sign"]


@pytest.mark.parametrize("encoding", ["form", "json"])
async def test_chop_checkout_end_to_end_in_chromium(
    browser: Any, aiohttp_server: Any, tmp_path: Path, encoding: str
) -> None:
    sim = Simulator(frozen_config(merchants_file=merchants_file(
        tmp_path, chop_ipn_encoding=encoding)))
    simulator: TestServer = await aiohttp_server(create_app(sim), host="127.0.0.1")
    sim.bound_url = str(simulator.make_url("")).rstrip("/")
    merchant = BodyReceiver()
    merchant.answer(body=MERCHANT_PAGE, content_type="text/html")
    merchant_server: TestServer = await aiohttp_server(merchant.app(), host="127.0.0.1")
    merchant.bound(str(merchant_server.make_url("")))
    success = merchant.url_for("/checkout/order-received/57/")

    async with ClientSession(str(simulator.make_url(""))) as shop:
        async def call(path: str, **data: str) -> dict[str, Any]:
            resp = await shop.post(path, data=data, headers=AUTH)
            assert resp.status == 200, await resp.text()
            return await resp.json()  # type: ignore[no-any-return]

        answer = await call("/chop/chop", payment_method="wechatpay", amount="2599",
                            currency="USD", reference="20250101123000-57",
                            allow_duplicates="yes", ipn_url=merchant.url,
                            callback_url_success=success, callback_url_fail=success,
                            mobile_result_url=success, source="woocommerce")
        assert answer["result"] == "success"
        url, txn_id = answer["url"], answer["transaction_id"]
        assert url.startswith(sim.bound_url) and url.split("=")[1] == txn_id

        context = await browser.new_context(viewport={"width": 1100, "height": 760})
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        problems = watch(page, (sim.bound_url, merchant.base_url))
        await page.goto(url)
        assert await page.locator("#reference").inner_text() == "20250101123000-57"
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=ARTIFACTS / f"chop-wallet-{encoding}.png")
        await page.click("#pay")
        await page.wait_for_url(success)
        assert await page.locator("#thanks").inner_text() == "Order received"
        await context.close()
        assert problems == []

        await merchant.wait_for(1)
        (ctype, raw), = merchant.bodies
        if encoding == "json":
            assert ctype == "application/json"
            body = json.loads(raw)
        else:
            assert ctype == "application/x-www-form-urlencoded"
            body = merchant.posts[-1]
        assert body["notify_status"] == "success" and body["id"] == txn_id
        assert plugin_verifies(body, TOKEN)
        assert not plugin_verifies({**body, "notify_status": "fail"}, TOKEN)

        inquired = await call("/chop/inquire", q=txn_id, inquire_method="real")
        assert inquired["notify_result"] == "success"
        refund = await call("/chop/refund", transaction_id=body["id"], amount="599",
                            currency="USD", reason="No reason was given.")
        assert refund["status"].lower() == "success" and refund["refunded"] is True
        assert (await call("/chop/inquire", transaction_id=txn_id))["refunded_amount"] == 599
        cancelled = await call("/chop/cancel", transaction_id=txn_id)
        assert cancelled["status"] == "Order cancelled"
        again = await call("/chop/cancel", transaction_reference="20250101123000-57")
        assert again["status"] == "Duplicate cancellation"
    txn = sim.ledger.by_id[txn_id]
    assert txn.status is Status.CANCELLED and txn.refunded_amount == 2599
