"""The example merchant (examples/merchant/), shared by the tests that run it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

MERCHANT_DIR = Path(__file__).resolve().parent.parent / "examples" / "merchant"


def load_example_merchant() -> ModuleType:
    """Import examples/merchant/app.py (not a package) as a module."""
    name = "citcon_example_merchant_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, MERCHANT_DIR / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class builds
        spec.loader.exec_module(module)
    return sys.modules[name]
