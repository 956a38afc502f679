"""Shared fixtures: the default terminal configuration, simulated cards, and the host's two store engines.

``host_store_at`` (and ``host_store``, opened on it) is parametrised over the
host store's engines: ``sqlite`` (a file in the test's folder) and
``postgresql`` (a fresh database, copied from the migrated template, in the
session's private cluster, see :mod:`tests.postgres_rig`). The cluster starts
on first use and stops at the end of the session. When it cannot start, the
tests that need it fail with the reason: they are never skipped.

``open_host_store`` opens a store with the test's key store
(``host_store_keys``): a PostgreSQL store needs one named, and every store of
one database must use the same (the database keeps check values of its secrets).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from emv.config import TerminalConfig
from simulator.host.keys import KEYS_DIR, HostKeys
from simulator.host.storage import Location
from simulator.host.store import DB_NAME, HostStore
from tests.postgres_rig import ENGINES, ClusterError, PostgresCluster, start_cluster


def pytest_configure(config: pytest.Config) -> None:
    # pyemv's use of TripleDES warns with recent cryptography; only that warning is filtered.
    warnings.filterwarnings("ignore", message=".*TripleDES.*")


@pytest.fixture(autouse=True)
def sim_wallet_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own state directory for the simulated digital-currency wallets (``$POSTERM_SIM_STATE``).

    A wallet's counter and balance persist across processes (simulator.cbdc.state); without this, tests
    would share the user's state directory and see each other's payments. Subprocesses inherit it.
    """
    folder = tmp_path_factory.mktemp("sim-state")
    monkeypatch.setenv("POSTERM_SIM_STATE", str(folder))
    return folder


@pytest.fixture(scope="session")
def terminal_config() -> TerminalConfig:
    from terminal.settings import load_default_config

    return load_default_config()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """The session's private PostgreSQL cluster (started on first use, stopped at the end)."""
    try:
        cluster = start_cluster()
    except ClusterError as exc:
        reason = str(exc)
    else:
        reason = ""
    if reason:
        pytest.fail(f"PostgreSQL could not be started for the tests: {reason}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture()
def postgres_url(postgres: PostgresCluster) -> Iterator[str]:
    """A fresh database with the host schema, dropped after the test; its URL."""
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture(params=ENGINES)
def host_store_at(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """Where a host store for the test is: a SQLite file, or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return tmp_path / "host-store" / DB_NAME
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture()
def host_store_keys(tmp_path: Path) -> HostKeys:
    """The key store of the test's host store: ``keys/`` beside the SQLite file, the same folder for PostgreSQL.

    A PostgreSQL store has no folder of its own: the host's processes name the key store of the host's
    data directory (``HostStore(url, keys=...)``); every store opened on one database must use the same.
    """
    return HostKeys(tmp_path / "host-store" / KEYS_DIR)


@pytest.fixture()
def open_host_store(host_store_keys: HostKeys) -> Callable[..., HostStore]:
    """``HostStore(location, ...)`` with the test's key store (another with ``keys=``)."""

    def open_store(location: Location, **kwargs: Any) -> HostStore:
        kwargs.setdefault("keys", HostKeys(host_store_keys.directory))
        return HostStore(location, **kwargs)

    return open_store


@pytest.fixture()
def host_store(host_store_at: Location, open_host_store: Callable[..., HostStore]) -> Iterator[HostStore]:
    """A host store on each engine, closed after the test."""
    store = open_host_store(host_store_at)
    try:
        yield store
    finally:
        store.close()
