"""State exports are streamed (``write_snapshot``): ``GET /_sim/state`` and the --state
file's compaction hold one transaction's encoding at a time, never the whole state; the
document is the same one :func:`snapshot` describes, and imports back. Imports refuse a
clock outside the supported range."""

from __future__ import annotations

import asyncio
import io
import json
import re
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from citcon_sim import Config, Simulator
from citcon_sim.persistence.state import StateError, StateFile, restore, snapshot, write_snapshot

from .conftest import START, TOKEN, create
from .test_state import build_world, comparable, free_port, merchant, ok

GOODS = 50_000  # bytes of goods per large transaction


def large_state(sim: Simulator, n: int, size: int = GOODS) -> None:
    """``n`` transactions, each with its own ``size`` bytes of goods (nothing shared)."""
    restore(sim, {"version": 1, "merchants": {TOKEN: {"balances": {"USD": 100 * n}}},
                  "transactions": [
        {"id": f"U{i + 1:010d}-{i:020d}", "token": TOKEN, "reference": f"r{i}",
         "vendor": "alipay", "amount": 100, "currency": "USD", "status": "success",
         "created_at": "2026-03-02 08:00:00",
         "goods": {"name": f"item {i} ünïcode", "text": f"{i:06d}" * (size // 6)}}
        for i in range(n)]})


def encoded(sim: Simulator, pretty: bool = False) -> bytes:
    out = io.BytesIO()
    write_snapshot(sim, out.write, pretty=pretty)
    return out.getvalue()


def one_transaction_bytes(sim: Simulator) -> int:
    first = next(iter(sim.ledger.by_id.values()))
    return len(json.dumps(first.goods).encode())


def no_wall(body: bytes) -> bytes:
    """An export's bytes without the wall-clock instant it was taken at."""
    return re.sub(rb'"wall":[-+.e0-9]+', b'"wall":0', body, count=1)


def same_document(got: bytes, expected: dict[str, Any]) -> None:
    """The same values, keys in the same order; the clock's wall instant aside (each
    export reads it afresh)."""
    a, b = json.loads(got), json.loads(json.dumps(expected))
    for doc in (a, b):
        doc["clock"].pop("wall")
    assert a == b
    assert list(a) == list(b) and list(a["clock"]) == list(b["clock"])
    assert [list(t) for t in a["transactions"]] == [list(t) for t in b["transactions"]]
    assert [list(n) for n in a["ipn"]] == [list(n) for n in b["ipn"]]


def peak_while(action: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        action()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


# -- the same document ---------------------------------------------------------------------


@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty"])
async def test_streamed_document_is_the_snapshot(client: TestClient, sim: Simulator,
                                                 pretty: bool) -> None:
    await build_world(client, sim, f"http://127.0.0.1:{free_port()}/ipn")
    await create(client, reference="goods", goods='{"name":"茶","qty":2,"tags":[]}',
                 extra='{"k":"v"}')
    expected = snapshot(sim)
    assert expected["transactions"] and expected["ipn"] and expected["merchants"]
    same_document(encoded(sim, pretty), expected)
    url = "/_sim/state?pretty=yes" if pretty else "/_sim/state"
    resp = await client.get(url)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    same_document(await resp.read(), expected)


async def test_empty_state_document(sim: Simulator) -> None:
    same_document(encoded(sim), snapshot(sim))
    pretty = encoded(sim, pretty=True)
    assert b'"transactions": [],' in pretty and pretty.endswith(b'"ipn": []\n}')
    same_document(pretty, snapshot(sim))


# -- bounded memory --------------------------------------------------------------------------


@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty"])
def test_export_memory_is_about_one_transaction(sim: Simulator, pretty: bool) -> None:
    large_state(sim, 200)
    one = one_transaction_bytes(sim)
    written = 0

    def sink(chunk: bytes) -> None:
        nonlocal written
        written += len(chunk)

    peak = peak_while(lambda: write_snapshot(sim, sink, pretty=pretty))
    assert written > 200 * one  # the whole state went out...
    assert peak < 6 * one, (peak, one)  # ...while memory held about one transaction


def test_compaction_memory_is_about_one_transaction(tmp_path: Path) -> None:
    sim = Simulator(Config(frozen_clock=True, start_time=START, seed=1))
    large_state(sim, 200)
    one = one_transaction_bytes(sim)
    state = StateFile.open(sim, tmp_path / "state.jsonl")  # writes the first snapshot
    try:
        peak = peak_while(state.compact)
        assert state.size == (tmp_path / "state.jsonl").stat().st_size > 200 * one
        assert peak < 6 * one, (peak, one)
        line = (tmp_path / "state.jsonl").read_bytes()
        assert line.endswith(b"}\n") and line.count(b"\n") == 1
        record = json.loads(line)
        assert record["k"] == "snapshot"
        assert comparable(record["data"]) == comparable(snapshot(sim))
    finally:
        state.close()


async def test_http_export_memory_is_bounded(client: TestClient, sim: Simulator) -> None:
    large_state(sim, 300, 60_000)  # 18 MB of JSON; in memory up to 1 MB, then a spool file
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        resp = await client.get("/_sim/state")
        assert resp.status == 200
        total = 0
        async for chunk in resp.content.iter_chunked(1 << 16):
            total += len(chunk)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert total > 300 * 60_000
    assert peak < 4 * 2**20, peak  # a whole-body answer would be 18 MB, three times over


# -- one instant, and back in --------------------------------------------------------------


async def test_export_is_one_instant_while_other_requests_run(client: TestClient,
                                                             sim: Simulator) -> None:
    """Requests answered while an export is being sent change nothing in it: the last
    transaction is refunded after the first chunk arrived, yet exported unrefunded."""
    large_state(sim, 200)
    last = list(sim.ledger.by_id)[-1]
    resp = await client.get("/_sim/state")
    first = await resp.content.readexactly(1 << 16)  # the answer is under way
    refund = await merchant(client, "refund", transaction_id=last, amount=40, currency="USD")
    assert refund["refunded"] is True, refund
    later = await create(client, reference="after the export began")
    exported = json.loads(first + await resp.read())
    txns = {t["id"]: t for t in exported["transactions"]}
    assert len(txns) == 200 and later not in txns
    assert txns[last]["refunded_amount"] == 0 and "refunds" not in txns[last]
    assert sim.ledger.by_id[last].refunded_amount == 40


@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty"])
async def test_streamed_export_round_trips_through_put(client: TestClient, sim: Simulator,
                                                      pretty: bool) -> None:
    ids = await build_world(client, sim, f"http://127.0.0.1:{free_port()}/ipn")
    large_state_ids = len(sim.ledger.by_id)
    resp = await client.get("/_sim/state?pretty=yes" if pretty else "/_sim/state")
    body = await resp.read()
    before = comparable(json.loads(body))
    await ok(await client.post("/_sim/reset"))
    summary = await ok(await client.put("/_sim/state", data=body))
    assert summary["transactions"] == large_state_ids
    after = comparable(json.loads(await (await client.get("/_sim/state")).read()))
    assert after == before
    paid = await merchant(client, "inquire", transaction_id=ids["paid"])
    assert paid["status"] == "success" and paid["refunded_amount"] == 300


async def test_large_streamed_export_round_trips(client: TestClient, sim: Simulator) -> None:
    large_state(sim, 100)
    body = await (await client.get("/_sim/state")).read()
    await ok(await client.post("/_sim/reset"))
    summary = await ok(await client.put("/_sim/state", data=io.BytesIO(body)))
    assert summary["transactions"] == 100
    again = await (await client.get("/_sim/state")).read()
    assert no_wall(again) == no_wall(body)  # a frozen clock: the same bytes


async def test_streamed_export_is_a_state_file(client: TestClient, sim: Simulator,
                                               tmp_path: Path) -> None:
    await build_world(client, sim, f"http://127.0.0.1:{free_port()}/ipn")
    path = tmp_path / "fixture.json"
    path.write_bytes(await (await client.get("/_sim/state?pretty=yes")).read())
    before = comparable(snapshot(sim))
    loaded = Simulator(Config(frozen_clock=True, start_time=START, seed=7, state_file=path))
    try:
        assert comparable(snapshot(loaded)) == before
        # ...and the journal it became (a streamed compaction) loads the same again.
        assert loaded.persistence is not None
        loaded.persistence.close()
        again = Simulator(Config(frozen_clock=True, seed=7, state_file=path))
        assert again.persistence is not None
        again.persistence.close()
        assert comparable(snapshot(again)) == before
    finally:
        if loaded.persistence is not None:
            loaded.persistence.close()


# -- the clock's supported range -------------------------------------------------------------

OUT_OF_RANGE = [
    ("9900-01-01 00:00:00", "9900-01-01"),
    ("9999-12-31T23:59:59+00:00", "9999-12-31"),
    (253402300799, "9999-12-31"),
    ("1970-01-01 12:00:00", "1970-01-01"),
    (0, "1970-01-01"),
]


@pytest.mark.parametrize(("when", "shown"), OUT_OF_RANGE)
async def test_import_refuses_a_clock_outside_the_range(client: TestClient, sim: Simulator,
                                                       when: Any, shown: str) -> None:
    txn_id = await create(client)
    before = comparable(snapshot(sim))
    resp = await client.put("/_sim/state", data=json.dumps(
        {"version": 1, "clock": {"time": when}, "transactions": []}))
    answer = await resp.json()
    assert resp.status == 400, answer
    assert answer["code"] == 4100
    assert "clock.time" in answer["message"] and shown in answer["message"]
    assert "outside the supported range (1970-01-02 to 9900-01-01)" in answer["message"]
    assert comparable(snapshot(sim)) == before  # nothing changed
    assert (await merchant(client, "inquire", transaction_id=txn_id))["id"] == txn_id


async def test_import_accepts_the_last_supported_day(client: TestClient, sim: Simulator) -> None:
    summary = await ok(await client.put("/_sim/state", data=json.dumps(
        {"version": 1, "clock": {"time": "9899-12-31 12:00:00"}})))
    assert summary["clock"].startswith("9899-12-31T12:00:00")
    txn_id = await create(client)  # times computed from now still format
    assert (await merchant(client, "inquire", transaction_id=txn_id))["id"] == txn_id
    assert (await ok(await client.get("/_sim/state")))["clock"]["iso"].startswith("9899")


def test_state_file_refuses_a_clock_outside_the_range(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    text = json.dumps({"version": 1, "clock": {"time": "9950-06-01 00:00:00"}})
    path.write_text(text)
    with pytest.raises(StateError, match=r"clock\.time: 9950-06-01.*outside the supported"):
        Simulator(Config(frozen_clock=True, start_time=START, state_file=path))
    assert path.read_text() == text  # refused, not overwritten


def test_journal_refuses_a_clock_record_outside_the_range(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    sim = Simulator(Config(frozen_clock=True, start_time=START, state_file=path))
    assert sim.persistence is not None
    sim.persistence.close()
    with path.open("a") as f:
        f.write(json.dumps({"k": "clock", "time": 253_000_000_000, "frozen": True}) + "\n")
    with pytest.raises(StateError, match=r"clock\.time: .*outside the supported range"):
        Simulator(Config(frozen_clock=True, state_file=path))


async def test_concurrent_exports_and_requests(client: TestClient, sim: Simulator) -> None:
    large_state(sim, 50)

    async def export() -> bytes:
        return await (await client.get("/_sim/state")).read()

    bodies = await asyncio.gather(*(export() for _ in range(4)))
    assert all(json.loads(b)["transactions"] for b in bodies)
    assert len({no_wall(b) for b in bodies}) == 1


async def test_export_without_room_for_the_spool_is_a_503(
    client: TestClient, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    class Full(io.BytesIO):
        def write(self, data: Any) -> int:
            raise OSError(28, "No space left on device")

    txn_id = await create(client)
    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", lambda **kw: Full())
    resp = await client.get("/_sim/state")
    answer = await resp.json()
    assert resp.status == 503, answer
    assert "state: cannot export (No space left on device)" in answer["message"]
    monkeypatch.undo()
    assert (await merchant(client, "inquire", transaction_id=txn_id))["id"] == txn_id
    assert json.loads(await (await client.get("/_sim/state")).read())["transactions"]
