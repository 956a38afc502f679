"""``posterm demo``: the README's main job, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_demo_day_runs_every_step_as_expected(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "terminal.cli", "demo", "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every step had the expected result" in proc.stdout
    assert "FAIL" not in proc.stdout
    receipts = sorted((out / "receipts").glob("*.txt"))
    assert len(receipts) >= 10
    text = "\n".join(p.read_text() for p in receipts)
    assert "OFFLINE" in text and "DEFERRED" in text and "APPROVAL CODE" in text
    # digital currency: a hard wallet's payment taken offline and forwarded later, a clone caught at sync
    assert "DIGITAL CNY" in text and "D1A0********0001" in text and "12.34 CNY" in text
    assert "the second terminal syncs: the operator cat" in proc.stdout  # (the table cuts long steps)
    # QR: a code the terminal shows, paid by the simulated app; a wallet code through the pty scanner
    assert "QR: the terminal shows a code, the wallet a" in proc.stdout and "qr_paid, qr-simpay" in proc.stdout
    assert "QR: a wallet's payment code through the pty" in proc.stdout and "qr_paid, qr-simchat" in proc.stdout
    # a second run empties what the first made, and refuses a directory it did not make
    assert (
        subprocess.run(
            [sys.executable, "-m", "terminal.cli", "demo", "--out", str(out), "--quiet"],
            capture_output=True,
            timeout=180,
            check=False,
        ).returncode
        == 0
    )
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "precious.txt").write_text("keep me")
    refused = subprocess.run(
        [sys.executable, "-m", "terminal.cli", "demo", "--out", str(stranger), "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0 and "not made by the demo" in refused.stderr
    assert (stranger / "precious.txt").read_text() == "keep me"
