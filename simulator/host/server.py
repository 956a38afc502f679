"""The host as a real HTTPS server: uvicorn, TLS 1.3, mutual TLS, faults switched at run time.

TLS: one ``SSLContext`` with TLS 1.3 as the minimum, the host CA as the only
trust root for client certificates and ``verify_mode = CERT_OPTIONAL``: a
client may come without a certificate (to enrol), but one that is not issued
by the host CA fails the handshake. The context's ``sni_callback`` (called for
every handshake, with or without SNI) swaps in the expired or wrong-CA server
certificate while such a fault is on.

Connections: the server listens in plain TCP and every accepted connection
goes through :mod:`simulator.host.connections` (caps per client address and
per process, the TLS handshake with a timeout, deadlines for a request's
headers and body, the idle keep-alive timeout), so that every connection,
handshaking or not, is known from its accept on.

The client certificate reaches the app through the ASGI scope: uvicorn copies
its per-protocol ``app_state`` into every request's ``scope["state"]``.
:class:`TlsH11Protocol` (the h11 protocol class, subclassed) gives each
connection its own copy of that dict and puts the verified peer's
:class:`~simulator.host.app.Peer` (from ``ssl_object.getpeercert()``, which
asyncio's SSL transport offers as ``get_extra_info("ssl_object")`` once the
handshake is done) and the transport into it when the connection is made.

:class:`HostServer` (a ``uvicorn.Server``) writes ``server.json`` once it
listens, polls ``faults.json`` every 50 ms (``down`` closes the listening
socket and aborts every connection, handshaking ones included; ``up`` opens
it again on the same port) and, given ``parent_pid``, stops when that process
goes away. With ``--workers N`` (:mod:`simulator.host.workers`) N such servers
run as worker processes, each with its own listening socket on the same port
(``SO_REUSEPORT``) and its own store connection; each then reports the faults
it applied in ``workers/<index>.json`` and the supervisor writes
``server.json`` and ``faults-applied.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import ssl
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import uvicorn

from simulator.host.app import PEER_STATE_KEY, TRANSPORT_STATE_KEY, Peer, create_app
from simulator.host.ca import (
    ServerCertificates,
    TlsFiles,
    load_or_create_ca,
    serial_text,
    write_server_certificates,
)
from simulator.host.connections import ConnectionTable, GateFactory, TimedH11Protocol
from simulator.host.faults import (
    SERVER_FILE,
    Faults,
    FaultSwitch,
    acknowledge,
    atomic_write_json,
    read_faults,
    write_faults,
    write_worker_status,
)
from simulator.host.files import tighten
from simulator.host.health import Readiness
from simulator.host.limits import ConnectionLimits
from simulator.host.metrics import HostMetrics, MetricsEndpoint, start_metrics_endpoint
from simulator.host.params import ensure_initial
from simulator.host.store import HostStore, host_keys, store_location

__all__ = [
    "WORKER_HEADER",
    "HostServer",
    "ServeOptions",
    "TlsH11Protocol",
    "configure_logging",
    "open_host_store",
    "peer_from_ssl",
    "serve",
    "server_certificates_on_disk",
    "server_ssl_context",
]

#: The response header that names the worker (1..N) that answered, with ``--workers`` N > 1.
WORKER_HEADER = "Posterm-Worker"

_POLL_SECONDS = 0.05
_log = logging.getLogger("posterm.host")


def peer_from_ssl(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> Peer | None:
    """The identity in a verified client certificate (commonName, organizationName, serial), if any.

    The serial is written as the host's certificates table keys it (upper-case
    hex without leading zeros, :func:`simulator.host.ca.serial_text`); the app
    refuses a serial the host did not issue or has revoked.
    """
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()  # empty unless a certificate was presented and verified
    if not cert:
        return None
    fields: dict[str, str] = {}
    subject: Any = cert.get("subject", ())
    for rdn in subject:
        for name, value in rdn:
            fields.setdefault(str(name), str(value))
    terminal_id = fields.get("commonName")
    merchant_id = fields.get("organizationName")
    serial = cert.get("serialNumber")
    if not terminal_id or not merchant_id or not isinstance(serial, str):
        return None
    try:
        serial_number = int(serial, 16)
    except ValueError:
        return None
    return Peer(terminal_id, merchant_id, serial_text(serial_number))


class TlsH11Protocol(TimedH11Protocol):
    """uvicorn's h11 protocol (with deadlines), with the TLS peer and the transport in each request's ``state``."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, dict(app_state), _loop)  # a copy per connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.app_state[PEER_STATE_KEY] = peer_from_ssl(transport.get_extra_info("ssl_object"))
        self.app_state[TRANSPORT_STATE_KEY] = transport
        super().connection_made(transport)


