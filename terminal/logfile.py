"""The terminal's log file, ``<data_dir>/logs/posterm.log``: small, rotating, card numbers masked.

The ``posterm`` command sets it up for the time one command runs
(:func:`command_logging`); nothing is configured when a module is imported.
Every record passes :class:`PanMaskingFilter`, which masks every run of 12 or
more digits (optionally grouped by spaces or dashes, as a PAN is printed) with
:func:`emv.pan.mask_text` in the message, the traceback and the stack; the
support bundle masks the tail it copies once more (:func:`log_tail`).

>>> import logging
>>> record = logging.LogRecord("x", logging.INFO, "x.py", 1, "card %s declined", ("6759649826438453",), None)
>>> PanMaskingFilter().filter(record), record.getMessage()
(True, 'card 675964******8453 declined')
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from emv.pan import mask_text
from terminal.files import make_private_dir

__all__ = [
    "LOG_BACKUPS",
    "LOG_FILE",
    "LOG_MAX_BYTES",
    "PanMaskingFilter",
    "command_logging",
    "log_tail",
    "open_log_handler",
]

LOG_FILE: Final = Path("logs") / "posterm.log"
LOG_MAX_BYTES: Final = 256 * 1024
LOG_BACKUPS: Final = 2
_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class PanMaskingFilter(logging.Filter):
    """Masks PAN-like digit runs in a record's message, traceback and stack (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: keep the format alone
            message = str(record.msg)
        record.msg = mask_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


class _QuietFileHandler(logging.handlers.RotatingFileHandler):
    """A log file that, when it cannot be written, says so once on standard error and goes quiet.

    logging's own handling prints a traceback for every record that fails (a
    read-only data directory gave five before the command's one clear line).
    """

    failed = False

    def _open(self) -> Any:
        """The log file, made readable by its owner only (it tells what payments were made)."""
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        with contextlib.suppress(OSError):
            info = os.fstat(fd)
            if stat.S_IMODE(info.st_mode) & 0o077:
                os.fchmod(fd, stat.S_IMODE(info.st_mode) & 0o700)  # one an older posterm left readable
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

    def handleError(self, record: logging.LogRecord) -> None:
        if self.failed:
            return
        self.failed = True
        error = sys.exc_info()[1]
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        with contextlib.suppress(Exception):
            sys.stderr.write(f"posterm: note: cannot write the log {self.baseFilename} ({reason}); not logging\n")


def open_log_handler(data_dir: Path, level: int = logging.INFO) -> logging.Handler:
    """A rotating file handler on ``<data_dir>/logs/posterm.log`` with the masking filter (not attached)."""
    path = Path(data_dir) / LOG_FILE
    make_private_dir(Path(data_dir))
    make_private_dir(path.parent)
    handler = _QuietFileHandler(path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8", delay=True)
    handler.setLevel(level)
    handler.addFilter(PanMaskingFilter())
    handler.setFormatter(logging.Formatter(_FORMAT))
    return handler


@contextlib.contextmanager
def command_logging(data_dir: Path | None, level: int = logging.INFO) -> Iterator[logging.Handler | None]:
    """Log to the data directory's file while the block runs; then detach and close the handler.

    The root logger's level is lowered to ``level`` for the block (and put
    back after), so that the packages' INFO records reach the file.  A data
    directory that cannot be written to gives no log file, never an error.
    """
    if data_dir is None:
        yield None
        return
    try:
        handler = open_log_handler(data_dir, level)
    except OSError as exc:
        sys.stderr.write(f"posterm: note: cannot write the log in {data_dir} ({exc.strerror or exc}); not logging\n")
        yield None
        return
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
        handler.close()


def log_tail(data_dir: Path, max_bytes: int = LOG_MAX_BYTES) -> str:
    """The last ``max_bytes`` of the log (rotated files first, oldest first), masked again."""
    base = Path(data_dir) / LOG_FILE
    files = [base.with_name(f"{base.name}.{i}") for i in range(LOG_BACKUPS, 0, -1)] + [base]
    chunks: list[bytes] = []
    for path in files:
        with contextlib.suppress(OSError):
            chunks.append(_tail_of(path, max_bytes))
    data = b"".join(chunks)
    if len(data) > max_bytes:
        data = data[-max_bytes:]
        data = data[data.find(b"\n") + 1 :]  # from the first whole line
    return mask_text(data.decode("utf-8", "replace"))


def _tail_of(path: Path, max_bytes: int) -> bytes:
    """The last ``max_bytes`` of a regular file: a log replaced by something else (huge, a pipe) is not read whole."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return b""
        os.lseek(fd, max(0, info.st_size - max_bytes), os.SEEK_SET)
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(max_bytes)
    finally:
        os.close(fd)
