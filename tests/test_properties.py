"""Property-based tests of the ledger's money rules and state machine (no HTTP).

``LedgerMachine`` drives one ledger through random sequences of merchant calls (create,
refund, capture, cancel), consumer actions (pay, fail, abandon, expire) and clock moves
(small steps, long jumps past timeouts and cancellation windows, midnight roll-overs),
across several strict-mode merchants, some of them exempt from the open-balance rule.
It keeps its own model of every transaction and of each merchant's open balance for the
day, predicts the outcome of every call, and after every step checks the invariants:

* refunded <= captured <= authorised, on the settlement and the transaction side;
* each merchant's open balance = the day's charges and captures minus the day's refunds;
* statuses only move along ``TRANSITIONS``;
* no merchant finds, inquires, refunds, captures or cancels another's transactions;
* ``refunds_by_id`` and the transactions' refund lists agree.

Refusals (``CitconError`` subclasses, or a refund/cancel answered ``False``) are
legitimate outcomes, but only when the model predicts them. The side of a refund or
capture that the ledger derives by rounding is not predicted digit for digit: it must
fit in what is left, be exactly the rest when the stated side takes the rest, and keep
the running totals at the transaction's own rate (the no-drift invariant).

``DstLedgerMachine`` runs the same on a clock whose zone skips a midnight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from citcon_sim.domain.clock import VirtualClock
from citcon_sim.domain.commands import Lookup
from citcon_sim.domain.errors import (
    BadRequest,
    CitconError,
    NotFound,
    TransitionError,
    Unauthorized,
)
from citcon_sim.domain.ids import IdFactory
from citcon_sim.domain.ledger import (
    CANCEL_DUPLICATE,
    CANCEL_OK,
    CANCEL_WINDOW,
    INVALID_TRANSACTION,
    REFUND_CANCELLED,
    REFUND_CURRENCY,
    REFUND_NO_BALANCE,
    REFUND_NOT_PAID,
    REFUND_OVER_PAID,
    TRANSITIONS,
    Ledger,
    Merchant,
    Refund,
    Status,
    Transaction,
)
from citcon_sim.domain.merchants import MerchantSettings
from citcon_sim.domain.money import DEFAULT_FX, FxTable, exponent, proportional
from citcon_sim.domain.vendors import DAY, VENDORS, accepted_by
from citcon_sim.faces.online import requests

from .helpers import START, examples

pytestmark = [
    pytest.mark.slow,
    # Hypothesis's failure report imports a module that warns; with warnings as errors that
    # would hide a falsifying example behind an INTERNALERROR.
    pytest.mark.filterwarnings("ignore:mypy_extensions:DeprecationWarning"),
]

MERCHANTS: dict[str, MerchantSettings] = {
    s.token: s
    for s in (
        MerchantSettings("shop-usd", "300000001"),
        MerchantSettings("shop-usd-exempt", "300000002", refund_exempt=True,
                         cancel_windows={"alipay": 0, "klarna": 600}),
        MerchantSettings("shop-jpy", "300000003", settlement_currency="JPY",
                         cancel_windows={"card": 60, "linepay": 3600}),
        MerchantSettings("shop-krw-exempt", "300000004", settlement_currency="KRW",
                         refund_exempt=True),
    )
}
STRANGER = "not-a-merchant"  # strict mode: every call with this token is refused
CALLERS = [*MERCHANTS, STRANGER]
OWNER = "owner"  # caller choice: the transaction's own merchant
REFERENCES = ["order-1", "order-2", "order-3", "shared"]
# CLP has no rate in the FX table: creating with it needs no conversion or is refused.
CURRENCIES = ["USD", "JPY", "KRW", "HKD", "CNY", "BHD", "EUR", "CLP"]
MISSING_ID = "U0000000001-00000000000000000000"

amounts = st.one_of(
    st.integers(1, 100), st.integers(101, 100_000), st.integers(100_001, 10**9)
)
callers = st.sampled_from([OWNER] * 8 + CALLERS)
lookups = st.sampled_from(["id", "id", "reference", "reference", "missing"])
# A transaction to act on: usually one in a state where the action can succeed.
picks = st.tuples(st.integers(0, 10**6), st.integers(0, 3))


@dataclass
class Model:
    """What the ledger should hold for one transaction."""

    id: str
    token: str
    reference: str
    vendor: str
    auto_capture: bool
    amount: int
    currency: str
    trans_amount: int
    trans_currency: str
    expires_at: float
    status: Status = Status.PENDING
    seen: Status = Status.PENDING  # the ledger's status at the last check
    paid_at: float | None = None
    captured: int = 0
    captured_trans: int = 0
    capture_open: bool = False
    refunded: int = 0
    refunded_trans: int = 0


class LedgerMachine(RuleBasedStateMachine):
    zone: tzinfo = UTC  # of the clock, hence of the open-balance day
    start = START

    def __init__(self) -> None:
        super().__init__()
        self.clock = VirtualClock(self.start, frozen=True, tz=self.zone)
        self.fx = FxTable()
        self.ledger = Ledger(self.clock, fx=self.fx, ids=IdFactory(7),
                             merchants=dict(MERCHANTS))
        self.models: list[Model] = []
        self.balances: dict[str, dict[str, int]] = {t: {} for t in MERCHANTS}
        self.day = self.clock.day()
        self.refund_owner: dict[str, str] = {}  # refund id -> merchant token

    # -- model helpers -------------------------------------------------------------

    def now(self) -> float:
        return self.clock.time()

    def pick(self, pick: tuple[int, int], wanted: Callable[[Model], bool]) -> Model:
        """Usually a transaction ``wanted`` accepts (if any); one time in four, any."""
        index, anything = pick
        fitting = [m for m in self.models if wanted(m)]
        pool = fitting if fitting and anything else self.models
        return pool[index % len(pool)]

    def caller_for(self, choice: str, model: Model) -> str:
        return model.token if choice == OWNER else choice

    def lookup_for(self, how: str, model: Model) -> Lookup:
        if how == "id":
            return Lookup(model.id, None)
        if how == "reference":
            return Lookup(None, model.reference)
        return Lookup(MISSING_ID, None)

    def merchant(self, token: str) -> Merchant:
        """The ledger's merchant; a stranger's token must be refused in strict mode."""
        if token == STRANGER:
            with pytest.raises(Unauthorized):
                self.ledger.merchant(token)
            raise _Refused
        return self.ledger.merchant(token)

    def find(
        self, token: str, lookup: Lookup, prefer: Callable[[Model], bool]
    ) -> Model | None:
        """The model's own idea of which transaction a merchant's lookup names."""
        mine = [m for m in self.models if m.token == token]
        if lookup.transaction_id is not None:
            found = next((m for m in mine if m.id == lookup.transaction_id), None)
            if found is not None and lookup.reference not in (None, found.reference):
                return None
            return found
        candidates = [m for m in mine if m.reference == lookup.reference]
        for m in reversed(candidates):
            if prefer(m):
                return m
        return candidates[-1] if candidates else None

    def move_balance(self, token: str, currency: str, delta: int) -> None:
        day = self.balances[token]
        day[currency] = day.get(currency, 0) + delta

    def clock_moved(self) -> None:
        now = self.now()
        for m in self.models:
            if m.status is Status.PENDING and now >= m.expires_at:
                m.status = Status.EXPIRED
        if self.clock.day() != self.day:
            self.day = self.clock.day()
            self.balances = {t: {} for t in MERCHANTS}

    def window(self, m: Model) -> int:
        return MERCHANTS[m.token].cancel_windows.get(m.vendor, VENDORS[m.vendor].cancel_window)

    # -- merchant API --------------------------------------------------------------

    @initialize(payments=st.lists(
        st.tuples(st.sampled_from(sorted(MERCHANTS)),
                  st.sampled_from(["alipay", "klarna", "card", "linepay", "kakaopay"]),
                  amounts, st.sampled_from(REFERENCES), st.booleans()),
        max_size=4,
    ))
    def paid_payments(self, payments: list[tuple[str, str, int, str, bool]]) -> None:
        """Start with a few payments made (or authorised) this morning."""
        for token, vendor, amount, reference, auto_capture in payments:
            self.create(token, vendor, "settlement", amount, amount, "own", reference,
                        True, auto_capture, 3600, "pay")
            self.pay(self.models[-1])

    @rule(
        caller=st.sampled_from([*MERCHANTS, *MERCHANTS, STRANGER]),
        vendor=st.sampled_from(sorted(accepted_by("online"))),
        side=st.sampled_from(["settlement", "transaction", "both"]),
        amount=amounts,
        other_amount=amounts,
        currency=st.sampled_from(["own", "own", *CURRENCIES]),
        reference=st.sampled_from(REFERENCES),
        allow_duplicates=st.booleans(),
        auto_capture=st.booleans(),
        timeout=st.sampled_from([1, 60, 300, 3600, 2 * DAY]),
        method=st.sampled_from(["pay", "pay_qr"]),
    )
    def create(
        self, caller: str, vendor: str, side: str, amount: int, other_amount: int,
        currency: str, reference: str, allow_duplicates: bool, auto_capture: bool,
        timeout: int, method: str,
    ) -> None:
        v = VENDORS[vendor]
        params: dict[str, Any] = {
            "vendor": vendor, "reference": reference, "timeout": str(timeout),
            "allow_duplicates": "yes" if allow_duplicates else "no",
            "auto_capture": "true" if auto_capture else "false",
        }
        settings_ = MERCHANTS.get(caller)
        if side in ("settlement", "both"):
            own = settings_.settlement_currency if settings_ else "USD"
            params.update(amount=str(amount), currency=own if currency == "own" else currency)
        if side in ("transaction", "both"):
            cur = v.currency if currency == "own" or side == "both" else currency
            params.update(trans_amount=str(other_amount if side == "both" else amount),
                          trans_currency=cur)
        cmd = requests.parse_payment(params, method)
        try:
            merchant = self.merchant(caller)
        except _Refused:
            return
        assert settings_ is not None
        before = len(self.ledger.by_id)
        existing = [m for m in self.models if m.token == caller and m.reference == reference]
        if existing and not allow_duplicates:
            txn, created = self.ledger.create_payment(merchant, cmd)
            assert not created
            assert txn.id == existing[-1].id  # the most recent one with that reference
            assert len(self.ledger.by_id) == before
            return
        # The expected sides: what was sent, the other derived by the FX table.
        try:
            if cmd.settlement is not None:
                settlement = (cmd.settlement.amount, cmd.settlement.currency)
                trans = (cmd.transaction.amount, cmd.transaction.currency) if cmd.transaction \
                    else (max(1, self.fx.convert(*settlement, v.currency)), v.currency)
            else:
                assert cmd.transaction is not None
                trans = (cmd.transaction.amount, cmd.transaction.currency)
                cur = settings_.settlement_currency
                settlement = (max(1, self.fx.convert(*trans, cur)), cur)
        except BadRequest:  # no FX rate: the ledger must refuse too, and add nothing
            with pytest.raises(BadRequest):
                self.ledger.create_payment(merchant, cmd)
            assert len(self.ledger.by_id) == before
            return
        txn, created = self.ledger.create_payment(merchant, cmd)
        assert created
        assert txn.id not in {m.id for m in self.models}
        assert txn.token == caller and txn.reference == reference
        assert (txn.amount, txn.currency) == settlement
        assert (txn.trans_amount, txn.trans_currency) == trans
        assert txn.amount > 0 and txn.trans_amount > 0
        assert txn.status is Status.PENDING
        assert txn.auto_capture == (auto_capture or not v.delayed_capture)
        self.models.append(Model(
            id=txn.id, token=caller, reference=reference, vendor=vendor,
            auto_capture=txn.auto_capture, amount=txn.amount, currency=txn.currency,
            trans_amount=txn.trans_amount, trans_currency=txn.trans_currency,
            expires_at=self.now() + timeout,
        ))

    @precondition(lambda self: self.models)
    @rule(pick=picks, caller=callers, how=lookups,
          side=st.sampled_from(["settlement", "transaction"]),
          size=st.sampled_from(["remainder", "over", "half", "one", "any", "wrong-currency"]),
          amount=amounts)
    def refund(
        self, pick: tuple[int, int], caller: str, how: str, side: str, size: str, amount: int
    ) -> None:
        picked = self.pick(pick, lambda m: m.status is Status.SUCCESS)
        token = self.caller_for(caller, picked)
        lookup = self.lookup_for(how, picked)
        settlement_side = side == "settlement"
        left = (picked.captured - picked.refunded if settlement_side
                else picked.captured_trans - picked.refunded_trans)
        requested = {"remainder": left, "over": left + 1, "half": left // 2, "one": 1,
                     "any": amount, "wrong-currency": amount}[size]
        requested = max(1, requested)
        currency = picked.currency if settlement_side else picked.trans_currency
        if size == "wrong-currency":
            currency = next(c for c in CURRENCIES
                            if c not in (picked.currency, picked.trans_currency))
        params: dict[str, Any] = {"reason": "property test"}
        if lookup.transaction_id is not None:
            params["transaction_id"] = lookup.transaction_id
        else:
            params["transaction_reference"] = lookup.reference
        if settlement_side:
            params.update(amount=str(requested), currency=currency)
        else:
            params.update(trans_amount=str(requested), trans_currency=currency)
        cmd = requests.parse_refund(params)
        try:
            merchant = self.merchant(token)
        except _Refused:
            return

        found = self.find(token, lookup, prefer=lambda m: m.status is Status.SUCCESS)
        expected = self.expect_refund(found, settlement_side, currency, requested)
        result = self.ledger.refund(merchant, cmd)
        event(f"refund: {result.status}")
        exempt = MERCHANTS[token].refund_exempt
        balance = self.balances[token].get(found.currency, 0) if found else 0
        if expected == "success" and not settlement_side and not exempt:
            # The settlement amount of a refund stated in the transaction currency is
            # derived by the ledger's rounding; the balance may or may not cover it.
            assert result.status in ("success", REFUND_NO_BALANCE), result
            if not result.refunded:
                assert found is not None and balance < found.captured - found.refunded
        else:
            assert result.status == expected, (result, expected)
        assert result.refunded == (result.status == "success")
        if not result.refunded:
            assert result.refund is None
            return
        assert found is not None
        refund = result.refund
        assert refund is not None
        assert refund.transaction_id == found.id
        assert (refund.currency, refund.trans_currency) == (found.currency, found.trans_currency)
        assert self.ledger.refunds_by_id[refund.id] is refund
        assert exempt or refund.amount <= balance  # the open balance covers every refund
        # The stated side is what was asked; the other follows at the transaction's own
        # rate (bounded by what is left, and checked cumulatively by the invariants); a
        # refund of the remainder on its own side leaves nothing on either side.
        left_s = found.captured - found.refunded
        left_t = found.captured_trans - found.refunded_trans
        assert 0 <= refund.amount <= left_s and 0 <= refund.trans_amount <= left_t
        if settlement_side:
            assert refund.amount == requested
            if requested == left_s:
                assert refund.trans_amount == left_t
        else:
            assert refund.trans_amount == requested
            if requested == left_t:
                assert refund.amount == left_s
        found.refunded += refund.amount
        found.refunded_trans += refund.trans_amount
        self.move_balance(token, found.currency, -refund.amount)
        self.refund_owner[refund.id] = token

    @precondition(lambda self: any(m.status is Status.SUCCESS for m in self.models))
    @rule(pick=picks, how=st.sampled_from(["id", "reference"]),
          side=st.sampled_from(["settlement", "transaction"]),
          size=st.sampled_from(["remainder", "half", "one"]))
    def refund_part(self, pick: tuple[int, int], how: str, side: str, size: str) -> None:
        """The merchant refunds part of one of its paid transactions (no noise)."""
        self.refund(pick=(pick[0], 1), caller=OWNER, how=how, side=side, size=size,
                    amount=1)

    def expect_refund(
        self, found: Model | None, settlement_side: bool, currency: str, requested: int
    ) -> str:
        if found is None:
            return INVALID_TRANSACTION
        if found.status is Status.CANCELLED:
            return REFUND_CANCELLED
        if found.status is not Status.SUCCESS:
            return REFUND_NOT_PAID
        if currency != (found.currency if settlement_side else found.trans_currency):
            return REFUND_CURRENCY
        left = (found.captured - found.refunded if settlement_side
                else found.captured_trans - found.refunded_trans)
        if requested > left:
            return REFUND_OVER_PAID
        if settlement_side and not MERCHANTS[found.token].refund_exempt:
            if requested > self.balances[found.token].get(found.currency, 0):
                return REFUND_NO_BALANCE
        return "success"

    @precondition(lambda self: self.models)
    @rule(pick=picks, caller=callers, how=lookups,
          size=st.sampled_from(["full", "remainder", "over", "half", "one", "any"]),
          amount=amounts,
          flags=st.sampled_from(["natural", "natural", "plain", "multi", "multi-last", "last"]))
    def capture(
        self, pick: tuple[int, int], caller: str, how: str, size: str, amount: int, flags: str,
    ) -> None:
        picked = self.pick(
            pick, lambda m: m.status is Status.AUTHORIZED or m.capture_open)
        # "natural": multi_capture exactly when the vendor supports it.
        multi = flags in ("multi", "multi-last") or (
            flags == "natural" and VENDORS[picked.vendor].multi_capture)
        last = flags in ("multi-last", "last")
        token = self.caller_for(caller, picked)
        lookup = self.lookup_for(how, picked)
        left = picked.amount - picked.captured
        requested = {"full": None, "remainder": left, "over": left + 1, "half": left // 2,
                     "one": 1, "any": amount}[size]
        if requested is not None:
            requested = max(1, requested)
        params: dict[str, Any] = {"multi_capture": "true" if multi else "false",
                                  "last_capture": "true" if last else "false"}
        if requested is not None:
            params["amount"] = str(requested)
        if lookup.transaction_id is not None:
            params["transaction_id"] = lookup.transaction_id
        else:
            params["reference"] = lookup.reference
        cmd = requests.parse_capture(params)
        try:
            merchant = self.merchant(token)
        except _Refused:
            return
        found = self.find(token, lookup,
                          prefer=lambda m: m.status is Status.AUTHORIZED or m.capture_open)
        expected = self.expect_capture(found, requested, multi, last)
        event(f"capture: {expected if isinstance(expected, str) else 'ok'}")
        if isinstance(expected, str):
            with pytest.raises(BadRequest):
                self.ledger.capture(merchant, cmd)
            return
        assert found is not None
        cap_amount, cap_last = expected
        cap = self.ledger.capture(merchant, cmd)
        assert cap.transaction_id == found.id
        assert (cap.amount, cap.last) == expected
        assert cap.currency == found.currency
        left_trans = found.trans_amount - found.captured_trans
        assert 0 <= cap.trans_amount <= left_trans
        if cap.amount == found.amount - found.captured:  # the rest, on both sides
            assert cap.trans_amount == left_trans
        found.captured += cap_amount
        found.captured_trans += cap.trans_amount
        found.capture_open = not cap_last
        if found.status is Status.AUTHORIZED:
            found.status = Status.SUCCESS
            found.paid_at = self.now()
        self.move_balance(token, found.currency, cap_amount)

    @precondition(lambda self: any(m.status is Status.AUTHORIZED or m.capture_open
                                   for m in self.models))
    @rule(pick=picks, size=st.sampled_from(["full", "remainder", "half", "one"]))
    def capture_part(self, pick: tuple[int, int], size: str) -> None:
        """The merchant captures (part of) one of its authorisations (no noise)."""
        self.capture(pick=(pick[0], 1), caller=OWNER, how="id", size=size, amount=1,
                     flags="natural")

    def expect_capture(
        self, found: Model | None, requested: int | None, multi: bool, last: bool
    ) -> tuple[int, bool] | str:
        """(amount, last) of the capture, or why it is refused."""
        if found is None:
            return "not found"
        vendor = VENDORS[found.vendor]
        if not vendor.delayed_capture:
            return "no capture for the vendor"
        if (multi or last) and not vendor.multi_capture:
            return "no multi-capture for the vendor"
        if found.status is not Status.AUTHORIZED and not found.capture_open:
            return f"{found.status.value}, not authorized"
        if found.capture_open and not multi:
            return "further captures need multi_capture"
        left = found.amount - found.captured
        amount = left if requested is None else requested
        if amount > left:
            return "over the authorisation"
        return amount, (not multi or last or amount == left)

    @precondition(lambda self: self.models)
    @rule(pick=picks, caller=callers, how=lookups)
    def cancel(self, pick: tuple[int, int], caller: str, how: str) -> None:
        picked = self.pick(pick, lambda m: m.status is not Status.CANCELLED)
        token = self.caller_for(caller, picked)
        lookup = self.lookup_for(how, picked)
        params: dict[str, Any] = {}
        if lookup.transaction_id is not None:
            params["transaction_id"] = lookup.transaction_id
        else:
            params["transaction_reference"] = lookup.reference
        parsed = requests.parse_cancel(params)
        try:
            merchant = self.merchant(token)
        except _Refused:
            return
        found = self.find(token, lookup, prefer=lambda m: m.status is not Status.CANCELLED)
        result = self.ledger.cancel(merchant, parsed)
        event(f"cancel: {result.status}")
        if found is None:
            assert (result.cancelled, result.status, result.transaction) == (
                False, INVALID_TRANSACTION, None)
            return
        assert result.transaction is not None and result.transaction.id == found.id
        if found.status is Status.CANCELLED:
            assert (result.cancelled, result.status) == (False, CANCEL_DUPLICATE)
            return
        if found.status is Status.SUCCESS:
            assert found.paid_at is not None
            if self.now() - found.paid_at > self.window(found):
                assert (result.cancelled, result.status) == (False, CANCEL_WINDOW)
                return
            left = found.captured - found.refunded
            refunds = result.transaction.refunds or []
            if left > 0:  # "refunded in full amount", whatever the open balance
                refund = refunds[-1]
                assert refund.by_cancel
                assert refund.amount == left
                assert refund.trans_amount == found.captured_trans - found.refunded_trans
                self.move_balance(token, found.currency, -left)
                self.refund_owner[refund.id] = token
            found.refunded, found.refunded_trans = found.captured, found.captured_trans
        assert (result.cancelled, result.status) == (True, CANCEL_OK)
        found.status = Status.CANCELLED
        found.capture_open = False

    # -- the consumer's side -------------------------------------------------------

    @precondition(lambda self: self.models)
    @rule(pick=picks)
    def consumer_pay(self, pick: tuple[int, int]) -> None:
        self.pay(self.pick(pick, lambda m: m.status is Status.PENDING))

    def pay(self, m: Model) -> None:
        if m.status is not Status.PENDING:
            with pytest.raises(TransitionError):
                self.ledger.consumer_pay(m.id)
            return
        txn = self.ledger.consumer_pay(m.id)
        if m.auto_capture:
            m.status, m.paid_at = Status.SUCCESS, self.now()
            m.captured, m.captured_trans = m.amount, m.trans_amount
            self.move_balance(m.token, m.currency, m.amount)
        else:
            m.status = Status.AUTHORIZED
        assert txn.status is m.status

    @precondition(lambda self: self.models)
    @rule(pick=picks, action=st.sampled_from(["fail", "abandon", "expire"]))
    def consumer_gives_up(self, pick: tuple[int, int], action: str) -> None:
        m = self.pick(pick, lambda m: m.status is Status.PENDING)
        call, to = {
            "fail": (self.ledger.consumer_fail, Status.FAILED),
            "abandon": (self.ledger.consumer_cancel, Status.CANCELLED),
            "expire": (self.ledger.expire, Status.EXPIRED),
        }[action]
        if m.status is not Status.PENDING:
            with pytest.raises(TransitionError):
                call(m.id)
            return
        assert call(m.id).status is to
        m.status = to

    @rule(action=st.sampled_from(["pay", "fail", "abandon", "expire"]))
    def consumer_unknown_transaction(self, action: str) -> None:
        call = {"pay": self.ledger.consumer_pay, "fail": self.ledger.consumer_fail,
                "abandon": self.ledger.consumer_cancel, "expire": self.ledger.expire}[action]
        with pytest.raises(NotFound):
            call(MISSING_ID)

    # -- time ----------------------------------------------------------------------

    @rule(seconds=st.one_of(
        st.integers(1, 120), st.integers(121, 900), st.integers(3600, 3 * DAY),
        st.just(30 * DAY + 1),
    ))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self.clock_moved()

    @rule(offset=st.sampled_from([-1, 0, 1, 5]))
    def midnight(self, offset: int) -> None:
        """Just before, at, or just after the next midnight (open balances reset)."""
        day = self.clock.day()
        target = self.clock.start_of_next_day() + offset
        self.clock.advance(max(0.0, target - self.now()))
        assert self.clock.day() == day + (offset >= 0)
        self.clock_moved()

    # -- invariants ----------------------------------------------------------------

    @invariant()
    def money_is_conserved(self) -> None:
        for m in self.models:
            txn = self.ledger.by_id[m.id]
            assert 0 <= txn.refunded_amount <= txn.captured_amount <= txn.amount
            assert 0 <= txn.refunded_trans_amount <= txn.captured_trans_amount \
                <= txn.trans_amount
            assert (txn.captured_amount, txn.captured_trans_amount) == (m.captured,
                                                                        m.captured_trans)
            assert (txn.refunded_amount, txn.refunded_trans_amount) == (m.refunded,
                                                                        m.refunded_trans)
            assert txn.capture_open == m.capture_open
            refunds = txn.refunds or []
            assert sum(r.amount for r in refunds) == txn.refunded_amount
            assert sum(r.trans_amount for r in refunds) == txn.refunded_trans_amount
            if txn.captures:
                assert sum(c.amount for c in txn.captures) == txn.captured_amount
                assert sum(c.trans_amount for c in txn.captures) == txn.captured_trans_amount
            else:  # paid in one go, or never
                assert txn.captured_amount in (0, txn.amount)
            if txn.captured_amount == txn.amount:
                assert txn.captured_trans_amount == txn.trans_amount
            # Rounding never drifts: the running totals of captures, and of refunds, stay
            # within half a minor unit (of the coarser side) of the transaction's own rate,
            # also when a Klarna payment is captured further after a refund.
            assert_at_rate(txn.captured_amount, txn.captured_trans_amount,
                           txn.amount, txn.trans_amount)
            assert_at_rate(txn.refunded_amount, txn.refunded_trans_amount,
                           txn.amount, txn.trans_amount)

    @invariant()
    def open_balance_is_the_days_charges_minus_refunds(self) -> None:
        for token in MERCHANTS:
            actual = self.ledger.open_balance(self.ledger.merchant(token))
            assert {c: v for c, v in actual.items() if v} == {
                c: v for c, v in self.balances[token].items() if v
            }, token

    @invariant()
    def statuses_move_along_transitions(self) -> None:
        now = self.now()
        for m in self.models:
            txn = self.ledger.by_id[m.id]
            status = txn.status
            if m.status is Status.EXPIRED and status is Status.PENDING:
                assert now >= txn.expires_at  # expiry is applied lazily, on next access
            else:
                assert status is m.status, (m, status)
            assert status == m.seen or status in TRANSITIONS[m.seen], (m.seen, status)
            m.seen = status
            # The transaction's own timeline is a path through the state machine too.
            at = Status.PENDING
            for _, what, _ in txn.events or ():
                if what in Status._value2member_map_:
                    nxt = Status(what)
                    assert nxt in TRANSITIONS[at], (at, nxt)
                    at = nxt
            assert at is status

    @invariant()
    def merchants_are_isolated(self) -> None:
        merchants = {t: self.ledger.merchant(t) for t in MERCHANTS}
        for token, merchant in merchants.items():
            assert all(t.token == token for t in merchant.transactions.values())
            assert set(merchant.transactions) == {m.id for m in self.models if m.token == token}
        for m in self.models:
            for token, merchant in merchants.items():
                if token == m.token:
                    continue
                assert self.ledger.find(merchant, Lookup(m.id, None)) is None
                assert self.ledger.find(merchant, Lookup(m.id, m.reference)) is None
                with pytest.raises(BadRequest):
                    self.ledger.inquire(merchant, Lookup(m.id, None))
        for refund_id, owner in self.refund_owner.items():
            refund = self.ledger.inquire(merchants[owner], Lookup(refund_id, None))
            assert isinstance(refund, Refund) and refund.id == refund_id
            for token, merchant in merchants.items():
                if token != owner:
                    with pytest.raises(BadRequest):
                        self.ledger.inquire(merchant, Lookup(refund_id, None))

    @invariant()
    def refunds_by_id_matches_the_transactions(self) -> None:
        listed: dict[str, Refund] = {}
        for txn in self.ledger.by_id.values():
            for refund in txn.refunds or ():
                assert refund.transaction_id == txn.id
                assert refund.currency == txn.currency
                assert refund.trans_currency == txn.trans_currency
                listed[refund.id] = refund
        assert listed.keys() == self.ledger.refunds_by_id.keys()
        assert all(self.ledger.refunds_by_id[k] is r for k, r in listed.items())
        assert set(self.ledger.by_id) == {m.id for m in self.models}


def assert_at_rate(part: int, part_trans: int, whole: int, whole_trans: int) -> None:
    """``part``/``part_trans`` are the same share of ``whole``/``whole_trans``, give or take
    half a minor unit of whichever side has the larger unit."""
    assert abs(part_trans * whole - part * whole_trans) * 2 <= max(whole, whole_trans), (
        part, part_trans, whole, whole_trans)


class _Refused(Exception):
    """The caller's token was (correctly) refused; the rule has nothing more to do."""


