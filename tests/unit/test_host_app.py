"""The host's HTTP API in process: validation order, errors, idempotency, every answer against its schema.

The TLS layer is replaced by a tiny ASGI wrapper that puts a :class:`Peer` into
the scope's ``state``, as :class:`simulator.host.server.TlsH11Protocol` does;
the peer's certificate serial is registered in the store as enrolment does
(:meth:`Rig.peer`), since the host refuses a serial it did not issue.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.types import ASGIApp, Receive, Scope, Send

from simulator.card_data import card_emv_data
from simulator.host import admin
from simulator.host.app import PEER_STATE_KEY, Peer, create_app
from simulator.host.ca import load_or_create_ca
from simulator.host.faults import Faults, FaultSwitch
from simulator.host.schema import first_error
from simulator.host.storage import Location
from simulator.host.store import DB_NAME, HostStore, host_keys
from tests.postgres_rig import PostgresCluster

TID, MID = "T1", "M1"
NOW = dt.datetime(2025, 6, 15, 12, 0, tzinfo=dt.UTC)
OWN = Peer(TID, MID, "1A2B3C")


def with_peer(app: ASGIApp, peer: Peer | None) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and peer is not None:
            scope = {**scope, "state": {**scope.get("state", {}), PEER_STATE_KEY: peer}}
        await app(scope, receive, send)

    return wrapped


class AppClient:
    """A synchronous client of an ASGI app (httpx's ASGITransport, one event loop per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(send())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)


class Rig:
    def __init__(self, data_dir: Path, store: Location | None = None) -> None:
        self.data_dir = data_dir
        self.location = str(store or data_dir / DB_NAME)  # what admin's functions take as their store
        self.store = HostStore(store or data_dir / DB_NAME, keys=host_keys(data_dir))  # as admin opens it
        self.ca = load_or_create_ca(data_dir / "tls")
        self.faults = FaultSwitch()
        self.app = create_app(self.store, self.ca, self.faults, clock=lambda: NOW)
        self.store.add_certificate(OWN.serial or "", MID, TID, "2025-06-01T00:00:00+00:00")

    def peer(self, terminal_id: str, merchant_id: str) -> Peer:
        """A peer whose certificate the host issued (registered as enrolment registers it)."""
        serial = hashlib.sha256(f"{merchant_id}/{terminal_id}".encode()).hexdigest()[:16].upper()
        if self.store.certificate(serial) is None:
            self.store.add_certificate(serial, merchant_id, terminal_id, "2025-06-01T00:00:00+00:00")
        return Peer(terminal_id, merchant_id, serial)

    def client(self, peer: Peer | None = OWN) -> AppClient:
        return AppClient(with_peer(self.app, peer))


@pytest.fixture()
def rig(tmp_path: Path, host_store_at: Location) -> Iterator[Rig]:
    """The app over a store on each engine (SQLite, PostgreSQL: tests/conftest.py)."""
    r = Rig(tmp_path, host_store_at)
    yield r
    r.store.close()


@pytest.fixture()
def client(rig: Rig) -> AppClient:
    return rig.client()


def conforms(component: str, answer: Any) -> None:
    error = first_error(component, answer.json())
    assert error is None, (component, error, answer.text)


def card(amount: int, **kw: Any) -> str:
    """A simulated card's data objects for ``amount`` EUR, in hex (a real cryptogram the issuer verifies)."""
    kw.setdefault("unpredictable_number", bytes.fromhex("11223344"))  # the same body for the same amount
    return card_emv_data(amount if isinstance(amount, int) and 0 < amount < 10**12 else 1, 978, **kw).hex()


def auth(amount: int = 1234, **changes: Any) -> dict[str, Any]:
    refund = changes.get("kind") == "refund"
    body = {"txn_id": "t1", "kind": "sale", "amount": amount, "currency": 978, "terminal_id": TID,
            "merchant_id": MID, "pan_token": "tok",
            "emv_data": card(amount, cryptogram="aac" if refund else "arqc", transaction_type=0x20 if refund else 0)}
    body.update(changes)
    return body


def post(client: AppClient, path: str, body: Any, key: str = "k1") -> Any:
    return client.post(path, json=body, headers={"Idempotency-Key": key})


def test_openapi_and_enrol_need_no_certificate_the_rest_401(rig: Rig) -> None:
    anonymous = rig.client(peer=None)
    assert anonymous.get("/v1/openapi.json").status_code == 200
    assert anonymous.post("/v1/enrol", json={}).status_code == 422
    for method, path in [("GET", "/v1/echo"), ("POST", "/v1/authorisations"), ("GET", "/v1/parameters"),
                         ("GET", "/v1/no-such-path")]:
        answer = anonymous.request(method, path)
        assert answer.status_code == 401
        conforms("Error", answer)


def test_unknown_paths_and_methods_answer_json_errors(client: AppClient) -> None:
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = client.delete("/v1/authorisations")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert "POST" in wrong.headers["allow"]
    assert client.get("/v1/echo/").status_code == 404  # no redirects


@pytest.mark.parametrize(
    ("headers", "content", "status", "text"),
    [
        ({}, json.dumps(auth()), 400, "missing"),
        ({"Idempotency-Key": "bad key!"}, json.dumps(auth()), 400, "Idempotency-Key"),
        ({"Idempotency-Key": "k"}, "{not json", 400, "JSON"),
        ({"Idempotency-Key": "k"}, "[" * 100_000, 400, "JSON"),
        ({"Idempotency-Key": "k"}, "1" * 5000, 400, "JSON"),
        ({"Idempotency-Key": "k"}, b"\xff\xfe", 415, "byte-order mark"),
        ({"Idempotency-Key": "k"}, b"\xc3(", 400, "JSON"),
        ({"Idempotency-Key": "k"}, json.dumps(auth(amount=10**12)), 422, "amount must be <= 999999999999"),
        ({"Idempotency-Key": "k"}, json.dumps(auth(currency=0)), 422, "currency must be >= 1"),
        ({"Idempotency-Key": "k"}, json.dumps(auth(kind="gift")), 422, "kind must be one of"),
        ({"Idempotency-Key": "k"}, json.dumps(auth(extra=1)), 422, "unexpected property"),
        ({"Idempotency-Key": "k"}, json.dumps(auth(amount=True)), 422, "amount must be of type integer"),
        ({"Idempotency-Key": "k"}, json.dumps(auth(emv_data="ABC")), 422, "emv_data must match"),
        ({"Idempotency-Key": "k"}, json.dumps(auth(terminal_id="OTHER")), 403, "terminal_id"),
    ],
)
def test_request_checks_in_order(client: AppClient, headers: dict[str, str], content: Any, status: int,
                                 text: str) -> None:
    answer = client.post("/v1/authorisations", content=content, headers={"Content-Type": "application/json", **headers})
    assert answer.status_code == status, answer.text
    assert text in answer.json()["message"]
    conforms("Error", answer)


def test_validation_messages_never_quote_the_value(client: AppClient) -> None:
    pan = "4761739001010010"
    answer = post(client, "/v1/authorisations", auth(pan_token=pan + "!"))
    assert answer.status_code == 422 and pan not in answer.text


def test_an_integral_float_is_an_integer(client: AppClient) -> None:
    answer = client.post("/v1/authorisations", content=json.dumps(auth()).replace('"amount": 1234', '"amount": 1234.0'),
                         headers={"Idempotency-Key": "f", "Content-Type": "application/json"})
    assert answer.status_code == 200
    conforms("AuthorisationResponse", answer)


def test_idempotency_replay_conflict_and_per_terminal_keys(rig: Rig, client: AppClient) -> None:
    first = post(client, "/v1/authorisations", auth())
    conforms("AuthorisationResponse", first)
    again = post(client, "/v1/authorisations", {**auth(), "retransmission": True})
    assert again.content == first.content and again.headers["idempotent-replay"] == "true"
    assert post(client, "/v1/authorisations", auth(1235)).status_code == 409
    assert post(client, "/v1/reversals", {"txn_id": "t1", "amount": 1, "currency": 978, "terminal_id": TID,
                                          "reason": "void"}).status_code == 409  # same key, another message
    other = rig.client(rig.peer("T2", MID))  # keys are per terminal
    assert post(other, "/v1/authorisations", auth(terminal_id="T2")).status_code == 200
    assert len(rig.store.records()) == 2


def test_sign_on_echo_and_parameters(rig: Rig, client: AppClient) -> None:
    sign_on = post(client, "/v1/sign-on", {"terminal_id": TID, "merchant_id": MID, "software_version": "1.0"})
    conforms("SignOnResponse", sign_on)
    assert sign_on.json()["host_time"] == "2025-06-15T12:00:00Z"
    echo = client.get("/v1/echo")
    conforms("EchoResponse", echo)
    assert client.get("/v1/echo").json()["host_reference"] != echo.json()["host_reference"]
    params = client.get("/v1/parameters")
    conforms("ParametersResponse", params)
    version = params.json()["version"]
    assert sign_on.json()["parameters_version"] == version  # the terminal's own version
    assert (params.json()["config"]["terminal_id"], params.json()["config"]["merchant_id"]) == (TID, MID)
    assert client.get(f"/v1/parameters?have={version}").status_code == 304
    assert client.get(f"/v1/parameters?have={version}").content == b""
    assert client.get(f"/v1/parameters?have={version - 1}").status_code == 200
    for bad in ("-1", "x", "99999999999", "１"):
        assert client.get("/v1/parameters", params={"have": bad}).status_code == 422
    assert rig.store.terminals()[0]["software_version"] == "1.0"


def test_advices_each_judged_on_its_own(rig: Rig, client: AppClient) -> None:
    admin.set_refund_allowance(rig.data_dir, MID, 1000, store=rig.location)  # the offline refund below has no sale
    good = {"txn_id": "a1", "idempotency_key": "ak1", "kind": "deferred_authorisation", "amount": 251,
            "currency": 978, "terminal_id": TID, "merchant_id": MID, "emv_data": card(251), "pan_token": "tok",
            "created_at": "2025-06-15T11:00:00Z"}
    items: list[Any] = [
        good,
        {"txn_id": "half", "amount": 1},
        {**good, "idempotency_key": "ak2", "terminal_id": "T9"},
        {**good, "idempotency_key": "ak3", "emv_data": "9F"},
        {**good, "idempotency_key": "ak4", "created_at": "yesterday"},
        {**good, "txn_id": "a5", "idempotency_key": "ak5", "kind": "offline_refund", "amount": 300,
         "emv_data": card(300, cryptogram="tc", transaction_type=0x20)},
        {**good, "amount": 252},  # ak1 again with another body
    ]
    answer = post(client, "/v1/advices", {"advices": items})
    conforms("AdvicesResponse", answer)
    results = answer.json()["results"]
    assert [r["outcome"] for r in results] == ["declined", "rejected", "rejected", "rejected", "rejected",
                                               "accepted", "rejected"]
    assert results[0]["response_code"] == "51" and results[0]["message"]
    assert results[1]["txn_id"] == "half" and results[1]["message"] == "idempotency_key is required"
    assert "terminal_id" in results[2]["message"] and "BER-TLV" in results[3]["message"]
    assert results[4]["message"].startswith("created_at") and "idempotency_key" in results[6]["message"]
    assert results[5]["approval_code"] is None and results[5]["host_reference"]
    # an item that is not an object makes the request itself invalid
    assert post(client, "/v1/advices", {"advices": [good, "text"]}, key="k2").status_code == 422


def test_reversal_and_batch_close(rig: Rig, client: AppClient) -> None:
    admin.set_refund_allowance(rig.data_dir, MID, 400, store=rig.location)  # r1 is a refund that no sale covers
    post(client, "/v1/authorisations", auth(1000, txn_id="s1"), key="a")
    post(client, "/v1/authorisations", auth(400, txn_id="r1", kind="refund"), key="b")
    post(client, "/v1/authorisations", auth(700, txn_id="s2"), key="c")
    reversal = post(client, "/v1/reversals", {"txn_id": "s2", "amount": 700, "currency": 978, "terminal_id": TID,
                                              "reason": "no_answer"}, key="d")
    conforms("ReversalResponse", reversal)
    lines = [{"scheme": "VISA", "currency": 978, "kind": "sale", "count": 1, "amount": 1000},
             {"scheme": "VISA", "currency": 978, "kind": "refund", "count": 1, "amount": 400}]
    close = post(client, "/v1/batches/close", {"batch_id": 7, "terminal_id": TID, "lines": lines}, key="e")
    conforms("BatchCloseResponse", close)
    assert close.json()["in_balance"] is True
    out = post(client, "/v1/batches/close", {"batch_id": 8, "terminal_id": TID, "lines": lines}, key="f")
    assert out.json()["in_balance"] is False and len(out.json()["differences"]) == 2
    assert rig.store.batch_number(MID, TID) == 3


def test_enrolment(rig: Rig) -> None:
    anonymous = rig.client(peer=None)
    code = admin.make_enrolment_code(rig.data_dir, "T7", "M7", store=rig.location)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
           "asked for")])).sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    assert anonymous.post("/v1/enrol", json={"enrolment_code": code, "csr_pem": "garbage"}).status_code == 422
    answer = anonymous.post("/v1/enrol", json={"enrolment_code": code.lower(), "csr_pem": csr})
    assert answer.status_code == 201
    conforms("EnrolResponse", answer)
    assert anonymous.post("/v1/enrol", json={"enrolment_code": code, "csr_pem": csr}).content == answer.content
    assert rig.store.terminals()[0]["terminal_id"] == "T7"
    expired = admin.make_enrolment_code(rig.data_dir, "T8", "M8", store=rig.location)
    late = Rig.__new__(Rig)
    late.__dict__.update(rig.__dict__)
    late.app = create_app(rig.store, rig.ca, rig.faults, clock=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    answer = late.client(peer=None).post("/v1/enrol", json={"enrolment_code": expired, "csr_pem": csr})
    assert answer.status_code == 403


def test_a_database_that_goes_away_is_503_then_served_again(
    tmp_path: Path, postgres: PostgresCluster, postgres_url: str
) -> None:
    """Before: an unhandled error, a 500 and a traceback in the log. Now: 503 for that request, and the pool
    replaces its dead connections, so the next request is served."""
    rig = Rig(tmp_path, postgres_url)
    try:
        client = rig.client()
        assert post(client, "/v1/authorisations", auth(), key="a1").status_code == 200
        postgres.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                     f"'{urlsplit(postgres_url).path[1:]}' AND pid <> pg_backend_pid()")
        answer = post(client, "/v1/authorisations", auth(txn_id="t2"), key="a2")
        assert answer.status_code == 503
        conforms("Error", answer)
        again = post(client, "/v1/authorisations", auth(txn_id="t2"), key="a2")
        assert again.status_code == 200 and again.json()["status"] in ("approved", "declined")
        assert [r.txn_id for r in rig.store.records()] == ["t1", "t2"]
    finally:
        rig.store.close()


def test_faults_in_the_app(rig: Rig, client: AppClient) -> None:
    rig.faults.current = Faults(error_status=503, only=("/v1/advices",))
    assert client.get("/v1/echo").status_code == 200
    answer = post(client, "/v1/advices", {"advices": []})
    assert answer.status_code == 503 and answer.json()["error"] == "server_error"
    rig.faults.current = Faults(drop_after_request=True)  # no transport in process: falls through, no crash
    assert client.get("/v1/echo").status_code == 200
    rig.faults.current = Faults()
