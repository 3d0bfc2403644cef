"""The Online API (``/payment/*``, form bodies, token auth): the face as the shared
machinery sees it. Its parts: ``routes`` (the route table), ``handlers``, ``requests``
(parameters → domain commands), ``wire``/``models`` (answers), ``ipn`` (notifications)."""

from __future__ import annotations

import re
from collections.abc import Callable

from citcon_sim.faces.face import Face
from citcon_sim.faces.http import envelope
from citcon_sim.faces.online.ipn import OnlineIpnEncoder
from citcon_sim.faces.online.routes import ROUTES
from citcon_sim.faces.params import Params, form_facts

# The transaction id in a pay/pay_qr answer's URL (plain text or response_format=json).
_URL_TXN_ID = re.compile(r"[?&]q=(U[0-9]+-[0-9a-f]+)")


def endpoint(path: str) -> str:
    # /payment/transactions is an older name of the list.
    return "list" if path == "transactions" else path


facts = form_facts("vendor")


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
