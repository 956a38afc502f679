"""Amounts and currencies: minor units inside, decimals at the edges (ISO 4217).

>>> parse_amount("12.34", currency("EUR"))
1234
>>> format_amount(1234, currency("978"))
'12.34 EUR'
>>> parse_amount("500", currency("JPY"))
500
>>> parse_amount("1e3", currency("EUR"))  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
terminal.money.MoneyError: amount '1e3' is not an amount
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

__all__ = ["Currency", "MoneyError", "currency", "format_amount", "parse_amount"]

# What a person types as an amount: digits, optionally a point and more digits (ASCII only:
# Python's Decimal would also take "1e3", "1_000", "+3.00" and non-ASCII digits).
_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+", re.ASCII)


class MoneyError(ValueError):
    """An amount or currency the terminal cannot accept."""


@dataclass(frozen=True)
class Currency:
    code: str  # alphabetic, e.g. "EUR"
    numeric: int  # e.g. 978
    exponent: int  # digits after the decimal point


# A working subset of ISO 4217 (code, numeric, exponent); extend as markets need.
_CURRENCIES = [
    ("AED", 784, 2),
    ("AUD", 36, 2),
    ("BHD", 48, 3),
    ("BRL", 986, 2),
    ("CAD", 124, 2),
    ("CHF", 756, 2),
    ("CLP", 152, 0),
    ("CNY", 156, 2),
    ("CZK", 203, 2),
    ("DKK", 208, 2),
    ("EUR", 978, 2),
    ("GBP", 826, 2),
    ("HKD", 344, 2),
    ("HUF", 348, 2),
    ("IDR", 360, 2),
    ("ILS", 376, 2),
    ("INR", 356, 2),
    ("ISK", 352, 0),
    ("JOD", 400, 3),
    ("JPY", 392, 0),
    ("KRW", 410, 0),
    ("KWD", 414, 3),
    ("MXN", 484, 2),
    ("MYR", 458, 2),
    ("NOK", 578, 2),
    ("NZD", 554, 2),
    ("OMR", 512, 3),
    ("PHP", 608, 2),
    ("PLN", 985, 2),
    ("RON", 946, 2),
    ("RUB", 643, 2),
    ("SAR", 682, 2),
    ("SEK", 752, 2),
    ("SGD", 702, 2),
    ("THB", 764, 2),
    ("TND", 788, 3),
    ("TRY", 949, 2),
    ("TWD", 901, 2),
    ("UAH", 980, 2),
    ("USD", 840, 2),
    ("VND", 704, 0),
    ("ZAR", 710, 2),
]
_BY_CODE = {c: Currency(c, n, e) for c, n, e in _CURRENCIES}
_BY_NUMERIC = {cur.numeric: cur for cur in _BY_CODE.values()}


def currency(name: str | int) -> Currency:
    """Look a currency up by alphabetic code ('EUR'), numeric code (978, '978', '0978')."""
    if isinstance(name, int) or str(name).strip().isdigit():
        num = int(name)
        if num in _BY_NUMERIC:
            return _BY_NUMERIC[num]
        raise MoneyError(f"unknown ISO 4217 numeric currency code {num:03d}")
    code = str(name).strip().upper()
    if code in _BY_CODE:
        return _BY_CODE[code]
    raise MoneyError(f"unknown currency {name!r} (use an ISO 4217 code such as EUR or 978)")


def parse_amount(text: str, cur: Currency) -> int:
    """A decimal amount as typed -> minor units; refuses more decimals than the currency has."""
    if not _AMOUNT.fullmatch(text.strip()):
        raise MoneyError(
            f"amount {text!r} is not an amount: write digits with at most one decimal point, e.g. 12.34 "
            "(no sign, exponent, underscores or thousands separators)"
        )
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise MoneyError(f"amount {text!r} is not a number") from None
    minor = value.scaleb(cur.exponent)
    if minor != minor.to_integral_value():
        raise MoneyError(f"amount {text!r} has more than {cur.exponent} decimals for {cur.code}")
    if minor > 999_999_999_999:
        raise MoneyError(f"amount {text!r} does not fit 12 digits")
    return int(minor)


def format_amount(minor: int, cur: Currency) -> str:
    """Minor units as the decimal amount with its code.

    >>> format_amount(-1050, currency("EUR"))
    '-10.50 EUR'
    """
    sign = "-" if minor < 0 else ""
    if cur.exponent == 0:
        return f"{sign}{abs(minor)} {cur.code}"
    whole, frac = divmod(abs(minor), 10**cur.exponent)
    return f"{sign}{whole}.{frac:0{cur.exponent}d} {cur.code}"
