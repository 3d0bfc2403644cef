"""The README's IPN verification snippets (examples/ipn-verify/), each run in its own
language against real IPNs from a running simulator: the raw body a merchant's endpoint
received must verify, and the same body tampered with (or checked with another token)
must not. The README shows each file exactly as it is (compared here, docs against code).

A language whose runtime is missing is skipped, saying which (.ci/run installs php-cli,
nodejs and a JDK from Debian packages where they are absent).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode
from urllib.request import Request, urlopen

import pytest

from citcon_sim import SimulatorServer, verify_ipn, verify_upi_ipn

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "ipn-verify"
TOKEN = "snippet-token-0123456789"
UPI_KEY = "sk-snippet-0123456789abcdef"


# -- a merchant's IPN endpoint that keeps the raw bodies ------------------------------------


@dataclass
class RawReceiver:
    url: str = ""
    bodies: list[tuple[str, bytes]] = field(default_factory=list)  # (content type, body)


@pytest.fixture(scope="module")
def receiver() -> Iterator[RawReceiver]:
    received = RawReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.bodies.append((self.headers.get("Content-Type", ""), body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received.url = f"http://127.0.0.1:{server.server_address[1]}/ipn"
    yield received
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


def post(sim: SimulatorServer, path: str, headers: dict[str, str],
         form: dict[str, str] | None = None, body: object = None) -> dict[str, object]:
    data = urlencode(form).encode() if form is not None else json.dumps(body).encode()
    ctype = "application/x-www-form-urlencoded" if form is not None else "application/json"
    with urlopen(Request(sim.url_for(path), data, {**headers, "Content-Type": ctype})) as resp:
        answer: dict[str, object] = json.load(resp)
    return answer


def received_ipn(sim: SimulatorServer, receiver: RawReceiver, txn_id: str) -> bytes:
    """Pay ``txn_id`` as the consumer and answer the raw body its IPN posted."""
    before = len(receiver.bodies)
    sim.pay(txn_id)
    assert sim.wait_for_ipn(txn_id)["state"] == "delivered"
    assert len(receiver.bodies) == before + 1
    return receiver.bodies[-1][1]


@pytest.fixture(scope="module")
def online_ipn(sim: SimulatorServer, receiver: RawReceiver) -> bytes:
    # A note with characters a form must escape: the rule signs the decoded values.
    created = post(sim, "/payment/pay_qr", {"Authorization": f"Bearer {TOKEN}"}, {
        "vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "order-1",
        "note": "2 × tea & cake = 10%", "ipn_url": receiver.url, "response_format": "json"})
    body = received_ipn(sim, receiver, str(created["transaction_id"]))
    assert receiver.bodies[-1][0].startswith("application/x-www-form-urlencoded")
    return body


@pytest.fixture(scope="module")
def chop_ipn(sim: SimulatorServer, receiver: RawReceiver) -> bytes:
    created = post(sim, "/chop/chop", {"Authorization": f"Bearer {TOKEN}"}, {
        "payment_method": "wechatpay", "amount": "2599", "currency": "USD",
        "reference": "chop-1", "ipn_url": receiver.url})
    return received_ipn(sim, receiver, str(created["transaction_id"]))


@pytest.fixture(scope="module")
def upi_ipn(sim: SimulatorServer, receiver: RawReceiver) -> bytes:
    token = sim.upi_access_token(UPI_KEY)
    created = post(sim, "/v1/charges", {"Authorization": f"Bearer {token}"}, body={
        "transaction": {"reference": "upi-1", "amount": 1500, "currency": "USD",
                        "country": "US"},
        "payment": {"method": "alipay", "client": ["desktop"]},
        "urls": {"ipn": receiver.url, "success": "https://shop.example/ok",
                 "fail": "https://shop.example/fail"}})
    data = created["data"]
    assert isinstance(data, dict)
    body = received_ipn(sim, receiver, str(data["id"]))
    assert receiver.bodies[-1][0].startswith("application/json")
    return body


# -- the snippets -----------------------------------------------------------------------------


def runtime(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (.ci/run installs it from Debian packages)")
    return found


@pytest.fixture(scope="session")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """VerifyIpn compiled once per session (javac takes about a second)."""
    javac = runtime("javac")
    out = tmp_path_factory.mktemp("java")
    subprocess.run([javac, "-d", str(out), str(EXAMPLES / "java" / "VerifyIpn.java")],
                   check=True, capture_output=True, timeout=120)
    return out


def md5_command(language: str, request: pytest.FixtureRequest) -> list[str]:
    if language == "python":
        return [sys.executable, str(EXAMPLES / "python" / "verify_ipn.py")]
    if language == "php":
        return [runtime("php"), str(EXAMPLES / "php" / "verify_ipn.php")]
    if language == "node":
        return [runtime("node"), str(EXAMPLES / "node" / "verify_ipn.js")]
    java = runtime("java")
    classes: Path = request.getfixturevalue("java_classes")
    return [java, "-cp", str(classes), "VerifyIpn"]


def verdict(command: list[str], body: bytes, env: dict[str, str]) -> str:
    """What the snippet says about ``body``: its output, checked against its exit code."""
    done = subprocess.run(command, input=body, capture_output=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **env})
    said = done.stdout.decode().strip()
    assert (said, done.returncode) in (("valid", 0), ("invalid", 1)), done
    return said


def _decoded(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode(), keep_blank_values=True))


def tamper(body: bytes, key: bytes, value: bytes) -> bytes:
    """``body`` with the value of ``key`` replaced, everything else as posted."""
    tampered, count = re.subn(rb"(^|&)" + key + rb"=[^&]*", rb"\g<1>" + key + b"=" + value,
                              body)
    assert count == 1 and tampered != body
    return tampered


# javac and four JVM starts take seconds: java runs with the slow tests (full `pytest`).
LANGUAGES = ["python", "php", "node", pytest.param("java", marks=pytest.mark.slow)]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("face", ["online", "chop"])
def test_each_language_verifies_a_real_md5_ipn(
    language: str, face: str, request: pytest.FixtureRequest
) -> None:
    body: bytes = request.getfixturevalue(f"{face}_ipn")
    command = md5_command(language, request)
    form = _decoded(body)
    assert verify_ipn(form, TOKEN)  # the library agrees
    assert verdict(command, body, {"CITCON_TOKEN": TOKEN}) == "valid"
    assert verdict(command, body, {"CITCON_TOKEN": TOKEN + "x"}) == "invalid"
    assert verdict(command, tamper(body, b"amount", form["amount"].encode() + b"0"),
                   {"CITCON_TOKEN": TOKEN}) == "invalid"
    assert verdict(command, tamper(body, b"sign", b"0" * 32), {"CITCON_TOKEN": TOKEN}) \
        == "invalid"
    # A listed field left out is refused, not signed as empty.
    fewer = b"&".join(p for p in body.split(b"&") if not p.startswith(b"currency="))
    assert verdict(command, fewer, {"CITCON_TOKEN": TOKEN}) == "invalid"


def test_the_online_ipn_signs_decoded_values(online_ipn: bytes) -> None:
    """The note travels %-encoded; the signature is over the decoded text (what each
    snippet's form parser hands over), so escaping mistakes fail the tests above."""
    assert b"%" in online_ipn and _decoded(online_ipn)["note"] == "2 × tea & cake = 10%"


UPI_COMMANDS = {
    "python": lambda: [sys.executable, str(EXAMPLES / "python" / "verify_upi_ipn.py")],
    "node": lambda: [runtime("node"), str(EXAMPLES / "node" / "verify_upi_ipn.js")],
}


@pytest.mark.parametrize("language", sorted(UPI_COMMANDS))
def test_each_upi_snippet_verifies_a_real_sha256_ipn(language: str, upi_ipn: bytes) -> None:
    command = UPI_COMMANDS[language]()
    data = json.loads(upi_ipn)
    assert verify_upi_ipn(data, UPI_KEY)
    key = {"CITCON_PRIVATE_KEY": UPI_KEY}
    assert verdict(command, upi_ipn, key) == "valid"
    assert verdict(command, upi_ipn, {"CITCON_PRIVATE_KEY": UPI_KEY + "x"}) == "invalid"
    changed = json.dumps({**data, "amount": data["amount"] + 1}).encode()
    assert verdict(command, changed, key) == "invalid"
    resigned_as_md5 = json.dumps({**data, "sign": data["sign"][:32]}).encode()
    assert verdict(command, resigned_as_md5, key) == "invalid"


# -- the README shows the files as they are -----------------------------------------------------

_TITLED_BLOCK = re.compile(r'^```\w+ title="(examples/ipn-verify/[^"]+)"\n(.*?)^```$',
                           re.MULTILINE | re.DOTALL)


def test_the_docs_show_every_snippet_exactly() -> None:
    shown: dict[str, str] = {}
    for doc in ("README.md", "docs/upi.md"):
        for path, code in _TITLED_BLOCK.findall((ROOT / doc).read_text(encoding="utf-8")):
            shown[path] = code
    files = {str(p.relative_to(ROOT)) for p in EXAMPLES.rglob("*") if p.is_file()}
    assert set(shown) == files
    for path, code in shown.items():
        assert code == (ROOT / path).read_text(encoding="utf-8"), f"{path} differs"
