"""The error tables of docs/errors.md (and the README's Online API summary), checked
against the server: every row is driven over HTTP and must get the listed HTTP status,
answer shape, code and message, and leave the ledger as it was.

The rows below are the tables' one source: docs/errors.md is rendered from them (the
messages come from the simulator's own constants, so a reworded refusal shows up here
and in the docs at once). After changing a row, rewrite the docs with

    CITCON_SIM_WRITE_DOCS=1 pytest tests/test_error_tables.py
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from citcon_sim import Config, Simulator
from citcon_sim.domain import errors, ledger
from citcon_sim.faces.chop import choices as chop
from citcon_sim.faces.upi import choices as upi
from citcon_sim.scenarios import resolve_scenario

from .helpers import AUTH, PAYMENT, TOKEN, frozen_config
from .upi_support import KEY, charge_body

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "errors.md"
README = ROOT / "README.md"

Client = TestClient[Any, Any]
SMALL_BODIES = 4096  # --max-body-bytes here: an oversized body stays small to send


@pytest.fixture
def config() -> Config:
    return frozen_config(max_body_bytes=SMALL_BODIES)

# Answer shapes, as the tables name them.
ENVELOPE = "envelope"  # Online API: {"result":"fail","code":<int>,"message":…}
CHOP_FAIL = "CHOP failure"  # {"result":"fail","code":<int>,"error":…}
UPI_ENV = "UPI envelope"  # {"status":"fail",…,"data":{"code":"<4 digits>","message":…}}
REFUNDED = "`refunded: false`"  # HTTP 200, the reason in `status`
CANCELLED = "`cancelled: false`"  # HTTP 200, the reason in `status`
QR_REASON = "`reason`"  # {"result":"fail","reason":…}
STATUS_WORDS = (REFUNDED, CANCELLED, QR_REASON)


class Ctx:
    """What a row's recipe drives: the client, its simulator, and short-hands."""

    def __init__(self, client: Client, sim: Simulator) -> None:
        self.client, self.sim = client, sim
        self.before: object = None
        self._upi_token: str | None = None

    def fingerprint(self) -> object:
        led = self.sim.ledger
        return (len(led.refunds_by_id), sorted(
            (t.id, t.status.value, t.refunded_amount, t.captured_amount)
            for t in led.by_id.values()))

    async def call(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                   form: dict[str, str] | None = None, body: Any = None,
                   data: bytes | None = None) -> ClientResponse:
        """The failing call itself: the ledger is remembered just before it."""
        self.before = self.fingerprint()
        kwargs: dict[str, Any] = {"headers": AUTH if headers is None else headers}
        if form is not None:
            kwargs["data"] = form
        elif body is not None:
            kwargs["json"] = body
        elif data is not None:
            kwargs["data"] = data
        return await self.client.request(method, path, **kwargs)

    # -- setting the scene -----------------------------------------------------------------

    async def payment(self, paid: bool = True, **fields: str) -> str:
        form = {**PAYMENT, "response_format": "json", **fields}
        resp = await self.client.post("/payment/pay_qr", data=form, headers=AUTH)
        assert resp.status == 200, await resp.text()
        txn_id = str((await resp.json())["transaction_id"])
        if paid:
            await self.pay(txn_id)
        return txn_id

    async def chop_payment(self, paid: bool = True, **fields: str) -> str:
        form = {"payment_method": "alipay", "amount": "1000", "currency": "USD",
                "reference": "chop-1", **fields}
        resp = await self.client.post("/chop/chop", data=form, headers=AUTH)
        assert resp.status == 200, await resp.text()
        txn_id = str((await resp.json())["transaction_id"])
        if paid:
            await self.pay(txn_id)
        return txn_id

    async def pay(self, txn_id: str) -> None:
        resp = await self.client.post(f"/_sim/transactions/{txn_id}/pay")
        assert resp.status == 200, await resp.text()

    async def act(self, txn_id: str, action: str) -> None:
        resp = await self.client.post(f"/_sim/transactions/{txn_id}/{action}")
        assert resp.status == 200, await resp.text()

    async def advance(self, seconds: int) -> None:
        resp = await self.client.post("/_sim/clock/advance", data={"seconds": str(seconds)})
        assert resp.status == 200, await resp.text()

    def script(self, yaml_text: str) -> None:
        self.sim.scenarios.load(resolve_scenario(yaml_text, text=True), None)

    async def upi_token(self, token_type: str = "server") -> str:
        resp = await self.client.post("/v1/access-tokens", json={"token_type": token_type},
                                      headers={"Authorization": f"Bearer {KEY}"})
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["data"]["access_token"])

    async def upi_auth(self, token_type: str = "server") -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.upi_token(token_type)}"}

    async def upi_charge(self, paid: bool = True, **kwargs: Any) -> str:
        resp = await self.client.post("/v1/charges", json=charge_body(**kwargs),
                                      headers=await self.upi_auth())
        assert resp.status == 200, await resp.text()
        txn_id = str((await resp.json())["data"]["id"])
        if paid:
            await self.pay(txn_id)
        return txn_id

    async def upi(self, method: str, path: str, body: Any = None,
                  headers: dict[str, str] | None = None) -> ClientResponse:
        return await self.call(method, path, body=body,
                               headers=headers if headers is not None
                               else await self.upi_auth())


