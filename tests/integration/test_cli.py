"""The ``posterm emv`` commands as a user runs them (the installed console script)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from terminal.cli_emv import TRACE_NOTE

POSTERM = str(Path(sys.executable).with_name("posterm"))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
    return subprocess.run(
        [POSTERM, *args], check=False, capture_output=True, text=True, timeout=60, cwd=cwd, env=env
    )


def test_cards_lists_every_profile() -> None:
    proc = run("emv", "cards", "--json")
    assert proc.returncode == 0, proc.stderr
    names = json.loads(proc.stdout)["cards"]
    assert "visa-qvsdc-offline" in names and "mc-cda-online" in names and len(names) >= 13


def test_tap_prints_the_result_and_records_a_trace_that_replays(tmp_path: Path) -> None:
    trace = tmp_path / "trace.json"
    proc = run(
        "emv",
        "tap",
        "--card",
        "mc-cda-offline",
        "--amount",
        "12.34",
        "--currency",
        "978",
        "--record",
        str(trace),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["outcome"] == "approved"
    assert result["cryptogram_type"] == "TC"
    assert result["oda"] == {
        "method": "CDA",
        "result": "passed",
        "issuer_key_recovered": True,
        "icc_key_recovered": True,
        "failure": None,
    }
    assert result["kernel"] == 2 and result["aid"] == "A0000000041010"
    assert result["commands"][0].startswith("00A404000E325041592E5359532E4444463031")
    assert "*" in result["pan"]
    doc = json.loads(trace.read_text())
    assert doc["amount"] == 1234 and doc["currency"] == "0978"
    assert [e["command"] for e in doc["exchanges"]] == result["commands"]

    again = run("emv", "replay", str(trace))
    assert again.returncode == 0, again.stderr
    replayed = json.loads(again.stdout)
    for key in ("outcome", "cryptogram_type", "oda", "tvr", "tsi", "commands"):
        assert replayed[key] == result[key], key


def test_replay_options_override_the_trace(tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    assert (
        run(
            "emv", "tap", "--card", "visa-qvsdc-offline", "--amount", "12.34", "--record", str(trace)
        ).returncode
        == 0
    )
    proc = run(
        "emv",
        "replay",
        str(trace),
        "--amount",
        "60.00",
        "--un",
        "01020304",
        "--date",
        "260101",
        "--set",
        "9F1A=0840",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    gpo = next(c for c in result["commands"] if c.startswith("80A8"))
    # PDOL: 9F66 04 | 9F02 06 | 9F03 06 | 9F1A 02 | 95 05 | 5F2A 02 | 9A 03 | 9C 01 | 9F37 04
    data = bytes.fromhex(gpo)[7:-1]
    assert data[4:10].hex() == "000000006000"
    assert data[16:18].hex() == "0840"
    assert data[25:28].hex() == "260101"
    assert data[29:33].hex() == "01020304"


def test_a_mute_card_still_has_a_defined_outcome() -> None:
    proc = run("emv", "tap", "--card", "visa-mute", "--amount", "1.00")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["outcome"] == "try_again"
    assert "21" in [m["id"] for m in result["messages"]]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("emv", "tap", "--card", "no-such-card", "--amount", "1.00"), "no-such-card"),
        (("emv", "tap", "--card", "visa-qvsdc-offline", "--amount", "1.001"), "decimals"),
        (("emv", "tap", "--card", "visa-qvsdc-offline", "--amount", "abc"), "is not an amount"),
        (("emv", "tap", "--card", "visa-qvsdc-offline", "--amount", "1", "--currency", "XYZ"), "currency"),
        (("emv", "tap", "--card", "visa-qvsdc-offline", "--amount", "1", "--un", "zz"), "hex"),
        (("emv", "tap", "--card", "visa-qvsdc-offline", "--amount", "1", "--date", "261399"), "date"),
        (("emv", "replay", "/nonexistent/trace.json"), "not found"),
        (("emv", "replay", "TRACE", "--set", "9F1A"), "TAG=HEX"),
    ],
)
def test_unusable_input_is_one_line_and_non_zero(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    if "TRACE" in args:
        trace = tmp_path / "t.json"
        trace.write_text('{"exchanges": []}')
        args = tuple(str(trace) if a == "TRACE" else a for a in args)
    proc = run(*args)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posterm: error:"), proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_bad_hex_in_a_trace_file_is_a_clear_error(tmp_path: Path) -> None:
    trace = tmp_path / "bad.json"
    trace.write_text(json.dumps({"exchanges": [{"command": "00A4ZZ", "response": "9000"}]}))
    proc = run("emv", "replay", str(trace))
    assert proc.returncode != 0
    assert "hex" in proc.stderr and "Traceback" not in proc.stderr


def test_a_recorded_trace_is_private_from_its_creation_and_said_to_hold_card_data(tmp_path: Path) -> None:
    """Mode 0600 even under a umask that leaves files world-readable, and over an existing readable file."""
    trace = tmp_path / "trace.json"
    for _ in range(2):
        proc = subprocess.run(
            ["sh", "-c", 'umask 000 && exec "$@"', "sh", POSTERM, "emv", "tap", "--card", "visa-qvsdc-offline",
             "--amount", "1.00", "--record", str(trace)],
            check=False, capture_output=True, text=True, timeout=60,
            env=dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning"),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert stat.S_IMODE(trace.stat().st_mode) == 0o600
        assert proc.stderr.splitlines() == [TRACE_NOTE.format(path=trace)]
        assert "card data" in proc.stderr
        trace.chmod(0o644)  # the second run writes over a readable file: the new one is private again
    assert [p.name for p in tmp_path.iterdir()] == ["trace.json"]  # no temporary file left behind


def test_the_readme_replays_work_as_written_and_end_as_it_says(tmp_path: Path) -> None:
    assert run("emv", "tap", "--card", "mc-cda-offline", "--amount", "12.34", "--currency", "978",
               "--record", "trace.json", cwd=tmp_path).returncode == 0  # fmt: skip
    same = json.loads(run("emv", "replay", "trace.json", cwd=tmp_path).stdout)
    assert (same["outcome"], same["oda"]["result"]) == ("approved", "passed")
    other = json.loads(run("emv", "replay", "trace.json", "--amount", "12.35", cwd=tmp_path).stdout)
    assert (other["outcome"], other["oda"]["failure"]) == ("declined", "cda_transaction_data_hash")
    proc = run("emv", "replay", "trace.json", "--amount", "60.00", "--set", "9F1A=0840", "--un", "01020304",
               "--date", "260101", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    above = json.loads(proc.stdout)
    assert (above["outcome"], above["error"]) == ("end_application", "GENERATE AC: status 6A82")
