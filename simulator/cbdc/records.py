"""What a wallet says, encoded (CBDC-SPEC §2-§4): wallet info E1, payment record E4; the request E3 read.

The wallet's side only: it encodes what it signs and reads what the terminal
asks, strictly, with its own TLV (:mod:`simulator.cbdc.tlv`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from simulator.cbdc import sm2, tlv
from simulator.cbdc.pki import WalletKeys, bcd12

__all__ = [
    "ZERO_HASH",
    "PaymentRequest",
    "RequestError",
    "build_record",
    "encode_info",
    "parse_request",
    "record_counter",
    "record_hash",
]

ZERO_HASH = bytes(32)
VERSION = b"\x01"
_REQUEST_TAGS = {0xDF51: 6, 0xDF44: 2, 0xDF52: None, 0xDF56: 8, 0xDF53: 16, 0xDF54: 7}


class RequestError(ValueError):
    """A payment request the wallet cannot read (status 6A80)."""


@dataclass(frozen=True)
class PaymentRequest:
    """The terminal's E3, read."""

    amount: int
    currency: bytes
    merchant: bytes
    terminal: bytes
    challenge: bytes
    date_time: bytes  # 7 bytes BCD, as sent

    @property
    def day(self) -> str:
        """YYYYMMDD of the request (the wallet's only clock: it counts its daily limit by it)."""
        return self.date_time.hex()[:8]


def _bcd_digits(value: bytes) -> str | None:
    digits = value.hex()
    return digits if digits.isdigit() else None


def _printable(value: bytes) -> bool:
    return all(0x20 <= b < 0x7F for b in value)


def parse_request(data: bytes) -> PaymentRequest:
    """The command data of PAY: exactly one E3 whose six elements are there once each, well formed."""
    try:
        outer = tlv.decode(data)
        if len(outer) != 1 or outer[0][0] != 0xE3:
            raise RequestError("the command data is not one E3 template")
        items = tlv.decode(outer[0][1])
    except tlv.TlvError as exc:
        raise RequestError(str(exc)) from None
    values: dict[int, bytes] = {}
    for tag, value in items:
        if tag in values:
            raise RequestError(f"tag {tag:X} twice")
        values[tag] = value  # unknown tags are ignored
    for tag, size in _REQUEST_TAGS.items():
        if tag not in values:
            raise RequestError(f"tag {tag:X} missing")
        if size is not None and len(values[tag]) != size:
            raise RequestError(f"tag {tag:X} is {len(values[tag])} bytes, not {size}")
    amount = _bcd_digits(values[0xDF51])
    if amount is None or _bcd_digits(values[0xDF44]) is None:
        raise RequestError("amount or currency not BCD")
    merchant = values[0xDF52]
    if not 1 <= len(merchant) <= 15 or not _printable(merchant) or not _printable(values[0xDF56]):
        raise RequestError("merchant or terminal id not printable ASCII of the right length")
    stamp = _bcd_digits(values[0xDF54])
    try:
        datetime.strptime(stamp or "", "%Y%m%d%H%M%S")
    except ValueError:
        raise RequestError("date and time not a valid YYYYMMDDhhmmss") from None
    return PaymentRequest(
        amount=int(amount),
        currency=values[0xDF44],
        merchant=merchant,
        terminal=values[0xDF56],
        challenge=values[0xDF53],
        date_time=values[0xDF54],
    )


def encode_info(keys: WalletKeys, counter: int, last_hash: bytes, currency: bytes, balance: int) -> bytes:
    """GET WALLET INFO's answer: the E1 template."""
    return tlv.template(
        0xE1,
        [
            (0xDF40, VERSION),
            (0xDF41, keys.wallet_id),
            (0xDF42, counter.to_bytes(4, "big")),
            (0xDF43, last_hash),
            (0xDF44, currency),
            (0xDF45, bcd12(balance)),
        ],
    )


def build_record(
    keys: WalletKeys, counter: int, request: PaymentRequest, previous_hash: bytes, *, tamper: bool = False
) -> bytes:
    """The signed E4 payment record; ``tamper`` flips the last bit of the signature (profile cbdc-tampered)."""
    signed = b"".join(
        tlv.encode(tag, value)
        for tag, value in (
            (0xDF40, VERSION),
            (0xDF41, keys.wallet_id),
            (0xDF42, counter.to_bytes(4, "big")),
            (0xDF51, bcd12(request.amount)),
            (0xDF44, request.currency),
            (0xDF52, request.merchant),
            (0xDF56, request.terminal),
            (0xDF53, request.challenge),
            (0xDF54, request.date_time),
            (0xDF43, previous_hash),
        )
    )
    signature = sm2.sign(keys.private_key, keys.public_key, signed)
    if tamper:
        signature = signature[:-1] + bytes([signature[-1] ^ 0x01])
    return tlv.encode(0xE4, signed + tlv.encode(0xDF5F, signature))


def record_hash(record: bytes) -> bytes:
    """SM3 of the whole E4 encoding: what the next record chains (DF43)."""
    return sm2.sm3(record)


def record_counter(record: bytes) -> int:
    """DF42 of a record this wallet made."""
    for tag, value in tlv.decode(tlv.decode(record)[0][1]):
        if tag == 0xDF42:
            return int.from_bytes(value, "big")
    raise ValueError("record without a counter")
