"""The terminal's TLS client context: TLS 1.3 only, the host's CA only, the terminal's certificate.

The terminal never trusts the system's certificate store: the only CA is the
host's own (``ca.pem`` of the enrolment, or the CA of the credential bundle
during enrolment), so that a certificate bought from a public CA cannot
impersonate the acquirer.  Hostname checking stays on: the host's certificate
must name the host of the URL (an IP address is matched against the
certificate's IP address entries).
"""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["client_context", "is_handshake_refusal"]

# OpenSSL reasons of an alert by which a server refused the client's certificate.  In
# TLS 1.3 the client finishes its side of the handshake before the server has checked
# the client certificate, so this refusal surfaces on the first read, after the request
# was written; the server's application never saw the request.
_REFUSAL_WORDS = ("CERTIFICATE", "UNKNOWN_CA", "ACCESS_DENIED", "HANDSHAKE_FAILURE")


def client_context(
    *,
    ca_file: Path | None = None,
    ca_pem: str | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> ssl.SSLContext:
    """A client context that trusts only the given CA and presents ``cert_file`` / ``key_file`` if given.

    Exactly one of ``ca_file`` and ``ca_pem`` names the trusted CA.  Raises
    :class:`ssl.SSLError` or :class:`OSError` when a file cannot be used.
    """
    if (ca_file is None) == (ca_pem is None):
        raise ValueError("give exactly one of ca_file and ca_pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname on, CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    else:
        context.load_verify_locations(cadata=ca_pem)
    if cert_file is not None:
        context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file) if key_file is not None else None)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def is_host_certificate_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is our check of the host's certificate failing.

    A wrong, expired or foreign host certificate: a security event (someone may
    stand between the terminal and its host), not an ordinary outage.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        current = current.__cause__ or current.__context__
    return False


def is_handshake_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is a TLS alert refusing our certificate."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError) and not isinstance(
            current, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError
        ):
            reason = str(getattr(current, "reason", "") or current)
            if "ALERT" in reason.upper() and any(word in reason.upper() for word in _REFUSAL_WORDS):
                return True
        current = current.__cause__ or current.__context__
    return False