LedgerMachine.TestCase.settings = settings(
    max_examples=examples(200),
    stateful_step_count=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerMachine = LedgerMachine.TestCase


class DstLedgerMachine(LedgerMachine):
    """The same, on a clock in a zone whose clocks spring forward at midnight (so one
    day starts at 01:00 and lasts 23 hours), starting two hours before it does."""

    zone = ZoneInfo("America/Havana")
    start = datetime(2026, 3, 7, 22, 0, 0, tzinfo=ZoneInfo("America/Havana"))


DstLedgerMachine.TestCase.settings = settings(
    LedgerMachine.TestCase.settings, max_examples=examples(80)
)
TestDstLedgerMachine = DstLedgerMachine.TestCase


# -- focused properties ---------------------------------------------------------------

FX_CURRENCIES = sorted(DEFAULT_FX)
FX = FxTable()
focused = settings(max_examples=examples(300), deadline=None, database=None)


def minor_rate(src: str, dst: str) -> Decimal:
    """Minor units of ``dst`` per minor unit of ``src`` at the table's rates."""
    return (Decimal(10) ** (exponent(dst) - exponent(src))) * FX.rates[dst] / FX.rates[src]


@focused
@given(src=st.sampled_from(FX_CURRENCIES), dst=st.sampled_from(FX_CURRENCIES),
       amount=st.integers(0, 10**12))
def test_fx_round_trip_error_is_half_a_unit_each_way(src: str, dst: str, amount: int) -> None:
    there = FX.convert(amount, src, dst)
    back = FX.convert(there, dst, src)
    rate = minor_rate(src, dst)
    # Each conversion rounds to the nearest minor unit: off by at most half a unit of
    # ``dst`` (worth 0.5 / rate units of ``src``) going there and half a unit coming back.
    assert abs(back - amount) <= Decimal("0.5") + Decimal("0.5") / rate + Decimal("1e-9")
    assert abs(there - amount * rate) <= Decimal("0.5") + Decimal("1e-9")


@focused
@given(pair=st.lists(st.sampled_from(FX_CURRENCIES), min_size=2, max_size=2, unique=True),
       amount=st.integers(0, 10**12))
def test_fx_round_trip_through_a_finer_currency_is_within_one_minor_unit(
    pair: list[str], amount: int
) -> None:
    src, dst = pair
    if minor_rate(src, dst) < 1:  # go through the currency whose minor unit is smaller
        src, dst = dst, src
    assert abs(FX.convert(FX.convert(amount, src, dst), dst, src) - amount) <= 1


@focused
@given(src=st.sampled_from(FX_CURRENCIES), dst=st.sampled_from(FX_CURRENCIES),
       a=st.integers(0, 10**12), b=st.integers(0, 10**12))
def test_fx_conversion_is_monotonic(src: str, dst: str, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert 0 <= FX.convert(low, src, dst) <= FX.convert(high, src, dst)


@focused
@given(whole=st.integers(1, 10**12), whole_to=st.integers(0, 10**12), data=st.data())
def test_proportional_is_the_nearest_share(whole: int, whole_to: int, data: Any) -> None:
    part = data.draw(st.integers(0, whole))
    share = proportional(part, whole, whole_to)
    assert abs(share * whole - part * whole_to) * 2 <= whole  # within half a unit
    assert 0 <= share <= whole_to
    assert proportional(whole, whole, whole_to) == whole_to
    assert proportional(0, whole, whole_to) == 0


def _ledger() -> tuple[Ledger, Merchant]:
    ledger = Ledger(VirtualClock(START, frozen=True), ids=IdFactory(3))
    return ledger, ledger.merchant("split-merchant")


@focused
@given(
    currency=st.sampled_from(["USD", "JPY", "KRW", "BHD", "HKD"]),
    vendor=st.sampled_from(["alipay", "linepay", "naverpay", "jkopay", "dana"]),
    amount=st.integers(1, 10**9),
    partials=st.lists(
        st.tuples(st.sampled_from(["settlement", "transaction"]), st.floats(0.0, 1.0)),
        max_size=12,
    ),
    last_side=st.sampled_from(["settlement", "transaction"]),
)
def test_partial_refunds_then_the_remainder_add_up_exactly_on_both_sides(
    currency: str, vendor: str, amount: int, partials: list[tuple[str, float]],
    last_side: str,
) -> None:
    ledger, merchant = _ledger()
    txn, _ = ledger.create_payment(merchant, requests.parse_payment(
        {"vendor": vendor, "amount": str(amount), "currency": currency, "reference": "r"},
        "pay"))
    ledger.consumer_pay(txn.id)

    def refund(side: str, value: int) -> None:
        key = ("amount", "currency") if side == "settlement" else ("trans_amount",
                                                                      "trans_currency")
        cur = txn.currency if side == "settlement" else txn.trans_currency
        result = ledger.refund(merchant, requests.parse_refund(
            {"transaction_id": txn.id, key[0]: str(value), key[1]: cur}))
        assert result.refunded, result

    for side, fraction in partials:
        left = _left(txn, side)
        part = int(left * fraction)
        if 1 <= part < left:
            refund(side, part)
            assert txn.refunded_amount <= txn.amount
            assert txn.refunded_trans_amount <= txn.trans_amount
            assert_at_rate(txn.refunded_amount, txn.refunded_trans_amount,
                           txn.amount, txn.trans_amount)
    # The last refund takes what is left, on a side where something is left.
    side = last_side if _left(txn, last_side) else _other(last_side)
    if _left(txn, side):
        refund(side, _left(txn, side))
    assert (txn.refunded_amount, txn.refunded_trans_amount) == (txn.amount, txn.trans_amount)
    refunds = txn.refunds or []
    assert sum(r.amount for r in refunds) == txn.amount
    assert sum(r.trans_amount for r in refunds) == txn.trans_amount
    assert all(r.amount >= 0 and r.trans_amount >= 0 for r in refunds)
    # The open balance paid for every refund: the day's charge minus the refunds.
    assert ledger.open_balance(merchant).get(txn.currency, 0) == 0


@focused
@given(amount=st.integers(1, 10**9), currency=st.sampled_from(["USD", "JPY", "KRW", "BHD"]),
       fractions=st.lists(st.floats(0.0, 1.0), max_size=12))
def test_partial_klarna_captures_then_the_remainder_add_up_exactly_on_both_sides(
    amount: int, currency: str, fractions: list[float]
) -> None:
    ledger, merchant = _ledger()
    txn, _ = ledger.create_payment(merchant, requests.parse_payment(
        {"vendor": "klarna", "amount": str(amount), "currency": currency, "reference": "r",
         "auto_capture": "false"}, "pay"))
    ledger.consumer_pay(txn.id)
    assert txn.status is Status.AUTHORIZED
    lookup = {"transaction_id": txn.id, "multi_capture": "true"}
    for fraction in fractions:
        left = txn.amount - txn.captured_amount
        part = int(left * fraction)
        if 1 <= part < left:
            cap = ledger.capture(merchant, requests.parse_capture({**lookup, "amount": str(part)}))
            assert not cap.last and txn.capture_open
            # Each part within one minor unit of its share; the running total within half.
            assert abs(cap.trans_amount * txn.amount - part * txn.trans_amount) <= txn.amount
            assert_at_rate(txn.captured_amount, txn.captured_trans_amount,
                           txn.amount, txn.trans_amount)
    cap = ledger.capture(merchant, requests.parse_capture(lookup))  # the rest
    assert cap.last and not txn.capture_open
    assert (txn.captured_amount, txn.captured_trans_amount) == (txn.amount, txn.trans_amount)
    assert sum(c.trans_amount for c in txn.captures or []) == txn.trans_amount
    assert ledger.open_balance(merchant) == {txn.currency: txn.amount}
    with pytest.raises(CitconError):  # nothing is left to capture
        ledger.capture(merchant, requests.parse_capture({**lookup, "amount": "1"}))


def _left(txn: Transaction, side: str) -> int:
    if side == "settlement":
        return txn.captured_amount - txn.refunded_amount
    return txn.captured_trans_amount - txn.refunded_trans_amount


def _other(side: str) -> str:
    return "transaction" if side == "settlement" else "settlement"
