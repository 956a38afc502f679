"""The simulated host's certificate authority (TEST PKI — NOT FOR PRODUCTION).

One EC P-256 CA per data directory, made on first use, issues:

- the host's TLS server certificate (``serverAuth``, for ``127.0.0.1``,
  ``::1``, ``localhost`` and the bind address), made fresh at every start;
- terminal client certificates from a CSR at enrolment and at a rotation
  (``clientAuth``; subject commonName = terminal id, organizationName =
  merchant id, whatever the CSR asked for); :meth:`CertificateAuthority.issue_terminal_certificate`
  also gives the serial (upper-case hex, as :func:`serial_text` writes it and
  the host's certificates table keys them) and the expiry;
- for fault injection, an *expired* server certificate from the same CA and a
  *wrong* one from a throwaway CA that no terminal trusts.

Layout under ``<data dir>/tls``: ``ca/key.pem`` + ``ca/cert.pem`` (the CA,
created in a temporary directory and renamed into place, so two processes
starting at once end with one CA), and the server files written by
:func:`write_server_certificates`. Every file is written 0600 (keys and
certificates alike: the data directory is the host's alone,
:mod:`simulator.host.files`) in 0700 folders.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from simulator.host.files import private_dir
from terminal.files import atomic_write

__all__ = [
    "CLIENT_CERT_DAYS",
    "CertificateAuthority",
    "CsrError",
    "IssuedCertificate",
    "ServerCertificates",
    "TlsFiles",
    "load_or_create_ca",
    "public_key_digest",
    "serial_text",
    "write_server_certificates",
]

CLIENT_CERT_DAYS = 365
SERVER_CERT_DAYS = 30
CA_YEARS = 10
_MIN_RSA_BITS = 2048


class CsrError(ValueError):
    """A certificate signing request the host will not sign (the message says why)."""


@dataclass(frozen=True)
class TlsFiles:
    """A certificate chain file and its private key file."""

    certificate: Path
    key: Path


@dataclass(frozen=True)
class ServerCertificates:
    """The three server identities: good, expired (same CA), wrong (another CA)."""

    good: TlsFiles
    expired: TlsFiles
    wrong: TlsFiles
    ca_certificate: Path


@dataclass(frozen=True)
class IssuedCertificate:
    """A terminal certificate just issued: PEM, serial (:func:`serial_text`), expiry, key digest."""

    pem: bytes
    serial: str
    not_after: dt.datetime
    public_key_digest: str


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def serial_text(serial_number: int) -> str:
    """A certificate serial as the host stores and compares it: upper-case hex without leading zeros."""
    return format(serial_number, "X")


def public_key_digest(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    """SHA-256 (hex) of the key's SubjectPublicKeyInfo: names a key whatever CSR carried it."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` atomically and durably, 0600 from the first byte, in a 0700 folder."""
    private_dir(path.parent)
    atomic_write(path, data, 0o600)


def _ca_certificate(key: ec.EllipticCurvePrivateKey, common_name: str, now: dt.datetime) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "posterm simulated acquirer"),
        ]
    )
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in hosts:
        if not host or host in seen or host in ("0.0.0.0", "::"):
            continue
        seen.add(host)
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


