"""The embedded engine: one SQLite file (WAL), for one machine, the simulator and the in-process host.

The file is the host's alone: made 0600 in a 0700 folder before SQLite opens
it (:mod:`simulator.host.files`; SQLite gives its ``-wal`` and ``-shm`` the
file's mode), and one an older host left readable is made private again.

Several processes use the file at once (the server, the CLI, a test's
:class:`~simulator.host.service.HostService`, the terminal commands that share
an in-process host): WAL mode, a busy timeout of 10 s, ``synchronous=FULL``,
and ``BEGIN IMMEDIATE`` for every transaction. ``BEGIN IMMEDIATE`` takes the
file's write lock at the start, so transactions that change anything run one
at a time, across threads and processes: a check-then-act inside one is safe
without more, and :meth:`SqliteEngine.lock` has nothing left to do.

In a process, one connection serves every thread, guarded by a re-entrant
lock that a transaction holds from begin to commit.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from simulator.host.files import private_dir, private_file
from simulator.host.storage.base import Engine, Row, StoreConflict, StoreError, StoreMissing

__all__ = ["SqliteEngine"]

_BUSY_TIMEOUT_SECONDS = 10.0


class SqliteEngine(Engine):
    """A SQLite database file (``:memory:`` for one that lives as long as the engine)."""

    name: ClassVar[str] = "sqlite"

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        memory = str(path) == ":memory:"
        if not memory:
            if not create and not self.path.is_file():
                raise StoreMissing(f"no host database at {self.path}")
            private_dir(self.path.parent)
            for suffix in ("", "-wal", "-shm"):  # the last two: those an older host left 0644
                sibling = self.path.with_name(self.path.name + suffix)
                if not suffix or sibling.exists():
                    private_file(sibling)  # 0600 before SQLite opens it (its -wal and -shm get its mode)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            self._wal()
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open host database {self.path}: {exc}") from exc

    def _wal(self) -> None:
        """WAL mode. A new file's switch to WAL needs it alone, and SQLite answers "locked" at once (no
        busy wait) while another process makes the same switch: tried again until the busy timeout."""
        deadline = time.monotonic() + _BUSY_TIMEOUT_SECONDS
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's errors as the store's: a unique key already there is a :class:`StoreConflict`, as on
        PostgreSQL (the transaction is rolled back by :meth:`transaction`)."""
        try:
            yield
        except sqlite3.IntegrityError as exc:
            kind = StoreConflict if "UNIQUE constraint failed" in str(exc) or "not unique" in str(exc) else StoreError
            raise kind(f"host database {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"host database {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            with self._errors():
                self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                with self._errors():
                    self._db.execute("ROLLBACK")
                raise
            with self._errors():
                self._db.execute("COMMIT")

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an exception); re-entrant."""
        return self._transaction()

    @property
    def in_transaction(self) -> bool:
        with self._lock:
            return self._db.in_transaction

    def one(self, sql: str, args: tuple[Any, ...] = ()) -> Row | None:
        with self._lock, self._errors():
            row: Row | None = self._db.execute(sql, args).fetchone()
            return row

    def all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Row]:
        with self._lock, self._errors():
            return list(self._db.execute(sql, args).fetchall())

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        with self._lock, self._errors():
            return int(self._db.execute(sql, args).rowcount)

    def lock(self, *name: str) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the database's write lock."""
        if not self.in_transaction:
            raise RuntimeError("HostStore.lock() outside a transaction")

    def next_reference_number(self) -> int:
        """The ``seq`` row of ``meta`` counted up (one statement: atomic, or a part of the caller's transaction)."""
        row = self.one(
            "INSERT INTO meta (key, value) VALUES ('seq', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING value"
        )
        assert row is not None
        return int(row[0])

    def has_schema(self) -> bool:
        return self.one("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'") is not None

    def has_index(self, name: str) -> bool:
        return self.one("SELECT name FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)) is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()
