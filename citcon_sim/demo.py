"""``citcon-sim serve --demo``: a realistic, reproducible history for offline demos.

Five merchants (names, domains, customers and orders from faker) on the three API faces,
nineteen wallets and eight currencies, over five days of the virtual clock that end at
the start time: payments paid, declined, abandoned, expired and cancelled;
authorisations captured (Klarna in parts), voided or still open; partial and full
refunds; reversals. Everything goes through the ledger's own commands at the virtual
time it happens, so every money rule holds and the timeline, open balances and IPNs are
the ones a real run would leave.

IPNs go through the real sender (its queue, workers, retry schedule on the virtual clock
and attempt log), with one difference: while the history is generated, the sender posts
through :class:`DemoEndpoints` instead of the network. The merchants' ``ipn_url`` are
under ``.example`` (reserved: they never resolve), and each endpoint answers as
:func:`_shops` plans: ``200`` normally, and during its outages a refused connection, a 503
or a timeout, so some notifications are delivered after retries and one outage outlasts the
whole schedule (those fail). Outages end early enough that every notification is settled
when the history ends: nothing is posted to those addresses afterwards unless someone
redelivers by hand (which then fails for real: the name does not resolve).

Same seed, start time, time zone and frozen clock (``--frozen-clock --start-time``), and
``--seed`` for the ids: the same history, byte for byte (for one installed faker version:
faker does not promise the same names across its releases).
"""

from __future__ import annotations

import heapq
import itertools
import random
import zlib
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
from faker import Faker

from citcon_sim.delivery.ipn import Encoding, PostResult
from citcon_sim.domain.clock import ClockExport
from citcon_sim.domain.commands import (
    CaptureCommand,
    Lookup,
    Money,
    PaymentCommand,
    RefundCommand,
)
from citcon_sim.domain.errors import CitconError
from citcon_sim.domain.ledger import Merchant, Status, Transaction
from citcon_sim.domain.merchants import MerchantSettings
from citcon_sim.domain.money import exponent
from citcon_sim.domain.netrules import Allowlist
from citcon_sim.domain.redaction import token_hint
from citcon_sim.domain.vendors import VENDORS, Vendor

if TYPE_CHECKING:
    from citcon_sim.simulator import Simulator

DAYS = 5  # of history, ending at the start time
DAY = 24 * 3600
HOUR = 3600
PER_DAY = (5, 8)  # payments per merchant per day, at least and at most
DEFAULT_SEED = 1


class Shop(msgspec.Struct, frozen=True):
    """A demo merchant: the face it integrates, what it sells in, what its buyers use,
    and how healthy its IPN endpoint is (``outage``: (from, to, how) in seconds after the
    history starts)."""

    face: str
    settlement: str
    vendors: tuple[str, ...]
    prices: tuple[int, int]  # major units, at least and at most
    outages: tuple[tuple[float, float, str], ...] = ()


def _shops(schedule: float) -> list[Shop]:
    """The five demo merchants. One endpoint goes down for longer than the whole retry
    schedule (``schedule`` seconds: those IPNs fail), two have short outages (their IPNs
    are delivered on a retry)."""
    return [
        Shop("online", "USD", ("alipay", "wechatpay", "upop", "klarna", "alipay_hk"),
             (12, 240), outages=((1 * DAY + 10 * HOUR, 1 * DAY + 12 * HOUR, "503"),)),
        Shop("chop", "HKD", ("alipay_hk", "alipay", "wechatpay", "jkopay", "gcash", "dana"),
             (80, 1600),
             outages=((2 * DAY + 7 * HOUR, 2 * DAY + 11 * HOUR + schedule, "refused"),)),
        Shop("online", "KRW", ("kakaopay", "card", "banktransfer", "payco", "naverpay"),
             (9000, 250000)),
        Shop("online", "JPY", ("paypay", "linepay", "rakutenpay", "alipay"), (800, 30000)),
        Shop("upi", "USD", ("paypal", "venmo", "cashapppay", "klarna", "alipay", "wechatpay"),
             (5, 150), outages=((3 * DAY + 14 * HOUR, 3 * DAY + 14 * HOUR + 1200,
                                 "timeout"),)),
    ]


