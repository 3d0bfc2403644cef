"""The OpenAPI 3.1 description of everything the simulator serves, at ``GET /openapi.json``.

Three parts, tagged: the merchant API (``/payment/*``, Citcon's Online API as the
simulator answers it), the control surface (``/_sim/*``) and the consumer pages
(``/u_landing``). The document is plain data built once; each request gets a copy whose
``servers`` entry is the simulator's own base URL, so a client generator, Swagger UI or a
schema fuzzer pointed at ``/openapi.json`` talks to the right host.

``tests/test_openapi.py`` fails when a registered route is missing here (or a documented
one does not exist), and ``tests/test_fuzz.py`` runs Schemathesis against this document:
add a route, describe it here.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from aiohttp import web

from citcon_sim._version import __version__
from citcon_sim.domain import commands
from citcon_sim.domain.errors import ERROR_CODES
from citcon_sim.domain.ledger import (
    CANCEL_DUPLICATE,
    CANCEL_OK,
    CANCEL_WINDOW,
    INVALID_TRANSACTION,
    Status,
)
from citcon_sim.domain.vendors import KOREAN_BANKS, VENDORS
from citcon_sim.faces import params
from citcon_sim.faces.http import SIM, json_response
from citcon_sim.faces.online.handlers import MAX_OFFSET
from citcon_sim.scenarios import shipped_scenarios

OPENAPI_VERSION = "3.1.0"
Schema = dict[str, Any]

# -- small builders ---------------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _response(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def _json(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _obj(properties: dict[str, Schema], required: list[str] | None = None,
         **extra: Any) -> Schema:
    """An object schema; ``required`` defaults to every property (the answer's shape)."""
    return {"type": "object", "required": list(properties) if required is None else required,
            "properties": properties, **extra}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _query(name: str, schema: Schema, description: str = "", *,
           required: bool = False) -> Schema:
    out: Schema = {"name": name, "in": "query", "required": required, "schema": schema}
    if description:
        out["description"] = description
    return out


def _path(name: str, schema: Schema | None = None, description: str = "") -> Schema:
    out: Schema = {"name": name, "in": "path", "required": True,
                   "schema": schema or {"type": "string", "minLength": 1}}
    if description:
        out["description"] = description
    return out


def _form_body(schema: Schema, *, json_schema: Schema | None = None, required: bool = True,
               example: dict[str, Any] | None = None) -> Schema:
    """Form-urlencoded, as documented; the same fields as a JSON object are accepted too."""
    form: Schema = {"schema": schema}
    if example is not None:
        form["example"] = example
    return {
        "required": required,
        "content": {
            "application/x-www-form-urlencoded": form,
            "application/json": {"schema": json_schema or schema},
        },
    }


# The documentation's first example, with an IPN URL that never resolves (.example).
PAY_EXAMPLE = {
    "vendor": "alipay", "amount": 1, "currency": "USD", "reference": "test_citcon_001",
    "allow_duplicates": "yes", "ipn_url": "https://merchant.example/ipn",
    "callback_url_success": "https://merchant.example/s",
    "callback_url_fail": "https://merchant.example/f",
}


def _as_query(schema: Schema) -> list[Schema]:
    """A form schema's fields as query parameters (GET sends the same pairs)."""
    required = set(schema.get("required", ()))
    return [_query(name, prop, prop.get("description", ""), required=name in required)
            for name, prop in schema["properties"].items()]


def _errors(*statuses: int) -> dict[str, Schema]:
    names = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed",
             409: "Conflict", 413: "PayloadTooLarge", 500: "ServerError"}
    return {str(s): _response(names[s]) for s in statuses}


# -- field schemas shared by the request bodies -----------------------------------------------

_TEXT_LIMIT = params.MAX_VALUE_LENGTH
_NO_CONTROL = "^[^\\x00-\\x1f\\x7f]+$"
_URL = "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s/]+"
FLAG_WORDS = ["true", "false", "yes", "no", "1", "0", "y", "n", "on", "off"]


def _text(description: str, limit: int = _TEXT_LIMIT, **extra: Any) -> Schema:
    return {"type": "string", "maxLength": limit, "description": description, **extra}


def _amount(description: str) -> Schema:
    return {"type": "integer", "minimum": 1, "maximum": commands.MAX_AMOUNT,
            "description": description + " Whole minor units of the currency (ISO 4217 "
            "exponent: 999 is $9.99, 1000 is ¥1000); no decimals, separators or symbols "
            "(4102 otherwise)."}


def _currency(description: str) -> Schema:
    return {"type": "string", "pattern": "^[A-Za-z]{3}$",
            "description": description + " A 3-letter ISO 4217 code (4100 if unknown)."}


def _flag(description: str, documented: list[str]) -> Schema:
    return {"type": "string", "enum": documented,
            "description": description + " Any of " + ", ".join(FLAG_WORDS)
            + " is understood, in any case."}


def _url(description: str, limit: int = _TEXT_LIMIT) -> Schema:
    return {"type": "string", "format": "uri", "pattern": _URL, "maxLength": limit,
            "description": description + " An absolute http(s) URL (4100 otherwise)."}


CONSUMER_FIELDS = {
    "reference": "The merchant's identifier of the consumer.",
    "first_name": "The consumer's first name.",
    "last_name": "The consumer's last name.",
    "phone": "The consumer's phone number.",
    "email": "The consumer's email address.",
}
ADDRESS_FIELDS = {
    "street": "Street number and name.",
    "street2": "Unit number.",
    "city": "City, town or village.",
    "state": "State or province.",
    "zip": "Postal code.",
    "country": "Country.",
}


