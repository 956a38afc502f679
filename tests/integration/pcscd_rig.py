"""The real pcscd with vsmartcard's vpcd driver, for the tests that read virtual cards through pyscard.

Import the fixtures into a test module::

    from tests.integration.pcscd_rig import pcscd, vpcd  # noqa: F401

``pcscd`` (session) starts a pcscd of the tests' own and stops it at the end
of the session; ``vpcd`` (per test) is that rig with no card on the reader
before and after the test.

Nothing else on the machine reaches the tests' pcscd, nor it them
(:func:`simulator.pcscd.start_private_pcscd`): it reads a reader configuration
directory of its own (``pcscd -c DIR``) whose vpcd reader listens on a port
pair chosen free at the start of the session, so a ``posterm sim card --via
vpcd`` left serving on the default 35963 never shows in its reader; it runs
in a mount namespace of its own with a private /run/pcscd, so a system pcscd
(or the one such a card started) can hold /run/pcscd/pcscd.comm meanwhile;
this process's PC/SC client finds it through PCSCLITE_CSOCK_NAME, which is
set when this module is imported: libpcsclite reads it once, at the first
PC/SC call of the process, and imports (test collection) come before any
test runs.  Child processes (``posterm emv tap --reader pcsc:``) inherit it.

Where no mount namespace can be had (a container without CAP_SYS_ADMIN and no
user namespaces), the tests' pcscd runs on the machine's /run/pcscd, as root,
when no other pcscd holds it; test sessions then take turns through a lock
file.  On a machine where none of this can be had (packages missing, not
root and no user namespaces, a system pcscd in the way without namespaces)
the tests skip and say why; under CI, or as root when pcscd itself fails,
they fail instead: there they must run.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator import pcscd as pcscd_helper
from simulator.vpcd import VirtualCard

__all__ = ["SESSION_DIR", "PcscdRig", "pcscd", "vpcd"]

# The tests' pcscd's files (configuration, socket); one directory per test process.
SESSION_DIR = Path(tempfile.gettempdir()) / f"posterm-pcscd-tests-{os.getpid()}"
# Before any PC/SC call of this process: see the module's docstring.
os.environ[pcscd_helper.SOCKET_ENV] = str(pcscd_helper.private_socket(SESSION_DIR))


class PcscdRig:
    """The tests' pcscd with the vpcd driver, its first virtual reader, and the cards put on it."""

    def __init__(self, daemon: pcscd_helper.Pcscd, setup: pcscd_helper.PrivateSetup) -> None:
        self.daemon = daemon
        self.setup = setup
        self.port = setup.port  # the first slot's vpcd port; the second slot's is port + 1
        self.reader = setup.reader
        self.url = f"pcsc:{self.reader}"
        self.cards: list[VirtualCard] = []
        self.unplugged = False

    @property
    def isolated(self) -> bool:
        """In a mount namespace of its own (another pcscd may run beside it)."""
        return self.daemon.isolated

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
        """The reader goes away: the tests' pcscd stops."""
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
    failed: tuple[bool, str] | None = None  # (fail rather than skip, why): pcscd could not be had, not tried again
    users = 0
    lock: int | None = None  # the lock file's descriptor while this session holds it


LOCK_FILE = os.path.join(tempfile.gettempdir(), "posterm-pcscd-tests.lock")
LOCK_WAIT_SECONDS = 600.0


def _take_turn() -> None:
    """Only for a pcscd on the machine's /run/pcscd: one such per machine, so sessions take turns."""
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


def _must_run(exc: pcscd_helper.PcscdError) -> bool:
    """Fail rather than skip: under CI always; as root when pcscd itself failed (not the machine's limits)."""
    if os.environ.get("CI"):
        return True
    return os.geteuid() == 0 and not (exc.missing or exc.environment)


def _start() -> PcscdRig:
    if SESSION_DIR.exists():  # a test process of the same pid that died before cleaning up
        shutil.rmtree(SESSION_DIR)
    setup = pcscd_helper.private_setup(SESSION_DIR, pcscd_helper.free_port_pair())
    problem = pcscd_helper.namespace_problem(setup)
    if problem is not None:
        _take_turn()
    try:
        daemon = pcscd_helper.start_private_pcscd(setup, isolated=problem is None)
    except pcscd_helper.PcscdError as exc:
        _end_turn()
        if problem is not None:
            raise pcscd_helper.PcscdError(
                f"{exc} [no mount namespace: {problem}]", missing=exc.missing, environment=exc.environment
            ) from None
        raise
    return PcscdRig(daemon, setup)


@pytest.fixture(scope="session")
def pcscd() -> Iterator[PcscdRig]:
    """The tests' pcscd with the vpcd driver for the whole session (shared by every module that imports it)."""
    if _Shared.rig is None and _Shared.failed is None:
        try:
            _Shared.rig = _start()
        except pcscd_helper.PcscdError as exc:
            shutil.rmtree(SESSION_DIR, ignore_errors=True)
            _Shared.failed = (_must_run(exc), str(exc))
    if _Shared.rig is None:
        must, why = _Shared.failed or (True, "no rig")
        if must:
            pytest.fail(f"pcscd with vpcd is needed here: {why}")
        pytest.skip(f"pcscd with vpcd is not available: {why}")
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
                    shutil.rmtree(SESSION_DIR, ignore_errors=True)


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
