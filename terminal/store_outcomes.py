"""What the store keeps besides the payments' states: whether each outcome was shown, and the host's last contact.

A payment is durable before anyone is told of it (write-ahead), so a process
that dies between the commit and its screen, its printout or its register's
fetch leaves a payment that the journal holds and nobody saw: a cashier who
saw nothing takes the payment again.  Each payment therefore carries
``shown_at``/``shown_by``, written once its outcome was shown; a payment with
an outcome and no such mark is told at the next start
(:mod:`terminal.notices`).  The mark carries no money and is not sealed: an
edit of it can only hide or repeat a notice.

The host's last contact (``meta`` keys ``host_contact``, the last attempt of
any result, and ``host_answered``, the last time the host answered) is
written in the commit of what the contact changed: an authorisation's answer,
an advice's or a reversal's, a settlement's, or a failed attempt.  It is what
the terminal's metrics report (:mod:`terminal.metrics`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from terminal.lifecycle import Event, State
from terminal.store_core import TXN_SELECT, StoreCore, TxnRow

__all__ = ["IN_PROGRESS", "OutcomeAccess", "contact_of"]

#: States of a payment whose outcome is not known yet (after recovery, none is left in them).
IN_PROGRESS = (State.STARTED.value, State.AUTHORISING.value)
_IN_PROGRESS_SQL = ", ".join(f"'{s}'" for s in IN_PROGRESS)

# What each journalled event says of the host: (result, what was sent).
_ANSWERED: dict[Event, str] = {
    Event.HOST_APPROVED: "authorisation",
    Event.HOST_DECLINED: "authorisation",
    Event.FORWARD_ACCEPTED: "advice",
    Event.FORWARD_DECLINED: "advice",
    Event.FORWARD_REJECTED: "advice",
    Event.REVERSAL_ACKNOWLEDGED: "reversal",
    Event.VOID_REVERSED: "reversal",
}
_NOT_SENT = (Event.NOT_SENT_DEFERRED, Event.NOT_SENT_DECLINED)


def contact_of(before: State, event: Event, data: Mapping[str, Any]) -> tuple[str, str, str | None] | None:
    """(result, what, error) of the host contact a transition records, or None if it records none.

    ``answered``: the host answered (approving, declining or refusing);
    ``no_answer``: the request went and no answer came; ``unreachable``: it
    could not be sent (an online payment stored or declined instead).

    >>> contact_of(State.AUTHORISING, Event.HOST_APPROVED, {})
    ('answered', 'authorisation', None)
    >>> contact_of(State.STARTED, Event.NOT_SENT_DECLINED, {"error": "offline limit"}) is None
    True
    """
    if event in _ANSWERED:
        return "answered", _ANSWERED[event], None
    error = data.get("error")
    text = None if error is None else str(error)[:300]
    if event is Event.NO_ANSWER:
        return "no_answer", "authorisation", text
    if event in _NOT_SENT and before is State.AUTHORISING:  # tried to go online and could not
        return "unreachable", "authorisation", text
    return None


class OutcomeAccess(StoreCore):
    """Shown marks and the host's last contact; see the module docstring."""

    # -- shown ------------------------------------------------------------------------------------

    def mark_shown(self, txn_ids: Sequence[str], at: str, by: str) -> list[str]:
        """Mark these payments' outcomes shown (``by``: cli, ui, ecr, notice...); the ids marked now.

        Only a payment with an outcome and no mark yet is marked: a payment
        in progress has nothing to show, and the first showing is the one kept.
        """
        if not txn_ids:
            return []
        marked: list[str] = []
        with self._write() as cur:
            for txn_id in txn_ids:
                done = cur.execute(
                    "UPDATE transactions SET shown_at=?, shown_by=? WHERE txn_id=? AND shown_at IS NULL "
                    f"AND state NOT IN ({_IN_PROGRESS_SQL})",
                    (at, by[:40], txn_id),
                ).rowcount
                if done:
                    marked.append(txn_id)
        return marked

    def unshown(self, limit: int | None = None) -> list[TxnRow]:
        """Payments with an outcome that nobody was shown, oldest first (through the unshown index)."""
        sql = f"{TXN_SELECT} WHERE shown_at IS NULL AND state NOT IN ({_IN_PROGRESS_SQL}) ORDER BY created_at, txn_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._reading() as cur:
            return [self._txn_row(r) for r in cur.execute(sql).fetchall()]

    def count_unshown(self) -> int:
        with self._reading() as cur:
            row = cur.execute(
                f"SELECT COUNT(*) FROM transactions WHERE shown_at IS NULL AND state NOT IN ({_IN_PROGRESS_SQL})"
            ).fetchone()
            return int(row[0])

    # -- the host's last contact ------------------------------------------------------------------

    def host_contact(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(the last contact with the host, whatever its result; the last time it answered), or None each."""
        with self._reading() as cur:
            last = self._meta(cur, "host_contact")
            answered = self._meta(cur, "host_answered")
        return (
            None if last is None else dict(json.loads(last)),
            None if answered is None else dict(json.loads(answered)),
        )
