"""Helpers for the UPI v1 tests: access tokens, charges, and an IPN receiver that keeps
the JSON bodies UPI posts (the shared receiver keeps forms)."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from .helpers import IpnReceiver

KEY = "sk-uat-0123456789abcdef0123456789abcdef"  # a private key in the sandbox's shape
ENVELOPE_KEYS = ["status", "app", "version", "data"]


async def token_for(client: TestClient[Any, Any], key: str = KEY,
                    token_type: str = "server") -> str:
    resp = await client.post("/v1/access-tokens", json={"token_type": token_type},
                             headers={"Authorization": f"Bearer {key}"})
    body = await resp.json()
    assert resp.status == 200, body
    return str(body["data"]["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def charge_body(reference: str = "order-1", amount: Any = 100, method: str = "alipay",
                clients: list[str] | None = None, **urls: str) -> dict[str, Any]:
    return {
        "transaction": {"reference": reference, "amount": amount, "currency": "USD",
                        "country": "US", "note": f"note for {reference}"},
        "payment": {"method": method, "client": clients or ["desktop"]},
        "urls": {"ipn": "https://shop.example/ipn", "success": "https://shop.example/ok",
                 "fail": "https://shop.example/fail", **urls},
    }


async def upi(client: TestClient[Any, Any], method: str, path: str, token: str | None,
              body: Any = None) -> tuple[int, dict[str, Any]]:
    """One UPI call; checks the envelope's fixed parts and returns (HTTP status, body)."""
    headers = bearer(token) if token else {}
    resp = await client.request(method, path, json=body, headers=headers)
    answer = await resp.json()
    assert list(answer) == ENVELOPE_KEYS, answer
    assert answer["app"] == "citcon_upi" and answer["version"] == "v1.0.0"
    assert answer["status"] == ("success" if resp.status == 200 else "fail"), answer
    if resp.status != 200:
        assert list(answer["data"]) == ["code", "message"], answer
        assert isinstance(answer["data"]["code"], str) and len(answer["data"]["code"]) == 4
    return resp.status, answer


async def charge(client: TestClient[Any, Any], token: str, **kwargs: Any) -> dict[str, Any]:
    status, answer = await upi(client, "POST", "/v1/charges", token, charge_body(**kwargs))
    assert status == 200, answer
    return answer["data"]  # type: ignore[no-any-return]


def independent_sign(body: dict[str, Any], secret: str) -> str:
    """Citcon's rule, written again here so the test does not trust the simulator's code:
    the listed keys plus fields, sorted, k=v joined by &, then &secret=, SHA-256 hex."""
    keys = sorted(set(body["fields"].split(",")) | {"fields"})
    text = "&".join(f"{k}={'' if body[k] is None else body[k]}" for k in keys)
    return hashlib.sha256(f"{text}&secret={secret}".encode()).hexdigest()


@dataclass
class JsonReceiver(IpnReceiver):
    """The shared receiver, also keeping each request's JSON body."""

    bodies: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        if request.content_type == "application/json":
            self.bodies.append(json.loads(await request.read()))
        return await super().handle(request)


def charge_request(server: Any, **kwargs: Any) -> urllib.request.Request:
    """A blocking client's ``POST /v1/charges`` to a running ``SimulatorServer`` (an
    access token minted for :data:`KEY` first)."""
    access = server.upi_access_token(KEY)
    return urllib.request.Request(
        server.url_for("/v1/charges"), method="POST",
        data=json.dumps(charge_body(**kwargs)).encode(),
        headers={"Authorization": f"Bearer {access}", "Content-Type": "application/json"})


def post(url: str, body: Any, token: str) -> tuple[int, dict[str, Any]]:
    """A blocking JSON POST with a bearer token: (HTTP status, the JSON answer)."""
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)
