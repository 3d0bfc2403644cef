"""``citcon-sim``: the command line. ``citcon-sim serve`` runs the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

import click
from aiohttp import web

from citcon_sim._version import __version__
from citcon_sim.config import Config, ConfigError, Setting, settings
from citcon_sim.delivery.ipn import send_once
from citcon_sim.domain.clock import TIME_FORMAT
from citcon_sim.domain.errors import StateError
from citcon_sim.domain.ids import IdFactory
from citcon_sim.domain.merchants import MerchantSettings, MerchantsFileError
from citcon_sim.faces import FACES
from citcon_sim.faces.online.ipn import build_form
from citcon_sim.remote import client as remote_client
from citcon_sim.remote import commands as remote_commands
from citcon_sim.scenarios import ScenarioError, resolve_scenario, shipped_scenarios
from citcon_sim.simulator import Simulator
from citcon_sim.web.app import create_app
from citcon_sim.web.limits import Runner, limit_repeats
from citcon_sim.web.security import RedactingAccessLogger

F = TypeVar("F", bound=Callable[..., Any])


def banner(sim: Simulator) -> str:
    """What ``citcon-sim serve`` prints once listening: where, and what is switched on
    that changes answers (the clock's mode, scenarios, magic amounts)."""
    base = sim.base_url()
    mode = "strict (merchants file)" if sim.ledger.strict else "any token is a merchant"
    now = f"{sim.clock.format(sim.clock.time())} {sim.config.timezone}"
    clock = (f"frozen at {now} (moves only by POST /_sim/clock/advance)" if sim.clock.frozen
             else f"running, virtual time {now}")
    loaded = ", ".join(s.name for s in sim.scenarios.global_scenarios) or "none"
    magic = ("on: amounts ending 9901-9909 are scripted (docs/scenarios.md)"
             if sim.scenarios.magic_enabled else "off (--magic-amounts to script by amount)")
    return (
        f"citcon-sim {__version__} listening on {base}  [{mode}]\n"
        f"  clock: {clock}\n"
        f"  scenarios: {loaded}\n"
        f"  magic amounts: {magic}\n"
        f"  dashboard: {base}/_sim/"
        f"{'  (locked: admin token required)' if sim.config.admin_token else ''}\n"
        f"  health: {base}/_sim/health   OpenAPI: {base}/openapi.json\n"
        "  try it:\n"
        f"    curl -s -X POST '{base}/payment/pay_qr' \\\n"
        "      --header 'Authorization: Bearer test-token' \\\n"
        "      --data-urlencode 'vendor=alipay' --data-urlencode 'amount=100' \\\n"
        "      --data-urlencode 'currency=USD' --data-urlencode 'reference=order-1'\n"
    )


class ListenError(Exception):
    """The listening socket could not be opened: one line for the person at the terminal."""

    def __init__(self, host: str, port: int, exc: OSError) -> None:
        # asyncio words the error as "error while attempting to bind on address (...): ...";
        # the errno alone says it plainly.
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        if isinstance(exc, socket.gaierror):
            reason = f"unknown host ({exc.strerror})"
        elif exc.errno == errno.EADDRINUSE:
            reason += " (is another simulator running? try --port)"
        super().__init__(f"cannot listen on {host}:{port}: {reason}")


async def serve_forever(sim: Simulator, *, ready: asyncio.Event | None = None) -> None:
    app = create_app(sim)
    # Idle timeout and connection cap (limits.Runner); no tokens in the access log.
    runner = Runner(app, sim.config, access_log=logging.getLogger("aiohttp.access")
                    if sim.config.access_log else None,
                    access_log_class=RedactingAccessLogger)
    await runner.setup()  # starts the app's background tasks and its IPN client session
    site = web.TCPSite(runner, sim.config.host, sim.config.serve_port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()  # else they are left behind ("Unclosed client session")
        raise ListenError(sim.config.host, sim.config.serve_port, exc) from None
    if runner.addresses:  # port 0: learn the port the OS chose
        port = runner.addresses[0][1]
        shown = sim.config.host if sim.config.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        sim.bound_url = f"http://{shown}:{port}"
    click.echo(banner(sim))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    freezer = asyncio.create_task(_freeze_stored(sim))
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        freezer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await freezer
        await runner.cleanup()


async def _freeze_stored(sim: Simulator, every: float = 1.0) -> None:
    """Keep stored transactions out of full GC passes (Simulator.freeze_stored). Only
    ``citcon-sim serve`` does it: gc.freeze() acts on the whole process, which in a
    library user's (a test suite's) is not the simulator's to change."""
    while True:
        await asyncio.sleep(every)
        sim.freeze_stored()


class _MainGroup(click.Group):
    """``citcon-sim --help`` also lists every ``serve`` option with its variable."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for param in serve.params:
            if isinstance(param, click.Option) and param.envvar:
                rows.append((", ".join(param.opts + param.secondary_opts), str(param.envvar)))
        with formatter.section("Configuration (citcon-sim serve --help for details)"):
            formatter.write_dl(rows)


@click.group(cls=_MainGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="citcon-sim")
def main() -> None:
    """A local, stateful simulator of Citcon's merchant APIs (Online API, CHOP, UPI v1).

    Start it with `citcon-sim serve` (no configuration needed). Every option below can
    also be set by its environment variable; merchants (strict mode) and FX rates come
    from a merchants file.

    The other commands drive a running simulator (--url or CITCON_SIM_URL picks it).
    """


def _option(f: dataclasses.Field[Any], s: Setting) -> Callable[[F], F]:
    """The ``serve`` option of one Config field, from its Setting."""
    assert s.option is not None
    default = f.default if f.default is not dataclasses.MISSING else None
    if s.serve_default is not None:
        default = s.serve_default
    kwargs: dict[str, Any] = {
        "envvar": s.envvar, "help": f"{s.help} [env {s.envvar}]",
        "show_default": default is not None and not isinstance(default, bool),
    }
    if s.negative is not None:
        return click.option(f"{s.option}/{s.negative}", f.name, default=default, **kwargs)
    if s.many:
        return click.option(s.option, f.name, multiple=True, metavar=s.metavar, **kwargs)
    parse = s.parse or str

    def convert(ctx: click.Context, param: click.Parameter, text: str | None) -> Any:
        if text is None:
            return None
        try:
            return parse(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None

    if default is not None:  # as text, like a typed value (help shows it so)
        default = s.show(default) if s.show is not None else str(default)
    return click.option(s.option, f.name, default=default, metavar=s.metavar,
                        callback=convert, **kwargs)


def _serve_options(command: F) -> F:
    for f, s in reversed(settings()):  # the last decorator applied is listed first
        if s.option is not None:
            command = _option(f, s)(command)
    return command


def config_from_options(values: dict[str, Any]) -> Config:
    """The Config of ``serve``'s parsed options; an unusable value is a usage error
    naming its flag."""
    values = dict(values)
    for f, s in settings():  # click gives a repeatable flag's values as a tuple
        if s.many and f.name in values:
            given = values[f.name] or ()
            values[f.name] = ([v for text in given for v in s.parse(text)] if s.parse
                              else list(given))
    try:
        return Config(**values)
    except ConfigError as exc:
        flag = {f.name: s.option for f, s in settings()}.get(exc.setting)
        raise click.BadParameter(exc.problem, param_hint=f"'{flag or exc.setting}'") from None


@main.command()
@_serve_options
def serve(**options: Any) -> None:
    """Run the simulator (useful with no configuration at all)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = config_from_options(options)
    limit_repeats(config.log_repeats, handlers=True)  # every logger, asyncio's too
    if config.console:  # it shows every IPN attempt: the log keeps what goes wrong
        logging.getLogger("citcon_sim.ipn").setLevel(logging.WARNING)
    try:
        sim = Simulator(config)
    except (MerchantsFileError, ScenarioError) as exc:
        raise click.ClickException(str(exc)) from None
    except StateError as exc:
        raise click.ClickException(f"--state: {exc}") from None
    try:
        asyncio.run(serve_forever(sim))
    except ListenError as exc:
        click.echo(f"citcon-sim: {exc}", err=True)
        sys.exit(1)


@main.group()
def scenarios() -> None:
    """Check and list scenario files."""


@scenarios.command("check")
@click.argument("files", nargs=-1, required=True)
def scenarios_check(files: tuple[str, ...]) -> None:
    """Validate scenario FILES without starting a server: the schema, and vendors and
    currencies against the catalogue. Every problem of each file is listed, with its
    line; exit 1 if any file is invalid."""
    bad = 0
    for spec in files:
        try:
            scenario = resolve_scenario(spec)
        except ScenarioError as exc:
            for error in exc.errors:
                click.echo(f"invalid  {error}", err=True)
            bad += 1
        else:
            click.echo(f"ok       {spec}: {scenario.name}, {len(scenario.rules)} rule(s)")
    if bad:
        sys.exit(1)


@scenarios.command("list")
def scenarios_list() -> None:
    """List the scenarios shipped with citcon-sim (usable by name with --scenario)."""
    for name in shipped_scenarios():
        first = resolve_scenario(name).description.strip().split(". ")[0]
        click.echo(f"{name:16} {first}")


@main.group(short_help="ipn send URL: test your handler; ipn resend NOTIFY_ID.")
def ipn() -> None:
    """Check a merchant's IPN handler (send); resend a simulator's IPN (resend)."""


@ipn.command("send")
@click.argument("url")
@click.option("--token", required=True, envvar="CITCON_SIM_IPN_TOKEN",
              help="Merchant token the notification is signed with [env CITCON_SIM_IPN_TOKEN].")
@click.option("--amount", default="1", show_default=True, help="Settlement amount, minor units.")
@click.option("--currency", default="USD", show_default=True)
@click.option("--trans-amount", help="Transaction-side amount [default: --amount].")
@click.option("--trans-currency", help="Transaction-side currency [default: --currency].")
@click.option("--reference", default="citcon-sim-test", show_default=True)
@click.option("--status", default="success", show_default=True)
@click.option("--notify-status", help="[default: --status]")
@click.option("--vendor", default="alipay", show_default=True)
@click.option("--note", default="Test transaction", show_default=True)
@click.option("--id", "txn_id", help="Transaction id [default: a fresh one].")
@click.option("--notify-id", help="[default: a fresh one]")
@click.option("--partner-id", help="[default: the simulator's partner id for --token]")
@click.option("--time", "when", help="yyyy-MM-dd HH:mm:ss [default: now, UTC]")
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.001),
              help="Seconds to wait for the answer.")
