"""XSS: hostile merchant strings on every HTML page the simulator serves.

Payloads go into everything a merchant (or a merchants file, or a restored snapshot)
controls: reference, note, goods (names, urls, sku), consumer and address fields, locale,
callback URLs, the merchant's name and even the transaction id. Every page is parsed: no
payload survives as markup, no event-handler attribute, no ``javascript:`` link, every
script carries the CSP nonce. ``javascript:`` and other non-http(s) URLs are refused by
the API, and the pages re-check before linking. A real Chromium (CSP bypassed, so only
the escaping protects it) confirms that no payload runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer

from citcon_sim import Config, Simulator, create_app
from citcon_sim.domain.ledger import Transaction

from . import helpers
from .helpers import START, auth

TOKEN = "xss-merchant-token-51c0"
PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg/onload=alert(1)>",
    "</title></textarea></script><script>alert(1)</script>",
    "javascript:alert(1)",
    "{{7*7}}{% if 1 %}x{% endif %}",
]
MARKUP = [p for p in PAYLOADS if "<" in p]
HOSTILE_URL = "https://shop.example/back?a=\"><script>alert(1)</script>&b='onmouseover=alert(1)"
BAD_URLS = [
    "javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)",
    "javascript://shop.example/%0aalert(1)", "jav\tascript:alert(1)",
    "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)", "//evil.example/x",
    "https:/evil.example", "http:\\\\evil.example", "ftp://evil.example/", "/relative/path",
    "https://", "https:// evil.example",
]
URL_FIELDS = ["callback_url_success", "callback_url_fail", "callback_url_cancel",
              "mobile_result_url", "ipn_url"]
IPHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148"


def hostile_fields(i: int, payload: str) -> dict[str, str]:
    goods = {"data": [
        {"name": payload, "quantity": 1, "unit_amount": 400, "total_amount": 400,
         "sku": payload, "url": "javascript:alert(1)", "image_url": payload},
        {"name": f"second {payload}", "quantity": "2", "unit_amount": "300", "sku": payload},
    ], "note": payload}
    return {
        "reference": f"r{i}-{payload}"[:128], "note": payload, "goods": json.dumps(goods),
        "consumer[first_name]": payload, "consumer[last_name]": payload,
        "consumer[email]": payload, "consumer[phone]": payload,
        "billing_address[street]": payload, "billing_address[city]": payload,
        "ext[memo]": payload, "locale": payload, "country": payload,
        "callback_url_success": HOSTILE_URL, "callback_url_fail": HOSTILE_URL + "&f=1",
        "callback_url_cancel": HOSTILE_URL + "&c=1", "mobile_result_url": HOSTILE_URL,
    }


async def create(client: TestClient, payload: str, i: int = 0, vendor: str = "alipay",
                 endpoint: str = "pay", **extra: str) -> str:
    return await helpers.create(client, endpoint, TOKEN, vendor=vendor,
                                **hostile_fields(i, payload), **extra)


class Page(HTMLParser):
    """The tags, attributes and text of a page, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


URL_ATTRS = ("href", "src", "action", "formaction", "poster", "background", "xlink:href")


def check_html(body: str, headers: Any, txn_id: str | None = None) -> Page:
    """The page holds no markup a merchant string brought in."""
    for payload in MARKUP:
        assert payload not in body, payload
    assert "<svg" not in body and "<img src=x" not in body  # as text they read &lt;…
    page = Page()
    page.feed(body)
    page.close()
    csp = headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce, csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Type"].startswith("text/html")
    for tag, attrs in page.tags:
        assert tag not in ("svg", "iframe", "object", "embed", "base", "frame"), tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            if name in URL_ATTRS and value is not None:
                ok = (value.startswith(("/", "http://", "https://")) and not
                      value.startswith("//")) or value == "data:,"
                assert ok, (tag, name, value)
            if name == "style":
                assert "url(" not in (value or "") and "expression" not in (value or "")
        if tag == "script":
            assert attrs.get("nonce") == nonce.group(1) or attrs.get("type") == (
                "application/json"), attrs
        if tag == "img":
            assert (attrs.get("src") or "").startswith("/payment/qr?q="), attrs
            if txn_id is not None:
                assert attrs["src"] == f"/payment/qr?q={txn_id}"
    return page


