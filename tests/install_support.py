"""Installing citcon-sim the way a new user does, for the tests that check it works:
a copy of what gets packaged, a fresh virtual environment, and ``citcon-sim serve`` run
in the background until its banner says where it listens."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import venv
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What the Dockerfile's build stage copies: all a wheel is built from.
PACKAGED = ("pyproject.toml", "README.md", "citcon_sim")
BANNER = re.compile(r"listening on (http://127\.0\.0\.1:(\d+))")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would let a program find this checkout or
    the test run's own environment (PYTHONPATH, a virtualenv), nor CITCON_SIM_* settings."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PIP_REQUIRE_VIRTUALENV")
    env = {k: v for k, v in os.environ.items()
           if k not in drop and not k.startswith("CITCON_SIM_")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return {**env, **extra}


def copy_source(dest: Path) -> Path:
    """The packaged files of the checkout, copied to ``dest`` (a build writes ``build/``
    and ``*.egg-info`` next to its sources; the checkout stays untouched)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PACKAGED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def fresh_venv(path: Path) -> Path:
    """A new virtual environment with pip and no system site-packages; its bin folder."""
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(path)
    return path / ("Scripts" if sys.platform == "win32" else "bin")


def run(argv: Sequence[str], *, timeout: float = 300, **kwargs: object
        ) -> subprocess.CompletedProcess[str]:
    """Run to completion; a non-zero exit fails the test with the program's output."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                            check=False, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, (
        f"{' '.join(map(str, argv))} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


class Background:
    """A command running in its own process group, its output read line by line."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True)  # a shell's children are stopped with it
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")  # end of output

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """The first output line matching ``pattern``; fails if the program ends first."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern.pattern!r} within "
                                     f"{timeout} s:\n{''.join(self.output)}") from None
            self.output.append(line)
            if not line:
                raise AssertionError(f"exited ({self.proc.wait()}) before printing "
                                     f"{pattern.pattern!r}:\n{''.join(self.output)}")
            match = pattern.search(line)
            if match:
                return match

    def stop(self) -> int:
        """SIGTERM to the whole group (what Ctrl-C or ``docker stop`` does); its status."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return self.proc.returncode


@contextmanager
def background(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]
               ) -> Iterator[Background]:
    proc = Background(argv, cwd=cwd, env=env)
    try:
        yield proc
    finally:
        proc.stop()
