"""What the load generator sends: one ``Workload`` per table row.

A workload is a fixed HTTP request, except that ``{n}`` in its body is replaced by a
per-request counter (behind a per-run prefix), so that every pay_qr create carries a
fresh merchant reference and really creates a transaction. The same definitions drive
wrk (through a generated Lua script) and the in-repo asyncio client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

TOKEN = "bench-merchant-token"
FORM = "application/x-www-form-urlencoded"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": FORM}

# A realistic pay_qr body: what a shop backend sends for a checkout (about 250 bytes).
# ``{n}`` makes the reference, the note and the return URL unique per request.
PAY_QR_BODY = (
    "vendor=alipay&amount=1000&currency=USD&reference=order-{n}"
    "&ipn_url=https%3A%2F%2Fshop.example.com%2Fcitcon%2Fipn"
    "&callback_url_success=https%3A%2F%2Fshop.example.com%2Fcheckout%2Fdone%3Forder%3D{n}"
    "&callback_url_fail=https%3A%2F%2Fshop.example.com%2Fcheckout%2Ffailed"
    "&note=order+{n}&timeout=600"
)
# The big paid payment the refund row refunds one cent at a time (USD 1,000,000.00: far
# more than a run can refund; the amount avoids the magic 9901-9909 endings).
BIG_PAYMENT_AMOUNT = 100_000_000


@dataclass(frozen=True)
class Workload:
    name: str  # the table row
    method: str
    path: str  # with its query string
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""  # may hold "{n}"

    @property
    def unique(self) -> bool:
        return "{n}" in self.body

    def body_for(self, prefix: str, n: int) -> str:
        return self.body.replace("{n}", f"{prefix}{n}") if self.unique else self.body

    def http_request(self, host: str, body: str) -> bytes:
        """The raw HTTP/1.1 keep-alive request the asyncio client writes."""
        encoded = body.encode()
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        if self.method != "GET" or encoded:
            lines.append(f"Content-Length: {len(encoded)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + encoded


def baseline() -> Workload:
    # The same kind of body the simulator rows parse: a small urlencoded form.
    return Workload("baseline (aiohttp form hello)", "POST", "/hello", {"Content-Type": FORM},
                    "vendor=alipay&amount=1000&currency=USD&reference=order-1")


def pay_qr_create() -> Workload:
    return Workload("pay_qr create", "POST", "/payment/pay_qr", AUTH, PAY_QR_BODY)


def inquire(txn_id: str) -> Workload:
    return Workload("inquire", "POST", "/payment/inquire", AUTH,
                    urlencode({"transaction_id": txn_id}))


def qr_png(txn_id: str) -> Workload:
    return Workload("QR PNG GET (same txn)", "GET", f"/payment/qr?{urlencode({'q': txn_id})}")


def refund(txn_id: str) -> Workload:
    body = urlencode({"transaction_id": txn_id, "amount": "1", "currency": "USD",
                      "reason": "benchmark partial refund"})
    return Workload("refund (partial, 1 cent)", "POST", "/payment/refund", AUTH, body)


def wallet_page(txn_id: str) -> Workload:
    return Workload("wallet page GET", "GET", f"/u_landing?{urlencode({'q': txn_id})}")
