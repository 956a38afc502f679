"""The port's messages for the in-process host's tests: one terminal, sensible defaults, any field changed.

``emv_data`` defaults to a simulated card's data objects with a cryptogram the host verifies
(:func:`simulator.card_data.card_emv_data`, over the message's amount and currency): an ARQC for a
sale and a deferred authorisation, a TC for an offline approval or refund, an AAC for a refund.
``card=`` names another simulated card (:data:`simulator.card_data.CARDS`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from simulator.card_data import card_emv_data
from terminal.host import Advice, AuthorisationRequest, BatchTotals, Reversal, TotalsLine

TID = "TERM0001"
EUR = 978
USD = 840


def _amount(value: int) -> int:
    return value if 0 < value < 10**12 else 1  # a malformed message's amount: the card saw a sensible one


def _currency(value: int) -> int:
    return value if 0 < value < 1000 else 978


def _unpredictable(fields: dict[str, Any]) -> bytes:
    """The terminal's unpredictable number for this message: one per terminal and transaction.

    So each transaction gets its own cryptogram (the host approves a cryptogram
    once), and the same message built twice is the same body (idempotency).
    """
    return hashlib.sha256(f"{fields['terminal_id']}:{fields['txn_id']}".encode()).digest()[:4]


def auth(
    txn_id: str = "t1", amount: int = 1000, *, key: str | None = None, card: str = "visa", **kw: Any
) -> AuthorisationRequest:
    fields: dict[str, Any] = {
        "txn_id": txn_id,
        "idempotency_key": key if key is not None else f"k-{txn_id}",
        "kind": "sale",
        "amount": amount,
        "currency": EUR,
        "terminal_id": TID,
        "merchant_id": "M1",
        "pan_token": "tok-1",
    }
    fields.update(kw)
    if "emv_data" not in fields:
        refund = fields["kind"] == "refund"
        fields["emv_data"] = card_emv_data(
            _amount(fields["amount"]), _currency(fields["currency"]),
            card=card, cryptogram="aac" if refund else "arqc", transaction_type=0x20 if refund else 0x00,
            unpredictable_number=_unpredictable(fields),
        )  # fmt: skip
    return AuthorisationRequest(**fields)


def advice(
    txn_id: str = "a1",
    amount: int = 1000,
    *,
    kind: str = "offline_approval",
    key: str | None = None,
    card: str = "visa",
    **kw: Any,
) -> Advice:
    fields: dict[str, Any] = {
        "txn_id": txn_id,
        "idempotency_key": key if key is not None else f"k-{txn_id}",
        "kind": kind,
        "amount": amount,
        "currency": EUR,
        "terminal_id": TID,
        "merchant_id": "M1",
        "pan_token": "tok-1",
        "created_at": "2024-05-01T10:00:00Z",
    }
    fields.update(kw)
    if "emv_data" not in fields:
        fields["emv_data"] = card_emv_data(
            _amount(fields["amount"]), _currency(fields["currency"]),
            card=card, cryptogram="arqc" if kind == "deferred_authorisation" else "tc",
            transaction_type=0x20 if kind == "offline_refund" else 0x00,
            unpredictable_number=_unpredictable(fields),
        )  # fmt: skip
    return Advice(**fields)


def reversal(txn_id: str, amount: int = 1000, *, key: str | None = None, **kw: Any) -> Reversal:
    fields: dict[str, Any] = {
        "txn_id": txn_id,
        "idempotency_key": key if key is not None else f"r-{txn_id}",
        "amount": amount,
        "currency": EUR,
        "terminal_id": TID,
        "reason": "no_answer",
    }
    fields.update(kw)
    return Reversal(**fields)


def totals(*lines: tuple[str, int, str, int, int], batch_id: int = 1, terminal_id: str = TID) -> BatchTotals:
    return BatchTotals(batch_id, terminal_id, tuple(TotalsLine(*line) for line in lines))
