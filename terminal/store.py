"""The terminal's durable state: journal, transactions, queues and batches in one SQLite file.

One file, so that a state change and the queue entry it implies commit
together.  WAL mode with ``synchronous=FULL``: a committed row survives power
loss.  The journal is append-only (triggers refuse UPDATE and DELETE) and
hash-chained with a key from the keystore, and every row that carries money or
state is sealed with a MAC (see :mod:`terminal.journal`), so an edited,
inserted or removed row shows in :meth:`Store.verify`.

:meth:`Store.record` applies one row of the lifecycle table
(:mod:`terminal.lifecycle`) and every effect the row names, and mints the
idempotency keys of what it queues: callers pass only data.

PAN and card data are stored only encrypted (AES-256-GCM through the
keystore); the sensitive authentication data kept for the host is deleted as
soon as its authorisation completes.  Everything else holds the PAN masked.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from terminal import journal
from terminal.journal import SEALED_COLUMNS, Chain, PurgeReport, VerifyReport, canonical
from terminal.keystore import Keystore
from terminal.lifecycle import Event, State, saf_kind, transition
from terminal.schema import SCHEMA, SCHEMA_VERSION, migrate_2_to_3

__all__ = [
    "CardRecord",
    "NewPayment",
    "PurgeReport",
    "QueuedItem",
    "StorageCorrupt",
    "StorageError",
    "StorageFull",
    "StorageReadOnly",
    "Store",
    "TxnRow",
    "VerifyReport",
]

# SQLite's default page size, kept on purpose: a transaction row is about 1 KB, which
# 1 KB pages would push into an overflow page (and grow the file, rewriting page 1,
# on nearly every commit), so that a 1 KB-page commit writes more WAL frames.
PAGE_SIZE = 4096

_OPEN_BATCH = "SELECT batch_id FROM batches WHERE closed_at IS NULL AND closing_at IS NULL"
_TXN_COLUMNS = SEALED_COLUMNS["transactions"]
_TXN_SELECT = f"SELECT {', '.join(_TXN_COLUMNS)}, card_blob, seal FROM transactions"


class StorageError(Exception):
    """The store cannot do what was asked; nothing was changed."""


class StorageFull(StorageError):
    """The disk (or the database's size limit) is full."""


class StorageReadOnly(StorageError):
    """The database cannot be written (read-only file system or file)."""


class StorageCorrupt(StorageError):
    """The file is not a posterm database, or it is damaged."""


def _classify(exc: sqlite3.Error, path: Path) -> StorageError:
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
        for word in ("not a database", "malformed", "decode", "corrupt", "no such table", "no such column")
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


_NO_CARD = CardRecord(None, None, None)


@dataclass(frozen=True)
class NewPayment:
    txn_id: str
    kind: str  # "sale" | "refund"
    amount: int
    currency: int
    scheme: str
    offline_behavior: str
    original_txn_id: str | None = None


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


class Store:
    """Open with :meth:`open`; every write method is one durable SQLite transaction."""

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

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, keystore: Keystore, *, create: bool = True) -> Store:
        """Open the store at ``path``; ``create=False`` refuses a missing, empty or foreign file."""
        path = Path(path)
        if not create:
            try:
                size = path.stat().st_size
            except OSError as exc:
                raise StorageCorrupt(f"the journal {path} cannot be read ({exc.strerror})") from None
            if size == 0:
                raise StorageCorrupt(f"the journal {path} is empty (0 bytes)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        except sqlite3.Error as exc:
            raise _classify(exc, path) from exc
        except OSError as exc:
            raise StorageError(f"cannot open {path}: {exc.strerror}") from exc
        try:
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # applies to a new file only
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            # Deleted rows (the encrypted sensitive data once authorised) are zeroed where that
            # costs no extra I/O, rather than left readable in free space of their pages.
            conn.execute("PRAGMA secure_delete=FAST")
            conn.execute("PRAGMA foreign_keys=ON")
            store = cls(path, conn, keystore)
            store._migrate(create)
        except sqlite3.Error as exc:
            conn.close()
            raise _classify(exc, path) from exc
        except ValueError as exc:  # text in the file's schema that does not decode: damaged
            conn.close()
            raise StorageCorrupt(f"{path} is damaged ({exc}); restore it from a backup") from exc
        except StorageError:
            conn.close()
            raise
        return store

    @staticmethod
    def is_blank(path: Path) -> bool:
        """True when ``path`` holds no payment yet: missing, empty, or a journal without rows.

        Only then may a terminal's keys be made: keys made for a journal that
        has rows could never read its card data.
        """
        try:
            if not path.exists() or path.stat().st_size == 0:
                return True
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except (OSError, sqlite3.Error):
            return False
        try:
            row = conn.execute("SELECT COUNT(*) FROM journal").fetchone()
            return int(row[0]) == 0
        except (sqlite3.Error, ValueError):  # damaged: certainly not blank (Store.open says what is wrong)
            return False
        finally:
            conn.close()

    @classmethod
    def initialise(cls, path: Path) -> None:
        """Create an empty journal (the schema only) at ``path``, before the keys are made.

        A terminal is set up in this order, journal first, so that keys never
        exist without the journal they protect: a data directory with keys and
        no journal has lost its journal, and is refused.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), isolation_level=None)
        except sqlite3.Error as exc:
            raise _classify(exc, path) from exc
        except OSError as exc:
            raise StorageError(f"cannot create {path}: {exc.strerror}") from exc
        try:
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(
                "BEGIN IMMEDIATE;"
                + SCHEMA
                + f"INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', '{SCHEMA_VERSION}');"
                + "COMMIT;"
            )
        except sqlite3.Error as exc:
            raise _classify(exc, path) from exc
        finally:
            conn.close()

    def close(self) -> None:
        self._conn.close()

    def _migrate(self, create: bool) -> None:
        row = None
        with contextlib.suppress(sqlite3.OperationalError):
            row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is not None:
            version = str(row[0])
            if version == "2":
                with self._write() as cur:
                    migrate_2_to_3(cur, self._seal_all)
                return
            if version != str(SCHEMA_VERSION):
                raise StorageCorrupt(f"{self.path}: schema version {version}, this posterm knows {SCHEMA_VERSION}")
            return
        if not create:
            raise StorageCorrupt(f"{self.path} is not a posterm journal (it has no schema)")
        try:
            self._conn.executescript(
                "BEGIN IMMEDIATE;"
                + SCHEMA
                + f"INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', '{SCHEMA_VERSION}');"
                + "COMMIT;"
            )
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise _classify(exc, self.path) from exc

    def _seal_all(self, cur: sqlite3.Cursor) -> None:
        for table, key in (("transactions", "txn_id"), ("reversals", "id"), ("batches", "batch_id")):
            for (value,) in cur.execute(f"SELECT {key} FROM {table}").fetchall():
                self._chain.seal_row(cur, table, value)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction: BEGIN IMMEDIATE ... COMMIT, or nothing at all."""
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
                raise _classify(exc, self.path) from exc
            if isinstance(exc, UnicodeDecodeError):
                raise StorageCorrupt(f"{self.path} is damaged ({exc}); restore it from a backup") from exc
            raise
        finally:
            cur.close()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Cursor]:
        """A cursor for reads whose SQLite errors (a damaged file) become one clear StorageError."""
        cur = self._conn.cursor()
        try:
            yield cur
        except sqlite3.Error as exc:
            raise _classify(exc, self.path) from exc
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

    def _append(
        self, cur: sqlite3.Cursor, txn_id: str, at: str, event: str, state: str, data: Mapping[str, Any]
    ) -> int:
        return self._chain.append(cur, txn_id, at, event, state, data, set_meta=self._set_meta)

    # -- the journal ----------------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """SQLite's structure check, then the chain and every sealed row (:func:`terminal.journal.verify`)."""
        try:
            structure = [f"the file's structure: {p}" for p in self.check_integrity()]
        except StorageError as exc:
            structure = [f"the file's structure cannot be checked: {exc}"]
        report = journal.verify(self._conn, self._chain)
        return VerifyReport(report.rows, structure + report.problems)

    def purge(self, cutoff: str, now: str) -> PurgeReport:
        """Delete settled records made before ``cutoff`` (see :func:`terminal.journal.purge`)."""
        with self._write() as cur:
            return journal.purge(cur, self._chain, cutoff, now, set_meta=self._set_meta)

    def journal_rows(
        self, txn_id: str | None = None, since: str | None = None, until: str | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT seq, txn_id, at, event, state, data FROM journal WHERE 1=1"
        args: list[Any] = []
        if txn_id is not None:
            sql += " AND txn_id=?"
            args.append(txn_id)
        if since is not None:
            sql += " AND at>=?"
            args.append(since)
        if until is not None:
            sql += " AND at<?"
            args.append(until)
        with self._reading() as cur:
            rows = cur.execute(sql + " ORDER BY seq", args).fetchall()
            return [
                {"seq": s, "txn_id": t, "at": a, "event": e, "state": st, "data": json.loads(d)}
                for s, t, a, e, st, d in rows
            ]

    # -- batches --------------------------------------------------------------------------------

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

    # -- transactions ---------------------------------------------------------------------------

    def _txn_row(self, row: Sequence[Any]) -> TxnRow:
        n = len(_TXN_COLUMNS)
        values = dict(zip(_TXN_COLUMNS, row[:n], strict=True))
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
        )

    def _values(self, cur: sqlite3.Cursor, txn_id: str) -> dict[str, Any] | None:
        row = cur.execute(f"SELECT {', '.join(_TXN_COLUMNS)} FROM transactions WHERE txn_id=?", (txn_id,)).fetchone()
        return None if row is None else dict(zip(_TXN_COLUMNS, row, strict=True))

    def get(self, txn_id: str) -> TxnRow | None:
        with self._reading() as cur:
            row = cur.execute(f"{_TXN_SELECT} WHERE txn_id=?", (txn_id,)).fetchone()
            return None if row is None else self._txn_row(row)

    def list_transactions(
        self,
        *,
        batch_id: int | None = None,
        states: Sequence[State] | None = None,
        original_txn_id: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[TxnRow]:
        """Transactions, oldest first (``newest_first``: the other way), filtered as asked."""
        sql = f"{_TXN_SELECT} WHERE 1=1"
        args: list[Any] = []
        if batch_id is not None:
            sql += " AND batch_id=?"
            args.append(batch_id)
        if original_txn_id is not None:
            sql += " AND original_txn_id=?"
            args.append(original_txn_id)
        if states is not None:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args.extend(s.value for s in states)
        order = "DESC" if newest_first else "ASC"
        sql += f" ORDER BY created_at {order}, txn_id {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._reading() as cur:
            return [self._txn_row(r) for r in cur.execute(sql, args).fetchall()]

    def record(
        self,
        txn_id: str,
        event: Event,
        at: str,
        data: Mapping[str, Any],
        *,
        new: NewPayment | None = None,
        card: CardRecord | None = None,
        details: Mapping[str, Any] | None = None,
        sensitive: bytes | None = None,
    ) -> State:
        """Apply one row of the lifecycle table and every effect it names, in one durable commit.

        ``new`` creates the transaction with this first transition (from
        ``started``).  ``data`` is journalled; ``details`` are merged into the
        transaction's details; ``card`` sets its card data; ``sensitive`` is the
        encrypted data for the host, accepted only where the row keeps card
        data.  The row decides the rest: an SAF entry (with a new idempotency
        key), a reversal (likewise), the host's answer to the SAF entry (its
        response code from ``data["response_code"]``), the reversal delivered,
        the sensitive data dropped.  Raises TransitionError when the table
        forbids the change, and nothing is written.
        """
        with self._write() as cur:
            if new is not None:
                values: dict[str, Any] = {
                    "txn_id": new.txn_id,
                    "kind": new.kind,
                    "state": State.STARTED.value,
                    "amount": new.amount,
                    "currency": new.currency,
                    "scheme": new.scheme,
                    "offline_behavior": new.offline_behavior,
                    "batch_id": None,
                    "created_at": at,
                    "updated_at": at,
                    "masked_pan": None,
                    "pan_token": None,
                    "original_txn_id": new.original_txn_id,
                    "details": "{}",
                    "saf_id": None,
                    "saf_kind": None,
                    "saf_key": None,
                    "saf_status": None,
                    "saf_response_code": None,
                }
                card = card or _NO_CARD
            else:
                found = self._values(cur, txn_id)
                if found is None:
                    raise StorageError(f"no transaction {txn_id}")
                values = found
            row = transition(State(values["state"]), event)
            if sensitive is not None and not row.keep_card_data:
                raise ValueError(f"{event.value} from {values['state']} does not keep card data")
            # A new payment's first journal row carries what the payment is (kind, amount,
            # currency, ...) together with its first transition: one row, one commit.
            journalled = dict(data)
            if new is not None:
                journalled = {
                    "kind": new.kind,
                    "amount": new.amount,
                    "currency": new.currency,
                    "offline_behavior": new.offline_behavior,
                    "original_txn_id": new.original_txn_id,
                } | journalled
            seq = self._append(cur, txn_id, at, event.value, row.to.value, journalled)
            values["state"] = row.to.value
            values["updated_at"] = at
            if details:
                values["details"] = canonical(json.loads(values["details"]) | dict(details))
            if card is not None:
                values["masked_pan"], values["pan_token"] = card.masked_pan, card.pan_token
            if row.queue_saf:
                if values["saf_id"] is not None:
                    raise StorageError(f"{txn_id} is already in the store-and-forward queue")
                values["saf_id"] = seq
                values["saf_kind"] = saf_kind(values["kind"], event)
                values["saf_key"] = secrets.token_hex(16)
                values["saf_status"] = "queued"
            if row.saf_answer is not None and values["saf_status"] == "queued":
                values["saf_status"] = row.saf_answer
                values["saf_response_code"] = data.get("response_code")
            if new is not None:
                values["batch_id"] = self._open_batch(cur, at)
            seal = self._chain.row_seal("transactions", [values[c] for c in _TXN_COLUMNS])
            sad = None if row.drop_card_data else sensitive
            if new is not None:
                assert card is not None
                cur.execute(
                    f"INSERT INTO transactions({', '.join(_TXN_COLUMNS)}, card_blob, sad_blob, saf_created_at, "
                    f"saf_next_attempt_at, seal) VALUES({','.join('?' * (len(_TXN_COLUMNS) + 5))})",
                    (
                        *(values[c] for c in _TXN_COLUMNS),
                        card.card_blob,
                        sad,
                        at if row.queue_saf else None,
                        at if row.queue_saf else None,
                        seal,
                    ),
                )
            else:
                sets = ", ".join(f"{c}=?" for c in _TXN_COLUMNS[1:])
                args: list[Any] = [values[c] for c in _TXN_COLUMNS[1:]]
                if card is not None:
                    sets += ", card_blob=?"
                    args.append(card.card_blob)
                if sensitive is not None or row.drop_card_data:
                    sets += ", sad_blob=?"
                    args.append(sad)
                if row.queue_saf:
                    sets += ", saf_created_at=?, saf_next_attempt_at=?"
                    args += [at, at]
                if row.saf_answer is not None:
                    sets += ", saf_answered_at=?"
                    args.append(at)
                cur.execute(f"UPDATE transactions SET {sets}, seal=? WHERE txn_id=?", (*args, seal, txn_id))
            if row.queue_reversal is not None:
                cur.execute(
                    "INSERT INTO reversals(txn_id, idempotency_key, amount, currency, reason, created_at, "
                    "next_attempt_at) VALUES(?,?,?,?,?,?,?)",
                    (txn_id, secrets.token_hex(16), values["amount"], values["currency"], row.queue_reversal, at, at),
                )
                self._chain.seal_row(cur, "reversals", int(cur.lastrowid or 0))
            if row.reversal_done:
                done = cur.execute(
                    "UPDATE reversals SET status='done', last_attempt_at=? WHERE txn_id=? RETURNING id", (at, txn_id)
                ).fetchall()
                for (reversal_id,) in done:
                    self._chain.seal_row(cur, "reversals", reversal_id)
            return row.to

    def read_sensitive(self, txn_id: str) -> bytes | None:
        with self._reading() as cur:
            row = cur.execute("SELECT sad_blob FROM transactions WHERE txn_id=?", (txn_id,)).fetchone()
            return None if row is None or row[0] is None else bytes(row[0])

    # -- queues ---------------------------------------------------------------------------------

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
                    f"WHERE saf_id IN ({marks})",
                    (at, *ids),
                )
                self._set_meta(cur, "saf_last_attempt", canonical({"at": at, "error": None}))
            elif table == "reversals":
                cur.execute(
                    f"UPDATE reversals SET attempts=attempts+1, last_attempt_at=? WHERE id IN ({marks})", (at, *ids)
                )
            else:
                raise ValueError(table)

    def note_failure(self, table: str, item_id: int, error: str, next_attempt_at: str | None) -> None:
        """Record why an attempt did not settle the entry (it stays queued) and when to try again."""
        with self._write() as cur:
            if table == "saf":
                cur.execute(
                    "UPDATE transactions SET saf_last_error=?, saf_next_attempt_at=? WHERE saf_id=?",
                    (error, next_attempt_at, item_id),
                )
                last = self._meta(cur, "saf_last_attempt")
                at = json.loads(last)["at"] if last else None
                self._set_meta(cur, "saf_last_attempt", canonical({"at": at, "error": error}))
            elif table == "reversals":
                cur.execute(
                    "UPDATE reversals SET last_error=?, next_attempt_at=? WHERE id=?", (error, next_attempt_at, item_id)
                )
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
            for row in cur.execute(f"{_TXN_SELECT} WHERE saf_status='queued'").fetchall():
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
