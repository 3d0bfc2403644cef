"""CHOP's answers and request forms as typed models (msgspec Structs).

Field order is the wire order (see ``faces.online.models``). The forms describe each
endpoint for the OpenAPI document; :mod:`.requests` validates.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType, field

from citcon_sim.domain.errors import ERROR_CODES, CitconError
from citcon_sim.domain.ledger import (
    CANCEL_DUPLICATE,
    CANCEL_OK,
    CANCEL_WINDOW,
    INVALID_TRANSACTION,
    Status,
)
from citcon_sim.domain.vendors import accepted_by
from citcon_sim.faces import params
from citcon_sim.faces.online.models import Form, Time, _amount, _currency, _flag, _text, _url

# -- answers ---------------------------------------------------------------------------

STATUS_WORDS: list[str | None] = [s.value for s in Status if s is not Status.PENDING] + [None]


class Answer(msgspec.Struct, kw_only=True):
    """Every answer: all fields are always sent."""


class ChopCreated(Answer):
    """`url` is the last key: one client cuts it out of the answer's text."""

    result: Literal["success"]
    transaction_id: str
    reference: str
    payment_method: str
    amount: int
    currency: str
    trans_amount: int
    trans_currency: str
    url: Annotated[str, Meta(description="The hosted payment page (`…/u_landing?q=<id>`): "
                                         "the text after the first `=` is the transaction id.")]


class ChopError(Answer):
    result: Literal["fail"]
    code: Annotated[int, Meta(extra_json_schema={
        "enum": [c for c in ERROR_CODES if c >= 4000]})]
    error: Annotated[str, Meta(min_length=1)]

    @classmethod
    def of(cls, error: CitconError) -> ChopError:
        return cls(result="fail", code=error.code, error=error.text)


class ChopRefunded(Answer):
    """Clients read `status` (case-insensitive) and `id`; Citcon's QA suite `refunded`."""

    id: str
    transaction_id: str
    refunded: Annotated[bool, Meta(extra_json_schema={"const": True})]
    status: Literal["success"]
    amount: int
    currency: str
    trans_amount: int
    trans_currency: str


class ChopRefundRefused(Answer):
    """HTTP 200, e.g. `Refund amount greater than allowed.` (unpaid or over-refund)."""

    refunded: Annotated[bool, Meta(extra_json_schema={"const": False})]
    status: Annotated[str, Meta(min_length=1)]


class ChopTransaction(Answer):
    """`/chop/inquire`'s answer (and one entry of `/chop/transactions`)."""

    transaction_id: str
    reference: str
    payment_method: str
    amount: int
    currency: str
    trans_amount: int
    trans_currency: str
    status: Annotated[str | None, Meta(
        description="null while unpaid and unexpired, else the status word.",
        extra_json_schema={"enum": STATUS_WORDS})]
    notify_result: Annotated[Literal["success", "fail"] | None, Meta(
        description="null until paid, then `success` (`fail` after a failed payment).")]
    captured_amount: int
    refunded_amount: int
    note: str | None
    time: Time
    created_time: Time


class ChopTransactions(Answer):
    result: Literal["success"]
    transactions: list[ChopTransaction]


class ChopCancelled(Answer):
    transaction_id: str | None
    transaction_reference: str | None
    cancelled: bool
    status: Annotated[str, Meta(extra_json_schema={
        "enum": [CANCEL_OK, CANCEL_DUPLICATE, CANCEL_WINDOW, INVALID_TRANSACTION]})]


# -- request forms ------------------------------------------------------------------------

_ID = Meta(max_length=params.MAX_VALUE_LENGTH, description="A transaction id (the `q` of "
           "the hosted page's URL).")
_REFERENCE = Meta(max_length=params.MAX_VALUE_LENGTH, description="The merchant's reference.")
_PRICED = {"anyOf": [{"required": ["amount", "currency"]},
                     {"required": ["trans_amount", "trans_currency"]}]}


def _nested(name: str) -> Any:
    return field(default=UNSET, name=name)


