"""Every curl example of the API document, sent to the simulator as curl would send it.

The examples are parsed from ``tests/data/citcon-online-api.txt`` when the tests are
collected (nothing here is copied by hand): the method, the path, the headers and each
``--data-urlencode 'k=v'`` pair, with values exactly as the shell passes them in single
quotes (``vendor=upop `` keeps its space, ``goods={\\"data\\"...}`` keeps its backslashes).
The host is rewritten to the local test server and the placeholders (``{access-token}``,
``{{transaction_id}}``, ...) are filled with a transaction created and driven first through
the control surface. Answers are checked against the documented responses, which are
parsed from the same document.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from aiohttp.test_utils import TestClient

from citcon_sim import Simulator

from .helpers import TOKEN, create
from .helpers import sim_txn as inspect

DOC = Path(__file__).parent / "data" / "citcon-online-api.txt"

# What a reader of the document counts; the parser must find at least this many.
DOCUMENTED_COUNTS = {"pay": 12, "pay_qr": 12, "inquire": 2, "capture": 2, "refund": 4,
                     "cancel": 2}

TXN_ID = re.compile(r"^U\d{10}-[0-9a-f]{20}$")
TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
UNKNOWN_ID = "U9999999999-00000000000000000000"


# -- parsing the document ------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    line: int  # 1-based line of the document where the command starts
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def endpoint(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def get(self, key: str) -> str | None:
        values = [v for k, v in self.data if k == key]
        return values[-1] if values else None

    @property
    def name(self) -> str:
        """A readable test id: doc line, then what distinguishes this example."""
        parts = [f"L{self.line}"]
        if self.get("vendor") is not None:
            parts.append(self.get("vendor").strip())
        for key in ("transaction_id", "transaction_reference", "reference"):
            if self.endpoint not in ("pay", "pay_qr") and self.get(key) is not None:
                parts.append(f"by_{key}")
        if self.get("trans_currency") is not None:
            parts.append(f"trans_{self.get('trans_currency')}")
        elif self.get("currency") is not None:
            parts.append(self.get("currency"))
        return "-".join(parts)

    def request(self, **subs: str) -> tuple[str, str, dict[str, str], str]:
        """Method, path, headers and body, placeholders filled, body encoded like curl."""

        def fill(text: str) -> str:
            for placeholder, value in (
                ("{{transaction_id}}", subs.get("transaction_id")),
                ("{transaction_id}", subs.get("transaction_id")),
                ("{{reference}}", subs.get("reference")),
                ("{accesss-token}", TOKEN),
                ("{access-token}", TOKEN),
            ):
                if placeholder in text:
                    assert value is not None, f"{self.name} needs a value for {placeholder}"
                    text = text.replace(placeholder, value)
            return text

        headers = {k: fill(v) for k, v in self.headers}
        # curl --data-urlencode 'name=content' sends name=<content percent-encoded>, joined
        # with '&'; it leaves only ALPHA / DIGIT / "-" / "." / "_" / "~" unencoded.
        body = "&".join(f"{k}={quote(fill(v), safe='')}" for k, v in self.data)
        return self.method, self.path, headers, body


def commands(text: str) -> list[tuple[int, str]]:
    """Each ``curl`` command of the text with its line, continuation lines joined."""
    found: list[tuple[int, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("curl "):
            i += 1
            continue
        start, parts = i + 1, [lines[i]]
        while parts[-1].rstrip().endswith("\\") and i + 1 < len(lines):
            parts[-1] = parts[-1].rstrip()[:-1]  # a trailing backslash joins the next line
            i += 1
            parts.append(lines[i])
        found.append((start, " ".join(parts)))
        i += 1
    return found


def unflatten(command: str) -> str:
    """Turn the one-line examples' `` \\ `` separators back into the line continuations
    they were flattened from: outside single quotes, a backslash before whitespace goes."""
    out, quoted = [], False
    for i, char in enumerate(command):
        if char == "'":
            quoted = not quoted
        elif char == "\\" and not quoted and command[i + 1:i + 2].isspace():
            continue
        out.append(char)
    return "".join(out)


def parse_command(line: int, command: str) -> Example:
    # POSIX shell words: single quotes keep everything byte for byte.
    words = shlex.split(unflatten(command))
    assert words[0] == "curl"
    method, url = "GET", None
    headers: list[tuple[str, str]] = []
    data: list[tuple[str, str]] = []
    it = iter(words[1:])
    for word in it:
        if word in ("-X", "--request"):
            method = next(it)
        elif word in ("-H", "--header"):
            key, _, value = next(it).partition(":")
            headers.append((key.strip(), value.strip()))
        elif word == "--data-urlencode":
            key, _, value = next(it).partition("=")
            data.append((key, value))
            method = method if method != "GET" else "POST"
        elif word in ("-L", "--location"):
            continue
        elif word.startswith("-"):
            raise ValueError(f"line {line}: curl option {word!r} is not understood")
        else:
            assert url is None, f"line {line}: two URLs"
            url = word
    assert url is not None, f"line {line}: no URL"
    return Example(line, method, url, tuple(headers), tuple(data))


def documented_responses(text: str) -> dict[str, list[str]]:
    """The lines under each "Response" heading, keyed by the endpoint of the examples
    just above it."""
    out: dict[str, list[str]] = {}
    lines = text.splitlines()
    endpoint = None
    for i, line in enumerate(lines):
        if line.startswith("curl "):
            endpoint = parse_command(i + 1, line.rstrip("\\")).endpoint
        elif line.strip() == "Response" and endpoint is not None:
            block = []
            for after in lines[i + 1:]:
                if block and not after.strip():
                    break
                if after.strip():
                    block.append(after.strip())
            out[endpoint] = block
    return out


DOC_TEXT = DOC.read_text(encoding="utf-8")
EXAMPLES = [parse_command(line, cmd) for line, cmd in commands(DOC_TEXT)]
RESPONSES = documented_responses(DOC_TEXT)


def examples(endpoint: str) -> list[Any]:
    return [pytest.param(e, id=e.name) for e in EXAMPLES if e.endpoint == endpoint]


def documented_json(endpoint: str, index: int) -> dict[str, Any]:
    return json.loads(RESPONSES[endpoint][index])


# -- the parser itself ---------------------------------------------------------------------


def test_every_curl_example_in_the_document_is_parsed():
    in_text = len(re.findall(r"^curl\s", DOC_TEXT, re.MULTILINE))
    assert len(EXAMPLES) == in_text >= sum(DOCUMENTED_COUNTS.values())
    for endpoint, count in DOCUMENTED_COUNTS.items():
        assert len([e for e in EXAMPLES if e.endpoint == endpoint]) >= count, endpoint
    assert all(e.method == "POST" for e in EXAMPLES)
    assert all(e.url.startswith("https://uat.citconpay.com/payment/") for e in EXAMPLES)
    assert all(dict(e.headers)["Authorization"].startswith("Bearer {") for e in EXAMPLES)
    assert len({e.name for e in EXAMPLES}) == len(EXAMPLES)


def test_values_are_kept_exactly_as_the_shell_passes_them():
    upop = next(e for e in EXAMPLES if e.endpoint == "pay" and e.get("vendor") == "upop ")
    assert upop.get("currency") == "USD"
    card = next(e for e in EXAMPLES if e.endpoint == "pay" and e.get("vendor") == "card")
    assert card.get("reference") == "test_citcon _001"
    assert card.get("goods").startswith('{\\"data\\":[{\\"name\\":\\"Battery Power Pack\\"')
    assert card.get("consumer[email]") == "test@citcon.cn"
    klarna = next(e for e in EXAMPLES if e.endpoint == "pay" and e.get("vendor") == "klarna")
    assert klarna.get("billing_address[street]") == "Privada Germa"
    assert json.loads(klarna.get("goods"))["shipping"]["street2"] == ""
    # The multi-line inquire examples are joined like the one-line ones.
    inquire = [e for e in EXAMPLES if e.endpoint == "inquire"]
    assert [e.data for e in inquire] == [
        (("transaction_id", "{{transaction_id}}"), ("inquire_method", "real")),
        (("inquire_method", "real"), ("reference", "{{reference}}")),
    ]
    # Encoded as curl encodes: the key as written, the value percent-encoded.
    _, _, headers, body = upop.request()
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert "vendor=upop%20&" in body
    _, _, _, body = card.request()
    assert "consumer[email]=test%40citcon.cn" in body
    assert "goods=%7B%5C%22data%5C%22" in body


# -- sending them --------------------------------------------------------------------------


async def send(client: TestClient, example: Example, **subs: str):
    method, path, headers, body = example.request(**subs)
    return await client.request(method, path, headers=headers, data=body.encode())


async def pay(client: TestClient, txn_id: str) -> dict[str, Any]:
    resp = await client.post(f"/_sim/transactions/{txn_id}/pay")
    assert resp.status == 200, await resp.text()
    return await resp.json()


def base_url(client: TestClient, sim: Simulator) -> str:
    return sim.base_url(f"{client.host}:{client.port}")


def assert_same_shape(body: dict[str, Any], documented: dict[str, Any]) -> None:
    """Every documented key is present with a value of the documented JSON type."""
    missing = set(documented) - set(body)
    assert not missing, f"missing documented keys {missing} in {body}"
    for key, value in documented.items():
        assert type(body[key]) is type(value), (key, body[key], value)


async def check_created(client, sim, example: Example, expected_path: str) -> None:
    resp = await send(client, example)
    text = await resp.text()
    assert resp.status == 200, text
    assert resp.content_type == "text/plain"
    txn_id = text.split("=")[1].split("&")[0]  # how merchant code reads the id
    assert TXN_ID.match(txn_id), text
    assert text == f"{base_url(client, sim)}{expected_path}?q={txn_id}"
    # The transaction holds what the example sent.
    txn = await inspect(client, txn_id)
    assert txn["vendor"] == example.get("vendor").strip()
    assert txn["reference"] == example.get("reference")
    assert txn["method"] == example.endpoint
    assert txn["status"] is None
    if example.get("amount") is not None:
        assert (txn["amount"], txn["currency"]) == (
            int(example.get("amount")), example.get("currency"))
    else:
        assert (txn["trans_amount"], txn["trans_currency"]) == (
            int(example.get("trans_amount")), example.get("trans_currency"))
    assert txn["ipn_url"] == example.get("ipn_url")
    assert txn["callback_url_success"] == example.get("callback_url_success")
    if example.get("goods") is not None:
        assert txn["goods"]["data"][0]["name"] == "Battery Power Pack"
    if example.get("consumer[first_name]") is not None:
        assert txn["extra"]["consumer"]["first_name"] == "Liu"
    if example.get("timeout") is not None:
        assert txn["expiry_time"] == sim.clock.format(
            sim.clock.time() + int(example.get("timeout")))


@pytest.mark.parametrize("example", examples("pay"))
async def test_pay_example(client, sim, example):
    documented = urlsplit(RESPONSES["pay"][0])
    assert documented.path == "/u_landing"
    assert TXN_ID.match(documented.query.removeprefix("q="))
    await check_created(client, sim, example, documented.path)


@pytest.mark.parametrize("example", examples("pay_qr"))
async def test_pay_qr_example(client, sim, example):
    documented = urlsplit(RESPONSES["pay_qr"][0])
    assert documented.path == "/payment/qr"
    assert TXN_ID.match(documented.query.removeprefix("q="))
    await check_created(client, sim, example, documented.path)


@pytest.mark.parametrize("example", examples("inquire"))
async def test_inquire_example(client, sim, example):
    reference = "53d19ef2377c7b91db3664f26"
    txn_id = await create(client, "pay_qr", reference=reference, vendor="alipay",
                          trans_amount=10, trans_currency="CNY", amount="")
    await pay(client, txn_id)
    resp = await send(client, example, transaction_id=txn_id, reference=reference)
    body = await resp.json()
    assert resp.status == 200, body
    documented = documented_json("inquire", 0)
    assert_same_shape(body, documented)
    assert body["id"] == txn_id
    assert body["type"] == "charge"
    assert (body["trans_amount"], body["trans_currency"]) == (10, "CNY")
    assert body["reference"] == reference
    assert body["status"] == "success"
    assert body["note"] == "null"  # production's string for "no note", as documented
    assert TIME.match(body["time"])
    assert body["time"] == sim.clock.format(sim.clock.time())


@pytest.mark.parametrize("example", examples("capture"))
async def test_capture_example(client, sim, example):
    reference = "34564645646"
    txn_id = await create(client, "pay", vendor="klarna", amount=4000, currency="USD",
                          auto_capture="false", reference=reference)
    assert (await pay(client, txn_id))["status"] == "authorized"
    resp = await send(client, example, transaction_id=txn_id, reference=reference)
    body = await resp.json()
    assert resp.status == 200, body
    assert_same_shape(body, documented_json("capture", 0))
    assert body["transaction_id"] == txn_id
    assert body["type"] == "capture"
    assert (body["amount"], body["currency"]) == (4000, "USD")
    assert body["notify_result"] == "success"
    assert body["reference"] == reference
    assert body["time"] == sim.clock.format(sim.clock.time())
    assert (await inspect(client, txn_id))["status"] == "success"
    # Capturing again fails with the documented error envelope.
    again = await send(client, example, transaction_id=txn_id, reference=reference)
    failure = await again.json()
    assert again.status == 400
    assert set(failure) == set(documented_json("capture", 1)) == {"result", "code", "message"}
    assert failure["result"] == "fail" and isinstance(failure["code"], int)


@pytest.mark.parametrize("example", examples("refund"))
async def test_refund_example(client, sim, example):
    # A payment of exactly one minor unit on the side the example refunds, with the
    # example's reference: the example refunds it in full, and a second time is too much.
    if example.get("trans_currency") is not None:
        side = {"vendor": "alipay_hk", "amount": "", "trans_amount": 1,
                "trans_currency": example.get("trans_currency")}
    else:
        side = {"vendor": "alipay", "amount": 1, "currency": example.get("currency")}
    reference = example.get("transaction_reference") or "test_citcon_001"
    txn_id = await create(client, "pay_qr", reference=reference, **side)
    await pay(client, txn_id)

    resp = await send(client, example, transaction_id=txn_id)
    body = await resp.json()
    assert resp.status == 200, body
    documented = documented_json("refund", 0)
    assert set(body) == set(documented)
    assert TXN_ID.match(body["id"]) and body["id"] != txn_id
    assert body == {"id": body["id"], "transaction_id": txn_id, "refunded": True,
                    "status": "success"}
    txn = await inspect(client, txn_id)
    assert [r["note"] for r in txn["refunds"]] == ["test"]  # the examples' reason=test
    assert txn["status"] == "success"

    again = await send(client, example, transaction_id=txn_id)
    assert again.status == 200
    assert await again.json() == documented_json("refund", 1) == {
        "refunded": False, "status": "refund amount greater than payment amount"}


@pytest.mark.parametrize("example", examples("cancel"))
async def test_cancel_example(client, sim, example):
    reference = "test_citcon"
    txn_id = await create(client, "pay_qr", reference=reference)
    await pay(client, txn_id)
    resp = await send(client, example, transaction_id=txn_id, reference=reference)
    body = await resp.json()
    assert resp.status == 200, body
    documented = documented_json("cancel", 0)
    assert set(body) == set(documented)
    assert body == {"transaction_id": txn_id, "transaction_reference": reference,
                    "cancelled": True, "status": "Order cancelled"}
    assert (await inspect(client, txn_id))["status"] == "cancelled"


@pytest.mark.parametrize("example", examples("cancel"))
async def test_cancel_example_for_an_unknown_transaction(client, example):
    resp = await send(client, example, transaction_id=UNKNOWN_ID, reference="no-such-order")
    assert resp.status == 200
    assert await resp.json() == documented_json("cancel", 1) == {
        "transaction_id": None, "transaction_reference": None, "cancelled": False,
        "status": "Invalid transaction"}
