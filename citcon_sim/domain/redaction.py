"""What may be shown of a secret: a token's hint and digest, and which parameters hold
secrets. The journal, the control surface, the dashboard, the scenario listing and the
logs all show tokens this way."""

from __future__ import annotations

import functools
import hashlib

# Request and query parameters whose values are never shown or logged (compared in
# lower case): merchant tokens and signatures, the admin token, card data.
SECRET_PARAMS = ("token", "admin_token", "access_token", "sign", "password", "card_number",
                 "cvv")

# Tokens of more characters show their first and last two; shorter ones would be mostly
# given away by them.
_SHOWN_ENDS_ABOVE = 8


# A merchant sends the same token on every call: hash it once, not once per request.
@functools.lru_cache(maxsize=1024)
def token_digest(token: str) -> str:
    """A stable, one-way name for a token: filters match it without keeping the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


@functools.lru_cache(maxsize=1024)
def token_hint(token: str, *, unique: bool = False) -> str:
    """A token as people see it, never in clear: ``te…en`` (first and last two
    characters) for a long token, ``…#1a2b3c`` (a digest's start) for a short one, so two
    short tokens still tell apart. ``unique``: a digest follows the long form too
    (``te…en #1a2b3c4d``), for keys that must differ for every token."""
    digest = token_digest(token)
    if len(token) <= _SHOWN_ENDS_ABOVE:
        return f"…#{digest[:8] if unique else digest[:6]}"
    ends = f"{token[:2]}…{token[-2:]}"
    return f"{ends} #{digest[:8]}" if unique else ends
