"""``posterm sim``: the simulator's devices, started for manual use and for tests.

- ``posterm sim card PROFILE --via vpcd``: a virtual card served to pcscd through
  vsmartcard's vpcd protocol (the reader appears in pyscard as a real reader);
- ``posterm sim card PROFILE --via nfc-udp``: a virtual ISO-DEP card answering
  over nfcpy's udp transport (``nfc:udp:HOST:PORT``);
- ``posterm sim scanner``: a serial QR scanner on a pty (a real serial device path);
- ``posterm sim pinpad --pin 1234``: a serial PIN pad on a pty (:mod:`simulator.pty_pinpad`);
- ``posterm sim printer``: a network ESC/POS printer on a TCP port.

Each runs until interrupted (Ctrl-C or SIGTERM).  Failures follow the
command line's one error contract (:mod:`terminal.exit_status`): one
``posterm: error:`` line, exit status 2 for a card, trace, fault or address
that cannot be used, 3 when the card server cannot run (pcscd cannot be
reached or started, the port is in use).  ``--fault`` injects the
device's faults (see each module).  What a device takes typed on standard
input (the printer's faults) it reads from a terminal only while it is the
terminal's foreground job (:func:`typed_lines`): ``posterm sim printer &``
neither stops on SIGTTIN nor takes the shell's keystrokes.  The devices themselves live in
:mod:`simulator.vpcd`, :mod:`simulator.nfc_udp`, :mod:`simulator.pty_scanner`
and :mod:`simulator.net_printer`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import sys
import threading
from collections.abc import Iterator

from terminal.cli_output import CommandError, port_number

__all__ = ["add_commands", "background_reads_fail", "console_note", "in_foreground", "stdin_fd", "typed_lines"]

_CONSOLE_POLL_SECONDS = 0.2


_FAULT_KEYS = {"remove-after": int, "mute-after": int, "reinsert-after": float}


def _check_card_args(args: argparse.Namespace) -> None:
    """Refuse what the card servers would refuse, in the CLI's one-line form, before anything is started.

    The card or trace must exist (``--second-card`` too), and each ``--fault``
    be one of remove-after=N, mute-after=N, reinsert-after=SECONDS.
    """
    from simulator import cards, profiles
    from simulator.replay import TraceError, load_trace

    for option, spec in (("card", args.card), ("--second-card", args.second_card)):
        if spec is None:
            continue
        try:
            if spec.endswith(".json") or os.sep in spec or os.path.isfile(spec):
                load_trace(spec)
            else:
                cards.check(spec)
        except (profiles.ProfileError, TraceError) as exc:
            raise CommandError(f"{option} {spec}: {exc}") from None
    for fault in args.fault:
        key, sep, value = fault.partition("=")
        kind = _FAULT_KEYS.get(key)
        try:
            number = kind(value) if kind is not None and sep else -1
        except ValueError:
            number = -1
        if number < 0:
            raise CommandError(f"--fault {fault!r}: expected remove-after=N, mute-after=N or reinsert-after=SECONDS")


def _cmd_card(args: argparse.Namespace) -> int:
    _check_card_args(args)
    if args.via == "vpcd":
        from simulator import vpcd

        return vpcd.serve_card_cli(args)
    from simulator import nfc_udp

    return nfc_udp.serve_card_cli(args)


def _cmd_scanner(args: argparse.Namespace) -> int:
    from simulator import pty_scanner

    return pty_scanner.serve_scanner_cli(args)


def _cmd_pinpad(args: argparse.Namespace) -> int:
    from simulator import pty_pinpad

    return pty_pinpad.serve_pinpad_cli(args)


def _cmd_printer(args: argparse.Namespace) -> int:
    from simulator import net_printer

    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port {args.port} is not a port number (0 to 65535; 0 picks a free one)")

    return net_printer.serve_printer_cli(args)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = sub.add_parser(
        "sim", help="start a simulated device: a card on pcscd or nfc-udp, a scanner, a printer, a PIN pad"
    )
    sim_sub = sim.add_subparsers(dest="sim_command", required=True, metavar="DEVICE")

    card = sim_sub.add_parser("card", help="serve a simulated card (profile name or a trace file) to a reader stack")
    card.add_argument("card", help="card profile (see 'posterm emv cards') or TRACE.json for the replay card")
    card.add_argument("--via", choices=["vpcd", "nfc-udp"], required=True, help="which stack the card talks to")
    card.add_argument("--second-card", help="a second card in the field at the same time (nfc-udp)")
    card.add_argument("--bind", default="127.0.0.1", help="address (vpcd: pcscd's, nfc-udp: the card's)")
    card.add_argument("--port", type=port_number, help="port (vpcd: 35963 for slot 0; nfc-udp: 54329)")
    card.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="FAULT",
        help="remove-after=N (card leaves after N commands), mute-after=N (stops answering), "
        "reinsert-after=SECONDS (comes back after a removal); repeatable",
    )
    card.add_argument(
        "--state-dir",
        metavar="DIR",
        help="a digital-currency wallet's state directory (default: $POSTERM_SIM_STATE, else the user state directory)",
    )
    card.set_defaults(func=_cmd_card)

    scanner = sim_sub.add_parser("scanner", help="a serial QR scanner on a pty, sending codes")
    printer = sim_sub.add_parser("printer", help="a network ESC/POS printer on a TCP port, capturing jobs")
    pinpad = sim_sub.add_parser("pinpad", help="a serial PIN pad on a pty (posterm-pinpad protocol, DUKPT PIN blocks)")
    from simulator import net_printer, pty_pinpad, pty_scanner
    from simulator.wallet_cli import add_wallet_commands

    pty_scanner.add_scanner_arguments(scanner)
    scanner.set_defaults(func=_cmd_scanner)
    pty_pinpad.add_pinpad_arguments(pinpad)
    pinpad.set_defaults(func=_cmd_pinpad)
    net_printer.add_printer_arguments(printer)
    printer.set_defaults(func=_cmd_printer)
    add_wallet_commands(sim_sub)
    from simulator import screen_pinpad_key

    pinpad_key = sim_sub.add_parser(
        "pinpad-key", help="load the simulator's test keys into the on-screen PIN pad of posterm ui (screen:)"
    )
    screen_pinpad_key.add_arguments(pinpad_key)
    pinpad_key.set_defaults(func=screen_pinpad_key.run)


# -- what the devices read typed on standard input ------------------------------------------------------------------


def in_foreground(fd: int) -> bool:
    """Whether ``fd`` is a terminal whose foreground process group is this process's (what is typed is for us).

    A job started with ``&``, or sent to the background, is not: reading the
    terminal would stop it (SIGTTIN) or take keystrokes meant for the shell.
    """
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:  # not a terminal, or closed
        return False


def stdin_fd() -> int | None:
    """Standard input's file descriptor; None when there is none to read."""
    try:
        return sys.stdin.fileno() if sys.stdin is not None else None
    except (OSError, ValueError):  # closed, or not a real file
        return None


