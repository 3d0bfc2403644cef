"""Concurrent UPI refunds, captures and cancels on one charge, against a real server on
127.0.0.1: whatever order they are applied in, refunded <= captured <= authorised.

Every request's body is held half-sent until the server is handling all of them (a gate
opened by the server's own count, no sleeps), so the handlers really race."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from citcon_sim import Simulator, create_app
from citcon_sim.domain.ledger import Status

from .helpers import Gate
from .upi_support import bearer, charge, token_for


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
                 sim: Simulator, gate: Gate) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(sim)
    app.middlewares.insert(0, gate.middleware)
    yield await aiohttp_client(app, server_kwargs={"host": "127.0.0.1"},
                               connector=aiohttp.TCPConnector(limit=0, limit_per_host=0))


async def burst(client: TestClient[Any, Any], gate: Gate, token: str,
                calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, Any]]:
    gate.expected = len(calls)
    gate.open.clear()

    async def body(encoded: bytes) -> AsyncIterator[bytes]:
        yield encoded[: len(encoded) // 2]
        await gate.open.wait()
        yield encoded[len(encoded) // 2:]

    async def one(path: str, data: dict[str, Any]) -> tuple[int, Any]:
        resp = await client.post(path, data=body(json.dumps(data).encode()),
                                 headers={**bearer(token), "Content-Type": "application/json"})
        return resp.status, await resp.json()

    answers = await asyncio.wait_for(asyncio.gather(*(one(p, d) for p, d in calls)), 120)
    gate.expected = 0
    return list(answers)


async def test_concurrent_refunds_keep_refunded_within_paid(client, sim, gate):
    token = await token_for(client)
    made = await charge(client, token, amount=10_000)
    assert (await client.post(f"/_sim/transactions/{made['id']}/pay")).status == 200
    calls = [("/v1/refunds", {"id": made["id"], "reference": f"r-{i}", "amount": 300})
             for i in range(60)]
    calls += [("/v1/refunds", {"id": made["id"], "reference": "dup", "amount": 1})
              for _ in range(10)]
    answers = await burst(client, gate, token, calls)
    ok = [a for s, a in answers if s == 200]
    assert len(ok) == 33 + 1  # 33 x 300 fit in 10,000 with 100 left; one "dup" only
    assert all(s in (200, 400, 406) for s, _ in answers)
    txn = sim.ledger.by_id[made["id"]]
    assert txn.refunded_amount == 33 * 300 + 1 <= txn.paid_amount
    assert len({r.reference for r in txn.refunds or ()}) == len(txn.refunds or ())
    assert sim.take_errors() == []


async def test_concurrent_captures_refunds_and_cancels_on_one_charge(client, sim, gate):
    token = await token_for(client)
    body = {"transaction": {"reference": "hold", "amount": 5000, "currency": "USD",
                            "country": "US", "auto_capture": False},
            "payment": {"method": "paypal", "client": ["desktop"]}}
    resp = await client.post("/v1/charges", json=body, headers=bearer(token))
    made = (await resp.json())["data"]
    assert (await client.post(f"/_sim/transactions/{made['id']}/pay")).status == 200
    calls: list[tuple[str, dict[str, Any]]] = []
    for i in range(30):
        calls.append(("/v1/captures", {"id": made["id"], "amount": 1000}))
        calls.append(("/v1/refunds", {"id": made["id"], "reference": f"r-{i}",
                                      "amount": 700}))
        if i % 10 == 0:
            calls.append(("/v1/cancels", {"id": made["id"], "reference": f"c-{i}"}))
    answers = await burst(client, gate, token, calls)
    assert all(s in (200, 400, 406) for s, _ in answers), answers
    captured = [a for (path, _), (s, a) in zip(calls, answers, strict=True)
                if path == "/v1/captures" and s == 200]
    assert len(captured) <= 1  # one capture closes the authorisation
    cancels = [s for (path, _), (s, _a) in zip(calls, answers, strict=True)
               if path == "/v1/cancels"]
    assert cancels.count(200) == 1
    txn = sim.ledger.by_id[made["id"]]
    assert txn.refunded_amount <= txn.captured_amount <= txn.amount
    assert txn.status is Status.CANCELLED
    if txn.captured_amount:  # a cancel after the capture reverses what was left
        assert txn.refunded_amount == txn.captured_amount
    assert sim.take_errors() == []
