"""Durable and private file writes.

After :func:`atomic_write` returns, the file holds either its old content or
the new one, whatever happens to the process or the power (on a file system
that honours fsync); never a mix, never an empty file.

What a terminal keeps in its data directory (the journal with masked PANs,
amounts and approval codes, keys, logs, the in-process host's database) is
its owner's only: files 0600 in folders 0700, whatever the process's umask.
:func:`private_umask` is for what creates files itself (SQLite, whose
``-wal`` and ``-shm`` files take the database file's mode);
:func:`make_private_dir` for folders; :func:`secure_tree` puts right what an
older posterm left readable by others.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "atomic_write",
    "fsync_dir",
    "make_private_dir",
    "private_umask",
    "secure_tree",
]

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700

_log = logging.getLogger("terminal.files")


class _SharedUmask:
    """The umask is the process's, not a thread's: blocks of :func:`private_umask` on several
    threads share one change, made by the first to enter and undone by the last to leave."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved = 0


_UMASK = _SharedUmask()


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files and folders created in the block are readable by their owner only (umask 077).

    For what creates files itself: SQLite makes the database file (and, in
    WAL mode, ``-wal`` and ``-shm``, with the database's mode).  Another
    thread creating a file meanwhile gets the same mask: only ever stricter.
    """
    with _UMASK.lock:
        if _UMASK.depth == 0:
            _UMASK.saved = os.umask(0o077)
        _UMASK.depth += 1
    try:
        yield
    finally:
        with _UMASK.lock:
            _UMASK.depth -= 1
            if _UMASK.depth == 0:
                os.umask(_UMASK.saved)


def fsync_dir(directory: Path) -> None:
    """Make a rename or creation in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (and parents) if missing; it is readable by its owner only (made so if it was not).

    Missing parents are made with the process's umask: only ``directory``
    itself is the terminal's.
    """
    directory.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    _tighten(directory)


def _tighten(path: Path) -> bool:
    """Take group and other permissions off ``path`` (not following a link); whether it changed."""
    try:
        info = path.lstat()
    except OSError:
        return False
    if stat.S_ISLNK(info.st_mode) or not stat.S_IMODE(info.st_mode) & 0o077:
        return False
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        return False  # not ours to change (and chmod would fail)
    try:
        os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)
    except OSError:
        return False
    return True


def secure_tree(root: Path, names: Iterable[str]) -> list[Path]:
    """Make ``root`` and its entries ``names`` (recursively) their owner's only; what was changed.

    Only the named entries are walked: a data directory chosen by hand may
    hold other files, which are not posterm's to change.  ``root`` itself is
    left alone when it is a shared folder (sticky, as /tmp) or the home
    directory.  Links are not followed; entries of another owner are left.
    """
    changed: list[Path] = []
    home = Path.home() if "HOME" in os.environ else None
    try:
        sticky = bool(root.lstat().st_mode & stat.S_ISVTX)
    except OSError:
        return changed
    if not sticky and (home is None or root.resolve() != home.resolve()) and _tighten(root):
        changed.append(root)
    for name in names:
        top = root / name
        if _tighten(top):
            changed.append(top)
        if not top.is_dir() or top.is_symlink():
            continue
        for folder, dirs, files in os.walk(top, followlinks=False):
            for entry in (*dirs, *files):
                path = Path(folder) / entry
                if _tighten(path):
                    changed.append(path)
    if changed:
        _log.info("made %d file(s) and folder(s) in %s readable by their owner only", len(changed), root)
    return changed


def atomic_write(path: Path, data: bytes, mode: int = PRIVATE_FILE_MODE) -> None:
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
