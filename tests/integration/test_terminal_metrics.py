"""``posterm diag --json`` carries the terminal's figures (``metrics``), from real commands on a real data directory.

The queue as payments left it (its depth, the oldest's age, the amount per
currency, the limits), the reversals waiting, the host's last contact and
last answer, each device as the diagnostics found it (a virtual network
printer up, then switched off), the certificate's days left as the
enrolment record says, and the payments nobody was shown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from simulator.net_printer import VirtualNetworkPrinter
from terminal.bootstrap import ENROLMENT_FILE
from terminal.metrics import certificate_expiry

POSTERM = str(Path(sys.executable).with_name("posterm"))
ROOT = Path(__file__).resolve().parents[2]


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POSTERM_MASTER_KEY", "POSTERM_DATA_DIR")}
    return subprocess.run(
        [POSTERM, *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120, env=env, check=False, cwd=ROOT,
    )  # fmt: skip


def metrics(data_dir: Path, *options: str) -> dict[str, Any]:
    done = run(data_dir, "diag", "--json", "--no-print", "--host", "memory", "--card-timeout", "2", *options)
    assert done.returncode in (0, 1), done.stderr
    found: dict[str, Any] = json.loads(done.stdout)["metrics"]
    return found


def test_diag_json_has_the_queue_the_host_and_the_devices(tmp_path: Path) -> None:
    data_dir = tmp_path / "terminal"
    assert run(data_dir, "sale", "20.00", "--card", "visa-qvsdc-online", "--host", "memory").returncode == 0
    for amount in ("12.34", "5.00"):
        offline = run(data_dir, "sale", amount, "--card", "visa-qvsdc-offline", "--offline-behavior", "force_offline")
        assert offline.returncode == 0, offline.stderr

    with VirtualNetworkPrinter() as printer:
        m = metrics(data_dir, "--reader", "sim:card=visa-qvsdc-online", "--printer", printer.url, "--scanner", "none")
    assert m["saf"]["depth"] == 2 and m["saf"]["amounts"] == {"EUR": {"count": 2, "amount": 1734}}
    assert m["saf"]["oldest_age_seconds"] > 0 and m["saf"]["max_depth"] > 0 and m["saf"]["max_age_seconds"] > 0
    assert m["reversals_pending"] == 0 and m["payments_unshown"] == 0
    contact = m["host"]["last_contact"]
    assert contact["result"] == "answered" and contact["what"] == "authorisation"
    assert m["host"]["last_answer"] == contact and m["host"]["seconds_since_answer"] >= 0
    assert m["devices"]["reader"] == {
        "url": "sim:card=visa-qvsdc-online", "state": "up", "reason": m["devices"]["reader"]["reason"]
    }  # fmt: skip
    assert m["devices"]["printer"]["state"] == "up" and m["devices"]["printer"]["url"] == printer.url
    assert m["devices"]["scanner"]["state"] == "not_configured"
    assert m["certificate"] == {"not_after": None, "days_left": None}  # the memory host: no certificate

    switched_off = metrics(data_dir, "--reader", "none", "--printer", printer.url)  # its port closed now
    assert switched_off["devices"]["printer"]["state"] == "down"

    forwarded = run(data_dir, "saf", "forward", "--host", "memory")
    assert forwarded.returncode == 0, forwarded.stderr
    after = metrics(data_dir, "--reader", "none")
    assert after["saf"]["depth"] == 0 and after["saf"]["oldest_age_seconds"] is None
    assert after["host"]["last_contact"]["what"] == "advice" and after["host"]["last_contact"]["result"] == "answered"


def test_the_certificate_days_left_come_from_the_enrolment_record(tmp_path: Path) -> None:
    data_dir = tmp_path / "terminal"
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert certificate_expiry(data_dir, now) == (None, None)
    record = data_dir / ENROLMENT_FILE
    record.parent.mkdir(parents=True)
    not_after = (now + timedelta(days=29, hours=12)).isoformat(timespec="seconds")
    record.write_text(json.dumps({"certificate_not_after": not_after}))
    assert certificate_expiry(data_dir, now) == (not_after, 29.5)
    record.write_text("{not json")
    assert certificate_expiry(data_dir, now) == (None, None)
