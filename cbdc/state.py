"""What the terminal journals and knows: the payment intent (§7) and its offline state (§6).

>>> from datetime import datetime, UTC
>>> request = PaymentRequest(1234, 156, "MERCHANT0001", "TERM0001", bytes(16), datetime(2026, 12, 6, tzinfo=UTC))
>>> intent = Intent(request, bytes.fromhex("D1A0000000000001"), 5, bytes(32), b"", b"")
>>> Intent.from_dict(intent.to_dict()) == intent
True
>>> OfflineState({"D1A0000000000001": 4}).last_counter(bytes.fromhex("D1A0000000000001"))
4
>>> OfflineState({"d1a0000000000001": 4}).last_counter(bytes.fromhex("D1A0000000000001"))
4
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cbdc.protocol import PaymentRequest

__all__ = ["Intent", "OfflineState"]


@dataclass(frozen=True)
class Intent:
    """What the terminal writes durably before PAY: enough to finish the payment on a re-tap, or to report it torn.

    ``wallet_certificate`` and ``operator_certificate`` are the E2 bytes read (already checked before PAY):
    a re-tap verifies the wallet's record with the same key, and a torn notice carries them to the operator.
    """

    request: PaymentRequest
    wallet_id: bytes
    expected_counter: int  # the wallet's counter + 1
    previous_hash: bytes  # the hash of the wallet's last record, which the new one must chain to
    wallet_certificate: bytes
    operator_certificate: bytes

    @property
    def wallet_id_hex(self) -> str:
        return self.wallet_id.hex().upper()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; no secret in it (a wallet id is not card data)."""
        r = self.request
        return {
            "wallet_id": self.wallet_id_hex,
            "expected_counter": self.expected_counter,
            "previous_hash": self.previous_hash.hex(),
            "amount": r.amount,
            "currency": r.currency,
            "merchant_id": r.merchant_id,
            "terminal_id": r.terminal_id,
            "challenge": r.challenge.hex(),
            "date_time": r.date_time.isoformat(),
            "wallet_certificate": self.wallet_certificate.hex(),
            "operator_certificate": self.operator_certificate.hex(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Intent:
        """The inverse of :meth:`to_dict`; ValueError (naming the key) for anything missing or malformed."""
        try:
            request = PaymentRequest(
                amount=int(data["amount"]),
                currency=int(data["currency"]),
                merchant_id=str(data["merchant_id"]),
                terminal_id=str(data["terminal_id"]),
                challenge=bytes.fromhex(data["challenge"]),
                date_time=datetime.fromisoformat(data["date_time"]),
            )
            intent = cls(
                request=request,
                wallet_id=bytes.fromhex(data["wallet_id"]),
                expected_counter=int(data["expected_counter"]),
                previous_hash=bytes.fromhex(data["previous_hash"]),
                wallet_certificate=bytes.fromhex(data["wallet_certificate"]),
                operator_certificate=bytes.fromhex(data["operator_certificate"]),
            )
        except KeyError as exc:
            raise ValueError(f"intent without {exc.args[0]}") from exc
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"malformed intent: {exc}") from exc
        if len(intent.wallet_id) != 8 or len(intent.previous_hash) != 32 or intent.expected_counter < 1:
            raise ValueError("malformed intent: wallet id, previous hash or counter")
        return intent


@dataclass(frozen=True)
class OfflineState:
    """What the terminal knows when a wallet is tapped, for the checks of §5 and §6.

    ``last_counters``: the highest record counter this terminal has seen from each wallet (16 hex digits).
    ``count_since_sync`` / ``total_since_sync``: digital-currency payments (and their amount, minor units)
    in the sale's currency since the last successful sync with the host.
    ``oldest_unsent_age_s``: the age of the oldest digital-currency record not yet acknowledged by the host
    (None: none unsent).
    """

    last_counters: Mapping[str, int] = field(default_factory=dict)
    count_since_sync: int = 0
    total_since_sync: int = 0
    oldest_unsent_age_s: float | None = None

    def last_counter(self, wallet_id: bytes) -> int:
        """0 when this terminal has never seen the wallet.  Keys in upper-case hex, or lower-case: a mapping
        keyed the other way must not silently let a replayed counter through.  (The mapping may be lazy, one
        lookup per wallet asked about: it is never iterated.)"""
        key = wallet_id.hex().upper()
        value = self.last_counters.get(key)
        if value is None:
            value = self.last_counters.get(key.lower())
        return int(value or 0)
