"""The host store's engines: SQLite (embedded, the default) and PostgreSQL (a fleet of host workers).

:class:`~simulator.host.store.HostStore` holds the host's queries, in portable
SQL; :func:`open_engine` gives it the database a location names:

- a ``Path`` (or ``sqlite:///PATH``): a SQLite file, :mod:`.sqlite`;
- ``postgresql://user@host/db`` (libpq's URL, ``postgres://`` too):
  PostgreSQL with a connection pool, :mod:`.postgresql`.

Both run the same numbered migrations (:mod:`.migrations`) at open. The
engine modules are imported only when used: a SQLite host never loads psycopg.
"""

from __future__ import annotations

from pathlib import Path

from simulator.host.storage.base import (
    Engine,
    Location,
    StoreConflict,
    StoreError,
    StoreMissing,
    is_postgresql_url,
    redact,
)

__all__ = [
    "Engine",
    "Location",
    "StoreConflict",
    "StoreError",
    "StoreMissing",
    "describe",
    "is_postgresql_url",
    "open_engine",
    "parse_location",
]

_SQLITE_PREFIX = "sqlite://"


def parse_location(text: str) -> Location:
    """What ``--store`` / ``POSTERM_HOST_STORE`` names: a PostgreSQL URL, or a SQLite file.

    ``postgresql://...`` and ``postgres://...`` stay URLs; ``sqlite:///abs/path``
    and ``sqlite://rel/path`` are files; any other ``scheme://`` is refused
    (ValueError), anything else is a file path.
    """
    text = text.strip()
    if is_postgresql_url(text):
        return text
    if text.lower().startswith(_SQLITE_PREFIX):
        path = text[len(_SQLITE_PREFIX) :]
        if not path.strip("/"):
            raise ValueError("a sqlite:// store needs a file: sqlite:///path/to/host.db")
        return Path(path)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise ValueError(f"store {scheme}://... is not supported: give a postgresql:// URL or a sqlite:/// file")
    if not text:
        raise ValueError("an empty store location")
    return Path(text)


def describe(location: Location) -> str:
    """The location for a message or a log: a path, or the URL without its password."""
    return redact(location) if isinstance(location, str) else str(location)


def open_engine(location: Location, *, create: bool = True) -> Engine:
    """The engine over ``location``; ``create=False``: a SQLite file that does not exist is StoreMissing."""
    if isinstance(location, str):
        location = parse_location(location)
    if isinstance(location, str):
        from simulator.host.storage.postgresql import PostgresEngine

        return PostgresEngine(location)
    from simulator.host.storage.sqlite import SqliteEngine

    return SqliteEngine(location, create=create)
