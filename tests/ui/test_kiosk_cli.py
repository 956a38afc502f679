"""``posterm ui --kiosk`` serves the ECR interface in its own process (the kiosk's software starts payments
through it): on 8780 by default, ``--ecr-port`` another, ``--no-ecr`` none; a port in use is exit status 3.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from ui.cli import FIRST_FRAME_ENV


def _ui(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **{FIRST_FRAME_ENV: "1"})  # the application ends once its first frame is drawn
    return subprocess.run(
        [sys.executable, "-m", "terminal.cli", "ui", "--offscreen", "--data-dir", str(tmp_path / "d"),
         "--host", "memory", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip


def test_the_kiosk_serves_the_ecr_interface(tmp_path: Path) -> None:
    done = _ui(tmp_path, "--kiosk", "--ecr-port", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ECR interface: http://127.0.0.1:") and "first frame" in done.stdout


def test_a_port_in_use_and_options_that_do_not_fit(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _ui(tmp_path, "--kiosk", "--ecr-port", str(port))
    assert done.returncode == 3 and f"port {port} on 127.0.0.1 is in use" in done.stderr
    assert "--ecr-port" in done.stderr
    both = _ui(tmp_path, "--kiosk", "--ecr-port", "0", "--no-ecr")
    assert both.returncode == 2 and "not both" in both.stderr
    bad = _ui(tmp_path, "--kiosk", "--ecr-port", "http")
    assert bad.returncode == 2 and "not a port number" in bad.stderr


def test_without_it_the_kiosk_still_starts(tmp_path: Path) -> None:
    done = _ui(tmp_path, "--kiosk", "--no-ecr")
    assert done.returncode == 0, done.stderr
    assert "ECR interface" not in done.stdout and "first frame" in done.stdout
