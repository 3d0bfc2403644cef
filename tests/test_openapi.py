"""``GET /openapi.json``: complete (every route, nothing invented), valid OpenAPI 3.1, and
true (real answers match the schemas it declares)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from citcon_sim import Config, Simulator, create_app
from citcon_sim.web.openapi import document

from .conftest import AUTH, START, TOKEN, create
from .helpers import IpnReceiver

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Answers that never end (Server-Sent Events) are not called here.
STREAMS = {("get", "/_sim/events"), ("get", "/_sim/listen")}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document("http://127.0.0.1:8080")


def registered_routes(app: web.Application) -> Iterator[tuple[str, str, web.AbstractResource]]:
    """(method, canonical path, resource) of every route; HEAD twins and static files aside."""
    from citcon_sim.web.openapi import tables

    assets = tuple(table.prefix + url for table in tables() for url in table.static)
    for route in app.router.routes():
        resource = route.resource
        if route.method == "HEAD" or resource is None:
            continue
        if isinstance(resource, web.StaticResource) or resource.canonical.startswith(assets):
            continue
        yield route.method.lower(), resource.canonical, resource


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m, path) for path, item in doc["paths"].items() for m in item if m in METHODS}


# -- complete ----------------------------------------------------------------------------------


def test_every_route_is_documented_and_nothing_else(doc: dict[str, Any]) -> None:
    """The document is generated from the route tables; a route registered any other way
    (or a table create_app does not register) shows here."""
    app = create_app(Simulator(Config(frozen_clock=True)))
    routes = {(m, path) for m, path, _ in registered_routes(app)}
    assert routes, "no routes found"
    missing = sorted(routes - documented(doc))
    invented = sorted(documented(doc) - routes)
    assert not missing, f"registered, but in no route table: {missing}"
    assert not invented, f"documented, but no such route: {invented}"


def fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def test_path_parameter_enums_match_the_route_patterns(doc: dict[str, Any]) -> None:
    """A route like ``{action:pay|fail}`` and the documented enum list the same words."""
    app = create_app(Simulator(Config(frozen_clock=True)))
    checked = 0
    for method, path, resource in registered_routes(app):
        pattern = resource.get_info().get("pattern")
        if pattern is None:
            continue
        op = doc["paths"][path][method]
        params = {p["name"]: p for p in op.get("parameters", ()) if p["in"] == "path"}
        assert set(params) == set(re.findall(r"\{(\w+)\}", path)), (method, path)
        usual = {name: p["schema"].get("enum", ["some-id"])[0] for name, p in params.items()}
        for name, param in params.items():
            for value in param["schema"].get("enum", ["some-id"]):
                assert pattern.fullmatch(fill(path, {**usual, name: value})), (path, value)
                checked += 1
            if "enum" in param["schema"]:
                assert not pattern.fullmatch(fill(path, {**usual, name: "nosuch"})), path
    assert checked >= 4


def test_each_table_route_is_registered_once() -> None:
    from citcon_sim.web.openapi import tables

    app = create_app(Simulator(Config(frozen_clock=True)))
    registered = sorted((m, path) for m, path, _ in registered_routes(app))
    from_tables = sorted((route.method.lower(), table.document_path(route))
                         for table in tables() for route in table)
    assert registered == from_tables


def test_operation_ids_are_unique(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for item in doc["paths"].values() for m, op in item.items()
           if m in METHODS]
    assert len(ids) == len(set(ids)) == len(documented(doc))


# -- valid ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    validate(doc, cls=OpenAPIV31SpecValidator)  # the 3.1 meta-schema, and then some
    for name, schema in doc["components"]["schemas"].items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:  # pragma: no cover - message only
            pytest.fail(f"components.schemas.{name}: {exc.message}")


def test_merchant_api_is_described_as_documented(doc: dict[str, Any]) -> None:
    form = doc["components"]["schemas"]["PaymentForm"]
    props = form["properties"]
    assert {"alipay", "wechatpay", "klarna", "upop", "banktransfer"} <= set(
        props["vendor"]["enum"])
    assert props["amount"] == {**props["amount"], "type": "integer", "minimum": 1}
    assert props["currency"]["pattern"] == "^[A-Za-z]{3}$"
    assert props["reference"]["maxLength"] == 128
    assert "consumer[first_name]" in props and "billing_address[zip]" in props
    pay = doc["paths"]["/payment/pay"]["post"]
    assert "application/x-www-form-urlencoded" in pay["requestBody"]["content"]
    assert set(pay["responses"]["200"]["content"]) == {"text/plain", "application/json"}
    assert {"400", "401", "413"} <= set(pay["responses"])
    qr = doc["paths"]["/payment/qr"]["get"]
    assert "image/png" in qr["responses"]["200"]["content"]
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "bare" in scheme["description"]
    envelope = doc["components"]["schemas"]["ErrorEnvelope"]
    assert set(envelope["required"]) == {"result", "code", "message"}
    responses = doc["components"]["responses"]
    for name in ("BadRequest", "Unauthorized", "NotFound", "MethodNotAllowed",
                 "PayloadTooLarge"):
        schema = responses[name]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, name
    refund = doc["paths"]["/payment/refund"]["post"]["responses"]["200"]
    assert "RefundFailed" in json.dumps(refund)
    cancel = doc["components"]["schemas"]["CancelResult"]["properties"]["status"]["enum"]
    assert "Invalid transaction" in cancel and "Order cancelled" in cancel


# -- served ----------------------------------------------------------------------------------------


async def test_served_with_the_simulators_base_url(client: TestClient, sim: Simulator) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    body = await resp.json()
    assert body["servers"] == [{"url": sim.base_url(), "description": "This simulator."}]
    assert body["paths"] == json.loads(json.dumps(document("x")["paths"]))


@pytest.mark.parametrize(("config", "host", "expected"), [
    (Config(public_url="https://sim.example.test/"), "ignored:1", "https://sim.example.test"),
    (Config(host="0.0.0.0"), "192.0.2.7:8080", "http://192.0.2.7:8080"),
])
async def test_server_url_follows_the_configuration(
    aiohttp_client: Callable[..., Any], config: Config, host: str, expected: str
) -> None:
    client = await aiohttp_client(create_app(Simulator(config)))
    resp = await client.get("/openapi.json", headers={"Host": host})
    assert (await resp.json())["servers"][0]["url"] == expected


# -- true: real answers against the declared schemas -------------------------------------------


class Checker:
    """Validates answers against the document and remembers which operations it saw."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.seen: set[tuple[str, str]] = set()

    def _schema_for(self, path: str, method: str, status: int, ctype: str) -> dict[str, Any]:
        responses = self.doc["paths"][path][method]["responses"]
        declared = responses.get(str(status))
        assert declared is not None, f"{method.upper()} {path}: {status} is not documented"
        if "$ref" in declared:
            declared = self.doc["components"]["responses"][declared["$ref"].rsplit("/", 1)[1]]
        content = declared.get("content", {})
        assert ctype in content, f"{method.upper()} {path} {status}: {ctype} not documented"
        return content[ctype].get("schema", {})

    async def __call__(self, resp: Any, path: str, method: str | None = None) -> Any:
        method = (method or resp.method).lower()
        ctype = resp.content_type
        schema = self._schema_for(path, method, resp.status, ctype)
        raw = await resp.read()
        if ctype == "application/json":
            body: Any = json.loads(raw)
            root = {**schema, "components": self.doc["components"]}
            jsonschema.Draft202012Validator(root).validate(body)
        elif ctype.startswith("text/"):
            body = raw.decode("utf-8")
            root = {**schema, "components": self.doc["components"]}
            jsonschema.Draft202012Validator(root).validate(body)
        else:
            body = raw
        self.seen.add((method, path))
        return body