def _context(files: TlsFiles, ca_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(files.certificate, files.key)
    context.load_verify_locations(cafile=str(ca_file))
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def server_ssl_context(certs: ServerCertificates, faults: FaultSwitch) -> ssl.SSLContext:
    """The server context; its ``sni_callback`` picks the certificate the faults ask for."""
    main = _context(certs.good, certs.ca_certificate)
    alternates = {
        "expired": _context(certs.expired, certs.ca_certificate),
        "wrong": _context(certs.wrong, certs.ca_certificate),
    }

    def choose(ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        other = alternates.get(faults.current.certificate)
        if other is not None:
            ssl_object.context = other

    main.sni_callback = choose
    return main


def server_certificates_on_disk(tls_dir: Path) -> ServerCertificates:
    """The server certificates :func:`write_server_certificates` wrote (a worker uses its supervisor's)."""

    def files(name: str) -> TlsFiles:
        return TlsFiles(tls_dir / f"{name}.pem", tls_dir / f"{name}-key.pem")

    return ServerCertificates(
        good=files("server"),
        expired=files("server-expired"),
        wrong=files("server-wrong"),
        ca_certificate=tls_dir / "ca" / "cert.pem",
    )


def open_host_store(data_dir: Path, store: str | None = None) -> HostStore:
    """The host's store: ``store`` (a ``postgresql://`` URL, or a SQLite file) if given, else ``host.db`` in
    the data directory (:func:`~simulator.host.store.store_location`).

    Every process opens its own (a worker too, from the same value, never a
    store inherited across ``fork``); this is the one place that turns the
    ``--store`` option into a store. ValueError for a store of an unknown
    kind, :class:`~simulator.host.store.StoreError` for one that cannot be
    opened. The log names it without its password. The host's secrets are
    in the data directory's ``keys/`` whatever the store (every worker shares
    the data directory).
    """
    opened = HostStore(store_location(data_dir, store), keys=host_keys(data_dir))
    _log.info("host store: %s", opened.where)
    return opened


def configure_logging(level: str) -> None:
    """The host's own log lines (``posterm.host``) to stderr with the process id, once per process."""
    logger = logging.getLogger("posterm.host")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s posterm.host[%(process)d]: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def _url(bind: str, port: int) -> str:
    host = "127.0.0.1" if bind in ("0.0.0.0", "") else "::1" if bind == "::" else bind
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


@dataclass(frozen=True)
class ServeOptions:
    """How ``posterm host serve`` runs (what the supervisor passes on to its workers)."""

    bind: str = "127.0.0.1"
    port: int = 8443
    log_level: str = "info"
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    workers: int = 1
    metrics_bind: str = "127.0.0.1"
    metrics_port: int | None = None
    store: str | None = None

    def worker_argv(self, data_dir: Path, index: int, port: int, parent_pid: int) -> list[str]:
        """The command line of worker ``index`` (1..N) on ``port``, watching its supervisor ``parent_pid``.

        The store is not on it (any user can read a command line, and a URL may
        hold a password): :meth:`worker_env` passes it.
        """
        argv = [
            sys.executable, "-m", "simulator.host", "serve",
            "--data-dir", str(data_dir),
            "--bind", self.bind,
            "--port", str(port),
            "--log-level", self.log_level,
            "--worker", str(index),
            "--exit-with-parent", str(parent_pid),
            *self.limits.to_argv(),
        ]  # fmt: skip
        return argv

    def worker_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """A worker's environment: ``env`` with the store in ``POSTERM_HOST_STORE`` (or without one)."""
        from simulator.host.store import STORE_ENV

        out = {k: v for k, v in env.items() if k != STORE_ENV}
        if self.store:
            out[STORE_ENV] = self.store
        return out


class _WorkerHeader:
    """ASGI wrapper: ``Posterm-Worker: <index>`` on every answer of a worker process."""

    def __init__(self, app: Any, index: int) -> None:
        self.app = app
        self.header = (WORKER_HEADER.lower().encode("ascii"), str(index).encode("ascii"))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def with_header(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, with_header if scope["type"] == "http" else send)


class HostServer(uvicorn.Server):
    """uvicorn's server plus ``server.json``, the fault watcher, the parent watch and the connection gate."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        data_dir: Path,
        faults: FaultSwitch,
        table: ConnectionTable | None = None,
        parent_pid: int | None = None,
        worker: int | None = None,
        metrics: HostMetrics | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(config)
        self.data_dir = data_dir
        self.faults = faults
        self.table = table if table is not None else ConnectionTable(ConnectionLimits())
        self.parent_pid = parent_pid
        self.worker = worker
        self.metrics = metrics
        self.info = info or {}
        self.port = 0
        self._watcher: asyncio.Task[None] | None = None
        self._listening = False

    @property
    def listening(self) -> bool:
        return self._listening

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGINT / SIGTERM start a graceful shutdown, after which :func:`serve` returns 0.

        (uvicorn's own version raises the signal again once shut down, so a
        clean stop would end in a KeyboardInterrupt or a death by SIGTERM.)
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[Any] | None = None) -> None:
        """Listen (unless a worker starts while ``down`` is on), then tell the other processes."""
        await self.lifespan.startup()
        self.servers = []
        self.port = self.config.port
        if not self.faults.current.down and not await self._open_listeners():
            raise SystemExit(1)
        if self.metrics is not None:
            self.metrics.down.set(1 if self.faults.current.down else 0)
        self.started = True
        url = _url(self.config.host, self.port)
        if self.worker is None:
            atomic_write_json(
                self.data_dir / SERVER_FILE,
                {
                    "pid": os.getpid(),
                    "bind": self.config.host,
                    "port": self.port,
                    "url": url,
                    "started_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    **self.info,
                },
            )
            _log.info("posterm host listening on %s", url)
        else:
            self._report(self.faults.generation)
            _log.info("posterm host worker %d (pid %d) listening on %s", self.worker, os.getpid(), url)
        self._watcher = asyncio.create_task(self._watch())

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self.worker is None:
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / SERVER_FILE).unlink()
        self.table.abort_handshaking()
        await super().shutdown(sockets=sockets)

    def _report(self, generation: int) -> None:
        """Tell that ``generation`` of the faults is in force here (the supervisor's file, or a worker's)."""
        if self.worker is None:
            acknowledge(self.data_dir, generation)
        else:
            status = {"pid": os.getpid(), "applied": generation, "listening": self._listening, "port": self.port}
            write_worker_status(self.data_dir, self.worker, status)

    # ------------------------------------------------------------------ faults

    async def _watch(self) -> None:
        pending: tuple[int, Faults] | None = None
        while not self.should_exit:
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                _log.warning("parent process %d is gone: stopping", self.parent_pid)
                self.should_exit = True
                return
            try:
                generation, wanted = read_faults(self.data_dir)
            except ValueError as exc:
                _log.warning("ignoring unreadable faults file: %s", exc)
                generation, wanted = self.faults.generation, self.faults.current
            if generation > self.faults.generation:
                pending = (generation, wanted)
            if pending is not None and await self._apply(*pending):
                pending = None
            await asyncio.sleep(_POLL_SECONDS)

    async def _apply(self, generation: int, wanted: Faults) -> bool:
        previous = self.faults.current
        closing: list[Any] = []
        if wanted.down and self._listening:
            self.faults.current = wanted  # from here on, a handshake that completes is not handed to HTTP
            closing = self._close_listeners()
        elif wanted.down:
            self.faults.current = wanted
            self.table.abort_all()
        elif not wanted.down and not self._listening and not await self._open_listeners():
            return False  # the port could not be bound again: retried at the next tick, not acknowledged
        self.faults.current = wanted
        self.faults.generation = generation
        if self.metrics is not None:
            self.metrics.down.set(1 if wanted.down else 0)
        if wanted.certificate != previous.certificate:
            closing = list(self.server_state.connections)
            for connection in closing:
                connection.shutdown()  # idle keep-alive connections close, so the next request handshakes
        await self._until_closed(closing)
        self._report(generation)
        _log.info("faults now %s", wanted.to_json() if wanted.any else "none")
        return True

    def _close_listeners(self) -> list[Any]:
        """Stop listening and abort every connection, handshaking ones included; the HTTP ones."""
        for server in self.servers:
            server.close()
        self.servers = []
        self._listening = False
        connections = list(self.server_state.connections)
        aborted = self.table.abort_all()
        _log.info("down: %d connection(s) aborted", aborted)
        return connections

    async def _until_closed(self, connections: list[Any], timeout: float = 1.0) -> None:
        """Let the loop finish closing ``connections`` (their sockets close in later callbacks).

        Acknowledging the faults only then means a client that reuses a pooled
        connection after :func:`~simulator.host.faults.request_faults` returned
        finds it closed, not half-open.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        await asyncio.sleep(0)
        while any(c in self.server_state.connections for c in connections) or (
            self.faults.current.down and len(self.table)
        ):
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.005)

    async def _open_listeners(self) -> bool:
        loop = asyncio.get_running_loop()
        config = self.config

        def protocol() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state, _loop=loop
            )

        try:
            server = await loop.create_server(
                protocol,
                host=config.host,
                port=self.port,
                backlog=config.backlog,
                reuse_port=self.worker is not None,  # the workers share the port, each with its own socket
            )
        except OSError as exc:
            _log.error("cannot listen on %s port %d: %s", config.host, self.port, exc)
            return False
        self.servers = [server]
        if server.sockets:
            self.port = int(server.sockets[0].getsockname()[1])
        self._listening = True
        return True


