"""A tiny merchant backend that takes payments through Citcon's Online API.

It is written the way a real shop would write it, against Citcon's documented API only
(it does not import citcon-sim), so pointing CITCON_BASE_URL at the simulator or at
Citcon's UAT host is the only difference.

    POST /checkout          amount, currency, vendor (form or JSON) -> QR URL, transaction id
    POST /ipn               Citcon's payment notification: signature checked, order paid
    GET  /orders/{ref}      the order and its status
    GET  /health            {"status": "ok"}

Configuration (environment variables):

    CITCON_BASE_URL      the gateway, e.g. http://citcon-sim:8080 (default http://127.0.0.1:8080)
    CITCON_TOKEN         the merchant's API token (default demo-merchant-token)
    MERCHANT_PUBLIC_URL  where the gateway reaches this service; IPNs go to <it>/ipn
                         (default http://127.0.0.1:<PORT>)
    HOST, PORT           where to listen (default 127.0.0.1:8000)

Run it: ``pip install aiohttp && python app.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

log = logging.getLogger("merchant")

# Every environment variable this service reads.
ENV_VARS = ("CITCON_BASE_URL", "CITCON_TOKEN", "MERCHANT_PUBLIC_URL", "HOST", "PORT")


@dataclass(frozen=True, slots=True)
class Settings:
    citcon_base_url: str = "http://127.0.0.1:8080"
    citcon_token: str = "demo-merchant-token"
    public_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        default = cls()
        port = int(env.get("PORT") or default.port)
        return cls(
            citcon_base_url=(env.get("CITCON_BASE_URL") or default.citcon_base_url).rstrip("/"),
            citcon_token=env.get("CITCON_TOKEN") or default.citcon_token,
            public_url=(env.get("MERCHANT_PUBLIC_URL") or f"http://127.0.0.1:{port}").rstrip("/"),
            host=env.get("HOST") or default.host,
            port=port,
        )


# -- the IPN signature, as Citcon's API document defines it ---------------------------------

def ipn_signature(form: Mapping[str, str], token: str) -> str:
    """MD5 (lowercase hex) of the keys listed in ``fields`` plus ``fields`` itself, sorted,
    joined as ``k=v&k=v`` (values not URL-encoded), followed by ``&token=<token>``."""
    keys = {k for k in form["fields"].split(",") if k} | {"fields"}
    text = "&".join(f"{k}={form.get(k, '')}" for k in sorted(keys)) + f"&token={token}"
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def ipn_is_authentic(form: Mapping[str, str], token: str) -> bool:
    if "fields" not in form or "sign" not in form:
        return False
    if any(k not in form for k in form["fields"].split(",") if k):
        return False  # a signed key that was not posted: refuse rather than sign ''
    return hmac.compare_digest(ipn_signature(form, token), form["sign"].lower())


# -- the shop ------------------------------------------------------------------------------

@dataclass(slots=True)
class Order:
    reference: str
    amount: int
    currency: str
    vendor: str
    transaction_id: str = ""
    qr_url: str = ""
    status: str = "pending"  # pending -> paid | failed | amount_mismatch
    signature_verified: bool = False
    notify_ids: list[str] = field(default_factory=list)
    ipn: dict[str, str] | None = None  # the last authentic notification, as posted

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference, "amount": self.amount, "currency": self.currency,
            "vendor": self.vendor, "transaction_id": self.transaction_id,
            "qr_url": self.qr_url, "status": self.status,
            "signature_verified": self.signature_verified, "notify_ids": self.notify_ids,
            "ipn": self.ipn,
        }


SETTINGS = web.AppKey("settings", Settings)
ORDERS = web.AppKey("orders", dict)
HTTP = web.AppKey("http", aiohttp.ClientSession)


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


async def _body(request: web.Request) -> dict[str, str]:
    if request.content_type == "application/json":
        data = await request.json()
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return {k: str(v) for k, v in (await request.post()).items()}


async def checkout(request: web.Request) -> web.Response:
    settings, orders = request.app[SETTINGS], request.app[ORDERS]
    body = await _body(request)
    amount_text = body.get("amount", "")
    if not amount_text.isdigit() or int(amount_text) <= 0:
        return _error(400, "amount: a positive whole number of minor units, e.g. 1000")
    order = Order(
        reference=f"order-{uuid.uuid4().hex[:12]}",
        amount=int(amount_text),
        currency=(body.get("currency") or "USD").upper(),
        vendor=body.get("vendor") or "alipay",
    )
    payment = {
        "vendor": order.vendor, "amount": str(order.amount), "currency": order.currency,
        "reference": order.reference, "ipn_url": f"{settings.public_url}/ipn",
        "response_format": "json",
    }
    try:
        async with request.app[HTTP].post(
            f"{settings.citcon_base_url}/payment/pay_qr", data=payment,
            headers={"Authorization": f"Bearer {settings.citcon_token}"},
        ) as resp:
            answer = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return _error(502, f"payment gateway unreachable: {exc!r}")
    if resp.status != 200 or not isinstance(answer, dict) or "transaction_id" not in answer:
        return _error(502, "payment gateway refused the payment", gateway=answer)
    order.transaction_id, order.qr_url = answer["transaction_id"], answer["url"]
    orders[order.reference] = order
    log.info("order %s: payment %s created", order.reference, order.transaction_id)
    return web.json_response({**order.as_dict(), "order_url": f"/orders/{order.reference}"},
                             status=201)


async def ipn(request: web.Request) -> web.Response:
    settings, orders = request.app[SETTINGS], request.app[ORDERS]
    form = {k: str(v) for k, v in (await request.post()).items()}
    if not ipn_is_authentic(form, settings.citcon_token):
        log.warning("IPN with a bad signature refused: %s", form.get("id"))
        return web.Response(status=400, text="invalid signature")
    order = orders.get(form.get("reference", ""))
    if order is None or form.get("id") != order.transaction_id:
        return web.Response(status=404, text="unknown order")
    order.signature_verified, order.ipn = True, form
    if form.get("notify_id") and form["notify_id"] not in order.notify_ids:
        order.notify_ids.append(form["notify_id"])
    if order.status == "pending":  # notifications may repeat: only the first one counts
        if form.get("status") != "success":
            order.status = "failed"
        elif (form.get("amount"), form.get("currency", "").upper()) != (
                str(order.amount), order.currency):
            order.status = "amount_mismatch"  # paid, but not what was asked: review by hand
        else:
            order.status = "paid"
    log.info("order %s: %s (IPN %s)", order.reference, order.status, form.get("notify_id"))
    return web.Response(text="ok")


async def get_order(request: web.Request) -> web.Response:
    order = request.app[ORDERS].get(request.match_info["reference"])
    if order is None:
        return _error(404, "no such order")
    return web.json_response(order.as_dict())


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        app[HTTP] = session
        yield


def create_app(settings: Settings | None = None) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings or Settings.from_env()
    app[ORDERS] = {}
    app.cleanup_ctx.append(_http_session)
    app.router.add_post("/checkout", checkout)
    app.router.add_post("/ipn", ipn)
    app.router.add_get("/orders/{reference}", get_order)
    app.router.add_get("/health", health)
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = Settings.from_env()
    web.run_app(create_app(config), host=config.host, port=config.port)
