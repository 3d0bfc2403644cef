"""A merchant exists once a call of its succeeds (issue 13, item 10).

In zero-config (lenient) mode any token authenticates, but rejected calls used to store
a merchant per token: 50,000 inquiries answered 400 left 50,001 merchants. Now a lookup
never creates; creating a payment (the only operation that can give a merchant its
first transaction) stores its merchant.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from citcon_sim import Config, Simulator, create_app
from citcon_sim.faces.online import requests

from .helpers import START, auth, create, with_magic_amounts


@with_magic_amounts
async def test_rejected_online_and_chop_calls_create_no_merchant(
    client: TestClient, sim: Simulator
) -> None:
    calls = [
        ("/payment/inquire", {"transaction_id": "U0000000001-x"}),
        ("/payment/inquire", {"reference": "nope"}),
        ("/payment/refund", {"transaction_id": "nope", "amount": "1", "currency": "USD"}),
        ("/payment/cancel", {"transaction_id": "nope"}),
        ("/payment/capture", {"transaction_id": "nope"}),
        ("/payment/pay_qr", {"vendor": "alipay", "amount": "-5", "currency": "USD",
                             "reference": "bad"}),  # invalid: a 4102
        ("/payment/pay_qr", {"vendor": "nosuch", "amount": "100", "currency": "USD",
                             "reference": "bad"}),
        ("/payment/pay_qr", {"vendor": "alipay", "amount": "19909", "currency": "USD",
                             "reference": "scripted"}),  # magic: a scripted 4000
        ("/chop/inquire", {"q": "nope", "inquire_method": "real"}),
        ("/chop/refund", {"transaction_id": "nope", "amount": "1", "currency": "USD"}),
        ("/chop/cancel", {"transaction_id": "nope"}),
        ("/chop/chop", {"payment_method": "alipay", "amount": "0", "currency": "USD",
                        "reference": "bad"}),
    ]
    for i, (path, data) in enumerate(calls):
        resp = await client.post(path, data=data, headers=auth(f"tok-{i}"))
        body = await resp.text()
        assert resp.status == 400 or json.loads(body).get("refunded") is False \
            or json.loads(body).get("cancelled") is False \
            or json.loads(body)["code"] == 4000, (path, body)
    for i in range(50):  # the reported shape: many rejected inquiries, distinct tokens
        resp = await client.post("/payment/inquire", data={"reference": "x"},
                                 headers=auth(f"many-{i}"))
        assert resp.status == 400
    for path in ("/payment/list", "/chop/transactions"):  # reads of an unknown merchant
        resp = await client.get(path, headers=auth("reader"))
        assert resp.status == 200, await resp.text()
    resp = await client.get("/_sim/balance?token=balance-reader")
    assert resp.status == 200 and (await resp.json())["open_balance"] == {}
    assert sim.ledger.merchants == {}


async def test_a_successful_payment_creates_its_merchant_once(
    client: TestClient, sim: Simulator
) -> None:
    first = await create(client, token="shop")
    assert list(sim.ledger.merchants) == ["shop"]
    merchant = sim.ledger.merchants["shop"]
    await create(client, token="shop", reference="second")
    assert sim.ledger.merchants["shop"] is merchant and len(merchant.transactions) == 2
    resp = await client.post("/payment/inquire", data={"transaction_id": first},
                             headers=auth("shop"))
    assert resp.status == 200
    resp = await client.post("/chop/chop", headers=auth("chop-shop"), data={
        "payment_method": "alipay", "amount": "100", "currency": "USD", "reference": "c"})
    assert resp.status == 200, await resp.text()
    assert set(sim.ledger.merchants) == {"shop", "chop-shop"}


def test_lookups_never_store_and_the_stored_merchant_wins(sim: Simulator) -> None:
    """Two requests of a new merchant authenticate before either creates a payment: the
    second must still see the first one's payment (duplicate reference)."""
    ledger = sim.ledger
    a, b = ledger.merchant("new"), ledger.merchant("new")
    assert ledger.known_merchant("new") is None and ledger.merchants == {}
    cmd = requests.parse_payment({"vendor": "alipay", "amount": "100", "currency": "USD",
                                  "reference": "same"}, "pay_qr")
    txn, created = ledger.create_payment(a, cmd)
    assert created and ledger.known_merchant("new") is a
    again, created_again = ledger.create_payment(b, cmd)
    assert again is txn and not created_again  # found through the stored merchant
    assert ledger.enrol("new") is a and len(ledger.merchants) == 1
    assert ledger.find(ledger.merchant("new"), requests.parse_inquire(
        {"reference": "same"})) is txn


async def test_a_state_file_after_rejected_calls_holds_no_merchant(
    aiohttp_client: Callable[..., Any], tmp_path: Path
) -> None:
    path = tmp_path / "state.jsonl"
    config = Config(frozen_clock=True, start_time=START, state_file=path)
    sim = Simulator(config)
    client = await aiohttp_client(create_app(sim))
    for i in range(5):
        resp = await client.post("/payment/inquire", data={"reference": "x"},
                                 headers=auth(f"ghost-{i}"))
        assert resp.status == 400
    await client.close()
    assert sim.persistence is not None
    sim.persistence.close()
    sim2 = Simulator(config)
    assert sim2.ledger.merchants == {}
    assert json.loads(path.read_bytes().splitlines()[0])["data"]["merchants"] == {}
    assert sim2.persistence is not None
    sim2.persistence.close()