def _payment_fields(*, as_json: bool) -> dict[str, Schema]:
    fields: dict[str, Schema] = {
        "vendor": {"type": "string", "enum": sorted(VENDORS),
                   "description": "The payment method (4101 if unknown or missing; "
                   "surrounding whitespace and case are forgiven)."},
        "amount": _amount("Settlement-side amount, with `currency`."),
        "currency": _currency("Settlement currency of `amount`."),
        "trans_amount": _amount("Transaction-side amount, with `trans_currency`."),
        "trans_currency": _currency("Transaction currency of `trans_amount`."),
        "reference": {"type": "string", "minLength": 1,
                      "maxLength": commands.MAX_REFERENCE_LENGTH, "pattern": _NO_CONTROL,
                      "description": "The merchant's order reference, 1-128 characters "
                      "without control characters (4103 otherwise)."},
        "allow_duplicates": _flag("`yes` creates a new transaction for a repeated reference; "
                                  "otherwise the existing one answers.", ["yes", "no"]),
        "timeout": {"type": "integer", "minimum": 1, "maximum": commands.MAX_TIMEOUT,
                    "description": "Seconds before the QR code or link expires (default "
                    f"{commands.DEFAULT_TIMEOUT}; 4104 outside 1..{commands.MAX_TIMEOUT})."},
        "auto_capture": _flag("Capture at once; default false, so delayed-capture vendors "
                              "only authorise.", ["true", "false"]),
        "note": _text("Free text kept with the payment and sent in the IPN.",
                      params.LONG_FIELDS["note"]),
        "ipn_url": _url("Where the signed payment notification is posted.",
                        params.LONG_FIELDS["ipn_url"]),
        "callback_url_success": _url("Where the browser goes after a successful payment."),
        "callback_url_fail": _url("Where the browser goes after a failed payment."),
        "callback_url_cancel": _url("Where the browser goes after the consumer cancels."),
        "mobile_result_url": _url("Result page inside the Alipay/WeChat Pay apps."),
        "response_format": {"type": "string", "enum": ["json"],
                            "description": "`json` answers a JSON object instead of the "
                            "plain-text URL."},
        "country": _text("Country of the order (ISO 3166)."),
        "locale": _text("Language of the hosted page (e.g. `en-us`)."),
        "promo": _text("A promotion of the payment plan (klarna)."),
        "bank": {"type": "string", "enum": sorted(KOREAN_BANKS),
                 "description": "The Korean bank of a `banktransfer` (4105 otherwise)."},
    }
    goods_note = ("The goods being bought: a JSON object such as "
                  '`{"data":[{"name":"…","quantity":1,"unit_amount":999}]}`.')
    if as_json:
        fields["goods"] = {"type": "object", "description": goods_note}
        fields["consumer"] = {
            "type": "object",
            "properties": {**{k: _text(v) for k, v in CONSUMER_FIELDS.items()},
                           "ext": {"type": "object",
                                   "properties": {"document_id": _text("A document id.")}}},
        }
        fields["billing_address"] = {
            "type": "object", "properties": {k: _text(v) for k, v in ADDRESS_FIELDS.items()}}
        for name in ("amount", "trans_amount", "timeout"):
            fields[name] = {**fields[name], "description": fields[name]["description"]
                            + " A JSON number or a string of digits."}
        return fields
    fields["goods"] = _text(goods_note + " Sent as JSON text (4100 if not an object).",
                            params.LONG_FIELDS["goods"], contentMediaType="application/json")
    for key, description in CONSUMER_FIELDS.items():
        fields[f"consumer[{key}]"] = _text(description)
    fields["consumer[ext][document_id]"] = _text("A document id some regions require.")
    for key, description in ADDRESS_FIELDS.items():
        fields[f"billing_address[{key}]"] = _text("Billing address: " + description)
    return fields


def _payment_schema(*, as_json: bool) -> Schema:
    return {
        "type": "object",
        "required": ["vendor", "reference"],
        "properties": _payment_fields(as_json=as_json),
        "anyOf": [{"required": ["amount", "currency"]},
                  {"required": ["trans_amount", "trans_currency"]}],
        "dependentRequired": {"amount": ["currency"], "trans_amount": ["trans_currency"]},
        "description": "Unknown parameters are ignored; values are trimmed and empty values "
        "count as absent. `amount`+`currency` or `trans_amount`+`trans_currency` (or both) "
        "give the price; the other side is derived with the FX table.",
    }


_TXN_ID: Schema = {"type": "string", "maxLength": _TEXT_LIMIT,
                   "description": "A transaction id, e.g. `U0000628932-e1bcb80a3b47f5d405c3`."}


def _lookup_schema(reference_key: str, extra: dict[str, Schema], *,
                   exclusive: bool) -> Schema:
    schema: Schema = {
        "type": "object",
        "properties": {
            "transaction_id": _TXN_ID,
            reference_key: _text("The merchant's reference (the most recent transaction "
                                 "it applies to)."),
            **extra,
        },
        "anyOf": [{"required": ["transaction_id"]}, {"required": [reference_key]}],
    }
    if exclusive:
        schema["not"] = {"required": ["transaction_id", reference_key]}
    return schema


