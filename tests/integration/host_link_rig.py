"""Support for the host link's integration tests: a test PKI and a small TLS 1.3 server on loopback.

The server stands in for the acquiring host while the real simulated host is
being written: ``http.server`` over ``ssl``, each connection's handshake done
in its own thread, asking for (not requiring) a client certificate like the
real host.  What it answers is scripted per path: a queue of :class:`Action`
for the next requests, then a default handler.  It records every request it
received (after the handshake) and counts the TCP connections it accepted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["MID", "TID", "Action", "Pki", "Received", "TlsHost", "make_pki", "sign_csr"]

TID = "TERM0001"
MID = "POSTERM0000001"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


@dataclass
class Issuer:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


def make_ca(cn: str) -> Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issuer(key, cert)


def issue(
    ca: Issuer,
    public_key: Any,
    subject: x509.Name,
    *,
    server: bool,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> x509.Certificate:
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(hours=1))
        .not_valid_after(not_after or now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
    return builder.sign(ca.key, hashes.SHA256())


def sign_csr(ca: Issuer, csr_pem: str, days: int = 365, public_key: Any = None) -> x509.Certificate:
    """What the host does on enrolment (here: keeps the CSR's subject)."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    now = _now()
    return issue(
        ca,
        public_key or csr.public_key(),
        csr.subject,
        server=False,
        not_after=now + dt.timedelta(days=days),
    )


def _write_pair(directory: Path, stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    (directory / f"{stem}-key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / f"{stem}-cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@dataclass
class Pki:
    """Files of a host CA, its server certificate, a terminal certificate, and impostors."""

    directory: Path
    ca: Issuer
    other_ca: Issuer

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    def cert(self, stem: str) -> Path:
        return self.directory / f"{stem}-cert.pem"

    def key(self, stem: str) -> Path:
        return self.directory / f"{stem}-key.pem"


def make_pki(directory: Path) -> Pki:
    """``server`` (127.0.0.1), ``client`` (TERM0001), and ``expired-server``, ``other-server``, ``other-client``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, other = make_ca("posterm test host CA"), make_ca("someone else's CA")
    (directory / "ca.pem").write_text(ca.pem)
    (directory / "other-ca.pem").write_text(other.pem)
    now = _now()
    for stem, issuer, subject, server, times in (
        ("server", ca, _name("127.0.0.1"), True, {}),
        ("client", ca, _name(TID, MID), False, {}),
        (
            "expired-server",
            ca,
            _name("127.0.0.1"),
            True,
            {"not_before": now - dt.timedelta(days=3), "not_after": now - dt.timedelta(days=1)},
        ),
        ("other-server", other, _name("127.0.0.1"), True, {}),
        ("other-client", other, _name(TID, MID), False, {}),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        _write_pair(directory, stem, key, issue(issuer, key.public_key(), subject, server=server, **times))
    return Pki(directory, ca, other)


# ----------------------------------------------------------------------------- the server


@dataclass(frozen=True)
class Action:
    """What the server does with one request.

    kind: ``json`` (answer ``status`` with ``doc``), ``raw`` (answer ``status`` with ``body``),
    ``close`` (read the request, close without answering), ``hang`` (read it, wait ``seconds``, close).
    """

    kind: str
    status: int = 200
    doc: Any = None
    body: bytes = b""
    seconds: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    peer_cn: str | None

    def json(self) -> Any:
        return json.loads(self.body)


Handler = Callable[[Received], Action]


@dataclass
class _State:
    script: dict[str, deque[Action]] = field(default_factory=lambda: defaultdict(deque))
    handlers: dict[str, Handler] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    handshake_failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)
    open_sockets: set[socket.socket] = field(default_factory=set)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TlsServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _peer_cn(self) -> str | None:
        conn = self.connection
        cert = conn.getpeercert() if isinstance(conn, ssl.SSLSocket) else None
        if not cert:
            return None
        for rdn in cert.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
        return None

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        received = Received(self.command, path, query, {k: v for k, v in self.headers.items()}, body, self._peer_cn())
        state = self.server.state
        with state.lock:
            state.received.append(received)
            queue = state.script.get(path)
            action = queue.popleft() if queue else None
            handler = state.handlers.get(path)
        if action is None:
            action = (
                handler(received)
                if handler is not None
                else Action("json", 404, {"error": "not_found", "message": path})
            )
        if action.kind == "close":
            self.close_connection = True
            return
        if action.kind == "hang":
            state.release.wait(action.seconds)
            self.close_connection = True
            return
        data = action.body if action.kind == "raw" else json.dumps(action.doc).encode()
        self.send_response(action.status)
        if action.status != 304:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if action.status != 304:
            self.wfile.write(data)

    do_GET = _handle
    do_POST = _handle


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, state: _State) -> None:
        self.context = context
        self.state = state
        super().__init__(address, _RequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self.state.lock:
            self.state.connections += 1
            self.state.open_sockets.add(request)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            with self.state.lock:
                self.state.handshake_failures += 1
                self.state.open_sockets.discard(request)
            return
        with self.state.lock:
            self.state.open_sockets.discard(request)
            self.state.open_sockets.add(tls)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (ssl.SSLError, OSError):
            with self.state.lock:
                self.state.handshake_failures += 1
        finally:
            with self.state.lock:
                self.state.open_sockets.discard(tls)
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet
        pass


def server_context(
    pki: Pki, stem: str = "server", *, tls12_only: bool = False, require_client_cert: bool = False
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if tls12_only:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(pki.cert(stem), pki.key(stem))
    context.load_verify_locations(cafile=str(pki.ca_file))
    context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TlsHost:
    """A scripted TLS host on 127.0.0.1; ``stop()`` and ``start()`` again on the same port."""

    def __init__(self, context: ssl.SSLContext, port: int | None = None) -> None:
        self.context = context
        self.port = port or free_port()
        self.state = _State()
        self._server: _TlsServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> TlsHost:
        self.state.release.clear()
        self._server = _TlsServer(("127.0.0.1", self.port), self.context, self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop the open connections (the host has gone away)."""
        self.state.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self.state.lock:
            sockets = list(self.state.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def script(self, path: str, *actions: Action) -> None:
        with self.state.lock:
            self.state.script[path].extend(actions)

    def handle(self, path: str, handler: Handler) -> None:
        with self.state.lock:
            self.state.handlers[path] = handler

    def received(self, path: str | None = None) -> list[Received]:
        with self.state.lock:
            return [r for r in self.state.received if path is None or r.path == path]

    @property
    def connections(self) -> int:
        with self.state.lock:
            return self.state.connections

    @property
    def handshake_failures(self) -> int:
        with self.state.lock:
            return self.state.handshake_failures


# ----------------------------------------------------------------------------- a protocol-shaped stub


def _needs_cert(handler: Handler) -> Handler:
    def wrapped(r: Received) -> Action:
        if r.peer_cn is None:
            return Action("json", 401, {"error": "no_client_certificate", "message": "client certificate required"})
        if r.method == "POST" and "idempotency-key" not in {k.lower() for k in r.headers}:
            return Action("json", 400, {"error": "bad_request", "message": "Idempotency-Key header missing"})
        return handler(r)

    return wrapped


def install_protocol(host: TlsHost, parameters: Callable[[], dict[str, Any] | None] | None = None) -> None:
    """Plausible answers on every path (no decisions: everything approved / accepted / in balance)."""
    counter = iter(range(1, 1_000_000))

    def ref() -> str:
        return f"H{next(counter):08d}"

    def echo(r: Received) -> Action:
        return Action("json", 200, {"host_time": _now().isoformat(), "host_reference": ref()})

    def authorise(r: Received) -> Action:
        return Action(
            "json",
            200,
            {
                "status": "approved",
                "response_code": "00",
                "approval_code": "A1B2C3",
                "host_reference": ref(),
                "arpc": None,
            },
        )

    def advices(r: Received) -> Action:
        results = [
            {
                "txn_id": a["txn_id"],
                "idempotency_key": a["idempotency_key"],
                "outcome": "accepted",
                "response_code": "00",
                "approval_code": None,
                "host_reference": ref(),
                "message": None,
            }
            for a in r.json()["advices"]
        ]
        return Action("json", 200, {"results": results})

    def reverse(r: Received) -> Action:
        return Action("json", 200, {"status": "approved", "response_code": "00", "host_reference": ref()})

    def close(r: Received) -> Action:
        return Action("json", 200, {"in_balance": True, "host_reference": ref(), "differences": []})

    def sign_on(r: Received) -> Action:
        return Action("json", 200, {"host_time": _now().isoformat(), "parameters_version": 1, "host_reference": ref()})

    def params(r: Received) -> Action:
        doc = parameters() if parameters is not None else None
        if doc is None:
            return Action("json", 404, {"error": "not_found", "message": "no parameters"})
        if r.query == f"have={doc['version']}":
            return Action("raw", 304)
        return Action("json", 200, doc)

    for path, handler in (
        ("/v1/echo", echo),
        ("/v1/authorisations", authorise),
        ("/v1/advices", advices),
        ("/v1/reversals", reverse),
        ("/v1/batches/close", close),
        ("/v1/sign-on", sign_on),
        ("/v1/parameters", params),
    ):
        host.handle(path, _needs_cert(handler))
