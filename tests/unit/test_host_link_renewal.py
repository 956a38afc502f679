"""The terminal's certificate renewal on its own: the files at each step, the policy, a busy host.

The host side (and the whole flow over mutual TLS) is in
tests/integration/test_host_tenancy.py; here the link talks to a scripted
host (httpx.MockTransport) that signs with a CA made in the test.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from host_link.client import HttpsHostLink, IdempotentRetry
from host_link.credentials import (
    CERT_FILE,
    KEY_FILE,
    PENDING_CERT_FILE,
    PENDING_KEY_FILE,
    Credentials,
    load_credentials,
)
from host_link.enrolment import EnrolmentError
from host_link.renewal import AutoRenewal, renew
from simulator.host.ca import CertificateAuthority
from terminal.host import HostRejected

TID, MID = "TERM0001", "POSTERM0000001"


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    pkcs8, none = serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, pkcs8, none)


def _csr(key: ec.EllipticCurvePrivateKey) -> bytes:
    from host_link.enrolment import make_csr

    return make_csr(key, TID, MID).public_bytes(serialization.Encoding.PEM)


def enrolled(tmp_path: Path, ca: CertificateAuthority) -> Credentials:
    """An enrolment as ``posterm enrol`` leaves it, its certificate from ``ca``."""
    directory = tmp_path / "host-link"
    directory.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    (directory / KEY_FILE).write_bytes(_pem(key))
    (directory / CERT_FILE).write_bytes(ca.sign_csr(_csr(key), TID, MID))
    (directory / "ca.pem").write_bytes(ca.certificate_pem)
    doc = {"url": "https://host.test", "terminal_id": TID, "merchant_id": MID,
           "enrolled_at": "2026-01-01T00:00:00+00:00", "certificate_not_after": "2027-01-01T00:00:00+00:00"}
    (directory / "enrolment.json").write_text(json.dumps(doc))
    creds = load_credentials(tmp_path)
    assert creds is not None
    return creds


class Host:
    """A scripted host for ``POST /v1/certificate``: signs the CSR (or answers ``status``), keeps what it saw."""

    def __init__(self, ca: CertificateAuthority, status: int = 201) -> None:
        self.ca = ca
        self.status = status
        self.keys: list[str] = []
        self.answers: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/certificate", request.url
        self.keys.append(request.headers["idempotency-key"])
        if self.status != 201:
            return httpx.Response(self.status, json={"error": "certificate_revoked", "message": "no"})
        certificate = self.ca.sign_csr(json.loads(request.content)["csr_pem"], TID, MID)
        self.answers.append(certificate)
        return httpx.Response(201, json={"terminal_id": TID, "merchant_id": MID,
                                         "certificate_pem": certificate.decode(),
                                         "ca_certificate_pem": self.ca.certificate_pem.decode()})


def link(host: Any) -> HttpsHostLink:
    return HttpsHostLink("https://host.test", terminal_id=TID, merchant_id=MID, transport=httpx.MockTransport(host),
                         retry=IdempotentRetry(attempts=1))


def serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def test_renew_replaces_key_and_certificate_and_records_the_new_end(tmp_path: Path) -> None:
    ca = CertificateAuthority.generate()
    creds = enrolled(tmp_path, ca)
    old_key, old_serial = creds.key_file.read_bytes(), serial(creds.cert_file)
    host = Host(ca)
    renewed = renew(tmp_path, link=link(host))
    assert renewed.serial == format(serial(creds.cert_file), "X") and serial(creds.cert_file) != old_serial
    assert creds.key_file.read_bytes() != old_key and creds.key_file.stat().st_mode & 0o077 == 0
    assert not (creds.directory / PENDING_KEY_FILE).exists() and not (creds.directory / PENDING_CERT_FILE).exists()
    after = load_credentials(tmp_path)
    assert after is not None and after.certificate_not_after == renewed.not_after.isoformat(timespec="seconds")
    assert host.keys[0].startswith("renew-") and len(host.keys[0]) == 38


def test_a_renewal_without_an_answer_keeps_its_key_and_sends_the_same_idempotency_key_again(tmp_path: Path) -> None:
    ca = CertificateAuthority.generate()
    creds = enrolled(tmp_path, ca)
    current = creds.cert_file.read_bytes()
    with pytest.raises(HostRejected, match=r"the host revoked this terminal's certificate: enrol again"):
        renew(tmp_path, link=link(Host(ca, status=401)))
    pending = (creds.directory / PENDING_KEY_FILE).read_bytes()
    assert creds.cert_file.read_bytes() == current  # the current certificate stays in use
    host = Host(ca)
    renew(tmp_path, link=link(host))
    assert creds.key_file.read_bytes() == pending  # the key made before the first request
    first = Host(ca, status=401)
    with pytest.raises(HostRejected):
        renew(tmp_path, link=link(first))
    assert first.keys[0] != host.keys[0]  # a new renewal, a new key


def test_an_answer_for_another_key_or_terminal_is_not_installed(tmp_path: Path) -> None:
    ca = CertificateAuthority.generate()
    creds = enrolled(tmp_path, ca)
    current = creds.cert_file.read_bytes()
    stranger = ec.generate_private_key(ec.SECP256R1())

    def wrong_key(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"certificate_pem": ca.sign_csr(_csr(stranger), TID, MID).decode()})

    with pytest.raises(EnrolmentError, match="not for this terminal's key"):
        renew(tmp_path, link=link(wrong_key))
    other_ca = CertificateAuthority.generate("another CA")
    with pytest.raises(EnrolmentError, match="not issued by the host's CA"):
        renew(tmp_path, link=link(Host(other_ca)))
    assert creds.cert_file.read_bytes() == current and not (creds.directory / PENDING_CERT_FILE).exists()


@pytest.mark.parametrize("stopped_after", ["certificate written", "key moved"])
def test_a_renewal_stopped_between_its_renames_is_finished_on_the_next_load(tmp_path: Path, stopped_after: str) -> None:
    ca = CertificateAuthority.generate()
    creds = enrolled(tmp_path, ca)
    key = ec.generate_private_key(ec.SECP256R1())
    new_certificate = ca.sign_csr(_csr(key), TID, MID)
    (creds.directory / PENDING_CERT_FILE).write_bytes(new_certificate)
    target = KEY_FILE if stopped_after == "key moved" else PENDING_KEY_FILE
    (creds.directory / target).write_bytes(_pem(key))
    after = load_credentials(tmp_path)
    assert after is not None
    assert creds.cert_file.read_bytes() == new_certificate and creds.key_file.read_bytes() == _pem(key)
    assert not (creds.directory / PENDING_CERT_FILE).exists() and not (creds.directory / PENDING_KEY_FILE).exists()
    end = x509.load_pem_x509_certificate(new_certificate).not_valid_after_utc
    assert after.certificate_not_after == end.isoformat(timespec="seconds")


def test_a_pending_certificate_that_does_not_match_its_key_is_dropped(tmp_path: Path) -> None:
    ca = CertificateAuthority.generate()
    creds = enrolled(tmp_path, ca)
    current = creds.cert_file.read_bytes()
    other = ec.generate_private_key(ec.SECP256R1())
    (creds.directory / PENDING_CERT_FILE).write_bytes(ca.sign_csr(_csr(other), TID, MID))
    assert load_credentials(tmp_path) is not None
    assert creds.cert_file.read_bytes() == current and not (creds.directory / PENDING_CERT_FILE).exists()


def test_the_policy_renews_when_due_and_waits_after_a_failure(tmp_path: Path) -> None:
    ca = CertificateAuthority.generate()
    creds = enrolled(tmp_path, ca)
    end = x509.load_pem_x509_certificate(creds.cert_file.read_bytes()).not_valid_after_utc
    now = [end - dt.timedelta(days=31)]
    policy = AutoRenewal(tmp_path, within=dt.timedelta(days=30), retry_after=dt.timedelta(hours=1),
                         clock=lambda: now[0])
    assert not policy.due()
    now[0] = end - dt.timedelta(days=29)
    assert policy.due()
    failing = link(Host(ca, status=503))
    assert policy.renew(failing) is None and policy.last_error and not policy.due()
    now[0] += dt.timedelta(hours=1)
    assert policy.due()
    before = serial(creds.cert_file)
    assert policy.renew(link(Host(ca))) is not None and policy.last_error is None
    assert serial(creds.cert_file) != before
    # the next due date comes from the new certificate (issued by the real clock: a year from now)
    assert not policy.due() and policy.not_after >= end


def test_a_busy_host_is_waited_for_as_it_says() -> None:
    calls: list[int] = []
    pauses: list[float] = []

    def busy_then_ok(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) < 3:
            return httpx.Response(429, json={"error": "too_many_requests", "message": "slow down"},
                                  headers={"Retry-After": "2"})
        return httpx.Response(201, json={"certificate_pem": "x"})

    hl = HttpsHostLink("https://host.test", terminal_id=TID, merchant_id=MID,
                       transport=httpx.MockTransport(busy_then_ok), sleep=pauses.append)
    assert hl.request_certificate("CODE", "csr") == {"certificate_pem": "x"}  # not idempotent, yet waited for
    assert pauses == [2.0, 2.0] and len(calls) == 3

    def always_busy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"error": "too_many_requests", "message": "x"}, headers={"Retry-After": "90"})

    hl = HttpsHostLink("https://host.test", terminal_id=TID, merchant_id=MID,
                       transport=httpx.MockTransport(always_busy), sleep=pauses.append)
    with pytest.raises(HostRejected, match=r"busy .*try again in 90 s"):
        hl.request_certificate("CODE", "csr")