Recipe = Callable[[Ctx], Awaitable[ClientResponse]]


@dataclass(frozen=True)
class Row:
    failure: str  # markdown
    status: int
    answer: str
    code: str  # "" for the HTTP 200 refusals
    message: str  # the message starts with it; a status word is exactly it
    recipe: Recipe


@dataclass(frozen=True)
class Table:
    face: str
    title: str  # markdown heading text
    rows: tuple[Row, ...]
    note: str = ""


def online(path: str, **form: str) -> Recipe:
    async def run(ctx: Ctx) -> ClientResponse:
        return await ctx.call("POST", f"/payment/{path}", form=form)
    return run


def pay_with(**changes: str | None) -> Recipe:
    async def run(ctx: Ctx) -> ClientResponse:
        form = {k: v for k, v in {**PAYMENT, **changes}.items() if v is not None}
        return await ctx.call("POST", "/payment/pay_qr", form=form)
    return run


def chop_with(**changes: str | None) -> Recipe:
    async def run(ctx: Ctx) -> ClientResponse:
        base = {"payment_method": "alipay", "amount": "1000", "currency": "USD",
                "reference": "chop-1"}
        form = {k: v for k, v in {**base, **changes}.items() if v is not None}
        return await ctx.call("POST", "/chop/chop", form=form)
    return run


def scripted(path: str, method: str = "POST", *, upi_face: bool = False) -> Recipe:
    async def run(ctx: Ctx) -> ClientResponse:
        headers = await ctx.upi_auth() if upi_face else AUTH  # before the rule is loaded
        ctx.script("rules:\n  - api: {error: 4000}\n")
        if upi_face:
            return await ctx.upi(method, path, charge_body(), headers)
        return await ctx.call(method, path, form={"reference": "x"})
    return run


def oversized(path: str, headers: dict[str, str] | None = None) -> Recipe:
    async def run(ctx: Ctx) -> ClientResponse:
        big = b"note=" + b"n" * (ctx.sim.config.max_body_bytes + 1)
        return await ctx.call("POST", path, data=big, headers={
            **(AUTH if headers is None else headers),
            "Content-Type": "application/x-www-form-urlencoded"})
    return run


def bad_json(path: str, upi_face: bool = False) -> Recipe:
    async def run(ctx: Ctx) -> ClientResponse:
        auth = await ctx.upi_auth() if upi_face else AUTH
        return await ctx.call("POST", path, data=b"{not json",
                              headers={**auth, "Content-Type": "application/json"})
    return run


def headers_only(method: str, path: str, headers: dict[str, str],
                 form: dict[str, str] | None = None) -> Recipe:
    async def run(ctx: Ctx) -> ClientResponse:
        return await ctx.call(method, path, headers=headers, form=form)
    return run


# -- the Online API ---------------------------------------------------------------------------

NO_AUTH: dict[str, str] = {}
BASIC = {"Authorization": f"Basic {TOKEN}"}
UNAUTHORIZED = errors.Unauthorized.message
BAD = errors.BadRequest.message


async def _refund_of(ctx: Ctx, paid: bool = True, **form: str) -> ClientResponse:
    txn_id = await ctx.payment(paid=paid)
    return await ctx.call("POST", "/payment/refund",
                          form={"transaction_id": txn_id, **form})


async def _refund_cancelled(ctx: Ctx) -> ClientResponse:
    txn_id = await ctx.payment(paid=False)
    await ctx.act(txn_id, "cancel")
    return await ctx.call("POST", "/payment/refund", form={
        "transaction_id": txn_id, "amount": "100", "currency": "USD"})


async def _refund_next_day(ctx: Ctx) -> ClientResponse:
    txn_id = await ctx.payment()
    await ctx.advance(86400)  # a new day: the open balance is back to 0
    return await ctx.call("POST", "/payment/refund", form={
        "transaction_id": txn_id, "amount": "100", "currency": "USD"})


async def _cancel_twice(ctx: Ctx) -> ClientResponse:
    txn_id = await ctx.payment(paid=False)
    first = await ctx.client.post("/payment/cancel", data={"transaction_id": txn_id},
                                  headers=AUTH)
    assert (await first.json())["cancelled"] is True
    return await ctx.call("POST", "/payment/cancel", form={"transaction_id": txn_id})


