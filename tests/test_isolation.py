"""Merchant isolation on every merchant endpoint, in lenient and strict (merchants file) mode.

Merchant B must never inquire, refund, cancel, capture or list merchant A's transactions:
not by ``transaction_id``, not by ``reference``/``transaction_reference``, not with both,
and not when B has a transaction of its own with the same reference (B's call must then
hit B's transaction, never A's). A's ledger is unchanged by whatever B tries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from citcon_sim import Config, Simulator
from citcon_sim.domain.ledger import Merchant

from .helpers import auth, consumer_pays, create, expect_error, frozen_config

A, B = "merchant-a-token-7b1e", "merchant-b-token-2c9d"
SHARED, AUTH_REF, A_ONLY = "order-shared", "klarna-shared", "order-a-only"
INVALID_CANCEL = {"transaction_id": None, "transaction_reference": None, "cancelled": False,
                  "status": "Invalid transaction"}
INVALID_REFUND = {"refunded": False, "status": "Invalid transaction"}


@pytest.fixture(params=["lenient", "strict"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    merchants = None
    if request.param == "strict":
        merchants = tmp_path / "merchants.yaml"
        merchants.write_text(
            f"merchants:\n  - token: {A}\n    name: Shop A\n"
            f"  - token: {B}\n    name: Shop B\n    refund_exempt: true\n", encoding="utf-8")
    return frozen_config(seed=5, merchants_file=merchants)


async def pay(client: TestClient, token: str, reference: str, vendor: str = "alipay",
              **extra: str) -> str:
    """A ``/payment/pay`` of $50 by ``token``; returns the id."""
    return await create(client, "pay", token, vendor=vendor, amount=5000,
                        reference=reference, **extra)


@dataclass
class World:
    a_paid: str  # A, reference SHARED, paid, partly refunded
    a_refund: str  # the refund id of that refund
    a_auth: str  # A, klarna, reference AUTH_REF, authorised
    a_pending: str  # A, reference A_ONLY, unpaid
    b_paid: str  # B, reference SHARED, paid
    b_auth: str  # B, klarna, reference AUTH_REF, authorised


@pytest.fixture
async def world(client: TestClient) -> World:
    a_paid = await pay(client, A, SHARED)
    await consumer_pays(client, a_paid)
    resp = await client.post("/payment/refund", headers=auth(A), data={
        "transaction_id": a_paid, "amount": "700", "currency": "USD"})
    a_refund = (await resp.json())["id"]
    a_auth = await pay(client, A, AUTH_REF, "klarna", auto_capture="false")
    await consumer_pays(client, a_auth)
    a_pending = await pay(client, A, A_ONLY)
    b_paid = await pay(client, B, SHARED)
    await consumer_pays(client, b_paid)
    b_auth = await pay(client, B, AUTH_REF, "klarna", auto_capture="false")
    await consumer_pays(client, b_auth)
    return World(a_paid, a_refund, a_auth, a_pending, b_paid, b_auth)


def snapshot(sim: Simulator, token: str) -> str:
    """Everything the ledger holds for one merchant, as comparable text."""
    merchant: Merchant = sim.ledger.merchants[token]
    txns = [
        {"id": t.id, "status": t.status.value, "updated": t.updated_at, "paid": t.paid_at,
         "captured": [t.captured_amount, t.captured_trans_amount, t.capture_open],
         "refunded": [t.refunded_amount, t.refunded_trans_amount],
         "refunds": [r.id for r in t.refunds or ()],
         "captures": [c.amount for c in t.captures or ()],
         "events": [list(e[:2]) for e in t.events or ()]}
        for t in merchant.transactions.values()
    ]
    refunds = sorted(r for r, v in sim.ledger.refunds_by_id.items()
                     if v.transaction_id in merchant.transactions)
    return json.dumps({"txns": txns, "refunds": refunds,
                       "balance": sim.ledger.open_balance(merchant)}, sort_keys=True)


async def not_found(resp: Any) -> None:
    """Another merchant's transaction is as unknown as one that does not exist."""
    await expect_error(resp, 4100, 400)


async def test_b_cannot_inquire_a_by_id_refund_id_or_reference(
    client: TestClient, sim: Simulator, world: World
) -> None:
    before = snapshot(sim, A)
    for data in ({"transaction_id": world.a_paid}, {"transaction_id": world.a_refund},
                 {"transaction_id": world.a_pending}, {"reference": A_ONLY},
                 {"transaction_id": world.a_paid, "reference": SHARED},
                 {"transaction_id": world.a_refund, "reference": SHARED}):
        for method in ("POST", "GET"):
            resp = await client.request(
                method, "/payment/inquire", headers=auth(B),
                **({"data": data} if method == "POST" else {"params": data}))
            await not_found(resp)
    # The shared reference is B's own transaction, never A's.
    resp = await client.post("/payment/inquire", data={"reference": SHARED}, headers=auth(B))
    assert (await resp.json())["id"] == world.b_paid
    # A still sees its own, refund included.
    resp = await client.post("/payment/inquire", data={"transaction_id": world.a_refund},
                             headers=auth(A))
    body = await resp.json()
    assert body["type"] == "refund" and body["transaction_id"] == world.a_paid
    assert snapshot(sim, A) == before


