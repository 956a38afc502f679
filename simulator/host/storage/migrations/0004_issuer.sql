-- The acquirer's checks and the parameters per terminal (issue 11): the refunds against a sale found by
-- their original, the merchants' allowances for refunds that no sale covers, each terminal's own part of
-- its parameters and the versions served to it. A host.db made by a posterm of before the numbered
-- migrations (schema mark 2, adopted at 3) may have these already: every statement leaves them as they are.
-- The unique index on approved transactions (records_approved_once) is not here: data of an older host
-- may break it, so it is made at open when the data allows (simulator/host/store_issuer.py,
-- OPTIONAL_CONSTRAINTS).
-- Portable DDL: BLOB and INTEGER are translated per engine (storage/base.py, ddl_for).
CREATE INDEX IF NOT EXISTS records_original ON records (merchant_id, terminal_id, original_txn_id);
CREATE TABLE IF NOT EXISTS refund_allowances (
    merchant_id TEXT PRIMARY KEY,
    daily_amount INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS terminal_parameters (
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    own TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id)
);
CREATE TABLE IF NOT EXISTS served_parameters (
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    basis TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    document BLOB NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id, version)
);
