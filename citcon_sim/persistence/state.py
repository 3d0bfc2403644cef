"""Persistence: a versioned JSON snapshot of the simulator, and the ``--state FILE`` journal.

Snapshot (``GET``/``PUT /_sim/state``, :func:`snapshot` / :func:`restore`)
    One JSON object, ``{"format": "citcon-sim-state", "version": 1, "clock", "ids",
    "merchants", "transactions", "ipn"}``. Transactions carry everything (refunds,
    captures, timeline, goods, extra, the scenario script), the vendor by code, times as
    epoch seconds. Derived data is not stored: the reference index, ``refunds_by_id``,
    the scheduler's jobs and the IPN statistics are rebuilt on restore; scripted payments
    still due and IPN sends pending or retrying are rescheduled at their original virtual
    times. :func:`restore` builds every object aside and validates it (types, vendor
    codes, currencies, unique ids, refunded <= captured <= amount, merchants known in
    strict mode) before touching the live simulator, so a bad snapshot is a
    :class:`StateError` (400 at the HTTP layer) and the live ledger is unchanged; the swap
    itself cannot fail halfway. Importing replaces the whole state, like a reset followed
    by a load (pending jobs and the request journal are cleared too). For hand-written
    fixtures most fields are optional (derived defaults) and times may also be
    ``yyyy-MM-dd HH:mm:ss`` (simulator zone) or ISO 8601 strings.

    The transaction's scenario rule is persisted as data (name, source, line and its
    ``payment``/``ipn`` parts — the only parts used after creation), not as a reference
    into the loaded scenario files: a restored transaction behaves as scripted even if
    the scenario is no longer loaded, and a fixture is self-contained.

Journal (``--state FILE``, :class:`StateFile`)
    An append-only file of JSON lines. The first line is a full snapshot; each following
    line is one change: ``txn`` (the transaction's FULL current state plus its merchant's
    open balance; written by a ledger listener on every ledger event), ``ipn`` (a
    notification's full state, after it is recorded and after every attempt), ``clock``
    (after every advance) and ``reset`` (one merchant; a full reset rewrites the file).
    Replay keeps the last record per id, so records are idempotent and need no sequence
    numbers. Each record is ONE ``os.write`` on an ``O_APPEND`` descriptor, made inside
    the ledger call that changed the state — that is, before the HTTP answer is sent. The
    data is then in the kernel's page cache, which survives the death of the process
    (``kill -9``, OOM killer, a crash), so every acknowledged operation survives it. There
    is no ``fsync`` per record: a power loss or kernel crash may lose the last records
    (the file is for tests and demos, and an fsync per request would cost more than the
    request). On start the file is read (a torn last line is ignored), replayed, then
    compacted: a fresh snapshot line is written to ``FILE.tmp``, fsynced, and atomically
    ``os.replace``d over the file. Compaction also runs when the records since the last one
    exceed twice the number of objects in the state (at least :attr:`StateFile.min_records`)
    — amortised O(1) per record — right after the current event-loop callback, so it never
    sees a half-applied operation. A full reset or a ``PUT /_sim/state`` compacts at once.
    Without ``--state`` nothing here runs: no listener, no hook, no serialisation.

Clock on restart: a frozen clock resumes at exactly its saved time; a running clock keeps
its lead or lag over wall time (advances included), so the downtime passes as it would for
a real gateway (pending payments may expire). An import (``PUT /_sim/state``, or a snapshot
file given as ``--state``) sets the saved time exactly, in either mode, so a fixture is
reproducible; the mode itself (frozen or running) is the server's, and ``--start-time``
only applies to a new state file. Ids continue after the highest one in use; the id
generator's exact state is restored from a snapshot (same ids as before the export), and
reseeded (from ``--seed`` and the counter) after a journal replay — the snapshot's state
predates the ids handed out since, and replaying it would repeat their ``notify_id``s.

Not persisted: scenarios loaded at run time and the rules' ``nth``/``times`` counters
(reload them, or pass ``--scenario`` again), the request journal (``/_sim/requests``), IPN
sends in flight at a crash (sent again after restart: at-least-once, same ``notify_id``).
The file holds merchant tokens in clear (it must, to restore merchants); it is created
mode 0600 and locked against a second simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from citcon_sim.delivery.ipn import (
    DELIVERED,
    FAILED,
    NOT_SENT,
    PENDING,
    RETRYING,
    SUPPRESSED,
    Attempt,
    Notification,
)
from citcon_sim.domain.clock import TIME_FORMAT
from citcon_sim.domain.commands import DEFAULT_TIMEOUT, MAX_AMOUNT
from citcon_sim.domain.errors import CitconError, StateError  # StateError is re-exported from here
from citcon_sim.domain.ledger import Capture, LedgerEvent, Merchant, Refund, Status, Transaction
from citcon_sim.domain.merchants import MerchantSettings, MerchantsFileError, parse_merchants
from citcon_sim.domain.money import normalise_currency
from citcon_sim.domain.redaction import token_hint
from citcon_sim.domain.scripts import IpnScript, PaymentScript, Rule
from citcon_sim.domain.vendors import VENDORS

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock against a second process
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from citcon_sim.simulator import Simulator

log = logging.getLogger("citcon_sim.state")

FORMAT = "citcon-sim-state"
VERSION = 1
_STATES = frozenset({PENDING, RETRYING, DELIVERED, FAILED, NOT_SENT, SUPPRESSED})
_OUTCOMES = frozenset({"pay", "fail", "expire", "pending", "authorize"})
_ID_COUNTER = re.compile(r"^U(\d{10})-")
_MAX_TIME = 253402300799.0  # 9999-12-31 23:59:59 UTC
# Records are fresh trees of plain values (no cycles): skip the circular-reference check.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False,
                           default=str).encode




# -- export ------------------------------------------------------------------------------


def txn_dict(t: Transaction) -> dict[str, Any]:
    """A transaction's full state as JSON-ready values (also the journal's ``txn`` record)."""
    d: dict[str, Any] = {
        "id": t.id, "token": t.token, "reference": t.reference, "vendor": t.vendor.code,
        "method": t.method, "amount": t.amount, "currency": t.currency,
        "trans_amount": t.trans_amount, "trans_currency": t.trans_currency,
        "created_at": t.created_at, "expires_at": t.expires_at, "updated_at": t.updated_at,
        "auto_capture": t.auto_capture, "status": t.status.value, "paid_at": t.paid_at,
        "captured_amount": t.captured_amount, "captured_trans_amount": t.captured_trans_amount,
        "capture_open": t.capture_open, "refunded_amount": t.refunded_amount,
        "refunded_trans_amount": t.refunded_trans_amount, "note": t.note, "ipn_url": t.ipn_url,
        "callback_url_success": t.callback_url_success,
        "callback_url_fail": t.callback_url_fail,
        "callback_url_cancel": t.callback_url_cancel,
        "mobile_result_url": t.mobile_result_url, "goods": t.goods, "extra": t.extra,
    }
    if t.refunds:
        d["refunds"] = [
            {"id": r.id, "amount": r.amount, "trans_amount": r.trans_amount, "time": r.time,
             "note": r.note, "by_cancel": r.by_cancel}
            for r in t.refunds
        ]
    if t.captures:
        d["captures"] = [
            {"amount": c.amount, "trans_amount": c.trans_amount, "time": c.time, "last": c.last}
            for c in t.captures
        ]
    if t.events:
        d["events"] = t.events  # (time, event, detail) tuples encode as arrays
    if t.script is not None:
        s = t.script
        d["script"] = {"name": s.name, "source": s.source, "line": s.line,
                       "payment": _slots(s.payment), "ipn": _slots(s.ipn)}
    return d


def _slots(obj: Any) -> dict[str, Any] | None:
    return None if obj is None else {k: getattr(obj, k) for k in obj.__slots__}


def notification_dict(n: Notification) -> dict[str, Any]:
    return {
        "notify_id": n.notify_id, "transaction_id": n.transaction_id, "event": n.event,
        "url": n.url, "form": n.form, "created_at": n.created_at, "state": n.state,
        "script": _slots(n.script), "retries_used": n.retries_used,
        "next_attempt_at": n.next_attempt_at, "follow_ups_sent": n.follow_ups_sent,
        "attempts": [
            {"number": a.number, "trigger": a.trigger, "at": a.at, "status": a.status,
             "error": a.error, "body": a.body, "latency_ms": a.latency_ms, "sent": a.sent}
            for a in n.attempts
        ],
    }


def _clock_dict(sim: Simulator) -> dict[str, Any]:
    now = sim.clock.time()
    return {"time": now, "wall": time.time(), "frozen": sim.clock.frozen,
            "iso": sim.clock.iso(now), "timezone": sim.config.timezone}


def snapshot(sim: Simulator) -> dict[str, Any]:
    """The whole simulator state as one JSON-ready dict (raw: nothing is refreshed)."""
    ledger = sim.ledger
    return {
        "format": FORMAT,
        "version": VERSION,
        "clock": _clock_dict(sim),
        "ids": ledger.ids.export_state(),
        "merchants": {
            token: {
                "settings": _settings_dict(m.settings),
                "balance_day": m._balance_day,
                "balances": dict(m._balances),
            }
            for token, m in ledger.merchants.items()
        },
        "transactions": [txn_dict(t) for t in ledger.by_id.values()],
        "ipn": [notification_dict(n) for n in sim.ipn.notifications.values()],
    }


def _settings_dict(s: MerchantSettings) -> dict[str, Any]:
    return {"partner_id": s.partner_id, "name": s.name,
            "settlement_currency": s.settlement_currency, "refund_exempt": s.refund_exempt,
            "cancel_windows": dict(s.cancel_windows)}


# -- import: validate and build aside, then swap -----------------------------------------

_REQUIRED: Any = object()


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


class _Fields:
    """Typed access to one JSON object, with the path in every error."""

    __slots__ = ("raw", "path", "tz")

    def __init__(self, raw: Any, path: str, tz: tzinfo) -> None:
        if not isinstance(raw, dict):
            raise StateError(f"{path}: expected an object, got {_kind(raw)}")
        self.raw, self.path, self.tz = raw, path, tz

    def _get(self, key: str, default: Any) -> tuple[Any, bool]:
        value = self.raw.get(key)
        if value is None:
            if default is _REQUIRED:
                raise StateError(f"{self.path}.{key}: required")
            return default, True
        return value, False

    def _bad(self, key: str, expected: str, value: Any) -> StateError:
        return StateError(f"{self.path}.{key}: expected {expected}, got {_kind(value)}")

    def text(self, key: str, default: Any = _REQUIRED, *, empty: bool = True) -> Any:
        value, absent = self._get(key, default)
        if absent:
            return value
        if not isinstance(value, str) or (not empty and not value):
            raise self._bad(key, "a string" if empty else "a non-empty string", value)
        return value

    def integer(self, key: str, default: Any = _REQUIRED, low: int = 0,
                high: int = MAX_AMOUNT) -> Any:
        value, absent = self._get(key, default)
        if absent:
            return value
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._bad(key, "a whole number", value)
        if not low <= value <= high:
            raise StateError(f"{self.path}.{key}: {value} is out of range {low}..{high}")
        return value

    def number(self, key: str, default: Any = _REQUIRED, low: float = 0.0,
               high: float = 10 * 365 * 86400.0) -> Any:
        value, absent = self._get(key, default)
        if absent:
            return value
        if not isinstance(value, int | float) or isinstance(value, bool) \
                or not low <= value <= high:
            raise self._bad(key, f"a number from {low:g} to {high:g}", value)
        return float(value)

    def flag(self, key: str, default: Any = _REQUIRED) -> Any:
        value, absent = self._get(key, default)
        if absent:
            return value
        if not isinstance(value, bool):
            raise self._bad(key, "true or false", value)
        return value

    def time(self, key: str, default: Any = _REQUIRED) -> Any:
        value, absent = self._get(key, default)
        if absent:
            return value
        ts = _parse_time(value, self.tz)
        if ts is None:
            raise StateError(f"{self.path}.{key}: expected epoch seconds, "
                             f"'yyyy-MM-dd HH:mm:ss' or ISO 8601, got {value!r}"[:300])
        return ts

    def mapping(self, key: str) -> dict[str, Any] | None:
        value, absent = self._get(key, None)
        if absent:
            return None
        if not isinstance(value, dict):
            raise self._bad(key, "an object", value)
        return value

    def items(self, key: str) -> list[Any]:
        value, absent = self._get(key, [])
        if not absent and not isinstance(value, list):
            raise self._bad(key, "an array", value)
        return list(value)


def _parse_time(value: Any, tz: tzinfo) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        ts = float(value)
    elif isinstance(value, str):
        try:
            ts = datetime.strptime(value, TIME_FORMAT).replace(tzinfo=tz).timestamp()
        except ValueError:
            try:
                dt = datetime.fromisoformat(value)
            except ValueError:
                return None
            ts = (dt if dt.tzinfo else dt.replace(tzinfo=tz)).timestamp()
    else:
        return None
    return ts if math.isfinite(ts) and 0 <= ts <= _MAX_TIME else None


def _currency(f: _Fields, key: str, default: Any = _REQUIRED) -> Any:
    raw = f.text(key, default)
    return None if raw is None else _currency_code(raw, f"{f.path}.{key}")


def _currency_code(raw: str, path: str) -> str:
    try:
        return normalise_currency(raw)
    except CitconError as exc:
        raise StateError(f"{path}: {exc.detail or exc.text}") from None


@dataclass(slots=True)
class _Plan:
    """A restored state, complete and validated, not yet visible to anyone."""

    clock_time: float
    counter: int
    random_state: tuple[Any, ...] | None
    merchants: dict[str, Merchant]
    by_id: dict[str, Transaction]
    refunds_by_id: dict[str, Refund]
    notifications: list[Notification] = field(default_factory=list)


def _plan(sim: Simulator, data: Any, resume: bool) -> _Plan:
    tz = sim.clock.tz
    if not isinstance(data, dict):
        raise StateError(f"a snapshot is a JSON object, got {_kind(data)}")
    if "format" in data and data["format"] != FORMAT:
        raise StateError(f"format is {data['format']!r}, expected {FORMAT!r}")
    version = data.get("version")
    if version != VERSION:
        raise StateError(f"unsupported snapshot version {version!r} "
                         f"(this citcon-sim reads version {VERSION})")
    top = _Fields(data, "snapshot", tz)

    clock = _Fields(top.mapping("clock") or {}, "clock", tz)
    clock_time = clock.time("time", sim.clock.time())
    wall = clock.number("wall", None, high=_MAX_TIME)
    if resume and not sim.clock.frozen and wall is not None \
            and not clock.flag("frozen", False):
        clock_time += max(0.0, time.time() - wall)  # a running clock: downtime passes

    ids = _Fields(top.mapping("ids") or {}, "ids", tz)
    counter = ids.integer("counter", None, high=9_999_999_999)
    random_state = None
    raw_random = ids.raw.get("random")
    if raw_random is not None:
        try:
            random_state = (raw_random[0], tuple(raw_random[1]), raw_random[2])
            random.Random().setstate(random_state)  # validates it
        except (TypeError, ValueError, IndexError, KeyError, OverflowError):
            raise StateError("ids.random: not a random generator state") from None

    settings = _merchant_settings(sim, top.mapping("merchants") or {},
                                  sim.clock.day(clock_time))
    merchants: dict[str, Merchant] = {}
    by_id: dict[str, Transaction] = {}
    refunds_by_id: dict[str, Refund] = {}
    top_counter = 0
    for i, raw in enumerate(top.items("transactions")):
        txn = _transaction(raw, f"transactions[{i}]", tz)
        if txn.id in by_id:
            raise StateError(f"transactions[{i}]: id {txn.id} appears twice")
        merchant = merchants.get(txn.token)
        if merchant is None:
            merchant = merchants[txn.token] = Merchant(_settings_for(sim, settings, txn.token))
        merchant.add(txn)
        by_id[txn.id] = txn
        for refund in txn.refunds or ():
            if refund.id in refunds_by_id or refund.id in by_id:
                raise StateError(f"transactions[{i}]: refund id {refund.id} appears twice")
            refunds_by_id[refund.id] = refund
            top_counter = max(top_counter, _id_number(refund.id))
        top_counter = max(top_counter, _id_number(txn.id))
    clash = by_id.keys() & refunds_by_id.keys()
    if clash:
        raise StateError(f"id {sorted(clash)[0]} is both a transaction and a refund")
    for token, entry in settings.items():
        merchant = merchants.get(token)
        if merchant is None:
            merchant = merchants[token] = Merchant(_settings_for(sim, settings, token))
        balances = entry.get("balances")
        if balances is not None:
            merchant._balances = balances
            merchant._balance_day = entry["balance_day"]

    notifications: list[Notification] = []
    seen: set[str] = set()
    for i, raw in enumerate(top.items("ipn")):
        n = _notification(raw, f"ipn[{i}]", tz, by_id)
        if n.notify_id in seen:
            raise StateError(f"ipn[{i}]: notify_id {n.notify_id} appears twice")
        seen.add(n.notify_id)
        notifications.append(n)

    # Never hand out an id in use: a journal's snapshot predates its records' ids.
    counter = max(top_counter, sim.ledger.ids.counter if counter is None else counter)
    return _Plan(clock_time, counter, random_state, merchants, by_id, refunds_by_id,
                 notifications)


def _id_number(some_id: str) -> int:
    m = _ID_COUNTER.match(some_id)
    return int(m.group(1)) if m else 0


def _merchant_settings(sim: Simulator, raw: dict[str, Any],
                       today: int) -> dict[str, dict[str, Any]]:
    """token -> {"settings": MerchantSettings | None, "balances", "balance_day"}."""
    out: dict[str, dict[str, Any]] = {}
    for token, entry in raw.items():
        path = f"merchants[{token_hint(token)}]"
        if not token.strip():
            raise StateError("merchants: a token cannot be empty")
        f = _Fields(entry, path, sim.clock.tz)
        parsed: MerchantSettings | None = None
        given = f.mapping("settings")
        if given is not None:
            try:
                parsed = parse_merchants({"merchants": [{**given, "token": token}]},
                                         path)[token]
            except MerchantsFileError as exc:
                raise StateError(str(exc).replace(f"{path}: merchants[0]", path)) from None
        balances = f.mapping("balances")
        if balances is not None:
            bf = _Fields(balances, f"{path}.balances", sim.clock.tz)
            balances = {_currency_code(code, bf.path): bf.integer(code, low=-MAX_AMOUNT)
                        for code in balances}
        day = f.integer("balance_day", today, low=-1, high=3_652_059)
        out[token] = {"settings": parsed, "balances": balances, "balance_day": day}
    return out


def _settings_for(sim: Simulator, settings: dict[str, dict[str, Any]],
                  token: str) -> MerchantSettings:
    """Strict mode: the merchants file decides (and must list the token)."""
    if sim.ledger.strict:
        found = sim.ledger.settings.get(token)
        if found is None:
            raise StateError(f"merchant {token_hint(token)} is not in the merchants file "
                             "(strict mode)")
        return found
    entry = settings.get(token)
    given = entry["settings"] if entry else None
    return given if given is not None else MerchantSettings.lenient(token)


def _transaction(raw: Any, path: str, tz: tzinfo) -> Transaction:
    f = _Fields(raw, path, tz)
    txn_id = f.text("id", empty=False)
    path = f.path = f"{path} ({txn_id[:40]})"
    code = f.text("vendor")
    vendor = VENDORS.get(code.strip().lower())
    if vendor is None:
        raise StateError(f"{path}.vendor: unknown vendor {code!r}")
    status_raw = f.text("status", "pending")
    try:
        status = Status(status_raw)
    except ValueError:
        raise StateError(f"{path}.status: unknown status {status_raw!r} (one of "
                         f"{', '.join(s.value for s in Status)})") from None
    amount = f.integer("amount", low=1)
    currency = _currency(f, "currency")
    trans_amount = f.integer("trans_amount", amount, low=1)
    trans_currency = _currency(f, "trans_currency", currency)
    created_at = f.time("created_at")
    paid_at = f.time("paid_at", created_at if status is Status.SUCCESS else None)
    goods, extra = f.mapping("goods"), f.mapping("extra")
    txn = Transaction(
        id=txn_id, token=f.text("token", empty=False),
        reference=f.text("reference", empty=False), vendor=vendor,
        method=f.text("method", "pay_qr"), amount=amount, currency=currency,
        trans_amount=trans_amount, trans_currency=trans_currency, created_at=created_at,
        expires_at=f.time("expires_at", created_at + DEFAULT_TIMEOUT),
        auto_capture=f.flag("auto_capture", not vendor.delayed_capture),
        note=f.text("note", None), ipn_url=f.text("ipn_url", None),
        callback_url_success=f.text("callback_url_success", None),
        callback_url_fail=f.text("callback_url_fail", None),
        callback_url_cancel=f.text("callback_url_cancel", None),
        mobile_result_url=f.text("mobile_result_url", None),
        goods=goods, extra=extra or None, status=status,
        updated_at=f.time("updated_at", created_at), paid_at=paid_at,
        capture_open=f.flag("capture_open", False),
    )
    captures = []
    for i, c in enumerate(f.items("captures")):
        cf = _Fields(c, f"{path}.captures[{i}]", tz)
        captures.append(Capture(txn_id, cf.integer("amount"), currency,
                                cf.integer("trans_amount", 0), cf.time("time", created_at),
                                cf.flag("last", True)))
    paid = paid_at is not None
    txn.captures = captures or None
    txn.captured_amount = f.integer(
        "captured_amount", sum(c.amount for c in captures) if captures else amount * paid)
    txn.captured_trans_amount = f.integer(
        "captured_trans_amount",
        sum(c.trans_amount for c in captures) if captures else trans_amount * paid)
    refunds = []
    for i, r in enumerate(f.items("refunds")):
        rf = _Fields(r, f"{path}.refunds[{i}]", tz)
        rid = rf.text("id", empty=False)
        if _currency(rf, "currency", currency) != currency or \
                _currency(rf, "trans_currency", trans_currency) != trans_currency \
                or rf.text("transaction_id", txn_id) != txn_id:
            raise StateError(f"{rf.path}: currency or transaction_id differs from the "
                             "transaction's")
        refunds.append(Refund(rid, txn_id, rf.integer("amount", low=1), currency,
                              rf.integer("trans_amount", 0), trans_currency,
                              rf.time("time", created_at), rf.text("note", None),
                              rf.flag("by_cancel", False)))
    txn.refunds = refunds or None
    txn.refunded_amount = f.integer("refunded_amount", sum(r.amount for r in refunds))
    txn.refunded_trans_amount = f.integer("refunded_trans_amount",
                                          sum(r.trans_amount for r in refunds))
    if txn.refunded_amount != sum(r.amount for r in refunds):
        raise StateError(f"{path}: refunded_amount {txn.refunded_amount} is not the sum "
                         "of its refunds")
    if not txn.refunded_amount <= txn.captured_amount <= amount:
        raise StateError(f"{path}: needs refunded_amount ({txn.refunded_amount}) <= "
                         f"captured_amount ({txn.captured_amount}) <= amount ({amount})")
    if not txn.refunded_trans_amount <= txn.captured_trans_amount <= trans_amount:
        raise StateError(f"{path}: needs refunded_trans_amount <= captured_trans_amount "
                         "<= trans_amount")
    if refunds and status is not Status.SUCCESS and status is not Status.CANCELLED:
        raise StateError(f"{path}: a {status.value} transaction cannot have refunds")
    events = []
    for i, e in enumerate(f.items("events")):
        if not (isinstance(e, list) and len(e) == 3 and isinstance(e[1], str)
                and (e[2] is None or isinstance(e[2], dict))):
            raise StateError(f"{path}.events[{i}]: expected [time, event, detail or null]")
        at = _parse_time(e[0], tz)
        if at is None:
            raise StateError(f"{path}.events[{i}]: bad time {e[0]!r}"[:300])
        events.append((at, e[1], e[2]))
    txn.events = events or None
    script = f.mapping("script")
    if script is not None:
        txn.script = _script(script, f"{path}.script", tz)
    return txn


def _script(raw: dict[str, Any], path: str, tz: tzinfo) -> Rule:
    f = _Fields(raw, path, tz)
    payment = ipn = None
    p = f.mapping("payment")
    if p is not None:
        pf = _Fields(p, f"{path}.payment", tz)
        outcome = pf.text("outcome")
        if outcome not in _OUTCOMES:
            raise StateError(f"{pf.path}.outcome: one of {', '.join(sorted(_OUTCOMES))}")
        payment = PaymentScript(outcome, pf.number("after", 0.0),
                                pf.text("reason", "declined"))
    i = f.mapping("ipn")
    if i is not None:
        f2 = _Fields(i, f"{path}.ipn", tz)
        ipn = _ipn_script(f2)
    return Rule(name=f.text("name", "restored"), source=f.text("source", "<state>"),
                line=f.integer("line", None, high=10**9), payment=payment, ipn=ipn)


def _ipn_script(f: _Fields) -> IpnScript:
    return IpnScript(
        delay=f.number("delay", 0.0), never=f.flag("never", False),
        duplicates=f.integer("duplicates", 0, high=100),
        out_of_order=f.flag("out_of_order", False),
        bad_signature=f.flag("bad_signature", False),
        tamper_amount=f.integer("tamper_amount", 0, low=-MAX_AMOUNT),
        status=f.text("status", None),
    )


def _notification(raw: Any, path: str, tz: tzinfo,
                  by_id: dict[str, Transaction]) -> Notification:
    f = _Fields(raw, path, tz)
    nid = f.text("notify_id", empty=False)
    path = f.path = f"{path} ({nid[:40]})"
    txn_id = f.text("transaction_id")
    txn = by_id.get(txn_id)
    if txn is None:
        raise StateError(f"{path}.transaction_id: no transaction {txn_id[:40]!r} in the "
                         "snapshot")
    form = f.mapping("form") or {}
    if not all(isinstance(v, str) for v in form.values()):
        raise StateError(f"{path}.form: values must be strings")
    state = f.text("state", PENDING)
    if state not in _STATES:
        raise StateError(f"{path}.state: one of {', '.join(sorted(_STATES))}")
    script = f.mapping("script")
    attempts = []
    for i, a in enumerate(f.items("attempts")):
        af = _Fields(a, f"{path}.attempts[{i}]", tz)
        attempt = Attempt(
            number=af.integer("number", i + 1, high=10**6),
            trigger=af.text("trigger", "first"), at=af.time("at"),
            status=af.integer("status", None, low=100, high=999),
            error=af.text("error", None), body=af.text("body", ""),
            latency_ms=af.number("latency_ms", None, high=1e9), sent=af.flag("sent", True),
        )
        if attempt.sent and attempt.status is None and attempt.error is None:
            attempt.error = "interrupted: the simulator stopped before the answer"
        attempts.append(attempt)
    return Notification(
        notify_id=nid, transaction_id=txn_id, token=txn.token,
        event=f.text("event", "paid"), url=f.text("url", None), form=form,
        created_at=f.time("created_at", txn.paid_at or txn.created_at), state=state,
        script=None if script is None else _ipn_script(_Fields(script, f"{path}.script", tz)),
        attempts=attempts, retries_used=f.integer("retries_used", 0, high=1000),
        next_attempt_at=f.time("next_attempt_at", None),
        follow_ups_sent=f.flag("follow_ups_sent", False),
    )


def restore(sim: Simulator, data: Any, *, resume: bool = False,
            exact_ids: bool = True) -> dict[str, Any]:
    """Replace the whole simulator state with ``data`` (a snapshot).

    Raises :class:`StateError`, leaving the simulator untouched, when ``data`` is not a
    usable snapshot. ``resume`` (the journal at start-up) lets a running clock catch up
    with the downtime; without ``exact_ids`` the id generator is reseeded rather than
    restored (its saved state is older than the ids already handed out).
    """
    plan = _plan(sim, data, resume)
    _commit(sim, plan, exact_ids)
    if sim.persistence is not None:
        sim.persistence.compact()  # the imported state becomes the file's new base
    return {
        "transactions": len(plan.by_id),
        "refunds": len(plan.refunds_by_id),
        "merchants": len(plan.merchants),
        "notifications": len(plan.notifications),
        "clock": sim.clock.iso(sim.clock.time()),
    }


def _commit(sim: Simulator, plan: _Plan, exact_ids: bool) -> None:
    """Swap the plan in: plain assignments and dict updates, nothing that can fail."""
    ledger, ipn, scheduler = sim.ledger, sim.ipn, sim.scheduler
    scheduler.clear()  # old scripted payments and IPN retries
    ipn.reset()
    queue = ipn._queue  # sends queued for the old world
    while not queue.empty():
        item = queue.get_nowait()
        queue.task_done()
        if item.waiter is not None and not item.waiter.done():
            item.waiter.cancel()
    sim.journal.clear()
    ledger.merchants.clear()
    ledger.merchants.update(plan.merchants)
    ledger.by_id.clear()
    ledger.by_id.update(plan.by_id)
    ledger.refunds_by_id.clear()
    ledger.refunds_by_id.update(plan.refunds_by_id)
    seed = sim.config.seed
    ledger.ids.load_state(
        plan.counter, plan.random_state if exact_ids else None,
        reseed=None if seed is None else f"{seed}:{plan.counter}",
    )
    sim.clock.jump_to(plan.clock_time)
    # Scripted payments still due, at the virtual time they were due.
    for txn in plan.by_id.values():
        script = txn.script.payment if txn.script is not None else None
        if script is not None and script.after > 0 and script.outcome != "pending" \
                and txn.status is Status.PENDING:
            scheduler.at(txn.created_at + script.after,
                         functools.partial(sim._play, txn, script),
                         f"{script.outcome} {txn.id}")
    stats = ipn.stats
    for n in plan.notifications:
        ipn.notifications[n.notify_id] = n
        ipn._by_txn.setdefault(n.transaction_id, []).append(n.notify_id)
        stats["notifications"] += 1
        stats["delivered"] += n.state == DELIVERED
        stats["failed"] += n.state == FAILED
        stats["retries_scheduled"] += n.retries_used
        for a in n.attempts:
            stats["attempts"] += a.sent
            stats["queue_full"] += not a.sent
    for n in plan.notifications:
        if n.state not in (PENDING, RETRYING) or n.url is None:
            continue
        trigger = "first" if n.state == PENDING else "retry"
        if n.next_attempt_at is None:
            ipn._enqueue(n, trigger)  # it was queued, or in flight, when saved
        else:
            n.retry_job = scheduler.at(n.next_attempt_at,
                                       functools.partial(ipn._enqueue, n, trigger),
                                       f"ipn {n.notify_id} {trigger}")
    ipn._trim()


# -- the --state journal -----------------------------------------------------------------


class StateFile:
    """``--state FILE``: load and replay at start, then journal every change.

    See the module docstring for the format and the durability it gives.
    """

    min_records = 10_000  # compaction threshold floor (records since the last compaction)

    def __init__(self, sim: Simulator, path: Path) -> None:
        self.sim = sim
        self.path = path
        self.fd = -1
        self.records = 0
        self.threshold = self.min_records
        self.compactions = 0
        self._compact_pending = False

    @classmethod
    def open(cls, sim: Simulator, path: str | Path) -> StateFile:
        """Lock, load and replay ``path`` (if any), compact it, then start journaling."""
        self = cls(sim, Path(path))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = self._open_locked()
        except OSError as exc:
            raise StateError(f"{self.path}: cannot open: {exc.strerror or exc}") from None
        try:
            loaded = self._load()
            if loaded is not None:
                data, records, journal = loaded
                # A journal resumes (a running clock catches up with the downtime); a
                # snapshot file is imported as it is, like PUT /_sim/state.
                restore(sim, data, resume=journal, exact_ids=records == 0)
                log.info("state restored from %s: %d transaction(s), %d notification(s), "
                         "%d journal record(s) replayed", self.path, len(sim.ledger.by_id),
                         len(sim.ipn.notifications), records)
            self.compact()
        except OSError as exc:
            self.close()
            raise StateError(f"{self.path}: cannot write: {exc.strerror or exc}") from None
        except BaseException:
            self.close()
            raise
        sim.ledger.listeners.append(self.on_ledger_event)
        sim.ipn.on_change = self.on_ipn_change
        return self

    def _open_locked(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise StateError(f"{self.path}: in use by another citcon-sim") from None
        return fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # also releases the lock
            self.fd = -1

    # -- loading ---------------------------------------------------------------------------

    def _load(self) -> tuple[dict[str, Any], int, bool] | None:
        """The state the file describes, how many records followed its snapshot, and
        whether it is a journal (else a plain snapshot)."""
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        if not raw.strip():
            return None  # a new file: start from the configuration
        lines = raw.split(b"\n")
        first = _json_line(lines[0])
        if not (isinstance(first, dict) and first.get("k") == "snapshot"):
            # Not a journal: a snapshot saved from GET /_sim/state starts the file.
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError):
                data = None
            if not isinstance(data, dict) or "version" not in data:
                raise StateError(f"{self.path}: not a citcon-sim state file (neither a "
                                 "state journal nor a snapshot); refusing to overwrite it")
            return data, 0, False
        return (*self._replay(first.get("data"), lines[1:]), True)

    def _replay(self, base: Any, lines: list[bytes]) -> tuple[dict[str, Any], int]:
        if not isinstance(base, dict):
            raise StateError(f"{self.path}: the first line holds no snapshot")
        data = dict(base)
        txns: dict[str, Any] = {}
        notes: dict[str, Any] = {}
        merchants: dict[str, Any] = {}

        def rebase(snap: dict[str, Any]) -> None:
            data.clear()
            data.update(snap)
            txns.clear()
            notes.clear()
            merchants.clear()
            for t in snap.get("transactions") or ():
                if isinstance(t, dict):
                    txns[str(t.get("id"))] = t
            for n in snap.get("ipn") or ():
                if isinstance(n, dict):
                    notes[str(n.get("notify_id"))] = n
            merchants.update(snap.get("merchants") or {})

        rebase(base)
        applied = skipped = 0
        last = len(lines) - 1
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            rec = _json_line(line)
            if not isinstance(rec, dict):
                if number == last:
                    log.warning("%s: ignoring a torn last line (%d bytes)", self.path, len(line))
                else:
                    skipped += 1
                continue
            kind = rec.get("k")
            if kind == "txn" and isinstance(rec.get("t"), dict):
                t = rec["t"]
                txns[t.get("id")] = t
                b = rec.get("b")
                if isinstance(b, list) and len(b) == 2:
                    entry = merchants.setdefault(t.get("token"), {})
                    entry["balance_day"], entry["balances"] = b
            elif kind == "ipn" and isinstance(rec.get("n"), dict):
                notes[rec["n"].get("notify_id")] = rec["n"]
            elif kind == "clock":
                data["clock"] = rec
            elif kind == "reset":
                token = rec.get("token")
                doomed = {i for i, t in txns.items() if token is None or t.get("token") == token}
                for i in doomed:
                    del txns[i]
                for nid in [k for k, n in notes.items() if n.get("transaction_id") in doomed]:
                    del notes[nid]
                if token is None:
                    merchants.clear()
                else:
                    merchants.pop(token, None)
            elif kind == "snapshot" and isinstance(rec.get("data"), dict):
                rebase(rec["data"])
            else:
                skipped += 1
                continue
            applied += 1
        if skipped:
            log.warning("%s: skipped %d unreadable journal line(s)", self.path, skipped)
        data["transactions"] = list(txns.values())
        data["ipn"] = list(notes.values())
        data["merchants"] = merchants
        return data, applied

    # -- writing ---------------------------------------------------------------------------

    def _append(self, record: dict[str, Any]) -> None:
        data = (_encode(record) + "\n").encode()
        written = os.write(self.fd, data)
        while written < len(data):  # a short write (disk nearly full): finish the line
            written += os.write(self.fd, data[written:])
        self.records += 1
        if self.records >= self.threshold and not self._compact_pending:
            self._schedule_compaction()

    def on_ledger_event(self, event: LedgerEvent) -> None:
        txn = event.transaction
        record: dict[str, Any] = {"k": "txn", "t": txn_dict(txn)}
        merchant = self.sim.ledger.merchants.get(txn.token)
        if merchant is not None:
            record["b"] = [merchant._balance_day, merchant._balances]
        self._append(record)

    def on_ipn_change(self, n: Notification) -> None:
        self._append({"k": "ipn", "n": notification_dict(n)})

    def clock_moved(self) -> None:
        self._append({"k": "clock", **_clock_dict(self.sim)})

    def reset(self, token: str | None) -> None:
        if token is None:
            self.compact()  # nothing is left: the file starts over
        else:
            self._append({"k": "reset", "token": token})

    def _schedule_compaction(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.compact()
            return
        self._compact_pending = True
        loop.call_soon(self._compact_soon)

    def _compact_soon(self) -> None:
        self._compact_pending = False
        if self.fd < 0:
            return
        try:
            self.compact()
        except OSError:
            log.exception("compacting %s failed; the journal keeps growing", self.path)
            self.threshold = self.records + self.min_records

    def compact(self) -> None:
        """Rewrite the file as one snapshot line (temp file, fsync, atomic rename)."""
        state = snapshot(self.sim)
        line = (_encode({"k": "snapshot", "data": state}) + "\n").encode()
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)  # the rename must never expose an empty file, even on power loss
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        old, self.fd = self.fd, -1
        try:
            self.fd = self._open_locked()
        finally:
            if old >= 0:
                with contextlib.suppress(OSError):
                    os.close(old)
        self.records = 0
        self.compactions += 1
        size = len(state["transactions"]) + len(state["ipn"])
        self.threshold = max(self.min_records, 2 * size)


def _json_line(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None
