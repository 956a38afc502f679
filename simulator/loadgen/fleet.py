"""A fleet of terminals enrolled with the host in bulk: ids, keys, certificates, TLS contexts.

Each simulated terminal gets what a real one gets at enrolment: its own EC
P-256 key, a CSR, a client certificate from the host's CA with its terminal
id and merchant id, and the host CA as its only trust root. The certificates
come from :func:`simulator.host.admin.enrol_terminals` (the operator's bulk
enrolment: one database transaction for the whole fleet) rather than a
thousand ``POST /v1/enrol`` round trips; :attr:`Fleet.enrol_seconds` says what
it took.

The keys live in memory and, for as long as the TLS contexts are being made,
in files of a private folder (``ssl`` loads a certificate chain from files
only); the folder is removed once the contexts hold them.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["Fleet", "TerminalIdentity", "enrol_fleet", "source_addresses", "terminal_ids"]


@dataclass(frozen=True)
class TerminalIdentity:
    """One enrolled terminal: ids, its TLS context (its certificate and the host CA) and its client address."""

    terminal_id: str
    merchant_id: str
    context: ssl.SSLContext
    source: str | None


@dataclass(frozen=True)
class Fleet:
    terminals: tuple[TerminalIdentity, ...]
    keys_seconds: float  # keys and CSRs made
    enrol_seconds: float  # the host's CA signed and recorded them
    contexts_seconds: float  # TLS contexts loaded


def terminal_ids(count: int, prefix: str, per_merchant: int = 10) -> list[tuple[str, str]]:
    """(terminal id, merchant id) of ``count`` terminals ``<prefix><number>`` (8 characters), ``per_merchant`` each.

    >>> terminal_ids(3, "LA", per_merchant=2)
    [('LA000000', 'LOADLA0000'), ('LA000001', 'LOADLA0000'), ('LA000002', 'LOADLA0001')]
    """
    digits = 8 - len(prefix)
    if digits < 1 or count > 10**digits:
        raise ValueError(f"{count} terminals do not fit 8-character ids after the prefix {prefix!r}")
    return [(f"{prefix}{i:0{digits}d}", f"LOAD{prefix}{i // per_merchant:04d}") for i in range(count)]


def source_addresses(host: str, count: int) -> list[str | None]:
    """``count`` loopback client addresses (127.0.0.1, 127.0.0.2, ...) when ``host`` is an IPv4 loopback address.

    Every 127.x.y.z address is the machine itself on Linux, so a fleet on one
    machine can come from as many addresses as it has terminals, as a real
    fleet does; a host elsewhere (or ``count`` 0) gets the system's choice.

    >>> source_addresses("127.0.0.1", 2)
    ['127.0.0.1', '127.0.0.2']
    >>> source_addresses("::1", 2)
    [None]
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return [None]
    if count < 1 or not (isinstance(address, ipaddress.IPv4Address) and address.is_loopback):
        return [None]
    first = ipaddress.IPv4Address("127.0.0.1")
    return [str(first + i) for i in range(min(count, 2**24 - 2))]


def _key_and_csr(terminal_id: str) -> tuple[bytes, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, terminal_id)]))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem, csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def client_context(ca_pem: str, chain_file: Path) -> ssl.SSLContext:
    """The terminal's context as :func:`host_link.tls.client_context` makes it: TLS 1.3, the host CA only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cadata=ca_pem)
    context.load_cert_chain(certfile=str(chain_file))
    return context


def enrol_fleet(
    data_dir: Path,
    ids: Sequence[tuple[str, str]],
    *,
    sources: Sequence[str | None] = (None,),
    scratch: Path | None = None,
    store: str | None = None,
) -> Fleet:
    """Enrol ``ids`` with the host of ``data_dir`` (its database ``store``) and make each terminal's TLS context."""
    from simulator.host.admin import enrol_terminals
    from simulator.host.ca import load_or_create_ca

    started = time.perf_counter()
    made = [_key_and_csr(terminal_id) for terminal_id, _ in ids]
    keyed = time.perf_counter()
    requests = [(t, m, csr) for (t, m), (_, csr) in zip(ids, made, strict=True)]
    certificates = enrol_terminals(data_dir, requests, store=store)
    enrolled = time.perf_counter()
    ca_pem = load_or_create_ca(Path(data_dir) / "tls").certificate_pem.decode("ascii")
    folder = Path(tempfile.mkdtemp(prefix="loadgen-keys-", dir=scratch))  # 0700
    terminals: list[TerminalIdentity] = []
    try:
        for i, ((terminal_id, merchant_id), (key_pem, _), certificate) in enumerate(
            zip(ids, made, certificates, strict=True)
        ):
            chain = folder / f"{terminal_id}.pem"
            fd = os.open(chain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(certificate.encode("ascii") + key_pem)
            context = client_context(ca_pem, chain)
            terminals.append(TerminalIdentity(terminal_id, merchant_id, context, sources[i % len(sources)]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    done = time.perf_counter()
    return Fleet(tuple(terminals), keyed - started, enrolled - keyed, done - enrolled)
