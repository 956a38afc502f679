-- QR payments at the simulated host (issue 13): wallet accounts with balances, the single-use payment codes
-- their apps show, and the QR orders of terminals (a consumer-presented code paid, or a merchant-presented
-- order the app pays), with the refunds against them. The money rules are constraints here, so that no
-- host worker can break them whatever it computed: a balance never below zero, a code used by one order,
-- an order refunded at most its amount, one order per terminal reference.
-- The simulator's seeded accounts are inserted here (the docstring of simulator/host/wallets.py lists them).
-- Every statement leaves what exists as it is (as migrations 1, 4 and 7 do): a seeded balance already spent stays.
-- Portable DDL: INTEGER is translated per engine (storage/base.py, ddl_for).
CREATE TABLE IF NOT EXISTS wallet_accounts (
    account TEXT PRIMARY KEY,
    wallet TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS wallet_balances (
    account TEXT NOT NULL REFERENCES wallet_accounts (account),
    currency INTEGER NOT NULL,
    balance INTEGER NOT NULL CHECK (balance >= 0),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (account, currency)
);
CREATE TABLE IF NOT EXISTS wallet_codes (
    code_hash TEXT PRIMARY KEY,
    account TEXT NOT NULL REFERENCES wallet_accounts (account),
    wallet TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    order_id TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS wallet_codes_used_once ON wallet_codes (order_id) WHERE order_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS qr_orders (
    order_id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    reference TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('code', 'mpm')),
    state TEXT NOT NULL,
    reason TEXT,
    wallet TEXT,
    account TEXT,
    code_hash TEXT,
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency INTEGER NOT NULL,
    refunded INTEGER NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= amount),
    batch INTEGER,
    host_reference TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    paid_at TEXT,
    expires_at TEXT,
    UNIQUE (merchant_id, terminal_id, reference)
);
CREATE UNIQUE INDEX IF NOT EXISTS qr_orders_code_once ON qr_orders (code_hash) WHERE code_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS qr_orders_batch ON qr_orders (merchant_id, terminal_id, batch);
CREATE TABLE IF NOT EXISTS qr_refunds (
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    refund_reference TEXT NOT NULL,
    order_id TEXT NOT NULL REFERENCES qr_orders (order_id),
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency INTEGER NOT NULL,
    wallet TEXT NOT NULL,
    batch INTEGER NOT NULL,
    host_reference TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id, refund_reference)
);
INSERT INTO wallet_accounts (account, wallet, created_at) VALUES ('alice', 'simpay', '2026-01-01T00:00:00+00:00') ON CONFLICT (account) DO NOTHING;
INSERT INTO wallet_accounts (account, wallet, created_at) VALUES ('bob', 'simchat', '2026-01-01T00:00:00+00:00') ON CONFLICT (account) DO NOTHING;
INSERT INTO wallet_accounts (account, wallet, created_at) VALUES ('dora', 'simdc', '2026-01-01T00:00:00+00:00') ON CONFLICT (account) DO NOTHING;
INSERT INTO wallet_accounts (account, wallet, created_at) VALUES ('empty', 'simpay', '2026-01-01T00:00:00+00:00') ON CONFLICT (account) DO NOTHING;
INSERT INTO wallet_balances (account, currency, balance, updated_at) VALUES ('alice', 978, 100000, '2026-01-01T00:00:00+00:00') ON CONFLICT (account, currency) DO NOTHING;
INSERT INTO wallet_balances (account, currency, balance, updated_at) VALUES ('alice', 156, 100000, '2026-01-01T00:00:00+00:00') ON CONFLICT (account, currency) DO NOTHING;
INSERT INTO wallet_balances (account, currency, balance, updated_at) VALUES ('bob', 978, 50000, '2026-01-01T00:00:00+00:00') ON CONFLICT (account, currency) DO NOTHING;
INSERT INTO wallet_balances (account, currency, balance, updated_at) VALUES ('bob', 156, 50000, '2026-01-01T00:00:00+00:00') ON CONFLICT (account, currency) DO NOTHING;
INSERT INTO wallet_balances (account, currency, balance, updated_at) VALUES ('dora', 156, 30000, '2026-01-01T00:00:00+00:00') ON CONFLICT (account, currency) DO NOTHING;
INSERT INTO wallet_balances (account, currency, balance, updated_at) VALUES ('dora', 978, 30000, '2026-01-01T00:00:00+00:00') ON CONFLICT (account, currency) DO NOTHING;
