"""``posterm pin``: the supervisor's and the technician's PINs (see :mod:`terminal.pins`).

- ``posterm pin set supervisor|technician [--data-dir DIR]``: choose a PIN.
  From a terminal it is typed twice without echo; when standard input is not
  a terminal (a script, a test) one line is read from it.  Setting a PIN
  lifts a lockout of that role.
- ``posterm pin status [--data-dir DIR] [--json]``: for each role, set or
  not, locked or not (and for how long), tries left; never a PIN or a hash.

Errors follow :mod:`terminal.exit_status`: a PIN the rules refuse, two typed
PINs that differ, nothing given: 2; a PIN file that cannot be read, written
or trusted (a read-only data directory, a damaged file, one others can read): 3.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from terminal.cli_output import DATA_DIR_HELP, CommandError, Unavailable, emit

__all__ = ["add_commands"]

_MAX_LINE = 64  # a PIN is at most 12 digits: a longer line is not a PIN, and is not read on for ever


def _data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir is not None:
        return Path(args.data_dir)
    from terminal.bootstrap import default_data_dir

    return default_data_dir()


def _read_pin(role: str) -> str:
    """The new PIN: typed twice without echo on a terminal, else one line of standard input."""
    if sys.stdin is None:
        raise CommandError("no PIN given: standard input is closed")
    if sys.stdin.isatty():
        import getpass

        try:
            first = getpass.getpass(f"New {role} PIN: ")
            second = getpass.getpass(f"The {role} PIN again: ")
        except EOFError:
            raise CommandError("no PIN given") from None
        if first != second:
            raise CommandError("the two PINs typed differ; nothing was changed")
        return first
    line = sys.stdin.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise CommandError("the line on standard input is too long to be a PIN (4 to 12 digits)")
    pin = line.removesuffix("\n").removesuffix("\r")
    if not pin:
        raise CommandError("no PIN given on standard input")
    return pin


def _cmd_set(args: argparse.Namespace) -> int:
    from terminal.pins import PinFileError, PinStore, pin_problem

    store = PinStore(_data_dir(args))
    pin = _read_pin(args.role)
    problem = pin_problem(pin)
    if problem is not None:
        raise CommandError(f"PIN refused: {problem}; nothing was changed")
    try:
        store.set(args.role, pin)
    except PinFileError as exc:
        raise Unavailable(str(exc)) from None
    emit(args, {"role": args.role, "set": True}, f"{args.role} PIN set")
    return 0


def _status_text(status: Any) -> str:
    from terminal.pins import MAX_TRIES

    if not status.is_set:
        return f"{status.role:<11} not set"
    if status.locked:
        state = f"locked for {status.locked_for} s (after {MAX_TRIES} wrong tries)"
    elif status.tries_left < MAX_TRIES:
        state = f"not locked, {status.tries_left} of {MAX_TRIES} tries left"
    else:
        state = "not locked"
    return f"{status.role:<11} set {status.set_at}, {state}"


def _cmd_status(args: argparse.Namespace) -> int:
    from terminal.pins import ROLES, PinFileError, PinStore

    store = PinStore(_data_dir(args))
    try:
        statuses = [store.status(role) for role in ROLES]
    except PinFileError as exc:
        raise Unavailable(str(exc)) from None
    obj = {"pins": {s.role: s.to_json() for s in statuses}}
    emit(args, obj, "\n".join(_status_text(s) for s in statuses))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None, help=DATA_DIR_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object (errors too)")


def add_commands(sub: Any) -> None:
    """Add ``pin`` (``pin set``, ``pin status``) to the ``posterm`` parser's subcommands."""
    from terminal.pins import ROLES

    pin: argparse.ArgumentParser = sub.add_parser("pin", help="the supervisor's and the technician's PINs: set, status")
    psub = pin.add_subparsers(dest="pin_command", required=True, metavar="SUBCOMMAND")
    pset = psub.add_parser(
        "set",
        help="choose a role's PIN (4 to 12 digits); lifts a lockout",
        description="Choose the PIN of a role: typed twice without echo from a terminal, or read as one "
        "line from standard input when that is not a terminal (for scripts: "
        "'printf 482613 | posterm pin set technician'). Trivial PINs (0000, 1234, 1212) are refused. "
        "It replaces the role's PIN without asking for the old one, and lifts a lockout.",
    )
    pset.add_argument("role", choices=ROLES, help="supervisor (refunds, voids) or technician (diagnostics, kiosk)")
    _common(pset)
    pset.set_defaults(func=_cmd_set)
    pstatus = psub.add_parser("status", help="each role's PIN: set or not, locked or not (never the PIN)")
    _common(pstatus)
    pstatus.set_defaults(func=_cmd_status)
