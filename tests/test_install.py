"""Install anywhere: the wheel carries every file the package needs, and an installed
citcon-sim serves pages, QR codes and shipped scenarios with no checkout in sight.

The clean virtual environment gets the project's runtime dependencies from the package
index (or pip's cache), as a user's would: about 6 s here, so no local wheelhouse is kept.
``pipx install .`` is checked on its own (pipx comes with the test extras).
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest

from .install_support import (
    BANNER,
    ROOT,
    background,
    clean_env,
    copy_source,
    fresh_venv,
    run,
)

pytestmark = pytest.mark.slow
SHIPPED = sorted(p.stem for p in (ROOT / "citcon_sim" / "shipped_scenarios").glob("*.yaml"))


def package_files() -> set[str]:
    """Every file of the package in the checkout (bytecode aside), as a wheel names it."""
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / "citcon_sim").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = copy_source(work / "src")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
         str(work / "dist"), str(source)], env=clean_env())
    [built] = (work / "dist").glob("citcon_sim-*.whl")
    return built


def test_the_wheel_carries_every_file_of_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert SHIPPED and {"citcon_sim/web/templates/wallet.html",
                        "citcon_sim/web/static/dashboard.js",
                        "citcon_sim/scenario.schema.json", "citcon_sim/py.typed"} <= names
    missing = sorted(package_files() - names)
    assert not missing, f"not in the wheel (pyproject.toml package-data): {missing}"


def call(url: str, data: dict[str, str] | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    body = urlencode(data).encode() if data is not None else None
    with urlopen(Request(url, body, headers or {}), timeout=30) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()


def test_the_installed_wheel_serves_pages_qr_codes_and_shipped_scenarios(
        wheel: Path, tmp_path: Path) -> None:
    import zxingcpp
    from PIL import Image

    bin_dir = fresh_venv(tmp_path / "venv")
    run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        env=clean_env())
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = clean_env()
    where = run([str(bin_dir / "python"), "-c", "import citcon_sim; print(citcon_sim.__file__)"],
                cwd=empty, env=env).stdout.strip()
    assert Path(where).is_relative_to(tmp_path / "venv"), where  # not this checkout
    listed = run([str(bin_dir / "citcon-sim"), "scenarios", "list"], cwd=empty, env=env)
    assert sorted(line.split()[0] for line in listed.stdout.splitlines()) == SHIPPED

    argv = [str(bin_dir / "citcon-sim"), "serve", "--port", "0", "--scenario", "declines"]
    with background(argv, cwd=empty, env=env) as server:
        base = server.wait_for(BANNER, timeout=60)[1]
        token = {"Authorization": "Bearer install-check"}
        form = {"vendor": "alipay", "amount": "1000", "currency": "USD",
                "response_format": "json"}
        _, _, body = call(f"{base}/payment/pay_qr", {**form, "reference": "order-1"}, token)
        created = json.loads(body)
        # A wallet page: a template, with its stylesheet.
        status, kind, page = call(f"{base}/u_landing?q={created['transaction_id']}")
        assert (status, kind.split(";")[0]) == (200, "text/html") and b"wallet.css" in page
        status, kind, _ = call(f"{base}/u_landing/static/wallet.css")
        assert (status, kind.split(";")[0]) == (200, "text/css")
        # The QR: a PNG that scans to the wallet page.
        status, kind, png = call(created["url"])
        assert (status, kind.split(";")[0]) == (200, "image/png")
        [code] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
        assert code.text.startswith(f"{base}/u_landing?q={created['transaction_id']}")
        # The dashboard: its page, script and stylesheet.
        assert call(f"{base}/_sim/", headers={"Accept": "text/html"})[0] == 200
        assert call(f"{base}/_sim/static/dashboard.js")[0] == 200
        # The shipped scenario named on the command line: "decline-" references fail.
        book: dict[str, Any] = json.loads(call(f"{base}/_sim/scenarios")[2])
        assert [s["name"] for s in book["global"]] == ["declines"]
        _, _, body = call(f"{base}/payment/pay_qr", {**form, "reference": "decline-1"}, token)
        declined = json.loads(body)["transaction_id"]
        txn = json.loads(call(f"{base}/_sim/transactions/{declined}")[2])
        assert txn["status"] == "fail", txn
        # ...and one loaded by name at run time, from the same package data.
        loaded = json.loads(call(f"{base}/_sim/scenarios", {"name": "flaky-ipn"})[2])
        assert loaded["loaded"]["name"] == "flaky-ipn"
    assert server.proc.returncode == 0, "".join(server.output)


def pipx_command() -> list[str] | None:
    if importlib.util.find_spec("pipx") is not None:
        return [sys.executable, "-m", "pipx"]
    found = shutil.which("pipx")
    return [found] if found else None


def test_pipx_install_dot(tmp_path: Path) -> None:
    """The README's ``pip install .``, the pipx way: an isolated environment of its own."""
    pipx = pipx_command()
    if pipx is None:
        pytest.skip("pipx is not installed (pip install -e '.[test]' brings it)")
    source = copy_source(tmp_path / "checkout")
    home = tmp_path / "pipx"
    env = clean_env(PIPX_HOME=str(home / "home"), PIPX_BIN_DIR=str(home / "bin"),
                    PIPX_MAN_DIR=str(home / "man"))
    run([*pipx, "install", "."], cwd=source, env=env)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    program = str(home / "bin" / "citcon-sim")
    assert "citcon-sim" in run([program, "--version"], cwd=empty, env=env).stdout
    listed = run([program, "scenarios", "list"], cwd=empty, env=env)
    assert sorted(line.split()[0] for line in listed.stdout.splitlines()) == SHIPPED
