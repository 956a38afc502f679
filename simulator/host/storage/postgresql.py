"""The fleet's engine: PostgreSQL through psycopg 3 and a connection pool, shared by many host workers.

Every worker process opens its own :class:`PostgresEngine` from the same URL
(never one inherited across ``fork``: a pool's connections and threads do not
survive it). A transaction takes a connection from the pool and keeps it, for
its thread, until it commits; a statement outside a transaction borrows one
for itself (autocommit).

Same guarantees as SQLite, from the database, not from process memory
---------------------------------------------------------------------
On SQLite ``BEGIN IMMEDIATE`` runs writing transactions one at a time. Here
workers run them side by side, at ``READ COMMITTED`` (set on every
connection, whatever the server's default): each statement sees what was
committed before it began. What keeps the host's checks true:

1. **A lock per terminal.** :meth:`~simulator.host.acquirer.Acquirer.handle`
   begins its transaction with ``store.lock("terminal", terminal_id)``
   (``pg_advisory_xact_lock`` on a 64-bit hash of the name, released at commit
   or rollback). Everything a terminal's request checks and changes (the
   idempotency key's stored answer, the advices' own keys, the terminal's
   host batch and its closes) is then done by one transaction at a time per
   terminal, while other terminals go on in parallel. A second worker given
   the same key waits, and its next statement, in a new snapshot, finds the
   answer the first one stored: it replays it. An authorisation never lands
   in a batch that a close is totalling.
2. **Constraints behind the locks.** Primary keys on (terminal, key) of the
   idempotency cache, the advice keys and the batch closes. A write that
   would break one (a path that forgot its lock) fails with
   :class:`~simulator.host.storage.base.StoreConflict`, its transaction is
   rolled back, and the acquirer runs the request again: it then replays.
3. **Conditional updates for what may be used once.** An enrolment code is
   spent by ``UPDATE ... WHERE used_at IS NULL``; at ``READ COMMITTED`` the
   second of two concurrent updates waits for the first, re-checks its
   ``WHERE`` on the row as committed, and changes nothing.
4. **A sequence for the host references** (``nextval``): never the same
   number twice, never waiting on another transaction; a rolled-back
   transaction's number is skipped.
5. **Named locks for the rest**: the parameters' next version is read and
   stored under ``lock("parameters")``; migrations run under one lock, so
   workers starting together upgrade the schema once. The issuer's checks
   that read what other requests write lock it first
   (:mod:`simulator.host.rules`): the transaction a request names (approved
   once, a sale's refunds, a reversal's target), the merchant's refund
   allowance (shared by its terminals), the card (its velocity count, shared
   by every terminal); a unique index on approved transactions backs the
   first.

Deadlocks and serialization failures (``40P01``, ``40001``) and unique
violations (``23505``) raise :class:`StoreConflict`: the transaction is gone,
and running it again is safe. Locks are taken terminal first, then anything
shared, always in the order terminal, transaction, allowance, card.

The host's secrets (the body digests' and the card tokens' HMAC keys) are not
in the database: they are in the key store of the host's data directory
(``keys/``), which every worker shares (:mod:`simulator.host.keys`); the
database holds a check value of each, so a process given another key store
is refused at open.

Why not ``SERIALIZABLE`` with retries: its predicate locks are taken on index
pages, so two terminals' idempotency checks of keys on the same page and the
inserts that follow form a conflict cycle; retries would grow with the load,
just when the fleet needs the throughput, and every ``with
store.transaction()`` of the code base would have to be written to be re-run.

Credentials: the URL's password never appears in a message (see
:func:`~simulator.host.storage.base.scrub`); a URL that does not parse, a
server that cannot be reached and a refused login are all a
:class:`StoreError` of one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

from simulator.host.storage.base import (
    Engine,
    Row,
    StoreConflict,
    StoreError,
    format_placeholders,
    redact,
    scrub,
)

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

__all__ = ["CONNECT_TIMEOUT_SECONDS", "POOL_SIZE", "PostgresEngine", "lock_key"]

#: Connections per worker process (the event loop uses one at a time; threads of a test more).
POOL_SIZE: Final = 10
CONNECT_TIMEOUT_SECONDS: Final = 5
#: How long a request waits for a free pooled connection (a server gone away: then StoreError).
_POOL_WAIT_SECONDS: Final = 10.0
#: SQLSTATEs of a transaction that lost a race: serialization failure, deadlock, unique violation.
_CONFLICTS: Final = frozenset({"40001", "40P01", "23505"})

_T = TypeVar("_T")


def lock_key(name: tuple[str, ...]) -> int:
    """The 64-bit advisory lock key of a lock name (signed, as ``bigint``)."""
    digest = hashlib.blake2b("\x1f".join(name).encode("utf-8"), digest_size=8, person=b"posterm-lock").digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresEngine(Engine):
    """A PostgreSQL database, named by a ``postgresql://`` URL (libpq's syntax, query parameters too)."""

    name: ClassVar[str] = "postgresql"

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool, PoolTimeout

        self._url = url
        self.where = redact(url)
        self._local = threading.local()
        self._psycopg_error: type[Exception] = psycopg.Error
        self._pool_timeout: type[Exception] = PoolTimeout
        try:  # one plain connection first: its error says why (a pool would only time out)
            probe = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the host database {self.where}: {self._clean(exc)}") from None
        except ValueError as exc:  # pragma: no cover - libpq parses; psycopg may refuse a value first
            raise StoreError(f"cannot open the host database {self.where}: {self._clean(exc)}") from None
        probe.close()
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": "posterm-host"},
            configure=self._configure,
            timeout=_POOL_WAIT_SECONDS,
            name="posterm-host",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS * 2)
        except PoolTimeout:
            self._pool.close()
            raise StoreError(f"cannot open the host database {self.where}: no connection within the time") from None

    @staticmethod
    def _configure(connection: psycopg.Connection[tuple[Any, ...]]) -> None:
        from psycopg import IsolationLevel

        connection.isolation_level = IsolationLevel.READ_COMMITTED

    def _clean(self, exc: BaseException) -> str:
        return scrub(str(exc) or type(exc).__name__, self._url)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._pool_timeout:
            wait = f"{_POOL_WAIT_SECONDS:g} s"
            raise StoreError(f"host database {self.where}: no free connection within {wait}") from None
        except self._psycopg_error as exc:
            state = getattr(exc, "sqlstate", None)
            kind = StoreConflict if state in _CONFLICTS else StoreError
            raise kind(f"host database {self.where}: {self._clean(exc)}") from None

    # ------------------------------------------------------------------ transactions

    def _current(self) -> psycopg.Connection[tuple[Any, ...]] | None:
        conn: psycopg.Connection[tuple[Any, ...]] | None = getattr(self._local, "conn", None)
        return conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._current() is not None:
            yield
            return
        with self._errors(), self._pool.connection() as conn:
            self._local.conn = conn
            try:
                with conn.transaction():
                    yield
            finally:
                self._local.conn = None

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """``BEGIN ISOLATION LEVEL READ COMMITTED`` ... ``COMMIT`` on one pooled connection; re-entrant."""
        return self._transaction()

    @property
    def in_transaction(self) -> bool:
        return self._current() is not None

    def _run(self, sql: str, args: tuple[Any, ...], read: Callable[[psycopg.Cursor[tuple[Any, ...]]], _T]) -> _T:
        query = format_placeholders(sql)
        conn = self._current()
        with self._errors():
            if conn is not None:
                return read(conn.execute(query, args))
            with self._pool.connection() as own:
                return read(own.execute(query, args))

    # ------------------------------------------------------------------ statements

    def one(self, sql: str, args: tuple[Any, ...] = ()) -> Row | None:
        return self._run(sql, args, lambda cursor: cursor.fetchone())

    def all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Row]:
        return self._run(sql, args, lambda cursor: list(cursor.fetchall()))

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        return self._run(sql, args, lambda cursor: int(cursor.rowcount))

    def lock(self, *name: str) -> None:
        """``pg_advisory_xact_lock`` on the name's 64-bit key: held until this transaction ends."""
        if not self.in_transaction:
            raise RuntimeError("HostStore.lock() outside a transaction")
        self.execute("SELECT pg_advisory_xact_lock(CAST(? AS BIGINT))", (lock_key(name),))

    def next_reference_number(self) -> int:
        row = self.one("SELECT nextval('reference_seq')")
        assert row is not None
        return int(row[0])

    def has_schema(self) -> bool:
        row = self.one("SELECT to_regclass('meta') IS NOT NULL")
        return bool(row and row[0])

    def has_index(self, name: str) -> bool:
        row = self.one("SELECT to_regclass(CAST(? AS TEXT)) IS NOT NULL", (name,))
        return bool(row and row[0])

    def close(self) -> None:
        self._pool.close()
