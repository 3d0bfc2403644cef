"""The console: one line per merchant call and per IPN attempt (README "The console")."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from citcon_sim import Config, Simulator, create_app
from citcon_sim.console import RED, RESET, Console, use_colour
from citcon_sim.domain.events import MerchantCalled

from .helpers import AUTH, advance, consumer_pays, create, frozen_config

T0 = "2026-03-02 09:00:00"  # helpers.START as the clock shows it


class Out(io.StringIO):
    """A console's stream; reading it flushes the lines the console batches first."""

    console: Console | None = None

    def getvalue(self) -> str:
        if self.console is not None:
            self.console.flush()
        return super().getvalue()


class Tty(Out):
    def isatty(self) -> bool:
        return True


async def watched(aiohttp_client: Callable[..., Any], **console: Any
                  ) -> tuple[TestClient, Simulator, Out]:
    """A client, its simulator, and what a console attached to it wrote."""
    sim = Simulator(frozen_config())
    out = Out()
    out.console = Console(out, sim.clock.format, **console)
    out.console.attach(sim.events)
    return await aiohttp_client(create_app(sim)), sim, out


def lines(out: Out) -> list[str]:
    return out.getvalue().splitlines()


async def test_a_call_is_one_plain_line_when_not_a_terminal(aiohttp_client):
    sim = Simulator(frozen_config())
    out = Out()  # not a TTY: auto means no colour
    out.console = Console.of(Config(), sim.clock.format, out)
    out.console.attach(sim.events)
    client = await aiohttp_client(create_app(sim))
    txn_id = await create(client)
    (line,) = lines(out)
    assert "\033" not in line
    assert line.startswith(f"{T0} API POST /payment/pay_qr ")
    assert " te…en " in line and "test-token" not in line  # the hint, never the token
    assert f" {txn_id} " in line and line.endswith(" ms") and " 200 ok " in line


async def test_a_4xx_call_says_the_error(aiohttp_client):
    client, _, out = await watched(aiohttp_client)
    resp = await client.post("/payment/pay_qr", headers=AUTH,
                             data={"vendor": "alipay", "amount": "0", "currency": "USD",
                                   "reference": "r0"})
    assert resp.status == 400
    (line,) = lines(out)
    assert " 400 4102 Amount must be greater than 0" in line
    assert " - " in line  # no transaction


async def test_a_refused_refund_is_not_ok(aiohttp_client):
    client, _, out = await watched(aiohttp_client)
    txn_id = await create(client)
    await consumer_pays(client, txn_id)
    resp = await client.post("/payment/refund", headers=AUTH, data={
        "transaction_id": txn_id, "amount": "5000", "currency": "USD"})
    assert resp.status == 200 and (await resp.json())["refunded"] is False
    assert lines(out)[-1].split(" 200 ", 1)[1].startswith(
        "refused: refund amount greater than payment amount")


async def test_colours_when_forced_and_by_status(aiohttp_client):
    assert use_colour("always", io.StringIO()) and not use_colour("never", Tty())
    assert use_colour("auto", Tty(), {}) and not use_colour("auto", io.StringIO(), {})
    assert not use_colour("auto", Tty(), {"NO_COLOR": "1"})
    assert use_colour("auto", io.StringIO(), {"FORCE_COLOR": "1"})
    client, _, out = await watched(aiohttp_client, colour=True)
    await create(client)
    await client.post("/payment/inquire", headers=AUTH, data={"transaction_id": "nope"})
    ok, bad = lines(out)
    assert "\033[32m200 ok" in ok and RESET in ok
    assert "\033[33m400 " in bad


async def test_json_lines_carry_the_fields(aiohttp_client):
    assert not Console.of(Config(log_format="json", color="always"), str, Tty()).colour
    client, _, out = await watched(aiohttp_client, json=True)
    txn_id = await create(client)
    (entry,) = [json.loads(line) for line in lines(out)]
    assert entry == {
        "time": T0, "kind": "call", "face": "online", "method": "POST",
        "path": "/payment/pay_qr", "endpoint": "pay_qr", "merchant": "te…en",
        "transaction_id": txn_id, "status": 200, "outcome": "ok", "ms": entry["ms"]}
    assert isinstance(entry["ms"], float) and entry["ms"] >= 0


async def test_ipn_attempt_lines_failure_then_success(aiohttp_client, ipn_receiver):
    client, sim, out = await watched(aiohttp_client)
    ipn_receiver.then(500)
    txn_id = await create(client, ipn_url=ipn_receiver.url)
    await consumer_pays(client, txn_id)
    await sim.ipn.drain()
    failed = lines(out)[-1]
    assert f"{T0} IPN POST {ipn_receiver.url} " in failed
    assert f" {txn_id} " in failed and " #1 HTTP 500; retry in 15 s " in failed
    await advance(client, 15)
    await sim.ipn.drain()
    delivered = lines(out)[-1]
    assert delivered.startswith("2026-03-02 09:00:15 IPN ") and " #2 delivered " in delivered


