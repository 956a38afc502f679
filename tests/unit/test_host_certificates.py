"""The host's certificates and tenants in process: serials checked per request, revocation, rotation,
one terminal id under two merchants, enrolment without an oracle and with a rate limit.

The app runs in process (httpx's ASGI transport) with the peer a TLS handshake
would give it (see tests/unit/test_host_app.py); certificates come from
``POST /v1/enrol`` with real codes and CSRs, so their serials are the host's own.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulator.host import admin
from simulator.host.app import ENROL_REFUSED, Peer, create_app
from simulator.host.ratelimit import EnrolmentLimiter, EnrolmentLimits
from tests.unit.test_host_app import NOW, AppClient, Rig, card, conforms, with_peer

FAST = EnrolmentLimits(per_client_per_minute=1000, overall_per_minute=1000, failure_delay_seconds=0.0)


@pytest.fixture()
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    r.app = create_app(r.store, r.ca, r.faults, clock=lambda: NOW, enrol_limits=FAST)
    yield r
    r.store.close()


def csr(key: ec.EllipticCurvePrivateKey | None = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "asked for")])
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode("ascii")


def serial_of(answer: Any) -> str:
    return format(x509.load_pem_x509_certificate(answer.json()["certificate_pem"].encode()).serial_number, "X")


def enrol(rig: Rig, terminal_id: str, merchant_id: str, **kw: Any) -> Peer:
    """Enrol through ``POST /v1/enrol``; the peer its certificate makes."""
    code = admin.make_enrolment_code(rig.data_dir, terminal_id, merchant_id, **kw)
    answer = rig.client(peer=None).post("/v1/enrol", json={"enrolment_code": code, "csr_pem": csr()})
    assert answer.status_code == 201, answer.text
    return Peer(terminal_id, merchant_id, serial_of(answer))


def post(client: AppClient, path: str, body: Any, key: str) -> Any:
    return client.post(path, json=body, headers={"Idempotency-Key": key})


def sale(peer: Peer, txn_id: str, amount: int) -> dict[str, Any]:
    return {"txn_id": txn_id, "kind": "sale", "amount": amount, "currency": 978, "terminal_id": peer.terminal_id,
            "merchant_id": peer.merchant_id, "emv_data": card(amount), "pan_token": "tok"}


def lines(count: int, amount: int) -> list[dict[str, Any]]:
    return [{"scheme": "VISA", "currency": 978, "kind": "sale", "count": count, "amount": amount}] if count else []


# ----------------------------------------------------------------------------- serials and revocation


def test_a_re_enrolled_terminals_old_certificate_is_refused_on_every_path(rig: Rig) -> None:
    old = enrol(rig, "T1", "M1")
    assert rig.client(old).get("/v1/echo").status_code == 200
    new = enrol(rig, "T1", "M1")
    assert rig.client(new).get("/v1/echo").status_code == 200
    stale = rig.client(old)
    for method, path in [("GET", "/v1/echo"), ("GET", "/v1/parameters"), ("POST", "/v1/authorisations"),
                         ("POST", "/v1/sign-on"), ("POST", "/v1/batches/close"), ("GET", "/v1/no-such-path")]:
        answer = stale.request(method, path, json={} if method == "POST" else None, headers={"Idempotency-Key": "k"})
        assert answer.status_code == 401, (path, answer.text)
        assert answer.json()["error"] == "certificate_revoked" and "re-enrolled" in answer.json()["message"]
        conforms("Error", answer)
    assert [t["certificate_serial"] for t in admin.terminals(rig.data_dir)] == [new.serial]


def test_a_serial_the_host_did_not_issue_to_that_terminal_is_refused(rig: Rig) -> None:
    own = enrol(rig, "T1", "M1")
    for peer in (Peer("T1", "M1", "ABCDEF"), Peer("T1", "M1"), Peer("T2", "M1", own.serial),
                 Peer("T1", "M2", own.serial)):
        answer = rig.client(peer).get("/v1/echo")
        assert answer.status_code == 401 and answer.json()["error"] == "certificate_unknown", peer
    assert rig.client(peer=None).get("/v1/openapi.json").status_code == 200  # the open paths stay open


def test_the_operator_revokes_a_terminal(rig: Rig) -> None:
    peer = enrol(rig, "T1", "M1")
    assert admin.revoke_terminal(rig.data_dir, "T1") == ("M1", [peer.serial])
    answer = rig.client(peer).get("/v1/echo")
    assert answer.status_code == 401 and "revoked (revoked)" in answer.json()["message"]
    [row] = admin.terminals(rig.data_dir)
    assert row["certificate_status"] == "revoked"
    assert [e["action"] for e in admin.audit_log(rig.data_dir, "T1")] == ["enrolled", "revoked"]
    enrol(rig, "T1", "M2", transfer=True)
    with pytest.raises(admin.AdminError, match="give --merchant"):
        admin.revoke_terminal(rig.data_dir, "T1")
    with pytest.raises(admin.AdminError, match="no terminal T9"):
        admin.revoke_terminal(rig.data_dir, "T9")


# ----------------------------------------------------------------------------- rotation


def test_a_terminal_rotates_its_certificate_and_a_lost_answer_can_be_fetched_again(rig: Rig) -> None:
    old = enrol(rig, "T1", "M1")
    key = ec.generate_private_key(ec.SECP256R1())
    first = post(rig.client(old), "/v1/certificate", {"csr_pem": csr(key)}, "rot-1")
    assert first.status_code == 201, first.text
    conforms("EnrolResponse", first)
    new = Peer("T1", "M1", serial_of(first))
    assert new.serial != old.serial
    assert x509.load_pem_x509_certificate(first.json()["certificate_pem"].encode()).subject.rfc4514_string() == (
        "O=M1,CN=T1"
    )
    assert rig.client(new).get("/v1/echo").status_code == 200
    assert rig.client(old).get("/v1/echo").json()["error"] == "certificate_revoked"
    # the answer was lost: the old certificate asks again with the same key and a CSR of the same public key
    again = post(rig.client(old), "/v1/certificate", {"csr_pem": csr(key)}, "rot-1")
    assert again.status_code == 201 and again.content == first.content
    assert again.headers["idempotent-replay"] == "true"
    assert post(rig.client(old), "/v1/certificate", {"csr_pem": csr()}, "rot-1").status_code == 409
    other = post(rig.client(old), "/v1/certificate", {"csr_pem": csr()}, "rot-2")
    assert other.status_code == 401 and other.json()["error"] == "certificate_revoked"
    # the new certificate rotates in its turn; the operator's revocation ends the old one's replays
    assert post(rig.client(new), "/v1/certificate", {"csr_pem": csr()}, "rot-3").status_code == 201
    admin.revoke_terminal(rig.data_dir, "T1", "M1")
    assert post(rig.client(old), "/v1/certificate", {"csr_pem": csr(key)}, "rot-1").status_code == 401
    assert [e["action"] for e in admin.audit_log(rig.data_dir)] == ["enrolled", "rotated", "rotated", "revoked"]


def test_rotation_needs_a_key_header_and_a_usable_csr(rig: Rig) -> None:
    peer = enrol(rig, "T1", "M1")
    client = rig.client(peer)
    assert client.post("/v1/certificate", json={"csr_pem": csr()}).status_code == 400
    assert post(client, "/v1/certificate", {"csr_pem": "garbage"}, "k").status_code == 422
    assert post(client, "/v1/certificate", {"csr": csr()}, "k").status_code == 422
    assert rig.client(peer=None).post("/v1/certificate", json={"csr_pem": csr()}).status_code == 401
    assert client.get("/v1/echo").status_code == 200  # nothing was rotated


# ----------------------------------------------------------------------------- one terminal id, two merchants


def test_two_merchants_terminals_with_one_id_never_touch_each_others_sales_or_batches(rig: Rig) -> None:
    a = enrol(rig, "TX", "MA")
    with pytest.raises(admin.AdminRefused, match="belongs to merchant MA"):
        admin.make_enrolment_code(rig.data_dir, "TX", "MB")
    a_client = rig.client(a)
    assert post(a_client, "/v1/authorisations", sale(a, "s-a", 1000), "k1").json()["status"] == "approved"
    # a store that already holds both (a host before the fix, or a transfer and back): both certificates valid
    b = Peer("TX", "MB", "B0B0")
    rig.store.add_certificate("B0B0", "MB", "TX", "2025-06-15T00:00:00+00:00")
    b_client = rig.client(b)
    # the same request key means nothing across merchants
    assert post(b_client, "/v1/authorisations", sale(b, "s-b", 300), "k1").json()["status"] == "approved"
    reversal = {"txn_id": "s-a", "amount": 1000, "currency": 978, "terminal_id": "TX", "reason": "void"}
    assert post(b_client, "/v1/reversals", reversal, "k2").json()["message"] == "nothing to reverse"
    b_close = post(b_client, "/v1/batches/close", {"batch_id": 1, "terminal_id": "TX", "lines": lines(1, 300)}, "k3")
    assert b_close.json()["in_balance"] is True
    a_close = post(a_client, "/v1/batches/close", {"batch_id": 1, "terminal_id": "TX", "lines": lines(1, 1000)}, "k3")
    assert a_close.status_code == 200 and a_close.json()["in_balance"] is True, a_close.text
    [sale_a] = [r for r in rig.store.records() if r.txn_id == "s-a" and r.method == "authorise"]
    assert sale_a.merchant_id == "MA" and not sale_a.reversed
    assert (rig.store.batch_number("MA", "TX"), rig.store.batch_number("MB", "TX")) == (2, 2)


def test_a_transfer_revokes_the_first_merchants_certificate_and_is_logged(rig: Rig) -> None:
    a = enrol(rig, "TX", "MA")
    open_code = admin.make_enrolment_code(rig.data_dir, "TX", "MA")  # one more code for MA, not used yet
    b = enrol(rig, "TX", "MB", transfer=True)
    assert rig.client(a).get("/v1/echo").json()["error"] == "certificate_revoked"
    assert rig.client(b).get("/v1/echo").status_code == 200
    late = rig.client(peer=None).post("/v1/enrol", json={"enrolment_code": open_code, "csr_pem": csr()})
    assert late.status_code == 403 and late.json()["message"] == ENROL_REFUSED  # withdrawn by the transfer
    log = admin.audit_log(rig.data_dir, "TX")
    assert [(e["action"], e["merchant_id"]) for e in log] == [
        ("enrolled", "MA"), ("transferred", "MA"), ("transfer", "MB"), ("enrolled", "MB")
    ]
    assert a.serial in log[2]["detail"] and "1 open code(s) withdrawn" in log[2]["detail"]
    assert {(t["merchant_id"], t["certificate_status"]) for t in admin.terminals(rig.data_dir)} == {
        ("MA", "transferred"), ("MB", "active")
    }


# ----------------------------------------------------------------------------- enrolment: no oracle, a rate limit


def test_unknown_used_and_expired_codes_get_one_answer(rig: Rig) -> None:
    anonymous = rig.client(peer=None)
    used = admin.make_enrolment_code(rig.data_dir, "T1", "M1")
    first_csr = csr()
    answer = anonymous.post("/v1/enrol", json={"enrolment_code": used, "csr_pem": first_csr})
    assert answer.status_code == 201
    # the same request again (a lost answer) still gets its first answer
    assert anonymous.post("/v1/enrol", json={"enrolment_code": used, "csr_pem": first_csr}).content == answer.content
    expired = admin.make_enrolment_code(rig.data_dir, "T2", "M1")
    late = create_app(rig.store, rig.ca, clock=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=2),
                      enrol_limits=FAST)
    refusals = [
        anonymous.post("/v1/enrol", json={"enrolment_code": "ABCD-EFGH-JKLM-NPQR", "csr_pem": csr()}),
        anonymous.post("/v1/enrol", json={"enrolment_code": used, "csr_pem": csr()}),
        AppClient(with_peer(late, None)).post("/v1/enrol", json={"enrolment_code": expired, "csr_pem": csr()}),
    ]
    assert {(r.status_code, r.content) for r in refusals} == {
        (403, b'{"error":"forbidden","message":"' + ENROL_REFUSED.encode() + b'"}')
    }


def test_a_refused_code_is_answered_after_the_pause(rig: Rig) -> None:
    slow = EnrolmentLimits(per_client_per_minute=100, overall_per_minute=100, failure_delay_seconds=0.3)
    client = AppClient(with_peer(create_app(rig.store, rig.ca, clock=lambda: NOW, enrol_limits=slow), None))
    started = time.monotonic()
    answer = client.post("/v1/enrol", json={"enrolment_code": "ABCD-EFGH-JKLM-NPQR", "csr_pem": csr()})
    assert answer.status_code == 403 and time.monotonic() - started >= 0.3


def test_enrolment_attempts_are_rate_limited_with_retry_after(rig: Rig) -> None:
    limited = EnrolmentLimits(per_client_per_minute=3, overall_per_minute=100, failure_delay_seconds=0.0)
    client = AppClient(with_peer(create_app(rig.store, rig.ca, clock=lambda: NOW, enrol_limits=limited), None))
    body = {"enrolment_code": "ABCD-EFGH-JKLM-NPQR", "csr_pem": csr()}
    assert [client.post("/v1/enrol", json=body).status_code for _ in range(3)] == [403, 403, 403]
    refused = client.post("/v1/enrol", json=body)
    assert refused.status_code == 429 and refused.json()["error"] == "too_many_requests"
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    conforms("Error", refused)
    # a valid code is limited too: the limit comes before anything is looked up
    code = admin.make_enrolment_code(rig.data_dir, "T1", "M1")
    assert client.post("/v1/enrol", json={"enrolment_code": code, "csr_pem": csr()}).status_code == 429


def test_the_buckets_per_address_and_overall() -> None:
    now = [0.0]
    limiter = EnrolmentLimiter(EnrolmentLimits(per_client_per_minute=2, overall_per_minute=3), clock=lambda: now[0])
    assert [limiter.admit("a"), limiter.admit("a"), limiter.admit("a")] == [0, 0, 30]
    assert limiter.admit("b") == 0
    assert limiter.admit("c") == 20  # overall: 3 a minute, all taken
    now[0] = 20.0
    assert limiter.admit("c") == 0
    now[0] = 60.0
    assert limiter.admit("a") == 0


def test_the_limits_are_a_setting_of_the_host(rig: Rig) -> None:
    admin.set_enrolment_limits(rig.data_dir, 1, 50, 0.0)
    client = AppClient(with_peer(create_app(rig.store, rig.ca, clock=lambda: NOW), None))
    body = {"enrolment_code": "ABCD-EFGH-JKLM-NPQR", "csr_pem": csr()}
    assert [client.post("/v1/enrol", json=body).status_code for _ in range(2)] == [403, 429]
    assert admin.host_status(rig.data_dir)["enrol_limits"]["per_client_per_minute"] == 1
    with pytest.raises(admin.AdminError, match="at least 1"):
        admin.set_enrolment_limits(rig.data_dir, 0, 50)
