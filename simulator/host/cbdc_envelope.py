"""The envelope a digital-currency advice carries in ``emv_data`` (CBDC-SPEC section 10), read by the host.

``E6 [E4 payment record (absent for cbdc_torn)] [E2 wallet certificate] [E2 operator certificate]
[E3 the payment request as sent] [DF41 wallet id] [DF42 expected counter] [DF43 previous hash]``

:func:`read_envelope` takes the envelope apart. The envelope itself is the
terminal's work: one that is not TLV (the strict TLV of :mod:`cbdc.tlv`:
minimal lengths, no padding), holds anything twice or misses one of its
parts is :class:`EnvelopeError` (the advice
is rejected as malformed, ``30``). What the wallet made (the record and its
certificates) is kept as the exact bytes sent, since a signature and the
record hash cover the bytes as they are; whether they parse and verify is
the operator's question (:mod:`simulator.host.cbdc_operator`), because a
terminal forwards a refused record as it received it. The payment request is
read here (amount, currency, payee, challenge): a torn notice has nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cbdc.tlv import Element, TlvError, decode, decode_one

__all__ = ["Envelope", "EnvelopeError", "PaymentAsked", "read_envelope"]

ENVELOPE: Final = 0xE6
RECORD: Final = 0xE4
CERTIFICATE: Final = 0xE2
REQUEST: Final = 0xE3
WALLET_ID: Final = 0xDF41
COUNTER: Final = 0xDF42
PREVIOUS_HASH: Final = 0xDF43
_AMOUNT, _CURRENCY, _MERCHANT, _TERMINAL, _CHALLENGE, _DATE_TIME = 0xDF51, 0xDF44, 0xDF52, 0xDF56, 0xDF53, 0xDF54


class EnvelopeError(ValueError):
    """The envelope is not what CBDC-SPEC section 10 says (the message names the part)."""


@dataclass(frozen=True)
class PaymentAsked:
    """The payment request (E3) as the terminal sent it."""

    amount: int
    currency: int
    merchant_id: str
    terminal_id: str
    challenge: bytes
    date_time: str  # YYYYMMDDhhmmss (UTC), as sent


@dataclass(frozen=True)
class Envelope:
    """The parts of an envelope; ``record`` is None for a torn notice."""

    record: bytes | None  # the E4 template's exact bytes (tag, length, value)
    wallet_certificate: bytes  # the E2 templates' exact bytes
    operator_certificate: bytes
    request: PaymentAsked
    wallet_id: str  # 16 upper-case hex digits
    expected_counter: int
    previous_hash: bytes


def _bcd(raw: bytes, what: str) -> int:
    text = raw.hex()
    if not raw or not text.isdigit():
        raise EnvelopeError(f"payment request: {what} is not BCD")
    return int(text)


def _ascii(raw: bytes, what: str, lengths: tuple[int, int]) -> str:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise EnvelopeError(f"payment request: {what} is not ASCII") from None
    if not (lengths[0] <= len(text) <= lengths[1] and text.isprintable()):
        raise EnvelopeError(f"payment request: {what} must be {lengths[0]}-{lengths[1]} printable characters")
    return text


def _request(template: Element) -> PaymentAsked:
    try:
        children = decode(template.value)
    except TlvError as exc:
        raise EnvelopeError(f"payment request: not TLV ({exc})") from None
    fields: dict[int, bytes] = {}
    for child in children:
        if child.tag in fields:
            raise EnvelopeError(f"payment request: tag {child.tag:X} twice")
        fields[child.tag] = child.value
    missing = [f"{t:X}" for t in (_AMOUNT, _CURRENCY, _MERCHANT, _TERMINAL, _CHALLENGE, _DATE_TIME) if t not in fields]
    if missing:
        raise EnvelopeError(f"payment request: {', '.join(missing)} missing")
    if len(fields[_AMOUNT]) != 6 or len(fields[_CURRENCY]) != 2 or len(fields[_CHALLENGE]) != 16:
        raise EnvelopeError("payment request: amount, currency or challenge of the wrong length")
    if len(fields[_DATE_TIME]) != 7:
        raise EnvelopeError("payment request: date-time of the wrong length")
    return PaymentAsked(
        amount=_bcd(fields[_AMOUNT], "amount"),
        currency=_bcd(fields[_CURRENCY], "currency"),
        merchant_id=_ascii(fields[_MERCHANT], "merchant id", (1, 15)),
        terminal_id=_ascii(fields[_TERMINAL], "terminal id", (8, 8)),
        challenge=fields[_CHALLENGE],
        date_time=str(_bcd(fields[_DATE_TIME], "date-time")).zfill(14),
    )


def read_envelope(data: bytes, *, with_record: bool) -> Envelope:
    """The envelope's parts; ``with_record``: an E4 record must be there (else it must not be).

    Raises :class:`EnvelopeError` naming what is wrong.
    """
    try:
        envelope = decode_one(bytes(data), ENVELOPE)
        children = decode(envelope.value)
    except TlvError as exc:
        raise EnvelopeError(f"emv_data: not an E6 envelope ({exc})") from None
    records: list[bytes] = []
    certificates: list[bytes] = []
    requests: list[Element] = []
    single: dict[int, bytes] = {}
    for child in children:
        exact = envelope.value[child.start : child.end]  # the bytes as sent: signatures and hashes cover them
        if child.tag == RECORD:
            records.append(exact)
        elif child.tag == CERTIFICATE:
            certificates.append(exact)
        elif child.tag == REQUEST:
            requests.append(child)
        elif child.tag in (WALLET_ID, COUNTER, PREVIOUS_HASH):
            if child.tag in single:
                raise EnvelopeError(f"emv_data: tag {child.tag:X} twice in the envelope")
            single[child.tag] = child.value
        else:
            raise EnvelopeError(f"emv_data: unexpected tag {child.tag:X} in the envelope")
    if with_record and len(records) != 1:
        raise EnvelopeError("emv_data: the envelope must hold one E4 payment record")
    if not with_record and records:
        raise EnvelopeError("emv_data: a torn notice carries no payment record")
    if len(certificates) != 2:
        raise EnvelopeError("emv_data: the envelope must hold two E2 certificates (wallet, operator)")
    if len(requests) != 1:
        raise EnvelopeError("emv_data: the envelope must hold one E3 payment request")
    wallet, counter, previous = single.get(WALLET_ID), single.get(COUNTER), single.get(PREVIOUS_HASH)
    if wallet is None or len(wallet) != 8:
        raise EnvelopeError("emv_data: DF41 wallet id (8 bytes) missing")
    if counter is None or len(counter) != 4:
        raise EnvelopeError("emv_data: DF42 expected counter (4 bytes) missing")
    if previous is None or len(previous) != 32:
        raise EnvelopeError("emv_data: DF43 previous hash (32 bytes) missing")
    return Envelope(
        record=records[0] if records else None,
        wallet_certificate=certificates[0],
        operator_certificate=certificates[1],
        request=_request(requests[0]),
        wallet_id=wallet.hex().upper(),
        expected_counter=int.from_bytes(counter, "big"),
        previous_hash=previous,
    )
