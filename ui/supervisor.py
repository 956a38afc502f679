"""Kiosk supervision: run the kiosk application, and start it again whenever it ends.

An unattended kiosk must recover by itself.  ``posterm kiosk supervise --
COMMAND [ARG...]`` (or :func:`supervise`) runs any command, typically
``posterm ui --kiosk``, and when it ends (a crash, a kill, an exit) starts it
again after a pause that grows while it keeps failing: 1 s, doubling up to
30 s, back to 1 s once it has run for 60 s (:class:`Backoff`).  Each start
and each end is logged (through ``posterm``: to the data directory's log,
``logs/posterm.log``, see :mod:`terminal.logfile`).

The terminal's recovery is not the supervisor's to run: the application
opens its terminal with :func:`terminal.bootstrap.open_terminal`, which
resolves what a crash left unfinished (a payment killed while it waited for
the host is reversed, one killed before its card was read is cancelled)
before anything else happens, and so tells the application what it did.  The
supervisor (or systemd, with ``contrib/systemd/posterm-kiosk.service``) only
makes sure there is an application to do it.  With ``--data-dir`` the
supervisor passes the directory on as ``POSTERM_DATA_DIR``, so that the
application uses the same one (an option of the command itself still wins).

Stopping.  SIGTERM, SIGINT (Ctrl-C) or SIGHUP to the supervisor is passed on
to the application, which is given ``stop_timeout`` seconds (10) to end
before it is killed; then the supervisor ends too (status 0, or 130 after
Ctrl-C).  A second signal kills the application at once.  The application
runs in a process group of its own, so whatever it started is stopped with
it, and what it leaves behind when it crashes is stopped before it starts
again; on Linux it is also told to end (SIGTERM) should the supervisor itself
die, so that a new supervisor never runs a second application beside it.
Being in its own group, it must not read from the terminal.

A command that ends with status 0 is started again too (a kiosk runs until it
is stopped), unless ``exit_on_success`` (``--exit-on-success``): then a clean
exit, such as a technician leaving the kiosk with the technician PIN, ends
the supervisor with status 0.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

__all__ = ["STOP_SIGNALS", "Backoff", "add_commands", "supervise"]

_log = logging.getLogger("ui.supervisor")

STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""The signals that stop the supervisor and its application."""

_POLL_SECONDS: Final = 0.2  # how often the application is looked at (its end, a stop asked for)
_PR_SET_PDEATHSIG: Final = 1


@dataclass(frozen=True)
class Backoff:
    """How long to wait before starting the application again.

    The first restart waits ``first`` seconds and each quick failure after it
    twice as long as the one before, up to ``longest``: a command that cannot
    start does not spin the processor.  An application that ran ``reset_after``
    seconds or more was working: its next restart waits ``first`` again.

    >>> b = Backoff()
    >>> [b.next_delay(d, 2.0) for d in (None, 1.0, 2.0, 16.0, 30.0)], b.next_delay(30.0, 61.0)
    ([1.0, 2.0, 4.0, 30.0, 30.0], 1.0)
    """

    first: float = 1.0
    longest: float = 30.0
    reset_after: float = 60.0

    def next_delay(self, previous: float | None, ran_for: float) -> float:
        """The pause before the next start, after a run of ``ran_for`` seconds that followed a pause of ``previous``."""
        if previous is None or ran_for >= self.reset_after:
            return self.first
        return min(self.longest, previous * 2)


def _how_it_ended(status: int) -> str:
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"was killed by {name}"
    return f"exited with status {status}"


