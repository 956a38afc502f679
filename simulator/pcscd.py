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

:func:`start_private_pcscd` starts a pcscd of the caller's own, for the tests:
whatever else runs on the machine (a system pcscd, a ``posterm sim card``
left serving on 35963) cannot reach it, nor it them.

- Its readers come from a configuration directory of its own
  (``pcscd --foreground --config DIR``; pcsc-lite 1.9.9 reads every file in
  DIR as a reader.conf, and a plain file as one): one vpcd reader whose slots
  listen on a port pair of the caller's (:func:`vpcd_reader_conf`).
- Debian's pcscd 1.9.9 has its socket compiled in (/run/pcscd/pcscd.comm,
  PCSCLITE_CSOCK_NAME is not read by the daemon), so it runs in a mount
  namespace of its own (``unshare --mount``; ``--map-root-user`` as well when
  not root) where a directory of the caller's is bind-mounted over
  /run/pcscd, and an empty tmpfs over the USB drivers' directory (a real
  reader plugged in stays with the system's pcscd and out of the tests).
  The client side, libpcsclite, does read PCSCLITE_CSOCK_NAME: a process
  whose variable names the socket in that directory talks to this pcscd.
  libpcsclite reads it once, at the first PC/SC call of the process, so it is
  set before that (:func:`private_socket` gives the path ahead of time).
- Where no mount namespace can be had (a container without CAP_SYS_ADMIN),
  root can still run it on /run/pcscd when no other pcscd holds the socket;
  the socket path in the caller's directory is then a symbolic link to it.
"""

from __future__ import annotations

import contextlib
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "SOCKET_ENV",
    "VPCD_READER_PREFIX",
    "Pcscd",
    "PcscdError",
    "PrivateSetup",
    "ensure_pcscd",
    "free_port_pair",
    "list_readers",
    "namespace_problem",
    "pcscd_running",
    "private_setup",
    "private_socket",
    "reader_has_card",
    "start_private_pcscd",
    "vpcd_reader_conf",
    "wait_for_reader_state",
]

VPCD_READER_PREFIX = "Virtual PCD"
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
VPCD_CONFIG = Path("/etc/reader.conf.d/vpcd")
PACKAGES = "pcscd vsmartcard-vpcd"
SOCKET_ENV = "PCSCLITE_CSOCK_NAME"  # libpcsclite (the client) reads it; Debian's pcscd 1.9.9 does not
SYSTEM_RUN_DIR = Path("/run/pcscd")
SYSTEM_SOCKET = SYSTEM_RUN_DIR / "pcscd.comm"
USB_DRIVERS_DIR = Path("/usr/lib/pcsc/drivers")  # pcscd's USB drop directory (compiled in)

_SCARD_STATE_PRESENT = 0x20
_SCARD_STATE_EMPTY = 0x10


class PcscdError(Exception):
    """pcscd with the vpcd driver cannot be had here; the message says why and what to do.

    ``missing``: the Debian packages are not installed (as opposed to a pcscd that
    would not start).
    ``environment``: this machine cannot give one (privileges, namespaces), as
    opposed to a pcscd that was started and failed.
    """

    def __init__(self, message: str, *, missing: bool = False, environment: bool = False) -> None:
        super().__init__(message)
        self.missing = missing
        self.environment = environment


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
    """A running pcscd: started here (``process`` set; :meth:`stop` stops it) or found running (left alone).

    ``isolated``: in a mount namespace of its own (see :func:`start_private_pcscd`).
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes] | None,
        log_path: Path | None = None,
        *,
        launch: Callable[[float], Pcscd] | None = None,
        isolated: bool = False,
    ) -> None:
        self.process = process
        self.log_path = log_path
        self.isolated = isolated
        self._launch = launch  # how to start it again (restart); None: the system's configuration

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
        fresh = (self._launch or _start)(timeout)
        self.process, self.log_path = fresh.process, fresh.log_path


def _installed_binary() -> str:
    binary = _pcscd_binary()
    if binary is None or not _vpcd_installed():
        what = "pcscd is" if binary is None else "the vpcd driver (vsmartcard-vpcd) is"
        raise PcscdError(f"{what} not installed: apt-get install {PACKAGES} (make test does, as root)", missing=True)
    return binary


def _daemon_args(binary: str) -> list[str]:
    args = [binary, "--foreground"]
    if "--disable-polkit" in _help(binary):
        args.append("--disable-polkit")
    return args


