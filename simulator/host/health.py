"""``GET /healthz`` and ``GET /readyz`` on the host's own port, for a load balancer's probes.

A load balancer's probe has no client certificate, so both answer without one
and say nothing but the verdict: ``200 {"status": "ok"}`` /
``200 {"status": "ready"}``, or ``503 {"status": "not_ready"}``. The reason a
process is not ready goes to its log (once per change), never to the caller.

- ``/healthz``: the process runs its event loop (liveness: restart it if this
  fails);
- ``/readyz``: the store answers a query, the ``down`` fault is off and the
  process listens (readiness: send it traffic only while this is 200).

Injected faults (slow, error, drop) do not apply to them; ``down`` closes the
port, so a probe then gets no connection at all, which a load balancer counts
as not ready. Any other method than GET or HEAD is ``405``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from simulator.host.faults import FaultSwitch
from simulator.host.store import HostStore

__all__ = ["HEALTH_PATHS", "HealthEndpoints", "Readiness"]

HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
_log = logging.getLogger("posterm.host")


class Readiness:
    """Whether this process should get traffic; :meth:`check` is None when ready, else the reason."""

    def __init__(self, store: HostStore, faults: FaultSwitch, listening: Callable[[], bool] | None = None) -> None:
        self.store = store
        self.faults = faults
        self.listening = listening or (lambda: True)
        self._last: str | None = None

    def check(self) -> str | None:
        reason: str | None
        if self.faults.current.down:
            reason = "the down fault is on"
        elif not self.listening():
            reason = "not listening"
        else:
            try:
                self.store.parameters_version()
                reason = None
            except Exception as exc:  # any engine's error: the store does not answer
                reason = f"the store does not answer ({type(exc).__name__})"
        if reason != self._last:
            if reason is None:
                _log.info("ready")
            else:
                _log.warning("not ready: %s", reason)
            self._last = reason
        return reason


def _body(status: str) -> bytes:
    return b'{"status":"' + status.encode("ascii") + b'"}'


class HealthEndpoints:
    """ASGI wrapper: answers the two health paths itself, passes everything else on."""

    def __init__(self, app: ASGIApp, readiness: Readiness) -> None:
        self.app = app
        self.readiness = readiness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path") if scope["type"] == "http" else None
        if path not in HEALTH_PATHS:
            await self.app(scope, receive, send)
            return
        method = scope.get("method")
        if method not in ("GET", "HEAD"):
            status, body = 405, b'{"error":"method_not_allowed","message":"method not allowed on this path"}'
        elif path == "/healthz":
            status, body = 200, _body("ok")
        elif self.readiness.check() is None:
            status, body = 200, _body("ready")
        else:
            status, body = 503, _body("not_ready")
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
