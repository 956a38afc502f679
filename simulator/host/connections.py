"""Every connection of a host server process, from the TCP accept on: admission, TLS, timeouts.

asyncio's own TLS server (``create_server(ssl=...)``) hands the HTTP protocol a
connection only once its handshake is done, with a 60-second handshake
timeout and no handle on the connections still handshaking: such connections
could not be counted, capped or closed. So the host listens in plain TCP and
each accepted connection gets a :class:`TlsGate`, which

1. refuses it at once (closes the socket, no TLS) while the host is ``down``,
   or when its client address has ``max_per_client`` connections already, or
   the process has ``max_connections``;
2. registers it in the :class:`ConnectionTable` (so ``down`` can abort it
   mid-handshake, and shutdown too);
3. runs the TLS handshake (``loop.start_tls``) within ``handshake_timeout``;
4. hands the TLS transport to the HTTP protocol (a :class:`TimedH11Protocol`),
   unless the host went ``down`` meanwhile.

:class:`TimedH11Protocol` is uvicorn's h11 protocol with deadlines that bytes
trickling in do not extend: a request's headers must be complete within
``header_timeout`` of its first byte (or of the handshake, for the first
request; else ``408`` and the connection closes), its body within
``body_timeout`` of its headers (else the connection is closed), and an idle
keep-alive connection is closed after ``idle_timeout`` (uvicorn's own timer).

The limits apply per worker process (``posterm host serve --workers N`` gives
a client up to N times ``max_per_client``, the kernel spreading its
connections over the workers).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any, Protocol

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from simulator.host.limits import ConnectionLimits

__all__ = [
    "ConnectionObserver",
    "ConnectionTable",
    "GateFactory",
    "TimedH11Protocol",
    "TlsGate",
]

_log = logging.getLogger("posterm.host")
_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class ConnectionObserver(Protocol):
    """Who is told what happens to connections (the metrics)."""

    def connection_opened(self) -> None: ...
    def connection_closed(self) -> None: ...
    def connection_refused(self, reason: str) -> None: ...
    def handshake_failed(self, reason: str) -> None: ...
    def timed_out(self, phase: str) -> None: ...


class _Quiet:
    def connection_opened(self) -> None:
        pass

    def connection_closed(self) -> None:
        pass

    def connection_refused(self, reason: str) -> None:
        pass

    def handshake_failed(self, reason: str) -> None:
        pass

    def timed_out(self, phase: str) -> None:
        pass


class ConnectionTable:
    """The accepted connections of one process, handshaking ones included, by client address."""

    def __init__(self, limits: ConnectionLimits, observer: ConnectionObserver | None = None) -> None:
        self.limits = limits
        self.observer: ConnectionObserver = observer if observer is not None else _Quiet()
        self._gates: set[TlsGate] = set()
        self._per_client: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._gates)

    def admit(self, client: str) -> str | None:
        """None if a new connection from ``client`` may be accepted, else the reason to refuse it."""
        limits = self.limits
        if limits.max_connections and len(self._gates) >= limits.max_connections:
            return "max_connections"
        if limits.max_per_client and self._per_client.get(client, 0) >= limits.max_per_client:
            return "max_per_client"
        return None

    def add(self, gate: TlsGate) -> None:
        self._gates.add(gate)
        self._per_client[gate.client] = self._per_client.get(gate.client, 0) + 1
        self.observer.connection_opened()

    def discard(self, gate: TlsGate) -> None:
        if gate not in self._gates:
            return
        self._gates.discard(gate)
        left = self._per_client.get(gate.client, 1) - 1
        if left > 0:
            self._per_client[gate.client] = left
        else:
            self._per_client.pop(gate.client, None)
        self.observer.connection_closed()

    def abort_all(self) -> int:
        """Abort every connection (handshaking or not); how many there were."""
        gates = list(self._gates)
        for gate in gates:
            gate.abort()
        return len(gates)

    def abort_handshaking(self) -> None:
        for gate in list(self._gates):
            if not gate.handed_over:
                gate.abort()


class _Holding(asyncio.Protocol):
    """The TLS transport's protocol between the handshake and the hand-over: keeps what arrives."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.eof = False
        self.lost: tuple[Exception | None] | None = None

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def eof_received(self) -> bool | None:
        self.eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = (exc,)


