"""Renewing the terminal's certificate before it expires, with its host, without an enrolment code.

The flow (:func:`renew`, ``posterm renew``)
-------------------------------------------

1. Under the enrolment's renewal lock (:func:`host_link.credentials.renewal_lock`),
   so that two processes on one data directory never renew at once.
2. The new key: the pending one (``client-key.next.pem``) if an earlier
   renewal got no answer it could keep, else a new EC P-256 key, written (mode
   0600, durably) *before* the request. The host revokes the current
   certificate as it issues the new one, so the new key must outlive a crash
   or a lost answer.
3. ``POST /v1/certificate {"csr_pem"}`` over the link with the current
   certificate, ``Idempotency-Key: renew-<SHA-256 of the new public key>``:
   a retry (now or after a restart) sends the same key header and public key,
   which the host answers with the same certificate even though the
   certificate asking has been replaced.
4. The answer is checked as an enrolment's (issued by the enrolment's CA, for
   the new key, the same terminal and merchant, not expired), written as
   ``client-cert.next.pem`` and put in place with the key
   (:func:`host_link.credentials.install_pending_certificate`), which also
   records the new expiry in ``enrolment.json``.

By itself (:class:`AutoRenewal`)
--------------------------------

The link that :func:`host_link.client.open_host_link` opens renews before a
request once its certificate ends within :data:`RENEW_WITHIN` (30 days), then
goes on with the new certificate. A renewal that fails (host unreachable,
refused) leaves the current certificate in use and is tried again after
:data:`RETRY_AFTER`; one that another process is running is not waited for.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from host_link.credentials import (
    PENDING_CERT_FILE,
    PENDING_KEY_FILE,
    Credentials,
    install_pending_certificate,
    renewal_lock,
    require_credentials,
)
from host_link.enrolment import EnrolmentError, check_certificate_answer, make_csr
from host_link.tls import client_context
from terminal import files as _fs
from terminal.host import HostError
from terminal.ports import DeviceError

if TYPE_CHECKING:
    from host_link.client import HttpsHostLink

__all__ = ["RENEW_WITHIN", "RETRY_AFTER", "AutoRenewal", "RenewalBusy", "Renewed", "certificate_end", "renew"]

RENEW_WITHIN: Final = dt.timedelta(days=30)
RETRY_AFTER: Final = dt.timedelta(hours=1)
_log = logging.getLogger(__name__)


class RenewalBusy(EnrolmentError):
    """Another process is renewing this terminal's certificate right now."""


@dataclass(frozen=True)
class Renewed:
    """The certificate now in use: its serial (upper-case hex) and its end."""

    serial: str
    not_after: dt.datetime

    def to_json(self) -> dict[str, str]:
        return {"certificate_serial": self.serial, "certificate_not_after": self.not_after.isoformat()}


def certificate_end(creds: Credentials) -> dt.datetime:
    """When the terminal's certificate ends (read from the certificate itself)."""
    return x509.load_pem_x509_certificate(creds.cert_file.read_bytes()).not_valid_after_utc


def _pending_key(directory: Path) -> ec.EllipticCurvePrivateKey:
    """The renewal's new key: the one kept from an unfinished renewal, else a new one, stored before use."""
    path = directory / PENDING_KEY_FILE
    if path.is_file():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key
    fresh = ec.generate_private_key(ec.SECP256R1())
    pem = fresh.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _fs.atomic_write(path, pem, 0o600)
    return fresh


def _idempotency_key(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "renew-" + hashlib.sha256(der).hexdigest()[:32]


def _renew_locked(creds: Credentials, link: HttpsHostLink) -> Renewed:
    key = _pending_key(creds.directory)
    csr_pem = make_csr(key, creds.terminal_id, creds.merchant_id).public_bytes(serialization.Encoding.PEM).decode()
    answer = link.renew_certificate(csr_pem, _idempotency_key(key))
    try:
        ca_certificates = x509.load_pem_x509_certificates(creds.ca_file.read_bytes())
    except ValueError as exc:
        raise EnrolmentError(f"the enrolment's CA {creds.ca_file} cannot be read ({exc})") from None
    cert = check_certificate_answer(
        answer,
        ca_certificates,
        creds.terminal_id,
        creds.merchant_id,
        key,
        dt.datetime.now(dt.UTC),
        ca_name="the host's CA of this enrolment",
    )
    _fs.atomic_write(creds.directory / PENDING_CERT_FILE, cert.public_bytes(serialization.Encoding.PEM), 0o600)
    install_pending_certificate(creds.directory)
    _log.info("certificate of terminal %s renewed until %s", creds.terminal_id, cert.not_valid_after_utc.isoformat())
    return Renewed(format(cert.serial_number, "X"), cert.not_valid_after_utc)


def renew(data_dir: Path, *, link: HttpsHostLink | None = None) -> Renewed:
    """Renew the terminal's certificate now (see the module's docstring).

    ``link``: the link to send through (default: one opened on the
    enrolment). Raises :class:`~host_link.credentials.NotEnrolled`,
    :class:`RenewalBusy`, :class:`EnrolmentError` (a bad answer),
    :class:`~terminal.host.HostError` (unreachable, refused, no answer).
    """
    creds = require_credentials(Path(data_dir))
    with renewal_lock(creds.directory, blocking=False) as held:
        if not held:
            raise RenewalBusy(f"another process is renewing the certificate in {creds.directory}: try again")
        if link is not None:
            return _renew_locked(creds, link)
        from host_link.client import open_host_link

        with open_host_link("https", Path(data_dir), renewal=False) as own:
            return _renew_locked(creds, own)


class AutoRenewal:
    """The renewal policy of a link: due within ``within`` of the certificate's end; retried after ``retry_after``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        within: dt.timedelta = RENEW_WITHIN,
        retry_after: dt.timedelta = RETRY_AFTER,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.data_dir = Path(data_dir)
        self.within = within
        self.retry_after = retry_after
        self._clock = clock
        self._lock = threading.Lock()
        creds = require_credentials(self.data_dir)
        self.not_after = certificate_end(creds)
        self._next_try = self.not_after - within
        self.last_error: str | None = None

    def due(self) -> bool:
        """Whether a request should renew first (cheap: no file read)."""
        return self._clock() >= self._next_try

    def renew(self, link: HttpsHostLink) -> ssl.SSLContext | None:
        """Renew through ``link``; the new client context, or None (not renewed: the current one stays)."""
        if not self._lock.acquire(blocking=False):
            return None  # another thread of this process is at it
        try:
            if not self.due():
                return None
            try:
                creds = require_credentials(self.data_dir)
                with renewal_lock(creds.directory, blocking=False) as held:
                    if not held:
                        return None
                    renewed = _renew_locked(creds, link)
                context = client_context(ca_file=creds.ca_file, cert_file=creds.cert_file, key_file=creds.key_file)
            except (HostError, EnrolmentError, DeviceError, OSError, ssl.SSLError, ValueError) as exc:
                self.last_error = str(exc)
                self._next_try = self._clock() + self.retry_after
                _log.warning("certificate renewal failed (the current certificate stays in use): %s", exc)
                return None
            self.last_error = None
            self.not_after = renewed.not_after
            # not again before retry_after, even under a policy longer than a certificate's life
            self._next_try = max(renewed.not_after - self.within, self._clock() + self.retry_after)
            return context
        finally:
            self._lock.release()
