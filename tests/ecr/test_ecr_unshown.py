"""A register's payment whose outcome it never fetched, across a SIGKILL of ``posterm ecr serve``.

The server takes the payment to its end (approved, in the journal) and is
killed before the register asked for the result, as when it dies between the
commit and the answer.  The next server says so on standard error, lists the
payment in ``GET /v1/status`` (``unshown``, with the register's key and the
line for its cashier), and still finds it by the register's key; once the
register has fetched it, it is shown, and no later start lists it again.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from ui.ecr.schema import first_error

POSTERM = [sys.executable, "-m", "terminal.cli"]


class Served:
    """A ``posterm ecr serve`` process on a data directory, and the address it announced."""

    def __init__(self, data_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("POSTERM_MASTER_KEY", "POSTERM_DATA_DIR")}
        self.process = subprocess.Popen(
            [*POSTERM, "ecr", "serve", "--port", "0", "--json", "--data-dir", str(data_dir),
             "--card", "visa-qvsdc-online", "--host-link", "memory"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, self.process.stderr.read() if self.process.stderr else "no output"
        self.url = str(json.loads(line)["url"])

    def status(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/v1/status", timeout=30)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert first_error("Status", body) is None, first_error("Status", body)
        return body

    def kill(self) -> str:
        """SIGKILL; what it wrote on standard error."""
        self.process.send_signal(signal.SIGKILL)
        _, err = self.process.communicate(timeout=30)
        return err

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, err
        return err


def _state(data_dir: Path, key: str) -> str | None:
    db = sqlite3.connect(f"file:{data_dir / 'journal.sqlite'}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute(
            "SELECT t.state FROM requests r JOIN transactions t ON t.txn_id = r.txn_id WHERE r.request_key=?", (key,)
        ).fetchone()
        return None if row is None else str(row[0])
    finally:
        db.close()


def _until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + 60  # a bound for a stuck server, not a timing of the test
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_payment_the_register_never_fetched_is_listed_after_a_crash_until_it_fetches_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = Served(data_dir)
    try:
        body = {"kind": "sale", "amount": 1234, "currency": "EUR", "reference": "POS-7"}
        started = httpx.post(f"{first.url}/v1/payments", json=body, headers={"Idempotency-Key": "pos7-1"}, timeout=30)
        assert started.status_code == 202, started.text
        _until(lambda: _state(data_dir, "pos7-1") == "approved", "the payment was never approved")
        listed = first.status()["unshown"]  # not fetched yet: listed while the server runs too
        assert [u["id"] for u in listed] == ["pos7-1"]
    finally:
        first.kill()

    second = Served(data_dir)
    try:
        status = second.status()
        assert status["unshown_count"] == 1
        (item,) = status["unshown"]
        assert item["id"] == "pos7-1" and item["request_key"] == "pos7-1" and item["reference"] == "POS-7"
        assert item["approved"] and item["outcome"] == "approved" and item["amount"] == 1234
        assert item["text"].startswith("last payment 12.34 EUR approved at ")
        assert "was not shown: GET /v1/payments/pos7-1 shows it" in item["text"]

        # Found by the register's key after the restart; fetching it is what shows it.
        payment = httpx.get(f"{second.url}/v1/payments/pos7-1", timeout=30).json()
        assert payment["status"] == "approved" and payment["txn_id"] == item["txn_id"]
        _until(lambda: second.status()["unshown_count"] == 0, "the fetched payment stayed unshown")
    finally:
        err = second.stop()
    assert err.startswith("posterm ecr: note: last payment 12.34 EUR approved at "), err
    assert "the register finds it at GET /v1/payments/pos7-1" in err

    third = Served(data_dir)
    try:
        assert third.status()["unshown"] == []
    finally:
        assert third.stop() == ""


def test_the_final_event_of_a_stream_and_a_replayed_start_count_as_shown(tmp_path: Path) -> None:
    """Every way a register gets a final outcome marks it: the event stream's last event, a replayed POST."""
    data_dir = tmp_path / "data"
    served = Served(data_dir)
    try:
        for key in ("stream-1", "replay-1"):
            body = {"kind": "sale", "amount": 500, "currency": "EUR"}
            answer = httpx.post(f"{served.url}/v1/payments", json=body, headers={"Idempotency-Key": key}, timeout=30)
            assert answer.status_code == 202
            _until(lambda key=key: _state(data_dir, key) == "approved", "not approved")  # type: ignore[misc]
            if key == "stream-1":
                with httpx.stream("GET", f"{served.url}/v1/payments/{key}/events", timeout=30) as events:
                    text = "".join(events.iter_text())
                assert '"final": true' in text
            else:
                again = httpx.post(f"{served.url}/v1/payments", json=body, headers={"Idempotency-Key": key})
                assert again.status_code == 200 and again.json()["final"]
            _until(lambda: served.status()["unshown_count"] == 0, f"{key} stayed unshown")
    finally:
        served.stop()
