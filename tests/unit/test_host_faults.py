"""Fault settings of the simulated host and the files its processes share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simulator.host.faults import (
    FaultError,
    Faults,
    acknowledge,
    atomic_write_json,
    read_faults,
    request_faults,
    running_server,
    write_faults,
)


@pytest.mark.parametrize(
    "changes",
    [{"slow_ms": -1}, {"slow_ms": 700_000}, {"error_status": 404}, {"error_status": True},
     {"certificate": "odd"}, {"only": ("v1/advices",)}],
)
def test_bad_faults_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(FaultError):
        Faults(**changes)  # type: ignore[arg-type]


def test_only_limits_to_paths_and_below() -> None:
    faults = Faults(slow_ms=5, only=("/v1/advices", "/v1/batches/"))
    assert faults.applies_to("/v1/advices") and faults.applies_to("/v1/batches/close")
    assert not faults.applies_to("/v1/advicesX") and not faults.applies_to("/v1/echo")
    assert Faults().applies_to("/anything") and not Faults().any and faults.any


def test_the_faults_file_round_trips_with_generations(tmp_path: Path) -> None:
    assert read_faults(tmp_path) == (0, Faults())
    wanted = Faults(down=True, certificate="expired", only=("/v1/echo",))
    assert write_faults(tmp_path, wanted) == 1
    assert read_faults(tmp_path) == (1, wanted)
    assert write_faults(tmp_path, Faults()) == 2
    assert Faults.from_json(wanted.to_json()) == wanted


def test_requesting_faults_without_a_server_returns_false(tmp_path: Path) -> None:
    assert running_server(tmp_path) is None
    assert request_faults(tmp_path, Faults(slow_ms=10)) is False


def test_a_server_file_of_a_dead_process_is_not_running(tmp_path: Path) -> None:
    info = {"pid": os.getpid(), "bind": "127.0.0.1", "port": 1, "url": "https://127.0.0.1:1", "started_at": "x"}
    atomic_write_json(tmp_path / "server.json", info)
    assert running_server(tmp_path) is not None
    atomic_write_json(tmp_path / "server.json", {**info, "pid": 2**22 + 12345})
    assert running_server(tmp_path) is None
    (tmp_path / "server.json").write_text("{broken")
    assert running_server(tmp_path) is None


def test_request_faults_waits_for_the_acknowledgement(tmp_path: Path) -> None:
    info = {"pid": os.getpid(), "bind": "127.0.0.1", "port": 1, "url": "https://127.0.0.1:1", "started_at": "x"}
    atomic_write_json(tmp_path / "server.json", info)  # "running": this process
    acknowledge(tmp_path, 1)  # as if the server had applied generation 1 already
    assert request_faults(tmp_path, Faults(slow_ms=1)) is True
    with pytest.raises(FaultError, match="did not apply"):
        request_faults(tmp_path, Faults(slow_ms=2), timeout=0.1)