def _death_signal() -> Callable[[], None] | None:
    """A function for the child to run before exec: SIGTERM to it when the supervisor dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return None
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died between fork and prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return set_death_signal


class _Supervisor:
    """One supervision: the loop of :func:`supervise`, with the state its signal handler shares."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        backoff: Backoff,
        stop_timeout: float,
        env: Mapping[str, str] | None,
        exit_on_success: bool,
    ) -> None:
        self.command = list(command)
        self.name = os.path.basename(self.command[0])  # the program's name only: its arguments may hold a secret
        self.backoff = backoff
        self.stop_timeout = stop_timeout
        self.env = dict(env) if env is not None else None
        self.exit_on_success = exit_on_success
        self.stop_signal: int | None = None
        self.signals_seen = 0
        self.child: subprocess.Popen[bytes] | None = None

    # -- signals ---------------------------------------------------------------------------------

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Remember the stop; the loop passes it on (a handler must not race the child's start)."""
        if self.stop_signal is None:
            self.stop_signal = signum
        self.signals_seen += 1

    def _signal_group(self, signum: int) -> None:
        child = self.child
        if child is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signum)

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> int:
        """Start, watch and start again until a stop signal; the supervisor's exit status."""
        delay: float | None = None
        restarts = 0
        preexec = _death_signal()
        while self.stop_signal is None:
            started = time.monotonic()
            try:
                # preexec only calls prctl (no Python lock is taken in the forked child): safe beside threads.
                child = self.child = subprocess.Popen(
                    self.command,
                    env=self.env,
                    process_group=0,
                    preexec_fn=preexec,  # noqa: PLW1509
                )
            except OSError as exc:
                if restarts == 0:  # the very first start: the command itself is wrong
                    from terminal.cli_output import CommandError

                    raise CommandError(f"cannot start {self.command[0]}: {exc.strerror or exc}") from None
                _log.error("kiosk: cannot start %s: %s", self.name, exc.strerror or exc)
                status: int | None = None
            else:
                _log.info(
                    "kiosk: %s started (pid %d)%s", self.name, child.pid, f", restart {restarts}" if restarts else ""
                )
                status = self._watch(child)
            ran_for = time.monotonic() - started
            how = _how_it_ended(status) if status is not None else "did not start"
            if self.stop_signal is not None:
                _log.info("kiosk: %s %s after the stop signal", self.name, how)
                self._finish()
                break
            if status == 0 and self.exit_on_success:
                _log.info("kiosk: %s exited with status 0 after %.1f s; supervision ends", self.name, ran_for)
                self._finish()
                return 0
            delay = self.backoff.next_delay(delay, ran_for)
            restarts += 1
            again = f"starting it again in {delay:g} s (restart {restarts})"
            _log.warning("kiosk: %s %s after %.1f s; %s", self.name, how, ran_for, again)
            resume_at = time.monotonic() + delay  # the pause counts from the end, clearing the group included
            self._finish()
            self._pause_until(resume_at)
        _log.info("kiosk: supervision stopped by %s", signal.Signals(self.stop_signal).name)
        return 130 if self.stop_signal == signal.SIGINT else 0

    def _watch(self, child: subprocess.Popen[bytes]) -> int:
        """Wait for ``child`` to end, passing on a stop; its exit status (negative: the signal that killed it).

        The child is left unreaped (WNOWAIT): while it is a zombie its pid, and so its
        process group's id, cannot be reused, and :meth:`_finish` can clear the group safely.
        """
        forwarded = 0
        stop_deadline: float | None = None
        while True:
            try:
                ended = os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:  # pragma: no cover - reaped by someone else
                return child.wait()
            if ended is not None:
                return ended.si_status if ended.si_code == os.CLD_EXITED else -ended.si_status
            if self.stop_signal is not None:
                if forwarded == 0:
                    _log.info("kiosk: stopping %s (pid %d)", self.name, child.pid)
                    self._signal_group(self.stop_signal)
                    forwarded = self.signals_seen
                    stop_deadline = time.monotonic() + self.stop_timeout
                elif self.signals_seen > forwarded or (stop_deadline is not None and time.monotonic() > stop_deadline):
                    _log.warning("kiosk: %s (pid %d) did not stop: killed", self.name, child.pid)
                    self._signal_group(signal.SIGKILL)
                    stop_deadline = None
                    forwarded = self.signals_seen
            time.sleep(_POLL_SECONDS)

    def _finish(self) -> None:
        """After the application ended: stop what it left in its group, then reap it."""
        child = self.child
        if child is None:
            return
        self._clear_group(child.pid)
        child.wait()
        self.child = None

    def _clear_group(self, group: int) -> None:
        """Stop what the ended application left running in its group (SIGTERM, then SIGKILL after 2 s)."""
        if not _others_in_group(group):
            return
        _log.info("kiosk: stopping what %s left running", self.name)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if not _others_in_group(group):
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)

    def _pause_until(self, moment: float) -> None:
        """Sleep until ``moment`` (monotonic) before the next start, ending at once on a stop signal."""
        while self.stop_signal is None:
            left = moment - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, _POLL_SECONDS))


