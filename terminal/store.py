"""The terminal's durable state: journal, transactions, queues and batches in one SQLite file.

One file, so that a state change and the queue entry it implies commit
together.  WAL mode with ``synchronous=FULL``: a committed row survives power
loss.  The journal is append-only (triggers refuse UPDATE and DELETE) and
hash-chained with a key from the keystore, so an edited, inserted or removed
row shows in :meth:`Store.verify`; the chain head is sealed too, so cutting
rows off the end shows as well.

PAN and card data are stored only encrypted (AES-256-GCM through the
keystore); sensitive authentication data (track 2 equivalent data, the ICC
data sent for authorisation) lives in its own table and is deleted as soon as
its authorisation completes.  Everything else holds the PAN masked.
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

from terminal.keystore import Keystore
from terminal.lifecycle import Event, State, next_state

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

SCHEMA_VERSION = 2
# SQLite's default page size, kept on purpose: a transaction row is about 1 KB, which
# 1 KB pages would push into an overflow page (and grow the file, rewriting page 1,
# on nearly every commit), so that a 1 KB-page commit writes more WAL frames.
PAGE_SIZE = 4096
GENESIS = bytes(32)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    txn_id TEXT NOT NULL,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL,
    data TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS journal_no_update BEFORE UPDATE ON journal
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS journal_no_delete BEFORE DELETE ON journal
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TABLE IF NOT EXISTS transactions (
    txn_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency INTEGER NOT NULL,
    scheme TEXT NOT NULL,
    offline_behavior TEXT NOT NULL,
    batch_id INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    masked_pan TEXT,
    pan_token TEXT,
    card_blob BLOB,
    original_txn_id TEXT,
    details TEXT NOT NULL,
    -- sensitive authentication data (encrypted), set to NULL once its authorisation completes
    sad_blob BLOB,
    -- the transaction's store-and-forward entry, if it has one (at most one, by construction):
    -- saf_id is the journal seq of the row that queued it, so the queue is FIFO in journal order
    saf_id INTEGER,
    saf_kind TEXT,
    saf_key TEXT,
    saf_status TEXT,
    saf_created_at TEXT,
    saf_attempts INTEGER NOT NULL DEFAULT 0,
    saf_next_attempt_at TEXT,
    saf_last_attempt_at TEXT,
    saf_last_error TEXT,
    saf_answered_at TEXT,
    saf_response_code TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS transactions_unfinished ON transactions (state)
    WHERE state IN ('started', 'authorising', 'reversal_pending', 'void_pending');
CREATE INDEX IF NOT EXISTS transactions_batch ON transactions (batch_id);
CREATE INDEX IF NOT EXISTS saf_queue ON transactions (saf_id) WHERE saf_status = 'queued';
-- Read-only views of the queue and of the sensitive data, for reports, tests and people.
CREATE VIEW IF NOT EXISTS saf AS
    SELECT saf_id AS id, txn_id, saf_kind AS kind, saf_key AS idempotency_key, amount, currency,
           saf_created_at AS created_at, saf_attempts AS attempts, saf_next_attempt_at AS next_attempt_at,
           saf_last_attempt_at AS last_attempt_at, saf_last_error AS last_error, saf_status AS status,
           saf_answered_at AS answered_at, saf_response_code AS response_code
    FROM transactions WHERE saf_id IS NOT NULL;
CREATE VIEW IF NOT EXISTS sensitive AS SELECT txn_id, sad_blob AS blob FROM transactions WHERE sad_blob IS NOT NULL;
CREATE TABLE IF NOT EXISTS reversals (
    id INTEGER PRIMARY KEY,
    txn_id TEXT NOT NULL UNIQUE,
    idempotency_key TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_attempt_at TEXT,
    last_error TEXT,
    status TEXT NOT NULL DEFAULT 'queued'
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id INTEGER PRIMARY KEY,
    opened_at TEXT NOT NULL,
    closing_at TEXT,
    closed_at TEXT,
    in_balance INTEGER,
    host_reference TEXT,
    totals TEXT
);
"""


_OPEN_BATCH = "SELECT batch_id FROM batches WHERE closed_at IS NULL AND closing_at IS NULL"


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
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return StorageCorrupt(f"{path} is damaged or not a posterm database ({exc})")
    return StorageError(f"storage error on {path}: {exc}; nothing was stored")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


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


