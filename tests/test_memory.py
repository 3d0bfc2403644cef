"""Memory over a long run: stored objects frozen out of the garbage collector's way (and
freed again by a reset), and equal field values shared between transactions."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from citcon_sim import Config, Simulator
from citcon_sim.faces.online import requests


def _create(sim: Simulator, n: int) -> None:
    merchant = sim.ledger.merchant("gc-token")
    for i in range(n):
        # Fresh string objects each time, as from a request body.
        params = {"vendor": "alipay", "amount": "1000", "currency": "usd".upper(),
                  "reference": f"order-{i}", "ipn_url": "https://shop.example.com/ipn"[:],
                  "callback_url_fail": "".join(["https://shop.example.com/", "failed"]),
                  "note": f"order {i}"}
        sim.ledger.create_payment(merchant, requests.parse_payment(params, "pay_qr"))


@pytest.mark.slow
def test_frozen_ledger_is_freed_by_reset() -> None:
    sim = Simulator(Config(frozen_clock=True, seed=1))
    assert sim.freeze_stored() is False  # nothing stored yet
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _create(sim, Simulator.GC_FREEZE_STEP + 10)
        assert sim.freeze_stored() is True and gc.get_freeze_count() > 0
        assert sim.freeze_stored() is False  # not again until another step
        grown = tracemalloc.get_traced_memory()[0] - before
        sim.reset()
        assert gc.get_freeze_count() == 0  # unfrozen: cycles frozen alive can be collected
        left = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        gc.unfreeze()
    assert grown > 1_000_000
    assert left < grown / 10  # reference counting freed the frozen transactions


def test_shared_values_are_equal_and_bounded() -> None:
    sim = Simulator(Config(frozen_clock=True, seed=1))
    _create(sim, 5000)
    txns = list(sim.ledger.by_id.values())
    a, b = txns[-2], txns[-1]  # the shared table is emptied when full: neighbours share
    assert a.callback_url_fail is b.callback_url_fail == "https://shop.example.com/failed"
    assert a.currency is b.currency == "USD" and a.amount is b.amount == 1000
    assert [t.note for t in txns[:3]] == ["order 0", "order 1", "order 2"]
    assert len(sim.ledger._shared) <= 4096
