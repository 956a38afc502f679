"""Enrolment: how a new terminal gets its certificate from its host, the first time.

A terminal talks to its host over mutual TLS, so it needs a certificate issued
by the host's CA before it can send anything else.  Enrolment gets it once,
from a *credential bundle*, without any private key ever leaving the terminal.

The flow
--------

1. **The operator** of the host makes a one-time enrolment code, bound to a
   terminal id and a merchant id and valid 24 hours (``posterm host enrol-code``
   on the host), and gives the terminal a credential bundle, a JSON file::

       {"url": "https://acquirer.example:8443",
        "ca_certificate_pem": "-----BEGIN CERTIFICATE-----...",
        "enrolment_code": "...", "terminal_id": "TERM0001", "merchant_id": "POSTERM0000001"}

   The bundle holds no key.  Its secret is the code, which is good for one
   enrolment only; the CA certificate in it is public, but it must come from
   the operator (not from the network), because it is what the terminal will
   trust.

2. **The terminal** (``posterm enrol BUNDLE.json``, or :func:`enrol`):

   a. makes an EC P-256 key pair;
   b. makes a certificate signing request (CSR) signed with that key, with
      commonName = terminal id and organizationName = merchant id;
   c. sends ``POST /v1/enrol {"enrolment_code", "csr_pem"}`` over TLS 1.3,
      trusting only the bundle's CA (it has no client certificate yet);
   d. checks the answer: the certificate is issued by the bundle's CA, holds
      the terminal's own public key, names the bundle's terminal and merchant
      ids, and has not expired;
   e. stores, under ``<data_dir>/host-link/`` (see :mod:`host_link.credentials`),
      the private key (mode 0600), the certificate, the CA, and last
      ``enrolment.json``, each written atomically.

3. From then on the terminal opens its host link with ``--host https`` (the
   enrolled URL) and presents that certificate on every connection; the host
   checks that the ids in each message are those of the certificate.

Renewing
--------

Before the certificate ends (365 days), the terminal renews it with the host
without a code: :mod:`host_link.renewal` (``posterm renew``, and the link by
itself within 30 days of the end). Enrolling again revokes the old
certificate at the host: only the latest one works.

Enrolling again
---------------

An enrolled data directory refuses a second enrolment unless ``force=True``
(``--force``): the old key and certificate are replaced only once the host has
issued the new certificate, so a failed attempt leaves the old enrolment
working.  If the terminal stops between the host's answer and the last file
written, the directory is "not enrolled" and the code is spent: ask the
operator for a new code.  The same holds when the host's answer is lost
(``HostNoAnswer``): the code may have been used.
"""

from __future__ import annotations

import json
import re
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from host_link.client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, HttpsHostLink
from host_link.credentials import (
    CA_FILE,
    CERT_FILE,
    ENROLMENT_FILE,
    KEY_FILE,
    PENDING_CERT_FILE,
    PENDING_KEY_FILE,
    Credentials,
    credentials_dir,
    load_credentials,
)
from host_link.tls import client_context
from terminal import files as _fs
from terminal.limits import MAX_BUNDLE_BYTES, InputFileError, read_json_input
from terminal.ports import DeviceError

__all__ = ["CredentialBundle", "EnrolmentError", "check_certificate_answer", "enrol", "make_csr", "read_bundle"]

_ID = re.compile(r"[\x20-\x7e]{1,64}")


class EnrolmentError(Exception):
    """The bundle, the existing enrolment or the host's answer does not allow enrolment; the message says why."""


