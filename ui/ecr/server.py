"""The ECR interface's server: a desk, its HTTP application, and uvicorn on a socket of its own.

:class:`EcrServer` is what both users of the interface run:

- ``posterm ecr serve`` (:mod:`ui.ecr.cli`), headless: :meth:`EcrServer.serve`
  in the main thread until SIGINT or SIGTERM;
- the Kivy application, in process: ``EcrServer(terminal, worker=...)``,
  :meth:`EcrServer.start` (uvicorn on a thread of its own) and
  :meth:`EcrServer.stop`, the registers' payments running on the
  application's worker and showing on its screens through the terminal's
  events like its own.

The socket is bound before uvicorn starts, so that a port in use is one clear
error (:class:`EcrBindError`) and port 0 gives a free port (:attr:`EcrServer.port`).
The server never closes the terminal: its owner does, after :meth:`stop`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import ipaddress
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from terminal.facade import Terminal
from terminal.metrics import DeviceState
from ui.ecr.desk import PaymentDesk, Worker

if TYPE_CHECKING:
    import uvicorn

__all__ = ["DEFAULT_PORT", "EcrBindError", "EcrServer", "is_loopback", "listen"]

_log = logging.getLogger("ui.ecr")

DEFAULT_PORT = 8780
#: How long open connections (event streams) get to end when the server stops.
_GRACE_SECONDS = 2


class EcrBindError(OSError):
    """The address cannot be listened on.

    ``reason``: ``in_use`` (another program holds the port), ``bad_address``
    (the host names no address of this machine), or ``refused`` (the system
    said no: a privileged port, ...).
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address (``localhost`` is, when it resolves so).

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port), or :class:`EcrBindError` saying why not.

    ``posterm ecr serve`` listens before it opens the terminal: a second
    server started by mistake on the same data directory stops here, before
    its start-up recovery could touch the first one's payment.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise EcrBindError(
            f"{host!r} is not an address to listen on ({exc.strerror or exc})", reason="bad_address"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise EcrBindError(
                f"port {port} on {host} is in use (another 'posterm ecr serve'?): choose another with --port",
                reason="in_use",
            ) from None
        reason = "bad_address" if exc.errno == errno.EADDRNOTAVAIL else "refused"
        raise EcrBindError(f"cannot listen on {host} port {port}: {exc.strerror or exc}", reason=reason) from None
    sock.setblocking(False)
    return sock


class EcrServer:
    """The ECR interface on ``host``:``port`` for ``terminal``; see the module docstring.

    ``worker``: where facade calls run (the Kivy application's, in
    process); by default a thread of the desk's own.  ``allow_remote``:
    answer requests whose Host header is not the loopback (for a server
    bound to another address on purpose; the interface has no
    authentication).  ``sock``: a socket from :func:`listen` already
    listening on ``host`` (else one is made by :meth:`bind`).  ``devices``:
    the devices' states as the caller watches them (the kiosk), for ``GET /metrics``.
    """

    def __init__(
        self,
        terminal: Terminal,
        worker: Worker | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        allow_remote: bool = False,
        sock: socket.socket | None = None,
        devices: Callable[[], Mapping[str, DeviceState]] | None = None,
    ) -> None:
        from ui.ecr.app import EcrApi, create_app

        self.terminal = terminal
        self.host = host
        self.desk = PaymentDesk(terminal, worker)
        self._api = EcrApi(self.desk, devices)
        self.app = create_app(self._api, allow_remote=allow_remote)
        self._requested_port = port
        self._socket: socket.socket | None = sock
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- address --------------------------------------------------------------------------------

    def bind(self) -> None:
        """Listen on the address now (:class:`EcrBindError` if it cannot be); done by start/serve if not yet."""
        if self._socket is None:
            self._socket = listen(self.host, self._requested_port)

    @property
    def port(self) -> int:
        """The port listened on (the free one chosen for port 0), once bound."""
        if self._socket is None:
            return self._requested_port
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"http://{shown}:{self.port}"

    # -- running --------------------------------------------------------------------------------

    def _make_server(self) -> uvicorn.Server:
        import uvicorn

        config = uvicorn.Config(
            self.app,
            log_config=None,  # the terminal's log handlers (the command's log file), not uvicorn's console
            access_log=False,
            lifespan="off",
            http="h11",
            loop="asyncio",
            timeout_graceful_shutdown=_GRACE_SECONDS,
        )
        return _QuietServer(config)

    def start(self, timeout: float = 10.0) -> None:
        """Serve on a thread of its own (in process); returns once the server answers."""
        self.bind()
        self.desk.open()
        server = self._make_server()
        self._server = server
        sock = self._socket
        assert sock is not None
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="ecr-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the ECR server did not start (see the log)")
            time.sleep(0.005)
        _log.info("ECR interface on %s", self.url)

    def serve(self, ready: Callable[[], None] | None = None) -> None:
        """Serve in this (the main) thread until SIGINT or SIGTERM, then stop cleanly (see :meth:`stop`).

        ``ready`` is called once the signals are handled and the socket
        listens (connections queue until uvicorn takes them): where the
        command announces its address.
        """
        self.bind()
        self.desk.open()
        server = self._make_server()
        self._server = server
        sock = self._socket
        assert sock is not None
        _log.info("ECR interface on %s", self.url)
        with _stopping_on_signals(server):  # through stop() too: a payment past the card wait finishes
            if ready is not None:
                ready()
            server.run(sockets=[sock])
            self.stop()

    def stop(self, timeout: float | None = None) -> None:
        """Stop serving: no new payment, event streams end, a card wait is cancelled, a payment past it finishes.

        ``timeout`` bounds the wait for the running payment (None: as long
        as the host link's own time-outs take).  The terminal stays open.
        """
        if self._stopped:
            return
        self._stopped = True
        self.desk.begin_close()
        server = self._server
        if server is not None:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join()
        self.desk.close(timeout)
        self._api.close()
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()

    def __enter__(self) -> EcrServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


@functools.cache
def _quiet_server_class() -> type[Any]:
    import uvicorn

    class Quiet(uvicorn.Server):
        """uvicorn without its own signal handling: the caller's (``serve``) or none (a thread)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Quiet


def _QuietServer(config: Any) -> uvicorn.Server:
    server: uvicorn.Server = _quiet_server_class()(config)
    return server


@contextlib.contextmanager
def _stopping_on_signals(server: uvicorn.Server) -> Iterator[None]:
    """SIGINT and SIGTERM stop the server gracefully; a second SIGINT stops it at once.

    uvicorn's own handling would raise the signal again once stopped (so
    SIGTERM would kill the process before the terminal is closed): the
    command stops cleanly instead, and exits 0.
    """

    def handle(signum: int, frame: FrameType | None) -> None:
        if server.should_exit and signum == signal.SIGINT:
            server.force_exit = True
        server.should_exit = True

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
