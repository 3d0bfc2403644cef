"""Delete the Faker locale modules citcon-sim never loads (run in the Docker image).

Faker ships about 700 locale modules (over 20 MB); the simulator builds Faker for its
vendors' markets (the wallet pages' consumers) and en_US (`serve --demo`) only. Each of
those is built here, and every locale folder under faker/providers that none of them
imported (directly or as a fallback) is removed. tests/test_container.py opens a wallet
page of every vendor and runs the demo in the image.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import faker

from citcon_sim.domain.vendors import VENDORS

providers = Path(faker.__file__).parent / "providers"
for locale in sorted({"en_US", *(vendor.market for vendor in VENDORS.values())}):
    faker.Faker(locale)  # imports each provider's module for the locale, or its fallback
used = {name for name in sys.modules if name.startswith("faker.providers.")}
removed = 0
for folder in sorted(p for p in providers.glob("*/*") if p.is_dir()):
    module = "faker.providers." + ".".join(folder.relative_to(providers).parts)
    if folder.name != "__pycache__" and module not in used:
        shutil.rmtree(folder)
        removed += 1
print(f"trim-faker: removed {removed} locale folders, kept {len(used)} modules")
