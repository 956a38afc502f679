"""What every ``posterm`` command shares: its errors, its output, and option types that check values.

Errors are exceptions carrying their exit status (see :mod:`terminal.exit_status`);
:func:`terminal.cli.main` prints them as one line, or as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import errno
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "DATA_DIR_HELP",
    "CommandError",
    "CommandParser",
    "Interrupted",
    "NotDone",
    "Unavailable",
    "UsageError",
    "emit",
    "file_error",
    "iso_moment",
    "port_number",
    "positive_int",
    "write_output",
]

#: The ``--data-dir`` help of every command that works on a terminal's data directory.
DATA_DIR_HELP = "the terminal's data directory (default: $POSTERM_DATA_DIR, else the user data directory)"


class CommandError(Exception):
    """A command that cannot be carried out as asked (unusable input): exit status 2."""


class NotDone(Exception):
    """The command was understood and refused or not completed: exit status 1."""


class Unavailable(Exception):
    """A device, the host or the storage cannot be used: exit status 3."""


class Interrupted(Exception):
    """Ctrl-C: exit status 130; the message says what state the payment is in."""


class UsageError(CommandError):
    """The command line itself is wrong (an unknown option, a value of the wrong type): exit status 2.

    ``prog`` is the (sub)command whose parser refused it, e.g. ``posterm journal list``.
    """

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.prog = prog


class CommandParser(argparse.ArgumentParser):
    """An argument parser that raises :class:`UsageError` instead of printing its usage and exiting.

    argparse's own handling prints the usage and a ``PROG: error:`` line and
    exits; ``posterm`` reports a wrong command line as every other error: one
    ``posterm: error:`` line (and JSON with ``--json``) with exit status 2.
    Sub-parsers are made with the class of their parent, so setting it on the
    top-level parser covers every subcommand.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.prog)


def emit(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    """Print the command's result: one JSON object with ``--json``, else the text."""
    print(json.dumps(obj, indent=1) if getattr(args, "json", False) else text)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def port_number(text: str) -> int:
    """An argparse type: a TCP or UDP port, 1 to 65535.

    >>> port_number("8443")
    8443
    """
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return value


def iso_moment(text: str) -> str:
    """An argparse type: an ISO 8601 date or date and time (UTC when no zone is given), as ISO text.

    >>> iso_moment("2026-01-01")
    '2026-01-01T00:00:00+00:00'
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or time (e.g. 2026-01-01 or 2026-01-01T08:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def file_error(exc: OSError, what: str) -> Exception:
    """The error to raise for an OSError on ``what`` (a file or folder named in the message).

    A path that does not exist or is not what it should be is the user's
    input (:class:`CommandError`, 2); a file system that refuses (read-only,
    full, no permission, an I/O error) makes the storage :class:`Unavailable` (3).
    """
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP):
        return CommandError(f"{what}: {reason}")
    refused = (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM)
    return Unavailable(f"cannot {'write' if exc.errno in refused else 'use'} {what}: {reason}")


def write_output(path_text: str, payload: bytes, *, private: bool = False, option: str = "--output") -> None:
    """Write a command's output file, or refuse with one line saying why (nothing half-written).

    The file is written whole to a temporary file beside it and renamed (see
    :func:`terminal.files.atomic_write`); ``private`` creates it readable by
    its owner only (0600) from the start, for files that hold card data.
    """
    from terminal.files import atomic_write

    path = Path(path_text)
    if path.is_dir():
        raise CommandError(f"{option} {path_text}: is a folder; give a file name")
    parent = path.parent
    if not parent.exists():
        raise CommandError(f"{option} {path_text}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise CommandError(f"{option} {path_text}: {parent} is not a folder")
    try:
        atomic_write(path, payload, 0o600 if private else 0o644)
    except OSError as exc:
        raise CommandError(f"{option} {path_text}: cannot be written ({exc.strerror or exc})") from None
