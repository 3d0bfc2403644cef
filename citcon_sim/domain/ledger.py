"""The ledger: merchants, transactions, refunds and captures, and every money rule.

Nothing here knows about HTTP. Every operation is synchronous and completes without
yielding to the event loop, so concurrent requests are applied one after another and the
invariants (refunded <= paid, captured <= authorised, open balance = the day's charges
minus refunds) hold whatever the interleaving of requests.

Statuses and their moves (anything else is refused):

    pending ──pay──▶ success ──cancel (in window)──▶ cancelled
       │  └──pay (delayed capture)──▶ authorized ──capture──▶ success
       ├──fail──▶ fail                    └──cancel──▶ cancelled
       ├──timeout──▶ expired
       └──cancel──▶ cancelled     (fail and expired may be cancelled too)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from citcon_sim.domain.clock import VirtualClock
from citcon_sim.domain.commands import CaptureCommand, Lookup, Money, PaymentCommand, RefundCommand
from citcon_sim.domain.errors import BadRequest, NotFound, TransitionError, Unauthorized
from citcon_sim.domain.events import EventBus, Refused, TransactionChanged
from citcon_sim.domain.ids import IdFactory, IdsExport
from citcon_sim.domain.merchants import MerchantSettings
from citcon_sim.domain.money import FxTable, proportional
from citcon_sim.domain.vendors import Vendor

if TYPE_CHECKING:
    from citcon_sim.domain.scripts import Rule


class Status(StrEnum):
    PENDING = "pending"  # reported as JSON null: "Non-expired QR Code / No Payment"
    AUTHORIZED = "authorized"
    SUCCESS = "success"
    FAILED = "fail"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset(
        {Status.SUCCESS, Status.AUTHORIZED, Status.FAILED, Status.EXPIRED, Status.CANCELLED}
    ),
    Status.AUTHORIZED: frozenset({Status.SUCCESS, Status.CANCELLED}),
    Status.SUCCESS: frozenset({Status.CANCELLED}),
    Status.FAILED: frozenset({Status.CANCELLED}),
    Status.EXPIRED: frozenset({Status.CANCELLED}),
    Status.CANCELLED: frozenset(),
}

# Refund failures are answered as {"refunded": false, "status": <one of these>}.
REFUND_OVER_PAID = "refund amount greater than payment amount"  # documented wording
REFUND_NO_BALANCE = "insufficient open balance"
REFUND_NOT_PAID = "transaction not paid"
REFUND_CANCELLED = "transaction cancelled"
REFUND_CURRENCY = "refund currency does not match the transaction"
REFUND_DUPLICATE = "duplicate refund reference"
INVALID_TRANSACTION = "Invalid transaction"

CANCEL_OK = "Order cancelled"
CANCEL_DUPLICATE = "Duplicate cancellation"
CANCEL_WINDOW = "Not in cancellation window"

# Each refusal's short name, as :class:`~citcon_sim.domain.events.Refused` carries it (the
# words above are the wire's; the names are for observers such as behaviour coverage).
REFUSAL_RULES: dict[str, str] = {
    INVALID_TRANSACTION: "unknown_transaction",
    REFUND_OVER_PAID: "over_refund",
    REFUND_NO_BALANCE: "no_open_balance",
    REFUND_NOT_PAID: "not_paid",
    REFUND_CANCELLED: "cancelled",
    REFUND_CURRENCY: "currency",
    REFUND_DUPLICATE: "duplicate_reference",
    CANCEL_DUPLICATE: "duplicate_cancel",
    CANCEL_WINDOW: "cancel_window",
}


class _CaptureRefused(Exception):
    """A capture a rule refuses (answered as BadRequest, published as Refused)."""

    def __init__(self, rule: str, message: str, txn: Transaction | None) -> None:
        super().__init__(message)
        self.rule, self.txn = rule, txn


class Refund(msgspec.Struct):
    """A refund of (part of) a paid transaction; both currency sides."""

    id: str
    transaction_id: str
    amount: int
    currency: str
    trans_amount: int
    trans_currency: str
    time: float
    note: str | None
    by_cancel: bool = False
    reference: str | None = None  # the merchant's own reference for it (UPI), unique


class Capture(msgspec.Struct):
    """A capture of (part of) an authorisation; both currency sides."""

    transaction_id: str
    amount: int
    currency: str
    trans_amount: int
    time: float
    last: bool


class Transaction(msgspec.Struct):
    """A payment and everything that happened to it."""

    id: str
    token: str
    reference: str
    vendor: Vendor
    method: str
    amount: int
    currency: str
    trans_amount: int
    trans_currency: str
    created_at: float
    expires_at: float
    auto_capture: bool
    note: str | None = None
    ipn_url: str | None = None
    callback_url_success: str | None = None
    callback_url_fail: str | None = None
    callback_url_cancel: str | None = None
    mobile_result_url: str | None = None
    goods: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None
    status: Status = Status.PENDING
    updated_at: float = 0.0
    paid_at: float | None = None
    captured_amount: int = 0
    captured_trans_amount: int = 0
    capture_open: bool = False  # a multi-capture authorisation still accepting captures
    refunded_amount: int = 0
    refunded_trans_amount: int = 0
    refunds: list[Refund] | None = None
    captures: list[Capture] | None = None
    # (time, event, detail) for the timeline; "created" is implied by created_at.
    events: list[tuple[float, str, dict[str, Any] | None]] | None = None
    # The scenario rule that matched the creating request: its payment outcome and IPN
    # behaviour are applied where those decisions are made.
    script: Rule | None = None
    # The API face that created it, which picks the format of its IPN.
    face: str = "online"

    @property
    def paid_amount(self) -> int:
        """What the consumer was charged on the settlement side (captured, if delayed)."""
        return self.captured_amount

    def log(self, at: float, event: str, detail: dict[str, Any] | None = None) -> None:
        if self.events is None:
            self.events = []
        self.events.append((at, event, detail))


class RefundResult(msgspec.Struct, frozen=True):
    """The refund endpoint's answer: refunded or not, and the status text."""

    refunded: bool
    status: str
    refund: Refund | None = None


