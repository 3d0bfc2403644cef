"""The IPN receiver lab from a test: POST the battery to the merchant's receiver and get
a report to assert on (docs/receiver-lab.md).

    from citcon_sim.testing import check_receiver

    def test_ipn_receiver(citcon_sim, merchant_app_url):
        # the merchant app under test inquires citcon_sim.base_url
        report = check_receiver(merchant_app_url + "/ipn", "test-token", gateway=citcon_sim)
        report.assert_ok()  # names every failed check, what it sent and why it matters
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from citcon_sim.receiver_lab import LabGateway, Prepare, ReceiverReport, lab_gateway, run_lab

if TYPE_CHECKING:
    from citcon_sim.testing import SimulatorServer


def check_receiver(url: str, token: str, face: str = "online", *,
                   gateway: SimulatorServer | None = None, timeout: float | None = None,
                   prepare: Prepare | None = None) -> ReceiverReport:
    """Run the receiver lab against ``url`` and answer its report (blocks).

    ``gateway``: the running :class:`SimulatorServer` the receiver calls as its Citcon
    host; the lab's transactions are made there (references ``lab-…``), so inquiring
    the gateway is judged. Without it the lab serves a simulator of its own on a free
    port, which the receiver cannot know: inquiry is then judged only if it is seen.
    ``prepare`` gets each check's :class:`~citcon_sim.receiver_lab.Order` before its
    notification, to create the order the receiver will look up.

    From an ``async`` test (a receiver on the test's own loop) await
    :func:`check_receiver_async` instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(check_receiver_async(url, token, face, gateway=gateway,
                                                timeout=timeout, prepare=prepare))
    raise RuntimeError("check_receiver blocks: in a running event loop (an async test) "
                       "await check_receiver_async instead")


async def check_receiver_async(url: str, token: str, face: str = "online", *,
                               gateway: SimulatorServer | None = None,
                               timeout: float | None = None,
                               prepare: Prepare | None = None) -> ReceiverReport:
    """:func:`check_receiver` for a running event loop."""
    if gateway is None:
        async with lab_gateway() as own:
            return await run_lab(url, token, face, gateway=own, timeout=timeout,
                                 prepare=prepare)
    server = gateway
    # The server's simulator lives on its own thread: touch it only through call().
    lab = LabGateway(server.simulator, server.base_url,
                     run=lambda fn: asyncio.to_thread(server.call, fn), declared=True)
    return await run_lab(url, token, face, gateway=lab, timeout=timeout, prepare=prepare)
