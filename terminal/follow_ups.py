"""What may follow a payment: a refund's room against its sale, a void; a payment's result as it stands.

The follow-up half of :class:`terminal.payments.Payments` (a mixin it
inherits): every refund and void passes the money rule first (the follow-up
table of :mod:`terminal.lifecycle`), so that nothing pays a customer back
more than they paid.
"""

from __future__ import annotations

from emv.outcome import TransactionResult
from terminal.core import Core
from terminal.forwarding import Forwarder
from terminal.lifecycle import COUNTED_REFUND_STATES, Event, FollowUp, State, follow_up_refusal
from terminal.offline import PaymentRefused
from terminal.payment_text import money_text as _money
from terminal.payment_text import state_text as _state_text
from terminal.results import PaymentResult
from terminal.store import StorageCorrupt, TxnRow

__all__ = ["FollowUps"]


class FollowUps:
    """Refund room, void, a payment's result: the part of :class:`~terminal.payments.Payments` after a payment."""

    _core: Core
    _forwarder: Forwarder

    def _result(
        self, txn_id: str, message: str, emv: TransactionResult | None = None, warnings: tuple[str, ...] = ()
    ) -> PaymentResult:  # pragma: no cover - Payments has it
        raise NotImplementedError

    def _new_txn_id(self) -> tuple[str, str]:  # pragma: no cover - Payments has it
        raise NotImplementedError

    def _checked(self, txn_id: str) -> TxnRow:
        """The row of a payment named by the operator, refused when it is missing or edited."""
        row = self._core.store.get(txn_id)
        if row is None:
            raise PaymentRefused("not_found", f"no transaction {txn_id}")
        if not row.sealed:
            raise StorageCorrupt(
                f"transaction {txn_id} was changed outside posterm (its seal does not match); "
                "see 'posterm journal verify'"
            )
        return row

    def result_of(self, txn_id: str) -> PaymentResult:
        """A journalled payment's result as it stands now, with its message in words."""
        row = self._core.store.get(txn_id)
        if row is None:
            raise PaymentRefused("not_found", f"no transaction {txn_id}")
        return self._result(txn_id, _state_text(row))

    def _refund_counted(self, original_txn_id: str) -> list[TxnRow]:
        return [
            r
            for r in self._core.store.list_transactions(original_txn_id=original_txn_id)
            if r.kind == "refund" and r.state in COUNTED_REFUND_STATES
        ]

    def _refundable(self, original_txn_id: str, amount: int, code: int) -> TxnRow:
        """The original sale, if ``amount`` may be refunded against it (else PaymentRefused, in words)."""
        original = self._checked(original_txn_id)
        why = follow_up_refusal(FollowUp.REFUND, original.kind, original.state)
        if why is not None:
            raise PaymentRefused("original_not_refundable", f"{original_txn_id} cannot be refunded: {why}")
        if original.currency != code:
            raise PaymentRefused(
                "currency",
                f"a refund is in the currency of the original payment ({_money(original.amount, original.currency)})",
            )
        refunded = sum(r.amount for r in self._refund_counted(original_txn_id))
        left = original.amount - refunded
        if amount > left:
            raise PaymentRefused(
                "amount",
                f"refund of {_money(amount, code)} refused: {original_txn_id} was {_money(original.amount, code)}, "
                f"{_money(refunded, code)} of it already refunded, {_money(left, code)} left",
            )
        return original

    def void(self, txn_id: str) -> PaymentResult:
        """Cancel an approved payment (a sale or a refund) of the open batch."""
        core = self._core
        row = self._checked(txn_id)
        why = follow_up_refusal(FollowUp.VOID, row.kind, row.state)
        if why is not None:
            raise PaymentRefused("not_voidable", f"{txn_id} cannot be voided: {why}")
        batch = core.store.current_batch(core.now())
        if row.batch_id != batch:
            raise PaymentRefused(
                "other_batch",
                f"{txn_id} cannot be voided: its batch {row.batch_id} is settled; refund it instead",
            )
        if row.kind == "sale":
            refunds = self._refund_counted(txn_id)
            if refunds:
                raise PaymentRefused(
                    "not_voidable",
                    f"{txn_id} cannot be voided: {len(refunds)} refund(s) were made against it "
                    f"({', '.join(r.txn_id for r in refunds)}, "
                    f"{_money(sum(r.amount for r in refunds), row.currency)}); void those first, "
                    "or refund what is left",
                )
        if row.details.get("qr_mode"):  # a QR sale: cancelled at the host, which pays the wallet back
            from terminal.qr_check import qr_flow, void_at_host

            return void_at_host(qr_flow(core, self._new_txn_id), row)
        core.record(txn_id, Event.VOID_QUEUED, {"void": True})
        self._forwarder.clear_the_way()
        done = core.store.get(txn_id)
        text = (
            "voided"
            if done is not None and done.state is State.VOIDED
            else "voided (the reversal is sent when the host can be reached)"
        )
        return self._result(txn_id, text)
