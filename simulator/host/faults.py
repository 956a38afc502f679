"""Fault injection and the files the host's processes share in its data directory.

The running server and the other processes (the ``posterm host`` commands, a
test's :class:`~simulator.host.service.HostService`) talk through small JSON
files, written through a temporary file and a rename:

- ``server.json``: written by the server once it listens (pid, bind, port,
  url) and removed when it stops;
- ``faults.json``: the faults wanted, with a ``generation`` number; the server
  polls it every 50 ms;
- ``faults-applied.json``: the generation the server has applied, so that
  :func:`request_faults` returns only once the faults are in force;
- ``workers/<index>.json``: with ``--workers N``, what each worker process
  reports (pid, port, listening, the generation it applied); the supervisor
  writes ``faults-applied.json`` once every live worker applied a generation.

Faults:

- ``down``: the listening socket is closed and every connection is aborted,
  those still in their TLS handshake included, so a client gets ECONNREFUSED
  and nothing is served; it is opened again on the same port when ``down`` is
  switched off (with several workers, by each of them);
- ``slow_ms``: wait that long before answering;
- ``error_status``: answer with that status (500..599) and an error body,
  without processing;
- ``drop_after_request``: read the whole request, then close the connection
  without a byte of response (without processing);
- ``certificate``: ``"expired"`` (issued by the host CA, validity in the past)
  or ``"wrong"`` (issued by another CA) server certificate from the next TLS
  handshake on; ``"good"`` is the normal one.

``only`` limits ``slow_ms``, ``error_status`` and ``drop_after_request`` to
the given paths (``/v1/advices``; a path also covers the paths below it);
``down`` and ``certificate`` act before any path is known and always apply.
Faults do not survive a restart of the server.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from simulator.host.files import private_dir
from terminal.files import atomic_write

__all__ = [
    "APPLIED_FILE",
    "CERTIFICATES",
    "FAULTS_FILE",
    "SERVER_FILE",
    "WORKERS_DIR",
    "FaultError",
    "FaultSwitch",
    "Faults",
    "ServerInfo",
    "acknowledge",
    "atomic_write_json",
    "combine",
    "read_faults",
    "read_worker_status",
    "request_faults",
    "running_server",
    "write_faults",
    "write_worker_status",
]

SERVER_FILE = "server.json"
FAULTS_FILE = "faults.json"
APPLIED_FILE = "faults-applied.json"
WORKERS_DIR = "workers"
CERTIFICATES = ("good", "expired", "wrong")
_POLL_SECONDS = 0.02


class FaultError(ValueError):
    """Faults that cannot be set (a bad value, or the server did not apply them in time)."""


@dataclass(frozen=True)
class Faults:
    """The faults in force; the default is none."""

    down: bool = False
    slow_ms: int = 0
    error_status: int | None = None
    drop_after_request: bool = False
    certificate: str = "good"
    only: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.slow_ms, bool) or not isinstance(self.slow_ms, int) or not 0 <= self.slow_ms <= 600_000:
            raise FaultError(f"slow_ms must be 0..600000, got {self.slow_ms!r}")
        if self.error_status is not None and (
            isinstance(self.error_status, bool)
            or not isinstance(self.error_status, int)
            or not 500 <= self.error_status <= 599
        ):
            raise FaultError(f"error_status must be 500..599, got {self.error_status!r}")
        if self.certificate not in CERTIFICATES:
            raise FaultError(f"certificate must be one of {', '.join(CERTIFICATES)}, got {self.certificate!r}")
        if self.only is not None:
            for path in self.only:
                if not isinstance(path, str) or not path.startswith("/"):
                    raise FaultError(f"--only paths start with '/', got {path!r}")

    @property
    def any(self) -> bool:
        return self != Faults()

    def applies_to(self, path: str) -> bool:
        """Whether the path-limited faults apply to a request for ``path``."""
        if self.only is None:
            return True
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.only)

    def to_json(self) -> dict[str, Any]:
        return {
            "down": self.down,
            "slow_ms": self.slow_ms,
            "error_status": self.error_status,
            "drop_after_request": self.drop_after_request,
            "certificate": self.certificate,
            "only": list(self.only) if self.only is not None else None,
        }

    @classmethod
    def from_json(cls, data: Any) -> Faults:
        if not isinstance(data, dict):
            raise FaultError("faults: expected a JSON object")
        only = data.get("only")
        try:
            return cls(
                down=bool(data.get("down", False)),
                slow_ms=data.get("slow_ms", 0),
                error_status=data.get("error_status"),
                drop_after_request=bool(data.get("drop_after_request", False)),
                certificate=data.get("certificate", "good"),
                only=tuple(only) if isinstance(only, list) else None,
            )
        except TypeError as exc:
            raise FaultError(f"faults: {exc}") from None


@dataclass
class FaultSwitch:
    """The faults in force inside the server process (read per request and per handshake)."""

    current: Faults = field(default_factory=Faults)
    generation: int = 0


@dataclass(frozen=True)
class ServerInfo:
    """What a running server wrote to ``server.json``."""

    pid: int
    bind: str
    port: int
    url: str
    started_at: str
    workers: int = 1
    metrics_url: str | None = None


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically and durably (0600, in a 0700 folder: the data directory is the host's)."""
    private_dir(path.parent)
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"), 0o600)


