"""The ``/_sim/`` control surface: drive the consumer's side and the clock from tests."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from citcon_sim.config import LATEST_TIME
from citcon_sim.domain.errors import BadRequest, NotFound
from citcon_sim.domain.vendors import VENDORS
from citcon_sim.faces.http import SIM, json_response, read_params
from citcon_sim.faces.online import wire
from citcon_sim.faces.params import MAX_OFFSET, page
from citcon_sim.faces.params import text as param_text
from citcon_sim.faces.routes import FORM, JSON, Reply, Route, RouteTable
from citcon_sim.scenarios import (
    Scenario,
    ScenarioError,
    parse_scenario,
    resolve_scenario,
    shipped_scenarios,
)
from citcon_sim.web import schemas as S


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def list_transactions(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    params = await read_params(request)
    limit, offset = page(params)
    token = param_text(params, "token")  # token[x]=… is a 400, not an unhashable-dict 500
    merchant = sim.ledger.merchants.get(token) if token else None
    if token and merchant is None:
        return json_response({"transactions": []})
    txns = sim.ledger.transactions(merchant, limit=limit, offset=offset)
    return json_response({"transactions": [wire.sim_transaction(t, sim.clock) for t in txns]})


async def get_transaction(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    txn = sim.ledger.get(request.match_info["id"])
    body = wire.sim_transaction(txn, sim.clock)
    body["ipn"] = sim.ipn.describe(transaction_id=txn.id)  # notifications, newest first
    return json_response(body)


async def act(request: web.Request) -> web.Response:
    """pay | fail | expire | cancel, as the consumer (or the passing of time) would."""
    sim = request.app[SIM]
    txn_id, action = request.match_info["id"], request.match_info["action"]
    params = await read_params(request)
    txn = sim.ledger.consumer_act(txn_id, action, str(params.get("reason") or "declined"))
    return json_response(wire.sim_transaction(txn, sim.clock))


def _clock(sim: Any) -> dict[str, Any]:
    now = sim.clock.time()
    return {
        "time": sim.clock.format(now),
        "iso": sim.clock.iso(now),
        "epoch": now,
        "frozen": sim.clock.frozen,
        "timezone": sim.config.timezone,
        "pending_jobs": len(sim.scheduler.pending()),
    }


async def get_clock(request: web.Request) -> web.Response:
    return json_response(_clock(request.app[SIM]))


async def advance_clock(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    params = await read_params(request)
    raw = params.get("seconds")
    try:
        seconds = float(raw) if isinstance(raw, str) else float("nan")
    except ValueError:
        seconds = float("nan")
    if not 0 <= seconds <= 10 * 365 * 86400:  # NaN fails this too
        raise BadRequest("seconds must be a number from 0 to ten years")
    if sim.clock.time() + seconds >= LATEST_TIME.timestamp():
        # Past it, times computed from now could not be shown (year 9999 is the end).
        raise BadRequest(f"the clock cannot move past {LATEST_TIME:%Y-%m-%d}")
    ran = sim.advance(seconds)
    return json_response({**_clock(sim), "jobs_run": ran})


async def reset(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    params = await read_params(request)
    token = param_text(params, "token")  # a malformed token must not widen the reset to all
    sim.reset(token)
    return json_response({"reset": True, "scope": "merchant" if token else "all"})


async def vendors(request: web.Request) -> web.Response:
    return json_response(
        {
            "vendors": [
                {
                    "code": v.code,
                    "name": v.name,
                    "default_currency": v.currency,
                    "qr_scan": v.qr_scan,
                    "delayed_capture": v.delayed_capture,
                    "multi_capture": v.multi_capture,
                    "mobile_result_url": v.in_app_result,
                    "cancel_window_seconds": v.cancel_window,
                    "faces": sorted(v.faces),
                }
                for v in VENDORS.values()
            ]
        }
    )


async def balance(request: web.Request) -> web.Response:
    """A merchant's open balance for the current day, per settlement currency."""
    sim = request.app[SIM]
    params = await read_params(request)
    token = params.get("token")
    if not isinstance(token, str):
        raise BadRequest("token is required")
    merchant = sim.ledger.merchant(token)
    return json_response(
        {
            "day": sim.clock.now().date().isoformat(),
            "refund_exempt": merchant.settings.refund_exempt,
            "open_balance": sim.ledger.open_balance(merchant),
        }
    )


