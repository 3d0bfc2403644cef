"""Shared test helpers: the frozen-clock setup, merchant calls, and a real IPN receiver.

The fixtures built on these live in ``conftest.py``; test modules import the plain
functions from here (``from .helpers import AUTH, create, ...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient as _TestClient
from hypothesis import settings

from citcon_sim import Config, Simulator, create_app

TestClient = _TestClient[Any, Any]  # a client of the simulator's app

START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)  # a Monday morning, far from midnight
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PAYMENT = {"vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "order-1",
           "allow_duplicates": "yes"}


# The message each documented error code's answer starts with (the detail follows).
DOCUMENTED_ERRORS = {
    4100: "Bad request",
    4101: "Vendor not supported",
    4102: "Amount must be greater than 0",
    4103: "Reference is invalid",
    4104: "Timeout is invalid",
    4105: "Bank not supported",
}


def auth(token: str) -> dict[str, str]:
    """The merchant API's Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def frozen_config(**overrides: Any) -> Config:
    """A simulator whose clock moves only when told, from ``START``, with reproducible ids."""
    return Config(**{"frozen_clock": True, "start_time": START, "seed": 1234, **overrides})


# A test that relies on magic amounts (off by default) turns them on for its simulator:
# it replaces the conftest ``config`` fixture for that test.
with_magic_amounts = pytest.mark.parametrize(
    "config", [frozen_config(magic_amounts=True)], ids=["magic-amounts"])


async def client_for(
    aiohttp_client: Callable[..., Any], **config: Any
) -> tuple[TestClient, Simulator]:
    """A test client and its simulator, built from ``frozen_config(**config)``."""
    sim = Simulator(frozen_config(**config))
    client: TestClient = await aiohttp_client(create_app(sim))
    return client, sim


