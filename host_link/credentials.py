"""Where a terminal keeps what enrolment gave it: ``<data_dir>/host-link/``.

======================  ============================================================
``enrolment.json``      ``{"url", "terminal_id", "merchant_id", "enrolled_at",
                        "certificate_not_after"}``; written last, so that its presence
                        means the other files are complete
``client-key.pem``      the terminal's private key (EC P-256, PKCS#8), mode 0600;
                        made on the terminal, never sent anywhere
``client-cert.pem``     the terminal's certificate, issued by the host's CA
``ca.pem``              the host's CA: the only CA the terminal trusts
======================  ============================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from terminal.limits import MAX_STATE_FILE_BYTES, InputFileError, read_json_input
from terminal.ports import DeviceError

__all__ = [
    "CREDENTIALS_DIR",
    "Credentials",
    "NotEnrolled",
    "credentials_dir",
    "load_credentials",
    "require_credentials",
]

CREDENTIALS_DIR = "host-link"
ENROLMENT_FILE = "enrolment.json"
KEY_FILE = "client-key.pem"
CERT_FILE = "client-cert.pem"
CA_FILE = "ca.pem"

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


class NotEnrolled(DeviceError):
    """This data directory has no enrolment: a configuration to complete (exit status 2), not an outage."""


def require_credentials(data_dir: Path) -> Credentials:
    """:func:`load_credentials`, raising :class:`NotEnrolled` with the way out when not enrolled."""
    creds = load_credentials(data_dir)
    if creds is None:
        raise NotEnrolled(NOT_ENROLLED)
    return creds