async def get_page(client: TestClient, path: str, txn_id: str | None = None,
                   status: int = 200, **headers: str) -> Page:
    resp = await client.get(path, headers=headers)
    body = await resp.text()
    assert resp.status == status, body
    return check_html(body, resp.headers, txn_id)


def shown(page: Page, payload: str) -> bool:
    return any(payload in chunk for chunk in page.text)


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_wallet_pages_escape_every_field(client: TestClient, payload: str) -> None:
    txn_id = await create(client, payload)
    for path, headers in ((f"/u_landing?q={txn_id}", {}),
                          (f"/u_landing?q={txn_id}&view=mobile", {}),
                          (f"/u_landing?q={txn_id}", {"User-Agent": IPHONE_UA}),
                          (f"/u_landing?q={txn_id}&view=desktop", {})):
        page = await get_page(client, path, txn_id, **headers)
        assert shown(page, payload), path  # as text: the consumer sees what was sent
    qr_txn = await create(client, payload, 1, vendor="wechatpay", endpoint="pay_qr")
    page = await get_page(client, f"/u_landing?q={qr_txn}", qr_txn)
    assert any(tag == "img" for tag, _ in page.tags)  # the QR, the only image
    klarna = await create(client, payload, 2, vendor="klarna", auto_capture="false")
    await get_page(client, f"/u_landing?q={klarna}", klarna)


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_result_pages_escape_every_field(
    client: TestClient, sim: Simulator, payload: str
) -> None:
    for i, (action, vendor, extra) in enumerate((
        ("pay", "alipay", {}), ("fail", "alipay", {}), ("cancel", "alipay", {}),
        ("pay", "klarna", {"auto_capture": "false"}), ("pay", "wechatpay", {}),
    )):
        txn_id = await create(client, payload, i, vendor=vendor, **extra)
        ua = IPHONE_UA if vendor == "wechatpay" else "Mozilla/5.0"
        resp = await client.post(f"/u_landing/{txn_id}/{action}", allow_redirects=False,
                                 headers={"User-Agent": ua})
        assert resp.status == 303
        location = unquote(resp.headers["Location"])
        assert location.startswith(("https://shop.example/", "/u_landing")), location
        page = await get_page(client, f"/u_landing?q={txn_id}", txn_id, **{"User-Agent": ua})
        links = [a for tag, a in page.tags if tag == "a"]
        assert all((a.get("href") or "").startswith("https://shop.example/") for a in links)
    expired = await create(client, payload, 9)
    assert (await client.post(f"/_sim/transactions/{expired}/expire")).status == 200
    await get_page(client, f"/u_landing?q={expired}", expired)


async def test_not_found_page_echoes_nothing(client: TestClient) -> None:
    for payload in PAYLOADS:
        for query in ({"q": payload}, {"q": payload, "view": payload}):
            page = await get_page(client, f"/u_landing?{urlencode(query)}", status=404)
            assert not shown(page, payload)
        resp = await client.post(f"/u_landing/{quote(payload, safe='')}/pay",
                                 data={"view": payload})
        assert resp.status == 404
        body = await resp.text()
        assert all(p not in body for p in MARKUP)


@pytest.mark.parametrize("field", URL_FIELDS)
@pytest.mark.parametrize("url", BAD_URLS)
async def test_api_refuses_non_http_urls(
    client: TestClient, sim: Simulator, field: str, url: str
) -> None:
    resp = await client.post("/payment/pay", headers=auth(TOKEN), data={
        "vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "r",
        field: url})
    body = await resp.json()
    assert resp.status == 400 and body["code"] == 4100, body
    assert field in body["message"]
    assert sim.ledger.by_id == {}


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<b>x</b>",
                                 "//evil.example/", "vbscript:x", "JAVASCRIPT:alert(1)"])
