"""resolve_scenario: one precedence for --scenario, Config.scenarios, load_scenario and
the control surface."""

from __future__ import annotations

from pathlib import Path

import pytest

from citcon_sim.scenarios import (
    ScenarioError,
    _magic,
    parse_scenario,
    resolve_scenario,
    shipped_scenarios,
)

LOCAL = "name: local\nrules:\n  - api: {latency_ms: 1}\n"


def test_a_path_object_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_text(LOCAL)
    assert resolve_scenario(path).name == "local"
    with pytest.raises(ScenarioError, match="cannot be read here"):
        resolve_scenario(path, files=False)


def test_text_with_a_line_break_is_yaml_when_allowed(tmp_path: Path) -> None:
    assert resolve_scenario(LOCAL, text=True).name == "local"
    with pytest.raises(ScenarioError, match="cannot read"):
        resolve_scenario(LOCAL)  # the command line names files and shipped scenarios


def test_an_existing_file_then_a_shipped_name(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_scenario("declines").name == "declines"
    monkeypatch.chdir(tmp_path)
    Path("declines").write_text(LOCAL)
    assert resolve_scenario("declines").name == "local"
    assert resolve_scenario("declines", text=True).name == "local"
    assert resolve_scenario("declines", files=False).name == "declines"


def test_a_yaml_suffix_is_a_file_even_when_missing(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        resolve_scenario(str(tmp_path / "gone.yaml"), text=True)


def test_one_line_yaml_text_and_unknown_names() -> None:
    one_line = "{name: inline, rules: [{payment: {outcome: pay}}]}"
    assert resolve_scenario(one_line, text=True, source="<t>").name == "inline"
    with pytest.raises(ScenarioError, match="cannot read"):
        resolve_scenario("no-such-scenario")
    with pytest.raises(ScenarioError, match="not a shipped scenario .*declines"):
        resolve_scenario("no-such-scenario", files=False)
    with pytest.raises(ScenarioError, match="^<posted>"):
        resolve_scenario("no-such-scenario", text=True, files=False, source="<posted>")


def test_shipped_magic_amounts_pass_the_schema() -> None:
    """Start-up parses magic.yaml without schema validation; this is where it is checked."""
    validated = parse_scenario(shipped_scenarios()["magic"], "magic.yaml")
    assert _magic() == validated
    assert [r.line for r in _magic().rules] == [r.line for r in validated.rules]
