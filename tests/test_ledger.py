"""The ledger's money rules and state machine, with no HTTP in the way.

Every test builds its own ledger on a frozen virtual clock and moves time only with
``clock.advance``; commands are parsed from the same parameter dicts the HTTP layer hands
over, so the input rules and the ledger rules are exercised together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from citcon_sim.domain import commands
from citcon_sim.domain.clock import VirtualClock
from citcon_sim.domain.commands import DEFAULT_TIMEOUT, Lookup
from citcon_sim.domain.errors import (
    BadRequest,
    CitconError,
    InvalidAmount,
    TransitionError,
    Unauthorized,
)
from citcon_sim.domain.events import TransactionChanged
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
    wire_status,
)
from citcon_sim.domain.merchants import MerchantSettings
from citcon_sim.domain.money import FxTable, exponent, normalise_currency, proportional
from citcon_sim.domain.vendors import DAY
from citcon_sim.faces.online import requests

from .helpers import START

TOKEN = "merchant-a"
OTHER = "merchant-b"


# -- helpers -------------------------------------------------------------------------


def make_ledger(
    start: datetime = START,
    *,
    merchants: dict[str, MerchantSettings] | None = None,
    fx: FxTable | None = None,
    tz: Any = UTC,
) -> Ledger:
    return Ledger(VirtualClock(start, frozen=True, tz=tz), fx=fx, ids=IdFactory(1),
                  merchants=merchants)


@pytest.fixture
def ledger() -> Ledger:
    return make_ledger()


@pytest.fixture
def m(ledger: Ledger) -> Merchant:
    return ledger.merchant(TOKEN)


def payment(method: str = "pay_qr", **fields: Any) -> commands.PaymentCommand:
    data: dict[str, Any] = {"vendor": "alipay", "amount": "1000", "currency": "USD",
                            "reference": "order-1"}
    data.update({k: str(v) for k, v in fields.items()})
    data = {k: v for k, v in data.items() if v != "None"}
    return requests.parse_payment(data, method)


def create(ledger: Ledger, merchant: Merchant, **fields: Any) -> Transaction:
    txn, _ = ledger.create_payment(merchant, payment(**fields))
    return txn


def paid(ledger: Ledger, merchant: Merchant, **fields: Any) -> Transaction:
    txn = create(ledger, merchant, **fields)
    return ledger.consumer_pay(txn.id)


def refund(ledger: Ledger, merchant: Merchant, txn: Transaction | None = None,
           **fields: Any):
    data = {k: str(v) for k, v in fields.items()}
    if txn is not None and "transaction_reference" not in data:
        data["transaction_id"] = txn.id
    return ledger.refund(merchant, requests.parse_refund(data))


def by_id(txn: Transaction | str) -> Lookup:
    return Lookup(txn if isinstance(txn, str) else txn.id, None)


def by_ref(reference: str) -> Lookup:
    return Lookup(None, reference)


def capture(ledger: Ledger, merchant: Merchant, txn: Transaction, **fields: Any):
    data = {"transaction_id": txn.id, **{k: str(v) for k, v in fields.items()}}
    return ledger.capture(merchant, requests.parse_capture(data))


# -- minor units and FX -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "exp"), [("JPY", 0), ("KRW", 0), ("USD", 2), ("HKD", 2), ("BHD", 3)]
)
def test_minor_unit_exponent_is_iso4217(code: str, exp: int) -> None:
    assert exponent(code) == exp


@pytest.mark.parametrize("code", ["XYZ", "XAU", "US", "USDX", "12A"])
def test_unknown_or_non_monetary_currency_is_bad_request(code: str) -> None:
    with pytest.raises(BadRequest) as info:
        normalise_currency(code)
    assert info.value.code == 4100


def test_currency_codes_are_normalised_to_upper_case() -> None:
    assert normalise_currency(" usd ") == "USD"


@pytest.mark.parametrize(
    ("fields", "settlement", "trans"),
    [
        # $10.00 at 7.20 CNY per USD is 72.00 CNY.
        ({"vendor": "alipay"}, ("USD", 1000), ("CNY", 7200)),
        # JPY has no minor unit: $10.00 at 150 is 1500 yen, not 150000.
        ({"vendor": "linepay"}, ("USD", 1000), ("JPY", 1500)),
        # KRW has none either; stated on the transaction side, settlement is derived.
        ({"vendor": "kakaopay", "amount": None, "currency": None,
          "trans_amount": 13500, "trans_currency": "KRW"}, ("USD", 1000), ("KRW", 13500)),
        # BHD has three decimals: 0.376 BHD is one dollar, 7.20 CNY.
        ({"vendor": "alipay", "amount": 376, "currency": "BHD"}, ("BHD", 376), ("CNY", 720)),
        # Settlement in yen, transaction in won: 1500 JPY = $10 = 13500 KRW.
        ({"vendor": "card", "amount": 1500, "currency": "JPY"}, ("JPY", 1500), ("KRW", 13500)),
    ],
)
def test_other_side_is_derived_by_fx_in_minor_units(
    ledger: Ledger, m: Merchant, fields: dict, settlement: tuple, trans: tuple
) -> None:
    txn = create(ledger, m, **fields)
    assert (txn.currency, txn.amount) == settlement
    assert (txn.trans_currency, txn.trans_amount) == trans


def test_settlement_derived_in_merchant_settlement_currency_with_three_decimals() -> None:
    ledger = make_ledger(merchants={"bh": MerchantSettings("bh", "1", settlement_currency="BHD")})
    merchant = ledger.merchant("bh")
    txn = create(ledger, merchant, amount=None, currency=None, trans_amount=720,
                 trans_currency="CNY")
    assert (txn.currency, txn.amount) == ("BHD", 376)
    assert (txn.trans_currency, txn.trans_amount) == ("CNY", 720)


def test_both_sides_sent_are_both_stored_without_conversion(ledger: Ledger, m: Merchant) -> None:
    txn = create(ledger, m, trans_amount=7000, trans_currency="CNY")
    assert (txn.amount, txn.currency, txn.trans_amount, txn.trans_currency) == (
        1000, "USD", 7000, "CNY")


def test_custom_fx_rates_are_used() -> None:
    ledger = make_ledger(fx=FxTable({"CNY": "7", "JPY": Decimal("100")}))
    merchant = ledger.merchant(TOKEN)
    assert create(ledger, merchant, reference="a").trans_amount == 7000
    assert create(ledger, merchant, reference="b", vendor="paypay").trans_amount == 1000
    # Currencies not overridden keep the default table.
    assert create(ledger, merchant, reference="c", vendor="jkopay").trans_amount == 32000


def test_fx_rounds_half_to_even_in_the_target_minor_unit() -> None:
    fx = FxTable()
    assert fx.convert(1, "USD", "JPY") == 2  # 1.5 yen
    assert fx.convert(3, "USD", "JPY") == 4  # 4.5 yen
    assert fx.convert(1000, "USD", "USD") == 1000
    assert fx.convert(150, "JPY", "USD") == 100


def test_a_positive_amount_never_converts_to_zero(ledger: Ledger, m: Merchant) -> None:
    # 1 KRW is 0.074 US cents; the smallest charge is one minor unit.
    txn = create(ledger, m, vendor="kakaopay", amount=None, currency=None, trans_amount=1,
                 trans_currency="KRW")
    assert txn.amount == 1


def test_currency_without_fx_rate_is_bad_request(ledger: Ledger, m: Merchant) -> None:
    with pytest.raises(BadRequest, match="no FX rate configured for ZAR"):
        create(ledger, m, currency="ZAR")
    assert ledger.by_id == {}


@pytest.mark.parametrize("rate", ["0", "-1", "NaN", "Infinity", "abc", True])
def test_fx_rates_must_be_positive_finite_numbers(rate: Any) -> None:
    with pytest.raises(BadRequest):
        FxTable({"CNY": rate})


def test_proportional_uses_the_transactions_own_rate() -> None:
    assert proportional(500, 1000, 7000) == 3500
    assert proportional(1, 3, 10) == 3
    assert proportional(5, 0, 10) == 0


# -- references and duplicates ------------------------------------------------------------


@pytest.mark.parametrize("flag", [None, "no", "false"])
def test_repeated_reference_returns_the_existing_transaction(
    ledger: Ledger, m: Merchant, flag: str | None
) -> None:
    first, created = ledger.create_payment(m, payment(reference="r1"))
    assert created is True
    again, created = ledger.create_payment(
        m, payment(reference="r1", amount=5, allow_duplicates=flag)
    )
    assert created is False
    assert again is first and again.amount == 1000
    assert len(ledger.by_id) == 1 and len(m.transactions) == 1


def test_allow_duplicates_yes_creates_a_new_transaction(ledger: Ledger, m: Merchant) -> None:
    first = create(ledger, m, reference="r1")
    second, created = ledger.create_payment(
        m, payment(reference="r1", amount=5, allow_duplicates="yes")
    )
    assert created is True and second.id != first.id and second.amount == 5
    assert len(ledger.by_id) == 2
    # Without the flag the most recent transaction for the reference answers.
    third, created = ledger.create_payment(m, payment(reference="r1"))
    assert created is False and third is second


def test_same_reference_in_two_merchants_is_two_transactions(ledger: Ledger, m: Merchant) -> None:
    a = create(ledger, m, reference="shared")
    b = create(ledger, ledger.merchant(OTHER), reference="shared")
    assert a.id != b.id and a.token == TOKEN and b.token == OTHER


def test_lookups_by_reference_prefer_the_most_recent_sensible_transaction(
    ledger: Ledger, m: Merchant
) -> None:
    first = paid(ledger, m, reference="dup")
    second = create(ledger, m, reference="dup", allow_duplicates="yes")
    # Inquire answers the most recent one.
    assert ledger.inquire(m, by_ref("dup")) is second
    # Refund looks for a paid one.
    result = refund(ledger, m, transaction_reference="dup", amount=100, currency="USD")
    assert result.refunded and result.refund.transaction_id == first.id
    # Cancel skips cancelled ones: first the pending one, then the paid one.
    assert ledger.cancel(m, by_ref("dup")).transaction is second
    res = ledger.cancel(m, by_ref("dup"))
    assert res.cancelled and res.transaction is first
    assert first.refunded_amount == first.amount
    res = ledger.cancel(m, by_ref("dup"))
    assert (res.cancelled, res.status, res.transaction) == (False, CANCEL_DUPLICATE, second)


def test_capture_by_reference_prefers_the_authorised_transaction(
    ledger: Ledger, m: Merchant
) -> None:
    first = paid(ledger, m, vendor="klarna", reference="k")
    create(ledger, m, vendor="klarna", reference="k", allow_duplicates="yes")
    cap = ledger.capture(m, requests.parse_capture({"reference": "k"}))
    assert cap.transaction_id == first.id and first.status is Status.SUCCESS


def test_inquire_by_id_and_reference_must_agree(ledger: Ledger, m: Merchant) -> None:
    txn = create(ledger, m, reference="r1")
    assert ledger.inquire(m, Lookup(txn.id, "r1")) is txn
    with pytest.raises(BadRequest, match="transaction not found"):
        ledger.inquire(m, Lookup(txn.id, "other"))


def test_inquire_by_refund_id_returns_the_refund(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m)
    result = refund(ledger, m, txn, amount=100, currency="USD")
    found = ledger.inquire(m, by_id(result.refund.id))
    assert isinstance(found, Refund) and found.transaction_id == txn.id and found.amount == 100


# -- timeout and expiry -------------------------------------------------------------------


def test_timeout_defaults_to_300_seconds(ledger: Ledger, m: Merchant) -> None:
    txn = create(ledger, m)
    assert DEFAULT_TIMEOUT == 300
    assert txn.expires_at == txn.created_at + 300


def test_expiry_happens_exactly_at_created_plus_timeout(ledger: Ledger, m: Merchant) -> None:
    txn = create(ledger, m)
    ledger.clock.advance(299.999)
    assert ledger.get(txn.id).status is Status.PENDING
    assert wire_status(txn) is None
    ledger.clock.advance(0.001)
    assert ledger.get(txn.id).status is Status.EXPIRED
    assert wire_status(txn) == "expired"
    with pytest.raises(TransitionError):
        ledger.consumer_pay(txn.id)


def test_expiry_is_lazy_and_dated_at_the_timeout(ledger: Ledger, m: Merchant) -> None:
    txn = create(ledger, m, timeout=600)
    events: list[str] = []
    ledger.events.subscribe(TransactionChanged, lambda e: events.append(e.kind))
    ledger.clock.advance(5000)
    assert txn.status is Status.PENDING  # nothing happens until somebody looks
    assert events == []
    assert ledger.inquire(m, by_id(txn)).status is Status.EXPIRED
    assert txn.updated_at == txn.created_at + 600
    assert events == ["expired"]
    assert ledger.transactions(m)[0].status is Status.EXPIRED
    assert events == ["expired"]  # expires once


def test_lookup_by_reference_applies_the_timeout(ledger: Ledger, m: Merchant) -> None:
    create(ledger, m, reference="late")
    ledger.clock.advance(300)
    assert ledger.inquire(m, by_ref("late")).status is Status.EXPIRED


def test_custom_timeout_is_honoured(ledger: Ledger, m: Merchant) -> None:
    txn = create(ledger, m, timeout=600)
    ledger.clock.advance(599)
    assert ledger.consumer_pay(txn.id).status is Status.SUCCESS
    ledger.clock.advance(10)
    assert ledger.get(txn.id).status is Status.SUCCESS  # a paid one never expires


def test_expire_action_expires_now(ledger: Ledger, m: Merchant) -> None:
    txn = create(ledger, m)
    ledger.clock.advance(10)
    assert ledger.expire(txn.id).status is Status.EXPIRED
    assert txn.updated_at == txn.created_at + 10


# -- refunds ----------------------------------------------------------------------------------


def test_partial_and_multiple_refunds_never_exceed_what_was_paid(
    ledger: Ledger, m: Merchant
) -> None:
    txn = paid(ledger, m)
    assert refund(ledger, m, txn, amount=400, currency="USD").refunded
    assert refund(ledger, m, txn, amount=400, currency="USD").refunded
    over = refund(ledger, m, txn, amount=201, currency="USD")
    assert (over.refunded, over.status, over.refund) == (False, REFUND_OVER_PAID, None)
    assert txn.refunded_amount == 800 and len(txn.refunds) == 2
    assert refund(ledger, m, txn, amount=200, currency="USD").refunded
    assert refund(ledger, m, txn, amount=1, currency="USD").status == REFUND_OVER_PAID
    assert (txn.refunded_amount, txn.refunded_trans_amount) == (1000, 7200)
    # Refunds leave the charge's status alone.
    assert wire_status(txn) == "success"


def test_refund_greater_than_payment_is_refused(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m)
    res = refund(ledger, m, txn, amount=1001, currency="USD")
    assert (res.refunded, res.status) == (False, REFUND_OVER_PAID)
    assert txn.refunded_amount == 0 and txn.refunds is None
    assert ledger.open_balance(m) == {"USD": 1000}


def test_refund_on_settlement_side_derives_trans_side_and_last_refund_is_exact(
    ledger: Ledger, m: Merchant
) -> None:
    txn = paid(ledger, m)  # 1000 USD / 7200 CNY
    parts = [refund(ledger, m, txn, amount=333, currency="USD").refund for _ in range(3)]
    # Converted cumulatively: 2397.6 each, the running total rounded (2398, 4795, 7193).
    assert [r.trans_amount for r in parts] == [2398, 2397, 2398]
    last = refund(ledger, m, txn, amount=1, currency="USD").refund
    assert last.trans_amount == 7200 - 7193  # the remainder, no drift
    assert (txn.refunded_amount, txn.refunded_trans_amount) == (1000, 7200)
    assert all(r.currency == "USD" and r.trans_currency == "CNY" for r in [*parts, last])


def test_refund_stated_in_trans_currency(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m)  # 1000 USD / 7200 CNY
    first = refund(ledger, m, txn, trans_amount=3600, trans_currency="CNY").refund
    assert (first.amount, first.trans_amount) == (500, 3600)
    res = refund(ledger, m, txn, trans_amount=3601, trans_currency="CNY")
    assert (res.refunded, res.status) == (False, REFUND_OVER_PAID)
    parts = [refund(ledger, m, txn, trans_amount=1199, trans_currency="CNY").refund
             for _ in range(3)]
    assert all(p.amount in (166, 167) for p in parts)  # 166.53 each, rounded
    # The running total is rounded, not each part: 500 + 3 x 166.53 = 999.58 -> 1000.
    assert txn.refunded_amount == 1000 and all(p.amount > 0 for p in parts)
    assert txn.refunded_amount <= 1000  # rounding never refunds more than was paid
    last = refund(ledger, m, txn, trans_amount=3, trans_currency="CNY").refund
    assert last.amount == 500 - sum(p.amount for p in parts)  # the exact remainder
    assert (txn.refunded_amount, txn.refunded_trans_amount) == (1000, 7200)


def test_refunds_never_exceed_either_side_whatever_the_rounding(
    ledger: Ledger, m: Merchant
) -> None:
    # 3 cents against 2 HKD cents: every conversion rounds.
    txn = paid(ledger, m, vendor="alipay_hk", amount=3, trans_amount=2, trans_currency="HKD")
    for _ in range(2):
        assert refund(ledger, m, txn, amount=1, currency="USD").refunded
        assert txn.refunded_trans_amount <= 2
    assert refund(ledger, m, txn, amount=1, currency="USD").refunded
    assert (txn.refunded_amount, txn.refunded_trans_amount) == (3, 2)
    assert refund(ledger, m, txn, trans_amount=1, trans_currency="HKD").status == REFUND_OVER_PAID


def test_documented_trans_currency_refund_of_a_tiny_payment(ledger: Ledger, m: Merchant) -> None:
    # The documented example: alipay_hk for 1 HKD cent, refunded as trans_amount=1 HKD.
    txn = paid(ledger, m, vendor="alipay_hk", amount=None, currency=None, trans_amount=1,
               trans_currency="HKD")
    assert txn.amount == 1
    res = refund(ledger, m, txn, trans_amount=1, trans_currency="HKD", reason="test")
    assert res.refunded and res.refund.note == "test"
    assert (res.refund.amount, res.refund.trans_amount) == (1, 1)


@pytest.mark.parametrize(
    "fields",
    [{"amount": 100, "currency": "CNY"}, {"amount": 100, "currency": "JPY"},
     {"trans_amount": 100, "trans_currency": "USD"}],
)
def test_refund_currency_must_match_the_side_it_names(
    ledger: Ledger, m: Merchant, fields: dict
) -> None:
    txn = paid(ledger, m)  # USD settlement, CNY transaction
    res = refund(ledger, m, txn, **fields)
    assert (res.refunded, res.status) == (False, REFUND_CURRENCY)
    assert txn.refunded_amount == 0


def test_refund_of_unpaid_transactions_is_refused(ledger: Ledger, m: Merchant) -> None:
    pending = create(ledger, m, reference="p")
    failed = ledger.consumer_fail(create(ledger, m, reference="f").id)
    expired = ledger.expire(create(ledger, m, reference="e").id)
    authorized = paid(ledger, m, reference="a", vendor="klarna")
    assert authorized.status is Status.AUTHORIZED
    for txn in (pending, failed, expired, authorized):
        res = refund(ledger, m, txn, amount=1, currency="USD")
        assert (res.refunded, res.status) == (False, REFUND_NOT_PAID), txn.status
        assert txn.refunds is None


def test_refund_of_cancelled_transactions_is_refused(ledger: Ledger, m: Merchant) -> None:
    unpaid = create(ledger, m, reference="u")
    ledger.cancel(m, by_id(unpaid))
    was_paid = paid(ledger, m, reference="p")
    ledger.cancel(m, by_id(was_paid))
    for txn in (unpaid, was_paid):
        res = refund(ledger, m, txn, amount=1, currency="USD")
        assert (res.refunded, res.status) == (False, REFUND_CANCELLED)


def test_refund_of_unknown_transaction_is_invalid(ledger: Ledger, m: Merchant) -> None:
    res = ledger.refund(m, requests.parse_refund(
        {"transaction_id": "U0000000001-00000000000000000000", "amount": "1", "currency": "USD"}))
    assert (res.refunded, res.status) == (False, INVALID_TRANSACTION)
    res = refund(ledger, m, transaction_reference="nope", amount=1, currency="USD")
    assert (res.refunded, res.status) == (False, INVALID_TRANSACTION)


def test_refund_listeners_and_timeline(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m)
    seen: list[tuple[str, Any]] = []
    ledger.events.subscribe(TransactionChanged, lambda e: seen.append((e.kind, e.detail)))
    res = refund(ledger, m, txn, amount=10, currency="USD", note="n1")
    assert seen == [("refunded", res.refund)]
    assert txn.events[-1][1] == "refunded"
    assert ledger.refunds_by_id[res.refund.id] is res.refund


# -- open balance ------------------------------------------------------------------------------


def test_open_balance_charges_add_and_refunds_subtract(ledger: Ledger, m: Merchant) -> None:
    assert ledger.open_balance(m) == {}
    a = paid(ledger, m, reference="a")
    paid(ledger, m, reference="b", amount=500)
    paid(ledger, m, reference="c", vendor="paypay", amount=300, currency="JPY")
    create(ledger, m, reference="d", amount=700)  # unpaid: no effect
    assert ledger.open_balance(m) == {"USD": 1500, "JPY": 300}
    refund(ledger, m, a, amount=200, currency="USD")
    assert ledger.open_balance(m) == {"USD": 1300, "JPY": 300}
    # The balance is per merchant.
    assert ledger.open_balance(ledger.merchant(OTHER)) == {}


def test_refund_larger_than_open_balance_fails(ledger: Ledger, m: Merchant) -> None:
    a = paid(ledger, m, reference="a")
    b = paid(ledger, m, reference="b")
    assert refund(ledger, m, a, amount=1000, currency="USD").refunded
    ledger.clock.advance(DAY)  # a new day: the balance starts at zero
    assert ledger.open_balance(m) == {}
    res = refund(ledger, m, b, amount=1, currency="USD")
    assert (res.refunded, res.status) == (False, REFUND_NO_BALANCE)
    paid(ledger, m, reference="c", amount=300)
    res = refund(ledger, m, b, amount=301, currency="USD")
    assert (res.refunded, res.status) == (False, REFUND_NO_BALANCE)
    assert refund(ledger, m, b, amount=300, currency="USD").refunded
    assert ledger.open_balance(m) == {"USD": 0}
    assert b.refunded_amount == 300


def test_open_balance_is_per_settlement_currency(ledger: Ledger, m: Merchant) -> None:
    usd = paid(ledger, m, reference="usd", amount=100000)
    jpy = paid(ledger, m, reference="jpy", vendor="paypay", amount=300, currency="JPY")
    ledger.clock.advance(DAY)
    paid(ledger, m, reference="more-usd", amount=100000)
    res = refund(ledger, m, jpy, amount=1, currency="JPY")
    assert res.status == REFUND_NO_BALANCE  # dollars do not fund a yen refund
    assert refund(ledger, m, usd, amount=100000, currency="USD").refunded


def test_open_balance_resets_at_midnight_on_the_simulator_clock() -> None:
    ledger = make_ledger(datetime(2026, 3, 2, 23, 59, 0, tzinfo=UTC))
    m = ledger.merchant(TOKEN)
    txn = paid(ledger, m)
    assert ledger.open_balance(m) == {"USD": 1000}
    ledger.clock.advance(59)  # 23:59:59, same day
    assert refund(ledger, m, txn, amount=100, currency="USD").refunded
    assert ledger.open_balance(m) == {"USD": 900}
    ledger.clock.advance(62)  # 00:01:01 the next day
    assert ledger.open_balance(m) == {}
    res = refund(ledger, m, txn, amount=100, currency="USD")
    assert (res.refunded, res.status) == (False, REFUND_NO_BALANCE)
    assert txn.refunded_amount == 100


def test_open_balance_day_follows_the_clock_time_zone() -> None:
    seoul = ZoneInfo("Asia/Seoul")
    # 23:59 in Seoul is 14:59 UTC: a UTC day would not roll over two minutes later.
    ledger = make_ledger(datetime(2026, 3, 2, 23, 59, 0, tzinfo=seoul), tz=seoul)
    m = ledger.merchant(TOKEN)
    txn = paid(ledger, m)
    ledger.clock.advance(120)
    assert refund(ledger, m, txn, amount=1, currency="USD").status == REFUND_NO_BALANCE


def test_refund_exempt_merchant_may_refund_without_open_balance() -> None:
    ledger = make_ledger(merchants={
        "exempt": MerchantSettings("exempt", "1", refund_exempt=True),
        "plain": MerchantSettings("plain", "2"),
    })
    exempt, plain = ledger.merchant("exempt"), ledger.merchant("plain")
    a, b = paid(ledger, exempt), paid(ledger, plain)
    ledger.clock.advance(DAY)
    assert refund(ledger, plain, b, amount=1000, currency="USD").status == REFUND_NO_BALANCE
    res = refund(ledger, exempt, a, amount=1000, currency="USD")
    assert res.refunded
    assert ledger.open_balance(exempt) == {"USD": -1000}
    # Exemption waives the balance, never the paid amount.
    assert refund(ledger, exempt, a, amount=1, currency="USD").status == REFUND_OVER_PAID


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_pending_makes_it_unpayable(ledger: Ledger, m: Merchant) -> None:
    txn = create(ledger, m)
    res = ledger.cancel(m, by_id(txn))
    assert (res.cancelled, res.status, res.transaction) == (True, CANCEL_OK, txn)
    assert txn.status is Status.CANCELLED and wire_status(txn) == "cancelled"
    assert txn.refunds is None
    with pytest.raises(TransitionError):
        ledger.consumer_pay(txn.id)
    with pytest.raises(TransitionError):
        ledger.consumer_fail(txn.id)
    again = ledger.cancel(m, by_id(txn))
    assert (again.cancelled, again.status, again.transaction) == (False, CANCEL_DUPLICATE, txn)


def test_cancel_paid_within_window_refunds_in_full(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m)
    ledger.clock.advance(3600)
    res = ledger.cancel(m, by_ref("order-1"))
    assert (res.cancelled, res.status) == (True, CANCEL_OK)
    assert txn.status is Status.CANCELLED
    assert len(txn.refunds) == 1 and txn.refunds[0].by_cancel
    assert (txn.refunded_amount, txn.refunded_trans_amount) == (1000, 7200)
    assert ledger.open_balance(m) == {"USD": 0}


def test_cancel_after_partial_refund_refunds_the_rest(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m)
    refund(ledger, m, txn, amount=333, currency="USD")
    res = ledger.cancel(m, by_id(txn))
    assert res.cancelled
    assert [r.amount for r in txn.refunds] == [333, 667]
    assert txn.refunds[1].trans_amount == 7200 - txn.refunds[0].trans_amount
    assert (txn.refunded_amount, txn.refunded_trans_amount) == (1000, 7200)


def test_cancel_after_full_refund_records_no_extra_refund(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m)
    refund(ledger, m, txn, amount=1000, currency="USD")
    assert ledger.cancel(m, by_id(txn)).cancelled
    assert len(txn.refunds) == 1 and txn.refunded_amount == 1000


def test_cancel_is_a_reversal_not_limited_by_open_balance(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m)
    ledger.clock.advance(DAY - 60)  # next day (09:00 -> 08:59), still in alipay's window
    assert ledger.open_balance(m) == {}
    assert ledger.cancel(m, by_id(txn)).cancelled
    assert txn.refunded_amount == 1000
    assert ledger.open_balance(m) == {"USD": -1000}


def test_cancel_window_boundary(ledger: Ledger, m: Merchant) -> None:
    inside = paid(ledger, m, reference="in")
    outside = paid(ledger, m, reference="out")
    ledger.clock.advance(DAY)  # alipay: one day; the boundary itself is inside
    assert ledger.cancel(m, by_id(inside)).status == CANCEL_OK
    ledger.clock.advance(1)
    res = ledger.cancel(m, by_id(outside))
    assert (res.cancelled, res.status, res.transaction) == (False, CANCEL_WINDOW, outside)
    assert outside.status is Status.SUCCESS and outside.refunds is None


def test_cancel_window_depends_on_the_vendor(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m, vendor="naverpay")  # thirty days
    ledger.clock.advance(29 * DAY)
    assert ledger.cancel(m, by_id(txn)).status == CANCEL_OK


def test_per_merchant_cancel_window_override() -> None:
    ledger = make_ledger(merchants={
        "short": MerchantSettings("short", "1", cancel_windows={"alipay": 60}),
        "long": MerchantSettings("long", "2"),
    })
    short, long_ = ledger.merchant("short"), ledger.merchant("long")
    a, b = paid(ledger, short, reference="a"), paid(ledger, short, reference="b")
    c = paid(ledger, long_, reference="c")
    ledger.clock.advance(60)
    assert ledger.cancel(short, by_id(a)).status == CANCEL_OK
    ledger.clock.advance(1)
    assert ledger.cancel(short, by_id(b)).status == CANCEL_WINDOW
    assert ledger.cancel(long_, by_id(c)).status == CANCEL_OK  # vendor default: a day


def test_cancel_unknown_transaction_is_invalid(ledger: Ledger, m: Merchant) -> None:
    for lookup in (by_id("U0000000001-00000000000000000000"), by_ref("nope")):
        res = ledger.cancel(m, lookup)
        assert (res.cancelled, res.status, res.transaction) == (False, INVALID_TRANSACTION, None)


def test_cancel_authorised_releases_it_without_refund(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m, vendor="klarna")
    assert txn.status is Status.AUTHORIZED
    assert ledger.cancel(m, by_id(txn)).cancelled
    assert txn.status is Status.CANCELLED and txn.refunds is None
    with pytest.raises(BadRequest):
        capture(ledger, m, txn)
    assert ledger.open_balance(m) == {}


def test_cancel_of_an_open_multi_capture_refunds_captures_and_closes_it(
    ledger: Ledger, m: Merchant
) -> None:
    txn = paid(ledger, m, vendor="klarna", amount=4000)
    capture(ledger, m, txn, amount=1000, multi_capture="true")
    assert txn.capture_open
    assert ledger.cancel(m, by_id(txn)).cancelled
    assert txn.refunded_amount == 1000 and not txn.capture_open
    with pytest.raises(BadRequest):
        capture(ledger, m, txn, amount=1000, multi_capture="true")
    assert txn.captured_amount == 1000 and ledger.open_balance(m) == {"USD": 0}


@pytest.mark.parametrize("terminal", ["fail", "expire"])
def test_failed_and_expired_may_be_cancelled(
    ledger: Ledger, m: Merchant, terminal: str
) -> None:
    txn = create(ledger, m)
    (ledger.consumer_fail if terminal == "fail" else ledger.expire)(txn.id)
    assert ledger.cancel(m, by_id(txn)).status == CANCEL_OK
    assert txn.status is Status.CANCELLED and txn.refunds is None


# -- capture -----------------------------------------------------------------------------------


def test_delayed_capture_vendor_holds_an_authorisation_until_captured(
    ledger: Ledger, m: Merchant
) -> None:
    txn = paid(ledger, m, vendor="klarna", amount=4000, auto_capture="false")
    assert txn.status is Status.AUTHORIZED and wire_status(txn) == "authorized"
    assert (txn.captured_amount, txn.paid_at) == (0, None)
    assert ledger.open_balance(m) == {}
    ledger.clock.advance(60)
    cap = capture(ledger, m, txn)
    assert (cap.amount, cap.currency, cap.last) == (4000, "USD", True)
    assert txn.status is Status.SUCCESS and txn.captured_amount == 4000
    assert txn.paid_at == ledger.clock.time()
    assert ledger.open_balance(m) == {"USD": 4000}
    with pytest.raises(BadRequest, match="already captured"):
        capture(ledger, m, txn)


@pytest.mark.parametrize("vendor", ["klarna", "card", "payco", "kakaopay", "banktransfer"])
def test_auto_capture_true_pays_directly(ledger: Ledger, m: Merchant, vendor: str) -> None:
    txn = paid(ledger, m, vendor=vendor, auto_capture="true")
    assert txn.status is Status.SUCCESS and txn.captured_amount == txn.amount
    assert ledger.open_balance(m) == {"USD": 1000}
    with pytest.raises(BadRequest):
        capture(ledger, m, txn)


@pytest.mark.parametrize("vendor", ["card", "payco", "kakaopay", "banktransfer", "klarna"])
def test_delayed_capture_vendors_authorise_by_default(
    ledger: Ledger, m: Merchant, vendor: str
) -> None:
    assert paid(ledger, m, vendor=vendor).status is Status.AUTHORIZED


@pytest.mark.parametrize("vendor", ["alipay", "wechatpay", "upop", "linepay", "naverpay"])
def test_non_delayed_vendors_always_capture(ledger: Ledger, m: Merchant, vendor: str) -> None:
    txn = paid(ledger, m, vendor=vendor, auto_capture="false")
    assert txn.auto_capture is True
    assert txn.status is Status.SUCCESS and txn.captured_amount == 1000
    assert ledger.open_balance(m) == {"USD": 1000}


@pytest.mark.parametrize("vendor", ["alipay", "wechatpay", "linepay"])
def test_capture_on_non_delayed_vendor_is_rejected(
    ledger: Ledger, m: Merchant, vendor: str
) -> None:
    txn = paid(ledger, m, vendor=vendor)
    with pytest.raises(BadRequest, match="does not support capture") as info:
        capture(ledger, m, txn)
    assert info.value.code == 4100 and info.value.http_status == 400
    assert txn.captures is None and ledger.open_balance(m) == {"USD": 1000}


def test_partial_capture_closes_a_single_capture_authorisation(
    ledger: Ledger, m: Merchant
) -> None:
    txn = paid(ledger, m, vendor="card", amount=10000, currency="KRW")
    cap = capture(ledger, m, txn, amount=6000)
    assert cap.last and txn.status is Status.SUCCESS and not txn.capture_open
    assert (txn.captured_amount, txn.paid_amount) == (6000, 6000)
    with pytest.raises(BadRequest, match="already captured"):
        capture(ledger, m, txn, amount=1000)
    assert ledger.open_balance(m) == {"KRW": 6000}
    # Refunds are bounded by what was captured, not authorised.
    assert refund(ledger, m, txn, amount=6001, currency="KRW").status == REFUND_OVER_PAID
    assert refund(ledger, m, txn, amount=6000, currency="KRW").refunded


def test_over_capture_is_rejected(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m, vendor="card", amount=10000, currency="KRW")
    with pytest.raises(BadRequest, match="greater than"):
        capture(ledger, m, txn, amount=10001)
    assert txn.status is Status.AUTHORIZED and txn.captured_amount == 0
    assert ledger.open_balance(m) == {}


def test_klarna_multi_capture(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m, vendor="klarna", amount=4000)
    first = capture(ledger, m, txn, amount=1000, multi_capture="true", last_capture="false")
    assert not first.last and txn.capture_open and txn.status is Status.SUCCESS
    assert ledger.open_balance(m) == {"USD": 1000}
    # A capture without multi_capture on an open multi-capture is refused.
    with pytest.raises(BadRequest, match="multi_capture"):
        capture(ledger, m, txn, amount=100)
    capture(ledger, m, txn, amount=1500, multi_capture="true")
    assert txn.captured_amount == 2500 and txn.capture_open
    with pytest.raises(BadRequest, match="greater than"):
        capture(ledger, m, txn, amount=1501, multi_capture="true")
    last = capture(ledger, m, txn, amount=500, multi_capture="true", last_capture="true")
    assert last.last and not txn.capture_open
    assert txn.captured_amount == 3000 and len(txn.captures) == 3
    assert ledger.open_balance(m) == {"USD": 3000}
    with pytest.raises(BadRequest, match="already captured"):
        capture(ledger, m, txn, amount=100, multi_capture="true")
    assert refund(ledger, m, txn, amount=3001, currency="USD").status == REFUND_OVER_PAID


def test_multi_capture_of_the_remainder_closes_it(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m, vendor="klarna", amount=1000, trans_amount=920, trans_currency="EUR")
    caps = [capture(ledger, m, txn, amount=a, multi_capture="true") for a in (333, 333, 334)]
    assert [c.last for c in caps] == [False, False, True]
    assert not txn.capture_open
    # The transaction side is captured exactly, whatever the per-capture rounding.
    assert (txn.captured_amount, txn.captured_trans_amount) == (1000, 920)


def test_refund_of_multi_capture_in_progress_is_bounded_by_captures(
    ledger: Ledger, m: Merchant
) -> None:
    txn = paid(ledger, m, vendor="klarna", amount=4000)
    capture(ledger, m, txn, amount=1000, multi_capture="true")
    assert refund(ledger, m, txn, amount=1001, currency="USD").status == REFUND_OVER_PAID
    assert refund(ledger, m, txn, amount=1000, currency="USD").refunded


@pytest.mark.parametrize("vendor", ["card", "payco", "kakaopay", "banktransfer"])
def test_multi_capture_only_for_klarna(ledger: Ledger, m: Merchant, vendor: str) -> None:
    txn = paid(ledger, m, vendor=vendor)
    with pytest.raises(BadRequest, match="klarna"):
        capture(ledger, m, txn, amount=100, multi_capture="true")
    with pytest.raises(BadRequest, match="klarna"):
        capture(ledger, m, txn, amount=100, last_capture="true")
    assert txn.status is Status.AUTHORIZED and txn.captured_amount == 0


def test_capture_of_pending_or_unknown_is_rejected(ledger: Ledger, m: Merchant) -> None:
    txn = create(ledger, m, vendor="klarna")
    with pytest.raises(BadRequest, match="not authorized"):
        capture(ledger, m, txn)
    with pytest.raises(BadRequest, match="not found"):
        ledger.capture(m, requests.parse_capture({"reference": "nope"}))


# -- merchant isolation -------------------------------------------------------------------------


def test_a_merchant_cannot_touch_another_merchants_transactions(
    ledger: Ledger, m: Merchant
) -> None:
    other = ledger.merchant(OTHER)
    txn = paid(ledger, m, reference="mine")
    auth = paid(ledger, m, reference="auth", vendor="klarna")
    refunded = refund(ledger, m, txn, amount=10, currency="USD").refund
    for lookup in (by_id(txn), by_ref("mine"), by_id(refunded.id)):
        with pytest.raises(BadRequest, match="not found"):
            ledger.inquire(other, lookup)
    for data in ({"transaction_id": txn.id}, {"transaction_reference": "mine"}):
        res = ledger.refund(other, requests.parse_refund({**data, "amount": "1",
                                                          "currency": "USD"}))
        assert (res.refunded, res.status) == (False, INVALID_TRANSACTION)
    for lookup in (by_id(txn), by_ref("mine")):
        res = ledger.cancel(other, lookup)
        assert (res.cancelled, res.status, res.transaction) == (False, INVALID_TRANSACTION, None)
    for data in ({"transaction_id": auth.id}, {"reference": "auth"}):
        with pytest.raises(BadRequest, match="not found"):
            ledger.capture(other, requests.parse_capture(data))
    assert ledger.transactions(other) == []
    # Nothing moved.
    assert txn.status is Status.SUCCESS and txn.refunded_amount == 10
    assert auth.status is Status.AUTHORIZED
    assert ledger.open_balance(m) == {"USD": 990} and ledger.open_balance(other) == {}


# -- merchants, strict mode, reset ----------------------------------------------------------------


def test_lenient_mode_creates_a_merchant_per_token(ledger: Ledger) -> None:
    # Authenticating never creates (issue 13 item 10); enrolling does, once per token.
    a = ledger.enrol(ledger.merchant("tok-1"))
    assert ledger.merchant("tok-1") is a and ledger.enrol("tok-1") is a
    assert ledger.enrol("tok-2") is not a
    assert a.settings.settlement_currency == "USD" and a.settings.refund_exempt is False
    assert a.settings.partner_id == MerchantSettings.lenient("tok-1").partner_id
    assert len(a.settings.partner_id) == 9


@pytest.mark.parametrize("token", [None, ""])
def test_missing_token_is_unauthorized(ledger: Ledger, token: str | None) -> None:
    with pytest.raises(Unauthorized) as info:
        ledger.merchant(token)
    assert info.value.http_status == 401


def test_strict_mode_rejects_unknown_tokens() -> None:
    ledger = make_ledger(merchants={"known": MerchantSettings("known", "300000125")})
    assert ledger.strict
    assert ledger.merchant("known").settings.partner_id == "300000125"
    with pytest.raises(Unauthorized):
        ledger.merchant("unknown")
    assert "unknown" not in ledger.merchants


def test_reset_all(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m)
    refund(ledger, m, txn, amount=1, currency="USD")
    paid(ledger, ledger.merchant(OTHER))
    ledger = ledger.empty()
    assert ledger.by_id == {} and ledger.refunds_by_id == {} and ledger.merchants == {}
    fresh = ledger.merchant(TOKEN)
    assert ledger.open_balance(fresh) == {}
    # The reference is free again.
    again, created = ledger.create_payment(fresh, payment())
    assert created and again.id != txn.id


def test_reset_one_merchant(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m)
    gone = refund(ledger, m, txn, amount=1, currency="USD").refund
    other = ledger.merchant(OTHER)
    kept = paid(ledger, other)
    kept_refund = refund(ledger, other, kept, amount=1, currency="USD").refund
    ledger.forget(TOKEN)
    assert set(ledger.by_id) == {kept.id}
    assert set(ledger.refunds_by_id) == {kept_refund.id}
    assert gone.id not in ledger.refunds_by_id
    assert ledger.open_balance(other) == {"USD": 999}
    assert ledger.transactions(ledger.merchant(TOKEN)) == []
    ledger.forget("never-seen")  # harmless
    assert set(ledger.by_id) == {kept.id}


def test_transactions_are_listed_newest_first_with_paging(ledger: Ledger, m: Merchant) -> None:
    ids = [create(ledger, m, reference=f"r{i}").id for i in range(5)]
    other = create(ledger, ledger.merchant(OTHER), reference="x").id
    assert [t.id for t in ledger.transactions(m)] == ids[::-1]
    assert [t.id for t in ledger.transactions(m, limit=2, offset=1)] == [ids[3], ids[2]]
    assert [t.id for t in ledger.transactions()][:2] == [other, ids[4]]


# -- state machine -----------------------------------------------------------------------------


def test_cancelled_is_final_and_paths_match_the_docstring() -> None:
    assert TRANSITIONS[Status.CANCELLED] == frozenset()
    assert TRANSITIONS[Status.SUCCESS] == frozenset({Status.CANCELLED})
    assert Status.SUCCESS in TRANSITIONS[Status.AUTHORIZED]
    assert Status.FAILED not in TRANSITIONS[Status.SUCCESS]


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        ("pay", "pay"),
        ("pay", "fail"),
        ("pay", "expire"),
        ("pay", "consumer_cancel"),
        ("fail", "pay"),
        ("fail", "fail"),
        ("fail", "expire"),
        ("expire", "pay"),
        ("expire", "fail"),
        ("consumer_cancel", "pay"),
        ("consumer_cancel", "consumer_cancel"),
        ("authorize", "pay"),
        ("authorize", "fail"),
        ("authorize", "expire"),
    ],
)
def test_invalid_transitions_are_refused(
    ledger: Ledger, m: Merchant, setup: str, action: str
) -> None:
    actions = {
        "pay": ledger.consumer_pay,
        "fail": ledger.consumer_fail,
        "expire": ledger.expire,
        "consumer_cancel": ledger.consumer_cancel,
    }
    txn = create(ledger, m, vendor="klarna" if setup == "authorize" else "alipay")
    actions["pay" if setup == "authorize" else setup](txn.id)
    before = (txn.status, txn.updated_at, len(txn.events), ledger.open_balance(m))
    ledger.clock.advance(1)
    with pytest.raises(TransitionError) as info:
        actions[action](txn.id)
    assert info.value.http_status == 409
    assert (txn.status, txn.updated_at, len(txn.events), ledger.open_balance(m)) == before


def test_consumer_actions_record_timeline_and_events(ledger: Ledger, m: Merchant) -> None:
    kinds: list[str] = []
    ledger.events.subscribe(TransactionChanged, lambda e: kinds.append(e.kind))
    a = create(ledger, m, reference="a")
    ledger.consumer_pay(a.id)
    b = create(ledger, m, reference="b")
    ledger.consumer_fail(b.id, "insufficient funds")
    c = create(ledger, m, reference="c", vendor="klarna")
    ledger.consumer_pay(c.id)
    ledger.consumer_cancel(create(ledger, m, reference="d").id)
    assert kinds == ["created", "paid", "created", "failed", "created", "authorized",
                     "created", "cancelled"]
    assert b.events == [(b.created_at, "fail", {"reason": "insufficient funds"})]
    assert wire_status(b) == "fail"


def test_get_unknown_id_is_not_found(ledger: Ledger) -> None:
    from citcon_sim.domain.errors import NotFound

    with pytest.raises(NotFound) as info:
        ledger.get("U0000000001-00000000000000000000")
    assert info.value.http_status == 404


def test_refund_between_klarna_captures_converts_at_the_transactions_own_rate(
    ledger: Ledger, m: Merchant
) -> None:
    """Found by the state machine: a refund converted at the rate of what was captured so
    far (2 JPY ↔ 1 cent, so 1 JPY → 0 cents) drifts from the payment's own rate
    (3 JPY ↔ 2 cents: 1 JPY → 1 cent) once the rest is captured."""
    txn = paid(ledger, m, vendor="klarna", amount=3, currency="JPY", trans_currency="USD",
               auto_capture="false")
    assert (txn.amount, txn.trans_amount) == (3, 2)
    first = capture(ledger, m, txn, amount=2, multi_capture="true")
    assert first.trans_amount == 1  # round(2 × 2/3)
    result = refund(ledger, m, txn, amount=1, currency="JPY")
    assert result.refunded and result.refund.trans_amount == 1  # round(1 × 2/3), not 0
    capture(ledger, m, txn, multi_capture="true")
    assert (txn.captured_amount, txn.captured_trans_amount) == (3, 2)
    # The rest refunds exactly what is left on both sides.
    rest = refund(ledger, m, txn, amount=2, currency="JPY")
    assert (rest.refund.amount, rest.refund.trans_amount) == (2, 1)
    assert (txn.refunded_amount, txn.refunded_trans_amount) == (3, 2)


# -- money rules the HTTP tests check (under load, or through the wire), one call at a time


@pytest.mark.parametrize(("fields", "code"), [
    ({"amount": 0}, 4102),
    ({"amount": -1}, 4102),
    ({"amount": "9.99"}, 4102),
    ({"amount": "abc"}, 4102),
    ({"amount": "1,000"}, 4102),
    ({"amount": "$10"}, 4102),
    ({"amount": None, "currency": None}, 4102),
    ({"amount": None, "currency": None, "trans_amount": 0, "trans_currency": "CNY"}, 4102),
    ({"currency": None}, 4100),
    ({"currency": "XYZ"}, 4100),
    ({"trans_amount": 5}, 4100),
])
def test_payment_amounts_are_positive_whole_minor_units_in_a_currency(
    fields: dict[str, Any], code: int
) -> None:
    with pytest.raises(CitconError) as refused:
        payment(**fields)
    assert refused.value.code == code


@pytest.mark.parametrize("fields", [
    {"amount": "0", "currency": "USD"}, {"amount": "-1", "currency": "USD"},
    {"amount": "9.99", "currency": "USD"}, {"amount": "abc", "currency": "USD"}, {},
])
def test_refund_amounts_are_positive_whole_minor_units(fields: dict[str, str]) -> None:
    with pytest.raises(InvalidAmount):
        requests.parse_refund({"transaction_id": "x", **fields})


def test_equal_refunds_refund_exactly_what_fits(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m, amount=100_000)
    results = [refund(ledger, m, txn, amount=300, currency="USD") for _ in range(500)]
    assert all(r.refunded for r in results[:333])  # 333 x 300 = 99_900 fits, 100 is left
    assert all((r.refunded, r.status, r.refund) == (False, REFUND_OVER_PAID, None)
               for r in results[333:])
    assert len({r.refund.id for r in results[:333] if r.refund}) == 333
    assert txn.refunded_amount == sum(r.amount for r in txn.refunds or []) == 99_900
    assert ledger.open_balance(m) == {"USD": 100}  # charged for each refund, and only those


def test_partial_captures_stop_at_the_authorisation(ledger: Ledger, m: Merchant) -> None:
    txn = paid(ledger, m, vendor="klarna", amount=10_000, auto_capture="false")
    assert txn.status is Status.AUTHORIZED
    totals = []
    for _ in range(142):  # 142 x 70 = 9_940 fits in 10_000
        cap = capture(ledger, m, txn, amount=70, multi_capture="true", last_capture="false")
        assert not cap.last
        totals.append(txn.captured_amount)
    assert totals == [70 * i for i in range(1, 143)]
    with pytest.raises(BadRequest, match="greater than"):
        capture(ledger, m, txn, amount=70, multi_capture="true", last_capture="false")
    assert txn.status is Status.SUCCESS and txn.captured_amount == 9_940
    assert ledger.open_balance(m) == {"USD": 9_940}


def test_a_second_consumer_payment_is_refused_and_credits_once(
    ledger: Ledger, m: Merchant
) -> None:
    txn = paid(ledger, m, amount=4000)
    with pytest.raises(TransitionError):
        ledger.consumer_pay(txn.id)
    assert txn.status is Status.SUCCESS and txn.captured_amount == 4000
    assert ledger.open_balance(m) == {"USD": 4000}
    assert refund(ledger, m, txn, amount=4000, currency="USD").refunded
    assert ledger.open_balance(m) == {"USD": 0}


@pytest.mark.parametrize(("action", "status"), [
    ("pay", Status.SUCCESS), ("fail", Status.FAILED), ("cancel", Status.CANCELLED),
    ("expire", Status.EXPIRED)])
def test_consumer_actions_by_name(ledger: Ledger, m: Merchant, action: str,
                                  status: Status) -> None:
    txn = create(ledger, m, reference=f"act-{action}")
    assert ledger.consumer_act(txn.id, action).status is status
    with pytest.raises(TransitionError):
        ledger.consumer_act(txn.id, action)  # a second time: the payment has moved on


def test_an_unknown_consumer_action_is_refused(ledger: Ledger, m: Merchant) -> None:
    txn = create(ledger, m)
    with pytest.raises(BadRequest):
        ledger.consumer_act(txn.id, "refund")
    assert txn.status is Status.PENDING
