"""The terminal's keystore: the data key that protects card data at rest.

The keystore holds one 256-bit *data key*.  With it the terminal

* encrypts PAN and other card data (:meth:`Keystore.encrypt`,
  :meth:`Keystore.decrypt`) with AES-256-GCM or SM4-GCM, the keystore's
  *cipher* (:data:`CIPHERS`; ``"keystore": {"cipher": "sm4-gcm"}`` in
  terminal.json), the row it belongs to bound in as associated data
  (``context``, e.g. ``b"pan:" + txn_id``) so that a ciphertext copied to
  another row does not decrypt;
* computes keyed hashes with HMAC-SHA256 (:meth:`Keystore.mac`) under keys
  derived per purpose with HKDF-SHA256: ``"pan-token"`` for PAN lookup tokens,
  ``"journal"`` for the journal's hash chain.

:class:`Keystore` is the interface; :class:`FileKeystore` is the software
implementation.  A hardware keystore (HSM, secure element) can implement the
same protocol later and replace the class without touching its callers.

Ciphertext format::

    format (1 byte) | key id (4 bytes) | nonce (12 bytes, random) | ciphertext | tag (16 bytes)

The format byte names the cipher that sealed the value: ``0x01`` AES-256-GCM
under the data key itself (every value sealed before the cipher became a
choice), ``0x02`` SM4-GCM under a 128-bit key derived from the data key
(HKDF-SM3, info ``"posterm data key sm4-gcm v1"``).  The associated data is
the 5-byte header (format and key id) followed by ``context``, so a changed
format byte does not authenticate either.  Nonces are random, so one key
should not encrypt more than about 2**32 messages (far beyond a terminal's
lifetime).

Switching the cipher is a migration in the manner of a key rotation: the
keystore decrypts both formats whatever its cipher, and encrypts with the
configured one, so the rows sealed before the switch stay readable and every
row written after it uses the new cipher; old rows leave as the retention
policy purges them (card data is dropped once authorised anyway).  Nothing is
re-encrypted in place and no key file changes: the data key, wrapped as
below, is the root of both ciphers' keys.

Files in the keystore directory (created 0700 when missing):

``master.key``
    32 random bytes as 64 hex characters (32 raw bytes are read too), mode 0600.
``data.key``
    JSON ``{"version": 1, "key_id": hex, "nonce": hex, "wrapped": hex, "kcv": hex,
    "master_kcv": hex}``: the data key wrapped with AES-256-GCM under the master
    key (associated data ``"posterm data key v1"``), mode 0600.  ``kcv`` is the
    key check value of the data key; ``master_kcv`` (optional when read) that of
    the master key that wrapped it, so that a wrong master key is told apart
    from a damaged file.

Both files are written once, atomically: a temporary file is written and
fsynced, then linked into place (which, unlike a rename, never replaces a file
another process created in the meantime) and the directory is fsynced.  Files
with permissions wider than 0600 are refused (:class:`InsecureKeyFile`).

Levels of protection, weakest first:

1. The default: ``master.key`` lies next to ``data.key``.  This keeps keys out
   of the database and its backups, but anyone who can read the directory can
   decrypt the data.
2. The deployment supplies the master key from elsewhere (a secrets manager, a
   TPM-sealed blob, a file on another volume) through the environment variable
   ``POSTERM_MASTER_KEY`` (64 hex characters).  It overrides ``master.key``,
   and no ``master.key`` is written when it is set.
3. A hardware keystore implements :class:`Keystore` and replaces
   :class:`FileKeystore`; the data key never leaves the hardware.

With ``create=True`` (the default) a missing master key or data key is
generated, but a master key is never generated while a ``data.key`` exists,
since that key could then never be unwrapped.  An installed terminal should
open its keystore with ``create=False`` so that a lost ``data.key`` is an error
rather than a fresh key.

No message, ``repr()`` or ``str()`` shows key material; key check values
(KCVs: the first 3 bytes of the key's block cipher in ECB on a zero block,
AES or SM4; of HMAC(key, "KCV") for MAC keys) are what diagnostics show, each
data key named with its cipher (``data:aes-256-gcm``, ``data:sm4-gcm``).

>>> import tempfile
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as tmp:
...     ks = FileKeystore.open(Path(tmp) / "keys")
...     blob = ks.encrypt(b"4111111111111111", b"pan:txn-1")
...     again = FileKeystore.open(Path(tmp) / "keys", create=False)
...     again.decrypt(blob, b"pan:txn-1")
b'4111111111111111'
"""

