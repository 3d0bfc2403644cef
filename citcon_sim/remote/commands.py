"""The remote commands (``citcon-sim pay ID``, ``advance 5m``, ``trigger payment``,
``logs``, ``listen``, ``ipn resend``), registered on the main group by :func:`register`.

Each command talks to a running simulator through :class:`~citcon_sim.remote.client.Remote`
and fails with one line on stderr and exit status 1 (``Error: …``, click's way), never a
traceback: no simulator at the URL, a refused call, an unknown id.
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
import sys
from collections.abc import AsyncGenerator, Callable, Coroutine
from datetime import datetime
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

import aiohttp
import click

from citcon_sim.delivery.ipn import USER_AGENT, PostResult, post_form
from citcon_sim.remote.client import (
    ADMIN_TOKEN_ENV,
    DEFAULT_URL,
    URL_ENV,
    Remote,
    RemoteError,
    check_url,
    parse_duration,
    segment,
)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

DEMO_TOKEN = "test-token"  # the merchant `trigger payment` creates as (README)
TOKEN_ENV = "CITCON_SIM_TOKEN"


def _url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return check_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def remote_options(command: F) -> F:
    """``--url``, ``--admin-token`` and ``--json``, shared by every remote command."""
    for option in reversed((
        click.option("--url", default=DEFAULT_URL, show_default=True, envvar=URL_ENV,
                     callback=_url, help=f"The simulator to drive [env {URL_ENV}]."),
        click.option("--admin-token", envvar=ADMIN_TOKEN_ENV, metavar="TOKEN",
                     help=f"For a simulator run with --admin-token [env {ADMIN_TOKEN_ENV}]."),
        click.option("--json", "as_json", is_flag=True,
                     help="Print JSON (one object per line) for scripts."),
    )):
        command = option(command)
    return command


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; a RemoteError is one line and exit 1, Ctrl-C a quiet
    stop."""
    try:
        return asyncio.run(work)
    except RemoteError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
        sys.exit(0)


def _call(url: str, admin_token: str | None, method: str, path: str,
          form: dict[str, str] | None = None, ok: tuple[int, ...] = (200,)) -> dict[str, Any]:
    """One control call, its JSON answer (a command that needs no more than that)."""
    async def call() -> dict[str, Any]:
        async with Remote(url, admin_token) as sim:
            answer: dict[str, Any] = await sim.call(method, path, form=form, ok=ok)
            return answer
    return _run(call())


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, separators=(",", ":")))


# -- the consumer and the clock ----------------------------------------------------------------


def _act_command(action: str, doc: str) -> click.Command:
    @click.command(action, help=doc, short_help=f"{doc.split(' (')[0].rstrip('.')}.")
    @click.argument("transaction_id", metavar="ID")
    @remote_options
    def command(transaction_id: str, url: str, admin_token: str | None, as_json: bool,
                **extra: str) -> None:
        txn = _call(url, admin_token, "POST",
                    f"/_sim/transactions/{segment(transaction_id)}/{action}",
                    form={k: v for k, v in extra.items() if v})
        if as_json:
            _print_json(txn)
        else:
            click.echo(f"{txn['id']}  {txn['internal_status']}  {_money(txn)}  "
                       f"{txn.get('vendor', '')}")
    if action == "fail":
        command = click.option("--reason", default="declined", show_default=True,
                               help="Why the payment failed.")(command)
    return command


def _money(txn: dict[str, Any]) -> str:
    return f"{txn.get('amount')} {txn.get('currency')}"


@click.command("advance", short_help="Move the virtual clock forward: advance 5m.")
@click.argument("duration")
@remote_options
def advance(duration: str, url: str, admin_token: str | None, as_json: bool) -> None:
    """Move the simulator's virtual clock forward by DURATION (90s, 5m, 2h, 1d, 1h30m;
    a bare number is seconds): expiries, IPN retries and scripted outcomes due fire."""
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="DURATION") from None
    clock = _call(url, admin_token, "POST", "/_sim/clock/advance",
                  form={"seconds": repr(seconds)})
    if as_json:
        _print_json(clock)
    else:
        click.echo(f"clock {clock['time']} {clock['timezone']} (moved {seconds:g} s; "
                   f"{clock['jobs_run']} due job(s) ran)")


# -- trigger payment ---------------------------------------------------------------------------


@click.group("trigger", short_help="trigger payment: create and pay one, show its IPN.")
def trigger() -> None:
    """Make something happen on the simulator in one go."""


@trigger.command("payment")
@click.option("--vendor", default="alipay", show_default=True)
@click.option("--amount", default="1000", show_default=True,
              help="Settlement amount in minor units.")
