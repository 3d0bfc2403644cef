"""The consumer-facing wallet pages: rendering, the virtual-clock countdown, the outcomes a
consumer can reach and where each one sends the browser."""

from __future__ import annotations

import html
import json
import re
from urllib.parse import unquote_plus

import pytest
from aiohttp.test_utils import TestClient

from citcon_sim import Simulator
from citcon_sim.domain.ledger import Status
from citcon_sim.domain.vendors import VENDORS, accepted_by
from citcon_sim.web.pages import countdown_text, money

from .helpers import consumer_pays, create

DESKTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)
IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
WECHAT_UA = (
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/116.0 Mobile Safari/537.36 MicroMessenger/8.0.47"
)
SUCCESS = "https://shop.example/success"
FAIL = "https://shop.example/fail"
CANCEL = "https://shop.example/cancel"
MOBILE = "https://shop.example/in-app"
XSS = "<script>alert(1)</script>"


async def page(client: TestClient, txn_id: str, ua: str = DESKTOP_UA, **query: str) -> str:
    resp = await client.get("/u_landing", params={"q": txn_id, **query},
                            headers={"User-Agent": ua})
    assert resp.status == 200
    assert resp.content_type == "text/html"
    return await resp.text()


async def act(client: TestClient, txn_id: str, action: str, ua: str = DESKTOP_UA,
              **form: str) -> str:
    """POST an outcome as the page's form does; returns the 303's Location."""
    resp = await client.post(f"/u_landing/{txn_id}/{action}", data=form,
                             headers={"User-Agent": ua}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    return resp.headers["Location"]


def text_of(page_html: str, element_id: str) -> str:
    """The unescaped text of a simple element (no nested tags) with that id."""
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', page_html)
    assert found, f"no #{element_id}"
    return html.unescape(found.group(1)).strip()


def seconds_left(page_html: str) -> int:
    found = re.search(r'id="countdown" data-seconds="(\d+)"', page_html)
    assert found
    return int(found.group(1))


def view_of(page_html: str) -> str:
    found = re.search(r'<body class="view-(\w+)"', page_html)
    assert found
    return found.group(1)


# -- rendering ------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(accepted_by("online")))
async def test_every_vendor_renders_its_own_page(client, sim: Simulator, code: str):
    vendor = VENDORS[code]
    txn_id = await create(client, "pay", vendor=code, reference=f"order-{code}")
    body = await page(client, txn_id)
    assert f'<span class="vendor-name">{html.escape(vendor.name)}</span>' in body
    assert f"--brand: {vendor.colour}" in body
    assert "SIMULATED — no real money moves" in body
    txn = sim.ledger.by_id[txn_id]
    assert text_of(body, "amount") == money(txn.trans_amount, txn.trans_currency)
    assert text_of(body, "reference") == f"order-{code}"
    for action in ("pay", "fail", "cancel"):
        assert f'action="/u_landing/{txn_id}/{action}"' in body


async def test_both_currencies_formatted_by_their_minor_units(client):
    # 13,500 KRW is 10.00 USD at the default table: KRW has no decimals, USD has two.
    txn_id = await create(client, "pay", vendor="kakaopay", trans_amount=13500,
                          trans_currency="KRW", amount=1000, currency="USD")
    body = await page(client, txn_id)
    assert text_of(body, "amount") == "₩13,500"
    assert text_of(body, "settlement") == "Merchant receives $10.00"
    jpy = await create(client, "pay", vendor="paypay", trans_amount=1500,
                       trans_currency="JPY")
    assert text_of(await page(client, jpy), "amount") == "¥1,500"


def test_money_uses_the_iso_exponent():
    assert money(13500, "KRW") == "₩13,500"
    assert money(999, "USD") == "$9.99"
    assert money(1250, "BHD") == "BHD1.250"
    # CLDR shows IQD without decimals; ISO 4217 (and so the API) has three.
    assert money(1234, "IQD").endswith("1.234")
    assert countdown_text(0) == "0:00"
    assert countdown_text(3725) == "1:02:05"
    assert countdown_text(2 * 86400 + 5) == "2d 00:00:05"


async def test_same_currency_shows_one_amount(client):
    txn_id = await create(client, "pay", vendor="klarna", amount=4000, currency="USD")
    body = await page(client, txn_id)
    assert text_of(body, "amount") == "$40.00"
    assert 'id="settlement"' not in body


async def test_documented_locale_formats_numbers(client):
    txn_id = await create(client, "pay", vendor="klarna", amount=123456, currency="USD",
                          locale="de-de")
    body = await page(client, txn_id)
    assert '<html lang="de">' in body
    assert text_of(body, "amount") == "1.234,56\xa0$"
    bogus = await create(client, "pay", vendor="klarna", amount=100, currency="USD",
                         locale="zz-not-a-locale")
    assert text_of(await page(client, bogus), "amount") == "$1.00"


async def test_note_and_goods_items_shown(client):
    goods = {"data": [
        {"name": "Battery Power Pack", "quantity": 2, "unit_amount": 2000,
         "total_amount": 4000},
        {"name": "Cable", "quantity": "3", "unit_amount": "150"},  # total derived
    ]}
    txn_id = await create(client, "pay", vendor="klarna", amount=4450, currency="USD",
                          note="Gift wrap, please", goods=json.dumps(goods))
    body = await page(client, txn_id)
    assert text_of(body, "note") == "Gift wrap, please"
    rows = re.findall(r"<tr>\s*(.*?)\s*</tr>", body.split('id="items"')[1], re.S)
    cells = [[html.unescape(c) for c in re.findall(r"<td[^>]*>([^<]*)</td>", r)]
             for r in rows if "<td" in r]
    assert cells == [
        ["Battery Power Pack", "2", "$20.00", "$40.00"],
        ["Cable", "3", "$1.50", "$4.50"],
    ]


async def test_goods_in_transaction_currency_when_they_add_up_to_it(client):
    goods = {"data": [{"name": "Tea", "quantity": 1, "total_amount": 7200}]}
    txn_id = await create(client, "pay", vendor="alipay", trans_amount=7200,
                          trans_currency="CNY", goods=json.dumps(goods))
    assert "CN¥72.00</td>" in await page(client, txn_id)


async def test_odd_goods_are_tolerated(client):
    goods = {"data": [
        "not an object", 42, None,
        {"quantity": True, "unit_amount": -5, "total_amount": "lots"},
        {"name": {"nested": 1}, "quantity": 1.0, "total_amount": 99.5},
        {"name": 12345},
    ], "shipping": {"city": "Columbus"}}
    txn_id = await create(client, "pay", vendor="klarna", amount=100, currency="USD",
                          goods=json.dumps(goods))
    body = await page(client, txn_id)
    names = re.findall(r'<td class="item-name">([^<]*)</td>', body)
    assert names == ["Item", "Item", "12345"]
    for data in ('{"data": "nope"}', '{"data": {"name": "x"}}', '{"other": 1}'):
        other = await create(client, "pay", vendor="klarna", amount=100, currency="USD",
                             goods=data)
        assert 'id="items"' not in await page(client, other)


# -- countdown on the virtual clock ------------------------------------------------------------


async def test_countdown_follows_the_virtual_clock(client, sim: Simulator):
    txn_id = await create(client, "pay", vendor="alipay", timeout=600)
    body = await page(client, txn_id)
    assert seconds_left(body) == 600 and text_of(body, "countdown") == "10:00"
    assert 'data-frozen="1"' in body  # the page must not tick on its own
    sim.advance(125)
    body = await page(client, txn_id)
    assert seconds_left(body) == 475 and text_of(body, "countdown") == "7:55"
    status = await (await client.get(f"/u_landing/{txn_id}/status")).json()
    assert status == {"status": "pending", "remaining": 475, "frozen": True, "next": None}
    sim.advance(475)
    body = await page(client, txn_id)
    assert 'id="countdown"' not in body and 'id="pay"' not in body
    assert text_of(body, "state") == "Payment expired"
    assert "expired at 2026-03-02 09:10:00" in body
    # An expired link cannot be paid: the form lands on the final state instead.
    location = await act(client, txn_id, "pay")
    assert location.startswith(f"/u_landing?q={txn_id}")
    assert sim.ledger.by_id[txn_id].status is Status.EXPIRED


# -- desktop, mobile, QR --------------------------------------------------------------


async def test_layout_by_user_agent_and_override(client):
    txn_id = await create(client, "pay", vendor="dana")
    assert view_of(await page(client, txn_id, DESKTOP_UA)) == "desktop"
    assert view_of(await page(client, txn_id, IPHONE_UA)) == "mobile"
    assert view_of(await page(client, txn_id, WECHAT_UA)) == "mobile"
    assert view_of(await page(client, txn_id, IPHONE_UA, view="desktop")) == "desktop"
    assert view_of(await page(client, txn_id, DESKTOP_UA, view="mobile")) == "mobile"
    assert view_of(await page(client, txn_id, DESKTOP_UA, view="bogus")) == "desktop"


async def test_qr_only_for_qr_vendors_on_desktop(client):
    alipay = await create(client, "pay_qr", vendor="alipay")
    body = await page(client, alipay)
    assert f'src="/payment/qr?q={alipay}"' in body
    assert "scan the QR code" in text_of(body, "scan-hint")
    qr = await client.get(f"/payment/qr?q={alipay}")
    assert qr.status == 200 and qr.content_type == "image/png"

    mobile = await page(client, alipay, IPHONE_UA)
    assert "/payment/qr" not in mobile and 'id="scan-hint"' not in mobile
    assert text_of(mobile, "open-app") == "Open the Alipay app"  # the app switch instead

    for code in ("klarna", "dana", "card", "banktransfer", "naverpay"):  # no scan_option
        other = await page(client, await create(client, "pay", vendor=code))
        assert "/payment/qr" not in other and 'id="scan-hint"' not in other


# -- outcomes and redirects ---------------------------------------------------------------


URLS = {"callback_url_success": SUCCESS, "callback_url_fail": FAIL,
        "callback_url_cancel": CANCEL}


@pytest.mark.parametrize(
    ("action", "urls", "expected", "status"),
    [
        ("pay", URLS, SUCCESS, Status.SUCCESS),
        ("fail", URLS, FAIL, Status.FAILED),
        ("cancel", URLS, CANCEL, Status.CANCELLED),
        ("cancel", {"callback_url_fail": FAIL}, FAIL, Status.CANCELLED),
        ("cancel", {"callback_url_success": SUCCESS}, None, Status.CANCELLED),
        ("fail", {"callback_url_success": SUCCESS}, None, Status.FAILED),
        ("pay", {"callback_url_fail": FAIL}, None, Status.SUCCESS),
    ],
)
async def test_outcome_redirects(client, sim, action, urls, expected, status):
    txn_id = await create(client, "pay", vendor="alipay_hk", **urls)
    location = await act(client, txn_id, action, view="desktop")
    assert sim.ledger.by_id[txn_id].status is status
    if expected is not None:
        assert location == expected
        return
    # No merchant URL for this outcome: the simulator's own result page says what happened.
    assert location == f"/u_landing?q={txn_id}&view=desktop"
    resp = await client.get(location)
    body = await resp.text()
    assert resp.status == 200 and 'id="pay"' not in body
    assert f'data-status="{status.value}"' in body
    assert 'id="return"' not in body  # nowhere to return to but this page itself


@pytest.mark.parametrize(
    ("vendor", "ua", "form", "urls", "expected"),
    [
        ("alipay", IPHONE_UA, {}, {"mobile_result_url": MOBILE}, MOBILE),
        ("alipay", DESKTOP_UA, {"view": "mobile"}, {"mobile_result_url": MOBILE}, MOBILE),
        ("wechatpay", WECHAT_UA, {}, {"mobile_result_url": MOBILE}, MOBILE),
        ("alipay", DESKTOP_UA, {}, {"mobile_result_url": MOBILE}, SUCCESS),
        ("alipay", IPHONE_UA, {"view": "desktop"}, {"mobile_result_url": MOBILE}, SUCCESS),
        ("alipay", IPHONE_UA, {}, {}, SUCCESS),
        ("alipay_hk", IPHONE_UA, {}, {"mobile_result_url": MOBILE}, SUCCESS),  # not in-app
    ],
)
async def test_mobile_result_url_for_in_app_wallets(client, vendor, ua, form, urls, expected):
    txn_id = await create(client, "pay", vendor=vendor, callback_url_success=SUCCESS, **urls)
    assert await act(client, txn_id, "pay", ua, **form) == expected


async def test_in_app_failure_still_goes_to_the_fail_url(client):
    txn_id = await create(client, "pay", vendor="alipay", mobile_result_url=MOBILE,
                          callback_url_fail=FAIL)
    assert await act(client, txn_id, "fail", IPHONE_UA) == FAIL


async def test_klarna_without_auto_capture_is_authorised(client, sim: Simulator):
    txn_id = await create(client, "pay", vendor="klarna", amount=4000, currency="USD",
                          auto_capture="false", callback_url_success=SUCCESS)
    body = await page(client, txn_id)
    assert text_of(body, "pay") == "Authorise $40.00"
    assert "captures it later" in body
    assert await act(client, txn_id, "pay") == SUCCESS
    txn = sim.ledger.by_id[txn_id]
    assert txn.status is Status.AUTHORIZED and txn.captured_amount == 0
    body = await page(client, txn_id)
    assert text_of(body, "state") == "Payment authorised"

    captured = await create(client, "pay", vendor="klarna", amount=4000, currency="USD",
                            auto_capture="true", reference="order-2")
    assert text_of(await page(client, captured), "pay") == "Pay $40.00"
    await act(client, captured, "pay")
    assert sim.ledger.by_id[captured].status is Status.SUCCESS


async def test_double_submission_pays_once(client, sim: Simulator):
    txn_id = await create(client, "pay", vendor="alipay", callback_url_success=SUCCESS)
    assert await act(client, txn_id, "pay", view="desktop") == SUCCESS
    for action in ("pay", "fail", "cancel"):
        again = await act(client, txn_id, action, view="desktop")
        assert again == f"/u_landing?q={txn_id}&view=desktop"
    txn = sim.ledger.by_id[txn_id]
    assert txn.status is Status.SUCCESS and txn.captured_amount == txn.amount
    merchant = sim.ledger.merchants[txn.token]
    assert sim.ledger.open_balance(merchant) == {"USD": 1000}
    body = await page(client, txn_id)
    assert text_of(body, "state") == "Payment successful"
    assert re.search(rf'id="return" href="{re.escape(SUCCESS)}"', body)


@pytest.mark.parametrize(
    ("action", "title"),
    [("pay", "Payment successful"), ("fail", "Payment failed"),
     ("cancel", "Payment cancelled"), ("expire", "Payment expired")],
)
async def test_final_states_render_clearly(client, action, title):
    txn_id = await create(client, "pay", vendor="gcash")
    resp = await client.post(f"/_sim/transactions/{txn_id}/{action}")
    assert resp.status == 200
    body = await page(client, txn_id)
    assert text_of(body, "state") == title
    assert "<form" not in body and "<script" not in body


async def test_open_page_learns_of_a_payment_made_elsewhere(client):
    # A phone scanned the desktop QR and paid: the desktop page's poll is told where to go.
    txn_id = await create(client, "pay_qr", vendor="wechatpay", callback_url_success=SUCCESS,
                          mobile_result_url=MOBILE)
    await consumer_pays(client, txn_id)
    status = await (await client.get(f"/u_landing/{txn_id}/status?view=desktop")).json()
    assert status["status"] == "success" and status["next"] == SUCCESS
    status = await (await client.get(f"/u_landing/{txn_id}/status?view=mobile")).json()
    assert status["next"] == MOBILE


# -- safety ---------------------------------------------------------------------------------


async def test_merchant_strings_are_escaped(client):
    hostile_url = f'https://shop.example/ok?a="><svg onload=alert(1)>{XSS}'
    goods = {"data": [{"name": XSS, "quantity": 1, "total_amount": 1000}]}
    txn_id = await create(client, "pay", vendor="alipay", reference=f"ref{XSS}",
                          note=f"note{XSS}'\"&", goods=json.dumps(goods),
                          callback_url_success=hostile_url)
    wallet = await page(client, txn_id)
    assert XSS not in wallet and "<svg" not in wallet
    assert wallet.count("<script") == 1  # only the page's own, nonce-carrying script
    assert text_of(wallet, "reference") == f"ref{XSS}"
    assert text_of(wallet, "note") == f"note{XSS}'\"&"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in wallet

    # aiohttp percent-encodes the Location header; the browser lands on the same URL.
    assert unquote_plus(await act(client, txn_id, "pay")) == hostile_url
    result = await page(client, txn_id)
    assert XSS not in result and "<svg" not in result and "<script" not in result
    link = re.search(r'id="return" href="([^"]*)"', result)
    assert link and html.unescape(link.group(1)) == hostile_url


async def test_pages_carry_a_nonce_csp_and_load_nothing_external(client):
    txn_id = await create(client, "pay_qr", vendor="alipay")
    resp = await client.get("/u_landing", params={"q": txn_id})
    body = await resp.text()
    csp = resp.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce and f'<script nonce="{nonce.group(1)}">' in body
    assert resp.headers["Cache-Control"] == "no-store"
    for ref in re.findall(r'(?:src|href)="([^"]*)"', body):
        assert ref.startswith("/") or ref.startswith("data:"), ref
        if ref.startswith("/"):
            assert (await client.get(html.unescape(ref))).status == 200, ref
    # Two renders never share a nonce.
    again = await client.get("/u_landing", params={"q": txn_id})
    assert again.headers["Content-Security-Policy"] != csp


async def test_unknown_payment_is_a_friendly_404(client):
    for query in ({"q": "U0000000000-00000000000000000000"}, {"q": "<b>x</b>"}, {}):
        resp = await client.get("/u_landing", params=query)
        body = await resp.text()
        assert resp.status == 404 and resp.content_type == "text/html"
        assert "Payment not found" in body and "<b>x</b>" not in body
    resp = await client.post("/u_landing/U0000000000-00000000000000000000/pay")
    assert resp.status == 404 and "Payment not found" in await resp.text()
    resp = await client.get("/u_landing/U0000000000-00000000000000000000/status")
    assert resp.status == 404