@click.option("--bad-signature", is_flag=True,
              help="Sign with a wrong token: your handler should reject it.")
def ipn_send(url: str, token: str, amount: str, currency: str, trans_amount: str | None,
             trans_currency: str | None, reference: str, status: str, notify_status: str | None,
             vendor: str, note: str, txn_id: str | None, notify_id: str | None,
             partner_id: str | None, when: str | None, timeout: float,
             bad_signature: bool) -> None:
    """POST a signed test IPN to URL and show what it answered.

    Exits 0 when the answer is 2xx (what Citcon counts as delivered), 1 otherwise.
    """
    if not url.startswith(("http://", "https://")):
        raise click.BadParameter("must be an http:// or https:// URL", param_hint="URL")
    ids = IdFactory()
    values = {
        "id": txn_id or ids.transaction(), "amount": amount, "status": status,
        "currency": currency, "time": when or datetime.now(UTC).strftime(TIME_FORMAT),
        "reference": reference, "note": note, "notify_id": notify_id or ids.notify(),
        "partner_id": partner_id or MerchantSettings.lenient(token).partner_id,
        "vendor": vendor, "notify_status": notify_status or status,
        "trans_amount": trans_amount or amount, "trans_currency": trans_currency or currency,
    }
    form = build_form(values, token + "-wrong" if bad_signature else token)
    click.echo(f"POST {url}")
    for key, value in form.items():
        click.echo(f"  {key}={value}")
    result = asyncio.run(send_once(url, form, timeout))
    if result.status is None:
        click.echo(f"-> failed after {result.latency_ms:.0f} ms: {result.error}")
        sys.exit(1)
    click.echo(f"-> HTTP {result.status} in {result.latency_ms:.0f} ms")
    click.echo(f"   body: {result.body!r}")
    if not result.ok:
        click.echo("not acknowledged: Citcon would retry (only a 2xx answer counts)", err=True)
        sys.exit(1)


