"""citcon-sim: a local, stateful simulator of Citcon's merchant APIs (Online API, CHOP, UPI v1)."""

from __future__ import annotations

from typing import TYPE_CHECKING  # noqa: E402

from citcon_sim._version import __version__
from citcon_sim.config import Config  # noqa: E402
from citcon_sim.domain.signing import sign_ipn, verify_ipn, verify_upi_ipn  # noqa: E402
from citcon_sim.simulator import Simulator  # noqa: E402
from citcon_sim.web.app import create_app  # noqa: E402

if TYPE_CHECKING:
    from citcon_sim.testing import SimulatorServer


def __getattr__(name: str) -> object:
    # The thread runner (and what it imports) is not needed to serve: the CLI would pay
    # for it on every start.
    if name == "SimulatorServer":
        from citcon_sim.testing import SimulatorServer

        return SimulatorServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Config", "Simulator", "SimulatorServer", "__version__", "create_app", "sign_ipn",
    "verify_ipn", "verify_upi_ipn",
]