def examples(n: int) -> int:
    """``n`` examples under the default profile (100), scaled with the loaded profile's
    ``max_examples`` so ``HYPOTHESIS_PROFILE=explore`` searches every property harder."""
    return max(1, n * settings().max_examples // 100)


# -- merchant and consumer calls --------------------------------------------------------


async def create(
    client: TestClient, endpoint: str = "pay_qr", token: str = TOKEN, **fields: Any
) -> str:
    """Create a payment and return its id, the way merchant code parses the URL."""
    data = {**PAYMENT, **{k: str(v) for k, v in fields.items()}}
    resp = await client.post(f"/payment/{endpoint}", data=data, headers=auth(token))
    text = await resp.text()
    assert resp.status == 200, text
    return text.split("=")[1].split("&")[0]


async def consumer_pays(client: TestClient, txn_id: str) -> None:
    """The consumer confirms in the wallet (``POST /_sim/transactions/<id>/pay``)."""
    resp = await client.post(f"/_sim/transactions/{txn_id}/pay")
    assert resp.status == 200, await resp.text()
    await resp.read()


async def create_paid(
    client: TestClient, endpoint: str = "pay_qr", token: str = TOKEN, **fields: Any
) -> str:
    """``create`` then ``consumer_pays``; returns the id."""
    txn_id = await create(client, endpoint, token, **fields)
    await consumer_pays(client, txn_id)
    return txn_id


async def inquire(client: TestClient, txn_id: str, token: str = TOKEN) -> dict[str, Any]:
    """``POST /payment/inquire`` by id; the answer must be a 200."""
    resp = await client.post("/payment/inquire", data={"transaction_id": txn_id},
                             headers=auth(token))
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def advance(client: TestClient, seconds: float) -> None:
    """Move the virtual clock (``POST /_sim/clock/advance``)."""
    resp = await client.post("/_sim/clock/advance", data={"seconds": str(seconds)})
    assert resp.status == 200, await resp.text()


async def sim_txn(client: TestClient, txn_id: str) -> dict[str, Any]:
    """The control surface's view of one transaction (``GET /_sim/transactions/<id>``)."""
    resp = await client.get(f"/_sim/transactions/{txn_id}")
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def internal_status(client: TestClient, txn_id: str) -> str:
    return str((await sim_txn(client, txn_id))["internal_status"])


async def expect_error(
    resp: ClientResponse, code: int = 4100, status: int = 400
) -> dict[str, Any]:
    """The error envelope: HTTP ``status``, JSON ``{"result": "fail", "code", "message"}``
    with the documented message for ``code``; returns the body."""
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "application/json", text
    body: dict[str, Any] = json.loads(text)
    assert set(body) == {"result", "code", "message"}, body
    assert body["result"] == "fail" and body["code"] == code, body
    # A 401 keeps code 4100 but says what it is (domain.errors.Unauthorized).
    documented = "Unauthorized" if status == 401 else DOCUMENTED_ERRORS[code]
    assert body["message"].startswith(documented), body
    return body


# -- the merchant's IPN endpoint ----------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """How the receiver answers one request. ``delay`` is in wall seconds; ``math.inf``
    holds the answer until the test ends (a merchant that never answers)."""

    status: int = 200
    body: str = "ok"
    delay: float = 0.0
    content_type: str = "text/plain"


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    content_type: str
    headers: dict[str, str]
    form: dict[str, Any]  # a form's fields as text; a JSON object as sent (numbers stay)


@dataclass
class IpnReceiver:
    """A merchant's HTTP endpoint on 127.0.0.1: records every request on any path and
    answers ``default``, or the next of the answers queued with ``then``."""

    url: str = ""  # the /ipn URL to hand the simulator
    base_url: str = ""
    requests: list[Received] = field(default_factory=list)
    default: Answer = field(default_factory=Answer)
    _queued: deque[Answer] = field(default_factory=deque)
    _released: threading.Event = field(default_factory=threading.Event)

    @property
    def posts(self) -> list[dict[str, Any]]:
        """The forms (or JSON objects) POSTed so far, oldest first."""
        return [r.form for r in self.requests if r.method == "POST"]

    def answer(self, status: int = 200, body: str = "ok", delay: float = 0.0,
               content_type: str = "text/plain") -> None:
        """Answer every request this way from now on (after any queued answers)."""
        self.default = Answer(status, body, delay, content_type)

    def then(self, *answers: Answer | int) -> None:
        """Queue one answer per coming request (an int is a status with the default body)."""
        self._queued.extend(a if isinstance(a, Answer) else Answer(a) for a in answers)

    def url_for(self, path: str) -> str:
        return self.base_url + path

    def release(self) -> None:
        """Let held (``delay=math.inf``) answers go."""
        self._released.set()

    async def handle(self, request: web.Request) -> web.Response:
        form: dict[str, Any]
        if request.content_type == "application/json":
            form = await request.json()  # values as sent: numbers stay numbers
        else:
            form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(Received(
            request.method, request.path, request.content_type, dict(request.headers), form))
        answer = self._queued.popleft() if self._queued else self.default
        if answer.delay == math.inf:
            while not self._released.is_set():
                await asyncio.sleep(0.01)
        elif answer.delay:
            await asyncio.sleep(answer.delay)
        return web.Response(status=answer.status, text=answer.body,
                            content_type=answer.content_type)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.handle)
        return app

    def bound(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/ipn"

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until ``count`` POSTs have arrived; returns them."""
        deadline = time.monotonic() + timeout
        while len(self.posts) < count:
            assert time.monotonic() < deadline, f"{len(self.posts)} of {count} IPNs arrived"
            await asyncio.sleep(0.01)
        return self.posts

    def wait_for_sync(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """``wait_for`` for a test outside the receiver's event loop (a threaded receiver)."""
        deadline = time.monotonic() + timeout
        while len(self.posts) < count:
            assert time.monotonic() < deadline, f"{len(self.posts)} of {count} IPNs arrived"
            time.sleep(0.01)
        return self.posts


@contextlib.contextmanager
def threaded_ipn_receiver() -> Iterator[IpnReceiver]:
    """An ``IpnReceiver`` serving from its own thread and event loop, for synchronous tests
    (a ``SimulatorServer`` or the CLI runs a loop of its own)."""
    receiver = IpnReceiver()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(receiver.app(), access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    receiver.bound(f"http://127.0.0.1:{runner.addresses[0][1]}")
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.run_until_complete(runner.cleanup())
        loop.close()


class Gate:
    """Counts requests the server is handling; opens once ``expected`` are in at once."""

    def __init__(self) -> None:
        self.expected = 0
        self.in_flight = 0
        self.most = 0
        self.open = asyncio.Event()

    def arm(self, expected: int) -> None:
        self.expected, self.most = expected, 0
        self.open.clear()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        if self.expected and self.in_flight >= self.expected:
            self.open.set()
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1


# -- a plain HTTP client, for servers in another thread or process ------------------------


class Http:
    """Plain (blocking) HTTP calls to a base URL, for a ``SimulatorServer`` or a
    ``citcon-sim serve`` process; answers (status, headers, body). Redirects are
    answers, not followed."""

    def __init__(self, base: str) -> None:
        self.base = base

    def __call__(self, method: str, path: str, form: dict[str, Any] | bytes | None = None,
                 token: str | None = None) -> tuple[int, dict[str, str], bytes]:
        data = form if isinstance(form, bytes) else (
            urlencode(form).encode() if form is not None else None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, dict(exc.headers), exc.read()

    def create(self, **form: Any) -> str:
        fields = {"vendor": "alipay", "currency": "USD", "response_format": "json", **form}
        status, _, body = self("POST", "/payment/pay_qr", fields, TOKEN)
        assert status == 200, body
        return str(json.loads(body)["transaction_id"])

    def status(self, txn_id: str) -> Any:
        status, _, body = self("POST", "/payment/inquire", {"transaction_id": txn_id}, TOKEN)
        assert status == 200, body
        return json.loads(body)["status"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect (the wallet page's 303) is an answer to check


async def next_event(resp: Any, timeout: float = 5.0) -> tuple[str, Any]:
    """The next Server-Sent Event of an aiohttp response: (event, its JSON data);
    comments (heartbeats) skipped."""
    event, data = "", ""
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), timeout)).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            data = line[len("data: "):]
        elif not line and event:
            return event, json.loads(data)
