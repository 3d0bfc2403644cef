"""Every dashboard action in headless Chromium, on a desktop and on a phone screen: create a
payment on each API face, refund (in part, in full, too much), capture, cancel, redeliver
an IPN, reset everything or one merchant, load/list/clear scenarios, and the request log
with its filters, updated live. Each test writes screenshots to ``artifacts/``.

One Chromium and one simulator (a ``SimulatorServer`` in its own thread, cleared before
each test) serve the whole module: the tests drive them through Playwright's sync API.
The page talks to the real merchant endpoints (``/payment/*``, ``/chop/*``, ``/v1/*``), so
the checks read the ledger and the journal, not the page alone.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from citcon_sim.domain.ledger import Status
from citcon_sim.domain.vendors import accepted_by
from citcon_sim.testing import SimulatorServer

from .browser_support import ARTIFACTS, CHROMIUM_ARGS, TIMEOUT_MS, chromium_path
from .helpers import IpnReceiver, frozen_config

TOKEN = "test-token"  # the page's default merchant token
OTHER = "shop-b-token-5678"
VIEWPORTS = {"desktop": (1280, 900), "phone": (375, 812)}
HOSTILE = '<img src="https://evil.example/r.png" onerror="window.__pwned=1">'


# -- one browser and one simulator for the module ----------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium binary found (apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def module_server() -> Iterator[SimulatorServer]:
    with SimulatorServer(frozen_config(port=0)) as server:
        yield server


@pytest.fixture
def server(module_server: SimulatorServer) -> Iterator[SimulatorServer]:
    module_server.clear()
    module_server.call(module_server.simulator.journal.clear)
    yield module_server
    module_server.check_assertions()  # a server-side error fails the test that caused it


@pytest.fixture
def threaded_receiver() -> Iterator[IpnReceiver]:
    """An IPN receiver set up and served in a thread of its own: Playwright's sync API
    keeps an event loop running in the test's thread, so none can be started there."""
    receiver = IpnReceiver()
    loop = asyncio.new_event_loop()
    ready: Future[str] = Future()
    runner = web.AppRunner(receiver.app(), access_log=None)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ready.set_result(f"http://127.0.0.1:{runner.addresses[0][1]}")

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    receiver.bound(ready.result(timeout=10))
    try:
        yield receiver
    finally:
        receiver.release()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@dataclass
class Ui:
    """One page at one screen size, and what went wrong on it."""

    page: Any
    viewport: str
    server: SimulatorServer
    problems: list[str] = field(default_factory=list)
    expected_errors: set[int] = field(default_factory=set)  # HTTP statuses a test provokes

    def open(self, path: str = "/_sim/") -> None:
        self.page.goto(self.server.url_for(path))
        self.page.wait_for_selector("#live[data-state=live]")

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.wait_for_timeout(50)
        self.page.screenshot(path=ARTIFACTS / f"dashboard-{name}-{self.viewport}.png",
                             full_page=True)

    def fits(self) -> None:
        """Nothing on the page is wider than the screen (no sideways scrolling)."""
        widths = self.page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], widths

    def answer(self, box: str) -> tuple[bool, str, Any]:
        """(ok, head, body) of an action's answer box, once it shows."""
        self.page.wait_for_selector(f"#{box}:not([hidden])")
        ok = self.page.get_attribute(f"#{box}", "data-ok") == "1"
        head = self.page.inner_text(f"#{box} .answer-head")
        text = self.page.inner_text(f"#{box} .answer-body")
        try:
            return ok, head, json.loads(text)
        except ValueError:
            return ok, head, text

    def press(self, button: str, box: str) -> tuple[bool, str, Any]:
        """Click ``button`` and read the answer it puts in ``box`` (not an earlier one)."""
        self.page.evaluate(f"document.getElementById('{box}').hidden = true")
        self.page.click(button)
        return self.answer(box)

    def select(self, txn_id: str) -> None:
        self.page.click(f'#rows tr[data-id="{txn_id}"]')
        self.page.wait_for_selector(f'#d-id:text("{txn_id}")')

    def check(self) -> None:
        unexpected = [p for p in self.problems if not any(
            p.startswith(f"HTTP {code}:") or f"status of {code}" in p
            for code in self.expected_errors)]
        assert unexpected == []


