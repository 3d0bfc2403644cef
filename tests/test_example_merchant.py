"""The example merchant (examples/merchant/app.py) against the simulator, end to end and
without Docker: the same code and the same settings docker-compose.example.yml runs, with
both services on 127.0.0.1 instead of the compose network."""

from __future__ import annotations

import asyncio
import socket
import string
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from citcon_sim import Config, sign_ipn, verify_ipn
from citcon_sim.testing import SimulatorServer

from .example_support import MERCHANT_DIR, load_example_merchant

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.example.yml"


merchant = load_example_merchant()
COMPOSE_ENV: dict[str, str] = {
    k: str(v)
    for k, v in yaml.safe_load(COMPOSE.read_text())["services"]["merchant"]["environment"].items()
}
TOKEN = COMPOSE_ENV["CITCON_TOKEN"]


@pytest.fixture
def gateway() -> Iterator[SimulatorServer]:
    """The simulator as compose runs it: strict mode with the example's merchants file."""
    config = Config(frozen_clock=True, seed=7, merchants_file=MERCHANT_DIR / "merchants.yaml")
    with SimulatorServer(config) as server:
        yield server
        server.check_assertions()


@pytest.fixture
async def shop(gateway: SimulatorServer) -> AsyncIterator[str]:
    """The example merchant on this test's event loop; answers its base URL."""
    # Bind first, so the public URL (where IPNs go) is known before the app is built.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    settings = merchant.Settings.from_env({
        **COMPOSE_ENV, "CITCON_BASE_URL": gateway.base_url, "MERCHANT_PUBLIC_URL": base,
        "HOST": "127.0.0.1", "PORT": str(port),
    })
    runner = web.AppRunner(merchant.create_app(settings), access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        yield base
    finally:
        await runner.cleanup()
        sock.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def checkout(http: aiohttp.ClientSession, shop: str, **fields: str) -> dict[str, Any]:
    data = {"amount": "1000", "currency": "USD", "vendor": "alipay", **fields}
    async with http.post(f"{shop}/checkout", data=data) as resp:
        body = await resp.json()
        assert resp.status == 201, body
        return body


async def order(http: aiohttp.ClientSession, shop: str, reference: str) -> dict[str, Any]:
    async with http.get(f"{shop}/orders/{reference}") as resp:
        assert resp.status == 200
        return await resp.json()


async def test_checkout_pay_and_signed_ipn_mark_the_order_paid(
    gateway: SimulatorServer, shop: str, http: aiohttp.ClientSession
) -> None:
    created = await checkout(http, shop)
    txn_id, reference = created["transaction_id"], created["reference"]
    assert created["status"] == "pending"
    assert created["qr_url"] == gateway.url_for(f"/payment/qr?q={txn_id}")
    assert (await order(http, shop, reference))["status"] == "pending"

    # The gateway holds the payment, with the IPN URL pointing back at the shop.
    txn = gateway.transaction(txn_id)
    assert txn["reference"] == reference and txn["amount"] == 1000
    assert txn["ipn_url"] == f"{shop}/ipn"
    async with http.get(created["qr_url"]) as resp:  # the QR the shop shows its customer
        assert resp.status == 200 and resp.content_type == "image/png"

    # The consumer pays; the simulator posts the IPN to the shop, which acknowledges it.
    async with http.post(gateway.url_for(f"/_sim/transactions/{txn_id}/pay")) as resp:
        assert resp.status == 200, await resp.text()
    notification = await asyncio.to_thread(gateway.wait_for_ipn, txn_id, 10.0)
    assert notification["state"] == "delivered", notification
    attempt = notification["attempts"][0]
    assert (attempt["status"], attempt["body"]) == (200, "ok")

    paid = await order(http, shop, reference)
    assert paid["status"] == "paid"
    assert paid["signature_verified"] is True
    assert paid["notify_ids"] == [notification["notify_id"]]
    # The shop's inline MD5 check agrees with the simulator's reference implementation.
    assert paid["ipn"] == notification["form"]
    assert verify_ipn(paid["ipn"], TOKEN)


async def test_a_forged_or_tampered_ipn_is_refused(
    shop: str, http: aiohttp.ClientSession
) -> None:
    created = await checkout(http, shop, amount="2500")
    form = {
        "id": created["transaction_id"], "amount": "2500", "currency": "USD",
        "status": "success", "reference": created["reference"], "notify_id": "n-1",
        "note": "", "fields": "amount,currency,id,note,notify_id,reference,status",
    }
    forged = {**form, "sign": sign_ipn(form, "someone-elses-token")}
    tampered = {**form, "sign": sign_ipn(form, TOKEN), "amount": "1"}
    missing_field = {**form, "sign": sign_ipn(form, TOKEN)}
    del missing_field["note"]
    for bad in (forged, tampered, missing_field, dict(form)):
        async with http.post(f"{shop}/ipn", data=bad) as resp:
            assert (resp.status, await resp.text()) == (400, "invalid signature")
    assert (await order(http, shop, created["reference"]))["status"] == "pending"

    genuine = {**form, "sign": sign_ipn(form, TOKEN).upper()}  # hex case does not matter
    for _ in range(2):  # a repeated notification is acknowledged again, counted once
        async with http.post(f"{shop}/ipn", data=genuine) as resp:
            assert (resp.status, await resp.text()) == (200, "ok")
    paid = await order(http, shop, created["reference"])
    assert (paid["status"], paid["notify_ids"]) == ("paid", ["n-1"])


async def test_ipn_for_another_amount_is_not_taken_as_payment(
    shop: str, http: aiohttp.ClientSession
) -> None:
    created = await checkout(http, shop, amount="2500")
    form = {"id": created["transaction_id"], "amount": "25", "currency": "USD",
            "status": "success", "reference": created["reference"],
            "fields": "amount,currency,id,reference,status"}
    async with http.post(f"{shop}/ipn", data={**form, "sign": sign_ipn(form, TOKEN)}) as resp:
        assert resp.status == 200
    assert (await order(http, shop, created["reference"]))["status"] == "amount_mismatch"


async def test_checkout_reports_gateway_refusals_and_bad_input(
    shop: str, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{shop}/checkout",
                         data={"amount": "1000", "vendor": "no-such-wallet"}) as resp:
        body = await resp.json()
        assert resp.status == 502
        assert body["gateway"]["code"] == 4101  # Vendor not supported, passed through
    for amount in ("", "abc", "0", "9.99"):
        async with http.post(f"{shop}/checkout", json={"amount": amount}) as resp:
            assert resp.status == 400
    async with http.get(f"{shop}/orders/order-unknown") as resp:
        assert resp.status == 404


async def test_a_token_the_gateway_does_not_know_is_refused(
    gateway: SimulatorServer, http: aiohttp.ClientSession
) -> None:
    """Strict mode (the mounted merchants file) is what makes CITCON_TOKEN matter."""
    settings = merchant.Settings(citcon_base_url=gateway.base_url, citcon_token="wrong")
    runner = web.AppRunner(merchant.create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    try:
        await site.start()
        port = runner.addresses[0][1]
        async with http.post(f"http://127.0.0.1:{port}/checkout", data={"amount": "1"}) as resp:
            assert resp.status == 502
            assert (await resp.json())["gateway"]["result"] == "fail"
    finally:
        await runner.cleanup()


def test_settings_from_env_defaults_and_compose_values() -> None:
    default = merchant.Settings.from_env({})
    assert (default.host, default.port) == ("127.0.0.1", 8000)
    assert default.public_url == "http://127.0.0.1:8000"
    compose = merchant.Settings.from_env(COMPOSE_ENV)
    assert compose.citcon_base_url == "http://citcon-sim:8080"
    assert compose.public_url == "http://merchant:8000" and compose.citcon_token == TOKEN


KEYS = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12).filter(
    lambda k: k not in ("fields", "sign", "token"))


@pytest.mark.slow
@given(st.dictionaries(KEYS, st.text(max_size=30), min_size=1, max_size=8))
def test_inline_signature_matches_the_documented_algorithm(values: dict[str, str]) -> None:
    form = {**values, "fields": ",".join(values)}
    assert merchant.ipn_signature(form, "s3cret") == sign_ipn(form, "s3cret")
    signed = {**form, "sign": sign_ipn(form, "s3cret")}
    assert merchant.ipn_is_authentic(signed, "s3cret")
    assert not merchant.ipn_is_authentic(signed, "other")


def test_the_documented_example_signature() -> None:
    assert merchant.ipn_signature({"amount": "1", "fields": "amount"}, "123456") == \
        "1c38221b6dae95dab96bd0624bfbba27"
