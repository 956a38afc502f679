"""A terminal switched from AES-256-GCM to SM4-GCM by its parameters, as the console script runs it.

Real data directory, real SQLite journal, the simulator's cards and the
memory host; the parameters are applied by host_link's own apply (what a
download does), or edited by hand for the refusal.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from host_link import parameters

POSTERM = str(Path(sys.executable).with_name("posterm"))


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POSTERM_MASTER_KEY", "POSTERM_DATA_DIR")}
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    return subprocess.run(
        [POSTERM, *args, "--data-dir", str(data_dir)], check=False, capture_output=True, text=True, timeout=60, env=env
    )


def _data(name: str) -> Any:
    return json.loads(resources.files("terminal").joinpath("data", name).read_text(encoding="utf-8"))


def download(version: int, cipher: str) -> dict[str, Any]:
    config = _data("terminal.json")
    config.pop("capk_files")
    config["keystore"] = {"cipher": cipher}
    capks = _data("capks-public.json")["keys"] + _data("capks-simulator.json")["keys"]
    return {"version": version, "config": config, "capks": capks}


def formats(data_dir: Path) -> list[tuple[int, int | None]]:
    """(card data's first byte, data for the host's first byte) of each transaction, oldest first."""
    with sqlite3.connect(data_dir / "journal.sqlite") as conn:
        rows = conn.execute("SELECT card_blob, sad_blob FROM transactions ORDER BY created_at").fetchall()
    return [(bytes(card)[0], None if sad is None else bytes(sad)[0]) for card, sad in rows]


def keys_test(data_dir: Path) -> dict[str, Any]:
    proc = run(data_dir, "diag", "--json", "--host", "none", "--reader", "none")
    assert proc.returncode in (0, 1) and proc.stderr == "", (proc.stdout, proc.stderr)
    test: dict[str, Any] = next(t for t in json.loads(proc.stdout)["tests"] if t["name"] == "keys")
    assert test["status"] == "pass", test
    return test


def test_a_switch_to_sm4_keeps_old_card_data_readable_and_seals_new_data_with_sm4(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert run(data_dir, "sale", "12.34", "--card", "visa-qvsdc-offline").returncode == 0
    assert formats(data_dir) == [(1, 1)]  # AES-256-GCM, the default
    before = keys_test(data_dir)
    assert before["details"]["cipher"] == "aes-256-gcm"

    assert parameters.apply(download(1, "sm4-gcm"), data_dir) == 1
    assert run(data_dir, "sale", "5.00", "--card", "visa-qvsdc-offline").returncode == 0
    assert formats(data_dir) == [(1, 1), (2, 2)]

    after = keys_test(data_dir)
    assert after["details"]["cipher"] == "sm4-gcm"
    assert [(k["cipher"], k["in_use"]) for k in after["details"]["data_keys"]] == [
        ("aes-256-gcm", False),
        ("sm4-gcm", True),
    ]
    assert after["details"]["key_check_values"] == before["details"]["key_check_values"]  # the same keys
    assert after["details"]["sealed_values"] == {"aes-256-gcm": 2, "sm4-gcm": 2}
    kcv = after["details"]["key_check_values"]["data:sm4-gcm"]
    text = run(data_dir, "diag", "--host", "none", "--reader", "none")
    assert f"data (sm4-gcm, in use) {kcv}" in text.stdout, text.stdout

    # both advices go to the host: each one's data is opened with the cipher that sealed it
    forward = run(data_dir, "saf", "forward", "--json")
    assert forward.returncode == 0, (forward.stdout, forward.stderr)
    status = json.loads(run(data_dir, "saf", "status", "--json").stdout)
    assert status["queued"] == 0, status
    assert [card for card, _ in formats(data_dir)] == [1, 2]  # card data kept, each under its own cipher
    receipts = [run(data_dir, "journal", "list", "--json")]
    assert receipts[0].returncode == 0


def test_a_wrong_cipher_is_refused_by_the_download_and_by_the_command_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert run(data_dir, "sale", "12.34", "--card", "visa-qvsdc-offline").returncode == 0
    with pytest.raises(parameters.ParametersError, match="use one of aes-256-gcm, sm4-gcm"):
        parameters.apply(download(1, "sm4"), data_dir)
    assert parameters.current_version(data_dir) is None  # nothing applied

    parameters.apply(download(1, "sm4-gcm"), data_dir)
    edited = data_dir / "parameters" / "v000001" / "terminal.json"  # a hand edit, past the download's checks
    doc = json.loads(edited.read_text())
    doc["keystore"]["cipher"] = "sm4"
    edited.write_text(json.dumps(doc))
    proc = run(data_dir, "sale", "1.00", "--card", "visa-qvsdc-offline")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, (proc.returncode, proc.stderr)
    assert "keystore cipher 'sm4' is not supported: use one of aes-256-gcm, sm4-gcm" in lines[0]
    assert "Traceback" not in proc.stderr
