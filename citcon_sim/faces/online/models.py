"""The Online API's answers and request forms as typed models (msgspec Structs).

Answers are built from ledger objects by :mod:`.wire` and encoded by msgspec: a Struct's
fields are encoded in the order they are declared here, so these declarations are the
wire format: keys, order and types. The request forms describe
each endpoint's fields for the OpenAPI document (``faces.online.routes``); the handlers
validate with :mod:`.requests`, whose error codes and messages are the documented ones.
The JSON Schema of every model comes from ``msgspec.json.schema_components``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType, field

from citcon_sim.domain import commands
from citcon_sim.domain.ledger import (
    CANCEL_DUPLICATE,
    CANCEL_OK,
    CANCEL_WINDOW,
    INVALID_TRANSACTION,
    Status,
)
from citcon_sim.domain.vendors import KOREAN_BANKS, accepted_by
from citcon_sim.faces import params

# -- answers ---------------------------------------------------------------------------------

Time = Annotated[str, Meta(
    pattern="^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$",
    description="`yyyy-MM-dd HH:mm:ss` on the simulator's clock and zone.")]
WireStatus = Annotated[str, Meta(extra_json_schema={
    "enum": [s.value for s in Status if s is not Status.PENDING]})]
Note = Annotated[str, Meta(description='The string "null" when absent.')]


class Answer(msgspec.Struct, kw_only=True):
    """Every answer: all fields are always sent (``required`` in the schema)."""


class Refund(Answer):
    id: str
    type: Literal["refund"]
    transaction_id: str
    amount: int
    currency: str
    trans_amount: int
    trans_currency: str
    time: Time
    status: Literal["success"]
    note: Note


class CaptureRecord(Answer):
    transaction_id: str
    type: Literal["capture"]
    amount: int
    currency: str
    notify_result: str
    reference: str
    time: Time


class Charge(Answer):
    """Inquire's charge object: the documented fields first, then the simulator's extras."""

    id: str
    type: Literal["charge"]
    amount: int
    currency: str
    trans_amount: int
    trans_currency: str
    time: Time
    reference: str
    reference2: str
    status: Annotated[WireStatus | None, Meta(
        description="null while unpaid and unexpired.")]
    note: Note
    vendor: str
    method: Annotated[str, Meta(extra_json_schema={"enum": ["pay", "pay_qr"]})]
    auto_capture: bool
    captured_amount: int
    refunded_amount: int
    refunded_trans_amount: int
    created_time: Time
    expiry_time: Time
    refunds: list[Refund]
    captures: list[CaptureRecord]


class CaptureResult(Answer):
    transaction_id: str
    type: Literal["capture"]
    amount: int
    currency: str
    notify_result: str
    reference: str
    time: Time
    captured_amount: int
    last_capture: bool


PaymentUrl = Annotated[str, Meta(
    pattern="^https?://[^?]+\\?q=U[0-9]{10}-[0-9a-f]{20}$",
    description="The wallet page (`…/u_landing?q=<id>`, pay) or the QR image "
    "(`…/payment/qr?q=<id>`, pay_qr): the text after the first `=` is the transaction id.")]


class PaymentCreated(Answer):
    """pay / pay_qr with ``response_format=json``."""

    transaction_id: str
    url: PaymentUrl
    reference: str
    vendor: str
    amount: int
    currency: str
    trans_amount: int
    trans_currency: str
    status: WireStatus | None
    created: Annotated[bool, Meta(description="false when an existing transaction answered")]


class RefundSucceeded(Answer):
    id: str
    transaction_id: str
    refunded: Annotated[bool, Meta(extra_json_schema={"const": True})]
    status: Literal["success"]


class RefundFailed(Answer):
    """Refund failures are HTTP 200 (production's shape), e.g. `refund amount greater than
    payment amount`, `insufficient open balance`, `transaction not paid`, `transaction
    cancelled`, `refund currency does not match the transaction`, `Invalid transaction`."""

    refunded: Annotated[bool, Meta(extra_json_schema={"const": False})]
    status: Annotated[str, Meta(min_length=1)]


class CancelResult(Answer):
    """Every cancel answer is HTTP 200; `Invalid transaction` has null ids."""

    transaction_id: str | None
    transaction_reference: str | None
    cancelled: bool
    status: Annotated[str, Meta(extra_json_schema={
        "enum": [CANCEL_OK, CANCEL_DUPLICATE, CANCEL_WINDOW, INVALID_TRANSACTION]})]


class TransactionList(Answer):
    transactions: list[Charge]


class QrFailure(Answer):
    result: Literal["fail"]
    reason: Literal["QR code expired.", "QR code not found."]


# -- request forms -----------------------------------------------------------------------------

_TEXT_LIMIT = params.MAX_VALUE_LENGTH
# The schema forms of domain.commands' rules (parse_reference, check_url).
_NO_CONTROL = "^[^\\x00-\\x1f\\x7f]+$"
_URL = "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s/]+"


def _text(description: str, limit: int = _TEXT_LIMIT, **extra: Any) -> Meta:
    return Meta(max_length=limit, description=description,
                extra_json_schema=extra or None)


def _amount(description: str) -> Meta:
    return Meta(ge=1, le=commands.MAX_AMOUNT, description=description + " Whole minor "
                "units of the currency (ISO 4217 exponent: 999 is $9.99, 1000 is ¥1000); "
                "no decimals, separators or symbols (4102 otherwise).")


def _currency(description: str) -> Meta:
    return Meta(pattern="^[A-Za-z]{3}$",
                description=description + " A 3-letter ISO 4217 code (4100 if unknown).")


def _flag(description: str, documented: list[str]) -> Meta:
    return Meta(description=description + " Any of " + ", ".join(params.FLAG_WORDS)
                + " is understood, in any case.", extra_json_schema={"enum": documented})


def _url(description: str, limit: int = _TEXT_LIMIT) -> Meta:
    return Meta(pattern=_URL, max_length=limit, description=description
                + " An absolute http(s) URL (4100 otherwise).",
                extra_json_schema={"format": "uri"})


def _nested(name: str) -> Any:
    """An optional bracketed form field such as ``consumer[first_name]``."""
    return field(default=UNSET, name=name)


_TXN_ID = Meta(max_length=_TEXT_LIMIT,
               description="A transaction id, e.g. `U0000628932-e1bcb80a3b47f5d405c3`.")
_REFERENCE = Meta(max_length=_TEXT_LIMIT,
                  description="The merchant's reference (the most recent transaction it "
                  "applies to).")


class Form(msgspec.Struct, kw_only=True):
    """A form body (or the same pairs in a query string). ``schema_extra`` holds the rules
    on the object as a whole (which fields go together), merged into its JSON Schema:
    inside ``allOf``, so client generators still see one object with properties."""

    schema_extra: ClassVar[dict[str, Any]] = {}


# A price, on either side (or both).
_PRICED = {"anyOf": [{"required": ["amount", "currency"]},
                     {"required": ["trans_amount", "trans_currency"]}]}


def _named_by(reference_key: str) -> dict[str, Any]:
    """A transaction named by its id or by the merchant's reference."""
    return {"anyOf": [{"required": ["transaction_id"]}, {"required": [reference_key]}]}


class PaymentForm(Form, kw_only=True):
    """Unknown parameters are ignored; values are trimmed and empty values count as absent.
    `amount`+`currency` or `trans_amount`+`trans_currency` (or both) give the price; the
    other side is derived with the FX table."""

    schema_extra = {
        "allOf": [_PRICED],
        "dependentRequired": {"amount": ["currency"], "trans_amount": ["trans_currency"]},
    }

    vendor: Annotated[str, Meta(
        description="The payment method (4101 if unknown or missing; surrounding "
        "whitespace and case are forgiven).",
        extra_json_schema={"enum": [*sorted(accepted_by("online")), "generic"]})]
    amount: Annotated[int, _amount("Settlement-side amount, with `currency`.")] \
        | UnsetType = UNSET
    currency: Annotated[str, _currency("Settlement currency of `amount`.")] | UnsetType = UNSET
    trans_amount: Annotated[int, _amount(
        "Transaction-side amount, with `trans_currency`.")] | UnsetType = UNSET
    trans_currency: Annotated[str, _currency(
        "Transaction currency of `trans_amount`.")] | UnsetType = UNSET
    reference: Annotated[str, Meta(
        min_length=1, max_length=commands.MAX_REFERENCE_LENGTH, pattern=_NO_CONTROL,
        description="The merchant's order reference, 1-128 characters without control "
        "characters (4103 otherwise).")]
    allow_duplicates: Annotated[str, _flag(
        "`yes` creates a new transaction for a repeated reference; otherwise the existing "
        "one answers.", ["yes", "no"])] | UnsetType = UNSET
    timeout: Annotated[int, Meta(
        ge=1, le=commands.MAX_TIMEOUT, description="Seconds before the QR code or link "
        f"expires (default {commands.DEFAULT_TIMEOUT}; 4104 outside "
        f"1..{commands.MAX_TIMEOUT}).")] | UnsetType = UNSET
    auto_capture: Annotated[str, _flag(
        "Capture at once; default false, so delayed-capture vendors only authorise.",
        ["true", "false"])] | UnsetType = UNSET
    note: Annotated[str, _text("Free text kept with the payment and sent in the IPN.",
                               params.LONG_FIELDS["note"])] | UnsetType = UNSET
    ipn_url: Annotated[str, _url("Where the signed payment notification is posted.",
                                 params.LONG_FIELDS["ipn_url"])] | UnsetType = UNSET
    callback_url_success: Annotated[str, _url(
        "Where the browser goes after a successful payment.")] | UnsetType = UNSET
    callback_url: Annotated[str, _url(
        "Same as `callback_url_success` when that is absent (real clients send it).")] \
        | UnsetType = UNSET
    callback_url_fail: Annotated[str, _url(
        "Where the browser goes after a failed payment.")] | UnsetType = UNSET
    callback_url_cancel: Annotated[str, _url(
        "Where the browser goes after the consumer cancels.")] | UnsetType = UNSET
    mobile_result_url: Annotated[str, _url(
        "Result page inside the Alipay/WeChat Pay apps.")] | UnsetType = UNSET
    response_format: Annotated[str, Meta(
        description="`json` answers a JSON object instead of the plain-text URL.",
        extra_json_schema={"enum": ["json"]})] | UnsetType = UNSET
    country: Annotated[str, _text("Country of the order (ISO 3166).")] | UnsetType = UNSET
    locale: Annotated[str, _text(
        "Language of the hosted page (e.g. `en-us`).")] | UnsetType = UNSET
    promo: Annotated[str, _text(
        "A promotion of the payment plan (klarna).")] | UnsetType = UNSET
    bank: Annotated[str, Meta(
        description="The Korean bank of a `banktransfer` (4105 otherwise).",
        extra_json_schema={"enum": sorted(KOREAN_BANKS)})] | UnsetType = UNSET
    goods: Annotated[str, _text(
        'The goods being bought: a JSON object such as `{"data":[{"name":"…","quantity":1,'
        '"unit_amount":999}]}`. Sent as JSON text (4100 if not an object).',
        params.LONG_FIELDS["goods"], contentMediaType="application/json")] \
        | UnsetType = UNSET
    consumer_reference: Annotated[str, _text(
        "The merchant's identifier of the consumer.")] | UnsetType = _nested("consumer[reference]")
    consumer_first_name: Annotated[str, _text("The consumer's first name.")] \
        | UnsetType = _nested("consumer[first_name]")
    consumer_last_name: Annotated[str, _text("The consumer's last name.")] \
        | UnsetType = _nested("consumer[last_name]")
    consumer_phone: Annotated[str, _text("The consumer's phone number.")] \
        | UnsetType = _nested("consumer[phone]")
    consumer_email: Annotated[str, _text("The consumer's email address.")] \
        | UnsetType = _nested("consumer[email]")
    consumer_document_id: Annotated[str, _text("A document id some regions require.")] \
        | UnsetType = _nested("consumer[ext][document_id]")
    billing_street: Annotated[str, _text("Billing address: Street number and name.")] \
        | UnsetType = _nested("billing_address[street]")
    billing_street2: Annotated[str, _text("Billing address: Unit number.")] \
        | UnsetType = _nested("billing_address[street2]")
    billing_city: Annotated[str, _text("Billing address: City, town or village.")] \
        | UnsetType = _nested("billing_address[city]")
    billing_state: Annotated[str, _text("Billing address: State or province.")] \
        | UnsetType = _nested("billing_address[state]")
    billing_zip: Annotated[str, _text("Billing address: Postal code.")] \
        | UnsetType = _nested("billing_address[zip]")
    billing_country: Annotated[str, _text("Billing address: Country.")] \
        | UnsetType = _nested("billing_address[country]")


class InquireForm(Form, kw_only=True):
    """By `transaction_id` (a refund id works too) or `reference`."""

    schema_extra = {"allOf": [_named_by("reference")]}

    transaction_id: Annotated[str, _TXN_ID] | UnsetType = UNSET
    reference: Annotated[str, _REFERENCE] | UnsetType = UNSET
    inquire_method: Annotated[str, _text(
        "Accepted and ignored (documented value `real`).")] | UnsetType = UNSET


class RefundForm(Form, kw_only=True):
    """By `transaction_id` or `transaction_reference` (not both)."""

    schema_extra = {
        "allOf": [_named_by("transaction_reference"), _PRICED],
        "not": {"required": ["transaction_id", "transaction_reference"]},
        "dependentRequired": {"amount": ["currency"], "trans_amount": ["trans_currency"]},
    }

    transaction_id: Annotated[str, _TXN_ID] | UnsetType = UNSET
    transaction_reference: Annotated[str, _REFERENCE] | UnsetType = UNSET
    amount: Annotated[int, _amount("Refund amount on the settlement side.")] \
        | UnsetType = UNSET
    currency: Annotated[str, _currency(
        "Must be the transaction's settlement currency.")] | UnsetType = UNSET
    trans_amount: Annotated[int, _amount("Refund amount on the transaction side.")] \
        | UnsetType = UNSET
    trans_currency: Annotated[str, _currency(
        "Must be the transaction's transaction currency.")] | UnsetType = UNSET
    note: Annotated[str, _text("Why the refund is made.", params.LONG_FIELDS["note"])] \
        | UnsetType = UNSET
    reason: Annotated[str, _text("Same as `note` (the documented examples send it).")] \
        | UnsetType = UNSET


class CancelForm(Form, kw_only=True):
    schema_extra = {"allOf": [_named_by("transaction_reference")]}

    transaction_id: Annotated[str, _TXN_ID] | UnsetType = UNSET
    transaction_reference: Annotated[str, _REFERENCE] | UnsetType = UNSET


class CaptureForm(Form, kw_only=True):
    schema_extra = {"allOf": [_named_by("reference")]}

    transaction_id: Annotated[str, _TXN_ID] | UnsetType = UNSET
    reference: Annotated[str, _REFERENCE] | UnsetType = UNSET
    amount: Annotated[int, _amount(
        "Amount to capture on the settlement side (default: the rest).")] | UnsetType = UNSET
    multi_capture: Annotated[str, _flag(
        "Keep the authorisation open for more captures (klarna).", ["true", "false"])] \
        | UnsetType = UNSET
    last_capture: Annotated[str, _flag(
        "With multi_capture: this capture closes it.", ["true", "false"])] | UnsetType = UNSET


class QrQuery(Form, kw_only=True):
    q: Annotated[str, Meta(max_length=_TEXT_LIMIT, description="The transaction id.")]


class PageQuery(Form, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=1000, description="Default 100.")] | UnsetType = UNSET
    offset: Annotated[int, Meta(ge=0, le=params.MAX_OFFSET, description="Default 0.")] \
        | UnsetType = UNSET
