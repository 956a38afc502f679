"""The parts of :mod:`emv.config` that are not combinations or the terminal: the error, the
exception file, and the checks of one field (each error names the field's dotted path).

>>> _hex("combinations[0].ttq", "3600", 4)
Traceback (most recent call last):
...
emv.config_fields.ConfigError: combinations[0].ttq: must be 4 bytes of hex, got 2
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ConfigError", "ExceptionFile"]


class ConfigError(ValueError):
    """Invalid configuration; ``field`` is the dotted path of the offending entry."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --------------------------------------------------------------------------- exception file

_PAN_RE = re.compile(r"^[0-9]{8,19}$")
_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


def _normalise_pan(pan: str) -> str:
    return pan.strip().upper().rstrip("F")


@dataclass(frozen=True)
class ExceptionFile:
    """PANs the terminal must treat as hot-listed, held as SHA-256 digests only.

    A PAN is never kept in clear in configuration; an entry is
    ``"sha256:" + hex(SHA-256(PAN digits))``.

    >>> ef = ExceptionFile.from_entries([ExceptionFile.entry_for("4761739001010010")])
    >>> ef.contains("4761739001010010"), ef.contains("4761739001010011")
    (True, False)
    >>> ExceptionFile.entry_for("4761739001010010F")[:15]
    'sha256:b0fbd8a9'
    """

    digests: frozenset[str] = frozenset()

    @staticmethod
    def digest(pan: str) -> str:
        """Hex SHA-256 of the PAN digits (a trailing F pad is dropped)."""
        digits = _normalise_pan(pan)
        return hashlib.sha256(digits.encode("ascii")).hexdigest()

    @classmethod
    def entry_for(cls, pan: str) -> str:
        """The configuration entry for ``pan``; raises ValueError when it is not a PAN."""
        if not _PAN_RE.match(_normalise_pan(pan)):
            raise ValueError("not a PAN: 8 to 19 digits expected")
        return "sha256:" + cls.digest(pan)

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> ExceptionFile:
        digests = set()
        for i, entry in enumerate(entries):
            if not isinstance(entry, str) or not entry.startswith("sha256:"):
                raise ConfigError(f"exception_file[{i}]", "entries are 'sha256:<64 hex digits>'")
            hexpart = entry[len("sha256:") :].lower()
            if not _DIGEST_RE.match(hexpart):
                raise ConfigError(f"exception_file[{i}]", "entries are 'sha256:<64 hex digits>'")
            digests.add(hexpart)
        return cls(frozenset(digests))

    def to_entries(self) -> list[str]:
        return sorted("sha256:" + d for d in self.digests)

    def contains(self, pan: str) -> bool:
        if not pan:
            return False
        return self.digest(pan) in self.digests

    def __contains__(self, pan: object) -> bool:
        return isinstance(pan, str) and self.contains(pan)

    def __len__(self) -> int:
        return len(self.digests)


# --------------------------------------------------------------------------- field parsing


def _hex(path: str, value: Any, length: int | Collection[int] | None = None) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    elif isinstance(value, str):
        text = value.replace(" ", "")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ConfigError(path, f"not hex: {value!r}") from None
    else:
        raise ConfigError(path, f"expected a hex string, got {type(value).__name__}")
    if isinstance(length, int) and len(raw) != length:
        raise ConfigError(path, f"must be {length} bytes of hex, got {len(raw)}")
    if length is not None and not isinstance(length, int) and len(raw) not in length:
        raise ConfigError(path, f"length {len(raw)} not allowed (allowed: {sorted(length)})")
    return raw


def _int(path: str, value: Any, lo: int = 0, hi: int = 999_999_999_999) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, f"expected an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ConfigError(path, f"{value} outside {lo}..{hi}")
    return value


def _opt_int(path: str, value: Any) -> int | None:
    return None if value is None else _int(path, value)


def _bool(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"expected true or false, got {value!r}")
    return value


def _str(path: str, value: Any, max_len: int, charset: str = "ans") -> str:
    if not isinstance(value, str):
        raise ConfigError(path, f"expected a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise ConfigError(path, f"longer than {max_len} characters")
    if not value.isascii() or not value.isprintable():
        raise ConfigError(path, "printable ASCII only")
    if charset == "n" and not value.isdigit():
        raise ConfigError(path, "digits only")
    return value


def _check_keys(path: str, d: Mapping[str, Any], known: Iterable[str], required: Iterable[str]) -> None:
    if not isinstance(d, Mapping):
        raise ConfigError(path or "<root>", f"expected an object, got {type(d).__name__}")
    known_set = set(known)
    for key in d:
        if key not in known_set:
            raise ConfigError(f"{path}.{key}" if path else str(key), "unknown field")
    for key in required:
        if key not in d:
            raise ConfigError(f"{path}.{key}" if path else key, "missing")


def _tag_key(path: str, key: Any) -> int:
    try:
        tag = int(str(key), 16)
    except ValueError:
        raise ConfigError(path, f"{key!r} is not a hex tag") from None
    if not 0 < tag <= 0xFFFFFFFF:
        raise ConfigError(path, f"{key!r} is not a tag")
    return tag


def _n_bytes(value: int, length: int) -> bytes:
    return bytes.fromhex(str(value).rjust(length * 2, "0"))
