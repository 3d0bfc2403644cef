"""The versioned JSON snapshot of the simulator (``GET``/``PUT /_sim/state``).

One JSON object, ``{"format": "citcon-sim-state", "version": 1, "clock", "ids",
"merchants", "transactions", "ipn"}``. Transactions carry everything (refunds, captures,
timeline, goods, extra, the scenario script), the vendor by code, times as epoch seconds.

Export (:func:`snapshot`) reads the objects' public exports (``Ledger.export``,
``IpnSender.export``, ``VirtualClock.export``) and maps them to JSON values. Derived data
is not stored: the reference index, ``refunds_by_id``, the scheduler's jobs and the IPN
statistics are rebuilt by the objects that own them on load. :func:`write_snapshot`
writes the same document piece by piece (``GET /_sim/state``, the --state compaction):
memory holds one transaction's encoding, not the whole state.

Import (:func:`restore`) validates the JSON (types, vendor codes, currencies, unique ids,
refunded <= captured <= amount, merchants known in strict mode; every error names its
path, e.g. ``transactions[1] (U0000000103-…).amount``) and builds a FRESH ledger
(``Ledger.load``) and IPN log aside; only then does it set the clock and hand both to
``Simulator.install``, the same step a full reset takes, which swaps them in with plain
assignments and reschedules scripted payments and IPN sends still due at their original
virtual times. So a bad snapshot is a :class:`StateError` (400 at the HTTP layer) and the
live state is unchanged, and the swap cannot fail halfway. Importing replaces the whole
state (pending jobs and the request journal are cleared too). For hand-written fixtures
most fields are optional (derived defaults) and times may also be ``yyyy-MM-dd HH:mm:ss``
(simulator zone) or ISO 8601 strings.

The validator is hand-written rather than a schema library's (msgspec, say): the format's
defaults depend on other fields (``trans_amount`` on ``amount``, ``paid_at`` on the
status, captured amounts on the captures), times come in three spellings, and the error
messages, which name the transaction in the path, are part of the contract
(tests/test_state.py). The export shapes (``LedgerExport`` …) are plain dataclasses for
the same reason the domain has no third-party imports.

The transaction's scenario rule is persisted as data (name, source, line and its
``payment``/``ipn`` parts — the only parts used after creation), not as a reference into
the loaded scenario files: a restored transaction behaves as scripted even if the
scenario is no longer loaded, and a fixture is self-contained.

Clock: an import sets the saved time exactly, in either mode, so a fixture is
reproducible; the mode itself (frozen or running) is the server's. A time outside the
range ``--start-time`` and clock moves keep (``config.EARLIEST_TIME`` to
``LATEST_TIME``, year 9900) is refused as ``clock.time``. A journal replay
(``resume``) lets a running clock keep its lead or lag over wall time, so the downtime
passes (``ClockExport.resumed``). Ids continue after the highest one in use; the id
generator's exact state is restored from a snapshot (same ids as before the export), and
reseeded (from ``--seed`` and the counter) after a journal replay — the snapshot's state
predates the ids handed out since, and replaying it would repeat their ``notify_id``s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

import msgspec

from citcon_sim.config import EARLIEST_TIME, LATEST_TIME
from citcon_sim.delivery.ipn import (
    DELIVERED,
    FAILED,
    NOT_SENT,
    PENDING,
    RETRYING,
    SUPPRESSED,
    Attempt,
    IpnExport,
    Notification,
)
from citcon_sim.domain.clock import TIME_FORMAT, ClockExport
from citcon_sim.domain.commands import DEFAULT_TIMEOUT, MAX_AMOUNT
from citcon_sim.domain.errors import CitconError, StateError
from citcon_sim.domain.events import StateRestored
from citcon_sim.domain.ids import IdFactory, IdsExport
from citcon_sim.domain.ledger import (
    Capture,
    Ledger,
    LedgerExport,
    MerchantExport,
    Refund,
    Status,
    Transaction,
)
from citcon_sim.domain.merchants import MerchantSettings, MerchantsFileError, parse_merchants
from citcon_sim.domain.money import normalise_currency
from citcon_sim.domain.redaction import token_hint
from citcon_sim.domain.scripts import (
    MAX_DUPLICATES,
    MAX_SCRIPT_SECONDS,
    MAX_TAMPER,
    IpnScript,
    PaymentScript,
    Rule,
)
from citcon_sim.domain.vendors import FACES, VENDORS

if TYPE_CHECKING:
    from citcon_sim.simulator import Simulator

FORMAT = "citcon-sim-state"
VERSION = 1
_STATES = frozenset({PENDING, RETRYING, DELIVERED, FAILED, NOT_SENT, SUPPRESSED})
_OUTCOMES = frozenset({"pay", "fail", "expire", "pending", "authorize"})
_ID_COUNTER = re.compile(r"^U(\d{10})-")
_MAX_TIME = 253402300799.0  # 9999-12-31 23:59:59 UTC


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
        "face": t.face,  # the API that created it: its ids and the format of its IPN
    }
    if t.refunds:
        d["refunds"] = [
            {"id": r.id, "amount": r.amount, "trans_amount": r.trans_amount, "time": r.time,
             "note": r.note, "by_cancel": r.by_cancel,
             **({"reference": r.reference} if r.reference is not None else {})}
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
    return None if obj is None else {k: getattr(obj, k) for k in obj.__struct_fields__}


def notification_dict(n: Notification) -> dict[str, Any]:
    return {
        "notify_id": n.notify_id, "transaction_id": n.transaction_id, "event": n.event,
        "url": n.url, "form": n.form, "encoding": n.encoding, "created_at": n.created_at,
        "state": n.state,
        "script": _slots(n.script), "retries_used": n.retries_used,
        "next_attempt_at": n.next_attempt_at, "follow_ups_sent": n.follow_ups_sent,
        "attempts": [
            {"number": a.number, "trigger": a.trigger, "at": a.at, "status": a.status,
             "error": a.error, "body": a.body, "latency_ms": a.latency_ms, "sent": a.sent,
             "via": a.via}
            for a in n.attempts
        ],
    }


def clock_dict(sim: Simulator) -> dict[str, Any]:
    clock = sim.clock.export()
    return {"time": clock.time, "wall": clock.wall, "frozen": clock.frozen,
            "iso": sim.clock.iso(clock.time), "timezone": sim.config.timezone}


def _header(sim: Simulator, ledger: LedgerExport) -> dict[str, Any]:
    ids = ledger.ids
    return {
        "format": FORMAT,
        "version": VERSION,
        "clock": clock_dict(sim),
        "ids": {"counter": ids.counter,
                "random": None if ids.random is None else
                [ids.random[0], list(ids.random[1]), ids.random[2]]},
    }


def _merchant_dict(m: MerchantExport) -> dict[str, Any]:
    return {"settings": _settings_dict(m.settings), "balance_day": m.balance_day,
            "balances": m.balances}


def snapshot(sim: Simulator) -> dict[str, Any]:
    """The whole simulator state as one JSON-ready dict (raw: nothing is refreshed).

    Holds the whole state at once: exports use :func:`write_snapshot`, which streams."""
    ledger = sim.ledger.export()
    return {
        **_header(sim, ledger),
        "merchants": {token: _merchant_dict(m) for token, m in ledger.merchants.items()},
        "transactions": [txn_dict(t) for t in ledger.transactions],
        "ipn": [notification_dict(n) for n in sim.ipn.export().notifications],
    }


# Unknown leaf types (none today) become strings, as with json's default=str.
_ENCODER = msgspec.json.Encoder(enc_hook=str)


def write_snapshot(sim: Simulator, write: Callable[[bytes], object], *,
                   pretty: bool = False) -> tuple[int, int]:
    """Write :func:`snapshot`'s JSON document piece by piece: the header, then each
    merchant, transaction and notification encoded on its own, so memory holds one
    transaction's encoding at a time, never the whole state (2,000 transactions with
    60 KB of goods were 120 MB of JSON, built three times over in memory).

    Synchronous on purpose: nothing else runs in between, so the document is the state
    of one instant (a caller that must await streams from what this wrote, see
    ``web.state_routes``). ``pretty`` indents by two spaces. Returns the number of
    transactions and of notifications written.
    """
    encode = _ENCODER.encode

    def enc(value: Any, depth: int) -> bytes:
        if not pretty:
            return encode(value)
        # No name holds the compact encoding: it is freed before the indented copy is made.
        formatted = msgspec.json.format(encode(value), indent=2)
        return formatted.replace(b"\n", b"\n" + b"  " * depth)

    nl = (lambda depth: b"\n" + b"  " * depth) if pretty else (lambda depth: b"")
    colon = b": " if pretty else b":"

    def key(name: str) -> bytes:
        return nl(1) + encode(name) + colon

    def members(name: str, values: Iterable[tuple[str | None, Any]], brackets: bytes) -> int:
        write(b"," + key(name) + brackets[:1])
        count = 0
        for member, value in values:
            label = b"" if member is None else encode(member) + colon
            write((b"," if count else b"") + nl(2) + label)
            write(enc(value, 2))  # on its own: no copy of the largest piece
            count += 1
        write((nl(1) if count else b"") + brackets[1:])
        return count

    ledger = sim.ledger.export()
    header = _header(sim, ledger)
    write(b"{" + b",".join(key(k) + enc(v, 1) for k, v in header.items()))
    members("merchants", ((token, _merchant_dict(m)) for token, m in ledger.merchants.items()),
            b"{}")
    txns = members("transactions", ((None, txn_dict(t)) for t in ledger.transactions), b"[]")
    notes = members("ipn", ((None, notification_dict(n))
                            for n in sim.ipn.export().notifications), b"[]")
    write(nl(0) + b"}")
    return txns, notes


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


class _Plan(msgspec.Struct):
    """A restored state, complete and validated, not yet visible to anyone."""

    clock: ClockExport
    ledger: Ledger
    notifications: list[Notification]


def _plan(sim: Simulator, data: Any, resume: bool, exact_ids: bool) -> _Plan:
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

    cf = _Fields(top.mapping("clock") or {}, "clock", tz)
    clock = ClockExport(cf.time("time", sim.clock.time()), cf.flag("frozen", False),
                        cf.number("wall", None, high=_MAX_TIME))
    if resume:
        clock = clock.resumed(sim.clock.frozen)  # a running clock: the downtime passes
    if not EARLIEST_TIME.timestamp() <= clock.time < LATEST_TIME.timestamp():
        # The bound --start-time and clock moves keep: past it, times computed from now
        # (expiry, retries, windows) could not be formatted and every answer would fail.
        raise StateError(f"clock.time: {_iso(clock.time)} is outside the supported range "
                         f"({EARLIEST_TIME:%Y-%m-%d} to {LATEST_TIME:%Y-%m-%d})")

    ids = _Fields(top.mapping("ids") or {}, "ids", tz)
    counter = ids.integer("counter", None, high=9_999_999_999)
    random_state = None
    raw_random = ids.raw.get("random")
    if raw_random is not None:
        try:
            random_state = (raw_random[0], tuple(raw_random[1]), raw_random[2])
            IdFactory.load(IdsExport(0, random_state))  # validates it
        except (TypeError, ValueError, IndexError, KeyError, OverflowError):
            raise StateError("ids.random: not a random generator state") from None

    settings = _merchant_settings(sim, top.mapping("merchants") or {}, sim.clock.day(clock.time))
    merchants: dict[str, MerchantExport] = {}
    transactions: list[Transaction] = []
    seen_ids: set[str] = set()
    refund_ids: set[str] = set()
    top_counter = 0
    for i, raw in enumerate(top.items("transactions")):
        txn = _transaction(raw, f"transactions[{i}]", tz)
        if txn.id in seen_ids:
            raise StateError(f"transactions[{i}]: id {txn.id} appears twice")
        if txn.token not in merchants:
            merchants[txn.token] = _merchant(sim, settings, txn.token)
        seen_ids.add(txn.id)
        transactions.append(txn)
        for refund in txn.refunds or ():
            if refund.id in refund_ids or refund.id in seen_ids:
                raise StateError(f"transactions[{i}]: refund id {refund.id} appears twice")
            refund_ids.add(refund.id)
            top_counter = max(top_counter, _id_number(refund.id))
        top_counter = max(top_counter, _id_number(txn.id))
    clash = seen_ids & refund_ids
    if clash:
        raise StateError(f"id {sorted(clash)[0]} is both a transaction and a refund")
    for token in settings:
        if token not in merchants:
            merchants[token] = _merchant(sim, settings, token)

    notifications: list[Notification] = []
    by_id = {t.id: t for t in transactions}
    seen: set[str] = set()
    for i, raw in enumerate(top.items("ipn")):
        n = _notification(raw, f"ipn[{i}]", tz, by_id)
        if n.notify_id in seen:
            raise StateError(f"ipn[{i}]: notify_id {n.notify_id} appears twice")
        seen.add(n.notify_id)
        notifications.append(n)

    # Never hand out an id in use: a journal's snapshot predates its records' ids.
    counter = max(top_counter, sim.ledger.ids.counter if counter is None else counter)
    seed = sim.config.seed
    ids_factory = IdFactory.load(IdsExport(counter, random_state if exact_ids else None),
                                 reseed=None if seed is None else f"{seed}:{counter}")
    current = sim.ledger
    try:
        ledger = Ledger.load(LedgerExport(ids_factory.export(), merchants, transactions),
                             sim.clock, fx=current.fx, ids=ids_factory,
                             merchants=current.settings if current.strict else None)
    except ValueError as exc:  # checked above with a path; kept as a safety net
        raise StateError(str(exc)) from None
    return _Plan(clock, ledger, notifications)


def _iso(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat()
    except (ValueError, OverflowError, OSError):  # past year 9999 (a resumed clock)
        return f"{ts:.0f} (epoch seconds)"


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


def _merchant(sim: Simulator, settings: dict[str, dict[str, Any]],
              token: str) -> MerchantExport:
    entry = settings.get(token)
    found = _settings_for(sim, entry, token)
    if entry is None or entry["balances"] is None:
        return MerchantExport(found)
    return MerchantExport(found, entry["balance_day"], entry["balances"])


def _settings_for(sim: Simulator, entry: dict[str, Any] | None,
                  token: str) -> MerchantSettings:
    """Strict mode: the merchants file decides (and must list the token)."""
    if sim.ledger.strict:
        found = sim.ledger.settings.get(token)
        if found is None:
            raise StateError(f"merchant {token_hint(token)} is not in the merchants file "
                             "(strict mode)")
        return found
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
    face = f.text("face", "online")  # older snapshots: every payment was the Online API's
    if face not in FACES:
        raise StateError(f"{path}.face: unknown API face {face!r} (one of "
                         f"{', '.join(sorted(FACES))})")
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
        capture_open=f.flag("capture_open", False), face=face,
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
                              rf.flag("by_cancel", False), rf.text("reference", None)))
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
        payment = PaymentScript(
            outcome, pf.number("after", 0.0, high=MAX_SCRIPT_SECONDS),
            pf.text("reason", "declined"),
            late_confirm=pf.number("late_confirm", None, high=MAX_SCRIPT_SECONDS),
            paid_twice=pf.flag("paid_twice", False))
    i = f.mapping("ipn")
    if i is not None:
        f2 = _Fields(i, f"{path}.ipn", tz)
        ipn = _ipn_script(f2)
    return Rule(name=f.text("name", "restored"), source=f.text("source", "<state>"),
                line=f.integer("line", None, high=10**9), payment=payment, ipn=ipn)


def _ipn_script(f: _Fields) -> IpnScript:
    return IpnScript(
        delay=f.number("delay", 0.0, high=MAX_SCRIPT_SECONDS), never=f.flag("never", False),
        duplicates=f.integer("duplicates", 0, high=MAX_DUPLICATES),
        out_of_order=f.flag("out_of_order", False),
        bad_signature=f.flag("bad_signature", False),
        tamper_amount=f.integer("tamper_amount", 0, low=-MAX_TAMPER, high=MAX_TAMPER),
        status=f.text("status", None),
        amount_differs=f.integer("amount_differs", 0, low=-MAX_TAMPER, high=MAX_TAMPER),
        before_answer=f.flag("before_answer", False),
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
    encoding = f.text("encoding", "form")
    if encoding not in ("form", "json"):
        raise StateError(f"{path}.encoding: form or json")
    plain = (str,) if encoding == "form" else (str, int, float)
    if not all(isinstance(v, plain) and not isinstance(v, bool) for v in form.values()):
        raise StateError(f"{path}.form: values must be strings"
                         + ("" if encoding == "form" else " or numbers"))
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
            via=af.text("via", None),
        )
        if attempt.sent and attempt.status is None and attempt.error is None:
            attempt.error = "interrupted: the simulator stopped before the answer"
        attempts.append(attempt)
    return Notification(
        notify_id=nid, transaction_id=txn_id, token=txn.token,
        event=f.text("event", "paid"), url=f.text("url", None), form=form,
        encoding="json" if encoding == "json" else "form",
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
    plan = _plan(sim, data, resume, exact_ids)
    # The swap: a clock setting and plain assignments, nothing that can fail halfway.
    sim.clock.load(plan.clock)
    sim.install(plan.ledger, IpnExport(plan.notifications))
    if sim.persistence is not None:
        sim.persistence.rebase()  # the imported state becomes the file's new base
    sim.events.publish(StateRestored())
    ledger = plan.ledger
    return {
        "transactions": len(ledger.by_id),
        "refunds": len(ledger.refunds_by_id),
        "merchants": len(ledger.merchants),
        "notifications": len(plan.notifications),
        "clock": sim.clock.iso(sim.clock.time()),
    }
