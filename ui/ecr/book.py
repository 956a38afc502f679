"""Where the ECR interface keeps its payments, and finds them again: in memory, else in the journal.

A payment lives in memory from the moment a register's request is accepted
(the journal knows nothing of it until the card was read); once its card was
read, the journal has it too, under the request's key, and that is what
answers after a restart, or once the memory has let an old payment go.  A
payment is found by its id (the register's Idempotency-Key) or by the
terminal's ``txn_id`` (so that a payment made at the cashier's screen can be
voided or its receipt fetched through the interface too).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from terminal.facade import PaymentResult, Terminal
from ui.ecr.records import EcrPayment, PaymentRequest

__all__ = ["PaymentBook"]


class PaymentBook:
    """The interface's payments by id and by txn_id, at most ``keep`` finished ones in memory.

    ``lock`` guards every payment's fields (the desk's worker changes them,
    HTTP handlers read them); ``on_change`` is told of a payment changed
    here (read again from the journal), under the lock.
    """

    def __init__(self, terminal: Terminal, on_change: Callable[[EcrPayment], None], *, keep: int = 10_000) -> None:
        self.terminal = terminal
        self.lock = threading.RLock()
        self._on_change = on_change
        self._keep = keep
        self._payments: OrderedDict[str, EcrPayment] = OrderedDict()
        self._by_txn: dict[str, str] = {}

    def remember(self, payment: EcrPayment) -> None:
        """Keep ``payment`` (under the lock), dropping the oldest finished ones beyond ``keep``."""
        with self.lock:
            self._payments[payment.id] = payment
            self._payments.move_to_end(payment.id)
            if payment.txn_id is not None:
                self._by_txn[payment.txn_id] = payment.id
            while len(self._payments) > self._keep:
                oldest = next(iter(self._payments.values()))
                if not oldest.final:
                    break
                del self._payments[oldest.id]
                if oldest.txn_id is not None and self._by_txn.get(oldest.txn_id) == oldest.id:
                    del self._by_txn[oldest.txn_id]

    def index(self, payment: EcrPayment) -> None:
        """``payment`` has its txn_id now (under the lock)."""
        if payment.txn_id is not None:
            with self.lock:
                self._by_txn[payment.txn_id] = payment.id

    def in_memory(self, payment_id: str) -> EcrPayment | None:
        with self.lock:
            found = self._payments.get(payment_id)
            if found is None and payment_id in self._by_txn:
                found = self._payments.get(self._by_txn[payment_id])
            return found

    def find(self, payment_id: str, running: EcrPayment | None = None) -> EcrPayment | None:
        """The payment whose id (its Idempotency-Key) or txn_id this is, as it stands; None if none.

        Blocks: a payment with a txn_id (but ``running``, which the desk's
        worker keeps up to date) is read again from the journal: it may
        have been voided, or declined after forwarding, since.
        """
        payment = self.in_memory(payment_id)
        if payment is not None:
            if payment.txn_id is not None and payment is not running:
                self._refresh(payment)
            return payment
        result = self.terminal.payment_for_request(payment_id)
        key: str | None = payment_id
        if result is None:
            key = None
            if self.terminal.transaction(payment_id) is None:
                return None
            result = self.terminal.result(payment_id)
        return self.adopt(payment_id, key, result)

    def adopt(self, payment_id: str, key: str | None, result: PaymentResult) -> EcrPayment:
        """A journalled payment the desk did not run (or ran before a restart), remembered as it stands."""
        row = self.terminal.transaction(result.txn_id)
        request = PaymentRequest.of_row(row) if row is not None else None
        if request is None:  # pragma: no cover - the result was just read from it
            raise LookupError(f"payment {payment_id} vanished from the journal")
        assert row is not None
        payment = EcrPayment(id=payment_id, key=key, request=request, created_at=row.created_at)
        payment.card_read = True
        payment.finish(result)
        payment.done.set()
        with self.lock:
            known = self.in_memory(payment_id)
            if known is not None:
                return known
            self.remember(payment)
        return payment

    def _refresh(self, payment: EcrPayment) -> None:
        assert payment.txn_id is not None
        result = self.terminal.result(payment.txn_id)
        with self.lock:
            if payment.result is None or result.state != payment.result.state:
                payment.finish(result)
                payment.changed()
                self._on_change(payment)

    def by_reference(self, reference: str, running: EcrPayment | None = None) -> list[EcrPayment]:
        """The payments made under a register's reference: the journal's, then those not (yet) in it. Blocks."""
        found = [self.find(r.txn_id, running) for r in self.terminal.payments_for_reference(reference)]
        shown = [p for p in found if p is not None]
        listed = {p.id for p in shown}
        with self.lock:
            shown += [
                p
                for p in self._payments.values()
                if p.request.reference == reference and p.txn_id is None and p.id not in listed
            ]
        return shown
