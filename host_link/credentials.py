"""Where a terminal keeps what enrolment gave it: ``<data_dir>/host-link/``.

======================  ============================================================
``enrolment.json``      ``{"url", "terminal_id", "merchant_id", "enrolled_at",
                        "certificate_not_after"}``; written last, so that its presence
                        means the other files are complete
``client-key.pem``      the terminal's private key (EC P-256, PKCS#8), mode 0600;
                        made on the terminal, never sent anywhere
``client-cert.pem``     the terminal's certificate, issued by the host's CA
``ca.pem``              the host's CA: the only CA the terminal trusts
``client-key.next.pem`` a renewal's new key (0600), kept from before the request until
                        the new certificate is in place (see :mod:`host_link.renewal`)
``client-cert.next.pem`` the renewal's new certificate, written before it is put in place
``.renewal.lock``       held (``flock``) while a renewal or its completion runs
======================  ============================================================

A renewal that stopped after the new certificate was written but before both
files were in place is completed by :func:`load_credentials` (the pair is
checked first: a key and a certificate that do not match are never put in
place).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from terminal import files as _fs
from terminal.limits import MAX_STATE_FILE_BYTES, InputFileError, read_json_input
from terminal.ports import DeviceError

__all__ = [
    "CREDENTIALS_DIR",
    "Credentials",
    "NotEnrolled",
    "credentials_dir",
    "install_pending_certificate",
    "load_credentials",
    "renewal_lock",
    "require_credentials",
]

CREDENTIALS_DIR = "host-link"
ENROLMENT_FILE = "enrolment.json"
KEY_FILE = "client-key.pem"
CERT_FILE = "client-cert.pem"
CA_FILE = "ca.pem"
PENDING_KEY_FILE = "client-key.next.pem"
PENDING_CERT_FILE = "client-cert.next.pem"
LOCK_FILE = ".renewal.lock"

NOT_ENROLLED = "not enrolled with a host: run 'posterm enrol BUNDLE' first"


def credentials_dir(data_dir: Path) -> Path:
    return Path(data_dir) / CREDENTIALS_DIR


@dataclass(frozen=True)
class Credentials:
    """A terminal's enrolment: who it is, which host, and where its key and certificates are."""

    directory: Path
    url: str
    terminal_id: str
    merchant_id: str
    enrolled_at: str
    certificate_not_after: str

    @property
    def key_file(self) -> Path:
        return self.directory / KEY_FILE

    @property
    def cert_file(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def ca_file(self) -> Path:
        return self.directory / CA_FILE

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "terminal_id": self.terminal_id,
            "merchant_id": self.merchant_id,
            "enrolled_at": self.enrolled_at,
            "certificate_not_after": self.certificate_not_after,
        }


def load_credentials(data_dir: Path) -> Credentials | None:
    """The enrolment of this data directory, ``None`` if there is none.

    Raises :class:`~terminal.ports.DeviceError` when an enrolment exists but is
    damaged (unreadable ``enrolment.json``, a missing key or certificate).
    """
    directory = credentials_dir(data_dir)
    path = directory / ENROLMENT_FILE
    if not os.path.lexists(path):
        return None
    if os.path.lexists(directory / PENDING_CERT_FILE):
        try:
            with renewal_lock(directory):
                install_pending_certificate(directory)
        except (OSError, InputFileError) as exc:  # the host replaced the old certificate: this must complete
            raise DeviceError(f"a certificate renewal in {directory} cannot be completed: {exc}") from None
    try:
        doc = read_json_input(path, MAX_STATE_FILE_BYTES, "host link enrolment")
    except InputFileError as exc:
        raise DeviceError(f"{exc} (enrol again with --force)") from None
    fields = ("url", "terminal_id", "merchant_id", "enrolled_at", "certificate_not_after")
    if not isinstance(doc, dict) or not all(isinstance(doc.get(f), str) and doc.get(f) for f in fields):
        raise DeviceError(f"host link enrolment {path} is damaged: expected text fields {', '.join(fields)}")
    creds = Credentials(directory, *(str(doc[f]) for f in fields))
    for needed in (creds.key_file, creds.cert_file, creds.ca_file):
        if not needed.is_file():
            raise DeviceError(f"host link enrolment is incomplete: {needed} is missing (enrol again with --force)")
    return creds


@contextlib.contextmanager
def renewal_lock(directory: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold the enrolment's renewal lock (``flock``); yields False when ``blocking`` is off and it is taken."""
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def _same_key(key_path: Path, cert_path: Path) -> bool:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError, TypeError):
        return False
    return bool(key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki))


def install_pending_certificate(directory: Path) -> str | None:
    """Put a renewal's new certificate (and key) in place, under :func:`renewal_lock`; its expiry, or None.

    Order: the new key replaces the old one, then the new certificate the old
    one, each an atomic rename made durable, then ``enrolment.json`` records
    the new expiry. Stopped anywhere, the next call finishes. A pending
    certificate that is not for the key it would be used with is dropped.
    """
    from cryptography import x509

    cert_next, key_next = directory / PENDING_CERT_FILE, directory / KEY_FILE
    if not cert_next.is_file():
        return None
    if (directory / PENDING_KEY_FILE).is_file():
        key_next = directory / PENDING_KEY_FILE
    if not _same_key(key_next, cert_next):
        cert_next.unlink()
        _fs.fsync_dir(directory)
        return None
    not_after = x509.load_pem_x509_certificate(cert_next.read_bytes()).not_valid_after_utc
    if key_next != directory / KEY_FILE:
        os.replace(key_next, directory / KEY_FILE)
        _fs.fsync_dir(directory)
    os.replace(cert_next, directory / CERT_FILE)
    _fs.fsync_dir(directory)
    marker = directory / ENROLMENT_FILE
    doc = read_json_input(marker, MAX_STATE_FILE_BYTES, "host link enrolment")
    if isinstance(doc, dict):
        doc["certificate_not_after"] = not_after.isoformat(timespec="seconds")
        _fs.atomic_write(marker, (json.dumps(doc, indent=1) + "\n").encode(), 0o600)
    return str(doc.get("certificate_not_after")) if isinstance(doc, dict) else None


class NotEnrolled(DeviceError):
    """This data directory has no enrolment: a configuration to complete (exit status 2), not an outage."""


def require_credentials(data_dir: Path) -> Credentials:
    """:func:`load_credentials`, raising :class:`NotEnrolled` with the way out when not enrolled."""
    creds = load_credentials(data_dir)
    if creds is None:
        raise NotEnrolled(NOT_ENROLLED)
    return creds
