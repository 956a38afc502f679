"""Fixtures for the application's tests: a real terminal on a temporary data directory, and a session.

The view models are driven as the screens would drive them; the worker runs
the facade calls in the background, and :func:`settle` waits for them and
runs their callbacks on "the UI thread" (the test's), as Kivy's clock would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from terminal.bootstrap import open_terminal
from terminal.facade import Terminal
from ui.screens.registry import build
from ui.session import Session
from ui.worker import ManualDispatcher


class App:
    """A session on a terminal, with its dispatcher, as the tests drive it."""

    def __init__(self, terminal: Terminal, *, kiosk: bool = False, language: str = "en") -> None:
        self.terminal = terminal
        self.dispatch = ManualDispatcher()
        self.session = Session(terminal, self.dispatch, kiosk=kiosk, language=language)
        self.screens = build(self.session)
        self.session.start()

    def settle(self, timeout: float = 20.0) -> None:
        """Wait until the worker is idle and every callback ran on this (the UI) thread."""
        deadline = time.monotonic() + timeout
        while True:
            self.dispatch.drain()
            if not self.session.worker.busy:
                self.dispatch.drain()
                if not self.session.worker.busy:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError("the worker did not finish")
            time.sleep(0.01)

    @property
    def at(self) -> str:
        return self.session.navigator.current.name

    def close(self) -> None:
        self.session.stop()
        self.terminal.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "terminal"


@pytest.fixture
def app(data_dir: Path) -> Iterator[App]:
    terminal = open_terminal(data_dir, reader_url="sim:card=visa-qvsdc-online", host="memory")
    application = App(terminal)
    yield application
    application.close()


__all__ = ["App"]