async def test_pages_never_link_a_non_http_url_even_if_stored(
    client: TestClient, sim: Simulator, url: str
) -> None:
    """A restored snapshot (PUT /_sim/state) or a bug could store any URL: the pages check
    again and fall back to their own result page."""
    for i, action in enumerate(("pay", "fail", "cancel")):
        txn_id = await create(client, "plain", i)
        txn: Transaction = sim.ledger.by_id[txn_id]
        for field in ("callback_url_success", "callback_url_fail", "callback_url_cancel",
                      "mobile_result_url"):
            setattr(txn, field, url)
        resp = await client.post(f"/u_landing/{txn_id}/{action}", allow_redirects=False,
                                 headers={"User-Agent": IPHONE_UA})
        assert resp.headers["Location"].startswith("/u_landing?q="), resp.headers["Location"]
        page = await get_page(client, f"/u_landing?q={txn_id}", txn_id)
        assert not [a for tag, a in page.tags if tag == "a"]
        status = await (await client.get(f"/u_landing/{txn_id}/status")).json()
        assert status["next"].startswith("/u_landing?q=")


async def test_hostile_transaction_id_and_merchant_name_are_escaped(
    aiohttp_client: Callable[..., Any], tmp_path: Path
) -> None:
    """Strings an operator controls: the merchants file's name, a snapshot's ids."""
    payload = PAYLOADS[1]
    path = tmp_path / "merchants.yaml"
    path.write_text(f"merchants:\n  - token: {TOKEN}\n    name: {json.dumps(payload)}\n",
                    encoding="utf-8")
    sim = Simulator(helpers.frozen_config(seed=None, merchants_file=path))
    client = await aiohttp_client(create_app(sim))
    txn_id = await create(client, payload, vendor="klarna", auto_capture="false")
    page = await get_page(client, f"/u_landing?q={txn_id}", txn_id)
    assert shown(page, payload)  # "Paying <merchant>", "… captures it later"
    hostile_id = 'U0000000001-"><script>alert(1)</script>'
    txn = sim.ledger.by_id.pop(txn_id)
    merchant = sim.ledger.merchants[TOKEN]
    merchant.transactions.pop(txn_id)
    txn.id = hostile_id
    sim.ledger.by_id[hostile_id] = merchant.transactions[hostile_id] = txn
    resp = await client.get("/u_landing", params={"q": hostile_id})
    body = await resp.text()
    check_html(body, resp.headers)
    forms = [a for tag, a in tags_of(body) if tag == "form"]
    assert forms and all(a["action"].startswith("/u_landing/U0000000001-") for a in forms)
    resp = await client.post(f"/u_landing/{txn_id}/pay", allow_redirects=False)
    assert resp.status == 404  # the old id is gone
    resp = await client.get("/u_landing", params={"q": hostile_id, "view": "mobile"})
    check_html(await resp.text(), resp.headers)


def tags_of(body: str) -> list[tuple[str, dict[str, str | None]]]:
    page = Page()
    page.feed(body)
    return page.tags


async def test_dashboard_shell_and_its_json_are_inert(aiohttp_client: Callable[..., Any]) -> None:
    """The dashboard page holds no transaction data (dashboard.js fills it in with
    textContent; tests/test_dashboard.py checks the script for HTML sinks). What can reach
    it: the Host header (on a wildcard listener the base URL comes from it)."""
    sim = Simulator(Config(host="0.0.0.0", port=8080, frozen_clock=True, start_time=START))
    client = await aiohttp_client(create_app(sim))
    txn_id = await create(client, PAYLOADS[0])
    host = '"><script>alert(1)</script>'
    resp = await client.get("/_sim/", headers={"Host": host})
    body = await resp.text()
    page = check_html(body, resp.headers)
    config = json.loads(re.search(r'<script type="application/json" id="config">(.*?)</script>',
                                  body, re.S).group(1))
    # Refused (simulator.base_url checks the Host) or JSON-escaped: never markup either way.
    assert config["base_url"] in (f"http://{host}", "http://0.0.0.0:8080")
    assert [tag for tag, _ in page.tags].count("script") == 2
    for path in ("/_sim/dashboard/state", f"/_sim/transactions/{txn_id}", "/_sim/ipn",
                 "/_sim/requests", f"/u_landing/{txn_id}/status", "/_sim/scenarios",
                 "/_sim/dashboard/requests"):
        resp = await client.get(path)
        assert resp.content_type == "application/json", path
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
    detail = await (await client.get(f"/_sim/transactions/{txn_id}")).json()
    assert detail["reference"].endswith(PAYLOADS[0]) and detail["note"] == PAYLOADS[0]
    # The request log carries what the merchant sent as data, for textContent to show.
    logged = (await (await client.get("/_sim/dashboard/requests")).json())["requests"][0]
    assert logged["params"]["note"] == PAYLOADS[0]


