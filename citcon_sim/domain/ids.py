"""Identifiers in Citcon's shapes, reproducible from a seed."""

from __future__ import annotations

import random
from typing import Any

import msgspec


class IdFactory:
    """``U`` + 10 digits + ``-`` + 20 lowercase hex, as in ``U0000628932-e1bcb80a3b47f5d405c3``.

    The digits are a counter and the hex comes from a seeded generator, so a test run with
    a fixed ``--seed`` sees the same ids every time.
    """

    def __init__(self, seed: int | None = None, start: int = 600000) -> None:
        self._random = random.Random(seed)
        self._counter = start

    def transaction(self, face: str = "online") -> str:
        """A transaction (or refund) id in the shape of the API ``face`` that made it."""
        self._counter += 1
        if face == "upi":
            return self._decimal()
        return f"U{self._counter:010d}-{self._random.getrandbits(80):020x}"

    def _decimal(self) -> str:
        # UPI v1: 22 decimal digits, as in "2000470534782760808453" (the counter keeps
        # them unique, the random tail keeps them from looking sequential).
        return f"20{self._counter:010d}{self._random.randrange(10**10):010d}"


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


# A UPI charge token is its 22-digit id folded into 128 bits: 32 lowercase hex that can be
# turned back into the id, so the landing and QR URLs need no index of their own and
# survive --state restarts. The fixed upper bits make tokens of one simulator look alike,
# as the UUID-v1 style tokens of the sandbox do.
_TOKEN_MASK = 0x18A3D9C0BC8C11F0A5E6F1D2C3B4A596


def charge_token(txn_id: str) -> str:
    """The 32-hex charge token of a UPI transaction id (22 decimal digits)."""
    return f"{int(txn_id) ^ _TOKEN_MASK:032x}"


def charge_id(token: str) -> str | None:
    """The transaction id a charge token stands for, or None for anything else."""
    if len(token) != 32 or any(c not in "0123456789abcdef" for c in token):
        return None
    value = int(token, 16) ^ _TOKEN_MASK
    return f"{value:022d}" if value < 10**22 else None


class IdsExport(msgspec.Struct, frozen=True):
    """An :class:`IdFactory`'s state: the last counter used, and the generator's state
    (``random.Random.getstate()``; None when unknown)."""

    counter: int
    random: tuple[Any, ...] | None = None
