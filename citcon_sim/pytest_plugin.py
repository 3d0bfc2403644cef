"""pytest fixtures for merchant test suites (registered through the ``pytest11`` entry
point, so installing citcon-sim is enough), modelled on pytest-httpserver.

    def test_checkout(citcon_sim):
        resp = requests.post(citcon_sim.url_for("/payment/pay_qr"), headers=AUTH, data=...)
        txn_id = resp.text.split("=")[1]
        citcon_sim.pay(txn_id)
        assert citcon_sim.wait_for_ipn(txn_id)["state"] == "delivered"

- ``citcon_sim``: one server per test session, state reset before each test, server-side
  errors re-raised after it.
- ``citcon_sim_config``: override (session scope) to configure that server.
- ``make_citcon_sim``: a factory for extra, independently configured servers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .config import Config
from .testing import SimulatorServer


@pytest.fixture(scope="session")
def citcon_sim_config() -> Config:
    """The session server's configuration: a frozen clock, so tests drive time."""
    return Config(frozen_clock=True, seed=0)


@pytest.fixture(scope="session")
def citcon_sim_server(citcon_sim_config: Config) -> Iterator[SimulatorServer]:
    with SimulatorServer(citcon_sim_config) as server:
        yield server


@pytest.fixture
def citcon_sim(citcon_sim_server: SimulatorServer) -> Iterator[SimulatorServer]:
    citcon_sim_server.reset()
    citcon_sim_server.clear_scenarios()
    citcon_sim_server.check_assertions()  # errors of an earlier test are not this test's
    yield citcon_sim_server
    citcon_sim_server.check_assertions()


@pytest.fixture
def make_citcon_sim() -> Iterator[Callable[..., SimulatorServer]]:
    """``make_citcon_sim(Config(...))`` starts another server, stopped after the test."""
    servers: list[SimulatorServer] = []

    def make(config: Config | None = None) -> SimulatorServer:
        server = SimulatorServer(config or Config(frozen_clock=True)).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
