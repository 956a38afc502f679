"""The store's foundation: its errors and records, the connection, and one way to read and to write.

:class:`StoreCore` is what every part of :class:`terminal.store.Store` stands
on: a write is one ``BEGIN IMMEDIATE ... COMMIT`` (or nothing at all), a read
turns a damaged file's errors into one clear :class:`StorageCorrupt`, and the
journal's head and the open batch are cached between commits while no other
connection writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from terminal.journal import SEALED_COLUMNS, Chain, canonical
from terminal.keystore import Keystore
from terminal.lifecycle import State

__all__ = [
    "TXN_COLUMNS",
    "TXN_SELECT",
    "CardRecord",
    "NewPayment",
    "QueuedItem",
    "StorageCorrupt",
    "StorageError",
    "StorageFull",
    "StorageReadOnly",
    "StoreCore",
    "StoreInUse",
    "TxnRow",
    "classify",
]

TXN_COLUMNS = SEALED_COLUMNS["transactions"]
TXN_SELECT = f"SELECT {', '.join(TXN_COLUMNS)}, card_blob, seal, shown_at, shown_by FROM transactions"


class StorageError(Exception):
    """The store cannot do what was asked; nothing was changed."""


class StorageFull(StorageError):
    """The disk (or the database's size limit) is full."""


class StorageReadOnly(StorageError):
    """The database cannot be written (read-only file system or file)."""


class StoreInUse(StorageError):
    """Another process has the store open to make payments (``pid`` is its process id, if known)."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class StorageCorrupt(StorageError):
    """The file is not a posterm database, or it is damaged."""


def classify(exc: sqlite3.Error, path: Path) -> StorageError:
    text = str(exc).lower()
    if "full" in text:
        return StorageFull(f"storage full: {path} cannot grow ({exc}); nothing was stored")
    if "readonly" in text or "read-only" in text or "read only" in text:
        return StorageReadOnly(f"storage is read-only: {path} cannot be written ({exc}); nothing was stored")
    if "unable to open" in text and not os.access(path.parent, os.W_OK):
        # WAL mode must create its -shm file: on a read-only file system the open fails first.
        return StorageReadOnly(f"storage is read-only: {path.parent} cannot be written ({exc}); nothing was stored")
    if isinstance(exc, sqlite3.DatabaseError) and any(
        word in text
        for word in (
            "not a database",
            "malformed",
            "decode",
            "corrupt",
            "no such table",
            "no such column",
            "has no column",
        )
    ):
        return StorageCorrupt(
            f"{path} is damaged or not a posterm database ({exc}); restore it from a backup ('posterm diag' tells more)"
        )
    return StorageError(f"storage error on {path}: {exc}; nothing was stored")


@dataclass(frozen=True)
class CardRecord:
    """The card data kept with a transaction: masked in clear, the rest encrypted."""

    masked_pan: str | None
    pan_token: str | None  # keyed hash of the PAN (lookups, the host's handle)
    card_blob: bytes | None  # encrypted JSON: PAN, expiry, PAN sequence number


@dataclass(frozen=True)
class NewPayment:
    txn_id: str
    kind: str  # "sale" | "refund"
    amount: int
    currency: int
    scheme: str
    offline_behavior: str
    original_txn_id: str | None = None
    request_key: str | None = None  # a register's idempotency key (the ECR interface)
    reference: str | None = None  # the register's own reference for the payment


@dataclass(frozen=True)
class TxnRow:
    txn_id: str
    kind: str
    state: State
    amount: int
    currency: int
    scheme: str
    offline_behavior: str
    batch_id: int
    created_at: str
    updated_at: str
    masked_pan: str | None
    pan_token: str | None
    card_blob: bytes | None
    original_txn_id: str | None
    details: dict[str, Any]
    sealed: bool = True  # False: the row was changed outside posterm (its seal does not match)
    shown_at: str | None = None  # when its outcome was shown to someone; None: nobody was told yet
    shown_by: str | None = None  # what showed it: cli, ui, ecr, notice (told at a later start), ...


@dataclass(frozen=True)
class QueuedItem:
    """One SAF or reversal queue entry."""

    id: int
    txn_id: str
    kind: str  # SAF: offline_approval | deferred_authorisation | offline_refund; reversal: its reason
    idempotency_key: str
    amount: int
    currency: int
    created_at: str
    attempts: int
    next_attempt_at: str | None
    last_attempt_at: str | None
    last_error: str | None
    status: str


class StoreCore:
    """The connection, the write and read disciplines, meta values and the chain; see the module docstring."""

    path: Path

    def __init__(self, path: Path, conn: sqlite3.Connection, keystore: Keystore) -> None:
        self.path = path
        self._conn = conn
        self._keystore = keystore
        self._chain = Chain(keystore)
        self._totals_cache: tuple[int, dict[int, tuple[int, int]]] | None = None
        # The journal head (in the chain) and the open batch are kept between commits
        # while no other connection has written (``PRAGMA data_version`` is unchanged).
        self._batch: int | None = None
        self._seen_version: int | None = None
        self._atomic = 0  # > 0 inside atomic(): each change is a savepoint of its transaction

    _lock_fd: int | None = None  # the lock file held while this store makes payments (see Store.open)

    def close(self) -> None:
        self._conn.close()
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # releases the lock

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction: BEGIN IMMEDIATE ... COMMIT, or nothing at all.

        Inside :meth:`atomic`: a savepoint of that transaction (this change all
        or nothing, committed with the others).
        """
        if self._atomic:
            with self._savepoint() as cur:
                yield cur
            return
        cur = self._conn.cursor()
        try:
            if not self._conn.in_transaction:
                cur.execute("BEGIN IMMEDIATE")
            version = int(cur.execute("PRAGMA data_version").fetchone()[0])
            if version != self._seen_version:
                self._chain.head = None
                self._batch = None
                self._seen_version = version
            yield cur
            self._totals_cache = None
            cur.execute("COMMIT")
        except BaseException as exc:
            self._chain.head = None
            self._batch = None
            self._seen_version = None
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    cur.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise classify(exc, self.path) from exc
            if isinstance(exc, UnicodeDecodeError):
                raise StorageCorrupt(f"{self.path} is damaged ({exc}); restore it from a backup") from exc
            raise
        finally:
            cur.close()

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Several changes in one commit, each still all or nothing on its own (a savepoint).

        The forwarder records the host's answers to a chunk of advices so: one
        commit a chunk instead of one an answer.  An exception out of the block
        rolls back every change made in it.
        """
        with self._write():
            self._atomic += 1
            try:
                yield
            finally:
                self._atomic -= 1

    @contextlib.contextmanager
    def _savepoint(self) -> Iterator[sqlite3.Cursor]:
        cur = self._conn.cursor()
        try:
            cur.execute("SAVEPOINT store_change")
            try:
                yield cur
            except BaseException:
                self._chain.head = None  # the journal head and batch may have moved in the undone part
                self._batch = None
                with contextlib.suppress(sqlite3.Error):
                    cur.execute("ROLLBACK TO store_change")
                    cur.execute("RELEASE store_change")
                raise
            cur.execute("RELEASE store_change")
        finally:
            cur.close()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Cursor]:
        """A cursor for reads whose SQLite errors (a damaged file) become one clear StorageError."""
        cur = self._conn.cursor()
        try:
            yield cur
        except sqlite3.Error as exc:
            raise classify(exc, self.path) from exc
        except (ValueError, TypeError) as exc:  # undecodable JSON or a value of the wrong type
            raise StorageCorrupt(f"{self.path} holds a damaged value ({exc}); run 'posterm journal verify'") from exc
        finally:
            cur.close()

    def check_integrity(self) -> list[str]:
        """SQLite's own check of the file's structure (``PRAGMA quick_check``): problems, or none."""
        with self._reading() as cur:
            rows = [str(r[0]) for r in cur.execute("PRAGMA quick_check").fetchall()]
        return [] if rows == ["ok"] else rows

    def set_size_limit(self, max_pages: int) -> None:
        """Cap the database size (``PRAGMA max_page_count``); for tests of a full disk."""
        self._conn.execute(f"PRAGMA max_page_count={int(max_pages)}")

    # -- meta -----------------------------------------------------------------------------------

    def _meta(self, cur: sqlite3.Cursor, key: str) -> str | None:
        row = cur.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, cur: sqlite3.Cursor, key: str, value: str) -> None:
        cur.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    def _note_contact(self, cur: sqlite3.Cursor, at: str, result: str, what: str, error: str | None = None) -> None:
        """Within the caller's commit: the host was contacted at ``at`` with this result."""
        mark = canonical({"at": at, "result": result, "what": what, "error": error})
        self._set_meta(cur, "host_contact", mark)
        if result == "answered":
            self._set_meta(cur, "host_answered", mark)

    def _append(
        self, cur: sqlite3.Cursor, txn_id: str, at: str, event: str, state: str, data: Mapping[str, Any]
    ) -> int:
        return self._chain.append(cur, txn_id, at, event, state, data, set_meta=self._set_meta)

    def _txn_row(self, row: Sequence[Any]) -> TxnRow:
        n = len(TXN_COLUMNS)
        values = dict(zip(TXN_COLUMNS, row[:n], strict=True))
        seal = row[n + 1]
        return TxnRow(
            txn_id=values["txn_id"],
            kind=values["kind"],
            state=State(values["state"]),
            amount=int(values["amount"]),
            currency=int(values["currency"]),
            scheme=values["scheme"],
            offline_behavior=values["offline_behavior"],
            batch_id=int(values["batch_id"]),
            created_at=values["created_at"],
            updated_at=values["updated_at"],
            masked_pan=values["masked_pan"],
            pan_token=values["pan_token"],
            card_blob=None if row[n] is None else bytes(row[n]),
            original_txn_id=values["original_txn_id"],
            details=json.loads(values["details"]),
            sealed=seal is not None and bytes(seal) == self._chain.row_seal("transactions", row[:n]),
            shown_at=row[n + 2],
            shown_by=row[n + 3],
        )
