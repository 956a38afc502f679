"""The on-screen PIN pad from the command line, as real processes: configured anywhere, drawn only by posterm ui."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from terminal.soft_pinpad import KEYS_FILE, SoftwarePinPad

POSTERM = str(Path(sys.executable).with_name("posterm"))


def posterm(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([POSTERM, *args], capture_output=True, text=True, timeout=60, env=env, check=False)


def test_devices_set_pin_pad_screen_says_where_it_is_drawn(tmp_path: Path) -> None:
    done = posterm("devices", "set", "pin-pad", "screen:", "--data-dir", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["url"] == "screen:" and shown["check"]["status"] == "ok"
    assert shown["check"]["reason"] == "drawn by posterm ui only (not opened here)"
    listing = posterm("devices", "--data-dir", str(tmp_path))
    assert (
        listing.returncode == 0
        and "drawn by posterm ui only" in listing.stdout
        and "screen (pin-pad)" in listing.stdout
    )


def test_a_bad_option_is_refused_in_one_line(tmp_path: Path) -> None:
    done = posterm("devices", "set", "pin-pad", "screen:?format=1", "--data-dir", str(tmp_path))
    assert done.returncode == 2 and "format=4|0" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_sim_pinpad_key_loads_the_simulators_keys(tmp_path: Path) -> None:
    done = posterm("sim", "pinpad-key", "--data-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert str(tmp_path / KEYS_FILE) in done.stdout
    assert SoftwarePinPad(tmp_path).counters() == {"aes": 0, "tdes": 0}
    assert (tmp_path / KEYS_FILE).stat().st_mode & 0o077 == 0
