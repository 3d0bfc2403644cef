"""Each vendor's consumer journey on the wallet page, as the Online API document describes
it: QR and app switch, sign-in, card entry, bank choice; every one ending in the same
pay/fail/cancel outcomes and redirects. Browser runs: tests/test_journeys_browser.py."""

from __future__ import annotations

import html
import re
import unicodedata
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient

from citcon_sim import Simulator
from citcon_sim.domain.ledger import Status
from citcon_sim.domain.vendors import KOREAN_BANK_NAMES, VENDORS, Journey, accepted_by
from citcon_sim.web.consumers import consumer_for, last_four, mask_email
from citcon_sim.web.pages import DECLINED_CARD, check_card, luhn_ok

from .helpers import create
from .test_pages import DESKTOP_UA, IPHONE_UA, XSS, act, page, text_of

SUCCESS = "https://shop.example/success"
FAIL = "https://shop.example/fail"
CANCEL = "https://shop.example/cancel"
URLS = {"callback_url_success": SUCCESS, "callback_url_fail": FAIL,
        "callback_url_cancel": CANCEL}
GOOD_CARD = {"card_number": "4242 4242 4242 4242", "expiry": "12/30", "cvc": "123"}

# The document's "Desktop/Mobile/h5 Payment Redirect" section, vendor by vendor.
DOCUMENTED = {
    "alipay": Journey.QR_APP, "wechatpay": Journey.QR_APP, "alipay_hk": Journey.QR_APP,
    "kakaopay": Journey.QR_APP,
    "dana": Journey.LOGIN, "naverpay": Journey.LOGIN, "payco": Journey.LOGIN,
    "linepay": Journey.LOGIN, "paypay": Journey.LOGIN, "rakutenpay": Journey.LOGIN,
    "upop": Journey.CARD, "card": Journey.CARD,
    "banktransfer": Journey.BANK,
    "jkopay": Journey.REDIRECT, "gcash": Journey.REDIRECT, "klarna": Journey.REDIRECT,
    "paypal": Journey.REDIRECT, "venmo": Journey.REDIRECT, "cashapppay": Journey.REDIRECT,
}
# The methods whose phone journey offers the wallet's app (the document's "a) If ... App
# is installed"); DANA and Rakuten Pay are sign-in only, Korean cards card only.
APP_SWITCH = {"alipay", "wechatpay", "alipay_hk", "kakaopay", "upop", "naverpay", "payco",
              "linepay", "paypay"}
# The methods whose computer page also offers a QR for the app (the document: UnionPay's
# "scan a QR code", LINE Pay's and PayPay's "either scan a QR code or login").
SCAN_OPTION = {"upop", "linepay", "paypay"}
# QR methods whose phone page also offers signing in in the browser (Alipay: "If Alipay
# App is not installed ... authenticate ... within the same mobile browser"; Alipay HK:
# "the mobile cashier webpage ... username and password").
MOBILE_LOGIN = {"alipay", "alipay_hk"}
# What the first step of each journey shows, by view.
FIRST_STEP = {
    (Journey.QR_APP, "desktop"): 'id="qr"', (Journey.QR_APP, "mobile"): 'id="open-app"',
    (Journey.LOGIN, "desktop"): 'id="login-form"', (Journey.LOGIN, "mobile"): 'id="login-form"',
    (Journey.CARD, "desktop"): 'id="card-form"', (Journey.CARD, "mobile"): 'id="card-form"',
    (Journey.BANK, "desktop"): 'id="bank-form"', (Journey.BANK, "mobile"): 'id="bank-form"',
    (Journey.REDIRECT, "desktop"): 'id="login-hint"',
    (Journey.REDIRECT, "mobile"): 'id="login-hint"',
}


def step_of(body: str) -> str:
    found = re.search(r'id="journey" data-journey="(\w+)" data-step="(\w+)"', body)
    assert found, "no journey panel"
    return f"{found.group(1)}/{found.group(2)}"


def outcome_forms(body: str, txn_id: str) -> list[str]:
    """The outcome buttons (``#pay``, ``#fail``, ``#cancel``), each in its own POST form."""
    return re.findall(rf'action="/u_landing/{re.escape(txn_id)}/(pay|fail|cancel)">\s*'
                      r'<input type="hidden" name="view" value="\w+">\s*'
                      r'<button type="submit" id="\1"', body)


async def login(client: TestClient, txn_id: str, ua: str = DESKTOP_UA,
                expect: int = 303, **form: str) -> str:
    resp = await client.post(f"/u_landing/{txn_id}/login", data=form,
                             headers={"User-Agent": ua}, allow_redirects=False)
    assert resp.status == expect, await resp.text()
    return resp.headers["Location"] if expect == 303 else await resp.text()


