"""CHOP's IPN format: the fields the WooCommerce plugin and Citcon's demos read.

Signed exactly like the Online API's (:func:`signing.sign_ipn`: the keys in ``fields``
plus ``fields``, sorted, ``k=v&…&token=<merchant token>``, MD5 lowercase hex). Posted as
a form, or as a JSON object when the merchant's ``chop_ipn_encoding`` is ``json`` (the
plugin 1.6.0 reads a JSON body first). Every value is a string in both encodings, so the
signature is the same whichever a receiver parses.
"""

from __future__ import annotations

from collections.abc import Mapping

from citcon_sim.delivery.ipn import Encoding, IpnFacts
from citcon_sim.domain.merchants import MerchantSettings
from citcon_sim.domain.scripts import IpnScript
from citcon_sim.domain.signing import sign_ipn
from citcon_sim.faces.chop.choices import IPN_FIELDS
from citcon_sim.faces.online.ipn import with_faults


def build(values: Mapping[str, object], token: str) -> dict[str, str]:
    """Every field of :data:`IPN_FIELDS` (``None`` posts as empty), ``fields``, ``sign``."""
    form = {k: "" if values[k] is None else str(values[k]) for k in IPN_FIELDS}
    form["fields"] = ",".join(IPN_FIELDS)
    form["sign"] = sign_ipn(form, token)
    return form


class ChopIpnEncoder:
    """The encoder the simulator registers for the ``chop`` face."""

    def encoding(self, merchant: MerchantSettings) -> Encoding:
        return "json" if merchant.chop_ipn_encoding == "json" else "form"

    def encode(self, facts: IpnFacts, token: str, script: IpnScript | None) -> dict[str, str]:
        txn = facts.transaction
        form = build({
            "id": txn.id,
            "amount": facts.amount,
            "notify_status": facts.status,  # the plugin pays the order on "success"
            "currency": txn.currency,
            "time": facts.time,
            "reference": txn.reference,
            "notify_id": facts.notify_id,
            "partner_id": facts.partner_id,
        }, token)
        return with_faults(form, token, script)

    def restate(self, form: Mapping[str, str], token: str, *, status: str, time: str,
                notify_id: str) -> dict[str, str]:
        values: dict[str, object] = {k: form[k] for k in IPN_FIELDS}
        values.update(notify_status=status, time=time, notify_id=notify_id)
        return build(values, token)
