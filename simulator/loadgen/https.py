"""A light HTTPS client for many simulated terminals in one asyncio loop: TLS 1.3, a client certificate, h11.

One :class:`HostConnection` per terminal: its own TLS context (its own
certificate), one connection kept alive between messages and opened again when
it was closed. The TLS runs in an :class:`ssl.SSLObject` over memory buffers
on a plain asyncio TCP protocol, and HTTP/1.1 is h11's: a connection costs
the TLS state and a few small objects. (asyncio's own TLS transport gives
every connection a 256 KiB read buffer, 256 MB for a thousand terminals; an
httpx client each would add a connection pool and its objects per request.)

Failures are told apart as the terminal's own client tells them
(:mod:`host_link.client`), because what a terminal may conclude depends on it:

- :class:`NotSent`: nothing reached the host's application (connection
  refused, connect or handshake timeout, the handshake failed, the host
  refused our certificate). Safe to conclude "not authorised".
- :class:`Lost`: the request may have reached the host and no answer came
  (connection reset or closed after the request was written, read timeout,
  an incomplete answer). The result is unknown: repeat it with the same
  ``Idempotency-Key``, or reverse it.

Each carries a ``kind`` (``refused``, ``read_timeout``, ...) for the run's
"errors by kind".
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

import h11

from host_link.tls import is_handshake_refusal, is_host_certificate_failure

__all__ = ["Exchange", "HostConnection", "Lost", "NotSent", "TransportStats"]

MAX_ANSWER_BYTES = 1 << 20
_READ_CHUNK = 16384


class NotSent(Exception):
    """Nothing reached the host's application; ``kind`` says why."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


class Lost(Exception):
    """The request may have reached the host; no (complete) answer came. ``kind`` says how."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


@dataclass(frozen=True)
class Exchange:
    """An answer: status, body, the seconds from writing the request to the end of the answer."""

    status: int
    body: bytes
    seconds: float
    replayed: bool


@dataclass
class TransportStats:
    """Counters shared by the connections of a run."""

    handshakes: int = 0
    handshake_seconds: float = 0.0
    reused: int = 0


class _Wire(asyncio.Protocol):
    """The TCP side: bytes in go to the TLS object's incoming buffer; a waiter is woken."""

    def __init__(self, incoming: ssl.MemoryBIO) -> None:
        self.incoming = incoming
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.error: Exception | None = None  # how the connection was lost, if not by an orderly close
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.incoming.write(data)
        self._wake()

    def eof_received(self) -> bool:
        self.incoming.write_eof()
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        if not self.incoming.eof:
            self.incoming.write_eof()
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def readable(self) -> None:
        """Return once bytes (or the end) arrived since the last read."""
        if self.incoming.pending or self.incoming.eof:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter


class _Tls:
    """One TLS connection: an SSLObject between the memory buffers and the wire."""

    def __init__(self, wire: _Wire, tls: ssl.SSLObject, outgoing: ssl.MemoryBIO) -> None:
        self.wire = wire
        self.tls = tls
        self.outgoing = outgoing

    def flush(self) -> None:
        data = self.outgoing.read()
        if data and self.wire.transport is not None and not self.wire.transport.is_closing():
            self.wire.transport.write(data)

    async def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self.flush()
                if self.wire.incoming.eof and not self.wire.incoming.pending:
                    raise ConnectionResetError("connection closed during the handshake") from None
                await self.wire.readable()
            else:
                self.flush()
                return

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self.flush()

    async def receive(self) -> bytes:
        """Plaintext bytes, or b"" at the end of the connection."""
        while True:
            try:
                data = self.tls.read(_READ_CHUNK)
            except ssl.SSLWantReadError:
                self.flush()  # TLS 1.3 may answer a key update
                if self.wire.incoming.eof and not self.wire.incoming.pending:
                    return b""
                await self.wire.readable()
            except ssl.SSLZeroReturnError:
                return b""
            except ssl.SSLEOFError:  # closed without TLS's close_notify: reset, or the server just went
                if self.wire.error is not None:
                    raise self.wire.error from None
                return b""
            else:
                return data

    def close(self) -> None:
        if self.wire.transport is not None:
            self.wire.transport.close()

    @property
    def closed(self) -> bool:
        return self.wire.closed or self.wire.incoming.eof


