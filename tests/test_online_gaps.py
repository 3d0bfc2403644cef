"""Online API variants real clients send (docs/evidence/upi-chop.md §4): ``vendor=generic``,
``callback_url`` for ``callback_url_success``, and ``POST /payment/transactions``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from citcon_sim import Simulator, create_app
from citcon_sim.web.openapi import document

from .helpers import AUTH, TOKEN, TestClient, consumer_pays, expect_error, frozen_config
from .test_chop import merchants_file

QA_PAY = {"vendor": "generic", "amount": "1", "currency": "USD", "reference": "qa-1",
          "ipn_url": "https://merchant.example/ipn", "callback_url": "https://www.sina.com/",
          "allow_duplicates": "yes"}


async def test_generic_vendor_as_citcons_qa_suite_sends_it(client: TestClient,
                                                           sim: Simulator) -> None:
    resp = await client.post("/payment/pay_qr", data=QA_PAY, headers=AUTH)
    text = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/plain", text
    q = text.split("=")[1].split("&")[0]  # the QA suite's own parsing
    assert sim.ledger.by_id[q].vendor.code == "alipay"  # the default wallet
    await consumer_pays(client, q)
    resp = await client.post("/payment/refund", headers=AUTH, data={
        "transaction_id": q, "amount": "1", "currency": "USD"})
    assert (await resp.json())["refunded"] is True


@pytest.mark.parametrize("spelling", ["generic", " Generic ", "GENERIC"])
async def test_generic_follows_the_merchants_default_vendor(
    aiohttp_client: Any, tmp_path: Path, spelling: str
) -> None:
    sim = Simulator(frozen_config(merchants_file=merchants_file(
        tmp_path, default_vendor="wechatpay")))
    client = await aiohttp_client(create_app(sim))
    resp = await client.post("/payment/pay", headers=AUTH, data={**QA_PAY, "vendor": spelling})
    assert resp.status == 200, await resp.text()
    txn = sim.ledger.by_id[(await resp.text()).split("=")[1]]
    assert txn.vendor.code == "wechatpay"
    assert sim.ledger.merchant(TOKEN).settings.default_vendor == "wechatpay"


async def test_callback_url_is_the_success_url_when_that_is_absent(
    client: TestClient, sim: Simulator
) -> None:
    resp = await client.post("/payment/pay", data={**QA_PAY, "vendor": "alipay"}, headers=AUTH)
    txn_id = (await resp.text()).split("=")[1]
    assert sim.ledger.by_id[txn_id].callback_url_success == "https://www.sina.com/"
    # The consumer pays on the hosted page and is sent there.
    paid = await client.post(f"/u_landing/{txn_id}/pay", allow_redirects=False)
    assert paid.status == 303 and paid.headers["Location"] == "https://www.sina.com/"
    # callback_url_success wins when both are sent.
    resp = await client.post("/payment/pay", headers=AUTH, data={
        **QA_PAY, "callback_url_success": "https://merchant.example/ok"})
    txn = sim.ledger.by_id[(await resp.text()).split("=")[1]]
    assert txn.callback_url_success == "https://merchant.example/ok"


async def test_a_malformed_callback_url_is_refused_like_callback_url_success(
    client: TestClient, sim: Simulator
) -> None:
    resp = await client.post("/payment/pay", headers=AUTH,
                             data={**QA_PAY, "callback_url": "https//www.baidu.com"})
    body = await expect_error(resp, 4100)
    assert "callback_url" in body["message"]
    assert sim.ledger.by_id == {}


async def test_unknown_vendors_are_still_refused(client: TestClient, sim: Simulator) -> None:
    resp = await client.post("/payment/pay", headers=AUTH, data={**QA_PAY, "vendor": "generics"})
    await expect_error(resp, 4101)
    # CHOP-only wallets are not the Online API's.
    resp = await client.post("/payment/pay", headers=AUTH, data={**QA_PAY, "vendor": "paypal"})
    await expect_error(resp, 4101)
    assert sim.ledger.by_id == {}


async def test_post_transactions_answers_like_get(client: TestClient) -> None:
    for reference in ("a", "b", "c"):
        resp = await client.post("/payment/pay", headers=AUTH,
                                 data={**QA_PAY, "reference": reference})
        assert resp.status == 200
    listed = await (await client.get("/payment/list", headers=AUTH)).json()
    assert len(listed["transactions"]) == 3
    # An empty body, as one real client posts it (no Content-Type either).
    resp = await client.post("/payment/transactions", headers=AUTH)
    assert resp.status == 200 and await resp.json() == listed
    resp = await client.post("/payment/transactions", headers=AUTH, data="",
                             skip_auto_headers=("Content-Type",))
    assert await resp.json() == listed
    resp = await client.post("/payment/transactions", headers=AUTH, data={"limit": "1"})
    assert [t["reference"] for t in (await resp.json())["transactions"]] == ["c"]
    resp = await client.post("/payment/transactions", headers=AUTH, data={"limit": "0"})
    await expect_error(resp, 4100)
    resp = await client.post("/payment/transactions")
    await expect_error(resp, 4100, status=401)


def test_the_gaps_are_in_the_openapi_document(sim: Simulator) -> None:
    doc = document(sim.base_url())
    assert "post" in doc["paths"]["/payment/transactions"]
    form = doc["components"]["schemas"]["PaymentForm"]
    assert "generic" in form["properties"]["vendor"]["enum"]
    assert "callback_url" in form["properties"]


async def test_post_transactions_answers_match_the_document(client: TestClient,
                                                            sim: Simulator) -> None:
    from .test_openapi import Checker

    check = Checker(document(sim.base_url()))
    await client.post("/payment/pay", headers=AUTH, data=QA_PAY)
    body = await check(await client.post("/payment/transactions", headers=AUTH),
                       "/payment/transactions")
    assert len(body["transactions"]) == 1 and body["transactions"][0]["vendor"] == "alipay"
    await check(await client.post("/payment/transactions", headers=AUTH,
                                  data={"offset": "-1"}), "/payment/transactions")