async def status_of(sim: Simulator, txn_id: str) -> Status:
    return sim.ledger.by_id[txn_id].status


# -- the catalogue ------------------------------------------------------------------------


def test_catalogue_states_each_documented_journey_once():
    assert {code: v.journey for code, v in VENDORS.items()} == DOCUMENTED
    assert {code for code, v in VENDORS.items() if v.app_switch} == APP_SWITCH
    assert {code for code, v in VENDORS.items() if v.scan_option} == SCAN_OPTION
    assert {code for code, v in VENDORS.items() if v.mobile_login} == MOBILE_LOGIN
    # A QR to scan is exactly the documented QR Scan Pay methods.
    assert {c for c, v in VENDORS.items() if v.journey is Journey.QR_APP} == {
        c for c, v in VENDORS.items() if v.qr_scan}
    assert set(KOREAN_BANK_NAMES) == VENDORS["banktransfer"].banks


@pytest.mark.parametrize("code", sorted(VENDORS))
def test_every_market_has_faker_consumers(code: str):
    consumer = consumer_for("U0000000001-0123456789abcdef0123", VENDORS[code])
    assert consumer.name.strip()
    assert re.fullmatch(r"\w\w?•••@[\w.-]+", consumer.login), consumer.login
    assert re.fullmatch(r"•••• \d{4}", consumer.phone)
    assert re.fullmatch(r"•••• \d{4}", consumer.account)


def script_of(name: str) -> set[str]:
    return {unicodedata.name(c).split()[0] for c in name if c.isalpha()}


def test_consumers_are_seeded_per_payment_and_local_to_the_market():
    kakao, ids = VENDORS["kakaopay"], [f"U000000000{i}-0123456789abcdef0123" for i in range(6)]
    first = [consumer_for(i, kakao) for i in ids]
    assert first == [consumer_for(i, kakao) for i in ids]  # every load, the same person
    assert len({c.name for c in first}) > 1  # ...and another one for another payment
    assert script_of(consumer_for(ids[0], kakao).name) == {"HANGUL"}
    assert script_of(consumer_for(ids[0], VENDORS["alipay"]).name) == {"CJK"}
    assert script_of(consumer_for(ids[0], VENDORS["dana"]).name) == {"LATIN"}
    japanese = script_of(consumer_for(ids[0], VENDORS["paypay"]).name)
    assert japanese and japanese <= {"CJK", "HIRAGANA", "KATAKANA"}


@pytest.mark.slow
def test_consumers_are_the_same_in_every_process():
    """Reproducible screenshots: the seed does not depend on the process's hash seed."""
    import os
    import subprocess
    import sys

    txn_id = "U0000000001-0123456789abcdef0123"
    code = ("from citcon_sim.domain.vendors import VENDORS; "
            "from citcon_sim.web.consumers import consumer_for; "
            f"print(consumer_for({txn_id!r}, VENDORS['kakaopay']))")
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, timeout=60,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
            for seed in ("1", "2")}
    assert seen == {repr(consumer_for(txn_id, VENDORS["kakaopay"]))}


def test_masks_show_no_more_than_wallets_do():
    assert mask_email("gimyeongil@gmail.com") == "gi•••@gmail.com"
    assert last_four("010-1234-5678") == "•••• 5678"


# -- card checks (the server's; the page's script repeats them) --------------------------


@pytest.mark.parametrize("number", ["4242424242424242", "4242 4242 4242 4242",
                                    "6250-9470-0000-0014", "5555555555554444",
                                    DECLINED_CARD])
def test_luhn_accepts_valid_numbers(number: str):
    assert check_card(number, "12/30", "123", 2026, 3) == {}


def test_luhn_rejects_a_wrong_digit():
    assert luhn_ok("4242424242424242") and not luhn_ok("4242424242424241")
    assert not luhn_ok("") and not luhn_ok("42a2")


@pytest.mark.parametrize(("number", "expiry", "cvc", "errors"), [
    ("4242424242424241", "12/30", "123",
     {"card_number": "This card number is not valid: check the digits."}),
    ("4242", "12/30", "123", {"card_number": "Enter the 12 to 19 digits of the card number."}),
    ("4242x242424242424", "12/30", "123",
     {"card_number": "Enter the 12 to 19 digits of the card number."}),
    ("4242424242424242", "13/30", "123", {"expiry": "Enter the expiry date as MM/YY."}),
    ("4242424242424242", "1230", "123", {"expiry": "Enter the expiry date as MM/YY."}),
    ("4242424242424242", "02/26", "123", {"expiry": "This card has expired."}),
    ("4242424242424242", "3/26", "12", {"cvc": "Enter the 3 or 4 digit security code."}),
])
def test_card_checks_say_what_is_wrong(number, expiry, cvc, errors):
    assert check_card(number, expiry, cvc, 2026, 3) == errors


