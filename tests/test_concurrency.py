"""Concurrent merchant calls against a real server on 127.0.0.1.

Hundreds of requests are in flight at once, and the money rules must hold whatever order
the server applies them in: refunds never exceed the payment, captures never exceed the
authorisation, a repeated reference makes one transaction, and a payment is paid (and
credited to the open balance) once.

A connector without a connection limit puts every request on its own connection, and a
gate holds back the second half of every request body until the server has all of them
in hand, so every handler is suspended at the same point and then races the others,
rather than each running to completion before the next is read. No sleeps: the gate is
an ``asyncio.Event`` opened by the server's own request count.
"""

from __future__ import annotations

import asyncio
import random
import resource
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from citcon_sim import Simulator, create_app
from citcon_sim.domain.ledger import REFUND_OVER_PAID

from .helpers import AUTH, TOKEN, Gate, consumer_pays, inquire

PAID = 100_000  # USD cents; not a magic amount (those end in 9901..9909)
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(autouse=True, scope="module")
def enough_file_descriptors() -> Iterator[None]:
    """Every request in flight holds a client and a server socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[TestClient]], sim: Simulator, gate: Gate
) -> AsyncIterator[TestClient]:
    app = create_app(sim)
    app.middlewares.insert(0, gate.middleware)  # outermost: sees every request arrive
    yield await aiohttp_client(
        app,
        server_kwargs={"host": "127.0.0.1"},
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
    )


async def call(client: TestClient, path: str, **data: Any) -> tuple[int, Any]:
    resp = await client.post(path, data={k: str(v) for k, v in data.items()}, headers=AUTH)
    return resp.status, await resp.json()


async def burst(
    client: TestClient, gate: Gate, requests: list[tuple[str, dict[str, Any]]]
) -> list[tuple[int, Any]]:
    """POST every (path, form) at once; answers in the same order."""
    gate.arm(len(requests))

    async def body(encoded: bytes) -> AsyncIterator[bytes]:
        yield encoded[: len(encoded) // 2]
        await gate.open.wait()  # every handler is now waiting for the rest of its body
        yield encoded[len(encoded) // 2:]

    async def one(path: str, form: dict[str, Any]) -> tuple[int, Any]:
        encoded = urlencode({k: str(v) for k, v in form.items()}).encode()
        resp = await client.post(path, data=body(encoded),
                                 headers={**AUTH, "Content-Type": FORM})
        return resp.status, await resp.json()

    answers = await asyncio.wait_for(
        asyncio.gather(*(one(path, form) for path, form in requests)), timeout=120
    )
    assert gate.most >= len(requests)  # they really were all in flight together
    gate.arm(0)
    return list(answers)


async def new_payment(client: TestClient, **fields: Any) -> str:
    data = {"vendor": "alipay", "amount": PAID, "currency": "USD", "reference": "order-1",
            "allow_duplicates": "yes", "response_format": "json", **fields}
    status, body = await call(client, "/payment/pay", **data)
    assert status == 200, body
    return body["transaction_id"]


async def open_balance(client: TestClient) -> dict[str, int]:
    resp = await client.get("/_sim/balance", params={"token": TOKEN})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["open_balance"]


# -- refunds ----------------------------------------------------------------------------


@pytest.mark.slow
async def test_500_concurrent_equal_refunds_refund_exactly_what_fits(
    client: TestClient, gate: Gate
) -> None:
    txn_id = await new_payment(client)
    await consumer_pays(client, txn_id)
    part = 300  # 500 x 300 = 150_000 asked for, 100_000 paid: 333 fit, 100 is left over
    form = {"transaction_id": txn_id, "amount": part, "currency": "USD"}
    answers = await burst(client, gate, [("/payment/refund", form)] * 500)

    assert all(status == 200 for status, _ in answers)
    ok = [body for _, body in answers if body["refunded"] is True]
    refused = [body for _, body in answers if body["refunded"] is not True]
    assert all(set(b) == {"id", "transaction_id", "refunded", "status"} for b in ok)
    assert all(b["status"] == "success" and b["transaction_id"] == txn_id for b in ok)
    assert all(b == {"refunded": False, "status": REFUND_OVER_PAID} for b in refused)
    assert len(ok) == PAID // part == 333
    assert len({b["id"] for b in ok}) == len(ok)  # every refund is its own transaction

    charge = await inquire(client, txn_id)
    assert charge["status"] == "success"
    assert charge["refunded_amount"] == len(ok) * part == 99_900 <= PAID
    assert len(charge["refunds"]) == len(ok)
    assert sum(r["amount"] for r in charge["refunds"]) == charge["refunded_amount"]
    # The open balance was charged for each refund that went through, and only those.
    assert await open_balance(client) == {"USD": PAID - 99_900}


@pytest.mark.slow
async def test_500_concurrent_mixed_refunds_never_exceed_the_payment(
    client: TestClient, gate: Gate
) -> None:
    txn_id = await new_payment(client)
    await consumer_pays(client, txn_id)
    charge = await inquire(client, txn_id)
    paid_trans, trans_currency = charge["trans_amount"], charge["trans_currency"]
    rng = random.Random(20260302)
    asks: list[tuple[str, int]] = []  # (side, amount): about 175_000 cents' worth in all
    for _ in range(500):
        if rng.random() < 0.5:
            asks.append(("settlement", rng.randint(1, 700)))
        else:
            asks.append(("transaction", rng.randint(1, 700 * paid_trans // PAID)))
    requests = [
        ("/payment/refund",
         {"transaction_id": txn_id, "amount": amount, "currency": "USD", "reason": "burst"}
         if side == "settlement" else
         {"transaction_id": txn_id, "trans_amount": amount, "trans_currency": trans_currency,
          "reason": "burst"})
        for side, amount in asks
    ]
    answers = await burst(client, gate, requests)

    assert all(status == 200 for status, _ in answers)
    outcomes = [(ask, body) for ask, (_, body) in zip(asks, answers, strict=True)]
    ok = [(ask, body) for ask, body in outcomes if body["refunded"] is True]
    refused = [(ask, body) for ask, body in outcomes if body["refunded"] is not True]
    assert all(body == {"refunded": False, "status": REFUND_OVER_PAID} for _, body in refused)
    assert ok and refused  # more was asked for than was paid

    charge = await inquire(client, txn_id)
    refunds = {r["id"]: r for r in charge["refunds"]}
    assert set(refunds) == {body["id"] for _, body in ok}
    assert charge["refunded_amount"] == sum(r["amount"] for r in refunds.values()) <= PAID
    assert charge["refunded_trans_amount"] == sum(r["trans_amount"] for r in refunds.values())
    assert charge["refunded_trans_amount"] <= paid_trans
    for (side, amount), body in ok:  # each refund is exactly what was asked, on its side
        key = "amount" if side == "settlement" else "trans_amount"
        assert refunds[body["id"]][key] == amount
    # What is left only shrinks, so each refused ask was more than is left now.
    left = PAID - charge["refunded_amount"]
    left_trans = paid_trans - charge["refunded_trans_amount"]
    for (side, amount), _ in refused:
        assert amount > (left if side == "settlement" else left_trans)
    assert await open_balance(client) == {"USD": left}


# -- creates ----------------------------------------------------------------------------


@pytest.mark.slow
async def test_200_concurrent_creates_with_one_reference_make_one_transaction(
    client: TestClient, gate: Gate, sim: Simulator
) -> None:
    form = {"vendor": "alipay", "amount": 1000, "currency": "USD", "reference": "only-once",
            "response_format": "json"}
    answers = await burst(client, gate, [("/payment/pay", form)] * 200)

    assert all(status == 200 for status, _ in answers), answers[:3]
    ids = {body["transaction_id"] for _, body in answers}
    assert len(ids) == 1
    assert sum(body["created"] is True for _, body in answers) == 1
    resp = await client.get("/payment/list", headers=AUTH)
    listed = (await resp.json())["transactions"]
    assert [t["id"] for t in listed] == list(ids)
    assert len(sim.ledger.by_id) == 1


# -- captures ---------------------------------------------------------------------------


async def klarna_authorisation(client: TestClient, amount: int) -> str:
    txn_id = await new_payment(client, vendor="klarna", amount=amount, auto_capture="false")
    await consumer_pays(client, txn_id)
    assert (await inquire(client, txn_id))["status"] == "authorized"
    return txn_id


def assert_envelope(status: int, body: Any) -> None:
    assert status == 400, body
    assert body["result"] == "fail" and body["code"] == 4100, body
    assert body["message"].startswith("Bad request"), body


@pytest.mark.slow
async def test_200_concurrent_partial_captures_never_exceed_the_authorisation(
    client: TestClient, gate: Gate
) -> None:
    authorised, part = 10_000, 70  # 200 x 70 = 14_000 asked for: 142 fit (9_940)
    txn_id = await klarna_authorisation(client, authorised)
    form = {"transaction_id": txn_id, "amount": part, "multi_capture": "true",
            "last_capture": "false"}
    answers = await burst(client, gate, [("/payment/capture", form)] * 200)

    ok = [body for status, body in answers if status == 200]
    for status, body in answers:
        if status != 200:
            assert_envelope(status, body)
    assert len(ok) == authorised // part == 142
    assert all(b["type"] == "capture" and b["amount"] == part for b in ok)
    # The captures were applied one at a time: each saw its own running total.
    assert sorted(b["captured_amount"] for b in ok) == [part * i for i in range(1, 143)]

    charge = await inquire(client, txn_id)
    assert charge["status"] == "success"
    assert charge["captured_amount"] == 142 * part <= authorised
    assert await open_balance(client) == {"USD": 142 * part}


@pytest.mark.slow
async def test_concurrent_mixed_captures_with_last_captures_never_exceed_the_authorisation(
    client: TestClient, gate: Gate
) -> None:
    authorised = 10_000
    txn_id = await klarna_authorisation(client, authorised)
    rng = random.Random(7)
    requests = [
        ("/payment/capture",
         {"transaction_id": txn_id, "amount": rng.randint(1, 200), "multi_capture": "true",
          "last_capture": "true" if rng.random() < 0.05 else "false"})
        for _ in range(200)
    ]
    answers = await burst(client, gate, requests)

    ok = [body for status, body in answers if status == 200]
    for status, body in answers:
        if status != 200:
            assert_envelope(status, body)
    totals = sorted(b["captured_amount"] for b in ok)
    assert len(set(totals)) == len(totals)  # no two captures saw the same running total
    charge = await inquire(client, txn_id)
    assert charge["captured_amount"] == totals[-1] == sum(b["amount"] for b in ok)
    assert charge["captured_amount"] <= authorised
    assert sum(c["amount"] for c in charge["captures"]) == charge["captured_amount"]
    # Nothing was captured after the capture that closed the authorisation.
    closing = [b for b in ok if b["last_capture"]]
    assert len(closing) <= 1
    if closing:
        assert closing[0]["captured_amount"] == totals[-1]
    assert await open_balance(client) == {"USD": charge["captured_amount"]}


# -- the consumer's side ----------------------------------------------------------------


async def test_concurrent_pay_clicks_pay_once(client: TestClient, gate: Gate) -> None:
    txn_id = await new_payment(client, amount=4000)
    answers = await burst(client, gate, [(f"/_sim/transactions/{txn_id}/pay", {})] * 100)

    assert sorted(status for status, _ in answers) == [200] + [409] * 99
    for status, body in answers:
        if status == 409:
            assert body["result"] == "fail" and body["code"] == 4100, body
    charge = await inquire(client, txn_id)
    assert charge["status"] == "success" and charge["captured_amount"] == 4000
    assert await open_balance(client) == {"USD": 4000}  # credited once
    # Refunding it all uses up exactly that balance.
    status, body = await call(client, "/payment/refund", transaction_id=txn_id,
                              amount=4000, currency="USD")
    assert status == 200 and body["refunded"] is True, body
    assert await open_balance(client) == {"USD": 0}


async def test_concurrent_pay_and_fail_clicks_have_one_winner(
    client: TestClient, gate: Gate
) -> None:
    txn_id = await new_payment(client, amount=2500)
    actions = ["pay" if i % 2 else "fail" for i in range(100)]
    answers = await burst(
        client, gate, [(f"/_sim/transactions/{txn_id}/{action}", {}) for action in actions]
    )

    winners = [a for a, (status, _) in zip(actions, answers, strict=True) if status == 200]
    assert len(winners) == 1
    assert all(status == 409 for status, _ in answers if status != 200)
    charge = await inquire(client, txn_id)
    if winners == ["pay"]:
        assert charge["status"] == "success"
        assert await open_balance(client) == {"USD": 2500}
    else:
        assert charge["status"] == "fail"
        assert await open_balance(client) == {}