async def test_b_cannot_refund_a(client: TestClient, sim: Simulator, world: World) -> None:
    before = snapshot(sim, A)
    for lookup in ({"transaction_id": world.a_paid}, {"transaction_id": world.a_refund},
                   {"transaction_reference": A_ONLY}):
        for amount in ({"amount": "100", "currency": "USD"},
                       {"trans_amount": "100", "trans_currency": "CNY"}):
            resp = await client.post("/payment/refund", headers=auth(B),
                                     data={**lookup, **amount})
            assert resp.status == 200
            assert await resp.json() == INVALID_REFUND
    # By the shared reference: B's own payment is refunded.
    resp = await client.post("/payment/refund", headers=auth(B), data={
        "transaction_reference": SHARED, "amount": "100", "currency": "USD"})
    body = await resp.json()
    assert body["refunded"] is True and body["transaction_id"] == world.b_paid
    assert sim.ledger.by_id[world.b_paid].refunded_amount == 100
    # B cannot inquire the refund A made, nor A the one B made.
    resp = await client.post("/payment/inquire", data={"transaction_id": body["id"]},
                             headers=auth(A))
    await not_found(resp)
    assert snapshot(sim, A) == before


async def test_b_cannot_cancel_a(client: TestClient, sim: Simulator, world: World) -> None:
    before = snapshot(sim, A)
    for data in ({"transaction_id": world.a_paid}, {"transaction_id": world.a_pending},
                 {"transaction_id": world.a_auth}, {"transaction_reference": A_ONLY},
                 {"transaction_id": world.a_paid, "transaction_reference": SHARED},
                 {"transaction_id": world.a_refund}):
        resp = await client.post("/payment/cancel", data=data, headers=auth(B))
        assert resp.status == 200
        assert await resp.json() == INVALID_CANCEL
    resp = await client.post("/payment/cancel", data={"transaction_reference": SHARED},
                             headers=auth(B))
    assert await resp.json() == {"transaction_id": world.b_paid,
                                 "transaction_reference": SHARED, "cancelled": True,
                                 "status": "Order cancelled"}
    assert snapshot(sim, A) == before
    assert sim.ledger.by_id[world.a_paid].status.value == "success"


async def test_b_cannot_capture_a(client: TestClient, sim: Simulator, world: World) -> None:
    before = snapshot(sim, A)
    for data in ({"transaction_id": world.a_auth}, {"transaction_id": world.a_auth,
                                                    "amount": "100"},
                 {"transaction_id": world.a_auth, "reference": AUTH_REF},
                 {"reference": A_ONLY}, {"transaction_id": world.a_pending}):
        await not_found(await client.post("/payment/capture", data=data, headers=auth(B)))
    # By the shared reference: B's own authorisation is captured.
    resp = await client.post("/payment/capture", data={"reference": AUTH_REF, "amount": "1000"},
                             headers=auth(B))
    body = await resp.json()
    assert resp.status == 200 and body["transaction_id"] == world.b_auth, body
    assert sim.ledger.by_id[world.b_auth].captured_amount == 1000
    assert sim.ledger.by_id[world.a_auth].status.value == "authorized"
    assert snapshot(sim, A) == before


@pytest.mark.parametrize("path", ["/payment/list", "/payment/transactions"])
async def test_b_lists_only_its_own(
    client: TestClient, sim: Simulator, world: World, path: str
) -> None:
    before = snapshot(sim, A)
    for query in ("", "?limit=1000", "?limit=1&offset=1", "?offset=2"):
        resp = await client.get(path + query, headers=auth(B))
        ids = [t["id"] for t in (await resp.json())["transactions"]]
        assert set(ids) <= {world.b_paid, world.b_auth}, ids
    resp = await client.get(path, headers=auth(B))
    assert [t["id"] for t in (await resp.json())["transactions"]] == [world.b_auth,
                                                                     world.b_paid]
    resp = await client.get(path, headers=auth(A))
    assert {t["id"] for t in (await resp.json())["transactions"]} == {
        world.a_paid, world.a_auth, world.a_pending}
    assert snapshot(sim, A) == before


