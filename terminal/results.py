"""What the terminal's verbs answer and what its listeners hear: plain, immutable values.

Each has ``to_json()`` for the command line's ``--json`` and the ECR
interface; none holds a PAN except masked, nor any key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emv.outcome import TransactionResult
from terminal.host import TotalsLine
from terminal.lifecycle import APPROVED_STATES, State

if TYPE_CHECKING:
    from terminal.store_core import TxnRow

__all__ = [
    "ForwardReport",
    "PaymentResult",
    "SafStatus",
    "SettlementRefused",
    "SettlementResult",
    "TerminalEvent",
]


@dataclass(frozen=True)
class TerminalEvent:
    """What the UI hears: ``kind`` is one of payment_started, state_changed, ui_message, card_prompt,
    payment_finished, offline_status, saf_forwarded, saf_declined, saf_rejected, saf_expired, saf_failed,
    reversal_sent, reversal_failed, recovered, settled, records_purged, security.

    ``payment_started`` (``payment``: sale or refund, amount, currency) and
    ``payment_finished`` (the same, with the result's fields, or ``refused``:
    the reason's short name, and ``message`` when no result came) bracket
    every sale and refund."""

    kind: str
    txn_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PaymentResult:
    txn_id: str
    kind: str
    state: State
    amount: int
    currency: int
    approved: bool
    message: str
    masked_pan: str | None = None
    scheme: str | None = None
    offline: bool = False
    deferred: bool = False
    approval_code: str | None = None
    response_code: str | None = None
    card_result: TransactionResult | None = None  # the kernel's result; ``.to_json()`` shows it masked
    warnings: tuple[str, ...] = ()  # what the operator must know besides the result (e.g. a security event)
    kernel: str | None = None  # "cbdc" for a digital-currency wallet's payment; None: a card's (see card_result)
    wallet_id: str | None = None  # a wallet's id masked (first 4 / last 4 hex digits)
    refusal: str | None = None  # the named refusal of a wallet payment declined (CBDC-SPEC section 5)
    cvm: str | None = None  # the cardholder verification the card's kernel chose (online_pin, offline_pin, ...)
    # what became of the PIN (terminal.pin_entry.PIN_WORDS): "verified" only when the issuer approved a PIN
    # block it checked, "offline_verified" when the inserted card did; None: no PIN
    pin: str | None = None

    @classmethod
    def from_row(
        cls,
        row: TxnRow,
        message: str,
        card_result: TransactionResult | None = None,
        warnings: tuple[str, ...] = (),
        **overrides: Any,
    ) -> PaymentResult:
        """The result of a payment as the journal has it (``overrides``: fields a flow knows better)."""
        d = row.details
        fields: dict[str, Any] = {
            "txn_id": row.txn_id,
            "kind": row.kind,
            "state": row.state,
            "amount": row.amount,
            "currency": row.currency,
            "approved": row.state in APPROVED_STATES,
            "message": message,
            "masked_pan": row.masked_pan,
            "scheme": row.scheme,
            "offline": row.state is State.OFFLINE_APPROVED or d.get("offline", False),
            "deferred": row.state is State.DEFERRED_APPROVED or d.get("deferred", False),
            "approval_code": d.get("approval_code"),
            "response_code": d.get("response_code"),
            "card_result": card_result,
            "warnings": warnings,
            "kernel": d.get("kernel"),
            "wallet_id": d.get("wallet_id"),
            "refusal": d.get("refusal"),
            "cvm": d.get("cvm"),
            "pin": d.get("pin"),
        }
        return cls(**(fields | overrides))

    @property
    def completed(self) -> bool:
        """The payment reached its end: approved, or a final answer (declined, voided, ...)."""
        return self.approved or self.state not in (State.REVERSAL_PENDING, State.CANCELLED)

    def to_json(self) -> dict[str, Any]:
        return {
            "txn_id": self.txn_id,
            "kind": self.kind,
            "state": self.state.value,
            "approved": self.approved,
            "message": self.message,
            "amount": self.amount,
            "currency": self.currency,
            "masked_pan": self.masked_pan,
            "scheme": self.scheme,
            "offline": self.offline,
            "deferred": self.deferred,
            "approval_code": self.approval_code,
            "response_code": self.response_code,
            # a UnionPay-style card's electronic cash (kernel C-7): its balance after the sale, or null
            "ec_balance": self._ec("balance"),
            "offline_spending_amount": self._ec("offline_spending_amount"),
            "warnings": list(self.warnings),
            "kernel": self.kernel,
            "wallet_id": self.wallet_id,
            "refusal": self.refusal,
            "cvm": self.cvm,
            "pin": self.pin,
        }

    def _ec(self, name: str) -> int | None:
        ec = self.card_result.electronic_cash if self.card_result is not None else None
        if ec is None or (name == "balance" and not self.approved):
            return None
        value: int | None = getattr(ec, name)
        return value


@dataclass(frozen=True)
class SafStatus:
    queued: int
    totals: dict[int, tuple[int, int]]  # currency -> (count, amount)
    oldest_at: str | None
    oldest_age_seconds: float | None
    last_attempt_at: str | None
    last_error: str | None
    reversals_queued: int
    declined_after_forwarding: list[str]
    security_events: int = 0  # host certificates rejected since the terminal was set up
    last_security_event: str | None = None
    # of ``queued``: digital-currency records refused at the terminal and torn notices, evidence for the
    # wallet's operator that credits nobody (their amounts are in ``totals`` all the same)
    evidence_queued: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "totals": {f"{cur:03d}": {"count": n, "amount": amt} for cur, (n, amt) in sorted(self.totals.items())},
            "oldest_at": self.oldest_at,
            "oldest_age_seconds": self.oldest_age_seconds,
            "last_attempt_at": self.last_attempt_at,
            "last_error": self.last_error,
            "reversals_queued": self.reversals_queued,
            "declined_after_forwarding": self.declined_after_forwarding,
            "security_events": self.security_events,
            "last_security_event": self.last_security_event,
            "evidence_queued": self.evidence_queued,
        }


@dataclass
class ForwardReport:
    reversals_sent: int = 0
    accepted: int = 0
    declined: int = 0
    rejected: int = 0
    expired: int = 0
    failed: int = 0
    stopped_by: str | None = None  # the error that stopped forwarding, if any

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class SettlementRefused(Exception):
    """Settlement is not possible now; the message says what to do first."""


@dataclass(frozen=True)
class SettlementResult:
    batch_id: int
    in_balance: bool
    host_reference: str | None
    lines: tuple[TotalsLine, ...]
    differences: tuple[dict[str, Any], ...]
    new_batch_id: int

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "in_balance": self.in_balance,
            "host_reference": self.host_reference,
            "lines": [line.__dict__ for line in self.lines],
            "differences": list(self.differences),
            "new_batch_id": self.new_batch_id,
        }
