"""The host's store for a test on one engine: SQLite (host.db in the data directory) or a fresh PostgreSQL database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.postgres_rig import PostgresCluster

__all__ = ["engine_store"]


@contextlib.contextmanager
def engine_store(engine: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for ``sqlite``; for ``postgresql`` a new database's URL on the session's cluster, dropped after."""
    if engine == "sqlite":
        yield None
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    database = cluster.create_database()
    try:
        yield cluster.url(database)
    finally:
        cluster.drop_database(database)
