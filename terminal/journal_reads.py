"""The facade's reads of the journal, the batches and the queues: transactions, history, receipts, SAF status.

A part of :class:`terminal.facade.Terminal` (it inherits :class:`JournalReads`),
kept apart so that the facade's module holds the verbs that change something
(sale, refund, void, forward, settle) and stays readable.  Nothing here
writes, except that a receipt issued counts as given (later ones are
duplicates) and :meth:`JournalReads.print_receipt` prints.
"""

from __future__ import annotations

from typing import Any

from terminal.core import Core
from terminal.host import TotalsLine
from terminal.lifecycle import State
from terminal.offline import PaymentRefused
from terminal.payments import Payments
from terminal.ports import ReceiptPrinter
from terminal.receipting import Receipts
from terminal.results import SafStatus
from terminal.settlement import Settlement
from terminal.store import TxnRow
from terminal.store_cbdc import CBDC_EVIDENCE_KINDS

__all__ = ["JournalReads"]


class JournalReads:
    """Reads of the facade; see the module docstring."""

    _core: Core
    _payments: Payments
    _receipts: Receipts
    _settlement: Settlement
    printer: ReceiptPrinter | None

    def transaction(self, txn_id: str) -> TxnRow | None:
        return self._core.store.get(txn_id)

    get = transaction

    def transactions(
        self, *, batch_id: int | None = None, limit: int | None = None, original_txn_id: str | None = None
    ) -> list[TxnRow]:
        """Transactions oldest first; with ``limit``, the last ``limit`` of them."""
        store = self._core.store
        if limit is None:
            return store.list_transactions(batch_id=batch_id, original_txn_id=original_txn_id)
        rows = store.list_transactions(
            batch_id=batch_id, original_txn_id=original_txn_id, limit=limit, newest_first=True
        )
        return rows[::-1]

    def history(self, txn_id: str) -> list[dict[str, Any]]:
        """The journal rows of one transaction, in order."""
        return self._core.store.journal_rows(txn_id=txn_id)

    def journal_rows(self, since: str | None = None, until: str | None = None) -> list[dict[str, Any]]:
        return self._core.store.journal_rows(since=since, until=until)

    def verify_journal(self) -> Any:
        """The journal's chain and every sealed row checked (:class:`terminal.journal.VerifyReport`)."""
        return self._core.store.verify()

    def batch(self, batch_id: int | None = None) -> dict[str, Any] | None:
        """A batch's dates, balance and totals (default: the open batch); None if there is none."""
        store = self._core.store
        return store.batch_info(batch_id if batch_id is not None else store.current_batch(self._core.now()))

    def closed_batches(self) -> list[int]:
        return self._core.store.closed_batches()

    def batch_lines(self, batch_id: int | None = None) -> tuple[int, tuple[TotalsLine, ...]]:
        return self._settlement.batch_lines(batch_id)

    def voids(self, batch_id: int) -> list[TxnRow]:
        """The payments of a batch that were voided (or whose void waits to reach the host)."""
        return self._core.store.list_transactions(batch_id=batch_id, states=[State.VOIDED, State.VOID_PENDING])

    def receipt(self, txn_id: str, copy: str = "customer", *, issue: bool = True) -> Any:
        """The receipt of a transaction (:class:`terminal.receipts.ReceiptData`).

        ``issue``: it counts as given to someone, so any later one is marked
        duplicate.  KeyError when there is no such transaction.
        """
        return self._receipts.data(txn_id, copy, issue=issue)

    def print_receipt(self, txn_id: str, copy: str = "customer") -> None:
        """Print a receipt on the configured printer (raises PaymentRefused when there is none)."""
        if self.printer is None:
            raise PaymentRefused("no_printer", "no receipt printer is configured ('posterm devices set printer URL')")
        self._receipts.print(self.printer, txn_id, copy)

    def offline_status(self, *, checked: bool = False) -> SafStatus:
        """What waits in the queues; ``checked``: every queued entry is read in full and its seal checked."""
        core = self._core
        if checked:
            core.store.check_queues()
        oldest, age = self._payments.oldest_queued()
        totals = core.store.saf_totals()
        last_at, last_error = core.store.last_attempt()
        security, last_security = core.store.security_events()
        return SafStatus(
            queued=sum(n for n, _ in totals.values()),
            totals=totals,
            oldest_at=oldest,
            oldest_age_seconds=age,
            last_attempt_at=last_at,
            last_error=last_error,
            reversals_queued=core.store.counts()["reversals_queued"],
            declined_after_forwarding=[e.txn_id for e in core.store.saf_entries(["declined", "rejected"])],
            security_events=security,
            last_security_event=last_security,
            evidence_queued=sum(1 for e in core.store.saf_queued() if e.kind in CBDC_EVIDENCE_KINDS),
        )