def _others_in_group(group: int) -> bool:
    """Whether a live process other than the group's leader is in process group ``group`` (Linux /proc).

    Zombies do not count: they are dead, waiting for their parent (or init) to reap them.
    """
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:  # no /proc: assume there may be
        return True
    for pid in pids:
        if int(pid) == group:
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()  # after "pid (comm)": state ppid pgrp ...
        except OSError:
            continue
        if len(fields) > 2 and fields[0] != b"Z" and int(fields[2]) == group:
            return True
    return False


def supervise(
    command: Sequence[str],
    *,
    backoff: Backoff | None = None,
    stop_timeout: float = 10.0,
    env: Mapping[str, str] | None = None,
    exit_on_success: bool = False,
) -> int:
    """Run ``command`` and start it again each time it ends, until SIGTERM, SIGINT or SIGHUP; the exit status.

    Runs in the main thread only (it handles the stop signals, and restores
    their handlers when it returns).  ``env``: the application's environment
    (default: the supervisor's).  Logging goes where the caller set it up;
    ``posterm kiosk supervise`` sets up the data directory's log.  Raises
    :class:`terminal.cli_output.CommandError` when the command cannot be
    started the first time (not found, not executable).
    """
    if not command:
        raise ValueError("no command to supervise")
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("supervise() handles signals: run it in the main thread")
    supervisor = _Supervisor(
        command, backoff=backoff or Backoff(), stop_timeout=stop_timeout, env=env, exit_on_success=exit_on_success
    )
    before = {signum: signal.signal(signum, supervisor.on_signal) for signum in STOP_SIGNALS}
    try:
        return supervisor.run()
    finally:
        child = supervisor.child
        if child is not None and child.poll() is None:  # leaving by an exception: take the application along
            supervisor._signal_group(signal.SIGKILL)
            child.wait()
        for signum, handler in before.items():
            signal.signal(signum, handler)


# -- posterm kiosk supervise ---------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds between 0 and 600")
    return value


def _cmd_supervise(args: argparse.Namespace) -> int:
    from terminal.cli_output import CommandError

    command = list(args.child)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise CommandError("no command to supervise (posterm kiosk supervise -- COMMAND [ARG...])")
    env = None
    if args.data_dir is not None:
        env = {**os.environ, "POSTERM_DATA_DIR": str(Path(args.data_dir).resolve())}
    return supervise(command, stop_timeout=args.stop_timeout, env=env, exit_on_success=args.exit_on_success)


def add_commands(sub: Any) -> None:
    """Add ``kiosk`` (``kiosk supervise``) to the ``posterm`` parser's subcommands."""
    from terminal.cli_output import DATA_DIR_HELP

    kiosk: argparse.ArgumentParser = sub.add_parser("kiosk", help="run the kiosk unattended: supervise")
    ksub = kiosk.add_subparsers(dest="kiosk_command", required=True, metavar="SUBCOMMAND")
    p = ksub.add_parser(
        "supervise",
        help="run a command (the kiosk application) and start it again whenever it ends",
        description="Run COMMAND and start it again whenever it ends (after 1 s, doubling to 30 s while it "
        "keeps failing). SIGTERM, SIGINT or SIGHUP stops the command, then the supervisor. Each start "
        "and end is logged to the data directory's log. Example: "
        "posterm kiosk supervise --data-dir /var/lib/posterm -- posterm ui --kiosk",
    )
    p.add_argument("--data-dir", type=Path, default=None, help=DATA_DIR_HELP + "; given to COMMAND as POSTERM_DATA_DIR")
    p.add_argument(
        "--stop-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long the command has to end after a stop signal before it is killed (default 10)",
    )
    p.add_argument(
        "--exit-on-success",
        action="store_true",
        help="a command that exits with status 0 is not started again: the supervisor ends too",
    )
    p.add_argument("child", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG...]", help="the command to run")
    p.set_defaults(func=_cmd_supervise)
