"""The load generator's pieces: the books' table, the comparison with the host, faults, cards, its HTTPS client."""

from __future__ import annotations

import argparse
import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulator.loadgen.books import COUNTED, TRANSITIONS, Books, Ev, St, Txn, reconcile
from simulator.loadgen.schedule import (
    FaultChange,
    FaultStep,
    ScheduleError,
    default_schedule,
    faults_at,
    parse_schedule,
)

EUR = 978


def _txn(txn_id: str, kind: str = "sale", amount: int = 1000, *, original: str | None = None) -> Txn:
    return Txn(txn_id, txn_id, kind, amount, EUR, b"", "tok", 0, "2026-01-01T00:00:00Z", original_txn_id=original)


# ----------------------------------------------------------------------------- books


@pytest.mark.parametrize("state", list(St))
@pytest.mark.parametrize("event", list(Ev))
def test_a_payment_moves_only_along_the_table(state: St, event: Ev) -> None:
    books = Books("T1", "M1")
    txn = books.add(_txn("a"))
    txn.state = state
    if (state, event) in TRANSITIONS:
        assert books.apply(txn, event) is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(RuntimeError, match="no transition"):
            books.apply(txn, event)
        assert txn.state is state


def test_only_approved_and_accepted_payments_are_counted_and_totalled() -> None:
    assert {St.APPROVED, St.ACCEPTED} == COUNTED
    books = Books("T1", "M1")
    sale = books.add(_txn("s1", amount=1500))
    books.apply(sale, Ev.HOST_APPROVED)
    deferred = books.add(_txn("s2", "deferred_authorisation", 700))
    books.apply(deferred, Ev.NOT_SENT_DEFERRED)
    assert books.open_items() == [deferred]
    books.apply(deferred, Ev.ADVICE_ACCEPTED)
    lost = books.add(_txn("s3", amount=999))
    books.apply(lost, Ev.NO_ANSWER)
    refund = books.add(_txn("r1", "refund", 400, original="s1"))
    books.apply(refund, Ev.HOST_APPROVED)
    assert sale.refunded == 400
    assert books.open_items() == [lost]
    books.apply(lost, Ev.REVERSAL_DONE)
    assert books.totals() == [(EUR, "refund", 1, 400), (EUR, "sale", 2, 2200)]
    assert books.counted() == {"s1": ("sale", 1500), "s2": ("sale", 700), "r1": ("refund", 400)}


def test_a_void_takes_the_sale_out_of_the_totals() -> None:
    books = Books("T1", "M1")
    sale = books.add(_txn("s1"))
    books.apply(sale, Ev.HOST_APPROVED)
    books.apply(sale, Ev.VOID)
    assert books.totals() == [] and books.open_items() == [sale]
    books.apply(sale, Ev.REVERSAL_DONE)
    assert sale.state is St.VOIDED and books.open_items() == []


def _record(txn_id: str, *, terminal: str = "T1", amount: int = 1000, **kw: Any) -> dict[str, Any]:
    record = {
        "method": "authorise", "txn_id": txn_id, "kind": "sale", "terminal_id": terminal, "merchant_id": "M1",
        "amount": amount, "approved": True, "reversed": False,
    }  # fmt: skip
    record.update(kw)
    return record


def test_the_comparison_finds_what_is_lost_unknown_different_or_twice() -> None:
    books = Books("T1", "M1")
    for txn_id in ("ok", "lost", "other-amount", "twice"):
        books.apply(books.add(_txn(txn_id)), Ev.HOST_APPROVED)
    records = [
        _record("ok"),
        _record("other-amount", amount=1001),
        _record("twice"),
        _record("twice", method="advise", kind="deferred_authorisation"),
        _record("unknown"),
        _record("declined", approved=False),
        _record("reversed", reversed=True),
        _record("ok", method="reverse", kind="no_answer"),
        _record("elsewhere", terminal="T9"),
    ]
    result = reconcile([books], records)
    assert result.missing_at_host == ("T1/lost",)
    assert result.unknown_to_terminals == ("T1/unknown",)
    assert result.different == ("T1/other-amount",)
    assert result.duplicated == ("T1/twice",)
    assert not result.matched
    assert result.to_json()["matched"] is False


def test_the_comparison_matches_books_that_agree_and_sees_another_merchant() -> None:
    books = Books("T1", "M1")
    books.apply(books.add(_txn("a", amount=250)), Ev.HOST_APPROVED)
    assert reconcile([books], [_record("a", amount=250)]).matched
    assert reconcile([books], [_record("a", amount=250, merchant_id="M2")]).different == ("T1/a",)


# ----------------------------------------------------------------------------- faults