def _refund_schema() -> Schema:
    schema = _lookup_schema("transaction_reference", {
        "amount": _amount("Refund amount on the settlement side."),
        "currency": _currency("Must be the transaction's settlement currency."),
        "trans_amount": _amount("Refund amount on the transaction side."),
        "trans_currency": _currency("Must be the transaction's transaction currency."),
        "note": _text("Why the refund is made.", params.LONG_FIELDS["note"]),
        "reason": _text("Same as `note` (the documented examples send it)."),
    }, exclusive=True)
    schema["allOf"] = [{"anyOf": [{"required": ["amount", "currency"]},
                                  {"required": ["trans_amount", "trans_currency"]}]}]
    schema["dependentRequired"] = {"amount": ["currency"], "trans_amount": ["trans_currency"]}
    return schema


def _capture_schema() -> Schema:
    return _lookup_schema("reference", {
        "amount": _amount("Amount to capture on the settlement side (default: the rest)."),
        "multi_capture": _flag("Keep the authorisation open for more captures (klarna).",
                               ["true", "false"]),
        "last_capture": _flag("With multi_capture: this capture closes it.",
                              ["true", "false"]),
    }, exclusive=False)


# -- response schemas -------------------------------------------------------------------------

_TIME: Schema = {"type": "string",
                 "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$",
                 "description": "`yyyy-MM-dd HH:mm:ss` on the simulator's clock and zone."}
_INT: Schema = {"type": "integer"}
_STR: Schema = {"type": "string"}
_BOOL: Schema = {"type": "boolean"}
_NUM: Schema = {"type": "number"}
_WIRE_STATUS = _nullable({"type": "string", "enum": [
    s.value for s in Status if s is not Status.PENDING]})


