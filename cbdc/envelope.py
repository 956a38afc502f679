"""The E6 envelope a digital-currency advice carries to the host (docs/cbdc-protocol.md, "To the host").

``E6 [E4 record (absent for a torn notice)][E2 wallet certificate][E2 operator certificate]
[E3 the payment request as sent][DF41 wallet id][DF42 expected counter][DF43 previous hash]``

The record, certificates and request are carried as the exact bytes the
terminal received or sent, so the operator verifies what the wallet signed.

>>> from datetime import datetime
>>> from cbdc.protocol import PaymentRequest
>>> request = PaymentRequest(1234, 156, "M1", "TERM0001", bytes(16), datetime(2026, 12, 6))
>>> envelope = Envelope(None, b"\\xe2\\x00", b"\\xe2\\x00", request.encode(), bytes(8), 1, bytes(32))
>>> Envelope.parse(envelope.encode()) == envelope
True
"""

from __future__ import annotations

from dataclasses import dataclass

from cbdc import tlv
from cbdc._fields import ProtocolError
from cbdc.protocol import Tag
from cbdc.state import Intent

__all__ = ["Envelope"]


@dataclass(frozen=True)
class Envelope:
    record: bytes | None  # the E4 as received; None for a torn notice
    wallet_certificate: bytes  # E2
    operator_certificate: bytes  # E2
    request: bytes  # E3 as sent
    wallet_id: bytes
    expected_counter: int
    previous_hash: bytes

    @classmethod
    def for_intent(cls, intent: Intent, record: bytes | None = None) -> Envelope:
        """The envelope of a payment (``record``: the E4 received, approved or refused) or of a torn notice."""
        return cls(
            record,
            intent.wallet_certificate,
            intent.operator_certificate,
            intent.request.encode(),
            intent.wallet_id,
            intent.expected_counter,
            intent.previous_hash,
        )

    def encode(self) -> bytes:
        body = self.record or b""
        body += self.wallet_certificate + self.operator_certificate + self.request
        body += tlv.encode(Tag.WALLET_ID, self.wallet_id)
        body += tlv.encode(Tag.COUNTER, self.expected_counter.to_bytes(4, "big"))
        body += tlv.encode(Tag.PREVIOUS_HASH, self.previous_hash)
        return tlv.encode(Tag.ENVELOPE, body)

    @classmethod
    def parse(cls, data: bytes) -> Envelope:
        """Strict: the elements in order, each once, the record optional; ProtocolError naming what is wrong."""
        try:
            outer = tlv.decode_one(data, Tag.ENVELOPE)
            elements = tlv.decode(outer.value)
        except tlv.TlvError as exc:
            raise ProtocolError(f"E6: {exc}") from exc
        tags = [e.tag for e in elements]
        expected = [Tag.CERTIFICATE, Tag.CERTIFICATE, Tag.PAYMENT_REQUEST, Tag.WALLET_ID, Tag.COUNTER,
                    Tag.PREVIOUS_HASH]  # fmt: skip
        record = None
        if tags and tags[0] == Tag.PAYMENT_RECORD:
            record = outer.value[elements[0].start : elements[0].end]
            elements = elements[1:]
            tags = tags[1:]
        if tags != expected:
            raise ProtocolError("E6: elements missing, repeated or out of order")
        raw = [outer.value[e.start : e.end] for e in elements]
        wallet_id, counter, previous = (e.value for e in elements[3:])
        if len(wallet_id) != 8 or len(counter) != 4 or len(previous) != 32:
            raise ProtocolError("E6: wrong length of DF41, DF42 or DF43")
        return cls(record, raw[0], raw[1], raw[2], wallet_id, int.from_bytes(counter, "big"), previous)