def _start(timeout: float) -> Pcscd:
    binary = _installed_binary()
    if os.geteuid() != 0:
        raise PcscdError(
            "pcscd is not running and only root can start it here (it writes /run/pcscd): "
            f"run 'sudo {binary} --foreground' in another shell (with {PACKAGES} installed), then try again"
        )
    return _spawn(_daemon_args(binary), timeout)


def _spawn(
    args: list[str], timeout: float, *, launch: Callable[[float], Pcscd] | None = None, isolated: bool = False
) -> Pcscd:
    """Start ``args`` (pcscd in the foreground, perhaps behind unshare) and wait until it lists a vpcd reader."""
    handle, name = tempfile.mkstemp(prefix="posterm-pcscd-", suffix=".log")
    log_path = Path(name)
    with os.fdopen(handle, "wb") as log:
        # its own session: a Ctrl-C meant for the caller does not reach pcscd; stop() ends it
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    daemon = Pcscd(process, log_path, launch=launch, isolated=isolated)
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


# -- a pcscd of the caller's own (the tests') ---------------------------------------------------------------------


@dataclass(frozen=True)
class PrivateSetup:
    """The files of a private pcscd under ``work_dir``, and the port of its vpcd reader (slot 1 on ``port + 1``)."""

    work_dir: Path
    port: int

    @property
    def config_dir(self) -> Path:
        """What ``pcscd --config`` reads: this one vpcd reader, nothing of /etc/reader.conf.d."""
        return self.work_dir / "reader.conf.d"

    @property
    def run_dir(self) -> Path:
        """Bind-mounted over /run/pcscd in the daemon's mount namespace: its socket and pid file land here."""
        return self.work_dir / "run"

    @property
    def driver(self) -> Path:
        """A copy of the vpcd driver, outside the USB drivers' directory that the namespace hides."""
        return self.work_dir / "lib" / VPCD_DRIVER.name

    @property
    def socket(self) -> Path:
        return private_socket(self.work_dir)

    @property
    def reader(self) -> str:
        """pcscd's name for the first slot (the reader's FRIENDLYNAME, reader 00, slot 00)."""
        return f"{VPCD_READER_PREFIX} 00 00"


def private_socket(work_dir: Path) -> Path:
    """The socket a private pcscd under ``work_dir`` answers on (for PCSCLITE_CSOCK_NAME, known before it starts)."""
    return work_dir / "run" / "pcscd.comm"