@dataclass(frozen=True)
class CredentialBundle:
    url: str
    ca_certificate_pem: str
    enrolment_code: str
    terminal_id: str
    merchant_id: str

    def __repr__(self) -> str:  # the code is a secret: never in a log or a traceback
        return f"CredentialBundle(url={self.url!r}, terminal_id={self.terminal_id!r}, merchant_id={self.merchant_id!r})"

    @classmethod
    def from_json(cls, doc: Any, source: str = "credential bundle") -> CredentialBundle:
        if not isinstance(doc, dict):
            raise EnrolmentError(f"{source}: expected a JSON object")
        values: dict[str, str] = {}
        for name in ("url", "ca_certificate_pem", "enrolment_code", "terminal_id", "merchant_id"):
            value = doc.get(name)
            if not isinstance(value, str) or not value.strip():
                raise EnrolmentError(f"{source}: {name} is missing or empty")
            values[name] = value.strip() if name != "ca_certificate_pem" else value
        if not values["url"].startswith("https://"):
            raise EnrolmentError(f"{source}: url must start with https://")
        for name in ("terminal_id", "merchant_id"):
            if not _ID.fullmatch(values[name]):
                raise EnrolmentError(f"{source}: {name} must be 1 to 64 printable ASCII characters")
        if len(values["enrolment_code"]) > 256:
            raise EnrolmentError(f"{source}: enrolment_code is too long")
        bundle = cls(**values)
        bundle.ca_certificates()  # fails early on a bad CA
        return bundle

    def ca_certificates(self) -> list[x509.Certificate]:
        try:
            certs = x509.load_pem_x509_certificates(self.ca_certificate_pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise EnrolmentError(f"credential bundle: ca_certificate_pem is not a PEM certificate ({exc})") from None
        return certs


def read_bundle(path: Path) -> CredentialBundle:
    """Read and check a credential bundle file (a regular file of at most :data:`~terminal.limits.MAX_BUNDLE_BYTES`)."""
    try:
        doc = read_json_input(path, MAX_BUNDLE_BYTES, "credential bundle")
    except InputFileError as exc:
        raise EnrolmentError(str(exc)) from None
    return CredentialBundle.from_json(doc, f"credential bundle {path}")


def make_csr(key: ec.EllipticCurvePrivateKey, terminal_id: str, merchant_id: str) -> x509.CertificateSigningRequest:
    """A CSR for ``key`` with commonName = terminal id and organizationName = merchant id."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, terminal_id),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, merchant_id),
        ]
    )
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())


def _name(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if len(values) == 1 else None


def _spki(key: Any) -> bytes:
    data: bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return data


def check_certificate_answer(
    answer: dict[str, Any],
    ca_certificates: list[x509.Certificate],
    terminal_id: str,
    merchant_id: str,
    key: ec.EllipticCurvePrivateKey,
    now: datetime,
    *,
    ca_name: str = "the CA of the credential bundle",
) -> x509.Certificate:
    """The certificate of a host's answer (enrolment or renewal), checked; :class:`EnrolmentError` if it is not
    issued by one of ``ca_certificates``, not for ``key``, names other ids, or has expired."""
    pem = answer.get("certificate_pem")
    if not isinstance(pem, str):
        raise EnrolmentError("the host's answer has no certificate_pem")
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise EnrolmentError("the host's certificate_pem is not a PEM certificate") from None
    issued = False
    for ca in ca_certificates:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        issued = True
        break
    if not issued:
        raise EnrolmentError(f"the host's certificate is not issued by {ca_name}")
    if _spki(cert.public_key()) != _spki(key.public_key()):
        raise EnrolmentError("the host's certificate is not for this terminal's key")
    cn, org = _name(cert, NameOID.COMMON_NAME), _name(cert, NameOID.ORGANIZATION_NAME)
    if (cn, org) != (terminal_id, merchant_id):
        raise EnrolmentError(
            f"the host issued a certificate for terminal {cn!r} of merchant {org!r}, but this is "
            f"terminal {terminal_id!r} of merchant {merchant_id!r}: ask the operator"
        )
    for name, expected in (("terminal_id", terminal_id), ("merchant_id", merchant_id)):
        if name in answer and answer[name] != expected:
            raise EnrolmentError(f"the host's answer names another {name} than the bundle")
    if cert.not_valid_after_utc <= now:
        raise EnrolmentError(f"the host's certificate expired on {cert.not_valid_after_utc.isoformat()}")
    return cert


def enrol(
    bundle: CredentialBundle,
    data_dir: Path,
    *,
    force: bool = False,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> Credentials:
    """Enrol the terminal of ``data_dir`` with the host of ``bundle``; see the module's docstring.

    Raises :class:`EnrolmentError` (already enrolled, a bad answer),
    :class:`~terminal.host.HostError` (unreachable, no answer, code refused).
    """
    directory = credentials_dir(Path(data_dir))
    try:
        existing = load_credentials(Path(data_dir))
    except DeviceError:
        if not force:
            raise
        existing = None  # damaged: --force replaces it
    if existing is not None and not force:
        raise EnrolmentError(
            f"already enrolled as terminal {existing.terminal_id} with {existing.url}: use --force to enrol again"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    csr_pem = make_csr(key, bundle.terminal_id, bundle.merchant_id).public_bytes(serialization.Encoding.PEM).decode()
    try:
        context = client_context(ca_pem=bundle.ca_certificate_pem) if transport is None else None
    except ssl.SSLError as exc:
        raise EnrolmentError(f"credential bundle: the CA certificate cannot be used ({exc})") from None
    with HttpsHostLink(
        bundle.url,
        terminal_id=bundle.terminal_id,
        merchant_id=bundle.merchant_id,
        ssl_context=context,
        transport=transport,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    ) as link:
        answer = link.request_certificate(bundle.enrolment_code, csr_pem)
    now = datetime.now(UTC)
    cert = check_certificate_answer(
        answer, bundle.ca_certificates(), bundle.terminal_id, bundle.merchant_id, key, now
    )

    _fs.make_private_dir(directory)
    marker = directory / ENROLMENT_FILE
    if marker.exists():  # not enrolled from here until the new marker is written
        marker.unlink()
        _fs.fsync_dir(directory)
    for pending in (PENDING_CERT_FILE, PENDING_KEY_FILE):  # an unfinished renewal of the old enrolment
        if (directory / pending).exists():
            (directory / pending).unlink()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ca_pem = bundle.ca_certificate_pem if bundle.ca_certificate_pem.endswith("\n") else bundle.ca_certificate_pem + "\n"
    _fs.atomic_write(directory / KEY_FILE, key_pem, 0o600)
    _fs.atomic_write(directory / CERT_FILE, cert.public_bytes(serialization.Encoding.PEM), 0o600)
    _fs.atomic_write(directory / CA_FILE, ca_pem.encode("ascii"), 0o600)
    creds = Credentials(
        directory=directory,
        url=bundle.url.rstrip("/"),
        terminal_id=bundle.terminal_id,
        merchant_id=bundle.merchant_id,
        enrolled_at=now.isoformat(timespec="seconds"),
        certificate_not_after=cert.not_valid_after_utc.isoformat(timespec="seconds"),
    )
    _fs.atomic_write(marker, (json.dumps(creds.to_json(), indent=1) + "\n").encode(), 0o600)
    return creds
