"""The Online API's IPN format: which fields are posted, in what order, and how signed.

Form-urlencoded, exactly :data:`SIGNED_FIELDS` plus ``fields`` (listing them,
comma-separated, no spaces) and ``sign`` from :func:`signing.sign_ipn` with the merchant's
token — the same function merchants get as :func:`citcon_sim.verify_ipn`. A capture
notification reports the captured amounts. The IPN sender (``delivery/ipn.py``) queues,
retries and logs what this encoder builds; it does not know the fields.
"""

from __future__ import annotations

from collections.abc import Mapping

from citcon_sim.delivery.ipn import Encoding, IpnFacts
from citcon_sim.domain.merchants import MerchantSettings
from citcon_sim.domain.scripts import IpnScript
from citcon_sim.domain.signing import sign_ipn

# The documented fields, then the ones production adds. Order is the posting order.
SIGNED_FIELDS = (
    "id", "amount", "status", "currency", "time", "reference", "note", "notify_id",
    "partner_id", "vendor", "notify_status", "trans_amount", "trans_currency",
)


def build_form(values: Mapping[str, object], token: str) -> dict[str, str]:
    """The posted form: every signed field, ``fields`` and ``sign``.

    ``values`` must hold every name in :data:`SIGNED_FIELDS`; ``None`` posts as empty.
    """
    form = {k: "" if values[k] is None else str(values[k]) for k in SIGNED_FIELDS}
    form["fields"] = ",".join(SIGNED_FIELDS)
    form["sign"] = sign_ipn(form, token)
    return form


def with_faults(form: dict[str, str], token: str, script: IpnScript | None) -> dict[str, str]:
    """A scenario's faults on an MD5-signed form (Online API and CHOP): a merchant's
    handler must reject both a wrong signature and an amount changed after signing."""
    if script is not None and script.bad_signature:
        form["sign"] = sign_ipn(form, token + "-not-the-merchant-token")
    if script is not None and script.tamper_amount:
        form["amount"] = str(int(form["amount"]) + script.tamper_amount)
    return form


class OnlineIpnEncoder:
    """The encoder the simulator registers for the ``online`` face."""

    def encoding(self, merchant: MerchantSettings) -> Encoding:
        return "form"  # as documented, for every merchant

    def encode(self, facts: IpnFacts, token: str, script: IpnScript | None) -> dict[str, str]:
        txn = facts.transaction
        form = build_form({
            "id": txn.id,
            "amount": facts.amount,
            "status": facts.status,
            "currency": txn.currency,
            "time": facts.time,
            "reference": txn.reference,
            "note": txn.note,
            "notify_id": facts.notify_id,
            "partner_id": facts.partner_id,
            "vendor": txn.vendor.code,
            "notify_status": facts.status,
            "trans_amount": facts.trans_amount,
            "trans_currency": txn.trans_currency,
        }, token)
        return with_faults(form, token, script)

    def restate(self, form: Mapping[str, str], token: str, *, status: str, time: str,
                notify_id: str) -> dict[str, str]:
        """An earlier notification's form told again with another status, time and
        ``notify_id``, correctly signed (a scenario's ``out_of_order`` stale ``pending``)."""
        values: dict[str, object] = {k: form[k] for k in SIGNED_FIELDS}
        values.update(status=status, notify_status=status, time=time, notify_id=notify_id)
        return build_form(values, token)
