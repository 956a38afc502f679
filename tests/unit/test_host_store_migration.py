"""A host.db written by schema version 1 (keyed by terminal id alone) is migrated in place on open.

(Migration 3, ``0003_tenancy.sql``, of :mod:`simulator.host.storage.migrations`; a file of version 1 has no
version mark and the tables of migration 1.)

The version 1 file is made here with version 1's own statements (copied from the
release that wrote such files), holding what a host of that time held,
including the mix the bug left behind: one terminal id with records of two
merchants.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from simulator.host.keys import DIGEST
from simulator.host.storage.migrations import migrations
from simulator.host.store import DB_NAME, HostStore, StoreError

SCHEMA_VERSION = len(migrations())

V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE enrolment_codes (code_hash TEXT PRIMARY KEY, terminal_id TEXT NOT NULL, merchant_id TEXT NOT NULL,
    created_at TEXT NOT NULL, expires_at TEXT NOT NULL, used_at TEXT, csr_digest TEXT, response BLOB);
CREATE TABLE terminals (terminal_id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, certificate_serial TEXT NOT NULL,
    enrolled_at TEXT NOT NULL, software_version TEXT, last_sign_on TEXT);
CREATE TABLE idempotency (terminal_id TEXT NOT NULL, key TEXT NOT NULL, digest TEXT NOT NULL, status INTEGER NOT NULL,
    body BLOB NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (terminal_id, key));
CREATE TABLE advice_keys (terminal_id TEXT NOT NULL, key TEXT NOT NULL, digest TEXT NOT NULL, result TEXT NOT NULL,
    PRIMARY KEY (terminal_id, key));
CREATE TABLE records (seq INTEGER PRIMARY KEY, method TEXT NOT NULL, txn_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL, kind TEXT NOT NULL, terminal_id TEXT NOT NULL, merchant_id TEXT NOT NULL,
    amount INTEGER NOT NULL, currency INTEGER NOT NULL, pan_token TEXT NOT NULL, response_code TEXT NOT NULL,
    approved INTEGER NOT NULL, reversed INTEGER NOT NULL DEFAULT 0, batch INTEGER NOT NULL,
    host_reference TEXT NOT NULL, approval_code TEXT, original_txn_id TEXT, note TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL);
CREATE INDEX records_txn ON records (terminal_id, txn_id);
CREATE INDEX records_card ON records (pan_token, created_at);
CREATE TABLE host_batches (terminal_id TEXT PRIMARY KEY, batch_no INTEGER NOT NULL);
CREATE TABLE batch_closes (terminal_id TEXT NOT NULL, batch_id INTEGER NOT NULL, digest TEXT NOT NULL,
    body BLOB NOT NULL, PRIMARY KEY (terminal_id, batch_id));
CREATE TABLE blocked_cards (pan_token TEXT PRIMARY KEY, code TEXT NOT NULL, blocked_at TEXT NOT NULL);
CREATE TABLE parameters (version INTEGER PRIMARY KEY, issued_at TEXT NOT NULL, document BLOB NOT NULL);
"""

AT = "2025-05-01T10:00:00.000000+00:00"
OPEN_CODE = "ABCD-EFGH-JKLM-NPQR"


def _record(seq: int, txn_id: str, key: str, merchant_id: str, batch: int, method: str = "authorise") -> tuple:
    return (seq, method, txn_id, key, "sale", "T1", merchant_id, 1000, 978, "tok", "00", 1, 0, batch, f"A{seq:010d}",
            "ABC123", None, "", AT)


