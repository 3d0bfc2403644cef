"""Currencies, minor units and the FX table.

Amounts on the wire are integers in the currency's minor unit; the exponent comes from
the ISO 4217 table (the ``iso4217`` package), so JPY and KRW have none and BHD has three.
The FX table converts between a transaction's settlement side (``amount``/``currency``)
and its transaction side (``trans_amount``/``trans_currency``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache

from citcon_sim.domain.errors import BadRequest

# Units of each currency one US dollar buys. Illustrative mid-market rates, fixed so that
# tests are deterministic; override with ``--fx FILE`` or the merchants file's ``fx:``.
DEFAULT_FX: dict[str, Decimal] = {
    code: Decimal(rate)
    for code, rate in {
        "USD": "1", "CAD": "1.37", "EUR": "0.92", "GBP": "0.79", "AUD": "1.52",
        "NZD": "1.66", "CNY": "7.20", "HKD": "7.80", "TWD": "32.0", "JPY": "150",
        "KRW": "1350", "SGD": "1.35", "MYR": "4.70", "THB": "36.0", "IDR": "15800",
        "PHP": "56.0", "VND": "25000", "INR": "83.0", "MXN": "17.0", "BHD": "0.376",
        "CHF": "0.88", "SEK": "10.5", "NOK": "10.6", "DKK": "6.9", "AED": "3.6725",
    }.items()
}


@cache
def exponent(code: str) -> int:
    """ISO 4217 minor-unit exponent; unknown or non-monetary codes are bad requests."""
    from iso4217 import Currency  # on first use (cached per code): not at start-up

    try:
        exp = Currency[code].exponent
    except KeyError:
        raise BadRequest(f"unknown currency {code!r}") from None
    if exp is None:
        raise BadRequest(f"{code} is not a payment currency")
    return int(exp)


def normalise_currency(raw: str) -> str:
    code = raw.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise BadRequest(f"currency must be a 3-letter ISO 4217 code, got {raw!r}")
    exponent(code)
    return code


def to_major(amount: int, code: str) -> Decimal:
    return Decimal(amount).scaleb(-exponent(code))


class FxTable:
    def __init__(self, rates: Mapping[str, Decimal | str | float] | None = None) -> None:
        self.rates: dict[str, Decimal] = dict(DEFAULT_FX)
        for code, rate in (rates or {}).items():
            self.set(code, rate)

    def set(self, code: str, rate: Decimal | str | float) -> None:
        code = normalise_currency(code)
        try:
            value = Decimal(str(rate))
        except ArithmeticError:  # "abc", True
            raise BadRequest(f"FX rate for {code} must be a number, got {rate!r}") from None
        if not value.is_finite() or value <= 0:  # NaN and Infinity break every conversion
            raise BadRequest(f"FX rate for {code} must be positive and finite")
        self.rates[code] = value

    def convert(self, amount: int, src: str, dst: str) -> int:
        """Convert minor units of ``src`` to minor units of ``dst`` (banker's rounding)."""
        if src == dst:
            return amount
        for code in (src, dst):
            if code not in self.rates:
                raise BadRequest(f"no FX rate configured for {code}")
        major = to_major(amount, src) / self.rates[src] * self.rates[dst]
        minor = major.scaleb(exponent(dst)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
        return int(minor)

    def snapshot(self) -> dict[str, str]:
        return {code: str(rate) for code, rate in sorted(self.rates.items())}


def proportional(part: int, whole_from: int, whole_to: int) -> int:
    """``part`` of ``whole_from`` expressed as the same share of ``whole_to``.

    Used to move refunds and captures between a transaction's two sides at the rate the
    transaction itself was struck at, never at today's table rate.
    """
    if whole_from == 0:
        return 0
    share = Decimal(part) * Decimal(whole_to) / Decimal(whole_from)
    return int(share.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
