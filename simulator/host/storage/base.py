"""What every engine of the host store offers, the errors it raises, and the small dialect layer.

The host's queries (:class:`~simulator.host.store.HostStore`) are written once,
in portable SQL with ``?`` placeholders; an engine runs them on its database:

- :meth:`Engine.transaction`: one transaction, re-entrant (an inner
  ``transaction()`` joins the outer one);
- :meth:`Engine.one`, :meth:`Engine.all`, :meth:`Engine.execute` (the
  number of rows changed): one statement, inside the caller's transaction if
  there is one, else on its own;
- :meth:`Engine.lock`: inside a transaction, wait until no other
  transaction holds a lock of the same name, and hold it until this one ends
  (what makes a check-then-act safe across processes, see
  :mod:`simulator.host.storage.postgresql`);
- :meth:`Engine.next_reference_number`: the next number of the host's
  reference sequence (unique, increasing; it may skip numbers).

Errors are the engine's own mapped to :class:`StoreError` (the database cannot
be used: the CLI's exit 3), :class:`StoreConflict` (a transaction lost a race
and was rolled back: run it again) and :class:`StoreMissing` (no host
database where one was expected). Their messages never carry a password.
"""

from __future__ import annotations

import abc
import functools
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "POSTGRESQL_SCHEMES",
    "Engine",
    "Location",
    "Row",
    "StoreConflict",
    "StoreError",
    "StoreMissing",
    "ddl_for",
    "format_placeholders",
    "is_postgresql_url",
    "redact",
    "scrub",
    "statements",
]

#: A store's location: a SQLite file (``Path``), or a PostgreSQL URL (``str``).
Location = Path | str
POSTGRESQL_SCHEMES: Final = ("postgresql", "postgres")


class StoreError(Exception):
    """The host database cannot be used."""


class StoreConflict(StoreError):
    """A transaction lost a race with another (serialization failure, deadlock, a key stored meanwhile).

    It was rolled back: nothing it did remains, and running it again is safe.
    """


class StoreMissing(StoreError):
    """No host database where one was expected (a store opened with ``create=False``)."""


Row = tuple[Any, ...]


class Engine(abc.ABC):
    """One database the host store runs its portable SQL on (thread-safe)."""

    #: ``"sqlite"`` or ``"postgresql"``: the dialect of the migrations it runs.
    name: ClassVar[str]
    #: Where the database is, for messages: a file, or a URL without its password.
    where: str

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Begin ... commit (rollback on an exception); an inner one joins the outer."""

    @property
    @abc.abstractmethod
    def in_transaction(self) -> bool:
        """Whether this thread is inside :meth:`transaction`."""

    @abc.abstractmethod
    def one(self, sql: str, args: tuple[Any, ...] = ()) -> Row | None:
        """The first row of a query (``?`` placeholders), or None."""

    @abc.abstractmethod
    def all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Row]:
        """Every row of a query."""

    @abc.abstractmethod
    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        """Run a statement; the number of rows it inserted, changed or deleted."""

    @abc.abstractmethod
    def lock(self, *name: str) -> None:
        """Inside a transaction: hold the lock named by ``name`` until the transaction ends."""

    @abc.abstractmethod
    def next_reference_number(self) -> int:
        """The next number of the host's reference sequence."""

    @abc.abstractmethod
    def has_schema(self) -> bool:
        """Whether the database holds a host's tables already."""

    @abc.abstractmethod
    def has_index(self, name: str) -> bool:
        """Whether the database has an index of this name."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connections (the engine cannot be used afterwards)."""


# ----------------------------------------------------------------------------- locations


def is_postgresql_url(location: Location) -> bool:
    """Whether ``location`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return isinstance(location, str) and location.split(":", 1)[0].lower() in POSTGRESQL_SCHEMES and "://" in location


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def redact(url: str) -> str:
    """The URL with its password (and any ``password=`` parameter) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            userinfo, _, hostinfo = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{hostinfo}"
        query = re.sub(r"(?i)(^|&)(password)=[^&]*", r"\1\2=***", parts.query)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "(an unreadable URL)"


def scrub(message: str, url: str) -> str:
    """``message`` with the URL's password and the URL itself replaced by their redacted forms."""
    out = message.replace(url, redact(url))
    password = _password(url)
    if password:
        out = out.replace(password, "***")
    for match in re.finditer(r"(?i)password=([^&\s]+)", url):
        out = out.replace(match.group(1), "***")
    return " ".join(out.split())  # one line


# ----------------------------------------------------------------------------- dialect


@functools.lru_cache(maxsize=2048)
def format_placeholders(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (and a literal ``%`` as ``%%``), quoted text left alone."""
    out: list[str] = []
    quote: str | None = None
    for char in sql:
        if char == "%":
            out.append("%%")
        elif quote is not None:
            out.append(char)
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        else:
            out.append(char)
    return "".join(out)


#: The portable DDL's words that differ by engine: ``SERIAL_KEY`` (a primary key the
#: database numbers), ``BLOB`` (bytes) and ``INTEGER`` (64 bits on PostgreSQL too).
_DDL_WORDS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "sqlite": ((r"\bSERIAL_KEY\b", "INTEGER PRIMARY KEY"),),
    "postgresql": (
        (r"\bSERIAL_KEY\b", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
        (r"\bBLOB\b", "BYTEA"),
        (r"\bINTEGER\b", "BIGINT"),
    ),
}


def ddl_for(engine: str, sql: str) -> str:
    """Portable DDL in ``engine``'s dialect (see :data:`_DDL_WORDS`)."""
    for pattern, replacement in _DDL_WORDS[engine]:
        sql = re.sub(pattern, replacement, sql)
    return sql


def statements(script: str) -> Iterator[str]:
    """The statements of an SQL script (``;``-separated, ``--`` comments dropped)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    for statement in "\n".join(lines).split(";"):
        if statement.strip():
            yield statement.strip()