def serve(
    data_dir: Path,
    *,
    bind: str = "127.0.0.1",
    port: int = 8443,
    parent_pid: int | None = None,
    log_level: str = "info",
    limits: ConnectionLimits | None = None,
    workers: int = 1,
    metrics_bind: str = "127.0.0.1",
    metrics_port: int | None = None,
    store: str | None = None,
    worker: int | None = None,
) -> int:
    """Run the host until SIGINT / SIGTERM (or the parent's exit); 0 after a clean stop.

    ``workers`` > 1: a supervisor runs that many worker processes on the port
    (:func:`simulator.host.workers.supervise`); ``worker`` is given to such a
    worker process only. ``metrics_port``: serve ``/metrics`` there (0: any
    free port, written to ``server.json`` as ``metrics_url``).
    """
    options = ServeOptions(
        bind=bind,
        port=port,
        log_level=log_level,
        limits=limits or ConnectionLimits(),
        workers=workers,
        metrics_bind=metrics_bind,
        metrics_port=metrics_port,
        store=store,
    )
    data_dir = Path(data_dir)
    tighten(data_dir)  # 0700 / 0600 throughout, also for a data directory an older host left readable
    if worker is None and workers > 1:
        from simulator.host.workers import supervise

        return supervise(data_dir, options, parent_pid=parent_pid)
    return _serve_one(data_dir, options, parent_pid=parent_pid, worker=worker)


