"""Tenants kept apart on the real host over mutual TLS: certificates revoked, rotated, terminal ids per merchant.

Each test starts its own host process (``start_host``, port 0) on a temporary
data directory; terminals enrol through ``POST /v1/enrol`` with a key and CSR
made here, and the operator's commands run as ``python -m simulator.host``
subprocesses, as an operator runs them.
"""

from __future__ import annotations

import itertools
import os
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

from simulator.host.service import HostService, start_host

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
            "merchant_id": terminal.merchant_id, "emv_data": "", "pan_token": "tok-tenancy"}


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


def test_a_terminal_id_reused_under_another_merchant_cannot_touch_the_first_merchants_sale_or_batch(
    host: HostService, tmp_path: Path
) -> None:
    first = enrol(host, tmp_path / "a", "TEN1", "MERCHANTA")
    with first.client(host) as a:
        assert post(a, "/v1/authorisations", sale(first, "sale-a-1", 1000)).json()["status"] == "approved"
    # the operator makes a code for the same terminal id under another merchant
    code = host.credential_bundle("TEN1", "MERCHANTB")["enrolment_code"]
    second = enrol_with_code(host, code, tmp_path / "b", "TEN1", "MERCHANTB")
    with second.client(host) as b:
        assert post(b, "/v1/reversals", reversal(second, "sale-a-1", 1000)).status_code == 200
        assert post(b, "/v1/batches/close", close(second, 1, 0, 0)).json()["in_balance"] is True
    [record] = [r for r in host.records() if r["txn_id"] == "sale-a-1" and r["method"] == "authorise"]
    assert record["merchant_id"] == "MERCHANTA" and not record["reversed"]
    with first.client(host) as a:
        settled = post(a, "/v1/batches/close", close(first, 1, 1, 1000))
    assert settled.status_code == 200 and settled.json()["in_balance"] is True, settled.text
