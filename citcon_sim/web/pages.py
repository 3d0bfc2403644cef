"""Consumer-facing pages: the simulated wallet a QR code or pay URL leads to.

``GET /u_landing?q=<id>`` is the hosted page. While the payment is open it shows the
order and the outcomes a consumer can reach (pay or authorise, fail, cancel); each is a
POST answered with a 303 (post/redirect/get) to where Citcon would send the browser:
``callback_url_success``/``_fail``/``_cancel``, or ``mobile_result_url`` inside the
Alipay/WeChat Pay apps. Once the payment is final the same URL shows its final state, so
a refresh, a back button or a second click never pays twice.

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
from citcon_sim.domain.ledger import Status, Transaction
from citcon_sim.domain.money import exponent, to_major
from citcon_sim.faces.http import SIM, json_response
from citcon_sim.faces.routes import HTML, JSON, TEXT, Reply, Route, RouteTable, read_files
from citcon_sim.web import schemas as S

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


def landing_path(txn_id: str, view: str | None = None) -> str:
    query = {"q": txn_id} if view is None else {"q": txn_id, "view": view}
    return f"/u_landing?{urlencode(query)}"


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


def _merchant_name(sim: Simulator, txn: Transaction) -> str:
    merchant = sim.ledger.merchants.get(txn.token)
    return (merchant.settings.name if merchant else "") or "Merchant"


def _context(sim: Simulator, txn: Transaction, view: str) -> dict[str, Any]:
    locale = page_locale(txn)
    vendor = txn.vendor
    remaining = remaining_seconds(sim, txn)
    return {
        "txn": txn,
        "vendor": vendor,
        "view": view,
        "lang": locale.language,
        "brand": vendor.colour,
        "on_brand": on_brand(vendor.colour),
        "merchant": _merchant_name(sim, txn),
        "amount": money(txn.trans_amount, txn.trans_currency, locale),
        # The settlement side only when it differs: one amount twice is noise.
        "settlement": (
            money(txn.amount, txn.currency, locale)
            if (txn.amount, txn.currency) != (txn.trans_amount, txn.trans_currency) else None
        ),
        "items": goods_items(txn, locale),
        "authorise": vendor.delayed_capture and not txn.auto_capture,
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


async def landing(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    txn = _lookup(sim, request.query.get("q", ""))
    if txn is None:
        return not_found()
    context = _context(sim, txn, choose_view(request))
    if txn.status is Status.PENDING:
        return render("wallet.html", **context)
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
    if _lookup(sim, txn_id) is None:
        return not_found()
    try:
        txn = sim.ledger.consumer_act(txn_id, action)
    except TransitionError:
        # A second click, a resubmitted form or an expired link: show the final state.
        raise web.HTTPSeeOther(landing_path(txn_id, view)) from None
    except CitconError:
        return not_found()
    raise web.HTTPSeeOther(next_url(txn, view))


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

ROUTES = RouteTable([
    Route("GET", "/u_landing", landing, "walletPage",
          "The simulated wallet page a pay URL or QR code leads to",
          {200: Reply("The open payment, or its final state.", _HTML),
           404: Reply("No such payment.", _HTML)},
          parameters=(S.query("q", {"type": "string", "maxLength": S.MAX_TEXT},
                              "The transaction id.", required=True), _VIEW)),
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
                      {**_HTML, JSON: S.ref("ErrorEnvelope")})},
          errors=(400, 413),
          body=S.form({"view": {"enum": ["desktop", "mobile"]}}), body_required=False),
], tags=("pages",), static={"/u_landing/static/": STATIC_FILES})
