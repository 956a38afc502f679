"""A bare TLS echo server: the floor the host's authorisation rate is compared with.

``python -m bench.tls_echo --data-dir HOST_DIR [--workers N]`` listens on a free
loopback port with the host's own TLS settings (TLS 1.3 only, the host's
server certificate, client certificates asked for and verified against the
host CA: :func:`simulator.host.server.server_ssl_context`), reads each HTTP/1.1
request (headers, then ``Content-Length`` bytes) and answers ``200`` with the
request's body, on a connection kept alive. It prints ``PORT <n>`` once it
listens and runs until SIGTERM. Nothing else: no routing, no JSON, no
database, no h11; what is left is the TLS, the sockets and the event loop,
as uvicorn runs them (asyncio's TLS transport), in ``--workers`` processes
sharing the port (SO_REUSEPORT).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.host.ca import ServerCertificates

__all__ = ["main"]

_HEAD_END = b"\r\n\r\n"


class _Echo(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(_HEAD_END)
            if end < 0:
                return
            length = 0
            for line in bytes(self.buffer[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            total = end + len(_HEAD_END) + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + len(_HEAD_END) : total])
            del self.buffer[:total]
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(body)).encode("ascii")
                + b"\r\n\r\n"
                + body
            )


def _socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    return sock


async def _serve(certs: ServerCertificates, sock: socket.socket) -> None:
    from simulator.host.faults import FaultSwitch
    from simulator.host.server import server_ssl_context

    context = server_ssl_context(certs, FaultSwitch())
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Echo, sock=sock, ssl=context, backlog=2048)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tls_echo")
    parser.add_argument("--data-dir", required=True, help="a host's data directory (its CA and certificates)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    from simulator.host.ca import load_or_create_ca, write_server_certificates

    data_dir = Path(args.data_dir)
    certs = write_server_certificates(load_or_create_ca(data_dir / "tls"), data_dir / "tls-echo", ["127.0.0.1"])
    certs = dataclasses.replace(certs, ca_certificate=data_dir / "tls" / "ca" / "cert.pem")
    sock = _socket(0)
    port = sock.getsockname()[1]
    children: list[int] = []
    for _ in range(args.workers - 1):
        pid = os.fork()
        if pid == 0:
            asyncio.run(_serve(certs, _socket(port)))
            os._exit(0)
        children.append(pid)
    print(f"PORT {port}", flush=True)
    try:
        asyncio.run(_serve(certs, sock))
    finally:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
