"""Smoke test of the benchmark suite (``python -m bench``; docs/performance.md).

A seconds-long run with tiny request counts through the in-repo asyncio client, so it
needs nothing beyond the test dependencies (no wrk, no taskset). It checks only that the
benchmark runs end to end and reports every row with sane, positive numbers: timed
assertions never go into the test suite, whatever the targets say.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs the benchmark script in a subprocess

REPO = Path(__file__).resolve().parent.parent
ROWS = (
    "baseline (aiohttp form hello)",
    "pay_qr create",
    "inquire",
    "QR PNG GET (same txn)",
    "refund (partial, 1 cent)",
    "wallet page GET",
)
TARGETS = (
    "pay_qr create ≥ 0.37 × baseline",
    "inquire ≥ 0.7 × baseline",
    "QR PNG GET (same txn) ≥ 0.8 × baseline",
    "p99 ≤ 5 ms",
    "create rate with 1,000,000 stored",
    "RSS per stored transaction",
    "start → healthy",
    "pay → IPN",
    "IPN fairness",
)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--no-pin", "--client", "asyncio",
         "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=180, encoding="utf-8",
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return run.stdout, json.loads(out.read_text(encoding="utf-8"))


def test_table_has_every_row_and_target(smoke: tuple[str, dict]) -> None:
    table = smoke[0]
    for name in ROWS + TARGETS:
        assert name in table, f"{name!r} missing from:\n{table}"
    _, data = smoke
    for check in data["checks"]:  # every target is printed with its verdict
        assert any(check["target"] in line and line.rstrip().endswith(check["verdict"])
                   for line in table.splitlines()), check


def test_load_rows_are_sane(smoke: tuple[str, dict]) -> None:
    _, data = smoke
    rows = {row["name"]: row for row in data["rows"]}
    assert set(rows) == set(ROWS)
    for name, row in rows.items():
        assert row["rps"] > 0 and row["ratio"] > 0, name
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["worst_p99_ms"], name
        assert row["errors"] == 0, f"{name}: the benchmark timed failing requests"
        assert all(run["requests"] > 0 for run in row["runs"]), name


def test_other_measurements_are_sane(smoke: tuple[str, dict]) -> None:
    _, data = smoke
    start, mem, ipn = data["startup"], data["memory"], data["ipn"]
    assert start["sim_median"] > 0 and start["minimal_median"] > 0
    assert mem["stored"] >= 2_000 and mem["rss_per_txn"] > 0
    assert mem["empty_rate"] > 0 and mem["full_rate"] > 0 and mem["rate_ratio"] > 0
    assert ("skipped" in ipn) or (ipn["count"] > 0 and ipn["median_ms"] > 0)
    fair = data["fairness"]
    assert fair["hanging"] > 0 and 0 < fair["arrived"] == fair["healthy"]
    assert 0 < fair["median_ms"] <= fair["max_ms"]
    verdicts = {c["verdict"] for c in data["checks"]}
    assert verdicts <= {"PASS", "FAIL", "PASS*", "FAIL*", "SKIP"}
    assert len(data["checks"]) == 3 + 5 + 5
