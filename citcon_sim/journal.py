"""The request journal: a bounded ring buffer of merchant API calls.

Tests and QA read it at ``GET /_sim/requests`` to see exactly what their backend sent
and what the gateway answered. Tokens are never stored in clear: an entry keeps a short
hint for people and a digest so that filtering by token still works.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any

SECRET_KEYS = frozenset({"token", "sign", "password", "card_number", "cvv"})


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


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
    params: dict[str, Any]
    status: int
    response: Any
    duration_ms: float
    transaction_id: str | None
    scenario_rule: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "endpoint": self.endpoint,
            "token": self.token_hint,
            "params": self.params,
            "status": self.status,
            "response": self.response,
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