class ChopForm(Form, kw_only=True):
    """`/chop/chop`: unknown parameters are ignored, empty values count as absent."""

    schema_extra = {"allOf": [_PRICED]}

    payment_method: Annotated[str, Meta(
        description="The wallet (4101 otherwise).",
        extra_json_schema={"enum": sorted(accepted_by("chop"))})]
    amount: Annotated[int, _amount("Settlement-side amount, with `currency`.")] \
        | UnsetType = UNSET
    currency: Annotated[str, _currency("Currency of `amount`.")] | UnsetType = UNSET
    trans_amount: Annotated[int, _amount("Transaction-side amount.")] | UnsetType = UNSET
    trans_currency: Annotated[str, _currency("Currency of `trans_amount`.")] \
        | UnsetType = UNSET
    reference: Annotated[str, Meta(min_length=1, max_length=128,
                                   description="The merchant's order reference.")]
    ipn_url: Annotated[str, _url("Where the signed IPN is posted.",
                                 params.LONG_FIELDS["ipn_url"])] | UnsetType = UNSET
    callback_url_success: Annotated[str, _url("After a successful payment.")] \
        | UnsetType = UNSET
    callback_url_fail: Annotated[str, _url("After a failed payment.")] | UnsetType = UNSET
    callback_url_cancel: Annotated[str, _url("After the consumer cancels.")] \
        | UnsetType = UNSET
    mobile_result_url: Annotated[str, _url("Result page inside the wallet apps.")] \
        | UnsetType = UNSET
    allow_duplicates: Annotated[str, _flag(
        "`yes`: a repeated reference makes a new payment; otherwise the existing one "
        "answers.", ["yes", "no"])] | UnsetType = UNSET
    auto_capture: Annotated[str, _flag("Capture at once (PayPal, Venmo authorise "
                                       "otherwise).", ["true", "false"])] | UnsetType = UNSET
    note: Annotated[str, _text("Kept with the payment.", params.LONG_FIELDS["note"])] \
        | UnsetType = UNSET
    source: Annotated[str, _text("The integration, e.g. `woocommerce`.")] | UnsetType = UNSET
    ext: Annotated[str, _text("JSON text about the integration (kept).",
                              contentMediaType="application/json")] | UnsetType = UNSET
    country: Annotated[str, _text("Country of the order.")] | UnsetType = UNSET
    client_country: Annotated[str, _text("Accepted and kept.")] | UnsetType = UNSET
    goods: Annotated[str, _text("The goods: a JSON object (`data`, `shipping`, `tax`).",
                                params.LONG_FIELDS["goods"],
                                contentMediaType="application/json")] | UnsetType = UNSET
    consumer_reference: Annotated[str, _text("The merchant's consumer id.")] \
        | UnsetType = _nested("consumer[reference]")
    billing_first_name: Annotated[str, _text("Billing address (any `billing_address[…]` "
                                             "key is kept).")] \
        | UnsetType = _nested("billing_address[first_name]")


class ChopRefundForm(Form, kw_only=True):
    schema_extra = {"allOf": [{"anyOf": [{"required": ["transaction_id"]},
                                         {"required": ["transaction_reference"]}]}, _PRICED]}

    transaction_id: Annotated[str, _ID] | UnsetType = UNSET
    transaction_reference: Annotated[str, _REFERENCE] | UnsetType = UNSET
    amount: Annotated[int, _amount("Refund on the settlement side.")] | UnsetType = UNSET
    currency: Annotated[str, _currency("The transaction's currency.")] | UnsetType = UNSET
    trans_amount: Annotated[int, _amount("Refund on the transaction side.")] \
        | UnsetType = UNSET
    trans_currency: Annotated[str, _currency("The transaction currency.")] \
        | UnsetType = UNSET
    reason: Annotated[str, _text("Why; required for PayPal.")] | UnsetType = UNSET


class ChopInquireForm(Form, kw_only=True):
    schema_extra = {"allOf": [{"anyOf": [{"required": ["transaction_id"]},
                                         {"required": ["q"]}, {"required": ["reference"]}]}]}

    transaction_id: Annotated[str, _ID] | UnsetType = UNSET
    q: Annotated[str, _ID] | UnsetType = UNSET
    reference: Annotated[str, _REFERENCE] | UnsetType = UNSET
    inquire_method: Annotated[str, _text("Accepted (`real`).")] | UnsetType = UNSET


class ChopCancelForm(Form, kw_only=True):
    schema_extra = {"allOf": [{"anyOf": [{"required": ["transaction_id"]},
                                         {"required": ["transaction_reference"]}]}]}

    transaction_id: Annotated[str, _ID] | UnsetType = UNSET
    transaction_reference: Annotated[str, _REFERENCE] | UnsetType = UNSET