# -- every vendor's first step, desktop and mobile -------------------------------------------


@pytest.mark.parametrize("code", sorted(accepted_by("online")))
async def test_every_vendor_starts_its_own_journey(client, code: str):
    vendor = VENDORS[code]
    txn_id = await create(client, "pay", vendor=code, reference=f"order-{code}")
    for view, ua in (("desktop", DESKTOP_UA), ("mobile", IPHONE_UA)):
        body = await page(client, txn_id, ua)
        assert step_of(body) == f"{vendor.journey.value}/start"
        assert FIRST_STEP[vendor.journey, view] in body, (code, view)
        # The open-the-app button only where the document has the app, only on a phone.
        assert ('id="open-app"' in body) == (view == "mobile" and vendor.app_switch)
        # A QR on a computer: the QR journeys' own, or offered beside a form.
        assert (f'src="/payment/qr?q={txn_id}"' in body) == (view == "desktop" and (
            vendor.journey is Journey.QR_APP or vendor.scan_option))
        assert ('id="scan-option"' in body) == (view == "desktop" and vendor.scan_option)
        assert ('id="login-form"' in body) == (vendor.journey is Journey.LOGIN or (
            view == "mobile" and vendor.mobile_login))
        # The direct path stays: the three outcomes are on every first step.
        assert sorted(outcome_forms(body, txn_id)) == ["cancel", "fail", "pay"]
        consumer = consumer_for(txn_id, vendor)
        if vendor.journey is Journey.REDIRECT:
            assert text_of(body, "consumer-name") == consumer.name
            assert text_of(body, "consumer-detail") == consumer.login


async def test_multi_step_journeys_mark_the_shortcut_apart(client):
    """On a first step the outcomes are a labelled shortcut; on the last, the journey's."""
    dana = await create(client, "pay", vendor="dana")
    body = await page(client, dana)
    assert 'id="shortcut"' in body and "skip the journey" in body
    confirm = await page(client, dana, step="confirm")
    assert 'id="shortcut"' not in confirm
    assert sorted(outcome_forms(confirm, dana)) == ["cancel", "fail", "pay"]
    klarna = await page(client, await create(client, "pay", vendor="klarna"))
    assert 'id="shortcut"' not in klarna


# -- QR and app switch ---------------------------------------------------------------------


async def test_phone_opens_the_app_then_confirms_there(client, sim):
    txn_id = await create(client, "pay", vendor="alipay", mobile_result_url=
                          "https://shop.example/in-app", **URLS)
    body = await page(client, txn_id, IPHONE_UA)
    href = html.unescape(re.search(r'id="open-app" href="([^"]+)"', body).group(1))
    assert parse_qs(urlsplit(href).query) == {"q": [txn_id], "view": ["mobile"],
                                               "step": ["app"]}
    app = await page(client, txn_id, IPHONE_UA, view="mobile", step="app")
    assert step_of(app) == "qr_app/app" and 'id="app-screen"' in app
    consumer = consumer_for(txn_id, VENDORS["alipay"])
    assert text_of(app, "consumer-name") == consumer.name
    assert text_of(app, "consumer-detail") == consumer.phone
    assert sorted(outcome_forms(app, txn_id)) == ["cancel", "fail", "pay"]
    # Paying in the app: Alipay's in-app result page, as today.
    assert await act(client, txn_id, "pay", IPHONE_UA, view="mobile") == (
        "https://shop.example/in-app")
    assert await status_of(sim, txn_id) is Status.SUCCESS


async def test_desktop_qr_page_keeps_its_outcomes(client):
    txn_id = await create(client, "pay_qr", vendor="kakaopay")
    body = await page(client, txn_id)
    assert f'src="/payment/qr?q={txn_id}"' in body and 'id="shortcut"' not in body
    assert text_of(body, "pay") == "Authorise ₩13,500"


# -- sign-in ------------------------------------------------------------------------------


