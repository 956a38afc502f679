"""The simulated host as a real HTTPS service: every message over mutual TLS, idempotency, the issuer, faults.

One host process serves the module (``start_host`` on a temporary data
directory, port 0); tests that change faults clear them again. Client
certificates come from ``POST /v1/enrol`` with a key and CSR made here.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from emv import tlv
from simulator.card import SimulatedCard
from simulator.card_data import card_emv_data
from simulator.cryptograms import arpc as compute_arpc
from simulator.host.ca import CertificateAuthority
from simulator.host.service import HostService, start_host
from simulator.issuer_keys import issuer_master_keys
from simulator.profiles import load as load_profile
from simulator.transport import as_transport
from terminal.emv_session import TapInputs, build_transaction, run_tap
from terminal.settings import load_default_config

TID = "TERM0001"
MID = "POSTERM0000001"
CARDS = ("visa-qvsdc-online", "visa-mobile-cdcvm", "mc-cda-online")
USED_PANS = sorted({load_profile(name).pan for name in CARDS})


@dataclass(frozen=True)
class Terminal:
    """An enrolled terminal: its files and an SSL context that presents its certificate."""

    directory: Path
    context: ssl.SSLContext

    def client(self, host: HostService) -> httpx.Client:
        return httpx.Client(base_url=host.url, verify=self.context, timeout=10.0)


def _ca_context(host: HostService) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(host.ca_certificate_path))


def _csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cn: str = "anything") -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode("ascii")


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    encoding, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, pkcs8, serialization.NoEncryption())


def enrol(host: HostService, directory: Path, terminal_id: str = TID, merchant_id: str = MID) -> Terminal:
    """Enrol through the endpoint with a key and CSR made here; an SSL context with the new certificate."""
    bundle = host.credential_bundle(terminal_id, merchant_id)
    assert bundle["url"] == host.url and bundle["ca_certificate_pem"].encode() == host.ca_certificate_pem
    key = ec.generate_private_key(ec.SECP256R1())
    with httpx.Client(base_url=bundle["url"], verify=_ca_context(host), timeout=10.0) as client:
        answer = client.post("/v1/enrol", json={"enrolment_code": bundle["enrolment_code"], "csr_pem": _csr(key)})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["terminal_id"], body["merchant_id"]) == (terminal_id, merchant_id)
    cert = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == terminal_id
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "client.pem").write_text(body["certificate_pem"])
    (directory / "client-key.pem").write_bytes(_key_pem(key))
    context = _ca_context(host)
    context.load_cert_chain(directory / "client.pem", directory / "client-key.pem")
    return Terminal(directory, context)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostService]:
    with start_host(tmp_path_factory.mktemp("host") / "data") as service:
        yield service


@pytest.fixture(scope="module")
def terminal(host: HostService, tmp_path_factory: pytest.TempPathFactory) -> Terminal:
    return enrol(host, tmp_path_factory.mktemp("terminal"))


@pytest.fixture()
def client(host: HostService, terminal: Terminal) -> Iterator[httpx.Client]:
    with terminal.client(host) as c:
        yield c


@pytest.fixture(autouse=True)
def _no_faults_left(host: HostService) -> Iterator[None]:
    yield
    host.clear_faults()


_counter = iter(range(1, 1_000_000))


def _new(prefix: str) -> str:
    return f"{prefix}{next(_counter):06d}"


def card(amount: int, **kw: Any) -> str:
    """A simulated card's data objects with a cryptogram over ``amount`` EUR (hex), as a terminal sends them."""
    return card_emv_data(amount, 978, **kw).hex().upper()


def auth_body(amount: int = 1234, *, txn_id: str | None = None, emv_data: str | None = None,
              token: str = "tok-plain", kind: str = "sale") -> dict[str, Any]:
    if emv_data is None:
        refund = kind == "refund"
        emv_data = card(amount, cryptogram="aac" if refund else "arqc", transaction_type=0x20 if refund else 0)
    return {
        "txn_id": txn_id or _new("txn"),
        "kind": kind,
        "amount": amount,
        "currency": 978,
        "terminal_id": TID,
        "merchant_id": MID,
        "emv_data": emv_data,
        "pan_token": token,
        "original_txn_id": None,
    }


