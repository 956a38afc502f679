"""The data of one transaction, as it comes in from outside ``emv``.

Everything a kernel would otherwise read from a clock or a random source (date,
time, unpredictable number, the random number for random selection) is an
argument here, so that a transaction replays exactly.

>>> txn = TransactionData(amount=1234, currency=978, date=bytes.fromhex("250614"),
...                       unpredictable_number=bytes.fromhex("11223344"))
>>> txn.amount_bcd().hex()
'000000001234'
>>> txn.currency_bcd().hex()
'0978'
>>> txn.on_date()
datetime.date(2025, 6, 14)
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emv.c2_torn import TornLog
    from emv.c7_torn import EcTornLog

__all__ = [
    "TransactionData",
    "TransactionDataError",
    "bcd",
    "bcd_date",
    "bcd_moment",
    "bcd_to_int",
]

TRANSACTION_TYPES = {0x00: "purchase", 0x01: "cash", 0x09: "cashback", 0x20: "refund"}


class TransactionDataError(ValueError):
    """A :class:`TransactionData` field out of range; the message names the field."""


def bcd(value: int, length: int) -> bytes:
    """``value`` as packed BCD (format n) in ``length`` bytes, left-padded with zeros.

    >>> bcd(1234, 6).hex()
    '000000001234'
    >>> bcd(978, 2).hex()
    '0978'
    """
    if value < 0:
        raise ValueError(f"negative value {value} cannot be BCD")
    digits = str(value).rjust(length * 2, "0")
    if len(digits) > length * 2:
        raise ValueError(f"{value} does not fit {length} BCD bytes")
    return bytes.fromhex(digits)


def bcd_to_int(data: bytes) -> int:
    """Packed BCD back to an int; raises ValueError on a nibble above 9.

    >>> bcd_to_int(bytes.fromhex("000000005000"))
    5000
    """
    text = data.hex()
    if not text.isdigit():
        raise ValueError(f"{text.upper()} is not BCD")
    return int(text) if text else 0


def bcd_date(data: bytes) -> datetime.date:
    """A YYMMDD BCD date (tags 9A, 5F24, 5F25) as a date; years 00-49 are 20xx.

    EMV Book 4 section 6.7.3: YY 00-49 -> 20YY, 50-99 -> 19YY.

    >>> bcd_date(bytes.fromhex("491231"))
    datetime.date(2049, 12, 31)
    >>> bcd_date(bytes.fromhex("991231"))
    datetime.date(1999, 12, 31)
    """
    if len(data) != 3:
        raise ValueError(f"a date is 3 bytes, got {len(data)}")
    text = data.hex()
    if not text.isdigit():
        raise ValueError(f"date {text.upper()} is not BCD")
    yy, mm, dd = int(text[0:2]), int(text[2:4]), int(text[4:6])
    year = 2000 + yy if yy < 50 else 1900 + yy
    return datetime.date(year, mm, dd)  # raises ValueError on month 13 etc.


def bcd_moment(date: bytes, time: bytes) -> datetime.datetime:
    """A transaction's date (9A, YYMMDD) and time (9F21, HHMMSS) in BCD as one moment.

    A time that is not six BCD digits counts as midnight; hours, minutes and
    seconds past their range are clamped.  A bad date raises ValueError.

    >>> bcd_moment(bytes.fromhex("261206"), bytes.fromhex("134501"))
    datetime.datetime(2026, 12, 6, 13, 45, 1)
    """
    day = bcd_date(date)
    digits = time.hex()
    hh, mm, ss = (int(digits[i : i + 2]) for i in (0, 2, 4)) if len(digits) == 6 and digits.isdigit() else (0, 0, 0)
    return datetime.datetime(day.year, day.month, day.day, min(hh, 23), min(mm, 59), min(ss, 59))


def _frozen_map(m: Mapping[int, bytes]) -> Mapping[int, bytes]:
    return MappingProxyType(dict(m))


@dataclass(frozen=True)
class TransactionData:
    """Amounts and the outside inputs of one transaction.

    ``amount`` and ``amount_other`` are in minor units of ``currency``
    (ISO 4217 numeric).  ``date`` is YYMMDD and ``time`` HHMMSS, both BCD.
    ``overrides`` (tag -> value) replace the terminal's own data objects,
    for replays and tests.

    ``clock`` (seconds, monotonic) is how a kernel times what Book C-2 has it
    time (the relay resistance exchange); None: nothing is timed and every
    exchange counts as instantaneous.  ``retry_numbers`` are further
    unpredictable numbers (4 bytes each) for a relay resistance exchange
    repeated because it took too long; none: no repetition.  ``relay_entropy``
    is the first exchange's entropy (None: the unpredictable number); a replay
    gives the recorded one.  ``torn_log`` is the
    terminal's torn transaction log (:mod:`emv.c2_torn`), kept across its
    transactions; None: torn transactions are neither logged nor recovered.
    ``ec_torn_log`` is kernel C-7's log of torn electronic-cash GPOs
    (:mod:`emv.c7_torn`), likewise; None: none is kept or sent again.
    """

    amount: int
    currency: int
    date: bytes
    unpredictable_number: bytes
    amount_other: int = 0
    currency_exponent: int = 2
    transaction_type: int = 0x00
    time: bytes = bytes(3)
    random_number: int = 0
    sequence_counter: int = 1
    overrides: Mapping[int, bytes] = field(default_factory=dict)
    clock: Callable[[], float] | None = field(default=None, compare=False, repr=False)
    relay_entropy: bytes | None = None
    retry_numbers: tuple[bytes, ...] = ()
    torn_log: TornLog | None = field(default=None, compare=False, repr=False)
    ec_torn_log: EcTornLog | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> TransactionDataError:
            return TransactionDataError(f"transaction field {name!r}: {why}")

        if not 0 <= self.amount <= 999_999_999_999:
            raise bad("amount", f"{self.amount} outside 0..999999999999")
        if not 0 <= self.amount_other <= 999_999_999_999:
            raise bad("amount_other", f"{self.amount_other} outside 0..999999999999")
        if not 0 <= self.currency <= 999:
            raise bad("currency", f"{self.currency} is not an ISO 4217 numeric code")
        if not 0 <= self.currency_exponent <= 9:
            raise bad("currency_exponent", f"{self.currency_exponent} outside 0..9")
        if len(self.date) != 3:
            raise bad("date", "must be 3 bytes YYMMDD BCD")
        try:
            bcd_date(self.date)
        except ValueError as exc:
            raise bad("date", str(exc)) from None
        if len(self.time) != 3 or not self.time.hex().isdigit():
            raise bad("time", "must be 3 bytes HHMMSS BCD")
        if len(self.unpredictable_number) != 4:
            raise bad("unpredictable_number", "must be 4 bytes")
        if not 0 <= self.transaction_type <= 0xFF or not f"{self.transaction_type:02x}".isdigit():
            raise bad("transaction_type", f"{self.transaction_type:#x} is not a 2-digit BCD code")
        if not 0 <= self.random_number <= 99:
            raise bad("random_number", f"{self.random_number} outside 0..99")
        if not 0 <= self.sequence_counter <= 99_999_999:
            raise bad("sequence_counter", f"{self.sequence_counter} outside 0..99999999")
        for tag, value in self.overrides.items():
            if not isinstance(tag, int) or not isinstance(value, (bytes, bytearray)):
                raise bad("overrides", "must map int tags to bytes")
        if any(len(n) != 4 for n in self.retry_numbers):
            raise bad("retry_numbers", "each must be 4 bytes")
        if self.relay_entropy is not None and len(self.relay_entropy) != 4:
            raise bad("relay_entropy", "must be 4 bytes")
        object.__setattr__(self, "overrides", _frozen_map(self.overrides))

    def amount_bcd(self) -> bytes:
        """9F02, Amount Authorised (n12)."""
        return bcd(self.amount, 6)

    def amount_other_bcd(self) -> bytes:
        """9F03, Amount Other (n12)."""
        return bcd(self.amount_other, 6)

    def currency_bcd(self) -> bytes:
        """5F2A, Transaction Currency Code (n3 in 2 bytes)."""
        return bcd(self.currency, 2)

    def currency_exponent_bcd(self) -> bytes:
        """5F36, Transaction Currency Exponent (n1)."""
        return bcd(self.currency_exponent, 1)

    def transaction_type_byte(self) -> bytes:
        """9C, Transaction Type (n2): the int is already written as BCD (0x20 = refund)."""
        return bytes([self.transaction_type])

    def sequence_counter_bcd(self) -> bytes:
        """9F41, Transaction Sequence Counter (n4-8, here 4 bytes)."""
        return bcd(self.sequence_counter, 4)

    def on_date(self) -> datetime.date:
        """The transaction date as a :class:`datetime.date` (for expiry checks)."""
        return bcd_date(self.date)
