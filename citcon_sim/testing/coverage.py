"""Behaviour coverage: which gateway behaviours a merchant's test suite made happen.

Line coverage says which of the merchant's lines ran; it cannot say that the suite never
saw a QR expire, a refund refused for the day's open balance, or an IPN retried after the
merchant's endpoint failed. :data:`CATALOGUE` lists the behaviours an integration with
Citcon should survive, each with the API faces it applies to. A :class:`Recorder` watches
simulators while tests run (their event bus live, their request journal after each test)
and attributes each behaviour it sees to the test that was running. The pytest plugin
prints the report (``--citcon-sim-coverage``), writes JSON and can fail the session under
a threshold (``--citcon-sim-coverage-fail-under=N``).

Only faces the suite used count (a suite that never calls UPI is not told it missed UPI's
captures), unless ``--citcon-sim-coverage-faces`` names them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from citcon_sim.delivery.ipn import FAILED, Notification
from citcon_sim.domain.errors import NotFound
from citcon_sim.domain.events import (
    ConsumerReturned,
    IpnChanged,
    Refused,
    TransactionChanged,
)
from citcon_sim.domain.ledger import Ledger, Transaction

if TYPE_CHECKING:
    from citcon_sim.faces.journal import JournalEntry
    from citcon_sim.testing import SimulatorServer

ALL_FACES = ("online", "chop", "upi")
_CAPTURING = ("online", "upi")  # CHOP has no capture call


class Behaviour(msgspec.Struct, frozen=True):
    """One thing the gateway can do to a merchant, and why a suite should have seen it."""

    id: str
    title: str
    why: str
    faces: tuple[str, ...] = ALL_FACES


CATALOGUE: tuple[Behaviour, ...] = (
    Behaviour("paid_ipn_acknowledged", "paid, IPN acknowledged",
              "The happy path: the payment is paid and the merchant's endpoint answers its "
              "notification with 2xx."),
    Behaviour("qr_expired", "QR expired unpaid",
              "Most QR payments are never scanned; the order must not wait forever."),
    Behaviour("consumer_failed", "consumer's payment failed",
              "Wallets decline; the order must end as failed, not stay pending."),
    Behaviour("consumer_abandoned", "consumer abandoned the wallet page",
              "The consumer closes the wallet; the order must be released."),
    Behaviour("fail_redirect", "consumer sent back to the fail URL",
              "The browser lands on the shop's fail page: it must show the order failed, "
              "not paid, and offer a retry."),
    Behaviour("cancel_pending", "cancel while pending",
              "The shop cancels an order nobody paid yet."),
    Behaviour("cancel_paid", "cancel after payment, inside the window",
              "A cancel of a paid payment is a full reversal: the money goes back."),
    Behaviour("cancel_window_refused", "cancel refused outside the window",
              "After the vendor's cancel window only a refund works; the shop must switch."),
    Behaviour("duplicate_cancel", "duplicate cancellation",
              "A retried cancel answers \"Duplicate cancellation\", which is not a failure."),
    Behaviour("partial_refund", "partial refund",
              "Refunding part of an order leaves the rest refundable."),
    Behaviour("full_refund", "full refund", "The whole payment goes back."),
    Behaviour("several_refunds", "several refunds on one payment",
              "Refunds add up; the shop must track what is left."),
    Behaviour("over_refund_refused", "over-refund refused",
              "A refund past what is left is refused; the shop must show why."),
    Behaviour("open_balance_refused", "refund refused by the day's open balance",
              "Citcon refunds only out of the day's charges; early-morning refunds fail."),
    Behaviour("refund_unpaid_refused", "refund of an unpaid payment refused",
              "Refunding before the payment succeeded is refused."),
    Behaviour("capture", "authorised, then captured",
              "Delayed-capture payments are only authorised until the shop captures.",
              _CAPTURING),
    Behaviour("multi_capture", "several captures of one authorisation",
              "Klarna ships in parts: each shipment captures its share.", _CAPTURING),
    Behaviour("over_capture_refused", "over-capture refused",
              "Capturing more than was authorised is refused.", _CAPTURING),
    Behaviour("ipn_retried", "IPN retried after an error",
              "The merchant's endpoint failed once; the retry must be handled the same."),
    Behaviour("ipn_given_up", "IPN never acknowledged",
              "Every retry failed: only an inquiry tells the shop the order was paid."),
    Behaviour("duplicate_ipn", "duplicate IPN",
              "The same notification arrives twice; it must be applied once."),
    Behaviour("failure_ipn", "IPN saying the payment failed",
              "A correctly signed failure notice must be acknowledged, not answered 500 "
              "for ever, and must not mark the order paid."),
    Behaviour("forged_ipn", "forged or tampered IPN",
              "A notification whose signature does not verify must not mark anything paid."),
    Behaviour("stale_ipn", "out-of-date IPN",
              "A notification older than the shop's view of the order must not undo it."),
    Behaviour("inquired", "payment inquired",
              "An IPN can be lost or forged; the shop confirms by inquiring."),
    Behaviour("unauthorized", "request refused as unauthorized (401)",
              "A wrong or rotated token must be reported, not retried for ever."),
    Behaviour("request_refused", "request refused as invalid (4xx)",
              "The gateway's error answer must reach the shop's logs intact."),
    Behaviour("gateway_error", "gateway error (5xx) or dropped connection",
              "Citcon's hosts fail now and then; the shop must not lose the order."),
    # The scenario surprises after the end (docs/scenarios.md).
    Behaviour("late_confirm", "surprise: paid after it expired or was cancelled",
              "The wallet confirmed as the order closed: the money was taken; refund it."),
    Behaviour("paid_twice", "surprise: one QR paid twice",
              "Two paid transactions for one order: the second must be refunded, not lost."),
    Behaviour("ipn_amount_differs", "surprise: a valid IPN with another amount",
              "The signature holds; only comparing the amount with the order catches it."),
    Behaviour("ipn_before_answer", "surprise: the IPN before the API answer",
              "The notice names an order the shop has not stored yet; it must not be lost."),
    Behaviour("rate_limited", "surprise: 429 with Retry-After",
              "The rate limiter in front of the API says when to retry; hammering fails."),
    Behaviour("cdn_error", "surprise: the CDN's HTML 5xx page",
              "Not the API's JSON: a parser that expects JSON must fail cleanly."),
    Behaviour("truncated_body", "surprise: a truncated answer after the work",
              "The payment exists though the answer is broken: inquire, don't pay again."),
    Behaviour("timeout_after_work", "surprise: the call timed out, yet happened",
              "A retry must not charge twice: look the payment up by its reference first."),
)
_JOURNAL_TAGS = frozenset({"ipn_before_answer", "rate_limited", "cdn_error",
                           "truncated_body", "timeout_after_work"})

_REFUSALS = {
    ("refund", "over_refund"): "over_refund_refused",
    ("refund", "no_open_balance"): "open_balance_refused",
    ("refund", "not_paid"): "refund_unpaid_refused",
    ("cancel", "cancel_window"): "cancel_window_refused",
    ("cancel", "duplicate_cancel"): "duplicate_cancel",
    ("capture", "over_capture"): "over_capture_refused",
}


def _merchant_refunds(txn: Transaction) -> list[Any]:
    return [r for r in txn.refunds or () if not r.by_cancel]


def transaction_behaviours(event: TransactionChanged) -> list[str]:
    """What one transaction change shows."""
    txn, kind = event.transaction, event.kind
    last_logged = txn.events[-1][1] if txn.events else None
    if kind == "created" and last_logged == "paid_twice":
        return ["paid_twice"]  # the second payment of the same QR
    if kind in ("paid", "authorized"):
        logged = txn.events or []
        return ["late_confirm"] if len(logged) >= 2 and logged[-2][1] == "late_confirm" \
            else []
    if kind == "expired":
        return ["qr_expired"]
    if kind == "failed":
        return ["consumer_failed"]
    if kind == "cancelled":
        last = txn.events[-1] if txn.events else None
        if last is not None and (last[2] or {}).get("by") == "consumer":
            return ["consumer_abandoned"]
        return ["cancel_paid" if txn.paid_at is not None else "cancel_pending"]
    if kind == "refunded" and not getattr(event.detail, "by_cancel", False):
        found = ["full_refund" if txn.refunded_amount >= txn.paid_amount else "partial_refund"]
        if len(_merchant_refunds(txn)) >= 2:
            found.append("several_refunds")
        return found
    if kind == "captured":
        return ["multi_capture" if len(txn.captures or ()) >= 2 else "capture"]
    return []


def ipn_behaviours(notification: Notification) -> list[str]:
    """What one ended IPN delivery attempt shows."""
    attempts = notification.attempts
    if not attempts:
        return []
    last = attempts[-1]
    found: list[str] = []
    script = notification.script
    if notification.event == "stale":
        found.append("stale_ipn")
    forged = script is not None and bool(script.bad_signature or script.tamper_amount)
    if forged:
        found.append("forged_ipn")  # sent: whatever the answer, the suite saw one
    says_failed = script is not None and script.status == "fail"
    if last.ok and says_failed:
        found.append("failure_ipn")
    if last.ok:
        if notification.event in ("paid", "captured") and not (says_failed or forged):
            found.append("paid_ipn_acknowledged")
        if any(not a.ok for a in attempts[:-1]):
            found.append("ipn_retried")
        if sum(a.ok for a in attempts) >= 2 or last.trigger in ("duplicate", "redeliver"):
            found.append("duplicate_ipn")
    if notification.state == FAILED:
        found.append("ipn_given_up")
    if script is not None and script.amount_differs:
        found.append("ipn_amount_differs")
    return found


def journal_behaviours(entry: JournalEntry) -> list[str]:
    """What one merchant call, as the journal kept it, shows."""
    found = [tag for tag in (entry.surprise or "").split(",") if tag in _JOURNAL_TAGS]
    return found + _by_status(entry)


def _by_status(entry: JournalEntry) -> list[str]:
    status = entry.status
    if status == 401:
        return ["unauthorized"]
    if status >= 500 or status == 499:
        return ["gateway_error"]
    if 400 <= status < 500:
        return ["request_refused"]
    if entry.endpoint == "inquire" and status == 200:
        return ["inquired"]
    return []


class Hit(msgspec.Struct, frozen=True):
    behaviour: str
    face: str
    test: str


class Report(msgspec.Struct, frozen=True):
    """The behaviours of the faces in scope, each with the tests that showed it."""

    faces: tuple[str, ...]
    rows: tuple[tuple[Behaviour, str, tuple[str, ...]], ...]  # behaviour, face, tests

    @property
    def covered(self) -> int:
        return sum(1 for _, _, tests in self.rows if tests)

    @property
    def percent(self) -> float:
        return 100.0 * self.covered / len(self.rows) if self.rows else 100.0

    def missing(self) -> list[tuple[Behaviour, str]]:
        return [(b, face) for b, face, tests in self.rows if not tests]

    def as_json(self) -> dict[str, Any]:
        return {
            "faces": list(self.faces),
            "covered": self.covered,
            "total": len(self.rows),
            "percent": round(self.percent, 1),
            "behaviours": [
                {"id": b.id, "face": face, "title": b.title, "why": b.why,
                 "covered": bool(tests), "tests": list(tests)}
                for b, face, tests in self.rows
            ],
        }

    def format(self) -> str:
        """The terminal report: per face, what was seen (by how many tests) and what not."""
        if not self.faces:
            return ("citcon-sim behaviour coverage: no simulator was used by these tests "
                    "(or no face was called).")
        lines = [f"citcon-sim behaviour coverage: {self.covered}/{len(self.rows)} "
                 f"({self.percent:.0f}%) on {', '.join(self.faces)}"]
        width = max(len(b.title) for b, _, _ in self.rows)
        for face in self.faces:
            lines.append(f"  {face}:")
            for b, f, tests in self.rows:
                if f != face:
                    continue
                if tests:
                    n = len(tests)
                    lines.append(f"    ok    {b.title:<{width}}  {n} test{'s' * (n != 1)}")
                else:
                    lines.append(f"    MISS  {b.title:<{width}}  {b.why}")
        return "\n".join(lines)


class Recorder:
    """Watches simulators and attributes each behaviour to the running test.

    Events arrive on the simulator's thread, the test id is set on the test's thread: a
    lock keeps the hits consistent. ``current`` is the pytest node id (or any label)."""

    def __init__(self, faces: Iterable[str] | None = None) -> None:
        self.current = "(outside a test)"
        self.only_faces = tuple(faces) if faces else None
        self._hits: set[Hit] = set()
        self._faces_used: set[str] = set()
        self._lock = threading.Lock()
        self._journal_seen: dict[int, int] = {}  # id(server) → last journal seq read
        self._attached: dict[int, tuple[SimulatorServer, list[Callable[[], None]]]] = {}

    # -- what is seen -----------------------------------------------------------------------

    def hit(self, behaviour: str, face: str) -> None:
        with self._lock:
            self._hits.add(Hit(behaviour, face, self.current))
            self._faces_used.add(face)

    def used(self, face: str) -> None:
        with self._lock:
            self._faces_used.add(face)

    def _on_transaction(self, event: TransactionChanged) -> None:
        self.used(event.transaction.face)
        for behaviour in transaction_behaviours(event):
            self.hit(behaviour, event.transaction.face)

    def _on_ipn(self, event: IpnChanged, ledger: Ledger) -> None:
        if event.kind != "attempted":
            return
        notification: Notification = event.notification
        try:  # the transaction states the face; the notification names only its id
            face = ledger.get(notification.transaction_id).face
        except NotFound:
            return
        for behaviour in ipn_behaviours(notification):
            self.hit(behaviour, face)

    def _on_refused(self, event: Refused) -> None:
        behaviour = _REFUSALS.get((event.operation, event.rule))
        if behaviour is not None and event.transaction is not None:
            self.hit(behaviour, event.transaction.face)

    def _on_returned(self, event: ConsumerReturned) -> None:
        if event.outcome == "fail":
            self.hit("fail_redirect", event.transaction.face)

    # -- simulators -------------------------------------------------------------------------

    def attach(self, server: SimulatorServer) -> None:
        """Watch a started server's simulator (idempotent)."""
        if id(server) in self._attached:
            return
        sim = server.simulator
        bus = sim.events
        unsubscribe = [
            bus.subscribe(TransactionChanged, self._on_transaction),
            # sim.ledger, not the ledger of now: a reset installs a new one.
            bus.subscribe(IpnChanged, lambda e: self._on_ipn(e, sim.ledger)),
            bus.subscribe(Refused, self._on_refused),
            bus.subscribe(ConsumerReturned, self._on_returned),
        ]
        self._attached[id(server)] = (server, unsubscribe)
        self._journal_seen[id(server)] = 0

    def detach(self, server: SimulatorServer) -> None:
        """Read what is left of its journal and stop watching it."""
        self.harvest(server)
        _, unsubscribe = self._attached.pop(id(server), (server, []))
        for stop in unsubscribe:
            stop()
        self._journal_seen.pop(id(server), None)

    def harvest(self, server: SimulatorServer) -> None:
        """Read the journal entries written since the last harvest (before it is cleared)."""
        if id(server) not in self._attached or not server.running:
            return
        seen = self._journal_seen[id(server)]

        def newer() -> list[JournalEntry]:
            journal = server.simulator.journal
            return journal.query(limit=journal.capacity, after=seen)
        entries = server.call(newer)
        for entry in entries:
            self.used(entry.face)
            for behaviour in journal_behaviours(entry):
                self.hit(behaviour, entry.face)
        if entries:
            self._journal_seen[id(server)] = max(e.seq for e in entries)

    def harvest_all(self) -> None:
        for server, _ in list(self._attached.values()):
            self.harvest(server)

    # -- the report -------------------------------------------------------------------------

    def report(self) -> Report:
        with self._lock:
            hits, used = set(self._hits), set(self._faces_used)
        faces = self.only_faces or tuple(f for f in ALL_FACES if f in used)
        tests: dict[tuple[str, str], set[str]] = {}
        for h in hits:
            tests.setdefault((h.behaviour, h.face), set()).add(h.test)
        rows = tuple(
            (b, face, tuple(sorted(tests.get((b.id, face), ()))))
            for face in faces for b in CATALOGUE if face in b.faces
        )
        return Report(faces, rows)