def advice_body(amount: int, kind: str = "offline_approval", token: str = "tok-advice") -> dict[str, Any]:
    return {
        "txn_id": _new("adv"),
        "idempotency_key": _new("advkey"),
        "kind": kind,
        "amount": amount,
        "currency": 978,
        "terminal_id": TID,
        "merchant_id": MID,
        "emv_data": card(amount, cryptogram="arqc" if kind == "deferred_authorisation" else "tc"),
        "pan_token": token,
        "created_at": "2025-03-01T10:00:00.000000+00:00",
        "retransmission": False,
    }


def post(client: httpx.Client, path: str, body: Any, key: str | None = None) -> httpx.Response:
    return client.post(path, json=body, headers={"Idempotency-Key": key or _new("key")})


def tap(profile: str, amount: int) -> dict[int, bytes]:
    """The data objects a real tap of a simulated card gives the host (kernel and card both real):
    the cryptogram's inputs as the card received them, over the terminal's later values."""
    config = load_default_config()
    report = run_tap(as_transport(SimulatedCard(profile)), config, build_transaction(TapInputs(amount, 978)))
    assert report.result.cryptogram_type == "ARQC", report.result.outcome
    return report.result.card_data | report.result.cryptogram_inputs


def token_of(tags: dict[int, bytes]) -> str:
    return hashlib.sha256(b"test-token:" + tags[0x5A]).hexdigest()[:32]


# ----------------------------------------------------------------------------- transport and enrolment


def test_every_message_over_mutual_tls(host: HostService, client: httpx.Client) -> None:
    assert host.url.startswith("https://127.0.0.1:") and host.port > 0
    echo = client.get("/v1/echo")
    assert echo.status_code == 200 and echo.json()["host_reference"]
    sign_on = post(client, "/v1/sign-on", {"terminal_id": TID, "merchant_id": MID, "software_version": "test 1"})
    assert sign_on.status_code == 200 and sign_on.json()["parameters_version"] >= 1
    auth = post(client, "/v1/authorisations", auth_body(1234))
    assert auth.status_code == 200
    assert auth.json()["status"] == "approved" and len(auth.json()["approval_code"]) == 6
    advices = post(client, "/v1/advices", {"advices": [advice_body(500)]})
    assert advices.status_code == 200 and advices.json()["results"][0]["outcome"] == "accepted"
    reversal = post(
        client, "/v1/reversals", {"txn_id": "never-seen", "amount": 1, "currency": 978, "terminal_id": TID,
                                  "reason": "no_answer"}
    )
    assert reversal.status_code == 200 and reversal.json()["message"] == "nothing to reverse"
    close = post(client, "/v1/batches/close", {"batch_id": 900, "terminal_id": TID, "lines": []})
    assert close.status_code == 200 and "in_balance" in close.json()
    params = client.get("/v1/parameters")
    assert params.status_code == 200
    version = params.json()["version"]
    assert client.get("/v1/parameters", params={"have": version}).status_code == 304
    document = client.get("/v1/openapi.json")
    assert document.status_code == 200 and document.json()["openapi"].startswith("3.1")
    anything = ssl.create_default_context()
    anything.check_hostname = False
    anything.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", host.port)) as raw, anything.wrap_socket(raw) as tls_socket:
        assert tls_socket.version() == "TLSv1.3"