def _components() -> dict[str, Schema]:
    charge_fields: dict[str, Schema] = {
        "id": _STR, "type": {"const": "charge"},
        "amount": _INT, "currency": _STR, "trans_amount": _INT, "trans_currency": _STR,
        "time": _TIME, "reference": _STR, "reference2": _STR,
        "status": {**_WIRE_STATUS, "description": "null while unpaid and unexpired."},
        "note": {"type": "string", "description": 'The string "null" when absent.'},
        "vendor": _STR, "method": {"enum": ["pay", "pay_qr"]}, "auto_capture": _BOOL,
        "captured_amount": _INT, "refunded_amount": _INT, "refunded_trans_amount": _INT,
        "created_time": _TIME, "expiry_time": _TIME,
        "refunds": {"type": "array", "items": ref("Refund")},
        "captures": {"type": "array", "items": ref("CaptureRecord")},
    }
    capture_fields: dict[str, Schema] = {
        "transaction_id": _STR, "type": {"const": "capture"}, "amount": _INT,
        "currency": _STR, "notify_result": _STR, "reference": _STR, "time": _TIME,
    }
    attempt = _obj({"number": _INT, "trigger": _STR, "time": _TIME, "sent": _BOOL,
                    "ok": _BOOL, "status": _nullable(_INT), "error": _nullable(_STR),
                    "latency_ms": _nullable(_NUM), "body": _STR})
    notification = _obj({
        "notify_id": _STR, "transaction_id": _STR, "event": _STR, "url": _nullable(_STR),
        "state": {"enum": ["pending", "retrying", "delivered", "failed", "not_sent",
                           "suppressed"]},
        "created_time": _TIME, "next_attempt_time": _nullable(_TIME),
        "retries_used": _INT, "retries_max": _INT,
        "form": {"type": "object", "additionalProperties": _STR},
        "script": _nullable({"type": "object"}), "attempts": {"type": "array",
                                                             "items": attempt},
    })
    sim_txn = {
        "allOf": [ref("Charge"), _obj({
            "token_hint": _STR, "internal_status": {"enum": [s.value for s in Status]},
            "paid_time": _nullable(_TIME), "ipn_url": _nullable(_STR),
            "callback_url_success": _nullable(_STR), "callback_url_fail": _nullable(_STR),
            "callback_url_cancel": _nullable(_STR), "mobile_result_url": _nullable(_STR),
            "goods": _nullable({"type": "object"}), "extra": {"type": "object"},
            "timeline": {"type": "array", "items": _obj({
                "time": _TIME, "event": _STR, "detail": _nullable({"type": "object"})})},
        })],
    }
    script = _nullable({"type": "object"})
    rule = _obj({"name": _STR, "source": _STR, "times": _nullable(_INT), "seen": _INT,
                 "applied": _INT, "payment": script, "ipn": script, "api": script,
                 "refund": script})
    clock = _obj({"time": _TIME, "iso": {"type": "string", "format": "date-time"},
                  "epoch": _NUM, "frozen": _BOOL, "timezone": _STR, "pending_jobs": _INT})
    schemas: dict[str, Schema] = {
        "ErrorEnvelope": {
            **_obj({"result": {"const": "fail"},
                    "code": {"type": "integer", "enum": [c for c in ERROR_CODES if c >= 4000]},
                    "message": {"type": "string", "minLength": 1}}),
            "additionalProperties": False,
            "description": "Every request error. The message starts with the documented "
            "text of the code (" + "; ".join(f"{c} {m}" for c, m in ERROR_CODES.items()
                                             if c >= 4000)
            + ") and may add which field was wrong.",
        },
        "PaymentUrl": {"type": "string", "pattern": "^https?://[^?]+\\?q=U[0-9]{10}-[0-9a-f]{20}$",
                       "description": "The wallet page (`…/u_landing?q=<id>`, pay) or the "
                       "QR image (`…/payment/qr?q=<id>`, pay_qr): the text after the first "
                       "`=` is the transaction id."},
        "PaymentCreated": _obj({
            "transaction_id": _STR, "url": ref("PaymentUrl"), "reference": _STR,
            "vendor": _STR, "amount": _INT, "currency": _STR, "trans_amount": _INT,
            "trans_currency": _STR, "status": _WIRE_STATUS,
            "created": {"type": "boolean",
                        "description": "false when an existing transaction answered"},
        }),
        "Charge": _obj(charge_fields),
        "Refund": _obj({
            "id": _STR, "type": {"const": "refund"}, "transaction_id": _STR, "amount": _INT,
            "currency": _STR, "trans_amount": _INT, "trans_currency": _STR, "time": _TIME,
            "status": {"const": "success"}, "note": _STR}),
        "RefundSucceeded": _obj({"id": _STR, "transaction_id": _STR,
                                 "refunded": {"const": True}, "status": {"const": "success"}}),
        "RefundFailed": {
            **_obj({"refunded": {"const": False}, "status": {"type": "string", "minLength": 1}}),
            "description": "Refund failures are HTTP 200 (production's shape), e.g. `refund "
            "amount greater than payment amount`, `insufficient open balance`, `transaction "
            "not paid`, `transaction cancelled`, `refund currency does not match the "
            "transaction`, `Invalid transaction`.",
        },
        "CancelResult": {
            **_obj({"transaction_id": _nullable(_STR), "transaction_reference": _nullable(_STR),
                    "cancelled": _BOOL,
                    "status": {"enum": [CANCEL_OK, CANCEL_DUPLICATE, CANCEL_WINDOW,
                                        INVALID_TRANSACTION]}}),
            "description": "Every cancel answer is HTTP 200; `Invalid transaction` has null "
            "ids.",
        },
        "CaptureRecord": _obj(capture_fields),
        "CaptureResult": _obj({**capture_fields, "captured_amount": _INT,
                               "last_capture": _BOOL}),
        "TransactionList": _obj({"transactions": {"type": "array", "items": ref("Charge")}}),
        "QrFailure": _obj({"result": {"const": "fail"},
                           "reason": {"enum": ["QR code expired.", "QR code not found."]}}),
        "SimTransaction": sim_txn,
        "SimTransactionDetail": {"allOf": [ref("SimTransaction"), _obj({
            "ipn": {"type": "array", "items": ref("Notification")}})]},
        "Notification": notification,
        "IpnAttempt": attempt,
        "Clock": clock,
        "ScenarioView": _obj({"name": _STR, "source": _STR, "description": _STR,
                              "rules": {"type": "array", "items": rule}}),
        "ScenarioBook": _obj({
            "global": {"type": "array", "items": ref("ScenarioView")},
            "by_token": {"type": "object", "additionalProperties": {
                "type": "array", "items": ref("ScenarioView")}},
            "magic_amounts": _nullable(ref("ScenarioView"))}),
        "JournalEntry": _obj({
            "seq": _INT, "time": _TIME, "method": _STR, "path": _STR, "endpoint": _STR,
            "token": _nullable(_STR), "params": {"type": "object"}, "status": _INT,
            "response": _nullable(_STR), "duration_ms": _NUM,
            "transaction_id": _nullable(_STR), "scenario_rule": _nullable(_STR)}),
        "Scope": {"enum": ["merchant", "all"]},
        "PaymentForm": _payment_schema(as_json=False),
        "PaymentJson": _payment_schema(as_json=True),
        "InquireForm": _inquire_schema(),
        "RefundForm": _refund_schema(),
        "CancelForm": _lookup_schema("transaction_reference", {}, exclusive=False),
        "CaptureForm": _capture_schema(),
        "Redelivery": _obj({"redelivered": {"const": True},
                            "attempt": _nullable(ref("IpnAttempt")),
                            "notification": _nullable(ref("Notification"))}),
    }
    schemas.update(_scenario_schemas())
    return schemas


def _scenario_schemas() -> dict[str, Schema]:
    """``scenario.schema.json`` as components: its ``$defs`` become ``Scenario*`` schemas."""
    text = resources.files("citcon_sim").joinpath("scenario.schema.json").read_text("utf-8")
    raw = json.loads(text)
    names = {name: "Scenario" + name[:1].upper() + name[1:] for name in raw.get("$defs", {})}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: rewrite(v) for k, v in node.items()
                   if k not in ("$schema", "$id", "$defs")}
            target = out.get("$ref")
            if isinstance(target, str) and target.startswith("#/$defs/"):
                out["$ref"] = "#/components/schemas/" + names[target.removeprefix("#/$defs/")]
            return out
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    found = {names[name]: rewrite(schema) for name, schema in raw.get("$defs", {}).items()}
    found["Scenario"] = rewrite(raw)
    return found


