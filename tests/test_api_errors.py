"""The merchant API's input handling over HTTP: error codes, envelopes, odd bodies, auth.

Every rejected request must answer the documented envelope and leave the ledger as it
was; no input, however malformed, may produce a 500.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from citcon_sim import Config, Simulator, create_app
from citcon_sim.domain.merchants import MerchantsFileError

from .helpers import (
    AUTH,
    TOKEN,
    auth,
    client_for,
    consumer_pays,
    create,
    expect_error,
    frozen_config,
)
from .helpers import DOCUMENTED_ERRORS as DOCUMENTED

BASE = {"vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "order-1"}


def with_(**changes: Any) -> dict[str, str]:
    data = {**BASE, **{k: str(v) for k, v in changes.items() if v is not None}}
    return {k: v for k, v in data.items() if k not in {k for k, v in changes.items()
                                                         if v is None}}


# -- documented error codes ---------------------------------------------------------------------


CASES: list[tuple[str, dict[str, str], int]] = [
    ("unknown vendor", with_(vendor="nosuchpay"), 4101),
    ("missing vendor", with_(vendor=None), 4101),
    ("amount 0", with_(amount=0), 4102),
    ("amount -1", with_(amount=-1), 4102),
    ("amount 9.99", with_(amount="9.99"), 4102),
    ("amount abc", with_(amount="abc"), 4102),
    ("amount with separator", with_(amount="1,000"), 4102),
    ("amount with $", with_(amount="$10"), 4102),
    ("no amount at all", with_(amount=None, currency=None), 4102),
    ("trans_amount 0", with_(amount=None, currency=None, trans_amount=0,
                             trans_currency="CNY"), 4102),
    ("missing reference", with_(reference=None), 4103),
    ("reference of 129 characters", with_(reference="r" * 129), 4103),
    ("reference of 2048 characters", with_(reference="r" * 2048), 4103),
    ("reference with a control character", with_(reference="a\x01b"), 4103),
    ("timeout 0", with_(timeout=0), 4104),
    ("timeout abc", with_(timeout="abc"), 4104),
    ("timeout -5", with_(timeout=-5), 4104),
    ("timeout 1.5", with_(timeout="1.5"), 4104),
    ("timeout huge", with_(timeout=10**30), 4104),
    ("timeout over a week", with_(timeout=7 * 86400 + 1), 4104),
    ("banktransfer with unknown bank",
     with_(vendor="banktransfer", currency="KRW", bank="nosuchbank"), 4105),
    ("bank for a vendor without banks", with_(bank="kb"), 4105),
    ("missing currency", with_(currency=None), 4100),
    ("unknown currency", with_(currency="XYZ"), 4100),
    ("non-monetary currency", with_(currency="XAU"), 4100),
    ("trans_amount without trans_currency", with_(trans_amount=5), 4100),
    ("goods that is not JSON", with_(goods="{not json"), 4100),
    ("goods that is a JSON list", with_(goods="[1, 2]"), 4100),
    ("relative ipn_url", with_(ipn_url="/ipn"), 4100),
    ("auto_capture garbage", with_(auto_capture="maybe"), 4100),
    ("vendor given as an object", {**BASE, "vendor[x]": "alipay"}, 4100),
    ("note too long", with_(note="n" * 5000), 4100),
]


@pytest.mark.parametrize("endpoint", ["pay", "pay_qr"])
@pytest.mark.parametrize(("case", "data", "code"), CASES, ids=[c[0] for c in CASES])
async def test_documented_error_codes(
    client: TestClient, sim: Simulator, endpoint: str, case: str, data: dict, code: int
) -> None:
    resp = await client.post(f"/payment/{endpoint}", data=data, headers=AUTH)
    await expect_error(resp, code)
    assert sim.ledger.by_id == {}, case


async def test_error_message_adds_detail_after_the_documented_text(client: TestClient) -> None:
    body = await expect_error(
        await client.post("/payment/pay", data=with_(vendor="nosuchpay"), headers=AUTH), 4101
    )
    assert "nosuchpay" in body["message"]


@pytest.mark.parametrize(
    ("endpoint", "data"),
    [
        ("refund", {"transaction_id": "x", "transaction_reference": "y", "amount": "1",
                    "currency": "USD"}),
        ("refund", {"amount": "1", "currency": "USD"}),
        ("refund", {"transaction_id": "x", "amount": "1"}),
        ("refund", {"transaction_id": "x", "amount": "1", "currency": "QQQ"}),
        ("cancel", {}),
        ("inquire", {}),
        ("capture", {}),
        ("capture", {"transaction_id": "x", "multi_capture": "perhaps"}),
    ],
)
async def test_bad_requests_on_other_endpoints(
    client: TestClient, endpoint: str, data: dict
) -> None:
    await expect_error(await client.post(f"/payment/{endpoint}", data=data, headers=AUTH), 4100)


@pytest.mark.parametrize("amount", ["0", "-1", "9.99", "abc"])
async def test_refund_amount_errors_are_4102(client: TestClient, amount: str) -> None:
    txn_id = await create(client)
    await consumer_pays(client, txn_id)
    resp = await client.post("/payment/refund", headers=AUTH, data={
        "transaction_id": txn_id, "amount": amount, "currency": "USD"})
    await expect_error(resp, 4102)


async def test_refund_without_any_amount_is_4102(client: TestClient) -> None:
    resp = await client.post("/payment/refund", data={"transaction_id": "x"}, headers=AUTH)
    await expect_error(resp, 4102)


async def test_capture_failures_use_the_envelope(client: TestClient) -> None:
    txn_id = await create(client, vendor="alipay")
    await consumer_pays(client, txn_id)
    resp = await client.post("/payment/capture", data={"transaction_id": txn_id}, headers=AUTH)
    body = await expect_error(resp, 4100)
    assert "capture" in body["message"]


async def test_inquire_of_unknown_transaction_uses_the_envelope(client: TestClient) -> None:
    resp = await client.post("/payment/inquire", data={"reference": "nope"}, headers=AUTH)
    await expect_error(resp, 4100)


async def test_refund_failures_are_http_200_with_refunded_false(client: TestClient) -> None:
    txn_id = await create(client)
    await consumer_pays(client, txn_id)
    resp = await client.post("/payment/refund", headers=AUTH, data={
        "transaction_id": txn_id, "amount": "1001", "currency": "USD"})
    assert resp.status == 200
    assert await resp.json() == {"refunded": False,
                                 "status": "refund amount greater than payment amount"}


async def test_cancel_of_unknown_or_foreign_transaction_is_invalid(client: TestClient) -> None:
    txn_id = await create(client)
    for data, token in (({"transaction_id": "U0000000001-00000000000000000000"}, TOKEN),
                        ({"transaction_reference": "nope"}, TOKEN),
                        ({"transaction_id": txn_id}, "someone-else")):
        resp = await client.post("/payment/cancel", data=data,
                                 headers=auth(token))
        assert resp.status == 200
        assert await resp.json() == {"transaction_id": None, "transaction_reference": None,
                                     "cancelled": False, "status": "Invalid transaction"}


# -- auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "   ", "Bearer", "Bearer ", "bearer   "])
async def test_missing_token_is_401_with_the_envelope(
    client: TestClient, sim: Simulator, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    for path, data in (("/payment/pay", BASE), ("/payment/inquire", {"reference": "r"}),
                       ("/payment/refund", {"transaction_id": "x"})):
        resp = await client.post(path, data=data, headers=headers)
        await expect_error(resp, 4100, status=401)
    assert sim.ledger.by_id == {} and sim.ledger.merchants == {}


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", TOKEN, f"bearer {TOKEN}",
                                    f"  Bearer   {TOKEN}  "])
async def test_bearer_and_bare_tokens_are_the_same_merchant(
    client: TestClient, sim: Simulator, header: str
) -> None:
    txn_id = await create(client)
    resp = await client.post("/payment/inquire", data={"transaction_id": txn_id},
                             headers={"Authorization": header})
    assert resp.status == 200
    assert (await resp.json())["id"] == txn_id
    assert list(sim.ledger.merchants) == [TOKEN]


async def test_another_token_does_not_see_the_transaction(client: TestClient) -> None:
    txn_id = await create(client)
    resp = await client.post("/payment/inquire", data={"transaction_id": txn_id},
                             headers={"Authorization": "Bearer someone-else"})
    await expect_error(resp, 4100)


# -- parameter handling -------------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "path"), [("pay", "/u_landing?q="),
                                                ("pay_qr", "/payment/qr?q=")])
async def test_get_with_query_string_creates_a_payment(
    client: TestClient, sim: Simulator, endpoint: str, path: str
) -> None:
    resp = await client.get(f"/payment/{endpoint}", params=BASE, headers=AUTH)
    text = await resp.text()
    assert resp.status == 200, text
    assert resp.content_type == "text/plain"
    assert path in text
    txn_id = text.split("=")[1].split("&")[0]
    txn = sim.ledger.by_id[txn_id]
    assert (txn.amount, txn.currency, txn.reference, txn.method) == (
        1000, "USD", "order-1", endpoint)


async def test_body_wins_over_query_string(client: TestClient, sim: Simulator) -> None:
    resp = await client.post("/payment/pay?amount=5&note=from-query", data=BASE, headers=AUTH)
    txn_id = (await resp.text()).split("=")[1]
    txn = sim.ledger.by_id[txn_id]
    assert txn.amount == 1000 and txn.note == "from-query"


async def test_values_are_trimmed(client: TestClient, sim: Simulator) -> None:
    data = {"vendor": "upop ", "amount": " 1 ", "currency": " usd", "reference": " r-1 ",
            "timeout": " 600 "}
    resp = await client.post("/payment/pay", data=data, headers=AUTH)
    assert resp.status == 200, await resp.text()
    txn = sim.ledger.by_id[(await resp.text()).split("=")[1]]
    assert (txn.vendor.code, txn.amount, txn.currency, txn.reference) == (
        "upop", 1, "USD", "r-1")
    assert txn.expires_at - txn.created_at == 600


async def test_empty_values_count_as_absent(client: TestClient, sim: Simulator) -> None:
    data = {**BASE, "timeout": "", "note": "", "ipn_url": "", "allow_duplicates": "",
            "auto_capture": " ", "trans_amount": "", "trans_currency": "", "goods": ""}
    first = await client.post("/payment/pay_qr", data=data, headers=AUTH)
    assert first.status == 200, await first.text()
    txn = sim.ledger.by_id[(await first.text()).split("=")[1]]
    assert txn.expires_at - txn.created_at == 300
    assert txn.note is None and txn.ipn_url is None and txn.goods is None
    assert txn.trans_currency == "CNY"  # derived, as if trans_* were not sent
    # allow_duplicates="" is absent: the same transaction answers.
    again = await client.post("/payment/pay_qr", data=data, headers=AUTH)
    assert await again.text() == await first.text()
    assert len(sim.ledger.by_id) == 1


async def test_empty_vendor_is_missing_vendor(client: TestClient) -> None:
    await expect_error(await client.post("/payment/pay", data=with_(vendor=""), headers=AUTH),
                       4101)


async def test_unknown_parameters_are_ignored(client: TestClient, sim: Simulator) -> None:
    data = {**BASE, "inquire_method": "real", "foo": "bar", "x[y]": "z", "sign_type": "MD5"}
    resp = await client.post("/payment/pay", data=data, headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert len(sim.ledger.by_id) == 1


async def test_duplicated_keys_keep_the_last_value(client: TestClient, sim: Simulator) -> None:
    body = "vendor=alipay&amount=5&amount=7&currency=USD&reference=a&reference=b"
    resp = await client.post("/payment/pay", data=body, headers={
        **AUTH, "Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 200, await resp.text()
    txn = sim.ledger.by_id[(await resp.text()).split("=")[1]]
    assert (txn.amount, txn.reference) == (7, "b")


async def test_bracketed_keys_become_objects(client: TestClient, sim: Simulator) -> None:
    data = {**BASE, "consumer[first_name]": "Liu", "consumer[ext][document_id]": "D1",
            "billing_address[city]": "Campeche"}
    resp = await client.post("/payment/pay", data=data, headers=AUTH)
    assert resp.status == 200, await resp.text()
    txn = sim.ledger.by_id[(await resp.text()).split("=")[1]]
    assert txn.extra["consumer"] == {"first_name": "Liu", "ext": {"document_id": "D1"}}
    assert txn.extra["billing_address"] == {"city": "Campeche"}


@pytest.mark.parametrize("key", ["consumer[a][b][c]", "consumer[a][b][c][d][e][f]" * 3,
                                 "consumer[]", "consumer[a]b", "[x]", "a]", "a[b"])
async def test_malformed_bracketed_keys_are_4100(
    client: TestClient, sim: Simulator, key: str
) -> None:
    resp = await client.post("/payment/pay", data={**BASE, key: "v"}, headers=AUTH)
    await expect_error(resp, 4100)
    assert sim.ledger.by_id == {}


async def test_documented_escaped_goods_are_accepted(client: TestClient, sim: Simulator) -> None:
    goods = '{\\"data\\":[{\\"name\\":\\"Battery Power Pack\\",\\"total_tax_amount\\":0}]}'
    data = {**BASE, "vendor": "card", "currency": "KRW", "goods": goods}
    resp = await client.post("/payment/pay", data=data, headers=AUTH)
    assert resp.status == 200, await resp.text()
    txn = sim.ledger.by_id[(await resp.text()).split("=")[1]]
    assert txn.goods == {"data": [{"name": "Battery Power Pack", "total_tax_amount": 0}]}


async def test_json_body_is_accepted(client: TestClient, sim: Simulator) -> None:
    body = {"vendor": "klarna", "amount": 4000, "currency": "USD", "reference": "j-1",
            "auto_capture": False, "note": None, "goods": {"data": [{"name": "x"}]},
            "consumer": {"first_name": "Liu"}}
    resp = await client.post("/payment/pay", json=body, headers=AUTH)
    assert resp.status == 200, await resp.text()
    txn = sim.ledger.by_id[(await resp.text()).split("=")[1]]
    assert (txn.vendor.code, txn.amount, txn.auto_capture, txn.note) == (
        "klarna", 4000, False, None)
    assert txn.goods == {"data": [{"name": "x"}]}


@pytest.mark.parametrize("body", ["[1, 2]", "\"text\"", "{not json", "null"])
async def test_json_body_that_is_not_an_object_is_4100(
    client: TestClient, sim: Simulator, body: str
) -> None:
    resp = await client.post("/payment/pay", data=body,
                             headers={**AUTH, "Content-Type": "application/json"})
    await expect_error(resp, 4100)
    assert sim.ledger.by_id == {}


@pytest.mark.parametrize("endpoint", ["pay", "pay_qr"])
async def test_response_format_json(client: TestClient, sim: Simulator, endpoint: str) -> None:
    resp = await client.post(f"/payment/{endpoint}", headers=AUTH,
                             data={**BASE, "response_format": "json"})
    assert resp.status == 200 and resp.content_type == "application/json"
    body = await resp.json()
    txn_id = body["transaction_id"]
    assert txn_id in sim.ledger.by_id
    assert body["url"].split("=")[1] == txn_id
    assert body["url"].startswith("http://127.0.0.1")
    # Without it, the same transaction answers as a plain URL.
    plain = await client.post(f"/payment/{endpoint}", data=BASE, headers=AUTH)
    assert plain.content_type == "text/plain"
    assert await plain.text() == body["url"]


async def test_transaction_id_shape(client: TestClient) -> None:
    import re

    txn_id = await create(client)
    assert re.fullmatch(r"U\d{10}-[0-9a-f]{20}", txn_id)


# -- malformed input never yields a 500 ---------------------------------------------------------


async def test_invalid_utf8_body_is_4100(client: TestClient, sim: Simulator) -> None:
    for body, ctype in ((b"vendor=alipay&note=\xff\xfe", "application/x-www-form-urlencoded"),
                        (b"vendor=%ff%fe&amount=1", "application/x-www-form-urlencoded"),
                        (b'{"vendor": "\xff"}', "application/json")):
        resp = await client.post("/payment/pay", data=body,
                                 headers={**AUTH, "Content-Type": ctype})
        await expect_error(resp, 4100)
    assert sim.ledger.by_id == {}


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("text/plain", "vendor=alipay&amount=1000&currency=USD&reference=order-1"),
        ("application/xml", "<pay><vendor>alipay</vendor></pay>"),
        ("application/octet-stream", "\x00\x01\x02"),
        ("multipart/form-data", "garbage"),
        ("multipart/form-data; boundary=zzz", "garbage"),
        ("application/json; charset=latin-1", "{}"),
    ],
)
async def test_odd_content_types_never_500(client: TestClient, ctype: str, body: str) -> None:
    resp = await client.post("/payment/pay", data=body.encode(),
                             headers={**AUTH, "Content-Type": ctype})
    assert resp.status in (200, 400), await resp.text()
    if resp.status == 400:
        payload = await resp.json()
        assert payload["result"] == "fail" and payload["code"] in DOCUMENTED


async def test_form_body_with_text_plain_type_still_parses(
    client: TestClient, sim: Simulator
) -> None:
    resp = await client.post("/payment/pay", headers={**AUTH, "Content-Type": "text/plain"},
                             data=b"vendor=alipay&amount=1000&currency=USD&reference=order-1")
    assert resp.status == 200, await resp.text()
    assert len(sim.ledger.by_id) == 1


async def test_multipart_form_is_accepted(client: TestClient, sim: Simulator) -> None:
    import aiohttp

    form = aiohttp.FormData()
    for key, value in BASE.items():
        form.add_field(key, value)
    form.add_field("file", b"bytes", filename="x.bin")  # a file part is ignored
    resp = await client.post("/payment/pay", data=form, headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert len(sim.ledger.by_id) == 1


async def test_deeply_nested_json_is_4100(client: TestClient) -> None:
    body = "[" * 100_000 + "]" * 100_000
    resp = await client.post("/payment/pay", data=body,
                             headers={**AUTH, "Content-Type": "application/json"})
    await expect_error(resp, 4100)
    nested = '{"vendor": "alipay", "goods": ' + '{"a": ' * 50_000 + "1" + "}" * 50_001
    resp = await client.post("/payment/pay", data=nested,
                             headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status == 400, await resp.text()


async def test_deeply_nested_goods_text_is_4100(client: TestClient, sim: Simulator) -> None:
    goods = "[" * 30_000 + "]" * 30_000  # within goods' length limit, too deep to decode
    resp = await client.post("/payment/pay", data={**BASE, "goods": goods}, headers=AUTH)
    await expect_error(resp, 4100)
    assert sim.ledger.by_id == {}


async def test_very_long_values_are_4100(client: TestClient, sim: Simulator) -> None:
    for data in ({**BASE, "reference": "r" * 5000}, {**BASE, "note": "n" * 100_000},
                 {**BASE, "goods": '{"a":"' + "x" * 70_000 + '"}'},
                 {**BASE, "k" * 500: "v"},
                 {**BASE, **{f"p{i}": "v" for i in range(300)}}):
        resp = await client.post("/payment/pay", data=data, headers=AUTH)
        body = await resp.json()
        assert resp.status == 400 and body["result"] == "fail", body
        assert body["code"] in (4100, 4103), body
    assert sim.ledger.by_id == {}


async def test_nested_response_format_is_4100_and_creates_nothing(
    client: TestClient, sim: Simulator
) -> None:
    resp = await client.post("/payment/pay", headers=AUTH,
                             data={**BASE, "response_format[x]": "json"})
    await expect_error(resp, 4100)
    assert sim.ledger.by_id == {}


async def test_nested_values_where_text_is_expected_are_4100(client: TestClient) -> None:
    txn_id = await create(client)
    for path, data in (("/payment/inquire", {"transaction_id[a]": txn_id}),
                       ("/payment/refund", {"transaction_id": txn_id, "amount[a]": "1",
                                            "currency": "USD"}),
                       ("/payment/cancel", {"transaction_reference[a]": "x"}),
                       ("/payment/capture", {"reference": "x", "amount[b]": "1"}),
                       ("/payment/list?limit[a]=1", {})):
        resp = await client.request("GET" if "list" in path else "POST", path, data=data,
                                    headers=AUTH)
        await expect_error(resp, 4100)


@pytest.mark.parametrize("query", ["limit=abc", "limit=0", "limit=100000", "offset=-1",
                                   "limit=1e3"])
async def test_list_paging_errors_are_4100(client: TestClient, query: str) -> None:
    await expect_error(await client.get(f"/payment/list?{query}", headers=AUTH), 4100)


async def test_merchant_list_is_newest_first_and_isolated(client: TestClient) -> None:
    ids = [await create(client, reference=f"r{i}") for i in range(3)]
    await create(client, token="other-token")
    resp = await client.get("/payment/list", headers=AUTH)
    assert [t["id"] for t in (await resp.json())["transactions"]] == ids[::-1]
    resp = await client.get("/payment/list?limit=1&offset=1", headers=AUTH)
    assert [t["id"] for t in (await resp.json())["transactions"]] == [ids[1]]


# -- body size, routing ---------------------------------------------------------------------------


@pytest.fixture
async def small_client(aiohttp_client: Callable[..., Any]) -> TestClient:
    return (await client_for(aiohttp_client, seed=1, max_body_bytes=2048))[0]


async def test_body_over_the_size_limit_is_413_envelope(small_client: TestClient) -> None:
    data = {**BASE, "note": "n" * 3000}
    resp = await small_client.post("/payment/pay", data=data, headers=AUTH)
    await expect_error(resp, 4100, status=413)
    resp = await small_client.post("/payment/pay", json=data, headers=AUTH)
    await expect_error(resp, 4100, status=413)
    # Just under the limit is fine.
    resp = await small_client.post("/payment/pay", data={**BASE, "note": "n" * 1500},
                                   headers=AUTH)
    assert resp.status == 200, await resp.text()


async def test_default_body_limit_comes_from_config(client: TestClient, sim: Simulator) -> None:
    limit = sim.config.max_body_bytes
    body = io.BytesIO(b"note=" + b"n" * limit)
    resp = await client.post("/payment/pay", data=body, headers={
        **AUTH, "Content-Type": "application/x-www-form-urlencoded"})
    await expect_error(resp, 4100, status=413)
    assert sim.ledger.by_id == {}


@pytest.mark.parametrize("path", ["/payment/nope", "/nope", "/payment/pay/extra"])
async def test_unknown_route_is_404_envelope(client: TestClient, path: str) -> None:
    await expect_error(await client.post(path, data=BASE, headers=AUTH), 4100, status=404)


@pytest.mark.parametrize(("method", "path"), [("GET", "/payment/refund"),
                                              ("GET", "/payment/cancel"),
                                              ("GET", "/payment/capture"),
                                              ("DELETE", "/payment/pay"),
                                              ("PUT", "/payment/inquire")])
async def test_wrong_method_is_405_envelope(client: TestClient, method: str, path: str) -> None:
    resp = await client.request(method, path, headers=AUTH)
    await expect_error(resp, 4100, status=405)
    assert "POST" in resp.headers["Allow"]


# -- rejected requests leave the ledger unchanged -----------------------------------------------


async def test_rejected_requests_leave_the_ledger_unchanged(
    client: TestClient, sim: Simulator
) -> None:
    txn_id = await create(client)
    await consumer_pays(client, txn_id)
    before = (len(sim.ledger.by_id), len(sim.ledger.refunds_by_id),
              dict(sim.ledger.open_balance(sim.ledger.merchant(TOKEN))))
    bad = [
        ("/payment/pay", with_(amount=0)),
        ("/payment/pay_qr", with_(vendor="nope")),
        ("/payment/pay", with_(reference="x" * 200)),
        ("/payment/pay", with_(timeout="soon")),
        ("/payment/pay", with_(vendor="banktransfer", bank="nosuchbank")),
        ("/payment/pay", with_(goods="{")),
        ("/payment/refund", {"transaction_id": txn_id, "amount": "0", "currency": "USD"}),
        ("/payment/refund", {"transaction_id": txn_id, "amount": "1", "currency": "JPY"}),
        ("/payment/refund", {"transaction_id": txn_id, "amount": "5000", "currency": "USD"}),
        ("/payment/refund", {"transaction_id": txn_id, "transaction_reference": "order-1",
                             "amount": "1", "currency": "USD"}),
        ("/payment/capture", {"transaction_id": txn_id}),
    ]
    for path, data in bad:
        resp = await client.post(path, data=data, headers=AUTH)
        assert resp.status in (200, 400), (path, data, await resp.text())
        if resp.status == 200:
            assert (await resp.json())["refunded"] is False
    after = (len(sim.ledger.by_id), len(sim.ledger.refunds_by_id),
             dict(sim.ledger.open_balance(sim.ledger.merchant(TOKEN))))
    assert after == before == (1, 0, {"USD": 1000})
    assert sim.ledger.by_id[txn_id].refunded_amount == 0


# -- strict mode (merchants file) ------------------------------------------------------------------


MERCHANTS_YAML = """\
merchants:
  - token: tok-jp
    partner_id: "300000125"
    name: Tokyo Shop
    settlement_currency: JPY
    refund_exempt: true
  - token: tok-us
    cancel_windows:
      alipay: 60