async def _cancel_late(ctx: Ctx) -> ClientResponse:
    txn_id = await ctx.payment()
    await ctx.advance(25 * 3600)  # alipay's window is 24 h
    return await ctx.call("POST", "/payment/cancel", form={"transaction_id": txn_id})


async def _capture(ctx: Ctx, vendor: str = "klarna", authorise: bool = True,
                   **form: str) -> ClientResponse:
    txn_id = await ctx.payment(paid=authorise, vendor=vendor)
    return await ctx.call("POST", "/payment/capture", form={"transaction_id": txn_id, **form})


async def _qr_expired(ctx: Ctx) -> ClientResponse:
    txn_id = await ctx.payment(paid=False)
    await ctx.act(txn_id, "expire")
    return await ctx.call("GET", f"/payment/qr?q={txn_id}", headers={})


OVER = "more than was paid (or is left)"

ONLINE = (
    Table("online", "Any endpoint", (
        Row("no `Authorization` header (or an empty token)", 401, ENVELOPE, "4100",
            UNAUTHORIZED, headers_only("POST", "/payment/inquire", NO_AUTH,
                                       {"reference": "x"})),
        Row("a scheme other than Bearer (`Basic …`, `Digest …`)", 401, ENVELOPE, "4100",
            UNAUTHORIZED, headers_only("POST", "/payment/inquire", BASIC,
                                       {"reference": "x"})),
        Row("a body that is not valid JSON, UTF-8 or form", 400, ENVELOPE, "4100", BAD,
            bad_json("/payment/inquire")),
        Row("a body over `--max-body-bytes`", 413, ENVELOPE, "4100", BAD,
            oversized("/payment/inquire")),
        Row("a method the path does not take (`GET /payment/refund`)", 405, ENVELOPE,
            "4100", BAD, headers_only("GET", "/payment/refund", AUTH)),
        Row("a scenario's `api: {error: 4000}` (any documented code: its status)", 500,
            ENVELOPE, "4000", errors.UnknownError.message, scripted("/payment/inquire")),
    ), "With a merchants file, an unlisted token is a 401 too. A bug in the simulator is "
       "a 500 `4000` (and fails the test that caused it under the pytest plugin)."),
    Table("online", "`/payment/pay`, `/payment/pay_qr` (POST or GET)", (
        Row("no `vendor`, or one the Online API does not offer", 400, ENVELOPE, "4101",
            errors.VendorNotSupported.message, pay_with(vendor="bitcoin")),
        Row("`amount` 0 or negative", 400, ENVELOPE, "4102", errors.InvalidAmount.message
            + ": amount=0", pay_with(amount="0")),
        Row("`amount` with decimals, separators or symbols (`10.5`, `1,000`, `$10`)", 400,
            ENVELOPE, "4102", errors.AmountNotWhole.message, pay_with(amount="10.5")),
        Row("neither `amount` nor `trans_amount`", 400, ENVELOPE, "4102",
            errors.InvalidAmount.message, pay_with(amount=None, currency=None)),
        Row("`amount` without `currency`, or an unknown currency", 400, ENVELOPE, "4100",
            BAD, pay_with(currency="XYZ")),
        Row("no `reference`, one over 128 characters or with control characters", 400,
            ENVELOPE, "4103", errors.InvalidReference.message, pay_with(reference=None)),
        Row("`timeout` not whole seconds from 1 to 604800", 400, ENVELOPE, "4104",
            errors.InvalidTimeout.message, pay_with(timeout="0")),
        Row("`bank` not a Korean bank code (`banktransfer`)", 400, ENVELOPE, "4105",
            errors.BankNotSupported.message,
            pay_with(vendor="banktransfer", currency="KRW", bank="999")),
        Row("a URL that is not absolute http(s), or outside `--ipn-allow`", 400, ENVELOPE,
            "4100", BAD, pay_with(ipn_url="ftp://shop.example/ipn")),
        Row("`goods` that is not a JSON object, a flag that is not yes/no", 400, ENVELOPE,
            "4100", BAD, pay_with(goods="[1]")),
    )),
    Table("online", "`/payment/inquire`", (
        Row("neither `transaction_id` nor `reference`", 400, ENVELOPE, "4100", BAD,
            online("inquire")),
        Row("an unknown transaction, or another merchant's", 400, ENVELOPE, "4100",
            BAD + ": transaction not found", online("inquire", reference="nope")),
    )),
    Table("online", "`/payment/refund`", (
        Row("neither `transaction_id` nor `transaction_reference`, or both", 400,
            ENVELOPE, "4100", BAD, online("refund", amount="100", currency="USD")),
        Row("a bad or missing amount", 400, ENVELOPE, "4102", errors.InvalidAmount.message,
            lambda ctx: _refund_of(ctx, amount="9.99", currency="USD")),
        Row("an unknown transaction, or another merchant's", 200, REFUNDED, "",
            ledger.INVALID_TRANSACTION,
            online("refund", transaction_id="U0000000001-00000000000000000000",
                   amount="100", currency="USD")),
        Row("not paid (pending, failed, expired, authorised)", 200, REFUNDED, "",
            ledger.REFUND_NOT_PAID,
            lambda ctx: _refund_of(ctx, paid=False, amount="100", currency="USD")),
        Row("cancelled", 200, REFUNDED, "", ledger.REFUND_CANCELLED, _refund_cancelled),
        Row(OVER, 200, REFUNDED, "", ledger.REFUND_OVER_PAID,
            lambda ctx: _refund_of(ctx, amount="1001", currency="USD")),
        Row("a currency that is not the transaction's (on the side used)", 200, REFUNDED, "",
            ledger.REFUND_CURRENCY, lambda ctx: _refund_of(ctx, amount="100",
                                                           currency="EUR")),
        Row("more than today's open balance (merchant not `refund_exempt`)", 200, REFUNDED,
            "", ledger.REFUND_NO_BALANCE, _refund_next_day),
    ), "Citcon answers refund refusals with HTTP 200: check `refunded`, not the status."),
    Table("online", "`/payment/cancel`", (
        Row("neither `transaction_id` nor `transaction_reference`", 400, ENVELOPE, "4100",
            BAD, online("cancel")),
        Row("an unknown transaction, or another merchant's (ids `null`)", 200, CANCELLED, "",
            ledger.INVALID_TRANSACTION, online("cancel", transaction_reference="nope")),
        Row("already cancelled", 200, CANCELLED, "", ledger.CANCEL_DUPLICATE, _cancel_twice),
        Row("paid longer ago than the method's cancellation window", 200, CANCELLED, "",
            ledger.CANCEL_WINDOW, _cancel_late),
    ), "Every cancel answer is HTTP 200: check `cancelled`."),
    Table("online", "`/payment/capture`", (
        Row("neither `transaction_id` nor `reference`", 400, ENVELOPE, "4100", BAD,
            online("capture")),
        Row("an unknown transaction, or another merchant's", 400, ENVELOPE, "4100",
            BAD + ": transaction not found", online("capture", reference="nope")),
        Row("a method without delayed capture", 400, ENVELOPE, "4100", BAD,
            lambda ctx: _capture(ctx, vendor="alipay")),
        Row("not authorised (pending, or already captured)", 400, ENVELOPE, "4100", BAD,
            lambda ctx: _capture(ctx, authorise=False)),
        Row("more than is authorised", 400, ENVELOPE, "4100", BAD,
            lambda ctx: _capture(ctx, amount="1001")),
        Row("`multi_capture` for a method other than klarna", 400, ENVELOPE, "4100", BAD,
            lambda ctx: _capture(ctx, vendor="card", multi_capture="true")),
    )),
    Table("online", "`/payment/list` (`/payment/transactions`)", (
        Row("`limit` outside 1–1000 or a bad `offset`", 400, ENVELOPE, "4100", BAD,
            headers_only("GET", "/payment/list?limit=0", AUTH)),
    )),
    Table("online", "`GET /payment/qr` (no token needed)", (
        Row("an unknown id", 404, QR_REASON, "", "QR code not found.",
            headers_only("GET", "/payment/qr?q=nope", {})),
        Row("past its timeout", 200, QR_REASON, "", "QR code expired.", _qr_expired),
    )),
)

