"""HttpsHostLink against a real TLS 1.3 server on loopback: mTLS, refusals, reachability, lost answers, retries."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from host_link.client import HttpsHostLink, IdempotentRetry
from host_link.reachability import Reachability
from host_link.tls import client_context
from terminal.host import (
    Advice,
    AuthorisationRequest,
    BatchTotals,
    HostNoAnswer,
    HostRejected,
    HostUnreachable,
    Reversal,
    TotalsLine,
)
from tests.integration.host_link_rig import (
    MID,
    TID,
    Action,
    Pki,
    TlsHost,
    free_port,
    install_protocol,
    make_pki,
    server_context,
)

PAN = "4761739001010010"
EMV = bytes.fromhex("5A08" + PAN + "9F2608AABBCCDDEEFF0011")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class CountingTransport(httpx.BaseTransport):
    """Counts the requests that reach the network layer (a refused connect counts as one)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def host(pki: Pki) -> Iterator[TlsHost]:
    server = TlsHost(server_context(pki)).start()
    install_protocol(server)
    yield server
    server.stop()


def context(pki: Pki, stem: str | None = "client", ca: str = "ca.pem") -> ssl.SSLContext:
    return client_context(
        ca_file=pki.directory / ca,
        cert_file=pki.cert(stem) if stem else None,
        key_file=pki.key(stem) if stem else None,
    )


def link(url: str, pki: Pki, stem: str | None = "client", **kw: Any) -> HttpsHostLink:
    kw.setdefault("connect_timeout", 2.0)
    kw.setdefault("read_timeout", 2.0)
    kw.setdefault("retry", IdempotentRetry(attempts=3, backoff_seconds=0.01, total_seconds=10))
    return HttpsHostLink(url, terminal_id=TID, merchant_id=MID, ssl_context=context(pki, stem), **kw)


def auth(txn: str = "t1") -> AuthorisationRequest:
    return AuthorisationRequest(txn, f"key-{txn}", "sale", 1000, 978, TID, MID, EMV, "tok")


def advice(txn: str = "a1") -> Advice:
    return Advice(txn, f"key-{txn}", "offline_approval", 1000, 978, TID, MID, EMV, "tok", "2025-01-01T00:00:00+00:00")


# ----------------------------------------------------------------------------- mutual TLS


def test_mutual_tls_round_trip_reuses_one_connection(host: TlsHost, pki: Pki) -> None:
    with link(host.url, pki) as hl:
        assert hl.echo() > 0
        answer = hl.authorise(auth())
        assert answer.approved and answer.approval_code == "A1B2C3"
        assert hl.reverse(Reversal("t1", "r1", 1000, 978, TID, "void")).response_code == "00"
        settled = hl.close_batch(BatchTotals(1, TID, (TotalsLine("visa", 978, "sale", 1, 1000),)))
        assert settled.in_balance
        assert hl.sign_on().parameters_version == 1
        assert hl.reachable
    got = host.received()
    assert [r.path for r in got] == [
        "/v1/echo",
        "/v1/authorisations",
        "/v1/reversals",
        "/v1/batches/close",
        "/v1/sign-on",
    ]
    assert all(r.peer_cn == TID for r in got)
    assert host.connections == 1  # kept alive between messages
    assert got[1].headers["Idempotency-Key"] == "key-t1"
    assert got[3].headers["Idempotency-Key"] == f"batch-close:{TID}:1"


def test_without_client_certificate_the_host_says_401_and_the_link_says_not_enrolled(host: TlsHost, pki: Pki) -> None:
    with link(host.url, pki, stem=None) as hl, pytest.raises(HostRejected, match="does not recognise this terminal"):
        hl.authorise(auth())


def test_a_client_certificate_of_another_ca_is_refused_by_the_host_and_nothing_is_processed(pki: Pki) -> None:
    server = TlsHost(server_context(pki)).start()
    install_protocol(server)
    try:
        with link(server.url, pki, stem="other-client") as hl:
            with pytest.raises(HostUnreachable, match="refused this terminal's certificate"):
                hl.authorise(auth())
            assert not hl.reachable
        assert server.received() == []
        # the server's thread counts the failed handshake after the client has seen it fail
        deadline = time.monotonic() + 5
        while server.handshake_failures == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.handshake_failures == 1
    finally:
        server.stop()


