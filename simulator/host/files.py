"""The host's data directory is its own: the folder 0700, every file in it 0600.

The host keeps records with masked PANs, amounts, approval codes and card
tokens (``host.db`` and its ``-wal`` / ``-shm``), its log, its secrets and
the CA's key; nothing in it is for other users of the machine. Each writer
creates its file private from the first byte (``os.open`` with 0600, or
:func:`terminal.files.atomic_write` with ``0o600``); SQLite gives the
``-wal`` and ``-shm`` files the mode of the database file, which
:func:`private_file` creates before SQLite opens it. :func:`tighten` brings an
existing data directory (made before issue 11, when files were 0644) to the
same modes; the server and the ``posterm host`` commands call it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = ["private_dir", "private_file", "tighten"]


def _owned(st: os.stat_result) -> bool:
    return not hasattr(os, "geteuid") or st.st_uid == os.geteuid()


def private_dir(directory: Path) -> Path:
    """``directory`` made (with its parents) if missing, and 0700 if it is ours.

    A folder that is not ours, or a shared one with the sticky bit (``/tmp``
    given as a data directory by mistake), is left as it is.
    """
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = directory.stat()
    if _owned(st) and not st.st_mode & stat.S_ISVTX and stat.S_IMODE(st.st_mode) != 0o700:
        with contextlib.suppress(OSError):  # a read-only file system: what only reads goes on
            os.chmod(directory, 0o700)
    return directory


def private_file(path: Path) -> Path:
    """``path`` created empty if missing, and 0600 (never readable by others, not even for an instant)."""
    path = Path(path)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    with contextlib.suppress(OSError):  # a file of another user, a read-only file system
        if stat.S_IMODE(path.stat().st_mode) != 0o600:
            os.chmod(path, 0o600)
    return path


def tighten(data_dir: Path) -> None:
    """The data directory and every folder in it 0700, every file 0600 (symbolic links left alone)."""
    root = private_dir(Path(data_dir))
    for here, folders, names in os.walk(root):
        for name in folders:
            path = Path(here) / name
            with contextlib.suppress(OSError):
                st = path.lstat()
                if stat.S_ISDIR(st.st_mode) and _owned(st) and stat.S_IMODE(st.st_mode) != 0o700:
                    os.chmod(path, 0o700)
        for name in names:
            path = Path(here) / name
            with contextlib.suppress(OSError):  # a file that went away meanwhile (a temporary one)
                st = path.lstat()
                if stat.S_ISREG(st.st_mode) and _owned(st) and stat.S_IMODE(st.st_mode) != 0o600:
                    os.chmod(path, 0o600)
