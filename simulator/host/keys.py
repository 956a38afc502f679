"""The host's key store: its symmetric secrets, kept as files beside the CA key, never in the database.

The host holds two secrets of its own (TEST HOST — but kept as a real one would be):

- ``digest``: the HMAC key of the body digests of the idempotency cache and of
  the approval codes (:meth:`simulator.host.store.HostStore.digest`); before
  issue 11 it lived in clear in ``meta.digest_secret`` of ``host.db``, from
  where :class:`~simulator.host.store.HostStore` moves it here once;
- ``card-token``: the HMAC key under which the host derives its own card token
  from the PAN it receives (:func:`card_token`), the same whichever terminal
  sent the card.

And the DUKPT base derivation keys of the PIN pads whose PIN blocks it
deciphers (:meth:`HostKeys.pin_bdk`): ``pin-bdk-aes`` (AES DUKPT, PIN block
format 4) and ``pin-bdk-tdes`` (TDES DUKPT, format 0). These are not random:
a host is provisioned with the BDK its PIN pads were loaded from, and the
simulated host with the simulator's test BDKs (:mod:`simulator.pin_keys`,
SIMULATOR ONLY). Their check values (:func:`key_check_value_aes`,
:func:`key_check_value_tdes`, the usual KCVs) are shown by ``posterm host status``.

Layout: ``<data dir>/keys/<name>.key`` (32 random bytes in hex), the folder
0700 and each file 0600, as the CA key (``tls/ca/key.pem``) is kept. A secret
is made on first use: written to a temporary file (0600 from its first byte,
fsynced), then hard-linked to its name, which fails when another process made
it first; then everyone reads the one on disk. So two processes starting at
once end with one secret. Back ``keys/`` up with ``host.db``: without the
``card-token`` secret, blocked cards and velocity counts no longer match the
cards they were set for.

A host without a data directory (the in-process host in memory) keeps its
secrets in memory (:meth:`HostKeys.in_memory`).

Whatever the store. A PostgreSQL store (a fleet of host workers) keeps its
secrets here too, in ``keys/`` of the host's data directory, never in the
database: every worker and every ``posterm host`` command of one host uses
the same data directory (the CA's key is there as well), so they all read
the same files; hosts on several machines need the same ``keys/`` (and
``tls/ca/``) on each. The store keeps a check value of each secret and
refuses a key store that does not match
(:class:`~simulator.host.store.HostStore`), so that a worker started with
another data directory cannot decide with other secrets.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from simulator.host.files import private_dir
from simulator.pin_keys import SIM_AES_BDK, SIM_AES_BDK_ID, SIM_TDES_BDK, SIM_TDES_KEY_SET_ID
from terminal.files import atomic_write, fsync_dir

__all__ = [
    "CARD_TOKEN",
    "CARD_TOKEN_HEX_DIGITS",
    "DIGEST",
    "KEYS_DIR",
    "PIN_BDKS",
    "HostKeys",
    "KeyStoreError",
    "PinBdk",
    "card_token",
    "key_check_value_aes",
    "key_check_value_tdes",
]

KEYS_DIR: Final = "keys"
DIGEST: Final = "digest"
CARD_TOKEN: Final = "card-token"
_NAME: Final = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_SECRET_BYTES: Final = 32
#: Hex digits of a host card token (128 bits), as of the terminal's token: an operator handles both alike.
CARD_TOKEN_HEX_DIGITS: Final = 32


@dataclass(frozen=True)
class PinBdk:
    """A DUKPT BDK the host holds: its key name, algorithm, the KSN prefix that names it, its provisioned value."""

    name: str
    algorithm: str  # "AES-128" (AES DUKPT) | "TDES" (TDES DUKPT)
    ksn_prefix: bytes  # AES: the BDK id (4 bytes of the initial key id); TDES: the key set id (5 bytes)
    provisioned: bytes  # the simulator's test BDK (simulator only)


#: The PIN pads' BDKs the simulated host holds (the simulator's test keys).
PIN_BDKS: Final = (
    PinBdk("pin-bdk-aes", "AES-128", SIM_AES_BDK_ID, SIM_AES_BDK),
    PinBdk("pin-bdk-tdes", "TDES", SIM_TDES_KEY_SET_ID, SIM_TDES_BDK),
)


def key_check_value_aes(key: bytes) -> str:
    """The KCV of an AES key: AES-CMAC of 16 zero bytes, its first 5 bytes in hex (ANSI X9.24-1-2017)."""
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(bytes(16))
    return mac.finalize()[:5].hex().upper()


def key_check_value_tdes(key: bytes) -> str:
    """The KCV of a TDES key: 8 zero bytes enciphered, the first 3 bytes in hex."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*TripleDES.*")
        encryptor = Cipher(TripleDES(key), modes.ECB()).encryptor()
        return (encryptor.update(bytes(8)) + encryptor.finalize())[:3].hex().upper()


