"""The pay_qr image: a real, scannable PNG of the wallet page, that expires on time."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import zxingcpp
from aiohttp.test_utils import TestClient
from PIL import Image

from .helpers import AUTH, advance, create

REFERENCE = "order-qr-42"


async def pay_qr(client: TestClient, **fields: object) -> tuple[str, str]:
    """Create a pay_qr payment; returns its id and the QR path+query to GET."""
    txn_id = await create(client, "pay_qr", reference=REFERENCE, **fields)
    return txn_id, f"/payment/qr?q={txn_id}"


def decode(png: bytes) -> str:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    found = zxingcpp.read_barcodes(image)
    assert len(found) == 1, found
    assert found[0].format == zxingcpp.BarcodeFormat.QRCode
    return found[0].text


async def assert_live(client: TestClient, path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.content_type == "image/png"
    assert (await resp.read()).startswith(b"\x89PNG\r\n\x1a\n")


async def assert_expired(client: TestClient, path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == {"result": "fail", "reason": "QR code expired."}


async def test_qr_encodes_the_wallet_page_which_shows_the_order(client):
    resp = await client.post(
        "/payment/pay_qr",
        data={"vendor": "alipay", "amount": "1000", "currency": "USD", "reference": REFERENCE},
        headers=AUTH,
    )
    qr_url = await resp.text()
    txn_id = qr_url.split("=")[1].split("&")[0]
    base = qr_url.split("/payment/qr?", 1)[0]

    image = await client.get(urlsplit(qr_url).path + "?" + urlsplit(qr_url).query)
    assert image.status == 200
    assert image.content_type == "image/png"
    scanned = decode(await image.read())
    assert scanned == f"{base}/u_landing?q={txn_id}"

    # Follow what the phone would open.
    target = urlsplit(scanned)
    page = await client.get(f"{target.path}?{target.query}")
    assert page.status == 200
    assert page.content_type == "text/html"
    html = await page.text()
    assert REFERENCE in html
    assert txn_id in html  # the pay/fail forms post back to this transaction


async def test_default_timeout_is_300_seconds(client):
    _, path = await pay_qr(client)
    await advance(client, 299)
    await assert_live(client, path)
    await advance(client, 1)
    await assert_expired(client, path)


async def test_custom_timeout_is_respected(client):
    txn_id, path = await pay_qr(client, timeout=600)
    await advance(client, 300)
    await assert_live(client, path)
    await advance(client, 299)
    await assert_live(client, path)
    await advance(client, 1)
    await assert_expired(client, path)
    # Expiry is the same fact everywhere: inquire agrees with the image.
    resp = await client.post("/payment/inquire", data={"transaction_id": txn_id},
                             headers=AUTH)
    assert (await resp.json())["status"] == "expired"


async def test_unknown_id_is_a_json_404(client):
    for path in ("/payment/qr?q=U9999999999-00000000000000000000", "/payment/qr"):
        resp = await client.get(path)
        assert resp.status == 404
        assert resp.content_type == "application/json"
        assert (await resp.json())["result"] == "fail"


async def test_repeated_gets_return_the_same_bytes_rendered_once(client, sim):
    _, path = await pay_qr(client)
    bodies = []
    for _ in range(3):
        resp = await client.get(path)
        assert resp.status == 200
        bodies.append(await resp.read())
    assert bodies[0] == bodies[1] == bodies[2]
    assert sim.qr.renders == 1
    # A different transaction is a different image.
    _, other = await pay_qr(client)
    assert (await (await client.get(other)).read()) != bodies[0]
    assert sim.qr.renders == 2
