"""Tenants kept apart on the real host over mutual TLS: certificates revoked, rotated, terminal ids per merchant.

Each test starts its own host process (``start_host``, port 0) on a temporary
data directory; terminals enrol through ``POST /v1/enrol`` with a key and CSR
made here, and the operator's commands run as ``python -m simulator.host``
subprocesses, as an operator runs them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from host_link.client import HttpsHostLink, open_host_link
from host_link.credentials import Credentials
from host_link.enrolment import CredentialBundle, make_csr
from host_link.enrolment import enrol as enrol_terminal
from host_link.renewal import AutoRenewal
from host_link.tls import client_context
from simulator.card_data import card_emv_data
from simulator.host.service import HostService, start_host
from terminal.host import HostRejected

ROOT = Path(__file__).resolve().parents[2]
_keys = itertools.count(1)


@dataclass(frozen=True)
class Enrolled:
    terminal_id: str
    merchant_id: str
    context: ssl.SSLContext
    serial: str

    def client(self, host: HostService) -> httpx.Client:
        return httpx.Client(base_url=host.url, verify=self.context, timeout=10.0)


def _csr(key: ec.EllipticCurvePrivateKey) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "anything")])
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode("ascii")


def _context(host: HostService, directory: Path, key: ec.EllipticCurvePrivateKey, cert_pem: str) -> ssl.SSLContext:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "client.pem").write_text(cert_pem, encoding="ascii")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (directory / "client-key.pem").write_bytes(key_pem)
    context = ssl.create_default_context(cafile=str(host.ca_certificate_path))
    context.load_cert_chain(directory / "client.pem", directory / "client-key.pem")
    return context


def _serial(cert_pem: str) -> str:
    return format(x509.load_pem_x509_certificate(cert_pem.encode("ascii")).serial_number, "X")


def enrol_with_code(host: HostService, code: str, directory: Path, terminal_id: str, merchant_id: str) -> Enrolled:
    key = ec.generate_private_key(ec.SECP256R1())
    anonymous = ssl.create_default_context(cafile=str(host.ca_certificate_path))
    with httpx.Client(base_url=host.url, verify=anonymous, timeout=10.0) as client:
        answer = client.post("/v1/enrol", json={"enrolment_code": code, "csr_pem": _csr(key)})
    assert answer.status_code == 201, answer.text
    pem = answer.json()["certificate_pem"]
    return Enrolled(terminal_id, merchant_id, _context(host, directory, key, pem), _serial(pem))


def enrol(host: HostService, directory: Path, terminal_id: str, merchant_id: str) -> Enrolled:
    code = host.credential_bundle(terminal_id, merchant_id)["enrolment_code"]
    return enrol_with_code(host, code, directory, terminal_id, merchant_id)


def operator(host: HostService, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m simulator.host ARGS --data-dir DIR``, as the host's operator runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "simulator.host", *args, "--data-dir", str(host.data_dir)],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )


def post(client: httpx.Client, path: str, body: Any) -> httpx.Response:
    return client.post(path, json=body, headers={"Idempotency-Key": f"key{next(_keys):06d}"})


def sale(terminal: Enrolled, txn_id: str, amount: int) -> dict[str, Any]:
    return {"txn_id": txn_id, "kind": "sale", "amount": amount, "currency": 978, "terminal_id": terminal.terminal_id,
            "merchant_id": terminal.merchant_id, "emv_data": card_emv_data(amount, 978).hex(),
            "pan_token": "tok-tenancy"}


def reversal(terminal: Enrolled, txn_id: str, amount: int) -> dict[str, Any]:
    return {"txn_id": txn_id, "amount": amount, "currency": 978, "terminal_id": terminal.terminal_id,
            "reason": "void"}


def close(terminal: Enrolled, batch_id: int, count: int, amount: int) -> dict[str, Any]:
    lines = [{"scheme": "VISA", "currency": 978, "kind": "sale", "count": count, "amount": amount}] if count else []
    return {"batch_id": batch_id, "terminal_id": terminal.terminal_id, "lines": lines}


@pytest.fixture()
def host(tmp_path: Path) -> Iterator[HostService]:
    with start_host(tmp_path / "host") as service:
        yield service


# ----------------------------------------------------------------------------- one terminal id, two merchants


def test_a_terminal_id_of_another_merchant_needs_a_transfer_and_never_touches_the_first_merchants_sale_or_batch(
    host: HostService, tmp_path: Path
) -> None:
    first = enrol(host, tmp_path / "a", "TEN1", "MERCHANTA")
    with first.client(host) as a:
        assert post(a, "/v1/authorisations", sale(first, "sale-a-1", 1000)).json()["status"] == "approved"
    # the operator makes a code for the same terminal id under another merchant: refused, nothing made
    refused = operator(host, "enrol-code", "--terminal-id", "TEN1", "--merchant-id", "MERCHANTB", "--url", host.url)
    assert refused.returncode == 1, refused
    assert "belongs to merchant MERCHANTA" in refused.stderr and "--transfer" in refused.stderr
    assert refused.stdout == "" and refused.stderr.count("\n") == 1
    with first.client(host) as a:
        assert a.get("/v1/echo").status_code == 200
    # an explicit transfer: the first merchant's certificate for TEN1 is revoked, the move logged
    moved = operator(host, "enrol-code", "--terminal-id", "TEN1", "--merchant-id", "MERCHANTB", "--url", host.url,
                     "--transfer")
    assert moved.returncode == 0, moved.stderr
    second = enrol_with_code(host, json.loads(moved.stdout)["enrolment_code"], tmp_path / "b", "TEN1", "MERCHANTB")
    with first.client(host) as a:
        stale = a.get("/v1/echo")
    assert stale.status_code == 401 and stale.json()["error"] == "certificate_revoked"
    with second.client(host) as b:
        undone = post(b, "/v1/reversals", reversal(second, "sale-a-1", 1000))
        assert undone.status_code == 200 and undone.json()["message"] == "nothing to reverse"
        assert post(b, "/v1/batches/close", close(second, 1, 0, 0)).json()["in_balance"] is True
    [record] = [r for r in host.records() if r["txn_id"] == "sale-a-1" and r["method"] == "authorise"]
    assert record["merchant_id"] == "MERCHANTA" and not record["reversed"]
    log = operator(host, "terminal", "log", "TEN1", "--json")
    actions = [(e["action"], e["merchant_id"]) for e in json.loads(log.stdout)["events"]]
    assert actions == [("enrolled", "MERCHANTA"), ("transferred", "MERCHANTA"), ("transfer", "MERCHANTB"),
                       ("enrolled", "MERCHANTB")], actions
    # moved back, the first merchant's terminal settles its own open batch, sale included
    back = operator(host, "enrol-code", "--terminal-id", "TEN1", "--merchant-id", "MERCHANTA", "--url", host.url,
                    "--transfer")
    again = enrol_with_code(host, json.loads(back.stdout)["enrolment_code"], tmp_path / "a2", "TEN1", "MERCHANTA")
    with again.client(host) as a:
        settled = post(a, "/v1/batches/close", close(again, 1, 1, 1000))
    assert settled.status_code == 200 and settled.json()["in_balance"] is True, settled.text


# ----------------------------------------------------------------------------- revocation


def test_a_re_enrolled_terminals_old_certificate_stops_at_its_next_request_on_an_open_connection(
    host: HostService, tmp_path: Path
) -> None:
    old = enrol(host, tmp_path / "old", "TEN2", "MERCHANTA")
    with old.client(host) as kept_alive:
        assert kept_alive.get("/v1/echo").status_code == 200
        new = enrol(host, tmp_path / "new", "TEN2", "MERCHANTA")
        answer = post(kept_alive, "/v1/authorisations", sale(old, "sale-old-cert", 500))
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] == "certificate_revoked" and "re-enrolled" in answer.json()["message"]
    assert not [r for r in host.records() if r["txn_id"] == "sale-old-cert"]
    with new.client(host) as current:
        assert current.get("/v1/echo").status_code == 200
        revoked = operator(host, "terminal", "revoke", "TEN2", "--json")
        assert revoked.returncode == 0, revoked.stderr
        assert json.loads(revoked.stdout) == {"terminal_id": "TEN2", "merchant_id": "MERCHANTA",
                                              "revoked": [new.serial]}
        refused = current.get("/v1/echo")  # the same connection, at its next request
        assert refused.status_code == 401 and refused.json()["error"] == "certificate_revoked"
    listed = json.loads(operator(host, "terminal", "list", "--json").stdout)["terminals"]
    assert [(t["terminal_id"], t["certificate_serial"], t["certificate_status"]) for t in listed] == [
        ("TEN2", new.serial, "revoked")
    ]
    unknown = operator(host, "terminal", "revoke", "NOPE1")
    assert unknown.returncode == 2 and "no terminal NOPE1" in unknown.stderr


# ----------------------------------------------------------------------------- the terminal renews its certificate


def _posterm(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    return subprocess.run(
        [str(Path(sys.executable).with_name("posterm")), *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )


def _enrolled_terminal(host: HostService, data_dir: Path, terminal_id: str) -> Credentials:
    return enrol_terminal(CredentialBundle.from_json(host.credential_bundle(terminal_id, "MERCHANTA")), data_dir)


def _serial_of_file(path: Path) -> str:
    return _serial(path.read_text(encoding="ascii"))


def _context_of(host: HostService, creds: Credentials, directory: Path) -> ssl.SSLContext:
    """A context with the terminal's certificate as it is now (copied: renewal replaces the files)."""
    directory.mkdir()
    shutil.copy(creds.cert_file, directory / "cert.pem")
    shutil.copy(creds.key_file, directory / "key.pem")
    context = ssl.create_default_context(cafile=str(host.ca_certificate_path))
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


