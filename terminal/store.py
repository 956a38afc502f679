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
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from terminal import journal
from terminal.files import private_umask
from terminal.journal import PurgeReport, VerifyReport, canonical
from terminal.keystore import Keystore
from terminal.lifecycle import Event, State, saf_kind, transition
from terminal.schema import (
    SCHEMA,
    SCHEMA_VERSION,
    migrate_2_to_3,
    migrate_3_to_4,
    migrate_4_to_5,
    migrate_5_to_6,
)
from terminal.store_batches import BatchAccess
from terminal.store_cbdc import CbdcAccess
from terminal.store_core import (
    TXN_COLUMNS,
    TXN_SELECT,
    CardRecord,
    NewPayment,
    QueuedItem,
    StorageCorrupt,
    StorageError,
    StorageFull,
    StorageReadOnly,
    StoreInUse,
    TxnRow,
    classify,
)
from terminal.store_outcomes import OutcomeAccess, contact_of
from terminal.store_queues import QueueAccess

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
    "StoreInUse",
    "TxnRow",
    "VerifyReport",
]

# SQLite's default page size, kept on purpose: a transaction row is about 1 KB, which
# 1 KB pages would push into an overflow page (and grow the file, rewriting page 1,
# on nearly every commit), so that a 1 KB-page commit writes more WAL frames.
PAGE_SIZE = 4096

_NO_CARD = CardRecord(None, None, None)


