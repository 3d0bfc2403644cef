"""The ``/_sim/`` control surface: drive the consumer's side and the clock from tests."""

from __future__ import annotations

import asyncio
import math
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from citcon_sim.config import LATEST_TIME
from citcon_sim.delivery.ipn import BODY_START, Handoff, PostResult
from citcon_sim.domain.errors import BadRequest, NotFound, TransitionError
from citcon_sim.domain.redaction import token_hint
from citcon_sim.domain.vendors import FACES, VENDORS, Journey
from citcon_sim.faces.http import SIM, json_response, read_params, sse_message
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
from citcon_sim.web.security import Forbidden, origin_allowed


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
                    # The consumer's journey on the hosted pages (domain/vendors.py).
                    "journey": v.journey.value,
                    "app_switch": v.app_switch,
                    "scan_option": v.scan_option,
                    "mobile_login": v.mobile_login,
                    "market": v.market,
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
        after = max(0, int(q.get("after", "0")))
    except ValueError:
        raise BadRequest("limit and after must be whole numbers") from None
    entries = sim.journal.query(
        after=after,
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


# -- listeners: `citcon-sim listen` (delivery/ipn.py's Listeners) ------------------------------

LISTEN_HEARTBEAT = 15.0  # wall seconds of silence before a keep-alive comment
_LOOK = 1.0  # wall seconds between looks at whether the listener's connection is gone
MAX_ERROR_CHARS = 500



def _handoff_view(handoff: Handoff, timeout: float) -> dict[str, Any]:
    n, attempt = handoff.notification, handoff.attempt
    return {"delivery": handoff.id, "notify_id": n.notify_id,
            "transaction_id": n.transaction_id, "token_hint": token_hint(n.token),
            "url": n.url, "encoding": n.encoding, "form": dict(n.form),
            "attempt": attempt.number, "trigger": attempt.trigger, "timeout": timeout}


async def listen(request: web.Request) -> web.StreamResponse:
    """A listener's stream: every attempt of the IPNs it takes, as ``ipn`` events, until
    it disconnects (then delivery falls back to POSTing)."""
    sim = request.app[SIM]
    origin = request.headers.get("Origin")
    if origin is not None and not sim.config.admin_token and not origin_allowed(
            request, origin, sim.config):
        # A GET, yet it changes where IPNs go: a page elsewhere must not open one
        # (an EventSource needs no CORS to connect) and swallow every delivery.
        raise Forbidden("cross-site listener refused: /_sim/listen serves its own pages "
                        "and clients that send no Origin")
    tokens = frozenset(t.strip() for t in request.query.getall("token", []) if t.strip())
    forward_to = request.query.get("forward_to", "").strip()
    if forward_to:
        try:
            parts = urlsplit(forward_to)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc \
                or len(forward_to) > 2000:
            raise BadRequest("forward_to must be an absolute http(s) URL")
    if sim.ledger.strict:
        unknown = [t for t in tokens if t not in sim.ledger.merchants]
        if unknown:  # never echo a token
            raise BadRequest(f"{len(unknown)} token(s) are not in the merchants file")
    try:
        listener = sim.ipn.listeners.connect(tokens or None, forward_to)
    except ValueError as exc:
        raise TransitionError(str(exc)) from None
    resp = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff"})
    try:
        await resp.prepare(request)
        await resp.write(sse_message("hello", {
            "listener": listener.id, "timeout": sim.ipn.timeout,
            "merchants": sorted(token_hint(t) for t in tokens) or "all"}))
        quiet = 0.0
        while True:
            try:
                handoff = await asyncio.wait_for(listener.queue.get(), _LOOK)
            except TimeoutError:
                transport = request.transport
                if transport is None or transport.is_closing():
                    break  # gone: give back what it holds now, not at the next write
                quiet += _LOOK
                if quiet >= LISTEN_HEARTBEAT:
                    quiet = 0.0
                    await resp.write(b": heartbeat\n\n")
                continue
            if handoff is None:
                break
            if handoff.result.done():
                continue  # timed out while queued behind others: nobody waits for it
            quiet = 0.0
            await resp.write(sse_message("ipn", _handoff_view(handoff, sim.ipn.timeout)))
    except ConnectionError:
        pass  # the listener went away
    finally:
        sim.ipn.listeners.disconnect(listener)
    return resp


async def listen_report(request: web.Request) -> web.Response:
    """A listener's answer to one hand-off: what the forward URL answered."""
    sim = request.app[SIM]
    params = await read_params(request)
    status_text, error = param_text(params, "status"), param_text(params, "error")
    body, latency_text = param_text(params, "body") or "", param_text(params, "latency_ms")
    try:
        status = int(status_text) if status_text else None
        latency = float(latency_text) if latency_text else 0.0
    except ValueError:
        raise BadRequest("status must be a whole number and latency_ms a number") from None
    if status is not None and not 100 <= status <= 599:
        raise BadRequest("status must be an HTTP status, 100 to 599")
    if (status is None) == (not error):
        raise BadRequest("send status (the answer's HTTP status) or error (why none came)")
    if not (math.isfinite(latency) and 0 <= latency <= 1e9):
        raise BadRequest("latency_ms must be a number of milliseconds")
    result = PostResult(status, body[:BODY_START], error[:MAX_ERROR_CHARS] if error else None,
                        round(latency, 1))
    try:
        sim.ipn.listeners.report(request.match_info["listener"], request.match_info["delivery"],
                                 result)
    except KeyError:
        raise NotFound("no delivery waits for that answer (it timed out, or the listener "
                       "disconnected)") from None
    return json_response({"reported": True})


async def end_listeners(app: web.Application) -> None:
    """``on_shutdown``: end every listener's stream so shutdown does not wait for them."""
    app[SIM].ipn.listeners.close()


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
                  "mobile_result_url": S.BOOL, "cancel_window_seconds": S.INT,
                  "faces": {"type": "array", "items": {"enum": sorted(FACES)}},
                  "journey": {"enum": [j.value for j in Journey],
                              "description": "What the consumer does on the hosted page: "
                              "`qr_app` scan a QR (computer) or open the wallet app (phone), "
                              "`login` the wallet's sign-in, `card` a card-number page, "
                              "`bank` a choice of bank, `redirect` a confirmation page."},
                  "app_switch": {**S.BOOL, "description": "On a phone, the page offers "
                                 "to open the wallet's app."},
                  "scan_option": {**S.BOOL, "description": "On a computer, the page also "
                                  "offers a QR for the app."},
                  "mobile_login": {**S.BOOL, "description": "On a phone, signing in in the "
                                   "browser is offered too."},
                  "market": {**S.STR, "description": "Locale of the consumers its pages "
                             "show (a Faker locale)."}})}})})}),
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
                      S.query("after", {"type": "integer", "minimum": 0},
                              "Only calls after this `seq` (follow the journal)."),
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
    Route("GET", "/listen", listen, "ipnListen",
          "Take IPN deliveries (a `citcon-sim listen` client): they replace direct POSTs",
          {200: Reply("A stream that stays open: `hello`, then an `ipn` event per "
                      "delivery attempt.", {"text/event-stream": S.STR})},
          description="While connected, each attempt of the selected merchants' IPNs "
          "is sent here instead of to its `ipn_url`; the listener POSTs the `form` "
          "(`encoding`: form or json) and reports the answer to "
          "`POST /_sim/listen/{listener}/{delivery}` within the `timeout` plus 5 s.",
          errors=(400, 409),
          parameters=(S.query("token", S.STR, "A merchant whose IPNs to take "
                              "(repeatable; none: every merchant)."),
                      S.query("forward_to", S.STR, "Where the listener posts (shown "
                              "in each attempt)."))),
    Route("POST", "/listen/{listener}/{delivery}", listen_report, "ipnListenReport",
          "A listener reports what its forward URL answered to one delivery",
          {200: Reply("Recorded as the attempt.", {JSON: S.obj({"reported": {"const": True}})})},
          errors=(400, 404, 413),
          body=S.form({"status": {"type": "integer", "minimum": 100, "maximum": 599},
                       "error": S.text("Why no answer came (refused, timeout).",
                                       MAX_ERROR_CHARS),
                       "body": S.text("The start of the answer's body."),
                       "latency_ms": {"type": "number", "minimum": 0}})),
], prefix="/_sim", tags=("control",), security=S.ADMIN, replies={401: S.ADMIN_REQUIRED})