# -- scenarios and the request journal ------------------------------------------------------


async def get_scenarios(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    params = await read_params(request)
    token = params.get("token")
    return json_response(sim.scenarios.describe(token if isinstance(token, str) else None))


async def load_scenarios(request: web.Request) -> web.Response:
    """Load a scenario: YAML or JSON text as the body, or ``name=<shipped scenario>``.

    ``?token=`` scopes it to one merchant; otherwise it applies to every merchant. A YAML
    body sent as a form (what plain ``curl --data-binary @file.yaml`` does) still works.
    """
    sim = request.app[SIM]
    try:
        scenario, fields = await _posted_scenario(request)
    except ScenarioError as exc:
        raise BadRequest(str(exc)) from None
    token = request.query.get("token") or fields.get("token") or None
    replaced = sim.scenarios.load(scenario, token)
    return json_response({"loaded": scenario.describe(), "scope": "merchant" if token else "all",
                          "replaced": replaced})


_FORM_KEYS = frozenset({"name", "scenario", "token"})


async def _posted_scenario(request: web.Request) -> tuple[Scenario, dict[str, str]]:
    """The scenario and any form fields sent with it."""
    if request.content_type == "multipart/form-data":
        fields = {k: v for k, v in (await read_params(request)).items() if isinstance(v, str)}
    else:
        try:
            body = (await request.read()).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("scenario is not valid UTF-8") from None
        pairs = parse_qsl(body, keep_blank_values=True)
        is_form = (request.content_type == "application/x-www-form-urlencoded" and pairs
                   and {k for k, _ in pairs} <= _FORM_KEYS)
        if not is_form:
            return parse_scenario(body, "<posted scenario>"), {}
        fields = {k: v.strip() for k, v in pairs}
    name, text = fields.get("name"), fields.get("scenario")
    if text:
        return parse_scenario(text, "<posted scenario>"), fields
    if name:
        try:  # a shipped scenario by name; never a file of the server's
            return resolve_scenario(name, files=False), fields
        except ScenarioError:
            pass
    raise BadRequest("send the scenario as the body, or name=<shipped scenario>")


async def clear_scenarios(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    token = request.query.get("token") or None
    sim.scenarios.clear(token)
    return json_response({"cleared": True, "scope": "merchant" if token else "all"})


async def requests_journal(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    q = request.query
    try:
        limit = min(1000, max(1, int(q.get("limit", "100"))))
    except ValueError:
        raise BadRequest("limit must be a whole number") from None
    entries = sim.journal.query(
        token=q.get("token") or None,
        path=q.get("path") or None,
        transaction_id=q.get("transaction_id") or None,
        face=q.get("face") or None,
        limit=limit,
    )
    return json_response({"requests": [e.as_dict() for e in entries]})


# -- IPN delivery log ---------------------------------------------------------------------


async def ipn_log(request: web.Request) -> web.Response:
    """Notifications with their attempts, newest first; ``transaction_id``/``token`` filter."""
    sim = request.app[SIM]
    params = await read_params(request)
    limit, _ = page({**params, "limit": params.get("limit", 1000)})
    items = sim.ipn.describe(transaction_id=param_text(params, "transaction_id"),
                             token=param_text(params, "token"), limit=limit)
    return json_response({"notifications": items, "stats": sim.ipn.summary()})


async def ipn_redeliver(request: web.Request) -> web.Response:
    """Send a notification again now (same form, same ``notify_id``).

    Answers with the attempt once made; ``wait=no`` answers 202 at once instead.
    """
    sim = request.app[SIM]
    params = await read_params(request)
    notify_id = request.match_info["notify_id"]
    try:
        waiter = sim.ipn.redeliver(notify_id)
    except KeyError:
        raise NotFound(f"no notification {notify_id!r}") from None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if param_text(params, "wait") not in ("no", "false", "0"):
        # Bounded: a long queue ahead of us must not hold the control call forever.
        await asyncio.wait({waiter}, timeout=2 * sim.ipn.timeout + 5)
    n = sim.ipn.notifications.get(notify_id)
    view = sim.ipn.as_dict(n) if n is not None else None
    done = waiter.done() and not waiter.cancelled()
    attempt = view["attempts"][waiter.result().number - 1] if done and view else None
    return json_response({"redelivered": True, "attempt": attempt, "notification": view},
                         status=200 if done else 202)


# -- the routes (mounted at /_sim) -----------------------------------------------------------

_ADVANCE = S.form({"seconds": {"type": "number", "minimum": 0, "maximum": 10 * 365 * 86400,
                               "description": "Virtual seconds to move forward."}},
                  ["seconds"])
_SCOPE = S.obj({"scope": S.ref("Scope")})
_WAIT = {"enum": ["yes", "no"]}


def _scenario_form() -> S.Schema:
    return S.form({
        "name": {"type": "string", "enum": sorted(shipped_scenarios()),
                 "description": "A shipped scenario."},
        "scenario": {"type": "string", "description": "YAML or JSON text."},
        "token": {"type": "string", "description": "Scope it to one merchant."}})


ROUTES = RouteTable([
    Route("GET", "/health", health, "health", "Ready",
          {200: Reply("Always ok once serving.", {JSON: S.obj({"status": {"const": "ok"}})})},
          security=()),
    Route("GET", "/transactions", list_transactions, "simTransactions",
          "Every transaction (or one merchant's), newest first",
          {200: Reply("With refunds, captures and a timeline.", {JSON: S.obj({
              "transactions": {"type": "array", "items": S.ref("SimTransaction")}})})},
          errors=(400,), query=S.form({
              "token": {**S.TOKEN["schema"], "description": "One merchant only."},
              "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
              "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}})),
    Route("GET", "/transactions/{id}", get_transaction, "simTransaction",
          "One transaction, with its IPNs",
          {200: Reply("The transaction.", {JSON: S.ref("SimTransactionDetail")})},
          errors=(404,)),
    Route("POST", r"/transactions/{id}/{action:pay|fail|expire|cancel}", act, "simAct",
          "Act as the consumer (or time): pay, fail, expire or cancel",
          {200: Reply("The transaction after the action.", {JSON: S.ref("SimTransaction")})},
          errors=(400, 404, 409, 413),
          path_docs={"action": "`pay` authorises delayed-capture payments."},
          body=S.form({"reason": S.text("Failure reason (fail).")}), body_required=False),
    Route("GET", "/clock", get_clock, "clock", "The virtual clock",
          {200: Reply("Now.", {JSON: S.ref("Clock")})}),
    Route("POST", "/clock/advance", advance_clock, "advanceClock",
          "Move virtual time forward; everything due fires",
          {200: Reply("The clock after, and how many jobs ran.", {JSON: {
              "allOf": [S.ref("Clock"), S.obj({"jobs_run": S.INT})]}})},
          errors=(400, 413), body=_ADVANCE),
    Route("POST", "/reset", reset, "reset", "Forget every transaction, or one merchant's",
          {200: Reply("Done.", {JSON: S.obj({"reset": {"const": True},
                                             "scope": S.ref("Scope")})})},
          errors=(400, 413), parameters=(S.TOKEN,),
          body=S.form({"token": S.text("One merchant only.")}), body_required=False),
    Route("GET", "/vendors", vendors, "vendors", "The vendor catalogue and capabilities",
          {200: Reply("Every vendor.", {JSON: S.obj({"vendors": {
              "type": "array", "items": S.obj({
                  "code": S.STR, "name": S.STR, "default_currency": S.STR,
                  "qr_scan": S.BOOL, "delayed_capture": S.BOOL, "multi_capture": S.BOOL,
                  "mobile_result_url": S.BOOL, "cancel_window_seconds": S.INT})}})})}),
    Route("GET", "/balance", balance, "balance", "A merchant's open balance today",
          {200: Reply("Per settlement currency.", {JSON: S.obj({
              "day": {"type": "string", "format": "date"}, "refund_exempt": S.BOOL,
              "open_balance": {"type": "object", "additionalProperties": S.INT}})})},
          errors=(400, 401),
          parameters=({**S.TOKEN, "required": True, "description": "The merchant."},)),
    Route("GET", "/scenarios", get_scenarios, "scenarios",
          "Loaded scenarios and their counters",
          {200: Reply("Global and per-merchant.", {JSON: S.ref("ScenarioBook")})},
          errors=(400,), parameters=(S.TOKEN,)),
    Route("POST", "/scenarios", load_scenarios, "loadScenario", "Load a scenario at run time",
          {200: Reply("Loaded.", {JSON: {"allOf": [_SCOPE, S.obj({
              "loaded": S.ref("ScenarioView"), "replaced": S.BOOL})]}})},
          description="The scenario as the body (YAML or JSON), or as a form: "
          "`name=<shipped scenario>` or `scenario=<text>`. `token` scopes it to one "
          "merchant. One of the same `name` already loaded there is replaced "
          "(`replaced`); a scenario without a `name` is added.",
          errors=(400, 413), parameters=(S.TOKEN,), body=S.ref("Scenario"),
          body_types=(JSON,), body_variants={"application/yaml": S.STR, "text/plain": S.STR,
                                             FORM: _scenario_form()}),
    Route("DELETE", "/scenarios", clear_scenarios, "clearScenarios",
          "Unload scenarios (all, or one merchant's)",
          {200: Reply("Done.", {JSON: {"allOf": [_SCOPE, S.obj({
              "cleared": {"const": True}})]}})},
          parameters=(S.TOKEN,)),
    Route("GET", "/requests", requests_journal, "requests",
          "Journal of merchant API calls, newest first",
          {200: Reply("Requests and answers (tokens redacted).", {JSON: S.obj({
              "requests": {"type": "array", "items": S.ref("JournalEntry")}})})},
          errors=(400,),
          parameters=(S.TOKEN, S.query("path", S.STR), S.query("transaction_id", S.STR),
                      S.query("face", S.STR, "Only calls to this API face: online, chop, "
                              "upi."),
                      S.query("limit", {"type": "integer"}, "Clamped to 1..1000."))),
    Route("GET", "/ipn", ipn_log, "ipnLog",
          "IPN notifications and every delivery attempt, newest first",
          {200: Reply("The log and the sender's counters.", {JSON: S.obj({
              "notifications": {"type": "array", "items": S.ref("Notification")},
              "stats": {"type": "object", "additionalProperties": True}})})},
          errors=(400,), parameters=(S.query("transaction_id", S.STR), S.TOKEN, S.LIMIT)),
    Route("POST", "/ipn/{notify_id}/redeliver", ipn_redeliver, "ipnRedeliver",
          "Send a notification again now (same form and notify_id)",
          {200: Reply("The attempt made.", {JSON: S.ref("Redelivery")}),
           202: Reply("Queued; not attempted yet.", {JSON: S.ref("Redelivery")})},
          errors=(400, 404, 413),
          parameters=(S.query("wait", _WAIT, "`no` answers 202 at once."),),
          body=S.form({"wait": _WAIT}), body_required=False),
], prefix="/_sim", tags=("control",), security=S.ADMIN, replies={401: S.ADMIN_REQUIRED})
