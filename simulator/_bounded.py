"""A bounded read of a JSON file for the card side of the simulator (profiles, traces).

The simulated cards import nothing of the terminal's (an import-linter
contract keeps them independent of the code they test), so they cannot use
:mod:`terminal.limits`; this is the same rule in a few lines: a regular file
only (a device such as ``/dev/zero`` or a pipe is refused before anything is
read), at most ``limit`` bytes, UTF-8, JSON.  Each failure is one line,
raised as the caller's error type.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

__all__ = ["read_json_file"]


def read_json_file(path: str | os.PathLike[str], limit: int, what: str, error: type[Exception]) -> Any:
    """The JSON document in the regular file ``path`` of at most ``limit`` bytes, or ``error(message)``."""
    name = f"{what} {os.fspath(path)}"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{name} not found") from None
    except OSError as exc:
        raise error(f"{name} cannot be read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{name} is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{name} is not a regular file (a device, a pipe or a socket)")
        raw = b""
        if info.st_size <= limit:
            with os.fdopen(os.dup(fd), "rb") as handle:
                raw = handle.read(limit + 1)
        if info.st_size > limit or len(raw) > limit:
            raise error(f"{name} is larger than {limit} bytes: not a {what}")
    except OSError as exc:
        raise error(f"{name} cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{name} is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise error(f"{name} is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise error(f"{name} is not JSON this reader accepts: nested too deeply") from None
