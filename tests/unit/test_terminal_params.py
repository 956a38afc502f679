"""terminal.params: the seam through which the screens reach the host link's parameter download and rollback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from terminal import params
from terminal.bootstrap import open_terminal
from terminal.host import HostUnreachable
from terminal.params import ParameterError, ParametersUnavailable
from tests.unit.test_host_link_parameters import download


class Link:
    """A host link that offers parameters (as the HTTPS one does), wrapping the in-process host."""

    def __init__(self, real: Any, downloads: list[dict[str, Any]]) -> None:
        self.real = real
        self.downloads = downloads
        self.asked: list[int | None] = []
        self.terminal_id: str | None = None
        self.merchant_id: str | None = None

    def fetch_parameters(self, have: int | None) -> dict[str, Any] | None:
        self.asked.append(have)
        return self.downloads.pop(0) if self.downloads else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_download_rollback_and_the_running_terminal_follows(tmp_path: Path) -> None:
    terminal = open_terminal(tmp_path, reader_url="sim:card=visa-qvsdc-online", host="memory")
    try:
        terminal_id = terminal.config.terminal_id
        assert params.parameter_status(tmp_path) == params.ParameterState(None, None, ())
        link = Link(terminal.host, [download(1, merchant_name="Shop One"), download(2, merchant_name="Shop Two")])
        terminal.host = link
        assert params.download_parameters(terminal, tmp_path) == 1
        assert params.download_parameters(terminal, tmp_path) == 2
        assert params.download_parameters(terminal, tmp_path) is None  # up to date
        assert link.asked == [None, 1, 2]
        assert params.parameter_status(tmp_path) == params.ParameterState(2, 1, (1, 2))
        assert params.reload_configuration(terminal, tmp_path) == 2
        assert terminal.settings.merchant_name == "Shop Two"
        assert params.rollback_parameters(tmp_path) == 1
        assert params.reload_configuration(terminal, tmp_path) == 1
        assert terminal.settings.merchant_name == "Shop One"
        assert terminal.config.terminal_id == terminal_id  # the identity is the terminal's own
        assert terminal.sale(100, 978).approved  # and it still pays
    finally:
        terminal.close()


def test_refusals_are_parameter_errors(tmp_path: Path) -> None:
    terminal = open_terminal(tmp_path, reader_url="none", host="memory")
    try:
        with pytest.raises(ParameterError, match="offers no parameter download"):
            params.download_parameters(terminal, tmp_path)  # the in-process host has none
        with pytest.raises(ParameterError, match="nothing to roll back"):
            params.rollback_parameters(tmp_path)
        terminal.host = Link(terminal.host, [download(0)])
        with pytest.raises(ParameterError, match="version"):
            params.download_parameters(terminal, tmp_path)
        assert params.parameter_status(tmp_path).current is None  # nothing changed
        terminal.host = None
        with pytest.raises(ParameterError, match="no host link"):
            params.download_parameters(terminal, tmp_path)
    finally:
        terminal.close()


def test_the_host_errors_pass_through(tmp_path: Path) -> None:
    class Down(Link):
        def fetch_parameters(self, have: int | None) -> dict[str, Any] | None:
            raise HostUnreachable("connection refused")

    terminal = open_terminal(tmp_path, reader_url="none", host="memory")
    try:
        terminal.host = Down(terminal.host, [])
        with pytest.raises(HostUnreachable):
            params.download_parameters(terminal, tmp_path)
    finally:
        terminal.close()


def test_without_the_host_link_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(params, "entry_points", lambda group: [])
    with pytest.raises(ParametersUnavailable, match=r"posterm\.parameters"):
        params.parameter_status(tmp_path)
