"""The wallet's own small, strict BER-TLV (CBDC-SPEC §2): tags of 1-2 bytes, lengths up to ``82 xx xx``.

Strict on purpose, as a secure element is: no padding bytes between objects,
no indefinite or over-long length forms, nothing left over.  Independent of
:mod:`simulator._ber` (EMV-lenient) and of the terminal's ``cbdc`` package.

>>> encode(0xDF42, bytes.fromhex("00000001")).hex().upper()
'DF420400000001'
>>> decode(bytes.fromhex("DF420400000001DF400101"))
[(57154, b'\\x00\\x00\\x00\\x01'), (57152, b'\\x01')]
>>> decode(bytes.fromhex("DF4202AA"))
Traceback (most recent call last):
...
simulator.cbdc.tlv.TlvError: value of tag DF42 runs past the end
"""

from __future__ import annotations

__all__ = ["TlvError", "decode", "encode", "template"]


class TlvError(ValueError):
    """Malformed TLV data."""


def _tag_bytes(tag: int) -> bytes:
    return tag.to_bytes(1 if tag <= 0xFF else 2, "big")


def _length_bytes(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    if length <= 0xFF:
        return bytes([0x81, length])
    if length <= 0xFFFF:
        return bytes([0x82]) + length.to_bytes(2, "big")
    raise TlvError(f"length {length} too large")


def encode(tag: int, value: bytes) -> bytes:
    """One TLV: tag, shortest definite length, value."""
    if not 0 < tag <= 0xFFFF:
        raise TlvError(f"tag {tag:X} outside 1-2 bytes")
    return _tag_bytes(tag) + _length_bytes(len(value)) + value


def template(tag: int, items: list[tuple[int, bytes]]) -> bytes:
    """A constructed object holding ``items`` in order."""
    return encode(tag, b"".join(encode(t, v) for t, v in items))


def decode(data: bytes) -> list[tuple[int, bytes]]:
    """The objects at one level, in order; :class:`TlvError` on anything malformed."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        tag = data[pos]
        pos += 1
        if tag & 0x1F == 0x1F:
            if pos >= len(data):
                raise TlvError("truncated tag")
            if data[pos] & 0x80:
                raise TlvError("tag longer than 2 bytes")
            tag = tag << 8 | data[pos]
            pos += 1
        if pos >= len(data):
            raise TlvError(f"length of tag {tag:X} missing")
        first = data[pos]
        pos += 1
        if first < 0x80:
            length = first
        elif first in (0x81, 0x82):
            count = first & 0x7F
            if pos + count > len(data):
                raise TlvError(f"length of tag {tag:X} truncated")
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        else:
            raise TlvError(f"length form {first:02X} of tag {tag:X} not allowed")
        if pos + length > len(data):
            raise TlvError(f"value of tag {tag:X} runs past the end")
        out.append((tag, data[pos : pos + length]))
        pos += length
    return out