async def test_b_creating_with_a_shared_reference_never_returns_a(
    client: TestClient, sim: Simulator, world: World
) -> None:
    """Without allow_duplicates a repeated reference answers the existing transaction —
    the caller's own, never another merchant's."""
    before = snapshot(sim, A)
    for endpoint in ("pay", "pay_qr"):
        resp = await client.post(f"/payment/{endpoint}", headers=auth(B), data={
            "vendor": "alipay", "amount": "5000", "currency": "USD", "reference": A_ONLY,
            "response_format": "json"})
        body = await resp.json()
        assert body["transaction_id"] != world.a_pending and body["reference"] == A_ONLY
        resp = await client.post(f"/payment/{endpoint}", headers=auth(B), data={
            "vendor": "alipay", "amount": "5000", "currency": "USD", "reference": SHARED,
            "response_format": "json"})
        body = await resp.json()
        assert body["transaction_id"] == world.b_paid and body["created"] is False
    assert snapshot(sim, A) == before


async def test_whitespace_and_case_variants_do_not_cross(
    client: TestClient, sim: Simulator, world: World
) -> None:
    before = snapshot(sim, A)
    for txn_id in (f" {world.a_paid} ", world.a_paid.upper(), world.a_paid + "\t"):
        await not_found(await client.post("/payment/inquire", headers=auth(B),
                                          data={"transaction_id": txn_id}))
    for token in (f" {B} ", f"Bearer  {B}"):
        await not_found(await client.post("/payment/inquire", data={"reference": A_ONLY},
                                          headers={"Authorization": token}))
    assert snapshot(sim, A) == before


async def test_control_surface_filters_and_resets_per_merchant(
    client: TestClient, sim: Simulator, world: World
) -> None:
    before = snapshot(sim, A)
    resp = await client.get("/_sim/transactions", params={"token": B})
    assert {t["id"] for t in (await resp.json())["transactions"]} == {world.b_paid,
                                                                      world.b_auth}
    journal = await (await client.get("/_sim/requests", params={"token": B})).json()
    assert journal["requests"] and all(
        e["transaction_id"] in (None, world.b_paid, world.b_auth) for e in journal["requests"])
    # A scenario scoped to B does not touch A's calls.
    scenario = "name: b-only\nrules:\n  - match: {endpoint: inquire}\n    api: {error: 4000}\n"
    resp = await client.post("/_sim/scenarios", params={"token": B}, data=scenario,
                             headers={"Content-Type": "application/yaml"})
    assert resp.status == 200
    resp = await client.post("/payment/inquire", data={"transaction_id": world.a_paid},
                             headers=auth(A))
    assert resp.status == 200
    resp = await client.post("/payment/inquire", data={"transaction_id": world.b_paid},
                             headers=auth(B))
    assert resp.status == 500
    # Resetting B forgets B only.
    assert (await client.post("/_sim/reset", params={"token": B})).status == 200
    assert B not in sim.ledger.merchants and world.b_paid not in sim.ledger.by_id
    assert snapshot(sim, A) == before


async def test_a_third_token_sees_nothing(
    client: TestClient, sim: Simulator, config: Config, world: World
) -> None:
    """Strict mode refuses it before any lookup; lenient mode makes it a merchant of its
    own, which finds none of A's or B's transactions."""
    strict = config.merchants_file is not None
    before = snapshot(sim, A), snapshot(sim, B)
    other = auth("merchant-c-token-5e0f")
    theirs = {world.a_paid, world.a_refund, world.a_auth, world.a_pending, world.b_paid,
              world.b_auth}
    for path, data in (("/payment/inquire", {"reference": SHARED}),
                       ("/payment/inquire", {"transaction_id": world.a_paid}),
                       ("/payment/refund", {"transaction_reference": SHARED, "amount": "1",
                                            "currency": "USD"}),
                       ("/payment/cancel", {"transaction_id": world.a_pending}),
                       ("/payment/capture", {"reference": AUTH_REF}),
                       ("/payment/pay", {"vendor": "alipay", "amount": "1", "currency": "USD",
                                         "reference": SHARED})):
        resp = await client.post(path, data=data, headers=other)
        text = await resp.text()
        if strict:
            assert resp.status == 401, text
        else:
            assert not any(txn_id in text for txn_id in theirs), text
            assert resp.status in (200, 400), text
    resp = await client.get("/payment/list", headers=other)
    if strict:
        assert resp.status == 401
        assert "merchant-c-token-5e0f" not in sim.ledger.merchants
    else:
        listed = [t["id"] for t in (await resp.json())["transactions"]]
        assert len(listed) == 1 and listed[0] not in theirs  # the pay above, its own
    assert (snapshot(sim, A), snapshot(sim, B)) == before
