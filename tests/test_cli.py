"""The command line: every serve option is listed by `citcon-sim --help` and the README."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from citcon_sim.cli import main, serve

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
OPTIONS = [p for p in serve.params if isinstance(p, click.Option)]


def test_every_serve_option_has_an_environment_variable():
    assert OPTIONS and all(str(p.envvar).startswith("CITCON_SIM_") for p in OPTIONS)


def test_main_help_lists_every_option_and_variable():
    out = CliRunner().invoke(main, ["--help"]).output
    for option in OPTIONS:
        assert option.opts[0] in out and str(option.envvar) in out


def test_readme_configuration_table_lists_every_variable():
    for option in OPTIONS:
        assert f"`{option.envvar}" in README, option.envvar


def test_ipn_retries_are_parsed_and_checked(monkeypatch):
    seen = {}

    def fake_run(coro):  # stop before listening: only the Config matters here
        coro.close()

    monkeypatch.setattr("citcon_sim.cli.asyncio.run", fake_run)
    monkeypatch.setattr("citcon_sim.cli.Simulator",
                        lambda config: seen.setdefault("config", config))
    result = CliRunner().invoke(main, ["serve", "--ipn-retries", "1,2.5", "--ipn-timeout", "3"])
    assert result.exit_code == 0, result.output
    assert seen["config"].ipn_backoff == (1.0, 2.5) and seen["config"].ipn_timeout == 3.0
    bad = CliRunner().invoke(main, ["serve", "--ipn-retries", "soon"])
    assert bad.exit_code == 2 and "--ipn-retries" in bad.output