def test_fault_steps_overlap_into_the_faults_in_force() -> None:
    steps = parse_schedule("down@10+5,slow=300@12+10,error=503@30+1,drop@31+2")
    assert faults_at(steps, 9.9).any is False
    at_12 = faults_at(steps, 12)
    assert at_12.down and at_12.slow_ms == 300
    assert not faults_at(steps, 15).down and faults_at(steps, 15).slow_ms == 300
    assert faults_at(steps, 30.5).error_status == 503
    assert faults_at(steps, 32).drop_after_request and faults_at(steps, 32).error_status is None
    assert parse_schedule("none") == () and parse_schedule("") == ()
    assert [s.kind for s in default_schedule(60)] == ["down", "slow", "drop", "error"]
    assert all(s.end <= 60 for s in default_schedule(60))


@pytest.mark.parametrize(
    ("text", "words"),
    [("down", "expected KIND"), ("error@1+1", "needs a value"), ("drop=3@1+1", "takes no value"),
     ("error=404@1+1", "500..599"), ("slow=1000000@1+1", "slow_ms")],
)  # fmt: skip
def test_a_fault_step_that_cannot_be_read_says_why(text: str, words: str) -> None:
    with pytest.raises(ScheduleError, match=words):
        parse_schedule(text)


def test_the_windows_of_the_run_with_no_fault_and_with_the_host_down() -> None:
    from simulator.loadgen.run import _windows

    def calm(faults: str) -> bool:
        return faults == "none"

    def down(faults: str) -> bool:
        return "down@" in faults

    def change(at: float, in_force: str) -> FaultChange:  # asked at ``at``, applied 0.25 s later
        return FaultChange(at, at + 0.25, in_force)

    log = [change(10.0, "down@10+5"), change(15.0, "none"), change(20.0, "slow=300@20+5"),
           change(22.0, "slow=300@20+5, down@22+5"), change(25.0, "down@22+5"), change(27.0, "none")]  # fmt: skip
    assert _windows(100.0, 130.0, log, calm) == [(100.0, 110.0), (115.25, 120.0), (127.25, 130.0)]
    assert _windows(100.0, 130.0, log, down) == [(110.25, 115.0), (122.25, 127.0)]
    assert _windows(100.0, 130.0, [], calm) == [(100.0, 130.0)] and _windows(100.0, 130.0, [], down) == []
    assert _windows(100.0, 105.0, [change(10.0, "down@10+5")], calm) == [(100.0, 105.0)]


def test_a_step_prints_as_it_is_written() -> None:
    assert str(FaultStep("error", 503, 4.0, 2.5)) == "error=503@4+2.5"


# ----------------------------------------------------------------------------- cards


def test_taps_carry_cryptograms_the_host_verifies_and_approves(tmp_path: Path) -> None:
    """Sales, a refund to the same card and an offline approval, through the host's own processing."""
    from emv.tlv import decode_primitive_map
    from host_link import wire
    from simulator.host.acquirer import Acquirer, Peer
    from simulator.host.store import HostStore
    from simulator.loadgen.cards import CardPool
    from terminal.host import Advice, AuthorisationRequest

    pool = CardPool(2, offline=1, seed=7)
    taps = [pool.tap_online(1234 + i) for i in range(6)]
    refund = pool.tap_online(500, card=taps[0].card, refund=True)
    assert len({(t.card, t.atc) for t in [*taps, refund]}) == 7, "an ATC twice on one card"
    assert len({t.cryptogram for t in [*taps, refund]}) == 7
    assert refund.transaction_type == 0x20 and refund.card == taps[0].card
    pool.precompute_offline(2, [700])
    offline = pool.offline_tap()
    assert offline is not None and pool.offline_left == 1 and offline.amount == 700
    assert decode_primitive_map(offline.emv_data)[0x9F27] == b"\x40"  # a TC
    peer = Peer("T1", "M1")

    def request(txn_id: str, tap: Any, kind: str = "sale", original: str | None = None) -> dict[str, Any]:
        return wire.authorisation_json(
            AuthorisationRequest(
                txn_id, txn_id, kind, tap.amount, EUR, "T1", "M1", tap.emv_data, tap.pan_token, original
            )
        )

    with HostStore(tmp_path / "host.db") as store:
        acquirer = Acquirer(store)
        for i, tap in enumerate(taps):
            answer = acquirer.handle("authorisation", request(f"s{i}", tap), peer, f"s{i}").json()
            assert answer["status"] == "approved" and answer["arpc"], answer
        answer = acquirer.handle("authorisation", request("r0", refund, "refund", "s0"), peer, "r0").json()
        assert answer["status"] == "approved" and answer["arpc"], answer
        advice = Advice("o1", "o1", "offline_approval", 700, EUR, "T1", "M1", offline.emv_data, offline.pan_token,
                        "2026-01-01T00:00:00Z")  # fmt: skip
        results = acquirer.handle("advices", wire.advices_json([advice]), peer, "a1").json()["results"]
        assert results[0]["outcome"] == "accepted", results


