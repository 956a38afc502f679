"""The connection limits of a host server process: timeouts and caps, with their defaults.

Kept apart from :mod:`simulator.host.connections` (which needs uvicorn) so that
the ``posterm host serve`` parser can show the defaults without loading the server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import resource
from dataclasses import dataclass

__all__ = ["ConnectionLimits"]

_log = logging.getLogger("posterm.host")
_SPARE_FILES = 100  # descriptors kept for the store, logs, certificates and the listening sockets


@dataclass(frozen=True)
class ConnectionLimits:
    """Timeouts (seconds) and caps (0 = none) of one server process; the defaults are the host's."""

    handshake_timeout: float = 10.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 15.0
    max_per_client: int = 256
    max_connections: int = 4096

    def __post_init__(self) -> None:
        for name in ("handshake_timeout", "header_timeout", "body_timeout", "idle_timeout"):
            value = getattr(self, name)
            if not 0 < value <= 3600:
                raise ValueError(f"{name} must be more than 0 and at most 3600 seconds, got {value!r}")
        for name in ("max_per_client", "max_connections"):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"{name} must be 0 (no limit) or more, got {value!r}")

    def fitted(self) -> ConnectionLimits:
        """These limits with ``max_connections`` lowered to what the open-files limit allows (raised first)."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
                soft = hard
        if soft == resource.RLIM_INFINITY:
            return self
        room = max(1, int(soft) - _SPARE_FILES)
        if self.max_connections == 0 or self.max_connections > room:
            _log.warning("max connections lowered to %d: the open-files limit is %d", room, soft)
            return dataclasses.replace(self, max_connections=room)
        return self

    def to_argv(self) -> list[str]:
        """The ``posterm host serve`` options that give these limits (for the worker processes)."""
        return [
            "--handshake-timeout", f"{self.handshake_timeout:g}",
            "--header-timeout", f"{self.header_timeout:g}",
            "--body-timeout", f"{self.body_timeout:g}",
            "--idle-timeout", f"{self.idle_timeout:g}",
            "--max-client-connections", str(self.max_per_client),
            "--max-connections", str(self.max_connections),
        ]  # fmt: skip
