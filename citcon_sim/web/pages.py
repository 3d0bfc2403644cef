"""Consumer-facing pages: the simulated wallet a QR code or pay URL leads to.

``GET /u_landing?q=<id>`` is the hosted page. While the payment is open it shows the
order and the outcomes a consumer can reach (pay or authorise, fail, cancel); each is a
POST answered with a 303 (post/redirect/get) to where Citcon would send the browser:
``callback_url_success``/``_fail``/``_cancel``, or ``mobile_result_url`` inside the
Alipay/WeChat Pay apps. Once the payment is final the same URL shows its final state, so
a refresh, a back button or a second click never pays twice.

Before the outcome, each method has the consumer journey the Online API document describes
(``Vendor.journey``): a QR to scan on a computer and an "open the app" step on a phone; the
wallet's sign-in form, then a confirmation; a card-number form (checked with the Luhn
algorithm here and in the browser); a choice of bank, then the bank's confirmation. The
steps are ``?step=app|confirm|bank`` on the same URL, so the page stays stateless. Every
journey ends in the same three POSTs; the first step of a multi-step journey also carries
them as a "skip the journey" shortcut, so tools that click ``#pay`` on the landing page
keep working. Whether a page is the desktop or the mobile one is decided by the
User-Agent (the Online API has no such request field), overridable with ``?view=``.

Time on these pages is the simulator's virtual clock; the page polls a small status
endpoint so a desktop checkout follows a payment made elsewhere (a phone that scanned the
QR, or the control surface), as the documented desktop flows do.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from citcon_sim.domain.commands import check_url
from citcon_sim.domain.errors import BadRequest, CitconError, TransitionError
from citcon_sim.domain.events import ConsumerReturned
from citcon_sim.domain.ledger import Status, Transaction
from citcon_sim.domain.money import exponent, to_major
from citcon_sim.domain.vendors import KOREAN_BANK_NAMES, Journey, Vendor
from citcon_sim.faces.http import SIM, json_response
from citcon_sim.faces.routes import HTML, JSON, TEXT, Reply, Route, RouteTable, read_files
from citcon_sim.web import schemas as S
from citcon_sim.web.consumers import consumer_for

if TYPE_CHECKING:
    import jinja2
    from babel import Locale

    from citcon_sim.simulator import Simulator

STATIC_DIR = Path(__file__).with_name("static")
# The package's templates and assets, read as the server's code is loaded (at start),
# never per request: a `pip install` over a running server replaces these files.
STATIC_FILES = read_files(STATIC_DIR)
TEMPLATES = {name: data.decode("utf-8")
             for name, data in read_files(Path(__file__).with_name("templates")).items()}
DEFAULT_LOCALE_NAME = "en_US"
VIEWS = ("desktop", "mobile")
STEPS = ("app", "confirm", "bank")  # the later steps of a journey (the first has none)
# Documented inputs that end a journey in the fail outcome, as a real wallet refusing them.
DECLINED_CARD = "4000000000000002"
WRONG_PASSWORD = "wrong"
MAX_INPUT = 200  # characters of a journey form field kept (a page, not a store)
# Phones, tablets and the wallets' own in-app browsers (WeChat, Alipay) get the mobile page.
_MOBILE_UA = re.compile(
    r"Mobi|Android|iPhone|iPad|iPod|Windows Phone|MicroMessenger|AlipayClient", re.IGNORECASE
)
_FINAL_TITLES = {
    Status.SUCCESS: "Payment successful",
    Status.AUTHORIZED: "Payment authorised",
    Status.FAILED: "Payment failed",
    Status.EXPIRED: "Payment expired",
    Status.CANCELLED: "Payment cancelled",
}


# jinja2 and babel are imported on the first page, not at start-up: /_sim/health and the
# merchant API never need them.
@functools.cache
def _env() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.DictLoader(TEMPLATES),
        autoescape=True,  # every merchant-supplied string is escaped unless a template says not
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # the sources are in memory and never change
    )


@functools.cache
def default_locale() -> Locale:
    from babel import Locale

    return Locale.parse(DEFAULT_LOCALE_NAME)


def __getattr__(name: str) -> Any:
    if name == "DEFAULT_LOCALE":  # kept for importers; parsed on first use
        return default_locale()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def render(name: str, status: int = 200, **context: Any) -> web.Response:
    # A per-response nonce lets the one inline script run while the CSP refuses any
    # script an escaping bug might let a merchant string inject.
    nonce = secrets.token_urlsafe(16)
    html = _env().get_template(name).render(nonce=nonce, **context)
    resp = web.Response(text=html, content_type="text/html", status=status)
    resp.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'"
    )
    resp.headers["Cache-Control"] = "no-store"  # the state changes; never show a stale page
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


# -- presentation helpers (pure, tested through the pages) -----------------------------


def money(amount: int, currency: str, locale: Locale | None = None) -> str:
    """Minor units formatted for people, with the ISO 4217 exponent (not CLDR's digits,
    which differ for a few currencies) so the page shows exactly what the API holds."""
    return _money(amount, currency, locale or default_locale())


# A polling wallet page formats the same amounts again and again (docs/performance.md
# measures babel's share). A pure function of its (hashable) arguments; bounded.
@functools.lru_cache(maxsize=4096)
def _money(amount: int, currency: str, locale: Locale) -> str:
    from babel.numbers import format_currency

    digits = exponent(currency)
    pattern = copy.copy(locale.currency_formats["standard"])
    pattern.frac_prec = (digits, digits)
    return format_currency(
        to_major(amount, currency), currency, format=pattern, locale=locale,
        currency_digits=False,
    )


def page_locale(txn: Transaction) -> Locale:
    """The documented ``locale`` (e.g. ``en-us``) when Babel knows it, else en_US."""
    from babel import Locale, UnknownLocaleError

    raw = (txn.extra or {}).get("locale")
    if isinstance(raw, str) and raw.strip():
        try:
            return Locale.parse(raw.strip().replace("-", "_"))
        except (ValueError, TypeError, UnknownLocaleError):
            pass
    return default_locale()


def _minor(value: Any) -> int | None:
    """An amount in minor units from merchant JSON: ints, or digit strings; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


