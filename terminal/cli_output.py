"""What every ``posterm`` command shares: its errors, its output, and option types that check values.

Errors are exceptions carrying their exit status (see :mod:`terminal.exit_status`);
:func:`terminal.cli.main` prints them as one line, or as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "CommandError",
    "Interrupted",
    "NotDone",
    "Unavailable",
    "emit",
    "iso_moment",
    "positive_int",
    "write_output",
]


class CommandError(Exception):
    """A command that cannot be carried out as asked (unusable input): exit status 2."""


class NotDone(Exception):
    """The command was understood and refused or not completed: exit status 1."""


class Unavailable(Exception):
    """A device, the host or the storage cannot be used: exit status 3."""


class Interrupted(Exception):
    """Ctrl-C: exit status 130; the message says what state the payment is in."""


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


def write_output(path_text: str, payload: bytes) -> None:
    """Write a command's output file, or refuse with one line saying why (nothing half-written)."""
    path = Path(path_text)
    if path.is_dir():
        raise CommandError(f"--output {path_text}: is a folder; give a file name")
    parent = path.parent
    if not parent.exists():
        raise CommandError(f"--output {path_text}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise CommandError(f"--output {path_text}: the folder {parent} cannot be written")
    temporary = parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as handle:
            handle.write(payload)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise CommandError(f"--output {path_text}: cannot be written ({exc.strerror or exc})") from None
