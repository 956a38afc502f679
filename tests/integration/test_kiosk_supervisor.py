"""``posterm kiosk supervise``: the kiosk comes back by itself, and the terminal's recovery runs first.

The supervised application is tests/integration/kiosk_child.py: it opens the
terminal as the kiosk application does and starts a sale that waits (for the
card, or for a host that never answers).  The test kills it with SIGKILL in
the middle of that payment, sees the supervisor start it again, finds that
the new run's terminal had nothing left unfinished (the payment that waited
for the host reversed by recovery), then stops the supervisor with SIGTERM
and finds both processes gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

POSTERM = str(Path(sys.executable).with_name("posterm"))
CHILD = Path(__file__).with_name("kiosk_child.py")
ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POSTERM_MASTER_KEY", "POSTERM_DATA_DIR")}
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    return env


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_for(predicate: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, killed but not yet reaped, does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Any]:
    """Start ``posterm kiosk supervise`` on a command; killed at the end whatever happened."""
    started: list[subprocess.Popen[str]] = []

    def start(*command: str, options: tuple[str, ...] = ()) -> subprocess.Popen[str]:
        argv = [POSTERM, "kiosk", "supervise", "--data-dir", str(tmp_path / "d"), *options, "--", *command]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


@pytest.mark.parametrize("waiting", ["card", "host"])
def test_a_kiosk_killed_mid_payment_comes_back_recovered(tmp_path: Path, supervisor: Any, waiting: str) -> None:
    data, report = tmp_path / "d", tmp_path / "report.jsonl"
    proc = supervisor(sys.executable, str(CHILD), str(data), waiting, str(report))

    first = _wait_for(lambda: [d for d in _lines(report) if d.get("waiting")], "the first run's payment")[0]
    assert first["waiting"] == waiting
    if waiting == "host":  # the authorisation is in the journal, the host has not answered
        time.sleep(0.2)
    os.kill(first["pid"], signal.SIGKILL)

    second = _wait_for(lambda: [d for d in _lines(report) if d.get("run") == 2], "the restarted run")[0]
    assert second["pid"] != first["pid"] and not _alive(first["pid"])
    # What the restarted application's terminal holds once open_terminal returned: recovery has run.
    states = {txn_id: state for txn_id, state, _ in second["transactions"]}
    assert not {"started", "authorising"} & set(states.values()), states
    if waiting == "host":
        ((txn_id, state, events),) = second["transactions"]
        assert events == ["go_online", "recover_authorising"] and state == "reversal_pending", (txn_id, events)
    else:
        assert second["transactions"] == []  # killed before the card was read: nothing was journalled
    _wait_for(lambda: [d for d in _lines(report) if d.get("waiting") and d["pid"] == second["pid"]], "run 2's sale")

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, (out, err)
    assert out == "" and err == ""
    assert not _alive(second["pid"])
    log = (data / "logs" / "posterm.log").read_text()
    assert f"started (pid {first['pid']})" in log and f"started (pid {second['pid']}), restart 1" in log
    assert "was killed by SIGKILL after" in log and "starting it again in 1 s (restart 1)" in log
    assert "supervision stopped by SIGTERM" in log and "posterm kiosk supervise: exit status 0" in log

    # Nothing left unfinished once both are gone (the second run was stopped while it waited for the card).
    from terminal.bootstrap import open_terminal
    from terminal.lifecycle import State

    terminal = open_terminal(data, reader_url="none", host="none", recover=False)
    try:
        assert terminal.store.list_transactions(states=[State.STARTED, State.AUTHORISING]) == []
    finally:
        terminal.close()


_STUBBORN = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(sys.argv[1], "a") as f:
        f.write(f"{os.getpid()} {helper.pid}\\n")
    time.sleep(600)
    """
)


def test_an_application_that_ignores_sigterm_is_killed_and_leaves_nothing_behind(
    tmp_path: Path, supervisor: Any
) -> None:
    pids = tmp_path / "pids"
    proc = supervisor(sys.executable, "-c", _STUBBORN, str(pids), options=("--stop-timeout", "1"))
    first = _wait_for(lambda: pids.exists() and pids.read_text().splitlines(), "the first run")[0]
    app, helper = (int(p) for p in first.split())
    os.kill(app, signal.SIGKILL)  # a crash: what it started is stopped before it runs again
    second = _wait_for(lambda: pids.read_text().splitlines()[1:], "the restarted run")[0]
    assert not _alive(helper), "the crashed application's helper process is still running"
    app2, helper2 = (int(p) for p in second.split())

    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert 0.9 < time.monotonic() - began < 10
    assert not _alive(app2) and not _alive(helper2)
    log = (tmp_path / "d" / "logs" / "posterm.log").read_text()
    assert "stopping what python" in log and "did not stop: killed" in log


def test_a_failing_command_is_restarted_with_growing_pauses_and_stops_at_once(tmp_path: Path) -> None:
    starts, log = tmp_path / "starts", tmp_path / "log"
    script = textwrap.dedent(
        f"""
        import logging, sys
        logging.basicConfig(filename={str(log)!r}, level=logging.INFO, format="%(message)s")
        from ui.supervisor import Backoff, supervise
        command = ["sh", "-c", "echo x >> {starts}; exit 3"]
        sys.exit(supervise(command, backoff=Backoff(first=0.1, longest=0.4, reset_after=60)))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=_env())
    _wait_for(lambda: starts.exists() and len(starts.read_text().split()) >= 6, "six starts", timeout=30)
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)  # Ctrl-C, here during a pause: no application to wait for
    assert proc.wait(timeout=10) == 130
    assert time.monotonic() - began < 1.0
    pauses = [line.split(" in ")[1].split()[0] for line in log.read_text().splitlines() if "starting it again" in line]
    assert pauses[:5] == ["0.1", "0.2", "0.4", "0.4", "0.4"], pauses
    assert "exited with status 3 after" in log.read_text()


def test_exit_on_success_ends_with_the_application(tmp_path: Path, supervisor: Any) -> None:
    proc = supervisor("true", options=("--exit-on-success",))
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out, err) == (0, "", "")
    assert "exited with status 0 after" in (tmp_path / "d" / "logs" / "posterm.log").read_text()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "no command to supervise"),
        (["--", "/nonexistent/kiosk"], "cannot start /nonexistent/kiosk: No such file or directory"),
        (["--stop-timeout", "0", "--", "true"], "argument --stop-timeout: '0': expected seconds between 0 and 600"),
    ],
)
def test_a_command_that_cannot_be_supervised_is_one_error_line(tmp_path: Path, argv: list[str], says: str) -> None:
    proc = subprocess.run(
        [POSTERM, "kiosk", "supervise", "--data-dir", str(tmp_path / "d"), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("posterm: error: ") and says in lines[0], lines
