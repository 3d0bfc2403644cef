"""What makes an API face: everything the shared machinery needs to serve one of Citcon's
merchant APIs over the one ledger.

A face is its route table (registered on a sub-application at the table's prefix, and
documented from it), its IPN format, its error shape, and how its requests are named
for scenarios and the request journal. ``faces.FACES`` lists them; the app factory and
the simulator take every face from there, so adding an API is adding a package here
and one line there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from citcon_sim.domain.errors import CitconError
from citcon_sim.domain.scripts import RequestFacts
from citcon_sim.faces.http import SIM, bearer_token
from citcon_sim.faces.params import Params
from citcon_sim.faces.routes import RouteTable

if TYPE_CHECKING:
    from citcon_sim.delivery.ipn import IpnEncoder


# The text of a call's answer, read only when asked (None: no textual answer).
AnswerOf = Callable[[], str | None]
# The id of the calling merchant's latest transaction with a reference (its reference
# index: a dict look-up), or None: no such transaction, or no merchant behind the token.
ByReference = Callable[[str], str | None]


# The transaction id a form face's JSON answer names as "transaction_id" (null, so no
# match, when there was none): CHOP's answers, and the Online API's refund, cancel and
# capture.
ANSWER_TXN_ID = re.compile(r'"transaction_id":"([^"]+)"')


def named_by_reference(params: Params, key: str | None, by_reference: ByReference) -> str | None:
    """The transaction a call names by the merchant's reference in parameter ``key``."""
    reference = params.get(key) if key is not None else None
    return by_reference(reference) if isinstance(reference, str) and reference else None


# Endpoints every caller may load (a phone loads a QR image): nothing to authenticate.
PUBLIC_ENDPOINTS = frozenset({"qr"})


def accepted_token(request: web.Request, endpoint: str, token: str | None) -> bool:
    """Whether the ledger takes ``token`` (any non-empty one; in strict mode a listed
    one) or ``endpoint`` needs none. Only such calls reach scenario matching: an
    unauthenticated caller cannot make the simulator run a scenario's patterns."""
    if endpoint in PUBLIC_ENDPOINTS:
        return True
    if not token:
        return False
    ledger = request.app[SIM].ledger
    return not ledger.strict or token in ledger.settings


class Face(msgspec.Struct, frozen=True):
    name: str  # "online", …: Transaction.face, the journal, scenario rules
    routes: RouteTable
    ipn: IpnEncoder
    # A domain error in this API's own shape (status code, body).
    error: Callable[[CitconError], web.Response]
    # The endpoint name scenarios and the journal use, from the path below the prefix.
    endpoint: Callable[[str], str]
    # What a scenario rule can match on, from one request.
    facts: Callable[[str, str | None, Params], RequestFacts]
    # The transaction a call concerns (journal, console), from its parameters, else its
    # answer's text, else (a call naming it by reference whose answer does not say) the
    # merchant's reference index. The answer and the index are used only when needed:
    # most calls name the transaction in a parameter.
    transaction_id: Callable[[str, Params, AnswerOf, ByReference], str | None]
    # The merchant token a request authenticates with, for scenarios and the journal
    # (UPI: the private key behind an access token).
    merchant_token: Callable[[web.Request], str | None] = bearer_token
    # Whether a call (request, endpoint name, merchant_token's token) is authenticated
    # as the handler will judge it; the middleware decides scenarios only for those.
    authenticated: Callable[[web.Request, str, str | None], bool] = accepted_token