@pytest.fixture()
def v1_file(tmp_path: Path) -> Path:
    path = tmp_path / DB_NAME
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.executemany("INSERT INTO meta VALUES (?, ?)", [("digest_secret", "ab" * 32), ("seq", "7")])
    db.execute("INSERT INTO enrolment_codes VALUES ('h1', 'T1', 'M2', ?, '2099-01-01', ?, 'd', x'7b7d')", (AT, AT))
    db.execute("INSERT INTO enrolment_codes VALUES (?, 'T9', 'M9', ?, '2099-01-01', NULL, NULL, NULL)",
               (hashlib.sha256(OPEN_CODE.encode()).hexdigest(), AT))
    # the bug's leftovers: T1 enrolled first for M1, then again for M2 (the row keeps the latest)
    db.execute("INSERT INTO terminals VALUES ('T1', 'M2', 'CAFE02', ?, '1.0', ?)", (AT, AT))
    db.execute("INSERT INTO terminals VALUES ('T3', 'M3', '', ?, '1.0', ?)", (AT, AT))  # signed on in-process
    db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        _record(1, "s1", "k-m1", "M1", 3),
        _record(2, "s2", "k-m2", "M2", 3),
    ])
    db.executemany("INSERT INTO idempotency VALUES (?, ?, ?, ?, ?, ?)", [
        ("T1", "k-m1", "dig1", 200, b'{"m":1}', AT),
        ("T1", "k-m2", "dig2", 200, b'{"m":2}', AT),
        ("T1", "sign-on-key", "dig3", 200, b'{"s":1}', AT),
    ])
    db.execute("INSERT INTO advice_keys VALUES ('T1', 'ak1', 'dig4', '{\"outcome\": \"accepted\"}')")
    db.execute("INSERT INTO host_batches VALUES ('T1', 3)")
    db.execute("INSERT INTO batch_closes VALUES ('T1', 2, 'dig5', x'7b7d')")
    db.execute("INSERT INTO blocked_cards VALUES ('tok-bad', '43', ?)", (AT,))
    db.execute("INSERT INTO parameters VALUES (1, ?, x'7b7d')", (AT,))
    db.commit()
    db.close()
    return path


def test_a_version_1_file_is_migrated_in_place(v1_file: Path) -> None:
    with HostStore(v1_file) as store:
        assert store.schema_version == SCHEMA_VERSION >= 3
        # what was kept is still there, under the merchant it belonged to
        assert [(r.txn_id, r.merchant_id) for r in store.records()] == [("s1", "M1"), ("s2", "M2")]
        assert store.cached_response("M1", "T1", "k-m1") is not None
        assert store.cached_response("M2", "T1", "k-m1") is None
        assert store.cached_response("M2", "T1", "k-m2") is not None
        assert store.cached_response("M2", "T1", "sign-on-key") is not None  # no record: the terminal's merchant
        assert store.advice_result("M2", "T1", "ak1") == ("dig4", {"outcome": "accepted"})
        assert store.batch_number("M1", "T1") == 3 and store.batch_number("M2", "T1") == 3
        assert [r.txn_id for r in store.open_records("M1", "T1")] == ["s1"]
        assert store.batch_close("M2", "T1", 2) == ("dig5", b"{}")
        assert store.blocked_cards() == {"tok-bad": "43"}
        assert store.parameters_version() == 1
        assert store.next_reference("authorise") == "A0000000008"
        assert store.meta("digest_secret") is None  # moved to the host's key store (issue 11), the same secret:
        assert store.keys.secret(DIGEST) == bytes.fromhex("ab" * 32)  # stored digests still compare
        code = store.enrolment_code(OPEN_CODE)
        assert code is not None and (code.terminal_id, code.merchant_id, code.transfer) == ("T9", "M9", False)
        # the terminal's latest certificate is its one valid certificate; older ones are unknown
        certificate = store.certificate("CAFE02")
        assert certificate is not None and certificate.valid
        assert (certificate.merchant_id, certificate.terminal_id) == ("M2", "T1")
        assert {(t["terminal_id"], t["merchant_id"], t["certificate_status"]) for t in store.terminals()} == {
            ("T1", "M2", "active"), ("T3", "M3", "no certificate")
        }
        assert store.terminal_id_holders("T9", AT) == ["M9"]  # an open code of version 1 still counts
    with HostStore(v1_file) as again:  # opening a migrated file again changes nothing
        assert again.schema_version == SCHEMA_VERSION and len(again.records()) == 2
    db = sqlite3.connect(v1_file)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
    db.close()
    assert not {t for t in tables if t.endswith("_v1")} and "records_txn" not in tables
    assert {"certificates", "audit", "records_tenant_txn"} <= tables