# -- CHOP ---------------------------------------------------------------------------------------


async def _chop_refund(ctx: Ctx, paid: bool = True, vendor: str = "alipay",
                       **form: str) -> ClientResponse:
    txn_id = await ctx.chop_payment(paid=paid, payment_method=vendor)
    return await ctx.call("POST", "/chop/refund", form={"transaction_id": txn_id, **form})


async def _chop_cancel_twice(ctx: Ctx) -> ClientResponse:
    txn_id = await ctx.chop_payment(paid=False)
    await ctx.client.post("/chop/cancel", data={"transaction_id": txn_id}, headers=AUTH)
    return await ctx.call("POST", "/chop/cancel", form={"transaction_id": txn_id})


async def _chop_inquire_refund(ctx: Ctx) -> ClientResponse:
    txn_id = await ctx.chop_payment()
    resp = await ctx.client.post("/chop/refund", headers=AUTH, data={
        "transaction_id": txn_id, "amount": "100", "currency": "USD", "reason": "r"})
    refund_id = (await resp.json())["id"]
    return await ctx.call("POST", "/chop/inquire", form={"transaction_id": refund_id})


def chop_call(path: str, **form: str) -> Recipe:
    async def run(ctx: Ctx) -> ClientResponse:
        return await ctx.call("POST", f"/chop/{path}", form=form)
    return run


