"""The host as a real HTTPS server: uvicorn, TLS 1.3, mutual TLS, faults switched at run time.

TLS: one ``SSLContext`` with TLS 1.3 as the minimum, the host CA as the only
trust root for client certificates and ``verify_mode = CERT_OPTIONAL``: a
client may come without a certificate (to enrol), but one that is not issued
by the host CA fails the handshake. The context's ``sni_callback`` (called for
every handshake, with or without SNI) swaps in the expired or wrong-CA server
certificate while such a fault is on.

The client certificate reaches the app through the ASGI scope: uvicorn copies
its per-protocol ``app_state`` into every request's ``scope["state"]``.
:class:`TlsH11Protocol` (the h11 protocol class, subclassed) gives each
connection its own copy of that dict and puts the verified peer's
:class:`~simulator.host.app.Peer` (from ``ssl_object.getpeercert()``, which
asyncio's SSL transport offers as ``get_extra_info("ssl_object")`` once the
handshake is done) and the transport into it when the connection is made.

:class:`HostServer` (a ``uvicorn.Server``) writes ``server.json`` once it
listens, polls ``faults.json`` every 50 ms (``down`` closes the listening
socket and aborts the open connections, ``up`` opens it again on the same
port) and, given ``parent_pid``, stops when that process goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from simulator.host.app import PEER_STATE_KEY, TRANSPORT_STATE_KEY, Peer, create_app
from simulator.host.ca import ServerCertificates, TlsFiles, load_or_create_ca, write_server_certificates
from simulator.host.faults import (
    SERVER_FILE,
    Faults,
    FaultSwitch,
    acknowledge,
    atomic_write_json,
    read_faults,
    write_faults,
)
from simulator.host.params import ensure_initial
from simulator.host.store import HostStore, store_location

__all__ = ["HostServer", "TlsH11Protocol", "peer_from_ssl", "serve", "server_ssl_context"]

_POLL_SECONDS = 0.05
_log = logging.getLogger("posterm.host")


def peer_from_ssl(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> Peer | None:
    """The identity in a verified client certificate (commonName, organizationName), if any."""
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
    if not terminal_id or not merchant_id:
        return None
    return Peer(terminal_id, merchant_id)


class TlsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with the TLS peer and the transport in each request's ``state``."""

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


def _url(bind: str, port: int) -> str:
    host = "127.0.0.1" if bind in ("0.0.0.0", "") else "::1" if bind == "::" else bind
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


class HostServer(uvicorn.Server):
    """uvicorn's server plus ``server.json``, the fault watcher and the parent watch."""

    def __init__(
        self, config: uvicorn.Config, *, data_dir: Path, faults: FaultSwitch, parent_pid: int | None = None
    ) -> None:
        super().__init__(config)
        self.data_dir = data_dir
        self.faults = faults
        self.parent_pid = parent_pid
        self.port = 0
        self._watcher: asyncio.Task[None] | None = None
        self._listening = True

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
        await super().startup(sockets=sockets)
        self.port = int(self.servers[0].sockets[0].getsockname()[1])
        atomic_write_json(
            self.data_dir / SERVER_FILE,
            {
                "pid": os.getpid(),
                "bind": self.config.host,
                "port": self.port,
                "url": _url(self.config.host, self.port),
                "started_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )
        self._watcher = asyncio.create_task(self._watch())

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / SERVER_FILE).unlink()
        await super().shutdown(sockets=sockets)

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
            closing = self._close_listeners()
        elif not wanted.down and not self._listening and not await self._open_listeners():
            return False  # the port could not be bound again: retried at the next tick, not acknowledged
        self.faults.current = wanted
        self.faults.generation = generation
        if wanted.certificate != previous.certificate:
            closing = list(self.server_state.connections)
            for connection in closing:
                connection.shutdown()  # idle keep-alive connections close, so the next request handshakes
        await self._until_closed(closing)
        acknowledge(self.data_dir, generation)
        _log.info("faults now %s", wanted.to_json() if wanted.any else "none")
        return True

    def _close_listeners(self) -> list[Any]:
        """Stop listening and abort the open connections; those connections."""
        for server in self.servers:
            server.close()
        self.servers = []
        connections = list(self.server_state.connections)
        for connection in connections:
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
        self._listening = False
        return connections

    async def _until_closed(self, connections: list[Any], timeout: float = 1.0) -> None:
        """Let the loop finish closing ``connections`` (their sockets close in later callbacks).

        Acknowledging the faults only then means a client that reuses a pooled
        connection after :func:`~simulator.host.faults.request_faults` returned
        finds it closed, not half-open.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        await asyncio.sleep(0)
        while any(c in self.server_state.connections for c in connections):
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
                protocol, host=config.host, port=self.port, ssl=config.ssl, backlog=config.backlog
            )
        except OSError as exc:
            _log.error("cannot listen again on port %d: %s", self.port, exc)
            return False
        self.servers = [server]
        self._listening = True
        return True


def serve(
    data_dir: Path,
    *,
    bind: str = "127.0.0.1",
    port: int = 8443,
    parent_pid: int | None = None,
    log_level: str = "info",
    store: str | None = None,
) -> int:
    """Run the host until SIGINT / SIGTERM (or the parent's exit); 0 after a clean stop.

    ``store``: the database (a ``postgresql://`` URL; default ``host.db`` in
    ``data_dir``, see :func:`~simulator.host.store.store_location`). A worker
    process opens its own store from the same value: a store is never shared
    across ``fork``. ValueError for a store of an unknown kind,
    :class:`~simulator.host.store.StoreError` for one that cannot be opened.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    location = store_location(data_dir, store)
    tls_dir = data_dir / "tls"
    ca = load_or_create_ca(tls_dir)
    certs = write_server_certificates(ca, tls_dir, [bind])
    host_store = HostStore(location)
    _log.info("host store: %s", host_store.where)
    try:
        ensure_initial(host_store)
        switch = FaultSwitch()
        switch.generation = write_faults(data_dir, Faults())  # faults do not survive a restart
        acknowledge(data_dir, switch.generation)
        context = server_ssl_context(certs, switch)
        config = uvicorn.Config(
            create_app(host_store, ca, switch),
            host=bind,
            port=port,
            http=TlsH11Protocol,
            ws="none",
            lifespan="off",
            ssl_context_factory=lambda _config, _default: context,
            log_level=log_level,
            use_colors=False,
            server_header=False,
            timeout_graceful_shutdown=3,
        )
        server = HostServer(config, data_dir=data_dir, faults=switch, parent_pid=parent_pid)
        server.run()
        return 0 if server.started else 1
    finally:
        host_store.close()
