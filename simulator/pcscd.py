"""pcscd with vsmartcard's vpcd driver, for the tests and for manual use of virtual cards.

:func:`ensure_pcscd` starts ``pcscd --foreground`` (there is no systemd in CI
or in containers) when no pcscd answers, waits until pyscard lists the vpcd
reader, and returns a :class:`Pcscd`; :meth:`Pcscd.stop` sends SIGTERM (pcscd
cleans /run/pcscd on it) and waits, but only for a pcscd started here: one
that was already running is left alone.

pcscd runs as root (it writes /run/pcscd); as another user, with none running,
the error says what to run.  The vpcd driver comes with ``vsmartcard-vpcd``
(``/etc/reader.conf.d/vpcd``: readers "Virtual PCD 00 00" and "... 00 01" on
ports 35963 and 35964).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = [
    "VPCD_READER_PREFIX",
    "Pcscd",
    "PcscdError",
    "ensure_pcscd",
    "list_readers",
    "pcscd_running",
    "reader_has_card",
    "wait_for_reader_state",
]

VPCD_READER_PREFIX = "Virtual PCD"
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
VPCD_CONFIG = Path("/etc/reader.conf.d/vpcd")
PACKAGES = "pcscd vsmartcard-vpcd"

_SCARD_STATE_PRESENT = 0x20
_SCARD_STATE_EMPTY = 0x10


class PcscdError(Exception):
    """pcscd with the vpcd driver cannot be had here; the message says why and what to do.

    ``missing``: the Debian packages are not installed (as opposed to a pcscd that
    would not start).
    """

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def _scard() -> Any:
    from smartcard import scard

    return scard


def list_readers() -> list[str] | None:
    """The readers pcscd reports; None when no pcscd answers."""
    scard = _scard()
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        return None
    try:
        hresult, names = scard.SCardListReaders(context, [])
        if hresult != scard.SCARD_S_SUCCESS:
            return []
        return [str(name) for name in names]
    finally:
        scard.SCardReleaseContext(context)


def pcscd_running() -> bool:
    return list_readers() is not None


def reader_has_card(reader: str) -> bool | None:
    """Whether pcscd sees a card in ``reader`` now; None when the reader or pcscd is not there."""
    scard = _scard()
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        return None
    try:
        hresult, states = scard.SCardGetStatusChange(context, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        if hresult != scard.SCARD_S_SUCCESS or states[0][1] & scard.SCARD_STATE_UNKNOWN:
            return None
        return bool(states[0][1] & _SCARD_STATE_PRESENT)
    finally:
        scard.SCardReleaseContext(context)


def wait_for_reader_state(reader: str, present: bool, timeout: float = 5.0) -> bool:
    """Wait until pcscd sees a card in ``reader`` (``present``) or none; True when it does in time.

    pcscd polls the vpcd driver every 400 ms, so a card put on or taken off
    shows within about half a second.
    """
    deadline = time.monotonic() + timeout
    while True:
        if reader_has_card(reader) is present:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _pcscd_binary() -> str | None:
    return shutil.which("pcscd") or next((p for p in ("/usr/sbin/pcscd", "/sbin/pcscd") if os.path.exists(p)), None)


def _vpcd_installed() -> bool:
    return VPCD_CONFIG.exists() or VPCD_DRIVER.exists()


class Pcscd:
    """A running pcscd: started here (``process`` set; :meth:`stop` stops it) or found running (left alone)."""

    def __init__(self, process: subprocess.Popen[bytes] | None, log_path: Path | None = None) -> None:
        self.process = process
        self.log_path = log_path

    @property
    def started_here(self) -> bool:
        return self.process is not None

    @property
    def pid(self) -> int | None:
        if self.process is not None:
            return self.process.pid
        try:
            return int(Path("/run/pcscd/pcscd.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return pcscd_running()

    def vpcd_readers(self) -> list[str]:
        return [name for name in list_readers() or [] if name.startswith(VPCD_READER_PREFIX)]

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None:
            return ""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (SIGKILL after ``timeout``); nothing for a pcscd not started here."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5.0)
        # pcscd removes its socket on SIGTERM; a pcscd that had to be killed leaves it behind
        self._wait_gone(timeout=2.0)
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None

    def _wait_gone(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while pcscd_running() and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self, timeout: float = 10.0) -> None:
        """Stop and start again (a pcscd started here only): every reader goes away and comes back."""
        if self.process is None:
            raise PcscdError("this pcscd was not started here: it is not restarted")
        self.stop(timeout)
        fresh = _start(timeout)
        self.process, self.log_path = fresh.process, fresh.log_path


def _start(timeout: float) -> Pcscd:
    binary = _pcscd_binary()
    if binary is None or not _vpcd_installed():
        what = "pcscd is" if binary is None else "the vpcd driver (vsmartcard-vpcd) is"
        raise PcscdError(f"{what} not installed: apt-get install {PACKAGES} (make test does, as root)", missing=True)
    if os.geteuid() != 0:
        raise PcscdError(
            "pcscd is not running and only root can start it here (it writes /run/pcscd): "
            f"run 'sudo {binary} --foreground' in another shell (with {PACKAGES} installed), then try again"
        )
    args = [binary, "--foreground"]
    if "--disable-polkit" in _help(binary):
        args.append("--disable-polkit")
    handle, name = tempfile.mkstemp(prefix="posterm-pcscd-", suffix=".log")
    log_path = Path(name)
    with os.fdopen(handle, "wb") as log:
        # its own session: a Ctrl-C meant for the caller does not reach pcscd; stop() ends it
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    daemon = Pcscd(process, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            tail = daemon.log_tail()
            daemon.stop()
            raise PcscdError(f"pcscd exited at once (status {process.returncode}):\n{tail}")
        if daemon.vpcd_readers():
            return daemon
        if time.monotonic() >= deadline:
            tail = daemon.log_tail()
            daemon.stop()
            raise PcscdError(f"pcscd did not list the vpcd reader within {timeout:g} s:\n{tail}")
        time.sleep(0.02)


def _help(binary: str) -> str:
    try:
        done = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout + done.stderr


def ensure_pcscd(timeout: float = 10.0) -> Pcscd:
    """A pcscd that lists the vpcd reader: the one running, or one started here (as root)."""
    readers = list_readers()
    if readers is None:
        return _start(timeout)
    daemon = Pcscd(None)
    if not any(name.startswith(VPCD_READER_PREFIX) for name in readers):
        hint = "restart pcscd" if _vpcd_installed() else f"apt-get install {PACKAGES}, then restart pcscd"
        raise PcscdError(
            f"pcscd is running (pid {daemon.pid}, not started here) but lists no vpcd reader "
            f"({', '.join(readers) or 'no reader at all'}): {hint}",
            missing=not _vpcd_installed(),
        )
    return daemon
