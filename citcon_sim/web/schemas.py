"""JSON Schemas of the control surface's answers, and the shared error answers.

The control surface answers dicts built by several modules (the IPN sender, the journal,
the scenario book), so its shapes are written here as JSON Schema; the route tables
(``web.control`` and friends) refer to them by name (:func:`ref`). The Online API's
shapes are msgspec models (``faces.online.models``).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from citcon_sim.domain.ledger import Status
from citcon_sim.domain.vendors import FACES
from citcon_sim.faces.params import MAX_VALUE_LENGTH
from citcon_sim.scenarios import schema_text

Schema = dict[str, Any]

TIME: Schema = {"type": "string",
                "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$",
                "description": "`yyyy-MM-dd HH:mm:ss` on the simulator's clock and zone."}
INT: Schema = {"type": "integer"}
STR: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
NUM: Schema = {"type": "number"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], required: list[str] | None = None,
        **extra: Any) -> Schema:
    """An object schema; ``required`` defaults to every property (an answer's shape)."""
    return {"type": "object", "required": list(properties) if required is None else required,
            "properties": properties, **extra}


def form(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    """A request form: nothing required unless said."""
    return {"type": "object", "properties": properties, "required": required or []}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def text(description: str, limit: int = MAX_VALUE_LENGTH) -> Schema:
    return {"type": "string", "maxLength": limit, "description": description}


def query(name: str, schema: Schema, description: str = "", *,
          required: bool = False) -> Schema:
    out: Schema = {"name": name, "in": "query", "required": required, "schema": schema}
    if description:
        out["description"] = description
    return out


MAX_TEXT = MAX_VALUE_LENGTH
TOKEN = query("token", {"type": "string", "maxLength": MAX_TEXT}, "One merchant only.")
LIMIT = query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})
# Open unless the simulator runs with --admin-token; then any one of these lets a call in.
ADMIN: tuple[dict[str, list[str]], ...] = (
    {}, {"adminBearer": []}, {"adminHeader": []}, {"adminQuery": []}, {"adminCookie": []},
)
ADMIN_REQUIRED: Schema = {
    "description": "With --admin-token: the admin token is missing or wrong.",
    "headers": {"WWW-Authenticate": {"schema": STR}},
    "content": {"application/json": {"schema": ref("ErrorEnvelope")}},
}


def components() -> dict[str, Schema]:
    attempt = obj({"number": INT, "trigger": STR, "time": TIME, "sent": BOOL,
                   "ok": BOOL, "status": nullable(INT), "error": nullable(STR),
                   "latency_ms": nullable(NUM), "body": STR,
                   # A `citcon-sim listen` client made it: which, and where it posted.
                   "via": nullable(STR)})
    notification = obj({
        "notify_id": STR, "transaction_id": STR, "event": STR, "url": nullable(STR),
        "state": {"enum": ["pending", "retrying", "delivered", "failed", "not_sent",
                           "suppressed"]},
        "created_time": TIME, "next_attempt_time": nullable(TIME),
        "retries_used": INT, "retries_max": INT,
        # The fields posted: text in a form, also numbers in a JSON body.
        "form": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
        "script": nullable({"type": "object"}), "attempts": {"type": "array",
                                                            "items": ref("IpnAttempt")},
    })
    sim_txn = {
        "allOf": [ref("Charge"), obj({
            "face": {"enum": sorted(FACES)}, "token_hint": STR,
            "internal_status": {"enum": [s.value for s in Status]},
            "paid_time": nullable(TIME), "ipn_url": nullable(STR),
            "callback_url_success": nullable(STR), "callback_url_fail": nullable(STR),
            "callback_url_cancel": nullable(STR), "mobile_result_url": nullable(STR),
            "goods": nullable({"type": "object"}), "extra": {"type": "object"},
            "timeline": {"type": "array", "items": obj({
                "time": TIME, "event": STR, "detail": nullable({"type": "object"})})},
        })],
    }
    script = nullable({"type": "object"})
    rule = obj({"name": STR, "source": STR, "times": nullable(INT), "seen": INT,
                "applied": INT, "payment": script, "ipn": script, "api": script,
                "refund": script})
    schemas: dict[str, Schema] = {
        "SimTransaction": sim_txn,
        "SimTransactionDetail": {"allOf": [ref("SimTransaction"), obj({
            "ipn": {"type": "array", "items": ref("Notification")}})]},
        "Notification": notification,
        "IpnAttempt": attempt,
        "Clock": obj({"time": TIME, "iso": {"type": "string", "format": "date-time"},
                      "epoch": NUM, "frozen": BOOL, "timezone": STR, "pending_jobs": INT}),
        "ScenarioView": obj({"name": STR, "source": STR, "description": STR,
                             "rules": {"type": "array", "items": rule}}),
        "ScenarioBook": obj({
            "global": {"type": "array", "items": ref("ScenarioView")},
            "by_token": {"type": "object", "additionalProperties": {
                "type": "array", "items": ref("ScenarioView")}},
            "magic_amounts": nullable(ref("ScenarioView"))}),
        "JournalEntry": obj({
            "seq": INT, "time": TIME, "face": STR, "method": STR, "path": STR,
            "endpoint": STR,
            "token": nullable(STR), "params": {"type": "object"}, "status": INT,
            "response": nullable(STR), "duration_ms": NUM,
            "transaction_id": nullable(STR), "scenario_rule": nullable(STR),
            "surprise": nullable(STR)}),
        "Scope": {"enum": ["merchant", "all"]},
        "Redelivery": obj({"redelivered": {"const": True},
                           "attempt": nullable(ref("IpnAttempt")),
                           "notification": nullable(ref("Notification"))}),
    }
    schemas.update(_scenario_schemas())
    return schemas


@cache
def _scenario_schemas() -> dict[str, Schema]:
    """``scenario.schema.json`` as components: its ``$defs`` become ``Scenario*`` schemas."""
    raw = json.loads(schema_text())  # as read at start
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


def _envelope(description: str, *, text_too: bool = False) -> Schema:
    content: Schema = {"application/json": {"schema": ref("ErrorEnvelope")}}
    if text_too:
        content["text/plain"] = {"schema": STR}
    return {"description": description, "content": content}


RESPONSES: dict[str, Schema] = {
    "BadRequest": _envelope(
        "4100-4105: a parameter is missing or malformed. A request line or header over "
        "8190 bytes is refused by the HTTP parser itself, before the simulator sees it, "
        "with a short text/plain answer.", text_too=True),
    "Unauthorized": _envelope("No token, a scheme other than Bearer (or, with a merchants "
                              "file, an unknown token): the message says `Unauthorized`."),
    "NotFound": _envelope("No such transaction, notification or endpoint."),
    "MethodNotAllowed": {
        **_envelope("Any method a path does not list; `Allow` names the ones it does."),
        "headers": {"Allow": {"schema": {"type": "string"}}}},
    "Forbidden": _envelope("An open `/_sim/` (no admin token) refuses a foreign `Host` "
                           "name and a cross-site state change (`Origin`)."),
    "Conflict": _envelope("The transaction's state does not allow the action."),
    "RequestTimeout": _envelope("The request body took longer than `--body-timeout`."),
    "PayloadTooLarge": _envelope("The body is larger than `max_body_bytes` (1 MiB)."),
    "ServerError": _envelope("4000 Unknown error, or a failure a loaded scenario scripts "
                             "(`api.error: 4000`, `api.http_status`).", text_too=True),
}
