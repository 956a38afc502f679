"""The SQLite schema of the terminal's store, and its migrations.

One file holds everything (journal, transactions with their queue entries,
reversals, batches), so that a state change and all it implies commit
together.  Version 3 added the row seals (see :mod:`terminal.journal`) and the
index of refunds by their original payment, and the receipts given out;
version 4 the requests of cash registers by their idempotency key; version 5
whether each payment's outcome was shown to someone (``shown_at``,
``shown_by``), so that a payment made by a process that died before it told
anyone is told at the next start; version 6 the last payment counter seen
from each digital-currency wallet (``cbdc_counters``, sealed like the money
rows), which the terminal's replay check needs long after the payments
themselves are purged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

__all__ = ["SCHEMA", "SCHEMA_VERSION", "migrate_2_to_3", "migrate_3_to_4", "migrate_4_to_5", "migrate_5_to_6"]

SCHEMA_VERSION = 6

SCHEMA = """
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
    saf_response_code TEXT,
    -- MAC over the columns that carry money or state (terminal.journal.SEALED_COLUMNS)
    seal BLOB,
    -- when and by what the payment's outcome was shown (a command printed it, a screen showed it,
    -- a register fetched it); NULL: nobody has been told yet. Not sealed: it carries no money.
    shown_at TEXT,
    shown_by TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS transactions_unfinished ON transactions (state)
    WHERE state IN ('started', 'authorising', 'reversal_pending', 'void_pending');
CREATE INDEX IF NOT EXISTS transactions_batch ON transactions (batch_id);
CREATE INDEX IF NOT EXISTS transactions_original ON transactions (original_txn_id)
    WHERE original_txn_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS saf_queue ON transactions (saf_id) WHERE saf_status = 'queued';
CREATE INDEX IF NOT EXISTS transactions_unshown ON transactions (created_at) WHERE shown_at IS NULL;
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
    status TEXT NOT NULL DEFAULT 'queued',
    seal BLOB
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id INTEGER PRIMARY KEY,
    opened_at TEXT NOT NULL,
    closing_at TEXT,
    closed_at TEXT,
    in_balance INTEGER,
    host_reference TEXT,
    totals TEXT,
    seal BLOB
);
-- Receipts given out (a second one of the same copy is a duplicate).
CREATE TABLE IF NOT EXISTS receipts (
    txn_id TEXT NOT NULL,
    copy TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    times INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (txn_id, copy)
) WITHOUT ROWID;
-- The requests of cash registers and kiosks (the ECR interface) by their idempotency key:
-- written in the commit of the payment's first row, so a repeated request finds its payment.
CREATE TABLE IF NOT EXISTS requests (
    request_key TEXT PRIMARY KEY,
    reference TEXT,
    txn_id TEXT NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS requests_reference ON requests (reference) WHERE reference IS NOT NULL;
CREATE INDEX IF NOT EXISTS requests_txn ON requests (txn_id);
-- The last payment counter this terminal saw from each digital-currency wallet (16 hex digits):
-- it only ever goes up, and outlives the payments (retention purges those, not this).
CREATE TABLE IF NOT EXISTS cbdc_counters (
    wallet_id TEXT PRIMARY KEY,
    counter INTEGER NOT NULL,
    seen_at TEXT NOT NULL,
    seal BLOB
) WITHOUT ROWID;
"""


def migrate_2_to_3(cur: sqlite3.Cursor, seal_all: Callable[[sqlite3.Cursor], None]) -> None:
    """Version 2 had no row seals: add the columns and seal the rows as they are now.

    The rows are trusted as they stand at the upgrade (``journal verify`` on the
    old version is what vouches for them); from then on an edit shows.
    """
    for table in ("transactions", "reversals", "batches"):
        cur.execute(f"ALTER TABLE {table} ADD COLUMN seal BLOB")
    cur.execute(
        "CREATE INDEX IF NOT EXISTS transactions_original ON transactions (original_txn_id) "
        "WHERE original_txn_id IS NOT NULL"
    )
    cur.execute(
        "CREATE TABLE IF NOT EXISTS receipts (txn_id TEXT NOT NULL, copy TEXT NOT NULL, issued_at TEXT NOT NULL, "
        "times INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (txn_id, copy)) WITHOUT ROWID"
    )
    seal_all(cur)
    cur.execute("UPDATE meta SET value='3' WHERE key='schema_version'")


def migrate_3_to_4(cur: sqlite3.Cursor) -> None:
    """Version 4 adds the table of the registers' requests (nothing else changes)."""
    cur.execute(
        "CREATE TABLE IF NOT EXISTS requests (request_key TEXT PRIMARY KEY, reference TEXT, "
        "txn_id TEXT NOT NULL, created_at TEXT NOT NULL) WITHOUT ROWID"
    )
    cur.execute("CREATE INDEX IF NOT EXISTS requests_reference ON requests (reference) WHERE reference IS NOT NULL")
    cur.execute("UPDATE meta SET value='4' WHERE key='schema_version'")


def migrate_4_to_5(cur: sqlite3.Cursor) -> None:
    """Version 5 adds whether each payment's outcome was shown; every payment made before counts as shown.

    Those payments were made by a posterm that did not record it: telling
    them all again at the first start after the upgrade would bury the one
    that matters under every payment of the past.
    """
    columns = {str(row[1]) for row in cur.execute("PRAGMA table_info(transactions)").fetchall()}
    for column in ("shown_at", "shown_by"):
        if column not in columns:
            cur.execute(f"ALTER TABLE transactions ADD COLUMN {column} TEXT")
    cur.execute("UPDATE transactions SET shown_at=updated_at, shown_by='before_upgrade' WHERE shown_at IS NULL")
    cur.execute("CREATE INDEX IF NOT EXISTS transactions_unshown ON transactions (created_at) WHERE shown_at IS NULL")
    cur.execute("CREATE INDEX IF NOT EXISTS requests_txn ON requests (txn_id)")
    cur.execute("UPDATE meta SET value='5' WHERE key='schema_version'")


CBDC_COUNTERS_TABLE = (
    "CREATE TABLE IF NOT EXISTS cbdc_counters (wallet_id TEXT PRIMARY KEY, counter INTEGER NOT NULL, "
    "seen_at TEXT NOT NULL, seal BLOB) WITHOUT ROWID"
)


def migrate_5_to_6(cur: sqlite3.Cursor) -> None:
    """Version 6 adds the digital-currency wallets' last counters seen (empty: no wallet was ever seen)."""
    cur.execute(CBDC_COUNTERS_TABLE)
    cur.execute("UPDATE meta SET value='6' WHERE key='schema_version'")
