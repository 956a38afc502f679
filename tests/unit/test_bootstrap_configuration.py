"""The wiring place picks the parameter version the host sent, and says so when it is damaged."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from simulator.host.inprocess import InProcessHost
from terminal.bootstrap import PARAMETERS_POINTER, load_configuration, open_host, open_terminal
from terminal.settings import SettingsError


def _shipped(name: str) -> dict[str, object]:
    return json.loads(resources.files("terminal").joinpath("data", name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _apply(data_dir: Path, version: int, **changes: object) -> None:
    directory = data_dir / "parameters" / f"v{version:07d}"
    directory.mkdir(parents=True)
    doc = _shipped("terminal.json") | {"capk_files": ["capks.json"]} | changes
    keys = _shipped("capks-public.json")["keys"] + _shipped("capks-simulator.json")["keys"]  # type: ignore[operator]
    (directory / "capks.json").write_text(json.dumps({"keys": keys}))
    (directory / "terminal.json").write_text(json.dumps(doc))
    (data_dir / PARAMETERS_POINTER).write_text(json.dumps({"version": version, "dir": directory.name}))


def test_shipped_configuration_without_parameters(tmp_path: Path) -> None:
    config, settings, version = load_configuration(tmp_path)
    assert version is None and config.terminal_id == "TERM0001" and settings.retention_years == 5


def test_applied_parameters_are_in_force(tmp_path: Path) -> None:
    _apply(tmp_path, 3, merchant_name="Parameters shop", terminal_floor_limit=1000)
    config, settings, version = load_configuration(tmp_path)
    assert version == 3 and settings.merchant_name == "Parameters shop" and config.terminal_floor_limit == 1000
    terminal = open_terminal(tmp_path, host="none")
    try:
        assert terminal.settings.merchant_name == "Parameters shop"
    finally:
        terminal.store.close()


def test_damaged_parameters_are_an_error_not_a_fallback(tmp_path: Path) -> None:
    _apply(tmp_path, 2)
    (tmp_path / "parameters" / "v0000002" / "terminal.json").write_text("{not json")
    with pytest.raises(SettingsError, match="rollback"):
        load_configuration(tmp_path)


def test_auto_host_is_memory_until_enrolled(tmp_path: Path) -> None:
    assert isinstance(open_host("auto", tmp_path), InProcessHost)
    assert open_host("none", tmp_path) is None