from __future__ import annotations

import errno
import hmac
import json
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256, SM3
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "CIPHERS",
    "DEFAULT_CIPHER",
    "MAC_PURPOSES",
    "MASTER_KEY_ENV",
    "CorruptCiphertext",
    "FileKeystore",
    "InsecureKeyFile",
    "KeyFileCorrupt",
    "KeyFileMissing",
    "Keystore",
    "KeystoreError",
    "UnknownCipher",
    "WrongMasterKey",
    "check_cipher",
]

MASTER_KEY_ENV: Final = "POSTERM_MASTER_KEY"
"""Environment variable that supplies the master key (64 hex characters)."""

MAC_PURPOSES: Final = frozenset({"pan-token", "journal"})
"""The purposes :meth:`Keystore.mac` accepts; each has its own derived key."""

AES_256_GCM: Final = "aes-256-gcm"
SM4_GCM: Final = "sm4-gcm"
CIPHERS: Final = (AES_256_GCM, SM4_GCM)
"""The ciphers the keystore can encrypt with (it always decrypts both)."""

DEFAULT_CIPHER: Final = AES_256_GCM

MASTER_FILE: Final = "master.key"
DATA_FILE: Final = "data.key"

_VERSION: Final = 1  # of data.key
_FORMATS: Final = {AES_256_GCM: 1, SM4_GCM: 2}  # the first byte of a ciphertext names its cipher
_CIPHER_OF: Final = {number: name for name, number in _FORMATS.items()}
_SM4_KEY_LEN: Final = 16
_SM4_KEY_INFO: Final = b"posterm data key sm4-gcm v1"
_KEY_LEN: Final = 32
_KEY_ID_LEN: Final = 4
_NONCE_LEN: Final = 12
_TAG_LEN: Final = 16
_HEADER_LEN: Final = 1 + _KEY_ID_LEN
_MIN_BLOB_LEN: Final = _HEADER_LEN + _NONCE_LEN + _TAG_LEN
_WRAP_AAD: Final = b"posterm data key v1"
_KEY_ID_INFO: Final = b"posterm key id v1"
_MAC_INFO: Final = b"posterm mac key v1:"
_MAX_KEY_FILE: Final = 4096
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class KeystoreError(Exception):
    """The keystore cannot be opened or used; the message says why, never with key material."""


class KeyFileMissing(KeystoreError):
    """A key file the keystore needs is not there."""


class WrongMasterKey(KeystoreError):
    """The data key cannot be unwrapped with the master key given."""


class KeyFileCorrupt(KeystoreError):
    """A key file (or the master key variable) does not have the expected format."""


class InsecureKeyFile(KeystoreError):
    """A key file is readable or writable by others than its owner."""


class UnknownCipher(KeystoreError, ValueError):
    """The configuration names a cipher the keystore does not have."""


def check_cipher(name: object) -> str:
    """``name`` if it is one of :data:`CIPHERS`, else :class:`UnknownCipher` naming the allowed values.

    >>> check_cipher("sm4-gcm")
    'sm4-gcm'
    """
    if isinstance(name, str) and name in CIPHERS:
        return name
    raise UnknownCipher(f"keystore cipher {name!r} is not supported: use one of {', '.join(CIPHERS)}")


class CorruptCiphertext(KeystoreError):
    """A ciphertext was tampered with, truncated, bound to another context or made under another key."""