class TlsGate(asyncio.Protocol):
    """The protocol of an accepted TCP connection: admission, the TLS handshake, then HTTP."""

    def __init__(
        self,
        table: ConnectionTable,
        context: ssl.SSLContext,
        make_http: Callable[[], asyncio.Protocol],
        is_down: Callable[[], bool],
    ) -> None:
        self.table = table
        self.context = context
        self.make_http = make_http
        self.is_down = is_down
        self.client = "?"
        self.handed_over = False
        self._raw: asyncio.Transport | None = None
        self._tls: asyncio.Transport | None = None
        self._aborted = False
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        reason = "down" if self.is_down() else self.table.admit(self.client)
        if reason is not None:
            self.table.observer.connection_refused(reason)
            if reason != "down":
                _log.warning("connection from %s refused: %s", self.client, reason)
            transport.abort()
            return
        self._raw = transport
        self.table.add(self)
        self._task = asyncio.get_running_loop().create_task(self._handshake(transport))

    def connection_lost(self, exc: Exception | None) -> None:
        """The raw connection closed before ``start_tls`` took it over."""
        self.table.discard(self)

    def abort(self) -> None:
        """Close the connection now, whatever it is doing (the ``down`` fault, shutdown)."""
        self._aborted = True
        for transport in (self._tls, self._raw):
            if transport is not None:
                transport.abort()
        if not self.handed_over:
            self.table.discard(self)

    def closed(self) -> None:
        """Called by the HTTP protocol when the TLS connection is lost."""
        self.table.discard(self)

    async def _handshake(self, raw: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        holding = _Holding()
        if raw.is_closing():
            self.table.discard(self)
            return
        try:
            tls = await loop.start_tls(
                raw,
                holding,
                self.context,
                server_side=True,
                ssl_handshake_timeout=self.table.limits.handshake_timeout,
            )
        except (OSError, ssl.SSLError, EOFError) as exc:  # ConnectionError and TimeoutError are OSErrors
            self._handshake_failed(exc)
            return
        if tls is None or self._aborted or holding.lost is not None or self.is_down():
            if not self._aborted:
                self.table.observer.handshake_failed("down" if self.is_down() else "closed")
            if tls is not None:
                tls.abort()
            raw.abort()
            self.table.discard(self)
            return
        self._tls = tls
        http = self.make_http()
        if isinstance(http, TimedH11Protocol):
            http.gate = self
        self.handed_over = True
        tls.set_protocol(http)
        http.connection_made(tls)
        for chunk in holding.chunks:
            if tls.is_closing():
                break
            http.data_received(chunk)
        if holding.eof and not tls.is_closing():
            http.eof_received()

    def _handshake_failed(self, exc: BaseException) -> None:
        if self._aborted:
            reason = "down"
        elif isinstance(exc, ssl.SSLError):
            reason = "tls_error"
        elif isinstance(exc, ConnectionAbortedError) and "handshake" in str(exc).lower():
            reason = "timeout"
        else:
            reason = "closed"
        self.table.observer.handshake_failed(reason)
        if reason == "timeout":
            self.table.observer.timed_out("handshake")
        if self._raw is not None:
            self._raw.abort()
        self.table.discard(self)


class GateFactory:
    """What uvicorn calls as its ``http`` protocol class: a :class:`TlsGate` per accepted connection."""

    def __init__(
        self,
        table: ConnectionTable,
        context: ssl.SSLContext,
        http_class: type[asyncio.Protocol],
        is_down: Callable[[], bool],
    ) -> None:
        self.table = table
        self.context = context
        self.http_class = http_class
        self.is_down = is_down

    def __call__(
        self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: asyncio.AbstractEventLoop | None = None
    ) -> TlsGate:
        def make_http() -> asyncio.Protocol:
            return self.http_class(config, server_state, app_state, _loop)  # type: ignore[call-arg]

        return TlsGate(self.table, self.context, make_http, self.is_down)


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines for a request's headers and body (see the module docstring)."""

    gate: TlsGate | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = ""

    @property
    def _limits(self) -> ConnectionLimits | None:
        return self.gate.table.limits if self.gate is not None else None

    def _arm(self, phase: str) -> None:
        limits = self._limits
        if limits is None:
            return
        self._disarm()
        seconds = limits.header_timeout if phase == "headers" else limits.body_timeout
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expired, phase)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._phase = ""

    def _follow(self) -> None:
        """Move the deadline along with the request: headers, then body, then none while answering."""
        state = self.conn.their_state
        if state is h11.IDLE:
            return
        if state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body")
        elif self._phase:
            self._disarm()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("headers")  # the first request's headers, counted from the end of the handshake

    def data_received(self, data: bytes) -> None:
        if not self._phase and self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE:
            self._arm("headers")  # the first bytes of a request on a kept-alive connection
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and self._phase != "headers":
            self._disarm()  # idle: uvicorn's keep-alive timer runs now
        else:
            self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        if self.gate is not None:
            self.gate.closed()

    def _expired(self, phase: str) -> None:
        self._deadline = None
        self._phase = ""
        if self.transport is None or self.transport.is_closing():
            return
        if self.gate is not None:
            self.gate.table.observer.timed_out(phase)
        client = self.client[0] if self.client else "?"
        _log.info("closing a connection from %s: its request %s took too long", client, phase)
        if phase == "headers" and self.conn.our_state is h11.IDLE:
            self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()
        else:
            self.transport.abort()