@pytest.mark.parametrize("ua", [DESKTOP_UA, IPHONE_UA])
async def test_sign_in_then_confirm_then_pay(client, sim, ua):
    txn_id = await create(client, "pay", vendor="naverpay", **URLS)
    view = "mobile" if ua == IPHONE_UA else "desktop"
    location = await login(client, txn_id, ua, user="kim", password="anything", view=view)
    assert parse_qs(urlsplit(location).query) == {"q": [txn_id], "view": [view],
                                                   "step": ["confirm"]}
    assert await status_of(sim, txn_id) is Status.PENDING  # signing in pays nothing
    confirm = await page(client, txn_id, ua, view=view, step="confirm")
    consumer = consumer_for(txn_id, VENDORS["naverpay"])
    assert text_of(confirm, "consumer-name") == consumer.name
    assert consumer.account in text_of(confirm, "pay-with") or consumer.account in confirm
    assert await act(client, txn_id, "pay", ua, view=view) == SUCCESS
    assert await status_of(sim, txn_id) is Status.SUCCESS


@pytest.mark.parametrize(("action", "expected", "status"), [
    ("fail", FAIL, Status.FAILED), ("cancel", CANCEL, Status.CANCELLED)])
async def test_confirm_step_other_outcomes(client, sim, action, expected, status):
    txn_id = await create(client, "pay", vendor="paypay", **URLS)
    await login(client, txn_id, user="u", password="p")
    assert await act(client, txn_id, action) == expected
    assert await status_of(sim, txn_id) is status


async def test_wrong_password_fails_the_payment(client, sim):
    txn_id = await create(client, "pay", vendor="dana", **URLS)
    assert await login(client, txn_id, user="budi", password="wrong") == FAIL
    txn = sim.ledger.by_id[txn_id]
    assert txn.status is Status.FAILED
    assert ("fail", {"reason": "wrong password"}) in [(e, d) for _, e, d in txn.events or []]
    assert text_of(await page(client, txn_id), "reason") == "wrong password"


@pytest.mark.parametrize("form", [{}, {"user": "kim"}, {"password": "p"},
                                  {"user": "   ", "password": "p"}])
async def test_sign_in_needs_both_fields(client, sim, form):
    txn_id = await create(client, "pay", vendor="payco")
    body = await login(client, txn_id, expect=422, **form)
    assert text_of(body, "login-error") == "Enter your user name and password."
    assert step_of(body) == "login/start"
    assert await status_of(sim, txn_id) is Status.PENDING


async def test_typed_user_name_comes_back_escaped(client):
    txn_id = await create(client, "pay", vendor="linepay")
    body = await login(client, txn_id, expect=422, user=XSS)
    assert XSS not in body and html.escape(XSS, quote=True) in body


async def test_sign_in_on_a_final_or_unknown_payment(client, sim):
    txn_id = await create(client, "pay", vendor="dana", **URLS)
    await act(client, txn_id, "cancel")
    location = await login(client, txn_id, user="u", password="wrong")
    assert location == f"/u_landing?q={txn_id}&view=desktop"  # the final state, unchanged
    assert await status_of(sim, txn_id) is Status.CANCELLED
    resp = await client.post("/u_landing/U0000000000-nope/login", data={"user": "u"})
    assert resp.status == 404


# -- card entry -----------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "status"), [("upop", Status.SUCCESS),
                                              ("card", Status.AUTHORIZED)])
async def test_valid_card_pays(client, sim, code, status):
    txn_id = await create(client, "pay", vendor=code, **URLS)
    assert await act(client, txn_id, "pay", **GOOD_CARD, holder="Kim") == SUCCESS
    assert await status_of(sim, txn_id) is status


async def test_declined_card_fails_the_payment(client, sim):
    txn_id = await create(client, "pay", vendor="card", **URLS)
    assert await act(client, txn_id, "pay", **{**GOOD_CARD, "card_number": DECLINED_CARD}
                     ) == FAIL
    txn = sim.ledger.by_id[txn_id]
    assert txn.status is Status.FAILED
    assert ("fail", {"reason": "card declined"}) in [(e, d) for _, e, d in txn.events or []]
    assert text_of(await page(client, txn_id), "reason") == "card declined"


async def test_invalid_card_is_the_page_again_saying_why(client, sim):
    txn_id = await create(client, "pay", vendor="upop", **URLS)
    resp = await client.post(f"/u_landing/{txn_id}/pay", allow_redirects=False, data={
        **GOOD_CARD, "card_number": "4242 4242 4242 4241", "cvc": "98765", "view": "mobile"})
    assert resp.status == 422
    body = await resp.text()
    assert text_of(body, "card_number-error") == (
        "This card number is not valid: check the digits.")
    assert text_of(body, "cvc-error") == "Enter the 3 or 4 digit security code."
    assert 'id="expiry-error" role="alert" hidden' in body
    assert 'value="4242 4242 4242 4241"' in body and "98765" not in body  # no CVC echoed
    assert 'class="view-mobile"' in body
    assert await status_of(sim, txn_id) is Status.PENDING


