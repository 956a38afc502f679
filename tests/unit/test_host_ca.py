"""The host CA: one per data directory, the certificates it issues and the CSRs it refuses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from simulator.host.ca import CertificateAuthority, CsrError, load_or_create_ca, write_server_certificates


def _csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "I would like to be TERM9999")])
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


def _issued_by(cert: x509.Certificate, ca: CertificateAuthority) -> bool:
    try:
        cert.verify_directly_issued_by(ca.certificate)
    except (ValueError, TypeError, Exception):
        return False
    return True


def test_the_ca_is_made_once_per_directory(tmp_path: Path) -> None:
    first = load_or_create_ca(tmp_path)
    second = load_or_create_ca(tmp_path)
    assert first.certificate_pem == second.certificate_pem
    assert (tmp_path / "ca" / "key.pem").stat().st_mode & 0o077 == 0
    assert first.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_a_client_certificate_carries_the_codes_ids_not_the_csrs(tmp_path: Path) -> None:
    ca = load_or_create_ca(tmp_path)
    cert = x509.load_pem_x509_certificate(ca.sign_csr(_csr(ec.generate_private_key(ec.SECP256R1())), "T1", "M1"))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "T1"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "M1"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 364 <= days <= 366 and _issued_by(cert, ca)
    rsa_cert = ca.sign_csr(_csr(rsa.generate_private_key(public_exponent=65537, key_size=2048)), "T1", "M1")
    assert b"BEGIN CERTIFICATE" in rsa_cert


@pytest.mark.parametrize(
    ("csr", "reason"),
    [
        (b"not a csr", "not a PEM"),
        (lambda: _csr(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "at least 2048"),
        (lambda: _csr(ec.generate_private_key(ec.SECP384R1())), "only P-256"),
        (lambda: _csr(ed25519.Ed25519PrivateKey.generate()), "only RSA"),
    ],
)
def test_csrs_the_host_refuses(tmp_path: Path, csr: object, reason: str) -> None:
    ca = load_or_create_ca(tmp_path)
    data = csr() if callable(csr) else csr
    with pytest.raises(CsrError, match=reason):
        ca.sign_csr(data, "T1", "M1")  # type: ignore[arg-type]


def test_server_certificates_good_expired_and_wrong(tmp_path: Path) -> None:
    ca = load_or_create_ca(tmp_path)
    certs = write_server_certificates(ca, tmp_path, ["192.0.2.7"])
    now = dt.datetime.now(dt.UTC)
    good = x509.load_pem_x509_certificate(certs.good.certificate.read_bytes())
    expired = x509.load_pem_x509_certificate(certs.expired.certificate.read_bytes())
    wrong = x509.load_pem_x509_certificate(certs.wrong.certificate.read_bytes())
    assert _issued_by(good, ca) and _issued_by(expired, ca) and not _issued_by(wrong, ca)
    assert good.not_valid_after_utc > now > expired.not_valid_after_utc
    names = good.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "192.0.2.7"}
    assert certs.good.key.stat().st_mode & 0o077 == 0