@click.option("--currency", default="USD", show_default=True)
@click.option("--ipn-url", help="Where the IPN goes (none: no IPN is sent).")
@click.option("--reference", help="[default: a fresh cli-… reference]")
@click.option("--token", default=DEMO_TOKEN, show_default=True, envvar=TOKEN_ENV,
              help=f"The merchant's API token [env {TOKEN_ENV}].")
@click.option("--face", type=click.Choice(["online", "chop", "upi"]), default="online",
              show_default=True, help="The API that creates it: the Online API, CHOP or "
              "UPI v1 (--token is then the merchant's private key).")
@click.option("--endpoint", type=click.Choice(["pay_qr", "pay"]), default="pay_qr",
              show_default=True, help="The Online API call that creates it.")
@click.option("--wait", default=15.0, show_default=True, type=click.FloatRange(min=0),
              help="Wall seconds to wait for the IPN's first attempt.")
@remote_options
def trigger_payment(vendor: str, amount: str, currency: str, ipn_url: str | None,
                    reference: str | None, token: str, face: str, endpoint: str, wait: float,
                    url: str, admin_token: str | None, as_json: bool) -> None:
    """Create a payment through the merchant API (--face) as merchant --token, pay it as
    the consumer, and show the transaction id and what became of its IPN."""
    payment = Payment(face, endpoint, vendor, amount, currency,
                      reference or f"cli-{secrets.token_hex(4)}", ipn_url, token)
    result = _run(_trigger(url, admin_token, payment, wait))
    if as_json:
        _print_json(result)
        return
    txn, created = result["transaction"], result["created"]
    click.echo(f"created  {txn['id']}  {vendor} {_money(txn)}  reference "
               f"{created['reference']}  ({created['url']})")
    click.echo(f"paid     {txn['id']}  {txn['internal_status']}")
    click.echo(f"IPN      {_ipn_line(result['ipn'])}")


class Payment(NamedTuple):
    """What ``trigger payment`` creates, and through which API."""

    face: str
    endpoint: str  # the Online API's pay or pay_qr
    vendor: str
    amount: str
    currency: str
    reference: str
    ipn_url: str | None
    token: str  # the merchant's token (UPI: its private key)


async def create_payment(sim: Remote, p: Payment) -> dict[str, Any]:
    """Create ``p`` as the merchant would; ``transaction_id``, ``reference`` and ``url``
    (where the consumer pays), whichever API made it."""
    if p.face == "upi":
        try:
            amount: int | str = int(p.amount)
        except ValueError:
            amount = p.amount  # the API says what is wrong with it
        access = await sim.call("POST", "/v1/access-tokens", token=p.token,
                                json_body={"token_type": "server"})
        charge = (await sim.call(
            "POST", "/v1/charges", token=access["data"]["access_token"], json_body={
                "transaction": {"reference": p.reference, "amount": amount,
                                "currency": p.currency},
                "payment": {"method": p.vendor},
                "urls": {"ipn": p.ipn_url} if p.ipn_url else {}}))["data"]
        pages = [c["content"] for c in charge["payment"]["client"] if c["format"] == "redirect"]
        return {"transaction_id": charge["id"], "reference": charge["reference"],
                "url": next(iter(pages), ""), "answer": charge}
    form = {"amount": p.amount, "currency": p.currency, "allow_duplicates": "yes",
            "reference": p.reference}
    if p.face == "chop":
        path, form["payment_method"] = "/chop/chop", p.vendor
    else:
        path, form["vendor"], form["response_format"] = f"/payment/{p.endpoint}", p.vendor, \
            "json"
    if p.ipn_url:
        form["ipn_url"] = p.ipn_url
    created = await sim.call("POST", path, form=form, token=p.token)
    return {"transaction_id": created["transaction_id"], "reference": created["reference"],
            "url": created["url"], "answer": created}


async def _trigger(url: str, admin_token: str | None, payment: Payment,
                   wait: float) -> dict[str, Any]:
    async with Remote(url, admin_token) as sim:
        # Follow the simulator's events from before paying, so no attempt is missed.
        events = sim.events("/_sim/events") if payment.ipn_url else None
        try:
            if events is not None:
                await anext(events)  # hello: the stream is open
            created = await create_payment(sim, payment)
            txn_id = str(created["transaction_id"])
            await sim.call("POST", f"/_sim/transactions/{segment(txn_id)}/pay")
            detail = await _await_ipn(sim, txn_id, events, wait)
        finally:
            if events is not None:
                await events.aclose()
    notes = detail.pop("ipn", [])
    main = next((n for n in reversed(notes) if n["event"] != "stale"), None)
    return {"created": created, "transaction": detail, "ipn": main}