async def check_error(check: Checker, resp: Any, name: str) -> None:
    """An error answer against a shared ``components.responses`` entry."""
    declared = check.doc["components"]["responses"][name]
    schema = declared["content"]["application/json"]["schema"]
    body = await resp.json()
    jsonschema.Draft202012Validator({**schema, "components": check.doc["components"]}).validate(
        body)


def test_the_checker_catches_a_wrong_answer(doc: dict[str, Any]) -> None:
    schema = Checker(doc)._schema_for("/payment/cancel", "post", 200, "application/json")
    validator = jsonschema.Draft202012Validator({**schema, "components": doc["components"]})
    good = {"transaction_id": None, "transaction_reference": None, "cancelled": False,
            "status": "Invalid transaction"}
    validator.validate(good)
    for bad in ({**good, "status": "whatever"}, {**good, "cancelled": "no"},
                {k: v for k, v in good.items() if k != "status"}):
        assert not validator.is_valid(bad), bad
    with pytest.raises(AssertionError, match="not documented"):
        Checker(doc)._schema_for("/payment/cancel", "post", 302, "application/json")


async def test_real_answers_match_the_declared_schemas(
    aiohttp_client: Callable[..., Any], ipn_receiver: IpnReceiver
) -> None:
    sim = Simulator(Config(frozen_clock=True, start_time=START, seed=99, max_body_bytes=4096))
    client: TestClient = await aiohttp_client(create_app(sim))
    ipn_url = ipn_receiver.url
    doc = document(sim.base_url())
    check = Checker(doc)

    # -- merchant API
    pay = "/payment/pay"
    txn_id = await create(client, "pay", ipn_url=ipn_url)
    resp = await client.post(pay, headers=AUTH, data={
        "vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "order-1",
        "allow_duplicates": "yes", "response_format": "json", "ipn_url": ipn_url})
    created = await check(resp, pay)
    assert created["created"] is True
    resp = await client.get(pay, headers=AUTH, params={
        "vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "order-2"})
    assert (await check(resp, pay)).startswith("http://")
    resp = await client.get("/payment/pay_qr", headers=AUTH, params={
        "vendor": "wechatpay", "trans_amount": "700", "trans_currency": "CNY",
        "reference": "qr-1", "response_format": "json"})
    qr_id = (await check(resp, "/payment/pay_qr"))["transaction_id"]
    resp = await client.post("/payment/pay_qr", headers=AUTH, data={
        "vendor": "alipay", "amount": "5", "currency": "USD", "reference": "qr-2",
        "timeout": "60"})
    expiring = (await check(resp, "/payment/pay_qr")).split("=")[1]
    for data in ({"vendor": "nope"}, {"vendor": "alipay", "amount": "0", "currency": "USD",
                                      "reference": "r"}):
        await check(await client.post(pay, headers=AUTH, data=data), pay)
    await check(await client.post(pay, data={"vendor": "alipay"}), pay)  # 401
    await check(await client.post(pay, headers=AUTH, data={"note": "n" * 5000}), pay)  # 413

    resp = await client.get("/payment/qr", params={"q": qr_id})
    assert (await check(resp, "/payment/qr"))[:8] == b"\x89PNG\r\n\x1a\n"
    await check(await client.get("/payment/qr", params={"q": "nope"}), "/payment/qr")
    sim.advance(61)
    assert (await check(await client.get("/payment/qr", params={"q": expiring}),
                        "/payment/qr"))["reason"] == "QR code expired."

    assert (await check(await client.post(f"/_sim/transactions/{txn_id}/pay"),
                        "/_sim/transactions/{id}/{action}"))["status"] == "success"
    await sim.ipn.drain()
    inquire = "/payment/inquire"
    charge = await check(await client.post(inquire, headers=AUTH,
                                           data={"transaction_id": txn_id}), inquire)
    assert charge["status"] == "success"
    await check(await client.get(inquire, headers=AUTH, params={"reference": "qr-1"}), inquire)
    await check(await client.post(inquire, headers=AUTH, data={"reference": "none"}), inquire)

    refund = "/payment/refund"
    done = await check(await client.post(refund, headers=AUTH, data={
        "transaction_id": txn_id, "amount": "100", "currency": "USD", "reason": "r"}), refund)
    assert done["refunded"] is True
    failed = await check(await client.post(refund, headers=AUTH, data={
        "transaction_id": txn_id, "amount": "99999", "currency": "USD"}), refund)
    assert failed["refunded"] is False
    await check(await client.post(refund, headers=AUTH, data={"transaction_id": "x"}), refund)
    by_refund_id = await check(await client.post(inquire, headers=AUTH, data={
        "transaction_id": done["id"]}), inquire)
    assert by_refund_id["type"] == "refund"

    cancel = "/payment/cancel"
    assert (await check(await client.post(cancel, headers=AUTH, data={
        "transaction_id": qr_id}), cancel))["cancelled"] is True
    assert (await check(await client.post(cancel, headers=AUTH, data={
        "transaction_reference": "none"}), cancel))["status"] == "Invalid transaction"

    capture = "/payment/capture"
    klarna = await create(client, "pay", vendor="klarna", reference="k-1", amount=4000)
    await client.post(f"/_sim/transactions/{klarna}/pay")
    captured = await check(await client.post(capture, headers=AUTH, data={
        "transaction_id": klarna, "amount": "1000", "multi_capture": "true"}), capture)
    assert captured["type"] == "capture"
    await check(await client.post(capture, headers=AUTH, data={"reference": "none"}), capture)

    for path in ("/payment/list", "/payment/transactions"):
        listed = await check(await client.get(path, headers=AUTH), path)
        assert listed["transactions"]
        await check(await client.get(path, headers=AUTH, params={"limit": "0"}), path)
    listed = await check(await client.post("/payment/transactions", headers=AUTH),
                         "/payment/transactions")
    assert listed["transactions"]

    # -- CHOP
    chop = await check(await client.post("/chop/chop", headers=AUTH, data={
        "payment_method": "alipay", "amount": "500", "currency": "USD",
        "reference": "chop-1", "ipn_url": ipn_receiver.url_for("/chop-ipn")}), "/chop/chop")
    assert list(chop)[-1] == "url"
    await check(await client.post("/chop/chop", headers=AUTH, data={
        "payment_method": "nope"}), "/chop/chop")
    chop_id = chop["url"].split("=")[1]
    await check(await client.post("/chop/inquire", headers=AUTH, data={
        "transaction_id": chop_id}), "/chop/inquire")
    await client.post(f"/_sim/transactions/{chop_id}/pay")
    await check(await client.post("/chop/refund", headers=AUTH, data={
        "transaction_id": chop_id, "amount": "100", "currency": "USD", "reason": "r"}),
        "/chop/refund")
    await check(await client.post("/chop/cancel", headers=AUTH, data={
        "transaction_id": chop_id}), "/chop/cancel")
    await check(await client.get("/chop/transactions", headers=AUTH), "/chop/transactions")

    resp = await client.delete(pay, headers=AUTH)
    assert resp.status == 405 and "POST" in resp.headers["Allow"]
    await check_error(check, resp, "MethodNotAllowed")
    resp = await client.get("/payment/nope", headers=AUTH)
    assert resp.status == 404
    await check_error(check, resp, "NotFound")

    # -- control surface
    await check(await client.get("/_sim/health"), "/_sim/health")
    await check(await client.get("/_sim/transactions"), "/_sim/transactions")
    await check(await client.get("/_sim/transactions", params={"limit": "x"}),
                "/_sim/transactions")
    detail = await check(await client.get(f"/_sim/transactions/{txn_id}"),
                         "/_sim/transactions/{id}")
    assert detail["ipn"] and detail["ipn"][0]["attempts"], detail["ipn"]
    await check(await client.get("/_sim/transactions/nope"), "/_sim/transactions/{id}")
    act = "/_sim/transactions/{id}/{action}"
    fresh = await create(client, "pay", reference="act-1")
    await check(await client.post(f"/_sim/transactions/{fresh}/fail", data={"reason": "x"}), act)
    await check(await client.post(f"/_sim/transactions/{fresh}/pay"), act)  # 409
    await check(await client.post("/_sim/transactions/nope/expire"), act)  # 404
    await check(await client.get("/_sim/clock"), "/_sim/clock")
    await check(await client.post("/_sim/clock/advance", data={"seconds": "5"}),
                "/_sim/clock/advance")
    await check(await client.post("/_sim/clock/advance", data={"seconds": "-5"}),
                "/_sim/clock/advance")
    await check(await client.get("/_sim/vendors"), "/_sim/vendors")
    await check(await client.get("/_sim/balance", params={"token": TOKEN}), "/_sim/balance")
    await check(await client.get("/_sim/balance"), "/_sim/balance")
    scenarios = "/_sim/scenarios"
    await check(await client.post(scenarios, data={"name": "declines"}), scenarios)
    await check(await client.post(scenarios, params={"token": TOKEN}, json={
        "name": "j", "rules": [{"match": {"vendor": "alipay"}, "api": {"error": 4101}}]}),
        scenarios)
    await check(await client.post(scenarios, data=b"rules: [", headers={
        "Content-Type": "application/yaml"}), scenarios)
    book = await check(await client.get(scenarios), scenarios)
    assert book["global"] and book["by_token"]
    await check(await client.delete(scenarios), scenarios)
    await check(await client.get("/_sim/requests", params={"limit": "3"}), "/_sim/requests")
    await check(await client.get("/_sim/requests", params={"limit": "x"}), "/_sim/requests")
    await check(await client.get("/_sim/requests", params={"after": "2"}), "/_sim/requests")
    report = "/_sim/listen/{listener}/{delivery}"
    await check(await client.post("/_sim/listen/nope/1", data={"status": "200"}), report)
    await check(await client.post("/_sim/listen/nope/1", data={"status": "x"}), report)
    log = await check(await client.get("/_sim/ipn"), "/_sim/ipn")
    [sent] = [n["notify_id"] for n in log["notifications"] if n["url"] == ipn_url]
    [unsent] = [n["notify_id"] for n in log["notifications"] if n["url"] is None]
    redeliver = "/_sim/ipn/{notify_id}/redeliver"
    again = await check(await client.post(f"/_sim/ipn/{sent}/redeliver"), redeliver)
    assert again["attempt"]["ok"] is True
    assert [r.path for r in ipn_receiver.requests].count("/ipn") == 2  # first, again
    await check(await client.post(f"/_sim/ipn/{unsent}/redeliver"), redeliver)  # no URL: 400
    await check(await client.post("/_sim/ipn/nope/redeliver"), redeliver)
    await check(await client.get("/_sim/ipn", params={"limit": "0"}), "/_sim/ipn")
    snapshot = await check(await client.get("/_sim/state"), "/_sim/state")
    await check(await client.put("/_sim/state", json=snapshot), "/_sim/state")
    await check(await client.put("/_sim/state", data=b"{not json"), "/_sim/state")

    # -- consumer pages and dashboard
    page_id = await create(client, "pay", reference="page-1")
    await check(await client.get("/u_landing", params={"q": page_id}), "/u_landing")
    await check(await client.get("/u_landing", params={"q": "nope"}), "/u_landing")
    status = "/u_landing/{id}/status"
    await check(await client.get(f"/u_landing/{page_id}/status"), status)
    await check(await client.get("/u_landing/nope/status"), status)
    action = "/u_landing/{id}/{action}"
    resp = await client.post(f"/u_landing/{page_id}/pay", allow_redirects=False)
    assert resp.status == 303
    await check(resp, action)
    await check(await client.post("/u_landing/nope/pay", allow_redirects=False), action)
    await check(await client.post(f"/u_landing/{page_id}/pay", data=b"view=\xff", headers={
        "Content-Type": "application/x-www-form-urlencoded"}), action)  # 400
    # The journeys: a card that fails its checks (422), the sign-in form (303, 422, 404),
    # a bank the method does not list (422).
    card_id = await create(client, "pay", reference="page-card", vendor="card")
    await check(await client.post(f"/u_landing/{card_id}/pay", data={"card_number": "1"},
                                  allow_redirects=False), action)
    login = "/u_landing/{id}/login"
    login_id = await create(client, "pay", reference="page-login", vendor="dana")
    await check(await client.post(f"/u_landing/{login_id}/login", data={"user": "u"},
                                  allow_redirects=False), login)
    await check(await client.post(f"/u_landing/{login_id}/login", data={
        "user": "u", "password": "p"}, allow_redirects=False), login)
    await check(await client.post("/u_landing/nope/login", allow_redirects=False), login)
    bank_id = await create(client, "pay", reference="page-bank", vendor="banktransfer")
    await check(await client.get("/u_landing", params={"q": bank_id, "step": "bank",
                                                       "bank": "nope"}), "/u_landing")
    await check(await client.get("/_sim", allow_redirects=False), "/_sim")
    await check(await client.get("/", headers={"Accept": "text/html"}, allow_redirects=False),
                "/")  # 302, a browser
    await check(await client.get("/"), "/")  # 404, anyone else
    await check(await client.get("/_sim/"), "/_sim/")
    shown = await check(await client.get("/_sim/dashboard/state"), "/_sim/dashboard/state")
    key = shown["merchants"][0]["key"]
    log = "/_sim/dashboard/requests"
    assert (await check(await client.get(log, params={"merchant": key}), log))["requests"]
    await check(await client.get(log, params={"merchant": "nope"}), log)  # 404
    await check(await client.get(log, params={"limit": "x"}), log)  # 400
    one = "/_sim/dashboard/reset"
    await check(await client.post(one), one)  # 400: which merchant?
    await check(await client.post(one, data={"merchant": "nope"}), one)  # 404
    await check(await client.post(one, data={"merchant": key}), one)
    await check(await client.get("/openapi.json"), "/openapi.json")
    await check(await client.post("/_sim/reset", data={"token": TOKEN}), "/_sim/reset")
    await check(await client.post("/_sim/reset"), "/_sim/reset")

    # -- UPI v1 (/v1): JSON bodies, access tokens, the citcon_upi envelope
    tokens = "/v1/access-tokens"
    token = (await check(await client.post(tokens, json={"token_type": "server"},
                                           headers={"Authorization": "sk-upi"}), tokens))
    await check(await client.post(tokens, json={"token_type": "x"}, headers=AUTH), tokens)
    await check(await client.post(tokens, json={}), tokens)  # 401
    upi = {"Authorization": f"Bearer {token['data']['access_token']}"}
    charges = "/v1/charges"
    charge_body = {"transaction": {"reference": "upi-1", "amount": 500, "currency": "USD",
                                   "country": "US"},
                   "payment": {"method": "paypal", "client": ["desktop"]},
                   "urls": {"ipn": ipn_url}}
    upi_charge = (await check(await client.post(charges, json=charge_body, headers=upi),
                              charges))["data"]
    await check(await client.post(charges, json=charge_body, headers=upi), charges)  # 4100
    await check(await client.post(charges, json=charge_body), charges)  # 401
    upi_id = upi_charge["id"]
    await check(await client.get(f"/v1/landing/{upi_charge['charge_token']}",
                                 allow_redirects=False), "/v1/landing/{token}")
    await check(await client.get("/v1/landing/nope"), "/v1/landing/{token}")
    png = await check(await client.get(f"/v1/qr/{upi_charge['charge_token']}"),
                      "/v1/qr/{token}")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    await check(await client.get("/v1/qr/nope"), "/v1/qr/{token}")
    await check(await client.post(f"/_sim/transactions/{upi_id}/pay"),
                "/_sim/transactions/{id}/{action}")
    captures = "/v1/captures"
    await check(await client.post(captures, json={"id": upi_id}, headers=upi), captures)
    await check(await client.post(captures, json={"id": upi_id}, headers=upi), captures)
    await check(await client.post(captures, json={"id": "1"}, headers=upi), captures)
    refunds = "/v1/refunds"
    await check(await client.post(refunds, json={"id": upi_id, "reference": "r-1",
                                                 "amount": 100.0}, headers=upi), refunds)
    await check(await client.post(refunds, json={"id": upi_id, "reference": "r-2",
                                                 "amount": 9999}, headers=upi), refunds)
    await check(await client.post(refunds, json={"id": "1", "reference": "r-3",
                                                 "amount": 1}, headers=upi), refunds)
    one = "/v1/transactions/{id}"
    await check(await client.get(f"/v1/transactions/{upi_id}", headers=upi), one)
    await check(await client.get("/v1/transactions/nope", headers=upi), one)
    await check(await client.get("/v1/transactions/nope"), one)  # 401
    by_ref = "/v1/transactions"
    await check(await client.get(by_ref, params={"reference": "upi-1"}, headers=upi), by_ref)
    await check(await client.get(by_ref, headers=upi), by_ref)  # 400
    cancels = "/v1/cancels"
    await check(await client.post(cancels, json={"id": upi_id, "reference": "c-1"},
                                  headers=upi), cancels)
    await check(await client.post(cancels, json={"id": upi_id}, headers=upi), cancels)
    await check(await client.post(cancels, json={"id": "1"}, headers=upi), cancels)

    missing = sorted(documented(doc) - check.seen - STREAMS)
    assert not missing, f"operations this test never called: {missing}"
    assert sim.take_errors() == []
