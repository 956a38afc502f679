"""The load generator over the real host process: many terminals, a fault on the way, the books checked.

``posterm host load`` starts a real host (uvicorn, TLS 1.3, mutual TLS, its
SQLite store) in a private folder, enrols every terminal with its own
certificate, pays with real ARQCs and TCs from simulated cards, switches the
host down and up again in the middle of the run, then settles every batch and
compares the terminals' books with the host's records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

POSTERM = str(Path(sys.executable).with_name("posterm"))


def _load(tmp_path: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TMPDIR=str(tmp_path))
    return subprocess.run(
        [POSTERM, "host", "load", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def test_fifty_terminals_with_the_host_down_and_up_settle_and_the_books_match(tmp_path: Path) -> None:
    done = _load(
        tmp_path, "--terminals", "50", "--duration", "10", "--think", "0.5", "--faults", "down@4+2", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["ok"] is True
    settlement = report["settlement"]
    assert settlement["batches"] == 50 and settlement["closed_in_balance"] == 50
    books = report["books"]
    assert books["matched"] is True
    assert books["counted_by_terminals"] == books["counted_by_host"] > 0
    assert books["missing_at_host"] == books["unknown_to_terminals"] == books["duplicated"] == []
    # the fault was switched while the terminals paid, and they lived through it the terminal's way
    assert [f["in_force"] for f in report["faults"]] == ["down@4+2", "none"]
    outcomes = report["outcomes"]
    assert outcomes.get("sale stored offline (deferred)", 0) > 0
    assert outcomes.get("deferred_authorisation accepted", 0) > 0
    assert outcomes.get("sale approved", 0) > 0 and outcomes.get("offline_approval accepted", 0) > 0
    assert any(kind.startswith("authorisation: ") for kind in report["errors"])
    assert report["latency"]["authorisation"]["count"] > 0
    assert report["cpu_seconds"]["client"] > 0 and report["tls"]["handshakes"] >= 50


def test_two_host_workers_on_postgresql_settle_and_the_books_match(tmp_path: Path, postgres_url: str) -> None:
    done = _load(
        tmp_path, "--terminals", "30", "--duration", "8", "--think", "0.4", "--faults", "down@3+2",
        "--workers", "2", "--store", postgres_url, "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["books"]["matched"] is True and report["settlement"]["closed_in_balance"] == 30
    assert report["books"]["counted_by_host"] > 0
    assert report["outcomes"].get("deferred_authorisation accepted", 0) > 0


def test_every_fault_kind_and_one_client_address(tmp_path: Path) -> None:
    """Drop after the request and 503 make lost answers: retried with the same key, then reversed."""
    done = _load(
        tmp_path, "--terminals", "20", "--duration", "8", "--think", "0.3", "--source-addresses", "1",
        "--faults", "drop@1+2,error=503@4+2,slow=200@6.5+1", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["books"]["matched"] is True and report["settlement"]["closed_in_balance"] == 20
    errors = report["errors"]
    assert errors.get("authorisation: HTTP 503", 0) > 0
    assert errors.get("authorisation: closed_without_answer", 0) > 0
    assert report["outcomes"].get("sale no answer: reversal pending", 0) > 0
    assert any("from 1 address(es)" in note and "allow 20 each" in note for note in report["notes"])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--faults", "down@x"], "fault step"),
        (["--faults", "slow@1+1"], "slow needs a value"),
        (["--terminals", "0"], "above 0"),
    ],
)
def test_unusable_options_are_one_line_and_status_2(tmp_path: Path, args: list[str], words: str) -> None:
    done = _load(tmp_path, *args, timeout=60)
    assert done.returncode == 2
    assert words in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_reader_that_goes_away_ends_the_command_without_an_error(tmp_path: Path) -> None:
    """``posterm host load | head``: the report's reader is gone; no error about the host's data directory."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    process = subprocess.Popen(
        [POSTERM, "host", "load", "--terminals", "3", "--duration", "1", "--faults", "none"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the report is written
    errors = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0
    assert "error" not in errors and "Traceback" not in errors
