"""The host's connections over real TLS on loopback: deadlines, caps, ``down`` under load, content types.

Each test starts its own host process (``start_host``) with the limits it
checks, short enough to run quickly. Nothing is timed: a connection the host
must cut is watched for a bounded number of steps, far beyond its deadline,
and the test asserts that it was cut, not when.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from simulator.host.service import ClientCredentials, HostService, start_host

TID, MID = "TERM0001", "POSTERM0000001"
PATIENCE = 30.0  # seconds a socket waits for the host to act; every deadline under test is 1 s


@dataclass
class Rig:
    host: HostService
    terminal: ClientCredentials

    def anonymous(self) -> ssl.SSLContext:
        """TLS without a client certificate (a load balancer's probe, or an attacker)."""
        return ssl.create_default_context(cafile=str(self.host.ca_certificate_path))

    def terminal_context(self) -> ssl.SSLContext:
        context = self.anonymous()
        context.load_cert_chain(self.terminal.certificate, self.terminal.key)
        return context

    def tls(self, context: ssl.SSLContext | None = None) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.host.port), timeout=PATIENCE)
        return (context or self.anonymous()).wrap_socket(raw, server_hostname="127.0.0.1")


@contextlib.contextmanager
def rig(tmp_path: Path, *options: str, workers: int = 1, metrics: bool = False) -> Iterator[Rig]:
    with start_host(tmp_path / "host", extra_args=options, workers=workers, metrics=metrics) as host:
        yield Rig(host, host.enrol(TID, MID, tmp_path / "terminal"))


def closed_by_peer(sock: socket.socket) -> tuple[bool, bytes]:
    """Read until the host closes (True and what it sent) or PATIENCE passes (False)."""
    received = b""
    sock.settimeout(PATIENCE)
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return True, received
            received += chunk
    except (ConnectionResetError, ssl.SSLEOFError, BrokenPipeError):
        return True, received
    except TimeoutError:
        return False, received


