"""Shared fixtures: a simulator on a frozen virtual clock, and an HTTP client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from citcon_sim import Config, Simulator, create_app

START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)  # a Monday morning, far from midnight
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def config() -> Config:
    """Override in a test module to change how the simulator starts."""
    return Config(frozen_clock=True, start_time=START, seed=1234)


@pytest.fixture
def sim(config: Config) -> Simulator:
    return Simulator(config)


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], sim: Simulator) -> TestClient:
    return await aiohttp_client(create_app(sim))


async def create(
    client: TestClient, endpoint: str = "pay_qr", token: str = TOKEN, **fields: Any
) -> str:
    """Create a payment and return its id, the way merchant code parses the URL."""
    data = {"vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "order-1",
            "allow_duplicates": "yes"}
    data.update({k: str(v) for k, v in fields.items()})
    resp = await client.post(f"/payment/{endpoint}", data=data,
                             headers={"Authorization": f"Bearer {token}"})
    text = await resp.text()
    assert resp.status == 200, text
    return text.split("=")[1].split("&")[0]


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


@pytest.fixture
async def simulator(aiohttp_server: Callable[..., Any], sim: Simulator) -> TestServer:
    """The simulator on a real 127.0.0.1 port; the URLs it hands out point there."""
    server: TestServer = await aiohttp_server(create_app(sim), host="127.0.0.1")
    sim.bound_url = str(server.make_url("")).rstrip("/")
    return server
