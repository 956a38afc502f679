"""Integrity the journal promises (issue 9, section 3), through the ``posterm`` command as a user runs it.

Before: ``UPDATE transactions SET amount=1`` left "chain intact" while the X
report showed the edited amount and settle printed a raw dict with exit 0; a
zero-length journal beside the keys verified as "0 rows" and sales went on;
``saf status`` said "0 queued" on a damaged file.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

POSTERM = str(Path(sys.executable).with_name("posterm"))


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POSTERM_MASTER_KEY", "POSTERM_DATA_DIR")}
    return subprocess.run(
        [POSTERM, *args, "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def one_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    # (a card prompt, "1.00 EUR: present card", and a note on the log may come before)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("posterm: error: ")]
    assert all(line.startswith(("posterm: ", "1.00 EUR: ")) for line in proc.stderr.splitlines()), proc.stderr
    assert len(lines) == 1 and lines[0].startswith("posterm: error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


def sale(data_dir: Path, amount: str, *more: str) -> str:
    proc = run(data_dir, "sale", amount, "--json", *more)
    assert proc.returncode == 0, proc.stderr
    txn_id: str = json.loads(proc.stdout)["txn_id"]
    return txn_id


@pytest.fixture
def used(tmp_path: Path) -> tuple[Path, list[str]]:
    data_dir = tmp_path / "terminal"
    ids = [sale(data_dir, "40.00"), sale(data_dir, "20.00"), sale(data_dir, "12.34", "--card", "visa-qvsdc-offline")]
    return data_dir, ids


def _sql(data_dir: Path, statement: str) -> None:
    conn = sqlite3.connect(str(data_dir / "journal.sqlite"))
    try:
        conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE transactions SET amount=4 WHERE txn_id='{id}'",
        "UPDATE transactions SET state='voided' WHERE txn_id='{id}'",
        "UPDATE transactions SET original_txn_id='x' WHERE txn_id='{id}'",
        "UPDATE transactions SET details='{{\"approval_code\":\"FORGED\"}}' WHERE txn_id='{id}'",
    ],
)
def test_an_edited_transaction_row_is_named_and_not_counted(used: tuple[Path, list[str]], edit: str) -> None:
    data_dir, ids = used
    _sql(data_dir, edit.format(id=ids[0]))
    verify = run(data_dir, "journal", "verify")
    assert verify.returncode == 1 and ids[0] in verify.stdout and "FAILED" in verify.stdout, verify.stdout
    assert "chain intact" not in verify.stdout
    if "state" not in edit:
        report = one_error(run(data_dir, "report", "x"), 3)
        assert ids[0] in report and "changed outside posterm" in report
    settle = run(data_dir, "settle")
    assert settle.returncode != 0, settle.stdout
    assert "{" not in settle.stderr  # no raw Python dict


def test_edited_reversals_and_batches_are_named_too(used: tuple[Path, list[str]]) -> None:
    data_dir, ids = used
    assert run(data_dir, "void", ids[1]).returncode == 0
    _sql(data_dir, "UPDATE reversals SET amount=1")
    _sql(data_dir, "UPDATE batches SET opened_at='2000-01-01'")
    verify = run(data_dir, "journal", "verify")
    assert verify.returncode == 1
    assert f"reversal of {ids[1]}" in verify.stdout and "batch 1" in verify.stdout, verify.stdout


def test_a_deleted_transaction_row_is_found(used: tuple[Path, list[str]]) -> None:
    data_dir, ids = used
    _sql(data_dir, f"DELETE FROM transactions WHERE txn_id='{ids[1]}'")
    verify = run(data_dir, "journal", "verify")
    assert verify.returncode == 1 and f"transaction {ids[1]}" in verify.stdout and "deleted" in verify.stdout


@pytest.mark.parametrize("how", ["empty", "missing"])
def test_an_initialised_terminal_without_its_journal_is_refused(used: tuple[Path, list[str]], how: str) -> None:
    data_dir, _ = used
    journal = data_dir / "journal.sqlite"
    if how == "empty":
        journal.write_bytes(b"")
    else:
        journal.unlink()
    for args in (("journal", "verify"), ("saf", "status"), ("sale", "1.00"), ("settle",)):
        message = one_error(run(data_dir, *args), 3)
        assert "keys exist" in message and "backup" in message, message
    assert not journal.exists() or journal.stat().st_size == 0  # nothing started afresh


def test_a_new_data_directory_still_starts(tmp_path: Path) -> None:
    data_dir = tmp_path / "new"
    assert run(data_dir, "saf", "status").returncode == 0
    assert (data_dir / "keys").is_dir() and (data_dir / "journal.sqlite").stat().st_size > 0


def test_a_damaged_database_gives_a_clear_error_from_every_command(used: tuple[Path, list[str]]) -> None:
    data_dir, _ = used
    journal = data_dir / "journal.sqlite"
    original = journal.read_bytes()
    commands = [("saf", "status"), ("journal", "list"), ("journal", "verify"), ("report", "x"), ("sale", "1.00")]
    damaged_runs = 0
    for seed in range(12):
        rng = random.Random(seed)
        data = bytearray(original)
        for _ in range(40):
            data[rng.randrange(4096, len(data))] = rng.randrange(256)
        journal.write_bytes(bytes(data))
        for args in commands:
            proc = run(data_dir, *args)
            assert "Traceback" not in proc.stderr + proc.stdout, (seed, args, proc.stderr)
            if proc.returncode == 0:
                continue
            damaged_runs += 1
            if args != ("journal", "verify"):
                one_error(proc, proc.returncode)
                assert proc.returncode in (1, 3), (seed, args, proc.stderr)
    journal.write_bytes(original)
    assert damaged_runs > 12  # the damage was met, not only written


def test_saf_status_reads_the_queue_in_full(used: tuple[Path, list[str]]) -> None:
    """A queued payment whose row is damaged is not counted as fine."""
    data_dir, ids = used
    _sql(data_dir, f"UPDATE transactions SET amount=1 WHERE txn_id='{ids[2]}'")
    message = one_error(run(data_dir, "saf", "status"), 3)
    assert ids[2] in message


def test_diag_checks_the_journal(used: tuple[Path, list[str]]) -> None:
    data_dir, ids = used
    good = run(data_dir, "diag", "--json")
    journal_tests = [t for t in json.loads(good.stdout)["tests"] if t["name"].startswith("journal")]
    assert journal_tests and all(t["status"] == "pass" for t in journal_tests), journal_tests
    _sql(data_dir, f"UPDATE transactions SET amount=1 WHERE txn_id='{ids[0]}'")
    bad = run(data_dir, "diag", "--json")
    assert bad.returncode == 1
    failed = [t for t in json.loads(bad.stdout)["tests"] if t["name"].startswith("journal")]
    assert any(t["status"] == "fail" and ids[0] in t["reason"] for t in failed), failed


def test_a_schema_2_journal_is_upgraded_and_sealed(tmp_path: Path, used: tuple[Path, list[str]]) -> None:
    """A data directory of the version before the seals opens, and its rows are sealed from then on."""
    data_dir, ids = used
    copy = tmp_path / "old"
    shutil.copytree(data_dir, copy)
    conn = sqlite3.connect(str(copy / "journal.sqlite"))
    try:
        for table in ("transactions", "reversals", "batches"):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN seal")
        conn.execute("DROP TABLE receipts")
        conn.execute("DROP INDEX transactions_original")
        conn.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
        conn.commit()
    finally:
        conn.close()
    verify = run(copy, "journal", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    _sql(copy, f"UPDATE transactions SET amount=1 WHERE txn_id='{ids[0]}'")
    assert run(copy, "journal", "verify").returncode == 1
