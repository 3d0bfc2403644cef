from __future__ import annotations

from .helpers import consumer_pays, create, inquire


async def test_health(client):
    resp = await client.get("/_sim/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_create_pay_inquire(client):
    txn_id = await create(client)
    body = await inquire(client, txn_id)
    assert body["id"] == txn_id and body["status"] is None
    await consumer_pays(client, txn_id)
    assert (await inquire(client, txn_id))["status"] == "success"


def test_simulator_server_as_context_manager_runs_in_a_thread():
    import json
    from urllib.request import Request, urlopen

    from citcon_sim import Config, SimulatorServer

    with SimulatorServer(Config(frozen_clock=True)) as sim:
        req = Request(sim.url_for("/payment/pay_qr"),
                      b"vendor=alipay&amount=100&currency=USD&reference=r&response_format=json",
                      {"Authorization": "Bearer t"})
        txn_id = json.load(urlopen(req))["transaction_id"]
        assert sim.pay(txn_id)["status"] == "success"
        assert sim.simulator.ledger.by_id[txn_id].paid_at is not None
