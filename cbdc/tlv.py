"""A small, strict BER-TLV for the hard-wallet protocol (cbdc may not import emv).

Tags are one or two bytes, lengths definite and minimal (``xx`` below 128,
``81 xx`` from 128 to 255, ``82 xx xx`` from 256 to 65,535).  Decoding keeps
the exact bytes of every element, because a signature covers the bytes as the
wallet sent them, never a re-encoding.  Anything else (a three-byte tag, an
indefinite or non-minimal length, a truncated element, padding) raises
:class:`TlvError`.

>>> [(e.tag_hex, e.value.hex()) for e in decode(bytes.fromhex("DF400101DF4202000A"))]
[('DF40', '01'), ('DF42', '000a')]
>>> encode(0xE1, encode(0xDF40, b"\\x01")).hex().upper()
'E104DF400101'
>>> decode(bytes.fromhex("DF40820001 01"))
Traceback (most recent call last):
...
cbdc.tlv.TlvError: non-minimal length at offset 2
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Element", "TlvError", "decode", "decode_one", "encode", "encode_length", "encode_tag"]

MAX_LENGTH = 0xFFFF


class TlvError(ValueError):
    """Malformed TLV input; ``offset`` is where decoding failed."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"{reason} at offset {offset}")
        self.reason = reason
        self.offset = offset


@dataclass(frozen=True)
class Element:
    """One decoded element: its tag, its value, and where its encoding lies in the decoded buffer."""

    tag: int
    value: bytes
    start: int  # offset of the first tag byte
    end: int  # offset just past the value

    @property
    def tag_hex(self) -> str:
        return encode_tag(self.tag).hex().upper()

    @property
    def constructed(self) -> bool:
        return bool(encode_tag(self.tag)[0] & 0x20)


def encode_tag(tag: int) -> bytes:
    """One or two bytes; a two-byte tag's first byte has its low five bits all set."""
    if 0 < tag <= 0xFF:
        if tag & 0x1F == 0x1F:
            raise ValueError(f"tag {tag:02X} announces a second byte")
        return bytes([tag])
    if 0xFF < tag <= 0xFFFF and (tag >> 8) & 0x1F == 0x1F and not tag & 0x80:
        return tag.to_bytes(2, "big")
    raise ValueError(f"not a one- or two-byte tag: {tag:X}")


def encode_length(length: int) -> bytes:
    if length < 0 or length > MAX_LENGTH:
        raise ValueError(f"length out of range: {length}")
    if length < 0x80:
        return bytes([length])
    if length <= 0xFF:
        return bytes([0x81, length])
    return bytes([0x82]) + length.to_bytes(2, "big")


def encode(tag: int, value: bytes) -> bytes:
    return encode_tag(tag) + encode_length(len(value)) + value


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("truncated tag", pos)
    first = data[pos]
    if first in (0x00, 0xFF):
        raise TlvError("padding or invalid tag byte", pos)
    if first & 0x1F != 0x1F:
        return first, pos + 1
    if pos + 1 >= len(data):
        raise TlvError("truncated tag", pos)
    second = data[pos + 1]
    if second & 0x80:
        raise TlvError("tag longer than two bytes", pos)
    if second < 0x1F:
        raise TlvError("non-minimal tag", pos)
    return (first << 8) | second, pos + 2


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("truncated length", pos)
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count == 0 or count > 2:
        raise TlvError("unsupported length form", pos)
    if pos + 1 + count > len(data):
        raise TlvError("truncated length", pos)
    length = int.from_bytes(data[pos + 1 : pos + 1 + count], "big")
    if length < (0x80 if count == 1 else 0x100):
        raise TlvError("non-minimal length", pos)
    return length, pos + 1 + count


def decode(data: bytes, base: int = 0) -> list[Element]:
    """Every element of ``data``, in order, each spanning exactly its bytes; offsets add ``base``."""
    out: list[Element] = []
    pos = 0
    while pos < len(data):
        start = pos
        tag, pos = _read_tag(data, pos)
        length, pos = _read_length(data, pos)
        if pos + length > len(data):
            raise TlvError("value runs past the end", start + base)
        out.append(Element(tag, bytes(data[pos : pos + length]), start + base, pos + length + base))
        pos += length
    return out


def decode_one(data: bytes, tag: int) -> Element:
    """``data`` must be exactly one element with ``tag`` (nothing before or after it)."""
    elements = decode(data)
    if len(elements) != 1:
        raise TlvError(f"expected one element, found {len(elements)}", 0)
    if elements[0].tag != tag:
        raise TlvError(f"expected tag {encode_tag(tag).hex().upper()}, found {elements[0].tag_hex}", 0)
    return elements[0]
