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
