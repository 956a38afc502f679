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


def test_a_sale_given_the_screen_pad_on_the_command_line_is_refused_before_any_card_is_read(tmp_path: Path) -> None:
    """``posterm sale --pin-pad screen:``: one line, exit 2, and no payment journalled (it used to read the card)."""
    for command in (["sale", "80.00"], ["refund", "5.00", "--unreferenced"]):
        done = posterm(*command, "--card", "visa-online-pin", "--pin-pad", "screen:", "--data-dir", str(tmp_path))
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert done.stderr.strip().splitlines() == [
            "posterm: error: --pin-pad 'screen:': the on-screen PIN pad exists only inside posterm ui; give another "
            "PIN pad (e.g. sim:pin=1234, serial:...?protocol=posterm-pinpad) or none"
        ]
        assert "present card" not in done.stdout + done.stderr
    journal = posterm("journal", "list", "--data-dir", str(tmp_path), "--json")
    assert journal.returncode in (0, 3) and "sale" not in journal.stdout