_RESPONSES: dict[str, Schema] = {
    "BadRequest": {"description": "4100-4105: a parameter is missing or malformed. A request "
                   "line or header over 8190 bytes is refused by the HTTP parser itself, "
                   "before the simulator sees it, with a short text/plain answer.",
                   "content": {"application/json": {"schema": ref("ErrorEnvelope")},
                               "text/plain": {"schema": _STR}}},
    "Unauthorized": {"description": "No token (or, with a merchants file, an unknown one).",
                     "content": {"application/json": {"schema": ref("ErrorEnvelope")}}},
    "NotFound": {"description": "No such transaction, notification or endpoint.",
                 "content": {"application/json": {"schema": ref("ErrorEnvelope")}}},
    "MethodNotAllowed": {
        "description": "Any method a path does not list; `Allow` names the ones it does.",
        "headers": {"Allow": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": ref("ErrorEnvelope")}}},
    "Conflict": {"description": "The transaction's state does not allow the action.",
                 "content": {"application/json": {"schema": ref("ErrorEnvelope")}}},
    "PayloadTooLarge": {"description": "The body is larger than `max_body_bytes` (1 MiB).",
                        "content": {"application/json": {"schema": ref("ErrorEnvelope")}}},
    "ServerError": {"description": "4000 Unknown error, or a failure a loaded scenario "
                    "scripts (`api.error: 4000`, `api.http_status`).",
                    "content": {"application/json": {"schema": ref("ErrorEnvelope")},
                                "text/plain": {"schema": _STR}}},
}

_MERCHANT: list[dict[str, list[str]]] = [{"bearerAuth": []}]
# Open unless the simulator runs with --admin-token; then any one of these lets a call in.
_ADMIN: list[dict[str, list[str]]] = [
    {}, {"adminBearer": []}, {"adminHeader": []}, {"adminQuery": []}, {"adminCookie": []},
]
_MERCHANT_ERRORS = (400, 401, 413, 500)


# -- the merchant API -------------------------------------------------------------------------


def _create_op(method: str, endpoint: str) -> Schema:
    what = ("the hosted wallet page URL (`…/u_landing?q=<id>`)" if endpoint == "pay"
            else "the QR image URL (`…/payment/qr?q=<id>`)")
    op: Schema = {
        "tags": ["merchant"],
        "operationId": f"{endpoint.replace('_q', 'Q')}{method.capitalize()}",
        "summary": f"Create a payment; answers {what}",
        "security": _MERCHANT,
        "responses": {
            "200": {"description": "The payment (a repeated reference without "
                    "`allow_duplicates=yes` answers the existing one).",
                    "content": {"text/plain": {"schema": ref("PaymentUrl")},
                                "application/json": {"schema": ref("PaymentCreated")}}},
            **_errors(*_MERCHANT_ERRORS),
        },
    }
    if method == "get":
        op["description"] = "The same parameters in the query string (some integrations GET)."
        op["parameters"] = _as_query(_payment_schema(as_json=False))
    else:
        op["requestBody"] = _form_body(ref("PaymentForm"), json_schema=ref("PaymentJson"),
                                       example=PAY_EXAMPLE)
    return op


def _merchant_op(op_id: str, summary: str, body: str, ok: Schema, *,
                 query: Schema | None = None, description: str = "") -> Schema:
    """POST with the ``body`` component, or GET with ``query``'s fields as parameters."""
    op: Schema = {"tags": ["merchant"], "operationId": op_id, "summary": summary,
                  "security": _MERCHANT,
                  "responses": {"200": ok, **_errors(*_MERCHANT_ERRORS)}}
    if description:
        op["description"] = description
    if query is not None:
        op["parameters"] = _as_query(query)
    else:
        op["requestBody"] = _form_body(ref(body))
    return op


def _inquire_schema() -> Schema:
    return _lookup_schema("reference", {
        "inquire_method": _text("Accepted and ignored (documented value `real`).")},
        exclusive=False)


def _merchant_paths() -> dict[str, Schema]:
    charge_or_refund = _json("The charge (or, for a refund id, the refund).",
                             {"oneOf": [ref("Charge"), ref("Refund")]})
    inquire_text = ("By `transaction_id` (a refund id works too) or `reference`; an unknown "
                    "or foreign transaction is a 4100 envelope.")
    paging = [_query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Default 100."),
              _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                     "Default 0.")]
    listing: Schema = {
        "tags": ["merchant"], "summary": "The calling merchant's transactions, newest first",
        "security": _MERCHANT, "parameters": paging,
        "responses": {"200": _json("The transactions.", ref("TransactionList")),
                      **_errors(*_MERCHANT_ERRORS)},
    }
    return {
        "/payment/pay": {"get": _create_op("get", "pay"), "post": _create_op("post", "pay")},
        "/payment/pay_qr": {"get": _create_op("get", "pay_qr"),
                            "post": _create_op("post", "pay_qr")},
        "/payment/inquire": {
            "get": _merchant_op("inquireGet", "Inquire a payment", "InquireForm",
                                charge_or_refund, query=_inquire_schema(),
                                description=inquire_text),
            "post": _merchant_op("inquirePost", "Inquire a payment", "InquireForm",
                                 charge_or_refund, description=inquire_text),
        },
        "/payment/refund": {"post": _merchant_op(
            "refund", "Refund a paid payment, fully or partly", "RefundForm",
            _json("Refunded, or refused (still HTTP 200, `refunded: false`).",
                  {"oneOf": [ref("RefundSucceeded"), ref("RefundFailed")]}),
            description="By `transaction_id` or `transaction_reference` (not both).")},
        "/payment/cancel": {"post": _merchant_op(
            "cancel", "Cancel a pending, void an authorised or reverse a paid payment",
            "CancelForm", _json("The outcome.", ref("CancelResult")))},
        "/payment/capture": {"post": _merchant_op(
            "capture", "Capture an authorisation (delayed-capture vendors)", "CaptureForm",
            _json("The capture; failures are 4100 envelopes.", ref("CaptureResult")))},
        "/payment/qr": {"get": {
            "tags": ["merchant"], "operationId": "qrImage",
            "summary": "The QR code of a pay_qr payment (no token needed: a phone loads it)",
            "parameters": [_query("q", {"type": "string", "maxLength": _TEXT_LIMIT},
                                  "The transaction id.", required=True)],
            "responses": {
                "200": {"description": "A PNG encoding the wallet-page URL; after the "
                        "timeout, `QR code expired.` as JSON.",
                        "content": {"image/png": {"schema": {"contentMediaType": "image/png"}},
                                    "application/json": {"schema": ref("QrFailure")}}},
                "404": _json("No such transaction.", ref("QrFailure")),
                **_errors(400, 413, 500),
            },
        }},
        "/payment/list": {"get": {**listing, "operationId": "listTransactions"}},
        "/payment/transactions": {"get": {**listing, "operationId": "listTransactionsAlias",
                                          "description": "Same as `/payment/list`."}},
    }


# -- the control surface ----------------------------------------------------------------------


def _control_op(op_id: str, summary: str, ok: Schema, *, errors: tuple[int, ...] = (),
                parameters: list[Schema] | None = None, body: Schema | None = None,
                description: str = "", extra: dict[str, Schema] | None = None) -> Schema:
    op: Schema = {"tags": ["control"], "operationId": op_id, "summary": summary,
                  "responses": {"200": ok, **(extra or {}), **_errors(*errors)}}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    return op


def _form(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    return {"type": "object", "properties": properties, "required": required or []}


def _control_paths() -> dict[str, Schema]:
    token = _query("token", {"type": "string", "maxLength": _TEXT_LIMIT}, "One merchant only.")
    limit = _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})
    sim_txn_list = _obj({"transactions": {"type": "array", "items": ref("SimTransaction")}})
    advance = _form({"seconds": {"type": "number", "minimum": 0, "maximum": 10 * 365 * 86400,
                                 "description": "Virtual seconds to move forward."}},
                    ["seconds"])
    shipped = sorted(shipped_scenarios())
    scenario_form = _form({
        "name": {"type": "string", "enum": shipped, "description": "A shipped scenario."},
        "scenario": {"type": "string", "description": "YAML or JSON text."},
        "token": {"type": "string", "description": "Scope it to one merchant."}})
    scope = _obj({"scope": ref("Scope")})
    return {
        "/_sim/health": {"get": _control_op(
            "health", "Ready", _json("Always ok once serving.",
                                     _obj({"status": {"const": "ok"}})))},
        "/_sim/transactions": {"get": _control_op(
            "simTransactions", "Every transaction (or one merchant's), newest first",
            _json("With refunds, captures and a timeline.", sim_txn_list), errors=(400,),
            parameters=[token, limit, _query("offset", {"type": "integer", "minimum": 0,
                                                   "maximum": MAX_OFFSET})])},
        "/_sim/transactions/{id}": {"get": _control_op(
            "simTransaction", "One transaction, with its IPNs",
            _json("The transaction.", ref("SimTransactionDetail")), errors=(404,),
            parameters=[_path("id")])},
        "/_sim/transactions/{id}/{action}": {"post": _control_op(
            "simAct", "Act as the consumer (or time): pay, fail, expire or cancel",
            _json("The transaction after the action.", ref("SimTransaction")),
            errors=(400, 404, 409, 413),
            parameters=[_path("id"), _path("action", {"type": "string",
                                                    "enum": ["pay", "fail", "expire", "cancel"]},
                                           "`pay` authorises delayed-capture payments.")],
            body=_form_body(_form({"reason": _text("Failure reason (fail).")}),
                            required=False))},
        "/_sim/clock": {"get": _control_op("clock", "The virtual clock",
                                           _json("Now.", ref("Clock")))},
        "/_sim/clock/advance": {"post": _control_op(
            "advanceClock", "Move virtual time forward; everything due fires",
            _json("The clock after, and how many jobs ran.",
                  {"allOf": [ref("Clock"), _obj({"jobs_run": _INT})]}),
            errors=(400, 413), body=_form_body(advance))},
        "/_sim/reset": {"post": _control_op(
            "reset", "Forget every transaction, or one merchant's",
            _json("Done.", _obj({"reset": {"const": True}, "scope": ref("Scope")})),
            errors=(400, 413), parameters=[token],
            body=_form_body(_form({"token": _text("One merchant only.")}), required=False))},
        "/_sim/vendors": {"get": _control_op(
            "vendors", "The vendor catalogue and capabilities",
            _json("Every vendor.", _obj({"vendors": {"type": "array", "items": _obj({
                "code": _STR, "name": _STR, "default_currency": _STR, "qr_scan": _BOOL,
                "delayed_capture": _BOOL, "multi_capture": _BOOL, "mobile_result_url": _BOOL,
                "cancel_window_seconds": _INT})}})))},
        "/_sim/balance": {"get": _control_op(
            "balance", "A merchant's open balance today",
            _json("Per settlement currency.", _obj({
                "day": {"type": "string", "format": "date"}, "refund_exempt": _BOOL,
                "open_balance": {"type": "object", "additionalProperties": _INT}})),
            errors=(400, 401),
            parameters=[{**token, "required": True, "description": "The merchant."}])},
        "/_sim/scenarios": {
            "get": _control_op("scenarios", "Loaded scenarios and their counters",
                               _json("Global and per-merchant.", ref("ScenarioBook")),
                               errors=(400,), parameters=[token]),
            "post": _control_op(
                "loadScenario", "Load a scenario at run time",
                _json("Loaded.", {"allOf": [scope, _obj({"loaded": ref("ScenarioView")})]}),
                errors=(400, 413), parameters=[token],
                description="The scenario as the body (YAML or JSON), or as a form: "
                "`name=<shipped scenario>` or `scenario=<text>`. `token` scopes it to one "
                "merchant.",
                body={"required": True, "content": {
                    "application/json": {"schema": ref("Scenario")},
                    "application/yaml": {"schema": _STR},
                    "text/plain": {"schema": _STR},
                    "application/x-www-form-urlencoded": {"schema": scenario_form}}}),
            "delete": _control_op(
                "clearScenarios", "Unload scenarios (all, or one merchant's)",
                _json("Done.", {"allOf": [scope, _obj({"cleared": {"const": True}})]}),
                parameters=[token]),
        },
        "/_sim/requests": {"get": _control_op(
            "requests", "Journal of merchant API calls, newest first",
            _json("Requests and answers (tokens redacted).", _obj({
                "requests": {"type": "array", "items": ref("JournalEntry")}})),
            errors=(400,),
            parameters=[token, _query("path", _STR), _query("transaction_id", _STR),
                        _query("limit", {"type": "integer"}, "Clamped to 1..1000.")])},
        "/_sim/ipn": {"get": _control_op(
            "ipnLog", "IPN notifications and every delivery attempt, newest first",
            _json("The log and the sender's counters.", _obj({
                "notifications": {"type": "array", "items": ref("Notification")},
                "stats": {"type": "object", "additionalProperties": True}})),
            errors=(400,), parameters=[_query("transaction_id", _STR), token, limit])},
        "/_sim/state": {
            "get": _control_op(
                "exportState", "The whole state as a versioned JSON snapshot",
                _json("Merchants (tokens in clear), transactions, IPNs, clock, ids.",
                      _obj({"format": {"const": "citcon-sim-state"}, "version": _INT,
                            "clock": {"type": "object"}, "ids": {"type": "object"},
                            "merchants": {"type": "object"},
                            "transactions": {"type": "array"}, "ipn": {"type": "array"}})),
                parameters=[_query("pretty", {"enum": ["yes", "no"]}, "Indented JSON.")]),
            "put": _control_op(
                "importState", "Replace the whole state with a snapshot",
                _json("Restored: what was loaded.", _obj({
                    "restored": {"const": True}, "transactions": _INT, "refunds": _INT,
                    "merchants": _INT, "notifications": _INT,
                    "clock": {"type": "string", "format": "date-time"}})),
                errors=(400, 413),
                description="A snapshot from `GET /_sim/state`, or a hand-written fixture "
                "(most fields optional). A snapshot that cannot be used changes nothing.",
                body={"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {
                        "format": {"const": "citcon-sim-state"}, "version": _INT,
                        "clock": {"type": "object"}, "merchants": {"type": "object"},
                        "transactions": {"type": "array", "items": {"type": "object"}},
                        "ipn": {"type": "array", "items": {"type": "object"}}}}}}}),
        },
        "/_sim/ipn/{notify_id}/redeliver": {"post": _control_op(
            "ipnRedeliver", "Send a notification again now (same form and notify_id)",
            _json("The attempt made.", ref("Redelivery")),
            errors=(400, 404, 413),
            parameters=[_path("notify_id"),
                        _query("wait", {"enum": ["yes", "no"]}, "`no` answers 202 at once.")],
            body=_form_body(_form({"wait": {"enum": ["yes", "no"]}}), required=False),
            extra={"202": _json("Queued; not attempted yet.", ref("Redelivery"))})},
    }


