"""UPI v1 answers as msgspec Structs: declaration order is the wire's key order (as
recorded, docs/evidence/upi-chop.md §1), and the OpenAPI schemas come from here.
Request bodies are described loosely (``*Body``): the handlers validate them field by
field (:mod:`.requests`) so that every mistake gets its own 4100 message."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

Epoch = Annotated[int, Meta(description="Epoch seconds on the simulator's clock.")]
Id = Annotated[str, Meta(pattern="^[0-9]{22}$")]
Hex32 = Annotated[str, Meta(pattern="^[0-9a-f]{32}$")]


class _S(msgspec.Struct, kw_only=True):
    pass


class UpiErrorData(_S):
    code: Annotated[str, Meta(pattern="^[0-9]{4}$")]
    message: str


class UpiErrorEnvelope(_S):
    status: Literal["fail"]
    app: Literal["citcon_upi"]
    version: str
    data: UpiErrorData


class UpiEnvelope(_S):
    status: Literal["success"]
    app: Literal["citcon_upi"]
    version: str
    data: Any


class UpiAccessToken(_S):
    access_token: Annotated[str, Meta(pattern="^UPI_")]
    token_type: Literal["server", "client"]
    expiry: Epoch
    permission: list[str]


class UpiClientEntry(_S):
    client: Literal["desktop", "mobile_browser"]
    format: Literal["redirect", "qr"]
    method: Literal["GET"]
    content: str


class UpiChargePayment(_S):
    method: str
    client: list[UpiClientEntry]


class UpiExchange(_S):
    amount: int
    currency: str
    rate: float | int


class UpiCharge(_S, kw_only=True):
    """The answer of ``POST /v1/charges`` (exchange: PayPal and Venmo only)."""

    object: Literal["charge"]
    charge_token: Hex32
    id: Id
    reference: str
    amount: int
    currency: str
    time_created: Epoch
    time_captured: Epoch | None
    auto_capture: bool
    status: str
    country: str
    exchange: UpiExchange | msgspec.UnsetType = msgspec.UNSET
    payment: UpiChargePayment


class UpiMethod(_S):
    method: str


class UpiTransaction(_S):
    """``GET /v1/transactions/{id}``: the charge as it is now."""

    object: Literal["charge"]
    id: Id
    charge_token: Hex32
    reference: str
    amount: int
    amount_captured: int
    amount_refunded: int
    currency: str
    country: str
    auto_capture: bool
    status: Annotated[str, Meta(extra_json_schema={
        "enum": ["initiated", "authorized", "succeeded", "failed", "expired", "canceled"]})]
    note: str | None
    time_created: Epoch
    time_authorized: Epoch | None
    time_captured: Epoch | None
    time_canceled: Epoch | None
    expiry: Epoch
    payment: UpiMethod


class UpiRefund(_S):
    """A refund (``POST /v1/refunds``; also ``GET /v1/transactions/{refund id}``)."""

    id: Id
    object: Literal["refund"]
    reference: str | None
    amount: int
    amount_refunded: Annotated[int, Meta(
        description="The charge's refunds so far, this one included.")]
    currency: str
    country: str
    time_created: Epoch
    payment: UpiMethod
    status: Literal["succeeded"]
    time_completed: Epoch
    exchange: UpiExchange


class UpiCancelPaymentData(_S):
    pan: str


class UpiCancelPayment(_S):
    method: str
    type: str
    data: UpiCancelPaymentData


class UpiCancel(_S):
    id: Id
    object: Literal["cancel"]
    reference: str | None
    amount: int
    currency: str
    time_created: Epoch
    country: str
    payment: UpiCancelPayment
    status: Literal["canceled"]


class UpiCapture(_S):
    id: Id
    object: Literal["capture"]
    reference: str
    amount: Annotated[int, Meta(description="Captured by this call.")]
    amount_captured: int
    currency: str
    time_created: Epoch
    time_captured: Epoch
    auto_capture: bool
    status: str
    country: str
    payment: UpiMethod


class UpiChargeEnvelope(UpiEnvelope):
    data: UpiCharge


class UpiTokenEnvelope(UpiEnvelope):
    data: UpiAccessToken


class UpiTransactionEnvelope(UpiEnvelope):
    data: UpiTransaction


class UpiRefundEnvelope(UpiEnvelope):
    data: UpiRefund


class UpiCancelEnvelope(UpiEnvelope):
    data: UpiCancel


class UpiCaptureEnvelope(UpiEnvelope):
    data: UpiCapture


# -- request bodies (documentation) ------------------------------------------------------

class UpiTokenBody(_S):
    token_type: Literal["server", "client"] = "server"


class UpiChargeBody(_S):
    transaction: dict[str, Any]
    payment: dict[str, Any]
    urls: dict[str, Any] | None = None
    consumer: dict[str, Any] | None = None
    goods: dict[str, Any] | None = None


class UpiRefundBody(_S):
    id: str
    reference: str
    amount: int | float
    currency: str | None = None
    note: str | None = None
    transaction_reference: str | None = None


class UpiCancelBody(_S):
    id: str
    reference: str | None = None
    transaction_reference: str | None = None


class UpiCaptureBody(_S):
    id: str
    amount: int | float | None = None
    reference: str | None = None
