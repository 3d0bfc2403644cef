"""Safe defaults (issue 14, item 1): an ordinary price is never scripted unless magic
amounts are switched on, and the start-up banner says what is active.

The pytest fixture's side (default off, the ini option, one test's opt-in) is in
tests/test_plugin.py, which runs inner pytest sessions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner

from citcon_sim import Config, Simulator, SimulatorServer, verify_ipn
from citcon_sim.cli import banner, main

from .helpers import (
    TOKEN,
    Http,
    IpnReceiver,
    client_for,
    consumer_pays,
    create,
    frozen_config,
    internal_status,
)

MAGIC_ENDINGS = [9901, 9902, 9903, 9904, 9905, 9906, 9907, 9908, 9909]


# -- a default server -------------------------------------------------------------------------


async def test_usd_99_05_is_paid_and_notified_like_any_other(
    aiohttp_client: Callable[..., Any], ipn_receiver: IpnReceiver
) -> None:
    """The issue's "done when": 99.05 used to be paid but never notified."""
    client, sim = await client_for(aiohttp_client)
    txn_id = await create(client, amount=9905, ipn_url=ipn_receiver.url)
    assert await internal_status(client, txn_id) == "pending"  # nothing scripted it
    await consumer_pays(client, txn_id)
    await sim.ipn.drain()
    [form] = ipn_receiver.posts
    assert (form["id"], form["amount"], form["status"]) == (txn_id, "9905", "success")
    assert verify_ipn(form, TOKEN)


@pytest.mark.parametrize("ending", MAGIC_ENDINGS)
async def test_no_price_is_scripted_by_default(
    aiohttp_client: Callable[..., Any], ipn_receiver: IpnReceiver, ending: int
) -> None:
    """Every magic ending, as a real price (199.01 … 199.09), behaves like 10.00:
    created pending (199.09 used to answer HTTP 500), paid by the consumer, notified once."""
    client, sim = await client_for(aiohttp_client)
    txn_id = await create(client, amount=10000 + ending, ipn_url=ipn_receiver.url)
    assert await internal_status(client, txn_id) == "pending"
    await consumer_pays(client, txn_id)
    await sim.ipn.drain()
    assert [p["id"] for p in ipn_receiver.posts] == [txn_id]
    assert verify_ipn(ipn_receiver.posts[0], TOKEN)
    listing = await (await client.get("/_sim/scenarios")).json()
    assert listing["magic_amounts"] is None


async def test_the_switch_turns_the_table_on(aiohttp_client: Callable[..., Any]) -> None:
    client, _ = await client_for(aiohttp_client, magic_amounts=True)
    assert await internal_status(client, await create(client, amount=19901)) == "fail"
    assert await internal_status(client, await create(client, amount=9903)) == "success"
    listing = await (await client.get("/_sim/scenarios")).json()
    assert listing["magic_amounts"]["name"] == "magic"


def test_simulator_server_default_pays_and_notifies_99_05(
    threaded_receiver: IpnReceiver,
) -> None:
    """``SimulatorServer()`` (what the fixture runs) is as safe as ``serve``."""
    with SimulatorServer() as server:
        assert server.config.magic_amounts is False
        txn_id = Http(server.base_url).create(amount=9905, reference="order-9905",
                                              ipn_url=threaded_receiver.url)
        assert server.transaction(txn_id)["status"] is None
        server.pay(txn_id)
        assert server.wait_for_ipn(txn_id)["state"] == "delivered"
        assert [p["amount"] for p in threaded_receiver.posts] == ["9905"]


# -- the command line ---------------------------------------------------------------------------


def _serve_config(args: list[str], env: dict[str, str]) -> Config:
    seen: list[Config] = []

    async def fake_serve(sim: Simulator, **_: object) -> None:
        seen.append(sim.config)

    clean = {k: None for k in os.environ if k.startswith("CITCON_SIM_")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("citcon_sim.cli.serve_forever", fake_serve)
        result = CliRunner().invoke(main, ["serve", *args], env={**clean, **env})
    assert result.exit_code == 0, result.output
    (config,) = seen
    return config


@pytest.mark.parametrize(("args", "env", "on"), [
    ([], {}, False),
    (["--magic-amounts"], {}, True),
    ([], {"CITCON_SIM_MAGIC_AMOUNTS": "true"}, True),
    (["--no-magic-amounts"], {"CITCON_SIM_MAGIC_AMOUNTS": "true"}, False),
])
def test_serve_turns_magic_amounts_on_only_when_asked(
    args: list[str], env: dict[str, str], on: bool
) -> None:
    assert _serve_config(args, env).magic_amounts is on


# -- the start-up banner ------------------------------------------------------------------------


def _lines(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in
            (line.partition(":") for line in text.splitlines()[1:4])}


def test_banner_of_a_default_server_says_nothing_is_scripted() -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    sim = Simulator(Config(start_time=start, frozen_clock=True, timezone="Asia/Shanghai"))
    shown = _lines(banner(sim))
    assert shown["clock"] == ("frozen at 2026-03-02 17:00:00 Asia/Shanghai "
                              "(moves only by POST /_sim/clock/advance)")
    assert shown["scenarios"] == "none"
    assert shown["magic amounts"] == "off (--magic-amounts to script by amount)"


def test_banner_names_what_is_active() -> None:
    sim = Simulator(frozen_config(frozen_clock=False, scenarios=["declines", "flaky-ipn"],
                                  magic_amounts=True))
    shown = _lines(banner(sim))
    assert shown["clock"].startswith("running, virtual time 2026-03-02 09:00:")
    assert shown["scenarios"] == "declines, flaky-ipn"
    assert shown["magic amounts"].startswith("on: amounts ending 9901-9909 are scripted")
