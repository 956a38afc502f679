"""The supervisor's and the technician's PINs: set, checked, locked after wrong tries.

Two roles have a PIN: ``supervisor`` (refunds and voids at the counter) and
``technician`` (the diagnostics menu, leaving the kiosk).  :class:`PinStore`
keeps them in ``<data_dir>/pins/pins.json``:

- ``set(role, pin)`` replaces a role's PIN (refusing a trivial one with
  :class:`WeakPin` and its reason), and lifts any lockout of that role;
- ``check(role, pin)`` says whether the PIN is right, raising
  :class:`PinLocked` (with the seconds left) while the role is locked and
  :class:`PinNotSet` for a role that has no PIN yet;
- ``is_set(role)`` and ``status(role)`` (a :class:`PinStatus`: set or not,
  tries left, locked and for how long) read without changing anything.

PIN rules (:func:`pin_problem`): 4 to 12 ASCII digits, not all the same digit
(``0000``), not a straight run up or down (``1234``, ``9876``, ``7890``), not a
short group repeated (``1212``, ``123123``).

Lockout: :data:`MAX_TRIES` (5) wrong tries in a row lock the role for
:data:`FIRST_LOCK_SECONDS` (5 minutes); the wrong try that locks it raises
:class:`PinLocked` at once.  When a lock runs out the role has five tries
again, and each further lockout before a right PIN lasts twice as long as the
one before (10, 20, 40 minutes ...), up to :data:`MAX_LOCK_SECONDS` (a day).
A right PIN clears the count and the doubling; so does setting a new PIN (the
``posterm pin set`` command, which needs the machine's shell, is how a
technician lifts a lock early).  The count and the lock are in the file, so
restarting the application does not reset them.  The lock is kept in wall
clock time (a monotonic clock starts again at every boot); a clock set back
never makes a lock longer than it was, a clock set forward ends it early,
which only someone with the machine's own controls can do.

The hash.  Each PIN is stored as ``scrypt(pin, salt, n=2**15, r=8, p=1)``
(:func:`hashlib.scrypt`, OpenSSL's) with a random 16-byte salt per PIN, never
in clear, and compared with :func:`hmac.compare_digest` (constant time).
scrypt rather than PBKDF2: it needs 32 MiB of memory per guess, which is what
makes guessing on GPUs or dedicated hardware costly, while PBKDF2's cost is
computation alone; both are in the standard library.  One check takes about
0.07 s on the 2-core development machine (a kiosk board a few times slower
still checks in well under a second, off the UI thread).  The parameters are
stored with each hash, and a PIN checked right under older ones is hashed
again with the current ones.  A 4-digit PIN has only 10,000 values: whoever
copies the file can try them all in minutes whatever the hash, so what keeps
the PINs is the file's protection (mode 0600, in a 0700 folder; a file that
others can read is refused) and the lockout for guesses at the screen.
Longer PINs cost an offline guesser more (8 digits: days of computation).

A fresh terminal has no PINs: :meth:`PinStore.is_set` is False and
:meth:`PinStore.check` raises :class:`PinNotSet`, never "right" nor "wrong".
The technician sets them with ``posterm pin set supervisor|technician``; an
attended cashier application may ask for a supervisor PIN to be chosen on
the first use of a protected action (``PinStore.set(role, pin, first=True)``,
which never replaces a PIN set meanwhile).  A kiosk must not offer that for
the technician PIN (a customer would choose it): until it is set, the way
out of the kiosk stays shut.  Replacing a PIN that is set is the caller's
decision: the UI checks the old one first; the CLI does not (it runs on the
machine, where the file itself can be removed).

Nothing here logs a PIN or a hash; the log says which role was set, checked
wrong (with the count) or locked.  A PIN file that cannot be read or is not
what this module writes is :class:`PinFileError`: the PINs are then
unusable (protected actions stay shut, never open) until it is repaired or
removed and the PINs set again.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     pins = PinStore(Path(tmp))
...     before = pins.is_set("supervisor")
...     pins.set("supervisor", "4826")
...     before, pins.check("supervisor", "4826"), pins.check("supervisor", "4827")
(False, True, False)
>>> pin_problem("1234")
'a straight run of digits (such as 1234 or 9876)'
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import logging
import math
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

__all__ = [
    "FIRST_LOCK_SECONDS",
    "MAX_LOCK_SECONDS",
    "MAX_TRIES",
    "PIN_FILE",
    "ROLES",
    "PinAlreadySet",
    "PinError",
    "PinFileError",
    "PinLocked",
    "PinNotSet",
    "PinStatus",
    "PinStore",
    "WeakPin",
    "pin_problem",
]

_log = logging.getLogger("terminal.pins")

ROLES: Final = ("supervisor", "technician")
"""The roles that have a PIN."""

PIN_FILE: Final = Path("pins") / "pins.json"
"""Where the PINs are kept, relative to the data directory."""

MAX_TRIES: Final = 5
"""Wrong tries in a row that lock a role."""

FIRST_LOCK_SECONDS: Final = 5 * 60
"""How long the first lockout lasts; each further one before a right PIN lasts twice as long."""

MAX_LOCK_SECONDS: Final = 24 * 60 * 60
"""The longest lockout."""

# scrypt: n=2**15, r=8 is 32 MiB per hash (128 * r * n bytes).
_SCRYPT: Final = {"n": 2**15, "r": 8, "p": 1}
_SALT_BYTES: Final = 16
_HASH_BYTES: Final = 32
_MAXMEM: Final = 128 << 20  # hashlib's default (32 MiB) is just too small for n=2**15, r=8
_FORMAT_VERSION: Final = 1
_MAX_FILE_BYTES: Final = 16 << 10  # two roles take under 1 KiB
_PIN = re.compile(r"[0-9]{4,12}", re.ASCII)
_LOCK_FILE: Final = ".lock"


class PinError(Exception):
    """A PIN could not be set or checked; the message says why (never with the PIN)."""


class WeakPin(PinError):
    """A PIN refused by the rules; :attr:`reason` says which one."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"PIN refused: {reason}")
        self.reason = reason


