"""pytest fixtures for merchant test suites, modelled on pytest-httpserver.

Installing citcon-sim is enough: the ``pytest11`` entry point registers this plugin.

    def test_checkout(citcon_sim):
        # point the code under test at citcon_sim.base_url, then:
        txn_id = my_shop.checkout(amount=1000, ipn_url=RECEIVER_URL)
        citcon_sim.pay(txn_id)
        assert citcon_sim.wait_for_ipn(txn_id)["state"] == "delivered"
        assert my_shop.order_status(txn_id) == "paid"

Fixtures:

- ``citcon_sim``: a :class:`~citcon_sim.testing.SimulatorServer`, by default on a free
  port of 127.0.0.1 (``citcon_sim_config``'s host and port). One server per test session;
  before each test its state is cleared (transactions, IPNs, journal, loaded scenarios,
  recorded errors; the configured scenarios are loaded afresh). The virtual clock is not
  rewound: it only moves forward. A request the simulator failed to serve (answered code
  4000) fails the test with the server-side exception, re-raised by
  ``check_assertions()`` right after the test body.
- ``citcon_sim_config``: session scope; override it in a ``conftest.py`` to configure
  that server (default: a frozen clock, seed 0 and a free port, so parallel sessions
  never clash; a port set there is used; magic amounts as the ini option below)::

      @pytest.fixture(scope="session")
      def citcon_sim_config():
          return Config(frozen_clock=True, seed=7, scenarios=["declines"])

- Magic amounts (docs/scenarios.md) are off, so every price is an ordinary one. Turn
  them on for the session with the ini option ``citcon_sim_magic_amounts = true``
  (it sets the default ``citcon_sim_config``'s ``magic_amounts``; an overriding fixture
  says ``Config(magic_amounts=True)`` itself), or for one test with
  ``citcon_sim.load_scenario("magic")``.

- ``citcon_sim_server``: the session's server itself, without the per-test clearing.
- ``make_citcon_sim``: a factory for more servers, independent of the session one and
  of each other, stopped (and checked) after the test::

      def test_two_gateways(make_citcon_sim):
          eu = make_citcon_sim(timezone="Europe/Paris")   # citcon_sim_config, changed,
                                                          # on a free port
          strict = make_citcon_sim(Config(merchants_file=Path("merchants.yaml")))
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from citcon_sim.config import Config
from citcon_sim.testing import ServerError, SimulatorServer, coverage_plugin

__all__ = ["citcon_sim", "citcon_sim_config", "citcon_sim_server", "make_citcon_sim",
           "pytest_addoption", "pytest_configure", "pytest_runtest_call"]

MAGIC_INI = "citcon_sim_magic_amounts"


def pytest_addoption(parser: pytest.Parser) -> None:
    coverage_plugin.add_options(parser)
    parser.addini(MAGIC_INI, type="bool", default=False,
                  help="citcon-sim: script outcomes by amount (…9901 declines, …9905 pays "
                  "without an IPN, …) in the default citcon_sim_config. Default: off.")


def pytest_configure(config: pytest.Config) -> None:
    coverage_plugin.configure(config)


@pytest.fixture(scope="session")
def citcon_sim_config(pytestconfig: pytest.Config) -> Config:
    """The session server's configuration: a frozen clock, so tests drive time, a free
    port, and magic amounts only if the ini option asks for them."""
    return Config(frozen_clock=True, seed=0, port=0,
                  magic_amounts=bool(pytestconfig.getini(MAGIC_INI)))


@pytest.fixture(scope="session")
def citcon_sim_server(citcon_sim_config: Config) -> Iterator[SimulatorServer]:
    """The session's server, started on first use and stopped at the end of the session."""
    with SimulatorServer(citcon_sim_config) as server:
        yield server


@pytest.fixture
def citcon_sim(citcon_sim_server: SimulatorServer) -> Iterator[SimulatorServer]:
    """The session's server, cleared for this test; server-side errors fail the test."""
    citcon_sim_server.clear()  # also drops errors left by an earlier test
    yield citcon_sim_server
    # Errors of the test body were raised in its call phase (pytest_runtest_call below);
    # these are the ones other fixtures' teardown caused.
    citcon_sim_server.check_assertions()


@pytest.fixture
def make_citcon_sim(citcon_sim_config: Config) -> Iterator[Callable[..., SimulatorServer]]:
    """``make_citcon_sim(config=None, **changes)`` starts another server for this test.

    ``config`` defaults to ``citcon_sim_config`` on a free port (the session server may
    hold its port); keyword arguments change fields of it.
    """
    servers: list[SimulatorServer] = []

    def make(config: Config | None = None, **changes: Any) -> SimulatorServer:
        if config is None:
            config = dataclasses.replace(citcon_sim_config, port=0)
        server = SimulatorServer(dataclasses.replace(config, **changes)).start()
        servers.append(server)
        return server

    yield make
    errors: list[BaseException] = []
    for server in servers:
        try:
            server.check_assertions()
        except AssertionError as exc:
            errors.append(exc)
        finally:
            server.stop()
    if errors:
        raise errors[0]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Check the session server right after the test body, so that a request the
    simulator failed to serve makes the test *fail* (rather than error in teardown).

    When the test failed anyway, the server-side error is added to its failure as a note
    (with the server's traceback): it is usually why the merchant code went wrong.
    """
    __tracebackhide__ = True
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    server = funcargs.get("citcon_sim")
    if not isinstance(server, SimulatorServer):
        return (yield)
    try:
        result = yield
    except Exception as exc:
        if server.running:
            try:
                server.check_assertions()
            except ServerError as error:
                exc.add_note(_server_side(error))
        raise
    if server.running:
        server.check_assertions()
    return result


def _server_side(error: ServerError) -> str:
    first = error.errors[0]
    return ("citcon-sim failed while serving a request during this test (answered code "
            "4000); server-side traceback:\n" + "".join(traceback.format_exception(first)))
