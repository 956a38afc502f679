-- The host's tables as they were before migrations were numbered (an older host.db has them all:
-- every statement here leaves an existing table or index as it is).
-- Portable DDL: SERIAL_KEY, BLOB and INTEGER are translated per engine (storage/base.py, ddl_for).
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS enrolment_codes (
    code_hash TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    csr_digest TEXT,
    response BLOB
);
CREATE TABLE IF NOT EXISTS terminals (
    terminal_id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    certificate_serial TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    software_version TEXT,
    last_sign_on TEXT
);
CREATE TABLE IF NOT EXISTS idempotency (
    terminal_id TEXT NOT NULL,
    key TEXT NOT NULL,
    digest TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (terminal_id, key)
);
CREATE TABLE IF NOT EXISTS advice_keys (
    terminal_id TEXT NOT NULL,
    key TEXT NOT NULL,
    digest TEXT NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (terminal_id, key)
);
CREATE TABLE IF NOT EXISTS records (
    seq SERIAL_KEY,
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
CREATE INDEX IF NOT EXISTS records_txn ON records (terminal_id, txn_id);
CREATE INDEX IF NOT EXISTS records_card ON records (pan_token, created_at);
CREATE TABLE IF NOT EXISTS host_batches (terminal_id TEXT PRIMARY KEY, batch_no INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS batch_closes (
    terminal_id TEXT NOT NULL,
    batch_id INTEGER NOT NULL,
    digest TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (terminal_id, batch_id)
);
CREATE TABLE IF NOT EXISTS blocked_cards (pan_token TEXT PRIMARY KEY, code TEXT NOT NULL, blocked_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parameters (version INTEGER PRIMARY KEY, issued_at TEXT NOT NULL, document BLOB NOT NULL);