def _read_json(path: Path) -> Any:
    """A state file of the host's (server.json, faults.json), read bounded; None when missing or unusable."""
    from terminal.limits import MAX_STATE_FILE_BYTES, read_json_input

    try:
        return read_json_input(path, MAX_STATE_FILE_BYTES, "host state file")
    except ValueError:  # InputFileError: missing, not a regular file, too large, not JSON
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    return True


def running_server(data_dir: Path) -> ServerInfo | None:
    """The server of ``data_dir`` if one is running (its ``server.json`` names a live pid)."""
    data = _read_json(Path(data_dir) / SERVER_FILE)
    if not isinstance(data, dict):
        return None
    try:
        info = ServerInfo(
            pid=int(data["pid"]),
            bind=str(data["bind"]),
            port=int(data["port"]),
            url=str(data["url"]),
            started_at=str(data["started_at"]),
            workers=int(data.get("workers", 1)),
            metrics_url=str(data["metrics_url"]) if data.get("metrics_url") else None,
        )
    except (KeyError, TypeError, ValueError):
        return None
    return info if _pid_alive(info.pid) else None


def read_faults(data_dir: Path) -> tuple[int, Faults]:
    """(generation, faults) of ``faults.json``; (0, no faults) when there is none."""
    data = _read_json(Path(data_dir) / FAULTS_FILE)
    if not isinstance(data, dict):
        return 0, Faults()
    generation = data.get("generation", 0)
    return (generation if isinstance(generation, int) else 0), Faults.from_json(data.get("faults", {}))


def write_faults(data_dir: Path, faults: Faults) -> int:
    """Write the wanted faults with the next generation number; returns that number."""
    generation, _ = read_faults(data_dir)
    generation += 1
    atomic_write_json(Path(data_dir) / FAULTS_FILE, {"generation": generation, "faults": faults.to_json()})
    return generation


def acknowledge(data_dir: Path, generation: int) -> None:
    """Called by the server once it applied ``generation``."""
    atomic_write_json(Path(data_dir) / APPLIED_FILE, {"generation": generation})


def _applied(data_dir: Path) -> int:
    data = _read_json(Path(data_dir) / APPLIED_FILE)
    value = data.get("generation", 0) if isinstance(data, dict) else 0
    return value if isinstance(value, int) else 0


def request_faults(data_dir: Path, faults: Faults, *, timeout: float = 10.0) -> bool:
    """Ask the running server for ``faults`` and wait until it applied them.

    Returns False when no server runs (nothing to apply them to; the file is
    written anyway and overwritten at the next start); raises
    :class:`FaultError` when the server did not apply them within ``timeout``.
    """
    generation = write_faults(data_dir, faults)
    deadline = time.monotonic() + timeout
    while True:
        if _applied(data_dir) >= generation:
            return True
        if running_server(data_dir) is None:
            return False
        if time.monotonic() > deadline:
            raise FaultError(f"the host did not apply the faults within {timeout:g} s")
        time.sleep(_POLL_SECONDS)


def write_worker_status(data_dir: Path, index: int, status: dict[str, Any]) -> None:
    """A worker's report to its supervisor (see the module docstring)."""
    atomic_write_json(Path(data_dir) / WORKERS_DIR / f"{index}.json", status)


def read_worker_status(data_dir: Path, index: int) -> dict[str, Any] | None:
    """What worker ``index`` last reported, or None."""
    data = _read_json(Path(data_dir) / WORKERS_DIR / f"{index}.json")
    return data if isinstance(data, dict) else None


def combine(base: Faults, *, only: Sequence[str] | None = None, **changes: Any) -> Faults:
    """``base`` with ``changes`` and the given ``only`` (None: every path)."""
    return replace(base, only=tuple(only) if only else None, **changes)
