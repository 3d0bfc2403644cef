"""Persistence: GET/PUT /_sim/state snapshots and the ``--state FILE`` journal.

The last test is a real crash test: a ``citcon-sim serve --state`` subprocess is killed
with SIGKILL in the middle of a burst of requests, three times, and every operation that
was acknowledged with a 200 must be there after each restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from citcon_sim import Config, Simulator, create_app
from citcon_sim.domain.events import ClockMoved, IpnChanged, Reset, TransactionChanged
from citcon_sim.persistence.state import StateError, StateFile, restore, snapshot

from .conftest import AUTH, START, TOKEN, create

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "state_fixture.json"
OTHER = "other-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def ok(resp: Any) -> Any:
    text = await resp.text()
    assert resp.status == 200, text
    return json.loads(text)


async def merchant(client: TestClient, path: str, token: str = TOKEN, **data: Any) -> Any:
    return await ok(await client.post(f"/payment/{path}", headers=auth(token),
                                      data={k: str(v) for k, v in data.items()}))


def comparable(state: dict[str, Any]) -> dict[str, Any]:
    """A snapshot minus the wall-clock instant it was taken at."""
    state = json.loads(json.dumps(state))
    state["clock"].pop("wall")
    return state


async def build_world(client: TestClient, sim: Simulator, ipn_url: str) -> dict[str, str]:
    """Transactions in every state, two merchants, a refund, captures and a retrying IPN."""
    ids: dict[str, str] = {}
    ids["paid"] = await create(client, reference="paid", ipn_url=ipn_url)
    await ok(await client.post(f"/_sim/transactions/{ids['paid']}/pay"))
    refund = await merchant(client, "refund", transaction_id=ids["paid"], amount=300,
                            currency="USD", note="partial")
    assert refund["refunded"] is True
    ids["refund"] = refund["id"]
    ids["auth"] = await create(client, reference="auth", vendor="klarna", amount=5000)
    await ok(await client.post(f"/_sim/transactions/{ids['auth']}/pay"))
    await merchant(client, "capture", transaction_id=ids["auth"], amount=2000,
                   multi_capture="true")
    ids["pending"] = await create(client, reference="pending", timeout=3600)
    ids["short"] = await create(client, reference="short", timeout=60)
    ids["failed"] = await create(client, reference="failed")
    await ok(await client.post(f"/_sim/transactions/{ids['failed']}/fail"))
    ids["cancelled"] = await create(client, reference="cancelled", vendor="wechatpay")
    await ok(await client.post(f"/_sim/transactions/{ids['cancelled']}/pay"))
    await merchant(client, "cancel", transaction_id=ids["cancelled"])
    ids["dup1"] = await create(client, reference="dup", amount=100)
    ids["dup2"] = await create(client, reference="dup", amount=200)
    ids["other"] = await create(client, token=OTHER, reference="paid", amount=700,
                                note="other merchant", goods='{"name":"tea","qty":2}')
    await ok(await client.post(f"/_sim/transactions/{ids['other']}/pay"))
    await ok(await client.post("/_sim/clock/advance", data={"seconds": "120"}))  # short expires
    await sim.ipn.drain()  # the first IPN attempt was refused: a retry is scheduled
    return ids


def retrying(notes: list[dict[str, Any]], ids: dict[str, str]) -> dict[str, Any]:
    """The notification of the paid transaction (the only one with an ipn_url)."""
    (note,) = [n for n in notes if n["transaction_id"] == ids["paid"]]
    return note


async def answers(client: TestClient, ids: dict[str, str]) -> dict[str, Any]:
    """What merchants and tests can observe."""
    out: dict[str, Any] = {}
    for name, txn_id in ids.items():
        token = OTHER if name == "other" else TOKEN
        out[f"inquire {name}"] = await merchant(client, "inquire", token, transaction_id=txn_id)
        if name != "refund":
            out[f"sim {name}"] = await ok(await client.get(f"/_sim/transactions/{txn_id}"))
    out["by reference"] = await merchant(client, "inquire", reference="dup")
    for token in (TOKEN, OTHER):
        out[f"list {token}"] = await ok(await client.get("/payment/list", headers=auth(token)))
        out[f"balance {token}"] = await ok(await client.get(f"/_sim/balance?token={token}"))
    out["all"] = await ok(await client.get("/_sim/transactions"))
    out["clock"] = await ok(await client.get("/_sim/clock"))
    out["ipn"] = (await ok(await client.get("/_sim/ipn")))["notifications"]
    return out


async def future(client: TestClient, ids: dict[str, str]) -> list[Any]:
    """Operations after the snapshot: refund rules, the open balance, new ids, the clock."""
    return [
        await merchant(client, "refund", transaction_id=ids["paid"], amount=800,
                       currency="USD"),  # more than left
        await merchant(client, "refund", transaction_id=ids["paid"], amount=200,
                       currency="USD"),
        await merchant(client, "refund", token=OTHER, transaction_id=ids["other"],
                       amount=700, currency="USD"),
        await merchant(client, "capture", transaction_id=ids["auth"], amount=3000,
                       multi_capture="true", last_capture="true"),
        await merchant(client, "cancel", transaction_id=ids["pending"]),
        (await client.post("/payment/pay_qr", headers=AUTH, data={
            "vendor": "alipay", "amount": "55", "currency": "USD", "reference": "new"})).status,
        await ok(await client.get("/payment/list?limit=1", headers=AUTH)),
        await ok(await client.get(f"/_sim/balance?token={TOKEN}")),
        await ok(await client.post("/_sim/clock/advance", data={"seconds": "3600"})),
    ]


# -- snapshots over HTTP ---------------------------------------------------------------------


async def test_snapshot_round_trip_answers_identically(client: TestClient,
                                                       sim: Simulator) -> None:
    ids = await build_world(client, sim, f"http://127.0.0.1:{free_port()}/ipn")
    before = await answers(client, ids)
    assert retrying(before["ipn"], ids)["state"] == "retrying"
    exported = await ok(await client.get("/_sim/state"))
    assert exported["version"] == 1 and len(exported["transactions"]) == len(ids) - 1
    after_live = await future(client, ids)
    await sim.ipn.drain()
    attempts_live = len(retrying((await ok(await client.get("/_sim/ipn")))["notifications"],
                                 ids)["attempts"])

    await ok(await client.post("/_sim/reset"))
    assert (await ok(await client.get("/_sim/transactions")))["transactions"] == []
    summary = await ok(await client.put("/_sim/state", data=json.dumps(exported)))
    assert summary["restored"] is True
    assert summary["transactions"] == len(ids) - 1
    assert summary["refunds"] == 2  # the partial one, and the cancel's reversal
    assert summary["notifications"] == 4  # one retrying; three with no ipn_url

    assert await answers(client, ids) == before
    assert comparable(await ok(await client.get("/_sim/state"))) == comparable(exported)
    # The same operations give the same answers: same refund rules, balance and new ids
    # (the id generator's state is part of the snapshot); the IPN retry fired again.
    assert await future(client, ids) == after_live
    await sim.ipn.drain()
    notes = (await ok(await client.get("/_sim/ipn")))["notifications"]
    assert len(retrying(notes, ids)["attempts"]) == attempts_live


async def test_export_pretty_and_import_of_pretty(client: TestClient) -> None:
    txn_id = await create(client)
    resp = await client.get("/_sim/state?pretty=yes")
    text = await resp.text()
    assert resp.status == 200 and "\n  " in text
    await ok(await client.post("/_sim/reset"))
    await ok(await client.put("/_sim/state", data=text))
    assert (await merchant(client, "inquire", transaction_id=txn_id))["id"] == txn_id


async def test_import_fixture_file(client: TestClient, sim: Simulator) -> None:
    token = "fixture-token"
    await create(client)  # replaced by the import
    summary = await ok(await client.put("/_sim/state", data=FIXTURE.read_bytes()))
    assert summary == {"restored": True, "transactions": 3, "refunds": 1, "merchants": 1,
                       "notifications": 0, "clock": "2026-03-02T09:00:00+00:00"}
    assert (await ok(await client.get("/_sim/transactions")))["transactions"][-1]["id"] \
        == "U0000000101-00000000000000000001"
    paid = await merchant(client, "inquire", token, reference="order-paid")
    assert paid["status"] == "success" and paid["refunded_amount"] == 500
    assert paid["time"] == "2026-03-02 08:31:00"
    assert paid["refunds"][0]["note"] == "damaged"
    refund = await merchant(client, "inquire", token,
                            transaction_id="U0000000102-00000000000000000002")
    assert refund["type"] == "refund" and refund["amount"] == 500
    over = await merchant(client, "refund", token, transaction_reference="order-paid",
                          amount=2100, currency="USD")
    assert over == {"refunded": False, "status": "refund amount greater than payment amount"}
    done = await merchant(client, "refund", token, transaction_reference="order-paid",
                          amount=2000, currency="USD")
    assert done["refunded"] is True
    assert done["id"].startswith("U0000600002-")  # the counter never goes back
    balance = await ok(await client.get(f"/_sim/balance?token={token}"))
    assert balance["open_balance"] == {"USD": 3000}
    assert sim.ledger.merchants[token].settings.partner_id == "300000001"
    pending = await merchant(client, "inquire", token, reference="order-pending")
    assert pending["status"] is None
    await ok(await client.post("/_sim/clock/advance", data={"seconds": "200"}))
    assert (await merchant(client, "inquire", token, reference="order-pending"))["status"] \
        == "expired"
    captured = await merchant(client, "capture", token, reference="order-authorized")
    assert captured["amount"] == 4000 and captured["captured_amount"] == 4000


def _bad(mutate: Callable[[dict[str, Any]], Any]) -> bytes:
    data = json.loads(FIXTURE.read_text())
    mutate(data)
    return json.dumps(data).encode()


BAD_SNAPSHOTS: list[tuple[str, bytes, str]] = [
    ("not json", b"{nope", "not valid JSON"),
    ("an array", b"[]", "a snapshot is a JSON object, got an array"),
    ("version 2", _bad(lambda d: d.update(version=2)), "unsupported snapshot version 2"),
    ("no version", _bad(lambda d: d.pop("version")), "unsupported snapshot version None"),
    ("other format", _bad(lambda d: d.update(format="x")), "format is 'x'"),
    ("unknown vendor", _bad(lambda d: d["transactions"][0].update(vendor="bitcoin")),
     "transactions[0] (U0000000101-00000000000000000001).vendor: unknown vendor 'bitcoin'"),
    ("bad status", _bad(lambda d: d["transactions"][1].update(status="paid")),
     "unknown status 'paid'"),
    ("amount as text", _bad(lambda d: d["transactions"][1].update(amount="10")),
     "transactions[1] (U0000000103-00000000000000000003).amount: expected a whole number"),
    ("no created_at", _bad(lambda d: d["transactions"][1].pop("created_at")),
     ".created_at: required"),
    ("bad time", _bad(lambda d: d["transactions"][1].update(created_at="yesterday")),
     "expected epoch seconds"),
    ("duplicate id", _bad(lambda d: d["transactions"][1].update(
        id="U0000000101-00000000000000000001")), "appears twice"),
    ("refund over captured", _bad(lambda d: d["transactions"][0]["refunds"][0].update(
        amount=9000)), "needs refunded_amount (9000) <= captured_amount (2500)"),
    ("unknown currency", _bad(lambda d: d["transactions"][0].update(currency="XYZ")),
     "unknown currency"),
    ("ipn of nothing", _bad(lambda d: d.update(ipn=[{"notify_id": "n1",
                                                     "transaction_id": "U1"}])),
     "ipn[0] (n1).transaction_id: no transaction 'U1' in the snapshot"),
    ("bad settings", _bad(lambda d: d["merchants"]["fixture-token"]["settings"].update(
        refund_exempt="no")), "refund_exempt must be true or false"),
    ("transactions not a list", _bad(lambda d: d.update(transactions={})),
     "snapshot.transactions: expected an array"),
]


@pytest.mark.parametrize(("body", "message"), [(b, m) for _, b, m in BAD_SNAPSHOTS],
                         ids=[name for name, _, _ in BAD_SNAPSHOTS])
async def test_bad_snapshot_is_a_400_and_changes_nothing(
    client: TestClient, sim: Simulator, body: bytes, message: str
) -> None:
    txn_id = await create(client)
    await ok(await client.post(f"/_sim/transactions/{txn_id}/pay"))
    before = comparable(snapshot(sim))
    resp = await client.put("/_sim/state", data=body)
    answer = await resp.json()
    assert resp.status == 400, answer
    assert answer["code"] == 4100 and message in answer["message"], answer["message"]
    assert comparable(snapshot(sim)) == before
    assert (await merchant(client, "inquire", transaction_id=txn_id))["status"] == "success"


def test_strict_mode_rejects_unknown_merchants(tmp_path: Path) -> None:
    merchants = tmp_path / "merchants.yaml"
    merchants.write_text("merchants:\n  - token: known-token\n")
    sim = Simulator(Config(frozen_clock=True, start_time=START, merchants_file=merchants))
    with pytest.raises(StateError, match="not in the merchants file"):
        restore(sim, json.loads(FIXTURE.read_text()))
    assert sim.ledger.by_id == {}


# -- the --state journal, in process -----------------------------------------------------------


def state_config(path: Path, **kw: Any) -> Config:
    return Config(frozen_clock=True, start_time=START, seed=7, state_file=path, **kw)


def reopen(sim: Simulator, path: Path, **kw: Any) -> Simulator:
    assert sim.persistence is not None
    sim.persistence.close()
    return Simulator(state_config(path, **kw))


def test_no_state_file_means_no_persistence(sim: Simulator) -> None:
    assert sim.persistence is None
    handlers = [h for kind in (TransactionChanged, IpnChanged, ClockMoved, Reset)
                for h in sim.events.handlers(kind)]
    assert all(not isinstance(getattr(h, "__self__", None), StateFile) for h in handlers)


async def test_journal_restores_ledger_clock_and_balances(
    aiohttp_client: Callable[..., Any], tmp_path: Path
) -> None:
    path = tmp_path / "state.jsonl"
    sim = Simulator(state_config(path))
    client = await aiohttp_client(create_app(sim))
    ids = await build_world(client, sim, f"http://127.0.0.1:{free_port()}/ipn")
    before = await answers(client, ids)
    await client.close()
    lines = path.read_bytes().splitlines()
    assert json.loads(lines[0])["k"] == "snapshot" and len(lines) > 10

    sim2 = reopen(sim, path)
    client2 = await aiohttp_client(create_app(sim2))
    restored = await answers(client2, ids)
    # Stats are recounted from the log; everything a merchant or a test sees is identical.
    assert restored == before
    assert len(path.read_bytes().splitlines()) == 1  # compacted on start
    # The pending IPN retry was rescheduled: advancing the clock fires it.
    assert (await ok(await client2.get("/_sim/clock")))["pending_jobs"] == 1
    tried = len(retrying(before["ipn"], ids)["attempts"])
    fired = await ok(await client2.post("/_sim/clock/advance", data={"seconds": "3600"}))
    assert fired["jobs_run"] == 1
    await sim2.ipn.drain()
    note = retrying((await ok(await client2.get("/_sim/ipn")))["notifications"], ids)
    assert [a["trigger"] for a in note["attempts"]] == ["first"] + ["retry"] * tried
    # New ids continue after the restored ones.
    new_id = await create(client2, reference="after-restart")
    assert int(new_id[1:11]) > max(int(i[1:11]) for i in ids.values())
    await client2.close()
    sim3 = reopen(sim2, path)
    assert len(sim3.ipn.notifications[note["notify_id"]].attempts) == tried + 1
    assert sim3.clock.time() == sim2.clock.time()
    assert sim3.persistence is not None
    sim3.persistence.close()


async def test_scripted_payment_and_delayed_ipn_survive_restarts(
    aiohttp_client: Callable[..., Any], tmp_path: Path
) -> None:
    """Magic amount …9904: pays after 30 s, IPN 60 s late — both are scheduler jobs."""
    path = tmp_path / "state.jsonl"
    sim = Simulator(state_config(path, magic_amounts=True))
    client = await aiohttp_client(create_app(sim))
    txn_id = await create(client, amount=19904, ipn_url=f"http://127.0.0.1:{free_port()}/")
    await client.close()

    sim2 = reopen(sim, path)
    txn = sim2.ledger.by_id[txn_id]
    assert txn.script is not None and txn.script.name.endswith("IPN 60 s late")
    assert sim2.scheduler.pending() == [(txn.created_at + 30, f"pay {txn_id}")]
    sim2.advance(30)
    assert txn.status.value == "success"
    (note,) = sim2.ipn.for_transaction(txn_id)
    assert note.state == "pending" and note.next_attempt_at == txn.paid_at + 60

    sim3 = reopen(sim2, path)
    (note,) = sim3.ipn.for_transaction(txn_id)
    assert note.script is not None and note.script.delay == 60
    assert [label for _, label in sim3.scheduler.pending()] == [f"ipn {note.notify_id} first"]
    client3 = await aiohttp_client(create_app(sim3))
    sim3.advance(60)
    await sim3.ipn.drain()
    assert [a.trigger for a in note.attempts] == ["first"] and note.state == "retrying"
    await client3.close()
    assert sim3.persistence is not None
    sim3.persistence.close()


def test_running_clock_counts_the_downtime(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    config = Config(start_time=START, state_file=path)  # a running clock
    sim = Simulator(config)
    sim.advance(600)
    assert sim.persistence is not None
    sim.persistence.close()
    # Pretend the simulator was stopped for an hour: the saved wall time is an hour older.
    header = json.loads(path.read_bytes().splitlines()[-1])
    header["wall"] -= 3600
    with path.open("ab") as f:
        f.write(json.dumps(header).encode() + b"\n")
    sim2 = Simulator(config)
    assert 3600 <= sim2.clock.time() - header["time"] < 3600 + 60
    assert sim2.persistence is not None
    sim2.persistence.close()
    # A frozen clock resumes exactly where it was.
    sim3 = Simulator(Config(frozen_clock=True, state_file=path))
    assert sim3.clock.time() == pytest.approx(sim2.clock.time(), abs=60)
    assert sim3.persistence is not None
    sim3.persistence.close()


def test_resets_are_journaled(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    sim = Simulator(state_config(path))
    m1, m2 = sim.ledger.merchant("one"), sim.ledger.merchant("two")
    from citcon_sim.faces.online import requests

    def pay(m: Any, ref: str) -> str:
        cmd = requests.parse_payment({"vendor": "alipay", "amount": "100", "currency": "USD",
                                      "reference": ref}, "pay_qr")
        txn, _ = sim.ledger.create_payment(m, cmd)
        return txn.id

    a, b = pay(m1, "a"), pay(m2, "b")
    sim.reset("one")
    sim2 = reopen(sim, path)
    assert set(sim2.ledger.by_id) == {b} and a not in sim2.ledger.by_id
    sim2.reset()
    assert len(path.read_bytes().splitlines()) == 1  # a full reset starts the file over
    sim3 = reopen(sim2, path)
    assert sim3.ledger.by_id == {} and sim3.ledger.merchants == {}
    assert sim3.persistence is not None
    sim3.persistence.close()


def test_torn_last_line_and_garbage_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    sim = Simulator(state_config(path))
    txn_id = _paid(sim, "kept")
    assert sim.persistence is not None
    sim.persistence.close()
    with path.open("ab") as f:
        f.write(b'{"k":"txn","t":{"id":"U00')  # the process died inside a write
    sim2 = Simulator(state_config(path))
    assert sim2.ledger.by_id[txn_id].refunded_amount == 10
    assert sim2.persistence is not None
    sim2.persistence.close()


def _paid(sim: Simulator, ref: str) -> str:
    from citcon_sim.faces.online import requests

    m = sim.ledger.merchant(TOKEN)
    cmd = requests.parse_payment({"vendor": "alipay", "amount": "100", "currency": "USD",
                                  "reference": ref, "allow_duplicates": "yes"}, "pay_qr")
    txn, _ = sim.ledger.create_payment(m, cmd)
    sim.ledger.consumer_pay(txn.id)
    refund = requests.parse_refund({"transaction_id": txn.id, "amount": "10",
                                    "currency": "USD"})
    assert sim.ledger.refund(m, refund).refunded
    return txn.id


def test_journal_compacts_every_n_records(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(StateFile, "min_records", 20)
    path = tmp_path / "state.jsonl"
    sim = Simulator(state_config(path))
    ids = [_paid(sim, f"r{i}") for i in range(40)]  # 3 records each
    persistence = sim.persistence
    assert persistence is not None and persistence.compactions >= 3
    assert len(path.read_bytes().splitlines()) <= persistence.threshold + 1
    sim2 = reopen(sim, path)
    assert list(sim2.ledger.by_id) == ids
    assert all(t.refunded_amount == 10 for t in sim2.ledger.by_id.values())
    assert sim2.persistence is not None
    sim2.persistence.close()


def test_state_file_is_locked_and_private(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    sim = Simulator(state_config(path))
    assert path.stat().st_mode & 0o077 == 0
    with pytest.raises(StateError, match="in use by another citcon-sim"):
        Simulator(state_config(path))
    assert sim.persistence is not None
    sim.persistence.close()


def test_refuses_to_overwrite_a_file_that_is_not_state(tmp_path: Path) -> None:
    path = tmp_path / "merchants.yaml"
    path.write_text("merchants:\n  - token: x\n")
    with pytest.raises(StateError, match="not a citcon-sim state file"):
        Simulator(state_config(path))
    assert path.read_text() == "merchants:\n  - token: x\n"


def test_cli_reports_an_unusable_state_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from citcon_sim.cli import main

    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    result = CliRunner().invoke(main, ["serve", "--port", "0", "--state", str(path)])
    assert result.exit_code == 1
    assert "--state: " in result.output and "not a citcon-sim state file" in result.output
    assert path.read_text() == "hello\n"


def test_a_snapshot_file_starts_the_state(tmp_path: Path) -> None:
    path = tmp_path / "fixture.json"
    shutil.copy(FIXTURE, path)
    sim = Simulator(state_config(path))
    assert len(sim.ledger.by_id) == 3
    assert sim.clock.now().isoformat() == "2026-03-02T09:00:00+00:00"
    assert json.loads(path.read_bytes().splitlines()[0])["k"] == "snapshot"  # now a journal
    assert sim.persistence is not None
    sim.persistence.close()


def test_a_bad_snapshot_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "fixture.json"
    path.write_bytes(_bad(lambda d: d.update(version=9)))
    with pytest.raises(StateError, match="unsupported snapshot version 9"):
        Simulator(state_config(path))


async def test_import_with_state_file_is_persisted(
    aiohttp_client: Callable[..., Any], tmp_path: Path
) -> None:
    path = tmp_path / "state.jsonl"
    sim = Simulator(state_config(path))
    client = await aiohttp_client(create_app(sim))
    await create(client)
    await ok(await client.put("/_sim/state", data=FIXTURE.read_bytes()))
    await client.close()
    sim2 = reopen(sim, path)
    assert sorted(sim2.ledger.by_id) == sorted(t["id"] for t in
                                               json.loads(FIXTURE.read_text())["transactions"])
    assert sim2.persistence is not None
    sim2.persistence.close()


# -- the public export/load API, and fresh objects on reset and restore --------------------


def _world(sim: Simulator) -> tuple[str, str, str]:
    """Two merchants, a shared reference, a refund: (paid id, duplicate id, other id)."""
    paid = _paid(sim, "dup")
    dup = _paid(sim, "dup")
    m2 = sim.ledger.merchant(OTHER)
    from citcon_sim.faces.online import requests

    cmd = requests.parse_payment({"vendor": "alipay", "amount": "700", "currency": "USD",
                                  "reference": "x"}, "pay_qr")
    other, _ = sim.ledger.create_payment(m2, cmd)
    return paid, dup, other.id


def test_ledger_load_builds_a_fresh_ledger_with_its_indexes(sim: Simulator) -> None:
    from citcon_sim.domain.commands import Lookup
    from citcon_sim.domain.ids import IdFactory
    from citcon_sim.domain.ledger import Ledger

    paid, dup, other = _world(sim)
    old = sim.ledger
    export = old.export()
    assert [t.id for t in export.transactions] == [paid, dup, other]
    assert set(export.merchants) == {TOKEN, OTHER}
    loaded = Ledger.load(export, sim.clock, fx=old.fx)
    assert loaded is not old and loaded.ids is not old.ids
    assert list(loaded.by_id) == [paid, dup, other]
    assert loaded.refunds_by_id.keys() == old.refunds_by_id.keys()
    assert len(loaded.refunds_by_id) == 2
    m = loaded.merchants[TOKEN]
    assert m is not old.merchants[TOKEN] and m.settings is old.merchants[TOKEN].settings
    assert [t.id for t in m.with_reference("dup")] == [paid, dup]  # index rebuilt
    assert loaded.find(m, Lookup(None, "dup")) is loaded.by_id[dup]
    assert loaded.open_balance(m) == old.open_balance(old.merchants[TOKEN]) == {"USD": 180}
    # The id factory continues exactly: both hand out the same next ids.
    assert loaded.ids.transaction() == old.ids.transaction()
    assert loaded.ids.notify() == old.ids.notify()
    # An export of the loaded ledger is the same state.
    again = loaded.export()
    assert again.transactions == export.transactions
    assert {t: (e.balance_day, e.balances) for t, e in again.merchants.items()} == \
        {t: (e.balance_day, e.balances) for t, e in export.merchants.items()}
    fresh = IdFactory.load(again.ids)
    assert fresh.counter == loaded.ids.counter


def test_ledger_load_refuses_an_id_twice(sim: Simulator) -> None:
    from msgspec.structs import replace

    from citcon_sim.domain.ledger import Ledger

    paid, _, _ = _world(sim)
    export = sim.ledger.export()
    twice = replace(export, transactions=[*export.transactions, sim.ledger.by_id[paid]])
    with pytest.raises(ValueError, match="appears twice"):
        Ledger.load(twice, sim.clock)


def test_clock_export_resumes_a_running_clock_only() -> None:
    from citcon_sim.domain.clock import ClockExport

    saved = ClockExport(1000.0, frozen=False, wall=0.0)
    assert saved.resumed(frozen=True) == saved  # a frozen clock: the saved time exactly
    assert ClockExport(1000.0, frozen=True, wall=0.0).resumed(frozen=False).time == 1000.0
    assert ClockExport(1000.0, frozen=False).resumed(frozen=False).time == 1000.0  # no wall
    assert saved.resumed(frozen=False).time > 1000.0 + 1e9  # the downtime since 1970


async def test_full_reset_installs_a_fresh_ledger_and_ipn_log(client: TestClient,
                                                              sim: Simulator) -> None:
    txn_id = await create(client, ipn_url=f"http://127.0.0.1:{free_port()}/ipn")
    await ok(await client.post(f"/_sim/transactions/{txn_id}/pay"))
    old_ledger, old_log = sim.ledger, sim.ipn.notifications
    assert len(old_log) == 1
    await ok(await client.post("/_sim/reset"))
    assert sim.ledger is not old_ledger and sim.ipn.notifications is not old_log
    assert sim.ledger.events is sim.events  # wired the same way
    assert sim.ipn.ledger is sim.ledger and sim.ledger.ids is old_ledger.ids
    assert sim.ipn.notifications == {} and sim.ipn.stats["notifications"] == 0
    # Still wired: a payment on the new ledger records its IPN.
    again = await create(client, ipn_url=f"http://127.0.0.1:{free_port()}/ipn")
    assert again != txn_id
    await ok(await client.post(f"/_sim/transactions/{again}/pay"))
    assert [n.transaction_id for n in sim.ipn.notifications.values()] == [again]


async def test_restore_installs_fresh_objects_and_a_bad_one_keeps_the_live_ones(
    client: TestClient, sim: Simulator
) -> None:
    await create(client)
    live = sim.ledger
    resp = await client.put("/_sim/state", data=_bad(lambda d: d.update(version=2)))
    assert resp.status == 400 and sim.ledger is live
    await ok(await client.put("/_sim/state", data=FIXTURE.read_bytes()))
    assert sim.ledger is not live and sim.ledger.events is sim.events
    assert sim.ipn.ledger is sim.ledger


def test_a_full_reset_keeps_journaling(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    sim = Simulator(state_config(path))
    _paid(sim, "before")
    sim.reset()
    kept = _paid(sim, "after")  # on the fresh ledger: still journaled
    sim2 = reopen(sim, path)
    assert list(sim2.ledger.by_id) == [kept]
    assert sim2.persistence is not None
    sim2.persistence.close()


# -- a real crash: SIGKILL in the middle of a burst, three times ---------------------------


class Server:
    """``python -m citcon_sim serve --state FILE`` as a subprocess on 127.0.0.1."""

    def __init__(self, state: Path, log: Path) -> None:
        self.state, self.log = state, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    async def start(self, session: aiohttp.ClientSession) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITCON_SIM_")}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "citcon_sim", "serve", "--host", "127.0.0.1",
                 "--port", str(port), "--frozen-clock", "--state", str(self.state)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        for _ in range(600):  # bounded: 30 s at most
            if self.proc.poll() is not None:
                pytest.fail(f"the simulator exited: {self.log.read_text()[-2000:]}")
            try:
                async with session.get(f"{self.base}/_sim/health") as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.05)
        pytest.fail("the simulator did not become ready")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)

    def wait(self) -> int | None:
        return None if self.proc is None else self.proc.wait(timeout=30)


class Acknowledged:
    """Every operation the server answered with a 200."""

    def __init__(self) -> None:
        self.created: set[str] = set()
        self.paid: set[str] = set()
        self.refunds: dict[str, tuple[str, int]] = {}  # refund id -> (transaction id, amount)
        self.count = 0
        self.in_flight = 0
        self.in_flight_at_kill: list[int] = []


async def burst(session: aiohttp.ClientSession, server: Server, acked: Acknowledged,
                cycle: int, kill_after: int) -> int:
    """Chains of create -> pay -> two partial refunds, 16 chains at a time (so creates,
    pays and refunds are all in flight together); SIGKILL after ``kill_after``
    acknowledgements. Returns the number of chains cut short."""
    target = acked.count + kill_after

    def ack() -> None:
        acked.count += 1
        if acked.count == target:
            acked.in_flight_at_kill.append(acked.in_flight)
            server.kill()

    async def call(method: str, path: str, **data: str) -> tuple[int, str]:
        acked.in_flight += 1
        try:
            async with session.request(method, server.base + path, data=data,
                                       headers=AUTH) as resp:
                return resp.status, await resp.text()
        finally:
            acked.in_flight -= 1

    async def chain(i: int) -> bool:
        try:
            status, text = await call("POST", "/payment/pay_qr", vendor="alipay",
                                      amount="1000", currency="USD",
                                      reference=f"c{cycle}-{i}")
            if status != 200:
                return False
            txn_id = text.split("=")[1].split("&")[0]
            acked.created.add(txn_id)
            ack()
            status, _ = await call("POST", f"/_sim/transactions/{txn_id}/pay")
            if status != 200:
                return False
            acked.paid.add(txn_id)
            ack()
            for amount in (100, 250):
                status, text = await call("POST", "/payment/refund", transaction_id=txn_id,
                                          amount=str(amount), currency="USD")
                body = json.loads(text) if status == 200 else {}
                if not body.get("refunded"):
                    return False
                acked.refunds[body["id"]] = (txn_id, amount)
                ack()
            return True
        except (aiohttp.ClientError, OSError, TimeoutError, json.JSONDecodeError):
            return False

    chains = iter(range(75))  # at most 300 operations
    results: list[bool] = []

    async def worker() -> None:
        for i in chains:
            results.append(await chain(i))

    await asyncio.gather(*(worker() for _ in range(16)))
    return results.count(False)


async def verify(session: aiohttp.ClientSession, server: Server, acked: Acknowledged) -> None:
    refunds_of: dict[str, dict[str, int]] = {}
    for rid, (txn_id, amount) in acked.refunds.items():
        refunds_of.setdefault(txn_id, {})[rid] = amount
    captured = refunded = 0
    for txn_id in sorted(acked.created):
        async with session.get(f"{server.base}/_sim/transactions/{txn_id}") as resp:
            assert resp.status == 200, f"acknowledged {txn_id} is lost"
            body = await resp.json()
        assert body["amount"] == 1000
        if txn_id in acked.paid:
            assert body["internal_status"] == "success", body
        found = {r["id"]: r["amount"] for r in body["refunds"]}
        for rid, amount in refunds_of.get(txn_id, {}).items():
            assert found.get(rid) == amount, f"acknowledged refund {rid} is lost"
        assert body["refunded_amount"] == sum(found.values())
        assert body["refunded_amount"] <= body["captured_amount"]
        captured += body["captured_amount"]
        refunded += body["refunded_amount"]
    for rid, (_, amount) in list(acked.refunds.items())[:20]:  # the merchant's view too
        async with session.post(f"{server.base}/payment/inquire", headers=AUTH,
                                data={"transaction_id": rid}) as resp:
            body = await resp.json()
            assert body["type"] == "refund" and body["amount"] == amount
    async with session.get(f"{server.base}/_sim/balance?token={TOKEN}") as resp:
        balance = (await resp.json())["open_balance"]
    assert balance.get("USD", 0) == captured - refunded


@pytest.mark.slow
async def test_every_acknowledged_operation_survives_sigkill(tmp_path: Path) -> None:
    server = Server(tmp_path / "state.jsonl", tmp_path / "server.log")
    acked = Acknowledged()
    kills = 0
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            await server.start(session)
            for cycle in range(3):
                cut_short = await burst(session, server, acked, cycle, kill_after=90 + 20 * cycle)
                assert server.wait() == -signal.SIGKILL
                kills += 1
                assert cut_short > 0 and acked.in_flight_at_kill[-1] > 0  # mid-burst
                await server.start(session)
                await verify(session, server, acked)
            assert kills == 3 and len(acked.created) >= 3 * 20 and acked.refunds
            print(f"kills={kills} acknowledged={acked.count} created={len(acked.created)} "
                  f"refunds={len(acked.refunds)} in flight at kills={acked.in_flight_at_kill}")
            # Still usable after the last restart: fresh ids, refunds work.
            status = 0
            async with session.post(f"{server.base}/payment/pay_qr", headers=AUTH, data={
                "vendor": "alipay", "amount": "10", "currency": "USD",
                "reference": "after"}) as resp:
                status, text = resp.status, await resp.text()
            assert status == 200 and text.split("=")[1] not in acked.created
        finally:
            server.kill()
            server.wait()