@pytest.mark.parametrize("payload", MARKUP)
async def test_error_answers_are_json_never_html(client: TestClient, payload: str) -> None:
    for method, path, data in (
        ("POST", "/payment/pay", {"vendor": payload, "amount": "1", "currency": "USD",
                                  "reference": "r"}),
        ("POST", "/payment/pay", {"vendor": "alipay", "amount": payload, "currency": "USD",
                                  "reference": "r"}),
        ("POST", "/payment/pay", {"vendor": "alipay", "amount": "1", "currency": payload,
                                  "reference": "r"}),
        ("POST", "/payment/inquire", {"transaction_id": payload}),
        ("POST", "/payment/pay", {"vendor": "alipay", "amount": "1", "currency": "USD",
                                  "reference": "r", "flag[" + payload: "1"}),
        ("GET", f"/nope/{payload}", None),
        ("POST", "/_sim/clock/advance", {"seconds": payload}),
        ("GET", f"/_sim/transactions/{payload}", None),
        ("POST", "/_sim/scenarios", {"name": payload}),
    ):
        resp = await client.request(method, path, data=data, headers=auth(TOKEN))
        assert resp.status >= 400, (path, await resp.text())
        assert resp.content_type == "application/json", (path, resp.content_type)
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


# -- in a real browser ---------------------------------------------------------------------


ADMIN = "xss-test-admin-token-3f7a"


@pytest.mark.browser
async def test_no_payload_runs_in_chromium_even_without_csp(
    browser: Any, aiohttp_server: Callable[..., Any], aiohttp_client: Callable[..., Any]
) -> None:
    """CSP bypassed, so only escaping stands between a payload and a dialog. Also opens the
    locked dashboard once with ?admin_token= (its cookie lets the page's calls in)."""
    from .browser_support import TIMEOUT_MS

    sim = Simulator(helpers.frozen_config(seed=None, admin_token=ADMIN))
    server: TestServer = await aiohttp_server(create_app(sim), host="127.0.0.1")
    base = str(server.make_url("")).rstrip("/")
    sim.bound_url = base
    client: TestClient = await aiohttp_client(server)
    ids = [await create(client, payload, i) for i, payload in enumerate(MARKUP)]
    paid = await create(client, MARKUP[0], 50)
    resp = await client.post(f"/u_landing/{paid}/pay", allow_redirects=False)
    assert resp.status == 303

    context = await browser.new_context(bypass_csp=True, java_script_enabled=True)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for txn_id in ids:
        for view in ("desktop", "mobile"):
            await page.goto(f"{base}/u_landing?q={txn_id}&view={view}")
            await page.wait_for_selector("#reference")
            assert "alert(1)" in await page.inner_text("#reference")
    await page.goto(f"{base}/u_landing?q={paid}")
    await page.wait_for_selector("#state")
    await page.goto(f"{base}/u_landing?q={MARKUP[1]}")
    await page.wait_for_selector("#state")

    await page.goto(f"{base}/_sim/?admin_token={ADMIN}#txn={ids[1]}")
    await page.wait_for_selector(f'#d-id:text("{ids[1]}")')
    assert await page.inner_text("#d-note") == MARKUP[1]
    assert await page.locator("#rows tr").count() == len(ids) + 1
    assert await page.locator("#rows img, #detail img, svg").count() == 0
    cookies = await context.cookies()
    admin = [c for c in cookies if c["name"] == "citcon_sim_admin"]
    assert admin and admin[0]["httpOnly"] and admin[0]["sameSite"] == "Strict"
    assert ADMIN not in admin[0]["value"]
    await context.close()
    assert dialogs == []