class Item(msgspec.Struct, frozen=True):
    """One line of ``goods`` as the wallet page lists it."""

    name: str
    quantity: int | None
    unit: str | None
    total: str | None


def goods_items(txn: Transaction, locale: Locale) -> list[Item]:
    """The ``goods.data`` list, tolerant of whatever a merchant sends."""
    data = (txn.goods or {}).get("data")
    if not isinstance(data, list):
        return []
    rows: list[tuple[str, int | None, int | None, int | None]] = []
    for entry in data[:100]:  # a page, not a dump: a huge list is cut
        if not isinstance(entry, dict):
            continue
        name = entry.get("name")
        name = str(name) if isinstance(name, str | int | float) and str(name) else "Item"
        qty = _minor(entry.get("quantity"))
        unit = _minor(entry.get("unit_amount"))
        total = _minor(entry.get("total_amount"))
        if total is None and unit is not None and qty is not None:
            total = unit * qty
        rows.append((name[:200], qty, unit, total))
    # The documented examples state item amounts on the settlement side (amount/currency);
    # a merchant that priced in trans_currency shows it by making the items add up to it.
    currency = txn.currency
    totals = [r[3] for r in rows if r[3] is not None]
    if rows and len(totals) == len(rows) and sum(totals) == txn.trans_amount != txn.amount:
        currency = txn.trans_currency

    def fmt(value: int | None) -> str | None:
        return None if value is None else money(value, currency, locale)

    return [Item(name, qty, fmt(unit), fmt(total)) for name, qty, unit, total in rows]


