"""Security: the admin-token lock on ``/_sim/``, secrets kept out of logs and answers,
response headers, and request size limits (the ones tests/test_api_errors.py does not
already cover)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient
from click.testing import CliRunner

from citcon_sim import Config, Simulator, create_app
from citcon_sim.cli import main, serve_forever
from citcon_sim.faces.params import LONG_FIELDS, MAX_KEY_LENGTH, MAX_KEYS, MAX_VALUE_LENGTH
from citcon_sim.testing import SimulatorServer
from citcon_sim.web import security
from citcon_sim.web.security import COOKIE, RedactingAccessLogger, cookie_value, redact_url

from .helpers import IpnReceiver, auth, client_for, create, expect_error, frozen_config

ADMIN = "adm1n-QX7f2ZpLw9-Kc4Rt8Vb3-control-surface"
# Long and distinctive: any leak, whole or in part, is easy to find.
MERCHANT = "mrch-9G4kT2xQvB7nL5sR8wZ3-do-not-log-me-1F6hJ0"
FRAGMENTS = (MERCHANT, MERCHANT[4:24], MERCHANT[-20:], ADMIN, ADMIN[5:25])
BASE = {"vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "order-1"}


def leaks(text: str) -> list[str]:
    return [f for f in FRAGMENTS if f in text]


def merchant_auth(token: str = MERCHANT) -> dict[str, str]:
    return auth(token)


async def expect_401(resp: Any) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == 401, (resp.url, text)
    body = json.loads(text)
    assert body["result"] == "fail" and body["code"] == 4100, body
    assert body["message"].startswith("Unauthorized"), body
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert not leaks(text) and "Set-Cookie" not in resp.headers
    return body


@pytest.fixture
def config() -> Config:
    return frozen_config(seed=99, admin_token=ADMIN)


ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


# -- the admin token -----------------------------------------------------------------------


def sim_routes(app: web.Application, txn_id: str) -> list[tuple[str, str]]:
    """Every registered /_sim route (so a route added later is covered too), made concrete."""
    out: set[tuple[str, str]] = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if not path or not path.startswith("/_sim") or route.method == "HEAD":
            continue
        if "prefix" in info:  # static assets
            path = info["prefix"].rstrip("/") + "/dashboard.css"
        path = (path.replace("{id}", txn_id).replace("{action}", "pay")
                .replace("{notify_id}", "N0000000000-00000000000000000000")
                .replace("{listener}", "L1").replace("{delivery}", "1"))
        assert "{" not in path, path
        out.add((route.method, path))
    return sorted(out)


async def test_every_sim_route_but_health_needs_the_admin_token(
    client: TestClient, sim: Simulator
) -> None:
    txn_id = await create(client)
    routes = sim_routes(client.app, txn_id)
    assert len(routes) >= 15, routes
    assert ("PUT", "/_sim/state") in routes and ("GET", "/_sim/events") in routes
    for method, path in routes + [("GET", "/_sim/nope"), ("POST", "/_sim/health"),
                                  ("DELETE", "/_sim/transactions")]:
        if (method, path) == ("GET", "/_sim/health"):
            continue
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-Admin-Token": ADMIN[:-1]},
                        {"X-Admin-Token": ADMIN + "x"}, {"Authorization": f"Basic {ADMIN}"},
                        {"Cookie": f"{COOKIE}={ADMIN}"},
                        {"Cookie": f"{COOKIE}={cookie_value('another-admin-token')}"}):
            await expect_401(await client.request(method, path, headers=headers,
                                                  params={"admin_token": "nope"}))
    # Nothing was done: the payment is still open, the clock did not move.
    assert sim.ledger.by_id[txn_id].status.value == "pending"
    assert sim.clock.format(sim.clock.time()) == "2026-03-02 09:00:00"
    for method in ("GET", "HEAD"):
        resp = await client.request(method, "/_sim/health")
        assert resp.status == 200


@pytest.mark.parametrize("headers", [
    {"Authorization": f"Bearer {ADMIN}"},
    {"Authorization": f"bearer   {ADMIN}"},
    {"X-Admin-Token": ADMIN},
    {"X-Admin-Token": ADMIN, "Authorization": "Bearer some-merchant-token"},
])
async def test_the_admin_token_opens_every_route(
    client: TestClient, sim: Simulator, headers: dict[str, str]
) -> None:
    txn_id = await create(client)
    for method, path in sim_routes(client.app, txn_id):
        if path in ("/_sim/events", "/_sim/listen"):
            continue  # streams: checked on their own below
        resp = await client.request(method, path, headers=headers, allow_redirects=False)
        assert resp.status != 401, (method, path, await resp.text())
        assert "Set-Cookie" not in resp.headers  # only ?admin_token= sets the cookie
    for path in ("/_sim/events", "/_sim/listen"):
        stream = await client.get(path, headers=headers)
        assert stream.status == 200 and stream.headers["Content-Type"].startswith("text/event")
        stream.close()


async def test_query_token_sets_a_strict_httponly_cookie_for_the_dashboard(
    client: TestClient,
) -> None:
    resp = await client.get("/_sim/", params={"admin_token": ADMIN})
    assert resp.status == 200 and resp.content_type == "text/html"
    cookie = resp.cookies[COOKIE]
    client.session.cookie_jar.clear()  # sent explicitly below, so the test shows it
    assert cookie.value == cookie_value(ADMIN) and ADMIN not in cookie.value
    raw = resp.headers["Set-Cookie"]
    assert not leaks(raw)
    assert "HttpOnly" in raw and "SameSite=Strict" in raw and "Path=/_sim" in raw
    assert "Secure" not in raw  # plain http on 127.0.0.1; set when served over https
    # The page's own calls then carry the cookie (a browser sends it; so do we).
    jar = {"Cookie": f"{COOKIE}={cookie.value}"}
    for path in ("/_sim/dashboard/state", "/_sim/transactions", "/_sim/static/dashboard.js"):
        resp = await client.get(path, headers=jar)
        assert resp.status == 200, path
    assert (await client.post("/_sim/clock/advance", data={"seconds": "1"},
                              headers=jar)).status == 200
    # /_sim without the slash redirects to the dashboard and sets the cookie on the way.
    resp = await client.get("/_sim", params={"admin_token": ADMIN}, allow_redirects=False)
    assert resp.status == 302 and resp.cookies[COOKIE].value == cookie_value(ADMIN)
    client.session.cookie_jar.clear()
    # A wrong query token sets nothing.
    await expect_401(await client.get("/_sim/", params={"admin_token": ADMIN + "-"}))


async def test_merchant_api_and_wallet_pages_stay_open(client: TestClient) -> None:
    txn_id = await create(client, "pay", token=MERCHANT)
    for path in (f"/u_landing?q={txn_id}", f"/u_landing/{txn_id}/status",
                 f"/payment/qr?q={txn_id}", "/openapi.json"):
        resp = await client.get(path)
        assert resp.status == 200, path
    resp = await client.post("/payment/inquire", data={"transaction_id": txn_id},
                             headers=merchant_auth())
    assert (await resp.json())["id"] == txn_id
    resp = await client.post(f"/u_landing/{txn_id}/pay", allow_redirects=False)
    assert resp.status == 303
    # The admin token is not a merchant's: the merchant API still wants its own token.
    resp = await client.post("/payment/inquire", data={"transaction_id": txn_id},
                             headers=ADMIN_HEADERS)
    assert resp.status == 400


async def test_without_an_admin_token_the_control_surface_is_open(
    aiohttp_client: Callable[..., Any],
) -> None:
    client = await aiohttp_client(create_app(Simulator(Config(frozen_clock=True))))
    for path in ("/_sim/transactions", "/_sim/clock", "/_sim/", "/_sim/state"):
        assert (await client.get(path)).status == 200, path
    resp = await client.get("/_sim/", params={"admin_token": "anything"})
    assert resp.status == 200 and "Set-Cookie" not in resp.headers


def test_pytest_plugin_helpers_do_not_need_the_admin_token() -> None:
    """SimulatorServer's helpers call the simulator directly, never over HTTP."""
    with SimulatorServer(Config(frozen_clock=True, admin_token=ADMIN)) as server:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(server.url_for("/_sim/clock"), timeout=10)
        assert info.value.code == 401
        info.value.close()
        request = urllib.request.Request(server.url_for("/payment/pay"), headers={
            **merchant_auth(), "Content-Type": "application/x-www-form-urlencoded"},
            data=b"vendor=alipay&amount=100&currency=USD&reference=r1")
        with urllib.request.urlopen(request, timeout=10) as resp:
            txn_id = resp.read().decode().split("=")[1]
        assert server.pay(txn_id)["status"] == "success"
        assert [t["id"] for t in server.transactions(MERCHANT)] == [txn_id]
        assert server.advance(60) >= 0
        assert server.requests(token=MERCHANT)[0]["endpoint"] == "pay"
        server.reset()
        assert server.transactions() == []
        server.check_assertions()
        request = urllib.request.Request(server.url_for("/_sim/clock"),
                                         headers={"X-Admin-Token": ADMIN})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200


