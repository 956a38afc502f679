"""Durable file writes: a temporary file in the same directory, fsync, rename, fsync of the directory.

After :func:`atomic_write` returns, the file holds either its old content or
the new one, whatever happens to the process or the power (on a file system
that honours fsync); never a mix, never an empty file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["atomic_write", "fsync_dir", "make_private_dir"]


def fsync_dir(directory: Path) -> None:
    """Make a rename or creation in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (and parents) if missing, readable by its owner only."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically and durably; the file is created with ``mode``.

    The temporary file is created with ``os.open(..., mode)`` so that a private
    file (``0o600``) is never readable by others, not even for an instant.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
