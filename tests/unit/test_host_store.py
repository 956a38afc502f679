"""The host store on both engines: migrations, transactions, locks, references, enrolment codes; the dialect layer.

``host_store`` / ``host_store_at`` (tests/conftest.py) run each test on SQLite
and on a fresh database of the session's private PostgreSQL cluster.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from simulator.host.keys import DIGEST
from simulator.host.storage import Location, StoreMissing, parse_location
from simulator.host.storage.base import ddl_for, format_placeholders, redact, scrub, statements
from simulator.host.storage.migrations import current_version, migrations
from simulator.host.store import DB_NAME, HostStore, StoreError, store_location
from simulator.host.store_issuer import OPTIONAL_CONSTRAINTS
from tests.postgres_rig import PostgresCluster

OpenStore = Callable[..., HostStore]

# ----------------------------------------------------------------------------- both engines


def test_a_new_store_is_at_the_latest_schema_version_and_reopening_changes_nothing(
    host_store_at: Location, open_host_store: OpenStore
) -> None:
    with open_host_store(host_store_at) as store:
        assert current_version(store.engine) == len(migrations()) >= 4
        digest = store.digest("body")
        store.set_meta("probe", "kept")
    with open_host_store(host_store_at) as again:
        rows = again._all("SELECT version, name FROM schema_version ORDER BY version")
        assert [r[0] for r in rows] == [m.version for m in migrations()]  # each applied once
        assert again.digest("body") == digest and again.meta("probe") == "kept"
        assert again.meta("digest_secret") is None  # the secret is in the key store, never in the database
        assert again.engine.has_index("records_approved_once")


def test_a_database_newer_than_the_code_is_refused(host_store_at: Location, open_host_store: OpenStore) -> None:
    with open_host_store(host_store_at) as store:
        store._exec("INSERT INTO schema_version (version, name, applied_at) VALUES (999, 'future', 'x')")
    with pytest.raises(StoreError, match=r"schema version 999, newer than this posterm's"):
        open_host_store(host_store_at)


def test_a_transaction_is_rolled_back_whole_on_an_exception(host_store: HostStore) -> None:
    with pytest.raises(KeyError), host_store.transaction():
        host_store.set_meta("a", "1")
        with host_store.transaction():  # joins the outer one
            host_store.set_meta("b", "2")
        raise KeyError("boom")
    assert host_store.meta("a") is None and host_store.meta("b") is None
    with host_store.transaction():
        host_store.set_meta("a", "1")
    assert host_store.meta("a") == "1"


def test_exec_counts_the_rows_it_changed(host_store: HostStore) -> None:
    with host_store.transaction():
        assert host_store._exec("INSERT INTO blocked_cards (pan_token, code, blocked_at) VALUES (?, ?, ?)",
                                ("t1", "62", "now")) == 1
        host_store.block_card("t2", "43", "now")
    assert host_store._exec("UPDATE blocked_cards SET code = ? WHERE code != ?", ("05", "xx")) == 2
    assert host_store.unblock_card("t1") is True
    assert host_store.unblock_card("t1") is False
    assert host_store.blocked_cards() == {"t2": "05"}


def test_a_lock_is_taken_inside_a_transaction_only(host_store: HostStore) -> None:
    with pytest.raises(RuntimeError, match="outside a transaction"):
        host_store.lock("terminal", "T1")
    with host_store.transaction():
        host_store.lock("terminal", "T1")
        host_store.lock("terminal", "T1")  # again in the same transaction: no wait


def test_references_are_unique_and_increasing(host_store: HostStore) -> None:
    numbers = [int(host_store.next_reference(w)[1:]) for w in ("authorise", "advise", "reverse", "close") * 5]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert host_store.next_reference("sign_on").startswith("S")


def test_an_enrolment_code_is_used_once(host_store: HostStore) -> None:
    host_store.add_enrolment_code("ABCD-EFGH", "T1", "M1", "2025-01-01", "2099-01-01")
    assert host_store.use_enrolment_code("abcd-efgh", "2025-01-02", "d1", b"answer", "0A") == "enrolled"
    assert host_store.use_enrolment_code("ABCD-EFGH", "2025-01-03", "d2", b"other", "0B") == "refused"
    code = host_store.enrolment_code("ABCD-EFGH")
    assert code is not None and code.response == b"answer" and code.csr_digest == "d1"
    assert [t["certificate_serial"] for t in host_store.terminals()] == ["0A"]


def test_bytes_and_large_amounts_survive_the_round_trip(host_store: HostStore) -> None:
    body = bytes(range(256)) * 3
    with host_store.transaction():
        host_store.save_response("M1", "T1", "k1", "digest", 200, body, "2025-01-01")
        host_store.add_record(method="authorise", txn_id="x", idempotency_key="k1", kind="sale", terminal_id="T1",
                              merchant_id="M1", amount=999_999_999_999, currency=978, pan_token="p",
                              response_code="00", approved=True, host_reference="A1", created_at="2025-01-01")
    cached = host_store.cached_response("M1", "T1", "k1")
    assert cached is not None and cached.body == body and cached.status == 200
    (record,) = host_store.records()
    assert record.amount == 999_999_999_999 and record.approved is True and record.reversed is False


def _approve_twice(store: HostStore) -> None:
    """What a host of before issue 11 could leave: one txn_id of a terminal approved under two keys."""
    with store.transaction():
        for n in (1, 2):
            store.add_record(method="authorise", txn_id="twice", idempotency_key=f"k{n}", kind="sale",
                             terminal_id="T1", merchant_id="M1", amount=100, currency=978, pan_token="p",
                             response_code="00", approved=True, host_reference=f"A{n}", created_at="2025-01-01")


def test_data_that_breaks_the_unique_approval_index_leaves_it_unmade_and_the_store_usable(
    host_store_at: Location, open_host_store: OpenStore
) -> None:
    with open_host_store(host_store_at) as store:
        assert store.engine.has_index("records_approved_once")
        store._exec("DROP INDEX records_approved_once")
        _approve_twice(store)
    with open_host_store(host_store_at) as store:  # the index cannot be made: not tried, the store opens
        assert not store.engine.has_index("records_approved_once")
        assert len(store.approved_records("M1", "T1", "twice")) == 2
        store.set_meta("after", "ok")  # nothing left spoilt
        assert store.meta("after") == "ok"


def test_a_unique_approval_index_that_fails_anyway_is_given_up_alone(
    host_store_at: Location, open_host_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows that break it committed between the check and the index (another process's, on PostgreSQL):
    the failed CREATE spoils its transaction there, which is rolled back alone; the store opens and works."""
    with open_host_store(host_store_at) as store:
        store._exec("DROP INDEX records_approved_once")
        _approve_twice(store)
    (constraint,) = OPTIONAL_CONSTRAINTS
    blind = dataclasses.replace(constraint, violations="SELECT 1 FROM meta WHERE 1 = 0")  # sees nothing
    monkeypatch.setattr("simulator.host.store.OPTIONAL_CONSTRAINTS", (blind,))
    with open_host_store(host_store_at) as store:
        assert not store.engine.has_index("records_approved_once")
        store.set_meta("after", "ok")
        assert store.meta("after") == "ok"


