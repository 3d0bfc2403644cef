"""First use: ``/`` in a browser opens the dashboard (API clients keep the JSON 404), and a
port already taken is one clear line, not a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from .helpers import client_for

CHROME = ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
          "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7")
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
SAFARI = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize("accept", [CHROME, FIREFOX, SAFARI, "text/html",
                                    "application/json;q=0.5, text/html"],
                         ids=["chrome", "firefox", "safari", "html", "html-preferred"])
async def test_a_browser_opening_the_root_lands_on_the_dashboard(
        client: TestClient[Any, Any], accept: str) -> None:
    resp = await client.get("/", headers={"Accept": accept}, allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/_sim/"
    assert "Accept" in resp.headers["Vary"]
    page = await client.get("/", headers={"Accept": accept})  # followed
    assert page.status == 200 and page.url.path == "/_sim/"
    assert "text/html" in page.headers["Content-Type"]
    assert "citcon-sim" in (await page.text()).lower()


@pytest.mark.parametrize("headers", [
    {}, {"Accept": "*/*"}, {"Accept": "application/json"},
    {"Accept": "application/json, text/html;q=0.9"}, {"Accept": "text/html;q=0, */*"},
    {"Accept": "text/html;q=oops"}, {"Accept": "image/png,*/*;q=0.5"},
], ids=["none", "curl", "json", "json-preferred", "html-refused", "bad-weight", "image"])
async def test_api_clients_keep_the_json_404(client: TestClient[Any, Any],
                                             headers: dict[str, str]) -> None:
    unknown = await client.get("/no-such-path", headers=headers)
    resp = await client.get("/", headers=headers, allow_redirects=False)
    assert resp.status == unknown.status == 404
    assert resp.headers["Content-Type"].startswith("application/json")
    assert await resp.json() == await unknown.json()
    assert (await resp.json())["result"] == "fail"
    assert "Accept" in resp.headers["Vary"]


async def test_the_redirect_keeps_the_query_so_an_admin_token_reaches_the_dashboard(
        aiohttp_client: Any) -> None:
    client, _ = await client_for(aiohttp_client, admin_token="s3cret")
    locked = await client.get("/", headers={"Accept": FIREFOX})
    assert locked.status == 401  # the dashboard's own rule, not the root's
    resp = await client.get("/?admin_token=s3cret", headers={"Accept": FIREFOX},
                            allow_redirects=False)
    assert resp.headers["Location"] == "/_sim/?admin_token=s3cret"
    page = await client.get("/?admin_token=s3cret", headers={"Accept": FIREFOX})
    assert page.status == 200 and page.url.path == "/_sim/"


async def test_the_redirect_names_no_host_and_the_dashboard_keeps_its_host_rule(
        client: TestClient[Any, Any]) -> None:
    """A rebinding page's Host never reaches the Location; the dashboard refuses it."""
    evil = {"Accept": FIREFOX, "Host": "rebind.attacker.example"}
    resp = await client.get("/", headers=evil, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/_sim/"
    page = await client.get("/_sim/", headers=evil)
    assert page.status == 403


async def test_other_methods_on_the_root_are_refused_in_the_envelope(
        client: TestClient[Any, Any]) -> None:
    resp = await client.post("/", data={"vendor": "alipay"})
    assert resp.status == 405
    assert (await resp.json())["result"] == "fail"
    assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD"}


# -- a port already in use ------------------------------------------------------------------


@pytest.mark.slow
def test_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    """Nothing else: no traceback, and (``-W default`` shows them all) no warning about a
    client session, task or file left open by what had started before the socket was
    refused. (Not ``-X dev``: on a loaded machine it logs slow callbacks.)"""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-W", "default", "-m", "citcon_sim", "serve",
             "--port", str(port), "--state", str(tmp_path / "state.jsonl"),
             "--scenario", "declines"],
            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"citcon-sim: cannot listen on 127.0.0.1:{port}: address already in use "
        "(is another simulator running? try --port)\n")

