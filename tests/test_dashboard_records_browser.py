"""What the newer features record, on the dashboard in headless Chromium (desktop 1280 and
phones 375/320): an IPN attempt a ``citcon-sim listen`` client made shows ``via`` the
listener and where it forwards; the IPN card shows the whole delivery summary; the
request log badges each call's scenario surprise and rule (and filters to the
surprises); a page whose event stream the server dropped says so, polls, and can go live
again. Screenshots go to ``artifacts/dashboard-records-*.png``.

The listener here is the real surface ``citcon-sim listen`` uses (``GET /_sim/listen``,
then ``POST /_sim/listen/{listener}/{delivery}``), driven by the test.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import ClientResponse, ClientSession
from aiohttp.test_utils import TestServer

from citcon_sim.web.dashboard import HUB

from .browser_support import ARTIFACTS, TIMEOUT_MS, watch
from .helpers import next_event

pytestmark = pytest.mark.browser

TOKEN = "shop-a-token-1234"
FORWARD = "http://localhost:8000/ipn"
NOWHERE = "http://127.0.0.1:9/ipn"  # the simulator cannot reach it: only the listener can
SIZES = {"desktop": (1280, 900), "phone": (375, 812), "phone320": (320, 700)}
SCENARIO = ("name: shaky-cdn\nrules:\n  - name: the CDN fails cdn-* orders\n"
            "    match: {reference: \"cdn-*\"}\n    api: {cdn_error: 502}\n")


async def merchant_call(server: TestServer, path: str, **fields: str) -> tuple[int, str]:
    async with ClientSession() as session:
        resp = await session.post(server.make_url(path), data=fields,
                                  headers={"Authorization": f"Bearer {TOKEN}"})
        return resp.status, await resp.text()


async def paid(server: TestServer, reference: str, ipn_url: str) -> str:
    status, text = await merchant_call(
        server, "/payment/pay_qr", vendor="alipay", amount="2599", currency="USD",
        reference=reference, ipn_url=ipn_url, response_format="json")
    assert status == 200, text
    txn = str(json.loads(text)["transaction_id"])
    async with ClientSession() as session:
        resp = await session.post(server.make_url(f"/_sim/transactions/{txn}/pay"))
        assert resp.status == 200, await resp.text()
    return txn


async def listener_delivers(server: TestServer, session: ClientSession, forward: str,
                            reference: str) -> tuple[ClientResponse, str, str]:
    """A listener (as ``citcon-sim listen --forward-to <forward>`` opens it) takes one
    paid transaction's IPN and reports HTTP 200: (its open stream, its id, the txn)."""
    resp = await session.get(server.make_url("/_sim/listen"), params={"forward_to": forward})
    assert resp.status == 200, await resp.text()
    event, hello = await next_event(resp, 10)
    assert event == "hello"
    listener = str(hello["listener"])
    txn = await paid(server, reference, NOWHERE)
    event, delivery = await next_event(resp, 10)
    assert event == "ipn" and delivery["transaction_id"] == txn
    report = await session.post(
        server.make_url(f"/_sim/listen/{listener}/{delivery['delivery']}"),
        data={"status": "200", "body": "ok", "latency_ms": "12"})
    assert report.status == 200, await report.text()
    return resp, listener, txn


async def open_page(browser: Any, server: TestServer, size: str, path: str = "/_sim/"
                    ) -> tuple[Any, Any, list[str]]:
    width, height = SIZES[size]
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems = watch(page, (str(server.make_url("")),))
    page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    await page.goto(str(server.make_url(path)))
    await page.wait_for_selector("#live[data-state=live]")
    return context, page, problems


async def fits(page: Any) -> None:
    widths = await page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths


async def shot(page: Any, name: str, size: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.wait_for_timeout(50)
    await page.screenshot(path=ARTIFACTS / f"dashboard-records-{name}-{size}.png",
                          full_page=True)


@pytest.mark.parametrize("size", ["desktop", "phone", "phone320"])
async def test_a_listener_attempt_says_via_and_the_ipn_card_shows_the_summary(
        browser, simulator, sim, size):
    async with ClientSession() as session:
        stream, listener, txn = await listener_delivers(simulator, session, FORWARD, "via-1")
        await sim.ipn.drain()
        (note,) = sim.ipn.for_transaction(txn)
        assert note.state == "delivered"
        context, page, problems = await open_page(browser, simulator, size, f"/_sim/#txn={txn}")
        await page.wait_for_selector(f'#d-id:text("{txn}")')

        # The attempt on the timeline names the listener and the URL it forwarded to.
        via = page.locator("#d-timeline li[data-ipn] .tl-via")
        assert await via.count() == 1
        assert await via.inner_text() == f"via listener {listener} → {FORWARD}"
        assert await via.is_visible()

        # The IPN card: every counter of the summary, and the set-up line.
        summary = sim.ipn.summary()
        stats = await page.eval_on_selector_all(
            "[data-stat]", "dds => dds.map(dd => [dd.dataset.stat, dd.textContent])")
        shown = dict(stats)
        for key in ("notifications", "delivered", "failed", "attempts", "retries_scheduled",
                    "queued", "in_flight", "queue_full"):
            assert shown[key] == str(summary[key]), key
        assert shown["delivered"] == "1" and shown["attempts"] == "1"
        setup = await page.inner_text("#ipn-setup")
        assert "1 listener (citcon-sim listen)" in setup
        assert f"{summary['workers']} workers, {summary['per_endpoint']} per endpoint" in setup
        assert f"backlog limit {summary['queue_size']}" in setup
        assert f"{summary['endpoints']} endpoints busy" in setup
        assert "timeout 10s" in setup and "retries after 15s, 1m, 5m, 15m, 1h, 3h, 6h" in setup
        # Readable on a phone: no counter's label is cut short.
        cut = await page.eval_on_selector_all(
            "#ipn-stats dt", "dts => dts.filter(dt => dt.scrollWidth > dt.clientWidth)"
            ".map(dt => dt.textContent)")
        assert cut == []
        await fits(page)
        await page.locator("#ipn-stats").scroll_into_view_if_needed()
        await shot(page, "via-summary", size)

        # The listener goes: the card says so when the counters next change.
        stream.close()
        await asyncio.sleep(0)
        await paid(simulator, "after-listener", NOWHERE)
        await page.wait_for_function(
            "() => document.getElementById('ipn-setup').dataset.listeners === '0'")
        assert "listener" not in await page.inner_text("#ipn-setup")
        await context.close()
    assert problems == []


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_the_request_log_badges_surprises_and_rules_and_filters_to_them(
        browser, simulator, sim, size):
    async with ClientSession() as session:
        resp = await session.post(simulator.make_url("/_sim/scenarios"),
                                  data={"scenario": SCENARIO})
        assert resp.status == 200, await resp.text()
    status, body = await merchant_call(simulator, "/payment/pay_qr", vendor="alipay",
                                       amount="1000", currency="USD", reference="cdn-1")
    assert status == 502 and "<h1>Error 502</h1>" in body
    status, _ = await merchant_call(simulator, "/payment/pay_qr", vendor="alipay",
                                    amount="1000", currency="USD", reference="fine-1")
    assert status == 200

    context, page, problems = await open_page(browser, simulator, size)
    await page.click("#tab-btn-requests")
    await page.wait_for_selector("#req-list li")
    assert await page.locator("#req-list li").count() == 2
    badge = page.locator("#req-list li .surprise")
    assert await badge.count() == 1
    assert await badge.inner_text() == "cdn_error" and await badge.is_visible()
    rule = page.locator("#req-list li .rule")
    assert await rule.inner_text() == "the CDN fails cdn-* orders"
    # The badges sit in the entry's one-line summary, with its status.
    surprised = page.locator("#req-list li[data-surprise]")
    assert await surprised.count() == 1
    assert "502" in await surprised.locator("summary").inner_text()
    await fits(page)
    await shot(page, "surprises", size)

    # Only the surprises: filtered in the page, and undone by "Clear filters".
    await page.check("#req-surprises")
    assert await page.locator("#req-list li").count() == 1
    assert await page.locator("#req-list li[data-surprise=cdn_error]").count() == 1
    await shot(page, "surprises-only", size)
    # A new call while filtered: fetched live, still filtered.
    await merchant_call(simulator, "/payment/pay_qr", vendor="alipay", amount="1000",
                        currency="USD", reference="cdn-2")
    await page.wait_for_function(
        "() => document.querySelectorAll('#req-list li[data-surprise]').length === 2")
    assert await page.locator("#req-list li").count() == 2
    await page.click("#req-clear")
    assert not await page.is_checked("#req-surprises")
    await page.wait_for_function("() => document.querySelectorAll('#req-list li').length === 3")
    await context.close()
    # The 502s were the test's own merchant calls, not the page's.
    assert problems == []


async def test_a_dropped_stream_says_it_polls_and_why(browser, simulator, sim):
    simulator.app[HUB].max_clients = 1  # as --max-event-streams 1
    first, page, problems = await open_page(browser, simulator, "desktop")
    assert await page.is_hidden("#stream-notice")
    second, other, _ = await open_page(browser, simulator, "phone")

    # The older page is told plainly, and keeps itself current by polling.
    await page.wait_for_selector("#stream-notice:not([hidden])")
    notice = await page.inner_text("#stream-notice-text")
    assert "Live updates stopped" in notice
    assert "more than 1 live dashboards are open" in notice
    assert "refreshes by polling (every 3 seconds" in notice
    assert await page.get_attribute("#live", "data-state") == "polling"
    assert "more than 1 live dashboards" in (await page.get_attribute("#live", "title") or "")
    txn = await paid(simulator, "while-polling", "")
    await page.wait_for_selector(f'#rows tr[data-id="{txn}"]', timeout=10_000)
    assert await page.get_attribute("#live", "data-state") == "polling"
    await shot(page, "dropped", "desktop")

    # "Go live again" takes a stream back (pushing the other page out, which says so).
    await page.click("#stream-reconnect")
    await page.wait_for_selector("#live[data-state=live]")
    assert await page.is_hidden("#stream-notice")
    await other.wait_for_selector("#stream-notice:not([hidden])")
    assert await other.get_attribute("#live", "data-state") == "polling"
    await fits(other)
    await shot(other, "dropped", "phone")
    await first.close()
    await second.close()
    assert problems == []


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_the_new_payment_form_names_the_vendors_journey(browser, simulator, sim, size):
    context, page, problems = await open_page(browser, simulator, size)
    await page.click("#open-create")
    await page.select_option("#c-face", "online")
    for vendor, words in (("alipay", "QR / wallet app"), ("naverpay", "wallet sign-in"),
                          ("card", "card page"), ("banktransfer", "bank choice"),
                          ("gcash", "redirect")):
        await page.select_option("#c-vendor", vendor)
        assert await page.inner_text("#c-journey") == f"Consumer's journey: {words}"
    await page.select_option("#c-vendor", "linepay")
    await fits(page)
    await shot(page, "journey", size)
    await page.select_option("#c-face", "chop")
    await page.select_option("#c-vendor", "paypal")
    assert await page.inner_text("#c-journey") == "Consumer's journey: redirect"
    await context.close()
    assert problems == []