def vpcd_reader_conf(port: int, driver: Path = VPCD_DRIVER) -> str:
    """A reader.conf entry for a vpcd reader listening on ``port`` (slot 0) and ``port + 1`` (slot 1).

    vpcd takes its port from DEVICENAME (``/dev/null:PORT``: listen on all
    addresses; ``HOST:PORT``: connect out to HOST).  pcscd hands CHANNELID only
    to a driver opened without a DEVICENAME, so CHANNELID alone would leave vpcd
    on its default 35963; it is written too, with the same port, as the shipped
    file does.  Checked with pcscd 1.9.9 and vsmartcard-vpcd 3.3.
    """
    return (
        f'FRIENDLYNAME "{VPCD_READER_PREFIX}"\n'
        f"DEVICENAME   /dev/null:{port}\n"
        f"LIBPATH      {driver}\n"
        f"CHANNELID    {port}\n"
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as vpcd binds: TIME_WAIT does not count
        try:
            probe.bind(("0.0.0.0", port))  # vpcd listens on every address
        except OSError:
            return False
    return True


def free_port_pair(tries: int = 200) -> int:
    """A port P with P and P + 1 free, below the kernel's ephemeral range (no outgoing connection takes them)."""
    low = 32768
    with contextlib.suppress(OSError, ValueError, IndexError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    first, last = (20000, low - 2) if low > 20002 else (low + 1000, 65533)
    for _ in range(tries):
        port = random.randint(first, last)
        if port not in (35962, 35963, 35964) and _port_free(port) and _port_free(port + 1):
            return port
    raise PcscdError(f"no free pair of TCP ports found in {first}-{last + 1} for vpcd", environment=True)


def private_setup(work_dir: Path, port: int) -> PrivateSetup:
    """Write the configuration of a private pcscd under ``work_dir`` (created; old files of ours replaced)."""
    _installed_binary()
    if not VPCD_DRIVER.exists():
        raise PcscdError(f"the vpcd driver {VPCD_DRIVER} is missing: apt-get install {PACKAGES}", missing=True)
    setup = PrivateSetup(Path(work_dir), port)
    for directory in (setup.config_dir, setup.run_dir, setup.driver.parent):
        directory.mkdir(parents=True, exist_ok=True)
    os.chmod(setup.work_dir, 0o755)  # the client may be another user than root-in-the-namespace
    shutil.copyfile(VPCD_DRIVER, setup.driver)
    (setup.config_dir / "vpcd").write_text(vpcd_reader_conf(port, setup.driver))
    return setup


def _namespace_command(setup: PrivateSetup) -> list[str] | None:
    """``unshare ... sh -c 'mounts; exec "$@"'``, to be followed by pcscd's command; None without unshare."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    user = [] if os.geteuid() == 0 else ["--map-root-user"]  # an unprivileged user namespace may mount too
    script = (
        f"mount --bind {shlex.quote(str(setup.run_dir))} {SYSTEM_RUN_DIR}"
        f" && mount -t tmpfs -o size=64k,mode=0755 posterm-no-usb-drivers {USB_DRIVERS_DIR}"
        ' && exec "$@"'
    )
    return [unshare, *user, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "posterm-pcscd"]


def namespace_problem(setup: PrivateSetup) -> str | None:
    """Why a private pcscd cannot have a mount namespace here (None: it can), tried with ``true`` for pcscd."""
    command = _namespace_command(setup)
    if command is None:
        return "no unshare command (util-linux)"
    if not SYSTEM_RUN_DIR.is_dir():
        if os.geteuid() != 0:
            return f"{SYSTEM_RUN_DIR} does not exist to mount over (no pcscd ever ran here; root would create it)"
        SYSTEM_RUN_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)  # as the pcscd package's tmpfiles does
    try:
        done = subprocess.run([*command, "true"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare: {exc}"
    if done.returncode != 0:
        return (done.stderr.strip() or f"unshare exited with status {done.returncode}").splitlines()[-1]
    return None


def _socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def start_private_pcscd(setup: PrivateSetup, *, isolated: bool = True, timeout: float = 10.0) -> Pcscd:
    """Start a pcscd that reads only ``setup``'s configuration, and point this process's PC/SC client at it.

    ``isolated`` (see :func:`namespace_problem`): in a mount namespace of its
    own, beside any other pcscd.  Otherwise on the machine's /run/pcscd (root
    only, and only while no other pcscd holds its socket): the socket path in
    ``setup.run_dir`` is then a symbolic link to /run/pcscd/pcscd.comm.

    Sets PCSCLITE_CSOCK_NAME in this process's environment (child processes
    inherit it); libpcsclite reads it at the first PC/SC call of a process
    only, so a caller that may have made one sets it before (the tests' rig
    does so when it is imported).
    """
    binary = _installed_binary()
    os.environ[SOCKET_ENV] = str(setup.socket)
    if not isolated:
        if os.geteuid() != 0:
            raise PcscdError(
                "only root can run pcscd on /run/pcscd, and this machine gives no mount namespace for a private one",
                environment=True,
            )
        if _socket_answers(SYSTEM_SOCKET):
            raise PcscdError(
                f"another pcscd (the system's, or one a 'posterm sim card' started) holds {SYSTEM_SOCKET}, and "
                "a private pcscd cannot have a mount namespace here: stop that pcscd "
                "(systemctl stop pcscd.socket pcscd) or run where 'unshare --mount' works (root, CAP_SYS_ADMIN)",
                environment=True,
            )
        if setup.socket.is_symlink() or setup.socket.exists():
            setup.socket.unlink()
        setup.socket.symlink_to(SYSTEM_SOCKET)
    launch_args = [*_daemon_args(binary), "--config", str(setup.config_dir)]

    def launch(seconds: float) -> Pcscd:
        if isolated:
            for stale in ("pcscd.comm", "pcscd.pid"):  # left by a pcscd that had to be killed
                (setup.run_dir / stale).unlink(missing_ok=True)
            prefix = _namespace_command(setup)
            if prefix is None:
                raise PcscdError("no unshare command (util-linux)", environment=True)
            return _spawn([*prefix, *launch_args], seconds, launch=launch, isolated=True)
        return _spawn(launch_args, seconds, launch=launch, isolated=False)

    return launch(timeout)
