"""How much posterm reads from a file it is given, and one reader that keeps to it.

Every file posterm reads may be wrong: a path to ``/dev/zero``, a log file
given where a trace was meant, a copy that was cut short, a folder.  Without a
limit, ``posterm emv replay /dev/zero`` grew to 11 GB in 8 seconds.  So each
kind of input has a size limit below, chosen as a generous multiple of the
largest real file of that kind (the reason is in each docstring), and
:func:`read_input` reads at most that many bytes:

- a path that is missing, a folder, or not a regular file (a device, a pipe,
  a socket) is refused before anything is read: a pipe could block for ever,
  a device could be endless;
- a regular file larger than its limit is refused from its size, unread;
- the bytes read are decoded as UTF-8 and parsed as JSON by
  :func:`read_json_input`, each failure said in one line.

Errors are :class:`InputFileError` (a ``ValueError``): unusable input, exit
status 2 (see :mod:`terminal.exit_status`).  Callers that have an error type
of their own wrap it with their context.

Answers from the network have their limits where they are read
(``host_link.client.MAX_ANSWER_BYTES`` and ``MAX_PARAMETERS_BYTES`` for the
host's answers, ``simulator.host.app.MAX_BODY_BYTES`` for the requests the
simulated host accepts).

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = pathlib.Path(tmp) / "t.json"
...     _ = path.write_text('{"a": 1}')
...     read_json_input(path, 16, "trace")
{'a': 1}
>>> with tempfile.TemporaryDirectory() as tmp:
...     try:
...         read_input(tmp, 16, "trace")
...     except InputFileError as exc:
...         print(str(exc).removeprefix(f"trace {tmp} "))
is a folder, not a file
>>> read_input("/dev/zero", 16, "trace")
Traceback (most recent call last):
...
terminal.limits.InputFileError: trace /dev/zero is not a regular file (a device, a pipe or a socket)
"""

from __future__ import annotations

import errno
import json
import os
import stat
from typing import Any, Final

__all__ = [
    "MAX_BUNDLE_BYTES",
    "MAX_PARAMETERS_FILE_BYTES",
    "MAX_STATE_FILE_BYTES",
    "MAX_TRACE_BYTES",
    "InputFileError",
    "read_input",
    "read_json_input",
]

MAX_TRACE_BYTES: Final = 1 << 20
"""An APDU trace (``emv tap --record``, ``emv replay``, ``sim card TRACE``): 1 MiB.

A contactless transaction is 5 to 20 exchanges of at most 261 + 258 bytes,
written as hex in JSON: under 25 KiB.  A contact transaction reading many
records stays under 100 KiB.  1 MiB is ten times that."""

MAX_BUNDLE_BYTES: Final = 64 << 10
"""A credential bundle (``posterm enrol``): 64 KiB.

It is a URL, ids, a one-time code and the host's CA certificate chain in PEM
(about 1 KiB a certificate; a chain has two or three): under 5 KiB."""

MAX_PARAMETERS_FILE_BYTES: Final = 16 << 20
"""A file of a parameter version, or the document ``posterm host params publish`` serves: 16 MiB.

The same as the largest download the host link accepts
(``host_link.client.MAX_PARAMETERS_BYTES``): a file of a version holds at most
what the host sent.  A real one (AIDs, limits, about a hundred CA keys, an
exception file) is a few hundred KiB."""

MAX_STATE_FILE_BYTES: Final = 64 << 10
"""A small state file in a data directory (``devices.json``, ``enrolment.json``,
``parameters/current.json``): 64 KiB.  Each holds a few lines of JSON."""

_NOT_FOUND = (errno.ENOENT, errno.ENOTDIR)


class InputFileError(ValueError):
    """A file that cannot be used as input; the message names it and says why, in one line."""


def _size_text(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} bytes"


def read_input(path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them, or :class:`InputFileError`.

    ``what`` names the file in messages ("trace", "credential bundle").  The
    file is opened without blocking (a FIFO would otherwise wait for a writer)
    and checked with ``fstat`` on the open descriptor, so what is checked is
    what is read.
    """
    name = f"{what} {os.fspath(path)}"
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in _NOT_FOUND:
            raise InputFileError(f"{name} not found") from None
        raise InputFileError(f"{name} cannot be read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputFileError(f"{name} is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(f"{name} is not a regular file (a device, a pipe or a socket)")
        if info.st_size > limit:
            raise InputFileError(f"{name} is larger than {_size_text(limit)}: not a {what}")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:  # the file may grow while it is read: never more than limit + 1 bytes
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise InputFileError(f"{name} cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise InputFileError(f"{name} is larger than {_size_text(limit)}: not a {what}")
    return b"".join(chunks)


def read_json_input(path: str | os.PathLike[str], limit: int, what: str) -> Any:
    """The JSON document in ``path`` (see :func:`read_input`); not UTF-8 or not JSON is an :class:`InputFileError`."""
    raw = read_input(path, limit, what)
    name = f"{what} {os.fspath(path)}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{name} is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise InputFileError(f"{name} is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{name} is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise InputFileError(f"{name} is not JSON this reader accepts: nested too deeply") from None
