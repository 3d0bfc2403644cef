"""The endpoints of every merchant API face, by the names the request journal, the
console and scenario rules (``match: {endpoint: …}``) use: one vocabulary for all faces
(a UPI charge is ``pay``, as an Online API payment is).

Each face maps its paths onto these names (``Face.endpoint``); a test holds every face's
route table to this table, and the scenario check refuses a rule naming an endpoint none
of its faces has (``face: chop`` with ``endpoint: pay_qr`` could never match).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

ENDPOINTS_BY_FACE: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "online": ("pay", "pay_qr", "inquire", "refund", "cancel", "capture", "qr", "list"),
    "chop": ("chop", "inquire", "refund", "cancel", "list"),
    "upi": ("access-tokens", "pay", "inquire", "refund", "cancel", "capture", "qr", "landing"),
})
# The endpoints that create a payment: where a rule's payment and IPN scripts take effect.
CREATES = frozenset({"pay", "pay_qr", "chop"})
# Names only the journal shows: UPI's token exchange and hosted page. A rule cannot name
# them (a rule without an ``endpoint`` key still matches them).
JOURNAL_ONLY = frozenset({"access-tokens", "landing"})
# The names a scenario rule's ``endpoint`` takes (scenario.schema.json's enum, checked by
# a test), in this order.
SCRIPTABLE: tuple[str, ...] = tuple(dict.fromkeys(
    name for names in ENDPOINTS_BY_FACE.values() for name in names if name not in JOURNAL_ONLY))


def scriptable(face: str) -> tuple[str, ...]:
    """The endpoints of ``face`` a scenario rule can name (none for an unknown face)."""
    return tuple(n for n in ENDPOINTS_BY_FACE.get(face, ()) if n not in JOURNAL_ONLY)