class Store(QueueAccess, BatchAccess, OutcomeAccess, CbdcAccess):
    """Open with :meth:`open`; every write method is one durable SQLite transaction."""

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, keystore: Keystore, *, create: bool = True, exclusive: bool = True) -> Store:
        """Open the store at ``path``; ``create=False`` refuses a missing, empty or foreign file.

        ``exclusive``: this store will make payments and run recovery, so it
        takes the journal's lock (``journal.sqlite.lock``, held until
        :meth:`close`, released by the system if the process dies) and raises
        :class:`StoreInUse` if another process holds it.  Recovery in a second
        process would treat the first one's payment in progress as abandoned.
        Readers (reports, ``saf status``, diagnostics) open without it.
        """
        path = Path(path)
        lock_fd = _lock(path) if exclusive else None
        try:
            return cls._open(path, keystore, create=create, lock_fd=lock_fd)
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise

    @classmethod
    def _open(cls, path: Path, keystore: Keystore, *, create: bool, lock_fd: int | None) -> Store:
        if not create:
            try:
                size = path.stat().st_size
            except OSError as exc:
                raise StorageCorrupt(f"the journal {path} cannot be read ({exc.strerror})") from None
            if size == 0:
                raise StorageCorrupt(f"the journal {path} is empty (0 bytes)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(path, check_same_thread=False, timeout=30)
        except sqlite3.Error as exc:
            raise classify(exc, path) from exc
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
            store._lock_fd = lock_fd
            store._migrate(create)
        except sqlite3.Error as exc:
            conn.close()
            raise classify(exc, path) from exc
        except ValueError as exc:  # text in the file's schema that does not decode: damaged
            conn.close()
            raise StorageCorrupt(f"{path} is damaged ({exc}); restore it from a backup") from exc
        except StorageError:
            conn.close()
            raise
        return store

    @property
    def exclusive(self) -> bool:
        """Whether this store holds the journal's lock (it may make payments and recover)."""
        return self._lock_fd is not None

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
            conn = _connect(path)
        except sqlite3.Error as exc:
            raise classify(exc, path) from exc
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
            raise classify(exc, path) from exc
        finally:
            conn.close()

    def _migrate(self, create: bool) -> None:
        row = None
        with contextlib.suppress(sqlite3.OperationalError):
            row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is not None:
            version = str(row[0])
            if version in ("2", "3", "4", "5"):
                with self._write() as cur:
                    if version == "2":
                        migrate_2_to_3(cur, self._seal_all)
                    if version in ("2", "3"):
                        migrate_3_to_4(cur)
                    if version in ("2", "3", "4"):
                        migrate_4_to_5(cur)
                    migrate_5_to_6(cur)
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
            raise classify(exc, self.path) from exc

    def _seal_all(self, cur: sqlite3.Cursor) -> None:
        for table, key in (("transactions", "txn_id"), ("reversals", "id"), ("batches", "batch_id")):
            for (value,) in cur.execute(f"SELECT {key} FROM {table}").fetchall():
                self._chain.seal_row(cur, table, value)

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

    # -- transactions ---------------------------------------------------------------------------

    def _values(self, cur: sqlite3.Cursor, txn_id: str) -> dict[str, Any] | None:
        row = cur.execute(f"SELECT {', '.join(TXN_COLUMNS)} FROM transactions WHERE txn_id=?", (txn_id,)).fetchone()
        return None if row is None else dict(zip(TXN_COLUMNS, row, strict=True))

    def get(self, txn_id: str) -> TxnRow | None:
        with self._reading() as cur:
            row = cur.execute(f"{TXN_SELECT} WHERE txn_id=?", (txn_id,)).fetchone()
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
        sql = f"{TXN_SELECT} WHERE 1=1"
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
        scheme: str | None = None,
    ) -> State:
        """Apply one row of the lifecycle table and every effect it names, in one durable commit.

        ``new`` creates the transaction with this first transition (from
        ``started``).  ``data`` is journalled; ``details`` are merged into the
        transaction's details; ``card`` sets its card data; ``sensitive`` is the
        encrypted data for the host, accepted only where the row keeps card
        data.  The row decides the rest: an SAF entry (with a new idempotency
        key), a reversal (likewise), the host's answer to the SAF entry (its
        response code from ``data["response_code"]``), the reversal delivered,
        the sensitive data dropped.  ``scheme`` names the payment's scheme once
        it is known (a QR payment's wallet, ``qr-<wallet>``, comes with its
        answer).  Raises TransitionError when the table
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
            before = State(values["state"])
            row = transition(before, event)
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
                if new.request_key is not None or new.reference is not None:
                    journalled |= {"request_key": new.request_key, "reference": new.reference}
            seq = self._append(cur, txn_id, at, event.value, row.to.value, journalled)
            values["state"] = row.to.value
            values["updated_at"] = at
            if scheme is not None:
                values["scheme"] = scheme
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
                if new.reference is not None:
                    values["details"] = canonical(json.loads(values["details"]) | {"reference": new.reference})
                if new.request_key is not None:
                    try:
                        cur.execute(
                            "INSERT INTO requests(request_key, reference, txn_id, created_at) VALUES(?,?,?,?)",
                            (new.request_key, new.reference, txn_id, at),
                        )
                    except sqlite3.IntegrityError:
                        raise StorageError(f"request key {new.request_key!r} was used for another payment") from None
            seal = self._chain.row_seal("transactions", [values[c] for c in TXN_COLUMNS])
            sad = None if row.drop_card_data else sensitive
            if new is not None:
                assert card is not None
                cur.execute(
                    f"INSERT INTO transactions({', '.join(TXN_COLUMNS)}, card_blob, sad_blob, saf_created_at, "
                    f"saf_next_attempt_at, seal) VALUES({','.join('?' * (len(TXN_COLUMNS) + 5))})",
                    (
                        *(values[c] for c in TXN_COLUMNS),
                        card.card_blob,
                        sad,
                        at if row.queue_saf else None,
                        at if row.queue_saf else None,
                        seal,
                    ),
                )
            else:
                sets = ", ".join(f"{c}=?" for c in TXN_COLUMNS[1:])
                args: list[Any] = [values[c] for c in TXN_COLUMNS[1:]]
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
            contact = contact_of(before, event, data)
            if contact is not None:
                self._note_contact(cur, at, *contact)
            if row.reversal_done:
                done = cur.execute(
                    "UPDATE reversals SET status='done', last_attempt_at=? WHERE txn_id=? RETURNING id", (at, txn_id)
                ).fetchall()
                for (reversal_id,) in done:
                    self._chain.seal_row(cur, "reversals", reversal_id)
            return row.to

    def request(self, request_key: str) -> str | None:
        """The payment made for a register's request key, if any."""
        with self._reading() as cur:
            row = cur.execute("SELECT txn_id FROM requests WHERE request_key=?", (request_key,)).fetchone()
            return None if row is None else str(row[0])

    def request_key_of(self, txn_id: str) -> str | None:
        """The register's request key a payment was made for, if a register asked for it."""
        with self._reading() as cur:
            row = cur.execute("SELECT request_key FROM requests WHERE txn_id=? LIMIT 1", (txn_id,)).fetchone()
            return None if row is None else str(row[0])

    def by_reference(self, reference: str) -> list[str]:
        """The payments made under a register's reference, oldest first."""
        with self._reading() as cur:
            rows = cur.execute(
                "SELECT txn_id FROM requests WHERE reference=? ORDER BY created_at, txn_id", (reference,)
            ).fetchall()
            return [str(r[0]) for r in rows]

    def sealed_formats(self) -> dict[int, int]:
        """How many encrypted values (card data, data for the host) the store holds, by their first byte.

        The first byte of a keystore ciphertext names its cipher
        (:meth:`terminal.keystore.FileKeystore.cipher_of`): diagnostics show
        how much is still sealed with a cipher the terminal switched from.
        """
        counts: dict[int, int] = {}
        with self._reading() as cur:
            for column in ("card_blob", "sad_blob"):
                query = f"SELECT substr({column}, 1, 1), COUNT(*) FROM transactions WHERE {column} IS NOT NULL"
                for first, count in cur.execute(query + " GROUP BY 1").fetchall():
                    key = bytes(first)[0] if first else 0
                    counts[key] = counts.get(key, 0) + int(count)
        return counts

    def read_sensitive(self, txn_id: str) -> bytes | None:
        with self._reading() as cur:
            row = cur.execute("SELECT sad_blob FROM transactions WHERE txn_id=?", (txn_id,)).fetchone()
            return None if row is None or row[0] is None else bytes(row[0])


