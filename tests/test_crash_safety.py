"""Crash cuts of the ``--state`` file (issue 13, item 1).

A crash leaves a prefix of the file: any record boundary, or the middle of the record
being written. Every such prefix must start, and must hold every record complete
before the cut (so every acknowledged operation); a torn last record is dropped with a
warning. The file is written by real traffic through the HTTP API, then cut at every
record boundary and inside every record.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from citcon_sim import Config, Simulator, create_app
from citcon_sim.domain.errors import StateError
from citcon_sim.domain.events import IpnChanged, TransactionChanged
from citcon_sim.scenarios import parse_scenario

from .helpers import AUTH, START, TOKEN, create

OTHER = "crash-other"
INSTANT = parse_scenario("name: instant\nrules:\n  - match: {reference: 'instant-*'}\n"
                         "    payment: {outcome: pay}\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def state_config(path: Path) -> Config:
    # Magic amounts on: the traffic below journals a scripted payment (…9903).
    return Config(frozen_clock=True, start_time=START, seed=11, state_file=path,
                  magic_amounts=True)


def started(path: Path) -> Simulator:
    sim = Simulator(state_config(path))
    assert sim.persistence is not None
    sim.persistence.close()  # the lock: the next start may open the same file
    return sim


async def ok(resp: Any) -> Any:
    text = await resp.text()
    assert resp.status == 200, text
    return json.loads(text)


async def write_traffic(client: Any, sim: Simulator, path: Path) -> list[int]:
    """Mixed traffic; the file's size after each acknowledged operation."""
    acked: list[int] = []
    ipn = f"http://127.0.0.1:{free_port()}/ipn"  # refused: attempts and a retry

    def ack() -> None:
        acked.append(path.stat().st_size)

    sim.scenarios.load(INSTANT)
    pending = await create(client, reference="pending")
    ack()
    await create(client, reference="instant-1", ipn_url=ipn)  # paid as it is created
    ack()
    await create(client, reference="magic", amount=19903, ipn_url=ipn)  # magic: pays at once
    ack()
    paid = await create(client, reference="paid", amount=5000, ipn_url=ipn)
    await ok(await client.post(f"/_sim/transactions/{paid}/pay"))
    ack()
    refund = await ok(await client.post("/payment/refund", headers=AUTH, data={
        "transaction_id": paid, "amount": "1200", "currency": "USD"}))
    assert refund["refunded"] is True
    ack()
    held = await create(client, reference="held", vendor="klarna", amount=3000)
    await ok(await client.post(f"/_sim/transactions/{held}/pay"))
    await ok(await client.post("/payment/capture", headers=AUTH, data={
        "transaction_id": held, "amount": "1000", "multi_capture": "true"}))
    ack()
    await ok(await client.post("/payment/cancel", headers=AUTH,
                               data={"transaction_id": pending}))
    ack()
    await sim.ipn.drain()  # the first attempts end (refused): attempt records, retries
    ack()
    await ok(await client.post("/_sim/clock/advance", data={"seconds": "90"}))
    await sim.ipn.drain()
    ack()
    other = await create(client, token=OTHER, reference="instant-2", ipn_url=ipn)
    await sim.ipn.drain()
    ack()
    await ok(await client.post("/_sim/reset", data={"token": OTHER}))  # one merchant
    assert other not in sim.ledger.by_id
    ack()
    await create(client, reference="instant-3", ipn_url=ipn)
    await sim.ipn.drain()
    ack()
    return acked


def complete_records(prefix: bytes) -> list[dict[str, Any]]:
    """The records a prefix holds in full (the snapshot line excluded)."""
    out = []
    for line in prefix.split(b"\n")[1:]:
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # the torn last one
        out.append(rec)
    return out