@main.command("check-receiver")
@click.argument("url")
@click.option("--token", required=True, envvar="CITCON_SIM_IPN_TOKEN",
              help="The merchant token the receiver verifies with (UPI: the private key) "
              "[env CITCON_SIM_IPN_TOKEN].")
@click.option("--face", type=click.Choice([face.name for face in FACES]), default="online",
              show_default=True, help="Whose IPN format to send.")
@click.option("--timeout", type=click.FloatRange(min=0.05),
              help="Seconds each answer may take [default: --ipn-timeout's 10].")
@click.option("--gateway-port", type=click.IntRange(0, 65535), default=0,
              help="Serve the lab's gateway (a simulator holding the checks' transactions) "
              "on 127.0.0.1:PORT; give the receiver that Citcon base URL to judge whether it "
              "inquires [default: a free port, inquiry judged only if seen].")
@click.option("--url", "sim_url", envvar=remote_client.URL_ENV, metavar="URL",
              help="Use the simulator already running at URL as the gateway (the one the "
              "receiver inquires, say in a docker-compose stack): the checks' transactions "
              "are made there through the merchant API, and inquiries read from its "
              f"journal [env {remote_client.URL_ENV}; default: the lab serves its own].")
@click.option("--admin-token", envvar=remote_client.ADMIN_TOKEN_ENV, metavar="TOKEN",
              help="With --url: for a simulator run with --admin-token "
              f"[env {remote_client.ADMIN_TOKEN_ENV}].")
