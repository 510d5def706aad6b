"""Exact money: integer minor units per currency, decimal strings at the edges.

Cash is an ``int`` (or int64 array) of minor units with its currency beside it; decimals are
parsed once at intake and formatted once at output. No floats ever hold a balance.
Imports nothing else of clearhouse.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from clearhouse.core.errors import InputError

#: ISO 4217 minor-unit digits for the currencies we know; others default to 2.
MINOR_DIGITS: dict[str, int] = {
    "AUD": 2, "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "CAD": 2, "NZD": 2, "SGD": 2, "HKD": 2,
    "SEK": 2, "NOK": 2, "DKK": 2, "CNY": 2, "INR": 2, "ZAR": 2, "TZS": 2, "COP": 2, "BRL": 2,
    "JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3,
}


def minor_digits(currency: str) -> int:
    """Number of decimal digits of the currency's minor unit."""
    return MINOR_DIGITS.get(currency.upper(), 2)


def to_minor(amount: str | int | Decimal, currency: str) -> int:
    """Parse a decimal amount into exact minor units; refuse sub-minor precision."""
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation as exc:
        raise InputError(f"not a decimal amount: {amount!r}") from exc
    if not value.is_finite():
        raise InputError(f"not a finite amount: {amount!r}")
    scaled = value.scaleb(minor_digits(currency))
    if scaled != scaled.to_integral_value():
        raise InputError(f"amount {amount!r} has more decimals than {currency} allows")
    return int(scaled)


def round_half_up_div(numerator: int, denominator: int) -> int:
    """Integer division rounded half away from zero (commercial rounding)."""
    q = Decimal(numerator) / Decimal(denominator)
    return int(q.to_integral_value(rounding=ROUND_HALF_UP))


def format_minor(amount_minor: int, currency: str) -> str:
    """Format minor units as a decimal string with the currency's digits, e.g. 1050 -> '10.50'."""
    digits = minor_digits(currency)
    amount = int(amount_minor)
    if digits == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}"