def _watch(ui: Ui, origin: str) -> None:
    page = ui.page
    page.on("pageerror", lambda exc: ui.problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: ui.problems.append(f"console: {msg.text}")
            if msg.type == "error" else None)
    page.on("request", lambda req: None if req.url.startswith(origin)
            else ui.problems.append(f"external request: {req.url}"))
    page.on("response", lambda resp: ui.problems.append(f"HTTP {resp.status}: {resp.url}")
            if resp.status >= 400 else None)
    page.on("dialog", lambda dialog: ui.problems.append(f"dialog: {dialog.message}"))


def make_ui(browser: Any, server: SimulatorServer, viewport: str,
            size: tuple[int, int] | None = None) -> tuple[Ui, Any]:
    width, height = size or VIEWPORTS[viewport]
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    ui = Ui(page, viewport, server)
    _watch(ui, server.url_for("/"))
    return ui, context


@pytest.fixture(params=list(VIEWPORTS))
def ui(request: pytest.FixtureRequest, browser: Any, server: SimulatorServer) -> Iterator[Ui]:
    made, context = make_ui(browser, server, request.param)
    yield made
    made.check()
    context.close()


# -- the merchant's side, from the test ----------------------------------------------------


def merchant(server: SimulatorServer, path: str, token: str = TOKEN, **form: str) -> Any:
    request = urllib.request.Request(server.url_for(path), urllib.parse.urlencode(form).encode(),
                                     {"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as resp:
        text = resp.read().decode()
    try:
        return json.loads(text)
    except ValueError:
        return text


def payment(server: SimulatorServer, token: str = TOKEN, **form: str) -> str:
    fields = {"vendor": "alipay", "amount": "2599", "currency": "USD",
              "reference": "order-1", "response_format": "json", **form}
    return str(merchant(server, "/payment/pay_qr", token, **fields)["transaction_id"])


def create_in_page(ui: Ui, face: str, vendor: str, *, amount: str = "1000",
                   currency: str = "USD", reference: str = "order-1", ipn: str = "",
                   token: str | None = None, auto_capture: bool | None = None,
                   endpoint: str | None = None) -> tuple[bool, str, Any]:
    page = ui.page
    if page.is_hidden("#create"):
        page.click("#open-create")
    page.select_option("#c-face", face)
    if endpoint is not None:
        page.select_option("#c-endpoint", endpoint)
    if token is not None:
        page.fill("#c-token", token)
    page.select_option("#c-vendor", vendor)
    page.fill("#c-amount", amount)
    page.fill("#c-currency", currency)
    page.fill("#c-reference", reference)
    page.fill("#c-ipn", ipn)
    if auto_capture is not None:
        page.set_checked("#c-auto-capture", auto_capture)
    return ui.press("#c-submit", "c-answer")


def merchant_action(ui: Ui, action: str, amount: str | None = None,
                    reason: str | None = None) -> tuple[bool, str, Any]:
    page = ui.page
    if amount is not None:
        page.fill("#m-amount", amount)
    if reason is not None:
        page.fill("#m-reason", reason)
    return ui.press(f"#m-{action}", "m-answer")


# -- create, on each face ---------------------------------------------------------------------

FACE_CASES = {
    # face: (vendor, transaction id in the answer, the create call's path)
    "online": ("wechatpay", lambda b: b["transaction_id"], "/payment/pay_qr"),
    "chop": ("paypal", lambda b: b["transaction_id"], "/chop/chop"),
    "upi": ("alipay", lambda b: b["data"]["id"], "/v1/charges"),
}


@pytest.mark.parametrize("face", list(FACE_CASES))
def test_create_a_payment_on_each_api_face(
    ui: Ui, server: SimulatorServer, threaded_receiver: IpnReceiver, face: str
) -> None:
    vendor, id_of, path = FACE_CASES[face]
    ui.open()
    ui.page.click("#open-create")
    ui.page.select_option("#c-face", face)
    # The vendors offered are the catalogue's for that API, in its order.
    offered = ui.page.eval_on_selector_all("#c-vendor option", "os => os.map(o => o.value)")
    assert offered == list(accepted_by(face))
    assert ui.page.input_value("#c-token") == TOKEN  # the documented default
    ok, head, body = create_in_page(ui, face, vendor, amount="4250", currency="USD",
                                    reference=f"{face}-order-7", ipn=threaded_receiver.url,
                                    auto_capture=True if face == "chop" else None)
    assert ok, body
    assert "HTTP 200" in head and path in head
    txn_id = id_of(body)

    # The API's own ledger has it, created by that face with what was typed.
    txn = server.simulator.ledger.by_id[txn_id]
    assert (txn.face, txn.vendor.code, txn.amount, txn.currency, txn.reference, txn.ipn_url) \
        == (face, vendor, 4250, "USD", f"{face}-order-7", threaded_receiver.url)
    # ... through the real merchant endpoints (UPI after its access-token step).
    calls = [e["path"] for e in server.requests()]
    assert calls == ({"upi": ["/v1/charges", "/v1/access-tokens"]}.get(face, [path]))

    # The row arrives over the event stream and the new payment is selected.
    ui.page.wait_for_selector(f'#rows tr[data-id="{txn_id}"]')
    ui.page.wait_for_selector(f'#d-id:text("{txn_id}")')
    assert ui.page.inner_text("#d-status") == "pending"
    assert ui.page.text_content("#d-face-label") == {
        "online": "Online API", "chop": "CHOP API", "upi": "UPI v1 API"}[face]
    ui.fits()
    ui.shot(f"create-{face}")


def test_a_refused_create_shows_the_apis_error(ui: Ui, server: SimulatorServer) -> None:
    ui.expected_errors = {400}
    ui.open()
    ok, head, body = create_in_page(ui, "online", "alipay", amount="0")
    assert not ok and "HTTP 400" in head
    assert body["code"] == 4102 and body["message"].startswith("Amount must be greater than 0")
    ok, head, body = create_in_page(ui, "upi", "alipay", amount="9.5x")
    assert not ok and "HTTP 400" in head and body["status"] == "fail"
    assert server.simulator.ledger.by_id == {}
    ui.fits()
    ui.shot("create-refused")


def test_a_repeated_reference_answers_the_existing_payment(
    ui: Ui, server: SimulatorServer
) -> None:
    """The page adds nothing of its own: without allow_duplicates the API's rule holds."""
    ui.open()
    first = create_in_page(ui, "online", "alipay", reference="same-ref", endpoint="pay")[2]
    assert "/u_landing?q=" in first["url"]  # pay answers the wallet link
    again = create_in_page(ui, "online", "alipay", reference="same-ref", endpoint="pay_qr")[2]
    assert first["transaction_id"] == again["transaction_id"]
    assert len(server.simulator.ledger.by_id) == 1
    assert [e["path"] for e in server.requests()] == ["/payment/pay_qr", "/payment/pay"]


# -- from creation to refund, without leaving the browser --------------------------------


def test_a_payment_from_creation_to_refund(ui: Ui, server: SimulatorServer,
                                           threaded_receiver: IpnReceiver) -> None:
    ui.open()
    ok, _, body = create_in_page(ui, "online", "alipay", amount="2599",
                                 reference="qa-journey-1", ipn=threaded_receiver.url)
    txn_id = body["transaction_id"]
    ui.page.wait_for_selector(f'#d-id:text("{txn_id}")')
    ui.page.click("#act-pay")  # the consumer pays
    ui.page.wait_for_selector("#d-status[data-status=success]")
    ui.page.locator("#d-timeline li[data-ipn]", has_text="HTTP 200").wait_for()
    ok, head, body = merchant_action(ui, "refund")  # the whole amount, proposed
    assert ok and body == {"id": body["id"], "transaction_id": txn_id, "refunded": True,
                           "status": "success"}
    ui.page.wait_for_selector("#d-status[data-status=refunded]")
    assert ui.page.inner_text("#d-status") == "refunded"
    assert server.simulator.ledger.by_id[txn_id].refunded_amount == 2599
    ui.fits()
    ui.shot("journey-refunded")


# -- refund, capture, cancel from the detail panel ------------------------------------


def test_refund_in_part_in_full_and_too_much(ui: Ui, server: SimulatorServer) -> None:
    txn_id = payment(server, amount="2599")
    server.pay(txn_id)
    ui.open()
    ui.select(txn_id)
    assert ui.page.input_value("#m-amount") == "2599"
    assert ui.page.inner_text("#m-amount-shown") == "= $25.99"
    ok, head, body = merchant_action(ui, "refund", "1000", reason="damaged box")
    assert ok and "POST /payment/refund" in head and body["refunded"] is True
    row = ui.page.locator(f'#rows tr[data-id="{txn_id}"]')
    row.locator(".badge:text-is('part refunded')").wait_for()
    ui.page.wait_for_selector("#d-status[data-status=refunded]")
    assert ui.page.input_value("#m-amount") == "1599"  # what is left
    txn = server.simulator.ledger.by_id[txn_id]
    assert txn.refunded_amount == 1000
    ui.shot("refund-partial")

    ok, head, body = merchant_action(ui, "refund", "2000")  # more than is left: refused
    assert not ok and "HTTP 200" in head
    assert body == {"refunded": False, "status": "refund amount greater than payment amount"}
    assert txn.refunded_amount == 1000
    ui.shot("refund-refused")

    ok, _, body = merchant_action(ui, "refund", "1599")
    assert ok and body["refunded"] is True
    row.locator(".badge:text-is('refunded')").wait_for()
    assert txn.refunded_amount == 2599
    ui.page.wait_for_selector("#m-refund", state="hidden")  # nothing is left to refund
    assert ui.page.is_visible("#m-cancel")
    ui.fits()
    ui.shot("refund-full")


@pytest.mark.parametrize("face", ["chop", "upi"])
def test_refund_through_the_face_that_created_it(
    ui: Ui, server: SimulatorServer, face: str
) -> None:
    ui.open()
    body = create_in_page(ui, face, "alipay", amount="5000", reference=f"{face}-r")[2]
    txn_id = body["transaction_id"] if face == "chop" else body["data"]["id"]
    ui.page.wait_for_selector(f'#d-id:text("{txn_id}")')
    ui.page.click("#act-pay")
    ui.page.wait_for_selector("#d-status[data-status=success]")
    ok, head, answer = merchant_action(ui, "refund", "1200", reason="changed mind")
    assert ok, answer
    assert {"chop": "POST /chop/refund", "upi": "POST /v1/refunds"}[face] in head
    assert server.simulator.ledger.by_id[txn_id].refunded_amount == 1200
    assert server.requests()[0]["path"] == {"chop": "/chop/refund", "upi": "/v1/refunds"}[face]


@pytest.mark.parametrize("face", ["online", "upi"])
def test_capture_an_authorisation(ui: Ui, server: SimulatorServer, face: str) -> None:
    ui.open()
    body = create_in_page(ui, face, "klarna", amount="8900", reference=f"kl-{face}",
                          auto_capture=False)[2]
    txn_id = body["transaction_id"] if face == "online" else body["data"]["id"]
    ui.page.wait_for_selector(f'#d-id:text("{txn_id}")')
    assert ui.page.inner_text("#act-pay") == "Authorise"
    ui.page.click("#act-pay")
    ui.page.wait_for_selector("#d-status[data-status=authorized]")
    assert ui.page.is_visible("#m-capture") and ui.page.is_hidden("#m-refund")
    assert ui.page.input_value("#m-amount") == "8900"
    ok, head, answer = merchant_action(ui, "capture", "5000")
    assert ok, answer
    ui.page.wait_for_selector("#d-status[data-status=success]")
    txn = server.simulator.ledger.by_id[txn_id]
    assert txn.status is Status.SUCCESS and txn.captured_amount == 5000
    ui.fits()
    ui.shot(f"capture-{face}")


def test_chop_has_no_capture_call(ui: Ui, server: SimulatorServer) -> None:
    ui.open()
    txn_id = create_in_page(ui, "chop", "klarna", reference="kl-chop",
                            auto_capture=False)[2]["transaction_id"]
    ui.page.wait_for_selector(f'#d-id:text("{txn_id}")')
    ui.page.click("#act-pay")
    ui.page.wait_for_selector("#d-status[data-status=authorized]")
    assert ui.page.is_hidden("#m-capture") and ui.page.is_visible("#m-cancel")
    assert "CHOP has no capture call" in ui.page.inner_text("#m-note")


@pytest.mark.parametrize("face", ["online", "upi"])
def test_cancel_a_pending_payment(ui: Ui, server: SimulatorServer, face: str) -> None:
    ui.open()
    body = create_in_page(ui, face, "alipay", reference=f"cancel-{face}")[2]
    txn_id = body["transaction_id"] if face == "online" else body["data"]["id"]
    ui.page.wait_for_selector(f'#d-id:text("{txn_id}")')
    ok, head, answer = merchant_action(ui, "cancel")
    assert ok, answer
    if face == "online":
        assert answer["cancelled"] is True and answer["status"] == "Order cancelled"
    ui.page.wait_for_selector("#d-status[data-status=cancelled]")
    ui.page.locator(f'#rows tr[data-id="{txn_id}"] .badge:text-is("cancelled")').wait_for()
    assert server.simulator.ledger.by_id[txn_id].status is Status.CANCELLED
    assert ui.page.is_hidden("#d-merchant-acts")  # nothing is left to do
    ui.shot(f"cancel-{face}")


def test_a_merchant_action_with_the_wrong_token_shows_the_apis_answer(
    ui: Ui, server: SimulatorServer
) -> None:
    txn_id = payment(server)
    server.pay(txn_id)
    ui.open()
    ui.select(txn_id)
    ui.page.fill("#m-token", "someone-else")
    ok, head, body = merchant_action(ui, "refund", "100")
    assert not ok and body == {"refunded": False, "status": "Invalid transaction"}
    assert server.simulator.ledger.by_id[txn_id].refunded_amount == 0


# -- the consumer's side, the clock and the list's filters --------------------------------


def test_consumer_actions_the_clock_and_the_filters(ui: Ui, server: SimulatorServer) -> None:
    fails, expires, cancels = (payment(server, reference=r) for r in ("c-fail", "c-exp", "c-can"))
    theirs = payment(server, OTHER, reference="theirs")
    ui.open()
    for txn_id, action, status in ((fails, "fail", "fail"), (expires, "expire", "expired"),
                                   (cancels, "cancel", "cancelled")):
        ui.select(txn_id)
        ui.page.click(f"#act-{action}")
        ui.page.wait_for_selector(f"#d-status[data-status={status}]")
        assert server.simulator.ledger.by_id[txn_id].status.value == status

    clock = server.simulator.clock  # shared by the module's tests: read, not assumed
    start = clock.time()
    ui.page.click("[data-advance='3600']")
    ui.page.wait_for_selector(f'#clock-time:text("{clock.format(start + 3600)}")')
    ui.page.fill("#advance-custom", "90s")
    ui.page.press("#advance-custom", "Enter")
    ui.page.wait_for_selector(f'#clock-time:text("{clock.format(start + 3690)}")')
    assert clock.time() == start + 3690

    ui.page.select_option("#merchant", label="sh…78 (1)")
    ui.page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 1")
    assert ui.page.get_attribute("#rows tr", "data-id") == theirs
    ui.page.select_option("#merchant", "")
    ui.page.fill("#search", "c-exp")
    ui.page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 1")
    assert ui.page.get_attribute("#rows tr", "data-id") == expires
    ui.fits()
    ui.shot("consumer-and-clock")


# -- IPN redelivery --------------------------------------------------------------------------


def test_redeliver_an_ipn(ui: Ui, server: SimulatorServer,
                          threaded_receiver: IpnReceiver) -> None:
    txn_id = payment(server, ipn_url=threaded_receiver.url)
    server.pay(txn_id)
    server.wait_for_ipn(txn_id)
    ui.open(f"/_sim/#txn={txn_id}")
    ui.page.wait_for_selector(f'#d-id:text("{txn_id}")')
    ok, head, body = ui.press("#d-ipn button.redeliver", "ipn-answer")
    assert ok and "/redeliver" in head
    assert body["attempt"]["status"] == 200 and body["attempt"]["trigger"] == "redeliver"
    posts = threaded_receiver.posts
    assert len(posts) == 2 and posts[0]["notify_id"] == posts[1]["notify_id"]
    ui.page.locator("#d-timeline li[data-ipn]", has_text="(redeliver)").wait_for()
    ui.fits()
    ui.shot("redeliver")


# -- reset -----------------------------------------------------------------------------------


def test_reset_everything(ui: Ui, server: SimulatorServer) -> None:
    payment(server, reference="a-1")
    payment(server, OTHER, reference="b-1")
    ui.open()
    ui.page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 2")
    ui.page.click("#open-reset")
    assert ui.page.input_value("#reset-scope") == ""
    ui.page.click("#reset-go")
    assert ui.page.is_visible("#reset-yes")  # asks first, in the page
    ui.shot("reset-confirm")
    ok, head, body = ui.press("#reset-yes", "reset-answer")
    assert ok and body == {"reset": True, "scope": "all"}
    ui.page.wait_for_selector("#empty", state="visible")
    assert server.simulator.ledger.by_id == {}


def test_reset_keeps_it_when_not_confirmed(ui: Ui, server: SimulatorServer) -> None:
    payment(server)
    ui.open()
    ui.page.click("#open-reset")
    ui.page.click("#reset-go")
    ui.page.click("#reset-no")
    assert ui.page.is_visible("#reset-go") and ui.page.is_hidden("#reset-answer")
    assert len(server.simulator.ledger.by_id) == 1


def test_reset_one_merchant(ui: Ui, server: SimulatorServer) -> None:
    mine = payment(server, reference="a-1")
    theirs = payment(server, OTHER, reference="b-1")
    ui.open()
    ui.page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 2")
    ui.select(mine)  # about to be forgotten: the detail closes, and is not asked for again
    details: list[str] = []
    ui.page.on("request", lambda r: details.append(r.url) if mine in r.url else None)
    ui.page.click("#open-reset")
    ui.page.select_option("#reset-scope", label="merchant te…en (1)")
    ui.page.click("#reset-go")
    ok, _, body = ui.press("#reset-yes", "reset-answer")
    assert ok and body["scope"] == "merchant"
    ui.page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 1")
    ui.page.wait_for_selector("#detail-empty", state="visible")
    ui.page.wait_for_timeout(300)  # time for a refetch the page should not make
    assert details == [] and mine not in ui.page.url
    assert ui.page.get_attribute("#rows tr", "data-id") == theirs
    assert list(server.simulator.ledger.by_id) == [theirs]
    options = ui.page.eval_on_selector_all("#reset-scope option", "os => os.map(o => o.text)")
    assert options == ["every merchant", "merchant sh…78 (1)"]
    ui.fits()
    ui.shot("reset-one")


# -- scenarios -------------------------------------------------------------------------------

OWN = """name: my-rules
rules:
  - name: refunds are refused
    match: {endpoint: refund}
    refund: {status: insufficient open balance}
"""


def test_scenarios_load_list_and_clear(ui: Ui, server: SimulatorServer) -> None:
    ui.expected_errors = {400}
    ui.open()
    ui.page.click("#tab-btn-scenarios")
    ui.page.wait_for_selector("#scn-list :text('No scenario loaded.')")
    magic = "on" if server.config.magic_amounts else "off"  # off unless configured
    assert f"Magic amounts are {magic}" in ui.page.inner_text("#scn-magic")

    ui.page.select_option("#scn-name", "declines")
    ok, head, body = ui.press("#scn-load", "scn-answer")
    assert ok and body["loaded"]["name"] == "declines" and body["scope"] == "all"
    ui.page.wait_for_selector(".scn-item[data-name=declines]")

    # Pasted YAML, for one merchant.
    ui.page.select_option("#scn-name", "")
    ui.page.fill("#scn-text", OWN)
    ui.page.fill("#scn-token", TOKEN)
    assert ui.press("#scn-load", "scn-answer")[0]
    ui.page.wait_for_selector(".scn-item[data-name=my-rules]")
    assert "merchant" in ui.page.inner_text(".scn-item[data-name=my-rules]")
    book = server.simulator.scenarios
    assert [s.name for s in book.global_scenarios] == ["declines"]
    assert [s.name for s in book.by_token[TOKEN]] == ["my-rules"]
    ui.shot("scenarios-loaded")

    # A broken one: the API's 400, shown as it came, and nothing loaded.
    ui.page.fill("#scn-text", "rules: [")
    ok, head, _ = ui.press("#scn-load", "scn-answer")
    assert not ok and "HTTP 400" in head

    # Loaded from elsewhere: the list follows the event stream.
    ui.server.load_scenario("flaky-ipn")
    ui.page.wait_for_selector(".scn-item[data-name=flaky-ipn]")

    ui.page.fill("#scn-token", "")
    ok, head, body = ui.press("#scn-clear", "scn-answer")
    assert ok and body == {"cleared": True, "scope": "all"}
    ui.page.wait_for_selector("#scn-list :text('No scenario loaded.')")
    assert book.global_scenarios == [] and not book.by_token.get(TOKEN)
    ui.fits()
    ui.shot("scenarios-cleared")


# -- the request log -----------------------------------------------------------------------------


def test_request_log_shows_bodies_filters_and_updates_live(
    ui: Ui, server: SimulatorServer
) -> None:
    mine = payment(server, reference="log-mine")
    merchant(server, "/payment/inquire", transaction_id=mine)
    theirs = payment(server, OTHER, reference="log-theirs")
    ui.open()
    ui.page.click("#tab-btn-requests")
    entries = ui.page.locator("#req-list > li")
    entries.nth(2).wait_for()
    assert entries.count() == 3

    # Request and response bodies, the token a hint only.
    first = entries.nth(0)
    first.locator("summary").click()
    assert "/payment/pay_qr" in first.inner_text()
    assert "log-theirs" in first.locator(".req-request").inner_text()
    assert theirs in first.locator(".req-response").inner_text()
    assert "sh…78" in first.inner_text()
    shown = ui.page.inner_html("#tab-requests")
    assert TOKEN not in shown and OTHER not in shown
    ui.shot("requests")

    # By merchant: the list of hints.
    ui.page.select_option("#req-merchant", label="te…en (1)")
    ui.page.wait_for_function("() => document.querySelectorAll('#req-list > li').length === 2")
    assert "log-theirs" not in ui.page.inner_text("#req-list")
    # By transaction.
    ui.page.fill("#req-txn", mine)
    ui.page.wait_for_function("() => document.querySelectorAll('#req-list > li').length === 2")
    ui.page.select_option("#req-merchant", "")
    ui.page.fill("#req-txn", theirs)
    ui.page.wait_for_function("() => document.querySelectorAll('#req-list > li').length === 1")

    # A call made elsewhere shows up at once (the event stream), the filter still applied.
    merchant(server, "/payment/inquire", OTHER, transaction_id=theirs)
    merchant(server, "/payment/inquire", transaction_id=mine)  # filtered out
    ui.page.wait_for_function("() => document.querySelectorAll('#req-list > li').length === 2")
    assert "/payment/inquire" in ui.page.inner_text("#req-list > li:first-child")

    ui.page.click("#req-clear")
    ui.page.wait_for_function("() => document.querySelectorAll('#req-list > li').length === 5")
    ui.fits()
    ui.shot("requests-filtered")


def test_request_log_from_a_transactions_detail(ui: Ui, server: SimulatorServer) -> None:
    mine = payment(server, reference="from-detail")
    payment(server, reference="someone-else", allow_duplicates="yes")
    ui.open()
    ui.select(mine)
    ui.page.click("#d-requests")
    ui.page.wait_for_selector("#tab-requests:not([hidden])")
    assert ui.page.input_value("#req-txn") == mine
    ui.page.wait_for_function("() => document.querySelectorAll('#req-list > li').length === 1")


# -- phones: nothing clipped sideways ---------------------------------------------------------


@pytest.mark.parametrize("width", [375, 320])
def test_nothing_scrolls_sideways_on_a_phone(browser: Any, server: SimulatorServer,
                                             width: int) -> None:
    long_ref = "order-" + "x" * 90
    paid = payment(server, reference=long_ref, note="n" * 200,
                   ipn_url="http://127.0.0.1:9/an/ipn/url/that/is/long/enough/to/wrap")
    server.pay(paid)
    payment(server, OTHER, reference="kl-1", vendor="klarna", amount="890000000",
            currency="KRW")
    ui, context = make_ui(browser, server, f"{width}", (width, 740))
    try:
        ui.open(f"/_sim/#txn={paid}")
        ui.page.wait_for_selector(f'#d-id:text("{paid}")')
        ui.fits()
        # The three tabs show whole, with no scrolling of their own.
        assert ui.page.eval_on_selector(".tabs", "t => t.scrollWidth <= t.clientWidth")
        ui.page.click("#open-create")
        ui.fits()
        ui.page.click("#open-reset")
        ui.fits()
        ui.shot("phone-transactions")
        ui.page.click("#tab-btn-requests")
        ui.page.locator("#req-list > li").first.locator("summary").click()
        ui.fits()
        ui.shot("phone-requests")
        ui.page.click("#tab-btn-scenarios")
        ui.page.wait_for_selector("#scn-magic:not(:empty)")
        ui.fits()
        ui.shot("phone-scenarios")
        ui.check()
    finally:
        context.close()


# -- hostile values and a locked /_sim/ ---------------------------------------------------------


def test_hostile_values_in_the_request_log_and_answers_stay_text(
    browser: Any, server: SimulatorServer
) -> None:
    ui, context = make_ui(browser, server, "desktop")
    try:
        ui.open()
        assert create_in_page(ui, "online", "alipay", reference=HOSTILE)[0]
        ui.page.click("#tab-btn-requests")
        ui.page.locator("#req-list > li summary").first.click()
        sent = json.loads(ui.page.inner_text("#req-list .req-request"))
        assert sent["reference"] == HOSTILE
        ui.page.click("#tab-btn-scenarios")
        ui.page.fill("#scn-text", json.dumps({"name": HOSTILE, "description": HOSTILE,
                                              "rules": [{"name": HOSTILE, "match": {},
                                                         "api": {"latency_ms": 1}}]}))
        ui.page.click("#scn-load")
        ui.page.wait_for_selector(".scn-item")
        assert HOSTILE in ui.page.inner_text("#scn-list")
        assert ui.page.evaluate("window.__pwned") is None
        assert ui.page.locator("img").count() == 0
        ui.check()  # nothing was fetched from evil.example either
    finally:
        context.close()


def test_everything_works_behind_an_admin_token(browser: Any) -> None:
    with SimulatorServer(frozen_config(port=0, admin_token="s3cret-admin")) as locked:
        ui, context = make_ui(browser, locked, "desktop")
        try:
            ui.open("/_sim/?admin_token=s3cret-admin")
            assert "admin_token" not in ui.page.url
            ok, _, body = create_in_page(ui, "online", "alipay", reference="locked-1")
            txn_id = body["transaction_id"]
            ui.page.wait_for_selector(f'#d-id:text("{txn_id}")')
            ui.page.click("#act-pay")
            ui.page.wait_for_selector("#d-status[data-status=success]")
            assert merchant_action(ui, "refund", "100")[0]
            ui.page.click("#tab-btn-requests")
            ui.page.wait_for_function(
                "() => document.querySelectorAll('#req-list > li').length === 2")
            ui.page.click("#tab-btn-scenarios")
            ui.page.select_option("#scn-name", "declines")
            assert ui.press("#scn-load", "scn-answer")[0]
            ui.page.click("#tab-btn-transactions")
            ui.page.click("#open-reset")
            ui.page.select_option("#reset-scope", index=1)
            ui.page.click("#reset-go")
            assert ui.press("#reset-yes", "reset-answer")[0]
            assert locked.simulator.ledger.by_id == {}
            ui.check()
        finally:
            context.close()


# -- one visual language ---------------------------------------------------------------------

THEME = {"--bg": "#f6f7f9", "--card": "#fff", "--border": "#e3e6ea", "--text": "#1f2328",
         "--muted": "#656d76", "--accent": "#1f6feb", "--ok": "#1a7f37", "--warn": "#9a6700",
         "--bad": "#cf222e", "--refund": "#8250df", "--neutral": "#6e7781", "--radius": "8px"}


def rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def test_status_pills_take_the_themes_colours(browser: Any, server: SimulatorServer) -> None:
    """theme.css's custom properties are what the page uses: a status pill's text is its
    state's colour (paid green, pending amber, failed and expired red, refunded purple,
    cancelled grey), in the system font stack."""
    states: dict[str, str] = {}
    states["success"] = payment(server, reference="s")
    server.pay(states["success"])
    states["pending"] = payment(server, reference="p")
    states["fail"] = payment(server, reference="f")
    server.fail(states["fail"])
    states["expired"] = payment(server, reference="e")
    server.expire(states["expired"])
    states["cancelled"] = payment(server, reference="c")
    server.cancel(states["cancelled"])
    states["refunded"] = payment(server, reference="r")
    server.pay(states["refunded"])
    merchant(server, "/payment/refund", transaction_id=states["refunded"], amount="2599",
             currency="USD")
    ui, context = make_ui(browser, server, "desktop")
    try:
        ui.open()
        ui.page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 6")
        root = ui.page.evaluate("""names => { const s = getComputedStyle(document.documentElement);
            return Object.fromEntries(names.map(n => [n, s.getPropertyValue(n).trim()])); }""",
                                list(THEME))
        assert root == THEME
        colours = {"success": "--ok", "pending": "--warn", "fail": "--bad",
                   "expired": "--bad", "refunded": "--refund", "cancelled": "--neutral"}
        for state, txn_id in states.items():
            pill = ui.page.locator(f'#rows tr[data-id="{txn_id}"] .badge')
            assert pill.get_attribute("data-status") == state
            colour = pill.evaluate("el => getComputedStyle(el).color")
            assert colour == rgb(THEME[colours[state]]), state
        font = ui.page.evaluate("getComputedStyle(document.body).fontFamily")
        assert font.startswith("system-ui")
        primary = ui.page.locator("#open-create").evaluate(
            "el => getComputedStyle(el).backgroundColor")
        assert primary == rgb(THEME["--accent"])
        sheets = ui.page.evaluate("[...document.styleSheets].map(s => s.href)")
        assert [s.split("?")[0].rsplit("/", 1)[1] for s in sheets] == [
            "theme.css", "dashboard.css"]
        ui.shot("status-pills")
        ui.check()
    finally:
        context.close()
