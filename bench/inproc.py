"""In-process domain measurements, run in a fresh interpreter (``python -m bench.inproc``):

- RSS growth per stored transaction: a Simulator, ``stored`` pay_qr creates through the
  real parsing path (``parse_qsl`` → ``params.normalise`` → ``requests.parse_payment`` →
  ``Ledger.create_payment``), RSS from /proc/self/statm before and after, divided.
- create rate with ``stored`` transactions held versus an empty ledger: windows of
  ``sample`` creates timed in CPU seconds, alternating between a fresh (empty) Simulator
  and the full one; the ratio is the median of the pairs' ratios.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from urllib.parse import parse_qsl

from bench.workloads import PAY_QR_BODY, TOKEN
from citcon_sim import Config, Simulator
from citcon_sim.faces.online import requests
from citcon_sim.faces.params import MAX_KEYS, normalise

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


class Creator:
    def __init__(self, prefix: str) -> None:
        self.sim = Simulator(Config(frozen_clock=True, seed=1))
        self.merchant = self.sim.ledger.merchant(TOKEN)
        self.prefix = prefix
        self.n = 0

    def create(self, count: int) -> float:
        """Create ``count`` payments; CPU seconds taken (other processes sharing the core
        on a busy machine do not count)."""
        ledger, merchant, prefix = self.sim.ledger, self.merchant, self.prefix
        started = time.process_time()
        for _ in range(count):
            self.n += 1
            body = PAY_QR_BODY.replace("{n}", f"{prefix}{self.n}")
            params = normalise(parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_KEYS))
            ledger.create_payment(merchant, requests.parse_payment(params, "pay_qr"))
        return time.process_time() - started

    @property
    def stored(self) -> int:
        return len(self.sim.ledger.by_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stored", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    gen2 = {"seconds": 0.0, "started": 0.0, "count": 0}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            gen2["started"] = time.process_time()
        else:
            gen2["seconds"] += time.process_time() - gen2["started"]
            gen2["count"] += 1

    gc.callbacks.append(on_gc)

    full = Creator("full-")
    full.create(100)  # first-use allocations (templates, caches) are not per-transaction
    gc.collect()
    rss_before = rss_bytes()
    fill_started = time.perf_counter()
    full.create(args.stored - full.stored)
    fill_seconds = time.perf_counter() - fill_started
    gc.collect()
    rss_after = rss_bytes()
    stored = full.stored

    # Alternate windows: a fresh Simulator (nothing stored), then the full one; the ratio
    # is the median of the pairs' ratios.
    empty_rates: list[float] = []
    full_rates: list[float] = []
    gen2["seconds"], gen2["count"] = 0.0, 0
    for rep in range(args.reps):
        empty = Creator(f"empty{rep}-")
        empty_rates.append(args.sample / empty.create(args.sample))
        del empty
        full_rates.append(args.sample / full.create(args.sample))
    window_gen2 = (gen2["count"], gen2["seconds"])
    # What one full (generation 2) collection costs with everything stored: a request
    # that happens to trigger one waits this long.
    pauses = []
    for _ in range(3):
        started = time.process_time()
        gc.collect()
        pauses.append(time.process_time() - started)
    result = {
        "stored": stored,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "rss_per_txn": (rss_after - rss_before) / max(1, stored - 100),
        "fill_seconds": fill_seconds,
        "sample": args.sample,
        "empty_rates": empty_rates,
        "full_rates": full_rates,
        "rate_ratio": statistics.median(f / e for f, e in zip(full_rates, empty_rates,
                                                                strict=True)),
        "empty_rate": statistics.median(empty_rates),
        "full_rate": statistics.median(full_rates),
        "gen2_collections_in_windows": window_gen2[0],
        "gen2_seconds_in_windows": window_gen2[1],
        "full_gc_pause_seconds": statistics.median(pauses),
        "gc_tracked_objects": len(gc.get_objects()),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
