"""Start-up stays quick: ``citcon-sim serve`` imports only what serving needs."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_start_up_imports_nothing_it_does_not_need() -> None:
    """Start-up time: YAML, the currency table, templates, locale data, fake names and
    the JSON Schema validator are imported on first use, not by ``citcon-sim serve``."""
    import subprocess
    import sys

    heavy = ("yaml", "iso4217", "jinja2", "babel", "faker", "jsonschema", "segno")
    code = ("import sys, citcon_sim.cli, citcon_sim.web.app; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
