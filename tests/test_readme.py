"""The README's and docs' examples are real: every scenario shown there loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from citcon_sim.scenarios import parse_scenario

ROOT = Path(__file__).parent.parent
BLOCKS = [
    pytest.param(block, id=f"{doc.name}#{i}")
    for doc in (ROOT / "README.md", ROOT / "docs" / "scenarios.md")
    for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S))
    if "rules:" in block
]


def test_docs_show_scenarios():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS)
def test_scenario_example_loads(block: str) -> None:
    scenario = parse_scenario(block, "example")
    assert scenario.rules and all(r.payment or r.ipn or r.api or r.refund
                                  for r in scenario.rules)


# -- the control-surface table ---------------------------------------------------------------


def control_table(readme: str) -> str:
    start = readme.index("Control surface for tests, QA and demos")
    rows = []
    for line in readme[start:].splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        if line.startswith("|"):
            rows.append(line)
    return "\n".join(rows)


def test_the_control_surface_table_names_every_sim_route() -> None:
    """Every path under ``/_sim`` that the server documents has a row (up to its first path
    parameter), except the snapshot routes (README "Persistence and fixtures") and the
    dashboard's own feed."""
    from citcon_sim.web.openapi import document

    table = control_table((ROOT / "README.md").read_text(encoding="utf-8"))
    elsewhere = {"/_sim/state", "/_sim/dashboard/state"}
    stems = {path.split("{")[0] for path in document("http://127.0.0.1:8080")["paths"]
             if path.startswith("/_sim") and path not in elsewhere}
    assert {"/_sim/requests", "/_sim/scenarios", "/_sim/health"} <= stems
    missing = sorted(stem for stem in stems if f"{stem.rstrip('/')}" not in table)
    assert not missing, f"not in the README's control-surface table: {missing}"
