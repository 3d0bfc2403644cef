"""The console: one line per merchant API call and per IPN attempt, as they happen.

One subscriber on the simulator's bus (``MerchantCalled``, ``IpnChanged``), attached by
the app while it runs when ``Config.console`` is on (``citcon-sim serve``'s default; a
library user asks for it). A line says when (virtual time), what (method and path, or
the IPN's URL), whose (the merchant's token hint), which transaction, how it ended and
how long it took::

    2026-03-02 09:30:00 API  POST /payment/pay_qr      te…en  U0000600001-…  200 ok  1.2 ms

``log_format=json`` writes the same facts as one JSON object a line. Text is coloured
by outcome on a terminal (``color``: auto, always, never; auto honours ``NO_COLOR`` and
``FORCE_COLOR``). Lines are formatted only when the console is attached, and written to
a buffered stream flushed at most every FLUSH_EVERY seconds, so a burst of calls costs one
write, not one per call (the per-call cost is in docs/performance.md).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

from citcon_sim.delivery.ipn import FAILED, RETRYING
from citcon_sim.domain.events import EventBus, IpnChanged, MerchantCalled
from citcon_sim.domain.redaction import token_hint

if TYPE_CHECKING:
    from citcon_sim.config import Config
    from citcon_sim.delivery.ipn import Attempt, Notification

# ANSI SGR colours by outcome.
RESET = "\033[0m"
DIM = "\033[2m"
GREEN = "\033[32m"
YELLOW = "\033[33m"
RED = "\033[31m"
CYAN = "\033[36m"

_OUTCOME_CHARS = 80  # an error message shown is cut there
# Wall seconds a written line may wait in the buffer: soon enough for a person or `docker
# logs`, and under load one write system call for a whole batch of lines.
FLUSH_EVERY = 0.05
# Answers whose 200 may still be a refusal, read to say so: {"refunded": false, ...}.
_REFUSALS = {"refund": "refunded", "cancel": "cancelled"}


def use_colour(choice: str, stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Whether the console colours its lines: ``always``, ``never``, or ``auto``: not with
    NO_COLOR set (no-color.org), always with FORCE_COLOR set, else on a terminal."""
    if choice != "auto":
        return choice == "always"
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _message(text: str | None) -> str | None:
    """An error answer's code and message, in any face's shape (Online API and CHOP at
    the top, UPI under ``data``); None when the answer is not such JSON."""
    if not text or not text.lstrip().startswith("{"):
        return None
    try:
        data = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None
    if not isinstance(data, dict):
        return None
    inner = data.get("data")
    for where in (data, inner if isinstance(inner, dict) else {}):
        message = where.get("message") or where.get("error") or where.get("reason")
        if isinstance(message, str):
            code = where.get("code")
            return f"{code} {message}" if code is not None else message
    return None


def call_outcome(event: MerchantCalled) -> str:
    """A call's outcome in a few words: ``ok``, a refusal's status, an error's message."""
    status = event.status
    if status < 300:
        field = _REFUSALS.get(event.endpoint)
        if field is not None:
            text = event.answer()
            if text and f'"{field}":false' in text.replace(" ", ""):
                found = _message(text) or _status_of(text)
                return f"refused: {found}" if found else "refused"
        return "ok"
    if status == 499:
        return "client went away"
    found = _message(event.answer())
    return (found or "error")[:_OUTCOME_CHARS]


def _status_of(text: str) -> str | None:
    try:
        data = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None
    status = data.get("status") if isinstance(data, dict) else None
    return status if isinstance(status, str) else None


def attempt_outcome(n: Notification, attempt: Attempt) -> str:
    """An IPN attempt's outcome: delivered, or what went wrong and what happens next."""
    what = "delivered" if attempt.ok else (
        f"HTTP {attempt.status}" if attempt.status is not None else attempt.error or "failed")
    if attempt.via:  # `citcon-sim listen` posted it, not the simulator
        what = f"{what} via listener"
    if attempt.trigger not in ("first", "retry"):
        what = f"{what} ({attempt.trigger})"
    elif not attempt.ok:
        if n.state == RETRYING and n.next_attempt_at is not None:
            what = f"{what}; retry in {n.next_attempt_at - attempt.at:g} s"
        elif n.state == FAILED:
            what = f"{what}; gave up after {len(n.attempts)} attempts"
    return what[:_OUTCOME_CHARS]


