"""The UPI v1 API (``/v1/*``, JSON bodies, access tokens): the face as the shared
machinery sees it. Its parts: ``routes``, ``handlers``, ``requests`` (JSON bodies →
domain commands), ``wire``/``models`` (answers in the ``citcon_upi`` envelope),
``errors``, ``tokens`` (access tokens), ``ipn`` (JSON notifications, SHA-256), and
``choices`` (every decision where the evidence is silent, in one place)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from citcon_sim.domain.scripts import RequestFacts
from citcon_sim.faces.face import AnswerOf, ByReference, Face, accepted_token, named_by_reference
from citcon_sim.faces.http import SIM, bearer_token
from citcon_sim.faces.params import Params
from citcon_sim.faces.upi import tokens
from citcon_sim.faces.upi.errors import error
from citcon_sim.faces.upi.ipn import UpiIpnEncoder
from citcon_sim.faces.upi.routes import ROUTES

# Scenario rules and the journal name endpoints in one vocabulary for every face (a rule
# for `pay` scripts a UPI charge too; magic amounts work alike): UPI paths map onto it.
ENDPOINTS = {"charges": "pay", "transactions": "inquire", "refunds": "refund",
             "cancels": "cancel", "captures": "capture", "qr": "qr"}


def endpoint(path: str) -> str:
    # /v1/transactions/<id> and /v1/landing/<token> are one endpoint each.
    name = path.split("/", 1)[0]
    return ENDPOINTS.get(name, name)


def _nested(params: Params, key: str) -> dict[str, Any]:
    # JSON objects arrive as JSON text in the shared parameters (faces.http).
    raw = params.get(key)
    try:
        found = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def facts(endpoint: str, token: str | None, params: Params) -> RequestFacts:
    txn, payment = _nested(params, "transaction"), _nested(params, "payment")
    amount = txn.get("amount", params.get("amount"))
    if isinstance(amount, str) and amount.isdigit():
        amount = int(amount)
    elif isinstance(amount, float) and amount.is_integer():
        amount = int(amount)
    method, currency = payment.get("method"), txn.get("currency")
    reference = txn.get("reference", params.get("reference"))
    return RequestFacts(
        token=token,
        endpoint=endpoint,
        vendor=method.strip().lower() if isinstance(method, str) else None,
        amount=amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
        currency=currency.strip().upper() if isinstance(currency, str) else None,
        reference=reference if isinstance(reference, str) else None,
    )


_ANSWER_NAMES_IT = frozenset({"pay", "inquire", "capture", "cancel"})
# Calls that may name the charge by the merchant's reference instead of its id: that
# parameter (a refund's and a cancel's own `reference` is theirs, not the charge's).
_REFERENCE_KEYS = {"inquire": "reference", "capture": "reference",
                   "refund": "transaction_reference", "cancel": "transaction_reference"}


def transaction_id(
    endpoint: str, params: Params, answer_of: AnswerOf, by_reference: ByReference
) -> str | None:
    found = params.get("id")
    # A charge's id is in its answer (also a transaction's, a capture's, a cancel's).
    if found is None and endpoint in _ANSWER_NAMES_IT and (answer := answer_of()) is not None:
        try:
            data = json.loads(answer).get("data")
        except (ValueError, AttributeError):
            data = None
        found = data.get("id") if isinstance(data, dict) else None
    if found is None:  # a refund's answer names the refund; a failure names nothing
        found = named_by_reference(params, _REFERENCE_KEYS.get(endpoint), by_reference)
    return found if isinstance(found, str) else None


def merchant_token(request: web.Request) -> str | None:
    """The private key behind a valid access token (so scenarios loaded for a merchant
    and the journal's token filter see its UPI calls); else the header's token as sent."""
    token = bearer_token(request)
    found = tokens.store(request.app[SIM]).get(token) if token else None
    return found.key if found is not None else token


def authenticated(request: web.Request, endpoint: str, token: str | None) -> bool:
    """A charge's landing page and QR are public; ``access-tokens`` takes the private
    key; every other call a live access token (on the virtual clock) of a key the
    ledger takes. ``token`` is merchant_token's: the key behind a valid access token."""
    if endpoint in ("qr", "landing"):
        return True
    raw = bearer_token(request)
    if not raw or not token:
        return False
    if endpoint != "access-tokens":
        sim = request.app[SIM]
        found = tokens.store(sim).get(raw)
        if found is None or sim.clock.time() >= found.expiry:
            return False
    return accepted_token(request, endpoint, token)


FACE = Face(
    name="upi",
    routes=ROUTES,
    ipn=UpiIpnEncoder(),
    error=error,
    endpoint=endpoint,
    facts=facts,
    transaction_id=transaction_id,
    merchant_token=merchant_token,
    authenticated=authenticated,
)
