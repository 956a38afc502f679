"""The diagnostics read the data directory's files within the limits the rest of posterm uses.

The parameters pointer and the enrolment are small state files
(``MAX_STATE_FILE_BYTES``), a parameter version's files are parameter files
(``MAX_PARAMETERS_FILE_BYTES``): a file over its limit, a device or a pipe
given in their place is refused unread, and the diagnostics say so instead of
reading without end (or waiting for ever on a FIFO).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from terminal.bootstrap import ENROLMENT_FILE, PARAMETERS_POINTER
from terminal.diag_bundle import configuration_summary
from terminal.diag_checks import configuration_files
from terminal.keystore import MASTER_KEY_ENV
from terminal.limits import MAX_PARAMETERS_FILE_BYTES, MAX_STATE_FILE_BYTES


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    directory = tmp_path / "data"
    directory.mkdir()
    return directory


def _sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)


def _version(data_dir: Path, doc: dict[str, object]) -> Path:
    base = data_dir / "parameters" / "v0000001"
    base.mkdir(parents=True)
    (base / "terminal.json").write_text(json.dumps(doc), encoding="utf-8")
    (data_dir / PARAMETERS_POINTER).write_text('{"version": 1, "dir": "v0000001"}', encoding="utf-8")
    return base


def test_an_oversized_enrolment_is_named_not_read(data_dir: Path) -> None:
    _sparse(data_dir / ENROLMENT_FILE, MAX_STATE_FILE_BYTES + 1)
    host_link = configuration_summary(data_dir)["host_link"]
    assert host_link["enrolled"] is True and "larger than 64 KiB" in host_link["error"], host_link


def test_an_enrolment_that_is_a_pipe_does_not_block(data_dir: Path) -> None:
    (data_dir / ENROLMENT_FILE).parent.mkdir(parents=True)
    os.mkfifo(data_dir / ENROLMENT_FILE)
    host_link = configuration_summary(data_dir)["host_link"]
    assert "not a regular file" in host_link["error"], host_link


def test_an_enrolment_shows_its_public_fields_only(data_dir: Path) -> None:
    path = data_dir / ENROLMENT_FILE
    path.parent.mkdir(parents=True)
    doc = {"url": "https://acquirer.example", "terminal_id": "T1", "key_file": "secret.pem"}
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert configuration_summary(data_dir)["host_link"] == {
        "enrolled": True,
        "url": "https://acquirer.example",
        "terminal_id": "T1",
    }


def test_an_oversized_parameters_pointer_lists_no_file(data_dir: Path) -> None:
    _sparse(data_dir / PARAMETERS_POINTER, MAX_STATE_FILE_BYTES + 1)
    assert configuration_files(data_dir) == {}


def test_an_oversized_parameters_file_lists_no_file(data_dir: Path) -> None:
    base = _version(data_dir, {})
    _sparse(base / "terminal.json", MAX_PARAMETERS_FILE_BYTES + 1)
    assert configuration_files(data_dir) == {}


def test_an_oversized_ca_key_file_has_no_checksum(data_dir: Path) -> None:
    base = _version(data_dir, {"capk_files": ["capks.json", "huge.json"]})
    (base / "capks.json").write_text("[]", encoding="utf-8")
    _sparse(base / "huge.json", MAX_PARAMETERS_FILE_BYTES + 1)
    files = configuration_files(data_dir)
    terminal_json = (base / "terminal.json").read_bytes()
    assert files == {
        "parameters/v0000001/terminal.json": hashlib.sha256(terminal_json).hexdigest(),
        "parameters/v0000001/capks.json": hashlib.sha256(b"[]").hexdigest(),
        "parameters/v0000001/huge.json": None,
    }