class DemoEndpoints:
    """The demo merchants' IPN endpoints, answering as planned (the sender's ``post``).
    Outcomes depend only on the endpoint and the virtual time: reproducible, offline."""

    def __init__(self, sim: Simulator, start: float) -> None:
        self.sim, self.start = sim, start
        self.outages: dict[str, tuple[tuple[float, float, str], ...]] = {}

    async def post(self, session: aiohttp.ClientSession, url: str, fields: Mapping[str, Any],
                   timeout: float, encoding: Encoding) -> PostResult:
        now = self.sim.clock.time()
        host = url.split("/")[2]
        # A latency that looks measured, the same on every run.
        jitter = zlib.crc32(f"{url} {now} {sorted(fields.items())}".encode()) % 1000
        for start, end, how in self.outages.get(url, ()):
            if self.start + start <= now < self.start + end:
                if how == "refused":
                    return PostResult(None, "", f"ClientConnectorError: Cannot connect to "
                                      f"host {host}:443 [Connect call failed]",
                                      round(1 + jitter / 500, 1))
                if how == "timeout":
                    return PostResult(None, "", f"timeout after {timeout:g} s",
                                      round(timeout * 1000, 1))
                return PostResult(503, "Service Temporarily Unavailable", None,
                                  round(20 + jitter / 20, 1))
        return PostResult(200, "success" if encoding == "form" else '{"received":true}', None,
                          round(30 + jitter / 10, 1))


class _Plan:
    """Actions at virtual times (seconds after the history starts), run in time order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], object]]] = []
        self._seq = itertools.count()

    def at(self, when: float, action: Callable[[], object]) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), action))

    def pop(self) -> tuple[float, Callable[[], object]] | None:
        if not self._heap:
            return None
        when, _, action = heapq.heappop(self._heap)
        return when, action


async def populate(sim: Simulator, seed: int | None = None, days: int = DAYS) -> int:
    """Fill ``sim`` (empty, its IPN workers running) with ``days`` of history ending at
    its clock's present time; returns how many transactions it made."""
    if seed is None:
        seed = sim.config.demo_seed if sim.config.demo_seed is not None else (
            sim.config.seed if sim.config.seed is not None else DEFAULT_SEED)
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    end = sim.clock.time()
    # Midnight (in the simulator's zone) ``days`` days before the end, so every day of
    # the history is whole and its open balance starts at nothing.
    first = datetime.fromtimestamp(end, sim.tz).replace(hour=0, minute=0, second=0,
                                                        microsecond=0) - timedelta(days=days)
    start = first.timestamp()
    sim.clock.load(ClockExport(start))
    endpoints = DemoEndpoints(sim, start)
    history = _History(sim, rng, fake, start, end - start)
    for shop in _shops(sum(sim.ipn.backoff) + HOUR):
        merchant, ipn_url = history.merchant(shop)
        endpoints.outages[ipn_url] = shop.outages
        history.payments(shop, merchant, ipn_url, days)
    # The stand-in endpoints are posted to from memory: no --ipn-allow check (it would
    # resolve their names) applies to them.
    real_post, sim.ipn.post = sim.ipn.post, endpoints.post
    real_allow, sim.ipn.allow = sim.ipn.allow, Allowlist()
    try:
        while (step := history.plan.pop()) is not None:
            when, action = step
            await _advance_to(sim, start + when)
            action()
            await sim.ipn.drain()  # this moment's IPN attempts, before time moves on
        await _advance_to(sim, end)
    finally:
        sim.ipn.post, sim.ipn.allow = real_post, real_allow
    return history.made


async def _advance_to(sim: Simulator, target: float) -> None:
    """Move the clock to ``target``, stopping at each scheduled job on the way (an IPN
    retry) and letting its attempt happen at its own virtual time."""
    while True:
        due = sim.scheduler.next_due()
        stop = target if due is None or due > target else due
        if stop > sim.clock.time():
            sim.advance(stop - sim.clock.time())
        else:
            sim.scheduler.run_due()
        await sim.ipn.drain()
        if stop >= target:
            return


