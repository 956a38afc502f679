"""``posterm pin set|status`` as a technician runs them: the console script, the PIN piped in or typed on a terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

POSTERM = str(Path(sys.executable).with_name("posterm"))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POSTERM_MASTER_KEY", "POSTERM_DATA_DIR")}
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    return env


def pin(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [POSTERM, "pin", *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=False,
    )


def one_error(proc: subprocess.CompletedProcess[str], status: int) -> str:
    assert proc.returncode == status, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("posterm: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_set_from_a_pipe_then_status(tmp_path: Path) -> None:
    data = tmp_path / "d"
    fresh = pin(data, "status", "--json")
    assert fresh.returncode == 0, fresh.stderr
    assert {role: s["set"] for role, s in json.loads(fresh.stdout)["pins"].items()} == {
        "supervisor": False,
        "technician": False,
    }
    done = pin(data, "set", "technician", stdin="482613\n")
    assert (done.returncode, done.stdout, done.stderr) == (0, "technician PIN set\n", "")
    status = pin(data, "status")
    assert status.returncode == 0 and status.stderr == ""
    lines = status.stdout.splitlines()
    assert lines[0].split() == ["supervisor", "not", "set"]
    assert lines[1].startswith("technician  set ") and lines[1].endswith(", not locked")
    shown = pin(data, "status", "--json")
    tech = json.loads(shown.stdout)["pins"]["technician"]
    assert tech["set"] and not tech["locked"] and tech["tries_left"] == 5
    everything = "".join(p.read_text(errors="replace") for p in data.rglob("*") if p.is_file())
    assert "482613" not in everything and "482613" not in shown.stdout + status.stdout
    assert "posterm pin set: exit status 0" in (data / "logs" / "posterm.log").read_text()
    assert '"hash"' not in shown.stdout and '"salt"' not in shown.stdout


def test_status_shows_a_lock_made_by_wrong_tries(tmp_path: Path) -> None:
    from terminal.pins import PinLocked, PinStore

    data = tmp_path / "d"
    assert pin(data, "set", "supervisor", stdin="2580").returncode == 0  # no newline at the end: fine too
    store = PinStore(data)
    for _ in range(4):
        assert store.check("supervisor", "1111") is False
    with pytest.raises(PinLocked):
        store.check("supervisor", "1111")
    status = pin(data, "status")
    assert status.stdout.splitlines()[0].endswith("locked for 300 s (after 5 wrong tries)")
    tech = json.loads(pin(data, "status", "--json").stdout)["pins"]["supervisor"]
    assert (tech["locked"], tech["locked_for_seconds"], tech["lockouts"]) == (True, 300, 1)
    assert pin(data, "set", "supervisor", stdin="135790\n").returncode == 0  # the way to lift it early
    assert json.loads(pin(data, "status", "--json").stdout)["pins"]["supervisor"]["locked"] is False


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (("set", "technician"), "1234\n", "PIN refused: a straight run of digits"),
        (("set", "technician"), "0000\n", "PIN refused: all the same digit"),
        (("set", "technician"), "12ab\n", "PIN refused: a PIN is 4 to 12 digits"),
        (("set", "technician"), "", "no PIN given on standard input"),
        (("set", "technician"), "\n", "no PIN given on standard input"),
        (("set", "technician"), "9" * 100, "too long to be a PIN"),
        (("set", "manager"), "482613\n", "argument role: invalid choice: 'manager'"),
        (("set",), "482613\n", "the following arguments are required: role"),
        (("unset", "technician"), "", "invalid choice: 'unset'"),
    ],
)
def test_unusable_input_is_one_line_and_status_2(tmp_path: Path, args: tuple[str, ...], stdin: str, says: str) -> None:
    data = tmp_path / "d"
    line = one_error(pin(data, *args, stdin=stdin), 2)
    assert says in line, line
    assert "1234" not in line.replace("such as 1234", "")
    assert not (data / "pins" / "pins.json").exists()


def test_json_errors_too(tmp_path: Path) -> None:
    proc = pin(tmp_path / "d", "set", "technician", "--json", stdin="7777\n")
    line = one_error(proc, 2)
    assert json.loads(proc.stdout) == {"error": line.removeprefix("posterm: error: "), "exit_status": 2}


def test_a_pin_file_that_cannot_be_used_is_unavailable_status_3(tmp_path: Path) -> None:
    data = tmp_path / "d"
    assert pin(data, "set", "technician", stdin="482613\n").returncode == 0
    path = data / "pins" / "pins.json"
    path.write_text("{damaged")
    line = one_error(pin(data, "status"), 3)
    assert "cannot be used (not JSON); remove it and set the PINs again" in line
    assert "cannot be used" in one_error(pin(data, "set", "supervisor", stdin="135790\n"), 3)
    path.write_text("{}")
    os.chmod(path, 0o640)
    assert "readable by others; fix with `chmod 600" in one_error(pin(data, "status"), 3)


def test_a_data_dir_that_is_a_file_is_status_2(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    assert "is a file, not a folder" in one_error(pin(tmp_path / "f", "status"), 2)


# ------------------------------------------------------------------------ typed on a terminal


def _run_on_a_terminal(data: Path, answers: list[str]) -> tuple[int, str]:
    """``posterm pin set technician`` with a pseudo-terminal as its standard input and output."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [POSTERM, "pin", "set", "technician", "--data-dir", str(data)],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=_env(),
        start_new_session=True,
    )
    os.close(follower)
    seen = b""
    pending = list(answers)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(leader, 1024)
                except OSError:  # the other side closed: the command ended
                    break
                if not chunk:
                    break
                seen += chunk
                if pending and seen.rstrip().endswith(b":"):
                    os.write(leader, pending.pop(0).encode() + b"\n")
                    seen += b"<answered>"
            elif proc.poll() is not None:
                break
        status = proc.wait(timeout=30)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return status, seen.decode(errors="replace")


def test_typed_twice_without_echo_on_a_terminal(tmp_path: Path) -> None:
    data = tmp_path / "d"
    status, shown = _run_on_a_terminal(data, ["482613", "482613"])
    assert status == 0, shown
    assert "New technician PIN:" in shown and "The technician PIN again:" in shown
    assert "technician PIN set" in shown
    assert "482613" not in shown  # not echoed
    from terminal.pins import PinStore

    assert PinStore(data).check("technician", "482613")


def test_two_different_pins_typed_change_nothing(tmp_path: Path) -> None:
    data = tmp_path / "d"
    status, shown = _run_on_a_terminal(data, ["482613", "482614"])
    assert status == 2, shown
    assert "posterm: error: the two PINs typed differ; nothing was changed" in shown
    assert "48261" not in shown
    assert not (data / "pins" / "pins.json").exists()
