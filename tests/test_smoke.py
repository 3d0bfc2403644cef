from __future__ import annotations

import asyncio
import json
import math
from urllib.request import Request, urlopen

from aiohttp import ClientSession

from citcon_sim import Config, SimulatorServer, verify_ipn

from .helpers import Answer, IpnReceiver, consumer_pays, create, inquire


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


def pay_qr_through(sim: SimulatorServer, **fields: str) -> str:
    form = "&".join(f"{k}={v}" for k, v in {
        "vendor": "alipay", "amount": "100", "currency": "USD", "reference": "r",
        "response_format": "json", **fields}.items())
    req = Request(sim.url_for("/payment/pay_qr"), form.encode(), {"Authorization": "Bearer t"})
    return str(json.load(urlopen(req))["transaction_id"])


def test_simulator_server_as_context_manager_runs_in_a_thread():
    with SimulatorServer(Config(frozen_clock=True)) as sim:
        txn_id = pay_qr_through(sim)
        assert sim.pay(txn_id)["status"] == "success"
        assert sim.simulator.ledger.by_id[txn_id].paid_at is not None


# -- the IPN receivers of tests/conftest.py ------------------------------------------------


def test_threaded_receiver_gets_the_ipn_of_a_simulator_server(threaded_receiver: IpnReceiver):
    with SimulatorServer(Config(frozen_clock=True)) as sim:
        txn_id = pay_qr_through(sim, ipn_url=threaded_receiver.url)
        sim.pay(txn_id)
        assert sim.wait_for_ipn(txn_id)["state"] == "delivered"
    [form] = threaded_receiver.wait_for_sync(1)
    assert form["id"] == txn_id and verify_ipn(form, "t")
    [received] = threaded_receiver.requests
    assert (received.method, received.path) == ("POST", "/ipn")
    assert received.content_type == "application/x-www-form-urlencoded"


async def test_ipn_receiver_answers_as_told(ipn_receiver: IpnReceiver):
    ipn_receiver.then(Answer(500, "E" * 500), 404)
    ipn_receiver.answer(202, "later", delay=0.05)
    async with ClientSession() as http:
        answers = []
        for i in range(3):
            async with http.post(ipn_receiver.url, data={"n": str(i)}) as resp:
                answers.append((resp.status, await resp.text()))
        ipn_receiver.then(Answer(delay=math.inf))
        held = asyncio.ensure_future(http.post(ipn_receiver.url_for("/slow"), data={"n": "3"}))
        await ipn_receiver.wait_for(4)
        await asyncio.sleep(0.05)
        assert not held.done()  # held until released
        ipn_receiver.release()
        async with await held as resp:
            assert resp.status == 200
    assert answers == [(500, "E" * 500), (404, "ok"), (202, "later")]
    assert ipn_receiver.posts == [{"n": str(i)} for i in range(4)]
    assert [r.path for r in ipn_receiver.requests] == ["/ipn"] * 3 + ["/slow"]