async def test_expiry_is_checked_on_the_virtual_clock(client, sim):
    txn_id = await create(client, "pay", vendor="card")
    month = sim.clock.now()
    this_month = f"{month.month:02d}/{month.year % 100:02d}"
    resp = await client.post(f"/u_landing/{txn_id}/pay", allow_redirects=False,
                             data={**GOOD_CARD, "expiry": this_month})
    assert resp.status == 303  # valid through the end of its month
    other = await create(client, "pay", vendor="card", reference="order-2")
    sim.advance(40 * 86400)  # over a month later: the same card has expired
    sim.ledger.by_id[other].expires_at = sim.clock.time() + 300  # keep the link open
    resp = await client.post(f"/u_landing/{other}/pay", allow_redirects=False,
                             data={**GOOD_CARD, "expiry": this_month})
    assert resp.status == 422
    assert text_of(await resp.text(), "expiry-error") == "This card has expired."


async def test_card_fields_after_the_outcome_change_nothing(client, sim):
    txn_id = await create(client, "pay", vendor="card", **URLS)
    await act(client, txn_id, "cancel")
    location = await act(client, txn_id, "pay", **{**GOOD_CARD, "card_number": "1"})
    assert location == f"/u_landing?q={txn_id}&view=desktop"
    assert await status_of(sim, txn_id) is Status.CANCELLED


# -- bank choice ---------------------------------------------------------------------------


async def test_bank_choice_lists_the_banks_then_the_bank_confirms(client, sim):
    txn_id = await create(client, "pay", vendor="banktransfer", auto_capture="true", **URLS)
    body = await page(client, txn_id)
    listed = re.findall(r'name="bank" value="(\w+)"', body)
    assert listed == list(KOREAN_BANK_NAMES)
    assert "KB Kookmin Bank" in body and "Toss Bank" in body
    bank = await page(client, txn_id, step="bank", bank="kb")
    assert step_of(bank) == "bank/bank"
    assert text_of(bank, "bank-name") == "KB Kookmin Bank"
    consumer = consumer_for(txn_id, VENDORS["banktransfer"])
    assert text_of(bank, "consumer-name") == consumer.name
    assert text_of(bank, "consumer-detail") == f"Account {consumer.account}"
    assert 'id="back"' in bank  # choose another bank
    assert await act(client, txn_id, "pay") == SUCCESS
    assert await status_of(sim, txn_id) is Status.SUCCESS


async def test_unknown_bank_is_the_choice_again(client, sim):
    txn_id = await create(client, "pay", vendor="banktransfer")
    resp = await client.get("/u_landing", params={"q": txn_id, "step": "bank",
                                                  "bank": XSS})
    assert resp.status == 422
    body = await resp.text()
    assert text_of(body, "bank-error") == "Choose your bank from the list."
    assert XSS not in body and step_of(body) == "bank/start"


async def test_bank_named_at_creation_skips_the_choice(client, sim):
    txn_id = await create(client, "pay", vendor="banktransfer", bank="shinhan", **URLS)
    body = await page(client, txn_id, IPHONE_UA)
    assert step_of(body) == "bank/bank" and text_of(body, "bank-name") == "Shinhan Bank"
    assert 'id="back"' not in body and 'id="bank-form"' not in body
    assert await act(client, txn_id, "fail", IPHONE_UA, view="mobile") == FAIL


async def test_steps_a_journey_does_not_have_fall_back_to_its_start(client):
    txn_id = await create(client, "pay", vendor="dana")
    assert step_of(await page(client, txn_id, step="bogus")) == "login/start"
    assert step_of(await page(client, txn_id, step="bank")) == "login/start"  # no bank


async def test_plain_decline_gives_no_reason(client):
    txn_id = await create(client, "pay", vendor="dana")
    await act(client, txn_id, "fail")
    body = await page(client, txn_id)
    assert "The payment was declined. No money moved." in body and 'id="reason"' not in body


async def test_final_payment_shows_its_result_at_any_step(client):
    txn_id = await create(client, "pay", vendor="dana", **URLS)
    await act(client, txn_id, "pay")
    body = await page(client, txn_id, step="confirm")
    assert text_of(body, "state") == "Payment successful"
    assert text_of(body, "method") == "DANA"
    assert text_of(body, "consumer-name") == consumer_for(txn_id, VENDORS["dana"]).name
    assert outcome_forms(body, txn_id) == []
