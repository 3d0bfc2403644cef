"""Every vendor's consumer journey in headless Chromium, on a computer and on a phone.

For each journey kind (QR and app switch, sign-in, card entry, bank choice, redirect) one
full journey per outcome (pay, fail, cancel) reaches the merchant's page for it; every
vendor of the catalogue renders its journey and pays on desktop (1280 px) and on a phone
(375 px); every step reads at 320 px without sideways scrolling; the card page checks the
Luhn digit before sending. Screenshots go to ``artifacts/journeys/``. One browser per test
function, several journeys per test: a browser start costs more than a journey.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from citcon_sim import Simulator
from citcon_sim.domain.ledger import Status
from citcon_sim.domain.vendors import VENDORS, Journey, Vendor
from citcon_sim.web.consumers import consumer_for
from citcon_sim.web.pages import DECLINED_CARD, WRONG_PASSWORD

from .browser_support import ARTIFACTS, TIMEOUT_MS, watch
from .helpers import AUTH, IpnReceiver
from .test_browser import IPHONE_UA

pytestmark = pytest.mark.browser

SHOTS = ARTIFACTS / "journeys"
MERCHANT_PAGE = (
    "<!doctype html><meta charset='utf-8'><link rel='icon' href='data:,'>"
    "<title>Merchant</title><h1 id='merchant-page'>Back at the shop</h1>"
)
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 375, "height": 740}, "user_agent": IPHONE_UA,
         "is_mobile": True, "has_touch": True}
NARROW = {**PHONE, "viewport": {"width": 320, "height": 640}}
SIZES = {"desktop": DESKTOP, "phone": PHONE, "narrow": NARROW}
PAID = (Status.SUCCESS, Status.AUTHORIZED)
FINAL = {"pay": PAID, "fail": (Status.FAILED,), "cancel": (Status.CANCELLED,)}
# One vendor per journey kind for the outcome runs (with an app switch where it has one).
KINDS = {Journey.QR_APP: "kakaopay", Journey.LOGIN: "naverpay", Journey.CARD: "upop",
         Journey.BANK: "banktransfer", Journey.REDIRECT: "klarna"}


@pytest.fixture
def merchant(ipn_receiver: IpnReceiver) -> IpnReceiver:
    """The merchant's site: success, fail and cancel pages (any path answers the page)."""
    ipn_receiver.answer(body=MERCHANT_PAGE, content_type="text/html")
    return ipn_receiver


async def create(simulator: TestServer, merchant: IpnReceiver, vendor: str, n: int) -> str:
    """A payment with the three callback URLs, through the Online API (CHOP for the
    methods only CHOP and UPI accept); its wallet URL."""
    data = {"amount": "2599", "currency": "USD", "allow_duplicates": "yes",
            "reference": f"order-{vendor}-{n}",
            "callback_url_success": merchant.url_for("/s"),
            "callback_url_fail": merchant.url_for("/f"),
            "callback_url_cancel": merchant.url_for("/c")}
    online = "online" in VENDORS[vendor].faces
    async with ClientSession() as session:
        if online:
            resp = await session.post(simulator.make_url("/payment/pay"), headers=AUTH,
                                      data={**data, "vendor": vendor})
            url = await resp.text()
        else:
            resp = await session.post(simulator.make_url("/chop/chop"), headers=AUTH,
                                      data={**data, "payment_method": vendor})
            url = (await resp.json())["url"]
    assert resp.status == 200, url
    return url


async def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


async def fits(page: Any) -> None:
    """Nothing wider than the screen: no sideways scrolling."""
    width = await page.evaluate("window.innerWidth")
    assert await page.evaluate("document.documentElement.scrollWidth") <= width


async def journey(page: Any, vendor: Vendor, view: str, outcome: str,
                  shoot: str | None = None, steps: tuple[str, ...] | None = None) -> None:
    """Walk ``vendor``'s journey from its first step to ``outcome`` as a consumer would."""

    async def step(name: str) -> None:
        await page.wait_for_selector(f'#journey[data-step="{name}"]')
        await fits(page)
        if shoot and (steps is None or name in steps):
            await shot(page, f"{shoot}-{name}")

    await step("start")
    kind = vendor.journey
    if kind is Journey.QR_APP and view == "desktop":
        assert await page.locator("#qr").evaluate("img => img.naturalWidth") > 0
        await page.click(f"#{outcome}")  # what the app answers after the scan
    elif kind is Journey.QR_APP:
        await page.click("#open-app")
        await step("app")
        await page.click(f"#{outcome}")
    elif kind is Journey.LOGIN:
        if outcome == "cancel":
            await page.click("#login-cancel")
            return
        await page.fill("#user", "test-consumer")
        await page.fill("#password", WRONG_PASSWORD if outcome == "fail" else "secret")
        await page.click("#login-submit")
        if outcome == "fail":
            return  # the wallet refuses a wrong password: the payment fails
        await step("confirm")
        consumer = consumer_for(page.url.split("q=")[1].split("&")[0], vendor)
        assert await page.inner_text("#consumer-name") == consumer.name
        await page.click("#pay")
    elif kind is Journey.CARD:
        if outcome == "cancel":
            await page.click("#card-cancel")
            return
        await page.fill("#card_number", DECLINED_CARD if outcome == "fail"
                        else "4242424242424242")
        assert (await page.input_value("#card_number")).count(" ") == 3  # grouped by 4
        await page.fill("#expiry", "12/30")
        await page.fill("#cvc", "123")
        await page.click("#card-submit")
    elif kind is Journey.BANK:
        if outcome == "cancel":
            await page.click("#bank-cancel")
            return
        await page.check("#bank-kakaobank")
        await page.click("#bank-submit")
        await step("bank")
        assert await page.inner_text("#bank-name") == "KakaoBank"
        await page.click(f"#{outcome}")
    else:
        assert await page.locator("#consumer-name").count() == 1
        await page.click(f"#{outcome}")


