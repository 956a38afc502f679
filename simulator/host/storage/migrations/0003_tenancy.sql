-- Tenancy: a terminal id is unique within its merchant only, so whatever belongs to a terminal
-- (idempotency, advice keys, host batches, batch closes, the records' lookups) is keyed by
-- (merchant id, terminal id); every terminal certificate the host issues is kept (serial, whose, until
-- when, revoked or not, the answer to the rotation that replaced it), with an audit trail of enrolments,
-- rotations, revocations and transfers.
--
-- The tables whose key changes are copied aside, made again and filled from the copies: an idempotency
-- entry goes to the merchant of the record it answered (same terminal and key), else to the terminal's;
-- every (merchant, terminal) pair an old terminal id stood for keeps its open batch number; a terminal's
-- latest certificate becomes its one valid certificate (older ones are unknown, so refused).
ALTER TABLE enrolment_codes ADD COLUMN transfer INTEGER NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS records_txn;

CREATE TABLE terminals_v1 AS SELECT * FROM terminals;
CREATE TABLE idempotency_v1 AS SELECT * FROM idempotency;
CREATE TABLE advice_keys_v1 AS SELECT * FROM advice_keys;
CREATE TABLE host_batches_v1 AS SELECT * FROM host_batches;
CREATE TABLE batch_closes_v1 AS SELECT * FROM batch_closes;
DROP TABLE terminals;
DROP TABLE idempotency;
DROP TABLE advice_keys;
DROP TABLE host_batches;
DROP TABLE batch_closes;

CREATE TABLE terminals (
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    certificate_serial TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    software_version TEXT,
    last_sign_on TEXT,
    PRIMARY KEY (merchant_id, terminal_id)
);
CREATE TABLE certificates (
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
CREATE INDEX certificates_terminal ON certificates (merchant_id, terminal_id);
CREATE TABLE audit (
    seq SERIAL_KEY,
    at TEXT NOT NULL,
    action TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE idempotency (
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    key TEXT NOT NULL,
    digest TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id, key)
);
CREATE TABLE advice_keys (
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    key TEXT NOT NULL,
    digest TEXT NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id, key)
);
CREATE TABLE host_batches (
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    batch_no INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id)
);
CREATE TABLE batch_closes (
    merchant_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    batch_id INTEGER NOT NULL,
    digest TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id, batch_id)
);
CREATE INDEX records_tenant_txn ON records (merchant_id, terminal_id, txn_id);

INSERT INTO terminals (merchant_id, terminal_id, certificate_serial, enrolled_at, software_version, last_sign_on)
SELECT merchant_id, terminal_id, certificate_serial, enrolled_at, software_version, last_sign_on FROM terminals_v1;
INSERT INTO certificates (serial, merchant_id, terminal_id, issued_at)
SELECT certificate_serial, merchant_id, terminal_id, enrolled_at FROM terminals_v1 WHERE certificate_serial <> '';
INSERT INTO idempotency (merchant_id, terminal_id, key, digest, status, body, created_at)
SELECT COALESCE(
    (SELECT r.merchant_id FROM records r WHERE r.terminal_id = o.terminal_id AND r.idempotency_key = o.key
     ORDER BY r.seq DESC LIMIT 1),
    (SELECT t.merchant_id FROM terminals_v1 t WHERE t.terminal_id = o.terminal_id), ''),
    o.terminal_id, o.key, o.digest, o.status, o.body, o.created_at
FROM idempotency_v1 o;
INSERT INTO advice_keys (merchant_id, terminal_id, key, digest, result)
SELECT COALESCE(
    (SELECT r.merchant_id FROM records r WHERE r.terminal_id = o.terminal_id AND r.idempotency_key = o.key
     ORDER BY r.seq DESC LIMIT 1),
    (SELECT t.merchant_id FROM terminals_v1 t WHERE t.terminal_id = o.terminal_id), ''),
    o.terminal_id, o.key, o.digest, o.result
FROM advice_keys_v1 o;
INSERT INTO host_batches (merchant_id, terminal_id, batch_no)
SELECT p.merchant_id, p.terminal_id, o.batch_no
FROM (SELECT merchant_id, terminal_id FROM records UNION SELECT merchant_id, terminal_id FROM terminals_v1) p
JOIN host_batches_v1 o ON o.terminal_id = p.terminal_id;
INSERT INTO batch_closes (merchant_id, terminal_id, batch_id, digest, body)
SELECT COALESCE(
    (SELECT t.merchant_id FROM terminals_v1 t WHERE t.terminal_id = o.terminal_id),
    (SELECT r.merchant_id FROM records r WHERE r.terminal_id = o.terminal_id ORDER BY r.seq DESC LIMIT 1), ''),
    o.terminal_id, o.batch_id, o.digest, o.body
FROM batch_closes_v1 o;

DROP TABLE terminals_v1;
DROP TABLE idempotency_v1;
DROP TABLE advice_keys_v1;
DROP TABLE host_batches_v1;
DROP TABLE batch_closes_v1;