def console_note(fd: int | None) -> str:
    """A prefix for "type ..." hints: on a terminal in the background, typing waits for ``fg``."""
    if fd is not None and os.isatty(fd) and not in_foreground(fd):
        return "in the foreground (fg), "
    return ""


@contextlib.contextmanager
def background_reads_fail() -> Iterator[None]:
    """SIGTTIN ignored while it lasts: a terminal read from the background fails (EIO) instead of stopping us.

    :func:`typed_lines` does not read in the background, but a job sent there
    between its check and its read would otherwise stop.  Handlers are set in
    the main thread only; elsewhere this does nothing.
    """
    try:
        previous = signal.signal(signal.SIGTTIN, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTTIN, previous)


def typed_lines(fd: int, stop: threading.Event) -> Iterator[str]:
    """Lines from ``fd`` until its end or ``stop``; a terminal only while this process is in its foreground.

    Pipes and files are read as they come (a program feeding input); a
    terminal is looked at every 0.2 s and read only in the foreground, and
    only when select() found input waiting: a read blocked across a move to
    the background would take the next line typed to the shell.
    """
    console = os.isatty(fd)
    pending = b""
    while not stop.is_set():
        if console and not in_foreground(fd):
            stop.wait(_CONSOLE_POLL_SECONDS)
            continue
        try:
            readable, _, _ = select.select([fd], [], [], _CONSOLE_POLL_SECONDS)
            if not readable or (console and not in_foreground(fd)):  # sent to the background meanwhile
                continue
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: in the background after all (SIGTTIN ignored); EBADF: closed
            if not console:
                return
            stop.wait(_CONSOLE_POLL_SECONDS)
            continue
        if not chunk:  # the end: a last line without its newline counts too
            if pending:
                yield pending.decode(errors="replace")
            return
        *lines, pending = (pending + chunk).split(b"\n")
        yield from (line.decode(errors="replace") for line in lines)
