"""The command line: every serve option is listed by `citcon-sim --help` and the README."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import signal
import time
from datetime import datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from citcon_sim.cli import config_from_options, main, serve, serve_forever
from citcon_sim.config import DEFAULT_PORT, Config, ConfigError, settings
from citcon_sim.simulator import Simulator
from citcon_sim.testing import SimulatorServer

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
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


def test_readme_configuration_table_matches_config():
    """Each row's flag, variable and default (when shown as a value) are Config's."""
    rows = {}
    for line in README.splitlines():
        found = re.match(r"\| `(--[a-z-]+)[^`]*` \| `(CITCON_SIM_[A-Z_]+)[^`]*` \| ([^|]+) \|",
                         line)
        if found:
            rows[found[1]] = (found[2], found[3].strip())
    for f, setting in settings():
        if setting.option is None:
            continue
        env, shown = rows.get(setting.option) or rows[str(setting.negative)]
        assert env == setting.envvar
        value = (setting.serve_default if setting.serve_default is not None
                 else f.default if f.default is not dataclasses.MISSING
                 else f.default_factory())
        if shown.startswith("`"):
            assert (setting.parse or str)(shown.strip("`")) == value, setting.option
        else:  # "none", "now", "off"...: no value to show
            assert value in (None, True, False, []), setting.option


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


# -- options come from Config ---------------------------------------------------------------


def test_serve_options_are_the_config_settings():
    by_dest = {p.name: p for p in OPTIONS}
    for f, setting in settings():
        if setting.option is None:
            assert f.name not in by_dest  # a Python-only setting (fx, IPN workers...)
            continue
        option = by_dest[f.name]
        assert option.opts[0] == setting.option and option.envvar == setting.envvar
        assert setting.help in (option.help or "")


def test_serve_defaults_are_the_config_defaults(monkeypatch):
    for key in [k for k in os.environ if k.startswith("CITCON_SIM_")]:
        monkeypatch.delenv(key)
    with serve.make_context("serve", []) as ctx:
        config = config_from_options(dict(ctx.params))
    assert config == Config(port=DEFAULT_PORT, console=True)  # the console: serve's only


def test_env_variables_are_converted_like_flags():
    seen = _serve_configs(["serve"], env={
        "CITCON_SIM_IPN_RETRIES": "5,10", "CITCON_SIM_SEED": "7",
        "CITCON_SIM_START_TIME": "2024-05-01 09:30:00", "CITCON_SIM_FROZEN_CLOCK": "yes",
        "CITCON_SIM_SCENARIOS": "declines flaky-ipn", "CITCON_SIM_PORT": "0"})
    (config,) = seen
    assert config.ipn_backoff == (5.0, 10.0) and config.seed == 7 and config.port == 0
    assert config.start_time == datetime(2024, 5, 1, 9, 30) and config.frozen_clock
    assert config.scenarios == ["declines", "flaky-ipn"]


@pytest.mark.parametrize(("args", "flag", "problem"), [
    (["--port", "70000"], "--port", "out of range"),
    (["--port", "eighty"], "--port", "not a whole number"),
    (["--timezone", "Mars/Olympus"], "--timezone", "not a known time zone"),
    (["--ipn-retries", ","], "--ipn-retries", "at least one retry delay"),
    (["--ipn-retries", "5,-1"], "--ipn-retries", "more than 0 seconds"),
    (["--ipn-timeout", "0"], "--ipn-timeout", "at least 0.05"),
    (["--journal-size", "-1"], "--journal-size", "out of range"),
    (["--max-body-bytes", "10"], "--max-body-bytes", "out of range"),
    (["--merchants", "/no/such/merchants.yaml"], "--merchants", "cannot read"),
    (["--start-time", "yesterday"], "--start-time", "a date and time"),
    (["--public-url", "ftp://x"], "--public-url", "http://"),
])
def test_bad_values_are_usage_errors_naming_the_flag(args, flag, problem):
    result = CliRunner().invoke(main, ["serve", *args])
    assert result.exit_code == 2, result.output
    assert f"'{flag}'" in result.output and problem in result.output


@pytest.mark.parametrize(("changes", "setting"), [
    ({"port": -1}, "port"), ({"port": "8080"}, "port"),
    ({"timezone": "Nowhere/Atlantis"}, "timezone"),
    ({"ipn_backoff": ()}, "ipn_backoff"), ({"ipn_backoff": (0,)}, "ipn_backoff"),
    ({"ipn_timeout": -1.0}, "ipn_timeout"), ({"journal_size": -5}, "journal_size"),
    ({"max_body_bytes": 0}, "max_body_bytes"), ({"ipn_workers": 0}, "ipn_workers"),
    ({"ipn_queue_size": 0}, "ipn_queue_size"), ({"fx": {"CNY": -1}}, "fx"),
    ({"merchants_file": Path("/no/such/merchants.yaml")}, "merchants_file"),
    ({"admin_token": ""}, "admin_token"), ({"frozen_clock": "no"}, "frozen_clock"),
])
def test_config_from_python_is_checked_too(changes, setting):
    with pytest.raises(ConfigError, match=f"^{setting}: ") as info:
        Config(**changes)
    assert info.value.setting == setting
    with pytest.raises(ConfigError):  # dataclasses.replace makes a new, checked Config
        dataclasses.replace(Config(), **changes)


def test_validate_checks_a_config_changed_after_it_was_made():
    config = Config()
    config.journal_size = -1
    with pytest.raises(ConfigError, match="journal_size"):
        config.validate()


def test_python_values_are_stored_as_the_documented_types():
    config = Config(merchants_file=str(ROOT / "examples" / "merchant" / "merchants.yaml"),
                    ipn_backoff=[1, 2])
    assert isinstance(config.merchants_file, Path) and config.ipn_backoff == (1, 2)


# -- gc.freeze() belongs to citcon-sim serve alone ------------------------------------------


@pytest.mark.slow  # waits out the once-a-second freezer in wall time, twice
def test_only_the_cli_freezes_stored_objects(monkeypatch):
    calls = []
    monkeypatch.setattr(Simulator, "freeze_stored", lambda self: calls.append(self))

    async def run() -> None:
        sim = Simulator(Config(port=0, frozen_clock=True))
        ready = asyncio.Event()
        task = asyncio.create_task(serve_forever(sim, ready=ready))
        await asyncio.wait_for(ready.wait(), 30)
        await asyncio.sleep(1.3)  # the freezer looks once a second
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    with SimulatorServer() as server:
        time.sleep(1.3)  # the app's ticker has run: it does not freeze
        assert server.call(lambda: len(calls)) == 0
    asyncio.run(run())
    assert calls


def _serve_configs(args: list[str], env: dict[str, str]) -> list[Config]:
    seen: list[Config] = []

    async def fake_serve(sim: Simulator, **_: object) -> None:
        seen.append(sim.config)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("citcon_sim.cli.serve_forever", fake_serve)
        result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    return seen
