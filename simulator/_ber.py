"""The card side's own small BER-TLV encoder/decoder and DOL handling.

Deliberately independent of ``emv.tlv`` and ``emv.dol``: the simulated card must
not share parsing code with the terminal's kernels, so that a bug in one cannot
hide behind the same bug in the other.

Tags are plain ints (``0x9F02``); values are bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = [
    "BerError",
    "decode",
    "dol_length",
    "encode",
    "encode_length",
    "find",
    "is_constructed",
    "iter_flat",
    "parse_dol",
    "split_dol",
    "tag_bytes",
]


class BerError(ValueError):
    """Malformed BER-TLV or DOL data."""


def tag_bytes(tag: int) -> bytes:
    """The tag as it goes on the wire (``0x9F02`` -> ``9F 02``)."""
    if tag < 0:
        raise BerError(f"negative tag {tag}")
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def is_constructed(tag: int) -> bool:
    """Bit 6 of the first tag byte marks a constructed object."""
    return bool(tag_bytes(tag)[0] & 0x20)


def encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    if length <= 0xFF:
        return bytes([0x81, length])
    if length <= 0xFFFF:
        return bytes([0x82]) + length.to_bytes(2, "big")
    raise BerError(f"length {length} too large")


def encode(tag: int, value: bytes) -> bytes:
    """One TLV: tag, definite length, value."""
    return tag_bytes(tag) + encode_length(len(value)) + value


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise BerError(f"tag expected at offset {pos}")
    first = data[pos]
    tag = first
    pos += 1
    if first & 0x1F == 0x1F:
        while True:
            if pos >= len(data):
                raise BerError("truncated multi-byte tag")
            byte = data[pos]
            tag = (tag << 8) | byte
            pos += 1
            if not byte & 0x80:
                break
            if tag > 0xFFFFFF:
                raise BerError("tag longer than 3 bytes")
    return tag, pos


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise BerError(f"length expected at offset {pos}")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    count = first & 0x7F
    if count == 0 or count > 3:
        raise BerError(f"unsupported length form {first:02X} at offset {pos - 1}")
    if pos + count > len(data):
        raise BerError("truncated length")
    return int.from_bytes(data[pos : pos + count], "big"), pos + count


def decode(data: bytes) -> list[tuple[int, bytes]]:
    """Decode a sequence of TLVs at one level (no recursion).

    Padding bytes ``00`` and ``FF`` between objects are skipped (Book 3 allows them).
    """
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        if data[pos] in (0x00, 0xFF):
            pos += 1
            continue
        tag, pos = _read_tag(data, pos)
        length, pos = _read_length(data, pos)
        if pos + length > len(data):
            raise BerError(f"value of tag {tag:X} runs past the end")
        out.append((tag, data[pos : pos + length]))
        pos += length
    return out


def iter_flat(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Every object, depth first; constructed ones are yielded and then entered."""
    for tag, value in decode(data):
        yield tag, value
        if is_constructed(tag):
            yield from iter_flat(value)


def find(data: bytes, tag: int) -> bytes | None:
    """The value of the first object with ``tag`` anywhere in ``data``, or None."""
    for found, value in iter_flat(data):
        if found == tag:
            return value
    return None


def parse_dol(dol: bytes) -> list[tuple[int, int]]:
    """A DOL as an ordered list of (tag, length); order matters, tags may repeat."""
    entries: list[tuple[int, int]] = []
    pos = 0
    while pos < len(dol):
        tag, pos = _read_tag(dol, pos)
        length, pos = _read_length(dol, pos)
        entries.append((tag, length))
    return entries


def dol_length(dol: Iterable[tuple[int, int]]) -> int:
    return sum(length for _, length in dol)


def split_dol(dol: Iterable[tuple[int, int]], data: bytes) -> list[tuple[int, bytes]]:
    """Cut the concatenated DOL values ``data`` into (tag, value) in DOL order.

    The data must be exactly as long as the DOL asks; a card answers 6700 otherwise.
    """
    entries = list(dol)
    if dol_length(entries) != len(data):
        raise BerError(f"DOL wants {dol_length(entries)} bytes, got {len(data)}")
    out: list[tuple[int, bytes]] = []
    pos = 0
    for tag, length in entries:
        out.append((tag, data[pos : pos + length]))
        pos += length
    return out
