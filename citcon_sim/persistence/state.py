"""Persistence: a versioned JSON snapshot of the simulator, and the ``--state FILE``
journal.

- :mod:`citcon_sim.persistence.snapshot`: the snapshot format (version 1), export
  (:func:`snapshot`) and validated import (:func:`restore`);
- :mod:`citcon_sim.persistence.journal`: the append-only ``--state`` file
  (:class:`StateFile`), kill -9 safe.

Both use only the public export/load API of the objects that own the state
(``Ledger.export``/``Ledger.load``, ``IpnSender.export``/``load``, ``IdFactory``,
``VirtualClock``, ``Merchant``) and ``Simulator.install``. This module is the stable
import path.
"""

from citcon_sim.domain.errors import StateError
from citcon_sim.persistence.journal import StateFile, subscribe
from citcon_sim.persistence.snapshot import (
    FORMAT,
    VERSION,
    notification_dict,
    restore,
    snapshot,
    txn_dict,
    write_snapshot,
)

__all__ = ["FORMAT", "VERSION", "StateError", "StateFile", "notification_dict", "restore",
           "snapshot", "subscribe", "txn_dict", "write_snapshot"]
