"""The host schema's migrations: numbered SQL files in ``migrations/``, applied once each, at open.

A migration is ``NNNN_what.sql`` (portable DDL, see
:func:`~simulator.host.storage.base.ddl_for`), or ``NNNN_what.sqlite.sql`` /
``NNNN_what.postgresql.sql`` for one engine only (a version with no file for
an engine is recorded there as done, with nothing to do). The table
``schema_version`` lists the versions applied. :func:`upgrade` runs at every
open, in one transaction under ``lock("schema")`` (on SQLite its ``BEGIN
IMMEDIATE``, on PostgreSQL an advisory lock taken before anything is read): of
several workers starting together one upgrades, the others wait and find it
done. A database newer than this code is refused, not downgraded. A SQLite file
of before the numbering is adopted: one without any version mark holds the
tables of migration 1 (which only creates what is missing), one that marked
``schema_version`` = 2 in ``meta`` (the tenancy schema, briefly) is at
migration 3.

To change the schema, add the next file; never edit one that was released
(it has run on databases that will not run it again).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Final

from simulator.host.storage.base import Engine, StoreError, ddl_for, statements

__all__ = ["Migration", "current_version", "migrations", "upgrade"]

_FILE: Final = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(sqlite|postgresql))?\.sql$")
_ENGINES: Final = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Migration:
    """One schema version: its number, name and SQL script per engine (empty: nothing to do there)."""

    version: int
    name: str
    scripts: dict[str, str]

    def script(self, engine: str) -> str:
        return self.scripts.get(engine, "")


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """The migrations shipped with this code, by version (1, 2, ... without gaps); read once."""
    found: dict[int, tuple[str, dict[str, str]]] = {}
    folder = resources.files(__package__ or "simulator.host.storage").joinpath("migrations")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        match = _FILE.match(entry.name)
        if match is None:
            continue
        version, name, only = int(match.group(1)), match.group(2), match.group(3)
        text = entry.read_text(encoding="utf-8")
        _, scripts = found.setdefault(version, (name, {}))
        for engine in (only,) if only else _ENGINES:
            if engine in scripts:
                raise StoreError(f"migration {version:04d} has two scripts for {engine}")
            scripts[engine] = ddl_for(engine, text)
    out = tuple(Migration(v, name, scripts) for v, (name, scripts) in sorted(found.items()))
    if [m.version for m in out] != list(range(1, len(out) + 1)):
        raise StoreError(f"the host's migrations are not numbered 1..{len(out)}: {[m.version for m in out]}")
    return out


#: A version mark in ``meta`` of before the numbering -> the migration such a database is at.
_LEGACY_MARKS: Final = {"2": 3}

_VERSION_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "applied_at TEXT NOT NULL)"
)


def current_version(engine: Engine) -> int:
    """The highest version applied to the database (0 for none)."""
    row = engine.one("SELECT MAX(version) FROM schema_version")
    return 0 if row is None or row[0] is None else int(row[0])


def upgrade(engine: Engine) -> int:
    """Apply the migrations the database has not had (all in one transaction); the version it is at."""
    known = migrations()
    with engine.transaction():
        engine.lock("schema")
        engine.execute(ddl_for(engine.name, _VERSION_TABLE))
        have = current_version(engine)
        if have > len(known):
            raise StoreError(
                f"the host database {engine.where} is at schema version {have}, newer than this posterm's "
                f"({len(known)}): run a posterm at least as new"
            )
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        if have == 0 and engine.has_schema():
            mark = engine.one("SELECT value FROM meta WHERE key = 'schema_version'")
            if mark is not None and str(mark[0]) in _LEGACY_MARKS:
                have = _LEGACY_MARKS[str(mark[0])]
                for migration in known[:have]:
                    _record(engine, migration, now)
                engine.execute("DELETE FROM meta WHERE key = 'schema_version'")
        for migration in known[have:]:
            for statement in statements(migration.script(engine.name)):
                engine.execute(statement)
            _record(engine, migration, now)
        return len(known)


def _record(engine: Engine, migration: Migration, now: str) -> None:
    engine.execute(
        "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
        (migration.version, migration.name, now),
    )
