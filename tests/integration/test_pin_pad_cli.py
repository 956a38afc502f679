"""``posterm devices set pin-pad URL`` and ``posterm sim pinpad``, as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

POSTERM = str(Path(sys.executable).with_name("posterm"))


def posterm(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([POSTERM, *args], capture_output=True, text=True, timeout=60, env=env, check=False)


def test_devices_set_pin_pad_checks_the_url_and_shows_the_pin_masked(tmp_path: Path) -> None:
    done = posterm("devices", "set", "pin-pad", "sim:pin=86429753", "--data-dir", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["url"] == "sim:pin=****" and shown["check"]["status"] == "ok"
    assert "86429753" not in done.stdout + done.stderr
    listing = posterm("devices", "--data-dir", str(tmp_path), "--json")
    assert json.loads(listing.stdout)["configured"]["pin-pad"]["url"] == "sim:pin=****"
    assert "86429753" not in listing.stdout + listing.stderr
    assert posterm("devices", "set", "pin-pad", "none", "--data-dir", str(tmp_path)).stdout.strip() == "pin-pad: none"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sim:pin=12", "4 to 12 digits"),
        ("sim:card=visa-qvsdc-online", "names a reader, not a pin-pad"),
        ("serial:/dev/null?protocol=other", "protocol=posterm-pinpad"),
    ],
)
def test_devices_set_pin_pad_refuses_what_is_no_pin_pad_in_one_line(tmp_path: Path, url: str, words: str) -> None:
    done = posterm("devices", "set", "pin-pad", url, "--data-dir", str(tmp_path))
    assert done.returncode == 2
    assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_sim_pinpad_refuses_a_bad_pin_in_one_line() -> None:
    done = posterm("sim", "pinpad", "--pin", "12")
    assert done.returncode == 2 and "4 to 12 digits" in done.stderr and "Traceback" not in done.stderr
