"""The simulated host's data at rest: one SQLite database (WAL) in the data directory.

What is kept: enrolment codes (their SHA-256, never the code), enrolled
terminals and every certificate issued to them (serial, revoked or not), an
audit trail of enrolments, rotations, revocations and transfers, the
idempotency cache (per terminal: key, a keyed digest of the canonical body,
the response bytes), per-advice results, the records of authorisations,
advices and reversals (by ``pan_token``), host batches, batch closes, blocked
cards, issuer settings and the parameter versions.

Tenancy. A terminal id is unique within its merchant only: whatever belongs to
a terminal (idempotency, advice keys, host batches, batch closes, the records
a reversal or a settlement looks at) is keyed by (merchant id, terminal id),
the pair in the terminal's certificate. The tables and the migration of a
version 1 file (keyed by terminal id alone) are in
:mod:`simulator.host.store_schema`.

What is never kept: a PAN, track data or ``emv_data``. Body digests are
HMAC-SHA-256 under a random per-host secret because the bodies they cover
carry card data; a record's ``pan_token`` is the host's own token of the card
(HMAC-SHA-256 of the PAN under another secret, :meth:`HostStore.card_token`),
not the one the terminal sent. Both secrets are in the host's key store
(:mod:`simulator.host.keys`, ``keys/`` beside the database), never in it: a
``meta.digest_secret`` left by an older host is moved there on opening.

The database file is created 0600 in a 0700 folder before SQLite opens it
(SQLite gives its ``-wal`` and ``-shm`` files the same mode).

Several processes use the database at once (the server, the CLI, a test's
:class:`~simulator.host.service.HostService`, or the terminal commands that
share an in-process host, :mod:`simulator.host.inprocess`): WAL mode, a busy timeout, and
``BEGIN IMMEDIATE`` for every change, with ``synchronous=FULL``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.host.files import private_dir, private_file
from simulator.host.keys import CARD_TOKEN, DIGEST, HostKeys, KeyStoreError, card_token
from simulator.host.store_identity import Certificate, EnrolmentCode, TerminalIdentities
from simulator.host.store_issuer import ISSUER_SCHEMA, OPTIONAL_CONSTRAINTS, IssuerTables
from simulator.host.store_schema import SCHEMA, SCHEMA_VERSION, migrate_v1, statements

__all__ = [
    "DB_NAME",
    "CachedResponse",
    "Certificate",
    "EnrolmentCode",
    "HostStore",
    "Record",
    "StoreError",
]

DB_NAME = "host.db"

#: The settlement kind (what a batch total counts it as) of each record kind; reversals have none.
_SETTLEMENT_KIND = {
    "sale": "sale",
    "refund": "refund",
    "offline_approval": "sale",
    "deferred_authorisation": "sale",
    "offline_refund": "refund",
}

#: Reference prefixes: authorisation/advice/reversal records, batch closes, sign-ons.
_REF_PREFIX = {"authorise": "A", "advise": "V", "reverse": "R", "close": "B", "sign_on": "S"}


class StoreError(Exception):
    """The host database cannot be used."""


@dataclass(frozen=True)
class CachedResponse:
    """A stored answer to an idempotent request."""

    digest: str
    status: int
    body: bytes


@dataclass(frozen=True)
class Record:
    """One processed authorisation, advice or reversal (a reversal's ``kind`` is its reason)."""

    seq: int
    method: str  # "authorise" | "advise" | "reverse"
    txn_id: str
    idempotency_key: str
    kind: str
    terminal_id: str
    merchant_id: str
    amount: int
    currency: int
    pan_token: str
    response_code: str
    approved: bool
    reversed: bool
    batch: int
    host_reference: str
    approval_code: str | None
    original_txn_id: str | None
    note: str
    created_at: str

    @property
    def settlement_kind(self) -> str | None:
        """``"sale"`` or ``"refund"`` for an authorisation or advice (what batch totals count), None for a reversal."""
        if self.method == "reverse":
            return None
        return _SETTLEMENT_KIND.get(self.kind)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


_RECORD_COLUMNS = (
    "seq, method, txn_id, idempotency_key, kind, terminal_id, merchant_id, amount, currency, pan_token, "
    "response_code, approved, reversed, batch, host_reference, approval_code, original_txn_id, note, created_at"
)


def _record(row: tuple[Any, ...]) -> Record:
    values = list(row)
    values[11] = bool(values[11])
    values[12] = bool(values[12])
    return Record(*values)


class HostStore(TerminalIdentities, IssuerTables):
    """The host's SQLite database. One connection, guarded by a lock (thread-safe).

    ``keys``: the host's key store (default: ``keys/`` beside the database, in
    memory for ``:memory:``).
    """

    def __init__(self, path: Path, *, keys: HostKeys | None = None) -> None:
        self.path = Path(path)
        in_memory = str(path) == ":memory:"
        self.keys = keys if keys is not None else HostKeys.beside(self.path)
        self._lock = threading.RLock()
        try:
            if not in_memory:
                private_dir(self.path.parent)
                for suffix in ("", "-wal", "-shm"):  # the last two: those an older host left 0644
                    sibling = self.path.with_name(self.path.name + suffix)
                    if not suffix or sibling.exists():
                        private_file(sibling)
            self._db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._create_or_migrate()
            for constraint in OPTIONAL_CONSTRAINTS:
                # An older database may hold what the constraint forbids (a transaction approved twice):
                # then the acquirer's own check stands alone there.
                with contextlib.suppress(sqlite3.IntegrityError), self.transaction():
                    self._exec(constraint)
            self._secret = self.keys.secret(DIGEST)
            self._card_secret = self.keys.secret(CARD_TOKEN)
        except (sqlite3.Error, OSError, KeyStoreError) as exc:
            raise StoreError(f"cannot open host database {self.path}: {exc}") from exc

    def _move_secret_out(self) -> None:
        """Move a body-digest secret kept in ``meta`` by an older host into the key store (in the transaction)."""
        row = self._one("SELECT value FROM meta WHERE key = 'digest_secret'")
        if row is None:
            return
        try:
            value = bytes.fromhex(str(row[0]))
        except ValueError:
            raise StoreError(f"host database {self.path}: meta.digest_secret is damaged") from None
        self.keys.adopt(DIGEST, value)  # durable before the row goes: a crash between leaves both, equal
        self._exec("DELETE FROM meta WHERE key = 'digest_secret'")

    def _create_or_migrate(self) -> None:
        """Make the tables of a new database, or bring an older one to :data:`SCHEMA_VERSION`, in one transaction.

        A file without ``schema_version`` but with a ``digest_secret`` was made
        by version 1 (which set the secret on first open): it is migrated in
        place. Two processes opening a file at once: the second waits for the
        first's transaction and then finds the version written. The secret
        itself then leaves ``meta`` for the key store (:meth:`_move_secret_out`).
        """
        with self.transaction():
            self._exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = self._one("SELECT value FROM meta WHERE key = 'schema_version'")
            version = int(row[0]) if row is not None else None
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(
                    f"host database {self.path} has schema version {version}, newer than this posterm "
                    f"({SCHEMA_VERSION}): upgrade posterm"
                )
            if version is None and self._one("SELECT value FROM meta WHERE key = 'digest_secret'") is not None:
                migrate_v1(self._exec)
            for statement in [*statements(SCHEMA), *statements(ISSUER_SCHEMA)]:
                self._exec(statement)
            self._exec(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
            self._move_secret_out()

    @property
    def schema_version(self) -> int:
        return int(self.meta("schema_version") or "0")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> HostStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an exception); re-entrant."""
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._db.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        with self._lock:
            self._db.execute(sql, args)

    def digest(self, text: str) -> str:
        """Keyed digest (HMAC-SHA-256 under the host's secret) of a canonical body."""
        return hmac.new(self._secret, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def card_token(self, pan: str) -> str:
        """The host's token of the card with ``pan``: the same whichever terminal sent it (32 hex digits)."""
        return card_token(self._card_secret, pan)

    # ------------------------------------------------------------------ meta and references

    def meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._exec(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def next_reference(self, what: str) -> str:
        """A new host reference (``A0000000042`` ...): a prefix per message type and a sequence."""
        with self._lock:  # one statement: atomic on its own, or a part of the caller's transaction
            row = self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('seq', '1') "
                "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING value"
            ).fetchone()
        return f"{_REF_PREFIX.get(what, 'H')}{int(row[0]):010d}"

    # ------------------------------------------------------------------ idempotency

    def cached_response(self, merchant_id: str, terminal_id: str, key: str) -> CachedResponse | None:
        row = self._one(
            "SELECT digest, status, body FROM idempotency WHERE merchant_id = ? AND terminal_id = ? AND key = ?",
            (merchant_id, terminal_id, key),
        )
        return None if row is None else CachedResponse(str(row[0]), int(row[1]), bytes(row[2]))

    def save_response(
        self, merchant_id: str, terminal_id: str, key: str, digest: str, status: int, body: bytes, at: str
    ) -> None:
        self._exec(
            "INSERT INTO idempotency (merchant_id, terminal_id, key, digest, status, body, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (merchant_id, terminal_id, key, digest, status, body, at),
        )

    def advice_result(self, merchant_id: str, terminal_id: str, key: str) -> tuple[str, dict[str, Any]] | None:
        """(digest, result) stored for an advice's own idempotency key."""
        row = self._one(
            "SELECT digest, result FROM advice_keys WHERE merchant_id = ? AND terminal_id = ? AND key = ?",
            (merchant_id, terminal_id, key),
        )
        return None if row is None else (str(row[0]), json.loads(row[1]))

    def save_advice_result(
        self, merchant_id: str, terminal_id: str, key: str, digest: str, result: Mapping[str, Any]
    ) -> None:
        self._exec(
            "INSERT INTO advice_keys (merchant_id, terminal_id, key, digest, result) VALUES (?, ?, ?, ?, ?)",
            (merchant_id, terminal_id, key, digest, json.dumps(result, sort_keys=True)),
        )

    # ------------------------------------------------------------------ records

    def batch_number(self, merchant_id: str, terminal_id: str) -> int:
        row = self._one(
            "SELECT batch_no FROM host_batches WHERE merchant_id = ? AND terminal_id = ?", (merchant_id, terminal_id)
        )
        return 1 if row is None else int(row[0])

    def open_new_batch(self, merchant_id: str, terminal_id: str) -> int:
        new = self.batch_number(merchant_id, terminal_id) + 1
        self._exec(
            "INSERT INTO host_batches (merchant_id, terminal_id, batch_no) VALUES (?, ?, ?) "
            "ON CONFLICT(merchant_id, terminal_id) DO UPDATE SET batch_no = excluded.batch_no",
            (merchant_id, terminal_id, new),
        )
        return new

    def add_record(self, **fields: Any) -> None:
        """Insert a record; ``batch`` is the terminal's open host batch, ``seq`` assigned here."""
        fields.setdefault("batch", self.batch_number(fields["merchant_id"], fields["terminal_id"]))
        fields.setdefault("approval_code", None)
        fields.setdefault("original_txn_id", None)
        fields.setdefault("note", "")
        fields["approved"] = int(bool(fields["approved"]))
        names = sorted(fields)
        self._exec(
            f"INSERT INTO records ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
            tuple(fields[n] for n in names),
        )

    def reverse(self, merchant_id: str, terminal_id: str, txn_id: str) -> int:
        """Mark the terminal's approved, not reversed records of ``txn_id`` reversed; how many were."""
        where = (
            "merchant_id = ? AND terminal_id = ? AND txn_id = ? AND method != 'reverse' AND approved = 1 "
            "AND reversed = 0"
        )
        args = (merchant_id, terminal_id, txn_id)
        with self.transaction():
            row = self._one(f"SELECT COUNT(*) FROM records WHERE {where}", args)
            self._exec(f"UPDATE records SET reversed = 1 WHERE {where}", args)
        return 0 if row is None else int(row[0])

    def records(self, terminal_id: str | None = None, merchant_id: str | None = None) -> list[Record]:
        """The records, oldest first: all, or a terminal's (of one merchant, or of any merchant)."""
        conditions = [
            (name, value)
            for name, value in (("terminal_id", terminal_id), ("merchant_id", merchant_id))
            if value is not None
        ]
        where = " AND ".join(f"{name} = ?" for name, _ in conditions)
        sql = f"SELECT {_RECORD_COLUMNS} FROM records" + (f" WHERE {where}" if where else "") + " ORDER BY seq"
        return [_record(r) for r in self._all(sql, tuple(value for _, value in conditions))]

    def open_records(self, merchant_id: str, terminal_id: str) -> list[Record]:
        """The approved, not reversed authorisations and advices of the terminal's open host batch."""
        rows = self._all(
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE merchant_id = ? AND terminal_id = ? AND batch = ? "
            "AND method != 'reverse' AND approved = 1 AND reversed = 0 ORDER BY seq",
            (merchant_id, terminal_id, self.batch_number(merchant_id, terminal_id)),
        )
        return [_record(r) for r in rows]

    def merchant_of(self, terminal_id: str) -> str | None:
        """The merchant a terminal id last spoke for (its records, else its sign-on), if it is known.

        Only for a sender without a certificate (the in-process host): over
        HTTPS the merchant is the certificate's.
        """
        sql = "SELECT merchant_id FROM records WHERE terminal_id = ? ORDER BY seq DESC LIMIT 1"
        row = self._one(sql, (terminal_id,))
        if row is None:
            row = self._one(
                "SELECT merchant_id FROM terminals WHERE terminal_id = ? ORDER BY last_sign_on DESC LIMIT 1",
                (terminal_id,),
            )
        return None if row is None else str(row[0])

    def approvals_since(self, pan_token: str, since: str) -> int:
        """Approved sales-like records of the card since ``since`` (ISO time), for velocity checks."""
        row = self._one(
            "SELECT COUNT(*) FROM records WHERE pan_token = ? AND created_at >= ? AND approved = 1 "
            "AND method != 'reverse'",
            (pan_token, since),
        )
        return 0 if row is None else int(row[0])

    # ------------------------------------------------------------------ batch closes

    def batch_close(self, merchant_id: str, terminal_id: str, batch_id: int) -> tuple[str, bytes] | None:
        row = self._one(
            "SELECT digest, body FROM batch_closes WHERE merchant_id = ? AND terminal_id = ? AND batch_id = ?",
            (merchant_id, terminal_id, batch_id),
        )
        return None if row is None else (str(row[0]), bytes(row[1]))

    def save_batch_close(self, merchant_id: str, terminal_id: str, batch_id: int, digest: str, body: bytes) -> None:
        self._exec(
            "INSERT INTO batch_closes (merchant_id, terminal_id, batch_id, digest, body) VALUES (?, ?, ?, ?, ?)",
            (merchant_id, terminal_id, batch_id, digest, body),
        )

    # ------------------------------------------------------------------ issuer steering

    def block_card(self, pan_token: str, code: str, at: str) -> None:
        with self.transaction():
            self._exec(
                "INSERT INTO blocked_cards (pan_token, code, blocked_at) VALUES (?, ?, ?) "
                "ON CONFLICT(pan_token) DO UPDATE SET code = excluded.code, blocked_at = excluded.blocked_at",
                (pan_token, code, at),
            )

    def unblock_card(self, pan_token: str) -> bool:
        with self.transaction(), self._lock:
            return int(self._db.execute("DELETE FROM blocked_cards WHERE pan_token = ?", (pan_token,)).rowcount) > 0

    def blocked_code(self, pan_token: str) -> str | None:
        row = self._one("SELECT code FROM blocked_cards WHERE pan_token = ?", (pan_token,))
        return None if row is None else str(row[0])

    def blocked_cards(self) -> dict[str, str]:
        return {str(t): str(c) for t, c in self._all("SELECT pan_token, code FROM blocked_cards ORDER BY pan_token")}

    def velocity(self) -> tuple[int, int]:
        """(max approvals, window seconds); (0, 0) means no velocity limit."""
        return int(self.meta("velocity_max") or "0"), int(self.meta("velocity_window") or "0")

    def set_velocity(self, max_approvals: int, window_seconds: int) -> None:
        with self.transaction():
            self.set_meta("velocity_max", str(max_approvals))
            self.set_meta("velocity_window", str(window_seconds))

    # ------------------------------------------------------------------ parameters

    def parameters_version(self) -> int:
        row = self._one("SELECT MAX(version) FROM parameters")
        return 0 if row is None or row[0] is None else int(row[0])

    def parameters(self, version: int | None = None) -> bytes | None:
        """The stored parameters document (JSON bytes, as served) of ``version`` (default: current)."""
        if version is None:
            version = self.parameters_version()
        row = self._one("SELECT document FROM parameters WHERE version = ?", (version,))
        return None if row is None else bytes(row[0])

    def add_parameters(self, version: int, issued_at: str, document: bytes) -> None:
        """Store a version; the caller checked that ``version`` is the current one plus one."""
        self._exec(
            "INSERT INTO parameters (version, issued_at, document) VALUES (?, ?, ?)", (version, issued_at, document)
        )
