"""``posterm host ...`` on PostgreSQL: ``--store`` and ``POSTERM_HOST_STORE``, their errors, and never a password.

The commands run as subprocesses (the ``posterm`` of this interpreter's
environment) against the session's private PostgreSQL cluster
(tests/conftest.py): over its socket (trusted), and over TCP with a role and a
password (SCRAM), so a wrong password is really refused by the server.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator.host.service import start_host
from simulator.host.store import STORE_ENV
from tests.postgres_rig import PostgresCluster

POSTERM = str(Path(sys.executable).with_name("posterm"))
SECRET = "Xq7-never-shown-9Zp"
_roles = itertools.count(1)


def posterm(*args: object, store_env: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != STORE_ENV}
    if store_env is not None:
        env[STORE_ENV] = store_env
    return subprocess.run(
        [POSTERM, *map(str, args)], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def one_line_error(proc: subprocess.CompletedProcess[str], status: int, *words: str) -> str:
    """The command failed with ``status`` and said why in one line, with ``words``, no traceback, no secret."""
    said = proc.stderr.strip()
    assert proc.returncode == status, (proc.returncode, proc.stdout, proc.stderr)
    assert len(said.splitlines()) == 1 and "Traceback" not in said, said
    assert SECRET not in proc.stdout + proc.stderr
    for word in words:
        assert word in said, said
    return said


@dataclass(frozen=True)
class Fleet:
    """A database owned by a role that logs in over TCP with a password."""

    cluster: PostgresCluster
    role: str
    database: str

    def url(self, password: str = SECRET) -> str:
        return self.cluster.tcp_url(self.database, self.role, password)


@pytest.fixture()
def fleet(postgres: PostgresCluster) -> Iterator[Fleet]:
    role = f"fleet_{os.getpid()}_{next(_roles)}"
    postgres.sql(f"CREATE ROLE {role} LOGIN PASSWORD '{SECRET}'")
    database = postgres.create_database(template=None)
    postgres.sql(f'ALTER DATABASE "{database}" OWNER TO {role}')
    try:
        yield Fleet(postgres, role, database)
    finally:
        postgres.drop_database(database)
        postgres.sql(f"DROP ROLE IF EXISTS {role}")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when we return: nothing listens there


def test_the_host_commands_keep_their_books_in_the_store_given(fleet: Fleet, tmp_path: Path) -> None:
    data = tmp_path / "host"
    url = fleet.url()
    made = posterm("host", "enrol-code", "--terminal-id", "T1", "--merchant-id", "M1", "--url", "https://h.test:1",
                   "--data-dir", data, "--store", url)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["enrolment_code"]
    assert posterm("host", "issuer", "velocity", "3", "60", "--data-dir", data, store_env=url).returncode == 0
    status = posterm("host", "status", "--json", "--data-dir", data, "--store", url)
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["velocity"] == {"max_approvals": 3, "window_seconds": 60}
    assert shown["store"] == fleet.url("***") and SECRET not in status.stdout
    assert not (data / "host.db").exists()  # nothing went to SQLite
    # without --store (nor the variable), the data directory's own host.db: there is none
    one_line_error(posterm("host", "status", "--data-dir", data), 2, "no simulated host")
    # --store beats the variable
    beaten = posterm("host", "status", "--json", "--data-dir", data, "--store", url, store_env="mysql://x")
    assert beaten.returncode == 0, beaten.stderr


def test_a_server_that_does_not_answer_is_exit_3_in_one_line(tmp_path: Path) -> None:
    url = f"postgresql://fleet:{SECRET}@127.0.0.1:{closed_port()}/host"
    for command in (["status"], ["records"], ["issuer", "velocity", "1", "60"], ["serve", "--port", "0"]):
        said = one_line_error(posterm("host", *command, "--data-dir", tmp_path, "--store", url), 3, "127.0.0.1")
        assert "fleet:***@" in said
    one_line_error(posterm("host", "status", "--data-dir", tmp_path, store_env=url), 3, "cannot open")


def test_a_refused_login_is_exit_3_in_one_line(fleet: Fleet, tmp_path: Path) -> None:
    wrong = fleet.url(SECRET[::-1])
    proc = posterm("host", "status", "--data-dir", tmp_path, "--store", wrong)
    one_line_error(proc, 3, "password authentication failed")
    assert SECRET[::-1] not in proc.stderr


def test_a_url_libpq_refuses_is_exit_3_and_another_kind_of_store_exit_2(tmp_path: Path) -> None:
    bad = f"postgresql://u:{SECRET}@127.0.0.1:notaport/db"
    one_line_error(posterm("host", "status", "--data-dir", tmp_path, "--store", bad), 3, "cannot open")
    one_line_error(posterm("host", "status", "--data-dir", tmp_path, "--store", "mysql://u@h/db"), 2, "mysql://")
    one_line_error(posterm("host", "serve", "--data-dir", tmp_path, "--store", "mysql://u@h/db"), 2, "mysql://")


def test_looking_at_a_database_without_a_host_does_not_make_one(fleet: Fleet, tmp_path: Path) -> None:
    for command in (["status"], ["records"], ["issuer", "show"], ["params", "show"]):
        one_line_error(posterm("host", *command, "--data-dir", tmp_path, "--store", fleet.url()), 2,
                       "no simulated host in the database")
    import psycopg

    with psycopg.connect(fleet.url()) as conn:
        assert conn.execute("SELECT to_regclass('meta')").fetchone() == (None,)


def test_the_server_on_postgresql_never_shows_its_password(fleet: Fleet, tmp_path: Path) -> None:
    """Not in its command line (any user can read it), not in its log, not in status."""
    data = tmp_path / "host"
    with start_host(data, store=fleet.url()) as host:
        with open(f"/proc/{host.pid}/cmdline", "rb") as fh:
            assert SECRET.encode() not in fh.read()
        assert host.status()["store"] == fleet.url("***")
        bundle = host.credential_bundle("T9", "M9")
        assert bundle["enrolment_code"]
    assert SECRET not in host.log_path.read_text()
    assert not (data / "host.db").exists()


def test_without_postgresql_its_tests_fail_with_the_reason_never_skip(tmp_path: Path) -> None:
    """The suite's own promise: a machine where PostgreSQL cannot start fails those tests, loudly."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "POSTERM_PG_BIN": str(tmp_path / "no-postgresql-here")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs",
         "tests/unit/test_host_store.py::test_references_are_unique_and_increasing"],
        cwd=root, capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode != 0, proc.stdout
    assert "ERROR tests/unit/test_host_store.py::test_references_are_unique_and_increasing[postgresql]" in proc.stdout
    assert "SKIP" not in proc.stdout.upper(), proc.stdout
    assert "PostgreSQL could not be started for the tests" in proc.stdout and "has no initdb" in proc.stdout