CHOP = (
    Table("chop", "Any endpoint", (
        Row("no `Authorization` header (or an empty token)", 401, CHOP_FAIL, "4100",
            UNAUTHORIZED, headers_only("POST", "/chop/inquire", NO_AUTH, {"q": "x"})),
        Row("a scheme other than Bearer (`Basic …`)", 401, CHOP_FAIL, "4100", UNAUTHORIZED,
            headers_only("POST", "/chop/inquire", BASIC, {"q": "x"})),
        Row("a body that is not valid JSON, UTF-8 or form", 400, CHOP_FAIL, "4100", BAD,
            bad_json("/chop/inquire")),
        Row("a body over `--max-body-bytes`", 413, CHOP_FAIL, "4100", BAD,
            oversized("/chop/inquire")),
        Row("a method the path does not take (`GET /chop/refund`)", 405, CHOP_FAIL, "4100",
            BAD, headers_only("GET", "/chop/refund", AUTH)),
        Row("a scenario's `api: {error: 4000}`", 500, CHOP_FAIL, "4000",
            errors.UnknownError.message, scripted("/chop/inquire")),
    ), "CHOP's own failure shape names the text `error` (the PHP demo echoes it)."),
    Table("chop", "`/chop/chop`", (
        Row("no `payment_method`, or one CHOP does not offer", 400, CHOP_FAIL, "4101",
            errors.VendorNotSupported.message, chop_with(payment_method="bitcoin")),
        Row("`amount` 0 or negative", 400, CHOP_FAIL, "4102",
            errors.InvalidAmount.message + ": amount=0", chop_with(amount="0")),
        Row("`amount` with decimals, separators or symbols", 400, CHOP_FAIL, "4102",
            errors.AmountNotWhole.message, chop_with(amount="1.5")),
        Row("no `reference`, or a bad one", 400, CHOP_FAIL, "4103",
            errors.InvalidReference.message, chop_with(reference=None)),
        Row("a URL that is not absolute http(s), an unknown currency", 400, CHOP_FAIL,
            "4100", BAD, chop_with(ipn_url="not-a-url")),
    )),
    Table("chop", "`/chop/refund`", (
        Row("neither `transaction_id` nor `transaction_reference`, or both", 400, CHOP_FAIL,
            "4100", BAD, chop_call("refund", amount="100", currency="USD")),
        Row("an unknown transaction, or another merchant's", 200, REFUNDED, "",
            ledger.INVALID_TRANSACTION, chop_call("refund", transaction_reference="nope",
                                                  amount="100", currency="USD")),
        Row("not paid, cancelled, or " + OVER, 200, REFUNDED, "", chop.REFUND_NOT_ALLOWED,
            lambda ctx: _chop_refund(ctx, amount="1001", currency="USD")),
        Row("PayPal without a `reason`", 200, REFUNDED, "", chop.REFUND_REASON_REQUIRED,
            lambda ctx: _chop_refund(ctx, vendor="paypal", amount="100", currency="USD")),
        Row("a currency that is not the transaction's", 200, REFUNDED, "",
            ledger.REFUND_CURRENCY,
            lambda ctx: _chop_refund(ctx, amount="100", currency="EUR")),
    )),
    Table("chop", "`/chop/inquire`", (
        Row("none of `transaction_id`, `q`, `reference`", 400, CHOP_FAIL, "4100", BAD,
            chop_call("inquire")),
        Row("an unknown transaction, another merchant's, or a refund's id", 400, CHOP_FAIL,
            "4100", BAD + ": transaction not found", _chop_inquire_refund),
    )),
    Table("chop", "`/chop/cancel`", (
        Row("neither `transaction_id` nor `transaction_reference`", 400, CHOP_FAIL, "4100",
            BAD, chop_call("cancel")),
        Row("an unknown transaction (ids `null`)", 200, CANCELLED, "",
            ledger.INVALID_TRANSACTION, chop_call("cancel", transaction_id="nope")),
        Row("already cancelled", 200, CANCELLED, "", ledger.CANCEL_DUPLICATE,
            _chop_cancel_twice),
    ), "Out of the cancellation window: `Not in cancellation window`, as in the Online API."),
    Table("chop", "`GET /chop/transactions`", (
        Row("`limit` outside 1–1000 or a bad `offset`", 400, CHOP_FAIL, "4100", BAD,
            headers_only("GET", "/chop/transactions?offset=-1", AUTH)),
    )),
)

# -- UPI v1 -------------------------------------------------------------------------------------


def _upi_text(kind: tuple[int, str, str]) -> str:
    return kind[2]


async def _upi_expired(ctx: Ctx) -> ClientResponse:
    headers = await ctx.upi_auth()
    await ctx.advance(ctx.sim.config.upi_token_lifetime)
    return await ctx.upi("POST", "/v1/charges", charge_body(), headers)


async def _upi_duplicate(ctx: Ctx) -> ClientResponse:
    await ctx.upi_charge(paid=False, reference="dup-1")
    return await ctx.upi("POST", "/v1/charges", charge_body(reference="dup-1"))


