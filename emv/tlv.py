"""BER-TLV as EMV uses it (EMV Book 3, Annex B).

Tags are kept as integers (``0x9F02``), values as bytes.  Decoding is strict:
any truncated, oversized or malformed object raises :class:`TlvError` naming
the offset and, where known, the tag.  ``00`` and ``FF`` bytes between objects
are padding and are skipped.

>>> objs = decode(bytes.fromhex("6F10840E325041592E5359532E4444463031"))
>>> hex(objs[0].tag), objs[0].children[0].value
('0x6f', b'2PAY.SYS.DDF01')
>>> encode(0x9F02, bytes.fromhex("000000001234")).hex().upper()
'9F0206000000001234'
>>> decode(encode_all(objs)) == objs
True
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "Tlv",
    "TlvError",
    "decode",
    "decode_primitive_map",
    "encode",
    "encode_all",
    "encode_length",
    "encode_pairs",
    "encode_tag",
    "find",
    "find_all",
    "is_constructed",
    "iter_primitives",
    "tag_hex",
]

MAX_LENGTH = 0xFFFFFF  # three length bytes (83 xx xx xx) is the most EMV allows


class TlvError(ValueError):
    """Malformed BER-TLV input.  ``offset`` is where decoding failed."""

    def __init__(self, reason: str, offset: int, tag: int | None = None) -> None:
        where = f"at offset {offset}"
        if tag is not None:
            where += f" in tag {tag_hex(tag)}"
        super().__init__(f"{reason} {where}")
        self.reason = reason
        self.offset = offset
        self.tag = tag


def tag_hex(tag: int) -> str:
    """The tag as EMV books print it: ``0x9F02`` -> ``'9F02'``."""
    return encode_tag(tag).hex().upper()


def is_constructed(tag: int) -> bool:
    """True when bit 6 of the tag's first byte marks a constructed object."""
    first = encode_tag(tag)[0]
    return bool(first & 0x20)


@dataclass(frozen=True)
class Tlv:
    """One decoded data object; ``children`` is set for constructed tags."""

    tag: int
    value: bytes
    children: tuple[Tlv, ...] | None = field(default=None, compare=True)

    @property
    def constructed(self) -> bool:
        return self.children is not None

    def encode(self) -> bytes:
        return encode(self.tag, self.value)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        if self.children is not None:
            return f"Tlv({tag_hex(self.tag)}, {list(self.children)!r})"
        return f"Tlv({tag_hex(self.tag)}, {self.value.hex().upper()})"


