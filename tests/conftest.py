"""Shared fixtures: a simulator on a frozen virtual clock, and an HTTP client for it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

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
