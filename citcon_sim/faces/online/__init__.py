"""The Online API (``/payment/*``, form bodies, token auth): the face as the shared
machinery sees it. Its parts: ``routes`` (the route table), ``handlers``, ``requests``
(parameters → domain commands), ``wire``/``models`` (answers), ``ipn`` (notifications)."""

from __future__ import annotations

import re
from collections.abc import Callable

from citcon_sim.domain.scripts import RequestFacts
from citcon_sim.faces.face import Face
from citcon_sim.faces.http import envelope
from citcon_sim.faces.online.ipn import OnlineIpnEncoder
from citcon_sim.faces.online.routes import ROUTES
from citcon_sim.faces.params import Params

# The transaction id in a pay/pay_qr answer's URL (plain text or response_format=json).
_URL_TXN_ID = re.compile(r"[?&]q=(U[0-9]+-[0-9a-f]+)")


def endpoint(path: str) -> str:
    # /payment/transactions is an older name of the list.
    return "list" if path == "transactions" else path


def facts(endpoint: str, token: str | None, params: Params) -> RequestFacts:
    amount_raw = params.get("amount") or params.get("trans_amount")
    currency = params.get("currency") if "amount" in params else params.get("trans_currency")
    vendor = params.get("vendor")
    reference = params.get("reference") or params.get("transaction_reference")
    return RequestFacts(
        token=token,
        endpoint=endpoint,
        vendor=vendor.strip().lower() if isinstance(vendor, str) else None,
        amount=int(amount_raw) if isinstance(amount_raw, str) and amount_raw.isdigit() else None,
        currency=currency if isinstance(currency, str) else None,
        reference=reference if isinstance(reference, str) else None,
    )


def transaction_id(
    endpoint: str, params: Params, answer_of: Callable[[], str | None]
) -> str | None:
    found = params.get("transaction_id")
    if found is None:
        if endpoint == "qr":
            found = params.get("q")  # the QR image of that transaction
        elif endpoint in ("pay", "pay_qr") and (answer := answer_of()) is not None:
            # pay/pay_qr answer a URL (plain text or response_format=json) naming it.
            match = _URL_TXN_ID.search(answer)
            found = match.group(1) if match else None
    return found if isinstance(found, str) else None


FACE = Face(
    name="online",
    routes=ROUTES,
    ipn=OnlineIpnEncoder(),
    error=envelope,
    endpoint=endpoint,
    facts=facts,
    transaction_id=transaction_id,
)
