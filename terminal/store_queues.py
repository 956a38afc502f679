"""The queues in the store: SAF entries and reversals, their sending bookkeeping, and counters.

The queues are small (bounded by the offline limits), so reading one in full
is cheap; the totals every payment asks for are cached until the file changes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from terminal.journal import SEALED_COLUMNS, canonical
from terminal.store_core import TXN_SELECT, QueuedItem, StorageCorrupt, StoreCore

__all__ = ["QueueAccess"]


class QueueAccess(StoreCore):
    """The queue verbs of :class:`terminal.store.Store`."""

    def _queue(self, table: str, where: str, args: Sequence[Any], limit: int | None) -> list[QueuedItem]:
        kind = "kind" if table == "saf" else "reason"
        sql = (
            f"SELECT id, txn_id, {kind}, idempotency_key, amount, currency, created_at, attempts, "
            f"next_attempt_at, last_attempt_at, last_error, status FROM {table} WHERE {where} ORDER BY id"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._reading() as cur:
            return [QueuedItem(*row) for row in cur.execute(sql, args).fetchall()]

    def saf_queued(self, limit: int | None = None) -> list[QueuedItem]:
        return self._queue("saf", "status='queued'", (), limit)

    def saf_entries(self, statuses: Sequence[str]) -> list[QueuedItem]:
        return self._queue("saf", f"status IN ({','.join('?' * len(statuses))})", list(statuses), None)

    def reversals_queued(self, limit: int | None = None) -> list[QueuedItem]:
        return self._queue("reversals", "status='queued'", (), limit)

    def mark_sending(self, table: str, ids: Sequence[int], at: str) -> None:
        """Count an attempt for these entries *before* they are sent (write-ahead).

        After a crash mid-send, the next send of each carries the retransmission
        flag, and a void knows the host may have seen it.
        """
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        with self._write() as cur:
            if table == "saf":
                cur.execute(
                    "UPDATE transactions SET saf_attempts=saf_attempts+1, saf_last_attempt_at=? "
                    f"WHERE saf_status='queued' AND saf_id IN ({marks})",  # the saf_queue index, no scan
                    (at, *ids),
                )
                self._set_meta(cur, "saf_last_attempt", canonical({"at": at, "error": None}))
            elif table == "reversals":
                cur.execute(
                    f"UPDATE reversals SET attempts=attempts+1, last_attempt_at=? WHERE id IN ({marks})", (at, *ids)
                )
            else:
                raise ValueError(table)

    def note_failure(
        self, table: str, item_id: int, error: str, next_attempt_at: str | None, *, contact: str | None = "failed"
    ) -> None:
        """Record why an attempt did not settle the entry (it stays queued) and when to try again.

        ``contact``: how the host failed (``unreachable``, ``no_answer``,
        ``failed``), for the host's last contact; None for a fault of the
        terminal's own, which reached no host.
        """
        with self._write() as cur:
            if table == "saf":
                cur.execute(
                    "UPDATE transactions SET saf_last_error=?, saf_next_attempt_at=? "
                    "WHERE saf_status='queued' AND saf_id=?",
                    (error, next_attempt_at, item_id),
                )
                last = self._meta(cur, "saf_last_attempt")
                at = json.loads(last)["at"] if last else None
                self._set_meta(cur, "saf_last_attempt", canonical({"at": at, "error": error}))
                if at is not None and contact is not None:
                    self._note_contact(cur, at, contact, "advice", error[:300])
            elif table == "reversals":
                cur.execute(
                    "UPDATE reversals SET last_error=?, next_attempt_at=? WHERE id=?", (error, next_attempt_at, item_id)
                )
                last = cur.execute("SELECT last_attempt_at FROM reversals WHERE id=?", (item_id,)).fetchone()
                if last is not None and last[0] is not None and contact is not None:
                    self._note_contact(cur, str(last[0]), contact, "reversal", error[:300])
            else:
                raise ValueError(table)

    def saf_totals(self) -> dict[int, tuple[int, int]]:
        """Queued entries per currency: (count, amount).

        Every payment asks this (the offline limits), and the sum is a scan of
        the queue, so it is cached until the database changes: our own commits
        drop the cache, and ``PRAGMA data_version`` tells of another process's.
        """
        with self._reading() as cur:
            version = int(cur.execute("PRAGMA data_version").fetchone()[0])
            if self._totals_cache is not None and self._totals_cache[0] == version:
                return dict(self._totals_cache[1])
            totals = {
                int(code): (int(n), int(total))
                for code, n, total in cur.execute(
                    "SELECT currency, COUNT(*), COALESCE(SUM(amount), 0) FROM saf WHERE status='queued' "
                    "GROUP BY currency"
                )
            }
        self._totals_cache = (version, totals)
        return dict(totals)

    def saf_oldest(self) -> str | None:
        """When the oldest queued entry was made (FIFO: the lowest queued id, through the queue's index)."""
        with self._reading() as cur:
            row = cur.execute("SELECT created_at FROM saf WHERE status='queued' ORDER BY id LIMIT 1").fetchone()
            return None if row is None else str(row[0])

    def last_attempt(self) -> tuple[str | None, str | None]:
        """The last forwarding attempt of the SAF queue and its error, if it failed."""
        with self._reading() as cur:
            row = cur.execute("SELECT value FROM meta WHERE key='saf_last_attempt'").fetchone()
            if row is None:
                return None, None
            last = json.loads(row[0])
            return last.get("at"), last.get("error")

    def issue_receipt(self, txn_id: str, copy: str, at: str) -> int:
        """Count a receipt of ``copy`` given out; returns how many were given before this one."""
        with self._write() as cur:
            row = cur.execute("SELECT times FROM receipts WHERE txn_id=? AND copy=?", (txn_id, copy)).fetchone()
            if row is None:
                cur.execute("INSERT INTO receipts(txn_id, copy, issued_at) VALUES(?,?,?)", (txn_id, copy, at))
                return 0
            cur.execute("UPDATE receipts SET times=times+1 WHERE txn_id=? AND copy=?", (txn_id, copy))
            return int(row[0])

    def receipts_issued(self, txn_id: str, copy: str) -> int:
        with self._reading() as cur:
            row = cur.execute("SELECT times FROM receipts WHERE txn_id=? AND copy=?", (txn_id, copy)).fetchone()
            return 0 if row is None else int(row[0])

    def check_queues(self) -> None:
        """Read every queued entry in full and check its seal: StorageCorrupt names the first bad one.

        The queues are small (bounded by the offline limits), and they are
        what a damaged file would lose: ``saf status`` checks them rather than
        trust a count.
        """
        with self._reading() as cur:
            for row in cur.execute(f"{TXN_SELECT} WHERE saf_status='queued'").fetchall():
                txn = self._txn_row(row)
                if not txn.sealed:
                    raise StorageCorrupt(
                        f"transaction {txn.txn_id} in the queue was changed outside posterm or damaged; "
                        "run 'posterm journal verify'"
                    )
            columns = SEALED_COLUMNS["reversals"]
            for row in cur.execute(f"SELECT {', '.join(columns)}, seal FROM reversals WHERE status='queued'"):
                if row[-1] is None or bytes(row[-1]) != self._chain.row_seal("reversals", row[:-1]):
                    raise StorageCorrupt(
                        f"the reversal of {row[1]} was changed outside posterm or damaged; run 'posterm journal verify'"
                    )

    def note_security_event(self, at: str, text: str) -> None:
        """Count a security event (a rejected host certificate) and keep the last one."""
        with self._write() as cur:
            count = int(self._meta(cur, "security_events") or 0) + 1
            self._set_meta(cur, "security_events", str(count))
            self._set_meta(cur, "last_security_event", canonical({"at": at, "text": text}))

    def security_events(self) -> tuple[int, str | None]:
        """How many security events were counted, and the last one ("at: text")."""
        with self._reading() as cur:
            count = int(self._meta(cur, "security_events") or 0)
            last = self._meta(cur, "last_security_event")
        if last is None:
            return count, None
        event = json.loads(last)
        return count, f"{event['at']}: {event['text']}"

    def counts(self) -> dict[str, int]:
        with self._reading() as cur:
            return {
                "saf_queued": int(cur.execute("SELECT COUNT(*) FROM saf WHERE status='queued'").fetchone()[0]),
                "reversals_queued": int(
                    cur.execute("SELECT COUNT(*) FROM reversals WHERE status='queued'").fetchone()[0]
                ),
                "sensitive_rows": int(cur.execute("SELECT COUNT(*) FROM sensitive").fetchone()[0]),
            }
