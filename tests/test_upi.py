"""UPI v1 (/v1): the recorded sandbox traffic replayed (docs/evidence/upi-chop.md §1),
access tokens on the virtual clock, inquiry, refunds, cancels, captures, bad input, the
JSON IPN and its SHA-256 signature."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from citcon_sim import Config, Simulator, create_app, verify_upi_ipn
from citcon_sim.domain.ids import charge_id, charge_token
from citcon_sim.domain.ledger import Status
from citcon_sim.domain.redaction import token_hint
from citcon_sim.domain.signing import sign_upi_ipn

from .helpers import START, frozen_config, with_magic_amounts
from .upi_support import (
    KEY,
    JsonReceiver,
    bearer,
    charge,
    charge_body,
    independent_sign,
    token_for,
    upi,
)

DUPLICATE = {"code": "4100", "message": "duplicate request"}
REFUND_FAILED = "4202"


@pytest.fixture
async def token(client: TestClient[Any, Any]) -> str:
    return await token_for(client)


@pytest.fixture
async def receiver(aiohttp_server: Callable[..., Any]) -> AsyncIterator[JsonReceiver]:
    found = JsonReceiver()
    server: TestServer = await aiohttp_server(found.app(), host="127.0.0.1")
    found.bound(str(server.make_url("")))
    yield found
    found.release()


def ledger_size(sim: Simulator) -> tuple[int, int]:
    return len(sim.ledger.by_id), len(sim.ledger.refunds_by_id)


# -- access tokens (§1.1) ----------------------------------------------------------------


async def test_access_token_shape_as_recorded(client, sim):
    status, answer = await upi(client, "POST", "/v1/access-tokens", KEY,
                               {"token_type": "server"})
    assert status == 200
    data = answer["data"]
    assert list(data) == ["access_token", "token_type", "expiry", "permission"]
    assert data["access_token"].startswith("UPI_") and len(data["access_token"]) > 40
    assert data["token_type"] == "server"
    assert data["expiry"] == int(START.timestamp()) + 86400  # virtual clock, 24 h
    assert data["permission"] == ["inquiry", "charge", "vault", "consult",
                                  "encryption-config", "refund", "capture"]


async def test_success_answers_are_not_cacheable_as_recorded(client, token):
    resp = await client.post("/v1/charges", json=charge_body(), headers=bearer(token))
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
    assert (resp.headers["Expires"], resp.headers["Pragma"]) == ("0", "no-cache")
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"


async def test_bare_private_key_and_client_tokens_work(client):
    resp = await client.post("/v1/access-tokens", json={"token_type": "client"},
                             headers={"Authorization": KEY})  # shopeo sends no "Bearer"
    data = (await resp.json())["data"]
    assert resp.status == 200 and data["token_type"] == "client"
    await charge(client, data["access_token"])


async def test_each_private_key_is_its_own_merchant(client, sim):
    mine, theirs = await token_for(client, "key-a"), await token_for(client, "key-b")
    made = await charge(client, mine, reference="same-ref")
    await charge(client, theirs, reference="same-ref")  # no duplicate across merchants
    status, answer = await upi(client, "GET", f"/v1/transactions/{made['id']}", theirs)
    assert status == 404 and answer["data"]["code"] == "4040"
    assert sim.ledger.by_id[made["id"]].token == "key-a"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"},
                                     {"Authorization": "Bearer UPI_not-a-token"},
                                     {"Authorization": f"Bearer {KEY}"}])
async def test_charges_need_a_valid_access_token(client, sim, headers):
    resp = await client.post("/v1/charges", json=charge_body(), headers=headers)
    answer = await resp.json()
    assert resp.status == 401 and answer["status"] == "fail"
    assert answer["data"]["code"] == "4010"
    assert ledger_size(sim) == (0, 0)


async def test_access_token_expires_after_24_hours_of_virtual_time(client, sim, token):
    await charge(client, token, reference="before")
    resp = await client.post("/_sim/clock/advance", data={"seconds": str(86400 - 1)})
    assert resp.status == 200
    await charge(client, token, reference="still-valid")
    sim.advance(1)
    status, answer = await upi(client, "POST", "/v1/charges", token,
                               charge_body(reference="too-late"))
    assert status == 401 and answer["data"]["code"] == "4010"
    assert "expired" in answer["data"]["message"]
    await charge(client, await token_for(client), reference="fresh-token")


@pytest.fixture
def strict_config(tmp_path: Path) -> Config:
    path = tmp_path / "merchants.yaml"
    path.write_text(f"merchants:\n  - token: {KEY}\n", encoding="utf-8")
    return frozen_config(merchants_file=path)


async def test_strict_mode_only_listed_private_keys(aiohttp_client, strict_config):
    client = await aiohttp_client(create_app(Simulator(strict_config)))
    status, answer = await upi(client, "POST", "/v1/access-tokens", "sk-unlisted",
                               {"token_type": "server"})
    assert status == 401 and answer["data"]["code"] == "4010"
    await charge(client, await token_for(client, KEY))


async def test_token_lifetime_is_a_setting(aiohttp_client):
    sim = Simulator(frozen_config(upi_token_lifetime=60))
    client = await aiohttp_client(create_app(sim))
    token = await token_for(client)
    sim.advance(60)
    status, _ = await upi(client, "POST", "/v1/charges", token, charge_body())
    assert status == 401


# -- charges (§1.2, §1.3): every recorded request, answered in the recorded shape --------

CHARGE_KEYS = ["object", "charge_token", "id", "reference", "amount", "currency",
               "time_created", "time_captured", "auto_capture", "status", "country",
               "payment"]
R, Q = "redirect", "qr"
# (cassette, method, client sent, entries answered in order, auto_capture, goods/consumer)
CASSETTES = [
    ("charge/create_alipay", "alipay", ["mobile_browser", "desktop"],
     [("desktop", R), ("mobile_browser", R), ("desktop", Q)], True, {}),
    ("refund/create_partial_refund", "alipay", ["mobile_browser"],
     [("mobile_browser", R)], True, {}),
    ("refund/create_multiple_partial_refunds", "alipay", ["desktop"],
     [("desktop", R), ("desktop", Q)], True, {}),
    ("payment_methods/alipay_with_accelerator", "alipay", ["mobile_browser", "desktop"],
     [("desktop", R), ("mobile_browser", R), ("desktop", Q)], True,
     {"country_accelerator": "CN"}),
    ("payment_methods/unionpay", "upop", ["mobile_browser", "desktop"],
     [("desktop", R), ("mobile_browser", R), ("desktop", Q)], True,
     {"country_accelerator": "CN", "consumer": {
         "reference": "c-1", "first_name": "Ada", "last_name": "L", "phone": "1",
         "email": "ada@example.com"}}),
    ("payment_methods/wechat_pay", "wechatpay", ["mobile_browser"],
     [("mobile_browser", R)], True, {"country_accelerator": "CN"}),
    ("charge/wechat_service_no_shipping", "wechatpay", ["mobile_browser", "desktop"],
     [("mobile_browser", R)], True, {"country_accelerator": "CN", "goods": {"data": [
         {"product_name": "Consulting", "product_sku": "S-1", "product_type": "service",
          "quantity": 1, "unit_amount": 150.0}]}}),
    ("payment_methods/paypal_with_goods", "paypal", ["desktop", "mobile_browser"],
     [("desktop", R), ("mobile_browser", R)], False, {"goods": {
         "data": [{"name": "Widget", "quantity": 3, "unit_amount": 25.0,
                   "product_type": "physical"}],
         "shipping": {"first_name": "A", "last_name": "B", "phone": "1", "email": "a@b.c",
                      "street": "1 Main", "city": "X", "state": "CA", "zip": "1",
                      "country": "US"}}}),
    ("payment_methods/paypal_multiple_items", "paypal", ["desktop"],
     [("desktop", R)], False, {"goods": {"data": [
         {"name": "A", "quantity": 3, "unit_amount": 25.0, "product_type": "physical"},
         {"name": "B", "quantity": 2, "unit_amount": 200.0, "product_type": "physical"}]}}),
]


@pytest.mark.parametrize(("cassette", "method", "clients", "entries", "auto", "extra"),
                         CASSETTES, ids=[c[0] for c in CASSETTES])
async def test_recorded_charges(client, sim, token, cassette, method, clients, entries,
                                auto, extra):
    body = charge_body(reference=f"TEST-{cassette}", amount=150.0, method=method,
                       clients=clients)
    if "country_accelerator" in extra:
        body["transaction"]["country_accelerator"] = extra["country_accelerator"]
    body.update({k: v for k, v in extra.items() if k != "country_accelerator"})
    status, answer = await upi(client, "POST", "/v1/charges", token, body)
    assert status == 200, answer
    data = answer["data"]
    expected_keys = list(CHARGE_KEYS)
    if method == "paypal":  # exchange: PayPal only, before payment
        expected_keys.insert(expected_keys.index("payment"), "exchange")
        assert data["exchange"] == {"amount": 150, "currency": "USD", "rate": 1}
    assert list(data) == expected_keys
    assert data["object"] == "charge" and data["status"] == "initiated"
    assert len(data["charge_token"]) == 32 and int(data["charge_token"], 16) >= 0
    assert len(data["id"]) == 22 and data["id"].isdigit()
    assert data["amount"] == 150 and isinstance(data["amount"], int)  # 150.0 → 150
    assert data["reference"] == body["transaction"]["reference"]
    assert (data["currency"], data["country"]) == ("USD", "US")
    assert data["time_created"] == int(START.timestamp()) and data["time_captured"] is None
    assert data["auto_capture"] is auto
    assert [(e["client"], e["format"]) for e in data["payment"]["client"]] == entries
    assert all(list(e) == ["client", "format", "method", "content"] and e["method"] == "GET"
               for e in data["payment"]["client"])
    txn = sim.ledger.by_id[data["id"]]
    assert txn.face == "upi" and txn.status is Status.PENDING
    if "goods" in extra:
        assert txn.goods == extra["goods"]
    if "consumer" in extra:
        assert txn.extra is not None and txn.extra["consumer"] == extra["consumer"]


async def test_duplicate_reference_is_refused_as_recorded(client, sim, token):
    await charge(client, token, reference="TEST-VCR-TXN-001")
    resp = await client.post("/v1/charges", json=charge_body(reference="TEST-VCR-TXN-001"),
                             headers=bearer(token))
    assert resp.status == 400
    assert await resp.text() == json.dumps(
        {"status": "fail", "app": "citcon_upi", "version": "v1.0.0", "data": DUPLICATE},
        separators=(",", ":"))
    assert ledger_size(sim) == (1, 0)


async def test_landing_url_opens_the_wallet_page_and_qr_is_a_png(client, sim, token):
    data = await charge(client, token, clients=["desktop", "mobile_browser"])
    landing, _, qr = (e["content"] for e in data["payment"]["client"])
    assert landing.endswith(f"/v1/landing/{data['charge_token']}")
    assert qr.endswith(f"/v1/qr/{data['charge_token']}")
    resp = await client.get(landing.split("127.0.0.1:8080")[-1], allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == f"/u_landing?q={data['id']}"
    page = await client.get(resp.headers["Location"])
    assert page.status == 200 and data["reference"] in await page.text()
    png = await client.get(qr.split("127.0.0.1:8080")[-1])
    assert png.status == 200 and (await png.read())[:8] == b"\x89PNG\r\n\x1a\n"
    assert charge_id(data["charge_token"]) == data["id"]
    assert charge_token(data["id"]) == data["charge_token"]
    assert charge_id("f" * 32) is None and charge_id("nope") is None


# -- inquiry (§0.1, §2.4) ------------------------------------------------------------------

TRANSACTION_KEYS = ["object", "id", "charge_token", "reference", "amount",
                    "amount_captured", "amount_refunded", "currency", "country",
                    "auto_capture", "status", "note", "time_created", "time_authorized",
                    "time_captured", "time_canceled", "expiry", "payment"]


async def inquire(client: Any, token: str, key: str) -> dict[str, Any]:
    status, answer = await upi(client, "GET", f"/v1/transactions/{key}", token)
    assert status == 200, answer
    return answer["data"]  # type: ignore[no-any-return]


async def test_inquiry_by_id_and_by_reference(client, token):
    made = await charge(client, token, reference="ref-inq")
    by_id = await inquire(client, token, made["id"])
    assert list(by_id) == TRANSACTION_KEYS
    assert by_id["status"] == "initiated" and by_id["note"] == "note for ref-inq"
    assert by_id["expiry"] == by_id["time_created"] + 1800
    assert await inquire(client, token, "ref-inq") == by_id  # falls back to the reference
    status, answer = await upi(client, "GET", "/v1/transactions?reference=ref-inq", token)
    assert status == 200 and answer["data"] == by_id
    status, answer = await upi(client, "GET", "/v1/transactions/unknown-ref", token)
    assert status == 404 and answer["data"]["code"] == "4040"


@pytest.mark.parametrize(("action", "word"), [
    ("pay", "succeeded"), ("fail", "failed"), ("expire", "expired"), ("cancel", "canceled"),
])
async def test_status_words(client, token, action, word):
    made = await charge(client, token)
    resp = await client.post(f"/_sim/transactions/{made['id']}/{action}")
    assert resp.status == 200, await resp.text()
    data = await inquire(client, token, made["id"])
    assert data["status"] == word
    if word == "succeeded":
        assert data["amount_captured"] == 100 and data["time_captured"] is not None
    if word == "canceled":
        assert data["time_canceled"] == data["time_created"]


async def test_expiry_by_the_virtual_clock(client, sim, token):
    made = await charge(client, token)
    sim.advance(1799)
    assert (await inquire(client, token, made["id"]))["status"] == "initiated"
    sim.advance(1)
    assert (await inquire(client, token, made["id"]))["status"] == "expired"


# -- refunds (§1.4) -----------------------------------------------------------------------

REFUND_KEYS = ["id", "object", "reference", "amount", "amount_refunded", "currency",
               "country", "time_created", "payment", "status", "time_completed", "exchange"]


async def paid(client: Any, token: str, **kwargs: Any) -> dict[str, Any]:
    made = await charge(client, token, **kwargs)
    resp = await client.post(f"/_sim/transactions/{made['id']}/pay")
    assert resp.status == 200
    return made


async def refund(client: Any, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return await upi(client, "POST", "/v1/refunds", token, body)


async def test_refund_of_an_initiated_charge_is_refused_as_recorded(client, sim, token):
    made = await charge(client, token, reference="TEST-VCR-REFUND-001")
    for body in ({"id": made["id"], "reference": "REFUND-001", "amount": 100.0,
                  "note": "full"},
                 {"id": made["id"], "reference": "REFUND-002", "amount": 50.0,
                  "transaction_reference": "TEST-VCR-REFUND-001"}):
        resp = await client.post("/v1/refunds", json=body, headers=bearer(token))
        assert resp.status == 406
        # As recorded, to the byte (the sandbox's Content-Length was 104).
        assert await resp.read() == (
            b'{"status":"fail","app":"citcon_upi","version":"v1.0.0",'
            b'"data":{"code":"4202","message":"refund failed"}}')
        assert resp.headers["Content-Length"] == "104"
    assert ledger_size(sim) == (1, 0)


async def test_partial_and_multiple_refunds_then_over_refund(client, sim, token):
    made = await paid(client, token, amount=1000)
    first_status, first = await refund(client, token, {
        "id": made["id"], "reference": "RF-1", "amount": 300.0, "note": "part"})
    assert first_status == 200, first
    data = first["data"]
    assert list(data) == REFUND_KEYS
    assert data["object"] == "refund" and data["status"] == "succeeded"
    assert data["reference"] == "RF-1" and data["amount"] == 300
    assert data["amount_refunded"] == 300 and data["id"] != made["id"]
    assert len(data["id"]) == 22 and data["payment"] == {"method": "alipay"}
    assert list(data["exchange"]) == ["amount", "currency", "rate"]
    status, second = await refund(client, token, {"id": made["id"], "reference": "RF-2",
                                                   "amount": 700})
    assert status == 200 and second["data"]["amount_refunded"] == 1000
    status, over = await refund(client, token, {"id": made["id"], "reference": "RF-3",
                                                "amount": 1})
    assert status == 406 and over["data"]["code"] == REFUND_FAILED
    txn = sim.ledger.by_id[made["id"]]
    assert txn.refunded_amount == 1000 == txn.paid_amount
    assert [r.reference for r in txn.refunds or ()] == ["RF-1", "RF-2"]
    after = await inquire(client, token, made["id"])
    assert (after["status"], after["amount_refunded"]) == ("succeeded", 1000)
    by_refund_id = await inquire(client, token, data["id"])
    assert by_refund_id["object"] == "refund" and by_refund_id["amount_refunded"] == 300


async def test_over_refund_in_one_go_is_refused(client, sim, token):
    made = await paid(client, token, amount=500)
    status, answer = await refund(client, token, {"id": made["id"], "reference": "R",
                                                  "amount": 501})
    assert status == 406 and answer["data"]["code"] == REFUND_FAILED
    assert sim.ledger.by_id[made["id"]].refunded_amount == 0


async def test_duplicate_refund_reference(client, sim, token):
    one, two = await paid(client, token, reference="a"), await paid(client, token,
                                                                    reference="b")
    assert (await refund(client, token, {"id": one["id"], "reference": "RF",
                                         "amount": 10}))[0] == 200
    for target in (one, two):  # unique per merchant, not per charge
        status, answer = await refund(client, token, {"id": target["id"], "reference": "RF",
                                                      "amount": 10})
        assert status == 400 and answer["data"] == DUPLICATE
    assert len(sim.ledger.refunds_by_id) == 1
    other = await token_for(client, "another-key")
    mine = await paid(client, other, reference="c")
    assert (await refund(client, other, {"id": mine["id"], "reference": "RF",
                                         "amount": 10}))[0] == 200


async def test_partial_refund_not_supported_for_unionpay(client, sim, token):
    made = await paid(client, token, method="upop", amount=800)
    status, answer = await refund(client, token, {"id": made["id"], "reference": "P",
                                                  "amount": 100})
    assert status == 406 and answer["data"]["code"] == "4208"
    assert sim.ledger.by_id[made["id"]].refunded_amount == 0
    status, _ = await refund(client, token, {"id": made["id"], "reference": "F",
                                             "amount": 800})
    assert status == 200


async def test_paypal_refund_success_as_recorded(client, token):
    made = await paid(client, token, method="paypal", reference="TEST-VCR-PAYPAL-REFUND-005")
    status, answer = await upi(client, "POST", "/v1/captures", token, {"id": made["id"]})
    assert status == 200, answer
    status, answer = await refund(client, token, {
        "id": made["id"], "reference": "REFUND-PAYPAL-005", "amount": 100.0,
        "note": "Test refund for TEST-VCR-PAYPAL-REFUND-005"})
    assert status == 200
    assert answer["data"]["exchange"] == {"amount": 100, "currency": "USD", "rate": 1}
    assert answer["data"]["payment"] == {"method": "paypal"}
    assert answer["data"]["amount_refunded"] == 100


async def test_refund_of_unknown_charge(client, token):
    status, answer = await refund(client, token, {"id": "2" * 22, "reference": "x",
                                                  "amount": 1})
    assert status == 404 and answer["data"]["code"] == "4040"


# -- cancels (§1.5) and captures ---------------------------------------------------------

CANCEL_KEYS = ["id", "object", "reference", "amount", "currency", "time_created", "country",
               "payment", "status"]


@pytest.mark.parametrize("body", [
    {"reference": "CANCEL-REQ-001", "transaction_reference": "TEST-VCR-CANCEL-001"},
    {"reference": "CANCEL-REQ-002"},
])
async def test_cancel_as_recorded(client, sim, token, body):
    made = await charge(client, token, reference="TEST-VCR-CANCEL-001")
    status, answer = await upi(client, "POST", "/v1/cancels", token, {"id": made["id"], **body})
    assert status == 200, answer
    data = answer["data"]
    assert list(data) == CANCEL_KEYS
    assert data["id"] == made["id"] and data["object"] == "cancel"
    assert data["reference"] == body["reference"] and data["status"] == "canceled"
    assert data["amount"] == 100 and data["time_created"] == made["time_created"]
    assert data["payment"] == {"method": "alipay", "type": "", "data": {"pan": ""}}
    assert (await inquire(client, token, made["id"]))["status"] == "canceled"
    status, again = await upi(client, "POST", "/v1/cancels", token, {"id": made["id"], **body})
    assert status == 406 and again["data"]["code"] == "4203"
    assert sim.ledger.by_id[made["id"]].status is Status.CANCELLED


async def test_cancel_of_a_paid_charge_refunds_it_in_full(client, sim, token):
    made = await paid(client, token, amount=900)
    await refund(client, token, {"id": made["id"], "reference": "p", "amount": 100})
    status, _ = await upi(client, "POST", "/v1/cancels", token, {"id": made["id"]})
    assert status == 200
    txn = sim.ledger.by_id[made["id"]]
    assert txn.refunded_amount == 900 and txn.status is Status.CANCELLED


async def test_delayed_capture(client, sim, ipn_receiver, token):
    body = charge_body(reference="hold", amount=2000, method="paypal")
    body["transaction"]["auto_capture"] = False
    status, answer = await upi(client, "POST", "/v1/charges", token, body)
    made = answer["data"]
    assert status == 200 and made["auto_capture"] is False
    await client.post(f"/_sim/transactions/{made['id']}/pay")
    held = await inquire(client, token, made["id"])
    assert held["status"] == "authorized" and held["time_authorized"] is not None
    status, answer = await refund(client, token, {"id": made["id"], "reference": "early",
                                                  "amount": 10})
    assert status == 406  # nothing captured yet
    status, over = await upi(client, "POST", "/v1/captures", token,
                             {"id": made["id"], "amount": 2001})
    assert status == 406 and over["data"]["code"] == "4204"
    status, answer = await upi(client, "POST", "/v1/captures", token,
                               {"id": made["id"], "amount": 1500})
    assert status == 200, answer
    cap = answer["data"]
    assert cap["object"] == "capture" and cap["amount"] == 1500
    assert cap["amount_captured"] == 1500 and cap["status"] == "succeeded"
    status, again = await upi(client, "POST", "/v1/captures", token, {"id": made["id"]})
    assert status == 406 and again["data"]["code"] == "4204"
    txn = sim.ledger.by_id[made["id"]]
    assert txn.captured_amount == 1500 and txn.status is Status.SUCCESS


async def test_auto_capture_false_is_honoured_only_where_a_hold_exists(client, token):
    body = charge_body(reference="wallet")
    body["transaction"]["auto_capture"] = False
    status, answer = await upi(client, "POST", "/v1/charges", token, body)
    assert status == 200 and answer["data"]["auto_capture"] is True
    status, answer = await upi(client, "POST", "/v1/captures", token,
                               {"id": answer["data"]["id"]})
    assert status == 406 and answer["data"]["code"] == "4204"


# -- bad input never reaches the ledger ----------------------------------------------------


def _with(path: str, value: Any) -> dict[str, Any]:
    body = charge_body()
    section, _, key = path.partition(".")
    if key:
        if value is _MISSING:
            del body[section][key]
        else:
            body[section][key] = value
    elif value is _MISSING:
        del body[section]
    else:
        body[section] = value
    return body


_MISSING = object()
BAD_CHARGES = {
    "no transaction": _with("transaction", _MISSING),
    "transaction not an object": _with("transaction", [1]),
    "no payment": _with("payment", _MISSING),
    "no reference": _with("transaction.reference", _MISSING),
    "reference object": _with("transaction.reference", {"a": 1}),
    "reference too long": _with("transaction.reference", "r" * 129),
    "reference control char": _with("transaction.reference", "a\nb"),
    "no amount": _with("transaction.amount", _MISSING),
    "amount string": _with("transaction.amount", "100"),
    "amount bool": _with("transaction.amount", True),
    "amount fraction": _with("transaction.amount", 10.5),
    "amount zero": _with("transaction.amount", 0),
    "amount negative": _with("transaction.amount", -5),
    "amount huge": _with("transaction.amount", 10**30),
    "amount huge float": _with("transaction.amount", 1e300),
    "no currency": _with("transaction.currency", _MISSING),
    "bad currency": _with("transaction.currency", "DOLLARS"),
    "unknown currency": _with("transaction.currency", "XQZ"),
    "bad country": _with("transaction.country", "USA"),
    "auto_capture string": _with("transaction.auto_capture", "yes"),
    "unknown method": _with("payment.method", "bitcoin"),
    "no method": _with("payment.method", _MISSING),
    "client not a list": _with("payment.client", "desktop"),
    "unknown client": _with("payment.client", ["tv"]),
    "empty client": _with("payment.client", []),
    "ipn not a url": _with("urls", {"ipn": "not a url"}),
    "ipn a number": _with("urls", {"ipn": 5}),
    "urls a list": _with("urls", ["x"]),
}


@pytest.mark.parametrize("body", BAD_CHARGES.values(), ids=BAD_CHARGES.keys())
async def test_bad_charges_are_4100_and_change_nothing(client, sim, token, body):
    status, answer = await upi(client, "POST", "/v1/charges", token, body)
    assert status == 400 and answer["data"]["code"] == "4100", answer
    assert ledger_size(sim) == (0, 0)
    assert sim.take_errors() == []


@pytest.mark.parametrize("raw", [b"{bad", b"[1,2]", b'"text"', b"\xff\xfe", b'{"a": NaN}',
                                 b'{"transaction": {"reference": "\\ud800"}}',
                                 b"[" * 100000])
@pytest.mark.parametrize("path", ["/v1/charges", "/v1/refunds", "/v1/cancels",
                                  "/v1/captures", "/v1/access-tokens"])
async def test_malformed_bodies(client, sim, token, raw, path):
    resp = await client.post(path, data=raw, headers={
        **bearer(token if path != "/v1/access-tokens" else KEY),
        "Content-Type": "application/json"})
    answer = await resp.json()
    assert resp.status == 400 and answer["data"]["code"] == "4100", answer
    assert answer["app"] == "citcon_upi"
    assert ledger_size(sim) == (0, 0)
    assert sim.take_errors() == []


BAD_REFUNDS = [
    {}, {"id": None, "reference": "x", "amount": 1}, {"reference": "x", "amount": 1},
    {"id": "ID", "amount": 1}, {"id": "ID", "reference": "x"},
    {"id": "ID", "reference": "x", "amount": "1"}, {"id": "ID", "reference": "x", "amount": -1},
    {"id": "ID", "reference": "x", "amount": 1.5}, {"id": "ID", "reference": ["x"], "amount": 1},
    {"id": ["ID"], "reference": "x", "amount": 1}, {"id": "ID", "reference": "x", "amount": 1e30},
]


@pytest.mark.parametrize("body", BAD_REFUNDS)
async def test_bad_refunds_change_nothing(client, sim, token, body):
    made = await paid(client, token)
    body = {k: (made["id"] if v == "ID" else v) for k, v in body.items()}
    status, answer = await refund(client, token, body)
    assert status in (400, 404) and answer["data"]["code"] in ("4100", "4040"), answer
    assert sim.ledger.by_id[made["id"]].refunded_amount == 0
    assert sim.take_errors() == []


async def test_unknown_paths_and_methods_answer_the_upi_envelope(client, token, sim):
    status, answer = await upi(client, "GET", "/v1/nothing-here", token)
    assert status == 404 and answer["data"]["code"] == "4040"
    resp = await client.get("/v1/charges", headers=bearer(token))
    answer = await resp.json()
    assert resp.status == 405 and answer["data"]["code"] == "4050"
    assert "POST" in resp.headers["Allow"]
    resp = await client.post("/v1/charges", data=io.BytesIO(b" " * (2 * 1024 * 1024)),
                             headers={**bearer(token), "Content-Type": "application/json"})
    answer = await resp.json()
    assert resp.status == 413 and answer["app"] == "citcon_upi"
    resp = await client.get("/payment/nothing-here")  # the Online API keeps its own shape
    assert (await resp.json())["result"] == "fail"


# -- the JSON IPN (§2.1, §2.2) ------------------------------------------------------------


def test_citcons_published_example_verifies():
    example = {
        "id": "84571d30e61711eba6a94911fce35a55", "transaction_type": "charge",
        "reference": "reference132", "amount": 100, "currency": "USD", "status": "authorized",
        "time_completed": "2021-08-14T09:47:43.000Z",
        "time_created": "2021-07-16T09:23:44.000Z", "payment_method": "paypal",
        "amount_captured": "", "amount_refunded": "",
        "fields": "id,transaction_type,reference,amount,currency,status,time_completed,"
                  "time_created,payment_method,amount_captured,amount_refunded",
        "sign": "621233f017ad8139fe97d47b4653735e121b9f6e7dafe3638eba0fcd80801db5",
    }
    assert sign_upi_ipn(example, "braintree") == example["sign"]
    assert verify_upi_ipn(example, "braintree")
    assert not verify_upi_ipn(example, "another-secret")
    assert not verify_upi_ipn({**example, "amount": 101}, "braintree")
    assert not verify_upi_ipn({k: v for k, v in example.items() if k != "currency"},
                              "braintree")
    assert not verify_upi_ipn({k: v for k, v in example.items() if k != "sign"}, "braintree")


async def test_ipn_is_json_signed_with_the_private_key(simulator, sim, receiver):
    from aiohttp import ClientSession

    async with ClientSession(str(simulator.make_url(""))) as session:
        token = await token_for(session, KEY)  # type: ignore[arg-type]
        body = charge_body(reference="1042", amount=2599, ipn=receiver.url)
        resp = await session.post("/v1/charges", json=body, headers=bearer(token))
        made = (await resp.json())["data"]
        await session.post(f"/_sim/transactions/{made['id']}/pay")
        await sim.ipn.drain()
    [posted] = receiver.bodies
    assert receiver.requests[0].content_type == "application/json"
    assert posted["sign"] == independent_sign(posted, KEY)
    assert verify_upi_ipn(posted, KEY)
    assert posted["id"] == made["id"] and posted["transaction_type"] == "charge"
    assert posted["status"] == "succeeded" and posted["amount"] == 2599
    assert posted["amount_captured"] == 2599 and posted["amount_refunded"] == 0
    assert posted["payment_method"] == "alipay" and posted["payment"] == "alipay"
    assert posted["time_created"] == "2026-03-02T09:00:00.000Z"
    assert all(isinstance(v, str | int) and not isinstance(v, bool) for v in posted.values())
    # shopeo's fixed, alphabetical list (every signed field and fields) gives the same sign.
    shopeo = ["amount", "amount_captured", "amount_refunded", "currency", "fields", "id",
              "payment", "payment_method", "reference", "status", "time_completed",
              "time_created", "transaction_type"]
    text = "&".join(f"{k}={posted[k]}" for k in shopeo) + f"&secret={KEY}"
    assert hashlib.sha256(text.encode()).hexdigest() == posted["sign"]


async def test_capture_sends_the_ipn_and_control_accepts_upi_ids(simulator, sim, receiver):
    from aiohttp import ClientSession

    async with ClientSession(str(simulator.make_url(""))) as session:
        token = await token_for(session, KEY)  # type: ignore[arg-type]
        body = charge_body(reference="pp", amount=700, method="paypal", ipn=receiver.url)
        made = (await (await session.post("/v1/charges", json=body,
                                          headers=bearer(token))).json())["data"]
        detail = await session.get(f"/_sim/transactions/{made['id']}")
        assert detail.status == 200 and (await detail.json())["id"] == made["id"]
        assert (await session.post(f"/_sim/transactions/{made['id']}/pay")).status == 200
        await sim.ipn.drain()
        assert receiver.bodies == []  # an authorisation does not notify
        resp = await session.post("/v1/captures", json={"id": made["id"]},
                                  headers=bearer(token))
        assert resp.status == 200
        await sim.ipn.drain()
    [posted] = receiver.bodies
    assert posted["status"] == "succeeded" and posted["amount_captured"] == 700
    assert verify_upi_ipn(posted, KEY)


async def test_state_snapshot_keeps_upi_charges_and_refund_references(client, sim, token):
    made = await paid(client, token, reference="keep")
    await refund(client, token, {"id": made["id"], "reference": "RF-keep", "amount": 10})
    snapshot = await (await client.get("/_sim/state")).json()
    assert (await client.post("/_sim/reset")).status == 200
    resp = await client.put("/_sim/state", json=snapshot)
    assert resp.status == 200, await resp.text()
    txn = sim.ledger.by_id[made["id"]]
    assert txn.face == "upi" and txn.refunds and txn.refunds[0].reference == "RF-keep"
    token = await token_for(client)
    status, answer = await refund(client, token, {"id": made["id"], "reference": "RF-keep",
                                                  "amount": 10})
    assert status == 400 and answer["data"] == DUPLICATE


async def test_journal_names_the_charge_of_each_call(client, token):
    made = await charge(client, token, reference="journal")
    await client.get(f"/v1/transactions/{made['id']}", headers=bearer(token))
    await client.post("/v1/cancels", json={"id": made["id"]}, headers=bearer(token))
    entries = (await (await client.get("/_sim/requests")).json())["requests"]
    named = {e["endpoint"]: e["transaction_id"] for e in entries}
    # Endpoints are named in the vocabulary scenarios use for every face.
    assert named["pay"] == named["inquire"] == named["cancel"] == made["id"]
    assert named["access-tokens"] is None


@with_magic_amounts
@pytest.mark.parametrize(("amount", "word"), [(19901, "failed"), (19903, "succeeded"),
                                              (19903.0, "succeeded")])
async def test_magic_amounts_script_upi_charges_too(client, token, amount, word):
    made = await charge(client, token, amount=amount)
    assert (await inquire(client, token, made["id"]))["status"] == word


async def test_scenario_rules_apply_to_upi_calls_in_the_upi_shape(client, sim, token):
    resp = await client.post("/_sim/scenarios", json={"name": "down", "rules": [
        {"match": {"endpoint": "pay", "vendor": "upop"}, "api": {"error": 4000}},
        {"match": {"endpoint": "refund"}, "refund": {"status": "insufficient open balance"}},
        {"match": {"endpoint": "pay", "reference": "slow-*"}, "payment": {
            "outcome": "pay", "after": 60}}]})
    assert resp.status == 200, await resp.text()
    status, answer = await upi(client, "POST", "/v1/charges", token,
                               charge_body(method="upop"))
    assert status == 500 and answer["data"]["code"] == "4000"
    assert ledger_size(sim) == (0, 0)
    made = await charge(client, token, reference="slow-1")
    assert (await inquire(client, token, made["id"]))["status"] == "initiated"
    sim.advance(60)
    assert (await inquire(client, token, made["id"]))["status"] == "succeeded"
    status, answer = await refund(client, token, {"id": made["id"], "reference": "x",
                                                  "amount": 1})
    assert status == 406 and answer["data"]["message"] == (
        "refund failed: insufficient open balance")


async def test_state_file_keeps_upi_charges_across_a_restart(aiohttp_client, tmp_path):
    path = tmp_path / "state.jsonl"
    sim = Simulator(frozen_config(state_file=path))
    client = await aiohttp_client(create_app(sim))
    token = await token_for(client)
    made = await paid(client, token, reference="restart")
    await refund(client, token, {"id": made["id"], "reference": "RF-restart", "amount": 10})
    await client.close()
    assert sim.persistence is not None
    sim.persistence.close()
    again = Simulator(frozen_config(state_file=path))
    client = await aiohttp_client(create_app(again))
    token = await token_for(client)  # tokens are in memory: ask for a new one
    data = await inquire(client, token, made["id"])
    assert (data["status"], data["amount_refunded"]) == ("succeeded", 10)
    assert again.ledger.by_id[made["id"]].face == "upi"
    status, answer = await refund(client, token, {"id": made["id"], "reference": "RF-restart",
                                                  "amount": 10})
    assert status == 400 and answer["data"] == DUPLICATE
    await client.close()
    assert again.persistence is not None
    again.persistence.close()


async def test_a_client_token_charges_and_inquires_but_cannot_refund(client, sim, token):
    client_token = await token_for(client, token_type="client")
    made = await paid(client, client_token)
    assert (await inquire(client, client_token, made["id"]))["status"] == "succeeded"
    for path, body in (("/v1/refunds", {"id": made["id"], "reference": "r", "amount": 1}),
                       ("/v1/cancels", {"id": made["id"]}),
                       ("/v1/captures", {"id": made["id"]})):
        status, answer = await upi(client, "POST", path, client_token, body)
        assert status == 403 and answer["data"]["code"] == "4030", answer
    txn = sim.ledger.by_id[made["id"]]
    assert txn.refunded_amount == 0 and txn.status is Status.SUCCESS
    assert (await refund(client, token, {"id": made["id"], "reference": "r",
                                         "amount": 1}))[0] == 200


async def test_scenarios_and_journal_know_the_merchant_behind_an_access_token(client, sim,
                                                                               token):
    resp = await client.post("/_sim/scenarios", params={"token": KEY}, json={
        "name": "mine", "rules": [{"match": {"endpoint": "pay"},
                                   "payment": {"outcome": "fail"}}]})
    assert resp.status == 200, await resp.text()
    made = await charge(client, token)
    assert (await inquire(client, token, made["id"]))["status"] == "failed"
    other = await charge(client, await token_for(client, "someone-else"))
    assert sim.ledger.by_id[other["id"]].status is Status.PENDING  # not their scenario
    mine = (await (await client.get("/_sim/requests", params={"token": KEY})).json())
    assert {e["endpoint"] for e in mine["requests"]} >= {"access-tokens", "pay", "inquire"}
    assert {e["token"] for e in mine["requests"]} == {token_hint(KEY)}  # not the UPI_ token


async def test_refund_and_cancel_by_the_charge_reference_alone(client, sim, token):
    made = await paid(client, token, reference="by-ref")
    status, answer = await refund(client, token, {"transaction_reference": "by-ref",
                                                  "reference": "R-by-ref", "amount": 10})
    assert status == 200 and answer["data"]["amount_refunded"] == 10
    status, answer = await upi(client, "POST", "/v1/cancels", token,
                               {"transaction_reference": "by-ref"})
    assert status == 200 and answer["data"]["id"] == made["id"]
    assert sim.ledger.by_id[made["id"]].refunded_amount == 100
    status, answer = await upi(client, "POST", "/v1/cancels", token, {"reference": "x"})
    assert status == 400 and answer["data"]["code"] == "4100"


async def test_an_expired_charges_qr_is_gone_in_upis_envelope(client, sim, token):
    data = await charge(client, token, clients=["desktop"])
    qr = next(e["content"] for e in data["payment"]["client"] if e["format"] == "qr")
    path = qr.split("127.0.0.1:8080")[-1]
    assert (await client.get(path)).status == 200
    sim.advance(31 * 60)  # past the unpaid charge's 30 minutes
    resp = await client.get(path)
    assert resp.status == 410
    body = await resp.json()
    assert body["status"] == "fail" and body["app"] == "citcon_upi"
    assert body["data"]["code"] == "4100" and "expired" in body["data"]["message"]
