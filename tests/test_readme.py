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
