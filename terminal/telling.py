"""The facade's reads of what the terminal told and whom it reached: payments found, outcomes shown, the host.

A part of :class:`terminal.facade.Terminal` (it inherits :class:`Telling`),
kept apart so that the facade stays readable: finding payments to refund or
void, the payments whose outcome nobody was shown (:mod:`terminal.notices`),
the last payment, and the host's last contact.
"""

from __future__ import annotations

import threading
from typing import Any

from terminal.core import Core
from terminal.notices import OutcomeRecord
from terminal.payments import Payments
from terminal.store import TxnRow

__all__ = ["Telling"]


class Telling:
    """Reads (and the one mark) of the facade; see the module docstring."""

    _core: Core
    _payments: Payments
    _lock: threading.RLock

    @property
    def read_only(self) -> bool:
        """Opened to read only: another process holds the terminal (see :func:`terminal.bootstrap.open_terminal`)."""
        return not self._core.store.exclusive

    def _record(self, row: TxnRow) -> OutcomeRecord:
        reference = row.details.get("reference")
        return OutcomeRecord(
            result=self._payments.result_of(row.txn_id),
            at=row.created_at,
            request_key=self._core.store.request_key_of(row.txn_id),
            reference=reference if isinstance(reference, str) else None,
            shown_at=row.shown_at,
            shown_by=row.shown_by,
        )

    def unshown_payments(self) -> list[OutcomeRecord]:
        """Payments with an outcome that nobody was shown, oldest first (none when opened to read only).

        What a process killed between a payment's commit and its showing
        left; :func:`terminal.notices.tell_unshown` tells them.  Read only,
        a payment may be another process's, about to be shown there.
        """
        if self.read_only:
            return []
        return [self._record(row) for row in self._core.store.unshown()]

    def mark_shown(self, txn_ids: list[str] | tuple[str, ...], by: str) -> list[str]:
        """These payments' outcomes were shown now (``by``: cli, ui, ecr, notice); the ids marked now.

        The first showing is the one kept; a payment still in progress is not
        marked.  Nothing is marked when opened to read only.
        """
        if self.read_only or not txn_ids:
            return []
        with self._lock:
            return self._core.store.mark_shown(list(txn_ids), self._core.now(), by)

    def last_payment(self) -> OutcomeRecord | None:
        """The last payment made (a sale or a refund), and whether its outcome was shown; None before the first."""
        rows = self._core.store.list_transactions(limit=1, newest_first=True)
        if not rows:
            return None
        return self._record(rows[0])

    def host_contact(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(the last contact with the host, whatever its result; the last time it answered): ``at``,
        ``result`` (answered, no_answer, unreachable, failed), ``what`` (authorisation, advice, reversal,
        settlement) and ``error``; None each before the first."""
        return self._core.store.host_contact()

    def find_payments(
        self,
        *,
        kind: str | None = None,
        amount: int | None = None,
        since: str | None = None,
        until: str | None = None,
        pan_token: str | None = None,
        limit: int = 50,
    ) -> list[TxnRow]:
        """Payments matching all that is given, newest first: to find a sale to refund or void.

        ``since``/``until`` are ISO 8601 times (``until`` exclusive);
        ``pan_token`` is what :meth:`read_card_token` gives for a card tapped.
        """
        rows = self._core.store.list_transactions(newest_first=True)
        out: list[TxnRow] = []
        for row in rows:
            if kind is not None and row.kind != kind:
                continue
            if amount is not None and row.amount != amount:
                continue
            if since is not None and row.created_at < since:
                continue
            if until is not None and row.created_at >= until:
                continue
            if pan_token is not None and row.pan_token != pan_token:
                continue
            out.append(row)
            if len(out) >= limit:
                break
        return out