@pytest.mark.parametrize("stem", ["other-server", "expired-server"])
def test_a_server_certificate_from_another_ca_or_expired_is_refused_as_unreachable(pki: Pki, stem: str) -> None:
    server = TlsHost(server_context(pki, stem)).start()
    install_protocol(server)
    try:
        with link(server.url, pki) as hl:
            with pytest.raises(HostUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
                hl.authorise(auth())
            assert not hl.reachable
            assert hl.last_error is not None and "CERTIFICATE_VERIFY_FAILED" in hl.last_error
        assert server.received() == []
    finally:
        server.stop()


def test_a_tls_1_2_server_is_refused(pki: Pki) -> None:
    server = TlsHost(server_context(pki, tls12_only=True)).start()
    try:
        with link(server.url, pki) as hl, pytest.raises(HostUnreachable):
            hl.echo()
    finally:
        server.stop()


def test_the_system_trust_store_is_not_used(pki: Pki) -> None:
    ctx = context(pki)
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_3
    assert ctx.check_hostname and ctx.verify_mode is ssl.CERT_REQUIRED
    assert len(ctx.get_ca_certs()) == 1


# ----------------------------------------------------------------------------- reachability


def test_connect_refused_then_the_window_refuses_without_a_network_attempt_then_one_probe(pki: Pki) -> None:
    port = free_port()
    clock = Clock()
    transport = CountingTransport(httpx.HTTPTransport(verify=context(pki), retries=0))
    hl = HttpsHostLink(
        f"https://127.0.0.1:{port}",
        terminal_id=TID,
        merchant_id=MID,
        transport=transport,
        reachability=Reachability(retry_after_seconds=30, clock=clock),
        clock=clock,
    )
    with hl:
        with pytest.raises(HostUnreachable, match="ConnectError"):
            hl.authorise(auth("p1"))
        assert transport.calls == 1 and not hl.reachable
        for txn in ("p2", "p3", "p4"):
            with pytest.raises(HostUnreachable, match="next attempt in 30 s"):
                hl.authorise(auth(txn))
        with pytest.raises(HostUnreachable):
            hl.advise(advice())
        assert transport.calls == 1  # the window cost nothing on the network
        clock.t += 31
        server = TlsHost(server_context(pki), port=port).start()
        install_protocol(server)
        try:
            assert hl.authorise(auth("p5")).approved  # the probe
            assert transport.calls == 2 and hl.reachable
            assert hl.last_error is not None  # kept for diagnostics
        finally:
            server.stop()


def test_host_goes_away_and_comes_back_on_the_same_port(pki: Pki) -> None:
    clock = Clock()
    server = TlsHost(server_context(pki)).start()
    install_protocol(server)
    hl = link(server.url, pki, reachability=Reachability(retry_after_seconds=5, clock=clock))
    with hl:
        assert hl.advise(advice("x1")).approved
        server.stop()
        with pytest.raises(HostUnreachable):
            hl.advise(advice("x2"))
        server.start()
        with pytest.raises(HostUnreachable):  # still inside the window
            hl.advise(advice("x2"))
        clock.t += 6
        assert hl.advise(advice("x2")).approved
    server.stop()


# ----------------------------------------------------------------------------- lost answers


def test_authorisation_whose_answer_is_lost_is_no_answer_and_never_resent(host: TlsHost, pki: Pki) -> None:
    host.script("/v1/authorisations", Action("close"))
    with link(host.url, pki) as hl, pytest.raises(HostNoAnswer, match="result is unknown"):
        hl.authorise(auth())
    assert len(host.received("/v1/authorisations")) == 1


def test_advice_whose_answer_is_lost_is_retried_with_the_same_key_and_succeeds(host: TlsHost, pki: Pki) -> None:
    host.script("/v1/advices", Action("close"))
    with link(host.url, pki) as hl:
        assert hl.advise(advice()).approved
    sent = host.received("/v1/advices")
    assert len(sent) == 2
    assert sent[0].headers["Idempotency-Key"] == sent[1].headers["Idempotency-Key"]
    assert sent[0].body == sent[1].body


def test_read_timeout_is_no_answer(host: TlsHost, pki: Pki) -> None:
    host.script("/v1/authorisations", Action("hang", seconds=5))
    with link(host.url, pki, read_timeout=0.3) as hl, pytest.raises(HostNoAnswer, match="ReadTimeout"):
        hl.authorise(auth())
    assert len(host.received("/v1/authorisations")) == 1


def test_read_timeout_of_a_reversal_is_retried(host: TlsHost, pki: Pki) -> None:
    host.script("/v1/reversals", Action("hang", seconds=5))
    with link(host.url, pki, read_timeout=0.3) as hl:
        assert hl.reverse(Reversal("t1", "r1", 1000, 978, TID, "no_answer")).response_code == "00"
    assert len(host.received("/v1/reversals")) == 2


def test_5xx_is_no_answer_for_an_authorisation_and_retried_for_a_batch_close(host: TlsHost, pki: Pki) -> None:
    error = Action("json", 503, {"error": "unavailable", "message": "try later"})
    host.script("/v1/authorisations", error)
    host.script("/v1/batches/close", error, error, error)
    with link(host.url, pki) as hl:
        with pytest.raises(HostNoAnswer, match="503"):
            hl.authorise(auth())
        with pytest.raises(HostNoAnswer, match="after 3 attempt"):
            hl.close_batch(BatchTotals(7, TID, ()))
        assert hl.reachable  # the host answered: it is there
    assert len(host.received("/v1/authorisations")) == 1
    assert len(host.received("/v1/batches/close")) == 3


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_4xx_is_rejected_with_the_hosts_message_and_not_retried(host: TlsHost, pki: Pki, status: int) -> None:
    host.script("/v1/reversals", Action("json", status, {"error": "invalid", "message": "amount: out of range"}))
    with link(host.url, pki) as hl, pytest.raises(HostRejected, match=f"{status} invalid: amount: out of range"):
        hl.reverse(Reversal("t1", "r1", 1000, 978, TID, "void"))
    assert len(host.received("/v1/reversals")) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"status": "approved"}',
        b"[]",
        b'{"status": "approved", "response_code": 0, "host_reference": "x"}',
    ],
)
def test_malformed_answers(host: TlsHost, pki: Pki, body: bytes) -> None:
    host.script("/v1/authorisations", Action("raw", 200, body=body))
    host.script("/v1/advices", Action("raw", 200, body=body))
    with link(host.url, pki) as hl:
        with pytest.raises(HostNoAnswer, match="malformed answer"):
            hl.authorise(auth())
        assert hl.advise(advice()).approved  # retried, and the second answer is good
    assert len(host.received("/v1/authorisations")) == 1
    assert len(host.received("/v1/advices")) == 2


def test_parameters_304_and_200(pki: Pki) -> None:
    doc = {"version": 3, "issued_at": "2025-01-01T00:00:00Z", "config": {"merchant_name": "x"}, "capks": []}
    server = TlsHost(server_context(pki)).start()
    install_protocol(server, parameters=lambda: doc)
    try:
        with link(server.url, pki) as hl:
            assert hl.fetch_parameters(None) == doc
            assert hl.fetch_parameters(3) is None
        assert [r.query for r in server.received("/v1/parameters")] == ["", "have=3"]
    finally:
        server.stop()


def test_open_host_link_refuses_a_data_dir_that_is_not_enrolled(tmp_path: Path) -> None:
    from terminal.bootstrap import open_host
    from terminal.ports import DeviceError

    with pytest.raises(DeviceError, match="not enrolled with a host: run 'posterm enrol BUNDLE' first"):
        open_host("https", tmp_path)