async def _upi_refund(ctx: Ctx, paid: bool = True, method: str = "alipay",
                      amount: int = 50, token_type: str = "server") -> ClientResponse:
    txn_id = await ctx.upi_charge(paid=paid, method=method)
    return await ctx.upi("POST", "/v1/refunds", {"id": txn_id, "reference": "r-1",
                                                 "amount": amount},
                         await ctx.upi_auth(token_type))


async def _upi_refund_twice(ctx: Ctx) -> ClientResponse:
    txn_id = await ctx.upi_charge()
    body = {"id": txn_id, "reference": "r-1", "amount": 10}
    first = await ctx.client.post("/v1/refunds", json=body, headers=await ctx.upi_auth())
    assert first.status == 200, await first.text()
    return await ctx.upi("POST", "/v1/refunds", body)


async def _upi_cancel_twice(ctx: Ctx) -> ClientResponse:
    txn_id = await ctx.upi_charge(paid=False)
    first = await ctx.client.post("/v1/cancels", json={"id": txn_id},
                                  headers=await ctx.upi_auth())
    assert first.status == 200, await first.text()
    return await ctx.upi("POST", "/v1/cancels", {"id": txn_id})


async def _upi_capture_unauthorised(ctx: Ctx) -> ClientResponse:
    txn_id = await ctx.upi_charge()  # alipay: paid at once, nothing held
    return await ctx.upi("POST", "/v1/captures", {"id": txn_id})


async def _upi_qr_expired(ctx: Ctx) -> ClientResponse:
    resp = await ctx.client.post("/v1/charges", json=charge_body(),
                                 headers=await ctx.upi_auth())
    data = (await resp.json())["data"]
    qr = next(c["content"] for c in data["payment"]["client"] if c["format"] == "qr")
    await ctx.act(data["id"], "expire")
    return await ctx.call("GET", urlsplit(qr).path, headers={})


UPI_ANY = "/v1/charges"
UPI = (
    Table("upi", "Any endpoint", (
        Row("no `Authorization` header", 401, UPI_ENV, "4010", _upi_text(upi.UNAUTHORIZED),
            headers_only("POST", UPI_ANY, NO_AUTH)),
        Row("a scheme other than Bearer (`Basic …`)", 401, UPI_ENV, "4010",
            _upi_text(upi.UNAUTHORIZED), headers_only("POST", UPI_ANY, BASIC)),
        Row("an unknown access token, or one expired on the virtual clock", 401, UPI_ENV,
            "4010", _upi_text(upi.UNAUTHORIZED), _upi_expired),
        Row("a body that is not a JSON object", 400, UPI_ENV, "4100",
            _upi_text(upi.BAD_REQUEST), bad_json(UPI_ANY, upi_face=True)),
        Row("a body over `--max-body-bytes`", 413, UPI_ENV, "4130", _upi_text(upi.TOO_LARGE),
            oversized(UPI_ANY, {})),
        Row("a method the path does not take (`GET /v1/charges`)", 405, UPI_ENV, "4050",
            _upi_text(upi.METHOD_NOT_ALLOWED), headers_only("GET", UPI_ANY, {})),
        Row("a scenario's `api: {error: 4000}`", 500, UPI_ENV, "4000", _upi_text(upi.UNKNOWN),
            scripted(UPI_ANY, upi_face=True)),
    ), "UPI's messages are lowercase, as its recorded ones (`duplicate request`, `refund "
       "failed`) are; `data.code` is a string. No 401 was ever recorded (docs/upi.md)."),
    Table("upi", "`POST /v1/access-tokens`", (
        Row("no private key", 401, UPI_ENV, "4010", _upi_text(upi.UNAUTHORIZED),
            headers_only("POST", "/v1/access-tokens", NO_AUTH)),
        Row("`token_type` other than `server` or `client`", 400, UPI_ENV, "4100",
            _upi_text(upi.BAD_REQUEST),
            lambda ctx: ctx.call("POST", "/v1/access-tokens", body={"token_type": "root"},
                                 headers={"Authorization": f"Bearer {KEY}"})),
    ), "With a merchants file, an unlisted private key is a 401 too."),
    Table("upi", "`POST /v1/charges`", (
        Row("a missing field, a wrong type, an unknown method or client, a bad URL", 400,
            UPI_ENV, "4100", _upi_text(upi.BAD_REQUEST),
            lambda ctx: ctx.upi("POST", UPI_ANY, charge_body(method="bitcoin"))),
        Row("an amount ≤ 0, fractional (`10.5`) or huge", 400, UPI_ENV, "4100",
            _upi_text(upi.BAD_REQUEST) + ": transaction.amount must be a whole number",
            lambda ctx: ctx.upi("POST", UPI_ANY, charge_body(amount=10.5))),
        Row("a reused `transaction.reference`", 400, UPI_ENV, "4100",
            _upi_text(upi.DUPLICATE), _upi_duplicate),
    )),
    Table("upi", "`GET /v1/transactions/{id}`", (
        Row("an unknown id or reference, or another merchant's", 404, UPI_ENV, "4040",
            _upi_text(upi.NOT_FOUND), lambda ctx: ctx.upi("GET", "/v1/transactions/nope")),
    )),
    Table("upi", "`POST /v1/refunds`", (
        Row("a client token (no `refund` permission)", 403, UPI_ENV, "4030",
            _upi_text(upi.FORBIDDEN), lambda ctx: _upi_refund(ctx, token_type="client")),
        Row("an unknown charge", 404, UPI_ENV, "4040", _upi_text(upi.NOT_FOUND),
            lambda ctx: ctx.upi("POST", "/v1/refunds", {"id": "nope", "reference": "r",
                                                        "amount": 1})),
        Row("a charge not paid (recorded), " + OVER + ", another currency", 406, UPI_ENV,
            "4202", _upi_text(upi.REFUND_FAILED), lambda ctx: _upi_refund(ctx, paid=False)),
        Row("part of a UnionPay (`upop`) charge", 406, UPI_ENV, "4208",
            _upi_text(upi.PARTIAL_REFUND), lambda ctx: _upi_refund(ctx, method="upop")),
        Row("a reused refund `reference`", 400, UPI_ENV, "4100", _upi_text(upi.DUPLICATE),
            _upi_refund_twice),
    )),
    Table("upi", "`POST /v1/cancels`", (
        Row("an unknown charge", 404, UPI_ENV, "4040", _upi_text(upi.NOT_FOUND),
            lambda ctx: ctx.upi("POST", "/v1/cancels", {"id": "nope"})),
        Row("already canceled, or out of the cancellation window", 406, UPI_ENV, "4203",
            _upi_text(upi.CANCEL_FAILED), _upi_cancel_twice),
    )),
    Table("upi", "`POST /v1/captures`", (
        Row("an unknown charge", 404, UPI_ENV, "4040", _upi_text(upi.NOT_FOUND),
            lambda ctx: ctx.upi("POST", "/v1/captures", {"id": "nope"})),
        Row("nothing held: not authorised, already captured, too much", 406, UPI_ENV, "4204",
            _upi_text(upi.CAPTURE_FAILED), _upi_capture_unauthorised),
    )),
    Table("upi", "`GET /v1/qr/{token}`, `/v1/landing/{token}` (no token needed)", (
        Row("an unknown charge token", 404, UPI_ENV, "4040", _upi_text(upi.NOT_FOUND),
            headers_only("GET", "/v1/landing/nope", {})),
        Row("a charge past its time", 410, UPI_ENV, "4100", _upi_text(upi.QR_EXPIRED),
            _upi_qr_expired),
    )),
)

