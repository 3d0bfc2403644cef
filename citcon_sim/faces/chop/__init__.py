"""CHOP (``/chop/*``: form bodies, the Online API's tokens): the face as the shared
machinery sees it. Its parts: ``routes``, ``handlers``, ``requests`` (parameters → domain
commands), ``wire``/``models`` (answers), ``ipn`` (notifications), ``choices`` (every
decision the public evidence leaves open; docs/chop.md)."""

from __future__ import annotations

from citcon_sim.faces.chop.handlers import error
from citcon_sim.faces.chop.ipn import ChopIpnEncoder
from citcon_sim.faces.chop.routes import ROUTES
from citcon_sim.faces.face import ANSWER_TXN_ID, AnswerOf, ByReference, Face, named_by_reference
from citcon_sim.faces.params import Params, form_facts

NAME = "chop"
# Calls that may name their transaction by the merchant's reference: that parameter.
_REFERENCE_KEYS = {"inquire": "reference", "refund": "transaction_reference",
                   "cancel": "transaction_reference"}


def endpoint(path: str) -> str:
    return "list" if path == "transactions" else path


facts = form_facts("payment_method")


def transaction_id(
    endpoint: str, params: Params, answer_of: AnswerOf, by_reference: ByReference
) -> str | None:
    found = params.get("transaction_id") or params.get("q")
    if found is None:
        key = _REFERENCE_KEYS.get(endpoint)
        if endpoint == "chop" or (key is not None and key in params):
            answer = answer_of()
            match = ANSWER_TXN_ID.search(answer) if answer is not None else None
            # A refusal (an unpaid payment, a scripted error) does not name it: the index.
            found = match.group(1) if match else named_by_reference(params, key, by_reference)
    return found if isinstance(found, str) else None


FACE = Face(
    name=NAME,
    routes=ROUTES,
    ipn=ChopIpnEncoder(),
    error=error,
    endpoint=endpoint,
    facts=facts,
    transaction_id=transaction_id,
)
