"""Identifiers in Citcon's shapes, reproducible from a seed."""

from __future__ import annotations

import random
from dataclasses import dataclass
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

    # -- export / load (citcon_sim.persistence) -------------------------------------------

    @property
    def counter(self) -> int:
        return self._counter

    def export(self) -> IdsExport:
        """The counter and the generator's exact state: a factory loaded from it hands out
        the same ids this one would."""
        return IdsExport(self._counter, self._random.getstate())

    @classmethod
    def load(cls, export: IdsExport, *, reseed: str | None = None) -> IdFactory:
        """A fresh factory continuing from ``export``; with its generator's state, or
        seeded from ``reseed`` (None: OS randomness) when the export has none.

        Raises ``ValueError`` or ``TypeError`` when ``export.random`` is not a
        generator state.
        """
        fresh = cls(start=export.counter)
        if export.random is not None:
            fresh._random.setstate(export.random)
        else:
            fresh._random.seed(reseed)
        return fresh


@dataclass(frozen=True, slots=True)
class IdsExport:
    """An :class:`IdFactory`'s state: the last counter used, and the generator's state
    (``random.Random.getstate()``; None when unknown)."""

    counter: int
    random: tuple[Any, ...] | None = None