class PinNotSet(PinError):
    """The role has no PIN yet (a fresh terminal): set one first."""

    def __init__(self, role: str) -> None:
        super().__init__(f"no {role} PIN is set (set it with 'posterm pin set {role}')")
        self.role = role


class PinAlreadySet(PinError):
    """A first PIN was offered (``set(..., first=True)``) for a role that has one already."""

    def __init__(self, role: str) -> None:
        super().__init__(f"a {role} PIN is set already; nothing was changed")
        self.role = role


class PinLocked(PinError):
    """Too many wrong tries: the role is locked for :attr:`seconds_left` more seconds."""

    def __init__(self, role: str, seconds_left: int) -> None:
        super().__init__(
            f"the {role} PIN is locked after {MAX_TRIES} wrong tries; try again in {_duration(seconds_left)}"
        )
        self.role = role
        self.seconds_left = seconds_left


class PinFileError(PinError):
    """The PIN file cannot be read, written or trusted (the PINs are unusable until it is mended)."""


@dataclass(frozen=True)
class PinStatus:
    """What can be told about a role's PIN: never the PIN, never its hash."""

    role: str
    is_set: bool
    set_at: str | None = None
    tries_left: int = MAX_TRIES
    locked_for: int = 0
    """Seconds until the role can be tried again; 0: not locked."""
    lockouts: int = 0
    """Lockouts since the last right PIN (each doubles the next one's length)."""

    @property
    def locked(self) -> bool:
        return self.locked_for > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "set": self.is_set,
            "set_at": self.set_at,
            "locked": self.locked,
            "locked_for_seconds": self.locked_for,
            "tries_left": self.tries_left,
            "lockouts": self.lockouts,
        }


def pin_problem(pin: str) -> str | None:
    """Why ``pin`` would be refused as a new PIN, or None when it is acceptable.

    >>> [pin_problem(p) for p in ("4826", "12a4", "7777", "0987", "1212")]  # doctest: +NORMALIZE_WHITESPACE
    [None, 'a PIN is 4 to 12 digits (0-9)', 'all the same digit',
     'a straight run of digits (such as 1234 or 9876)', 'a short group of digits repeated (such as 1212)']
    """
    if not _PIN.fullmatch(pin):
        return "a PIN is 4 to 12 digits (0-9)"
    if len(set(pin)) == 1:
        return "all the same digit"
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(pin)}
    if steps in ({1}, {9}):
        return "a straight run of digits (such as 1234 or 9876)"
    for size in range(2, len(pin) // 2 + 1):
        if len(pin) % size == 0 and pin == pin[:size] * (len(pin) // size):
            return "a short group of digits repeated (such as 1212)"
    return None


def _duration(seconds: int) -> str:
    """``4 min 10 s``, ``30 s``, ``2 h 0 min``: a lock's time left as a person reads it."""
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds} s"


def _lock_length(lockouts: int) -> int:
    """The length of the ``lockouts``-th lockout (1: the first) in seconds."""
    return int(min(MAX_LOCK_SECONDS, FIRST_LOCK_SECONDS * 2 ** min(lockouts - 1, 32)))


@dataclass
class _Entry:
    """One role's line of the file."""

    params: dict[str, int]
    salt: bytes
    digest: bytes
    set_at: str
    failures: int = 0
    lockouts: int = 0
    locked_at: float | None = None
    lock_seconds: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "kdf": "scrypt",
            **self.params,
            "salt": self.salt.hex(),
            "hash": self.digest.hex(),
            "set_at": self.set_at,
            "failures": self.failures,
            "lockouts": self.lockouts,
            "locked_at": self.locked_at,
            "lock_seconds": self.lock_seconds,
        }

    def seconds_left(self, now: float) -> int:
        """Seconds the role stays locked (0: not locked); a clock set back never lengthens the lock."""
        if self.locked_at is None:
            return 0
        left = min(float(self.lock_seconds), self.locked_at + self.lock_seconds - now)
        return max(0, math.ceil(left))