async def test_ipn_attempt_json_and_giving_up(aiohttp_client, ipn_receiver):
    sim = Simulator(frozen_config(ipn_backoff=(5,)))
    out = Tty()
    out.console = Console(out, sim.clock.format, json=True)
    out.console.attach(sim.events)
    client = await aiohttp_client(create_app(sim))
    ipn_receiver.answer(503)
    txn_id = await create(client, ipn_url=ipn_receiver.url)
    await consumer_pays(client, txn_id)
    await sim.ipn.drain()
    await advance(client, 5)
    await sim.ipn.drain()
    first, last = (json.loads(x) for x in lines(out)[-2:])
    assert first["kind"] == "ipn" and first["state"] == "retrying" and first["attempt"] == 1
    assert last == {**last, "kind": "ipn", "method": "POST", "path": ipn_receiver.url,
                    "merchant": "te…en", "transaction_id": txn_id, "attempt": 2,
                    "trigger": "retry", "status": 503, "state": "failed",
                    "outcome": "HTTP 503; gave up after 2 attempts"}
    assert last["notify_id"] == first["notify_id"]


async def test_a_failed_ipn_is_red(aiohttp_client, ipn_receiver):
    sim = Simulator(frozen_config(ipn_backoff=(5,)))
    out = Out()
    out.console = Console(out, sim.clock.format, colour=True)
    out.console.attach(sim.events)
    client = await aiohttp_client(create_app(sim))
    ipn_receiver.answer(503)
    await consumer_pays(client, await create(client, ipn_url=ipn_receiver.url))
    await sim.ipn.drain()
    await advance(client, 5)
    await sim.ipn.drain()
    assert f"{RED}#2 HTTP 503; gave up" in lines(out)[-1]


async def test_the_app_attaches_a_console_only_when_asked(aiohttp_client, capsys):
    quiet = Simulator(frozen_config())
    client = await aiohttp_client(create_app(quiet))
    await create(client)
    assert quiet.events.handlers(MerchantCalled) == ()  # a library user: no lines, no cost
    loud = Simulator(frozen_config(console=True))
    client = await aiohttp_client(create_app(loud))
    await create(client)
    await client.close()  # the app's end detaches the console, which flushes its lines
    assert capsys.readouterr().out.count(" POST /payment/pay_qr ") == 1
    assert loud.events.handlers(MerchantCalled) == ()  # detached with the app


@pytest.mark.parametrize(("changes", "setting"), [
    ({"log_format": "xml"}, "log_format"), ({"color": "sometimes"}, "color"),
])
def test_bad_console_settings_are_refused(changes, setting):
    from citcon_sim.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        Config(**changes)
    assert caught.value.setting == setting


@pytest.mark.parametrize(("flags", "level"), [([], logging.WARNING), (["--quiet"], None)])
def test_serve_leaves_ipn_attempts_to_the_console(monkeypatch, flags, level):
    """With the console on, serve's log drops its own line per IPN attempt (the console
    has one); the warnings stay. --quiet leaves the log as it was."""
    from click.testing import CliRunner

    from citcon_sim.cli import main

    logger = logging.getLogger("citcon_sim.ipn")
    before = logger.level
    monkeypatch.setattr("citcon_sim.cli.asyncio.run", lambda coro: coro.close())
    try:
        logger.setLevel(logging.NOTSET)
        assert CliRunner().invoke(main, ["serve", *flags]).exit_code == 0
        assert logger.level == (level or logging.NOTSET)
    finally:
        logger.setLevel(before)


@pytest.mark.parametrize(("path", "headers"), [
    ("/v1/transactions/nope", {}),  # UPI: its envelope's data.code and data.message
    ("/chop/inquire", AUTH),  # CHOP: code and error at the top
])
async def test_other_faces_errors_are_said_in_their_words(aiohttp_client, path, headers):
    client, _, out = await watched(aiohttp_client, json=True)
    method = "GET" if path.startswith("/v1") else "POST"
    resp = await client.request(method, path, headers=headers)
    assert resp.status >= 400
    body = await resp.json()
    said = body.get("data") or body
    entry = json.loads(lines(out)[-1])
    assert entry["status"] == resp.status and entry["path"] == path
    assert entry["outcome"].startswith(f"{said['code']} ")
    assert (said.get("message") or said["error"])[:40] in entry["outcome"]


class CountingOut(Out):
    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_lines_are_written_in_one_batch_not_one_write_each():
    """With PYTHONUNBUFFERED=1 (as in the image) every stream write is a system call: a
    burst of calls must cost one."""
    out = CountingOut()
    console = Console(out, lambda at: f"t{at:g}")
    for n in range(3):
        console.on_call(MerchantCalled(float(n), "online", "POST", "/payment/inquire",
                                       "inquire", "test-token", 200, 0.001, None,
                                       lambda: None))
    assert out.writes == 0  # batched until the flush the loop runs shortly
    console.flush()
    assert out.writes == 1 and len(out.getvalue().splitlines()) == 3