def _dashboard_paths() -> dict[str, Schema]:
    html = {"text/html": {"schema": _STR}}
    return {
        "/_sim": {"get": {"tags": ["control"], "operationId": "dashboardRedirect",
                          "summary": "Redirects to the dashboard",
                          "responses": {"302": {"description": "To `/_sim/`.",
                                                "headers": {"Location": {"schema": _STR}},
                                                "content": {"text/plain": {"schema": _STR}}}}}},
        "/_sim/": {"get": {"tags": ["control"], "operationId": "dashboard",
                           "summary": "The live dashboard (HTML)",
                           "responses": {"200": {"description": "The page.",
                                                 "content": html}}}},
        "/_sim/events": {"get": {
            "tags": ["control"], "operationId": "dashboardEvents",
            "summary": "Server-Sent Events telling open dashboards that something changed",
            "description": "A stream that stays open: `hello`, `txn`, `clock`, `ipn`, "
            "`reset`, `resync` events.",
            "responses": {"200": {"description": "The stream.",
                                  "content": {"text/event-stream": {"schema": _STR}}},
                          "503": {"description": "Shutting down.",
                                  "content": {"text/plain": {"schema": _STR}}}}}},
        "/_sim/dashboard/state": {"get": {
            "tags": ["control"], "operationId": "dashboardState",
            "summary": "What the dashboard shows, in one call",
            "parameters": [_query("merchant", _STR, "A merchant key."),
                           _query("token", _STR, "A merchant token."),
                           _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})],
            "responses": {"200": _json("Transactions, merchants (hints), clock, IPN counters.",
                                       {"type": "object", "properties": {
                                           "transactions": {"type": "array"},
                                           "merchants": {"type": "array"},
                                           "total": _INT, "all_total": _INT}})}}},
    }


