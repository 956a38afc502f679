"""Why a serial port could not be opened, in a few words (pyserial nests the OS error in its message).

>>> import errno
>>> open_failure(OSError(errno.ENOENT, "No such file or directory"))
'no such file or directory'
>>> open_failure(ValueError("Not a valid baudrate: -1"))
'Not a valid baudrate: -1'
"""

from __future__ import annotations

__all__ = ["open_failure"]


def open_failure(exc: BaseException) -> str:
    """The innermost OS reason (``no such file or directory``, ``permission denied``), else the message."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and type(seen).__name__ != "SerialException" and seen.strerror:
            return seen.strerror.lower()
        args: tuple[object, ...] = tuple(getattr(seen, "args", ()))
        if len(args) == 2 and isinstance(args[1], str) and type(seen).__name__ != "SerialException":
            return args[1].lower()  # termios.error(errno, text): no strerror
        seen = seen.__context__
    return str(exc)