class CancelResult(msgspec.Struct, frozen=True):
    """The cancel endpoint's answer: cancelled or not, and the status text."""

    cancelled: bool
    status: str
    transaction: Transaction | None


class Merchant:
    __slots__ = ("settings", "transactions", "_by_reference", "_balances", "_balance_day",
                 "refund_references")

    def __init__(self, settings: MerchantSettings) -> None:
        self.settings = settings
        self.transactions: dict[str, Transaction] = {}
        # reference -> the transaction, or the list of them when allow_duplicates made more.
        self._by_reference: dict[str, Transaction | list[Transaction]] = {}
        self._balances: dict[str, int] = {}
        self._balance_day = -1
        # Refunds that carry their own merchant reference (UPI), by that reference.
        self.refund_references: dict[str, Refund] = {}

    @property
    def token(self) -> str:
        return self.settings.token

    def add(self, txn: Transaction) -> None:
        self.transactions[txn.id] = txn
        current = self._by_reference.get(txn.reference)
        if current is None:
            self._by_reference[txn.reference] = txn
        elif isinstance(current, list):
            current.append(txn)
        else:
            self._by_reference[txn.reference] = [current, txn]

    def with_reference(self, reference: str) -> list[Transaction]:
        found = self._by_reference.get(reference)
        if found is None:
            return []
        return found if isinstance(found, list) else [found]

    # Open balance: "Successfully charged transactions are + and refunds are –", and
    # "Open Balance are reset at the beginning of the day" (on the simulator clock).
    def balances(self, day: int) -> dict[str, int]:
        if day != self._balance_day:
            self._balances = {}
            self._balance_day = day
        return self._balances

    def cancel_window(self, vendor: Vendor) -> int:
        return self.settings.cancel_windows.get(vendor.code, vendor.cancel_window)

    def export(self) -> MerchantExport:
        """Settings and open balance; the transactions are the ledger's to export."""
        return MerchantExport(self.settings, self._balance_day, dict(self._balances))

    @classmethod
    def load(cls, export: MerchantExport) -> Merchant:
        """A fresh merchant with no transactions yet (:meth:`add` them)."""
        merchant = cls(export.settings)
        merchant._balances = dict(export.balances)
        merchant._balance_day = export.balance_day
        return merchant


class MerchantExport(msgspec.Struct, frozen=True):
    """A merchant's state: settings, and the open balance of calendar day
    ``balance_day`` (an ordinal on the simulator clock; -1: none yet)."""

    settings: MerchantSettings
    balance_day: int = -1
    balances: dict[str, int] = msgspec.field(default_factory=dict)