@runtime_checkable
class Keystore(Protocol):
    """What the terminal needs from a keystore; a hardware keystore can implement it too."""

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        """Encrypt ``plaintext`` (the keystore's cipher, fresh random nonce), bound to ``context``."""
        ...

    def decrypt(self, blob: bytes, context: bytes) -> bytes:
        """Decrypt what :meth:`encrypt` made; any other input raises :class:`CorruptCiphertext`."""
        ...

    def mac(self, data: bytes, purpose: str) -> bytes:
        """HMAC-SHA256 of ``data`` (32 bytes) under the key derived for ``purpose``."""
        ...

    def key_check_values(self) -> dict[str, str]:
        """Key check values (hex) by key name, for diagnostics; never the keys."""
        ...


def _block_encrypt(cipher: str, key: bytes, block: bytes) -> bytes:
    """One 16-byte block through the cipher's block cipher (AES or SM4) in ECB: for key check values."""
    algorithm = algorithms.SM4(key) if cipher == SM4_GCM else algorithms.AES(key)
    encryptor = Cipher(algorithm, modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _aes_kcv(key: bytes) -> str:
    return _block_encrypt(AES_256_GCM, key, bytes(16))[:3].hex()


def _sm4_kcv(key: bytes) -> str:
    return _block_encrypt(SM4_GCM, key, bytes(16))[:3].hex()


def _sm4_key(data_key: bytes) -> bytes:
    return HKDF(algorithm=SM3(), length=_SM4_KEY_LEN, salt=None, info=_SM4_KEY_INFO).derive(data_key)


class _Sm4Gcm:
    """SM4-GCM with the AESGCM interface (cryptography has no SM4 AEAD class): 12-byte nonce, 16-byte tag last."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != _SM4_KEY_LEN:
            raise ValueError("an SM4 key is 16 bytes")
        self._key = key

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        encryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(associated_data)
        body = encryptor.update(data) + encryptor.finalize()
        return body + encryptor.tag

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        """The plaintext, or :class:`~cryptography.exceptions.InvalidTag`."""
        if len(data) < _TAG_LEN:
            raise InvalidTag()
        decryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce, data[-_TAG_LEN:])).decryptor()
        decryptor.authenticate_additional_data(associated_data)
        return decryptor.update(data[:-_TAG_LEN]) + decryptor.finalize()


def _hmac_kcv(key: bytes) -> str:
    return hmac.digest(key, b"KCV", "sha256")[:3].hex()


def _key_id(data_key: bytes) -> bytes:
    return hmac.digest(data_key, _KEY_ID_INFO, "sha256")[:_KEY_ID_LEN]


def _derive_mac_key(data_key: bytes, purpose: str) -> bytes:
    hkdf = HKDF(algorithm=SHA256(), length=32, salt=None, info=_MAC_INFO + purpose.encode("ascii"))
    return hkdf.derive(data_key)


def _mode_text(mode: int) -> str:
    return f"{stat.S_IMODE(mode):04o}"


def _read_key_file(path: Path) -> bytes:
    """Read a small key file after checking that it is a regular file with mode 0600 or narrower."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise KeyFileMissing(f"key file {path} is missing") from None
    except OSError as exc:
        raise KeystoreError(f"key file {path} cannot be opened: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileCorrupt(f"key file {path} is not a regular file")
        if os.name == "posix" and st.st_mode & 0o177:
            raise InsecureKeyFile(
                f"key file {path} has mode {_mode_text(st.st_mode)}, wider than 0600; fix with `chmod 600 {path}`"
            )
        if st.st_size > _MAX_KEY_FILE:
            raise KeyFileCorrupt(f"key file {path} is too large to be a key file")
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise KeystoreError(f"key file {path} cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)


def _exists(path: Path) -> bool:
    try:
        os.stat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise KeystoreError(f"{path} cannot be examined: {exc.strerror}") from None
    return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_file(path: Path, content: bytes) -> bool:
    """Write ``path`` atomically with mode 0600 unless it exists; True if this call created it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), 0o600)  # exactly 0600, whatever the umask
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # atomic create-if-absent; never replaces another process's file
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            if path.exists():  # file system without hard links: rename, after a last look
                return False
            os.replace(tmp, path)
        _fsync_dir(path.parent)
        return True
    except OSError as exc:
        raise KeystoreError(f"key file {path} cannot be written: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _parse_master(content: bytes, where: str, *, allow_raw: bool) -> bytes:
    if allow_raw and len(content) == _KEY_LEN:
        return content
    try:
        text = content.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    if not _HEX64.fullmatch(text):
        expected = "32 raw bytes or 64 hex characters" if allow_raw else "64 hex characters"
        raise KeyFileCorrupt(f"{where} does not hold a master key ({expected})")
    return bytes.fromhex(text)


def _hex_field(doc: dict[str, Any], name: str, length: int | None, path: Path) -> bytes:
    value = doc.get(name)
    if not isinstance(value, str):
        raise KeyFileCorrupt(f"key file {path}: field {name!r} is missing or not a string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise KeyFileCorrupt(f"key file {path}: field {name!r} is not hex") from None
    if length is not None and len(raw) != length:
        raise KeyFileCorrupt(f"key file {path}: field {name!r} must be {length} bytes, not {len(raw)}")
    return raw


class FileKeystore:
    """A software keystore kept in a directory; see the module documentation for the files.

    Build it with :meth:`open`.  The master key is used to unwrap the data key
    and then dropped; only the data key and the keys derived from it stay in
    memory.
    """

    __slots__ = ("_aeads", "_cipher", "_directory", "_kcvs", "_key_id", "_mac_keys")

    def __init__(self, directory: Path, data_key: bytes, master_kcv: str, cipher: str = DEFAULT_CIPHER) -> None:
        """Use :meth:`open`; this constructor takes an already unwrapped data key."""
        if len(data_key) != _KEY_LEN:
            raise ValueError("the data key must be 32 bytes")
        self._cipher = check_cipher(cipher)
        self._directory = directory
        sm4_key = _sm4_key(data_key)
        self._aeads: dict[str, AESGCM | _Sm4Gcm] = {AES_256_GCM: AESGCM(data_key), SM4_GCM: _Sm4Gcm(sm4_key)}
        self._key_id = _key_id(data_key)
        self._mac_keys = {purpose: _derive_mac_key(data_key, purpose) for purpose in sorted(MAC_PURPOSES)}
        self._kcvs = {
            "master": master_kcv,
            f"data:{AES_256_GCM}": _aes_kcv(data_key),
            f"data:{SM4_GCM}": _sm4_kcv(sm4_key),
        }
        for purpose, key in self._mac_keys.items():
            self._kcvs[f"mac:{purpose}"] = _hmac_kcv(key)

    @classmethod
    def open(cls, directory: Path, *, create: bool = True, cipher: str = DEFAULT_CIPHER) -> FileKeystore:
        """Open the keystore in ``directory``, creating the directory and keys if ``create``.

        ``cipher`` (one of :data:`CIPHERS`) is what :meth:`encrypt` uses; both
        are decrypted whatever it is.  Raises :class:`UnknownCipher`,
        :class:`KeyFileMissing`, :class:`WrongMasterKey`, :class:`KeyFileCorrupt`,
        :class:`InsecureKeyFile` or :class:`KeystoreError`, each with a one-line message.
        """
        cipher = check_cipher(cipher)
        directory = Path(directory)
        master_path = directory / MASTER_FILE
        data_path = directory / DATA_FILE
        if not _exists(directory):
            if not create:
                raise KeyFileMissing(f"keystore directory {directory} does not exist")
            try:
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(directory, 0o700)
            except OSError as exc:
                raise KeystoreError(f"keystore directory {directory} cannot be created: {exc.strerror}") from None
        elif not directory.is_dir():
            raise KeystoreError(f"keystore directory {directory} is not a directory")

        master, master_source = cls._load_master(master_path, data_path, create)
        master_kcv = _aes_kcv(master)
        if not _exists(data_path):
            if not create:
                raise KeyFileMissing(f"key file {data_path} is missing")
            data_key = secrets.token_bytes(_KEY_LEN)
            if _create_file(data_path, cls._wrap(master, master_kcv, data_key)):
                return cls(directory, data_key, master_kcv, cipher)
        data_key = cls._unwrap(data_path, master, master_kcv, master_source)
        return cls(directory, data_key, master_kcv, cipher)

    @staticmethod
    def _load_master(master_path: Path, data_path: Path, create: bool) -> tuple[bytes, str]:
        env = os.environ.get(MASTER_KEY_ENV)
        if env is not None:
            source = f"environment variable {MASTER_KEY_ENV}"
            return _parse_master(env.encode("utf-8", "replace"), source, allow_raw=False), source
        if not _exists(master_path):
            if _exists(data_path):
                raise KeyFileMissing(
                    f"master key file {master_path} is missing but {data_path} exists; "
                    f"restore {MASTER_FILE} or set {MASTER_KEY_ENV}"
                )
            if not create:
                raise KeyFileMissing(f"master key file {master_path} is missing")
            master = secrets.token_bytes(_KEY_LEN)
            if _create_file(master_path, master.hex().encode("ascii") + b"\n"):
                return master, f"key file {master_path}"
        content = _read_key_file(master_path)
        source = f"key file {master_path}"
        return _parse_master(content, source, allow_raw=True), source

    @staticmethod
    def _wrap(master: bytes, master_kcv: str, data_key: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_LEN)
        doc = {
            "version": _VERSION,
            "key_id": _key_id(data_key).hex(),
            "nonce": nonce.hex(),
            "wrapped": AESGCM(master).encrypt(nonce, data_key, _WRAP_AAD).hex(),
            "kcv": _aes_kcv(data_key),
            "master_kcv": master_kcv,
        }
        return json.dumps(doc, indent=2).encode("ascii") + b"\n"

    @staticmethod
    def _unwrap(path: Path, master: bytes, master_kcv: str, master_source: str) -> bytes:
        content = _read_key_file(path)
        try:
            doc = json.loads(content.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise KeyFileCorrupt(f"key file {path} is not valid JSON") from None
        if not isinstance(doc, dict):
            raise KeyFileCorrupt(f"key file {path} does not hold a JSON object")
        if doc.get("version") != _VERSION:
            raise KeyFileCorrupt(f"key file {path} has unsupported version {doc.get('version')!r}")
        key_id = _hex_field(doc, "key_id", _KEY_ID_LEN, path)
        nonce = _hex_field(doc, "nonce", _NONCE_LEN, path)
        wrapped = _hex_field(doc, "wrapped", _KEY_LEN + _TAG_LEN, path)
        kcv = _hex_field(doc, "kcv", 3, path).hex()
        stored_master_kcv = _hex_field(doc, "master_kcv", 3, path).hex() if "master_kcv" in doc else None
        try:
            data_key = AESGCM(master).decrypt(nonce, wrapped, _WRAP_AAD)
        except InvalidTag:
            if stored_master_kcv is not None and stored_master_kcv == master_kcv:
                raise KeyFileCorrupt(
                    f"key file {path} is damaged: the master key matches (KCV {master_kcv}) "
                    "but the wrapped data key does not authenticate"
                ) from None
            expected = f", {path.name} expects KCV {stored_master_kcv}" if stored_master_kcv else ""
            raise WrongMasterKey(
                f"key file {path} cannot be unwrapped with the master key from {master_source} "
                f"(KCV {master_kcv}{expected})"
            ) from None
        if _aes_kcv(data_key) != kcv:
            raise KeyFileCorrupt(f"key file {path}: field 'kcv' does not match the data key")
        if _key_id(data_key) != key_id:
            raise KeyFileCorrupt(f"key file {path}: field 'key_id' does not match the data key")
        return data_key

    @property
    def directory(self) -> Path:
        """The directory the keys are kept in."""
        return self._directory

    @property
    def key_id(self) -> str:
        """The data key's id (8 hex digits), also found in each ciphertext's header."""
        return self._key_id.hex()

    @property
    def cipher(self) -> str:
        """The cipher :meth:`encrypt` uses (one of :data:`CIPHERS`)."""
        return self._cipher

    def use_cipher(self, cipher: str) -> None:
        """Encrypt with ``cipher`` from now on (a configuration put in force in a running terminal)."""
        self._cipher = check_cipher(cipher)

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        """Encrypt ``plaintext`` with the keystore's cipher, bound to ``context``.

        The result is format (the cipher) | key id | nonce | ciphertext+tag.
        """
        header = bytes([_FORMATS[self._cipher]]) + self._key_id
        nonce = secrets.token_bytes(_NONCE_LEN)
        return header + nonce + self._aeads[self._cipher].encrypt(nonce, bytes(plaintext), header + bytes(context))

    @staticmethod
    def cipher_of(blob: bytes) -> str | None:
        """The cipher that sealed ``blob`` (from its first byte), None for a format this keystore does not know."""
        return _CIPHER_OF.get(blob[0]) if blob else None

    def decrypt(self, blob: bytes, context: bytes) -> bytes:
        """Decrypt a blob from :meth:`encrypt` with the same ``context``, whichever cipher sealed it.

        Raises :class:`CorruptCiphertext` for anything else: tampering,
        truncation, another context, an unknown format or key id.
        """
        blob = bytes(blob)
        if len(blob) < _MIN_BLOB_LEN:
            raise CorruptCiphertext(f"ciphertext too short ({len(blob)} bytes, at least {_MIN_BLOB_LEN})")
        cipher = _CIPHER_OF.get(blob[0])
        if cipher is None:
            known = ", ".join(f"{number} {name}" for number, name in sorted(_CIPHER_OF.items()))
            raise CorruptCiphertext(f"ciphertext has unsupported format {blob[0]} (known: {known})")
        header = blob[:_HEADER_LEN]
        if header[1:] != self._key_id:
            raise CorruptCiphertext(
                f"ciphertext was made under key id {header[1:].hex()}, this keystore holds {self.key_id}"
            )
        nonce = blob[_HEADER_LEN : _HEADER_LEN + _NONCE_LEN]
        try:
            return self._aeads[cipher].decrypt(nonce, blob[_HEADER_LEN + _NONCE_LEN :], header + bytes(context))
        except InvalidTag:
            raise CorruptCiphertext(
                f"ciphertext ({cipher}) does not authenticate (tampered, truncated or another context)"
            ) from None

    def mac(self, data: bytes, purpose: str) -> bytes:
        """HMAC-SHA256 of ``data`` under the key derived for ``purpose`` (one of :data:`MAC_PURPOSES`).

        An unknown purpose is a programming error and raises ``ValueError``.
        """
        key = self._mac_keys.get(purpose)
        if key is None:
            raise ValueError(f"unknown MAC purpose {purpose!r}; expected one of {sorted(MAC_PURPOSES)}")
        return hmac.digest(key, data, "sha256")

    def key_check_values(self) -> dict[str, str]:
        """KCVs (6 hex digits) of the master key, each cipher's data key and each MAC key.

        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     sorted(FileKeystore.open(Path(tmp)).key_check_values())
        ['data:aes-256-gcm', 'data:sm4-gcm', 'mac:journal', 'mac:pan-token', 'master']
        """
        return dict(self._kcvs)

    def __repr__(self) -> str:
        return f"FileKeystore(directory={str(self._directory)!r}, key_id={self.key_id!r}, cipher={self._cipher!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a keystore holds key material and cannot be pickled")
