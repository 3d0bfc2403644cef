"""The dashboard at /_sim/: the page, its assets, its state call and its event stream."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from citcon_sim import Config, Simulator, create_app
from citcon_sim.web.dashboard import HUB, RESYNC, _Client

from .conftest import START, TOKEN, create
from .helpers import IpnReceiver

XSS = "<img src=x onerror=alert(1)>\"'</script><script>alert(2)</script>"
TIMEOUT = 5.0  # generous: each read normally completes in milliseconds


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], sim: Simulator) -> TestClient:
    c: TestClient = await aiohttp_client(create_app(sim))
    sim.bound_url = str(c.make_url("")).rstrip("/")  # what a real server reports
    return c


async def next_event(resp: ClientResponse, name: str) -> Any:
    """The data of the next ``name`` event on an SSE stream (other events are skipped)."""

    async def read() -> Any:
        event = None
        while True:
            raw = await resp.content.readline()
            if not raw:
                raise EOFError(f"stream ended before a {name!r} event")
            line = raw.decode("utf-8").rstrip("\n")
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == name:
                return json.loads(line.removeprefix("data: "))
            elif line == "":
                event = None

    return await asyncio.wait_for(read(), TIMEOUT)


async def open_stream(client: TestClient) -> ClientResponse:
    resp = await client.get("/_sim/events")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert resp.headers["Cache-Control"] == "no-store"
    hello = await next_event(resp, "hello")  # the subscription exists from here on
    assert hello["time"] == "2026-03-02 09:00:00" and hello["frozen"] is True
    return resp


# -- the page and its assets --------------------------------------------------------------


async def test_page_renders_with_its_assets(client: TestClient) -> None:
    resp = await client.get("/_sim/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    html = await resp.text()
    assert "<title>Dashboard · citcon-sim</title>" in html
    assert 'id="clock-time" class="clock-time">2026-03-02 09:00:00</time>' in html
    # The one script is external and carries the response's CSP nonce.
    nonce = re.search(r"script-src 'nonce-([^']+)'", resp.headers["Content-Security-Policy"])
    assert nonce is not None
    script = re.search(r'<script src="(/_sim/static/dashboard\.js\?v=\w+)" nonce="([^"]+)">',
                       html)
    assert script is not None and script.group(2) == nonce.group(1)
    css = re.search(r'href="(/_sim/static/dashboard\.css\?v=\w+)"', html)
    assert css is not None
    for url, ctype in ((script.group(1), "application/javascript"), (css.group(1), "text/css")):
        asset = await client.get(url)
        assert asset.status == 200 and asset.content_type == ctype
        assert len(await asset.read()) > 1000
    # Offline: nothing is loaded from anywhere else.
    assert not re.search(r"(src|href)=\"(https?:)?//", html)


async def test_bare_sim_redirects_to_the_dashboard(client: TestClient) -> None:
    resp = await client.get("/_sim", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/_sim/"


async def test_empty_state_offers_a_curl_example_with_the_real_base_url(
    client: TestClient, sim: Simulator
) -> None:
    html = await (await client.get("/_sim/")).text()
    base = sim.bound_url
    assert base and base.startswith("http://127.0.0.1:")
    assert f"curl -s -X POST '{base}/payment/pay'" in html
    assert 'id="empty"' in html
    state = await (await client.get("/_sim/dashboard/state")).json()
    assert state["all_total"] == 0 and state["transactions"] == [] and state["merchants"] == []
    assert state["base_url"] == base


# -- the state call -----------------------------------------------------------------------


async def test_state_lists_newest_first_with_both_amounts_and_token_hints(
    client: TestClient,
) -> None:
    first = await create(client, reference="order-1", amount=1000, currency="USD")
    second = await create(client, reference="order-2", vendor="wechatpay", amount=2599,
                          currency="USD", token="another-merchant-token")
    resp = await client.get("/_sim/dashboard/state")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    text = await resp.text()
    assert TOKEN not in text and "another-merchant-token" not in text  # hints only
    state = json.loads(text)
    rows = state["transactions"]
    assert [r["id"] for r in rows] == [second, first]
    top = rows[0]
    assert (top["amount"], top["currency"]) == (2599, "USD")
    assert (top["trans_amount"], top["trans_currency"]) == (18713, "CNY")
    assert top["vendor_name"] == "WeChat Pay" and top["reference"] == "order-2"
    assert top["status"] == "pending" and top["token_hint"] == "an…en"
    assert {m["hint"] for m in state["merchants"]} == {"te…en", "an…en"}
    assert state["total"] == state["all_total"] == 2


async def test_rows_and_details_name_the_api_that_created_the_payment(
    client: TestClient,
) -> None:
    online = await create(client, reference="o-1")
    resp = await client.post("/chop/chop", headers={"Authorization": f"Bearer {TOKEN}"}, data={
        "payment_method": "alipay", "amount": "500", "currency": "USD", "reference": "c-1"})
    chop = (await resp.json())["url"].split("=")[1]
    rows = (await (await client.get("/_sim/dashboard/state")).json())["transactions"]
    assert [(r["id"], r["face"]) for r in rows] == [(chop, "chop"), (online, "online")]
    detail = await (await client.get(f"/_sim/transactions/{chop}")).json()
    assert detail["face"] == "chop"


async def test_state_filters_by_merchant_key_or_token(client: TestClient) -> None:
    mine = await create(client, reference="mine")
    await create(client, reference="theirs", token="someone-else-entirely")
    by_token = await (await client.get("/_sim/dashboard/state", params={"token": TOKEN})).json()
    assert [r["id"] for r in by_token["transactions"]] == [mine]
    key = by_token["merchant"]
    assert key and TOKEN not in key
    by_key = await (await client.get("/_sim/dashboard/state", params={"merchant": key})).json()
    assert [r["id"] for r in by_key["transactions"]] == [mine]
    assert by_key["total"] == 1 and by_key["all_total"] == 2
    unknown = await (await client.get("/_sim/dashboard/state",
                                      params={"token": "never-used-token"})).json()
    assert unknown["transactions"] == [] and unknown["merchant_error"]


async def test_xss_payload_is_never_html(client: TestClient) -> None:
    txn = await create(client, reference=XSS, note=XSS)
    html = await (await client.get("/_sim/")).text()
    assert "<img src=x" not in html and "alert(" not in html
    state = await client.get("/_sim/dashboard/state")
    assert state.content_type == "application/json"
    assert json.loads(await state.text())["transactions"][0]["reference"] == XSS
    detail = await (await client.get(f"/_sim/transactions/{txn}")).json()
    assert detail["note"] == XSS  # shown as text: test_dashboard_browser.py checks the page


# -- the event stream ---------------------------------------------------------------------


async def test_events_stream_created_and_paid(client: TestClient) -> None:
    stream = await open_stream(client)
    txn = await create(client, reference="live-1")
    created = await next_event(stream, "txn")
    assert created["id"] == txn and created["kind"] == "created"
    assert created["status"] == "pending" and TOKEN not in json.dumps(created)
    assert (await client.post(f"/_sim/transactions/{txn}/pay")).status == 200
    paid = await next_event(stream, "txn")
    assert (paid["id"], paid["kind"], paid["status"]) == (txn, "paid", "success")
    stream.close()


@pytest.mark.slow
async def test_events_announce_clock_jumps_ipn_attempts_and_resets(
    client: TestClient, ipn_receiver: IpnReceiver, sim: Simulator
) -> None:
    stream = await open_stream(client)
    resp = await client.post("/_sim/clock/advance", data={"seconds": "300"})
    assert resp.status == 200
    clock = await next_event(stream, "clock")
    assert clock["time"] == "2026-03-02 09:05:00"

    txn = await create(client, reference="ipn-1", ipn_url=ipn_receiver.url)
    await client.post(f"/_sim/transactions/{txn}/pay")
    stats = await next_event(stream, "ipn")
    while stats["delivered"] < 1:  # queued, then delivered: each change is announced
        stats = await next_event(stream, "ipn")
    assert stats["attempts"] == 1

    await client.post("/_sim/reset")
    assert await next_event(stream, "reset") == {}
    stream.close()


async def test_events_carry_the_changed_row(
    client: TestClient, ipn_receiver: IpnReceiver, sim: Simulator
) -> None:
    stream = await open_stream(client)
    txn = await create(client, reference="row-1", ipn_url=ipn_receiver.url)
    created = await next_event(stream, "txn")
    assert created["row"]["id"] == txn and created["row"]["status"] == "pending"
    assert created["row"]["merchant"] == created["merchant"] and created["row"]["ipn"] is None
    assert TOKEN not in json.dumps(created)
    await client.post(f"/_sim/transactions/{txn}/pay")
    paid = await next_event(stream, "txn")
    assert paid["row"]["status"] == "success" and paid["row"]["ipn"]["state"] == "pending"
    note = await next_event(stream, "ipn")
    while note["notification"]["state"] != "delivered":
        note = await next_event(stream, "ipn")
    assert note["notification"]["transaction_id"] == txn
    assert note["notification"]["attempts"] == 1 and note["notification"]["kind"] == "attempted"
    assert note["row"]["id"] == txn and note["row"]["ipn"]["state"] == "delivered"
    assert note["delivered"] == 1  # the counters stay at the top level
    stream.close()


async def test_events_pushed_from_another_thread_and_for_one_merchant(
    client: TestClient, sim: Simulator
) -> None:
    stream = await open_stream(client)
    await create(client, reference="m-1")
    created = await next_event(stream, "txn")
    await asyncio.to_thread(sim.advance, 60)  # e.g. a test driving the simulator directly
    assert (await next_event(stream, "clock"))["time"] == "2026-03-02 09:01:00"
    await client.post("/_sim/reset", data={"token": TOKEN})
    assert await next_event(stream, "reset") == {"merchant": created["merchant"]}
    stream.close()


async def test_an_imported_state_is_announced_as_a_reset(client: TestClient) -> None:
    await create(client, reference="before")
    saved = await (await client.get("/_sim/state")).read()
    stream = await open_stream(client)
    resp = await client.put("/_sim/state", data=saved,
                            headers={"Content-Type": "application/json"})
    assert resp.status == 200, await resp.text()
    assert await next_event(stream, "reset") == {}
    stream.close()


async def test_heartbeat_comment_while_idle(client: TestClient) -> None:
    client.app[HUB].heartbeat = 0.05
    stream = await open_stream(client)

    async def comment() -> str:
        while True:
            line = (await stream.content.readline()).decode()
            if line.startswith(":"):
                return line

    assert await asyncio.wait_for(comment(), TIMEOUT) == ": heartbeat\n"
    stream.close()


async def test_streams_end_cleanly_on_shutdown(client: TestClient) -> None:
    stream = await open_stream(client)
    hub = client.app[HUB]
    assert len(hub.clients) == 1
    await client.app.shutdown()  # what the runner does first when the server stops

    async def rest() -> bytes:
        return await stream.content.read()  # to the end of the response

    assert (await asyncio.wait_for(rest(), TIMEOUT)).strip() == b""  # nothing after hello
    assert hub.clients == set()
    refused = await client.get("/_sim/events")
    assert refused.status == 503


def test_a_slow_client_is_bounded_and_resyncs() -> None:
    client = _Client(4)
    for i in range(10):
        client.put(f"event: txn\ndata: {i}\n\n".encode())
    queued = [client.queue.get_nowait() for _ in range(client.queue.qsize())]
    assert len(queued) <= 4 and RESYNC in queued
    assert client.overflows >= 1
    client.end()
    assert client.queue.get_nowait() is None


async def test_a_broken_dashboard_never_breaks_a_payment(client: TestClient) -> None:
    hub = client.app[HUB]
    hub.connect()

    def broken(token: str) -> str:
        raise RuntimeError("dashboard bug")

    hub.key = broken  # type: ignore[method-assign]
    txn = await create(client, reference="still-works")
    assert (await client.post(f"/_sim/transactions/{txn}/pay")).status == 200


async def test_works_behind_the_admin_token(aiohttp_client: Callable[..., Any]) -> None:
    sim = Simulator(Config(frozen_clock=True, start_time=START, admin_token="s3cret-admin"))
    c: TestClient = await aiohttp_client(create_app(sim))
    assert (await c.get("/_sim/")).status == 401
    assert (await c.get("/_sim/events")).status == 401
    page = await c.get("/_sim/", params={"admin_token": "s3cret-admin"})
    assert page.status == 200
    # The cookie that answer set lets the page's own calls in: state, assets, the stream.
    assert (await c.get("/_sim/dashboard/state")).status == 200
    assert (await c.get("/_sim/static/dashboard.js")).status == 200
    stream = await open_stream(c)
    txn = await create(c, reference="locked")
    assert (await next_event(stream, "txn"))["id"] == txn
    stream.close()


# -- what the newer features record ---------------------------------------------------------

SUMMARY_FIELDS = {"notifications", "attempts", "delivered", "failed", "retries_scheduled",
                  "queue_full", "queued", "queue_size", "in_flight", "endpoints", "workers",
                  "per_endpoint", "running", "timeout", "backoff", "listeners"}


async def test_state_and_ipn_events_carry_the_whole_ipn_summary(
    client: TestClient, ipn_receiver: IpnReceiver, sim: Simulator
) -> None:
    state = await (await client.get("/_sim/dashboard/state")).json()
    assert set(state["ipn"]) == SUMMARY_FIELDS  # what the IPN card shows, all of it
    assert state["ipn"]["listeners"] == 0 and state["ipn"]["queue_full"] == 0
    assert state["ipn"]["backoff"] == [15, 60, 300, 900, 3600, 10800, 21600]
    assert state["ipn"]["workers"] == sim.config.ipn_workers
    assert state["ipn"]["per_endpoint"] == sim.config.ipn_per_endpoint
    assert state["ipn"]["queue_size"] == sim.config.ipn_queue_size

    # A listener (citcon-sim listen) is counted while it is connected.
    listener = await client.get("/_sim/listen",
                                params={"forward_to": "http://localhost:8000/ipn"})
    assert listener.status == 200
    state = await (await client.get("/_sim/dashboard/state")).json()
    assert state["ipn"]["listeners"] == 1
    listener.close()

    stream = await open_stream(client)
    txn = await create(client, reference="sum-1", ipn_url=ipn_receiver.url)
    await client.post(f"/_sim/transactions/{txn}/pay")
    note = await next_event(stream, "ipn")
    while note["delivered"] < 1:
        note = await next_event(stream, "ipn")
    assert SUMMARY_FIELDS <= set(note)  # each push brings the whole summary up to date
    stream.close()
    await sim.ipn.drain()
    state = await (await client.get("/_sim/dashboard/state")).json()
    assert (state["ipn"]["delivered"], state["ipn"]["in_flight"], state["ipn"]["endpoints"],
            state["ipn"]["queued"]) == (1, 0, 0, 0)


async def test_vendors_list_each_journey_and_its_flags_as_openapi_says(
    client: TestClient,
) -> None:
    import jsonschema

    from citcon_sim.domain.vendors import VENDORS

    listed = (await (await client.get("/_sim/vendors")).json())["vendors"]
    vendors = {v["code"]: v for v in listed}
    assert set(vendors) == set(VENDORS)
    for code, v in VENDORS.items():
        got = vendors[code]
        assert (got["journey"], got["app_switch"], got["scan_option"], got["mobile_login"],
                got["market"]) == (v.journey.value, v.app_switch, v.scan_option,
                                   v.mobile_login, v.market), code
    # What the API document's redirect section describes (domain/vendors.py).
    journeys = {code: v["journey"] for code, v in vendors.items()}
    assert {c for c, j in journeys.items() if j == "qr_app"} == {
        "alipay", "wechatpay", "alipay_hk", "kakaopay"}
    assert journeys["banktransfer"] == "bank" and journeys["upop"] == "card"
    assert journeys["dana"] == "login" and journeys["gcash"] == "redirect"
    assert {c for c, v in vendors.items() if v["scan_option"]} == {"upop", "linepay", "paypay"}
    assert {c for c, v in vendors.items() if v["mobile_login"]} == {"alipay", "alipay_hk"}
    assert not vendors["dana"]["app_switch"] and vendors["payco"]["app_switch"]
    assert vendors["dana"]["market"] == "id_ID" and vendors["klarna"]["market"] == "en_US"

    # /openapi.json declares exactly these fields, each required, and every answer fits.
    doc = await (await client.get("/openapi.json")).json()
    answer = doc["paths"]["/_sim/vendors"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]
    item = answer["properties"]["vendors"]["items"]
    for v in vendors.values():
        assert set(item["properties"]) == set(item["required"]) == set(v)
    jsonschema.Draft202012Validator({**answer, "components": doc.get("components", {})}
                                    ).validate({"vendors": list(vendors.values())})
    bad = {**vendors["alipay"], "journey": "teleport"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(item).validate(bad)


async def test_the_new_payment_form_knows_each_vendors_journey(client: TestClient) -> None:
    html = await (await client.get("/_sim/")).text()
    config = json.loads(re.search(r'<script type="application/json" id="config">(.*?)</script>',
                                  html, re.S).group(1))
    by_face = {f["name"]: {v["code"]: v for v in f["vendors"]} for f in config["faces"]}
    assert by_face["online"]["alipay"]["journey"] == "qr_app"
    assert by_face["online"]["naverpay"]["journey"] == "login"
    assert by_face["chop"]["paypal"]["journey"] == "redirect"
