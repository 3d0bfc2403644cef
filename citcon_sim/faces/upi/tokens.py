"""UPI access tokens: ``POST /v1/access-tokens`` trades a merchant's private key for a
token that the other endpoints take as ``Authorization: Bearer <token>``.

A token is ``UPI_`` + an opaque random string (the sandbox's is a JWT, but no client
reads inside it); it expires after ``Config.upi_token_lifetime`` seconds of VIRTUAL time,
so a test advances the clock instead of waiting a day. Each call mints a new token and
earlier ones stay valid until they expire (the sandbox handed the same token back for a
while, §1.1; no client depends on that). Tokens live in memory, per simulator: after a
restart clients ask for a new one, as they do every day anyway.
"""

from __future__ import annotations

import secrets
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from citcon_sim.faces.upi import choices as c

if TYPE_CHECKING:
    from citcon_sim.simulator import Simulator


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    key: str  # the merchant's private key: its ledger token and IPN secret
    token_type: str
    expiry: int  # epoch seconds, virtual clock


class TokenStore:
    # Bounded: expired tokens are dropped when a token is minted and the store is full.
    LIMIT = 10_000

    def __init__(self) -> None:
        self._tokens: dict[str, AccessToken] = {}

    def mint(self, key: str, token_type: str, now: float, lifetime: int) -> AccessToken:
        if len(self._tokens) >= self.LIMIT:
            self._tokens = {t: a for t, a in self._tokens.items() if a.expiry > now}
            while len(self._tokens) >= self.LIMIT:  # all still valid: oldest first
                del self._tokens[next(iter(self._tokens))]
        token = AccessToken(c.TOKEN_PREFIX + secrets.token_urlsafe(48), key, token_type,
                            int(now) + lifetime)
        self._tokens[token.token] = token
        return token

    def get(self, token: str) -> AccessToken | None:
        return self._tokens.get(token)


_STORES: weakref.WeakKeyDictionary[Simulator, TokenStore] = weakref.WeakKeyDictionary()


def store(sim: Simulator) -> TokenStore:
    """The simulator's tokens (kept beside it, so the simulator needs no UPI wiring)."""
    found = _STORES.get(sim)
    if found is None:
        found = _STORES[sim] = TokenStore()
    return found
