"""The host's Prometheus metrics (prometheus-client), and the plain-HTTP endpoint that serves them.

Every metric is listed, with what to alert on, in docs/operations.md. They are
made per :class:`HostMetrics` instance on its own registry (nothing at import
time, and several hosts in one test process do not collide). Three sources:

- the HTTP layer (:class:`RequestMetrics`, an ASGI wrapper): requests by path,
  method and status, and their latency;
- the host's replies, read in the app layer (:meth:`HostMetrics.observe_reply`):
  authorisations and declines by response code, advices, reversals, replays,
  duplicate refusals and batch closes out of balance;
- the connections (:mod:`simulator.host.connections` calls the
  :class:`~simulator.host.connections.ConnectionObserver` methods): open
  connections, refusals, handshake failures and timeouts.

With several workers (``posterm host serve --workers N``) each worker runs
prometheus-client in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, a private
directory the supervisor makes and removes) and the supervisor serves the sum
(:func:`multiprocess_registry`). The endpoint is plain HTTP on its own port,
by default on loopback only: it reveals volumes, not card data.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "DUPLICATE_CODES",
    "KNOWN_PATHS",
    "HostMetrics",
    "MetricsEndpoint",
    "RequestMetrics",
    "multiprocess_registry",
    "start_metrics_endpoint",
]

#: Paths counted under their own name; anything else is counted as ``other`` (no label per probe of a scanner).
KNOWN_PATHS = frozenset(
    {
        "/v1/enrol",
        "/v1/sign-on",
        "/v1/echo",
        "/v1/authorisations",
        "/v1/advices",
        "/v1/reversals",
        "/v1/batches/close",
        "/v1/parameters",
        "/v1/openapi.json",
        "/healthz",
        "/readyz",
        "/v1/qr/payments",
        "/v1/qr/payments/cancel",
        "/v1/qr/orders",
        "/v1/qr/orders/close",
        "/v1/qr/refunds",
    }
)
#: The QR queries, counted by their template (never one label per order).
_QUERY_PREFIXES = {"/v1/qr/payments/": "/v1/qr/payments/{reference}", "/v1/qr/orders/": "/v1/qr/orders/{order_id}"}


def _path_label(path: str) -> str:
    """A request's path label: a known path, a QR query's template, else ``other``.

    >>> _path_label("/v1/qr/orders/Q0000000042AB12CD"), _path_label("/v1/qr/orders/close"), _path_label("/v1/x")
    ('/v1/qr/orders/{order_id}', '/v1/qr/orders/close', 'other')
    """
    if path in KNOWN_PATHS:
        return path
    for prefix, template in _QUERY_PREFIXES.items():
        rest = path.removeprefix(prefix)
        if rest != path and rest and "/" not in rest:
            return template
    return "other"

#: Response codes that refuse a duplicate: 94 (duplicate transmission: a transaction approved already).
DUPLICATE_CODES = frozenset({"94"})
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class HostMetrics:
    """The host's metrics on a registry of their own (see docs/operations.md for each)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "posterm_host_requests", "HTTP requests answered, by path, method and status", ["path", "method", "status"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "posterm_host_request_duration_seconds", "Time from the request's start to the end of the answer, by path",
            ["path"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.authorisations = Counter(
            "posterm_host_authorisations", "Authorisations processed (not replays), by kind and outcome",
            ["kind", "outcome"], registry=r,
        )  # fmt: skip
        self.declines = Counter(
            "posterm_host_declines", "Declines of authorisations and deferred authorisation advices, by response code",
            ["message", "response_code"], registry=r,
        )  # fmt: skip
        self.advices = Counter(
            "posterm_host_advices", "Advices processed (not replays), by kind and outcome (accepted/declined/rejected)",
            ["kind", "outcome"], registry=r,
        )  # fmt: skip
        self.reversals = Counter(
            "posterm_host_reversals", "Reversals processed, by result (reversed/nothing_to_reverse)", ["result"],
            registry=r,
        )  # fmt: skip
        self.replays = Counter(
            "posterm_host_replays", "Repeats answered with the first answer (idempotency), by message", ["message"],
            registry=r,
        )  # fmt: skip
        self.duplicates = Counter(
            "posterm_host_duplicate_refusals",
            "Duplicates refused: idempotency_conflict, advice_key_conflict, batch_conflict, duplicate_transaction",
            ["reason"], registry=r,
        )  # fmt: skip
        self.batch_closes = Counter(
            "posterm_host_batch_closes", "Batch closes, by whether the terminal's totals matched the host's",
            ["in_balance"], registry=r,
        )  # fmt: skip
        self.settlement_differences = Counter(
            "posterm_host_settlement_differences", "Lines (currency, kind) that differed in batch closes", registry=r
        )
        self.qr = Counter(
            "posterm_host_qr", "QR messages processed (not replays), by message, status and reason",
            ["message", "status", "reason"], registry=r,
        )  # fmt: skip
        gauge_mode: dict[str, Any] = {"multiprocess_mode": "livesum"} if _multiprocess() else {}
        self.open_connections = Gauge(
            "posterm_host_open_connections", "TCP connections open now (handshaking ones included)", registry=r,
            **gauge_mode,
        )  # fmt: skip
        down_mode: dict[str, Any] = {"multiprocess_mode": "livemax"} if _multiprocess() else {}
        self.down = Gauge("posterm_host_down", "1 while the down fault is on", registry=r, **down_mode)
        self.refused = Counter(
            "posterm_host_connections_refused", "Connections closed at accept, by reason", ["reason"], registry=r
        )
        self.handshake_failures = Counter(
            "posterm_host_handshake_failures", "TLS handshakes that did not complete, by reason", ["reason"],
            registry=r,
        )  # fmt: skip
        self.timeouts = Counter(
            "posterm_host_timeouts", "Connections closed for a deadline, by phase (handshake/headers/body)", ["phase"],
            registry=r,
        )  # fmt: skip

    # ------------------------------------------------------------------ connections (ConnectionObserver)

    def connection_opened(self) -> None:
        self.open_connections.inc()

    def connection_closed(self) -> None:
        self.open_connections.dec()

    def connection_refused(self, reason: str) -> None:
        self.refused.labels(reason).inc()

    def handshake_failed(self, reason: str) -> None:
        self.handshake_failures.labels(reason).inc()

    def timed_out(self, phase: str) -> None:
        self.timeouts.labels(phase).inc()

    # ------------------------------------------------------------------ business, from the replies

    def observe_reply(
        self, what: str, body: dict[str, Any], reply_body: bytes, *, replayed: bool, replayed_advices: Iterable[int]
    ) -> None:
        """Count what a processed state-changing message did, from the host's own answer."""
        if replayed:
            self.replays.labels(what).inc()
            return
        try:
            answer = json.loads(reply_body)
        except ValueError:  # pragma: no cover - the host writes its answers
            return
        if not isinstance(answer, dict):  # pragma: no cover
            return
        if what == "authorisation":
            outcome = str(answer.get("status", "unknown"))
            self.authorisations.labels(str(body.get("kind", "")), outcome).inc()
            if outcome == "declined":
                self._declined("authorisation", answer.get("response_code"))
        elif what == "advices":
            self._advices(body, answer, set(replayed_advices))
        elif what == "reversal":
            self.reversals.labels("reversed" if answer.get("message") is None else "nothing_to_reverse").inc()
        elif what.startswith("qr-"):  # the statuses and reasons are the protocol's enums: a bounded label set
            reason = answer.get("reason")
            self.qr.labels(what, str(answer.get("status")), reason if isinstance(reason, str) else "none").inc()
        elif what == "batch-close":
            differences = answer.get("differences")
            self.batch_closes.labels("true" if answer.get("in_balance") else "false").inc()
            if isinstance(differences, list) and differences:
                self.settlement_differences.inc(len(differences))

    def _declined(self, message: str, code: Any) -> None:
        code = str(code) if isinstance(code, str) and code.isalnum() and len(code) <= 3 else "other"
        self.declines.labels(message, code).inc()
        if code in DUPLICATE_CODES:
            self.duplicates.labels("duplicate_transaction").inc()

    def _advices(self, body: dict[str, Any], answer: dict[str, Any], replayed: set[int]) -> None:
        sent = body.get("advices")
        results = answer.get("results")
        if not isinstance(sent, list) or not isinstance(results, list):
            return
        for index, result in enumerate(results):
            if index in replayed:
                self.replays.labels("advice").inc()
                continue
            item = sent[index] if index < len(sent) and isinstance(sent[index], dict) else {}
            kind = str(item.get("kind", "unknown")) if isinstance(item.get("kind"), str) else "unknown"
            outcome = str(result.get("outcome", "unknown")) if isinstance(result, dict) else "unknown"
            self.advices.labels(kind, outcome).inc()
            if outcome == "declined":
                self._declined("advice", result.get("response_code"))
            elif outcome == "rejected" and "used before" in str(result.get("message", "")):
                self.duplicates.labels("advice_key_conflict").inc()

    def idempotency_conflict(self, what: str) -> None:
        self.duplicates.labels("batch_conflict" if what == "batch-close" else "idempotency_conflict").inc()


class RequestMetrics:
    """ASGI wrapper: counts each HTTP request by path, method and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: HostMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        import time

        path = str(scope.get("path", ""))
        label = _path_label(path)
        method = str(scope.get("method", ""))
        if method not in ("GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"):
            method = "other"
        status = 0
        started = time.perf_counter()

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.metrics.latency.labels(label).observe(time.perf_counter() - started)
            self.metrics.requests.labels(label, method, str(status) if status else "none").inc()


def multiprocess_registry(directory: str) -> CollectorRegistry:
    """A registry that sums what the worker processes wrote to ``directory``."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


class MetricsEndpoint:
    """A running ``/metrics`` server (a thread); :meth:`close` stops it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.port = int(server.server_address[1])
        self.bind = str(server.server_address[0])

    @property
    def url(self) -> str:
        host = self.bind if ":" not in self.bind else f"[{self.bind}]"
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start_metrics_endpoint(registries: Iterable[CollectorRegistry], bind: str, port: int) -> MetricsEndpoint:
    """Serve ``GET /metrics`` (the registries' metrics, text format) on ``bind:port`` in a thread."""
    from prometheus_client import start_http_server
    from prometheus_client.registry import Collector

    class _Union(Collector):
        def __init__(self, parts: list[CollectorRegistry]) -> None:
            self.parts = parts

        def collect(self) -> Iterable[Any]:
            for part in self.parts:
                yield from part.collect()

    from prometheus_client import CollectorRegistry

    union = CollectorRegistry(auto_describe=False)
    union.register(_Union(list(registries)))
    server, thread = start_http_server(port, addr=bind, registry=union)
    return MetricsEndpoint(server, thread)