def _settled(detail: dict[str, Any]) -> bool:
    """Nothing more to wait for: an attempt finished, none is due, or one is due later."""
    notes = detail.get("ipn") or []
    if not notes:
        return detail.get("internal_status") != "success"  # no IPN will be recorded
    note = notes[-1]
    return (note["state"] not in ("pending", "retrying") or note["next_attempt_time"] is not None
            or any(a["status"] is not None or a["error"] is not None
                   for a in note["attempts"]))


async def _await_ipn(sim: Remote, txn_id: str,
                     events: AsyncGenerator[tuple[str, Any], None] | None,
                     wait: float) -> dict[str, Any]:
    path = f"/_sim/transactions/{segment(txn_id)}"
    detail: dict[str, Any] = await sim.call("GET", path)
    if events is None:
        return detail
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while not _settled(detail) and loop.time() < deadline:
        try:
            event, data = await asyncio.wait_for(anext(events), deadline - loop.time())
        except (TimeoutError, StopAsyncIteration):
            break
        mine = isinstance(data, dict) and (data.get("notification") or {}).get(
            "transaction_id") == txn_id
        if event in ("resync", "reset") or (event == "ipn" and mine):
            detail = await sim.call("GET", path)
    return detail


def _ipn_line(note: dict[str, Any] | None) -> str:
    if note is None:
        return "none (no IPN is due: no --ipn-url, or the payment did not succeed)"
    head = f"{note['notify_id']}  {note['state']}"
    if note["state"] == "not_sent":
        return f"{head} (the payment has no ipn_url)"
    finished = [a for a in note["attempts"] if a["status"] is not None or a["error"]]
    if not finished:
        due = note["next_attempt_time"]
        return f"{head}, first attempt due at {due} (virtual): citcon-sim advance" if due \
            else f"{head}, no attempt finished yet"
    return f"{head}: {_attempt_text(finished[-1])} -> {note['url']}"


def _attempt_text(attempt: dict[str, Any]) -> str:
    if attempt["status"] is None:
        outcome = f"failed ({attempt['error']})"
    else:
        outcome = f"HTTP {attempt['status']} in {attempt['latency_ms']:.0f} ms"
    via = f" via {attempt['via']}" if attempt.get("via") else ""
    return f"attempt {attempt['number']} {outcome}{via}"


# -- logs --------------------------------------------------------------------------------------


@click.command("logs", short_help="Show (-f: tail) the journal of merchant API calls.")
@click.option("--token", help="One merchant's calls only.")
@click.option("--transaction", "transaction_id", metavar="ID", help="One transaction's calls.")
@click.option("--path", help="One endpoint: a path (/payment/pay_qr) or a name (pay_qr).")
@click.option("--face", type=click.Choice(["online", "chop", "upi"]), help="One API only.")
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="Calls shown first.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new calls as they come.")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(min=0.05),
              help="Wall seconds between looks while following (a change the simulator "
              "announces is looked at sooner).")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Stop following after this many wall seconds [default: never].")
@remote_options
def logs(token: str | None, transaction_id: str | None, path: str | None, face: str | None,
         limit: int, follow: bool, interval: float, timeout: float | None, url: str,
         admin_token: str | None, as_json: bool) -> None:
    """Show the journal of merchant API calls (oldest first), and with --follow tail it."""
    query = {k: v for k, v in {"token": token, "transaction_id": transaction_id,
                               "path": path, "face": face}.items() if v}
    show = _print_json if as_json else _log_line
    _run(_logs(url, admin_token, query, limit, follow, interval, timeout, show))


async def _logs(url: str, admin_token: str | None, query: dict[str, str], limit: int,
                follow: bool, interval: float, timeout: float | None,
                show: Callable[[dict[str, Any]], None]) -> None:
    async with Remote(url, admin_token) as sim:
        loop = asyncio.get_running_loop()
        stop = None if timeout is None else loop.time() + timeout
        last = 0

        async def look(page: int) -> None:
            nonlocal last
            answer = await sim.call("GET", "/_sim/requests", query={
                **query, "limit": str(page), "after": str(last)})
            entries = answer["requests"]
            for entry in reversed(entries):
                show(entry)
            if entries:
                last = max(last, int(entries[0]["seq"]))

        await look(limit)
        if not follow:
            return
        changed = asyncio.Event()
        watcher = asyncio.create_task(_watch(sim, changed))
        try:
            while stop is None or loop.time() < stop:
                wait = interval if stop is None else max(0.0, min(interval, stop - loop.time()))
                try:
                    await asyncio.wait_for(changed.wait(), wait)
                    await asyncio.sleep(0.05)  # one look for a burst of changes
                except TimeoutError:
                    pass
                changed.clear()
                await look(1000)  # the journal's most per answer (and its default size)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)


