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
        if type(seen).__name__ != "SerialException":  # pyserial's wrapper repeats the path and the inner error
            if isinstance(seen, OSError) and seen.strerror:
                return seen.strerror.lower()
            args: tuple[object, ...] = tuple(seen.args)
            if len(args) == 2 and isinstance(args[1], str):  # termios.error(errno, text): no strerror
                return args[1].lower()
        seen = seen.__context__
    return str(exc)