@pytest.mark.browser
async def test_listener_via_and_scenario_tags_render_as_text_in_chromium(
    browser: Any, simulator: TestServer, sim: Simulator
) -> None:
    """What the newer records carry onto the dashboard: an attempt's ``via`` (a listener's
    ``forward_to``, which its user types), a scenario rule's name, and the journal's
    surprise tag (fixed names today; a hostile one is written to the journal directly).
    CSP bypassed: only textContent stands between them and a dialog."""
    import asyncio

    from aiohttp import ClientSession

    from .browser_support import TIMEOUT_MS

    forward = 'http://localhost:8000/ipn?x="><img src=x onerror=alert(1)>'
    rule = "<script>alert(2)</script><img src=x onerror=alert(3)>"
    surprise = 'cdn_error,"><svg/onload=alert(4)>'
    async with ClientSession(headers=auth(TOKEN)) as session:
        url = simulator.make_url
        resp = await session.post(url("/_sim/scenarios"), data={"scenario": (
            f"rules:\n  - name: {json.dumps(rule)}\n    match: {{reference: \"cdn-*\"}}\n"
            "    api: {cdn_error: 502}\n")})
        assert resp.status == 200, await resp.text()
        assert (await session.post(url("/payment/pay"), data={
            "vendor": "alipay", "amount": "100", "currency": "USD",
            "reference": "cdn-1"})).status == 502
        sim.journal.append(sim.clock.time(), "POST", "/payment/inquire", "inquire", TOKEN,
                           {}, 200, b"{}", 0.001, None, None, "utf-8", "online", surprise)

        # A listener whose forward URL is hostile takes one IPN and reports it delivered.
        listen = await session.get(url("/_sim/listen"), params={"forward_to": forward})
        assert listen.status == 200

        async def event(name: str) -> Any:
            kind = ""
            while True:
                line = (await asyncio.wait_for(listen.content.readline(), 10)).decode()
                if line.startswith("event: "):
                    kind = line[7:].strip()
                elif line.startswith("data: ") and kind == name:
                    return json.loads(line[6:])

        listener = (await event("hello"))["listener"]
        resp = await session.post(url("/payment/pay"), data={
            "vendor": "alipay", "amount": "100", "currency": "USD", "reference": "via-1",
            "ipn_url": "http://127.0.0.1:9/ipn"})
        txn = (await resp.text()).split("=")[1]
        await session.post(url(f"/_sim/transactions/{txn}/pay"))
        delivery = (await event("ipn"))["delivery"]
        report = await session.post(url(f"/_sim/listen/{listener}/{delivery}"),
                                    data={"status": "200"})
        assert report.status == 200, await report.text()
        await sim.ipn.drain()
        listen.close()

    context = await browser.new_context(bypass_csp=True)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    await page.goto(str(simulator.make_url(f"/_sim/#txn={txn}")))
    await page.wait_for_selector(".tl-via")
    assert await page.inner_text(".tl-via") == "via listener " + listener + " → " + forward
    await page.click("#tab-btn-requests")
    await page.wait_for_selector("#req-list li[data-surprise]")
    assert rule in await page.locator("#req-list .rule").all_inner_texts()
    tags = await page.locator("#req-list .surprise").all_inner_texts()
    assert sorted(tags) == sorted(["cdn_error", "cdn_error", '"><svg/onload=alert(4)>'])
    assert await page.locator("#detail img, #req-list img, #req-list svg, "
                              "#req-list script").count() == 0
    await context.close()
    assert dialogs == []
