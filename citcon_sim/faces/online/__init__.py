"""The Online API (``/payment/*``, form bodies, token auth): the face as the shared
machinery sees it. Its parts: ``routes`` (the route table), ``handlers``, ``requests``
(parameters → domain commands), ``wire``/``models`` (answers), ``ipn`` (notifications)."""

from __future__ import annotations

import re

from citcon_sim.faces.face import ANSWER_TXN_ID, AnswerOf, ByReference, Face, named_by_reference
from citcon_sim.faces.http import envelope
from citcon_sim.faces.online.ipn import OnlineIpnEncoder
from citcon_sim.faces.online.routes import ROUTES
from citcon_sim.faces.params import Params, form_facts

# The transaction id in a pay/pay_qr answer's URL (plain text or response_format=json).
_URL_TXN_ID = re.compile(r"[?&]q=(U[0-9]+-[0-9a-f]+)")
# Calls that may name their transaction by the merchant's reference: that parameter.
_REFERENCE_KEYS = {"inquire": "reference", "capture": "reference",
                   "refund": "transaction_reference", "cancel": "transaction_reference"}
# The transaction id in their answers: inquire's charge begins with it ("id"; a refund
# id is a transaction_id parameter, never a reference); refund, cancel and capture
# answers carry it as "transaction_id" (face.ANSWER_TXN_ID).
_CHARGE_ID = re.compile(r'^\{"id":"([^"]+)"')


def endpoint(path: str) -> str:
    # /payment/transactions is an older name of the list.
    return "list" if path == "transactions" else path


facts = form_facts("vendor")


def transaction_id(
    endpoint: str, params: Params, answer_of: AnswerOf, by_reference: ByReference
) -> str | None:
    found = params.get("transaction_id")
    if found is None:
        if endpoint == "qr":
            found = params.get("q")  # the QR image of that transaction
        elif endpoint in ("pay", "pay_qr") and (answer := answer_of()) is not None:
            # pay/pay_qr answer a URL (plain text or response_format=json) naming it.
            match = _URL_TXN_ID.search(answer)
            found = match.group(1) if match else None
        elif (key := _REFERENCE_KEYS.get(endpoint)) is not None and key in params:
            answer = answer_of()
            pattern = _CHARGE_ID if endpoint == "inquire" else ANSWER_TXN_ID
            match = pattern.search(answer) if answer is not None else None
            # A refusal (an unpaid payment, a scripted error) does not name it: the index.
            found = match.group(1) if match else named_by_reference(params, key, by_reference)
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
