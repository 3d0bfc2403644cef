"""Two IPN receivers for the receiver lab's tests, one per kind of merchant code: a
correct one (verifies with the simulator's own verifiers, inquires the gateway, answers
idempotently) and a naive one (answers ``ok`` to everything)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from citcon_sim import verify_ipn, verify_upi_ipn


@dataclass
class CorrectReceiver:
    """Verifies ``sign``; refuses (400) what does not verify; for a success notice,
    inquires the gateway (when it has one) and refuses (404/409) a transaction the
    gateway does not know or does not report paid with that amount; acknowledges a
    failure notice without paying; pays an order once, whatever the repeats."""

    token: str
    face: str = "online"
    gateway: str | None = None  # the Citcon base URL it inquires
    delay: float = 0.0  # seconds before answering the first notification
    strict_case: bool = False  # compare sign as lowercase hex only
    reject_unlisted: bool = False  # refuse posted keys not in `fields` (a mistake)
    failure_answer: int = 200  # the WooCommerce plugin's mistake: 500
    paid: set[str] = field(default_factory=set)  # transaction ids
    inquiries: int = 0
    received: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.received += 1
        if self.delay and self.received == 1:
            await asyncio.sleep(self.delay)
        if request.content_type == "application/json":
            body: dict[str, Any] = await request.json()
        else:
            body = {k: str(v) for k, v in (await request.post()).items()}
        if self.strict_case and str(body.get("sign", "")).lower() != body.get("sign"):
            return web.Response(status=400, text="invalid signature")
        listed = set(str(body.get("fields", "")).split(",")) | {"fields", "sign"}
        if self.reject_unlisted and set(body) - listed:
            return web.Response(status=400, text="unexpected field")
        verify = verify_upi_ipn if self.face == "upi" else verify_ipn
        if not verify(body, self.token):
            return web.Response(status=400, text="invalid signature")
        status = body.get("notify_status", body.get("status"))
        if status not in ("success", "succeeded"):
            # Acknowledged; the order stays unpaid.
            return web.Response(status=self.failure_answer, text="ok")
        if self.gateway is not None:
            found = await self.inquire(str(body["id"]))
            if found is None:
                return web.Response(status=404, text="unknown transaction")
            word, amount = found
            if word != "paid" or amount != int(body["amount"]):
                return web.Response(status=409, text="the gateway disagrees")
        self.paid.add(str(body["id"]))  # once per transaction, however often notified
        return web.Response(text="ok")

    async def inquire(self, txn_id: str) -> tuple[str, int] | None:
        """(``paid`` or the gateway's status word, amount), None when unknown."""
        self.inquiries += 1
        auth = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(base_url=self.gateway, headers=auth) as http:
            if self.face == "upi":
                async with http.post("/v1/access-tokens", json={"token_type": "server"}) as r:
                    access = (await r.json())["data"]["access_token"]
                async with http.get(f"/v1/transactions/{txn_id}",
                                    headers={"Authorization": f"Bearer {access}"}) as r:
                    if r.status != 200:
                        return None
                    data = (await r.json())["data"]
                    word = "paid" if data["status"] == "succeeded" else data["status"]
                    return word, int(data["amount"])
            if self.face == "chop":
                async with http.post("/chop/inquire", data={"transaction_id": txn_id}) as r:
                    answer = await r.json()
            else:
                async with http.get("/payment/inquire",
                                    params={"transaction_id": txn_id}) as r:
                    answer = await r.json()
            if r.status != 200 or "status" not in answer:
                return None
            word = "paid" if answer["status"] == "success" else str(answer["status"])
            return word, int(answer["amount"])

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/ipn", self.handle)
        return app


def naive_app() -> web.Application:
    """Accepts everything, like the public PHP demo that answers ok to forgeries."""
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")
    app = web.Application()
    app.router.add_post("/ipn", ok)
    return app


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """``app`` on a free port of 127.0.0.1; yields its /ipn URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/ipn"
    finally:
        await runner.cleanup()


@contextmanager
def threaded(app: web.Application) -> Iterator[str]:
    """``app`` served from its own thread and loop (for the CLI and the blocking helper,
    which run loops of their own); yields its /ipn URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/ipn"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
