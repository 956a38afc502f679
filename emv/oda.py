"""Offline data authentication (EMV Book 2): key recovery and signature checks.

The chain is CA key (terminal, by RID + 8F) -> issuer key (90, 92, 9F32) ->
ICC key (9F46, 9F48, 9F47) -> SDAD (9F4B) for DDA, fDDA and CDA; SDA stops at
the issuer key and checks the SSAD (93).  Every check that fails raises
:class:`OdaFailure` whose ``name`` is one of :data:`FAILURES`; the kernel turns
it into a TVR bit with :func:`tvr_bits`.

Card data is untrusted: whatever bytes a card sends, these functions return a
result or raise :class:`OdaFailure`, nothing else.  Keys passed in by the
caller (the CA key from :mod:`emv.capk`, keys these functions recovered) are
trusted to be sane RSA public keys.

RSA here is the raw public operation ``pow(s, e, n)`` on integers: EMV
signatures are "with message recovery" (ISO/IEC 9796-2 style), not PKCS#1, so
no library verify call fits.

>>> key = PublicKey(b"\\xff" * 48, b"\\x01")  # exponent 1 makes recovery the identity: examples only
>>> import hashlib
>>> body = bytes.fromhex("03 01 1234") + b"\\xbb" * 22
>>> ssad = b"\\x6a" + body + hashlib.sha1(body + b"static data").digest() + b"\\xbc"
>>> verify_ssad(key, ssad, b"static data").hex()
'1234'
>>> try:
...     verify_ssad(key, ssad, b"other data")
... except OdaFailure as exc:
...     print(exc.name)
ssad_hash
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from emv.capk import CapkError, CapkStore
from emv.oda_failures import FAILURE_TVR_BIT, FAILURES, METHODS, OdaFailure, apply_failure, tvr_bits
from emv.tlv import TlvError, _read_length, _read_tag, decode

__all__ = [
    "FAILURES",
    "FAILURE_TVR_BIT",
    "METHODS",
    "CertificateRevocationList",
    "IccDynamicData",
    "IssuerKey",
    "OdaFailure",
    "PublicKey",
    "apply_failure",
    "ca_public_key",
    "cda_transaction_data_hash",
    "fdda_terminal_data",
    "recover_icc_key",
    "recover_issuer_key",
    "static_data_to_authenticate",
    "tvr_bits",
    "verify_cda",
    "verify_sdad",
    "verify_ssad",
]

HEADER = 0x6A
TRAILER = 0xBC
PAD = 0xBB
SHA1 = 0x01
RSA = 0x01
HASH_LEN = 20
ALLOWED_EXPONENTS = (3, 65537)
_DIGITS = frozenset("0123456789")


@dataclass(frozen=True)
class PublicKey:
    """An RSA public key as EMV carries it: big-endian modulus and exponent bytes."""

    modulus: bytes
    exponent: bytes

    @property
    def size(self) -> int:
        """Modulus length in bytes (N_CA, N_I or N_IC in Book 2)."""
        return len(self.modulus)


@dataclass(frozen=True)
class IssuerKey:
    """The issuer public key recovered from certificate 90, with what it said."""

    public_key: PublicKey
    issuer_id: str  #: leftmost PAN digits, F padding removed
    expiry: str  #: MMYY as in the certificate
    serial: bytes  #: certificate serial number (3 bytes)


@dataclass(frozen=True)
class IccDynamicData:
    """What the card signed in the SDAD (see docs/internals.md for the layout)."""

    dynamic_number: bytes
    cid: int | None = None
    cryptogram: bytes | None = None
    transaction_data_hash: bytes | None = None
    raw: bytes = b""


class CertificateRevocationList:
    """Revoked issuer certificates: (RID, CA key index, certificate serial).

    >>> crl = CertificateRevocationList([("A000000003", 0x50, "000123")])
    >>> crl.is_revoked(bytes.fromhex("A000000003"), 0x50, b"\\x00\\x01\\x23")
    True
    >>> crl.for_key(bytes.fromhex("A000000003"), 0x51)(0x000123)
    False
    """

    def __init__(self, entries: Iterable[tuple[bytes | str, int, int | bytes | str]] = ()) -> None:
        items: set[tuple[bytes, int, int]] = set()
        for rid, index, serial in entries:
            rid_b = bytes.fromhex(rid) if isinstance(rid, str) else bytes(rid)
            if isinstance(serial, str):
                serial_i = int(serial, 16)
            elif isinstance(serial, bytes | bytearray):
                serial_i = int.from_bytes(serial, "big")
            else:
                serial_i = int(serial)
            items.add((rid_b, int(index), serial_i))
        self.entries: frozenset[tuple[bytes, int, int]] = frozenset(items)

    def is_revoked(self, rid: bytes, index: int, serial: bytes | int) -> bool:
        value = serial if isinstance(serial, int) else int.from_bytes(serial, "big")
        return (bytes(rid), index, value) in self.entries

    def for_key(self, rid: bytes, index: int) -> Callable[[int], bool]:
        """A serial -> revoked? callable for certificates signed by one CA key."""
        rid = bytes(rid)
        return lambda serial: (rid, index, serial) in self.entries

    def __len__(self) -> int:
        return len(self.entries)


# ---------------------------------------------------------------------------
# helpers


def _sha1(*parts: bytes) -> bytes:
    digest = hashlib.sha1()
    for part in parts:
        digest.update(part)
    return digest.digest()


def _recover(key: PublicKey, data: bytes, prefix: str) -> bytes:
    """Raw RSA public operation; the data must be exactly as long as the modulus."""
    n = int.from_bytes(key.modulus, "big")
    if len(data) != len(key.modulus) or n < 2:
        raise OdaFailure(
            f"{prefix}_length", f"{len(data)} bytes against a key modulus of {len(key.modulus)} bytes"
        )
    e = int.from_bytes(key.exponent, "big")
    return pow(int.from_bytes(data, "big"), e, n).to_bytes(len(key.modulus), "big")


def _check_frame(recovered: bytes, fmt: int, prefix: str) -> None:
    """Trailer BC, header 6A, format: the order of Book 2."""
    if recovered[-1] != TRAILER:
        raise OdaFailure(f"{prefix}_trailer", f"recovered trailer {recovered[-1]:02X}, not BC")
    if recovered[0] != HEADER:
        raise OdaFailure(f"{prefix}_header", f"recovered header {recovered[0]:02X}, not 6A")
    if recovered[1] != fmt:
        raise OdaFailure(f"{prefix}_format", f"recovered format {recovered[1]:02X}, not {fmt:02X}")


def _digits(value: str) -> str:
    """A PAN as given (digits, maybe F-padded hex) -> its digits, or '' if not a PAN."""
    text = value.strip().upper().rstrip("F")
    return text if text and set(text) <= _DIGITS else ""


def _mmyy_expired(mmyy: bytes, today: date) -> bool:
    """A certificate is valid through the last day of month MM of year YY.

    Unreadable dates count as expired: a certificate that does not say
    until when it is valid is not valid.  YY 00-49 is 20YY, 50-99 19YY
    (Book 3's convention for YYMMDD dates).
    """
    text = mmyy.hex()
    if len(text) != 4 or not set(text) <= _DIGITS:
        return True
    month, year = int(text[:2]), int(text[2:])
    if not 1 <= month <= 12:
        return True
    year += 2000 if year < 50 else 1900
    return (year, month) < (today.year, today.month)


def _assemble_key(
    leftmost: bytes, remainder: bytes, length: int, exponent: bytes, exp_length: int
) -> PublicKey:
    """Modulus from the certificate's leftmost part (+ remainder), checked for shape.

    Raises ValueError with the reason; callers map it to *_key_algorithm.
    """
    if length == 0:
        raise ValueError("public key length 0")
    modulus = leftmost[:length] if length <= len(leftmost) else leftmost + remainder
    if len(modulus) != length:
        raise ValueError(f"public key is {length} bytes but {len(modulus)} are present")
    if modulus[0] == 0:
        raise ValueError("public key modulus has a leading zero byte")
    if exp_length != len(exponent):
        raise ValueError(f"exponent length {exp_length} but {len(exponent)} bytes given")
    if int.from_bytes(exponent, "big") not in ALLOWED_EXPONENTS:
        raise ValueError(f"exponent {exponent.hex().upper()} is not 3 or 65537")
    return PublicKey(modulus, exponent)


# ---------------------------------------------------------------------------
# key recovery


def ca_public_key(store: CapkStore, rid: bytes, index: int, today: date) -> PublicKey:
    """The CA key for (RID, 8F) from the store, or OdaFailure ca_key_missing/revoked/expired.

    >>> try:
    ...     ca_public_key(CapkStore(), bytes.fromhex("A000000003"), 0x92, date(2025, 1, 1))
    ... except OdaFailure as exc:
    ...     print(exc.name)
    ca_key_missing
    """
    try:
        capk = store.get(rid, index, today)
    except CapkError as exc:
        raise OdaFailure(exc.name, exc.message) from None
    return PublicKey(capk.modulus, capk.exponent)


def recover_issuer_key(
    ca_key: PublicKey,
    certificate: bytes,
    remainder: bytes | None,
    exponent: bytes,
    pan: str,
    today: date,
    revoked: Callable[[int], bool] | CertificateRevocationList | None = None,
    *,
    rid: bytes | None = None,
    capk_index: int | None = None,
) -> IssuerKey:
    """Recover the issuer public key from certificate 90 (Book 2, 5.3 / 6.3).

    Checks, in order: length, trailer BC, header 6A, format 02, hash (SHA-1
    over format..leftmost key part, remainder 92, exponent 9F32), issuer
    identifier against the PAN, expiry (through the end of month MMYY),
    revocation (``revoked(serial)``, or a CertificateRevocationList together
    with ``rid`` and ``capk_index``), algorithm indicators (hash 01, RSA 01),
    and finally the shape of the key (lengths, exponent 3 or 65537), also
    reported as ``issuer_key_algorithm``.

    >>> ca = PublicKey(b"\\xff" * 64, b"\\x01")  # identity "key": example only
    >>> issuer_modulus = b"\\xc1" * 28
    >>> body = bytes.fromhex("02 476173FF 1230 000001 01 01 1C 01") + issuer_modulus
    >>> cert = b"\\x6a" + body + hashlib.sha1(body + b"\\x03").digest() + b"\\xbc"
    >>> key = recover_issuer_key(ca, cert, b"", b"\\x03", "4761739001010010", date(2025, 6, 1))
    >>> key.issuer_id, key.expiry, key.public_key.modulus == issuer_modulus
    ('476173', '1230', True)
    """
    remainder = bytes(remainder or b"")
    exponent = bytes(exponent)
    rec = _recover(ca_key, bytes(certificate), "issuer_certificate")
    size = len(rec)
    if size < 36 + 1:
        raise OdaFailure("issuer_certificate_length", f"{size} bytes cannot hold an issuer certificate")
    _check_frame(rec, 0x02, "issuer_certificate")
    if _sha1(rec[1 : size - 21], remainder, exponent) != rec[size - 21 : size - 1]:
        raise OdaFailure("issuer_certificate_hash", "hash over the certificate data differs")
    issuer_id = rec[2:6].hex().upper().rstrip("F")
    pan_digits = _digits(pan)
    if len(issuer_id) < 3 or not set(issuer_id) <= _DIGITS or not pan_digits.startswith(issuer_id):
        raise OdaFailure("issuer_identifier_mismatch", f"issuer id {rec[2:6].hex().upper()} vs the PAN")
    expiry = rec[6:8]
    if _mmyy_expired(expiry, today):
        raise OdaFailure("issuer_certificate_expired", f"certificate expiry {expiry.hex()} (MMYY)")
    serial = rec[8:11]
    if isinstance(revoked, CertificateRevocationList):
        if rid is None or capk_index is None:
            raise ValueError("a CertificateRevocationList needs rid= and capk_index=")
        revoked = revoked.for_key(rid, capk_index)
    if revoked is not None and revoked(int.from_bytes(serial, "big")):
        raise OdaFailure("issuer_certificate_revoked", f"certificate serial {serial.hex().upper()}")
    if rec[11] != SHA1 or rec[12] != RSA:
        raise OdaFailure("issuer_key_algorithm", f"hash algorithm {rec[11]:02X}, key algorithm {rec[12]:02X}")
    try:
        key = _assemble_key(rec[15 : size - 21], remainder, rec[13], exponent, rec[14])
    except ValueError as exc:
        raise OdaFailure("issuer_key_algorithm", str(exc)) from None
    return IssuerKey(key, issuer_id, expiry.hex(), serial)


def recover_icc_key(
    issuer_key: IssuerKey | PublicKey,
    certificate: bytes,
    remainder: bytes | None,
    exponent: bytes,
    pan: str,
    static_data: bytes,
    today: date,
) -> PublicKey:
    """Recover the ICC public key from certificate 9F46 (Book 2, 6.4).

    Checks, in order: length, trailer, header, format 04, hash (also over
    remainder 9F48, exponent 9F47 and the static data to authenticate), PAN
    (10 bytes, F-padded) equal to the card's PAN, expiry, algorithm
    indicators, key shape.
    """
    key = issuer_key.public_key if isinstance(issuer_key, IssuerKey) else issuer_key
    remainder = bytes(remainder or b"")
    exponent = bytes(exponent)
    rec = _recover(key, bytes(certificate), "icc_certificate")
    size = len(rec)
    if size < 42 + 1:
        raise OdaFailure("icc_certificate_length", f"{size} bytes cannot hold an ICC certificate")
    _check_frame(rec, 0x04, "icc_certificate")
    if _sha1(rec[1 : size - 21], remainder, exponent, bytes(static_data)) != rec[size - 21 : size - 1]:
        raise OdaFailure("icc_certificate_hash", "hash over the certificate data differs")
    cert_pan = rec[2:12].hex().upper().rstrip("F")
    pan_digits = _digits(pan)
    if not pan_digits or cert_pan != pan_digits:
        raise OdaFailure("icc_pan_mismatch", "the certificate's PAN is not the card's PAN")
    if _mmyy_expired(rec[12:14], today):
        raise OdaFailure("icc_certificate_expired", f"certificate expiry {rec[12:14].hex()} (MMYY)")
    if rec[17] != SHA1 or rec[18] != RSA:
        raise OdaFailure("icc_key_algorithm", f"hash algorithm {rec[17]:02X}, key algorithm {rec[18]:02X}")
    try:
        return _assemble_key(rec[21 : size - 21], remainder, rec[19], exponent, rec[20])
    except ValueError as exc:
        raise OdaFailure("icc_key_algorithm", str(exc)) from None


# ---------------------------------------------------------------------------
# signatures


def verify_ssad(issuer_key: IssuerKey | PublicKey, ssad: bytes, static_data: bytes) -> bytes:
    """Check the Signed Static Application Data (93) and return the data authentication code.

    Layout: 6A | 03 | hash algorithm | DAC (2) | BB padding | SHA-1 | BC; the
    hash covers format..padding and then the static data.  An unknown hash
    algorithm cannot be checked and is reported as ``ssad_hash``.
    """
    key = issuer_key.public_key if isinstance(issuer_key, IssuerKey) else issuer_key
    rec = _recover(key, bytes(ssad), "ssad")
    size = len(rec)
    if size < 26:
        raise OdaFailure("ssad_length", f"{size} bytes cannot hold an SSAD")
    _check_frame(rec, 0x03, "ssad")
    if rec[2] != SHA1:
        raise OdaFailure("ssad_hash", f"unknown hash algorithm {rec[2]:02X}")
    if _sha1(rec[1 : size - 21], bytes(static_data)) != rec[size - 21 : size - 1]:
        raise OdaFailure("ssad_hash", "hash over the static data differs")
    return rec[3:5]


def verify_sdad(
    icc_key: PublicKey, sdad: bytes | None, terminal_dynamic_data: bytes, cda: bool = False
) -> IccDynamicData:
    """Check the Signed Dynamic Application Data (9F4B) and return what the card signed.

    ``terminal_dynamic_data`` is what the hash covers after the recovered
    fields: the DDOL values (DDA), ``9F37 | 9F02 | 5F2A | 9F69`` (fDDA, see
    :func:`fdda_terminal_data`) or the unpredictable number 9F37 (CDA).
    With ``cda=True`` the dynamic data must also hold CID, cryptogram and
    transaction data hash code; compare them with :func:`verify_cda`.

    The hash is checked before the dynamic data is parsed, so only
    authenticated bytes are ever interpreted.
    """
    if not sdad:
        raise OdaFailure("sdad_missing", "no signed dynamic application data")
    rec = _recover(icc_key, bytes(sdad), "sdad")
    size = len(rec)
    if size < 25:
        raise OdaFailure("sdad_length", f"{size} bytes cannot hold an SDAD")
    _check_frame(rec, 0x05, "sdad")
    if rec[2] != SHA1:
        raise OdaFailure("sdad_hash", f"unknown hash algorithm {rec[2]:02X}")
    if _sha1(rec[1 : size - 21], bytes(terminal_dynamic_data)) != rec[size - 21 : size - 1]:
        raise OdaFailure("sdad_hash", "hash over the dynamic data differs")
    ldd = rec[3]
    if 4 + ldd > size - 21:
        raise OdaFailure("sdad_format", f"ICC dynamic data length {ldd} overruns the signature")
    data = rec[4 : 4 + ldd]
    if not data or not 2 <= data[0] <= 8 or 1 + data[0] > len(data):
        raise OdaFailure("sdad_format", "ICC dynamic number length out of range")
    ldn = data[0]
    number = data[1 : 1 + ldn]
    if not cda:
        return IccDynamicData(number, raw=data)
    if len(data) < 1 + ldn + 1 + 8 + HASH_LEN:
        raise OdaFailure("sdad_format", "ICC dynamic data too short for CDA")
    pos = 1 + ldn
    return IccDynamicData(
        number,
        cid=data[pos],
        cryptogram=data[pos + 1 : pos + 9],
        transaction_data_hash=data[pos + 9 : pos + 9 + HASH_LEN],
        raw=data,
    )


def verify_cda(
    icc_key: PublicKey,
    sdad: bytes | None,
    unpredictable_number: bytes,
    cid: int | bytes,
    transaction_data_hash: bytes,
) -> IccDynamicData:
    """CDA (Book 2, 6.6.2): the SDAD of the GENERATE AC response, then its content.

    ``cid`` is the 9F27 the card returned in the clear; ``transaction_data_hash``
    what :func:`cda_transaction_data_hash` computed.  Failures beyond the SDAD
    checks: ``cda_cryptogram_information_mismatch``, ``cda_transaction_data_hash``.
    """
    data = verify_sdad(icc_key, sdad, unpredictable_number, cda=True)
    cid_value = cid if isinstance(cid, int) else (cid[0] if len(cid) == 1 else -1)
    if data.cid != cid_value:
        raise OdaFailure("cda_cryptogram_information_mismatch", "signed CID differs from 9F27")
    if data.transaction_data_hash != bytes(transaction_data_hash):
        raise OdaFailure("cda_transaction_data_hash", "signed transaction data hash code differs")
    return data


def fdda_terminal_data(
    unpredictable_number: bytes, amount_authorised: bytes, currency_code: bytes, card_auth_data: bytes
) -> bytes:
    """The terminal data an fDDA signature covers: 9F37 | 9F02 | 5F2A | 9F69.

    >>> fdda_terminal_data(b"\\x01\\x02\\x03\\x04", bytes(6), b"\\x09\\x78", b"\\x01").hex()
    '01020304000000000000097801'
    """
    parts = (unpredictable_number, amount_authorised, currency_code, card_auth_data)
    return b"".join(bytes(part) for part in parts)


# ---------------------------------------------------------------------------
# what is signed


def static_data_to_authenticate(
    records: Sequence[tuple[int, bytes]], aip: bytes, sda_tag_list: bytes | None
) -> bytes:
    """The static data to authenticate (Book 3, 10.3).

    ``records`` are (SFI, record data as READ RECORD returned it) for the
    records the AFL marks, in AFL order.  SFI 1-10 contribute the value of
    their 70 template (a record that is not one 70 template fails ODA);
    SFI 11-30 contribute the whole record.  Then the AIP value, when the
    SDA tag list (9F4A) is present; it may list only 82.  Problems are
    reported as ``icc_data_missing`` with the reason in ``detail``.

    >>> recs = [(1, bytes.fromhex("7003 5A0112")), (11, bytes.fromhex("9F080102"))]
    >>> static_data_to_authenticate(recs, bytes.fromhex("3900"), bytes.fromhex("82")).hex()
    '5a01129f0801023900'
    """
    out = bytearray()
    for sfi, raw in records:
        record = bytes(raw)
        if 1 <= sfi <= 10:
            try:
                objects = decode(record)
            except TlvError as exc:
                raise OdaFailure("icc_data_missing", f"record of SFI {sfi} is malformed: {exc}") from None
            if len(objects) != 1 or objects[0].tag != 0x70:
                raise OdaFailure("icc_data_missing", f"record of SFI {sfi} is not a 70 template")
            out += objects[0].value
        elif 11 <= sfi <= 30:
            out += record
        else:
            raise OdaFailure("icc_data_missing", f"SFI {sfi} out of range")
    if sda_tag_list:
        tags: list[int] = []
        pos = 0
        try:
            while pos < len(sda_tag_list):
                tag, pos = _read_tag(bytes(sda_tag_list), pos)
                tags.append(tag)
        except (TlvError, IndexError):
            raise OdaFailure("icc_data_missing", "malformed SDA tag list 9F4A") from None
        if tags != [0x82]:
            raise OdaFailure("icc_data_missing", "SDA tag list 9F4A may hold only 82")
        out += bytes(aip)
    return bytes(out)


def cda_transaction_data_hash(pdol_values: bytes, cdol1_values: bytes, response_77_value: bytes) -> bytes:
    """Transaction data hash code for CDA: SHA-1 over PDOL values | CDOL1 values |
    the objects of response template 77 except 9F4B, as the card encoded them.

    The objects are taken byte for byte from the response (not re-encoded), so
    a card's non-minimal length encoding is hashed as the card hashed it.

    >>> r77 = bytes.fromhex("9F2701 80 9F4B03 AABBCC 9F3602 0001")
    >>> want = hashlib.sha1(b"P" + b"C" + bytes.fromhex("9F2701809F36020001")).digest()
    >>> cda_transaction_data_hash(b"P", b"C", r77) == want
    True
    """
    data = bytes(response_77_value)
    digest = hashlib.sha1(bytes(pdol_values) + bytes(cdol1_values))
    pos = 0
    try:
        while pos < len(data):
            if data[pos] in (0x00, 0xFF):
                pos += 1
                continue
            start = pos
            tag, pos = _read_tag(data, pos)
            length, pos = _read_length(data, pos, tag)
            if pos + length > len(data):
                raise TlvError("value overruns the template", start, tag)
            pos += length
            if tag != 0x9F4B:
                digest.update(data[start:pos])
    except (TlvError, IndexError) as exc:
        raise OdaFailure("cda_transaction_data_hash", f"malformed template 77: {exc}") from None
    return digest.digest()
