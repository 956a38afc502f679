"""The kiosk comes back by itself: the real application, under the supervisor, killed in the middle of a payment.

The kiosk's software starts a sale through the ECR interface; the
application is waiting for the card when it is killed (SIGKILL).  The
supervisor starts it again; its first step is the terminal's recovery; the
ECR interface answers again, and nothing was charged.  SIGTERM stops both.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

POSTERM = str(Path(sys.executable).with_name("posterm"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ecr(port: int, method: str, path: str, body: dict[str, Any] | None = None, key: str | None = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **({"Idempotency-Key": key} if key else {})},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _wait_status(port: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status: dict[str, Any] = _ecr(port, "GET", "/v1/status")
            return status
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _application_pid(supervisor: int) -> int:
    """The kiosk application's process: the supervisor's child."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_the_kiosk_killed_mid_payment_comes_back_recovered(tmp_path: Path) -> None:
    data_dir = tmp_path / "kiosk"
    data_dir.mkdir()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "POSTERM_DATA_DIR")}
    supervisor = subprocess.Popen(
        [
            POSTERM, "kiosk", "supervise", "--data-dir", str(data_dir), "--",
            POSTERM, "ui", "--kiosk", "--offscreen", "--data-dir", str(data_dir), "--ecr-port", str(port),
            "--reader", "sim:card=visa-qvsdc-online?present-after=30", "--host", "memory",
        ],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_status(port, 60)
        first = _application_pid(supervisor.pid)
        started = _ecr(port, "POST", "/v1/payments", {"kind": "sale", "amount": 1250, "currency": "EUR"}, "kiosk-1")
        assert started["status"] in ("starting", "waiting_for_card")
        deadline = time.monotonic() + 20
        while _ecr(port, "GET", "/v1/payments/kiosk-1")["status"] != "waiting_for_card":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        os.kill(first, signal.SIGKILL)  # the application dies in the middle of the payment
        deadline = time.monotonic() + 60
        while True:  # the supervisor starts it again
            try:
                second = _application_pid(supervisor.pid)
                if second != first:
                    break
            except (AssertionError, FileNotFoundError):
                pass
            assert time.monotonic() < deadline, "the kiosk was not started again"
            time.sleep(0.2)
        status = _wait_status(port, 60)
        assert status["busy"] is False or status.get("running") is None
        log = (data_dir / "logs" / "posterm.log").read_text(encoding="utf-8")
        assert "restart" in log.lower()
        # nothing was charged, nothing is left unfinished: the journal says so
        listed = subprocess.run(
            [POSTERM, "journal", "list", "--json", "--data-dir", str(data_dir)],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        states = [t["state"] for t in json.loads(listed.stdout)["transactions"]]
        assert "approved" not in states and "authorising" not in states and "started" not in states
    finally:
        os.killpg(supervisor.pid, signal.SIGTERM)
        supervisor.wait(30)
    assert supervisor.returncode in (0, -signal.SIGTERM)
