"""The pytest plugin's registered name (``pytest11`` entry point and ``pytest_plugins``);
the fixtures live in :mod:`citcon_sim.testing.pytest_plugin`."""

from citcon_sim.testing.pytest_plugin import *  # noqa: F403
from citcon_sim.testing.pytest_plugin import __all__ as __all__  # noqa: F401