# -- the consumer pages -----------------------------------------------------------------------


def _page_paths() -> dict[str, Schema]:
    html = {"text/html": {"schema": _STR}}
    view = _query("view", {"enum": ["desktop", "mobile"]}, "Overrides the User-Agent.")
    return {
        "/u_landing": {"get": {
            "tags": ["pages"], "operationId": "walletPage",
            "summary": "The simulated wallet page a pay URL or QR code leads to",
            "parameters": [_query("q", {"type": "string", "maxLength": _TEXT_LIMIT},
                                  "The transaction id.", required=True), view],
            "responses": {"200": {"description": "The open payment, or its final state.",
                                  "content": html},
                          "404": {"description": "No such payment.", "content": html}}}},
        "/u_landing/{id}/status": {"get": {
            "tags": ["pages"], "operationId": "walletStatus",
            "summary": "What an open wallet page polls",
            "parameters": [_path("id"), view],
            "responses": {
                "200": _json("State, virtual seconds left, where to go next.", _obj({
                    "status": {"enum": [s.value for s in Status]}, "remaining": _INT,
                    "frozen": _BOOL, "next": _nullable(_STR)})),
                "404": _json("No such payment.", _obj({"status": {"type": "null"}}))}}},
        "/u_landing/{id}/{action}": {"post": {
            "tags": ["pages"], "operationId": "walletAction",
            "summary": "The consumer pays (or authorises), fails or cancels",
            "parameters": [_path("id"), _path("action", {"type": "string",
                                                          "enum": ["pay", "fail", "cancel"]})],
            "requestBody": {"required": False, "content": {
                "application/x-www-form-urlencoded": {"schema": _form({"view": {
                    "enum": ["desktop", "mobile"]}})}}},
            "responses": {
                "303": {"description": "Post/redirect/get: to the merchant's callback URL "
                        "(or `mobile_result_url`), else back to the page.",
                        "headers": {"Location": {"required": True, "schema": _STR}},
                        "content": {"text/plain": {"schema": _STR}}},
                "400": _response("BadRequest"),
                "404": {"description": "No such payment (a page), or no such action.",
                        "content": {**html,
                                    "application/json": {"schema": ref("ErrorEnvelope")}}},
                "413": _response("PayloadTooLarge")}}},
    }