def _serve_one(data_dir: Path, options: ServeOptions, *, parent_pid: int | None, worker: int | None) -> int:
    """One server process: the only one, or worker ``worker`` of a supervisor."""
    configure_logging(options.log_level)
    tls_dir = data_dir / "tls"
    ca = load_or_create_ca(tls_dir)
    if worker is None:
        certs = write_server_certificates(ca, tls_dir, [options.bind])
    else:
        certs = server_certificates_on_disk(tls_dir)
    store = open_host_store(data_dir, options.store)
    endpoint: MetricsEndpoint | None = None
    try:
        switch = FaultSwitch()
        if worker is None:
            ensure_initial(store)
            switch.generation = write_faults(data_dir, Faults())  # faults do not survive a restart
            acknowledge(data_dir, switch.generation)
        else:  # a worker (re)started by its supervisor takes the faults in force
            with contextlib.suppress(ValueError):
                switch.generation, switch.current = read_faults(data_dir)
        metrics = HostMetrics()
        limits = options.limits.fitted()
        table = ConnectionTable(limits, metrics)
        context = server_ssl_context(certs, switch)
        listening: list[HostServer] = []
        readiness = Readiness(store, switch, lambda: bool(listening) and listening[0].listening)
        app: Any = create_app(store, ca, switch, metrics=metrics, readiness=readiness)
        if worker is not None:
            app = _WorkerHeader(app, worker)
        gate = GateFactory(table, context, TlsH11Protocol, lambda: switch.current.down)
        config = uvicorn.Config(
            app,
            host=options.bind,
            port=options.port,
            http=cast(Any, gate),
            ws="none",
            lifespan="off",
            log_level=options.log_level,
            use_colors=False,
            server_header=False,
            timeout_graceful_shutdown=3,
        )
        config.timeout_keep_alive = limits.idle_timeout  # type: ignore[assignment]  # seconds, a float is fine
        info: dict[str, Any] = {}
        if worker is None and options.metrics_port is not None:
            endpoint = start_metrics_endpoint([metrics.registry], options.metrics_bind, options.metrics_port)
            info["metrics_url"] = endpoint.url
        server = HostServer(
            config,
            data_dir=data_dir,
            faults=switch,
            table=table,
            parent_pid=parent_pid,
            worker=worker,
            metrics=metrics,
            info=info,
        )
        listening.append(server)
        server.run()
        return 0 if server.started else 1
    finally:
        if endpoint is not None:
            endpoint.close()
        store.close()
