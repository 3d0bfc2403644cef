"""The request journal is bounded in bytes as well as in calls (issue 13, item 9): large
parameters and answers are cut with a visible marker, and the oldest calls go first once
the estimated size passes ``--journal-bytes``."""

from __future__ import annotations

from typing import Any

import pytest

from citcon_sim import Config
from citcon_sim.config import ConfigError
from citcon_sim.faces.journal import (
    ENTRY_OVERHEAD,
    MORE_PARAMS,
    PARAMS_CHARS,
    RESPONSE_CHARS,
    TRUNCATED,
    VALUE_CHARS,
    Journal,
    bounded_params,
)

from .helpers import AUTH, PAYMENT, client_for


def add(journal: Journal, params: dict[str, Any], response: bytes | None = b"ok") -> None:
    journal.append(0.0, "POST", "/payment/pay", "pay", "tok", params, 200, response, 0.001,
                   None, None, "utf-8")


def kept_chars(journal: Journal) -> int:
    return sum(len(k) + len(str(v)) for e in journal.query(limit=10**6)
               for k, v in e.params.items())


def test_small_parameters_are_kept_as_they_are_without_a_copy() -> None:
    params = {"amount": "100", "reference": "order-1"}
    kept, size = bounded_params(params)
    assert kept is params and size == len("amount100referenceorder-1")


def test_a_long_value_is_cut_with_a_marker() -> None:
    kept, size = bounded_params({"goods": "g" * 1_000_000, "amount": "100"})
    assert kept["goods"].startswith("g" * VALUE_CHARS)
    assert kept["goods"].endswith(f"…[{1_000_000 - VALUE_CHARS} more characters not kept]")
    assert kept["amount"] == "100" and size <= PARAMS_CHARS + 100


def test_nested_objects_count_and_are_cut_as_json_text() -> None:
    params = {"consumer": {f"k{i}": "v" * 2000 for i in range(50)}, "amount": "1"}
    kept, size = bounded_params(params)
    assert isinstance(kept["consumer"], str) and kept["consumer"].startswith('{"k0":"vvv')
    assert kept["consumer"].endswith("more characters not kept]")
    assert kept["amount"] == "1" and size <= PARAMS_CHARS + 100


def test_many_parameters_are_cut_with_a_marker_key() -> None:
    params = {f"k{i}": "v" * 1000 for i in range(100)}
    kept, size = bounded_params(params)
    assert size <= PARAMS_CHARS + 100
    assert MORE_PARAMS in kept and "more parameters not kept" in kept[MORE_PARAMS]
    assert list(kept)[:3] == ["k0", "k1", "k2"]  # the first ones are kept


def test_the_journal_is_bounded_in_bytes_oldest_first() -> None:
    journal = Journal(capacity=1000, max_bytes=200_000)
    for i in range(200):
        add(journal, {"reference": f"r{i}", "note": "n" * 50_000})
    assert journal.bytes <= 200_000
    seqs = [e.seq for e in journal.query(limit=1000)]
    assert seqs[0] == 200  # the newest is kept…
    assert seqs == list(range(200, 200 - len(seqs), -1))  # …with those just before it
    assert 5 <= len(seqs) < 200
    assert kept_chars(journal) <= journal.bytes


def test_the_byte_count_follows_evictions_by_count_and_clear() -> None:
    journal = Journal(capacity=3, max_bytes=10**9)
    for i in range(5):
        add(journal, {"reference": f"r{i}"}, b"x" * 100)
    entry_size = ENTRY_OVERHEAD + len("reference") + 2 + len("/payment/pay") + 100
    assert len(journal.query()) == 3 and journal.bytes == 3 * entry_size
    journal.clear()
    assert journal.bytes == 0 and journal.query() == []


def test_record_is_bounded_too() -> None:
    journal = Journal(capacity=10, max_bytes=100_000)
    journal.record(time="t", method="POST", path="/p", endpoint="pay", token_hint=None,
                   token_digest=None, params={"x": "y" * 100_000}, status=200,
                   response=None, duration_ms=1.0, transaction_id=None, scenario_rule=None)
    (entry,) = journal.query()
    assert len(entry.params["x"]) < VALUE_CHARS + 100 and journal.bytes < 100_000


def test_a_long_answer_is_shown_with_a_marker() -> None:
    journal = Journal()
    add(journal, {}, b"a" * (RESPONSE_CHARS + 10))
    add(journal, {}, b"b" * RESPONSE_CHARS)
    longer, exact = journal.query()[1], journal.query()[0]
    assert longer.response_text == "a" * RESPONSE_CHARS + TRUNCATED
    assert exact.response_text == "b" * RESPONSE_CHARS  # nothing cut, no marker


def test_the_setting_has_a_floor() -> None:
    assert Config(journal_bytes=1 << 20).journal_bytes == 1 << 20
    with pytest.raises(ConfigError) as caught:
        Config(journal_bytes=100)
    assert caught.value.setting == "journal_bytes"


async def test_large_requests_do_not_fill_the_journal(aiohttp_client: Any) -> None:
    client, sim = await client_for(aiohttp_client, journal_bytes=256 * 1024)
    # As many parameters as a form may have, each as long as one may be (~400 KB).
    many = {f"p{n}": "x" * 2000 for n in range(190)}
    for i in range(40):
        resp = await client.post("/payment/pay", headers=AUTH,
                                 data={**PAYMENT, "reference": f"r{i}", **many})
        assert resp.status == 200, await resp.text()
    assert sim.journal.bytes <= 256 * 1024
    answer = await (await client.get("/_sim/requests", params={"limit": "1000"})).json()
    entries = answer["requests"]
    assert entries[0]["params"]["reference"] == "r39"  # the newest call is there
    assert "more parameters not kept" in entries[0]["params"][MORE_PARAMS]
    assert len(entries) < 40
