"""``citcon-sim``: the command line. ``citcon-sim serve`` runs the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfoNotFoundError

import click
from aiohttp import web

from citcon_sim._version import __version__
from citcon_sim.config import Config
from citcon_sim.delivery.ipn import send_once
from citcon_sim.domain.clock import TIME_FORMAT
from citcon_sim.domain.errors import StateError
from citcon_sim.domain.ids import IdFactory
from citcon_sim.domain.merchants import MerchantSettings, MerchantsFileError
from citcon_sim.faces.online.ipn import build_form
from citcon_sim.scenarios import ScenarioError, resolve_scenario, shipped_scenarios
from citcon_sim.simulator import Simulator
from citcon_sim.web.app import create_app
from citcon_sim.web.security import RedactingAccessLogger


def banner(sim: Simulator) -> str:
    base = sim.base_url()
    mode = "strict (merchants file)" if sim.ledger.strict else "any token is a merchant"
    return (
        f"citcon-sim {__version__} listening on {base}  [{mode}; clock "
        f"{'frozen' if sim.clock.frozen else 'running'}]\n"
        f"  dashboard: {base}/_sim/"
        f"{'  (locked: admin token required)' if sim.config.admin_token else ''}\n"
        f"  health: {base}/_sim/health   OpenAPI: {base}/openapi.json\n"
        "  try it:\n"
        f"    curl -s -X POST '{base}/payment/pay_qr' \\\n"
        "      --header 'Authorization: Bearer test-token' \\\n"
        "      --data-urlencode 'vendor=alipay' --data-urlencode 'amount=100' \\\n"
        "      --data-urlencode 'currency=USD' --data-urlencode 'reference=order-1'\n"
    )


async def serve_forever(sim: Simulator, *, ready: asyncio.Event | None = None) -> None:
    app = create_app(sim)
    runner = web.AppRunner(app, access_log=logging.getLogger("aiohttp.access")
                           if sim.config.access_log else None,
                           access_log_class=RedactingAccessLogger)  # no tokens in the log
    await runner.setup()
    site = web.TCPSite(runner, sim.config.host, sim.config.port)
    await site.start()
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
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


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
    """A local, stateful simulator of Citcon's Online API.

    Start it with `citcon-sim serve` (no configuration needed). Every option below can
    also be set by its environment variable; merchants (strict mode) and FX rates come
    from a merchants file.
    """


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="CITCON_SIM_HOST",
              help="Address to listen on [env CITCON_SIM_HOST].")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              envvar="CITCON_SIM_PORT", help="Port; 0 picks a free one [env CITCON_SIM_PORT].")
@click.option("--public-url", envvar="CITCON_SIM_PUBLIC_URL",
              help="Base URL put in returned pay/QR links, e.g. http://192.168.1.5:8080 "
              "so a phone can scan the QR [env CITCON_SIM_PUBLIC_URL].")
@click.option("--merchants", "merchants_file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="CITCON_SIM_MERCHANTS",
              help="YAML merchants file; switches to strict mode [env CITCON_SIM_MERCHANTS].")
@click.option("--seed", type=int, envvar="CITCON_SIM_SEED",
              help="Seed for reproducible transaction ids [env CITCON_SIM_SEED].")
@click.option("--frozen-clock/--running-clock", default=False, envvar="CITCON_SIM_FROZEN_CLOCK",
              help="Frozen: virtual time moves only via /_sim/clock/advance "
              "[env CITCON_SIM_FROZEN_CLOCK].")
@click.option("--start-time", type=click.DateTime(), envvar="CITCON_SIM_START_TIME",
              help="Virtual time at start (default: now) [env CITCON_SIM_START_TIME].")
@click.option("--timezone", default="UTC", show_default=True, envvar="CITCON_SIM_TIMEZONE",
              help="Zone for reported times and the open-balance day [env CITCON_SIM_TIMEZONE].")
@click.option("--access-log/--no-access-log", default=False, envvar="CITCON_SIM_ACCESS_LOG",
              help="Log every HTTP request [env CITCON_SIM_ACCESS_LOG].")
@click.option("--scenario", "scenarios", multiple=True, envvar="CITCON_SIM_SCENARIOS",
              help="Scenario file or shipped scenario name; repeatable [env "
              "CITCON_SIM_SCENARIOS, several separated by spaces].")
@click.option("--magic-amounts/--no-magic-amounts", default=True,
              envvar="CITCON_SIM_MAGIC_AMOUNTS",
              help="Amounts ending 9901-9909 script outcomes [env CITCON_SIM_MAGIC_AMOUNTS].")
@click.option("--journal-size", default=1000, show_default=True, type=click.IntRange(0),
              envvar="CITCON_SIM_JOURNAL_SIZE",
              help="Merchant API calls kept for /_sim/requests; 0 turns the journal off "
              "[env CITCON_SIM_JOURNAL_SIZE].")
@click.option("--admin-token", envvar="CITCON_SIM_ADMIN_TOKEN",
              help="Lock /_sim/ (all but /_sim/health) behind this token, sent as "
              "'Authorization: Bearer TOKEN' or 'X-Admin-Token: TOKEN'; open the dashboard "
              "once with ?admin_token=TOKEN. Prefer the env variable: a flag shows in ps "
              "[env CITCON_SIM_ADMIN_TOKEN].")
@click.option("--state", "state_file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="CITCON_SIM_STATE",
              help="Keep the ledger, IPN log and clock in FILE across restarts (created if "
              "missing; a snapshot from GET /_sim/state works as a start) "
              "[env CITCON_SIM_STATE].")
@click.option("--ipn-timeout", default=10.0, show_default=True, type=click.FloatRange(0.05),
              envvar="CITCON_SIM_IPN_TIMEOUT",
              help="Wall seconds one IPN attempt may take [env CITCON_SIM_IPN_TIMEOUT].")
@click.option("--ipn-retries", default="15,60,300,900,3600,10800,21600", show_default=True,
              envvar="CITCON_SIM_IPN_RETRIES",
              help="Virtual seconds before each IPN retry, comma-separated; the notification "
              "fails after the last [env CITCON_SIM_IPN_RETRIES].")
@click.option("--max-body-bytes", default=1024 * 1024, show_default=True,
              type=click.IntRange(1024), envvar="CITCON_SIM_MAX_BODY_BYTES",
              help="Largest request body; larger ones get HTTP 413 "
              "[env CITCON_SIM_MAX_BODY_BYTES].")
def serve(
    host: str,
    port: int,
    public_url: str | None,
    merchants_file: Path | None,
    seed: int | None,
    frozen_clock: bool,
    start_time: datetime | None,
    timezone: str,
    access_log: bool,
    scenarios: tuple[str, ...],
    magic_amounts: bool,
    journal_size: int,
    admin_token: str | None,
    state_file: Path | None,
    ipn_timeout: float,
    ipn_retries: str,
    max_body_bytes: int,
) -> None:
    """Run the simulator (useful with no configuration at all)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = Config(
        host=host, port=port, public_url=public_url, merchants_file=merchants_file, seed=seed,
        frozen_clock=frozen_clock, start_time=start_time, timezone=timezone,
        access_log=access_log, scenarios=list(scenarios), magic_amounts=magic_amounts,
        journal_size=journal_size, admin_token=admin_token or None, state_file=state_file,
        ipn_timeout=ipn_timeout, ipn_backoff=_retries(ipn_retries), max_body_bytes=max_body_bytes,
    )
    try:
        sim = Simulator(config)
    except (MerchantsFileError, ScenarioError, ZoneInfoNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    except StateError as exc:
        raise click.ClickException(f"--state: {exc}") from None
    try:
        asyncio.run(serve_forever(sim))
    except OSError as exc:
        click.echo(f"citcon-sim: cannot listen on {host}:{port}: {exc.strerror}", err=True)
        sys.exit(1)


def _retries(text: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: comma-separated seconds, e.g. 15,60,300",
                                 param_hint="--ipn-retries") from None
    if any(not 0 < d < 10**7 for d in delays):
        raise click.BadParameter("each delay is more than 0 seconds",
                                 param_hint="--ipn-retries")
    return delays


@main.group()
def scenarios() -> None:
    """Check and list scenario files."""


@scenarios.command("check")
@click.argument("files", nargs=-1, required=True)
def scenarios_check(files: tuple[str, ...]) -> None:
    """Validate scenario FILES without starting a server (exit 1 if any is invalid)."""
    bad = 0
    for spec in files:
        try:
            scenario = resolve_scenario(spec)
        except ScenarioError as exc:
            click.echo(f"invalid  {exc}", err=True)
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


@main.group()
def ipn() -> None:
    """Check a merchant's IPN handler."""


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


if __name__ == "__main__":  # pragma: no cover
    main()