async def _watch(sim: Remote, changed: asyncio.Event) -> None:
    """Set ``changed`` on each event of the simulator's stream (a transaction changed, a
    call was journaled…), so ``logs --follow`` looks at once instead of at its next
    interval; without the stream (refused, gone), the interval alone paces the looks."""
    try:
        async for _event, _data in sim.events("/_sim/events"):
            changed.set()
    except RemoteError:
        pass


def _log_line(entry: dict[str, Any]) -> None:
    click.echo(f"{entry['time']}  {entry['face']:6} {entry['method']:4} {entry['path']} -> "
               f"{entry['status']}  {entry['transaction_id'] or '-'}  "
               f"{entry['token'] or '-'}  {entry['duration_ms']:.1f} ms"
               + (f"  [scenario: {entry['scenario_rule']}]" if entry["scenario_rule"] else ""))


# -- listen --------------------------------------------------------------------------------------


@click.command("listen", short_help="Forward a simulator's IPNs to a local endpoint.")
@click.option("--forward-to", required=True, metavar="URL", callback=_url,
              help="Your IPN endpoint, as reached from this machine.")
@click.option("--token", "tokens", multiple=True, metavar="TOKEN",
              help="Only this merchant's IPNs (repeatable) [default: every merchant's].")
@click.option("--keep-path", is_flag=True,
              help="Append each ipn_url's path and query to --forward-to.")
@click.option("--reconnect", is_flag=True,
              help="When the simulator goes away, wait for it and listen again (instead "
              "of exiting 1).")
@remote_options
def listen(forward_to: str, tokens: tuple[str, ...], keep_path: bool, reconnect: bool,
           url: str, admin_token: str | None, as_json: bool) -> None:
    """Take a running simulator's IPNs and POST them to --forward-to from here.

    For a simulator that cannot reach your endpoint (it runs in a container, or on
    another machine): while this runs, each delivery attempt of the selected merchants'
    IPNs comes here over a connection this command opens, is posted to --forward-to
    exactly as the simulator would post it (form or JSON, signature and notify_id
    included), and the answer is reported back: the simulator records it as the attempt
    and retries a non-2xx answer as usual. Direct delivery resumes when this stops.
    """
    _run(_listen(url, admin_token, forward_to, tokens, keep_path, reconnect, as_json))


def forward_target(forward_to: str, ipn_url: str | None, keep_path: bool) -> str:
    """Where one IPN is posted: --forward-to, or with --keep-path its scheme and host
    with the ``ipn_url``'s path and query."""
    if not keep_path or not ipn_url:
        return forward_to
    parts = urlsplit(ipn_url)
    return forward_to.rstrip("/") + (parts.path or "/") + (f"?{parts.query}"
                                                           if parts.query else "")


RECONNECT_DELAY = 1.0  # wall seconds between tries to reach a simulator that went away


RECONNECT_DELAY = 1.0  # wall seconds between looks for a simulator that went away


async def _listen(url: str, admin_token: str | None, forward_to: str,
                  tokens: tuple[str, ...], keep_path: bool, reconnect: bool,
                  as_json: bool) -> None:
    """Listen until Ctrl-C or, without ``reconnect``, until the simulator goes away (a
    RemoteError). The first connection must succeed either way."""
    query = [("token", t) for t in tokens] + [("forward_to", forward_to)]
    async with Remote(url, admin_token) as sim, aiohttp.ClientSession(
            # As the simulator posts: its User-Agent, a fresh connection each time.
            connector=aiohttp.TCPConnector(force_close=True),
            headers={"User-Agent": USER_AGENT}) as poster:
        deliver = functools.partial(_deliver, sim, poster, forward_to, keep_path, as_json)
        first = True
        while True:
            try:
                await _listen_once(sim, query, forward_to, deliver, as_json)
                if not reconnect:
                    raise RemoteError(f"the simulator at {url} ended the stream (it stopped)")
            except RemoteError:
                if first or not reconnect:
                    raise
            first = False
            click.echo(f"lost the simulator at {url}; reconnecting (Ctrl-C to stop)", err=True)
            while True:  # quietly, until it answers again
                await asyncio.sleep(RECONNECT_DELAY)
                try:
                    await sim.call("GET", "/_sim/health")
                    break
                except RemoteError:
                    continue