class LedgerExport(msgspec.Struct, frozen=True):
    """Everything a ledger holds; its indexes are derived, so not part of it.

    ``transactions`` (creation order) are the transaction objects themselves, not
    copies: a snapshot of a million transactions is encoded straight away, and a load
    takes ownership of the ones it is given. Encode an export before the next ledger
    operation, and never change its transactions. ``merchants`` maps tokens to their
    state, including merchants with no transaction; a transaction's merchant missing
    from it is created on load as on first use.
    """

    ids: IdsExport
    merchants: dict[str, MerchantExport] = msgspec.field(default_factory=dict)
    transactions: list[Transaction] = msgspec.field(default_factory=list)


_T = TypeVar("_T")
SHARED_VALUES = 4096  # Ledger._share's bound


class Ledger:
    def __init__(
        self,
        clock: VirtualClock,
        *,
        fx: FxTable | None = None,
        ids: IdFactory | None = None,
        merchants: dict[str, MerchantSettings] | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.clock = clock
        self.fx = fx or FxTable()
        self.ids = ids or IdFactory()
        self.strict = merchants is not None
        self.settings: dict[str, MerchantSettings] = dict(merchants or {})
        self.merchants: dict[str, Merchant] = {}
        self.by_id: dict[str, Transaction] = {}
        self.refunds_by_id: dict[str, Refund] = {}
        # Every change is published as a TransactionChanged (the simulator's one bus).
        self.events = events if events is not None else EventBus()
        # Values that repeat across transactions (currency codes, a shop's ipn_url and
        # fail URL, amounts above 256): every request brings fresh copies, and a million
        # stored transactions held a million copies of "https://shop.example.com/ipn".
        # One shared object each instead (_share). Not sys.intern: interned strings are
        # immortal on Python 3.12, so a unique URL per order would leak. Bounded: emptied
        # when full, which only costs one more copy of each value still repeating.
        self._shared: dict[object, object] = {}

    # -- merchants -----------------------------------------------------------------

    # A merchant exists once a call of its succeeds in changing the state: a lookup never
    # creates one (50,000 rejected inquiries once left 50,000 merchants behind). Faces
    # call merchant() to authenticate; create_payment() (the only operation that can give
    # a merchant its first transaction) enrols the merchant it is handed.

    def merchant(self, token: str | None) -> Merchant:
        """The merchant a token authenticates, WITHOUT creating it.

        Known: the stored merchant. Unknown in lenient mode: a fresh, unstored merchant
        with no transactions, so every lookup on it finds nothing; it is stored only if
        an operation succeeds with it (:meth:`enrol`). Strict mode: only tokens of the
        merchants file authenticate."""
        if not token:
            raise Unauthorized("missing Authorization token")
        found = self.merchants.get(token)
        if found is not None:
            return found
        settings = self.settings.get(token)
        if settings is None:
            if self.strict:
                raise Unauthorized("unknown token")
            settings = MerchantSettings.lenient(token)
        return Merchant(settings)

    def known_merchant(self, token: str) -> Merchant | None:
        """The stored merchant of ``token``, or None; authenticates nothing."""
        return self.merchants.get(token)

    def enrol(self, merchant: Merchant | str) -> Merchant:
        """The merchant, CREATING (storing) it if it is not stored yet: from a token, or
        the unstored merchant :meth:`merchant` gave (if another request stored one for
        the same token meanwhile, that one wins)."""
        if isinstance(merchant, str):
            merchant = self.merchant(merchant)
        return self.merchants.setdefault(merchant.token, merchant)

    def forget(self, token: str) -> None:
        """Forget one merchant and its transactions and refunds (a per-merchant reset;
        for a full one, take :meth:`empty`)."""
        merchant = self.merchants.pop(token, None)
        if merchant is None:
            return
        for txn in merchant.transactions.values():
            self.by_id.pop(txn.id, None)
            for refund in txn.refunds or ():
                self.refunds_by_id.pop(refund.id, None)

    def empty(self) -> Ledger:
        """A fresh, empty ledger configured like this one: same clock, FX table and
        merchants file, and the same id factory (ids continue, never repeat). Listeners
        are not carried over: whoever installs the ledger wires it."""
        return Ledger(self.clock, fx=self.fx, ids=self.ids,
                      merchants=self.settings if self.strict else None)

    # -- export / load (citcon_sim.persistence) -------------------------------------------

    def export(self) -> LedgerExport:
        return LedgerExport(
            self.ids.export(),
            {token: m.export() for token, m in self.merchants.items()},
            list(self.by_id.values()),
        )

    @classmethod
    def load(
        cls,
        export: LedgerExport,
        clock: VirtualClock,
        *,
        fx: FxTable | None = None,
        ids: IdFactory | None = None,
        merchants: dict[str, MerchantSettings] | None = None,
    ) -> Ledger:
        """A fresh ledger holding ``export``, its indexes (by id, by reference, refunds)
        rebuilt. ``ids`` defaults to a factory loaded from ``export.ids``; ``merchants``
        is the merchants file, as for the constructor (strict mode).

        Raises ``ValueError`` when an id appears twice or, in strict mode, a transaction's
        merchant is not in the merchants file. Checks nothing else: validating money and
        statuses is the caller's (the snapshot reader's) job.
        """
        ledger = cls(clock, fx=fx, ids=ids or IdFactory.load(export.ids), merchants=merchants)
        for token, m in export.merchants.items():
            ledger.merchants[token] = Merchant.load(m)
        by_id, refunds_by_id = ledger.by_id, ledger.refunds_by_id
        for txn in export.transactions:
            if txn.id in by_id or txn.id in refunds_by_id:
                raise ValueError(f"id {txn.id} appears twice")
            try:
                merchant = ledger.enrol(txn.token)
            except Unauthorized:
                raise ValueError(f"transaction {txn.id}: unknown merchant") from None
            merchant.add(txn)
            by_id[txn.id] = txn
            for refund in txn.refunds or ():
                if refund.id in refunds_by_id or refund.id in by_id:
                    raise ValueError(f"id {refund.id} appears twice")
                refunds_by_id[refund.id] = refund
                if refund.reference is not None:
                    merchant.refund_references[refund.reference] = refund
        return ledger

    def _share(self, value: _T) -> _T:
        if value is None:
            return value
        shared = self._shared.get(value)
        if shared is None:
            if len(self._shared) >= SHARED_VALUES:
                self._shared.clear()
            self._shared[value] = shared = value
        return shared  # type: ignore[return-value]

    def _emit(self, kind: str, txn: Transaction, detail: Any = None) -> None:
        self.events.publish(TransactionChanged(kind, txn, detail))

    # -- lookups -------------------------------------------------------------------

    def get(self, txn_id: str) -> Transaction:
        """Any merchant's transaction by id (consumer pages and the control surface)."""
        txn = self.by_id.get(txn_id)
        if txn is None:
            raise NotFound(f"no transaction {txn_id!r}")
        return self.refresh(txn)

    def find(
        self,
        merchant: Merchant,
        lookup: Lookup,
        prefer: Callable[[Transaction], bool] | None = None,
    ) -> Transaction | None:
        """A merchant's transaction by id, else by reference.

        Several transactions can share a reference (``allow_duplicates=yes``); the most
        recent one that ``prefer`` accepts wins, else the most recent.
        """
        if lookup.transaction_id is not None:
            txn = merchant.transactions.get(lookup.transaction_id)
            if txn is None or (lookup.reference is not None and txn.reference != lookup.reference):
                return None
            return self.refresh(txn)
        assert lookup.reference is not None  # parse_lookup guarantees one of the two
        candidates = [self.refresh(t) for t in merchant.with_reference(lookup.reference)]
        if not candidates:
            return None
        if prefer is not None:
            for txn in reversed(candidates):
                if prefer(txn):
                    return txn
        return candidates[-1]

    def transactions(
        self, merchant: Merchant | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[Transaction]:
        """Most recent first; never walks more than ``offset + limit`` entries."""
        source = merchant.transactions if merchant is not None else self.by_id
        newest_first: Iterator[Transaction] = reversed(source.values())
        return [self.refresh(t) for t in itertools.islice(newest_first, offset, offset + limit)]

    def open_balance(self, merchant: Merchant) -> dict[str, int]:
        return dict(merchant.balances(self.clock.day()))

    # -- state machine ---------------------------------------------------------------

    def refresh(self, txn: Transaction) -> Transaction:
        """Apply the QR/link timeout lazily, so expiry costs nothing per transaction."""
        if txn.status is Status.PENDING and self.clock.time() >= txn.expires_at:
            self._move(txn, Status.EXPIRED, at=txn.expires_at)
            self._emit("expired", txn)
        return txn

    def _move(self, txn: Transaction, to: Status, at: float | None = None, **detail: Any) -> None:
        if to not in TRANSITIONS[txn.status]:
            raise TransitionError(f"transaction is {txn.status.value}, cannot become {to.value}")
        at = self.clock.time() if at is None else at
        txn.status = to
        txn.updated_at = at
        txn.log(at, to.value, detail or None)

    # -- merchant API ----------------------------------------------------------------

    def create_payment(
        self, merchant: Merchant, cmd: PaymentCommand
    ) -> tuple[Transaction, bool]:
        """pay / pay_qr. Returns the transaction and whether it is new.

        Without ``allow_duplicates=yes`` a repeated reference answers with the existing
        transaction ("the call will reference to the previously created transactions").
        """
        # The stored merchant if there is one (another request may have stored it since
        # this one authenticated); a new merchant is stored only once its payment exists.
        merchant = self.merchants.get(merchant.token, merchant)
        if not cmd.allow_duplicates:
            existing = merchant.with_reference(cmd.reference)
            if existing:
                return self.refresh(existing[-1]), False
        settlement, transaction = self._sides(merchant, cmd)
        now = self.clock.time()
        vendor = cmd.vendor
        share = self._share
        txn = Transaction(
            id=self.ids.transaction(cmd.face),
            token=merchant.token,
            reference=cmd.reference,
            vendor=vendor,
            method=cmd.method,
            amount=share(settlement.amount),
            currency=share(settlement.currency),
            trans_amount=share(transaction.amount),
            trans_currency=share(transaction.currency),
            created_at=now,
            updated_at=now,  # the same float object: one per transaction, not two
            expires_at=now + cmd.timeout,
            # Only delayed-capture vendors can hold an authorisation; others always capture.
            auto_capture=cmd.auto_capture or not vendor.delayed_capture,
            note=share(cmd.note),
            ipn_url=share(cmd.ipn_url),
            callback_url_success=share(cmd.callback_url_success),
            callback_url_fail=share(cmd.callback_url_fail),
            callback_url_cancel=share(cmd.callback_url_cancel),
            mobile_result_url=share(cmd.mobile_result_url),
            goods=cmd.goods,
            extra=cmd.extra or None,
            script=cmd.script if cmd.script and (cmd.script.payment or cmd.script.ipn) else None,
            face=cmd.face,
        )
        self.enrol(merchant)
        merchant.add(txn)
        self.by_id[txn.id] = txn
        self._emit("created", txn)
        return txn, True

    def _sides(self, merchant: Merchant, cmd: PaymentCommand) -> tuple[Money, Money]:
        """Both sides of a payment: what was sent, and the other derived by the FX table."""
        if cmd.settlement is not None:
            settlement = cmd.settlement
            transaction = cmd.transaction or self._convert(settlement, cmd.vendor.currency)
        else:
            assert cmd.transaction is not None
            transaction = cmd.transaction
            settlement = self._convert(transaction, merchant.settings.settlement_currency)
        return settlement, transaction

    def _convert(self, money: Money, currency: str) -> Money:
        # A positive amount never converts to zero: the smallest charge is one minor unit.
        return Money(max(1, self.fx.convert(money.amount, money.currency, currency)), currency)

    def inquire(self, merchant: Merchant, lookup: Lookup) -> Transaction | Refund:
        if lookup.transaction_id is not None and lookup.reference is None:
            refund = self.refunds_by_id.get(lookup.transaction_id)
            if refund is not None and refund.transaction_id in merchant.transactions:
                return refund
        txn = self.find(merchant, lookup)
        if txn is None:
            raise BadRequest("transaction not found")
        return txn

    def refund(self, merchant: Merchant, cmd: RefundCommand) -> RefundResult:
        txn = self.find(merchant, cmd.lookup, prefer=lambda t: t.status is Status.SUCCESS)
        if txn is None:
            return self._refuse_refund(None, INVALID_TRANSACTION)
        if cmd.reference is not None and cmd.reference in merchant.refund_references:
            return self._refuse_refund(txn, REFUND_DUPLICATE)
        if cmd.script is not None and cmd.script.refund is not None:
            return self._refuse_refund(txn, cmd.script.refund.status, "scripted")
        if txn.status is Status.CANCELLED:
            return self._refuse_refund(txn, REFUND_CANCELLED)
        if txn.status is not Status.SUCCESS:
            return self._refuse_refund(txn, REFUND_NOT_PAID)
        paid_trans = txn.captured_trans_amount
        left = txn.paid_amount - txn.refunded_amount
        left_trans = paid_trans - txn.refunded_trans_amount
        # The refund is stated on one side; the other follows at the transaction's own
        # rate (amount : trans_amount), not at the rate of what is captured so far: a
        # Klarna payment may be captured further after a refund, and the refunds must
        # stay at the rate of the whole. The remainder on one side is the remainder on
        # the other, and neither side ever goes past what is left.
        if cmd.settlement is not None:
            if cmd.settlement.currency != txn.currency:
                return self._refuse_refund(txn, REFUND_CURRENCY)
            amount = cmd.settlement.amount
            if amount > left:
                return self._refuse_refund(txn, REFUND_OVER_PAID)
            trans_amount = left_trans if amount == left else min(left_trans, _follow(
                txn.refunded_amount, amount, txn.amount, txn.refunded_trans_amount,
                txn.trans_amount))
        else:
            assert cmd.transaction is not None
            if cmd.transaction.currency != txn.trans_currency:
                return self._refuse_refund(txn, REFUND_CURRENCY)
            trans_amount = cmd.transaction.amount
            if trans_amount > left_trans:
                return self._refuse_refund(txn, REFUND_OVER_PAID)
            amount = left if trans_amount == left_trans else min(left, _follow(
                txn.refunded_trans_amount, trans_amount, txn.trans_amount,
                txn.refunded_amount, txn.amount))
        balances = merchant.balances(self.clock.day())
        if not merchant.settings.refund_exempt and amount > balances.get(txn.currency, 0):
            return self._refuse_refund(txn, REFUND_NO_BALANCE)
        refund = self._record_refund(merchant, txn, amount, trans_amount, cmd.note,
                                     reference=cmd.reference)
        return RefundResult(True, "success", refund)

    def _refuse_refund(self, txn: Transaction | None, status: str,
                       rule: str | None = None) -> RefundResult:
        self.events.publish(Refused("refund", rule or REFUSAL_RULES[status], status, txn))
        return RefundResult(False, status)

    def _record_refund(
        self,
        merchant: Merchant,
        txn: Transaction,
        amount: int,
        trans_amount: int,
        note: str | None,
        by_cancel: bool = False,
        reference: str | None = None,
    ) -> Refund:
        now = self.clock.time()
        refund = Refund(
            id=self.ids.transaction(txn.face),
            transaction_id=txn.id,
            amount=amount,
            currency=txn.currency,
            trans_amount=trans_amount,
            trans_currency=txn.trans_currency,
            time=now,
            note=self._share(note),  # "cancel", or the shop's usual reason
            by_cancel=by_cancel,
            reference=reference,
        )
        if reference is not None:
            merchant.refund_references[reference] = refund
        txn.refunded_amount += amount
        txn.refunded_trans_amount += trans_amount
        if txn.refunds is None:
            txn.refunds = []
        txn.refunds.append(refund)
        self.refunds_by_id[refund.id] = refund
        balances = merchant.balances(self.clock.day())
        balances[txn.currency] = balances.get(txn.currency, 0) - amount
        txn.log(now, "refunded", {"refund_id": refund.id, "amount": amount})
        self._emit("refunded", txn, refund)
        return refund

    def cancel(self, merchant: Merchant, lookup: Lookup) -> CancelResult:
        txn = self.find(merchant, lookup, prefer=lambda t: t.status is not Status.CANCELLED)
        if txn is None:
            return self._refuse_cancel(None, INVALID_TRANSACTION)
        if txn.status is Status.CANCELLED:
            return self._refuse_cancel(txn, CANCEL_DUPLICATE)
        if txn.status is Status.SUCCESS:
            assert txn.paid_at is not None
            if self.clock.time() - txn.paid_at > merchant.cancel_window(txn.vendor):
                return self._refuse_cancel(txn, CANCEL_WINDOW)
            # "If the original payment goes through successfully, it will be refunded in
            # full amount": a reversal, so the open balance is not checked.
            # Whatever is left on either side: refunds stated on one side round on the
            # other, so one side can be fully refunded while the other still is not.
            left = txn.paid_amount - txn.refunded_amount
            left_trans = txn.captured_trans_amount - txn.refunded_trans_amount
            if left > 0 or left_trans > 0:
                self._record_refund(merchant, txn, left, left_trans, "cancel", by_cancel=True)
        txn.capture_open = False
        self._move(txn, Status.CANCELLED)
        self._emit("cancelled", txn)
        return CancelResult(True, CANCEL_OK, txn)

    def _refuse_cancel(self, txn: Transaction | None, status: str) -> CancelResult:
        self.events.publish(Refused("cancel", REFUSAL_RULES[status], status, txn))
        return CancelResult(False, status, txn)

    def capture(self, merchant: Merchant, cmd: CaptureCommand) -> Capture:
        try:
            return self._capture(merchant, cmd)
        except _CaptureRefused as refused:
            self.events.publish(Refused("capture", refused.rule, str(refused), refused.txn))
            raise BadRequest(str(refused)) from None

    def _capture(self, merchant: Merchant, cmd: CaptureCommand) -> Capture:
        txn = self.find(
            merchant,
            cmd.lookup,
            prefer=lambda t: t.status is Status.AUTHORIZED or t.capture_open,
        )
        if txn is None:
            raise _CaptureRefused("unknown_transaction", "transaction not found", None)
        vendor = txn.vendor
        if not vendor.delayed_capture:
            raise _CaptureRefused("capture_unsupported",
                                  f"{vendor.code} does not support capture", txn)
        if (cmd.multi_capture or cmd.last_capture) and not vendor.multi_capture:
            raise _CaptureRefused("capture_unsupported",
                                  "multi_capture is only supported for klarna", txn)
        if txn.status is Status.SUCCESS and not txn.capture_open:
            raise _CaptureRefused("already_captured", "transaction is already captured", txn)
        if txn.status is not Status.AUTHORIZED and not txn.capture_open:
            raise _CaptureRefused(
                "not_authorized", f"transaction is {wire_status(txn) or 'pending'}, not "
                "authorized", txn)
        if txn.capture_open and not cmd.multi_capture:
            raise _CaptureRefused("capture_closed", "further captures need multi_capture=true",
                                  txn)
        left = txn.amount - txn.captured_amount
        amount = left if cmd.amount is None else cmd.amount
        if amount > left:
            raise _CaptureRefused(
                "over_capture", f"capture amount {amount} is greater than the {left} left "
                "to capture", txn)
        trans_amount = _follow(txn.captured_amount, amount, txn.amount,
                               txn.captured_trans_amount, txn.trans_amount)
        now = self.clock.time()
        last = not cmd.multi_capture or cmd.last_capture or amount == left
        capture = Capture(txn.id, amount, txn.currency, trans_amount, now, last)
        if txn.captures is None:
            txn.captures = []
        txn.captures.append(capture)
        txn.captured_amount += amount
        txn.captured_trans_amount += trans_amount
        txn.capture_open = not last
        self._credit(merchant, txn, amount)
        if txn.status is Status.AUTHORIZED:
            txn.paid_at = now
            self._move(txn, Status.SUCCESS, captured=amount)
        else:
            txn.log(now, "captured", {"amount": amount})
        self._emit("captured", txn, capture)
        return capture

    def _credit(self, merchant: Merchant, txn: Transaction, amount: int) -> None:
        balances = merchant.balances(self.clock.day())
        balances[txn.currency] = balances.get(txn.currency, 0) + amount

    # -- the consumer's side -----------------------------------------------------------

    def consumer_act(self, txn_id: str, action: str, reason: str = "declined") -> Transaction:
        """What the consumer (or the passing of time) does to a payment, by name: ``pay``,
        ``fail`` (with ``reason``), ``cancel`` (abandon the wallet page) or ``expire``.
        The wallet pages, the control surface and the test helpers all come here."""
        if action == "pay":
            return self.consumer_pay(txn_id)
        if action == "fail":
            return self.consumer_fail(txn_id, reason)
        if action == "cancel":
            return self.consumer_cancel(txn_id)
        if action == "expire":
            return self.expire(txn_id)
        raise BadRequest(f"unknown consumer action {action!r}")

    def consumer_pay(self, txn_id: str) -> Transaction:
        """The consumer pays (or, for a delayed-capture payment, authorises)."""
        txn = self.get(txn_id)
        if txn.status is not Status.PENDING:
            raise TransitionError(f"transaction is {txn.status.value}, it cannot be paid")
        return self._pay(txn)

    def _pay(self, txn: Transaction) -> Transaction:
        now = self.clock.time()
        merchant = self.merchants[txn.token]
        if txn.auto_capture:
            txn.captured_amount = txn.amount
            txn.captured_trans_amount = txn.trans_amount
            txn.paid_at = now
            self._credit(merchant, txn, txn.amount)
            self._move(txn, Status.SUCCESS)
            self._emit("paid", txn)
        else:
            self._move(txn, Status.AUTHORIZED)
            self._emit("authorized", txn)
        return txn

    def consumer_fail(self, txn_id: str, reason: str = "declined") -> Transaction:
        txn = self.get(txn_id)
        if txn.status is not Status.PENDING:
            raise TransitionError(f"transaction is {txn.status.value}, it cannot fail")
        self._move(txn, Status.FAILED, reason=reason)
        self._emit("failed", txn)
        return txn

    def consumer_cancel(self, txn_id: str) -> Transaction:
        """The consumer abandons the wallet page (not the merchant's cancel API)."""
        txn = self.get(txn_id)
        if txn.status is not Status.PENDING:
            raise TransitionError(f"transaction is {txn.status.value}, it cannot be cancelled")
        self._move(txn, Status.CANCELLED, by="consumer")
        self._emit("cancelled", txn)
        return txn

    def late_confirm(self, txn_id: str) -> Transaction:
        """The wallet confirms a payment the gateway had given up on: it expired, or it was
        cancelled before anyone paid (a scenario's ``late_confirm``). Wallets do this when
        the consumer pays as the order closes; the money is taken, so the payment is
        reported paid (authorised, for delayed capture) and the merchant must refund it."""
        txn = self.get(txn_id)
        was = txn.status
        if was not in (Status.EXPIRED, Status.CANCELLED) or txn.paid_at is not None \
                or txn.refunds:
            raise TransitionError(f"transaction is {was.value}, it cannot be confirmed late")
        now = self.clock.time()
        txn.status, txn.updated_at = Status.PENDING, now  # the wallet reopens it, at once:
        txn.log(now, "late_confirm", {"was": was.value})
        return self._pay(txn)  # ... and its consumer pays (past its expiry: no refresh)

    def pay_twice(self, txn_id: str) -> Transaction:
        """The consumer pays the same QR a second time (a scenario's ``paid_twice``): the
        gateway takes a second payment for the same order, as a transaction of its own
        (same reference, amount and URLs), paid at once and notified like any other."""
        first = self.get(txn_id)
        if first.status not in (Status.SUCCESS, Status.AUTHORIZED):
            raise TransitionError(f"transaction is {first.status.value}, not paid")
        now = self.clock.time()
        twin = msgspec.structs.replace(
            first, id=self.ids.transaction(first.face), created_at=now, updated_at=now,
            expires_at=max(first.expires_at, now + 1), status=Status.PENDING, paid_at=None,
            captured_amount=0, captured_trans_amount=0, capture_open=False,
            refunded_amount=0, refunded_trans_amount=0, refunds=None, captures=None,
            events=None, script=None)
        merchant = self.merchants[first.token]
        merchant.add(twin)
        self.by_id[twin.id] = twin
        twin.log(now, "paid_twice", {"of": first.id})
        first.log(now, "paid_twice", {"twin": twin.id})
        self._emit("created", twin)
        return self._pay(twin)

    def expire(self, txn_id: str) -> Transaction:
        """Expire now, as if the timeout had passed (control surface and scenarios)."""
        txn = self.get(txn_id)
        if txn.status is not Status.PENDING:
            raise TransitionError(f"transaction is {txn.status.value}, it cannot expire")
        txn.expires_at = self.clock.time()
        return self.refresh(txn)


def _follow(done: int, part: int, whole: int, other_done: int, other_whole: int) -> int:
    """The other side of a partial amount, converted cumulatively.

    Converting the running total (not each part) means rounding never drifts: parts that
    add up to the whole on one side add up to the whole on the other, each part's share
    stays within one minor unit of exact, and the total never exceeds ``other_whole``.
    """
    total = proportional(done + part, whole, other_whole)
    return max(0, min(other_whole, total) - other_done)


def wire_status(txn: Transaction) -> str | None:
    """Inquire's ``status``: null while unpaid and unexpired, else the status word."""
    return None if txn.status is Status.PENDING else txn.status.value
