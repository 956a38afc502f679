"""The port's messages for the in-process host's tests: one terminal, sensible defaults, any field changed."""

from __future__ import annotations

from typing import Any

from terminal.host import Advice, AuthorisationRequest, BatchTotals, Reversal, TotalsLine

TID = "TERM0001"
EUR = 978
USD = 840


def auth(
    txn_id: str = "t1", amount: int = 1000, *, key: str | None = None, **kw: Any
) -> AuthorisationRequest:
    fields: dict[str, Any] = {
        "txn_id": txn_id,
        "idempotency_key": key if key is not None else f"k-{txn_id}",
        "kind": "sale",
        "amount": amount,
        "currency": EUR,
        "terminal_id": TID,
        "merchant_id": "M1",
        "emv_data": b"\x9f\x02\x06\x00\x00\x00\x00\x10\x00",
        "pan_token": "tok-1",
    }
    fields.update(kw)
    return AuthorisationRequest(**fields)


def advice(
    txn_id: str = "a1",
    amount: int = 1000,
    *,
    kind: str = "offline_approval",
    key: str | None = None,
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
        "emv_data": b"\x9f\x27\x01\x40",
        "pan_token": "tok-1",
        "created_at": "2024-05-01T10:00:00Z",
    }
    fields.update(kw)
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