def trickle(sock: socket.socket, head: bytes, step: bytes, steps: int = 100) -> tuple[bool, bytes]:
    """Send ``head``, then ``step`` every 0.1 s; (cut by the host before the last step, what it answered)."""
    sock.sendall(head)
    for _ in range(steps):
        readable, _, _ = select.select([sock], [], [], 0.1)
        if readable or (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            return closed_by_peer(sock)
        try:
            sock.sendall(step)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            return True, b""
    return False, b""


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text ``text`` (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        sample, value = line.rsplit(" ", 1)
        sample_name, _, rest = sample.partition("{")
        found = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if sample_name == name and found == wanted:
            return float(value)
    return 0.0


# ----------------------------------------------------------------------------- deadlines


def test_a_connection_that_never_starts_its_handshake_is_closed(tmp_path: Path) -> None:
    with rig(tmp_path, "--handshake-timeout", "1", metrics=True) as r:
        raw = socket.create_connection(("127.0.0.1", r.host.port), timeout=PATIENCE)
        with raw:
            closed, _ = closed_by_peer(raw)
        assert closed, "a connection that never sent a ClientHello stayed open"
        assert metric(r.host.metrics_text(), "posterm_host_timeouts_total", phase="handshake") >= 1


def test_a_handshake_trickled_byte_by_byte_is_cut(tmp_path: Path) -> None:
    with rig(tmp_path, "--handshake-timeout", "1") as r:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        hello = r.anonymous().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        with contextlib.suppress(ssl.SSLWantReadError):
            hello.do_handshake()
        client_hello = outgoing.read()
        assert len(client_hello) > 100  # one byte every 0.1 s: the whole hello would take over 10 s
        closed = False
        with socket.create_connection(("127.0.0.1", r.host.port), timeout=PATIENCE) as raw:
            for byte in client_hello:  # one byte, then 0.1 s to see whether the host closed
                closed, _ = trickle(raw, bytes([byte]), b"", steps=1)
                if closed:
                    break
        assert closed, "a ClientHello trickled byte by byte kept the connection open"


def test_headers_trickled_without_a_certificate_are_cut_with_408(tmp_path: Path) -> None:
    with rig(tmp_path, "--header-timeout", "1") as r, r.tls() as sock:
        closed, answer = trickle(sock, b"GET /v1/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: 1\r\n")
        assert closed, "the host kept reading trickled headers"
        assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_a_connection_that_never_sends_a_request_is_cut(tmp_path: Path) -> None:
    with rig(tmp_path, "--header-timeout", "1") as r, r.tls() as sock:
        closed, answer = closed_by_peer(sock)
        assert closed and answer.startswith(b"HTTP/1.1 408 "), answer


def test_a_trickled_body_is_cut(tmp_path: Path) -> None:
    with rig(tmp_path, "--body-timeout", "1") as r, r.tls() as sock:
        head = (
            b"POST /v1/enrol HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n{"
        )
        closed, _ = trickle(sock, head, b" ")
        assert closed, "the host kept reading a trickled body"
        # the host still serves others
        with httpx.Client(base_url=r.host.url, verify=r.anonymous()) as client:
            assert client.get("/healthz").status_code == 200


def test_an_idle_keep_alive_connection_is_closed(tmp_path: Path) -> None:
    with rig(tmp_path, "--idle-timeout", "1") as r, r.tls(r.terminal_context()) as sock:
        sock.sendall(b"GET /v1/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        closed, answer = closed_by_peer(sock)
        assert answer.startswith(b"HTTP/1.1 200 ") and closed


# ----------------------------------------------------------------------------- caps


def _served(r: Rig) -> bool:
    try:
        with r.tls() as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return closed_by_peer(sock)[1].startswith(b"HTTP/1.1 200 ")
    except (OSError, ssl.SSLError):
        return False


@pytest.mark.parametrize(("option", "reason"), [("--max-client-connections", "max_per_client"),
                                                ("--max-connections", "max_connections")])
def test_connections_over_the_cap_are_closed_at_once(tmp_path: Path, option: str, reason: str) -> None:
    with rig(tmp_path, option, "3", metrics=True) as r:
        held = [socket.create_connection(("127.0.0.1", r.host.port), timeout=PATIENCE) for _ in range(3)]
        try:
            # the three are accepted and wait in their handshake; the host counts them from the accept on
            for _ in range(200):
                if metric(r.host.metrics_text(), "posterm_host_open_connections") >= 3:
                    break
                time.sleep(0.05)
            with socket.create_connection(("127.0.0.1", r.host.port), timeout=PATIENCE) as fourth:
                assert closed_by_peer(fourth)[0], "a connection over the cap was kept"
            assert not _served(r)
            assert metric(r.host.metrics_text(), "posterm_host_connections_refused_total", reason=reason) >= 2
        finally:
            held.pop().close()
        served = False
        for _ in range(100):  # the host notices the closed one at its next loop turn
            served = _served(r)
            if served:
                break
            time.sleep(0.05)
        assert served, "a place freed under the cap was not given to a new connection"
        for sock in held:
            sock.close()


# ----------------------------------------------------------------------------- down under load


@dataclass
class Load:
    """Terminals that open a connection, handshake, ask twice, close, again and again."""

    rig: Rig
    threads: int = 8
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    answered: list[tuple[float, int]] = field(default_factory=list)  # (sent at, status)

    def _one(self) -> None:
        context = self.rig.terminal_context()
        for _ in range(2000):
            if self.stop.is_set():
                return
            try:
                connection = http.client.HTTPSConnection("127.0.0.1", self.rig.host.port, context=context, timeout=10)
                try:
                    for _ in range(2):
                        sent = time.monotonic()
                        connection.request("GET", "/v1/echo")
                        answer = connection.getresponse()
                        answer.read()
                        with self.lock:
                            self.answered.append((sent, answer.status))
                finally:
                    connection.close()
            except (OSError, http.client.HTTPException):
                time.sleep(0.001)

    def __enter__(self) -> Load:
        self.workers = [threading.Thread(target=self._one, daemon=True) for _ in range(self.threads)]
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join(30)

    def count(self) -> int:
        with self.lock:
            return len(self.answered)

    def after(self, moment: float) -> list[tuple[float, int]]:
        with self.lock:
            return [(sent, status) for sent, status in self.answered if sent > moment]


def _handshake_and_ask(sock: socket.socket, context: ssl.SSLContext) -> bytes:
    """Finish the TLS handshake of a connection held open since before ``down``, then ask: what came back."""
    try:
        with context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /v1/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return closed_by_peer(tls)[1]
    except (OSError, ssl.SSLError):
        return b""


@pytest.mark.parametrize("workers", [1, 2])
def test_down_serves_nothing_not_even_connections_that_were_handshaking(tmp_path: Path, workers: int) -> None:
    with rig(tmp_path, workers=workers) as r:
        context = r.terminal_context()
        with Load(r) as load:
            for _ in range(600):  # the terminals are busy before the host goes down
                if load.count() >= 100:
                    break
                time.sleep(0.01)
            assert load.count() >= 100
            # connections accepted by the host whose TLS handshake is still to come
            handshaking = [socket.create_connection(("127.0.0.1", r.host.port), timeout=PATIENCE) for _ in range(20)]
            r.host.set_faults(down=True)
            down_at = time.monotonic()
            late = [_handshake_and_ask(sock, context) for sock in handshaking]
            time.sleep(0.5)  # the terminals keep trying, a few hundred connections, while the host is down
            served_while_down = load.after(down_at)
        assert not [answer for answer in late if answer], "connections handshaking at down were served"
        assert served_while_down == [], f"{len(served_while_down)} requests sent after down were answered"
        r.host.clear_faults()
        with httpx.Client(base_url=r.host.url, verify=context) as client:
            assert client.get("/v1/echo").status_code == 200


# ----------------------------------------------------------------------------- content types


def test_only_utf8_json_bodies_are_processed(tmp_path: Path) -> None:
    sign_on = {"terminal_id": TID, "merchant_id": MID, "software_version": "t 1"}
    text = json.dumps(sign_on)
    refused = [
        ("application/xml", b"<signOn><terminal_id>TERM0001</terminal_id></signOn>"),
        ("application/x-www-form-urlencoded", b"terminal_id=TERM0001&merchant_id=POSTERM0000001"),
        ("text/plain", text.encode()),
        ("application/json; charset=utf-16", text.encode("utf-16")),
        ("application/json", text.encode("utf-16")),  # a BOM, then UTF-16: json.loads would take it
        ("application/json", text.encode("utf-16-le")),
        ("application/json", b"\xef\xbb\xbf" + text.encode()),
        ("application/json; charset=latin-1", text.encode()),
        (None, text.encode()),
    ]
    with rig(tmp_path) as r, httpx.Client(base_url=r.host.url, verify=r.terminal_context()) as client:
        for index, (media_type, body) in enumerate(refused):
            headers = {"Idempotency-Key": f"ct-{index}"}
            if media_type is not None:
                headers["Content-Type"] = media_type
            answer = client.post("/v1/sign-on", content=body, headers=headers)
            assert (answer.status_code, answer.json()["error"]) == (415, "unsupported_media_type"), (media_type, body)
            # nothing was processed: the key is still free for another body
            other = {**sign_on, "software_version": f"t {index}"}
            assert client.post("/v1/sign-on", json=other, headers={"Idempotency-Key": f"ct-{index}"}).status_code == 200
        for index, media_type in enumerate(["application/json", "application/json; charset=utf-8",
                                            "Application/JSON;charset=\"UTF-8\""]):
            answer = client.post("/v1/sign-on", content=text.encode(), headers={
                "Idempotency-Key": f"ok-{index}", "Content-Type": media_type})
            assert answer.status_code == 200, (media_type, answer.text)
        enrol = client.post("/v1/enrol", content=b"<enrol/>", headers={"Content-Type": "text/xml"})
        assert enrol.status_code == 415