def expected(records: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """What a start from these records must hold: transactions, notifications, clock."""
    txns: dict[str, Any] = {}
    notes: dict[str, Any] = {}
    clock = None
    for rec in records:
        if rec["k"] == "txn":
            txns[rec["t"]["id"]] = rec["t"]
        elif rec["k"] == "ipn":
            notes[rec["n"]["notify_id"]] = rec["n"]
        elif rec["k"] == "clock":
            clock = rec["time"]
        elif rec["k"] == "reset":
            gone = {i for i, t in txns.items() if t["token"] == rec["token"]}
            txns = {i: t for i, t in txns.items() if i not in gone}
            notes = {k: n for k, n in notes.items() if n["transaction_id"] not in gone}
    return txns, notes, clock


def check_start(prefix: bytes, at: Path) -> Simulator:
    at.write_bytes(prefix)
    sim = started(at)
    txns, notes, clock = expected(complete_records(prefix))
    for txn_id, t in txns.items():
        got = sim.ledger.by_id.get(txn_id)
        assert got is not None, f"{txn_id} lost"
        assert (got.status.value, got.captured_amount, got.refunded_amount) == \
            (t["status"], t["captured_amount"], t["refunded_amount"]), txn_id
    for nid, n in notes.items():
        got_n = sim.ipn.notifications.get(nid)
        assert got_n is not None, f"IPN {nid} lost"
        assert len(got_n.attempts) == len(n["attempts"])
    if clock is not None:
        assert sim.clock.time() == clock
    return sim


async def test_every_cut_of_a_real_state_file_starts_with_everything_before_it(
    aiohttp_client: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.jsonl"
    sim = Simulator(state_config(path))
    assert sim.persistence is not None
    client = await aiohttp_client(create_app(sim))
    acked = await write_traffic(client, sim, path)
    await client.close()
    sim.persistence.close()
    raw = path.read_bytes()
    assert acked[-1] == len(raw)
    kinds = {rec["k"] for rec in complete_records(raw)}
    assert kinds == {"txn", "ipn", "clock", "reset"}

    first_end = raw.index(b"\n") + 1  # the snapshot line: written whole (atomic rename)
    ends = [first_end + i + 1 for i, byte in enumerate(raw[first_end:]) if byte == 0x0A]
    cuts: set[int] = set()
    start = first_end
    for end in ends:
        cuts.update({end, start + 1, (start + end) // 2, end - 2})  # boundary + torn
        start = end
    cuts.add(first_end)
    assert len(ends) > 30
    work = tmp_path / "cut.jsonl"
    for cut in sorted(cuts):
        prefix = raw[:cut]
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="citcon_sim.state"):
            check_start(prefix, work)
        if cut not in ends and cut != first_end:
            assert "torn last line" in caplog.text, cut

    # Every acknowledged operation is in every cut at or after its acknowledgement: the
    # full check above covers it, and here is the plainest form of it.
    for size in acked:
        restored = check_start(raw[:size], work)
        assert len(restored.ledger.by_id) >= 1


async def test_a_payment_paid_as_it_is_created_is_recorded_before_its_ipn(
    aiohttp_client: Callable[..., Any], tmp_path: Path
) -> None:
    """The IPN sender records a notification inside the ledger's ``paid`` event: the
    journal, subscribed first, must have written the transaction by then."""
    path = tmp_path / "state.jsonl"
    sim = Simulator(state_config(path))
    assert sim.persistence is not None
    sim.scenarios.load(INSTANT)
    client = await aiohttp_client(create_app(sim))
    txn_id = await create(client, reference="instant-x",
                          ipn_url=f"http://127.0.0.1:{free_port()}/")
    await client.close()
    sim.persistence.close()
    records = complete_records(path.read_bytes())
    kinds = [(r["k"], r["t"]["status"] if r["k"] == "txn" else None) for r in records]
    assert kinds[:3] == [("txn", "pending"), ("txn", "success"), ("ipn", None)]
    assert all(r["t"]["id"] == txn_id for r in records[:2])
    assert records[2]["n"]["transaction_id"] == txn_id
    # The journal handler runs before every other subscriber, the IPN sender included.
    handlers = sim.events.handlers(TransactionChanged)
    assert getattr(handlers[0], "__self__", None) is sim.persistence
    assert getattr(sim.events.handlers(IpnChanged)[0], "__self__", None) is sim.persistence


def test_an_ipn_record_without_its_transaction_is_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A record whose referent is missing belongs to no acknowledged operation (an IPN
    attempt that ended after its merchant was reset, or an older file's order)."""
    path = tmp_path / "state.jsonl"
    sim = Simulator(state_config(path))
    assert sim.persistence is not None
    from citcon_sim.faces.online import requests

    m = sim.ledger.merchant(TOKEN)
    txn, _ = sim.ledger.create_payment(m, requests.parse_payment(
        {"vendor": "alipay", "amount": "100", "currency": "USD", "reference": "kept"},
        "pay_qr"))
    sim.persistence.close()
    orphan = {"k": "ipn", "n": {"notify_id": "N-orphan", "transaction_id": "U9999999999-x",
                                "created_at": START.timestamp(), "state": "pending"}}
    with path.open("ab") as f:
        f.write(json.dumps(orphan).encode() + b"\n")
    with caplog.at_level(logging.WARNING, logger="citcon_sim.state"):
        sim2 = started(path)
    assert txn.id in sim2.ledger.by_id and "N-orphan" not in sim2.ipn.notifications
    assert "dropped 1 IPN record" in caplog.text


def test_a_damaged_snapshot_line_is_refused_not_overwritten(tmp_path: Path) -> None:
    """No crash cuts the first line (it is written whole, then renamed into place); a
    file cut there was damaged otherwise, and starting empty would overwrite it."""
    path = tmp_path / "state.jsonl"
    sim = Simulator(state_config(path))
    assert sim.persistence is not None
    sim.persistence.close()
    raw = path.read_bytes()
    damaged = raw[: raw.index(b"\n") // 2]
    path.write_bytes(damaged)
    with pytest.raises(StateError, match="first line .* incomplete"):
        Simulator(state_config(path))
    assert path.read_bytes() == damaged
