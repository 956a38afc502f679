"""The simulator-only test PKI: CA, issuer and ICC keys, certificates, SSAD and SDAD.

SIMULATOR TEST KEYS — NOT FOR PRODUCTION.  The keys are generated once with
``python -m simulator.pki generate`` and shipped in ``simulator/data/pki/`` so
that tests never wait for RSA key generation; ``simulator/data/capks.json``
holds the matching CA public keys in the format of the published CAPK list.

Layouts follow EMV Book 2 (see ``/work/shared/EMV-NOTES.md`` and
``docs/internals.md``).  Every builder takes ``tamper=`` to make exactly one
check fail while the RSA signature stays valid (the recovered block is what the
tamper says, and everything else, the hash included, is consistent with it).
Signing is raw RSA: ``pow(m, d, n)``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "CA_INDEX_REVOKED",
    "CA_INDEX_VALID",
    "ICC_TAMPERS",
    "ISSUER_TAMPERS",
    "SIGNATURE_TAMPERS",
    "PkiError",
    "RsaPrivateKey",
    "RsaPublicKey",
    "SimulatorPki",
    "add_missing",
    "capk_checksum",
    "generate",
    "icc_certificate",
    "issuer_certificate",
    "load_pki",
    "main",
    "pad_pan",
    "sdad",
    "ssad",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
PKI_DIR = DATA_DIR / "pki"
KEYS_FILE = PKI_DIR / "SIMULATOR-TEST-KEYS-NOT-FOR-PRODUCTION.json"
CAPKS_FILE = DATA_DIR / "capks.json"
WARNING = "SIMULATOR TEST KEYS — NOT FOR PRODUCTION. Generated for posterm's card simulator only."

CA_INDEX_VALID = 0x50
CA_INDEX_REVOKED = 0x51
CAPK_EXPIRY = "2035-12-31"

ISSUER_TAMPERS = frozenset({"header", "format", "trailer", "hash", "issuer_id", "expired", "length"})
ICC_TAMPERS = frozenset({"header", "format", "trailer", "hash", "pan", "expired"})
SIGNATURE_TAMPERS = frozenset({"header", "format", "trailer", "hash"})

#: Expiry used by the "expired" tamper: December 2020, long past.
_EXPIRED_MMYY = "1220"

# What `generate` makes.  (rid, index) -> bits for the CAs; name -> (bits, exponent,
# ca rid, ca index) for issuers; name -> (bits, exponent, issuer) for ICC keys.
_CA_SPECS: tuple[tuple[str, int, str], ...] = (
    ("A000000003", CA_INDEX_VALID, "posterm simulator Visa-style CA"),
    ("A000000004", CA_INDEX_VALID, "posterm simulator Mastercard-style CA"),
    ("A000000003", CA_INDEX_REVOKED, "posterm simulator revoked CA"),
    ("A000000333", CA_INDEX_VALID, "posterm simulator UnionPay-style CA"),
)
_ISSUER_SPECS: tuple[tuple[str, int, str, int], ...] = (
    ("visa-issuer", 3, "A000000003", CA_INDEX_VALID),
    ("mc-issuer", 65537, "A000000004", CA_INDEX_VALID),
    ("visa-revoked-issuer", 3, "A000000003", CA_INDEX_REVOKED),
    ("unionpay-issuer", 3, "A000000333", CA_INDEX_VALID),
)
_ICC_SPECS: tuple[tuple[str, int, str], ...] = (
    ("visa-qvsdc-offline", 3, "visa-issuer"),
    ("visa-expired", 3, "visa-issuer"),
    ("visa-bad-issuer-cert", 3, "visa-issuer"),
    ("visa-bad-sdad", 3, "visa-issuer"),
    ("visa-revoked-ca", 3, "visa-revoked-issuer"),
    ("visa-exception-pan", 3, "visa-issuer"),
    ("mc-cda-online", 65537, "mc-issuer"),
    ("mc-cda-offline", 65537, "mc-issuer"),
    ("mc-bad-cda", 65537, "mc-issuer"),
    ("unionpay-fdda", 3, "unionpay-issuer"),
)
CA_BITS = 1408
ISSUER_BITS = 1152
ICC_BITS = 1024


class PkiError(Exception):
    """The shipped key files are missing or malformed, or a builder got bad input."""


def _int_bytes(value: int, length: int | None = None) -> bytes:
    if length is None:
        length = max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(length, "big")


@dataclass(frozen=True)
class RsaPublicKey:
    """An RSA public key (modulus ``n``, exponent ``e``)."""

    n: int
    e: int

    @property
    def size(self) -> int:
        """Modulus length in bytes (N_CA, N_I or N_IC in Book 2)."""
        return (self.n.bit_length() + 7) // 8

    @property
    def modulus(self) -> bytes:
        return _int_bytes(self.n, self.size)

    @property
    def exponent(self) -> bytes:
        """The exponent as EMV carries it: ``03`` or ``010001``."""
        return _int_bytes(self.e)

    def recover(self, signature: bytes) -> bytes:
        """Raw RSA public operation (for tests and the simulated host)."""
        return _int_bytes(pow(int.from_bytes(signature, "big"), self.e, self.n), self.size)


@dataclass(frozen=True)
class RsaPrivateKey(RsaPublicKey):
    """An RSA key pair; ``d`` is the private exponent."""

    d: int = 0
    name: str = ""

    @property
    def public(self) -> RsaPublicKey:
        return RsaPublicKey(self.n, self.e)

    def sign_raw(self, block: bytes) -> bytes:
        """Raw RSA private operation ``pow(m, d, n)`` on a block of modulus length."""
        if len(block) != self.size:
            raise PkiError(f"block of {len(block)} bytes for a {self.size}-byte key {self.name!r}")
        m = int.from_bytes(block, "big")
        if m >= self.n:
            raise PkiError("block is not smaller than the modulus")
        return _int_bytes(pow(m, self.d, self.n), self.size)


@dataclass(frozen=True)
class IssuerInfo:
    """An issuer key and the CA key (by RID and index) that certifies it."""

    key: RsaPrivateKey
    ca_rid: str
    ca_index: int


@dataclass(frozen=True)
class SimulatorPki:
    """All simulator test keys.  Use :func:`load_pki` to get the shipped ones."""

    cas: Mapping[tuple[str, int], RsaPrivateKey]
    issuers: Mapping[str, IssuerInfo]
    iccs: Mapping[str, RsaPrivateKey]
    icc_issuer: Mapping[str, str]

    def ca(self, rid: str, index: int) -> RsaPrivateKey:
        try:
            return self.cas[(rid.upper(), index)]
        except KeyError:
            raise PkiError(f"no simulator CA key {rid}/{index:02X}") from None

    def issuer(self, name: str) -> RsaPrivateKey:
        return self._issuer_info(name).key

    def issuer_ca(self, name: str) -> RsaPrivateKey:
        """The CA key that certifies issuer ``name``."""
        info = self._issuer_info(name)
        return self.ca(info.ca_rid, info.ca_index)

    def issuer_ca_index(self, name: str) -> int:
        return self._issuer_info(name).ca_index

    def icc(self, name: str) -> RsaPrivateKey:
        try:
            return self.iccs[name]
        except KeyError:
            raise PkiError(f"no simulator ICC key {name!r}; known: {sorted(self.iccs)}") from None

    def _issuer_info(self, name: str) -> IssuerInfo:
        try:
            return self.issuers[name]
        except KeyError:
            raise PkiError(f"no simulator issuer key {name!r}; known: {sorted(self.issuers)}") from None


# ---------------------------------------------------------------- loading


def _key_from_json(entry: Mapping[str, Any], name: str) -> RsaPrivateKey:
    try:
        return RsaPrivateKey(int(entry["n"], 16), int(entry["e"], 16), int(entry["d"], 16), name)
    except (KeyError, TypeError, ValueError) as exc:
        raise PkiError(f"bad key entry {name!r} in {KEYS_FILE.name}: {exc}") from exc


def _pki_from_json(raw: Mapping[str, Any]) -> SimulatorPki:
    try:
        cas = {
            (c["rid"].upper(), int(c["index"], 16)): _key_from_json(c, f"ca-{c['rid']}-{c['index']}")
            for c in raw["ca"]
        }
        issuers = {
            i["name"]: IssuerInfo(_key_from_json(i, i["name"]), i["ca_rid"].upper(), int(i["ca_index"], 16))
            for i in raw["issuers"]
        }
        iccs = {k["name"]: _key_from_json(k, k["name"]) for k in raw["icc"]}
        icc_issuer = {k["name"]: str(k["issuer"]) for k in raw["icc"]}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PkiError(f"malformed {KEYS_FILE.name}: {exc!r}") from exc
    return SimulatorPki(cas, issuers, iccs, icc_issuer)


def load_pki(path: Path | None = None) -> SimulatorPki:
    """Load the shipped simulator test keys (read once, then cached)."""
    return _load_cached(str(path or KEYS_FILE))


@lru_cache(maxsize=4)
def _load_cached(path: str) -> SimulatorPki:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PkiError(f"{path} missing: run `python -m simulator.pki generate`") from None
    except json.JSONDecodeError as exc:
        raise PkiError(f"{path} is not valid JSON: {exc}") from exc
    return _pki_from_json(raw)


# ---------------------------------------------------------------- builders


def pad_pan(pan: str, length: int) -> bytes:
    """PAN digits as BCD, right-padded with F to ``length`` bytes (cn)."""
    digits = pan + "F" * (2 * length - len(pan))
    if len(digits) != 2 * length:
        raise PkiError(f"PAN {pan!r} longer than {length} bytes")
    return bytes.fromhex(digits)


def _mmyy(value: str) -> bytes:
    if len(value) != 4 or not value.isdigit():
        raise PkiError(f"expiry must be MMYY digits, got {value!r}")
    return bytes.fromhex(value)


def _check_tamper(tamper: str | None, allowed: frozenset[str]) -> None:
    if tamper is not None and tamper not in allowed:
        raise PkiError(f"unknown tamper {tamper!r}; choose from {sorted(allowed)}")


def _finish(key: RsaPrivateKey, header: int, body: bytes, digest: bytes, tamper: str | None) -> bytes:
    """Assemble header | body | hash | trailer, apply the layout tampers and sign."""
    if tamper == "hash":
        digest = bytes([digest[0] ^ 0xFF]) + digest[1:]
    trailer = 0xBD if tamper == "trailer" else 0xBC
    head = 0x6B if tamper == "header" else header
    return key.sign_raw(bytes([head]) + body + digest + bytes([trailer]))


def _split_key(pub: RsaPublicKey, room: int) -> tuple[bytes, bytes]:
    """The leftmost ``room`` bytes of the modulus (BB-padded) and the remainder."""
    modulus = pub.modulus
    if len(modulus) <= room:
        return modulus + b"\xbb" * (room - len(modulus)), b""
    return modulus[:room], modulus[room:]


def issuer_certificate(
    ca: RsaPrivateKey,
    issuer_pub: RsaPublicKey,
    issuer_id: str,
    expiry_mmyy: str,
    serial: bytes,
    tamper: str | None = None,
) -> tuple[bytes, bytes, bytes]:
    """Issuer public key certificate: returns (90 certificate, 92 remainder, 9F32 exponent).

    ``issuer_id`` is the leftmost 3-8 PAN digits; it is padded with F to 4 bytes.
    The remainder is ``b""`` when the whole modulus fits in the certificate.
    """
    _check_tamper(tamper, ISSUER_TAMPERS)
    if len(serial) != 3:
        raise PkiError("certificate serial number must be 3 bytes")
    if tamper == "issuer_id":
        issuer_id = ("9" if issuer_id[:1] != "9" else "8") + issuer_id[1:]
    if tamper == "expired":
        expiry_mmyy = _EXPIRED_MMYY
    room = ca.size - 36
    part, remainder = _split_key(issuer_pub, room)
    exponent = issuer_pub.exponent
    fmt = 0x03 if tamper == "format" else 0x02
    body = (
        bytes([fmt])
        + pad_pan(issuer_id, 4)
        + _mmyy(expiry_mmyy)
        + serial
        + bytes([0x01, 0x01, issuer_pub.size, len(exponent)])
        + part
    )
    digest = hashlib.sha1(body + remainder + exponent).digest()
    certificate = _finish(ca, 0x6A, body, digest, tamper)
    if tamper == "length":
        # A leading zero byte keeps the integer (so the signature still recovers)
        # but makes the certificate one byte longer than the CA modulus.
        certificate = b"\x00" + certificate
    return certificate, remainder, exponent


def icc_certificate(
    issuer: RsaPrivateKey,
    icc_pub: RsaPublicKey,
    pan: str,
    expiry_mmyy: str,
    serial: bytes,
    static_data: bytes,
    tamper: str | None = None,
) -> tuple[bytes, bytes, bytes]:
    """ICC public key certificate: returns (9F46 certificate, 9F48 remainder, 9F47 exponent)."""
    _check_tamper(tamper, ICC_TAMPERS)
    if len(serial) != 3:
        raise PkiError("certificate serial number must be 3 bytes")
    if tamper == "pan":
        pan = pan[:-1] + str((int(pan[-1]) + 1) % 10)
    if tamper == "expired":
        expiry_mmyy = _EXPIRED_MMYY
    room = issuer.size - 42
    part, remainder = _split_key(icc_pub, room)
    exponent = icc_pub.exponent
    fmt = 0x05 if tamper == "format" else 0x04
    body = (
        bytes([fmt])
        + pad_pan(pan, 10)
        + _mmyy(expiry_mmyy)
        + serial
        + bytes([0x01, 0x01, icc_pub.size, len(exponent)])
        + part
    )
    digest = hashlib.sha1(body + remainder + exponent + static_data).digest()
    return _finish(issuer, 0x6A, body, digest, tamper), remainder, exponent


def ssad(issuer: RsaPrivateKey, static_data: bytes, dac: bytes, tamper: str | None = None) -> bytes:
    """Signed static application data (93) over ``static_data`` with data authentication code ``dac``."""
    _check_tamper(tamper, SIGNATURE_TAMPERS)
    if len(dac) != 2:
        raise PkiError("data authentication code must be 2 bytes")
    fmt = 0x04 if tamper == "format" else 0x03
    body = bytes([fmt, 0x01]) + dac + b"\xbb" * (issuer.size - 26)
    digest = hashlib.sha1(body + static_data).digest()
    return _finish(issuer, 0x6A, body, digest, tamper)


def sdad(
    icc: RsaPrivateKey,
    icc_dynamic_data: bytes,
    terminal_dynamic_data: bytes,
    tamper: str | None = None,
) -> bytes:
    """Signed dynamic application data (9F4B) for DDA, fDDA and CDA.

    ``icc_dynamic_data`` is ``Ldn | dynamic number`` (plus ``CID | AC | hash code`` for
    CDA); ``terminal_dynamic_data`` is what the terminal hashes after it (DDOL values,
    ``9F37 ‖ 9F02 ‖ 5F2A ‖ 9F69`` for fDDA, 9F37 for CDA).
    """
    _check_tamper(tamper, SIGNATURE_TAMPERS)
    pad = icc.size - 25 - len(icc_dynamic_data)
    if pad < 0 or len(icc_dynamic_data) > 255:
        raise PkiError("ICC dynamic data too long for the ICC key")
    fmt = 0x06 if tamper == "format" else 0x05
    body = bytes([fmt, 0x01, len(icc_dynamic_data)]) + icc_dynamic_data + b"\xbb" * pad
    digest = hashlib.sha1(body + terminal_dynamic_data).digest()
    return _finish(icc, 0x6A, body, digest, tamper)


# ---------------------------------------------------------------- CAPKs and generation


def capk_checksum(rid: str, index: int, modulus: bytes, exponent: bytes) -> str:
    """SHA-1(RID | index | modulus | exponent), upper-case hex."""
    return hashlib.sha1(bytes.fromhex(rid) + bytes([index]) + modulus + exponent).hexdigest().upper()


def capks_document(pki: SimulatorPki) -> dict[str, Any]:
    """The simulator CAPKs in the format of ``shared/data/capks.json`` (plus expiry)."""
    keys = []
    for (rid, index), key in sorted(pki.cas.items()):
        keys.append(
            {
                "scheme": "posterm simulator",
                "kind": "simulator",
                "rid": rid,
                "index": f"{index:02X}",
                "exponent": key.exponent.hex().upper(),
                "modulus": key.modulus.hex().upper(),
                "checksum": capk_checksum(rid, index, key.modulus, key.exponent),
                "expiry": CAPK_EXPIRY,
            }
        )
    return {
        "about": "SIMULATOR TEST KEYS — NOT FOR PRODUCTION. CA public keys of posterm's card simulator "
        f"(index {CA_INDEX_REVOKED:02X} of A000000003 is revoked in the default configuration). "
        "checksum = SHA-1(RID || index || modulus || exponent).",
        "keys": keys,
    }


def _new_key(bits: int, exponent: int, name: str) -> RsaPrivateKey:
    from cryptography.hazmat.primitives.asymmetric import rsa

    numbers = rsa.generate_private_key(public_exponent=exponent, key_size=bits).private_numbers()
    return RsaPrivateKey(numbers.public_numbers.n, numbers.public_numbers.e, numbers.d, name)


def _key_json(key: RsaPrivateKey) -> dict[str, str]:
    return {"n": f"{key.n:X}", "e": f"{key.e:X}", "d": f"{key.d:X}"}


def generate(directory: Path = DATA_DIR) -> SimulatorPki:
    """Generate a fresh set of keys and write the key file and capks.json under ``directory``."""
    cas: list[dict[str, Any]] = []
    for rid, index, label in _CA_SPECS:
        key = _new_key(CA_BITS, 3, f"ca-{rid}-{index:02X}")
        cas.append({"rid": rid, "index": f"{index:02X}", "label": label, **_key_json(key)})
    issuers: list[dict[str, Any]] = []
    for name, exponent, rid, index in _ISSUER_SPECS:
        key = _new_key(ISSUER_BITS, exponent, name)
        issuers.append({"name": name, "ca_rid": rid, "ca_index": f"{index:02X}", **_key_json(key)})
    iccs: list[dict[str, Any]] = []
    for name, exponent, issuer in _ICC_SPECS:
        key = _new_key(ICC_BITS, exponent, name)
        iccs.append({"name": name, "issuer": issuer, **_key_json(key)})
    document = {"WARNING": WARNING, "ca": cas, "issuers": issuers, "icc": iccs}
    pki = _pki_from_json(document)
    (directory / "pki").mkdir(parents=True, exist_ok=True)
    (directory / "pki" / KEYS_FILE.name).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    (directory / CAPKS_FILE.name).write_text(
        json.dumps(capks_document(pki), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    _load_cached.cache_clear()
    return pki


def add_missing(directory: Path = DATA_DIR) -> list[str]:
    """Generate only the keys of the specs above that the shipped key file lacks; keep the others.

    Returns the names added.  capks.json is rewritten from the whole set (its
    existing entries unchanged), so that adding a scheme does not re-key the cards
    and traces made with the keys already shipped.
    """
    path = directory / "pki" / KEYS_FILE.name
    document = json.loads(path.read_text(encoding="utf-8"))
    have_ca = {(c["rid"].upper(), int(c["index"], 16)) for c in document["ca"]}
    have_issuers = {i["name"] for i in document["issuers"]}
    have_iccs = {k["name"] for k in document["icc"]}
    added: list[str] = []
    for rid, index, label in _CA_SPECS:
        if (rid, index) not in have_ca:
            key = _new_key(CA_BITS, 3, f"ca-{rid}-{index:02X}")
            document["ca"].append({"rid": rid, "index": f"{index:02X}", "label": label, **_key_json(key)})
            added.append(f"ca-{rid}-{index:02X}")
    for name, exponent, rid, index in _ISSUER_SPECS:
        if name not in have_issuers:
            key = _new_key(ISSUER_BITS, exponent, name)
            document["issuers"].append({"name": name, "ca_rid": rid, "ca_index": f"{index:02X}", **_key_json(key)})
            added.append(name)
    for name, exponent, issuer in _ICC_SPECS:
        if name not in have_iccs:
            key = _new_key(ICC_BITS, exponent, name)
            document["icc"].append({"name": name, "issuer": issuer, **_key_json(key)})
            added.append(name)
    pki = _pki_from_json(document)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    (directory / CAPKS_FILE.name).write_text(
        json.dumps(capks_document(pki), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    _load_cached.cache_clear()
    return added


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m simulator.pki generate|add``: regenerate the shipped test keys, or add the missing ones."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["add"]:
        added = add_missing()
        print(f"added {', '.join(added) or 'nothing'} to {KEYS_FILE} and {CAPKS_FILE} ({WARNING})")
        return 0
    if args != ["generate"]:
        print("usage: python -m simulator.pki generate|add", file=sys.stderr)
        return 2
    generate()
    print(f"wrote {KEYS_FILE} and {CAPKS_FILE} ({WARNING})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
