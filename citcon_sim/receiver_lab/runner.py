"""The receiver lab's run: make each check's gateway transaction, build its notification
with the simulator's own IPN encoder for the face, POST it to the merchant's receiver and
judge the answer (and the receiver's calls back to the gateway).

The gateway is any :class:`Gateway`: a :class:`~citcon_sim.Simulator` the lab drives
directly (:class:`LabGateway`: one it serves itself, :func:`lab_gateway`, or one a test
already runs, ``citcon_sim.testing.check_receiver(..., gateway=server)``), or a simulator
running elsewhere, driven over HTTP (``citcon_sim.remote.lab``, ``check-receiver --url``).
Its transactions carry no ``ipn_url``, so the simulator posts nothing itself: every
notification the receiver gets comes from the lab, and every inquire it makes is in the
gateway's request journal.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aiohttp
import msgspec
from aiohttp import web

from citcon_sim.config import Config
from citcon_sim.delivery.ipn import USER_AGENT, Encoding, IpnFacts, PostResult, post_form
from citcon_sim.domain.commands import Money, PaymentCommand
from citcon_sim.domain.ledger import Transaction
from citcon_sim.domain.signing import sign_ipn, sign_upi_ipn
from citcon_sim.domain.vendors import get_vendor
from citcon_sim.receiver_lab.checks import BY_ID, CHECKS, FACES, Check, Expect, Setup
from citcon_sim.receiver_lab.report import CheckResult, Outcome, ReceiverReport
from citcon_sim.simulator import Simulator
from citcon_sim.web.app import create_app

T = TypeVar("T")

AMOUNT, CURRENCY, VENDOR = 1000, "USD", "alipay"
TAMPERED_AMOUNT = 1  # what a cheat would rather have paid
NOTE = "citcon-sim receiver lab"
# A correct signature, but another merchant's: any token that is not the merchant's.
OTHER_TOKEN = "citcon-sim-lab-another-merchant"
EXTRA_FIELD = ("lab_unsigned", "not listed in fields")
MISSING_FIELD = "amount"
# An answer slower than this share of the IPN timeout fails reply-time.
SLOW_SHARE = 0.5
# Each face's signature over a ``fields``-listed body (the encoders' own functions),
# for the one notification the lab must sign itself: the one missing a listed field.
SIGNERS: dict[str, Callable[[Mapping[str, object], str], str]] = {
    "online": sign_ipn, "chop": sign_ipn, "upi": sign_upi_ipn,
}


@dataclass(frozen=True)
class Order:
    """A check's gateway transaction, handed to ``prepare`` before its notification is
    sent (a test can create the matching order in the merchant's database)."""

    check: str
    transaction_id: str
    reference: str
    amount: int
    currency: str
    state: str  # paid | pending | failed | none (the gateway has no such transaction)


Prepare = Callable[[Order], Awaitable[None] | None]


@dataclass(frozen=True)
class Notice:
    """A check's notification: its gateway transaction, the body and how it is posted."""

    order: Order
    form: dict[str, Any]
    encoding: Encoding


class Gateway(Protocol):
    """The simulator whose transactions the notifications are about, as the run needs it.

    ``declared``: the receiver was told to call this gateway, so not inquiring is advice
    rather than unknown.
    """

    @property
    def base_url(self) -> str: ...

    @property
    def declared(self) -> bool: ...

    @property
    def ipn_timeout(self) -> float: ...

    async def notice(self, token: str, face: str, check: Check) -> Notice:
        """Make the check's transaction (in the state it needs) and its notification."""
        ...

    async def journal_mark(self) -> int | None:
        """The newest journaled call's ``seq`` (0: none yet); None when the gateway keeps
        no journal (inquiries cannot be seen)."""
        ...

    async def inquiries(self, token: str, order: Order, since: int) -> int:
        """The merchant's inquire calls about ``order`` journaled after ``since``."""
        ...


@dataclass(frozen=True)
class LabGateway:
    """A simulator in this process, driven directly.

    ``run`` runs a function on the simulator's event loop (it may live in another
    thread).
    """

    simulator: Simulator
    base_url: str
    run: Callable[[Callable[[], Any]], Awaitable[Any]]
    declared: bool = False

    @property
    def ipn_timeout(self) -> float:
        return self.simulator.config.ipn_timeout

    async def notice(self, token: str, face: str, check: Check) -> Notice:
        made: Notice = await self.run(
            functools.partial(_notice, self.simulator, token, face, check))
        return made

    async def journal_mark(self) -> int | None:
        if self.simulator.config.journal_size <= 0:
            return None
        mark: int = await self.run(functools.partial(_journal_mark, self.simulator))
        return mark

    async def inquiries(self, token: str, order: Order, since: int) -> int:
        seen: int = await self.run(
            functools.partial(_inquiries, self.simulator, token, order, since))
        return seen


async def _here(fn: Callable[[], T]) -> T:
    return fn()


@contextlib.asynccontextmanager
async def lab_gateway(port: int = 0, host: str = "127.0.0.1",
                      config: Config | None = None) -> AsyncIterator[LabGateway]:
    """Serve a fresh simulator on ``host:port`` (0: a free port) on this event loop for
    the length of a lab run. A port chosen by the caller counts as declared: the
    receiver is expected to call it."""
    config = config or Config(frozen_clock=True, host=host, port=port)
    sim = Simulator(config)
    runner = web.AppRunner(create_app(sim), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        sim.bound_url = f"http://{shown}:{bound}"
        yield LabGateway(sim, sim.bound_url, _here, declared=port != 0)
    finally:
        await runner.cleanup()


# -- building notifications (on the simulator's loop) ----------------------------------


def shadow_payment(sim: Simulator, token: str, face: str, check: Check,
                   reference: str) -> Transaction:
    """The check's payment made in ``sim``'s ledger, in the state the check needs (for
    ``none``, under an id and reference the gateway never issued; the pending original
    stays behind, unused)."""
    ledger = sim.ledger
    cmd = PaymentCommand(
        method="pay_qr", vendor=get_vendor(VENDOR, face), reference=reference,
        settlement=Money(AMOUNT, CURRENCY), transaction=None, allow_duplicates=True,
        note=NOTE, face=face)
    txn, _ = ledger.create_payment(ledger.merchant(token), cmd)
    if check.setup is Setup.PAID:
        txn = ledger.consumer_pay(txn.id)
    elif check.setup is Setup.FAILED:
        txn = ledger.consumer_fail(txn.id)
    elif check.setup is Setup.NONE:
        txn = msgspec.structs.replace(txn, id=ledger.ids.transaction(face),
                                      reference=reference + "-unknown")
    return txn


def lab_reference(check: Check) -> str:
    return f"lab-{check.id}-{secrets.token_hex(4)}"


def _notice(sim: Simulator, token: str, face: str, check: Check) -> Notice:
    """The check's gateway transaction in ``sim`` and its notification."""
    txn = shadow_payment(sim, token, face, check, lab_reference(check))
    return encode_notice(sim, token, face, check, txn,
                         sim.clock.format(txn.paid_at or sim.clock.time()))


def encode_notice(sim: Simulator, token: str, face: str, check: Check, txn: Transaction,
                  time: str, partner_id: str | None = None) -> Notice:
    """``txn``'s notification, encoded by the face's own encoder in ``sim`` (as the
    simulator would post it), then altered as the check says. ``time``: when it was
    paid (or now), as the gateway's clock shows it; ``partner_id``: the gateway's for
    the merchant [default: ``sim``'s]."""
    ledger = sim.ledger
    settings = ledger.merchants[txn.token].settings
    encoder = sim.ipn.encoders[face]
    # The facts IpnSender.notify states for a payment, with the status the check claims:
    # the sender notifies only paid transactions, and the lab needs unpaid ones too.
    facts = IpnFacts(
        transaction=txn, notify_id=ledger.ids.notify(),
        status="fail" if check.setup is Setup.FAILED else "success", time=time,
        amount=txn.amount, trans_amount=txn.trans_amount,
        partner_id=partner_id or settings.partner_id)
    signing_token = {"forged-signature": "", "other-merchant-token": OTHER_TOKEN}.get(
        check.id, token)
    form = dict(encoder.encode(facts, signing_token, None))
    encoding = encoder.encoding(settings)
    if check.id == "uppercase-signature":
        form["sign"] = str(form["sign"]).upper()
    elif check.id == "extra-unsigned-field":
        form[EXTRA_FIELD[0]] = EXTRA_FIELD[1]
    elif check.id == "tampered-amount":
        form["amount"] = (TAMPERED_AMOUNT if isinstance(form["amount"], int)
                          else str(TAMPERED_AMOUNT))
    elif check.id == "missing-field":
        del form[MISSING_FIELD]
        form["sign"] = SIGNERS[face](form, token)  # as if it were empty
    elif check.id == "other-encoding":
        encoding = "form" if encoding == "json" else "json"
    order = Order(check.id, txn.id, txn.reference, txn.amount, txn.currency,
                  check.setup.value)
    return Notice(order, form, encoding)


def _journal_mark(sim: Simulator) -> int:
    newest = sim.journal.query(limit=1)
    return newest[0].seq if newest else 0


def _inquiries(sim: Simulator, token: str, order: Order, since: int) -> int:
    """The merchant's inquire calls about ``order`` recorded after ``since``."""
    return sum(
        1 for e in sim.journal.query(token=token, path="inquire", limit=sim.journal.capacity)
        if e.seq > since and (e.transaction_id == order.transaction_id
                              or e.params.get("reference") == order.reference))


# -- judging ---------------------------------------------------------------------------


def _result(check: Check, outcome: Outcome, detail: str, sent: PostResult | None = None,
            order: Order | None = None) -> CheckResult:
    if outcome is Outcome.FAIL and not check.required:
        outcome = Outcome.ADVICE
    if sent is None:
        return CheckResult(check, outcome, detail,
                           transaction_id=order.transaction_id if order else None)
    return CheckResult(check, outcome, detail, sent.status, sent.body, sent.error,
                       sent.latency_ms, order.transaction_id if order else None)


def _said(sent: PostResult) -> str:
    if sent.status is None:
        error = sent.error or ""
        return f"no answer ({error if len(error) <= 60 else error[:59] + '…'})"
    return f"HTTP {sent.status} {sent.body.strip()[:40]!r}"


def judge(check: Check, sent: PostResult, valid: PostResult | None) -> tuple[Outcome, str]:
    """The outcome of one sent check from its answer (and the valid notification's)."""
    if check.expect is Expect.ACK:
        if sent.ok:
            return Outcome.PASS, f"acknowledged: {_said(sent)}"
        return Outcome.FAIL, f"not acknowledged: {_said(sent)}; Citcon would resend it"
    if check.expect is Expect.DECIDE:
        if sent.ok:
            return Outcome.PASS, f"accepted ({_said(sent)}): a case-insensitive compare"
        if sent.status is not None and 400 <= sent.status < 500:
            return Outcome.PASS, f"refused ({_said(sent)}): a strict compare"
        return Outcome.FAIL, f"{_said(sent)}: neither accepted nor deliberately refused"
    # REFUSE: judged against the valid notification's answer.
    if valid is None or not valid.ok:
        return (Outcome.NOT_JUDGED, "the valid notification was not acknowledged, so a "
                "refusal here shows nothing")
    if sent.status is None:
        return Outcome.FAIL, f"{_said(sent)}: refuse with a 4xx rather than fall silent"
    if not sent.ok:
        note = "" if sent.status < 500 else " (a 5xx: a 4xx says it was deliberate)"
        return Outcome.PASS, f"refused: {_said(sent)}{note}"
    if sent.body.strip() != valid.body.strip():
        return (Outcome.PASS, f"refused with a 2xx: {_said(sent)} differs from the valid "
                "notification's answer (whether it acted on it cannot be seen)")
    return Outcome.FAIL, f"accepted: {_said(sent)}, as it answered the valid notification"


# -- the run ---------------------------------------------------------------------------


async def run_lab(url: str, token: str, face: str = "online", *, gateway: Gateway,
                  timeout: float | None = None, prepare: Prepare | None = None
                  ) -> ReceiverReport:
    """POST the battery to the receiver at ``url`` (``token``: the merchant's token, the
    UPI private key on the ``upi`` face) and judge it.

    ``timeout`` (wall seconds per answer) defaults to the gateway's ``ipn_timeout``.
    ``prepare`` is called (and awaited, if it returns an awaitable) with each check's
    :class:`Order` before its notification is sent.
    """
    if face not in FACES:
        raise ValueError(f"face must be one of {', '.join(FACES)}, not {face!r}")
    if not url.startswith(("http://", "https://")):
        raise ValueError("the receiver URL must be an http:// or https:// URL")
    if not token:
        raise ValueError("a merchant token is needed to sign the notifications")
    limit = timeout if timeout is not None else gateway.ipn_timeout
    results: dict[str, CheckResult] = {}
    answers: list[tuple[str, PostResult]] = []
    valid: Notice | None = None
    valid_sent: PostResult | None = None
    inquired = 0
    mark: int | None = None

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True), headers={"User-Agent": USER_AGENT},
    ) as session:

        async def send(notice: Notice) -> PostResult:
            sent = await post_form(session, url, notice.form, limit, notice.encoding)
            answers.append((notice.order.check, sent))
            return sent

        for check in CHECKS:
            if not check.applies(face):
                results[check.id] = _result(check, Outcome.NOT_APPLICABLE, check.not_on[face])
                continue
            if check.expect is Expect.OBSERVE:
                continue  # judged after the run
            if check.setup is Setup.SAME:
                if valid is None:
                    continue
                if check.id == "replay":
                    continue  # sent last, after every other check
                notice = valid
            else:
                notice = await gateway.notice(token, face, check)
                if prepare is not None:
                    done = prepare(notice.order)
                    if inspect.isawaitable(done):
                        await done
            if check.id == "valid":  # its inquiries are those journaled after this
                mark = await gateway.journal_mark()
            sent = await send(notice)
            if check.id == "valid":
                valid, valid_sent = notice, sent
                if mark is not None:
                    inquired = await gateway.inquiries(token, notice.order, mark)
            outcome, detail = judge(check, sent, valid_sent)
            results[check.id] = _result(check, outcome, detail, sent, notice.order)
        if valid is not None:
            replay = BY_ID["replay"]
            sent = await send(valid)
            outcome, detail = judge(replay, sent, valid_sent)
            results["replay"] = _result(replay, outcome, detail, sent, valid.order)

    for check in CHECKS:
        if check.id == "inquiry":
            results[check.id] = _inquiry_result(check, gateway, inquired, mark is not None,
                                                valid.order if valid else None)
        elif check.id == "reply-time":
            results[check.id] = _reply_time(check, answers, limit)
    return ReceiverReport(url, face, gateway.base_url, limit,
                          tuple(results[c.id] for c in CHECKS if c.id in results))


