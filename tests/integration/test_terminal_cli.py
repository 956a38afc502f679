"""``posterm sale|refund|void|journal|saf|receipt|report|settle`` as a user runs them (the console script)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

POSTERM = str(Path(sys.executable).with_name("posterm"))
PROFILES = Path(__file__).resolve().parents[2] / "simulator" / "profiles"
ALL_PANS = [json.loads(p.read_text()).get("pan") or "" for p in PROFILES.glob("*.json")]


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POSTERM_MASTER_KEY", "POSTERM_DATA_DIR")}
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    return subprocess.run(
        [POSTERM, *args, "--data-dir", str(data_dir)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def ok_json(data_dir: Path, *args: str) -> dict[str, Any]:
    proc = run(data_dir, *args, "--json")
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    assert proc.stderr == "", proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def declined_json(data_dir: Path, *args: str) -> dict[str, Any]:
    """A payment that was declined: exit status 1, the result on stdout."""
    proc = run(data_dir, *args, "--json")
    assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
    out: dict[str, Any] = json.loads(proc.stdout)
    assert not out["approved"]
    return out


def one_line_error(proc: subprocess.CompletedProcess[str], *, code: int = 2) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("posterm: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    return lines[0]


def no_pan(text: str) -> None:
    for pan in ALL_PANS:
        if pan:
            assert pan not in text


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_sales_queue_settle_and_verify(data_dir: Path) -> None:
    offline = ok_json(data_dir, "sale", "12.34", "--card", "visa-qvsdc-offline")
    assert offline["state"] == "offline_approved" and offline["approved"] and offline["offline"]
    assert offline["amount"] == 1234 and offline["currency"] == 978
    online = ok_json(data_dir, "sale", "20.00")
    assert online["state"] == "approved" and online["approval_code"] and not online["offline"]
    deferred = ok_json(data_dir, "sale", "30.00", "--host", "none")
    assert deferred["state"] == "deferred_approved" and deferred["deferred"] and deferred["approved"]
    for result in (offline, online, deferred):
        assert result["masked_pan"].count("*") >= 6
        no_pan(json.dumps(result))

    status = ok_json(data_dir, "saf", "status")
    assert status["queued"] == 2 and status["reversals_queued"] == 0
    assert status["totals"] == {"978": {"count": 2, "amount": 4234}}
    assert status["declined_after_forwarding"] == []
    text = run(data_dir, "saf", "status")
    assert text.returncode == 0 and "2 payment(s) queued" in text.stdout

    refused = one_line_error(run(data_dir, "settle"), code=1)
    assert "settlement refused" in refused and "2 payment(s)" in refused and "saf forward" in refused

    forwarded = ok_json(data_dir, "saf", "forward")
    assert forwarded["accepted"] == 2 and forwarded["stopped_by"] is None
    assert forwarded["status"]["queued"] == 0
    assert ok_json(data_dir, "saf", "status")["queued"] == 0

    settled = ok_json(data_dir, "settle")
    assert settled["in_balance"] is True and settled["differences"] == []
    assert settled["new_batch_id"] == settled["batch_id"] + 1
    assert sum(line["amount"] for line in settled["lines"]) == 6234

    verify = run(data_dir, "journal", "verify")
    assert verify.returncode == 0 and "chain intact" in verify.stdout, verify.stdout
    assert ok_json(data_dir, "journal", "verify")["ok"] is True

    zreport = ok_json(data_dir, "report", "z")
    assert zreport["batch_id"] == settled["batch_id"] and "Z REPORT" in zreport["text"]


def test_saf_forward_with_the_host_down_says_so(data_dir: Path) -> None:
    ok_json(data_dir, "sale", "12.34", "--card", "visa-qvsdc-offline")
    proc = run(data_dir, "saf", "forward", "--host", "none")
    assert proc.returncode == 1 and "no host link" in proc.stdout
    assert ok_json(data_dir, "saf", "status")["queued"] == 1


def _journal_ready(data_dir: Path) -> None:
    ok_json(data_dir, "sale", "20.00")
    ok_json(data_dir, "sale", "12.34", "--card", "visa-qvsdc-offline")
    assert run(data_dir, "journal", "verify").returncode == 0


def _tamper(db: Path, sql: str) -> None:
    conn = sqlite3.connect(str(db))
    try:
        # as an attacker would: the append-only triggers first
        conn.execute("DROP TRIGGER journal_no_update")
        conn.execute("DROP TRIGGER journal_no_delete")
        conn.execute(sql)
        conn.commit()
    finally:
        conn.close()


def test_an_edited_journal_row_is_detected(data_dir: Path) -> None:
    _journal_ready(data_dir)
    db = data_dir / "journal.sqlite"
    conn = sqlite3.connect(str(db))
    try:
        (data,) = conn.execute("SELECT data FROM journal WHERE seq=2").fetchone()
    finally:
        conn.close()
    i = next(k for k, ch in enumerate(data) if ch.isdigit())
    edited = data[:i] + ("9" if data[i] != "9" else "8") + data[i + 1 :]  # one byte
    _tamper(db, f"UPDATE journal SET data='{edited}' WHERE seq=2")
    proc = run(data_dir, "journal", "verify")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "FAILED" in proc.stdout and "row 2" in proc.stdout, proc.stdout
    report = json.loads(run(data_dir, "journal", "verify", "--json").stdout)
    assert report["ok"] is False and any("row 2" in p for p in report["problems"])


def test_a_deleted_last_journal_row_is_detected(data_dir: Path) -> None:
    _journal_ready(data_dir)
    db = data_dir / "journal.sqlite"
    _tamper(db, "DELETE FROM journal WHERE seq=(SELECT MAX(seq) FROM journal)")
    proc = run(data_dir, "journal", "verify")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "FAILED" in proc.stdout and "removed" in proc.stdout, proc.stdout


def test_journal_list_show_and_export(data_dir: Path, tmp_path: Path) -> None:
    sale = ok_json(data_dir, "sale", "20.00")
    ok_json(data_dir, "sale", "12.34", "--card", "visa-qvsdc-offline")
    declined_json(data_dir, "sale", "12.51")  # declined by the host
    listed = ok_json(data_dir, "journal", "list")["transactions"]
    assert sorted(t["state"] for t in listed) == ["approved", "declined", "offline_approved"]
    shown = ok_json(data_dir, "journal", "show", sale["txn_id"])
    assert [h["event"] for h in shown["journal"]] == ["go_online", "host_approved"]
    assert shown["details"]["approval_code"] == sale["approval_code"]

    out = tmp_path / "f.csv"
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    proc = run(data_dir, "journal", "export", "--since", today, "--output", str(out))
    assert proc.returncode == 0 and str(out) in proc.stdout, proc.stderr
    text = out.read_text()
    no_pan(text)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 5  # 2 + 1 + 2 journal rows
    assert {r["txn_id"] for r in rows} == {t["txn_id"] for t in listed}
    assert all("*" in r["masked_pan"] for r in rows)
    assert any(r["approval_code"] == sale["approval_code"] for r in rows)
    later = run(data_dir, "journal", "export", "--since", "2999-01-01")
    assert later.returncode == 0 and len(later.stdout.strip().splitlines()) == 1  # the header only
    no_pan(run(data_dir, "journal", "list").stdout)


def test_receipts(data_dir: Path, tmp_path: Path) -> None:
    online = ok_json(data_dir, "sale", "20.00")
    offline = ok_json(data_dir, "sale", "12.34", "--card", "visa-qvsdc-offline")
    deferred = ok_json(data_dir, "sale", "30.00", "--host", "none")
    out = tmp_path / "f.bin"
    proc = run(data_dir, "receipt", online["txn_id"], "--format", "escpos", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    payload = out.read_bytes()
    assert payload.startswith(b"\x1b@") and online["approval_code"].encode() in payload
    assert b"DUPLICATE" not in payload  # the first customer copy given out (no printer printed one)
    run(data_dir, "receipt", online["txn_id"], "--format", "escpos", "--output", str(out))
    assert b"DUPLICATE" in out.read_bytes()  # a second one is a reprint
    for pan in ALL_PANS:
        assert not pan or pan.encode() not in payload
    for result, word in ((online, online["approval_code"]), (offline, "OFFLINE"), (deferred, "DEFERRED")):
        for duplicate in (False, True):
            proc = run(data_dir, "receipt", result["txn_id"], "--copy", "merchant")
            assert proc.returncode == 0, proc.stderr
            assert word in proc.stdout and result["masked_pan"] in proc.stdout
            assert ("DUPLICATE" in proc.stdout) is duplicate
            no_pan(proc.stdout)


def test_report_x(data_dir: Path) -> None:
    ok_json(data_dir, "sale", "20.00")
    ok_json(data_dir, "sale", "12.34", "--card", "visa-qvsdc-offline")
    declined_json(data_dir, "sale", "12.51")  # declined: not counted
    report = ok_json(data_dir, "report", "x")
    assert report["kind"] == "X"
    assert [(line["kind"], line["count"], line["amount"]) for line in report["lines"]] == [("sale", 2, 3234)]
    text = run(data_dir, "report", "x")
    assert text.returncode == 0 and "X REPORT" in text.stdout and "32.34 EUR" in text.stdout
    assert "SAF PENDING" in text.stdout


def test_refund_and_void(data_dir: Path) -> None:
    sale = ok_json(data_dir, "sale", "20.00")
    refund = ok_json(data_dir, "refund", "5.00", "--original", sale["txn_id"])
    assert refund["kind"] == "refund" and refund["state"] == "approved"
    assert refund["masked_pan"] == sale["masked_pan"]
    over = one_line_error(run(data_dir, "refund", "15.01", "--original", sale["txn_id"]))
    assert "refused" in over and "5.00 EUR of it already refunded, 15.00 EUR left" in over
    unsaid = one_line_error(run(data_dir, "refund", "3.00", "--card", "mc-cda-online"))
    assert "--unreferenced" in unsaid
    with_card = ok_json(data_dir, "refund", "3.00", "--card", "mc-cda-online", "--unreferenced")
    assert with_card["kind"] == "refund" and with_card["state"] == "approved"
    assert with_card["scheme"] == "mastercard"

    other = ok_json(data_dir, "sale", "21.00")
    voided = ok_json(data_dir, "void", other["txn_id"])
    assert voided["state"] == "voided" and not voided["approved"]
    again = one_line_error(run(data_dir, "void", other["txn_id"]), code=1)
    assert "voided" in again
    offline = ok_json(data_dir, "sale", "12.34", "--card", "visa-qvsdc-offline")
    assert ok_json(data_dir, "void", offline["txn_id"])["state"] == "voided"
    assert ok_json(data_dir, "saf", "status")["queued"] == 0


@pytest.fixture(scope="module")
def used_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with one payment in it, shared by the error cases (which change nothing)."""
    directory = tmp_path_factory.mktemp("used") / "data"
    ok_json(directory, "sale", "20.00")
    return directory


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("void", "20200101000000-abcdef"), "no transaction"),
        (("receipt", "20200101000000-abcdef"), "no transaction"),
        (("journal", "show", "20200101000000-abcdef"), "no transaction"),
        (("refund", "1.00", "--original", "20200101000000-abcdef"), "no transaction"),
        (("sale", "12.345"), "12.345"),
        (("sale", "abc"), "abc"),
        (("sale", "-1"), "-1"),
        (("sale", "0"), "above zero"),
        (("sale", "1.00", "--currency", "XYZ"), "XYZ"),
        (("sale", "1.00", "--card", "no-such-card"), "no-such-card"),
        (("report", "z"), "no batch has been settled"),
    ],
)
def test_errors_are_one_line(used_dir: Path, args: tuple[str, ...], words: str) -> None:
    message = one_line_error(run(used_dir, *args))
    assert words in message


def test_a_copied_data_directory_without_its_keys_is_refused(data_dir: Path, tmp_path: Path) -> None:
    ok_json(data_dir, "sale", "20.00")
    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)
    shutil.rmtree(copy / "keys")
    message = one_line_error(run(copy, "journal", "list"), code=3)
    assert "keys" in message and ("missing" in message or "does not exist" in message)
