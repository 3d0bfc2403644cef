"""The ``--state FILE`` journal (:class:`StateFile`): the state kept across restarts.

An append-only file of JSON lines. The first line is a full snapshot
(:mod:`citcon_sim.persistence.snapshot`); each following line is one change: ``txn`` (the
transaction's FULL current state plus its merchant's open balance; written on every
ledger event), ``ipn`` (a notification's full state, after it is recorded and after every
attempt), ``clock`` (after every advance) and ``reset`` (one merchant; a full reset
rewrites the file). Replay keeps the last record per id, so records are idempotent and
need no sequence numbers.

Durability. Each record is ONE ``os.write`` on an ``O_APPEND`` descriptor, made inside
the ledger call that changed the state — that is, before the HTTP answer is sent. The
data is then in the kernel's page cache, which survives the death of the process
(``kill -9``, OOM killer, a crash), so every acknowledged operation survives it. There is
no ``fsync`` per record: a power loss or kernel crash may lose the last records (the file
is for tests and demos, and an fsync per request would cost more than the request).

Crash cuts. The journal subscribes FIRST to every event it records, so a change is on
disk before any other handler reacts to it with changes of its own: a transaction's
record always precedes the IPN record that refers to it (the IPN sender records a
notification inside the ledger's ``paid`` event). Any prefix of the file a crash can
leave starts: a torn last record is dropped with a warning, and a record whose referent
is missing (an IPN record of a transaction forgotten by a per-merchant reset, or cut
off) is dropped with a warning; it belongs to no acknowledged operation.

Failed writes (disk full, I/O error). The write is part of the operation, so the
operation fails (503, the face's error shape) — but the change is already in memory and
cannot be undone in general (a payment, its balance, its scripted follow-ups). So, as
PostgreSQL does on a failed WAL write, the simulator stops serving: the file is cut back
to its last complete record (nothing later is torn or lost), nothing more is written, and
every request is answered 503 (``Unavailable``) until a restart, which replays the file:
the failed change is absent, as its caller was told. ``StateFile.failure`` holds the
error; the web layer's one check is ``citcon_sim.faces.middleware.halted``.

On start the file is read (a torn last line is ignored), replayed, then compacted: a fresh
snapshot line is written to ``FILE.tmp``, fsynced, and atomically ``os.replace``d over the
file. Compaction also runs when the records since the last one exceed twice the number of
objects in the state (at least :attr:`StateFile.min_records`) — amortised O(1) per record —
right after the current event-loop callback, so it never sees a half-applied operation. A
full reset or a ``PUT /_sim/state`` compacts at once. Without ``--state`` nothing here
runs: no subscription, no serialisation.

Why JSON lines and not sqlite3: the whole state lives in memory and is rebuilt from the
file at start either way, so a database's queries would buy nothing; a record is one
``write`` of one encoded line, where an sqlite commit (even with ``synchronous=OFF``)
runs its locking, journal and B-tree page writes per request; a snapshot saved from
``GET /_sim/state`` is itself a valid ``--state`` file (it becomes the journal's first
line); and existing state files, which are JSON lines, keep loading without a migration.

Clock on restart: a frozen clock resumes at exactly its saved time; a running clock keeps
its lead or lag over wall time (advances included), so the downtime passes as it would for
a real gateway (pending payments may expire). A snapshot file given as ``--state`` sets
the saved time exactly; ``--start-time`` only applies to a new state file.

Not persisted: scenarios loaded at run time and the rules' ``nth``/``times`` counters
(reload them, or pass ``--scenario`` again), the request journal (``/_sim/requests``), IPN
sends in flight at a crash (sent again after restart: at-least-once, same ``notify_id``).
The file holds merchant tokens in clear (it must, to restore merchants); it is created
mode 0600 and locked against a second simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from citcon_sim.domain.errors import StateError, Unavailable
from citcon_sim.domain.events import ClockMoved, IpnChanged, Reset, TransactionChanged
from citcon_sim.persistence.snapshot import (
    clock_dict,
    notification_dict,
    restore,
    txn_dict,
    write_snapshot,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock against a second process
    fcntl = None  # type: ignore[assignment]

# Compaction joins pieces smaller than _DIRECT into writes of about _WRITE_CHUNK bytes.
_WRITE_CHUNK = 1 << 16
_DIRECT = 1 << 12

if TYPE_CHECKING:
    from citcon_sim.simulator import Simulator

log = logging.getLogger("citcon_sim.state")

# Records are fresh trees of plain values (no cycles): skip the circular-reference check.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False,
                           default=str).encode


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
        self.size = 0  # bytes of complete records in the file: where a failed write is cut
        # Set once a write failed: the simulator then stops serving (module docstring).
        self.failure: Unavailable | None = None

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
        subscribe(sim, self)
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
        if first is None and lines[0].startswith(b'{"k":"snapshot"'):
            # Not a crash cut: the snapshot line is only ever written whole (a renamed
            # file). Starting empty would then overwrite what is left: refuse.
            raise StateError(f"{self.path}: its first line (the snapshot) is incomplete: "
                             "the file was damaged; refusing to overwrite it")
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
        orphans = [nid for nid, n in notes.items()
                   if not isinstance(n, dict) or n.get("transaction_id") not in txns]
        if orphans:  # cut off with its transaction, or of a merchant reset since
            log.warning("%s: dropped %d IPN record(s) of transactions not in the file",
                        self.path, len(orphans))
            for nid in orphans:
                del notes[nid]
        data["transactions"] = list(txns.values())
        data["ipn"] = list(notes.values())
        data["merchants"] = merchants
        return data, applied

    # -- writing ---------------------------------------------------------------------------

    def _append(self, record: dict[str, Any]) -> None:
        if self.failure is not None:
            raise self.failure  # memory and file differ now: never write past the gap
        data = (_encode(record) + "\n").encode()
        try:
            view = memoryview(data)
            while view:  # a short write (disk nearly full): finish the line
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            self._fail(exc)
        self.size += len(data)
        self.records += 1
        if self.records >= self.threshold and not self._compact_pending:
            self._schedule_compaction()

    def on_ledger_event(self, event: TransactionChanged) -> None:
        txn = event.transaction
        record: dict[str, Any] = {"k": "txn", "t": txn_dict(txn)}
        merchant = self.sim.ledger.merchants.get(txn.token)
        if merchant is not None:
            m = merchant.export()
            record["b"] = [m.balance_day, m.balances]
        self._append(record)

    def on_ipn_change(self, event: IpnChanged) -> None:
        self._append({"k": "ipn", "n": notification_dict(event.notification)})

    def clock_moved(self, event: ClockMoved) -> None:
        self._append({"k": "clock", **clock_dict(self.sim)})

    def _fail(self, exc: OSError) -> NoReturn:
        """A write failed: cut the file back to its last complete record, stop writing,
        and raise the error every request gets from now on."""
        if self.fd >= 0:
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                log.exception("%s: could not cut the failed record off", self.path)
        reason = exc.strerror or str(exc)
        self.failure = Unavailable(f"the state file {self.path.name} could not be written "
                                   f"({reason}); the simulator stopped serving: fix the "
                                   "disk and restart it")
        log.error("%s: write failed (%s): serving stopped until a restart; the file holds "
                  "every acknowledged operation", self.path, reason)
        raise self.failure from exc

    def rebase(self) -> None:
        """Compact now because the state was replaced (a full reset, an import): the
        file must describe the new state, or serving stops."""
        if self.failure is not None:
            raise self.failure
        try:
            self.compact()
        except OSError as exc:
            self._fail(exc)

    def reset(self, event: Reset) -> None:
        token = event.token
        if token is None:
            self.rebase()  # nothing is left: the file starts over
        else:
            self._append({"k": "reset", "token": token})

    def _schedule_compaction(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._compact_soon()
            return
        self._compact_pending = True
        loop.call_soon(self._compact_soon)

    def _compact_soon(self) -> None:
        self._compact_pending = False
        if self.fd < 0 or self.failure is not None:
            return
        try:
            self.compact()
        except OSError:
            log.exception("compacting %s failed; the journal keeps growing", self.path)
            self.threshold = self.records + self.min_records

    def compact(self) -> None:
        """Rewrite the file as one snapshot line (temp file, fsync, atomic rename). The
        line is written as it is encoded (``write_snapshot``): memory holds one
        transaction's encoding, not the state's."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        written = 0
        pending: list[bytes] = []  # small pieces (keys, commas) go out together
        buffered = 0

        def out(data: bytes) -> None:
            nonlocal written
            view = memoryview(data)
            while view:  # a short write (disk nearly full): finish it
                done = os.write(fd, view)
                written += done
                view = view[done:]

        def flush() -> None:
            nonlocal buffered
            if pending:
                out(b"".join(pending))
                pending.clear()
                buffered = 0

        def write(chunk: bytes) -> None:
            nonlocal buffered
            if len(chunk) >= _DIRECT:
                flush()
                out(chunk)  # a large piece as it is: never held or copied
                return
            pending.append(chunk)
            buffered += len(chunk)
            if buffered >= _WRITE_CHUNK:
                flush()

        try:
            write(b'{"k":"snapshot","data":')
            txns, notes = write_snapshot(self.sim, write)
            write(b"}\n")
            flush()
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
        self.size = written
        self.compactions += 1
        self.threshold = max(self.min_records, 2 * (txns + notes))


def subscribe(sim: Simulator, state: StateFile) -> None:
    """Journal every change from the simulator's event bus. The writes are critical: an
    operation whose record cannot be written fails instead of being acknowledged. They
    come first: a change is on disk before anyone reacts to it (module docstring)."""
    sim.events.subscribe(TransactionChanged, state.on_ledger_event, critical=True, first=True)
    sim.events.subscribe(IpnChanged, state.on_ipn_change, critical=True, first=True)
    sim.events.subscribe(ClockMoved, state.clock_moved, critical=True, first=True)
    sim.events.subscribe(Reset, state.reset, critical=True, first=True)


def _json_line(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None
