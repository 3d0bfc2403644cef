"""Profile the simulator under one load row at a time: ``python -m bench.profile``.

Starts the simulator as ``python -m bench`` does (real CLI, pinned), drives each chosen
row with the same load generator, samples the server with py-spy (``pip install
py-spy``) and prints, per row, the functions with the most samples: inclusive (anywhere
on the stack) and self (the frame running). Raw collapsed stacks (flamegraph.pl /
speedscope input) are kept in ``--out`` (default: a folder in the temp directory).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench import loadgen, workloads
from bench.procs import Server, baseline_argv, cpu_plan, free_port, sim_argv
from bench.run import load, prepare

ROWS = ("baseline", "pay_qr", "inquire", "qr", "refund", "wallet")


def summarise(raw: Path, top: int) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return "  (no samples)\n"
    out = [f"  {total} samples"]
    # Frames on (nearly) every stack are the event loop and the CLI: not worth listing.
    inclusive = Counter({f: n for f, n in inclusive.items() if n < 0.98 * total})
    for title, counter in (("inclusive", inclusive), ("self", own)):
        out.append(f"  top {top} {title}:")
        out += [f"    {n / total:6.1%}  {frame}" for frame, n in counter.most_common(top)]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("rows", nargs="*", help=f"some of {', '.join(ROWS)} (default: all)")
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--out", type=Path,
                   default=Path(tempfile.gettempdir()) / "citcon-sim-profiles",
                   help="where the raw collapsed stacks go (one file per row)")
    args = p.parse_args(argv)
    args.rows = args.rows or list(ROWS)
    if not set(args.rows) <= set(ROWS):
        p.error(f"rows are some of {', '.join(ROWS)}")
    if shutil.which("py-spy") is None:
        p.error("py-spy is not installed: pip install py-spy")
    args.client_used = "wrk" if loadgen.wrk_path() else "asyncio"
    args.max_requests = 5_000_000
    args.wrk_threads = 4
    args.out.mkdir(parents=True, exist_ok=True)
    server_cpu, client_cpu, pinning = cpu_plan(True)
    print(f"profiling with {args.client_used}; {pinning}", file=sys.stderr)
    port, bport = free_port(), free_port()
    with Server("citcon-sim", sim_argv(port), port, "/_sim/health", server_cpu) as sim, \
            Server("baseline", baseline_argv(bport), bport, "/hello", server_cpu) as base:
        sim.wait_healthy()
        base.wait_healthy()
        ids = asyncio.run(prepare(sim.base_url))
        plan = {
            "baseline": (base, workloads.baseline()),
            "pay_qr": (sim, workloads.pay_qr_create()),
            "inquire": (sim, workloads.inquire(ids["pending"])),
            "qr": (sim, workloads.qr_png(ids["pending"])),
            "refund": (sim, workloads.refund(ids["paid"])),
            "wallet": (sim, workloads.wallet_page(ids["pending"])),
        }
        for name in args.rows:
            server, workload = plan[name]
            assert server.proc is not None
            load(args, server, workload, client_cpu, 1)  # warm-up
            raw = args.out / f"{name}.txt"
            spy = subprocess.Popen(
                ["py-spy", "record", "-p", str(server.proc.pid), "-d", str(args.seconds),
                 "-r", str(args.rate), "-F", "-f", "raw", "-o", str(raw)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            try:
                result = load(args, server, workload, client_cpu, args.seconds)
                _, err = spy.communicate(timeout=args.seconds + 60)
            finally:
                if spy.poll() is None:
                    spy.kill()
                    spy.wait()
            if spy.returncode != 0 or not raw.exists():
                print(f"py-spy failed: {err.decode(errors='replace')}", file=sys.stderr)
                return 1
            print(f"== {workload.name}: {result.cpu_rps:.0f} req/CPU-s "
                  f"({result.rps:.0f} req/s wall, under py-spy)")
            print(summarise(raw, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