def test_card_tokens_are_the_same_for_a_card_and_differ_between_cards() -> None:
    from simulator.loadgen.cards import CardPool

    pool = CardPool(2, seed=1, token_secret=b"k" * 32)
    first, again, other = pool.tap_online(100, card=0), pool.tap_online(200, card=0), pool.tap_online(300, card=1)
    assert first.pan_token == again.pan_token != other.pan_token
    assert len(first.pan_token) == 32


# ----------------------------------------------------------------------------- the HTTPS client


def _pki(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) from a throwaway host CA, the host's TLS settings."""
    from simulator.host.ca import CertificateAuthority
    from simulator.loadgen.fleet import client_context

    ca = CertificateAuthority.generate()
    key_pem, cert_pem = ca.issue_server_certificate(["127.0.0.1"])
    (tmp_path / "server.pem").write_bytes(cert_pem + key_pem)
    (tmp_path / "ca.pem").write_bytes(ca.certificate_pem)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.TLSv1_3
    server.load_cert_chain(tmp_path / "server.pem")
    server.load_verify_locations(tmp_path / "ca.pem")
    server.verify_mode = ssl.CERT_REQUIRED
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "T1")])
    )
    client_pem = ca.sign_csr(csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), "T1", "M1")
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "client.pem").write_bytes(client_pem + key_bytes)
    return server, client_context(ca.certificate_pem.decode(), tmp_path / "client.pem")


async def _serve(context: ssl.SSLContext, mode: str) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(
                next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            )
            body = await reader.readexactly(length)
            if mode == "drop":
                writer.transport.abort()
                return
            if mode == "silent":
                await asyncio.sleep(5)
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\nIdempotent-Replay: true\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]


def test_the_client_tells_an_answer_a_refusal_a_drop_and_a_silence_apart(tmp_path: Path) -> None:
    from simulator.loadgen.https import HostConnection, Lost, NotSent, TransportStats

    server_context, client_context = _pki(tmp_path)

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        stats = TransportStats()
        server, port = await _serve(server_context, "answer")
        conn = HostConnection("127.0.0.1", port, client_context, stats=stats, read_timeout=1.0)
        first = await conn.request("POST", "/v1/x", b'{"a":1}')
        second = await conn.request("POST", "/v1/x", b'{"a":2}')
        out["answers"] = (first.status, first.body, first.replayed, second.body, stats.handshakes, stats.reused)
        conn.close()
        server.close()
        await server.wait_closed()
        try:
            await HostConnection("127.0.0.1", port, client_context).request("POST", "/v1/x", b"{}")
        except NotSent as exc:
            out["closed port"] = exc.kind
        for mode in ("drop", "silent"):
            server, port = await _serve(server_context, mode)
            try:
                await HostConnection("127.0.0.1", port, client_context, read_timeout=0.5).request("POST", "/", b"{}")
            except Lost as exc:
                out[mode] = exc.kind
            server.close()
        return out

    out = asyncio.run(scenario())
    assert out["answers"] == (200, b'{"a":1}', True, b'{"a":2}', 1, 1)
    assert out["closed port"] == "connection_refused"
    assert out["drop"] in ("closed_without_answer", "reset")
    assert out["silent"] == "read_timeout"


def test_the_command_exits_1_when_the_books_do_not_match(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from simulator.loadgen import cli, run

    class Report:
        ok = False

        def text(self) -> str:
            return "verdict: BOOKS DO NOT MATCH"

        def to_json(self) -> dict[str, Any]:
            return {"ok": False}

    monkeypatch.setattr(run, "run_load", lambda options: Report())
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.load_command(parser.parse_args(["--terminals", "2", "--faults", "none"])) == 1
    assert "BOOKS DO NOT MATCH" in capsys.readouterr().out
    Report.ok = True
    assert cli.load_command(parser.parse_args(["--json"])) == 0


def test_bulk_enrolment_registers_each_certificate_and_refuses_a_held_terminal_id(tmp_path: Path) -> None:
    from simulator.host import admin
    from simulator.loadgen.fleet import _key_and_csr

    data_dir = tmp_path / "host"
    requests = [(tid, "M1", _key_and_csr(tid)[1]) for tid in ("T1", "T2")]
    certificates = admin.enrol_terminals(data_dir, requests)
    serials = {format(x509.load_pem_x509_certificate(c.encode()).serial_number, "X") for c in certificates}
    enrolled = {(t["terminal_id"], t["merchant_id"]): t for t in admin.terminals(data_dir)}
    assert set(enrolled) == {("T1", "M1"), ("T2", "M1")}
    assert {t["certificate_serial"].upper() for t in enrolled.values()} == serials
    assert {t["certificate_status"] for t in enrolled.values()} == {"active"}
    with pytest.raises(admin.AdminRefused, match="another merchant"):
        admin.enrol_terminals(data_dir, [("T1", "M2", _key_and_csr("T1")[1])])
    with pytest.raises(admin.AdminError, match="terminal id"):
        admin.enrol_terminals(data_dir, [("far-too-long-id", "M1", _key_and_csr("X")[1])])
