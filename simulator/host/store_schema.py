"""The host database's tables (schema version 2) and the migration of a version 1 file in place.

Version 2 keys everything a terminal owns by (merchant id, terminal id): a
terminal id is unique within a merchant only, so the idempotency cache,
advice keys, host batches, batch closes and the records' lookups name both.
It also keeps every terminal certificate the host issued (``certificates``:
the serial, whose terminal, until when, revoked or not, and the answer to the
rotation that replaced it) and an ``audit`` trail of enrolments, rotations,
revocations and transfers.

Version 1 (no ``schema_version`` in ``meta``) keyed by terminal id alone and
kept only the latest serial of a terminal. :func:`migrate_v1` rewrites such a
file inside the caller's transaction: the tables whose key changes are renamed,
made again and filled from the old rows (each idempotency entry goes to the
merchant of the record it answered, else the terminal's merchant), the current
serial of each terminal becomes its one valid certificate, and the old tables
are dropped. A certificate issued before the migration that was not a
terminal's latest is unknown to version 2, so it is refused: that is the fix.

The SQL is portable between SQLite and PostgreSQL (``?`` placeholders, no
engine-specific functions); the statements are run one at a time through the
store's own helpers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

__all__ = ["SCHEMA", "SCHEMA_VERSION", "migrate_v1", "statements"]

SCHEMA_VERSION: Final = 2

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS enrolment_codes (
    code_hash TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    csr_digest TEXT,
    response BLOB,
    transfer INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS terminals (
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    certificate_serial TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    software_version TEXT,
    last_sign_on TEXT,
    PRIMARY KEY (merchant_id, terminal_id)
);
CREATE TABLE IF NOT EXISTS certificates (
    serial TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    not_after TEXT,
    revoked_at TEXT,
    revoked_reason TEXT,
    rotation_key TEXT,
    rotation_public_key TEXT,
    rotation_response BLOB
);
CREATE INDEX IF NOT EXISTS certificates_terminal ON certificates (merchant_id, terminal_id);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    action TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    key TEXT NOT NULL,
    digest TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id, key)
);
CREATE TABLE IF NOT EXISTS advice_keys (
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    key TEXT NOT NULL,
    digest TEXT NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id, key)
);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    method TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency INTEGER NOT NULL,
    pan_token TEXT NOT NULL,
    response_code TEXT NOT NULL,
    approved INTEGER NOT NULL,
    reversed INTEGER NOT NULL DEFAULT 0,
    batch INTEGER NOT NULL,
    host_reference TEXT NOT NULL,
    approval_code TEXT,
    original_txn_id TEXT,
    note TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_tenant_txn ON records (merchant_id, terminal_id, txn_id);
CREATE INDEX IF NOT EXISTS records_card ON records (pan_token, created_at);
CREATE TABLE IF NOT EXISTS host_batches (
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    batch_no INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id)
);
CREATE TABLE IF NOT EXISTS batch_closes (
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    batch_id INTEGER NOT NULL,
    digest TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id, batch_id)
);
CREATE TABLE IF NOT EXISTS blocked_cards (pan_token TEXT PRIMARY KEY, code TEXT NOT NULL, blocked_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parameters (version INTEGER PRIMARY KEY, issued_at TEXT NOT NULL, document BLOB NOT NULL);
"""

#: The tables whose primary key changed from version 1 (renamed to ``<name>_v1``, made again, filled, dropped).
_REKEYED: Final = ("terminals", "idempotency", "advice_keys", "host_batches", "batch_closes")

#: The merchant of an old row: of the record it answered (same terminal and key), else of the terminal.
_MERCHANT_OF_KEY: Final = (
    "COALESCE((SELECT r.merchant_id FROM records r WHERE r.terminal_id = o.terminal_id AND "
    "r.idempotency_key = o.key ORDER BY r.seq DESC LIMIT 1), "
    "(SELECT t.merchant_id FROM terminals_v1 t WHERE t.terminal_id = o.terminal_id), '')"
)
_MERCHANT_OF_TERMINAL: Final = (
    "COALESCE((SELECT t.merchant_id FROM terminals_v1 t WHERE t.terminal_id = o.terminal_id), "
    "(SELECT r.merchant_id FROM records r WHERE r.terminal_id = o.terminal_id ORDER BY r.seq DESC LIMIT 1), '')"
)

_COPY_V1: Final = (
    "INSERT INTO terminals (merchant_id, terminal_id, certificate_serial, enrolled_at, software_version, "
    "last_sign_on) SELECT merchant_id, terminal_id, certificate_serial, enrolled_at, software_version, last_sign_on "
    "FROM terminals_v1",
    "INSERT INTO certificates (serial, merchant_id, terminal_id, issued_at) "
    "SELECT certificate_serial, merchant_id, terminal_id, enrolled_at FROM terminals_v1 WHERE certificate_serial <> ''",
    f"INSERT INTO idempotency (merchant_id, terminal_id, key, digest, status, body, created_at) "
    f"SELECT {_MERCHANT_OF_KEY}, o.terminal_id, o.key, o.digest, o.status, o.body, o.created_at FROM idempotency_v1 o",
    f"INSERT INTO advice_keys (merchant_id, terminal_id, key, digest, result) "
    f"SELECT {_MERCHANT_OF_KEY}, o.terminal_id, o.key, o.digest, o.result FROM advice_keys_v1 o",
    # every (merchant, terminal) pair the old terminal id stood for keeps its open batch number
    "INSERT INTO host_batches (merchant_id, terminal_id, batch_no) SELECT p.merchant_id, p.terminal_id, o.batch_no "
    "FROM (SELECT merchant_id, terminal_id FROM records UNION SELECT merchant_id, terminal_id FROM terminals_v1) p "
    "JOIN host_batches_v1 o ON o.terminal_id = p.terminal_id",
    f"INSERT INTO batch_closes (merchant_id, terminal_id, batch_id, digest, body) "
    f"SELECT {_MERCHANT_OF_TERMINAL}, o.terminal_id, o.batch_id, o.digest, o.body FROM batch_closes_v1 o",
)


def statements(script: str) -> list[str]:
    """The statements of a script of this module (split on ``;``, blank ones left out)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def migrate_v1(execute: Callable[[str, tuple[Any, ...]], None]) -> None:
    """Rewrite a version 1 database as version 2 (call inside a transaction, before :data:`SCHEMA` is run)."""
    execute("ALTER TABLE enrolment_codes ADD COLUMN transfer INTEGER NOT NULL DEFAULT 0", ())
    execute("DROP INDEX IF EXISTS records_txn", ())
    for table in _REKEYED:
        execute(f"ALTER TABLE {table} RENAME TO {table}_v1", ())
    for statement in statements(SCHEMA):
        execute(statement, ())
    for statement in _COPY_V1:
        execute(statement, ())
    for table in _REKEYED:
        execute(f"DROP TABLE {table}_v1", ())
