"""Shared fixtures: a simulator on a frozen virtual clock, an HTTP client for it, a real
IPN receiver, headless Chromium; the Hypothesis profiles; the ``browser`` marker.

Plain helpers (``create``, ``auth``, ``IpnReceiver``, ...) live in ``tests/helpers.py``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

# Imported before any test: pytester's inline runs (tests/test_plugin.py) drop the modules
# first imported inside them, and libyaml's C loader fails ("could not determine a
# constructor for the tag None") once yaml is imported a second time in one process.
import yaml  # noqa: F401
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import settings

from citcon_sim import Config, Simulator, create_app

from .helpers import AUTH, START, TOKEN, IpnReceiver, create, frozen_config, threaded_ipn_receiver

__all__ = ["AUTH", "START", "TOKEN", "create"]  # older modules import these from here

# -- Hypothesis ---------------------------------------------------------------------------
# dev (default): random examples, failures replayed from .hypothesis/. ci (CI set, as
# .ci/run does): the same examples every run. explore: many more, new ones each run:
#   HYPOTHESIS_PROFILE=explore pytest tests/test_properties.py
# Tests that ask for a count use helpers.examples(n), which scales with the profile.
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True,
                          database=None, print_blob=True)
settings.register_profile("explore", max_examples=2000, deadline=None)
ON_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if ON_CI else "dev"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Whatever drives Chromium is a ``browser`` test, wherever it is written."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


# -- the simulator ------------------------------------------------------------------------


@pytest.fixture
def config() -> Config:
    """Override in a test module to change how the simulator starts."""
    return frozen_config()


@pytest.fixture
def sim(config: Config) -> Simulator:
    return Simulator(config)


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], sim: Simulator) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(sim))
    return client


@pytest.fixture
async def simulator(aiohttp_server: Callable[..., Any], sim: Simulator) -> TestServer:
    """The simulator on a real 127.0.0.1 port; the URLs it hands out point there."""
    server: TestServer = await aiohttp_server(create_app(sim), host="127.0.0.1")
    sim.bound_url = str(server.make_url("")).rstrip("/")
    return server


# -- the merchant's side ------------------------------------------------------------------


@pytest.fixture
async def ipn_receiver(aiohttp_server: Callable[..., Any]) -> AsyncIterator[IpnReceiver]:
    """A real merchant endpoint on 127.0.0.1 (``.url`` is its /ipn): records every request
    (``.posts``, ``.requests``), answers ``.answer(status, body, delay)`` or ``.then(...)``."""
    receiver = IpnReceiver()
    server: TestServer = await aiohttp_server(receiver.app(), host="127.0.0.1")
    receiver.bound(str(server.make_url("")))
    yield receiver
    receiver.release()


@pytest.fixture
def threaded_receiver() -> Iterator[IpnReceiver]:
    """``ipn_receiver`` for synchronous tests: it serves from a thread of its own."""
    with threaded_ipn_receiver() as receiver:
        yield receiver


# -- headless Chromium (tests/browser_support.py) ---------------------------------------


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from .browser_support import CHROMIUM_ARGS, chromium_path

    async_api = pytest.importorskip("playwright.async_api", reason="playwright not installed")
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium binary found (apt-get install chromium)")
    async with async_api.async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(autouse=True)
def _no_repeat_limit_left() -> Iterator[None]:
    """A test that runs ``citcon-sim serve`` in this process (or sets the limit up as it
    does) installs the repeated-log-line limit on shared loggers: take it off afterwards,
    or it would silence the lines later tests look for."""
    yield
    from citcon_sim.web.limits import LIMITED_LOGGERS, RepeatLimit

    for name in (*LIMITED_LOGGERS, ""):
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            for f in [f for f in target.filters if isinstance(f, RepeatLimit)]:
                target.removeFilter(f)
