"""The UPI IPN format (docs/evidence/upi-chop.md §2.1, §2.2): a JSON body, signed with
SHA-256 over the keys in ``fields`` plus ``fields`` (sorted, ``k=v&…``) and
``&secret=<merchant private key>`` — :func:`citcon_sim.verify_upi_ipn` checks it.

Every value is a plain string or integer, as PHP receivers interpolate them into the
signed string (shopeo signs a fixed list that includes ``payment``: here the method code,
so that list and the ``fields`` list give the same signature). Times are ISO 8601 UTC
with milliseconds, as in Citcon's example body.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from citcon_sim.delivery.ipn import Encoding, IpnFacts
from citcon_sim.domain.merchants import MerchantSettings
from citcon_sim.domain.scripts import IpnScript
from citcon_sim.domain.signing import sign_upi_ipn
from citcon_sim.faces.upi import choices as c

SIGNED_FIELDS = (
    "id", "transaction_type", "reference", "amount", "currency", "status", "time_created",
    "time_completed", "payment_method", "amount_captured", "amount_refunded", "payment",
)


def iso(at: float) -> str:
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def build(values: Mapping[str, Any], secret: str) -> dict[str, Any]:
    body = {k: values[k] for k in SIGNED_FIELDS}
    body["fields"] = ",".join(SIGNED_FIELDS)
    body["sign"] = sign_upi_ipn(body, secret)
    return body


class UpiIpnEncoder:
    """The encoder the simulator registers for the ``upi`` face."""

    def encoding(self, merchant: MerchantSettings) -> Encoding:
        return "json"

    def encode(self, facts: IpnFacts, token: str, script: IpnScript | None) -> dict[str, Any]:
        txn = facts.transaction
        completed = txn.paid_at if txn.paid_at is not None else txn.updated_at
        body = build({
            "id": txn.id,
            "transaction_type": "charge",
            "reference": txn.reference,
            "amount": txn.amount,
            "currency": txn.currency,
            "status": c.IPN_STATUS.get(facts.status, facts.status),
            "time_created": iso(txn.created_at),
            "time_completed": iso(completed),
            "payment_method": txn.vendor.code,
            "amount_captured": facts.amount,
            "amount_refunded": txn.refunded_amount,
            "payment": txn.vendor.code,
        }, token)
        # Scenario faults: a merchant's handler must reject both.
        if script is not None and script.bad_signature:
            body["sign"] = sign_upi_ipn(body, token + "-not-the-merchant-key")
        if script is not None and script.tamper_amount:
            body["amount"] = int(body["amount"]) + script.tamper_amount
        return body

    def restate(self, form: Mapping[str, Any], token: str, *, status: str, time: str,
                notify_id: str) -> dict[str, Any]:
        """An earlier notification told again with another status (``out_of_order``);
        UPI bodies carry no notify id, so only the status changes."""
        values = dict(form)
        values["status"] = c.IPN_STATUS.get(status, status)
        return build(values, token)