class HostConnection:
    """One terminal's HTTP/1.1 connection to the host over TLS (its certificate in ``context``).

    ``source``: the local address to connect from (``127.0.0.N`` spreads a
    fleet over many client addresses on loopback). ``idle_seconds``: a
    connection idle that long is closed before the next request rather than
    reused, as the terminal's own client does, so that a request is not
    written on a connection the server is closing.
    """

    def __init__(
        self,
        host: str,
        port: int,
        context: ssl.SSLContext,
        *,
        server_hostname: str | None = None,
        source: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        idle_seconds: float = 4.0,
        stats: TransportStats | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.context = context
        self.server_hostname = server_hostname or host
        self.source = source
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.idle_seconds = idle_seconds
        self.stats = stats or TransportStats()
        self._tls: _Tls | None = None
        self._h11: h11.Connection | None = None
        self._last_used = 0.0

    # ------------------------------------------------------------------ connection

    def close(self) -> None:
        """Drop the connection (if any); the next request opens a new one."""
        tls, self._tls, self._h11 = self._tls, None, None
        if tls is not None:
            tls.close()

    def _usable(self) -> bool:
        if self._tls is None or self._h11 is None or self._tls.closed:
            return False
        if self._h11.our_state is not h11.IDLE or self._h11.their_state is not h11.IDLE:
            return False
        return time.monotonic() - self._last_used < self.idle_seconds

    async def _connect(self) -> None:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        local = (self.source, 0) if self.source else None
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, wire = await loop.create_connection(lambda: _Wire(incoming), self.host, self.port, local_addr=local)
                tls = _Tls(
                    wire, self.context.wrap_bio(incoming, outgoing, server_hostname=self.server_hostname), outgoing
                )
                try:
                    await tls.handshake()
                except BaseException:
                    tls.close()
                    raise
        except ConnectionRefusedError as exc:
            raise NotSent("connection_refused", str(exc)) from None
        except TimeoutError:
            raise NotSent("connect_timeout") from None
        except ssl.SSLEOFError:
            raise NotSent("closed_in_handshake") from None
        except ssl.SSLError as exc:
            kind = "host_certificate" if is_host_certificate_failure(exc) else "handshake_failed"
            raise NotSent(kind, str(exc)) from None
        except OSError as exc:
            raise NotSent("connect_error", f"{type(exc).__name__}: {exc}") from None
        self._tls = tls
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=16384)
        self.stats.handshakes += 1
        self.stats.handshake_seconds += time.perf_counter() - started

    # ------------------------------------------------------------------ requests

    async def request(
        self, method: str, path: str, body: bytes | None = None, headers: Sequence[tuple[str, str]] = ()
    ) -> Exchange:
        """One request and its answer; raises :class:`NotSent` or :class:`Lost`."""
        fresh = not self._usable()
        if fresh:
            self.close()
            await self._connect()
        else:
            self.stats.reused += 1
        conn, tls = self._h11, self._tls
        assert conn is not None and tls is not None
        all_headers = [("Host", self.server_hostname), *headers]
        if body is not None:
            all_headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        started = time.perf_counter()
        try:
            data = conn.send(h11.Request(method=method, target=path, headers=all_headers)) or b""
            if body is not None:
                data += conn.send(h11.Data(data=body)) or b""
            data += conn.send(h11.EndOfMessage()) or b""
            tls.send(data)
            async with asyncio.timeout(self.read_timeout):
                status, replayed, answer = await self._answer(conn, tls)
        except TimeoutError:
            self.close()
            raise Lost("read_timeout") from None
        except (h11.RemoteProtocolError, h11.LocalProtocolError) as exc:
            self.close()
            raise Lost("closed_without_answer", str(exc)) from None
        except ssl.SSLError as exc:
            self.close()
            if fresh and is_handshake_refusal(exc):
                raise NotSent("certificate_refused", str(exc)) from None
            raise Lost("tls_error", str(exc)) from None
        except OSError as exc:
            self.close()
            raise Lost("reset", type(exc).__name__) from None
        seconds = time.perf_counter() - started
        self._last_used = time.monotonic()
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:
            self.close()
        return Exchange(status, answer, seconds, replayed)

    @staticmethod
    async def _answer(conn: h11.Connection, tls: _Tls) -> tuple[int, bool, bytes]:
        status = 0
        replayed = False
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await tls.receive())
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                replayed = any(name == b"idempotent-replay" for name, _ in event.headers)
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_ANSWER_BYTES:
                    raise h11.RemoteProtocolError("answer too large")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return status, replayed, b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise h11.RemoteProtocolError("connection closed before the answer")