def test_create_false_refuses_a_place_without_a_host(host_store_at: Location, tmp_path: Path,
                                                    request: pytest.FixtureRequest, open_host_store: OpenStore) -> None:
    if isinstance(host_store_at, Path):
        with pytest.raises(StoreMissing):
            open_host_store(tmp_path / "nothing" / DB_NAME, create=False)
        assert not (tmp_path / "nothing").exists()
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        empty = cluster.create_database(template=None)
        try:
            with pytest.raises(StoreMissing):
                open_host_store(cluster.url(empty), create=False)
            with open_host_store(cluster.url(empty)) as made:  # create=True makes the tables
                assert made.schema_version == len(migrations())
            open_host_store(cluster.url(empty), create=False).close()
        finally:
            cluster.drop_database(empty)
    open_host_store(host_store_at).close()
    open_host_store(host_store_at, create=False).close()  # now there is a host


# ----------------------------------------------------------------------------- SQLite only


def test_an_older_sqlite_host_db_without_schema_version_is_adopted(tmp_path: Path) -> None:
    """A host.db of before the migrations (all its tables, no schema_version) keeps its rows."""
    path = tmp_path / DB_NAME
    db = sqlite3.connect(path)
    for statement in statements(migrations()[0].script("sqlite")):
        db.execute(statement)
    secret = "ab" * 32
    db.execute("INSERT INTO meta (key, value) VALUES ('seq', '41'), ('digest_secret', ?)", (secret,))
    db.commit()
    db.close()
    with HostStore(path) as store:
        assert store.meta("digest_secret") is None and store.keys.secret(DIGEST).hex() == secret  # moved out
        assert store.next_reference("authorise") == "A0000000042"
        assert current_version(store.engine) == len(migrations())