TABLES = ONLINE + CHOP + UPI


# -- driving every row ---------------------------------------------------------------------------


async def check(ctx: Ctx, row: Row) -> None:
    """``row``'s failure, driven over HTTP, answers as the row says and changes nothing."""
    resp = await row.recipe(ctx)
    text = await resp.text()
    assert resp.status == row.status, text
    body = json.loads(text)
    if row.answer == ENVELOPE:
        assert list(body) == ["result", "code", "message"], body
        assert body["code"] == int(row.code) and body["message"].startswith(row.message), body
    elif row.answer == CHOP_FAIL:
        assert list(body) == ["result", "code", "error"], body
        assert body["code"] == int(row.code) and body["error"].startswith(row.message), body
    elif row.answer == UPI_ENV:
        assert body["status"] == "fail" and body["app"] == "citcon_upi", body
        data = body["data"]
        assert data["code"] == row.code and data["message"].startswith(row.message), body
    elif row.answer == QR_REASON:
        assert body == {"result": "fail", "reason": row.message}
    else:
        flag = "refunded" if row.answer == REFUNDED else "cancelled"
        assert body[flag] is False and body["status"] == row.message, body
    assert ctx.fingerprint() == ctx.before, "a refused call changed the ledger"


@pytest.mark.parametrize("face", ["online", "chop", "upi"])
async def test_the_server_answers_as_the_tables_say(
    client: Client, sim: Simulator, face: str
) -> None:
    """One simulator per face, reset between rows (a simulator per row costs seconds);
    every failing row is reported, not only the first."""
    failures = []
    rows = [(t, r) for t in TABLES if t.face == face for r in t.rows]
    for table, row in rows:
        sim.reset()
        sim.scenarios.clear()
        try:
            await check(Ctx(client, sim), row)
        except AssertionError as exc:
            failures.append(f"{table.title} / {row.failure}:\n  {exc}")
    assert not failures, f"{len(failures)} of {len(rows)} rows differ:\n" + "\n".join(failures)


# -- the documents --------------------------------------------------------------------------------

