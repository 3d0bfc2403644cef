"""The dashboard in a real headless Chromium: a payment shows up live, is paid from the
page, its IPN attempt lands on the timeline, and the virtual clock moves on a click.

Same browser setup as tests/test_browser.py (the system's Chromium through Playwright,
skipped when either is missing). Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from citcon_sim.domain.ledger import Status

from .browser_support import ARTIFACTS, TIMEOUT_MS, watch
from .helpers import IpnReceiver

XSS = "<img src=x onerror=alert(1)>"
# Were any of these parsed as HTML, they would run script or fetch from outside.
HOSTILE = '<img src="https://evil.example/r.png" onerror="window.__pwned=1">'
HOSTILE_NOTE = (HOSTILE + "<script>window.__pwned=2</script>"
                '<link rel="stylesheet" href="https://evil.example/s.css">')
LOCAL = "http://127.0.0.1:"


async def api(server: TestServer, path: str, token: str = "shop-a-token-1234",
              **fields: str) -> str:
    async with ClientSession() as session:
        resp = await session.post(server.make_url(path), data=fields,
                                  headers={"Authorization": f"Bearer {token}"})
        text = await resp.text()
    assert resp.status == 200, text
    return text


async def pay(server: TestServer, token: str = "shop-a-token-1234", **fields: str) -> str:
    data = {"vendor": "alipay", "amount": "2599", "currency": "USD",
            "allow_duplicates": "yes", **fields}
    return (await api(server, "/payment/pay", token, **data)).split("=")[1]


async def control(server: TestServer, path: str, **fields: str) -> None:
    async with ClientSession() as session:
        resp = await session.post(server.make_url(path), data=fields)
        assert resp.status == 200, await resp.text()


async def background(server: TestServer, receiver_url: str) -> None:
    """A few transactions in every state, so the page looks like a day of testing."""
    refunded = await pay(server, reference="order-0991", vendor="wechatpay", amount="4200",
                         ipn_url=receiver_url)
    await control(server, f"/_sim/transactions/{refunded}/pay")
    await api(server, "/payment/refund", transaction_id=refunded, amount="1000",
              currency="USD")
    failed = await pay(server, reference="order-0992", vendor="upop", amount="1250")
    await control(server, f"/_sim/transactions/{failed}/fail", reason="insufficient funds")
    authorised = await pay(server, token="shop-b-token-5678", reference="KL-77120",
                           vendor="klarna", amount="8900", auto_capture="false")
    await control(server, f"/_sim/transactions/{authorised}/pay")
    expired = await pay(server, reference="order-0993", vendor="kakaopay", amount="50000",
                        currency="KRW")
    await control(server, f"/_sim/transactions/{expired}/expire")
    await pay(server, token="shop-b-token-5678", reference=XSS, note=XSS, amount="999")


async def test_dashboard_live_pay_ipn_and_clock(browser, simulator, ipn_receiver, sim):
    ARTIFACTS.mkdir(exist_ok=True)
    receiver_url = ipn_receiver.url
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems = watch(page, (str(simulator.make_url("")),))
    page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))

    # Nothing yet: the empty state, with a curl example aimed at this very server.
    await page.goto(str(simulator.make_url("/_sim")))
    assert page.url == str(simulator.make_url("/_sim/"))
    await page.wait_for_selector("#live[data-state=live]")
    await page.wait_for_selector("#empty", state="visible")
    assert f"'{sim.bound_url}/payment/pay'" in await page.locator("#curl").inner_text()
    await page.screenshot(path=ARTIFACTS / "dashboard-empty.png")
    await page.evaluate("window.__notReloaded = true")

    await background(simulator, receiver_url)
    txn = await pay(simulator, reference="order-1001", ipn_url=receiver_url,
                    note="Gift wrap, please")

    # It appears without a reload, newest first, with a status badge and both amounts.
    row = page.locator(f'#rows tr[data-id="{txn}"]')
    await row.wait_for()
    assert await page.locator("#rows tr").first.get_attribute("data-id") == txn
    assert await page.evaluate("window.__notReloaded") is True
    assert await page.locator("#empty").is_hidden()
    assert await row.locator(".badge").inner_text() == "pending"
    assert await row.locator(".amount-main").inner_text() == "$25.99"
    assert await row.locator(".amount-sub").inner_text() == "CN¥187.13"
    assert await row.locator(".merchant-hint").inner_text() == "sh…34"
    content = await page.content()
    assert "shop-a-token-1234" not in content and "shop-b-token-5678" not in content

    # The hostile reference is shown as text and never became an element.
    hostile = page.locator("#rows .ref-text", has_text="onerror")
    assert await hostile.inner_text() == XSS
    assert await page.locator("#rows img").count() == 0

    await row.click()
    status = page.locator("#d-status")
    await page.wait_for_selector(f'#d-id:text("{txn}")')
    assert await status.inner_text() == "pending"
    assert await page.locator("#d-reference").inner_text() == "order-1001"
    assert await page.locator("#d-note").inner_text() == "Gift wrap, please"

    await page.click("#act-pay")
    await page.wait_for_selector("#d-status[data-status=success]")
    assert await status.inner_text() == "success"
    assert await row.locator(".badge").inner_text() == "success"
    attempt = page.locator("#d-timeline li[data-ipn]", has_text="HTTP 200")
    await attempt.wait_for()
    assert "IPN attempt #1" in await attempt.inner_text()
    assert [f["id"] for f in ipn_receiver.posts if f["id"] == txn] == [txn]
    assert sim.ledger.by_id[txn].status is Status.SUCCESS
    titles = await page.locator("#d-timeline .tl-title").all_inner_texts()
    assert titles[:2] == ["Created", "Paid"]

    clock = page.locator("#clock-time")
    assert await clock.inner_text() == "2026-03-02 09:00:00"
    await page.click("#advance-5m")
    await page.wait_for_selector('#clock-time:text("2026-03-02 09:05:00")')
    assert sim.clock.format(sim.clock.time()) == "2026-03-02 09:05:00"

    await page.wait_for_selector("#toast", state="hidden")
    await page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)
    assert problems == []
    await context.close()


async def test_dashboard_filters_by_merchant_and_acts(browser, simulator, ipn_receiver, sim):
    """Merchant filter (list and pasted token), expire and redeliver, on a narrow screen."""
    ARTIFACTS.mkdir(exist_ok=True)
    receiver_url = ipn_receiver.url
    mine = await pay(simulator, reference="mine-1", ipn_url=receiver_url)
    await control(simulator, f"/_sim/transactions/{mine}/pay")
    other = await pay(simulator, token="shop-b-token-5678", reference="theirs-1")
    context = await browser.new_context(viewport={"width": 820, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems = watch(page, (str(simulator.make_url("")),))

    await page.goto(str(simulator.make_url(f"/_sim/#txn={mine}")))
    await page.wait_for_selector("#live[data-state=live]")
    await page.wait_for_selector(f'#d-id:text("{mine}")')  # selected from the address
    assert await page.locator("#rows tr").count() == 2

    # Redeliver: a second attempt, same notification, lands on the timeline.
    await page.click("#d-ipn button.redeliver")
    await page.locator("#d-timeline li[data-ipn]", has_text="(redeliver)").wait_for()
    assert len(ipn_receiver.posts) == 2
    assert ipn_receiver.posts[0]["notify_id"] == ipn_receiver.posts[1]["notify_id"]

    # One merchant, picked from the list of token hints.
    await page.select_option("#merchant", label="sh…78 (1)")
    await page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 1")
    assert await page.locator("#rows tr").first.get_attribute("data-id") == other

    # Back to all, then the other merchant by pasting its token (used once, then cleared).
    await page.select_option("#merchant", value="")
    await page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 2")
    await page.fill("#token", "shop-a-token-1234")
    await page.click("#token-form button")
    await page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 1")
    assert await page.locator("#rows tr").first.get_attribute("data-id") == mine
    assert await page.input_value("#token") == ""
    assert "sh…34" in await page.locator("#merchant option:checked").inner_text()

    # Expire the other merchant's pending payment from its detail.
    await page.select_option("#merchant", value="")
    row = page.locator(f'#rows tr[data-id="{other}"]')
    await row.click()
    await page.wait_for_selector(f'#d-id:text("{other}")')
    await page.click("#act-expire")
    await page.wait_for_selector("#d-status[data-status=expired]")
    assert await row.locator(".badge").inner_text() == "expired"
    assert await page.locator("#d-actions").is_hidden()
    assert sim.ledger.by_id[other].status is Status.EXPIRED

    await page.wait_for_selector("#toast", state="hidden")
    await page.screenshot(path=ARTIFACTS / "dashboard-narrow.png", full_page=True)
    assert problems == []
    await context.close()


async def test_a_pushed_change_patches_its_row(browser, simulator, ipn_receiver, sim):
    """A payment and its IPN made elsewhere update the shown row from the pushed event,
    without fetching the whole state again."""
    receiver_url = ipn_receiver.url
    txn = await pay(simulator, reference="pushed-1", ipn_url=receiver_url)
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems = watch(page, (str(simulator.make_url("")),))
    fetches: list[str] = []
    page.on("request", lambda r: fetches.append(r.url) if "/dashboard/state" in r.url else None)

    await page.goto(str(simulator.make_url("/_sim/")))
    await page.wait_for_selector("#live[data-state=live]")
    row = page.locator(f'#rows tr[data-id="{txn}"]')
    await row.wait_for()
    await page.wait_for_timeout(500)  # the opening fetches (load, stream open) are made
    before = len(fetches)

    await control(simulator, f"/_sim/transactions/{txn}/pay")
    await page.wait_for_selector(f'#rows tr[data-id="{txn}"] .badge[data-status=success]')
    await page.wait_for_selector('[data-stat=delivered]:text-is("1")')  # the ipn event
    assert len(fetches) == before
    assert problems == []
    await context.close()


async def test_hostile_values_render_as_text_and_nothing_leaves_the_machine(
    browser, simulator, ipn_receiver: IpnReceiver, sim
):
    """Merchant- and receiver-supplied strings (reference, note, failure reason, the IPN
    answer's body) show as text in the list and the detail, and the page requests nothing
    beyond 127.0.0.1. The CSP is bypassed: this checks the page's own handling, not the
    header that backs it up."""
    ipn_receiver.answer(body=HOSTILE)
    paid = await pay(simulator, reference=HOSTILE, note=HOSTILE_NOTE, ipn_url=ipn_receiver.url)
    await control(simulator, f"/_sim/transactions/{paid}/pay")
    failed = await pay(simulator, reference="declined-1")
    await control(simulator, f"/_sim/transactions/{failed}/fail", reason=HOSTILE)
    await ipn_receiver.wait_for(1)
    await sim.ipn.drain()  # the attempt, with the body it got, is on record

    context = await browser.new_context(bypass_csp=True)
    outside: list[str] = []

    async def only_local(route: Any) -> None:
        if route.request.url.startswith(LOCAL):
            await route.continue_()
        else:  # never let it out; record it
            outside.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_local)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems = watch(page, (LOCAL,))
    page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))

    await page.goto(str(simulator.make_url("/_sim/")))
    await page.wait_for_selector("#live[data-state=live]")
    row = page.locator(f'#rows tr[data-id="{paid}"]')
    assert await row.locator(".ref-text").inner_text() == HOSTILE
    await row.click()
    await page.wait_for_selector(f'#d-id:text("{paid}")')
    assert await page.locator("#d-reference").inner_text() == HOSTILE
    assert await page.locator("#d-note").inner_text() == HOSTILE_NOTE
    body = page.locator("#d-timeline .tl-body")
    await body.wait_for()
    assert await body.inner_text() == f"\u201c{HOSTILE}\u201d"

    await page.locator(f'#rows tr[data-id="{failed}"]').click()
    await page.wait_for_selector(f'#d-id:text("{failed}")')
    reasons = await page.locator("#d-timeline .tl-sub").all_inner_texts()
    assert f"Reason: {HOSTILE}" in reasons

    assert await page.evaluate("window.__pwned") is None
    injected = await page.evaluate("""() => document.querySelectorAll(
        '[onerror], img[src^="https:"], link[href^="https:"]').length""")
    scripts = await page.evaluate("() => [...document.scripts].map(s => s.src || s.id)")
    assert injected == 0 and len(scripts) == 2, scripts  # the page's own two:
    assert scripts[0] == "config" and scripts[1].startswith(f"{LOCAL}{simulator.port}/")
    assert outside == [] and problems == []
    await context.close()
