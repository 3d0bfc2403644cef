"""Server processes for the benchmark: start pinned, wait until healthy, always stop.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    """The environment minus CITCON_SIM_*: the simulator runs with its defaults (journal,
    scenarios and logging on, access log off) whatever the caller's shell says."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CITCON_SIM_")}


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    if cpu is None:
        return argv
    return ["taskset", "-c", str(cpu), *argv]


def cpu_plan(pin: bool) -> tuple[int | None, int | None, str]:
    """(server cpu, client cpu, description): server on one core, load generator on
    another, when there are two cores and taskset; otherwise unpinned, and said so."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin:
        return None, None, "unpinned (--no-pin)"
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return None, None, "unpinned (needs 2 CPUs and taskset)"
    return cpus[0], cpus[1], f"server on CPU {cpus[0]}, load generator on CPU {cpus[1]}"


def sim_argv(port: int) -> list[str]:
    """The real CLI, default configuration except a frozen clock (nothing expires mid-run),
    a seed, and magic amounts on (off by default since issue 14; on, every merchant call
    is tried against their rules, as in the runs recorded in docs/performance.md)."""
    return [sys.executable, "-m", "citcon_sim", "serve", "--host", HOST, "--port", str(port),
            "--frozen-clock", "--seed", "1", "--magic-amounts"]


def baseline_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "bench.baseline_server", "--host", HOST, "--port", str(port)]


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    """Status of one GET on loopback, or None if nothing answers (yet)."""
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
    return _status_of(port, request.encode(), timeout)


def http_post(port: int, path: str, body: str, headers: dict[str, str],
              timeout: float = 5.0) -> int | None:
    """Status of one form POST on loopback (the first real call after start-up)."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    data = body.encode()
    request = (f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n"
               f"Content-Type: application/x-www-form-urlencoded\r\n"
               f"Content-Length: {len(data)}\r\n{extra}\r\n").encode() + data
    return _status_of(port, request, timeout)


def _status_of(port: int, request: bytes, timeout: float) -> int | None:
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(request)
            head = sock.recv(64)
    except OSError:
        return None
    try:
        return int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def compile_bytecode() -> None:
    """Compile the package's bytecode, as ``pip install`` does when it installs it.

    An editable checkout gets its ``__pycache__`` on first import, unless
    PYTHONDONTWRITEBYTECODE is set (it is on some CI machines, and was on ours): then every
    start compiles ~30 modules from source again (~28 ms), which no installed copy pays."""
    import compileall

    compileall.compile_dir(REPO_ROOT / "citcon_sim", quiet=1)
    compileall.compile_dir(REPO_ROOT / "bench", quiet=1)


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far: every thread's, in nanoseconds from
    /proc/<pid>/task/*/schedstat, else clock ticks from /proc/<pid>/stat."""
    try:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as schedstat:
                total += int(schedstat.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """One server process; ``with Server(...) as s`` guarantees it is stopped."""

    def __init__(self, name: str, argv: list[str], port: int, health_path: str,
                 cpu: int | None) -> None:
        self.name = name
        self.argv = pinned(argv, cpu)
        self.port = port
        self.health_path = health_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()
        self.started_at = 0.0
        self.cpu_at_healthy = 0.0  # CPU seconds the process had used when first healthy

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> Server:
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, cwd=REPO_ROOT, env=clean_env(),
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        return self

    def wait_healthy(self, timeout: float = 30.0, poll: float = 0.002) -> float:
        """Seconds from process start to the first 200 on the health path."""
        assert self.proc is not None
        deadline = self.started_at + timeout
        while time.perf_counter() < deadline:
            if http_status(self.port, self.health_path) == 200:
                elapsed = time.perf_counter() - self.started_at
                self.cpu_at_healthy = self.cpu_seconds()
                return elapsed
            if self.proc.poll() is not None:
                break
            time.sleep(poll)
        raise RuntimeError(f"{self.name} did not become healthy:\n{self.output()}")

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-4000:]

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
