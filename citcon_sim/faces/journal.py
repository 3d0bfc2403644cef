"""The request journal: a bounded ring buffer of merchant API calls.

Tests and QA read it at ``GET /_sim/requests`` to see exactly what their backend sent
and what the gateway answered. Tokens are never stored in clear: an entry keeps a short
hint for people and a digest so that filtering by token still works.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from citcon_sim.domain.clock import TIME_FORMAT
from citcon_sim.domain.redaction import SECRET_PARAMS, token_digest, token_hint

# The journal shows the first 2000 characters of an answer. No character is longer than 4
# bytes in UTF-8, so the first 8000 bytes always hold them (a body cut mid-character at
# the end loses nothing shown).
RESPONSE_CHARS = 2000
RESPONSE_BYTES = 4 * RESPONSE_CHARS
TRUNCATED = "…[truncated]"  # ends an answer the journal shows only the start of

# A request's parameters as kept: each value's first VALUE_CHARS characters, and no more
# than PARAMS_CHARS characters of keys and values in all (a form may carry 200 values of
# 2 KB and 64 KB of goods: 1,000 such calls once held 471 MiB). What is cut says so.
VALUE_CHARS = 4096
PARAMS_CHARS = 16 * 1024
MORE_PARAMS = "…"  # the key that stands for the parameters not kept
# A kept call's bytes beyond its parameters and answer (the tuple, its strings, floats).
ENTRY_OVERHEAD = 400
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def _size(value: Any) -> int:
    """Characters of a parameter value: text, or nested objects (``consumer[ext][x]``)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(len(k) + _size(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(_size(v) for v in value)
    return 16


def bounded_params(params: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``params`` as the journal keeps them and their estimated size in characters: the
    same dict when it is small (nearly always), else a cut copy with visible markers."""
    size = 0
    for key, value in params.items():
        length = _size(value)
        size += len(key) + length
        if length > VALUE_CHARS or size > PARAMS_CHARS:
            break
    else:
        return params, size
    kept: dict[str, Any] = {}
    size = 0
    items = list(params.items())
    for i, (key, value) in enumerate(items):
        if size + len(key) > PARAMS_CHARS:
            kept[MORE_PARAMS] = f"[{len(items) - i} more parameters not kept]"
            size += 40
            break
        length = _size(value)
        room = max(0, min(VALUE_CHARS, PARAMS_CHARS - size - len(key)))
        if length > room:  # an object is kept as its JSON text, cut
            text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
            value = f"{text[:room]}…[{len(text) - room} more characters not kept]"
            length = len(value)
        kept[key] = value
        size += len(key) + length
    return kept, size


@functools.lru_cache(maxsize=1024)
def _token_keys(token: str | None) -> tuple[str | None, str | None]:
    """(hint, digest): what the journal keeps of a token, in one cached call."""
    return (token_hint(token), token_digest(token)) if token else (None, None)


# A JSON string value under a secret key, as an answer carries it.
_SECRET_VALUE = re.compile(
    r'("(?:' + "|".join(SECRET_PARAMS) + r')"\s*:\s*)"(?:[^"\\]|\\.)*"', re.IGNORECASE)


def redact_params(params: dict[str, Any]) -> dict[str, Any]:
    return {
        k: ("[redacted]" if k.lower() in SECRET_PARAMS else v) for k, v in params.items()
    }


def _iso_seconds(ts: float) -> str:
    """A Journal without a clock's formatter (the Simulator passes VirtualClock.format)."""
    return datetime.fromtimestamp(ts, UTC).strftime(TIME_FORMAT)


class JournalEntry(msgspec.Struct):
    """One merchant API call as the journal shows it (token redacted)."""

    seq: int
    time: str  # virtual time
    method: str
    path: str
    endpoint: str
    token_hint: str | None
    token_digest: str | None
    # Kept as the request had them and as the body's bytes (at most RESPONSE_BYTES, with
    # its charset); redacted and decoded by as_dict(), when the journal is read. Each
    # request used to pay for a dict copy and a decode that were rarely looked at.
    params: dict[str, Any]
    status: int
    response: bytes | None
    duration_ms: float
    transaction_id: str | None
    scenario_rule: str | None
    charset: str = "utf-8"
    face: str = "online"  # the API face that served the call
    surprise: str | None = None  # the scenario's surprises on this call, comma-separated

    @property
    def response_text(self) -> str | None:
        """The answer's first RESPONSE_CHARS characters, secrets in it redacted (a UPI
        access token is an answer's ``data.access_token``)."""
        if self.response is None:
            return None
        text = _SECRET_VALUE.sub(r'\1"[redacted]"',
                                 self.response.decode(self.charset, "replace"))
        return text if len(text) <= RESPONSE_CHARS else text[:RESPONSE_CHARS] + TRUNCATED

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "face": self.face,
            "method": self.method,
            "path": self.path,
            "endpoint": self.endpoint,
            "token": self.token_hint,
            "params": redact_params(self.params),
            "status": self.status,
            "response": self.response_text,
            "duration_ms": self.duration_ms,
            "transaction_id": self.transaction_id,
            "scenario_rule": self.scenario_rule,
            "surprise": self.surprise,
        }


class Journal:
    def __init__(
        self, capacity: int = 1000, format_time: Callable[[float], str] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.bytes = 0  # the kept entries' estimated size (see ENTRY_OVERHEAD)
        # A request stores a plain tuple: (seq, virtual time as a float, the fields
        # of JournalEntry from method to scenario_rule, charset), with the duration in
        # seconds. The JournalEntry, its time text and its rounded duration are made when
        # the journal is read (query()): entries are written on every call and rarely
        # read.
        # Evicted oldest first, by count (capacity) or by size (max_bytes): with the
        # estimated size of each entry alongside, both are O(1) per call.
        self._entries: deque[JournalEntry | tuple[Any, ...]] = deque()
        self._sizes: deque[int] = deque()
        self._seq = itertools.count(1)
        self.enabled = capacity > 0
        self._format_time = format_time or _iso_seconds

    def record(self, **fields: Any) -> None:
        """One entry with JournalEntry's fields (``time`` as text, ``duration_ms``)."""
        if self.enabled:
            params, size = bounded_params(fields.pop("params", {}))
            response = fields.get("response")
            self._keep(JournalEntry(seq=next(self._seq), params=params, **fields),
                       size + (len(response) if response else 0))

    def append(
        self, ts: float, method: str, path: str, endpoint: str, token: str | None,
        params: dict[str, Any], status: int, response: bytes | None, duration_s: float,
        transaction_id: str | None, scenario_rule: str | None, charset: str,
        face: str = "online", surprise: str | None = None,
    ) -> None:
        """The middleware's per-request path: the virtual time as a float, the token as
        sent (only its hint and digest are kept) and the duration in seconds."""
        if self.enabled:
            kept, size = bounded_params(params)
            self._keep((
                next(self._seq), ts, method, path, endpoint, *_token_keys(token), kept,
                status, response, duration_s, transaction_id, scenario_rule, charset, face,
                surprise,
            ), size + len(path) + (len(response) if response is not None else 0))

    def _keep(self, entry: JournalEntry | tuple[Any, ...], size: int) -> None:
        size += ENTRY_OVERHEAD
        if len(self._entries) >= self.capacity:
            self._evict()
        self._entries.append(entry)
        self._sizes.append(size)
        self.bytes += size
        while self.bytes > self.max_bytes and len(self._entries) > 1:
            self._evict()

    def _evict(self) -> None:
        self._entries.popleft()
        self.bytes -= self._sizes.popleft()

    def _entry(self, raw: JournalEntry | tuple[Any, ...]) -> JournalEntry:
        if isinstance(raw, JournalEntry):
            return raw
        (seq, ts, method, path, endpoint, hint, digest, params, status, response,
         duration_s, transaction_id, scenario_rule, charset, face, surprise) = raw
        return JournalEntry(
            seq, self._format_time(ts), method, path, endpoint, hint, digest, params,
            status, response, round(duration_s * 1000, 3), transaction_id, scenario_rule,
            charset, face, surprise,
        )

    def query(
        self,
        *,
        token: str | None = None,
        path: str | None = None,
        transaction_id: str | None = None,
        face: str | None = None,
        limit: int = 100,
        after: int = 0,
    ) -> list[JournalEntry]:
        """Newest first, filtered; never more than the buffer holds. ``after``: only calls
        whose ``seq`` is greater (``citcon-sim logs --follow`` reads what is new)."""
        digest = token_digest(token) if token else None
        out: list[JournalEntry] = []
        for raw in reversed(self._entries):
            if (raw.seq if isinstance(raw, JournalEntry) else raw[0]) <= after:
                break  # seq grows with each call: everything older is not new either
            entry = self._entry(raw)
            if digest is not None and entry.token_digest != digest:
                continue
            if path is not None and path not in (entry.path, entry.endpoint):
                continue
            if transaction_id is not None and entry.transaction_id != transaction_id:
                continue
            if face is not None and entry.face != face:
                continue
            out.append(entry)
            if len(out) >= limit:
                break
        return out

    def clear(self) -> None:
        self._entries.clear()
        self._sizes.clear()
        self.bytes = 0
