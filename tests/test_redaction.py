"""One rule for showing tokens and one list of secret parameters, used everywhere."""

from __future__ import annotations

from citcon_sim.domain.redaction import SECRET_PARAMS, token_digest, token_hint
from citcon_sim.faces.journal import redact_params
from citcon_sim.web.security import redact_url


def test_a_long_token_shows_its_ends_only() -> None:
    assert token_hint("test-token") == "te…en"
    assert token_hint("test-token", unique=True) == f"te…en #{token_digest('test-token')[:8]}"


def test_short_tokens_are_told_apart_without_showing_them() -> None:
    hints = {token_hint(t) for t in ("shop-a", "shop-b", "a", "12345678")}
    assert len(hints) == 4
    for token in ("shop-a", "shop-b", "12345678"):
        hint = token_hint(token)
        assert hint.startswith("…#") and token not in hint and token[:2] not in hint[:3]


def test_unique_hints_differ_where_plain_ones_agree() -> None:
    assert token_hint("test-token") == token_hint("text-token")
    assert token_hint("test-token", unique=True) != token_hint("text-token", unique=True)


def test_the_journal_and_the_logs_redact_the_same_parameters() -> None:
    params = {name.upper(): "s3cret" for name in SECRET_PARAMS} | {"reference": "r1"}
    assert redact_params(params) == {**dict.fromkeys(params, "[redacted]"), "reference": "r1"}
    query = "&".join(f"{name}=s3cret" for name in SECRET_PARAMS)
    assert "s3cret" not in redact_url(f"/x?{query}&reference=r1")


def test_two_character_tokens_get_different_hints() -> None:
    """The console and the journal tell merchants t1 and t2 apart, showing neither."""
    t1, t2 = token_hint("t1"), token_hint("t2")
    assert t1 != t2 and "t1" not in t1 and "t2" not in t2
    assert t1 == token_hint("t1")  # stable: the same merchant keeps its hint