class KeyStoreError(Exception):
    """A key file that cannot be read or is damaged (the message names the file, never the key)."""


def card_token(secret: bytes, pan: str) -> str:
    """The host's token of a card: HMAC-SHA-256 of the PAN under the host's secret, 32 hex digits."""
    return hmac.new(secret, b"pan:" + pan.encode("ascii"), hashlib.sha256).hexdigest()[:CARD_TOKEN_HEX_DIGITS]


class HostKeys:
    """The host's named secrets: in ``directory`` (made 0700 on first use), or in memory."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = None if directory is None else Path(directory)
        self._cache: dict[str, bytes] = {}

    @classmethod
    def in_memory(cls) -> HostKeys:
        return cls(None)

    @classmethod
    def beside(cls, database: Path) -> HostKeys:
        """The key store of the host whose database is ``database`` (``:memory:``: in memory)."""
        if str(database) == ":memory:":
            return cls.in_memory()
        return cls(Path(database).parent / KEYS_DIR)

    def _path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a key name: {name!r}")
        assert self.directory is not None
        return self.directory / f"{name}.key"

    def _read(self, path: Path) -> bytes:
        try:
            text = path.read_text(encoding="ascii").strip()
            value = bytes.fromhex(text)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise KeyStoreError(f"key file {path} cannot be read ({type(exc).__name__})") from None
        if len(value) < 16:
            raise KeyStoreError(f"key file {path} is damaged (too short)")
        return value

    def has(self, name: str) -> bool:
        if name in self._cache:
            return True
        return self.directory is not None and self._path(name).is_file()

    def secret(self, name: str) -> bytes:
        """The secret ``name``, made (32 random bytes) if there is none yet."""
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        if self.directory is None:
            value = self._cache.setdefault(name, secrets.token_bytes(_SECRET_BYTES))
            return value
        path = self._path(name)
        if not path.is_file():
            self._create(path, secrets.token_bytes(_SECRET_BYTES))
        value = self._read(path)
        self._cache[name] = value
        return value

    def pin_bdk(self, bdk: PinBdk) -> bytes:
        """A PIN pads' BDK, provisioned (with the simulator's test BDK) on first use."""
        if not self.has(bdk.name):
            self.adopt(bdk.name, bdk.provisioned)
        return self.secret(bdk.name)

    def pin_bdk_for(self, ksn: bytes) -> tuple[PinBdk, bytes] | None:
        """The BDK a KSN names (by its prefix and length), and its value; None when the host holds none."""
        for bdk in PIN_BDKS:
            if len(ksn) == (12 if bdk.algorithm == "AES-128" else 10) and ksn.startswith(bdk.ksn_prefix):
                return bdk, self.pin_bdk(bdk)
        return None

    def pin_key_checks(self) -> list[dict[str, str]]:
        """Each PIN BDK: name, algorithm, the KSN prefix that names it, its check value (never the key)."""
        out = []
        for bdk in PIN_BDKS:
            value = self.pin_bdk(bdk)
            kcv = key_check_value_aes(value) if bdk.algorithm == "AES-128" else key_check_value_tdes(value)
            out.append({"name": bdk.name, "algorithm": bdk.algorithm, "ksn_prefix": bdk.ksn_prefix.hex().upper(),
                        "kcv": kcv})  # fmt: skip
        return out

    def adopt(self, name: str, value: bytes) -> None:
        """Keep ``value`` as the secret ``name``, replacing any (moving a secret here from elsewhere)."""
        if self.directory is None:
            self._cache[name] = value
            return
        private_dir(self.directory)
        atomic_write(self._path(name), value.hex().encode("ascii") + b"\n", 0o600)
        self._cache[name] = value

    def _create(self, path: Path, value: bytes) -> None:
        """Write ``path`` unless another process wrote it first (then its value stands)."""
        assert self.directory is not None
        private_dir(self.directory)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(value.hex().encode("ascii") + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
            fsync_dir(self.directory)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
