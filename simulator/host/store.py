"""The simulated host's data at rest: a SQLite file in the data directory, or a PostgreSQL database.

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
the pair in the terminal's certificate.

What is never kept: a PAN, track data or ``emv_data``. Body digests are
HMAC-SHA-256 under a random per-host secret because the bodies they cover
carry card data; a record's ``pan_token`` is the host's own token of the card
(HMAC-SHA-256 of the PAN under another secret, :meth:`HostStore.card_token`),
not the one the terminal sent. Both secrets are in the host's key store
(:mod:`simulator.host.keys`: ``keys/`` of the host's data directory, beside
``host.db``), never in the database, on either engine: a
``meta.digest_secret`` left by an older host (or by a PostgreSQL store of
before the key store) is moved there on opening. Every host process of one
store uses the same ``keys/`` (the workers share the data directory, like the
CA); the database keeps only a check value of each secret, so that a host
opened with another key store is refused rather than deciding with keys that
match nothing (:class:`HostStore`).

A SQLite file is created 0600 in a 0700 folder before SQLite opens it
(SQLite gives its ``-wal`` and ``-shm`` files the same mode).

Where: a :data:`~simulator.host.storage.Location`, a ``Path`` (SQLite, the
embedded default: ``host.db`` in the host's data directory, the simulator, the
in-process host) or a ``postgresql://`` URL (a fleet of host workers). The
engines and what makes each safe when several processes use one database are
in :mod:`simulator.host.storage`; the tables are its numbered migrations
(``simulator/host/storage/migrations/``, the one place of the DDL), applied
at open.

Queries here are portable SQL: ``?`` placeholders, ``INSERT ... ON CONFLICT
... DO ...``, ``RETURNING``; nothing of one engine only. They go through
:meth:`HostStore._one`, :meth:`HostStore._all`, :meth:`HostStore._exec` (rows
changed) inside :meth:`HostStore.transaction` where they must be atomic. A
check that decides a change made by another request (a card's approvals, a
refund's original) takes :meth:`HostStore.lock` on what it checks, first, in
the same transaction: PostgreSQL workers run transactions side by side.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.host.keys import CARD_TOKEN, DIGEST, KEYS_DIR, HostKeys, KeyStoreError, card_token
from simulator.host.storage import Location, StoreConflict, StoreError, StoreMissing, open_engine, parse_location
from simulator.host.storage.migrations import current_version, upgrade
from simulator.host.store_cbdc import CbdcTables
from simulator.host.store_identity import Certificate, EnrolmentCode, TerminalIdentities
from simulator.host.store_issuer import OPTIONAL_CONSTRAINTS, IssuerTables
from simulator.host.store_wallet import WalletTables

__all__ = [
    "DB_NAME",
    "STORE_ENV",
    "CachedResponse",
    "Certificate",
    "EnrolmentCode",
    "HostStore",
    "Record",
    "StoreConflict",
    "StoreError",
    "StoreMissing",
    "host_keys",
    "key_check_value",
    "store_location",
]

DB_NAME = "host.db"
#: The environment variable that names the host's store for the ``posterm host`` commands (``--store``).
STORE_ENV = "POSTERM_HOST_STORE"

#: The settlement kind (what a batch total counts it as) of each record kind; reversals have none.
_SETTLEMENT_KIND = {
    "sale": "sale",
    "refund": "refund",
    "offline_approval": "sale",
    "deferred_authorisation": "sale",
    "offline_refund": "refund",
    "cbdc_payment": "sale",  # a digital-currency payment credited to the merchant (cbdc_refused, cbdc_torn: none)
}

#: Reference prefixes: authorisation/advice/reversal records, batch closes, sign-ons, QR operations and orders.
_REF_PREFIX = {
    "authorise": "A", "advise": "V", "reverse": "R", "close": "B", "sign_on": "S", "qr": "W", "qr_order": "Q",
}  # fmt: skip


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


def store_location(data_dir: Path, store: str | None = None) -> Location:
    """Where a host's database is: ``store`` (``--store``: a PostgreSQL URL or a SQLite file), else
    ``host.db`` in ``data_dir``. ValueError (one line) for a store of an unknown kind."""
    if store is None or not store.strip():
        return Path(data_dir) / DB_NAME
    return parse_location(store)


def host_keys(data_dir: Path) -> HostKeys:
    """The key store of the host whose data directory is ``data_dir`` (``keys/`` in it), whatever its store."""
    return HostKeys(Path(data_dir) / KEYS_DIR)


#: The meta rows that hold a check value of each secret (never the secret): see :meth:`HostStore._checked_secrets`.
_KEY_CHECK_PREFIX = "key_check:"
_KEY_CHECK_TEXT = b"posterm host key check value"


def key_check_value(secret: bytes) -> str:
    """A check value of a secret (16 hex digits of an HMAC under it): tells two secrets apart, reveals neither."""
    return hmac.new(secret, _KEY_CHECK_TEXT, hashlib.sha256).hexdigest()[:16]


class HostStore(TerminalIdentities, IssuerTables, CbdcTables, WalletTables):
    """The host's database over an engine (thread-safe; see :mod:`simulator.host.storage`).

    ``create=False``: a database without a host's tables is :class:`StoreMissing`, not made.

    ``keys``: the host's key store, where its secrets are (:mod:`simulator.host.keys`). A SQLite
    file's default is ``keys/`` beside it (in memory for ``:memory:``). A PostgreSQL store has no
    default: the host's processes share a database but may not share a folder beside it, so the
    caller names the key store every one of them uses (``keys/`` of the host's data directory,
    :func:`host_keys`; ValueError without one).

    The database keeps a check value of each secret (:func:`key_check_value`, in ``meta``): a
    key store whose secrets are not those the database was used with (another data directory's,
    a lost ``keys/`` made again) is refused with :class:`StoreError` at open, before any request
    is decided with a digest or a card token that matches nothing.
    """

    def __init__(self, location: Location, *, create: bool = True, keys: HostKeys | None = None) -> None:
        if isinstance(location, str):
            location = parse_location(location)
        if keys is None:
            if isinstance(location, str):
                raise ValueError(
                    "a PostgreSQL host store needs the host's key store (keys=host_keys(DATA_DIR)): "
                    "its secrets are never kept in the database"
                )
            keys = HostKeys.beside(location)
        self.keys = keys
        self.engine = open_engine(location, create=create)
        #: The SQLite file, or None on PostgreSQL.
        self.path: Path | None = getattr(self.engine, "path", None)
        try:
            if not create and not self.engine.has_schema():
                raise StoreMissing(f"no host database at {self.engine.where}")
            upgrade(self.engine)
            self._make_optional_constraints()
            with self.transaction():
                self.lock("keys")  # of several processes opening at once, one moves a secret out of meta
                self._move_secret_out()
                self._secret, self._card_secret = self._checked_secrets(DIGEST, CARD_TOKEN)
        except StoreMissing:
            self.engine.close()
            raise
        except (StoreError, OSError, KeyStoreError) as exc:
            self.engine.close()
            message = str(exc)
            raise StoreError(message if message.startswith("cannot open") else f"cannot open {message}") from None
        except BaseException:
            self.engine.close()
            raise

    def _make_optional_constraints(self) -> None:
        """Make the :data:`~simulator.host.store_issuer.OPTIONAL_CONSTRAINTS` the data allows.

        Each in a transaction of its own, which a failure rolls back alone (on
        PostgreSQL a failed statement spoils the rest of its transaction): one
        already made is left, one the data already breaks (a transaction
        approved twice by an older host) is not tried, and one that a row
        committed meanwhile breaks (PostgreSQL's unique violation,
        :class:`StoreConflict`) is given up. There the acquirer's own checks
        stand alone.
        """
        for constraint in OPTIONAL_CONSTRAINTS:
            if self.engine.has_index(constraint.name):
                continue
            with contextlib.suppress(StoreConflict), self.transaction():
                self.lock("schema")
                if self._one(constraint.violations) is None:
                    self._exec(constraint.statement)

    def _move_secret_out(self) -> None:
        """Move a body-digest secret kept in ``meta`` by an older host into the key store (in the transaction)."""
        row = self._one("SELECT value FROM meta WHERE key = 'digest_secret'")
        if row is None:
            return
        try:
            value = bytes.fromhex(str(row[0]))
        except ValueError:
            raise StoreError(f"host database {self.where}: meta.digest_secret is damaged") from None
        self.keys.adopt(DIGEST, value)  # durable before the row goes: a crash between leaves both, equal
        self._exec("DELETE FROM meta WHERE key = 'digest_secret'")

    def _checked_secrets(self, *names: str) -> list[bytes]:
        """The key store's secrets, each made if the database never had one; refused if not the database's.

        The first opener keeps each secret's check value in ``meta``. A secret
        the database had and the key store lacks (a lost ``keys/``, another
        data directory) is not made anew: that would leave a wrong key store
        behind, and the right one could no longer simply be put back.
        """
        where = self.keys.directory or "in memory"
        out: list[bytes] = []
        for name in names:
            key = _KEY_CHECK_PREFIX + name
            stored = self.meta(key)
            if stored is not None and not self.keys.has(name):
                raise StoreError(
                    f"host database {self.where}: the key store {where} has no {name} secret, and this database "
                    "was used with one; restore the host's keys/ from its backup, or give the data directory "
                    "that goes with this store"
                )
            secret = self.keys.secret(name)
            check = key_check_value(secret)
            if stored is None:
                self._exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, check))
                stored = self.meta(key)
            if stored is not None and not hmac.compare_digest(stored, check):
                raise StoreError(
                    f"host database {self.where}: the key store {where} does not hold the {name} secret this "
                    "database was used with; restore the host's keys/ from its backup, or give the data "
                    "directory that goes with this store"
                )
            out.append(secret)
        return out

    @property
    def where(self) -> str:
        """The database for a message: its file, or its URL without the password."""
        return self.engine.where

    @property
    def schema_version(self) -> int:
        """The highest migration applied (:mod:`simulator.host.storage.migrations`)."""
        return current_version(self.engine)

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> HostStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def transaction(self) -> AbstractContextManager[None]:
        """One transaction (SQLite: ``BEGIN IMMEDIATE``); re-entrant, rolled back on an exception."""
        return self.engine.transaction()

    @property
    def in_transaction(self) -> bool:
        return self.engine.in_transaction

    def lock(self, *name: str) -> None:
        """Inside a transaction: hold the lock ``name`` (e.g. ``"terminal", mid, tid``) until it ends.

        What another worker's transaction checks and changes under the same
        name waits for this one to commit. Take a terminal's lock first, then
        anything shared (a card, a transaction of another terminal).
        """
        self.engine.lock(*name)

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        return self.engine.one(sql, args)

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.engine.all(sql, args)

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        """Run a statement; how many rows it inserted, changed or deleted."""
        return self.engine.execute(sql, args)

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
        return f"{_REF_PREFIX.get(what, 'H')}{self.engine.next_reference_number():010d}"

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
        return self._exec(f"UPDATE records SET reversed = 1 WHERE {where}", args)

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
        with self.transaction():
            return self._exec("DELETE FROM blocked_cards WHERE pan_token = ?", (pan_token,)) > 0

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
