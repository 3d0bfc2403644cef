"""The wallet page in a real headless Chromium: pay, and land on the merchant's page.

Uses the system's Chromium (Debian's ``chromium`` package) driven by Playwright; it never
downloads a browser of its own (no ``playwright install``). Without a Chromium binary or
the playwright package the tests skip, so a developer machine without them still passes.
Screenshots go to ``artifacts/`` for a human to look at.
"""

from __future__ import annotations

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from citcon_sim.domain.ledger import Status

from .browser_support import ARTIFACTS, TIMEOUT_MS, watch
from .helpers import AUTH, IpnReceiver

pytestmark = pytest.mark.browser

IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
SUCCESS_PAGE = (
    # The data: icon spares a /favicon.ico request in the console check.
    "<!doctype html><meta charset='utf-8'><link rel='icon' href='data:,'>"
    "<title>Order confirmed</title>"
    "<body style='font-family:sans-serif;margin:40px'>"
    "<h1 id='thanks'>Thank you! Order confirmed.</h1>"
    "<p>This is the merchant's own page (served by the test).</p></body>"
)


@pytest.fixture
def merchant(ipn_receiver: IpnReceiver) -> IpnReceiver:
    """A tiny merchant site: the confirmation page the wallet sends the consumer back to."""
    ipn_receiver.answer(body=SUCCESS_PAGE, content_type="text/html")
    return ipn_receiver


async def create_payment(simulator: TestServer, **fields: str) -> str:
    """Create a payment through the merchant API; returns the wallet URL it answers."""
    data = {"vendor": "alipay", "amount": "2599", "currency": "USD",
            "reference": "order-1001", "allow_duplicates": "yes", **fields}
    async with ClientSession() as session:
        resp = await session.post(simulator.make_url("/payment/pay"), data=data, headers=AUTH)
        url = await resp.text()
    assert resp.status == 200, url
    assert url.startswith(str(simulator.make_url("/u_landing")))
    return url


async def test_pay_in_chromium_lands_on_merchant_success(browser, simulator, merchant, sim):
    success_url = merchant.url_for("/checkout/success")
    goods = ('{"data":[{"name":"Battery Power Pack","quantity":1,"unit_amount":1999,'
             '"total_amount":1999},{"name":"USB-C cable","quantity":2,"unit_amount":300,'
             '"total_amount":600}]}')
    wallet_url = await create_payment(
        simulator, callback_url_success=success_url, note="Gift wrap, please", goods=goods,
    )
    txn_id = wallet_url.split("=")[1]
    ARTIFACTS.mkdir(exist_ok=True)

    context = await browser.new_context(viewport={"width": 1100, "height": 760})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems = watch(page, (str(simulator.make_url("")), merchant.base_url))

    await page.goto(wallet_url)
    assert await page.title() == "Alipay checkout · citcon-sim"
    assert await page.locator("#amount").inner_text() == "CN¥187.13"
    assert await page.locator("#reference").inner_text() == "order-1001"
    # The QR image really loaded (naturalWidth is 0 for a broken image).
    assert await page.locator("#qr").evaluate("img => img.naturalWidth") > 0
    await page.screenshot(path=ARTIFACTS / "wallet.png", full_page=True)

    await page.click("#pay")
    await page.wait_for_url(success_url)
    assert await page.locator("#thanks").inner_text() == "Thank you! Order confirmed."
    assert [(r.method, r.path) for r in merchant.requests] == [("GET", "/checkout/success")]
    await page.screenshot(path=ARTIFACTS / "wallet-paid.png")
    assert sim.ledger.by_id[txn_id].status is Status.SUCCESS

    # Back to the wallet link: it shows the final state and cannot pay again.
    await page.goto(wallet_url)
    assert await page.locator("#state").inner_text() == "Payment successful"
    assert await page.locator("#pay").count() == 0
    await context.close()
    assert problems == []


async def test_mobile_authorise_without_callback_shows_result(browser, simulator, sim):
    wallet_url = await create_payment(
        simulator, vendor="klarna", amount="4000", auto_capture="false",
        reference="order-1002",
    )
    txn_id = wallet_url.split("=")[1]
    ARTIFACTS.mkdir(exist_ok=True)

    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, user_agent=IPHONE_UA, is_mobile=True,
        device_scale_factor=2,
    )
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems = watch(page, (str(simulator.make_url("")),))

    await page.goto(wallet_url)
    assert await page.locator("body.view-mobile").count() == 1
    assert await page.locator("#pay").inner_text() == "Authorise $40.00"
    await page.screenshot(path=ARTIFACTS / "wallet-mobile.png", full_page=True)

    await page.click("#pay")
    await page.wait_for_url(f"**/u_landing?q={txn_id}&view=mobile")
    assert await page.locator("#state").inner_text() == "Payment authorised"
    await page.screenshot(path=ARTIFACTS / "wallet-result.png", full_page=True)
    assert sim.ledger.by_id[txn_id].status is Status.AUTHORIZED
    await context.close()
    assert problems == []


async def test_desktop_page_follows_a_payment_made_on_the_phone(
    browser, simulator, merchant, sim
):
    """The documented desktop QR flow: the phone pays, the PC browser moves on by itself."""
    success_url = merchant.url_for("/checkout/success")
    paid_url = await create_payment(simulator, callback_url_success=success_url)
    expiring_url = await create_payment(simulator, reference="order-1003", timeout="600")
    context = await browser.new_context(viewport={"width": 1100, "height": 760})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems = watch(page, (str(simulator.make_url("")), merchant.base_url))

    await page.goto(paid_url)
    pay = simulator.make_url(f"/_sim/transactions/{paid_url.split('=')[1]}/pay")
    async with ClientSession() as phone:  # the wallet app, confirming on the phone
        assert (await phone.post(pay)).status == 200
    await page.wait_for_url(success_url)

    # Virtual time passes the link's timeout: the open page shows the expiry.
    expiring_id = expiring_url.split("=")[1]
    await page.goto(expiring_url)
    assert await page.locator("#countdown").inner_text() == "10:00"
    sim.advance(600)
    await page.wait_for_url(f"**/u_landing?q={expiring_id}&view=desktop")
    assert await page.locator("#state").inner_text() == "Payment expired"
    await context.close()
    assert problems == []