@dataclass(frozen=True)
class PurgeReport:
    journal_rows: int
    transactions: int
    batches: int


@dataclass
class VerifyReport:
    rows: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


class Store:
    """Open with :meth:`open`; every write method is one durable SQLite transaction."""

    def __init__(self, path: Path, conn: sqlite3.Connection, keystore: Keystore) -> None:
        self.path = path
        self._conn = conn
        self._keystore = keystore
        self._totals_cache: tuple[int, dict[int, tuple[int, int]]] | None = None
        # The last journal row (seq, hash), kept between commits while no other
        # connection has written (``PRAGMA data_version`` is unchanged).
        self._head: tuple[int, bytes] | None = None
        self._batch: int | None = None  # the open batch, cached on the same terms
        self._seen_version: int | None = None

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, keystore: Keystore) -> Store:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # applies to a new file only
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            # Deleted rows (the encrypted sensitive data once authorised) are zeroed where that
            # costs no extra I/O, rather than left readable in free space of their pages.
            conn.execute("PRAGMA secure_delete=FAST")
            conn.execute("PRAGMA foreign_keys=ON")
            store = cls(path, conn, keystore)
            store._migrate()
        except sqlite3.Error as exc:
            raise _classify(exc, path) from exc
        except OSError as exc:
            raise StorageError(f"cannot open {path}: {exc.strerror}") from exc
        return store

    def close(self) -> None:
        self._conn.close()

    def _migrate(self) -> None:
        row = None
        with contextlib.suppress(sqlite3.OperationalError):
            row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is not None:
            if int(row[0]) != SCHEMA_VERSION:
                raise StorageCorrupt(f"{self.path}: schema version {row[0]}, this posterm knows {SCHEMA_VERSION}")
            return
        try:
            self._conn.executescript(
                "BEGIN IMMEDIATE;"
                + _SCHEMA
                + f"INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', '{SCHEMA_VERSION}');"
                + "COMMIT;"
            )
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise _classify(exc, self.path) from exc

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction: BEGIN IMMEDIATE ... COMMIT, or nothing at all."""
        cur = self._conn.cursor()
        try:
            if not self._conn.in_transaction:
                cur.execute("BEGIN IMMEDIATE")
            version = int(cur.execute("PRAGMA data_version").fetchone()[0])
            if version != self._seen_version:
                self._head = None
                self._batch = None
                self._seen_version = version
            yield cur
            self._totals_cache = None
            cur.execute("COMMIT")
        except BaseException as exc:
            self._head = None
            self._batch = None
            self._seen_version = None
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    cur.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _classify(exc, self.path) from exc
            raise
        finally:
            cur.close()

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

    # -- the journal ----------------------------------------------------------------------------

    def _chain(self, prev: bytes, seq: int, txn_id: str, at: str, event: str, state: str, data: str) -> bytes:
        body = _canonical([seq, txn_id, at, event, state, data]).encode()
        return self._keystore.mac(prev + body, "journal")

    def _seal(self, seq: int, digest: bytes) -> str:
        return self._keystore.mac(f"head:{seq}:{digest.hex()}".encode(), "journal").hex()

    def _append(
        self,
        cur: sqlite3.Cursor,
        txn_id: str,
        at: str,
        event: str,
        state: str,
        data: Mapping[str, Any],
        *,
        seal: bool = True,
    ) -> int:
        """Append one row to the chain; ``seal=False`` when another row follows in the same commit."""
        if self._head is None:
            last = cur.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
            self._head = (0, GENESIS) if last is None else (int(last[0]), bytes(last[1]))
        seq, prev = self._head[0] + 1, self._head[1]
        text = _canonical(dict(data))
        digest = self._chain(prev, seq, txn_id, at, event, state, text)
        cur.execute(
            "INSERT INTO journal(seq, txn_id, at, event, state, data, prev_hash, hash) VALUES(?,?,?,?,?,?,?,?)",
            (seq, txn_id, at, event, state, text, prev, digest),
        )
        self._head = (seq, digest)
        if seal:
            self._set_meta(cur, "journal_head", self._seal(seq, digest))
        return seq

    def verify(self) -> VerifyReport:
        """Walk the chain: any edited, inserted or removed row, or a cut tail, is a problem."""
        problems: list[str] = []
        prev = GENESIS
        expected_seq = 1
        count = 0
        last_state: dict[str, str] = {}
        cur = self._conn.cursor()
        try:
            anchor = self._meta(cur, "journal_anchor")
            if anchor is not None:  # the rows up to the anchor were purged by the retention policy
                mark = json.loads(anchor)
                if mark.get("seal") != self._anchor_seal(int(mark["seq"]), bytes.fromhex(mark["hash"])):
                    problems.append("the purge anchor is not sealed by this terminal (edited)")
                prev, expected_seq = bytes.fromhex(mark["hash"]), int(mark["seq"]) + 1
            for seq, txn_id, at, event, state, data, prev_hash, digest in cur.execute(
                "SELECT seq, txn_id, at, event, state, data, prev_hash, hash FROM journal ORDER BY seq"
            ):
                count += 1
                if seq != expected_seq:
                    problems.append(
                        f"row {expected_seq}" + (f" to {seq - 1}" if seq - 1 > expected_seq else "") + " missing"
                    )
                if bytes(prev_hash) != prev:
                    problems.append(f"row {seq}: does not follow the row before it")
                if self._chain(bytes(prev_hash), seq, txn_id, at, event, state, data) != bytes(digest):
                    problems.append(f"row {seq}: edited (its hash does not match its content)")
                prev = bytes(digest)
                expected_seq = seq + 1
                last_state[txn_id] = state
            head = self._meta(cur, "journal_head")
            if count and head != self._seal(expected_seq - 1, prev):
                problems.append(
                    f"the journal ends at row {expected_seq - 1} but was sealed at another row "
                    "(rows removed from the end, or the seal edited)"
                )
            if not count and head is not None:
                problems.append("the journal is empty but was sealed: rows removed")
            for txn_id, state in cur.execute("SELECT txn_id, state FROM transactions"):
                if last_state.get(txn_id) != state:
                    problems.append(
                        f"transaction {txn_id}: state {state} is not what the journal says "
                        f"({last_state.get(txn_id, 'no journal rows')})"
                    )
        except sqlite3.Error as exc:
            problems.append(f"cannot read the journal: {exc}")
        finally:
            cur.close()
        return VerifyReport(count, problems)

    def _anchor_seal(self, seq: int, digest: bytes) -> str:
        return self._keystore.mac(f"anchor:{seq}:{digest.hex()}".encode(), "journal").hex()

    def purge(self, cutoff: str, now: str) -> PurgeReport:
        """Delete what the retention policy no longer requires: settled records made before ``cutoff``.

        A transaction goes only when its batch is closed, nothing about it is
        pending (no queued SAF entry or reversal, no unfinished state) and every
        one of its journal rows lies in the purged prefix of the journal.  The
        prefix ends before the first row that must stay (anything at or after
        ``cutoff``, anything of a transaction that stays), so that the journal
        keeps a gapless chain; the last purged row's hash is kept, sealed, as
        the anchor that :meth:`verify` starts from, and the purge itself is
        journalled.
        """
        with self._write() as cur:
            keep = (
                "SELECT txn_id FROM transactions t WHERE t.created_at >= :cutoff "
                "OR t.state IN ('started', 'authorising', 'reversal_pending', 'void_pending') "
                "OR t.saf_status = 'queued' "
                "OR t.batch_id NOT IN (SELECT batch_id FROM batches WHERE closed_at IS NOT NULL) "
                "OR t.txn_id IN (SELECT txn_id FROM reversals WHERE status = 'queued')"
            )
            row = cur.execute(
                f"SELECT MIN(seq) FROM journal WHERE at >= :cutoff OR txn_id IN ({keep}) "
                "OR (txn_id LIKE 'batch-%' AND CAST(SUBSTR(txn_id, 7) AS INTEGER) IN "
                "(SELECT batch_id FROM batches WHERE closed_at IS NULL))",
                {"cutoff": cutoff},
            ).fetchone()
            first_kept = row[0] if row[0] is not None else (self._head_seq(cur) + 1)
            last = cur.execute(
                "SELECT seq, hash FROM journal WHERE seq < ? ORDER BY seq DESC LIMIT 1", (first_kept,)
            ).fetchone()
            if last is None:
                return PurgeReport(0, 0, 0)
            through, digest = int(last[0]), bytes(last[1])
            gone = [
                r[0]
                for r in cur.execute(
                    "SELECT txn_id FROM journal GROUP BY txn_id HAVING MAX(seq) <= ? AND txn_id NOT LIKE 'batch-%' "
                    "AND txn_id != 'journal'",
                    (through,),
                )
            ]
            cur.executemany("DELETE FROM transactions WHERE txn_id=?", [(t,) for t in gone])
            cur.executemany("DELETE FROM reversals WHERE txn_id=?", [(t,) for t in gone])
            batches = cur.execute(
                "DELETE FROM batches WHERE closed_at IS NOT NULL AND closed_at < ? "
                "AND batch_id NOT IN (SELECT batch_id FROM transactions)",
                (cutoff,),
            ).rowcount
            # The append-only triggers stand aside for this one statement, in this one commit.
            cur.execute("DROP TRIGGER journal_no_delete")
            rows = cur.execute("DELETE FROM journal WHERE seq <= ?", (through,)).rowcount
            cur.execute(
                "CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal "
                "BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END"
            )
            anchor = {"seq": through, "hash": digest.hex(), "seal": self._anchor_seal(through, digest)}
            self._set_meta(cur, "journal_anchor", _canonical(anchor))
            self._append(
                cur,
                "journal",
                now,
                "journal_purged",
                "purged",
                {"through_seq": through, "cutoff": cutoff, "transactions": len(gone), "batches": batches},
            )
            return PurgeReport(rows, len(gone), batches)

    def _head_seq(self, cur: sqlite3.Cursor) -> int:
        last = cur.execute("SELECT MAX(seq) FROM journal").fetchone()
        return int(last[0] or 0)

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
        rows = self._conn.execute(sql + " ORDER BY seq", args).fetchall()
        return [
            {"seq": s, "txn_id": t, "at": a, "event": e, "state": st, "data": json.loads(d)}
            for s, t, a, e, st, d in rows
        ]

    # -- batches --------------------------------------------------------------------------------

    def current_batch(self, now: str) -> int:
        row = self._conn.execute(_OPEN_BATCH).fetchone()
        if row is not None:
            return int(row[0])
        with self._write() as cur:
            row = cur.execute(_OPEN_BATCH).fetchone()
            if row is not None:
                return int(row[0])
            cur.execute("INSERT INTO batches(opened_at) VALUES(?)", (now,))
            return int(cur.lastrowid or 0)

    def closed_batches(self) -> list[int]:
        return [
            int(r[0])
            for r in self._conn.execute("SELECT batch_id FROM batches WHERE closed_at IS NOT NULL ORDER BY batch_id")
        ]

    def batch_info(self, batch_id: int) -> dict[str, Any]:
        row = self._conn.execute(
            "SELECT batch_id, opened_at, closed_at, in_balance, host_reference, totals, closing_at FROM batches "
            "WHERE batch_id=?",
            (batch_id,),
        ).fetchone()
        if row is None:
            raise KeyError(batch_id)
        return {
            "batch_id": row[0],
            "opened_at": row[1],
            "closed_at": row[2],
            "in_balance": None if row[3] is None else bool(row[3]),
            "host_reference": row[4],
            "totals": json.loads(row[5]) if row[5] else None,
            "closing_at": row[6],
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
                (now, _canonical(dict(totals)), batch_id),
            )
            if cur.rowcount != 1:
                raise StorageError(f"batch {batch_id} is not open")
            self._append(cur, f"batch-{batch_id}", now, "batch_closing", "closing", {"batch_id": batch_id})
            self._batch = None
            cur.execute("INSERT INTO batches(opened_at) VALUES(?)", (now,))
            return int(cur.lastrowid or 0)

    def closing_batch(self) -> tuple[int, dict[str, Any]] | None:
        """The batch whose close was asked of the host and not yet answered, with its frozen totals."""
        row = self._conn.execute(
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
                (now, int(in_balance), host_reference, _canonical(totals), batch_id),
            )
            self._append(
                cur,
                f"batch-{batch_id}",
                now,
                "batch_closed",
                "closed",
                {"batch_id": batch_id, "in_balance": in_balance, "host_reference": host_reference},
            )

    # -- transactions ---------------------------------------------------------------------------

    def _row(self, cur: sqlite3.Cursor, txn_id: str) -> TxnRow | None:
        row = cur.execute(
            "SELECT txn_id, kind, state, amount, currency, scheme, offline_behavior, batch_id, created_at, "
            "updated_at, masked_pan, pan_token, card_blob, original_txn_id, details FROM transactions "
            "WHERE txn_id=?",
            (txn_id,),
        ).fetchone()
        return None if row is None else _txn_row(row)

    def get(self, txn_id: str) -> TxnRow | None:
        cur = self._conn.cursor()
        try:
            return self._row(cur, txn_id)
        finally:
            cur.close()

    def list_transactions(
        self, *, batch_id: int | None = None, states: Sequence[State] | None = None, limit: int | None = None
    ) -> list[TxnRow]:
        sql = (
            "SELECT txn_id, kind, state, amount, currency, scheme, offline_behavior, batch_id, created_at, "
            "updated_at, masked_pan, pan_token, card_blob, original_txn_id, details FROM transactions WHERE 1=1"
        )
        args: list[Any] = []
        if batch_id is not None:
            sql += " AND batch_id=?"
            args.append(batch_id)
        if states is not None:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args.extend(s.value for s in states)
        sql += " ORDER BY created_at, txn_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_txn_row(r) for r in self._conn.execute(sql, args).fetchall()]

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
        drop_sensitive: bool = False,
        saf_kind: str | None = None,
        saf_key: str | None = None,
        reversal: tuple[str, str] | None = None,
        saf_answer: tuple[str, str | None] | None = None,
        reversal_done: bool = False,
    ) -> State:
        """Apply one transition and everything it implies, in one durable SQLite transaction.

        ``new`` creates the transaction (in state ``started``) first, within the
        same commit.  ``saf_kind``/``saf_key`` enqueue an SAF entry;
        ``reversal=(reason, key)`` a reversal; ``saf_answer=(status, code)``
        records the host's answer to the SAF entry; ``reversal_done`` marks the
        reversal delivered.  Raises TransitionError when the table forbids it.
        """
        with self._write() as cur:
            saf: tuple[str, str] | None = None
            if saf_kind is not None:
                if saf_key is None:
                    raise ValueError("an SAF entry needs its idempotency key")
                saf = (saf_kind, saf_key)
            if new is not None:
                # A new payment's first journal row carries what the payment is (kind, amount,
                # currency, ...) together with its first transition: one row, one commit.
                state = next_state(State.STARTED, event)
                first = {
                    "kind": new.kind,
                    "amount": new.amount,
                    "currency": new.currency,
                    "offline_behavior": new.offline_behavior,
                    "original_txn_id": new.original_txn_id,
                }
                seq = self._append(cur, txn_id, at, event.value, state.value, first | dict(data))
                card = card or _NO_CARD
                cur.execute(
                    "INSERT INTO transactions(txn_id, kind, state, amount, currency, scheme, offline_behavior, "
                    "batch_id, created_at, updated_at, masked_pan, pan_token, card_blob, original_txn_id, details, "
                    "sad_blob, saf_id, saf_kind, saf_key, saf_status, saf_created_at, saf_next_attempt_at) "
                    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        new.txn_id,
                        new.kind,
                        state.value,
                        new.amount,
                        new.currency,
                        new.scheme,
                        new.offline_behavior,
                        self._open_batch(cur, at),
                        at,
                        at,
                        card.masked_pan,
                        card.pan_token,
                        card.card_blob,
                        new.original_txn_id,
                        _canonical(dict(details or {})),
                        None if drop_sensitive else sensitive,
                        None if saf is None else seq,
                        None if saf is None else saf[0],
                        None if saf is None else saf[1],
                        None if saf is None else "queued",
                        None if saf is None else at,
                        None if saf is None else at,
                    ),
                )
                amount, currency_code = new.amount, new.currency
            else:
                current = self._row(cur, txn_id)
                if current is None:
                    raise StorageError(f"no transaction {txn_id}")
                state = next_state(current.state, event)
                seq = self._append(cur, txn_id, at, event.value, state.value, data)
                merged = dict(current.details)
                if details:
                    merged.update(details)
                cur.execute(
                    "UPDATE transactions SET state=?, updated_at=?, details=? WHERE txn_id=?",
                    (state.value, at, _canonical(merged), txn_id),
                )
                if card is not None:
                    cur.execute(
                        "UPDATE transactions SET masked_pan=?, pan_token=?, card_blob=? WHERE txn_id=?",
                        (card.masked_pan, card.pan_token, card.card_blob, txn_id),
                    )
                if sensitive is not None:
                    cur.execute("UPDATE transactions SET sad_blob=? WHERE txn_id=?", (sensitive, txn_id))
                if drop_sensitive:
                    cur.execute("UPDATE transactions SET sad_blob=NULL WHERE txn_id=?", (txn_id,))
                if saf is not None:
                    cur.execute(
                        "UPDATE transactions SET saf_id=?, saf_kind=?, saf_key=?, saf_status='queued', "
                        "saf_created_at=?, saf_next_attempt_at=? WHERE txn_id=? AND saf_id IS NULL",
                        (seq, saf[0], saf[1], at, at, txn_id),
                    )
                    if cur.rowcount != 1:
                        raise StorageError(f"{txn_id} is already in the store-and-forward queue")
                amount, currency_code = current.amount, current.currency
            if saf_answer is not None:
                status, code = saf_answer
                cur.execute(
                    "UPDATE transactions SET saf_status=?, saf_response_code=?, saf_answered_at=? "
                    "WHERE txn_id=? AND saf_status='queued'",
                    (status, code, at, txn_id),
                )
            if reversal is not None:
                reason, key = reversal
                cur.execute(
                    "INSERT INTO reversals(txn_id, idempotency_key, amount, currency, reason, created_at, "
                    "next_attempt_at) VALUES(?,?,?,?,?,?,?)",
                    (txn_id, key, amount, currency_code, reason, at, at),
                )
            if reversal_done:
                cur.execute("UPDATE reversals SET status='done', last_attempt_at=? WHERE txn_id=?", (at, txn_id))
            return state

    def _open_batch(self, cur: sqlite3.Cursor, at: str) -> int:
        """The open batch's id (opening one if none is), cached like the journal head."""
        if self._batch is None:
            row = cur.execute(_OPEN_BATCH).fetchone()
            if row is None:
                cur.execute("INSERT INTO batches(opened_at) VALUES(?)", (at,))
                self._batch = int(cur.lastrowid or 0)
            else:
                self._batch = int(row[0])
        return self._batch

    def read_sensitive(self, txn_id: str) -> bytes | None:
        row = self._conn.execute("SELECT sad_blob FROM transactions WHERE txn_id=?", (txn_id,)).fetchone()
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
        return [QueuedItem(*row) for row in self._conn.execute(sql, args).fetchall()]

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
                self._set_meta(cur, "saf_last_attempt", _canonical({"at": at, "error": None}))
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
                self._set_meta(cur, "saf_last_attempt", _canonical({"at": at, "error": error}))
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
        version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        if self._totals_cache is not None and self._totals_cache[0] == version:
            return dict(self._totals_cache[1])
        totals = {
            int(cur): (int(n), int(total))
            for cur, n, total in self._conn.execute(
                "SELECT currency, COUNT(*), COALESCE(SUM(amount), 0) FROM saf WHERE status='queued' GROUP BY currency"
            )
        }
        self._totals_cache = (version, totals)
        return dict(totals)

    def saf_oldest(self) -> str | None:
        """When the oldest queued entry was made (FIFO: the lowest queued id, through the queue's index)."""
        row = self._conn.execute("SELECT created_at FROM saf WHERE status='queued' ORDER BY id LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def last_attempt(self) -> tuple[str | None, str | None]:
        """The last forwarding attempt of the SAF queue and its error, if it failed."""
        row = self._conn.execute("SELECT value FROM meta WHERE key='saf_last_attempt'").fetchone()
        if row is None:
            return None, None
        last = json.loads(row[0])
        return last.get("at"), last.get("error")

    def counts(self) -> dict[str, int]:
        return {
            "saf_queued": int(self._conn.execute("SELECT COUNT(*) FROM saf WHERE status='queued'").fetchone()[0]),
            "reversals_queued": int(
                self._conn.execute("SELECT COUNT(*) FROM reversals WHERE status='queued'").fetchone()[0]
            ),
            "sensitive_rows": int(self._conn.execute("SELECT COUNT(*) FROM sensitive").fetchone()[0]),
        }


def _txn_row(row: Sequence[Any]) -> TxnRow:
    return TxnRow(
        txn_id=row[0],
        kind=row[1],
        state=State(row[2]),
        amount=int(row[3]),
        currency=int(row[4]),
        scheme=row[5],
        offline_behavior=row[6],
        batch_id=int(row[7]),
        created_at=row[8],
        updated_at=row[9],
        masked_pan=row[10],
        pan_token=row[11],
        card_blob=None if row[12] is None else bytes(row[12]),
        original_txn_id=row[13],
        details=json.loads(row[14]),
    )