def _inquiry_result(check: Check, gateway: Gateway, inquired: int, journal_on: bool,
                    order: Order | None) -> CheckResult:
    if order is None:
        return _result(check, Outcome.NOT_JUDGED, "no valid notification was sent")
    if not journal_on:
        return _result(check, Outcome.NOT_JUDGED, "the gateway's request journal is off "
                       "(--journal-size 0)", order=order)
    if inquired:
        return _result(check, Outcome.PASS, f"inquired {inquired} time(s) at "
                       f"{gateway.base_url} before answering", order=order)
    if gateway.declared:
        return _result(check, Outcome.ADVICE, f"answered the valid notification without "
                       f"inquiring at {gateway.base_url}", order=order)
    return _result(check, Outcome.NOT_JUDGED, f"no inquire reached the lab's gateway at "
                   f"{gateway.base_url}; the receiver may use another gateway (give it this "
                   "one with --gateway-port, or use its own with --url, to judge)",
                   order=order)


def _reply_time(check: Check, answers: list[tuple[str, PostResult]],
                limit: float) -> CheckResult:
    if not answers:
        return _result(check, Outcome.NOT_JUDGED, "nothing was sent")
    silent = [(cid, a) for cid, a in answers if a.status is None]
    if silent:
        cid, a = silent[0]
        return _result(check, Outcome.FAIL, f"{cid}: {_said(a)}", a)
    cid, slowest = max(answers, key=lambda pair: pair[1].latency_ms)
    share = slowest.latency_ms / (limit * 1000)
    detail = (f"slowest answer {slowest.latency_ms:.0f} ms ({cid}), {share:.0%} of the "
              f"{limit:g} s timeout")
    if share > SLOW_SHARE:
        return _result(check, Outcome.FAIL, detail + f": over {SLOW_SHARE:.0%}", slowest)
    return _result(check, Outcome.PASS, detail, slowest)
