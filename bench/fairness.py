"""IPN fairness: how late a healthy merchant's IPN arrives when another merchant's
endpoint hangs with a backlog of notifications.

One simulator (the real CLI, default IPN settings: a 10 s attempt timeout) on a frozen
clock, so an IPN is due the moment its payment is paid. Merchant A's ``ipn_url`` points
at a receiver that never answers; A's ``hanging`` payments are paid first. Then merchant
B, whose receiver answers at once, pays ``healthy`` payments one after another; for each,
the time from sending ``POST /_sim/transactions/{id}/pay`` to B's receiver getting the IPN.

``python -m bench.fairness`` runs it alone (it starts its own simulator);
``python -m bench`` runs it as one of its measurements (``--skip fairness`` leaves it out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

import aiohttp
from aiohttp import web

from bench.procs import HOST, Server, free_port, sim_argv

HANGING_TOKEN = "bench-hanging-merchant"
HEALTHY_TOKEN = "bench-healthy-merchant"
TARGET_SECONDS = 1.0


@dataclass
class FairnessResult:
    hanging: int  # notifications queued for the hanging endpoint first
    healthy: int  # healthy-merchant IPNs measured
    arrived: int  # of those, how many arrived within the budget
    median_ms: float
    max_ms: float  # the verdict's figure; the budget when one never arrived
    budget_s: float


async def _receiver(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/ipn", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, HOST, port).start()
    return runner, f"http://{HOST}:{port}/ipn"


async def _paid(session: aiohttp.ClientSession, base_url: str, token: str, ref: str,
                ipn_url: str) -> str:
    """Create a payment and start paying it; returns its id once the pay call answered."""
    data = {"vendor": "alipay", "amount": "1000", "currency": "USD", "reference": ref,
            "allow_duplicates": "yes", "ipn_url": ipn_url}
    async with session.post(f"{base_url}/payment/pay_qr", data=data,
                            headers={"Authorization": f"Bearer {token}"}) as resp:
        resp.raise_for_status()
        txn_id = (await resp.text()).split("=")[1].split("&")[0]
    return txn_id


async def measure(base_url: str, hanging: int = 40, healthy: int = 5,
                  budget: float = 30.0) -> FairnessResult:
    release = asyncio.Event()
    waiting: dict[str, asyncio.Future[float]] = {}

    async def hang(request: web.Request) -> web.Response:
        await request.read()
        await release.wait()  # until the measurement ends: a merchant that never answers
        return web.Response(text="too late")

    async def answer(request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        form = await request.post()
        future = waiting.get(str(form.get("id", "")))
        if future is not None and not future.done():
            future.set_result(arrived)
        return web.Response(text="ok")

    hang_runner, hang_url = await _receiver(hang)
    ok_runner, ok_url = await _receiver(answer)
    delays: list[float] = []
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(hanging):
                txn_id = await _paid(session, base_url, HANGING_TOKEN, f"hang-{i}", hang_url)
                async with session.post(f"{base_url}/_sim/transactions/{txn_id}/pay") as resp:
                    resp.raise_for_status()
            for i in range(healthy):
                txn_id = await _paid(session, base_url, HEALTHY_TOKEN, f"ok-{i}", ok_url)
                future = waiting[txn_id] = asyncio.get_running_loop().create_future()
                due = time.perf_counter()  # frozen clock: due when paid
                async with session.post(f"{base_url}/_sim/transactions/{txn_id}/pay") as resp:
                    resp.raise_for_status()
                try:
                    delays.append(await asyncio.wait_for(future, budget) - due)
                except TimeoutError:
                    break  # stuck behind the hanging endpoint: later ones would be too
    finally:
        release.set()
        await hang_runner.cleanup()
        await ok_runner.cleanup()
    arrived = len(delays)
    worst = max(delays) if arrived == healthy else budget
    return FairnessResult(hanging, healthy, arrived,
                          statistics.median(delays) * 1000 if delays else budget * 1000,
                          worst * 1000, budget)


def run(hanging: int = 40, healthy: int = 5, budget: float = 30.0,
        server_cpu: int | None = None, extra_argv: list[str] | None = None) -> FairnessResult:
    """A fresh simulator (its IPN queue holds nothing else), measured, then stopped."""
    port = free_port()
    with Server("citcon-sim (fairness)", sim_argv(port) + list(extra_argv or ()), port,
                "/_sim/health", server_cpu) as sim:
        sim.wait_healthy()
        return asyncio.run(measure(sim.base_url, hanging, healthy, budget))


def describe(result: FairnessResult) -> str:
    if result.arrived < result.healthy:
        return (f"{result.arrived} of {result.healthy} healthy IPNs within {result.budget_s:g} s "
                f"(behind {result.hanging} to a hanging endpoint)")
    return (f"max {result.max_ms:.0f} ms, median {result.median_ms:.0f} ms after due "
            f"(n={result.healthy}, behind {result.hanging} to a hanging endpoint)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hanging", type=int, default=40)
    p.add_argument("--healthy", type=int, default=5)
    p.add_argument("--budget", type=float, default=30.0,
                   help="wall seconds to wait for each healthy IPN")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("sim_args", nargs="*", help="extra `citcon-sim serve` flags (after --)")
    args = p.parse_args(argv)
    result = run(args.hanging, args.healthy, args.budget, extra_argv=args.sim_args)
    print(json.dumps(asdict(result)) if args.json else describe(result))
    return 0 if result.arrived == result.healthy and \
        result.max_ms <= TARGET_SECONDS * 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
