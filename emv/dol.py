"""Data Object Lists (PDOL, CDOL1/2, DDOL, TDOL), EMV Book 3 section 5.4.

A DOL is a list of (tag, length) pairs *in order*; never key it by tag alone.
Building the data for a DOL pads or truncates each value by its format:

- ``n`` (numeric BCD): shorter -> left-pad 00; longer -> drop leftmost bytes;
- ``cn`` (compressed numeric): shorter -> right-pad FF; longer -> drop rightmost;
- anything else: shorter -> right-pad 00; longer -> drop rightmost bytes;
- a data object the terminal does not have -> zeros of the asked length.

>>> dol = parse(bytes.fromhex("9F0206 5F2A02 9F3704"))
>>> [(hex(e.tag), e.length) for e in dol]
[('0x9f02', 6), ('0x5f2a', 2), ('0x9f37', 4)]
>>> build(dol, {0x9F02: bytes.fromhex("1234"), 0x5F2A: bytes.fromhex("0978")}).hex().upper()
'000000001234097800000000'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from emv.tlv import TlvError, _read_length, _read_tag, tag_hex

__all__ = ["DolEntry", "DolError", "build", "fit", "parse", "split"]


class DolError(TlvError):
    """A malformed DOL (as sent by a card)."""


@dataclass(frozen=True)
class DolEntry:
    tag: int
    length: int

    def __str__(self) -> str:
        return f"{tag_hex(self.tag)}({self.length})"


def parse(data: bytes) -> list[DolEntry]:
    """Parse a DOL into its ordered entries.

    >>> parse(bytes.fromhex("9F6604"))
    [DolEntry(tag=40806, length=4)]
    """
    entries: list[DolEntry] = []
    pos = 0
    data = bytes(data)
    while pos < len(data):
        try:
            tag, pos = _read_tag(data, pos)
            length, pos = _read_length(data, pos, tag)
        except TlvError as exc:
            raise DolError(exc.reason, exc.offset, exc.tag) from None
        if length > 252:
            raise DolError(f"entry length {length} is larger than a command can carry", pos, tag)
        entries.append(DolEntry(tag, length))
    return entries


def fit(value: bytes, length: int, fmt: str) -> bytes:
    """Pad or truncate ``value`` to ``length`` by the rules for ``fmt``.

    >>> fit(bytes.fromhex("0978"), 3, "n").hex()
    '000978'
    >>> fit(bytes.fromhex("5413"), 4, "cn").hex()
    '5413ffff'
    >>> fit(bytes.fromhex("00001234"), 2, "n").hex()
    '1234'
    """
    if len(value) == length:
        return bytes(value)
    if len(value) > length:
        return bytes(value[len(value) - length :]) if fmt == "n" else bytes(value[:length])
    pad = length - len(value)
    if fmt == "n":
        return b"\x00" * pad + bytes(value)
    if fmt == "cn":
        return bytes(value) + b"\xff" * pad
    return bytes(value) + b"\x00" * pad


def _default_format(tag: int) -> str:
    from emv.tags import format_of

    return format_of(tag)


def build(
    dol: Sequence[DolEntry],
    values: Mapping[int, bytes],
    format_of: Callable[[int], str] | None = None,
) -> bytes:
    """Concatenate the values the DOL asks for, in DOL order."""
    fmt_of = format_of or _default_format
    out = bytearray()
    for entry in dol:
        value = values.get(entry.tag)
        if value is None:
            out += b"\x00" * entry.length
        else:
            out += fit(value, entry.length, fmt_of(entry.tag))
    return bytes(out)


def split(dol: Sequence[DolEntry], data: bytes) -> list[tuple[int, bytes]]:
    """Cut DOL-built data back into (tag, value) pairs, in order (the card's view)."""
    need = sum(e.length for e in dol)
    if len(data) != need:
        raise DolError(f"DOL data is {len(data)} bytes, the DOL asks for {need}", 0)
    out: list[tuple[int, bytes]] = []
    pos = 0
    for entry in dol:
        out.append((entry.tag, bytes(data[pos : pos + entry.length])))
        pos += entry.length
    return out
