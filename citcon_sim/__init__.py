"""citcon-sim: a local, stateful simulator of Citcon's Online API."""

from __future__ import annotations

__version__ = "0.1.0"

from .app import create_app  # noqa: E402
from .config import Config  # noqa: E402
from .signing import sign_ipn, verify_ipn  # noqa: E402
from .simulator import Simulator  # noqa: E402
from .testing import SimulatorServer  # noqa: E402

__all__ = [
    "Config", "Simulator", "SimulatorServer", "__version__", "create_app", "sign_ipn",
    "verify_ipn",
]