# -- the document -----------------------------------------------------------------------------


@cache
def _static() -> dict[str, Any]:
    components = _components()
    paths = {**_merchant_paths(), **_control_paths(), **_dashboard_paths(), **_page_paths(),
             "/openapi.json": {"get": {
                 "tags": ["control"], "operationId": "openapi",
                 "summary": "This document",
                 "responses": {"200": _json("OpenAPI 3.1.", {"type": "object",
                                                             "required": ["openapi"]})}}}}
    for path, item in paths.items():
        for op in item.values():  # any request line or header can be too long for the parser
            op["responses"].setdefault("400", _response("BadRequest"))
        if path == "/_sim" or (path.startswith("/_sim/") and path != "/_sim/health"):
            for op in item.values():
                op["security"] = _ADMIN
                op["responses"].setdefault("401", {
                    "description": "With --admin-token: the admin token is missing or wrong.",
                    "headers": {"WWW-Authenticate": {"schema": _STR}},
                    "content": {"application/json": {"schema": ref("ErrorEnvelope")}}})
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "citcon-sim",
            "version": __version__,
            "summary": "A local simulator of Citcon's Online API, with its control surface.",
            "description": "Merchant API (`/payment/*`): form-urlencoded bodies as Citcon "
            "documents them (the same parameters in a GET query string or as a JSON object "
            "work too); values are trimmed and empty values count as absent; unknown "
            "parameters are ignored. Errors answer the envelope "
            '`{"result":"fail","code":…,"message":…}`: HTTP 400 for 41xx, 401 without a '
            "token, 404 for an unknown path, 405 (with `Allow`) for a method a path does "
            "not list, 413 for a body over the limit, 500 for 4000. Control surface "
            "(`/_sim/*`, form or JSON bodies, JSON answers) and consumer pages "
            "(`/u_landing`) need no token.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [
            {"name": "merchant", "description": "Citcon's Online API, as simulated."},
            {"name": "control", "description": "Drive the simulator from tests, QA, demos."},
            {"name": "pages", "description": "What the consumer's browser sees."},
        ],
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": _RESPONSES,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http", "scheme": "bearer",
                    "description": "The merchant token: `Authorization: Bearer <token>`. The "
                    "bare form `Authorization: <token>` is accepted too, as production does. "
                    "Any non-empty token is its own merchant unless a merchants file lists "
                    "them.",
                },
                "adminBearer": {"type": "http", "scheme": "bearer",
                                "description": "The --admin-token, when one is set."},
                "adminHeader": {"type": "apiKey", "in": "header", "name": "X-Admin-Token"},
                "adminQuery": {"type": "apiKey", "in": "query", "name": "admin_token",
                               "description": "For a browser; also sets the cookie."},
                "adminCookie": {"type": "apiKey", "in": "cookie", "name": "citcon_sim_admin"},
            },
        },
    }


def document(base_url: str) -> dict[str, Any]:
    """The OpenAPI document, with ``base_url`` as its one server."""
    doc = copy.deepcopy(_static())
    doc["servers"] = [{"url": base_url.rstrip("/") or "/", "description": "This simulator."}]
    return doc


async def serve(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    return json_response(document(sim.base_url(request.host)))