def test_posterm_renew_gets_a_new_certificate_and_the_old_one_is_revoked(host: HostService, tmp_path: Path) -> None:
    data_dir = tmp_path / "terminal"
    creds = _enrolled_terminal(host, data_dir, "TEN3")
    before = _serial_of_file(creds.cert_file)
    old_context = _context_of(host, creds, tmp_path / "old")
    renewed = _posterm(data_dir, "renew", "--json")
    assert renewed.returncode == 0, renewed.stderr
    doc = json.loads(renewed.stdout)
    after = _serial_of_file(creds.cert_file)
    assert doc["certificate_serial"] == after != before
    assert json.loads((creds.directory / "enrolment.json").read_text())["certificate_not_after"][:19] == (
        doc["certificate_not_after"][:19]
    )
    assert not (creds.directory / "client-key.next.pem").exists()
    with httpx.Client(base_url=host.url, verify=old_context, timeout=10.0) as old:
        assert old.get("/v1/echo").json()["error"] == "certificate_revoked"
    echo = _posterm(data_dir, "echo", "--json")
    assert echo.returncode == 0, echo.stderr
    listed = json.loads(operator(host, "terminal", "list", "--json").stdout)["terminals"]
    assert [(t["certificate_serial"], t["certificate_status"]) for t in listed if t["terminal_id"] == "TEN3"] == [
        (after, "active")
    ]