@click.option("--json", "json_file", type=click.File("w"),
              help="Also write the results as JSON to FILE.")
@click.option("--junit", "junit_file", type=click.File("w"),
              help="Also write the results as JUnit XML to FILE.")
def check_receiver(url: str, token: str, face: str, timeout: float | None, gateway_port: int,
                   sim_url: str | None, admin_token: str | None,
                   json_file: TextIO | None, junit_file: TextIO | None) -> None:
    """POST a battery of test IPNs to the receiver at URL and judge its answers.

    A valid notification, forged, tampered and foreign signatures, duplicates and
    replays, a failure, an unknown transaction… (docs/receiver-lab.md). Prints a table;
    exits 0 only when every judged check passes (advice and what cannot be judged never
    fail the run).
    """
    if not url.startswith(("http://", "https://")):
        raise click.BadParameter("must be an http:// or https:// URL", param_hint="URL")
    if sim_url is not None:
        if gateway_port:
            raise click.UsageError("--gateway-port serves the lab's own gateway; with --url "
                                   "the simulator at URL is the gateway: give one of them")
        try:
            sim_url = remote_client.check_url(sim_url)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--url'") from None

    from citcon_sim import receiver_lab  # only here: `serve` need not import it

    async def run() -> receiver_lab.ReceiverReport:
        if sim_url is not None:
            from citcon_sim.remote.lab import remote_gateway
            async with remote_gateway(sim_url, admin_token) as remote:
                return await receiver_lab.run_lab(url, token, face, gateway=remote,
                                                  timeout=timeout)
        async with receiver_lab.lab_gateway(gateway_port) as gateway:
            return await receiver_lab.run_lab(url, token, face, gateway=gateway,
                                              timeout=timeout)
    try:
        report = asyncio.run(run())
    except remote_client.RemoteError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"--gateway-port: cannot listen on 127.0.0.1:"
                                   f"{gateway_port}: {exc.strerror}") from None
    click.echo(report.table())
    if json_file is not None:
        json_file.write(report.json() + "\n")
    if junit_file is not None:
        junit_file.write(report.junit_xml())
    sys.exit(report.exit_status)


# pay, fail, expire, cancel, advance, trigger, logs, listen, ipn resend (a running simulator)
remote_commands.register(main, ipn)


if __name__ == "__main__":  # pragma: no cover
    main()
