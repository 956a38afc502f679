"""Field codecs of the hard-wallet protocol: packed BCD numbers, dates, currencies, payee text.

Every decoder raises :class:`ProtocolError` naming the field; every encoder
raises ValueError for a value it cannot represent.

>>> bcd_n12(123456).hex(), from_bcd_n12(bytes.fromhex("000000123456"), "DF51")
('000000123456', 123456)
>>> from_date_time(bytes.fromhex("20261206093000"), "DF54").isoformat()
'2026-12-06T09:30:00+00:00'
"""

from __future__ import annotations

from datetime import UTC, date, datetime

__all__ = [
    "MAX_AMOUNT",
    "ProtocolError",
    "UnsupportedVersion",
    "ascii_field",
    "bcd_date",
    "bcd_n12",
    "check_ascii",
    "currency_code",
    "date_time",
    "from_ascii",
    "from_bcd_date",
    "from_bcd_n12",
    "from_currency",
    "from_date_time",
]

MAX_AMOUNT = 999_999_999_999


class ProtocolError(ValueError):
    """A wallet's answer that breaks the protocol; ``reason`` says how, naming the tag."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedVersion(ProtocolError):
    """Well-formed, but of a protocol or certificate version this terminal does not know."""


def _digits(raw: bytes, tag: str) -> str:
    text = raw.hex()
    if not text.isdigit():
        raise ProtocolError(f"{tag} is not BCD")
    return text


def bcd_n12(value: int) -> bytes:
    if not 0 <= value <= MAX_AMOUNT:
        raise ValueError(f"not an n12 amount: {value}")
    return bytes.fromhex(f"{value:012d}")


def from_bcd_n12(raw: bytes, tag: str) -> int:
    return int(_digits(raw, tag))


def currency_code(value: int) -> bytes:
    """ISO 4217 numeric code, two bytes of BCD (156 -> 01 56)."""
    if not 0 < value <= 999:
        raise ValueError(f"not an ISO 4217 numeric code: {value}")
    return bytes.fromhex(f"{value:04d}")


def from_currency(raw: bytes, tag: str) -> int:
    value = int(_digits(raw, tag))
    if not 0 < value <= 999:
        raise ProtocolError(f"{tag} is not an ISO 4217 numeric code")
    return value


def bcd_date(value: date) -> bytes:
    return bytes.fromhex(value.strftime("%Y%m%d"))


def from_bcd_date(raw: bytes, tag: str) -> date:
    text = _digits(raw, tag)
    try:
        return date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
    except ValueError as exc:
        raise ProtocolError(f"{tag} is not a date") from exc


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def date_time(value: datetime) -> bytes:
    """Seven bytes of BCD YYYYMMDDhhmmss, in UTC (a naive datetime is taken as UTC)."""
    return bytes.fromhex(_utc(value).strftime("%Y%m%d%H%M%S"))


def from_date_time(raw: bytes, tag: str) -> datetime:
    t = _digits(raw, tag)
    try:
        fields = (int(t[0:4]), int(t[4:6]), int(t[6:8]), int(t[8:10]), int(t[10:12]), int(t[12:14]))
        return datetime(*fields, tzinfo=UTC)
    except ValueError as exc:
        raise ProtocolError(f"{tag} is not a date and time") from exc


def check_ascii(value: str, what: str, lengths: tuple[int, int]) -> None:
    low, high = lengths
    if not (low <= len(value) <= high and value.isascii() and value.isprintable()):
        raise ValueError(f"{what} must be {low}-{high} printable ASCII characters: {value!r}")


def ascii_field(value: str) -> bytes:
    return value.encode("ascii")


def from_ascii(raw: bytes, tag: str) -> str:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{tag} is not ASCII") from exc
    if not text.isprintable():
        raise ProtocolError(f"{tag} is not printable ASCII")
    return text