async def _listen_once(sim: Remote, query: list[tuple[str, str]], forward_to: str,
                       deliver: Callable[[str, dict[str, Any]], Coroutine[Any, Any, None]],
                       as_json: bool) -> None:
    """One connection, until the simulator ends it (or a RemoteError)."""
    pending: set[asyncio.Task[None]] = set()
    listener = ""
    try:
        async for event, data in sim.events("/_sim/listen", query):
            if event == "hello":
                listener = data["listener"]
                who = ("every merchant" if data["merchants"] == "all"
                       else "merchant(s) " + ", ".join(data["merchants"]))
                click.echo(f"Ready: IPNs of {who} go to {forward_to} (listener "
                           f"{listener}; each answer is due within {data['timeout']:g} "
                           "s). Ctrl-C to stop.", err=as_json)
            elif event == "ipn":
                task = asyncio.create_task(deliver(listener, data))
                pending.add(task)
                task.add_done_callback(pending.discard)
    finally:  # what it still held, the simulator has taken back (and POSTs itself)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def _deliver(sim: Remote, poster: aiohttp.ClientSession, forward_to: str,
                   keep_path: bool, as_json: bool, listener: str,
                   data: dict[str, Any]) -> None:
    target = forward_target(forward_to, data.get("url"), keep_path)
    try:
        result = await post_form(poster, target, data["form"], float(data["timeout"]),
                                 "json" if data["encoding"] == "json" else "form")
    except Exception as exc:  # reported as the attempt's failure, not left to time out
        result = PostResult(None, "", f"listen could not post: {type(exc).__name__}", 0.0)
    report = ({"status": str(result.status)} if result.status is not None
              else {"error": result.error or "no answer"})
    report.update(body=result.body, latency_ms=str(result.latency_ms))
    note = ""
    try:
        await sim.call("POST", f"/_sim/listen/{segment(listener)}/{segment(data['delivery'])}",
                       form=report)
    except RemoteError as exc:  # too late (timed out there) or gone: say so, keep going
        note = f"not recorded: {exc}"
    if as_json:
        _print_json({"notify_id": data["notify_id"], "transaction_id": data["transaction_id"],
                     "attempt": data["attempt"], "forwarded_to": target,
                     "status": result.status, "error": result.error,
                     "latency_ms": result.latency_ms, "body": result.body,
                     "recorded": not note})
        return
    outcome = (f"HTTP {result.status} in {result.latency_ms:.0f} ms" if result.status
               is not None else f"failed ({result.error})")
    click.echo(f"{datetime.now():%H:%M:%S}  {data['notify_id']}  {data['transaction_id']}  "
               f"attempt {data['attempt']} ({data['trigger']}) -> {target}: {outcome}"
               + (f"  [{note}]" if note else ""))


# -- ipn resend --------------------------------------------------------------------------------


@click.command("resend", short_help="Send a recorded IPN again, by notify_id.")
@click.argument("notify_id")
@click.option("--no-wait", is_flag=True, help="Queue it and return (do not wait for the answer).")
@remote_options
def ipn_resend(notify_id: str, no_wait: bool, url: str, admin_token: str | None,
               as_json: bool) -> None:
    """Send a recorded notification again now (same form, same notify_id) through the
    running simulator. Exits 1 unless the merchant acknowledged it (2xx)."""
    answer = _call(url, admin_token, "POST", f"/_sim/ipn/{segment(notify_id)}/redeliver",
                   form={"wait": "no" if no_wait else "yes"}, ok=(200, 202))
    attempt, note = answer["attempt"], answer["notification"]
    if as_json:
        _print_json(answer)
    elif attempt is None:
        click.echo(f"{notify_id} queued for redelivery to {note and note['url']}")
    else:
        click.echo(f"{notify_id}: {_attempt_text(attempt)} -> {note['url']}")
    if attempt is not None and not attempt["ok"]:
        if not as_json:
            click.echo("not acknowledged: only a 2xx answer counts", err=True)
        sys.exit(1)


def register(main: click.Group, ipn: click.Group) -> None:
    """Add the remote commands to ``citcon-sim`` (and ``resend`` to its ``ipn`` group)."""
    main.add_command(_act_command("pay", "The consumer pays transaction ID (authorises a "
                                  "delayed-capture payment)."))
    main.add_command(_act_command("fail", "The consumer's payment of ID fails."))
    main.add_command(_act_command("expire", "Expire pending payment ID now, as if its "
                                  "timeout had passed."))
    main.add_command(_act_command("cancel", "The consumer abandons payment ID (not the "
                                  "merchant's cancel API)."))
    for command in (advance, trigger, logs, listen):
        main.add_command(command)
    ipn.add_command(ipn_resend)
