"""A failed ``--state`` write is never visible (issue 13, item 2).

The disk fills up (``os.write`` raises ENOSPC after a byte budget, possibly after a
short write). The operation that needed the write fails with a 503 in its API's own
error shape; the file is cut back to its last complete record; the simulator then
answers every request 503 until a restart, so the change held in memory is never
served; a restart replays the file and the change is absent. Later records are never
torn or swallowed.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from citcon_sim import Config, Simulator, create_app

from .helpers import AUTH, START, create


class FullDisk:
    """``os.write`` with a byte budget for files under ``folder``; other fds untouched."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
        self.real = os.write
        self.folder = str(folder)
        self.room: int | None = None  # None: unlimited
        monkeypatch.setattr(os, "write", self.write)

    def write(self, fd: int, data: Any) -> int:
        if self.room is None or not self._ours(fd):
            return self.real(fd, data)
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        part = bytes(data[:self.room])
        self.room -= len(part)
        return self.real(fd, part)  # a short write, then ENOSPC on the rest

    def _ours(self, fd: int) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}").startswith(self.folder)
        except OSError:
            return False


def state_config(path: Path) -> Config:
    return Config(frozen_clock=True, start_time=START, seed=5, state_file=path)


def restart(path: Path) -> Simulator:
    sim = Simulator(state_config(path))
    assert sim.persistence is not None
    return sim


async def answer(resp: Any) -> tuple[int, Any]:
    return resp.status, json.loads(await resp.text())


def lines_parse(raw: bytes) -> bool:
    return raw.endswith(b"\n") and all(json.loads(line) for line in raw.splitlines())


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")
async def test_a_failed_write_is_a_503_and_then_nothing_is_served(
    aiohttp_client: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.jsonl"
    disk = FullDisk(monkeypatch, tmp_path)
    sim = restart(path)
    client = await aiohttp_client(create_app(sim))
    txn_id = await create(client, reference="kept")
    before = path.read_bytes()

    disk.room = 10  # the pay record gets 10 bytes in, then the disk is full
    status, body = await answer(await client.post(f"/_sim/transactions/{txn_id}/pay"))
    assert status == 503 and body["result"] == "fail" and body["code"] == 4000
    assert "could not be written" in body["message"]
    assert path.read_bytes() == before  # cut back: no torn record
    assert sim.failure is not None

    # The payment is paid in memory, but nobody can see it: every request is a 503.
    status, body = await answer(await client.post(
        "/payment/inquire", headers=AUTH, data={"transaction_id": txn_id}))
    assert (status, body["code"]) == (503, 4000) and set(body) == {"result", "code", "message"}
    for method, url in (("GET", f"/_sim/transactions/{txn_id}"), ("GET", "/_sim/ipn"),
                        ("POST", "/_sim/clock/advance"), ("GET", "/payment/list")):
        resp = await client.request(method, url, headers=AUTH)
        assert resp.status == 503, url
    resp = await client.get(f"/u_landing?q={txn_id}")
    assert resp.status == 503 and "success" not in await resp.text()

    disk.room = None  # space is back: still nothing is written or served until a restart
    status, _ = await answer(await client.post("/payment/refund", headers=AUTH, data={
        "transaction_id": txn_id, "amount": "1", "currency": "USD"}))
    assert status == 503
    assert path.read_bytes() == before
    await client.close()
    assert sim.persistence is not None
    sim.persistence.close()

    # A restart replays the file: the failed change is absent, as its caller was told.
    sim2 = restart(path)
    assert sim2.failure is None and sim2.ledger.by_id[txn_id].status.value == "pending"
    client2 = await aiohttp_client(create_app(sim2))
    status, body = await answer(await client2.post(
        "/payment/inquire", headers=AUTH, data={"transaction_id": txn_id}))
    assert status == 200 and body["status"] is None
    await client2.post(f"/_sim/transactions/{txn_id}/pay")  # later records are whole
    await client2.close()
    assert sim2.persistence is not None
    sim2.persistence.close()
    assert lines_parse(path.read_bytes())
    sim3 = restart(path)
    assert sim3.ledger.by_id[txn_id].status.value == "success"
    assert sim3.persistence is not None
    sim3.persistence.close()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")
async def test_a_later_record_is_never_swallowed_by_a_torn_one(
    aiohttp_client: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported defect: a torn line, then the next acknowledged record appended to
    it, unreadable. Nothing is appended after a failure; the torn part is cut off."""
    path = tmp_path / "state.jsonl"
    disk = FullDisk(monkeypatch, tmp_path)
    sim = restart(path)
    client = await aiohttp_client(create_app(sim))
    disk.room = 40
    resp = await client.post("/payment/pay_qr", headers=AUTH, data={
        "vendor": "alipay", "amount": "100", "currency": "USD", "reference": "lost"})
    assert resp.status == 503
    disk.room = None
    resp = await client.post("/payment/pay_qr", headers=AUTH, data={
        "vendor": "alipay", "amount": "100", "currency": "USD", "reference": "next"})
    assert resp.status == 503  # never acknowledged: it cannot be lost
    await client.close()
    assert sim.persistence is not None
    sim.persistence.close()
    assert lines_parse(path.read_bytes())
    assert restart(path).ledger.by_id == {}


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")
async def test_each_face_answers_503_in_its_own_shape(
    aiohttp_client: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.jsonl"
    disk = FullDisk(monkeypatch, tmp_path)
    sim = restart(path)
    client = await aiohttp_client(create_app(sim))
    disk.room = 0
    status, body = await answer(await client.post("/chop/chop", headers=AUTH, data={
        "payment_method": "alipay", "amount": "100", "currency": "USD", "reference": "c1"}))
    assert status == 503 and body["result"] == "fail" and body["code"] == 4000
    assert "error" in body and "message" not in body  # CHOP's shape
    status, body = await answer(await client.post(
        "/chop/inquire", headers=AUTH, data={"q": "c1", "inquire_method": "real"}))
    assert status == 503 and "error" in body
    await client.close()
    assert sim.persistence is not None
    sim.persistence.close()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")
async def test_a_failed_compaction_on_a_full_reset_stops_serving(
    aiohttp_client: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full reset rewrites the file; if it cannot, the old state is still on disk and
    the emptied memory must not be served."""
    path = tmp_path / "state.jsonl"
    disk = FullDisk(monkeypatch, tmp_path)
    sim = restart(path)
    client = await aiohttp_client(create_app(sim))
    txn_id = await create(client, reference="kept")
    disk.room = 0
    resp = await client.post("/_sim/reset")
    assert resp.status == 503
    resp = await client.get("/_sim/transactions")
    assert resp.status == 503
    await client.close()
    assert sim.persistence is not None
    sim.persistence.close()
    disk.room = None
    assert txn_id in restart(path).ledger.by_id