def _hash(pin: str, salt: bytes, params: dict[str, int]) -> bytes:
    return hashlib.scrypt(
        pin.encode("ascii"),
        salt=salt,
        n=params["n"],
        r=params["r"],
        p=params["p"],
        maxmem=_MAXMEM,
        dklen=_HASH_BYTES,
    )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")


class PinStore:
    """The PINs of one terminal's data directory; see the module documentation.

    Nothing is read or created until a method is called; :meth:`is_set` and
    :meth:`status` never create anything.  A change (a PIN set, a wrong or
    right try) is read, changed and written back under an advisory lock
    (``pins/.lock``), so the kiosk, the ECR server and the CLI may share the
    file; each write is atomic and durable (:func:`terminal.files.atomic_write`).
    ``clock`` (seconds since the epoch) is for tests.
    """

    def __init__(self, data_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._dir = Path(data_dir) / PIN_FILE.parent
        self._path = Path(data_dir) / PIN_FILE
        self._clock = clock

    @property
    def path(self) -> Path:
        """The PIN file (it may not exist yet)."""
        return self._path

    # -- reading ---------------------------------------------------------------------------------

    def is_set(self, role: str) -> bool:
        """Whether ``role`` has a PIN (False on a fresh terminal)."""
        _check_role(role)
        return role in self._read()

    def status(self, role: str) -> PinStatus:
        """Set or not, tries left, locked and for how long: what the UI and ``posterm pin status`` show."""
        _check_role(role)
        entry = self._read().get(role)
        if entry is None:
            return PinStatus(role, is_set=False)
        left = entry.seconds_left(self._clock())
        failures = entry.failures if left or entry.locked_at is None else 0  # a lock that ran out: tries again
        return PinStatus(
            role,
            is_set=True,
            set_at=entry.set_at,
            tries_left=0 if left else MAX_TRIES - failures,
            locked_for=left,
            lockouts=entry.lockouts,
        )

    # -- changing --------------------------------------------------------------------------------

    def set(self, role: str, pin: str, *, first: bool = False) -> None:
        """Make ``pin`` the PIN of ``role`` (replacing any), and lift its lockout.

        Raises :class:`WeakPin` for a PIN the rules refuse (see :func:`pin_problem`).
        ``first``: only if the role has no PIN yet (:class:`PinAlreadySet`
        otherwise, decided under the file's lock): what a screen that offers
        to choose the first PIN should use, so that a PIN set meanwhile (by
        the CLI, by another screen) is never replaced without the old one.
        """
        _check_role(role)
        problem = pin_problem(pin)
        if problem is not None:
            raise WeakPin(problem)
        salt = secrets.token_bytes(_SALT_BYTES)
        entry = _Entry(dict(_SCRYPT), salt, _hash(pin, salt, _SCRYPT), datetime.now(UTC).isoformat(timespec="seconds"))
        with self._locked():
            entries = self._read()
            if first and role in entries:
                raise PinAlreadySet(role)
            entries[role] = entry
            self._write(entries)
        _log.info("%s PIN set", role)

    def check(self, role: str, pin: str) -> bool:
        """Whether ``pin`` is the PIN of ``role``; a wrong one counts towards the lockout.

        Raises :class:`PinNotSet` when the role has no PIN, and
        :class:`PinLocked` while it is locked (the PIN is then not looked at)
        and on the wrong try that locks it.
        """
        _check_role(role)
        if role not in self._read():  # before the lock, whose file a fresh terminal does not have
            raise PinNotSet(role)
        with self._locked():
            entries = self._read()
            entry = entries.get(role)
            if entry is None:  # pragma: no cover - removed in between
                raise PinNotSet(role)
            now = self._clock()
            left = entry.seconds_left(now)
            if left:
                raise PinLocked(role, left)
            if entry.locked_at is not None:  # the lock ran out: five tries again, the doubling kept
                entry.locked_at, entry.lock_seconds, entry.failures = None, 0, 0
            right = _PIN.fullmatch(pin) is not None and hmac.compare_digest(
                _hash(pin, entry.salt, entry.params), entry.digest
            )
            if right:
                changed = entry.failures != 0 or entry.lockouts != 0 or entry.params != _SCRYPT
                if entry.params != _SCRYPT:  # stored under older parameters: hashed again with today's
                    entry.salt = secrets.token_bytes(_SALT_BYTES)
                    entry.params, entry.digest = dict(_SCRYPT), _hash(pin, entry.salt, _SCRYPT)
                entry.failures = entry.lockouts = 0
                if changed:
                    self._write(entries)
                return True
            entry.failures += 1
            if entry.failures < MAX_TRIES:
                self._write(entries)
                _log.warning("%s PIN: wrong try (%d of %d)", role, entry.failures, MAX_TRIES)
                return False
            entry.lockouts += 1
            entry.locked_at, entry.lock_seconds = now, _lock_length(entry.lockouts)
            self._write(entries)
        _log.warning(
            "%s PIN locked for %d s after %d wrong tries (lockout %d)",
            role,
            entry.lock_seconds,
            MAX_TRIES,
            entry.lockouts,
        )
        raise PinLocked(role, entry.lock_seconds)

    # -- the file --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One change at a time, across processes (flock on ``pins/.lock``)."""
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self._dir / _LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            raise PinFileError(f"the PIN folder {self._dir} cannot be used: {exc.strerror or exc}") from None
        try:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - not POSIX
                pass
            else:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> dict[str, _Entry]:
        """The entries by role; {} when there is no file (a fresh terminal)."""
        try:
            fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise PinFileError(f"the PIN file {self._path} cannot be opened: {exc.strerror or exc}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise PinFileError(f"the PIN file {self._path} is not a regular file")
            if os.name == "posix" and info.st_mode & 0o077:
                mode = f"{stat.S_IMODE(info.st_mode):04o}"
                raise PinFileError(
                    f"the PIN file {self._path} has mode {mode}, readable by others; fix with `chmod 600 {self._path}`"
                )
            if info.st_size > _MAX_FILE_BYTES:
                raise PinFileError(f"the PIN file {self._path} is too large to be a PIN file")
            with os.fdopen(os.dup(fd), "rb") as handle:
                data = handle.read(_MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise PinFileError(f"the PIN file {self._path} cannot be read: {exc.strerror or exc}") from None
        finally:
            os.close(fd)
        return self._parse(data)

    def _parse(self, data: bytes) -> dict[str, _Entry]:
        def bad(why: str) -> PinFileError:
            return PinFileError(f"the PIN file {self._path} cannot be used ({why}); remove it and set the PINs again")

        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise bad("not JSON") from None
        if not isinstance(doc, dict) or doc.get("version") != _FORMAT_VERSION or not isinstance(doc.get("roles"), dict):
            raise bad(f"not a version {_FORMAT_VERSION} PIN file")
        entries: dict[str, _Entry] = {}
        for role, item in doc["roles"].items():
            if role not in ROLES or not isinstance(item, dict):
                raise bad(f"unknown role {role!r}")
            try:
                entries[role] = _entry_from(item)
            except (KeyError, TypeError, ValueError) as exc:
                raise bad(f"the {role} entry: {exc}") from None
        return entries

    def _write(self, entries: dict[str, _Entry]) -> None:
        from terminal.files import atomic_write

        doc = {
            "version": _FORMAT_VERSION,
            "roles": {role: entries[role].to_json() for role in ROLES if role in entries},
        }
        try:
            atomic_write(self._path, (json.dumps(doc, indent=1) + "\n").encode("utf-8"), 0o600)
        except OSError as exc:
            raise PinFileError(f"the PIN file {self._path} cannot be written: {exc.strerror or exc}") from None


def _entry_from(item: dict[str, Any]) -> _Entry:
    """An entry read from the file, every field checked (a file edited by hand fails here, not later)."""
    if item.get("kdf") != "scrypt":
        raise ValueError("not an scrypt hash")
    params = {name: item[name] for name in ("n", "r", "p")}
    for name, value in params.items():
        if type(value) is not int:
            raise TypeError(f"{name} is not a whole number")
    n, r, p = params["n"], params["r"], params["p"]
    if not (2**10 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 4 and 128 * r * n <= _MAXMEM // 2):
        raise ValueError("scrypt parameters out of range")
    salt, digest = bytes.fromhex(item["salt"]), bytes.fromhex(item["hash"])
    if len(salt) < 8 or len(digest) != _HASH_BYTES:
        raise ValueError("salt or hash of the wrong length")
    counts = [item.get(name, 0) for name in ("failures", "lockouts", "lock_seconds")]
    if any(type(value) is not int or value < 0 for value in counts):
        raise ValueError("a count that is not a whole number")
    locked_at = item.get("locked_at")
    if locked_at is not None and not isinstance(locked_at, int | float):
        raise TypeError("locked_at is not a time")
    set_at = item.get("set_at")
    if not isinstance(set_at, str):
        raise TypeError("set_at is not text")
    return _Entry(params, salt, digest, set_at, counts[0], counts[1], locked_at, counts[2])
