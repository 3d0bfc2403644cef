"""CHOP (``/chop/*``) as its real clients use it: the WooCommerce plugin, Citcon's node,
PHP and Java demos, and Citcon's QA suite (docs/evidence/upi-chop.md §3). Each test
sends what such a client sends and checks what that client reads from the answer."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from citcon_sim import Config, Simulator, create_app
from citcon_sim.domain.ledger import Status
from citcon_sim.domain.merchants import MerchantsFileError
from citcon_sim.web.openapi import document

from .helpers import AUTH, TOKEN, IpnReceiver, TestClient, auth, frozen_config

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def chop(client: TestClient, headers: dict[str, str] | None = None,
               **fields: str) -> tuple[int, str]:
    data = {"payment_method": "alipay", "amount": "100", "currency": "USD",
            "reference": "order-1", "allow_duplicates": "yes", **fields}
    resp = await client.post("/chop/chop", data=data, headers=headers or AUTH)
    return resp.status, await resp.text()


async def created_id(client: TestClient, **fields: str) -> str:
    status, text = await chop(client, **fields)
    assert status == 200, text
    return str(json.loads(text)["transaction_id"])


async def post(client: TestClient, path: str, data: dict[str, str],
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    resp = await client.post(path, data=data, headers=headers or AUTH)
    return resp.status, await resp.json()


async def pay(client: TestClient, txn_id: str) -> None:
    resp = await client.post(f"/_sim/transactions/{txn_id}/pay")
    assert resp.status == 200, await resp.text()


def ledger_state(sim: Simulator) -> list[tuple[Any, ...]]:
    return [(t.id, t.status, t.refunded_amount, t.captured_amount, len(t.refunds or ()))
            for t in sim.ledger.by_id.values()]


# -- independent signature checks, written as the merchants' receivers do ---------------


def php_plugin_sign(form: dict[str, str], token: str) -> str:
    """The WooCommerce plugin: ``fields`` plus each listed key that is set, ksort,
    ``k=v&``, then ``token=<token>``, md5."""
    data = {"fields": form["fields"]}
    for key in form["fields"].split(","):
        if key in form:
            data[key] = form[key]
    text = "".join(f"{k}={data[k]}&" for k in sorted(data)) + f"token={token}"
    return hashlib.md5(text.encode()).hexdigest()


JAVA_DEMO_PARAMS = ("id", "amount", "notify_status", "currency", "time", "reference",
                    "notify_id", "partner_id", "sign", "fields")


def java_demo_sign(form: dict[str, str], token: str) -> str:
    """The Java demo: only the parameters it reads can be signed; others count as ""."""
    keys = sorted({*form["fields"].split(","), "fields"})
    values = {k: form[k] if k in JAVA_DEMO_PARAMS and k in form else "" for k in keys}
    text = "&".join(f"{k}={values[k]}" for k in keys) + f"&token={token}"
    return hashlib.md5(text.encode()).hexdigest()


# -- /chop/chop ---------------------------------------------------------------------------


async def test_the_woocommerce_plugins_pay_request(client: TestClient, sim: Simulator) -> None:
    """1.6.0 builds the body by hand: some values urlencoded, billing and goods raw."""
    site = "https://shop.example"
    goods = json.dumps({"data": [{"sku": "S1", "name": "Mug", "quantity": 2,
                                  "product_type": "physical", "unit_amount": 1250,
                                  "total_discount_amount": 0}],
                        "shipping": {"type": "SHIPPING", "amount": 0, "country": "US"},
                        "tax": {"total": 0}}, separators=(",", ":"))
    ext = json.dumps({"app_version": "1.6.0", "woocommerce": "8.0", "wordpress": "6.3"})
    pairs = [
        ("currency", "USD"), ("amount", "2500"),
        ("ipn_url", quote(f"{site}/?wc-api=wc_citconpay", safe="")),
        ("callback_url_success", quote(f"{site}/checkout/order-received/57/", safe="")),
        ("callback_url_fail", quote(f"{site}/checkout/order-received/57/", safe="")),
        ("mobile_result_url", quote(f"{site}/checkout/order-received/57/", safe="")),
        ("callback_url_cancel", quote(f"{site}/cart/?cancel_order=true", safe="")),
        ("reference", "20250101123000-57"), ("payment_method", "paypal"), ("note", "57"),
        ("allow_duplicates", "yes"), ("source", "woocommerce"), ("ext", quote(ext, safe="")),
        ("country", "US"), ("auto_capture", "true"),
        ("billing_address[first_name]", "Ada"), ("billing_address[city]", "Austin"),
        ("billing_address[zip]", "73301"), ("consumer[reference]", "57at1"), ("goods", goods),
    ]
    body = "&".join(f"{k}={v}" for k, v in pairs)
    resp = await client.post("/chop/chop", data=body, headers={
        **FORM, "Authorization": f"Bearer {TOKEN}"})
    text = await resp.text()
    assert resp.status == 200, text
    answer = json.loads(text)
    assert answer["result"] == "success"  # all the plugin reads, then it redirects to url
    assert list(answer)[-1] == "url"
    txn = sim.ledger.by_id[answer["transaction_id"]]
    assert (txn.face, txn.vendor.code, txn.amount, txn.currency) == ("chop", "paypal", 2500,
                                                                       "USD")
    assert txn.auto_capture and txn.ipn_url == f"{site}/?wc-api=wc_citconpay"
    assert txn.callback_url_cancel == f"{site}/cart/?cancel_order=true"
    assert txn.goods is not None and txn.goods["data"][0]["name"] == "Mug"
    assert txn.extra is not None
    assert txn.extra["billing_address"] == {"first_name": "Ada", "city": "Austin",
                                            "zip": "73301"}
    assert txn.extra["consumer"] == {"reference": "57at1"}
    assert txn.extra["ext"]["app_version"] == "1.6.0"
    assert txn.extra["source"] == "woocommerce"


async def test_url_is_the_last_key_as_the_java_demo_cuts_it(client: TestClient) -> None:
    """The Java demo takes the text from the first ``http`` to two characters before the
    end, then deletes every ``/`` (escaped slashes would break it: there are none)."""
    status, text = await chop(client, ipn_url="http://merchant.example/ipn")
    assert status == 200
    url = json.loads(text)["url"]
    assert text.endswith(f'"url":"{url}"}}')
    assert text[text.index("http", text.index('"url"')):len(text) - 2] == url
    assert "\\/" not in text
    # The QA suite (and every other client) takes the id after the first "=".
    assert url.split("=")[1] == json.loads(text)["transaction_id"]
    assert "/u_landing?q=" in url


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", TOKEN], ids=["bearer", "bare"])
async def test_bearer_and_bare_tokens_are_the_same_merchant(
    client: TestClient, sim: Simulator, header: str
) -> None:
    """The node/PHP demos send Bearer, the Java demo and the Postman suite a bare token."""
    status, text = await chop(client, headers={"Authorization": header},
                              callback_url_fail="")  # the demos send it empty
    assert status == 200, text
    assert sim.ledger.by_id[json.loads(text)["transaction_id"]].token == TOKEN


async def test_allow_duplicates_as_citcons_qa_suite_checks_it(client: TestClient) -> None:
    def query(text: str) -> str:
        return str(json.loads(text)["url"]).split("?", 1)[1]

    first = (await chop(client, reference="dup-1"))[1]
    again = (await chop(client, reference="dup-1"))[1]
    assert query(first) != query(again)  # yes: a new payment each time
    first = (await chop(client, reference="dup-2", allow_duplicates="no"))[1]
    again = (await chop(client, reference="dup-2", allow_duplicates="no"))[1]
    assert query(first) == query(again)  # no: the existing one


async def test_trans_amount_side_as_the_multiwallet_test_sends_it(
    client: TestClient, sim: Simulator
) -> None:
    txn_id = await created_id(client, payment_method="alipay_hk", amount="",
                              currency="", trans_amount="20", trans_currency="HKD")
    txn = sim.ledger.by_id[txn_id]
    assert (txn.trans_amount, txn.trans_currency, txn.currency) == (20, "HKD", "USD")


@pytest.mark.parametrize(("fields", "code", "status"), [
    ({"payment_method": "bitcoin"}, 4101, 400),
    ({"payment_method": ""}, 4101, 400),
    ({"amount": "1.5"}, 4102, 400),
    ({"amount": "0"}, 4102, 400),
    ({"amount": "", "currency": ""}, 4102, 400),
    ({"currency": "XYZ"}, 4100, 400),
    ({"reference": ""}, 4103, 400),
    ({"ipn_url": "ftp://merchant.example/ipn"}, 4100, 400),
    ({"goods": "{not json"}, 4100, 400),
    ({"ext": "[1, 2]"}, 4100, 400),
    ({"allow_duplicates": "maybe"}, 4100, 400),
])
async def test_bad_input_gets_chops_error_shape_and_changes_nothing(
    client: TestClient, sim: Simulator, fields: dict[str, str], code: int, status: int
) -> None:
    before = ledger_state(sim)
    got, text = await chop(client, **fields)
    assert got == status, text
    body = json.loads(text)
    assert list(body) == ["result", "code", "error"]
    assert body["result"] == "fail" and body["code"] == code and body["error"]
    assert ledger_state(sim) == before


async def test_no_token_is_a_401_in_chops_shape(client: TestClient, sim: Simulator) -> None:
    for path in ("/chop/chop", "/chop/refund", "/chop/inquire", "/chop/cancel"):
        resp = await client.post(path, data={"payment_method": "alipay"})
        assert resp.status == 401
        body = await resp.json()
        assert body["result"] == "fail" and body["code"] == 4100, body
    assert sim.ledger.by_id == {}


async def test_malformed_bodies_never_500(client: TestClient, sim: Simulator) -> None:
    for body, headers in [
        (b"\xff\xfe", FORM), (b"{", {"Content-Type": "application/json"}),
        (b"[1]", {"Content-Type": "application/json"}),
        (b"payment_method[x][y][z]=1", FORM), (b"a]=1", FORM),
    ]:
        for path in ("/chop/chop", "/chop/refund", "/chop/inquire", "/chop/cancel"):
            resp = await client.post(path, data=body, headers={**headers, **AUTH})
            assert resp.status == 400, (path, body, await resp.text())
            assert (await resp.json())["result"] == "fail"
    assert sim.ledger.by_id == {}


# -- /chop/inquire ------------------------------------------------------------------------


async def test_inquire_notify_result_is_null_until_paid(client: TestClient) -> None:
    status, text = await chop(client)
    q = json.loads(text)["url"].split("=", 1)[1]  # the QA suite: text after the first "="
    code, unpaid = await post(client, "/chop/inquire", {"q": q, "inquire_method": "real"})
    assert code == 200
    assert "notify_result" in unpaid and unpaid["notify_result"] is None
    assert unpaid["transaction_id"] == q and unpaid["status"] is None
    await pay(client, q)
    for by in ({"q": q, "inquire_method": "real"}, {"transaction_id": q},
               {"reference": "order-1"}):
        code, paid = await post(client, "/chop/inquire", by)
        assert code == 200
        assert (paid["notify_result"], paid["status"], paid["transaction_id"]) == (
            "success", "success", q)


async def test_inquire_of_a_failed_payment_and_unknown_ids(client: TestClient) -> None:
    txn_id = await created_id(client)
    resp = await client.post(f"/_sim/transactions/{txn_id}/fail")
    assert resp.status == 200
    _, body = await post(client, "/chop/inquire", {"q": txn_id})
    assert (body["status"], body["notify_result"]) == ("fail", "fail")
    for data in ({"q": "nope"}, {}, {"transaction_id": txn_id, "reference": "other"}):
        code, body = await post(client, "/chop/inquire", data)
        assert code == 400 and body["result"] == "fail" and body["code"] == 4100, body
    # Another merchant never sees it.
    code, body = await post(client, "/chop/inquire", {"q": txn_id}, auth("someone-else"))
    assert code == 400 and body["code"] == 4100


# -- /chop/refund -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["transaction_id", "transaction_reference", "trans_side"])
async def test_refund_as_the_qa_suite_and_the_plugin_read_it(
    client: TestClient, sim: Simulator, how: str
) -> None:
    txn_id = await created_id(client, reference="order-9")
    await pay(client, txn_id)
    txn = sim.ledger.by_id[txn_id]
    data = {"amount": "40", "currency": "USD"}
    if how == "trans_side":
        data = {"trans_amount": "288", "trans_currency": txn.trans_currency}
    data.update({"transaction_reference": "order-9"} if how == "transaction_reference"
                else {"transaction_id": txn_id})
    code, body = await post(client, "/chop/refund", data)  # no reason: as the QA suite
    assert code == 200
    assert body["refunded"] is True  # the QA suite
    assert body["status"].lower() == "success"  # the plugin, case-insensitively
    assert body["id"] and body["id"] != txn_id  # the plugin's order note
    assert body["id"] in sim.ledger.refunds_by_id
    assert txn.refunded_amount == 40


async def test_refund_of_an_unpaid_or_over_refunded_payment(
    client: TestClient, sim: Simulator
) -> None:
    txn_id = await created_id(client)
    before = ledger_state(sim)
    refused = {"refunded": False, "status": "Refund amount greater than allowed."}
    refund = {"transaction_id": txn_id, "amount": "100", "currency": "USD", "reason": "test"}
    assert await post(client, "/chop/refund", refund) == (200, refused)
    assert ledger_state(sim) == before
    await pay(client, txn_id)
    assert (await post(client, "/chop/refund", {**refund, "amount": "101"})) == (200, refused)
    assert (await post(client, "/chop/refund", refund))[1]["refunded"] is True
    assert (await post(client, "/chop/refund", {**refund, "amount": "1"})) == (200, refused)
    assert sim.ledger.by_id[txn_id].refunded_amount == 100


async def test_paypal_refunds_need_a_reason(client: TestClient, sim: Simulator) -> None:
    txn_id = await created_id(client, payment_method="paypal", auto_capture="true")
    await pay(client, txn_id)
    refund = {"transaction_id": txn_id, "amount": "10", "currency": "USD"}
    required = {"refunded": False, "status": "Refund reason is required."}
    assert await post(client, "/chop/refund", refund) == (200, required)
    # The plugin 1.5/1.6 passes WooCommerce's empty reason through as it is.
    assert await post(client, "/chop/refund", {**refund, "reason": ""}) == (200, required)
    assert sim.ledger.by_id[txn_id].refunded_amount == 0
    # ... and sends "No reason was given." when there is none at all.
    code, body = await post(client, "/chop/refund", {**refund, "reason": "No reason was given."})
    assert body["refunded"] is True and body["status"] == "success"
    # Other wallets refund without one.
    other = await created_id(client, reference="order-2")
    await pay(client, other)
    code, body = await post(client, "/chop/refund", {**refund, "transaction_id": other})
    assert body["refunded"] is True


@pytest.mark.parametrize("data", [
    {},
    {"transaction_id": "x"},
    {"transaction_id": "x", "amount": "5"},
    {"transaction_id": "x", "transaction_reference": "y", "amount": "5", "currency": "USD"},
    {"transaction_id": "x", "amount": "-5", "currency": "USD"},
])
async def test_bad_refund_requests(client: TestClient, sim: Simulator,
                                   data: dict[str, str]) -> None:
    code, body = await post(client, "/chop/refund", data)
    assert code == 400 and body["result"] == "fail" and body["code"] in (4100, 4102), body


async def test_concurrent_refunds_never_refund_more_than_paid(
    client: TestClient, sim: Simulator
) -> None:
    txn_id = await created_id(client)
    await pay(client, txn_id)
    refund = {"transaction_id": txn_id, "amount": "30", "currency": "USD"}
    answers = await asyncio.gather(*(post(client, "/chop/refund", refund) for _ in range(8)))
    assert sum(body["refunded"] for _, body in answers) == 3
    assert sim.ledger.by_id[txn_id].refunded_amount == 90


# -- /chop/cancel -------------------------------------------------------------------------


async def test_cancel_paid_and_unpaid_then_duplicate(client: TestClient, sim: Simulator) -> None:
    unpaid = await created_id(client, reference="o-unpaid")
    paid = await created_id(client, payment_method="wechatpay", reference="o-paid")
    await pay(client, paid)
    for txn_id, reference in ((unpaid, "o-unpaid"), (paid, "o-paid")):
        code, body = await post(client, "/chop/cancel", {"transaction_id": txn_id})
        assert (code, body["status"], body["cancelled"]) == (200, "Order cancelled", True)
        code, body = await post(client, "/chop/cancel", {"transaction_reference": reference})
        assert body["status"] == "Duplicate cancellation" and body["cancelled"] is False
        assert sim.ledger.by_id[txn_id].status is Status.CANCELLED
    # A paid payment is reversed in full.
    assert sim.ledger.by_id[paid].refunded_amount == 100
    code, body = await post(client, "/chop/cancel", {"transaction_id": "nope"})
    assert body == {"transaction_id": None, "transaction_reference": None, "cancelled": False,
                    "status": "Invalid transaction"}
    code, body = await post(client, "/chop/cancel", {})
    assert code == 400 and body["result"] == "fail"


async def test_transactions_list_the_merchants_payments(client: TestClient) -> None:
    mine = await created_id(client)
    await created_id(client, reference="other")
    resp = await client.get("/chop/transactions", headers=AUTH)
    body = await resp.json()
    assert body["result"] == "success" and len(body["transactions"]) == 2
    assert body["transactions"][-1]["transaction_id"] == mine
    resp = await client.get("/chop/transactions", headers=auth("stranger"))
    assert (await resp.json())["transactions"] == []


# -- IPN ----------------------------------------------------------------------------------


async def test_form_ipn_verifies_as_the_plugin_and_the_demos_check_it(
    client: TestClient, sim: Simulator, ipn_receiver: IpnReceiver
) -> None:
    txn_id = await created_id(client, ipn_url=ipn_receiver.url, reference="20250101-57")
    await pay(client, txn_id)
    (form,) = await ipn_receiver.wait_for(1)
    assert ipn_receiver.requests[0].content_type == "application/x-www-form-urlencoded"
    assert form["notify_status"] == "success"  # the plugin pays the order on this
    assert (form["id"], form["amount"], form["currency"]) == (txn_id, "100", "USD")
    assert form["reference"].split("-")[1] == "57"  # the plugin's order id
    assert form["fields"] == "id,amount,notify_status,currency,time,reference,notify_id," \
        "partner_id"
    assert form["sign"] == php_plugin_sign(form, TOKEN) == java_demo_sign(form, TOKEN)
    assert php_plugin_sign({**form, "amount": "1"}, TOKEN) != form["sign"]
    assert php_plugin_sign(form, "another-token") != form["sign"]


@dataclass
class BodyReceiver(IpnReceiver):
    """``IpnReceiver`` that also keeps each POST's raw body (a JSON IPN has no form)."""

    bodies: list[tuple[str, bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            self.bodies.append((request.content_type, await request.read()))
        return await super().handle(request)


def merchants_file(tmp_path: Path, **settings: str) -> Path:
    lines = [f"    {k}: {v}" for k, v in settings.items()]
    path = tmp_path / "merchants.yaml"
    path.write_text("merchants:\n  - token: " + TOKEN + "\n" + "\n".join(lines) + "\n")
    return path


async def test_json_ipn_for_a_merchant_that_asks_for_it(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    sim = Simulator(frozen_config(merchants_file=merchants_file(
        tmp_path, chop_ipn_encoding="json")))
    client = await aiohttp_client(create_app(sim))
    receiver = BodyReceiver()
    server = await aiohttp_server(receiver.app(), host="127.0.0.1")
    receiver.bound(str(server.make_url("")))
    txn_id = await created_id(client, ipn_url=receiver.url)
    await pay(client, txn_id)
    await receiver.wait_for(1)
    (ctype, raw), = receiver.bodies
    assert ctype == "application/json"
    body = json.loads(raw)  # the plugin 1.6.0: json_decode(php://input)
    assert body["notify_status"] == "success" and body["id"] == txn_id
    assert body["sign"] == php_plugin_sign(body, TOKEN)
    # Online API payments of the same merchant stay form-encoded, as documented.
    resp = await client.post("/payment/pay", headers=AUTH, data={
        "vendor": "alipay", "amount": "5", "currency": "USD", "reference": "online-1",
        "ipn_url": receiver.url})
    online_id = (await resp.text()).split("=")[1]
    await pay(client, online_id)
    await receiver.wait_for(2)
    assert receiver.bodies[1][0] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize(("settings", "problem"), [
    ({"chop_ipn_encoding": "xml"}, "chop_ipn_encoding must be form or json"),
    ({"chop_ipn_encoding": "'[form]'"}, "chop_ipn_encoding must be form or json"),
    ({"default_vendor": "bitcoin"}, "default_vendor must be one of"),
    ({"default_vendor": "paypal"}, "default_vendor must be one of"),  # not an Online wallet
])
def test_merchants_file_settings_are_validated(
    tmp_path: Path, settings: dict[str, str], problem: str
) -> None:
    path = merchants_file(tmp_path, **settings)
    with pytest.raises(MerchantsFileError, match=problem) as info:
        Simulator(Config(merchants_file=path))
    assert str(path) in str(info.value) and "merchants[0]" in str(info.value)


def test_merchants_file_defaults(tmp_path: Path) -> None:
    sim = Simulator(Config(merchants_file=merchants_file(tmp_path, name="Shop")))
    settings = sim.ledger.merchant(TOKEN).settings
    assert (settings.chop_ipn_encoding, settings.default_vendor) == ("form", "alipay")


# -- the OpenAPI document -----------------------------------------------------------------


async def test_chop_answers_match_the_openapi_document(client: TestClient,
                                                       sim: Simulator) -> None:
    from .test_openapi import Checker

    check = Checker(document(sim.base_url()))
    resp = await client.post("/chop/chop", headers=AUTH, data={
        "payment_method": "alipay", "amount": "100", "currency": "USD", "reference": "a"})
    txn_id = (await check(resp, "/chop/chop"))["transaction_id"]
    await check(await client.post("/chop/chop", headers=AUTH, data={}), "/chop/chop")
    await check(await client.post("/chop/chop", data={}), "/chop/chop")  # 401
    refund = {"transaction_id": txn_id, "amount": "10", "currency": "USD"}
    await check(await client.post("/chop/refund", headers=AUTH, data=refund), "/chop/refund")
    await check(await client.post("/chop/inquire", headers=AUTH, data={"q": txn_id}),
                "/chop/inquire")
    await pay(client, txn_id)
    await check(await client.post("/chop/refund", headers=AUTH, data=refund), "/chop/refund")
    await check(await client.post("/chop/inquire", headers=AUTH, data={"q": txn_id}),
                "/chop/inquire")
    await check(await client.post("/chop/inquire", headers=AUTH, data={"q": "x"}),
                "/chop/inquire")
    await check(await client.post("/chop/cancel", headers=AUTH,
                                  data={"transaction_id": txn_id}), "/chop/cancel")
    await check(await client.post("/chop/cancel", headers=AUTH,
                                  data={"transaction_id": "x"}), "/chop/cancel")
    await check(await client.get("/chop/transactions", headers=AUTH), "/chop/transactions")
    await check(await client.get("/chop/transactions", headers=AUTH,
                                 params={"limit": "0"}), "/chop/transactions")


# -- the test helpers ---------------------------------------------------------------------


def test_server_helpers_for_chop_merchants(threaded_receiver: IpnReceiver) -> None:
    import urllib.request

    from citcon_sim.testing import SimulatorServer

    with SimulatorServer(frozen_config()) as server:
        body = ("payment_method=alipay&amount=100&currency=USD&reference=h-1"
                f"&ipn_url={quote(threaded_receiver.url, safe='')}").encode()
        request = urllib.request.Request(server.url_for("/chop/chop"), data=body,
                                         headers={"Authorization": TOKEN, **FORM})
        with urllib.request.urlopen(request) as resp:  # noqa: S310 (127.0.0.1)
            answer = json.loads(resp.read())
        paid = server.pay_url(answer["url"])
        assert paid["internal_status"] == "success"
        server.wait_for_ipn(answer["transaction_id"])
        (form,) = threaded_receiver.wait_for_sync(1)
        assert form["sign"] == php_plugin_sign(form, TOKEN)
        (entry,) = server.chop_requests()
        assert (entry["face"], entry["path"], entry["transaction_id"]) == (
            "chop", "/chop/chop", answer["transaction_id"])
        assert server.chop_requests(transaction_id="other") == []
        with pytest.raises(ValueError, match="names no transaction"):
            server.pay_url("http://127.0.0.1/u_landing")


# -- state ----------------------------------------------------------------------------------


async def test_a_restored_chop_payment_still_notifies_in_chops_format(
    client: TestClient, sim: Simulator, ipn_receiver: IpnReceiver
) -> None:
    txn_id = await created_id(client, ipn_url=ipn_receiver.url)
    snapshot = await (await client.get("/_sim/state")).json()
    (entry,) = snapshot["transactions"]
    assert entry["face"] == "chop"
    assert (await client.post("/_sim/reset")).status == 200
    resp = await client.put("/_sim/state", json=snapshot)
    assert resp.status == 200, await resp.text()
    assert sim.ledger.by_id[txn_id].face == "chop"
    await pay(client, txn_id)
    (form,) = await ipn_receiver.wait_for(1)
    assert form["fields"].startswith("id,amount,notify_status,") and "vendor" not in form
    # An unknown face is refused, naming where; the state is left as it was.
    entry["face"] = "soap"
    resp = await client.put("/_sim/state", json=snapshot)
    assert resp.status == 400 and "face" in (await resp.text())
    assert sim.ledger.by_id[txn_id].face == "chop"