def test_a_file_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    HostStore(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (99, 'future', ?)", (AT,))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version 99, newer"):
        HostStore(path)


def test_a_file_that_marked_schema_2_in_meta_is_taken_as_at_migration_3(tmp_path: Path) -> None:
    """Before the migrations were numbered, the tenancy schema wrote schema_version = 2 into meta."""
    path = tmp_path / DB_NAME
    with HostStore(path) as store:
        store.add_certificate("CAFE01", "M1", "T1", AT)
    db = sqlite3.connect(path)  # made as that code made it: the tables of migration 3, the mark in meta
    db.execute("DROP TABLE schema_version")
    db.execute("DROP INDEX records_proof_approved")  # migrations 5 and 6 came after that code
    db.execute("ALTER TABLE records DROP COLUMN proof")
    db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '2')")
    db.commit()
    db.close()
    with HostStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert [r[0] for r in store._all("SELECT version FROM schema_version ORDER BY version")] == list(
            range(1, SCHEMA_VERSION + 1)
        )
        assert store.meta("schema_version") is None
        certificate = store.certificate("CAFE01")
        assert certificate is not None and certificate.valid


def test_a_host_db_of_the_issuer_schema_before_the_numbering_keeps_its_rows_and_keys(tmp_path: Path) -> None:
    """A host.db of a posterm that made the issuer's tables without numbered migrations (schema mark 2 in meta,
    the tables of migration 4 made already, its secrets in keys/ and no check value of them) is adopted."""
    path = tmp_path / DB_NAME
    with HostStore(path) as store:
        with store.transaction():
            store.set_refund_allowance("M1", 5000, AT)
            store.set_terminal_part("M1", "T1", {"merchant_name": "Shop"}, AT)
        digest = store.digest("body")
    db = sqlite3.connect(path)  # as that code left it
    db.execute("DROP TABLE schema_version")
    db.execute("DROP INDEX records_proof_approved")  # migrations 5 and 6 came after that code
    db.execute("ALTER TABLE records DROP COLUMN proof")
    db.execute("DELETE FROM meta WHERE key LIKE 'key_check:%'")
    db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '2')")
    db.commit()
    db.close()
    with HostStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION >= 4
        assert store.refund_allowance("M1") == 5000 and store.terminal_part("M1", "T1") == {"merchant_name": "Shop"}
        assert store.digest("body") == digest  # the same key store
        assert store.engine.has_index("records_approved_once")
        assert store.meta("key_check:digest") is not None  # from now on a foreign key store is refused


def test_a_transaction_approved_twice_by_an_older_host_leaves_the_unique_index_unmade(tmp_path: Path) -> None:
    """The unique index on approved transactions is made when the data allows; else the store still opens."""
    path = tmp_path / DB_NAME
    HostStore(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP INDEX records_approved_once")
    for seq in (1, 2):  # what a host of before issue 11 could do: one txn_id approved under two keys
        db.execute(
            "INSERT INTO records (seq, method, txn_id, idempotency_key, kind, terminal_id, merchant_id, amount, "
            "currency, pan_token, response_code, approved, reversed, batch, host_reference, created_at) "
            "VALUES (?, 'authorise', 'twice', ?, 'sale', 'T1', 'M1', 100, 978, 'tok', '00', 1, 0, 1, ?, ?)",
            (seq, f"k{seq}", f"A{seq}", AT),
        )
    db.commit()
    db.close()
    with HostStore(path) as store:
        assert not store.engine.has_index("records_approved_once")
        assert len(store.approved_records("M1", "T1", "twice")) == 2