class CertificateAuthority:
    """A CA key and certificate that issue server and client certificates."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self._key = key
        self.certificate = certificate

    @classmethod
    def generate(cls, common_name: str = "posterm host CA") -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(key, _ca_certificate(key, common_name, _now()))

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self._key)

    def _leaf(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        not_before: dt.datetime,
        not_after: dt.datetime,
        usage: x509.ObjectIdentifier,
        san: x509.SubjectAlternativeName | None = None,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_key_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
        )
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        return builder.sign(self._key, hashes.SHA256())

    def issue_server_certificate(
        self, hosts: Iterable[str], *, not_before: dt.datetime | None = None, not_after: dt.datetime | None = None
    ) -> tuple[bytes, bytes]:
        """(key PEM, certificate PEM) of a TLS server certificate for ``hosts`` (IPs or DNS names)."""
        now = _now()
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "posterm simulated host")])
        cert = self._leaf(
            subject,
            key.public_key(),
            not_before or now - dt.timedelta(hours=1),
            not_after or now + dt.timedelta(days=SERVER_CERT_DAYS),
            ExtendedKeyUsageOID.SERVER_AUTH,
            _san(hosts),
        )
        return _key_pem(key), cert.public_bytes(serialization.Encoding.PEM)

    def sign_csr(self, csr_pem: str | bytes, terminal_id: str, merchant_id: str) -> bytes:
        """A client certificate (PEM) for the CSR's key, with the subject replaced by the ids.

        Raises :class:`CsrError` for a CSR that is not PEM, whose self-signature
        is wrong, or whose key is neither RSA >= 2048 bits nor EC P-256.
        """
        return self.issue_terminal_certificate(csr_pem, terminal_id, merchant_id).pem

    @staticmethod
    def csr_public_key(csr_pem: str | bytes) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
        """The public key of a CSR the host would sign (the checks of :meth:`sign_csr`), or :class:`CsrError`."""
        data = csr_pem.encode("utf-8", "replace") if isinstance(csr_pem, str) else csr_pem
        try:
            csr = x509.load_pem_x509_csr(data)
        except ValueError:
            raise CsrError("csr_pem: not a PEM certificate signing request") from None
        try:
            public_key = csr.public_key()
        except (ValueError, x509.UnsupportedGeneralNameType) as exc:  # pragma: no cover - odd keys
            raise CsrError(f"csr_pem: unusable public key ({exc})") from None
        if isinstance(public_key, rsa.RSAPublicKey):
            if public_key.key_size < _MIN_RSA_BITS:
                raise CsrError(f"csr_pem: RSA key of {public_key.key_size} bits, at least {_MIN_RSA_BITS} needed")
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            if not isinstance(public_key.curve, ec.SECP256R1):
                raise CsrError(f"csr_pem: EC key on {public_key.curve.name}, only P-256 is accepted")
        else:
            raise CsrError("csr_pem: only RSA (>= 2048 bits) and EC P-256 keys are accepted")
        try:
            valid = csr.is_signature_valid
        except (ValueError, InvalidSignature):  # pragma: no cover - cryptography reports False instead
            valid = False
        if not valid:
            raise CsrError("csr_pem: the request's signature does not verify")
        return public_key

    def issue_terminal_certificate(self, csr_pem: str | bytes, terminal_id: str, merchant_id: str) -> IssuedCertificate:
        """:meth:`sign_csr` with the details the host registers (serial, expiry, key digest)."""
        public_key = self.csr_public_key(csr_pem)
        now = _now()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, terminal_id),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, merchant_id),
            ]
        )
        cert = self._leaf(
            subject,
            public_key,
            now - dt.timedelta(minutes=5),
            now + dt.timedelta(days=CLIENT_CERT_DAYS),
            ExtendedKeyUsageOID.CLIENT_AUTH,
        )
        return IssuedCertificate(
            cert.public_bytes(serialization.Encoding.PEM),
            serial_text(cert.serial_number),
            cert.not_valid_after_utc,
            public_key_digest(public_key),
        )


def load_or_create_ca(tls_dir: Path) -> CertificateAuthority:
    """The CA of ``tls_dir/ca``, made on first use (safe when two processes race)."""
    ca_dir = tls_dir / "ca"
    if not (ca_dir / "cert.pem").exists():
        private_dir(tls_dir)
        fresh = CertificateAuthority.generate()
        tmp = Path(tempfile.mkdtemp(prefix=".ca.", dir=tls_dir))
        try:
            _write(tmp / "key.pem", fresh.key_pem)
            _write(tmp / "cert.pem", fresh.certificate_pem)
            try:
                os.rename(tmp, ca_dir)
            except OSError:
                if not (ca_dir / "cert.pem").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    key = serialization.load_pem_private_key((ca_dir / "key.pem").read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca_dir / 'key.pem'} is not an EC private key")
    return CertificateAuthority(key, x509.load_pem_x509_certificate((ca_dir / "cert.pem").read_bytes()))


def write_server_certificates(ca: CertificateAuthority, tls_dir: Path, hosts: Iterable[str]) -> ServerCertificates:
    """Fresh good, expired and wrong-CA server certificates for ``hosts`` under ``tls_dir``."""
    host_list = ["127.0.0.1", "::1", "localhost", *hosts]
    now = _now()

    def save(name: str, key_pem: bytes, cert_pem: bytes) -> TlsFiles:
        files = TlsFiles(tls_dir / f"{name}.pem", tls_dir / f"{name}-key.pem")
        _write(files.key, key_pem)
        _write(files.certificate, cert_pem)
        return files

    good = save("server", *ca.issue_server_certificate(host_list))
    expired = save(
        "server-expired",
        *ca.issue_server_certificate(
            host_list, not_before=now - dt.timedelta(days=60), not_after=now - dt.timedelta(days=30)
        ),
    )
    stranger = CertificateAuthority.generate(f"not the posterm host CA {secrets.token_hex(4)}")
    wrong = save("server-wrong", *stranger.issue_server_certificate(host_list))
    ca_path = tls_dir / "ca" / "cert.pem"
    return ServerCertificates(good=good, expired=expired, wrong=wrong, ca_certificate=ca_path)
