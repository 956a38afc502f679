"""A private PostgreSQL cluster for the tests, in a temporary folder, stopped and removed afterwards.

Debian's server binaries are under ``/usr/lib/postgresql/<version>/bin`` (not on
PATH): the highest version there is used, or ``$POSTERM_PG_BIN``. PostgreSQL
refuses to run as root, so as root the cluster belongs to an unprivileged user
(``postgres``, which Debian's package creates, else ``nobody``) and every
server command runs through ``runuser``; the temporary folder is given to that
user.

The cluster listens on a socket in its folder and on 127.0.0.1 at a free port;
the socket trusts its users (the superuser ``posterm``), TCP asks for a
password (SCRAM), so a test can try a wrong one. It runs with ``fsync=off``:
these databases need not survive a power cut. Databases are made by ``CREATE
DATABASE ... TEMPLATE``, from a template that has the host schema already.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["ENGINES", "ClusterError", "PostgresCluster", "find_bin_dir", "start_cluster"]

#: The host store's engines, the parameters of the tests that run on each.
ENGINES = ["sqlite", "postgresql"]
SUPERUSER = "posterm"
TEMPLATE = "posterm_host_template"
_START_SECONDS = 60


class ClusterError(RuntimeError):
    """The private cluster could not be set up (the message says why, with the server's log)."""


def find_bin_dir() -> Path:
    """``$POSTERM_PG_BIN``, else the newest ``/usr/lib/postgresql/<version>/bin`` that has ``initdb``."""
    env = os.environ.get("POSTERM_PG_BIN")
    if env:
        path = Path(env)
        if not (path / "initdb").is_file():
            raise ClusterError(f"POSTERM_PG_BIN={env} has no initdb")
        return path
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").is_file()]

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", p.parent.name)) or (0,)

    if not found:
        raise ClusterError(
            "no PostgreSQL server under /usr/lib/postgresql/*/bin: install Debian's postgresql package "
            "('make test' as root does), or set POSTERM_PG_BIN"
        )
    return max(found, key=version)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> str | None:
    """The user to run the server as when we are root (None: as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ClusterError("running as root, and there is neither a 'postgres' nor a 'nobody' user to run PostgreSQL as")


class PostgresCluster:
    """A running private cluster: URLs of its databases, and databases made and dropped."""

    def __init__(self, root: Path, bin_dir: Path, user: str | None, port: int) -> None:
        self.root = root
        self.bin_dir = bin_dir
        self.user = user
        self.port = port
        self.data = root / "data"
        self.log = root / "server.log"
        self._names = itertools.count(1)
        self.running = False

    # ------------------------------------------------------------------ commands

    def _command(self, *argv: str) -> list[str]:
        return (["runuser", "-u", self.user, "--"] if self.user else []) + list(argv)

    def _run(self, *argv: str, timeout: float = _START_SECONDS) -> None:
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        result = subprocess.run(
            self._command(*argv), capture_output=True, text=True, timeout=timeout, env=env, cwd=self.root, check=False
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise ClusterError(f"{Path(argv[0]).name} failed ({result.returncode}): {output}\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def start(self) -> None:
        initdb = str(self.bin_dir / "initdb")
        self._run(
            initdb, "-D", str(self.data), "-U", SUPERUSER, "-E", "UTF8", "--no-locale", "--no-sync",
            "--auth-local=trust", "--auth-host=scram-sha-256",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c full_page_writes=off "
            "-c synchronous_commit=off -c max_connections=300"
        )
        pg_ctl = str(self.bin_dir / "pg_ctl")
        wait = str(_START_SECONDS)
        self._run(pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-t", wait, "-o", options, "start")
        self.running = True

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove the folder; safe to call twice."""
        if self.running:
            with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.running = False
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ databases

    def url(self, database: str = "postgres", *, user: str = SUPERUSER) -> str:
        """The URL of a database over the cluster's socket (no password: the socket trusts)."""
        return f"postgresql://{user}@/{database}?host={self.root}&port={self.port}"

    def tcp_url(self, database: str, user: str, password: str) -> str:
        """The URL of a database over TCP, where a password is checked."""
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]  # the tests' own statements

    def create_database(self, *, template: str | None = TEMPLATE) -> str:
        """A new database (a copy of ``template``: the host schema; None: empty); its name."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        source = template or "template0"
        self.sql(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_cluster() -> PostgresCluster:
    """initdb + start a private cluster in a new temporary folder, with the host template; ClusterError if not."""
    bin_dir = find_bin_dir()
    user = _server_user()
    if user is not None and shutil.which("runuser") is None:
        raise ClusterError("running as root without runuser (util-linux): cannot start PostgreSQL as another user")
    # /tmp rather than $TMPDIR: the server's user must reach the folder, and its socket's path must stay short
    base = "/tmp" if os.access("/tmp", os.W_OK | os.X_OK) else None
    root = Path(tempfile.mkdtemp(prefix="posterm-pg-", dir=base))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = PostgresCluster(root, bin_dir, user, _free_port())
    try:
        cluster.start()
        cluster.sql(f'CREATE DATABASE "{TEMPLATE}"')
        from simulator.host.storage import open_engine
        from simulator.host.storage.migrations import upgrade

        engine = open_engine(cluster.url(TEMPLATE))  # migrated once; every test database is a copy
        try:  # the tables only: a HostStore opened on a copy makes its own key check values
            upgrade(engine)
        finally:
            engine.close()
    except BaseException as exc:
        cluster.stop()
        if isinstance(exc, ClusterError | OSError | subprocess.SubprocessError):
            raise ClusterError(str(exc)) from exc
        raise
    return cluster
