"""Headless Chromium for the browser tests: the system's binary, driven by Playwright.

It never downloads a browser of its own (no ``playwright install``). Without a Chromium
binary or the playwright package the tests skip, so a developer machine without them
still passes; CI installs Debian's ``chromium``. Screenshots go to ``artifacts/``. The
``browser`` and ``simulator`` fixtures live in ``conftest.py``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]
# Generous for a cold browser on a busy CI machine; a passing run takes well under this.
TIMEOUT_MS = 30_000


def chromium_path() -> str | None:
    """``$CHROMIUM`` if set, else the Debian package's binary on PATH."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    return None


def watch(page: Any, allowed: tuple[str, ...]) -> list[str]:
    """Collect page errors and any request leaving the two local servers."""
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}")
            if msg.type == "error" else None)
    page.on("request", lambda req: None if req.url.startswith(allowed)
            else problems.append(f"external request: {req.url}"))
    page.on("response", lambda resp: problems.append(f"HTTP {resp.status}: {resp.url}")
            if resp.status >= 400 else None)
    return problems
