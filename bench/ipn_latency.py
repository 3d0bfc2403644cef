"""pay → IPN: time from ``POST /_sim/transactions/{id}/pay`` to a local receiver getting
the IPN POST for that transaction, one payment at a time, on loopback."""

from __future__ import annotations

import asyncio
import importlib.util
import statistics
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from bench.loadgen import percentile
from bench.procs import HOST, free_port
from bench.workloads import AUTH


def ipn_available() -> bool:
    return importlib.util.find_spec("citcon_sim.delivery.ipn") is not None


@dataclass
class IpnResult:
    count: int
    median_ms: float
    p99_ms: float
    lost: int  # payments whose IPN did not arrive within the per-IPN timeout


async def measure(base_url: str, count: int, *, timeout: float = 2.0,
                  budget: float = 60.0) -> IpnResult:
    waiting: dict[str, asyncio.Future[float]] = {}

    async def receive(request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        form = await request.post()
        future = waiting.get(str(form.get("id", "")))
        if future is not None and not future.done():
            future.set_result(arrived)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/ipn", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    latencies: list[float] = []
    lost = 0
    deadline = time.perf_counter() + budget
    try:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            for i in range(count):
                if time.perf_counter() > deadline:
                    break
                data = {"vendor": "alipay", "amount": "1000", "currency": "USD",
                        "reference": f"ipn-{i}", "allow_duplicates": "yes",
                        "ipn_url": f"http://{HOST}:{port}/ipn"}
                async with session.post(f"{base_url}/payment/pay_qr", data=data) as resp:
                    resp.raise_for_status()
                    txn_id = (await resp.text()).split("=")[1].split("&")[0]
                future = waiting[txn_id] = asyncio.get_running_loop().create_future()
                sent = time.perf_counter()
                async with session.post(f"{base_url}/_sim/transactions/{txn_id}/pay") as resp:
                    resp.raise_for_status()
                try:
                    arrived = await asyncio.wait_for(future, timeout)
                except TimeoutError:
                    lost += 1
                    if not latencies:
                        break  # the very first one never came: delivery is not on
                else:
                    latencies.append(arrived - sent)
                del waiting[txn_id]
    finally:
        await runner.cleanup()
    latencies.sort()
    return IpnResult(
        len(latencies),
        statistics.median(latencies) * 1000 if latencies else 0.0,
        percentile(latencies, 99) * 1000,
        lost,
    )
