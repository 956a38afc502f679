"""A private PostgreSQL cluster for the benchmarks, durable, in a folder of its own, stopped afterwards.

As the tests' cluster (tests/postgres_rig.py) is set up: Debian's server
binaries (the newest ``/usr/lib/postgresql/<version>/bin``, or
``$POSTERM_PG_BIN``), a folder under /tmp, and as root the server run as the
``postgres`` user through ``runuser`` (PostgreSQL refuses to run as root).
Unlike the tests' cluster, which turns fsync, full page writes and synchronous
commit off, this one keeps PostgreSQL's durable defaults: the benchmark sets
the host on PostgreSQL against the host on SQLite, whose commits are
``synchronous=FULL``.
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

__all__ = ["ClusterError", "DurableCluster", "durable_cluster"]

_START_SECONDS = 60
_SUPERUSER = "posterm"


class ClusterError(RuntimeError):
    """The cluster could not be set up (the message says why)."""


class DurableCluster:
    """A running cluster on a socket in its folder: databases made, their URLs, stopped at the end."""

    def __init__(self, root: Path, bin_dir: Path, user: str | None, port: int) -> None:
        self.root = root
        self.bin_dir = bin_dir
        self.user = user
        self.port = port
        self.running = False
        self._names = itertools.count(1)

    def _run(self, *argv: str) -> None:
        command = (["runuser", "-u", self.user, "--"] if self.user else []) + list(argv)
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=_START_SECONDS, env=env, cwd=self.root, check=False
        )
        if done.returncode != 0:
            raise ClusterError(f"{Path(argv[0]).name} failed ({done.returncode}): {(done.stdout + done.stderr)[-800:]}")

    def start(self) -> None:
        data = str(self.root / "data")
        self._run(str(self.bin_dir / "initdb"), "-D", data, "-U", _SUPERUSER, "-E", "UTF8", "--no-locale",
                  "--auth-local=trust", "--auth-host=scram-sha-256")  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c max_connections=300"
        self._run(str(self.bin_dir / "pg_ctl"), "-D", data, "-l", str(self.root / "server.log"), "-w", "-t",
                  str(_START_SECONDS), "-o", options, "start")  # fmt: skip
        self.running = True

    def stop(self) -> None:
        """Stop the server and remove its folder (safe twice)."""
        if self.running:
            with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
            self.running = False
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def pid(self) -> int:
        """The postmaster's process id (its backends are its children)."""
        return int((self.root / "data" / "postmaster.pid").read_text().split()[0])

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{_SUPERUSER}@/{database}?host={self.root}&port={self.port}"

    def create_database(self) -> str:
        """A new empty database (the host makes its tables when it opens it); its name."""
        import psycopg

        name = f"bench_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return name


def _bin_dir() -> Path:
    env = os.environ.get("POSTERM_PG_BIN")
    found = [Path(env)] if env else list(Path("/usr/lib/postgresql").glob("*/bin"))
    found = [p for p in found if (p / "initdb").is_file()]
    if not found:
        raise ClusterError("no PostgreSQL server under /usr/lib/postgresql/*/bin (Debian's postgresql package)")
    return max(found, key=lambda p: tuple(int(n) for n in re.findall(r"\d+", p.parent.name)) or (0,))


def durable_cluster() -> DurableCluster:
    """initdb and start a durable private cluster; :class:`ClusterError` when it cannot."""
    bin_dir = _bin_dir()
    user: str | None = None
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                user = name
                break
        if user is None or shutil.which("runuser") is None:
            raise ClusterError("running as root without a 'postgres' user and runuser: cannot start PostgreSQL")
    root = Path(tempfile.mkdtemp(prefix="posterm-bench-pg-", dir="/tmp"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    cluster = DurableCluster(root, bin_dir, user, port)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
