"""Identifiers in Citcon's shapes, reproducible from a seed."""

from __future__ import annotations

import random
from typing import Any


class IdFactory:
    """``U`` + 10 digits + ``-`` + 20 lowercase hex, as in ``U0000628932-e1bcb80a3b47f5d405c3``.

    The digits are a counter and the hex comes from a seeded generator, so a test run with
    a fixed ``--seed`` sees the same ids every time.
    """

    def __init__(self, seed: int | None = None, start: int = 600000) -> None:
        self._random = random.Random(seed)
        self._counter = start

    def transaction(self) -> str:
        self._counter += 1
        return f"U{self._counter:010d}-{self._random.getrandbits(80):020x}"

    def notify(self) -> str:
        return f"{self._random.getrandbits(128):032x}"

    # -- persistence (citcon_sim.state) ----------------------------------------------------

    @property
    def counter(self) -> int:
        return self._counter

    def export_state(self) -> dict[str, Any]:
        """The counter and the generator's state, as JSON-ready values."""
        version, internal, gauss = self._random.getstate()
        return {"counter": self._counter, "random": [version, list(internal), gauss]}

    def load_state(self, counter: int, random_state: tuple[Any, ...] | None = None,
                   reseed: str | None = None) -> None:
        """Continue from ``counter``; with the generator's exact state, or reseeded from
        ``reseed`` (None: fresh OS randomness) when that state is not known."""
        self._counter = counter
        if random_state is not None:
            self._random.setstate(random_state)
        else:
            self._random.seed(reseed)