class Tabs:
    """One page per screen size, reused journey after journey (a browser context and a
    page each cost more than a journey); every page error or stray request is kept."""

    def __init__(self, browser: Any, simulator: TestServer, merchant: IpnReceiver) -> None:
        self.browser, self.allowed = browser, (str(simulator.make_url("")), merchant.base_url)
        self.pages: dict[str, Any] = {}
        self.contexts: list[Any] = []
        self.watched: list[list[str]] = []

    @property
    def problems(self) -> list[str]:
        return [problem for watched in self.watched for problem in watched]

    async def page(self, size: str) -> Any:
        if size not in self.pages:
            context = await self.browser.new_context(**SIZES[size])
            self.contexts.append(context)
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            self.watched.append(watch(page, self.allowed))
            self.pages[size] = page
        return self.pages[size]

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


async def run(tabs: Tabs, simulator: TestServer, sim: Simulator, merchant: IpnReceiver,
              vendor: str, size: str, outcome: str, n: int, shoot: str | None = None,
              revisit: bool = True, steps: tuple[str, ...] | None = None) -> None:
    view = "desktop" if size == "desktop" else "mobile"
    page = await tabs.page(size)
    url = await create(simulator, merchant, vendor, n)
    txn_id = url.split("=")[1]
    await page.goto(url)
    assert await page.locator(f"body.view-{view}").count() == 1
    await journey(page, VENDORS[vendor], view, outcome, shoot, steps)
    await page.wait_for_url(merchant.url_for({"pay": "/s", "fail": "/f", "cancel": "/c"}
                                             [outcome]))
    assert await page.inner_text("#merchant-page") == "Back at the shop"
    assert sim.ledger.by_id[txn_id].status in FINAL[outcome], (vendor, view, outcome)
    if revisit:  # back to the wallet link: the final state, with nothing left to click
        await page.goto(url)
        await page.wait_for_selector("#state")
        await fits(page)
        if shoot:
            await shot(page, f"{shoot}-result")
        assert await page.locator("#pay").count() == 0
    assert tabs.problems == [], (vendor, view, outcome)


async def test_each_journey_kind_reaches_every_outcome(browser, simulator, sim, merchant):
    """Per kind, one full journey per outcome, on a computer and on a phone."""
    started, tabs, n = time.monotonic(), Tabs(browser, simulator, merchant), 0
    for kind, vendor in KINDS.items():
        for size in ("desktop", "phone"):
            for outcome in ("pay", "fail", "cancel"):
                n += 1
                shoot = f"{kind.value}-{vendor}-{size}" if outcome == "pay" else None
                await run(tabs, simulator, sim, merchant, vendor, size, outcome, n, shoot)
    await tabs.close()
    print(f"{n} journeys in {time.monotonic() - started:.1f} s")


async def test_every_vendor_pays_on_desktop_and_phone(browser, simulator, sim, merchant):
    started, tabs, n = time.monotonic(), Tabs(browser, simulator, merchant), 0
    for code in sorted(VENDORS):
        for size in ("desktop", "phone"):
            n += 1
            await run(tabs, simulator, sim, merchant, code, size, "pay", n,
                      shoot=f"vendor-{code}-{size}", revisit=False, steps=("start",))
    await tabs.close()
    print(f"{n} journeys in {time.monotonic() - started:.1f} s")


async def test_every_step_reads_at_320_px(browser, simulator, sim, merchant):
    """The narrowest phones: each kind's journey to the end, and each step screenshotted."""
    tabs = Tabs(browser, simulator, merchant)
    for n, (kind, vendor) in enumerate(KINDS.items()):
        await run(tabs, simulator, sim, merchant, vendor, "narrow", "pay", 100 + n,
                  f"{kind.value}-{vendor}-320")
    # The login journey's app switch on a phone, to the app's screen.
    page = await tabs.page("narrow")
    await page.goto(await create(simulator, merchant, "paypay", 200))
    await page.click("#open-app")
    await page.wait_for_selector('#journey[data-step="app"]')
    await fits(page)
    await shot(page, "login-paypay-320-app")
    await tabs.close()
    assert tabs.problems == []


async def test_card_page_checks_the_number_before_sending(browser, simulator, sim, merchant):
    context = await browser.new_context(**DESKTOP)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems = watch(page, (str(simulator.make_url("")), merchant.base_url))
    url = await create(simulator, merchant, "card", 1)
    txn_id = url.split("=")[1]
    await page.goto(url)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if r.method == "POST" else None)
    await page.fill("#card_number", "4242 4242 4242 4241")
    await page.fill("#expiry", "1/30")
    await page.fill("#cvc", "12")
    await page.click("#card-submit")
    assert await page.inner_text("#card_number-error") == (
        "This card number is not valid: check the digits.")
    assert await page.inner_text("#cvc-error") == "Enter the 3 or 4 digit security code."
    assert not await page.locator("#expiry-error").is_visible()
    assert await page.get_attribute("#card_number", "aria-invalid") == "true"
    assert await page.is_enabled("#card-submit")  # nothing was sent: try again
    await shot(page, "card-invalid-desktop")
    assert requests == [] and sim.ledger.by_id[txn_id].status is Status.PENDING

    await page.fill("#card_number", "4242424242424242")
    await page.fill("#cvc", "123")
    await page.click("#card-submit")
    await page.wait_for_url(merchant.url_for("/s"))
    assert sim.ledger.by_id[txn_id].status is Status.AUTHORIZED
    await context.close()
    assert problems == []