def encode_tag(tag: int) -> bytes:
    """Encode a tag number held as an integer of 1 to 4 bytes."""
    if tag < 0:
        raise ValueError(f"negative tag {tag}")
    if tag == 0:
        return b"\x00"
    return tag.to_bytes((tag.bit_length() + 7) // 8, "big")


def encode_length(length: int) -> bytes:
    """BER definite length: short form below 128, else 81, 82 or 83 forms."""
    if length < 0 or length > MAX_LENGTH:
        raise ValueError(f"length {length} out of range")
    if length < 0x80:
        return bytes([length])
    if length <= 0xFF:
        return bytes([0x81, length])
    if length <= 0xFFFF:
        return b"\x82" + length.to_bytes(2, "big")
    return b"\x83" + length.to_bytes(3, "big")


def encode(tag: int, value: bytes) -> bytes:
    """Encode one object from its tag and (already encoded) value."""
    return encode_tag(tag) + encode_length(len(value)) + bytes(value)


def encode_pairs(pairs: Iterable[tuple[int, bytes]]) -> bytes:
    """Encode (tag, value) pairs back to back: the EMV data a terminal sends a host.

    >>> encode_pairs([(0x9F36, b"\\x00\\x01"), (0x95, bytes(5))]).hex().upper()
    '9F3602000195050000000000'
    """
    out = bytearray()
    for tag, value in pairs:
        out += _tag_bytes(tag)
        n = len(value)
        out += bytes([n]) if n < 0x80 else encode_length(n)
        out += value
    return bytes(out)


@functools.lru_cache(maxsize=512)
def _tag_bytes(tag: int) -> bytes:
    return encode_tag(tag)


def encode_all(objects: Iterable[Tlv]) -> bytes:
    """Encode a sequence of objects back to back."""
    return b"".join(obj.encode() for obj in objects)


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    start = pos
    first = data[pos]
    pos += 1
    tag = first
    if first & 0x1F == 0x1F:
        while True:
            if pos >= len(data):
                raise TlvError("truncated tag", start)
            byte = data[pos]
            pos += 1
            tag = (tag << 8) | byte
            if not byte & 0x80:
                break
            if pos - start >= 4:
                raise TlvError("tag longer than 4 bytes", start)
    return tag, pos


def _read_length(data: bytes, pos: int, tag: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("missing length", pos, tag)
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    count = first & 0x7F
    if count == 0:
        raise TlvError("indefinite length not allowed", pos - 1, tag)
    if count > 3:
        raise TlvError(f"length field of {count} bytes is too long", pos - 1, tag)
    if pos + count > len(data):
        raise TlvError("truncated length", pos - 1, tag)
    length = int.from_bytes(data[pos : pos + count], "big")
    return length, pos + count


def _decode_one(data: bytes, pos: int, base: int, depth: int, ff_padding: bool, nested: bool) -> tuple[Tlv, int]:
    """Decode the object starting at ``pos``; return it and the position after it."""
    start = pos
    tag, pos = _read_tag(data, pos)
    length, pos = _read_length(data, pos, tag)
    if pos + length > len(data):
        raise TlvError(
            f"value of {length} bytes overruns the {len(data) - pos} bytes left", base + start, tag
        )
    value = bytes(data[pos : pos + length])
    children = None
    if nested and is_constructed(tag):
        try:
            children = tuple(_decode(value, base + pos, depth + 1, ff_padding, nested))
        except TlvError as exc:
            raise TlvError(f"{exc.reason} (inside {tag_hex(tag)})", exc.offset, exc.tag) from None
    return Tlv(tag, value, children), pos + length


def _decode(data: bytes, base: int, depth: int, ff_padding: bool, nested: bool = True) -> list[Tlv]:
    if depth > 16:
        raise TlvError("templates nested too deeply", base)
    out: list[Tlv] = []
    pos = 0
    while pos < len(data):
        if data[pos] == 0x00 or (ff_padding and data[pos] == 0xFF):  # padding between objects
            pos += 1
            continue
        obj, pos = _decode_one(data, pos, base, depth, ff_padding, nested)
        out.append(obj)
    return out


def decode(data: bytes, *, ff_padding: bool = True, nested: bool = True) -> list[Tlv]:
    """Decode a byte string holding zero or more BER-TLV objects.

    ISO/IEC 7816-4 lets ``00`` and ``FF`` stand as padding around objects in
    what a card sends, and forbids ``FF`` as a tag's first byte there.  The
    kernel-side data of C-2 does use ``FF81xx`` templates: decode those with
    ``ff_padding=False``.

    >>> [hex(o.tag) for o in decode(bytes.fromhex("FF8101039F3600"), ff_padding=False)]
    ['0xff8101']

    ``nested=False`` reads one level only: a constructed object keeps its value
    as bytes, unparsed (``children`` is None), for templates whose content is
    opaque, as the transparent templates of an EMV QR code are.

    >>> decode(bytes.fromhex("6302FFFF"), nested=False)[0].value.hex()
    'ffff'
    """
    try:
        return _decode(bytes(data), 0, 0, ff_padding, nested)
    except IndexError as exc:  # defensive: every read above is bounds-checked
        raise TlvError("truncated input", len(data)) from exc


def iter_primitives(objects: Iterable[Tlv]) -> Iterator[Tlv]:
    """Walk templates depth-first and yield primitive objects in order."""
    for obj in objects:
        if obj.children is not None:
            yield from iter_primitives(obj.children)
        else:
            yield obj


def find(objects: Iterable[Tlv], tag: int) -> Tlv | None:
    """First object with ``tag`` anywhere in the tree (depth-first), or None."""
    for obj in objects:
        if obj.tag == tag:
            return obj
        if obj.children is not None:
            hit = find(obj.children, tag)
            if hit is not None:
                return hit
    return None


def find_all(objects: Iterable[Tlv], tag: int) -> list[Tlv]:
    """Every object with ``tag`` anywhere in the tree, in order."""
    hits: list[Tlv] = []
    for obj in objects:
        if obj.tag == tag:
            hits.append(obj)
        if obj.children is not None:
            hits.extend(find_all(obj.children, tag))
    return hits


def decode_primitive_map(data: bytes) -> dict[int, bytes]:
    """Primitive objects of ``data`` by tag; the first occurrence wins.

    Use it for record and response templates where each tag stands once.
    It is *not* for DOLs, whose order matters (see :mod:`emv.dol`).
    """
    out: dict[int, bytes] = {}
    for obj in iter_primitives(decode(data)):
        out.setdefault(obj.tag, obj.value)
    return out
