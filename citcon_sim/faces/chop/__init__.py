"""CHOP (``/chop/*``: form bodies, the Online API's tokens): the face as the shared
machinery sees it. Its parts: ``routes``, ``handlers``, ``requests`` (parameters → domain
commands), ``wire``/``models`` (answers), ``ipn`` (notifications), ``choices`` (every
decision the public evidence leaves open; docs/chop.md)."""

from __future__ import annotations

import re
from collections.abc import Callable

from citcon_sim.faces.chop.handlers import error
from citcon_sim.faces.chop.ipn import ChopIpnEncoder
from citcon_sim.faces.chop.routes import ROUTES
from citcon_sim.faces.face import Face
from citcon_sim.faces.params import Params, form_facts

NAME = "chop"
# The transaction id in /chop/chop's answer.
_ANSWER_TXN_ID = re.compile(r'"transaction_id":"([^"]+)"')


def endpoint(path: str) -> str:
    return "list" if path == "transactions" else path


facts = form_facts("payment_method")


def transaction_id(
    endpoint: str, params: Params, answer_of: Callable[[], str | None]
) -> str | None:
    found = params.get("transaction_id") or params.get("q")
    if found is None and endpoint == "chop" and (answer := answer_of()) is not None:
        match = _ANSWER_TXN_ID.search(answer)
        found = match.group(1) if match else None
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