def _connect(path: Path, **kwargs: Any) -> sqlite3.Connection:
    """A connection to ``path``, its file its owner's only: made so, and put right if an older posterm left it wider.

    SQLite gives the ``-wal`` and ``-shm`` files the database file's mode, so
    they are private too once it is; the first statements (WAL mode, the
    schema) run with the same umask in case SQLite makes them at once.
    """
    with private_umask():
        conn: sqlite3.Connection = sqlite3.connect(str(path), isolation_level=None, **kwargs)
        with contextlib.suppress(sqlite3.Error):  # a damaged file: the caller's first statement says so
            conn.execute("PRAGMA schema_version").fetchone()  # opens (and makes) the file now
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                info = os.lstat(f"{path}{suffix}")
                if info.st_mode & 0o077 and not os.path.islink(f"{path}{suffix}"):
                    os.chmod(f"{path}{suffix}", stat.S_IMODE(info.st_mode) & 0o700)
    return conn


def _lock(path: Path) -> int:
    """Take the journal's lock without waiting: its file descriptor, or :class:`StoreInUse` naming the holder."""
    import fcntl

    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot open the lock {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = None
        try:
            text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            holder = int(text) if text.isdigit() else None
        except OSError:
            pass
        os.close(fd)
        who = f"process {holder}" if holder else "another process"
        raise StoreInUse(
            f"the terminal in {path.parent} is in use by {who} (a posterm command or application); "
            "stop it first, or use a command that only reads",
            holder,
        ) from None
    except OSError as exc:
        os.close(fd)
        raise StorageError(f"cannot lock {lock_path}: {exc.strerror}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
