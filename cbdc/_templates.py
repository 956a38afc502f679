"""The template machinery of the protocol: the tags, their fixed lengths, and strict template parsing.

Private to cbdc: :mod:`cbdc.protocol` is the public face (it re-exports :class:`Tag`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cbdc import tlv
from cbdc._fields import ProtocolError

__all__ = ["Parsed", "Tag", "counter", "encode_elements", "parse_template"]


class Tag(enum.IntEnum):
    FCI = 0x6F
    DF_NAME = 0x84
    FCI_PROPRIETARY = 0xA5
    APPLICATION_LABEL = 0x50
    WALLET_INFO = 0xE1
    CERTIFICATE = 0xE2
    PAYMENT_REQUEST = 0xE3
    PAYMENT_RECORD = 0xE4
    ENVELOPE = 0xE6
    VERSION = 0xDF40
    WALLET_ID = 0xDF41
    COUNTER = 0xDF42
    PREVIOUS_HASH = 0xDF43
    CURRENCY = 0xDF44
    BALANCE = 0xDF45
    AMOUNT = 0xDF51
    MERCHANT_ID = 0xDF52
    CHALLENGE = 0xDF53
    DATE_TIME = 0xDF54
    TERMINAL_ID = 0xDF56
    SIGNATURE = 0xDF5F
    CERT_VERSION = 0xDF71
    SUBJECT_ID = 0xDF72
    ISSUER_ID = 0xDF73
    ROLE = 0xDF74
    PUBLIC_KEY = 0xDF75
    NOT_BEFORE = 0xDF76
    NOT_AFTER = 0xDF77
    TIER = 0xDF78
    PER_PAYMENT_LIMIT = 0xDF79
    DAILY_LIMIT = 0xDF7A
    BALANCE_LIMIT = 0xDF7B


_Lengths = tuple[int, int]
_FIXED: dict[int, _Lengths] = {
    Tag.VERSION: (1, 1),
    Tag.WALLET_ID: (8, 8),
    Tag.COUNTER: (4, 4),
    Tag.PREVIOUS_HASH: (32, 32),
    Tag.CURRENCY: (2, 2),
    Tag.BALANCE: (6, 6),
    Tag.AMOUNT: (6, 6),
    Tag.MERCHANT_ID: (1, 15),
    Tag.CHALLENGE: (16, 16),
    Tag.DATE_TIME: (7, 7),
    Tag.TERMINAL_ID: (8, 8),
    Tag.SIGNATURE: (64, 64),
    Tag.CERT_VERSION: (1, 1),
    Tag.SUBJECT_ID: (4, 8),
    Tag.ISSUER_ID: (4, 4),
    Tag.ROLE: (1, 1),
    Tag.PUBLIC_KEY: (64, 64),
    Tag.NOT_BEFORE: (4, 4),
    Tag.NOT_AFTER: (4, 4),
    Tag.TIER: (1, 1),
    Tag.PER_PAYMENT_LIMIT: (6, 6),
    Tag.DAILY_LIMIT: (6, 6),
    Tag.BALANCE_LIMIT: (6, 6),
}


def _name(tag: int) -> str:
    return f"{tag:X}"


@dataclass(frozen=True)
class Parsed:
    values: Mapping[int, bytes]
    signed_bytes: bytes = b""
    signature: bytes = b""


def parse_template(data: bytes, template: int, mandatory: tuple[int, ...], *, signed: bool) -> Parsed:
    """The elements of one template that is the whole of ``data``; ProtocolError on any breach."""
    try:
        outer = tlv.decode_one(data, template)
        elements = tlv.decode(outer.value)
    except tlv.TlvError as exc:
        raise ProtocolError(f"{_name(template)}: {exc}") from exc
    values: dict[int, bytes] = {}
    for element in elements:
        if element.tag in values:
            raise ProtocolError(f"{_name(template)}: duplicate tag {element.tag_hex}")
        lengths = _FIXED.get(element.tag)
        if lengths is not None and not lengths[0] <= len(element.value) <= lengths[1]:
            raise ProtocolError(f"{_name(template)}: wrong length of {element.tag_hex}")
        values[element.tag] = element.value
    for tag in mandatory:
        if tag not in values:
            raise ProtocolError(f"{_name(template)}: missing {_name(tag)}")
    if not signed:
        return Parsed(values)
    if Tag.SIGNATURE not in values:
        raise ProtocolError(f"{_name(template)}: missing DF5F")
    last = elements[-1]
    if last.tag != Tag.SIGNATURE:
        raise ProtocolError(f"{_name(template)}: data after the signature DF5F")
    return Parsed(values, outer.value[: last.start], last.value)


def counter(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def encode_elements(pairs: Sequence[tuple[int, bytes]]) -> bytes:
    return b"".join(tlv.encode(tag, value) for tag, value in pairs)