class _History:
    """The demo's merchants and payments, planned from the seed."""

    def __init__(self, sim: Simulator, rng: random.Random, fake: Faker, start: float,
                 span: float) -> None:
        self.sim, self.rng, self.fake = sim, rng, fake
        self.start, self.span = start, span
        self.plan = _Plan()
        self.made = 0
        self.orders = itertools.count(rng.randrange(10000, 90000))
        self._hints: set[str] = set()

    def merchant(self, shop: Shop) -> tuple[Merchant, str]:
        name = self.fake.unique.company()
        domain = f"{self.fake.unique.domain_word()}.example"
        while True:  # hints (the console's, the dashboard's) tell the merchants apart
            token = f"{domain.split('.')[0]}-demo-{self.rng.getrandbits(24):06x}"
            if token_hint(token) not in self._hints:
                break
        self._hints.add(token_hint(token))
        settings = MerchantSettings.lenient(token)
        merchant = self.sim.ledger.enrol(Merchant(msgspec.structs.replace(
            settings, name=name, settlement_currency=shop.settlement)))
        return merchant, f"https://{domain}/citcon/ipn"

    def payments(self, shop: Shop, merchant: Merchant, ipn_url: str, days: int) -> None:
        rng = self.rng
        for day in range(days):
            for _ in range(rng.randint(*PER_DAY)):
                at = day * DAY + rng.uniform(8 * HOUR, 21 * HOUR)
                self.plan.at(at, self._create(shop, merchant, ipn_url, at))
        for start, _, _ in shop.outages:  # one sure payment while its endpoint is down
            if start + HOUR < self.span:
                at = start + rng.uniform(0, HOUR)
                self.plan.at(at, self._create(shop, merchant, ipn_url, at, sure=True))

    # -- one payment and what happens to it ---------------------------------------------

    def _create(self, shop: Shop, merchant: Merchant, ipn_url: str, at: float,
                sure: bool = False) -> Callable[[], None]:
        rng, fake = self.rng, self.fake
        vendor = VENDORS[rng.choice(shop.vendors)]
        major = rng.randint(*shop.prices)
        amount = major * 10 ** exponent(shop.settlement)
        if exponent(shop.settlement) and rng.random() < 0.7:
            amount += rng.choice((0, 50, 95, 99)) if rng.random() < 0.5 else rng.randrange(100)
        order = next(self.orders)
        customer = fake.name()
        cmd = PaymentCommand(
            method="pay_qr" if shop.face == "online" and vendor.qr_scan and rng.random() < 0.4
            else "pay",
            vendor=vendor, reference=f"order-{order}",
            settlement=Money(amount, shop.settlement), transaction=None,
            timeout=1800 if shop.face == "upi" else rng.choice((300, 600, 900)),
            note=f"{customer}: {fake.catch_phrase().lower()}",
            ipn_url=ipn_url,
            callback_url_success=f"{ipn_url.rsplit('/', 2)[0]}/orders/{order}/thanks",
            goods={"data": [{"name": fake.bs().capitalize(), "quantity": rng.randint(1, 3)}]},
            extra={"bank": rng.choice(sorted(vendor.banks))} if vendor.banks else {},
            face=shop.face,
        )
        fate = self._fate(vendor, at, sure)

        def create() -> None:
            txn, _ = self.sim.ledger.create_payment(merchant, cmd)
            self.made += 1
            fate(merchant, txn)

        return create

    def _fate(self, vendor: Vendor, at: float, sure: bool = False
              ) -> Callable[[Merchant, Transaction], None]:
        """What the consumer and the merchant then do, drawn now (the seed's order);
        ``sure``: the consumer pays."""
        rng = self.rng
        roll = 1.0 if sure else rng.random()
        pay_after = rng.uniform(20, 240)
        left = self.span - at  # seconds of history after the payment is created
        if left < pay_after + 60:
            return lambda merchant, txn: None  # still open when the history ends
        if roll < 0.08:
            return self._later(pay_after, lambda m, t: self._consumer(t, "fail"))
        if roll < 0.14:
            return lambda merchant, txn: self.plan.at(  # not paid: the QR runs out
                txn.expires_at - self.start + 1, lambda: self._refresh(txn))
        if roll < 0.17:
            return self._later(pay_after, lambda m, t: self._consumer(t, "cancel"))
        if roll < 0.19:
            return self._later(pay_after, lambda m, t: self._cancel(m, t))
        # Paid (or authorised): then perhaps captured, refunded or cancelled, later the
        # same day mostly (a refund is checked against the day's open balance).
        follow_up = rng.uniform(HOUR, 3 * HOUR)
        then = rng.random()
        parts = vendor.multi_capture  # Klarna: captured as it ships, in two parts
        share = rng.choice((0.2, 0.25, 0.4, 0.5))

        def after_paid(merchant: Merchant, txn: Transaction) -> None:
            if txn.status is Status.AUTHORIZED:
                if then < 0.12 or left < pay_after + follow_up:
                    return  # left authorised
                if then < 0.2:
                    self.plan.at(at + pay_after + follow_up,
                                 lambda: self._cancel(merchant, txn))  # voided
                    return
                self.plan.at(at + pay_after + follow_up,
                             lambda: self._capture(merchant, txn, share if parts else None))
                if parts:
                    self.plan.at(at + pay_after + 2 * follow_up,
                                 lambda: self._capture(merchant, txn, None, last=True))
                return
            if left < pay_after + follow_up:
                return
            if then < 0.14:
                self.plan.at(at + pay_after + follow_up,
                             lambda: self._refund(merchant, txn, share))
            elif then < 0.24:
                self.plan.at(at + pay_after + follow_up,
                             lambda: self._refund(merchant, txn, 1.0))
            elif then < 0.28:
                self.plan.at(at + pay_after + follow_up / 3,
                             lambda: self._cancel(merchant, txn))  # a reversal

        return self._later(pay_after, lambda m, t: self._pay(m, t, after_paid))

    def _later(self, delay: float, action: Callable[[Merchant, Transaction], object]
               ) -> Callable[[Merchant, Transaction], None]:
        def schedule(merchant: Merchant, txn: Transaction) -> None:
            self.plan.at(txn.created_at - self.start + delay, lambda: action(merchant, txn))
        return schedule

    # -- the operations, through the ledger's own commands --------------------------------

    def _pay(self, merchant: Merchant, txn: Transaction,
             then: Callable[[Merchant, Transaction], None]) -> None:
        if self._consumer(txn, "pay"):
            then(merchant, txn)

    def _consumer(self, txn: Transaction, action: str) -> bool:
        reason = self.rng.choice(("declined by issuer", "insufficient funds",
                                  "risk control", "payment password attempts exceeded"))
        try:
            self.sim.ledger.consumer_act(txn.id, action, reason)
        except CitconError:  # expired meanwhile: the history keeps what the ledger says
            return False
        return True

    def _refresh(self, txn: Transaction) -> None:
        self.sim.ledger.refresh(txn)

    def _cancel(self, merchant: Merchant, txn: Transaction) -> None:
        self.sim.ledger.cancel(merchant, Lookup(txn.id, None))

    def _capture(self, merchant: Merchant, txn: Transaction, share: float | None,
                 last: bool = False) -> None:
        multi = txn.vendor.multi_capture and (share is not None or last)
        amount = None if share is None else max(1, int(txn.amount * share))
        try:
            self.sim.ledger.capture(merchant, CaptureCommand(
                Lookup(txn.id, None), amount, multi, last and multi))
        except CitconError:  # cancelled meanwhile
            pass

    def _refund(self, merchant: Merchant, txn: Transaction, share: float) -> None:
        left = txn.paid_amount - txn.refunded_amount
        amount = left if share >= 1 else max(1, int(txn.paid_amount * share))
        if amount <= 0 or amount > left:
            return
        self.sim.ledger.refund(merchant, RefundCommand(
            Lookup(txn.id, None), Money(amount, txn.currency), None,
            note=self.rng.choice(("customer request", "item out of stock", "damaged in transit",
                                  "duplicate order", "wrong size")),
            reference=f"refund-{txn.reference}-{len(txn.refunds or ()) + 1}"
            if txn.face == "upi" else None))
