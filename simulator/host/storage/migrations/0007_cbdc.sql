-- The digital-currency operator (issue 12, simulator/host/cbdc_operator.py): the trust roots it verifies
-- wallets against, each wallet's account (opening balance, top-ups, what was credited), every payment record
-- it has seen by (wallet id, counter) -- one record per counter, which the primary key keeps across host
-- workers -- the other records presented for a counter already held (the evidence of a double spend), the
-- intents that terminals declared torn, the block list, and the log of every change to what the parameters'
-- cbdc section carries (roots added, wallets and operators blocked or unblocked: its version counts them).
-- Portable DDL: SERIAL_KEY and INTEGER are translated per engine (storage/base.py, ddl_for).
CREATE TABLE IF NOT EXISTS cbdc_roots (
    root_id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cbdc_wallets (
    wallet_id TEXT PRIMARY KEY,
    opening INTEGER NOT NULL DEFAULT 0,
    topups INTEGER NOT NULL DEFAULT 0,
    credited INTEGER NOT NULL DEFAULT 0,
    credited_back INTEGER NOT NULL DEFAULT 0,
    currency INTEGER,
    public_key TEXT,
    operator_id TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cbdc_records (
    wallet_id TEXT NOT NULL,
    counter INTEGER NOT NULL,
    record_hash TEXT NOT NULL,
    previous_hash TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency INTEGER NOT NULL,
    payee_merchant_id TEXT NOT NULL,
    payee_terminal_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    claimed_merchant_id TEXT,
    claimed_terminal_id TEXT,
    claimed_txn_id TEXT,
    claimed_key TEXT,
    record TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (wallet_id, counter)
);
CREATE TABLE IF NOT EXISTS cbdc_conflicts (
    seq SERIAL_KEY,
    wallet_id TEXT NOT NULL,
    counter INTEGER NOT NULL,
    record_hash TEXT NOT NULL,
    reason TEXT NOT NULL,
    merchant_id TEXT,
    terminal_id TEXT,
    txn_id TEXT,
    record TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cbdc_conflicts_wallet ON cbdc_conflicts (wallet_id, counter);
CREATE TABLE IF NOT EXISTS cbdc_torn (
    wallet_id TEXT NOT NULL,
    counter INTEGER NOT NULL,
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    previous_hash TEXT NOT NULL,
    challenge TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency INTEGER NOT NULL,
    declared_at TEXT NOT NULL,
    PRIMARY KEY (wallet_id, counter, merchant_id, terminal_id)
);
CREATE TABLE IF NOT EXISTS cbdc_blocked (
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    reason TEXT NOT NULL,
    blocked_at TEXT NOT NULL,
    PRIMARY KEY (kind, subject)
);
CREATE TABLE IF NOT EXISTS cbdc_changes (
    seq SERIAL_KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
