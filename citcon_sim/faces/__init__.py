"""Citcon's merchant APIs, each a face over the one ledger (see :mod:`.face`)."""

from __future__ import annotations

from citcon_sim.faces import chop, online, upi
from citcon_sim.faces.face import Face

FACES: tuple[Face, ...] = (online.FACE, chop.FACE, upi.FACE)