FACES = {
    "online": ("Online API (`/payment/*`)",
               "Request errors are the envelope `{\"result\":\"fail\",\"code\":<int>,"
               "\"message\":<text>}`: the message starts with the code's documented text "
               "(a 401 says `Unauthorized`) and may add `: <detail>`. Refund and cancel "
               "refusals are not errors: Citcon answers them HTTP 200 with a status word."),
    "chop": ("CHOP (`/chop/*`)",
             "Failures are `{\"result\":\"fail\",\"code\":<int>,\"error\":<text>}` with the "
             "Online API's codes and statuses; refunds and cancels refuse with HTTP 200 "
             "as there."),
    "upi": ("UPI v1 (`/v1/*`)",
            "Failures are `{\"status\":\"fail\",\"app\":\"citcon_upi\",\"version\":"
            "\"v1.0.0\",\"data\":{\"code\":\"<4 digits>\",\"message\":<text>}}`, each with "
            "its own HTTP status; refusals too (406), unlike the Online API."),
}


def _cell(row: Row) -> tuple[str, str]:
    if row.answer in STATUS_WORDS:
        return "—", f"`{row.message}`"
    return row.code, f"`{row.message}…`"


def render_table(table: Table) -> str:
    lines = ["| failure | HTTP | answer | code | message or status |", "|---|---|---|---|---|"]
    for row in table.rows:
        code, message = _cell(row)
        lines.append(f"| {row.failure} | {row.status} | {row.answer} | {code} | {message} |")
    return "\n".join(lines) + "\n"


def render_doc() -> str:
    out = ["# Errors, endpoint by endpoint\n",
           "Which failures each merchant endpoint answers, with what HTTP status, and in "
           "which shape: the face's error envelope, or (as Citcon does for refunds and "
           "cancels) HTTP 200 with a status word. Every row is driven over HTTP by "
           "`tests/test_error_tables.py`, which also renders this page from its rows "
           "(`CITCON_SIM_WRITE_DOCS=1 pytest tests/test_error_tables.py` rewrites it). A "
           "failure never changes the ledger. Messages end in `…` where a detail follows "
           "(which field, which value); status words are exact. Scenarios can also script "
           "answers that are no API's own (a bare HTTP status, a 429 with `Retry-After`, a "
           "CDN's HTML error page, a dropped or cut connection): docs/scenarios.md.\n"]
    for face, (title, intro) in FACES.items():
        out.append(f"## {title}\n\n{intro}\n")
        for table in (t for t in TABLES if t.face == face):
            out.append(f"### {table.title}\n\n{render_table(table)}")
            if table.note:
                out.append(f"{table.note}\n")
    return "\n".join(out)


def render_readme_summary() -> str:
    """The README's compact Online API table: per endpoint, which failures are answered
    with a status word (HTTP 200 unless noted) and which with the envelope."""
    lines = ["| endpoint | refused with a status word (HTTP 200 unless noted) | error "
             "envelope (HTTP: codes) |", "|---|---|---|"]
    for table in (t for t in ONLINE if t.title != "Any endpoint"):
        words = ", ".join((f"{r.status} " if r.status != 200 else "") + f"`{r.message}`"
                          for r in table.rows if r.answer in STATUS_WORDS)
        codes: dict[int, list[str]] = {}
        for r in table.rows:
            if r.answer == ENVELOPE and r.code not in codes.setdefault(r.status, []):
                codes[r.status].append(r.code)
        envelope = "; ".join(f"{status}: {', '.join(sorted(c))}"
                             for status, c in codes.items())
        lines.append(f"| {table.title} | {words or '—'} | {envelope or '—'} |")
    return "\n".join(lines) + "\n"


_README_BLOCK = re.compile(r"(<!-- errors:online -->\n)(.*?)(<!-- /errors:online -->)",
                           re.DOTALL)


def test_the_docs_are_rendered_from_the_rows() -> None:
    doc = render_doc()
    readme = README.read_text(encoding="utf-8")
    match = _README_BLOCK.search(readme)
    assert match is not None, "README.md lacks the <!-- errors:online --> block"
    if os.environ.get("CITCON_SIM_WRITE_DOCS"):
        DOC.write_text(doc, encoding="utf-8")
        README.write_text(readme[:match.start(2)] + render_readme_summary()
                          + readme[match.end(2):], encoding="utf-8")
        return
    assert DOC.read_text(encoding="utf-8") == doc, "docs/errors.md is stale (see above)"
    assert match.group(2) == render_readme_summary(), "README.md's error table is stale"


def test_every_endpoint_has_a_table() -> None:
    from citcon_sim.faces import FACES as SERVED
    for face in SERVED:
        titles = " ".join(t.title for t in TABLES if t.face == face.name)
        for route in face.routes.routes:
            path = face.routes.prefix + "/" + route.path.strip("/").split("/")[0]
            assert path in titles, f"{face.name} {route.method} {route.path} has no table"