# ----------------------------------------------------------------------------- the dialect layer


def test_placeholders_become_psycopgs_and_literals_are_left_alone() -> None:
    assert format_placeholders("SELECT a FROM t WHERE b = ? AND c = ?") == "SELECT a FROM t WHERE b = %s AND c = %s"
    assert format_placeholders("SELECT '?', \"q?\" FROM t WHERE x LIKE 'a%' AND y = ?") == (
        "SELECT '?', \"q?\" FROM t WHERE x LIKE 'a%%' AND y = %s"
    )
    assert format_placeholders("SELECT 'it''s ?' , ?") == "SELECT 'it''s ?' , %s"


def test_portable_ddl_per_engine() -> None:
    ddl = "CREATE TABLE r (seq SERIAL_KEY, n INTEGER NOT NULL, b BLOB, big_integer_name TEXT)"
    assert ddl_for("sqlite", ddl) == "CREATE TABLE r (seq INTEGER PRIMARY KEY, n INTEGER NOT NULL, b BLOB, " \
                                     "big_integer_name TEXT)"
    assert ddl_for("postgresql", ddl) == (
        "CREATE TABLE r (seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT NOT NULL, b BYTEA, "
        "big_integer_name TEXT)"
    )
    assert migrations()[1].script("sqlite") == ""  # the reference sequence is PostgreSQL's only
    assert "CREATE SEQUENCE" in migrations()[1].script("postgresql")


def test_passwords_are_redacted_from_urls_and_messages() -> None:
    url = "postgresql://fleet:s3cr%21t@db.example:5432/host?sslmode=require"
    assert redact(url) == "postgresql://fleet:***@db.example:5432/host?sslmode=require"
    assert redact("postgresql://u@h/db?password=hunter2&sslmode=disable") == (
        "postgresql://u@h/db?password=***&sslmode=disable"
    )
    message = f'connection to "{url}" failed:\n  password s3cr%21t refused'
    assert "s3cr" not in scrub(message, url) and "\n" not in scrub(message, url)


def test_store_locations() -> None:
    data = Path("/srv/host")
    assert store_location(data) == data / DB_NAME
    assert store_location(data, "") == data / DB_NAME
    assert store_location(data, "postgresql://u@h/db") == "postgresql://u@h/db"
    assert store_location(data, "postgres://u@h/db") == "postgres://u@h/db"
    assert parse_location("sqlite:///var/lib/host.db") == Path("/var/lib/host.db")
    assert parse_location("/var/lib/host.db") == Path("/var/lib/host.db")
    with pytest.raises(ValueError, match=r"mysql://\.\.\. is not supported"):
        parse_location("mysql://u@h/db")