class Console:
    """Writes the lines of one simulator to ``stream`` (``attach`` to its bus)."""

    def __init__(self, stream: TextIO, format_time: Callable[[float], str], *,
                 json: bool = False, colour: bool = False) -> None:
        self.stream, self.format_time = stream, format_time
        self.json, self.colour = json, colour
        self._flush_pending = False
        self._pending: list[str] = []  # lines written since the last flush
        self._second: tuple[int, str] = (-1, "")  # the last whole second formatted

    def _time(self, at: float) -> str:
        # Lines come many a second (and a frozen clock stands still): format each second once.
        second = int(at)
        if second != self._second[0]:
            self._second = (second, self.format_time(second))
        return self._second[1]

    @classmethod
    def of(cls, config: Config, format_time: Callable[[float], str],
           stream: TextIO | None = None) -> Console:
        """The console ``config`` asks for, on ``stream`` (default: standard output)."""
        stream = stream if stream is not None else sys.stdout
        json = config.log_format == "json"
        return cls(stream, format_time, json=json,
                   colour=not json and use_colour(config.color, stream))

    def attach(self, events: EventBus) -> Callable[[], None]:
        """Subscribe to ``events``; returns the detach (which flushes)."""
        off_calls = events.subscribe(MerchantCalled, self.on_call)
        off_ipn = events.subscribe(IpnChanged, self.on_ipn)

        def detach() -> None:
            off_calls()
            off_ipn()
            self.flush()

        return detach

    # -- events ---------------------------------------------------------------------------

    def on_call(self, event: MerchantCalled) -> None:
        outcome = call_outcome(event)
        hint = token_hint(event.token) if event.token else "-"
        ms = event.seconds * 1000
        if self.json:
            self._write_json({
                "time": self._time(event.at), "kind": "call", "face": event.face,
                "method": event.method, "path": event.path, "endpoint": event.endpoint,
                "merchant": hint, "transaction_id": event.transaction_id,
                "status": event.status, "outcome": outcome, "ms": round(ms, 3)})
        else:
            self._write_text(event.at, "API", f"{event.method} {event.path}", hint,
                             event.transaction_id, str(event.status), outcome, ms,
                             _status_colour(event.status))

    def on_ipn(self, event: IpnChanged) -> None:
        if event.kind != "attempted":  # recorded: nothing was sent yet
            return
        n: Notification = event.notification
        attempt = n.attempts[-1]
        outcome = attempt_outcome(n, attempt)
        hint = token_hint(n.token)
        ms = attempt.latency_ms or 0.0
        if self.json:
            self._write_json({
                "time": self._time(attempt.at), "kind": "ipn", "method": "POST",
                "path": n.url, "merchant": hint, "transaction_id": n.transaction_id,
                "notify_id": n.notify_id, "attempt": attempt.number,
                "trigger": attempt.trigger, "status": attempt.status, "state": n.state,
                "outcome": outcome, "ms": ms})
        else:
            colour = GREEN if attempt.ok else RED if n.state == FAILED else YELLOW
            self._write_text(attempt.at, "IPN", f"POST {n.url}", hint, n.transaction_id,
                             f"#{attempt.number}", outcome, ms, colour)

    # -- writing --------------------------------------------------------------------------

    def _write_text(self, at: float, kind: str, request: str, hint: str, txn_id: str | None,
                    status: str, outcome: str, ms: float, colour: str) -> None:
        when, middle = self._time(at), f"{request:<28} {hint:<10} {txn_id or '-':<32}"
        if self.colour:
            self._write(f"{DIM}{when}{RESET} {CYAN if kind == 'IPN' else ''}{kind:<4}{RESET}"
                        f"{middle} {colour}{status} {outcome}{RESET} {DIM}{ms:.1f} ms{RESET}\n")
        else:
            self._write(f"{when} {kind:<4}{middle} {status} {outcome} {ms:.1f} ms\n")

    def _write_json(self, fields: dict[str, Any]) -> None:
        self._write(msgspec.json.encode(fields).decode() + "\n")

    def _write(self, text: str) -> None:
        # Kept here, not in the stream: with PYTHONUNBUFFERED=1 (set in most images, and
        # in ours) every stream write is a system call; this way a batch of lines is one.
        self._pending.append(text)
        if self._flush_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): now
            self.flush()
            return
        self._flush_pending = True
        loop.call_later(FLUSH_EVERY, self.flush)  # one write for every line until then

    def flush(self) -> None:
        self._flush_pending = False
        lines, self._pending = self._pending, []
        try:
            if lines:
                self.stream.write("".join(lines))
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe must not fail a payment
            pass


def _status_colour(status: int) -> str:
    return GREEN if status < 300 else YELLOW if status < 500 and status != 499 else RED
