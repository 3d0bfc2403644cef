"""Load generators: wrk (Debian's ``wrk`` with a generated Lua script) when installed,
else the in-repo asyncio client. Both keep ``connections`` keep-alive connections busy,
closed loop, for a bounded time and a bounded number of requests, and report the same
numbers: requests, elapsed seconds, p50, p99 and errors.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

from bench.workloads import Workload

_RUNS = itertools.count(1)


@dataclass
class LoadResult:
    name: str
    tool: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int = 0  # connection errors, timeouts and HTTP status >= 400
    server_cpu: float = 0.0  # CPU seconds the server process used during the run

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_rps(self) -> float:
        """Requests per CPU-second of the server: its capacity on a core of its own, which
        a busy machine (other processes taking turns on that core) does not change."""
        return self.requests / self.server_cpu if self.server_cpu > 0 else 0.0

    @property
    def cpu_share(self) -> float:
        return self.server_cpu / self.seconds if self.seconds > 0 else 0.0


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str:
    path = wrk_path()
    if path is None:
        return "not installed"
    out = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
    match = re.search(r"wrk\s+(\S+)", out.stdout + out.stderr)
    return match.group(1) if match else "unknown"


def _run_prefix() -> str:
    # Unique per generator invocation: warm-up and measured runs never repeat a reference.
    return f"b{os.getpid()}x{next(_RUNS)}r"


# -- wrk ----------------------------------------------------------------------------------


def _lua_str(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r", "\\r").replace("\n", "\\n") + '"'


def wrk_script(workload: Workload, prefix: str) -> str:
    headers = ", ".join(f"[{_lua_str(k)}] = {_lua_str(v)}" for k, v in workload.headers.items())
    lines = [f"local headers = {{{headers}}}"]
    if workload.unique:
        head, _, tail = workload.body.partition("{n}")
        if "{n}" in tail:  # several placeholders: rebuild the whole body per request
            parts = workload.body.split("{n}")
            lines.append(f"local parts = {{{', '.join(_lua_str(p) for p in parts)}}}")
            build = "table.concat(parts, id)"
        else:
            lines.append(f"local head, tail = {_lua_str(head)}, {_lua_str(tail)}")
            build = "head .. id .. tail"
        lines += [
            # Each wrk thread has its own Lua state: setup() numbers them so that the
            # per-thread counters never produce the same reference twice.
            "local threads = 0",
            "setup = function(thread)",
            "  threads = threads + 1",
            "  thread:set(\"tid\", threads)",
            "end",
            "local counter = 0",
            "request = function()",
            "  counter = counter + 1",
            f"  local id = {_lua_str(prefix)} .. tid .. \"t\" .. counter",
            f"  return wrk.format({_lua_str(workload.method)}, {_lua_str(workload.path)}, "
            f"headers, {build})",
            "end",
        ]
    else:
        lines += [
            f"wrk.method = {_lua_str(workload.method)}",
            f"wrk.path = {_lua_str(workload.path)}",
            "for k, v in pairs(headers) do wrk.headers[k] = v end",
        ]
        if workload.body:
            lines.append(f"wrk.body = {_lua_str(workload.body)}")
    lines += [
        "done = function(summary, latency, requests)",
        "  local e = summary.errors",
        '  io.write(string.format("BENCH_RESULT %.0f %.0f %.0f %.0f %.0f\\n",',
        "    summary.requests, summary.duration, latency:percentile(50),",
        "    latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))",
        "end",
    ]
    return "\n".join(lines) + "\n"


def run_wrk(
    base_url: str,
    workload: Workload,
    *,
    seconds: float,
    connections: int,
    cpu: int | None,
    threads: int = 4,
) -> LoadResult:
    """One wrk run. Several wrk threads share the client core: on the 2-core machine this
    was written on, one wrk thread with 16 connections topped out near 10k req/s
    (round-trip bound, 20% of a core) and left the baseline server half idle; four
    threads saturate it."""
    path = wrk_path()
    if path is None:
        raise RuntimeError("wrk is not installed")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_script(workload, _run_prefix()))
    try:
        cmd = [path, f"-t{max(1, min(threads, connections))}", f"-c{connections}",
               f"-d{max(1, round(seconds))}s", "--timeout", "2s", "-s", script.name,
               base_url + workload.path]
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    finally:
        os.unlink(script.name)
    match = re.search(r"BENCH_RESULT (\d+) (\d+) (\d+) (\d+) (\d+)", out.stdout)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}{out.stderr}")
    requests, micros, p50, p99, errors = (int(g) for g in match.groups())
    return LoadResult(workload.name, "wrk", requests, micros / 1e6, p50 / 1000, p99 / 1000,
                      errors)


# -- the in-repo asyncio client -------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


async def _connection(
    host: str,
    port: int,
    workload: Workload,
    prefix: str,
    counter: itertools.count[int],
    deadline: float,
    limit: int,
    latencies: list[float],
    failures: list[int],
) -> None:
    reader = writer = None
    static = None if workload.unique else workload.http_request(f"{host}:{port}", workload.body)
    try:
        while time.perf_counter() < deadline:
            n = next(counter)
            if n > limit:
                return
            request = static or workload.http_request(
                f"{host}:{port}", workload.body_for(prefix, n)
            )
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                    started = time.perf_counter()  # connecting is not the request's latency
                assert reader is not None
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                lowered = head.lower()
                found = re.search(rb"\r\ncontent-length:\s*(\d+)", lowered)
                if found is None:
                    raise ConnectionError("response without Content-Length")
                await reader.readexactly(int(found.group(1)))
            except (OSError, asyncio.IncompleteReadError, ValueError, asyncio.LimitOverrunError):
                failures[0] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)  # a refused connection must not spin
                continue
            latencies.append(time.perf_counter() - started)
            if status >= 400:
                failures[0] += 1
            if b"\r\nconnection: close" in lowered:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


async def run_asyncio(
    host: str,
    port: int,
    workload: Workload,
    *,
    seconds: float,
    connections: int,
    max_requests: int,
) -> LoadResult:
    latencies: list[float] = []
    failures = [0]
    counter = itertools.count(1)
    started = time.perf_counter()
    deadline = started + seconds
    prefix = _run_prefix()
    await asyncio.gather(*(
        _connection(host, port, workload, prefix, counter, deadline, max_requests, latencies,
                    failures)
        for _ in range(connections)
    ))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return LoadResult(workload.name, "asyncio", len(latencies), elapsed,
                      percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000,
                      failures[0])
