"""Batches in the store: the open batch, freezing one for its close, and the host's answer."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from terminal.journal import SEALED_COLUMNS, canonical
from terminal.store_core import StorageError, StoreCore

__all__ = ["BatchAccess"]

_OPEN_BATCH = "SELECT batch_id FROM batches WHERE closed_at IS NULL AND closing_at IS NULL"


class BatchAccess(StoreCore):
    """The batch verbs of :class:`terminal.store.Store`."""

    def current_batch(self, now: str) -> int:
        with self._reading() as cur:
            row = cur.execute(_OPEN_BATCH).fetchone()
        if row is not None:
            return int(row[0])
        with self._write() as cur:
            return self._open_batch(cur, now)

    def closed_batches(self) -> list[int]:
        with self._reading() as cur:
            return [
                int(r[0])
                for r in cur.execute("SELECT batch_id FROM batches WHERE closed_at IS NOT NULL ORDER BY batch_id")
            ]

    def batch_info(self, batch_id: int) -> dict[str, Any] | None:
        """The batch's dates, balance and frozen totals; None when there is no such batch."""
        with self._reading() as cur:
            row = cur.execute(
                f"SELECT {', '.join(SEALED_COLUMNS['batches'])}, seal FROM batches WHERE batch_id=?", (batch_id,)
            ).fetchone()
            if row is None:
                return None
            return {
                "batch_id": row[0],
                "opened_at": row[1],
                "closing_at": row[2],
                "closed_at": row[3],
                "in_balance": None if row[4] is None else bool(row[4]),
                "host_reference": row[5],
                "totals": json.loads(row[6]) if row[6] else None,
                "sealed": row[7] is not None and bytes(row[7]) == self._chain.row_seal("batches", row[:7]),
            }

    def begin_close(self, batch_id: int, now: str, totals: Mapping[str, Any]) -> int:
        """Freeze ``batch_id`` with its totals and open the next batch, in one commit.

        Done before the host is asked to close, so that a crash in between
        leaves the batch closing with the very totals the host may have seen;
        :meth:`closing_batch` finds it again.  Returns the new batch id.
        """
        with self._write() as cur:
            cur.execute(
                "UPDATE batches SET closing_at=?, totals=? "
                "WHERE batch_id=? AND closed_at IS NULL AND closing_at IS NULL",
                (now, canonical(dict(totals)), batch_id),
            )
            if cur.rowcount != 1:
                raise StorageError(f"batch {batch_id} is not open")
            self._chain.seal_row(cur, "batches", batch_id)
            self._append(cur, f"batch-{batch_id}", now, "batch_closing", "closing", {"batch_id": batch_id})
            self._batch = None
            return self._open_batch(cur, now)

    def closing_batch(self) -> tuple[int, dict[str, Any]] | None:
        """The batch whose close was asked of the host and not yet answered, with its frozen totals."""
        with self._reading() as cur:
            row = cur.execute(
                "SELECT batch_id, totals FROM batches WHERE closing_at IS NOT NULL AND closed_at IS NULL "
                "ORDER BY batch_id LIMIT 1"
            ).fetchone()
            return None if row is None else (int(row[0]), json.loads(row[1]))

    def finish_close(
        self,
        batch_id: int,
        now: str,
        in_balance: bool,
        host_reference: str | None,
        differences: Sequence[Mapping[str, Any]],
    ) -> None:
        """Record the host's answer to the close of a closing batch."""
        with self._write() as cur:
            frozen = cur.execute(
                "SELECT totals FROM batches WHERE batch_id=? AND closing_at IS NOT NULL AND closed_at IS NULL",
                (batch_id,),
            ).fetchone()
            if frozen is None:
                raise StorageError(f"batch {batch_id} is not closing")
            totals = json.loads(frozen[0]) | {"differences": [dict(d) for d in differences]}
            cur.execute(
                "UPDATE batches SET closed_at=?, in_balance=?, host_reference=?, totals=? WHERE batch_id=?",
                (now, int(in_balance), host_reference, canonical(totals), batch_id),
            )
            self._chain.seal_row(cur, "batches", batch_id)
            self._note_contact(cur, now, "answered", "settlement")
            self._append(
                cur,
                f"batch-{batch_id}",
                now,
                "batch_closed",
                "closed",
                {"batch_id": batch_id, "in_balance": in_balance, "host_reference": host_reference},
            )

    def _open_batch(self, cur: sqlite3.Cursor, at: str) -> int:
        """The open batch's id (opening one if none is), cached like the journal head."""
        if self._batch is None:
            row = cur.execute(_OPEN_BATCH).fetchone()
            if row is None:
                cur.execute("INSERT INTO batches(opened_at) VALUES(?)", (at,))
                self._batch = int(cur.lastrowid or 0)
                self._chain.seal_row(cur, "batches", self._batch)
            else:
                self._batch = int(row[0])
        return self._batch