def countdown_text(seconds: int) -> str:
    """The same format the page's script uses: ``m:ss``, ``h:mm:ss``, ``Nd hh:mm:ss``."""
    days, rest = divmod(max(0, seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def remaining_seconds(sim: Simulator, txn: Transaction) -> int:
    """Whole seconds left before the link expires, on the virtual clock."""
    return max(0, math.ceil(txn.expires_at - sim.clock.time()))


def on_brand(colour: str) -> str:
    """Black or white, whichever reads better on the vendor colour (Kakao's yellow...)."""
    try:
        r, g, b = (int(colour.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        return "#ffffff"
    luminance = 0.299 * r + 0.587 * g + 0.114 * b
    return "#111111" if luminance > 160 else "#ffffff"


def luhn_ok(digits: str) -> bool:
    """The Luhn check digit test every card number passes (ISO/IEC 7812)."""
    if not digits.isdigit():
        return False
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def card_digits(raw: str) -> str:
    """The number as typed, without the spaces and dashes people group it with."""
    return "".join(c for c in raw if c not in " -")


def check_card(number: str, expiry: str, cvc: str, year: int, month: int) -> dict[str, str]:
    """What is wrong with a typed card, by field (empty when it can be charged).

    ``year``/``month`` are today's on the simulator's clock: a card expired by then is
    refused, as an issuer would.
    """
    errors: dict[str, str] = {}
    digits = card_digits(number)
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        errors["card_number"] = "Enter the 12 to 19 digits of the card number."
    elif not luhn_ok(digits):
        errors["card_number"] = "This card number is not valid: check the digits."
    found = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2})\s*", expiry)
    if not found or not 1 <= int(found.group(1)) <= 12:
        errors["expiry"] = "Enter the expiry date as MM/YY."
    elif (2000 + int(found.group(2)), int(found.group(1))) < (year, month):
        errors["expiry"] = "This card has expired."
    if not re.fullmatch(r"\d{3,4}", cvc.strip()):
        errors["cvc"] = "Enter the 3 or 4 digit security code."
    return errors


def bank_choices(vendor: Vendor) -> list[tuple[str, str]]:
    """(code, name) of the banks a bank-transfer page lists, in the catalogue's order."""
    return [(code, name) for code, name in KOREAN_BANK_NAMES.items() if code in vendor.banks]


def choose_view(request: web.Request, override: str | None = None) -> str:
    """``view=mobile|desktop`` wins; otherwise the User-Agent decides."""
    wanted = (override or request.query.get("view") or "").strip().lower()
    if wanted in VIEWS:
        return wanted
    return "mobile" if _MOBILE_UA.search(request.headers.get("User-Agent", "")) else "desktop"


def _web_url(url: str | None) -> str | None:
    # The APIs only accept http(s) URLs; checked again here (a restored state, a scenario)
    # so that a page never links anywhere else.
    try:
        return check_url(url, "url")
    except BadRequest:
        return None


def landing_path(txn_id: str, view: str | None = None, **more: str) -> str:
    query = {"q": txn_id} if view is None else {"q": txn_id, "view": view}
    return f"/u_landing?{urlencode({**query, **more})}"


def next_url(txn: Transaction, view: str) -> str:
    """Where the browser goes once the payment is final, as Citcon documents it.

    Success (or authorisation): ``mobile_result_url`` inside the Alipay/WeChat apps, else
    ``callback_url_success``. Failure: ``callback_url_fail``. Cancellation:
    ``callback_url_cancel``, else the fail URL. Anything missing, or a still-open or
    expired payment: the simulator's own result page.
    """
    status = txn.status
    target: str | None = None
    if status in (Status.SUCCESS, Status.AUTHORIZED):
        if view == "mobile" and txn.vendor.in_app_result:
            target = _web_url(txn.mobile_result_url)
        target = target or _web_url(txn.callback_url_success)
    elif status is Status.FAILED:
        target = _web_url(txn.callback_url_fail)
    elif status is Status.CANCELLED:
        target = _web_url(txn.callback_url_cancel) or _web_url(txn.callback_url_fail)
    return target or landing_path(txn.id, view)


def back_to_merchant(sim: Simulator, txn: Transaction, view: str) -> web.HTTPSeeOther:
    """The redirect once the consumer acted (:func:`next_url`); a redirect to one of the
    merchant's own URLs is published (``ConsumerReturned``: behaviour coverage counts a
    consumer sent to the fail URL)."""
    target = next_url(txn, view)
    if not target.startswith("/u_landing"):
        outcome = {Status.FAILED: "fail", Status.CANCELLED: "cancel"}.get(txn.status,
                                                                          "success")
        sim.events.publish(ConsumerReturned(txn, outcome, target))
    return web.HTTPSeeOther(target)


def _merchant_name(sim: Simulator, txn: Transaction) -> str:
    merchant = sim.ledger.merchants.get(txn.token)
    return (merchant.settings.name if merchant else "") or "Merchant"


def _context(sim: Simulator, txn: Transaction, view: str, step: str = "",
             bank: str | None = None) -> dict[str, Any]:
    locale = page_locale(txn)
    vendor = txn.vendor
    remaining = remaining_seconds(sim, txn)
    authorise = vendor.delayed_capture and not txn.auto_capture
    amount = money(txn.trans_amount, txn.trans_currency, locale)
    return {
        "txn": txn,
        "vendor": vendor,
        "view": view,
        "journey": vendor.journey.value,
        "step": step,
        "consumer": consumer_for(txn.id, vendor),
        "banks": bank_choices(vendor),
        "bank": bank,
        "bank_name": KOREAN_BANK_NAMES.get(bank or ""),
        "preset_bank": _preset_bank(txn),
        "start_url": landing_path(txn.id, view),
        "app_url": landing_path(txn.id, view, step="app"),
        "errors": {},
        "form": {},
        "lang": locale.language,
        "brand": vendor.colour,
        "on_brand": on_brand(vendor.colour),
        "merchant": _merchant_name(sim, txn),
        "amount": amount,
        # The settlement side only when it differs: one amount twice is noise.
        "settlement": (
            money(txn.amount, txn.currency, locale)
            if (txn.amount, txn.currency) != (txn.trans_amount, txn.trans_currency) else None
        ),
        "items": goods_items(txn, locale),
        "authorise": authorise,
        "pay_label": ("Authorise " if authorise else "Pay ") + amount,
        "show_qr": vendor.qr_scan and view == "desktop",
        "remaining": remaining,
        "remaining_text": countdown_text(remaining),
        "frozen": sim.clock.frozen,
        "expires": sim.clock.format(txn.expires_at),
        "status_url": f"/u_landing/{txn.id}/status?{urlencode({'view': view})}",
        "title": _FINAL_TITLES.get(txn.status, ""),
        "return_url": next_url(txn, view) if txn.status is not Status.EXPIRED else None,
        "updated": sim.clock.format(txn.updated_at),
    }


# -- handlers -----------------------------------------------------------------------------


def _lookup(sim: Simulator, txn_id: str) -> Transaction | None:
    txn = sim.ledger.by_id.get(txn_id.strip())
    return None if txn is None else sim.ledger.refresh(txn)


def not_found() -> web.Response:
    return render("not_found.html", status=404, brand="#4b5563", on_brand="#ffffff",
                  lang="en")


def fail_reason(txn: Transaction) -> str | None:
    """Why a failed payment failed (a wrong password, a declined card, a scenario's
    reason), as its timeline records it; None for the plain consumer decline."""
    for _, event, detail in reversed(txn.events or []):
        if event == "fail":
            reason = (detail or {}).get("reason")
            return str(reason) if reason and reason != "declined" else None
    return None


def _preset_bank(txn: Transaction) -> str | None:
    """The bank the merchant named at creation (``bank``): its page comes first."""
    bank = (txn.extra or {}).get("bank")
    return bank if isinstance(bank, str) and bank in txn.vendor.banks else None


def _wallet(sim: Simulator, txn: Transaction, view: str, step: str = "",
            bank: str | None = None, status: int = 200, **context: Any) -> web.Response:
    """An open payment's page at one step of its journey."""
    if step == "bank" and bank is None:
        step = ""
    if not step and txn.vendor.journey is Journey.BANK and bank is None:
        bank = _preset_bank(txn)
        step = "bank" if bank else ""
    return render("wallet.html", status=status,
                  **{**_context(sim, txn, view, step, bank), **context})


async def landing(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    txn = _lookup(sim, request.query.get("q", ""))
    if txn is None:
        return not_found()
    view = choose_view(request)
    if txn.status is Status.PENDING:
        step = request.query.get("step", "")
        step = step if step in STEPS else ""
        bank: str | None = None
        if step == "bank" and txn.vendor.journey is Journey.BANK:
            bank = request.query.get("bank", "").strip().lower()
            if bank not in txn.vendor.banks:
                return _wallet(sim, txn, view, status=422,
                               errors={"bank": "Choose your bank from the list."})
        return _wallet(sim, txn, view, step, bank)
    context = _context(sim, txn, view)
    context["reason"] = fail_reason(txn) if txn.status is Status.FAILED else None
    # A fallback target may point here; "return" then would loop back to this page.
    if context["return_url"] and context["return_url"].startswith("/u_landing"):
        context["return_url"] = None
    return render("result.html", **context)


async def consumer_action(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM]
    txn_id, action = request.match_info["id"], request.match_info["action"]
    try:
        form = await request.post()
    except ValueError:  # a multipart type without boundary, undecodable text
        raise BadRequest("malformed form body") from None
    raw_view = form.get("view")
    view = choose_view(request, raw_view if isinstance(raw_view, str) else None)
    found = _lookup(sim, txn_id)
    if found is None:
        return not_found()
    reason = "declined"
    if action == "pay" and "card_number" in form and found.status is Status.PENDING:
        # The card journey's form: checked as the hosted card page would before charging.
        fields = {k: _field(form, k) for k in ("card_number", "expiry", "cvc", "holder")}
        today = sim.clock.now()
        errors = check_card(fields["card_number"], fields["expiry"], fields["cvc"],
                            today.year, today.month)
        if errors:
            fields.pop("cvc")  # a security code is never written back into a page
            return _wallet(sim, found, view, status=422, errors=errors, form=fields)
        if card_digits(fields["card_number"]) == DECLINED_CARD:
            action, reason = "fail", "card declined"
    try:
        txn = sim.ledger.consumer_act(txn_id, action, reason)
    except TransitionError:
        # A second click, a resubmitted form or an expired link: show the final state.
        raise web.HTTPSeeOther(landing_path(txn_id, view)) from None
    except CitconError:
        return not_found()
    raise back_to_merchant(sim, txn, view)


def _field(form: Any, key: str) -> str:
    value = form.get(key)
    return value[:MAX_INPUT] if isinstance(value, str) else ""


async def login(request: web.Request) -> web.StreamResponse:
    """The wallet's sign-in form: any user name and password sign in (then the consumer
    confirms the payment); the password ``wrong`` is refused and the payment fails."""
    sim = request.app[SIM]
    txn_id = request.match_info["id"]
    try:
        form = await request.post()
    except ValueError:
        raise BadRequest("malformed form body") from None
    view = choose_view(request, _field(form, "view") or None)
    txn = _lookup(sim, txn_id)
    if txn is None:
        return not_found()
    if txn.status is not Status.PENDING:
        raise web.HTTPSeeOther(landing_path(txn_id, view))
    user, password = _field(form, "user").strip(), _field(form, "password")
    if not user or not password:
        errors = {"login": "Enter your user name and password."}
        return _wallet(sim, txn, view, status=422, errors=errors, form={"user": user})
    if password == WRONG_PASSWORD:
        try:
            txn = sim.ledger.consumer_act(txn_id, "fail", "wrong password")
        except TransitionError:
            raise web.HTTPSeeOther(landing_path(txn_id, view)) from None
        raise back_to_merchant(sim, txn, view)
    raise web.HTTPSeeOther(landing_path(txn_id, view, step="confirm"))


async def status(request: web.Request) -> web.Response:
    """What the open page polls: the state, the virtual time left, and where to go next."""
    sim = request.app[SIM]
    txn = _lookup(sim, request.match_info["id"])
    if txn is None:
        return json_response({"status": None}, status=404)
    view = choose_view(request)
    return json_response(
        {
            "status": txn.status.value,
            "remaining": remaining_seconds(sim, txn),
            "frozen": sim.clock.frozen,
            "next": None if txn.status is Status.PENDING else next_url(txn, view),
        }
    )


_HTML = {HTML: S.STR}
_VIEW = S.query("view", {"enum": ["desktop", "mobile"]}, "Overrides the User-Agent.")
_STEP = S.query("step", {"enum": list(STEPS)},
                "A later step of the method's journey: `app` (in the wallet app), `confirm` "
                "(signed in), `bank` (on the chosen bank's page, with `bank`).")
_BANK = S.query("bank", {"type": "string", "maxLength": S.MAX_TEXT},
                "The bank chosen on a bank-transfer page (`step=bank`).")

ROUTES = RouteTable([
    Route("GET", "/u_landing", landing, "walletPage",
          "The simulated wallet page a pay URL or QR code leads to",
          {200: Reply("The open payment, or its final state.", _HTML),
           404: Reply("No such payment.", _HTML),
           422: Reply("`step=bank` with a bank the method does not list.", _HTML)},
          parameters=(S.query("q", {"type": "string", "maxLength": S.MAX_TEXT},
                              "The transaction id.", required=True), _VIEW, _STEP, _BANK)),
    Route("GET", "/u_landing/{id}/status", status, "walletStatus",
          "What an open wallet page polls",
          {200: Reply("State, virtual seconds left, where to go next.", {JSON: S.obj({
              "status": {"enum": [s.value for s in Status]}, "remaining": S.INT,
              "frozen": S.BOOL, "next": S.nullable(S.STR)})}),
           404: Reply("No such payment.", {JSON: S.obj({"status": {"type": "null"}})})},
          parameters=(_VIEW,)),
    Route("POST", "/u_landing/{id}/{action:pay|fail|cancel}", consumer_action, "walletAction",
          "The consumer pays (or authorises), fails or cancels",
          {303: Reply("Post/redirect/get: to the merchant's callback URL (or "
                      "`mobile_result_url`), else back to the page.", {TEXT: S.STR},
                      headers={"Location": {"required": True, "schema": S.STR}}),
           404: Reply("No such payment (a page), or no such action.",
                      {**_HTML, JSON: S.ref("ErrorEnvelope")}),
           422: Reply("The card journey's form (`card_number`...) did not pass its "
                      "checks: the page again, saying why; nothing changed.", _HTML)},
          errors=(400, 413),
          body=S.form({"view": {"enum": ["desktop", "mobile"]},
                       "card_number": S.text("Card journey: the card number (Luhn-checked; "
                                             f"{DECLINED_CARD} is declined)."),
                       "expiry": S.text("Card journey: MM/YY."),
                       "cvc": S.text("Card journey: 3 or 4 digits."),
                       "holder": S.text("Card journey: the name on the card.")}),
          body_required=False),
    Route("POST", "/u_landing/{id}/login", login, "walletLogin",
          "The wallet's sign-in form (login journeys)",
          {303: Reply("Signed in: to the confirmation step. The password `wrong`: the "
                      "payment fails, to the fail URL.", {TEXT: S.STR},
                      headers={"Location": {"required": True, "schema": S.STR}}),
           404: Reply("No such payment.", _HTML),
           422: Reply("User name or password missing: the form again.", _HTML)},
          errors=(400, 413),
          body=S.form({"view": {"enum": ["desktop", "mobile"]},
                       "user": S.text("Any user name."),
                       "password": S.text(f"Any password; `{WRONG_PASSWORD}` is refused.")}),
          body_required=False),
], tags=("pages",), static={"/u_landing/static/": STATIC_FILES})
