"""The Docker image, built from the Dockerfile and run: healthy, answering the merchant API,
not root, stopping cleanly, and small.

Where podman is installed (as root) the image is built by ``scripts/podman-build.sh``,
which needs no registry: it makes a Debian base with debootstrap and builds on it. Else,
where ``docker info`` reaches a running engine, ``docker build`` is used (the default
python:3.12-slim base is then pulled). Else the tests are skipped, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.error import URLError
from urllib.parse import urlencode, urlsplit
from urllib.request import Request, urlopen

import pytest

from citcon_sim.domain.vendors import VENDORS

from .install_support import ROOT, run

pytestmark = pytest.mark.slow
SCRIPT = ROOT / "scripts" / "podman-build.sh"
# What the image adds to its base: the package and its dependencies (Babel's locale data is
# 36 MB of it). A larger image has picked up something it should not carry.
ADDED_BUDGET_MB = 75


@dataclass
class Engine:
    name: str
    command: list[str]  # the engine's CLI, with the storage the image was built in

    def __call__(self, *args: str, timeout: float = 120) -> str:
        return run([*self.command, *args], timeout=timeout).stdout.strip()


def podman_or_reason() -> Engine | str:
    if shutil.which("podman") is None:
        return "podman is not installed"
    if os.geteuid() != 0:
        return "podman is installed, but scripts/podman-build.sh needs root"
    if shutil.which("debootstrap") is None and not os.environ.get("BASE"):
        return "podman is installed, but debootstrap (for the local base image) is not"
    return Engine("podman", [str(SCRIPT), "--podman"])


def docker_or_reason() -> Engine | str:
    if shutil.which("docker") is None:
        return "docker is not installed"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60,
                          check=False)
    if info.returncode != 0:
        return "docker is installed but no engine is running (`docker info` failed)"
    return Engine("docker", ["docker"])


@pytest.fixture(scope="module")
def image() -> Iterator[tuple[Engine, str, str]]:
    """(engine, image, base): built once for the module, removed afterwards."""
    found = podman_or_reason()
    if isinstance(found, str):
        found_docker = docker_or_reason()
        if isinstance(found_docker, str):
            pytest.skip(f"no container engine: {found}; {found_docker} "
                        "(apt-get install podman debootstrap runc)")
        found = found_docker
    engine = found
    tag = f"localhost/citcon-sim:test-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    if engine.name == "podman":
        tag, base = run([str(SCRIPT), tag], timeout=900).stdout.split()
    else:
        base = "python:3.12-slim"
        run(["docker", "build", "-q", "-t", tag, str(ROOT)], timeout=900)
    print(f"\n{engine.name}: built {tag} on {base} in {time.monotonic() - started:.0f} s")
    try:
        yield engine, tag, base
    finally:
        subprocess.run([*engine.command, "rmi", "-f", tag], capture_output=True, timeout=120,
                       check=False)
        if engine.name == "podman":  # its build stage too; the storage is the script's own
            subprocess.run([*engine.command, "image", "prune", "-f"], capture_output=True,
                           timeout=120, check=False)


def fetch(url: str, data: dict[str, str] | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    body = urlencode(data).encode() if data is not None else None
    with urlopen(Request(url, body, headers or {}), timeout=10) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()


def wait_healthy(engine: Engine, cid: str, base_url: str) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if json.loads(fetch(f"{base_url}/_sim/health")[2]) == {"status": "ok"}:
                break
        except (URLError, ConnectionError, json.JSONDecodeError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("never healthy:\n" + engine("logs", cid))
        time.sleep(0.5)
    # The image's own HEALTHCHECK (a python one-liner inside the container) passes too.
    if engine.name == "podman":
        engine("healthcheck", "run", cid)  # fails the test unless it exits 0
        return
    while (state := engine("inspect", "--format", "{{.State.Health.Status}}", cid)) \
            != "healthy":  # docker runs it itself, every 10 s
        assert state == "starting" and time.monotonic() < deadline + 60, state
        time.sleep(1)


def test_the_image_runs_healthy_serves_the_api_and_stops_cleanly(
        image: tuple[Engine, str, str]) -> None:
    engine, tag, _ = image
    # podman's timer for the HEALTHCHECK needs systemd; the test runs the check itself.
    no_timer = ["--health-interval=disable"] if engine.name == "podman" else []
    cid = engine("run", "-d", *no_timer, "-p", "127.0.0.1::8080", tag)
    try:
        published = engine("port", cid, "8080/tcp").splitlines()[0]
        base_url = f"http://{published}"
        wait_healthy(engine, cid, base_url)
        assert engine("exec", cid, "id", "-u") == "10001"  # the Dockerfile's USER, not root

        status, _, body = fetch(f"{base_url}/payment/pay_qr", {
            "vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "c-1"},
            {"Authorization": "Bearer container-check"})
        qr_url = urlsplit(body.decode())
        assert status == 200 and qr_url.path == "/payment/qr", body
        status, kind, png = fetch(f"{base_url}{qr_url.path}?{qr_url.query}")
        assert (status, kind, png[:8]) == (200, "image/png", b"\x89PNG\r\n\x1a\n")
        # A wallet page in every market: Babel formats its amounts and Faker makes a
        # consumer of the market, whose locale data the image must keep
        # (scripts/trim-faker.py).
        markets: dict[str, str] = {}
        for vendor in VENDORS.values():
            markets.setdefault(vendor.market, vendor.code)
        for code in markets.values():
            _, _, body = fetch(f"{base_url}/payment/pay", {
                "vendor": code, "amount": "1000", "currency": "USD", "reference": f"p-{code}"},
                {"Authorization": "Bearer container-check"})
            page_url = urlsplit(body.decode())
            status, kind, page = fetch(f"{base_url}{page_url.path}?{page_url.query}")
            assert (status, kind.split(";")[0]) == (200, "text/html"), (code, page[:300])

        engine("stop", "-t", "20", cid)  # SIGTERM to PID 1: citcon-sim exits by itself
        assert engine("inspect", "--format", "{{.State.ExitCode}}", cid) == "0"
    finally:
        subprocess.run([*engine.command, "rm", "-f", cid], capture_output=True, timeout=120,
                       check=False)


def test_the_demo_history_is_made_in_the_image(image: tuple[Engine, str, str]) -> None:
    """``--demo`` (faker, en_US) works in the image."""
    engine, tag, _ = image
    no_timer = ["--health-interval=disable"] if engine.name == "podman" else []
    cid = engine("run", "-d", *no_timer, "-e", "CITCON_SIM_DEMO=true", "-e",
                 "CITCON_SIM_START_TIME=2026-03-02T09:00:00", "-p", "127.0.0.1::8080", tag)
    try:
        base_url = "http://" + engine("port", cid, "8080/tcp").splitlines()[0]
        wait_healthy(engine, cid, base_url)
        listed = json.loads(fetch(f"{base_url}/_sim/transactions?limit=1000")[2])
        txns = listed["transactions"]
        assert len(txns) > 100, len(txns)
        assert {t["vendor"] for t in txns} >= {"alipay", "wechatpay", "klarna"}
        assert {t["status"] for t in txns} >= {"success", "fail", "expired", "cancelled"}
        state = json.loads(fetch(f"{base_url}/_sim/state")[2])
        names = {m["settings"].get("name") for m in state["merchants"].values()} - {None, ""}
        assert len(names) >= 5, names  # faker's company names
    finally:
        subprocess.run([*engine.command, "rm", "-f", cid], capture_output=True, timeout=120,
                       check=False)


def size_mb(engine: Engine, name: str) -> float:
    return int(engine("image", "inspect", "--format", "{{.Size}}", name)) / 1e6


def test_the_image_adds_little_to_its_base(image: tuple[Engine, str, str]) -> None:
    engine, tag, base = image
    total, below = size_mb(engine, tag), size_mb(engine, base)
    print(f"\nimage {total:.0f} MB: base {below:.0f} MB + {total - below:.1f} MB of ours")
    assert total - below <= ADDED_BUDGET_MB, (
        f"the image adds {total - below:.0f} MB to {base} (budget {ADDED_BUDGET_MB} MB)")