def test_a_renewal_whose_answer_was_lost_is_completed_with_the_same_certificate(
    host: HostService, tmp_path: Path
) -> None:
    data_dir = tmp_path / "terminal"
    creds = _enrolled_terminal(host, data_dir, "TEN4")
    old_serial = _serial_of_file(creds.cert_file)
    # a renewal that sent its request and stopped before it kept the answer: the host has replaced the certificate
    key = ec.generate_private_key(ec.SECP256R1())
    (creds.directory / "client-key.next.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    with open_host_link("https", data_dir, renewal=False) as link:
        der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        csr_pem = make_csr(key, "TEN4", "MERCHANTA").public_bytes(serialization.Encoding.PEM).decode()
        lost = link.renew_certificate(csr_pem, "renew-" + hashlib.sha256(der).hexdigest()[:32])
        with pytest.raises(HostRejected, match=r"the host revoked this terminal.s certificate"):
            link.echo(force=True)  # the old certificate no longer works for anything else
    renewed = _posterm(data_dir, "renew", "--json")
    assert renewed.returncode == 0, renewed.stderr
    assert creds.cert_file.read_text(encoding="ascii") == lost["certificate_pem"]  # the same certificate
    assert json.loads(renewed.stdout)["certificate_serial"] == _serial_of_file(creds.cert_file) != old_serial
    assert _posterm(data_dir, "echo").returncode == 0


def test_the_link_renews_by_itself_when_the_certificate_nears_its_end(host: HostService, tmp_path: Path) -> None:
    data_dir = tmp_path / "terminal"
    creds = _enrolled_terminal(host, data_dir, "TEN5")
    before = _serial_of_file(creds.cert_file)
    # certificates last 365 days: a policy of "within 400 days of the end" is due at once
    policy = AutoRenewal(data_dir, within=dt.timedelta(days=400))
    link = HttpsHostLink(
        creds.url, terminal_id=creds.terminal_id, merchant_id=creds.merchant_id, renewal=policy,
        ssl_context=client_context(ca_file=creds.ca_file, cert_file=creds.cert_file, key_file=creds.key_file),
    )
    with link:
        assert link.echo(force=True) > 0  # renewed first, then sent with the new certificate
        after = _serial_of_file(creds.cert_file)
        assert after != before and policy.last_error is None
        assert link.echo(force=True) > 0
    [row] = [t for t in json.loads(operator(host, "terminal", "list", "--json").stdout)["terminals"]
             if t["terminal_id"] == "TEN5"]
    assert (row["certificate_serial"], row["certificate_status"]) == (after, "active")
    actions = [e["action"] for e in json.loads(operator(host, "terminal", "log", "TEN5", "--json").stdout)["events"]]
    assert actions.count("rotated") == 1  # within 400 days of a 365-day certificate is due again: once per link
