"""One process at a time makes payments on a data directory; others may read beside it.

Before: any second posterm command on the same data directory ran start-up
recovery, which took a running application's payment in progress for one a
crash left (a sale waiting for its host's answer became reversal_pending).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from terminal import registry
from terminal.bootstrap import open_terminal
from terminal.lifecycle import State

POSTERM = str(Path(sys.executable).with_name("posterm"))
EUR = 978


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POSTERM_MASTER_KEY", "POSTERM_DATA_DIR")}
    return subprocess.run(
        [POSTERM, *args, "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=60, env=env, check=False
    )


class _SlowHost:
    """The in-process host, answering an authorisation only when released (a payment in progress)."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.release = threading.Event()
        self.asked = threading.Event()

    def authorise(self, request: object) -> object:
        self.asked.set()
        self.release.wait(30)
        return self.real.authorise(request)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def test_a_second_command_does_not_recover_a_payment_in_progress(tmp_path: Path) -> None:
    data_dir = tmp_path / "terminal"
    terminal = open_terminal(data_dir, reader_url="sim:card=visa-qvsdc-online", host="memory")
    slow = _SlowHost(terminal.host)
    terminal.host = slow  # type: ignore[assignment]
    results = []
    paying = threading.Thread(target=lambda: results.append(terminal.sale(2000, EUR)))
    paying.start()
    try:
        assert slow.asked.wait(20)  # the sale is authorising: journalled, waiting for the host
        # readers run beside it, without touching it
        status = run(data_dir, "saf", "status", "--json")
        assert status.returncode == 0, status.stderr
        listed = run(data_dir, "journal", "list", "--json")
        assert listed.returncode == 0 and json.loads(listed.stdout)["transactions"][0]["state"] == "authorising"
        # a command that would pay or recover is refused, and says why
        sale = run(data_dir, "sale", "1.00")
        assert sale.returncode == 3 and "in use by process" in sale.stderr, sale.stderr
        assert str(os.getpid()) in sale.stderr
        forward = run(data_dir, "saf", "forward")
        assert forward.returncode == 3, forward.stderr
    finally:
        slow.release.set()
        paying.join(30)
    assert results and results[0].state is State.APPROVED  # never turned into a reversal
    terminal.close()
    # once the application closed, any command may pay again
    assert run(data_dir, "sale", "1.00", "--card", "visa-qvsdc-online").returncode == 0


def test_the_lock_goes_with_the_process(tmp_path: Path) -> None:
    """A process killed while it held the terminal leaves no lock behind (the system releases it)."""
    data_dir = tmp_path / "terminal"
    code = (
        "import sys, time; from terminal.bootstrap import open_terminal; "
        f"t = open_terminal({str(data_dir)!r}, host='none'); print('open', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "open"
    assert run(data_dir, "sale", "1.00", "--card", "visa-qvsdc-offline").returncode == 3
    child.kill()
    child.wait(10)
    time.sleep(0.1)
    assert run(data_dir, "sale", "1.00", "--card", "visa-qvsdc-offline").returncode == 0
    assert registry.open_reader("sim:card=visa-qvsdc-offline") is not None
