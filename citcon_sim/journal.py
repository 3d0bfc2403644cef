"""The request journal: a bounded ring buffer of merchant API calls.

Tests and QA read it at ``GET /_sim/requests`` to see exactly what their backend sent
and what the gateway answered. Tokens are never stored in clear: an entry keeps a short
hint for people and a digest so that filtering by token still works.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any

# The journal shows the first 2000 characters of an answer. No character is longer than 4
# bytes in UTF-8, so the first 8000 bytes always hold them (a body cut mid-character at
# the end loses nothing shown).
RESPONSE_CHARS = 2000
RESPONSE_BYTES = 4 * RESPONSE_CHARS
SECRET_KEYS = frozenset({"token", "sign", "password", "card_number", "cvv"})


# A merchant sends the same token on every call: hash it once, not once per request.
@functools.lru_cache(maxsize=1024)
def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


@functools.lru_cache(maxsize=1024)
def token_hint(token: str | None) -> str | None:
    if not token:
        return None
    return token[:2] + "…" + token[-2:] if len(token) > 8 else "…"


def redact_params(params: dict[str, Any]) -> dict[str, Any]:
    return {
        k: ("[redacted]" if k.lower() in SECRET_KEYS else v) for k, v in params.items()
    }


@dataclass(slots=True)
class JournalEntry:
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

    @property
    def response_text(self) -> str | None:
        """The answer's first RESPONSE_CHARS characters."""
        if self.response is None:
            return None
        return self.response.decode(self.charset, "replace")[:RESPONSE_CHARS]

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
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
        }


class Journal:
    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._entries: deque[JournalEntry] = deque(maxlen=capacity if capacity > 0 else 1)
        self._seq = itertools.count(1)
        self.enabled = capacity > 0

    def record(self, **fields: Any) -> None:
        if self.enabled:
            self._entries.append(JournalEntry(seq=next(self._seq), **fields))

    def append(self, *fields: Any) -> None:
        """record() with the fields after seq in order: the middleware's per-request path
        (no keyword-argument dict per call)."""
        if self.enabled:
            self._entries.append(JournalEntry(next(self._seq), *fields))

    def query(
        self,
        *,
        token: str | None = None,
        path: str | None = None,
        transaction_id: str | None = None,
        limit: int = 100,
    ) -> list[JournalEntry]:
        """Newest first, filtered; never more than the buffer holds."""
        digest = token_digest(token) if token else None
        out: list[JournalEntry] = []
        for entry in reversed(self._entries):
            if digest is not None and entry.token_digest != digest:
                continue
            if path is not None and path not in (entry.path, entry.endpoint):
                continue
            if transaction_id is not None and entry.transaction_id != transaction_id:
                continue
            out.append(entry)
            if len(out) >= limit:
                break
        return out

    def clear(self) -> None:
        self._entries.clear()
