"""The real pcscd with vsmartcard's vpcd driver, for the tests that read virtual cards through pyscard.

Import the fixtures into a test module::

    from tests.integration.pcscd_rig import pcscd, vpcd  # noqa: F401

``pcscd`` (session) starts pcscd in the foreground when none runs and stops it
at the end of the session; ``vpcd`` (per test) is that rig with no card on the
reader before and after the test.  On a machine where pcscd cannot be had
(not root and none running, or the packages missing) the tests skip and say
why; under CI, or as root with the packages installed, they fail instead:
there they must run.

pcscd and the vpcd ports are one per machine: a test session holds a lock
file while it uses them, so that two sessions on one machine (developers
running tests side by side) take turns instead of taking each other's cards.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator import pcscd as pcscd_helper
from simulator.vpcd import VPCD_PORT, VirtualCard, reader_name

__all__ = ["PcscdRig", "pcscd", "vpcd"]


class PcscdRig:
    """pcscd with the vpcd driver, the first virtual reader, and the cards put on it."""

    def __init__(self, daemon: pcscd_helper.Pcscd) -> None:
        self.daemon = daemon
        self.port = VPCD_PORT
        self.reader = reader_name(self.port)
        self.url = f"pcsc:{self.reader}"
        self.cards: list[VirtualCard] = []
        self.unplugged = False

    def card(self, card: str | Path | object, *, insert: bool = True, **options: object) -> VirtualCard:
        """A virtual card on the first vpcd reader (inserted and seen by pcscd unless ``insert=False``)."""
        virtual = VirtualCard(card, port=self.port, **options)  # type: ignore[arg-type]
        self.cards.append(virtual)
        if insert:
            self.insert(virtual)
        return virtual

    def insert(self, card: VirtualCard) -> None:
        card.insert()
        self.wait_present(True)

    def wait_present(self, present: bool, timeout: float = 5.0) -> None:
        if not pcscd_helper.wait_for_reader_state(self.reader, present, timeout):
            raise AssertionError(f"pcscd did not see the card {'arrive' if present else 'leave'} in {timeout} s")

    def remove_all(self) -> None:
        for card in self.cards:
            card.close()
        self.cards.clear()
        if not self.unplugged:
            self.wait_present(False)

    def unplug(self) -> None:
        """The reader goes away: pcscd stops (only one started here)."""
        if not self.daemon.started_here:
            raise pytest.skip.Exception("pcscd was not started by the tests: it is not stopped to unplug the reader")
        for card in self.cards:
            card.close()
        self.cards.clear()
        self.daemon.stop()
        self.unplugged = True

    def replug(self) -> None:
        if self.unplugged:
            self.daemon.restart()
            self.unplugged = False


class _Shared:
    """The one rig of the session, whichever test modules imported the fixture (each gets its own copy)."""

    rig: PcscdRig | None = None
    users = 0
    lock: int | None = None  # the lock file's descriptor while this session holds it


LOCK_FILE = os.path.join(tempfile.gettempdir(), "posterm-pcscd-tests.lock")
LOCK_WAIT_SECONDS = 600.0


def _take_turn() -> None:
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _Shared.lock = fd
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                pytest.fail(f"another test session has used pcscd for over {LOCK_WAIT_SECONDS:g} s ({LOCK_FILE})")
            time.sleep(0.2)


def _end_turn() -> None:
    fd, _Shared.lock = _Shared.lock, None
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _must_run() -> bool:
    return bool(os.environ.get("CI")) or os.geteuid() == 0


@pytest.fixture(scope="session")
def pcscd() -> Iterator[PcscdRig]:
    """pcscd with the vpcd driver for the whole session (shared by every module that imports it)."""
    if _Shared.rig is None:
        _take_turn()
        try:
            daemon = pcscd_helper.ensure_pcscd()
        except pcscd_helper.PcscdError as exc:
            _end_turn()
            if _must_run() and not (exc.missing and not os.environ.get("CI")):
                pytest.fail(f"pcscd with vpcd is needed here: {exc}")
            pytest.skip(f"pcscd with vpcd is not available: {exc}")
        _Shared.rig = PcscdRig(daemon)
    _Shared.users += 1
    try:
        yield _Shared.rig
    finally:
        _Shared.users -= 1
        if _Shared.users == 0 and _Shared.rig is not None:
            rig, _Shared.rig = _Shared.rig, None
            try:
                rig.remove_all()
            finally:
                try:
                    rig.daemon.stop()
                finally:
                    _end_turn()


@pytest.fixture
def vpcd(pcscd: PcscdRig) -> Iterator[PcscdRig]:
    """The pcscd rig with an empty reader before and after the test."""
    pcscd.replug()
    pcscd.remove_all()
    yield pcscd
    for card in pcscd.cards:
        card.close()
    pcscd.cards.clear()
    pcscd.replug()
    pcscd.wait_present(False)
