"""Fixtures for the terminal-core integration tests: a real terminal on a temporary data directory.

The terminal is built by :func:`terminal.bootstrap.open_terminal` (real SQLite file, real
FileKeystore, the in-process ``memory`` host with its database in the data directory), with a fixed clock the
test moves by hand and simulated cards opened through the driver registry.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from simulator.host.inprocess import InProcessHost
from terminal import registry
from terminal.bootstrap import open_terminal
from terminal.facade import Terminal, TerminalEvent, TerminalSettings
from terminal.settings import load_default_settings

PROFILES = Path(__file__).resolve().parents[2] / "simulator" / "profiles"


class FixedClock:
    """A clock that stands still until the test moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        # near the real time, so that the commands (which use the system clock) agree with it
        self.moment = start or datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


class Rig:
    """One terminal on a data directory, its memory host, its clock and the events it emitted."""

    def __init__(self, data_dir: Path, settings: TerminalSettings, clock: FixedClock) -> None:
        self.data_dir = data_dir
        self.settings = settings
        self.clock = clock
        self.events: list[TerminalEvent] = []
        self.terminal = self._open(recover=True)

    def _open(self, *, recover: bool) -> Terminal:
        terminal = open_terminal(
            self.data_dir, host="memory", clock=self.clock, settings=self.settings, recover=False
        )
        terminal.subscribe(self.events.append)
        if recover:
            terminal.recover()
        return terminal

    @property
    def db_path(self) -> Path:
        return self.data_dir / "journal.sqlite"

    @property
    def host(self) -> InProcessHost:
        host = self.terminal.host
        assert isinstance(host, InProcessHost)
        return host

    def card(self, profile: str) -> None:
        """Put a simulated card in the reader's field (through the driver registry)."""
        self.terminal.reader = registry.open_reader(f"sim:card={profile}")

    def reopen(self) -> Terminal:
        """Close the store and open the terminal again (start-up recovery runs), like a restart."""
        self.terminal.store.close()
        self.terminal = self._open(recover=True)
        return self.terminal

    def events_of(self, kind: str) -> list[TerminalEvent]:
        return [e for e in self.events if e.kind == kind]

    def sql(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read through a second connection to the file, as another process would."""
        conn = sqlite3.connect(str(self.db_path))
        try:
            return conn.execute(query, args).fetchall()
        finally:
            conn.close()

    def close(self) -> None:
        self.terminal.store.close()


def settings_with(**limits: Any) -> TerminalSettings:
    """The shipped settings, with some offline limits replaced."""
    base = load_default_settings()
    return replace(base, offline_limits=replace(base.offline_limits, **limits))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def make_rig(tmp_path: Path, clock: FixedClock) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(settings: TerminalSettings | None = None, name: str = "terminal") -> Rig:
        rig = Rig(tmp_path / name, settings or load_default_settings(), clock)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    return make_rig()


def profile_pans() -> dict[str, str]:
    """Every simulated card profile that carries a PAN -> that PAN."""
    out: dict[str, str] = {}
    for path in sorted(PROFILES.glob("*.json")):
        doc = json.loads(path.read_text())
        if doc.get("pan"):
            out[doc["name"]] = str(doc["pan"])
    return out


@pytest.fixture
def with_limits() -> Callable[..., TerminalSettings]:
    """``with_limits(max_count=2)``: the shipped settings with those offline limits."""
    return settings_with


@pytest.fixture(scope="session")
def pans() -> dict[str, str]:
    return profile_pans()


__all__ = ["FixedClock", "Rig", "profile_pans", "settings_with"]