fx:
  CNY: "7.5"
"""


@pytest.fixture
def merchants_file(tmp_path: Path) -> Path:
    path = tmp_path / "merchants.yaml"
    path.write_text(MERCHANTS_YAML, encoding="utf-8")
    return path


@pytest.fixture
def strict_sim(merchants_file: Path) -> Simulator:
    return Simulator(frozen_config(seed=7, merchants_file=merchants_file))


@pytest.fixture
async def strict(aiohttp_client: Callable[..., Any], strict_sim: Simulator) -> TestClient:
    return await aiohttp_client(create_app(strict_sim))


async def test_strict_mode_rejects_unknown_tokens(
    strict: TestClient, strict_sim: Simulator
) -> None:
    resp = await strict.post("/payment/pay", data=BASE, headers=auth("test-token"))
    await expect_error(resp, 4100, status=401)
    resp = await strict.post("/payment/inquire", data={"reference": "x"}, headers=auth("nope"))
    await expect_error(resp, 4100, status=401)
    assert strict_sim.ledger.by_id == {}
    assert strict_sim.ledger.merchants == {}


async def test_strict_mode_listed_token_uses_its_settings(
    strict: TestClient, strict_sim: Simulator
) -> None:
    resp = await strict.post("/payment/pay", headers=auth("tok-jp"), data={
        "vendor": "alipay", "trans_amount": "750", "trans_currency": "CNY", "reference": "jp-1"})
    assert resp.status == 200, await resp.text()
    txn_id = (await resp.text()).split("=")[1]
    resp = await strict.post("/payment/inquire", data={"transaction_id": txn_id},
                             headers=auth("tok-jp"))
    body = await resp.json()
    # 7.50 CNY at the file's 7.5 CNY per USD is $1, which is 150 yen (no minor unit).
    assert (body["currency"], body["amount"]) == ("JPY", 150)
    assert (body["trans_currency"], body["trans_amount"]) == ("CNY", 750)
    settings = strict_sim.ledger.merchant("tok-jp").settings
    assert (settings.partner_id, settings.name, settings.settlement_currency) == (
        "300000125", "Tokyo Shop", "JPY")
    us = strict_sim.ledger.merchant("tok-us").settings
    assert us.settlement_currency == "USD" and len(us.partner_id) == 9


async def test_strict_mode_refund_exempt_is_honoured(
    strict: TestClient, strict_sim: Simulator
) -> None:
    ids = {}
    for token in ("tok-jp", "tok-us"):
        resp = await strict.post("/payment/pay", headers=auth(token), data={
            **BASE, "currency": "JPY" if token == "tok-jp" else "USD"})
        ids[token] = (await resp.text()).split("=")[1]
        assert (await strict.post(f"/_sim/transactions/{ids[token]}/pay")).status == 200
    strict_sim.advance(86400)  # a new day: open balances start at zero
    resp = await strict.post("/payment/refund", headers=auth("tok-us"), data={
        "transaction_id": ids["tok-us"], "amount": "100", "currency": "USD"})
    assert await resp.json() == {"refunded": False, "status": "insufficient open balance"}
    resp = await strict.post("/payment/refund", headers=auth("tok-jp"), data={
        "transaction_id": ids["tok-jp"], "amount": "100", "currency": "JPY"})
    body = await resp.json()
    assert body["refunded"] is True and body["transaction_id"] == ids["tok-jp"]


async def test_strict_mode_cancel_window_override(
    strict: TestClient, strict_sim: Simulator
) -> None:
    resp = await strict.post("/payment/pay", headers=auth("tok-us"), data=BASE)
    txn_id = (await resp.text()).split("=")[1]
    await consumer_pays(strict, txn_id)
    strict_sim.advance(61)
    resp = await strict.post("/payment/cancel", data={"transaction_id": txn_id},
                             headers=auth("tok-us"))
    assert await resp.json() == {"transaction_id": txn_id, "transaction_reference": "order-1",
                                 "cancelled": False, "status": "Not in cancellation window"}


@pytest.mark.parametrize(
    "content",
    [
        "merchants: [",  # not YAML
        "",  # empty
        "merchants: []",
        "merchants: {token: a}",
        "merchants:\n  - just-a-string\n",
        "merchants:\n  - name: no token\n",
        "merchants:\n  - token: a\n  - token: a\n",
        "merchants:\n  - token: a\n    colour: red\n",
        "merchants:\n  - token: a\n    settlement_currency: XYZ\n",
        "merchants:\n  - token: a\n    cancel_windows: {nosuchpay: 5}\n",
        "merchants:\n  - token: a\n    cancel_windows: {alipay: -5}\n",
        "merchants:\n  - token: a\nfx: [1, 2]\n",
        "merchants:\n  - token: a\nfx: {CNY: -1}\n",
        "merchants:\n  - token: a\nfx: {CNY: abc}\n",
        "merchants:\n  - token: a\nfx: {CNY: .inf}\n",
        "merchants:\n  - token: a\nfx: {ZZZ: 1}\n",
        "merchants:\n  - token: a\n    refund_exempt: 'no'\n",
    ],
)
def test_invalid_merchants_file_names_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad-merchants.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(MerchantsFileError) as info:
        Simulator(Config(merchants_file=path))
    assert str(path) in str(info.value)


def test_missing_merchants_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(MerchantsFileError, match="absent.yaml"):
        Simulator(Config(merchants_file=path))