def test_cli_option_and_env_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Config] = []

    async def fake_serve(sim: Simulator, **_: Any) -> None:
        seen.append(sim.config)

    monkeypatch.setattr("citcon_sim.cli.serve_forever", fake_serve)
    runner = CliRunner()
    result = runner.invoke(main, ["serve", "--help"])
    assert "--admin-token" in result.output and "CITCON_SIM_ADMIN_TOKEN" in result.output
    result = runner.invoke(main, ["serve", "--admin-token", ADMIN])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["serve"], env={"CITCON_SIM_ADMIN_TOKEN": ADMIN})
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["serve"], env={"CITCON_SIM_ADMIN_TOKEN": ""})
    assert [c.admin_token for c in seen] == [ADMIN, ADMIN, None]
    assert ADMIN not in repr(seen[0])  # a logged Config never shows it


async def test_cli_server_logs_no_secret_and_banner_says_locked(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real ``citcon-sim serve`` path: its access log (on) redacts token parameters."""
    caplog.set_level(logging.DEBUG)
    sim = Simulator(Config(host="127.0.0.1", port=0, frozen_clock=True, access_log=True,
                           admin_token=ADMIN))
    ready = asyncio.Event()
    task = asyncio.create_task(serve_forever(sim, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        async with ClientSession() as session:
            base = sim.base_url()
            resp = await session.get(f"{base}/_sim/transactions",
                                     params={"admin_token": ADMIN, "token": MERCHANT})
            assert resp.status == 200
            resp = await session.post(f"{base}/payment/pay", data=BASE, headers={
                **merchant_auth(), "Referer": f"{base}/_sim/?admin_token={ADMIN}"})
            assert resp.status == 200
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(access) == 2 and all("[redacted]" in line for line in access), access
    assert not leaks(caplog.text)
    out = capsys.readouterr().out
    assert "locked: admin token required" in out and not leaks(out)


# -- secrets in logs and answers ------------------------------------------------------------


@pytest.fixture
async def logged(aiohttp_server: Callable[..., Any], aiohttp_client: Callable[..., Any],
                 sim: Simulator, caplog: pytest.LogCaptureFixture) -> TestClient:
    """The app served with the CLI's access logger switched on, every logger at DEBUG."""
    caplog.set_level(logging.DEBUG)
    server = await aiohttp_server(create_app(sim), access_log_class=RedactingAccessLogger,
                                  access_log=logging.getLogger("aiohttp.access"))
    return await aiohttp_client(server)


async def test_tokens_never_appear_in_logs_answers_journal_ipn_or_pages(
    logged: TestClient, sim: Simulator, ipn_receiver: IpnReceiver,
    caplog: pytest.LogCaptureFixture
) -> None:
    client = logged
    ipn_receiver.then(500)  # the merchant refuses the first IPN: a retry is sent
    bodies: list[str] = []
    admin_q = {"admin_token": ADMIN}

    async def call(method: str, path: str, *, status: int | None = 200, **kw: Any) -> str:
        resp = await client.request(method, path, **kw)
        text = await resp.text(errors="replace")  # the QR is a PNG
        if status is not None:
            assert resp.status == status, (path, text)
        bodies.append(text)
        bodies.extend(f"{k}: {v}" for k, v in resp.headers.items())
        return text

    async def admin(method: str, path: str, **kw: Any) -> Any:
        return json.loads(await call(method, path, headers=ADMIN_HEADERS, **kw))

    ipn_url = ipn_receiver.url
    # Every merchant endpoint, successes and failures.
    url = await call("POST", "/payment/pay", headers=merchant_auth(), data={
        **BASE, "ipn_url": ipn_url, "note": "gift", "allow_duplicates": "yes"})
    paid = url.split("=")[1]
    qr = (await call("POST", "/payment/pay_qr", headers=merchant_auth(),
                     data={**BASE, "reference": "order-2"})).split("=")[1]
    klarna = json.loads(await call("POST", "/payment/pay", headers=merchant_auth(), data={
        **BASE, "vendor": "klarna", "reference": "k-1", "response_format": "json"}))
    await call("GET", f"/payment/qr?q={qr}")
    await call("GET", f"/u_landing?q={paid}")
    await call("GET", f"/u_landing?q={paid}&view=mobile")
    await call("POST", f"/u_landing/{paid}/pay", status=303, allow_redirects=False)
    await call("GET", f"/u_landing?q={paid}")
    await call("GET", f"/u_landing/{paid}/status")
    await call("GET", "/u_landing?q=nope", status=404)
    await sim.ipn.drain()  # refused once: a retry is scheduled
    await admin("POST", "/_sim/clock/advance", data={"seconds": "20"})
    await sim.ipn.drain()
    assert len(ipn_receiver.posts) == 2
    await admin("POST", f"/_sim/transactions/{klarna['transaction_id']}/pay")
    for path, data in (("inquire", {"transaction_id": paid}), ("inquire", {"reference": "k-1"}),
                       ("refund", {"transaction_id": paid, "amount": "100", "currency": "USD"}),
                       ("refund", {"transaction_id": paid, "amount": "9999",
                                   "currency": "USD"}),
                       ("capture", {"reference": "k-1"}),
                       ("cancel", {"transaction_id": qr}),
                       ("cancel", {"transaction_reference": "nope"})):
        await call("POST", f"/payment/{path}", headers=merchant_auth(), data=data)
    await call("GET", "/payment/list", headers=merchant_auth())
    await call("POST", "/payment/inquire", headers=merchant_auth(), status=400,
               data={"transaction_id": "nope"})
    await call("POST", "/payment/pay", headers=merchant_auth(), status=400,
               data={**BASE, "amount": "-1"})
    await call("POST", "/payment/pay", headers={"Authorization": MERCHANT}, status=400,
               data={**BASE, f"consumer[{'x' * 200}]": "y"})
    # The control surface, filtered by the merchant's token in every way it accepts one.
    scenario = ("name: never\nrules:\n  - match: {endpoint: inquire, reference: no-such}\n"
                "    api: {error: 4100}\n")
    await call("POST", "/_sim/scenarios", params={"token": MERCHANT, **admin_q}, data=scenario,
               headers={"Content-Type": "application/yaml"})
    await call("POST", "/_sim/scenarios", headers=ADMIN_HEADERS,
               data={"name": "declines", "token": MERCHANT})
    answers = [
        await admin("GET", "/_sim/scenarios"),
        await admin("GET", f"/_sim/scenarios?token={MERCHANT}"),
        await admin("GET", f"/_sim/transactions?token={MERCHANT}"),
        await admin("GET", "/_sim/transactions"),
        await admin("GET", f"/_sim/transactions/{paid}"),
        await admin("GET", f"/_sim/ipn?token={MERCHANT}"),
        await admin("GET", f"/_sim/requests?token={MERCHANT}"),
        await admin("GET", f"/_sim/balance?token={MERCHANT}"),
        await admin("GET", f"/_sim/dashboard/state?token={MERCHANT}"),
        await admin("GET", "/_sim/dashboard/state"),
        await admin("GET", "/_sim/clock"),
        await admin("GET", "/_sim/vendors"),
    ]
    notify_id = next(n["notify_id"] for n in answers[5]["notifications"] if n["url"])
    await admin("POST", f"/_sim/ipn/{notify_id}/redeliver")
    await call("GET", "/_sim/", params=admin_q)
    client.session.cookie_jar.clear()  # the admin cookie the query token set
    await call("GET", "/_sim/transactions", params={"token": MERCHANT}, status=401)
    await admin("DELETE", "/_sim/scenarios", params={"token": MERCHANT})
    # Sanity: the answers are about this merchant (by hint), just never in clear.
    hint = MERCHANT[:2] + "…" + MERCHANT[-2:]
    assert answers[2]["transactions"] and answers[2]["transactions"][0]["token_hint"] == hint
    assert len(answers[6]["requests"]) >= 10
    assert any(k.startswith(hint) for k in answers[0]["by_token"])
    journal = [e.as_dict() for e in sim.journal.query(limit=1000)]
    ipn_log = sim.ipn.describe()
    assert ipn_log and all(n["form"]["sign"] for n in ipn_log)
    await admin("POST", "/_sim/reset", params={"token": MERCHANT})
    await call("GET", "/_sim/health")

    assert not leaks("\n".join(bodies))
    assert not leaks(json.dumps(journal, ensure_ascii=False, default=str))
    assert not leaks(json.dumps(ipn_log, ensure_ascii=False, default=str))
    assert not leaks(json.dumps([(r.headers, r.form) for r in ipn_receiver.requests]))
    records = [f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    access = [line for line in records if line.startswith("aiohttp.access")]
    assert len(access) >= 30 and any("token=[redacted]" in line for line in access)
    assert not leaks("\n".join(records)) and not leaks(caplog.text)


async def test_snapshot_holds_tokens_so_it_is_behind_the_admin_token(
    client: TestClient,
) -> None:
    """GET /_sim/state must carry tokens in clear (it restores merchants): the one /_sim
    answer that does, which is why a shared simulator should set --admin-token."""
    await create(client, token=MERCHANT)
    await expect_401(await client.get("/_sim/state"))
    assert MERCHANT in await (await client.get("/_sim/state", headers=ADMIN_HEADERS)).text()


async def test_strict_mode_unknown_token_is_not_echoed(
    aiohttp_client: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "merchants.yaml"
    path.write_text("merchants:\n  - token: listed-merchant-token\n", encoding="utf-8")
    sim = Simulator(Config(frozen_clock=True, merchants_file=path))
    client = await aiohttp_client(create_app(sim))
    for endpoint in ("pay", "pay_qr", "inquire", "refund", "cancel", "capture", "list"):
        resp = await client.request("GET" if endpoint == "list" else "POST",
                                    f"/payment/{endpoint}", data=BASE, headers=merchant_auth())
        text = await resp.text()
        assert resp.status == 401, text
        assert not leaks(text)
    resp = await client.get("/_sim/balance", params={"token": MERCHANT})
    assert resp.status == 401 and not leaks(await resp.text())
    assert not leaks(caplog.text)
    assert sim.ledger.merchants == {}


async def test_an_overlong_auth_header_is_a_4xx_and_never_logged(
    logged: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp refuses a header line over 8190 bytes (400) and logs the refusal with the
    start of the offending value: the filter keeps that value out of the log."""
    secret = MERCHANT + "Z" * 9000
    for headers in ({"Authorization": f"Bearer {secret}"}, {"X-Admin-Token": ADMIN * 300}):
        for path in ("/payment/pay", "/_sim/clock"):
            resp = await logged.post(path, data=BASE, headers=headers)
            assert 400 <= resp.status < 500, resp.status
            resp.close()
    messages = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert messages and all("not logged" in r.getMessage() for r in messages)
    assert not leaks(caplog.text)


def test_redact_url() -> None:
    assert redact_url("/_sim/x?token=abc&limit=2") == "/_sim/x?token=[redacted]&limit=2"
    assert redact_url("/_sim/?admin_token=abc") == "/_sim/?admin_token=[redacted]"
    assert redact_url("http://h/_sim/?a=1&Admin_Token=s&%74oken=t&sign=9") == (
        "http://h/_sim/?a=1&Admin_Token=[redacted]&%74oken=[redacted]&sign=[redacted]")
    assert redact_url("/payment/pay?reference=token=1") == "/payment/pay?reference=token=1"
    assert redact_url("/p?token=") == "/p?token=" and redact_url("/p") == "/p"


# -- response headers -----------------------------------------------------------------------


async def test_every_answer_says_nosniff_and_pages_carry_a_csp(client: TestClient) -> None:
    txn_id = await create(client, "pay")
    html_pages = [f"/u_landing?q={txn_id}", f"/u_landing?q={txn_id}&view=mobile",
                  "/u_landing?q=nope", f"/_sim/?admin_token={ADMIN}"]
    others = [("GET", "/_sim/health"), ("GET", "/_sim/clock"), ("GET", f"/payment/qr?q={txn_id}"),
              ("POST", "/payment/pay"), ("GET", "/nope"), ("GET", "/u_landing/static/wallet.css"),
              ("DELETE", "/payment/pay"), ("GET", "/openapi.json"),
              ("POST", f"/u_landing/{txn_id}/pay")]
    for path in html_pages:
        resp = await client.get(path)
        assert resp.content_type == "text/html", path
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'nonce-" in csp and "object-src 'none'" in csp, path
        assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    for method, path in others:
        resp = await client.request(method, path, allow_redirects=False)
        assert resp.headers.get("X-Content-Type-Options") == "nosniff", (method, path)
    result = await client.get(f"/u_landing?q={txn_id}")  # now paid: the result page
    assert "Content-Security-Policy" in result.headers and "nosniff" in str(result.headers)
    client.session.cookie_jar.clear()
    resp = await client.get("/_sim/clock")  # the 401
    assert resp.status == 401 and resp.headers["X-Content-Type-Options"] == "nosniff"


# -- request size and field limits ----------------------------------------------------------


@pytest.fixture
async def small(aiohttp_client: Callable[..., Any]) -> TestClient:
    return (await client_for(aiohttp_client, seed=1, max_body_bytes=2048))[0]


async def expect_envelope(resp: Any, status: int) -> None:
    await expect_error(resp, 4100, status)


async def test_sim_and_page_posts_share_the_body_limit(small: TestClient) -> None:
    txn_id = await create(small)
    big = "x" * 3000
    for path, kw in (
        ("/_sim/clock/advance", {"data": {"seconds": "1", "pad": big}}),
        ("/_sim/reset", {"data": {"pad": big}}),
        (f"/_sim/transactions/{txn_id}/fail", {"data": {"reason": big}}),
        ("/_sim/scenarios", {"data": "name: x\n# " + big,
                             "headers": {"Content-Type": "application/yaml"}}),
        ("/_sim/scenarios", {"data": {"name": "declines", "pad": big}}),
        ("/_sim/ipn/N0000000000-00000000000000000000/redeliver", {"json": {"pad": big}}),
        (f"/u_landing/{txn_id}/pay", {"data": {"view": big}}),
    ):
        await expect_envelope(await small.post(path, **kw), 413)
    txn = await (await small.get(f"/_sim/transactions/{txn_id}")).json()
    assert txn["internal_status"] == "pending"
    assert (await small.get("/_sim/clock")).status == 200


async def test_sim_parameters_have_the_field_limits(client: TestClient) -> None:
    too_long = "t" * (MAX_VALUE_LENGTH + 1)
    for method, path, kw in (
        ("GET", "/_sim/transactions", {"params": {"token": too_long}}),
        ("GET", "/_sim/ipn", {"params": {"transaction_id": too_long}}),
        ("POST", "/_sim/reset", {"data": {"token": too_long}}),
        ("POST", "/_sim/clock/advance",
         {"data": {"seconds": "1", **{f"p{i}": "v" for i in range(MAX_KEYS + 1)}}}),
        ("POST", "/_sim/clock/advance", {"data": {"seconds": "1", "k" * 101: "v"}}),
    ):
        await expect_envelope(await client.request(method, path, headers=ADMIN_HEADERS, **kw),
                              400)


@pytest.mark.slow
async def test_yaml_alias_bombs_and_deep_nesting_are_refused_quickly(
    client: TestClient, sim: Simulator
) -> None:
    laughs = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    laughs += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    bomb = "\n".join(laughs) + "\nname: b\nrules:\n  - match: {vendor: *a8}\n" \
        "    payment: {outcome: pay}\n"
    recursive = "name: r\nrules:\n  - match: &m {vendor: [*m]}\n    payment: {outcome: pay}\n"
    deep = "name: d\nrules: " + "[" * 5000 + "]" * 5000 + "\n"
    for text in (bomb, recursive, deep):
        resp = await client.post("/_sim/scenarios", data=text, headers={
            **ADMIN_HEADERS, "Content-Type": "application/yaml"})
        await expect_envelope(resp, 400)
    assert sim.take_errors() == []
    assert (await client.get("/_sim/scenarios", headers=ADMIN_HEADERS)).status == 200
    # Aliases as such are fine: a small scenario that reuses a match still loads.
    ok = ("name: reuse\nrules:\n  - match: &m {vendor: alipay, amount: 777}\n"
          "    payment: {outcome: fail}\n  - match: *m\n    ipn: {never: true}\n")
    resp = await client.post("/_sim/scenarios", data=ok, headers={
        **ADMIN_HEADERS, "Content-Type": "application/yaml"})
    assert resp.status == 200, await resp.text()


FIELD_LIMITS = [
    ("callback_url_success", "https://shop.example/", MAX_VALUE_LENGTH),
    ("note", "", LONG_FIELDS["note"]),
    ("ipn_url", "https://shop.example/", LONG_FIELDS["ipn_url"]),
]


@pytest.mark.parametrize(("field", "prefix", "limit"), FIELD_LIMITS)
@pytest.mark.parametrize("as_json", [False, True])
async def test_field_limits_are_exact(
    client: TestClient, sim: Simulator, field: str, prefix: str, limit: int, as_json: bool
) -> None:
    def body(size: int) -> dict[str, Any]:
        data = {**BASE, "allow_duplicates": "yes", field: prefix + "a" * (size - len(prefix))}
        return {"json": data} if as_json else {"data": data}

    resp = await client.post("/payment/pay", headers=merchant_auth(), **body(limit))
    assert resp.status == 200, await resp.text()
    resp = await client.post("/payment/pay", headers=merchant_auth(), **body(limit + 1))
    await expect_envelope(resp, 400)
    assert field in (await resp.json())["message"]
    assert len(sim.ledger.by_id) == 1


async def test_goods_reference_key_and_count_limits_are_exact(
    client: TestClient, sim: Simulator
) -> None:
    goods_limit = LONG_FIELDS["goods"]
    pad = goods_limit - len('{"data":[],"pad":""}')

    async def pay(**fields: str) -> Any:
        return await client.post("/payment/pay", headers=merchant_auth(),
                                 data={**BASE, "allow_duplicates": "yes", **fields})

    assert (await pay(goods='{"data":[],"pad":"' + "g" * pad + '"}')).status == 200
    await expect_envelope(await pay(goods='{"data":[],"pad":"' + "g" * (pad + 1) + '"}'), 400)
    assert (await pay(reference="r" * 128)).status == 200
    resp = await pay(reference="r" * 129)
    assert resp.status == 400 and (await resp.json())["code"] == 4103
    assert (await pay(**{"k" * MAX_KEY_LENGTH: "v"})).status == 200
    await expect_envelope(await pay(**{"k" * (MAX_KEY_LENGTH + 1): "v"}), 400)
    room = MAX_KEYS - len(BASE) - 1
    assert (await pay(**{f"p{i}": "v" for i in range(room)})).status == 200
    await expect_envelope(await pay(**{f"p{i}": "v" for i in range(room + 1)}), 400)
    await expect_envelope(await pay(**{"consumer[a][b][c]": "deep"}), 400)
    assert len(sim.ledger.by_id) == 4


async def test_oversized_headers_and_request_lines_are_4xx_not_500(
    client: TestClient, sim: Simulator
) -> None:
    cases: list[tuple[str, dict[str, str]]] = [
        ("/payment/pay", {"X-Long": "h" * 9000}),
        ("/payment/pay?reference=" + "r" * 9000, {}),
        ("/_sim/health", {"Cookie": "c=" + "x" * 9000}),
        ("/payment/pay", {f"X-H{i}": "v" * 100 for i in range(200)}),
        ("/u_landing", {"User-Agent": "u" * 9000}),
    ]
    for path, headers in cases:
        resp = await client.post(path, data=BASE, headers={**merchant_auth(), **headers})
        assert 400 <= resp.status < 500 or resp.status == 200, (path, resp.status)
        assert resp.status != 500
        resp.close()
    assert sim.take_errors() == []
    # Headers within aiohttp's limits are served normally.
    resp = await client.post("/payment/pay", data=BASE,
                             headers={**merchant_auth(), "X-Long": "h" * 8000})
    assert resp.status == 200


def test_setup_adds_the_log_filter_once() -> None:
    for _ in range(3):
        create_app(Simulator(Config()))
    server_log = logging.getLogger("aiohttp.server")
    assert sum(isinstance(f, security.ScrubParseErrors) for f in server_log.filters) == 1


async def test_admin_token_is_checked_in_constant_time_on_fixed_length_digests(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every way of sending the token goes through hmac.compare_digest, on values whose
    length does not depend on what was sent (so timing reveals neither length nor
    prefix), and never on the token itself."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    for guess in ("x", ADMIN[:-1], ADMIN + "x", ADMIN[::-1]):
        for kw in ({"params": {"admin_token": guess}},
                   {"headers": {"X-Admin-Token": guess}},
                   {"headers": {"Authorization": f"Bearer {guess}"}},
                   {"headers": {"Cookie": f"{COOKIE}={guess}"}}):
            compared.clear()
            await expect_401(await client.get("/_sim/clock", **kw))
            assert compared, kw  # refused by compare_digest, not by an early ==
            assert all(len(a) == len(b) == 32 for a, b in compared), compared
            assert not any(ADMIN.encode() in (a, b) for a, b in compared)
    compared.clear()
    assert (await client.get("/_sim/clock", headers={"X-Admin-Token": ADMIN})).status == 200
    assert compared and all(len(a) == len(b) == 32 for a, b in compared)
