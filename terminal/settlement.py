"""Batches and settlement: running totals, the close with the host in two durable steps, retention.

A batch is closed only when nothing waits to be sent: the SAF queue and the
reversals are empty and no payment is unfinished.  The close takes two
durable steps: the batch is frozen with its totals (and the next batch
opened) before the host is asked; the host's answer closes it.  If the host
does not answer, or the terminal stops in between, the frozen batch is
finished before any other online message (see
:meth:`terminal.forwarding.Forwarder.clear_the_way`) or by the next
``settle``, with the same totals.
"""

from __future__ import annotations

import contextlib
from datetime import UTC

from terminal.core import Core, iso
from terminal.host import BatchTotals, HostError, SettlementAnswer, TotalsLine
from terminal.lifecycle import APPROVED_STATES, UNFINISHED_STATES
from terminal.results import ForwardReport, SettlementRefused, SettlementResult
from terminal.store import PurgeReport, StorageCorrupt, StorageError

__all__ = ["NothingToSettle", "Settlement"]


class NothingToSettle(SettlementRefused):
    """The open batch holds no payment at all (a second ``settle`` right after one): nothing to close."""


class Settlement:
    """Totals, settlement and the retention purge of one terminal; callers hold its lock."""

    def __init__(self, core: Core) -> None:
        self._core = core

    def batch_lines(self, batch_id: int | None = None) -> tuple[int, tuple[TotalsLine, ...]]:
        """The totals of a batch (default: the open one) per scheme, currency and kind.

        Every row summed must carry its seal: a row edited outside posterm
        refuses the totals (with its id), rather than be counted as it now reads.
        """
        store = self._core.store
        batch = batch_id if batch_id is not None else store.current_batch(self._core.now())
        sums: dict[tuple[str, int, str], list[int]] = {}
        for row in store.list_transactions(batch_id=batch, states=list(APPROVED_STATES)):
            if not row.sealed:
                raise StorageCorrupt(
                    f"transaction {row.txn_id} was changed outside posterm (its seal does not match): "
                    "its batch cannot be totalled; see 'posterm journal verify'"
                )
            key = (row.scheme, row.currency, row.kind)
            acc = sums.setdefault(key, [0, 0])
            acc[0] += 1
            acc[1] += row.amount
        lines = tuple(TotalsLine(s, c, k, n, a) for (s, c, k), (n, a) in sorted(sums.items()))
        return batch, lines

    def frozen(self) -> tuple[int, BatchTotals] | None:
        """The batch frozen for closing and not yet answered by the host, with its totals."""
        closing = self._core.store.closing_batch()
        if closing is None:
            return None
        batch, frozen = closing
        lines = tuple(TotalsLine(**line) for line in frozen["lines"])
        return batch, BatchTotals(batch, str(frozen["terminal_id"]), lines)

    def _close(self, batch: int, totals: BatchTotals) -> SettlementAnswer:
        """Ask the host to close a frozen batch and record its answer (raises HostError)."""
        core = self._core
        assert core.host is not None
        try:
            answer = core.host.close_batch(totals)
        except HostError as exc:
            core.host_failed(exc)
            raise
        core.store.finish_close(batch, core.now(), answer.in_balance, answer.host_reference, answer.differences)
        core.emit("settled", None, batch_id=batch, in_balance=answer.in_balance)
        return answer

    def finish_pending_close(self, report: ForwardReport | None = None) -> bool:
        """Finish a close that was started; False when the host could not be reached."""
        frozen = self.frozen()
        if frozen is None:
            return True
        try:
            self._close(*frozen)
        except HostError as exc:
            if report is not None:
                report.failed += 1
                report.stopped_by = f"batch close: {type(exc).__name__}: {exc}"
            return False
        return True

    def check_settleable(self) -> None:
        store = self._core.store
        counts = store.counts()
        if counts["saf_queued"] or counts["reversals_queued"]:
            raise SettlementRefused(
                f"settlement refused: {counts['saf_queued']} payment(s) wait in the SAF queue and "
                f"{counts['reversals_queued']} reversal(s) are queued; forward them first (posterm saf forward)"
            )
        unfinished = store.list_transactions(states=list(UNFINISHED_STATES))
        if unfinished:
            raise SettlementRefused(
                f"settlement refused: {len(unfinished)} transaction(s) are unfinished "
                f"({', '.join(r.txn_id for r in unfinished[:3])}); forward them first (posterm saf forward)"
            )

    def settle(self) -> SettlementResult:
        """Close the batch with the host; refused while anything waits to be sent.

        :class:`NothingToSettle` when the open batch holds no payment at all
        (a second ``settle`` right after one).
        """
        core = self._core
        if core.host is None:
            raise SettlementRefused("settlement refused: no host link configured")
        frozen = self.frozen()
        if frozen is None:
            self.check_settleable()
            batch, lines = self.batch_lines()
            if not lines and not core.store.list_transactions(batch_id=batch, limit=1):
                raise NothingToSettle(f"nothing to settle: batch {batch} holds no payment")
            totals = BatchTotals(batch, core.config.terminal_id, lines)
            new_batch = core.store.begin_close(batch, core.now(), totals.to_json())
        else:
            batch, totals = frozen
            lines = totals.lines
            new_batch = core.store.current_batch(core.now())
        try:
            answer = self._close(batch, totals)
        except HostError as exc:
            raise SettlementRefused(
                f"settlement of batch {batch} is started but the host did not answer ({exc}); "
                "run settle again to finish it"
            ) from exc
        with contextlib.suppress(StorageError):  # housekeeping must not undo a settlement; it runs again
            self.purge_expired_records()
        return SettlementResult(
            batch, answer.in_balance, answer.host_reference, lines, tuple(answer.differences), new_batch
        )

    def purge_expired_records(self) -> PurgeReport:
        """Delete the settled records older than the retention period (``retention_years``).

        Called after each successful settlement and by ``posterm journal purge``;
        see :func:`terminal.journal.purge` for what may go and what stays.
        """
        core = self._core
        now = core.clock.now().astimezone(UTC)
        years = core.settings.retention_years
        try:
            cutoff = now.replace(year=now.year - years)
        except ValueError:  # 29 February
            cutoff = now.replace(year=now.year - years, day=28)
        report = core.store.purge(iso(cutoff), iso(now))
        if report.journal_rows and core.listeners:
            core.emit("records_purged", None, **report.__dict__)
        return report
