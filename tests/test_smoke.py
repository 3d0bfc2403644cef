from __future__ import annotations

from .conftest import AUTH, create


async def test_health(client):
    resp = await client.get("/_sim/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_create_pay_inquire(client):
    txn_id = await create(client)
    resp = await client.post("/payment/inquire", data={"transaction_id": txn_id}, headers=AUTH)
    body = await resp.json()
    assert body["id"] == txn_id and body["status"] is None
    assert (await client.post(f"/_sim/transactions/{txn_id}/pay")).status == 200
    resp = await client.post("/payment/inquire", data={"transaction_id": txn_id}, headers=AUTH)
    assert (await resp.json())["status"] == "success"
