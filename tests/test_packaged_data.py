"""Nothing loads lazily from disk (issue 14, item 2).

Following the README in order (``citcon-sim serve``, then ``pip install -e '.[test]'``)
replaced the installed package under the running server, and its first payment was a
500: ``magic.yaml`` was read on the first request. The package's data files (shipped
scenarios, the scenario schema, page templates and assets) are read at start; these
tests remove them from under a running server and use it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from citcon_sim import Config, SimulatorServer
from citcon_sim.scenarios import load_packaged_data, shipped_scenarios

from .helpers import Http, IpnReceiver

PACKAGE = Path(__file__).resolve().parent.parent / "citcon_sim"


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """``citcon-sim serve`` running from a copy of the package (an "installed" one)."""
    site = tmp_path / "site-packages"
    shutil.copytree(PACKAGE, site / "citcon_sim",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITCON_SIM_")}
    env["PYTHONPATH"] = str(site)
    where = subprocess.run([sys.executable, "-c", "import citcon_sim; print(citcon_sim.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert where.stdout.strip() == str(site / "citcon_sim" / "__init__.py")
    proc = subprocess.Popen(
        [sys.executable, "-m", "citcon_sim", "serve", "--port", "0", "--frozen-clock",
         "--magic-amounts", "--scenario", "declines"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    try:
        yield site, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
def test_a_running_server_needs_none_of_its_package_files(
    installed: tuple[Path, subprocess.Popen[str]], threaded_receiver: IpnReceiver
) -> None:
    site, proc = installed
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the banner: printed once the server listens
    found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first)
    assert found, first + proc.stdout.read() if proc.poll() is not None else first
    http = Http(found.group(1))

    shutil.rmtree(site)  # what `pip install -e .` does to the installed copy

    # The first payment: magic amounts (read at start) pay it at once, and notify.
    scripted = http.create(amount=19903, reference="first", ipn_url=threaded_receiver.url)
    assert http.status(scripted) == "success"
    assert [p["id"] for p in threaded_receiver.wait_for_sync(1)] == [scripted]
    # A configured scenario, and a shipped one loaded by name at run time.
    assert http.status(http.create(amount=1000, reference="decline-1")) == "fail"
    status, _, body = http("POST", "/_sim/scenarios", {"name": "qr-expiry"})
    assert status == 200, body
    assert http.status(http.create(amount=1000, reference="late")) == "expired"
    http("DELETE", "/_sim/scenarios")
    # The consumer's side: the QR image, the wallet page (templates, its stylesheet) and
    # paying there.
    txn_id = http.create(amount=1000, reference="wallet")
    status, headers, body = http("GET", f"/payment/qr?q={txn_id}")
    assert (status, headers["Content-Type"], body[:4]) == (200, "image/png", b"\x89PNG")
    status, _, page = http("GET", f"/u_landing?q={txn_id}")
    assert status == 200 and b"wallet.css" in page, page[:500]
    status, headers, css = http("GET", "/u_landing/static/wallet.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css") and css
    status, _, _ = http("POST", f"/u_landing/{txn_id}/pay", {})
    assert status == 303 and http.status(txn_id) == "success"
    # The dashboard and its script, the OpenAPI document (it embeds the scenario schema).
    status, _, page = http("GET", "/_sim/")
    assert status == 200
    script = re.search(rb'src="(/_sim/static/dashboard\.js\?v=\w+)"', page)
    assert script is not None and http("GET", script.group(1).decode())[0] == 200
    status, _, doc = http("GET", "/openapi.json")
    assert status == 200 and "ScenarioRule" in json.loads(doc)["components"]["schemas"]
    # A snapshot (its code is imported on first use) goes out and back in.
    status, _, state = http("GET", "/_sim/state")
    assert status == 200, state
    assert http("PUT", "/_sim/state", state)[0] == 200

    proc.terminate()
    log = proc.communicate(timeout=10)[0]
    assert "Traceback" not in log and "unexpected error" not in log, log


def test_packaged_data_is_what_the_package_holds() -> None:
    """One read of every shipped file (the lists above come from it)."""
    data = load_packaged_data()
    folder = PACKAGE / "shipped_scenarios"
    assert data.shipped == {p.stem: p.read_text("utf-8") for p in sorted(folder.glob("*.yaml"))}
    assert data.schema == (PACKAGE / "scenario.schema.json").read_text("utf-8")
    assert shipped_scenarios() == data.shipped


def test_configured_scenario_files_are_read_once(tmp_path: Path) -> None:
    """The pytest fixture clears the server before each test and loads the configured
    scenarios again: from what was read at start, not from the file."""
    path = tmp_path / "slow-first.yaml"
    path.write_text("rules:\n  - match: {endpoint: pay_qr}\n    payment: {outcome: fail}\n"
                    "    times: 1\n")
    with SimulatorServer(Config(frozen_clock=True, scenarios=[str(path)])) as server:
        path.unlink()
        for _ in range(2):
            server.clear()
            http = Http(server.base_url)
            first = http.create(amount=1000, reference="first")
            second = http.create(amount=1000, reference="second")
            assert (http.status(first), http.status(second)) == ("fail", None)