def test_the_server_refuses_tls_below_1_3(host: HostService) -> None:
    context = _ca_context(host)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(httpx.ConnectError), httpx.Client(base_url=host.url, verify=context) as c:
        c.get("/v1/openapi.json")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/sign-on"),
        ("GET", "/v1/echo"),
        ("POST", "/v1/authorisations"),
        ("POST", "/v1/advices"),
        ("POST", "/v1/reversals"),
        ("POST", "/v1/batches/close"),
        ("GET", "/v1/parameters"),
    ],
)
def test_no_client_certificate_is_401_on_protected_paths(host: HostService, method: str, path: str) -> None:
    with httpx.Client(base_url=host.url, verify=_ca_context(host)) as c:
        answer = c.request(method, path, json={} if method == "POST" else None, headers={"Idempotency-Key": "k"})
    assert answer.status_code == 401
    assert answer.json()["error"] == "no_client_certificate"


def test_a_client_certificate_from_another_ca_fails_the_handshake(host: HostService, tmp_path: Path) -> None:
    stranger = CertificateAuthority.generate("some other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "c.pem").write_bytes(stranger.sign_csr(_csr(key), TID, MID))
    (tmp_path / "k.pem").write_bytes(_key_pem(key))
    context = _ca_context(host)
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    with httpx.Client(base_url=host.url, verify=context) as c, pytest.raises(httpx.TransportError):
        c.get("/v1/echo")
    # In TLS 1.3 the client's side of the handshake ends before the server checks its certificate; the
    # server then fails the handshake and closes the connection (asyncio sends no alert): no HTTP answer.
    with socket.create_connection(("127.0.0.1", host.port), timeout=5) as raw:
        tls_socket = context.wrap_socket(raw, server_hostname="127.0.0.1")
        tls_socket.sendall(b"GET /v1/openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            answer = tls_socket.recv(100)
        except (ssl.SSLError, ConnectionResetError):
            answer = b""
        assert answer == b""


def test_ids_that_differ_from_the_certificate_are_403(client: httpx.Client) -> None:
    body = auth_body()
    body["terminal_id"] = "OTHER01"
    answer = post(client, "/v1/authorisations", body)
    assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
    body = auth_body()
    body["merchant_id"] = "OTHERMERCHANT"
    assert post(client, "/v1/authorisations", body).status_code == 403


def test_enrolment_codes_are_one_time(host: HostService) -> None:
    bundle = host.credential_bundle("TERM0002", MID)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = _csr(key)
    with httpx.Client(base_url=host.url, verify=_ca_context(host)) as c:
        first = c.post("/v1/enrol", json={"enrolment_code": bundle["enrolment_code"], "csr_pem": csr})
        again = c.post("/v1/enrol", json={"enrolment_code": bundle["enrolment_code"], "csr_pem": csr})
        other = c.post("/v1/enrol", json={"enrolment_code": bundle["enrolment_code"], "csr_pem": _csr(key, "x")})
        unknown = c.post("/v1/enrol", json={"enrolment_code": "NOPE-NOPE-NOPE-NOPE", "csr_pem": csr})
        weak = c.post(
            "/v1/enrol",
            json={
                "enrolment_code": host.credential_bundle("TERM0003", MID)["enrolment_code"],
                "csr_pem": _csr(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
            },
        )
    assert first.status_code == 201
    assert again.status_code == 201 and again.content == first.content  # a retried enrolment, same answer
    assert other.status_code == 403 and unknown.status_code == 403
    assert weak.status_code == 422 and "2048" in weak.json()["message"]


# ----------------------------------------------------------------------------- idempotency


def test_a_repeated_key_gets_the_same_bytes_and_no_second_effect(host: HostService, client: httpx.Client) -> None:
    body = auth_body(2000)
    first = post(client, "/v1/authorisations", body, key="replay-1")
    before = len(host.records())
    body_again = dict(body, retransmission=True)  # retransmission is left out of the digest
    again = post(client, "/v1/authorisations", body_again, key="replay-1")
    assert again.status_code == first.status_code == 200
    assert again.content == first.content
    assert again.headers.get("idempotent-replay") == "true"
    assert len(host.records()) == before
    conflict = post(client, "/v1/authorisations", auth_body(2001), key="replay-1")
    assert conflict.status_code == 409 and conflict.json()["error"] == "idempotency_conflict"
    missing = client.post("/v1/authorisations", json=auth_body())
    assert missing.status_code == 400 and "Idempotency-Key" in missing.json()["message"]


def test_schema_violations_are_422_naming_the_field(client: httpx.Client) -> None:
    body = auth_body()
    body["amount"] = 0
    answer = post(client, "/v1/authorisations", body)
    assert answer.status_code == 422 and answer.json()["message"].startswith("amount")
    json_type = {"Content-Type": "application/json"}
    nope = client.post("/v1/sign-on", content=b"{nope", headers={"Idempotency-Key": "x", **json_type})
    assert nope.status_code == 400


# ----------------------------------------------------------------------------- the issuer


@pytest.mark.parametrize(("amount", "code"), [(1251, "51"), (1205, "05"), (1254, "54"), (99912, "12"), (99900, "00")])
def test_magic_amounts(client: httpx.Client, amount: int, code: str) -> None:
    answer = post(client, "/v1/authorisations", auth_body(amount)).json()
    assert answer["response_code"] == code
    assert (answer["status"] == "approved") == (code == "00")
    assert (answer["approval_code"] is None) == (code != "00")


@pytest.mark.parametrize("profile", CARDS)
def test_a_real_arqc_is_verified_and_answered_with_an_arpc(client: httpx.Client, profile: str) -> None:
    tags = tap(profile, 1234)
    emv_data = tlv.encode_pairs(sorted(tags.items())).hex().upper()
    answer = post(client, "/v1/authorisations", auth_body(1234, emv_data=emv_data, token=token_of(tags))).json()
    assert answer["status"] == "approved", answer
    keys = issuer_master_keys(load_profile(profile).cryptogram_key)
    pan, psn = tags[0x5A].hex().upper().rstrip("F"), tags[0x5F34].hex()
    response = bytes.fromhex("00800000") if keys.cvn == 0x12 else b"00"
    expected = compute_arpc(keys, pan, psn, arqc=tags[0x9F26], atc=tags[0x9F36], response=response)
    assert bytes.fromhex(answer["arpc"]).startswith(expected)


def test_a_declined_arqc_still_gets_an_arpc_over_its_response_code(client: httpx.Client) -> None:
    tags = tap("visa-qvsdc-online", 1251)
    emv_data = tlv.encode_pairs(sorted(tags.items())).hex()
    answer = post(client, "/v1/authorisations", auth_body(1251, emv_data=emv_data, token=token_of(tags))).json()
    keys = issuer_master_keys("sim-visa-cvn10")
    pan, psn = tags[0x5A].hex().upper().rstrip("F"), tags[0x5F34].hex()
    expected = compute_arpc(keys, pan, psn, arqc=tags[0x9F26], atc=tags[0x9F36], response=b"51")
    assert answer["response_code"] == "51" and bytes.fromhex(answer["arpc"]) == expected


def test_a_bad_arqc_is_declined_without_arpc(client: httpx.Client) -> None:
    tags = tap("mc-cda-online", 1234)
    tags[0x9F26] = bytes(b ^ 0x01 for b in tags[0x9F26])
    emv_data = tlv.encode_pairs(sorted(tags.items())).hex()
    answer = post(client, "/v1/authorisations", auth_body(1234, emv_data=emv_data, token=token_of(tags))).json()
    assert (answer["status"], answer["response_code"], answer["arpc"]) == ("declined", "82", None)


def test_an_expired_card_is_54(client: httpx.Client) -> None:
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=40)
    emv_data = card(1000, expiry=yesterday.strftime("%y%m%d"))
    assert post(client, "/v1/authorisations", auth_body(1000, emv_data=emv_data)).json()["response_code"] == "54"
    not_yet = card(1000, expiry="491231")
    assert post(client, "/v1/authorisations", auth_body(1000, emv_data=not_yet)).json()["response_code"] == "00"


def test_an_authorisation_without_card_data_is_declined_14(client: httpx.Client) -> None:
    answer = post(client, "/v1/authorisations", auth_body(1000, emv_data="", token="made-up")).json()
    assert (answer["status"], answer["response_code"]) == ("declined", "14")


def test_emv_data_that_is_not_tlv_is_a_format_error_decline(client: httpx.Client) -> None:
    answer = post(client, "/v1/authorisations", auth_body(1000, emv_data="9F02")).json()
    assert (answer["status"], answer["response_code"]) == ("declined", "30")


def test_blocked_cards_and_velocity_are_steered_at_run_time(host: HostService, client: httpx.Client) -> None:
    blocked, fast = "4761739001017777", "4761739001018888"  # cards of their own: velocity counts a card's approvals
    host.block_card(blocked, "43")
    assert post(client, "/v1/authorisations", auth_body(emv_data=card(1234, pan=blocked))).json()["response_code"] == (
        "43"
    )
    host.unblock_card(blocked)
    assert post(client, "/v1/authorisations", auth_body(emv_data=card(1234, pan=blocked))).json()["response_code"] == (
        "00"
    )
    host.set_velocity(2, 3600)
    try:
        codes = [
            post(client, "/v1/authorisations", auth_body(emv_data=card(1234, pan=fast))).json()["response_code"]
            for _ in "123"
        ]
    finally:
        host.set_velocity(0, 0)
    assert codes == ["00", "00", "65"]


# ----------------------------------------------------------------------------- advices, reversals, batches


def test_advices_accepted_declined_after_forwarding_and_rejected(host: HostService, client: httpx.Client) -> None:
    offline = advice_body(700)
    deferred_ok = advice_body(800, "deferred_authorisation")
    deferred_declined = advice_body(851, "deferred_authorisation")
    malformed = dict(advice_body(900), amount=-5)
    answer = post(client, "/v1/advices", {"advices": [offline, deferred_ok, deferred_declined, malformed]})
    results = answer.json()["results"]
    assert [r["outcome"] for r in results] == ["accepted", "accepted", "declined", "rejected"]
    assert results[1]["approval_code"] and results[0]["approval_code"] is None
    assert results[2]["response_code"] == "51" and results[2]["host_reference"]
    assert results[3]["message"].startswith("amount") and results[3]["txn_id"] == malformed["txn_id"]
    # an advice's own key, sent again in another request, gets its first result and no second record
    before = len(host.records())
    again = post(client, "/v1/advices", {"advices": [dict(deferred_declined, retransmission=True)]})
    assert again.json()["results"][0] == results[2]
    assert len(host.records()) == before
    changed = post(client, "/v1/advices", {"advices": [dict(deferred_declined, amount=852)]}).json()["results"][0]
    assert changed["outcome"] == "rejected" and "idempotency_key" in changed["message"]


def test_a_reversal_undoes_the_matching_authorisation(host: HostService, client: httpx.Client) -> None:
    body = auth_body(4321)
    assert post(client, "/v1/authorisations", body).json()["status"] == "approved"
    reversal = {"txn_id": body["txn_id"], "amount": 4321, "currency": 978, "terminal_id": TID, "reason": "void"}
    answer = post(client, "/v1/reversals", reversal).json()
    assert answer == {"status": "approved", "response_code": "00", "host_reference": answer["host_reference"],
                      "message": None}
    record = next(r for r in host.records() if r["txn_id"] == body["txn_id"] and r["method"] == "authorise")
    assert record["reversed"] is True
    again = post(client, "/v1/reversals", reversal).json()  # a new key: already reversed, acknowledged the same way
    assert again["response_code"] == "00" and again["message"] == "nothing to reverse"


def test_batch_close_in_and_out_of_balance(host: HostService, tmp_path: Path) -> None:
    own = enrol(host, tmp_path, "BATCH01", "BATCHMERCHANT")
    with own.client(host) as c:

        def body(amount: int, kind: str = "sale") -> dict[str, Any]:
            return dict(auth_body(amount, kind=kind), terminal_id="BATCH01", merchant_id="BATCHMERCHANT")

        def close(batch_id: int, lines: list[dict[str, Any]], key: str | None = None) -> httpx.Response:
            return post(c, "/v1/batches/close", {"batch_id": batch_id, "terminal_id": "BATCH01", "lines": lines}, key)

        host.set_refund_allowance("BATCHMERCHANT", 500)  # the refund below has no sale
        for amount in (1000, 2000):
            post(c, "/v1/authorisations", body(amount))
        assert post(c, "/v1/authorisations", body(500, "refund")).json()["status"] == "approved"
        post(c, "/v1/authorisations", body(1251))  # declined: not in the totals
        reversed_txn = body(3000)
        post(c, "/v1/authorisations", reversed_txn)
        post(c, "/v1/reversals", {"txn_id": reversed_txn["txn_id"], "amount": 3000, "currency": 978,
                                  "terminal_id": "BATCH01", "reason": "void"})
        lines = [
            {"scheme": "VISA", "currency": 978, "kind": "sale", "count": 1, "amount": 1000},
            {"scheme": "MASTERCARD", "currency": 978, "kind": "sale", "count": 1, "amount": 2000},
            {"scheme": "VISA", "currency": 978, "kind": "refund", "count": 1, "amount": 500},
        ]
        in_balance = close(1, lines, key="close-1")
        assert in_balance.json()["in_balance"] is True and in_balance.json()["differences"] == []
        repeated = close(1, lines, key="close-1-again")  # the same batch again: the same answer, no second close
        assert repeated.content == in_balance.content
        assert close(1, lines[:1], key="close-1-other").status_code == 409

        post(c, "/v1/authorisations", body(1500))
        out = close(2, [{"scheme": "VISA", "currency": 978, "kind": "sale", "count": 2, "amount": 2500}]).json()
        assert out["in_balance"] is False
        assert out["differences"] == [
            {"currency": 978, "kind": "sale", "terminal_count": 2, "terminal_amount": 2500, "host_count": 1,
             "host_amount": 1500}
        ]
        # the close opened a new host batch: nothing in it yet
        assert close(3, []).json()["in_balance"] is True


def test_parameters_publish_makes_a_new_version(host: HostService, client: httpx.Client) -> None:
    current = client.get("/v1/parameters").json()["version"]
    host.publish_parameters({"merchant_name": "fuzzy shop"})  # the common part: every terminal's version moves
    answer = client.get("/v1/parameters", params={"have": current})
    assert answer.status_code == 200 and answer.json()["config"]["merchant_name"] == "fuzzy shop"
    version = answer.json()["version"]
    assert version > current and answer.json()["config"]["terminal_id"] == TID
    assert answer.json()["capks"] and all(len(k["checksum"]) == 40 for k in answer.json()["capks"])
    assert client.get("/v1/parameters", params={"have": version}).status_code == 304
    assert client.get("/v1/parameters", params={"have": "x"}).status_code == 422


# ----------------------------------------------------------------------------- faults


def test_down_refuses_connections_and_up_listens_again(host: HostService, client: httpx.Client) -> None:
    assert client.get("/v1/echo").status_code == 200  # a pooled connection exists
    host.set_faults(down=True)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", host.port), timeout=2):
        pass
    with pytest.raises(httpx.ConnectError) as caught:
        client.get("/v1/echo")  # the pooled connection was aborted too
    assert f"[Errno {errno.ECONNREFUSED}]" in str(caught.value)
    host.set_faults(down=False)
    assert client.get("/v1/echo").status_code == 200


def test_slow_delays_the_answers_of_the_chosen_paths(host: HostService, client: httpx.Client) -> None:
    host.set_faults(slow_ms=400, only=["/v1/advices"])
    started = time.monotonic()
    assert client.get("/v1/echo").status_code == 200
    assert time.monotonic() - started < 0.3
    started = time.monotonic()
    assert post(client, "/v1/advices", {"advices": [advice_body(100)]}).status_code == 200
    assert time.monotonic() - started >= 0.4


def test_error_answers_the_chosen_status_without_processing(host: HostService, client: httpx.Client) -> None:
    host.set_faults(error_status=503)
    before = len(host.records())
    answer = post(client, "/v1/authorisations", auth_body())
    assert answer.status_code == 503 and answer.json()["error"] == "server_error"
    assert len(host.records()) == before
    host.clear_faults()
    assert post(client, "/v1/authorisations", auth_body()).status_code == 200


def test_drop_closes_the_connection_without_an_answer(host: HostService, client: httpx.Client) -> None:
    host.set_faults(drop_after_request=True, only=["/v1/authorisations"])
    before = len(host.records())
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        post(client, "/v1/authorisations", auth_body())
    assert len(host.records()) == before
    assert client.get("/v1/echo").status_code == 200  # other paths answer


@pytest.mark.parametrize(("certificate", "reason"), [("expired", "expired"), ("wrong", "issuer")])
def test_certificate_faults_make_a_verifying_client_refuse(
    host: HostService, client: httpx.Client, certificate: str, reason: str
) -> None:
    assert client.get("/v1/echo").status_code == 200
    host.set_faults(certificate=certificate)
    with pytest.raises(httpx.ConnectError) as caught:
        client.get("/v1/echo")  # the pooled connection was closed: a new handshake
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value) and reason in str(caught.value).lower()
    host.clear_faults()
    assert client.get("/v1/echo").status_code == 200


def test_the_cli_steers_the_running_host(host: HostService, capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    from simulator.host.cli import main

    data = str(host.data_dir)
    assert main(["fault", "--data-dir", data, "error", "502", "--only", "/v1/echo"]) == 0
    with httpx.Client(base_url=host.url, verify=_ca_context(host)) as c:
        assert c.get("/v1/echo").status_code == 502
    assert main(["fault", "--data-dir", data, "clear"]) == 0
    out = tmp_path / "bundle.json"
    assert main(["enrol-code", "--data-dir", data, "--terminal-id", "CLI01", "--merchant-id", "M1",
                 "--out", str(out)]) == 0
    bundle = json.loads(out.read_text())
    assert bundle["url"] == host.url and bundle["terminal_id"] == "CLI01" and len(bundle["enrolment_code"]) == 19
    capsys.readouterr()
    assert main(["status", "--data-dir", data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["running"] is True
    assert main(["fault", "--data-dir", data, "slow", "abc"]) == 2
    assert "needs a delay" in capsys.readouterr().err


def test_a_restart_keeps_the_data_the_ca_and_the_enrolments(tmp_path: Path) -> None:
    with start_host(tmp_path / "h") as first:
        own = enrol(first, tmp_path / "t", "RESTART1", MID)
        with own.client(first) as c:
            post(c, "/v1/authorisations", dict(auth_body(), terminal_id="RESTART1"))
        ca = first.ca_certificate_pem
    assert not (tmp_path / "h" / "server.json").exists()
    with start_host(tmp_path / "h") as second:
        assert second.ca_certificate_pem == ca and len(second.records()) == 1
        with own.client(second) as c:  # the terminal's certificate is still good
            assert c.get("/v1/echo").status_code == 200


# ----------------------------------------------------------------------------- data at rest (keep last)


def test_no_pan_in_clear_anywhere_in_the_data_directory(host: HostService) -> None:
    assert any(r["pan_token"] for r in host.records())
    patterns: list[bytes] = []
    for pan in USED_PANS:
        patterns += [pan.encode(), bytes.fromhex(pan + ("F" if len(pan) % 2 else "")), pan.encode("utf-16-le")]
    for path in host.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for pattern in patterns:
                assert pattern not in data, f"a PAN in clear in {path}"
