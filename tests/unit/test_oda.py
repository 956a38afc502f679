"""emv.oda: every Book 2 check fails alone, and any card bytes end in OdaFailure.

The certificates and signatures here are built by this file from keys that the
``cryptography`` package generates (once per session), with its own layout
code: an independent check of emv.oda.  A second part runs the simulator's
shipped PKI (simulator.pki) and its ``tamper=`` options through the same checks.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emv import oda
from emv.capk import CapkStore, checksum_of
from emv.oda import (
    CertificateRevocationList,
    IssuerKey,
    OdaFailure,
    PublicKey,
    recover_icc_key,
    recover_issuer_key,
    verify_cda,
    verify_sdad,
    verify_ssad,
)
from emv.tvr import Tvr
from tests.unit.rsa_keys import Key, generate

PAN = "4761739001010010"
TODAY = date(2025, 6, 15)
STATIC = bytes.fromhex("5A0847617390010100109F0702FF00") + bytes.fromhex("3900")
RID = bytes.fromhex("A000000003")

def documented_failures() -> list[str]:
    """The failure names docs/internals.md pins, in its order."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "internals.md").read_text(encoding="utf-8")
    section = doc.split("### ODA failure names", 1)[1].split("\n\n", 2)[1]
    return re.findall(r"`([a-z_]+)`", section)


# --------------------------------------------------------------------------- test-side PKI


@dataclass(frozen=True)
class Keys:
    ca: Key  # 1024 bits: a 1024-bit issuer key needs a remainder
    big_ca: Key  # 1408 bits: the same issuer key fits in the certificate
    issuer: Key
    icc: Key


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(generate(1024, 3), generate(1408, 3), generate(1024, 3), generate(1024, 65537))


def _pad_digits(digits: str, length: int) -> bytes:
    return bytes.fromhex(digits + "F" * (2 * length - len(digits)))


def _frame(signer: Key, body: bytes, digest: bytes, header: int = 0x6A, trailer: int = 0xBC) -> bytes:
    return signer.sign(bytes([header]) + body + digest + bytes([trailer]))


def _bad(digest: bytes) -> bytes:
    return bytes([digest[0] ^ 1]) + digest[1:]


def make_issuer_cert(
    ca: Key,
    issuer: Key,
    *,
    issuer_id: str = "476173",
    expiry: str = "1230",
    serial: bytes = b"\x00\x00\x07",
    header: int = 0x6A,
    fmt: int = 0x02,
    trailer: int = 0xBC,
    hash_algo: int = 0x01,
    pk_algo: int = 0x01,
    pk_len: int | None = None,
    exp_len: int | None = None,
    bad_hash: bool = False,
) -> tuple[bytes, bytes, bytes]:
    room = ca.size - 36
    modulus = issuer.modulus
    part, remainder = (
        (modulus[:room], modulus[room:])
        if len(modulus) > room
        else (
            modulus + b"\xbb" * (room - len(modulus)),
            b"",
        )
    )
    exponent = issuer.exponent
    body = (
        bytes([fmt])
        + _pad_digits(issuer_id, 4)
        + bytes.fromhex(expiry)
        + serial
        + bytes([hash_algo, pk_algo, pk_len if pk_len is not None else len(modulus)])
        + bytes([exp_len if exp_len is not None else len(exponent)])
        + part
    )
    digest = hashlib.sha1(body + remainder + exponent).digest()
    return _frame(ca, body, _bad(digest) if bad_hash else digest, header, trailer), remainder, exponent


def make_icc_cert(
    issuer: Key,
    icc: Key,
    *,
    pan: str = PAN,
    expiry: str = "1230",
    static: bytes = STATIC,
    header: int = 0x6A,
    fmt: int = 0x04,
    trailer: int = 0xBC,
    hash_algo: int = 0x01,
    pk_algo: int = 0x01,
    bad_hash: bool = False,
) -> tuple[bytes, bytes, bytes]:
    room = issuer.size - 42
    modulus = icc.modulus
    part, remainder = (
        (modulus[:room], modulus[room:])
        if len(modulus) > room
        else (
            modulus + b"\xbb" * (room - len(modulus)),
            b"",
        )
    )
    exponent = icc.exponent
    body = (
        bytes([fmt])
        + _pad_digits(pan, 10)
        + bytes.fromhex(expiry)
        + b"\x00\x00\x01"
        + bytes([hash_algo, pk_algo, len(modulus), len(exponent)])
        + part
    )
    digest = hashlib.sha1(body + remainder + exponent + static).digest()
    return _frame(issuer, body, _bad(digest) if bad_hash else digest, header, trailer), remainder, exponent


def make_ssad(
    issuer: Key,
    *,
    dac: bytes = b"\xda\xc1",
    static: bytes = STATIC,
    header: int = 0x6A,
    fmt: int = 0x03,
    trailer: int = 0xBC,
    hash_algo: int = 0x01,
    bad_hash: bool = False,
) -> bytes:
    body = bytes([fmt, hash_algo]) + dac + b"\xbb" * (issuer.size - 26)
    digest = hashlib.sha1(body + static).digest()
    return _frame(issuer, body, _bad(digest) if bad_hash else digest, header, trailer)


def make_sdad(
    icc: Key,
    dynamic: bytes,
    terminal_data: bytes,
    *,
    header: int = 0x6A,
    fmt: int = 0x05,
    trailer: int = 0xBC,
    hash_algo: int = 0x01,
    ldd: int | None = None,
    bad_hash: bool = False,
) -> bytes:
    pad = icc.size - 25 - len(dynamic)
    body = bytes([fmt, hash_algo, len(dynamic) if ldd is None else ldd]) + dynamic + b"\xbb" * pad
    digest = hashlib.sha1(body + terminal_data).digest()
    return _frame(icc, body, _bad(digest) if bad_hash else digest, header, trailer)


def fails(name: str, call: Callable[[], object]) -> None:
    with pytest.raises(OdaFailure) as info:
        call()
    assert info.value.name == name, str(info.value)


# --------------------------------------------------------------------------- names and TVR


def test_failure_names_are_exactly_the_documented_list() -> None:
    assert list(oda.FAILURES) == documented_failures()


def test_oda_failure_refuses_unknown_names() -> None:
    with pytest.raises(ValueError):
        OdaFailure("something_else")
    exc = OdaFailure("sdad_hash", "detail here")
    assert exc.name == "sdad_hash" and "detail here" in str(exc)


@pytest.mark.parametrize(
    ("method", "bit"),
    [("SDA", Tvr.SDA_FAILED), ("DDA", Tvr.DDA_FAILED), ("fDDA", Tvr.DDA_FAILED), ("CDA", Tvr.CDA_FAILED)],
)
def test_tvr_bit_follows_the_method(method: str, bit: tuple[int, int]) -> None:
    assert oda.FAILURE_TVR_BIT[method] == bit
    assert oda.tvr_bits(method, "issuer_certificate_hash") == (bit,)
    assert oda.tvr_bits(method, "icc_data_missing") == (bit, Tvr.ICC_DATA_MISSING)
    tvr = Tvr()
    oda.apply_failure(tvr, method, "icc_data_missing")
    assert tvr.is_set(bit) and tvr.is_set(Tvr.ICC_DATA_MISSING)


def test_tvr_bits_refuse_unknown_method_or_failure() -> None:
    with pytest.raises(ValueError):
        oda.tvr_bits("XDA", "sdad_hash")
    with pytest.raises(ValueError):
        oda.tvr_bits("DDA", "nope")


# --------------------------------------------------------------------------- issuer certificate


def recover_issuer(keys: Keys, cert: tuple[bytes, bytes, bytes], **kw: object) -> IssuerKey:
    certificate, remainder, exponent = cert
    pan = str(kw.pop("pan", PAN))
    today = kw.pop("today", TODAY)
    assert isinstance(today, date)
    return recover_issuer_key(keys.ca.public, certificate, remainder, exponent, pan, today, **kw)  # type: ignore[arg-type]


def test_issuer_key_with_remainder(keys: Keys) -> None:
    cert = make_issuer_cert(keys.ca, keys.issuer)
    assert cert[1]  # 128-byte key in a 128-byte certificate: a remainder is needed
    key = recover_issuer(keys, cert)
    assert key.public_key == keys.issuer.public
    assert key.issuer_id == "476173"
    assert key.expiry == "1230"
    assert key.serial == b"\x00\x00\x07"


def test_issuer_key_that_fits_the_certificate(keys: Keys) -> None:
    certificate, remainder, exponent = make_issuer_cert(keys.big_ca, keys.issuer)
    assert remainder == b""
    key = recover_issuer_key(keys.big_ca.public, certificate, None, exponent, PAN, TODAY)
    assert key.public_key == keys.issuer.public


@pytest.mark.parametrize("delta", [-1, 1])
def test_issuer_certificate_length(keys: Keys, delta: int) -> None:
    certificate, remainder, exponent = make_issuer_cert(keys.ca, keys.issuer)
    wrong = b"\x00" + certificate if delta > 0 else certificate[1:]
    fails(
        "issuer_certificate_length",
        lambda: recover_issuer_key(keys.ca.public, wrong, remainder, exponent, PAN, TODAY),
    )


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"trailer": 0xBD}, "issuer_certificate_trailer"),
        ({"header": 0x6B}, "issuer_certificate_header"),
        ({"fmt": 0x03}, "issuer_certificate_format"),
        ({"bad_hash": True}, "issuer_certificate_hash"),
        ({"issuer_id": "576173"}, "issuer_identifier_mismatch"),
        ({"issuer_id": "47"}, "issuer_identifier_mismatch"),
        ({"issuer_id": "4761A3"}, "issuer_identifier_mismatch"),
        ({"expiry": "1220"}, "issuer_certificate_expired"),
        ({"expiry": "0525"}, "issuer_certificate_expired"),
        ({"expiry": "1325"}, "issuer_certificate_expired"),
        ({"hash_algo": 0x02}, "issuer_key_algorithm"),
        ({"pk_algo": 0x02}, "issuer_key_algorithm"),
        ({"pk_len": 0x90}, "issuer_key_algorithm"),
        ({"exp_len": 3}, "issuer_key_algorithm"),
    ],
)
def test_each_issuer_check_fails_alone(keys: Keys, change: dict[str, object], name: str) -> None:
    cert = make_issuer_cert(keys.ca, keys.issuer, **change)  # type: ignore[arg-type]
    fails(name, lambda: recover_issuer(keys, cert))


def test_issuer_hash_covers_remainder_and_exponent(keys: Keys) -> None:
    certificate, remainder, exponent = make_issuer_cert(keys.ca, keys.issuer)
    bad_rem = bytes([remainder[0] ^ 1]) + remainder[1:]
    fails("issuer_certificate_hash", lambda: recover_issuer(keys, (certificate, bad_rem, exponent)))
    fails("issuer_certificate_hash", lambda: recover_issuer(keys, (certificate, remainder, b"\x01\x00\x01")))
    fails("issuer_certificate_hash", lambda: recover_issuer(keys, (certificate, b"", exponent)))


def test_issuer_id_may_use_all_eight_digits(keys: Keys) -> None:
    cert = make_issuer_cert(keys.ca, keys.issuer, issuer_id="47617390")
    assert recover_issuer(keys, cert).issuer_id == "47617390"
    # the PAN may come F-padded, as cn
    assert recover_issuer(keys, cert, pan=PAN + "FFF").issuer_id == "47617390"
    fails("issuer_identifier_mismatch", lambda: recover_issuer(keys, cert, pan="4761739"))


def test_issuer_certificate_valid_through_end_of_month(keys: Keys) -> None:
    cert = make_issuer_cert(keys.ca, keys.issuer, expiry="0625")
    assert recover_issuer(keys, cert, today=date(2025, 6, 30)).expiry == "0625"
    fails("issuer_certificate_expired", lambda: recover_issuer(keys, cert, today=date(2025, 7, 1)))
    # YY 99 is 1999
    old = make_issuer_cert(keys.ca, keys.issuer, expiry="1299")
    fails("issuer_certificate_expired", lambda: recover_issuer(keys, old))


def test_issuer_certificate_revoked_by_callable(keys: Keys) -> None:
    cert = make_issuer_cert(keys.ca, keys.issuer, serial=b"\x12\x34\x56")
    fails("issuer_certificate_revoked", lambda: recover_issuer(keys, cert, revoked=lambda s: s == 0x123456))
    assert recover_issuer(keys, cert, revoked=lambda s: s == 0x123457).serial == b"\x12\x34\x56"


def test_issuer_certificate_revoked_by_list(keys: Keys) -> None:
    cert = make_issuer_cert(keys.ca, keys.issuer, serial=b"\x12\x34\x56")
    crl = CertificateRevocationList([("A000000003", 0x92, "123456"), (RID, 0x94, b"\x00\x00\x01")])
    assert len(crl) == 2
    fails(
        "issuer_certificate_revoked",
        lambda: recover_issuer(keys, cert, revoked=crl, rid=RID, capk_index=0x92),
    )
    # same serial under another CA key is not revoked
    assert recover_issuer(keys, cert, revoked=crl, rid=RID, capk_index=0x95).issuer_id == "476173"
    with pytest.raises(ValueError):
        recover_issuer(keys, cert, revoked=crl)


def test_check_order_trailer_before_header_before_format(keys: Keys) -> None:
    cert = make_issuer_cert(keys.ca, keys.issuer, trailer=0x00, header=0x00, fmt=0x00)
    fails("issuer_certificate_trailer", lambda: recover_issuer(keys, cert))
    cert = make_issuer_cert(keys.ca, keys.issuer, header=0x00, fmt=0x00)
    fails("issuer_certificate_header", lambda: recover_issuer(keys, cert))
    cert = make_issuer_cert(keys.ca, keys.issuer, expiry="1220", issuer_id="999999", bad_hash=True)
    fails("issuer_certificate_hash", lambda: recover_issuer(keys, cert))
    cert = make_issuer_cert(keys.ca, keys.issuer, expiry="1220", issuer_id="999999")
    fails("issuer_identifier_mismatch", lambda: recover_issuer(keys, cert))


# --------------------------------------------------------------------------- CA key via the store


def _store(keys: Keys, expiry: str = "2030-12-31") -> list[dict[str, str]]:
    mod, exp = keys.ca.modulus, keys.ca.exponent
    return [
        {
            "rid": RID.hex(),
            "index": f"{index:02X}",
            "modulus": mod.hex(),
            "exponent": exp.hex(),
            "checksum": checksum_of(RID, index, mod, exp).hex(),
            "expiry": expiry,
        }
        for index in (0x92, 0x51)
    ]


def test_ca_key_from_store_feeds_recovery(keys: Keys) -> None:
    store = CapkStore.from_entries(_store(keys))
    ca = oda.ca_public_key(store, RID, 0x92, TODAY)
    certificate, remainder, exponent = make_issuer_cert(keys.ca, keys.issuer)
    assert (
        recover_issuer_key(ca, certificate, remainder, exponent, PAN, TODAY).public_key == keys.issuer.public
    )


def test_ca_key_missing_revoked_expired(keys: Keys) -> None:
    store = CapkStore.from_entries(_store(keys, "2025-06-14"), revoked=[(RID, 0x51)])
    fails("ca_key_missing", lambda: oda.ca_public_key(store, RID, 0x99, date(2025, 1, 1)))
    fails("ca_key_missing", lambda: oda.ca_public_key(store, bytes.fromhex("A000000004"), 0x92, TODAY))
    fails("ca_key_revoked", lambda: oda.ca_public_key(store, RID, 0x51, date(2025, 1, 1)))
    fails("ca_key_expired", lambda: oda.ca_public_key(store, RID, 0x92, date(2025, 6, 15)))
    assert oda.ca_public_key(store, RID, 0x92, date(2025, 6, 14)).modulus == keys.ca.modulus


# --------------------------------------------------------------------------- ICC certificate


@pytest.fixture(scope="session")
def issuer_key(keys: Keys) -> IssuerKey:
    certificate, remainder, exponent = make_issuer_cert(keys.ca, keys.issuer)
    return recover_issuer_key(keys.ca.public, certificate, remainder, exponent, PAN, TODAY)


def recover_icc(
    issuer_key: IssuerKey,
    cert: tuple[bytes, bytes, bytes],
    pan: str = PAN,
    static: bytes = STATIC,
    today: date = TODAY,
) -> PublicKey:
    return recover_icc_key(issuer_key, cert[0], cert[1], cert[2], pan, static, today)


def test_icc_key_recovers(keys: Keys, issuer_key: IssuerKey) -> None:
    cert = make_icc_cert(keys.issuer, keys.icc)
    assert cert[1]  # 128-byte key under a 128-byte issuer key: remainder of 42 bytes
    assert recover_icc(issuer_key, cert) == keys.icc.public
    # the plain PublicKey works too, and an F-padded PAN
    assert recover_icc(issuer_key.public_key, cert, pan=PAN + "F") == keys.icc.public  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"trailer": 0x00}, "icc_certificate_trailer"),
        ({"header": 0x00}, "icc_certificate_header"),
        ({"fmt": 0x02}, "icc_certificate_format"),
        ({"bad_hash": True}, "icc_certificate_hash"),
        ({"static": STATIC + b"\x00"}, "icc_certificate_hash"),
        ({"pan": "4761739001010011"}, "icc_pan_mismatch"),
        ({"pan": "476173900101001"}, "icc_pan_mismatch"),
        ({"expiry": "1220"}, "icc_certificate_expired"),
        ({"hash_algo": 0x02}, "icc_key_algorithm"),
        ({"pk_algo": 0x00}, "icc_key_algorithm"),
    ],
)
def test_each_icc_check_fails_alone(
    keys: Keys, issuer_key: IssuerKey, change: dict[str, object], name: str
) -> None:
    cert = make_icc_cert(keys.issuer, keys.icc, **change)  # type: ignore[arg-type]
    fails(name, lambda: recover_icc(issuer_key, cert))


def test_icc_certificate_length(keys: Keys, issuer_key: IssuerKey) -> None:
    cert = make_icc_cert(keys.issuer, keys.icc)
    fails("icc_certificate_length", lambda: recover_icc(issuer_key, (cert[0][:-1], cert[1], cert[2])))
    fails("icc_certificate_length", lambda: recover_icc(issuer_key, (cert[0] + b"\x00", cert[1], cert[2])))


def test_icc_hash_covers_remainder_and_exponent(keys: Keys, issuer_key: IssuerKey) -> None:
    cert, rem, exp = make_icc_cert(keys.issuer, keys.icc)
    fails("icc_certificate_hash", lambda: recover_icc(issuer_key, (cert, rem[:-1], exp)))
    fails("icc_certificate_hash", lambda: recover_icc(issuer_key, (cert, rem, b"\x03")))


def test_icc_pan_must_be_digits(keys: Keys, issuer_key: IssuerKey) -> None:
    cert = make_icc_cert(keys.issuer, keys.icc)
    fails("icc_pan_mismatch", lambda: recover_icc(issuer_key, cert, pan=""))
    fails("icc_pan_mismatch", lambda: recover_icc(issuer_key, cert, pan="47617390010100１0"))


# --------------------------------------------------------------------------- SSAD (SDA)


def test_ssad_returns_the_data_authentication_code(keys: Keys, issuer_key: IssuerKey) -> None:
    assert verify_ssad(issuer_key, make_ssad(keys.issuer), STATIC) == b"\xda\xc1"


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"trailer": 0xBB}, "ssad_trailer"),
        ({"header": 0x6B}, "ssad_header"),
        ({"fmt": 0x05}, "ssad_format"),
        ({"bad_hash": True}, "ssad_hash"),
        ({"static": STATIC[:-1]}, "ssad_hash"),
        ({"hash_algo": 0x02}, "ssad_hash"),
    ],
)
def test_each_ssad_check_fails_alone(
    keys: Keys, issuer_key: IssuerKey, change: dict[str, object], name: str
) -> None:
    ssad = make_ssad(keys.issuer, **change)  # type: ignore[arg-type]
    fails(name, lambda: verify_ssad(issuer_key, ssad, STATIC))


def test_ssad_length(keys: Keys, issuer_key: IssuerKey) -> None:
    ssad = make_ssad(keys.issuer)
    fails("ssad_length", lambda: verify_ssad(issuer_key, ssad[1:], STATIC))
    fails("ssad_length", lambda: verify_ssad(issuer_key, b"", STATIC))


# --------------------------------------------------------------------------- SDAD (DDA, fDDA)

DDOL_VALUES = bytes.fromhex("11223344")
DYNAMIC = bytes.fromhex("08 0102030405060708")


def test_dda_signature(keys: Keys) -> None:
    sdad = make_sdad(keys.icc, DYNAMIC, DDOL_VALUES)
    data = verify_sdad(keys.icc.public, sdad, DDOL_VALUES)
    assert data.dynamic_number == bytes.fromhex("0102030405060708")
    assert data.cid is None and data.cryptogram is None and data.transaction_data_hash is None
    assert data.raw == DYNAMIC


def test_fdda_signature(keys: Keys) -> None:
    terminal = oda.fdda_terminal_data(
        bytes.fromhex("A1B2C3D4"), bytes.fromhex("000000001234"), bytes.fromhex("0978"), b"\x01\x02\x00"
    )
    assert len(terminal) == 4 + 6 + 2 + 3
    sdad = make_sdad(keys.icc, bytes.fromhex("02 BEEF"), terminal)
    assert verify_sdad(keys.icc.public, sdad, terminal).dynamic_number == b"\xbe\xef"
    fails("sdad_hash", lambda: verify_sdad(keys.icc.public, sdad, terminal[:-1] + b"\x01"))


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"trailer": 0x00}, "sdad_trailer"),
        ({"header": 0x00}, "sdad_header"),
        ({"fmt": 0x03}, "sdad_format"),
        ({"bad_hash": True}, "sdad_hash"),
        ({"hash_algo": 0x00}, "sdad_hash"),
        ({"ldd": 250}, "sdad_format"),
        ({"ldd": 0}, "sdad_format"),
    ],
)
def test_each_sdad_check_fails_alone(keys: Keys, change: dict[str, object], name: str) -> None:
    sdad = make_sdad(keys.icc, DYNAMIC, DDOL_VALUES, **change)  # type: ignore[arg-type]
    fails(name, lambda: verify_sdad(keys.icc.public, sdad, DDOL_VALUES))


@pytest.mark.parametrize("dynamic", ["01 AA", "09 010203040506070809", "08 01020304"])
def test_sdad_dynamic_number_length_out_of_range(keys: Keys, dynamic: str) -> None:
    sdad = make_sdad(keys.icc, bytes.fromhex(dynamic), DDOL_VALUES)
    fails("sdad_format", lambda: verify_sdad(keys.icc.public, sdad, DDOL_VALUES))


def test_sdad_missing_and_length(keys: Keys) -> None:
    sdad = make_sdad(keys.icc, DYNAMIC, DDOL_VALUES)
    fails("sdad_missing", lambda: verify_sdad(keys.icc.public, None, DDOL_VALUES))
    fails("sdad_missing", lambda: verify_sdad(keys.icc.public, b"", DDOL_VALUES))
    fails("sdad_length", lambda: verify_sdad(keys.icc.public, sdad[:-1], DDOL_VALUES))
    fails("sdad_length", lambda: verify_sdad(keys.icc.public, sdad + b"\x00", DDOL_VALUES))


# --------------------------------------------------------------------------- CDA

UN = bytes.fromhex("CAFEBABE")
AC = bytes.fromhex("1122334455667788")


def _cda_dynamic(cid: int, tdhc: bytes) -> bytes:
    return bytes.fromhex("04 00000001") + bytes([cid]) + AC + tdhc


def test_cda_passes_and_returns_the_signed_fields(keys: Keys) -> None:
    tdhc = oda.cda_transaction_data_hash(b"P", b"C", bytes.fromhex("9F270140"))
    sdad = make_sdad(keys.icc, _cda_dynamic(0x40, tdhc), UN)
    data = verify_cda(keys.icc.public, sdad, UN, 0x40, tdhc)
    assert (data.dynamic_number, data.cid, data.cryptogram, data.transaction_data_hash) == (
        b"\x00\x00\x00\x01",
        0x40,
        AC,
        tdhc,
    )
    assert verify_cda(keys.icc.public, sdad, UN, b"\x40", tdhc).cid == 0x40


def test_cda_cid_mismatch(keys: Keys) -> None:
    tdhc = bytes(20)
    sdad = make_sdad(keys.icc, _cda_dynamic(0x40, tdhc), UN)
    fails("cda_cryptogram_information_mismatch", lambda: verify_cda(keys.icc.public, sdad, UN, 0x80, tdhc))
    fails("cda_cryptogram_information_mismatch", lambda: verify_cda(keys.icc.public, sdad, UN, b"", tdhc))


def test_cda_transaction_data_hash_mismatch(keys: Keys) -> None:
    tdhc = bytes(20)
    sdad = make_sdad(keys.icc, _cda_dynamic(0x80, tdhc), UN)
    fails("cda_transaction_data_hash", lambda: verify_cda(keys.icc.public, sdad, UN, 0x80, b"\x01" * 20))


def test_cda_signature_over_another_unpredictable_number(keys: Keys) -> None:
    tdhc = bytes(20)
    sdad = make_sdad(keys.icc, _cda_dynamic(0x80, tdhc), UN)
    fails("sdad_hash", lambda: verify_cda(keys.icc.public, sdad, b"\x00" * 4, 0x80, tdhc))


def test_cda_dynamic_data_too_short(keys: Keys) -> None:
    sdad = make_sdad(keys.icc, bytes.fromhex("04 00000001 80") + AC, UN)
    fails("sdad_format", lambda: verify_sdad(keys.icc.public, sdad, UN, cda=True))
    # the same data is a fine DDA signature
    assert verify_sdad(keys.icc.public, sdad, UN).dynamic_number == b"\x00\x00\x00\x01"


def test_cda_transaction_data_hash_skips_9f4b_and_keeps_card_encoding() -> None:
    r77 = bytes.fromhex("9F2701 80 9F3602 0001 9F4B03 AABBCC 9F2608") + AC + bytes.fromhex("9F10 81 02 0102")
    want = hashlib.sha1(
        bytes.fromhex("0102")
        + bytes.fromhex("0304")
        + bytes.fromhex("9F2701809F360200019F2608")
        + AC
        + bytes.fromhex("9F1081020102")
    ).digest()
    assert oda.cda_transaction_data_hash(b"\x01\x02", b"\x03\x04", r77) == want
    # order matters
    swapped = bytes.fromhex("9F3602 0001 9F2701 80")
    assert oda.cda_transaction_data_hash(b"", b"", swapped) != oda.cda_transaction_data_hash(
        b"", b"", bytes.fromhex("9F2701 80 9F3602 0001")
    )
    # padding between objects is not an object
    assert (
        oda.cda_transaction_data_hash(b"", b"", bytes.fromhex("00 9F2701 80 FF"))
        == hashlib.sha1(bytes.fromhex("9F270180")).digest()
    )


@pytest.mark.parametrize("raw", ["9F27", "9F2702 80", "9F", "9F27 84 00000001 80", "DF81818181 01 00"])
def test_cda_transaction_data_hash_malformed(raw: str) -> None:
    fails("cda_transaction_data_hash", lambda: oda.cda_transaction_data_hash(b"", b"", bytes.fromhex(raw)))


# --------------------------------------------------------------------------- static data


def test_static_data_sfi_1_to_10_without_70_and_11_to_30_whole() -> None:
    long_value = bytes.fromhex("9F0581 80") + bytes(128)  # 70 81 xx: the two-byte length form
    records = [
        (1, bytes.fromhex("7007 5A05 4761739001")),
        (2, b"\x70\x81" + bytes([len(long_value)]) + long_value),
        (11, bytes.fromhex("7003 9F0800")),
        (30, bytes.fromhex("DEADBEEF")),
    ]
    got = oda.static_data_to_authenticate(records, b"\x39\x00", None)
    assert got == bytes.fromhex("5A054761739001") + long_value + bytes.fromhex("70039F0800 DEADBEEF")


def test_static_data_aip_only_when_the_tag_list_says_82() -> None:
    records = [(1, bytes.fromhex("7003 9F0800"))]
    assert oda.static_data_to_authenticate(records, b"\x39\x00", b"\x82") == bytes.fromhex("9F0800 3900")
    assert oda.static_data_to_authenticate(records, b"\x39\x00", b"") == bytes.fromhex("9F0800")
    for bad in (b"\x82\x82", b"\x9f\x02", b"\x82\x5a", b"\x9f"):
        with pytest.raises(OdaFailure) as info:
            oda.static_data_to_authenticate(records, b"\x39\x00", bad)
        assert info.value.name == "icc_data_missing"


@pytest.mark.parametrize(
    ("sfi", "raw"),
    [
        (1, "5A0147"),  # not a 70 template
        (3, "7003 9F08"),  # truncated
        (10, "7001 00 7001 00"),  # two templates
        (2, ""),  # empty record
        (0, "7000"),  # SFI out of range
        (31, "7000"),
    ],
)
def test_static_data_refuses_bad_records(sfi: int, raw: str) -> None:
    with pytest.raises(OdaFailure) as info:
        oda.static_data_to_authenticate([(sfi, bytes.fromhex(raw))], b"\x39\x00", None)
    assert info.value.name == "icc_data_missing"
    assert str(sfi) in info.value.detail


# --------------------------------------------------------------------------- whole chain


def test_full_chain_sda_and_dda(keys: Keys) -> None:
    store = CapkStore.from_entries(_store(keys))
    ca = oda.ca_public_key(store, RID, 0x92, TODAY)
    records = [(1, b"\x70" + bytes([len(STATIC) - 2]) + STATIC[:-2])]
    static = oda.static_data_to_authenticate(records, STATIC[-2:], b"\x82")
    assert static == STATIC
    c90, c92, c9f32 = make_issuer_cert(keys.ca, keys.issuer)
    issuer = recover_issuer_key(ca, c90, c92, c9f32, PAN, TODAY)
    assert verify_ssad(issuer, make_ssad(keys.issuer, static=static), static) == b"\xda\xc1"
    icc = recover_icc(issuer, make_icc_cert(keys.issuer, keys.icc, static=static), static=static)
    assert verify_sdad(icc, make_sdad(keys.icc, DYNAMIC, UN), UN).dynamic_number == DYNAMIC[1:]


# --------------------------------------------------------------------------- untrusted bytes

RANDOM = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _only_oda_failure(call: Callable[[], object]) -> None:
    try:
        call()
    except OdaFailure as exc:
        assert exc.name in oda.FAILURES


@RANDOM
@given(st.data())
def test_random_issuer_certificates(keys: Keys, data: st.DataObject) -> None:
    size = data.draw(st.sampled_from([keys.ca.size, keys.ca.size - 1, 0, 3]))
    cert = data.draw(st.binary(min_size=size, max_size=size))
    remainder = data.draw(st.binary(max_size=40))
    exponent = data.draw(st.binary(max_size=4))
    pan = data.draw(st.text(max_size=20))
    _only_oda_failure(lambda: recover_issuer_key(keys.ca.public, cert, remainder, exponent, pan, TODAY))


@RANDOM
@given(
    body=st.binary(min_size=1024 // 8 - 22, max_size=1024 // 8 - 22),
    rem=st.binary(max_size=40),
    exp=st.binary(max_size=4),
    pan=st.text(max_size=20),
)
def test_correctly_signed_garbage_issuer_certificates(
    keys: Keys, body: bytes, rem: bytes, exp: bytes, pan: str
) -> None:
    """Bytes that pass trailer, header and hash, with anything inside."""
    body = b"\x02" + body[1:]
    cert = _frame(keys.ca, body, hashlib.sha1(body + rem + exp).digest())
    _only_oda_failure(lambda: recover_issuer_key(keys.ca.public, cert, rem, exp, pan or PAN, TODAY))


@RANDOM
@given(
    body=st.binary(min_size=1024 // 8 - 22, max_size=1024 // 8 - 22),
    rem=st.binary(max_size=50),
    exp=st.binary(max_size=4),
)
def test_correctly_signed_garbage_icc_certificates(
    keys: Keys, issuer_key: IssuerKey, body: bytes, rem: bytes, exp: bytes
) -> None:
    body = b"\x04" + _pad_digits(PAN, 10) + body[11:]
    cert = _frame(keys.issuer, body, hashlib.sha1(body + rem + exp + STATIC).digest())
    _only_oda_failure(lambda: recover_icc_key(issuer_key, cert, rem, exp, PAN, STATIC, TODAY))


@RANDOM
@given(st.data())
def test_random_icc_certificates_ssad_and_sdad(
    keys: Keys, issuer_key: IssuerKey, data: st.DataObject
) -> None:
    size = data.draw(st.sampled_from([128, 127, 129, 0, 1]))
    blob = data.draw(st.binary(min_size=size, max_size=size))
    other = data.draw(st.binary(max_size=64))
    _only_oda_failure(lambda: recover_icc_key(issuer_key, blob, other, other[:3], PAN, other, TODAY))
    _only_oda_failure(lambda: verify_ssad(issuer_key, blob, other))
    cda = data.draw(st.booleans())
    _only_oda_failure(lambda: verify_sdad(keys.icc.public, blob, other, cda=cda))
    _only_oda_failure(lambda: verify_cda(keys.icc.public, blob, other, other[:1], other[:20]))


@RANDOM
@given(
    body=st.binary(min_size=128 - 22, max_size=128 - 22), terminal=st.binary(max_size=16), cda=st.booleans()
)
def test_correctly_signed_garbage_sdad(keys: Keys, body: bytes, terminal: bytes, cda: bool) -> None:
    body = b"\x05\x01" + body[2:]
    sdad = _frame(keys.icc, body, hashlib.sha1(body + terminal).digest())
    _only_oda_failure(lambda: verify_sdad(keys.icc.public, sdad, terminal, cda=cda))


@settings(max_examples=300, deadline=None)
@given(
    modulus=st.binary(max_size=48),
    exponent=st.binary(max_size=3),
    blob=st.binary(max_size=48),
)
def test_any_key_and_any_bytes(modulus: bytes, exponent: bytes, blob: bytes) -> None:
    key = PublicKey(modulus, exponent)
    _only_oda_failure(lambda: verify_ssad(key, blob, b""))
    _only_oda_failure(lambda: verify_sdad(key, blob, b"", cda=True))
    _only_oda_failure(lambda: recover_icc_key(key, blob, b"", b"\x03", PAN, b"", TODAY))
    _only_oda_failure(lambda: recover_issuer_key(key, blob, b"", b"\x03", PAN, TODAY))


@settings(max_examples=300, deadline=None)
@given(
    records=st.lists(st.tuples(st.integers(-1, 40), st.binary(max_size=40)), max_size=4),
    aip=st.binary(max_size=3),
    tag_list=st.none() | st.binary(max_size=6),
    r77=st.binary(max_size=60),
)
def test_random_records_and_templates(
    records: list[tuple[int, bytes]], aip: bytes, tag_list: bytes | None, r77: bytes
) -> None:
    _only_oda_failure(lambda: oda.static_data_to_authenticate(records, aip, tag_list))
    _only_oda_failure(lambda: oda.cda_transaction_data_hash(b"", b"", r77))


# --------------------------------------------------------------------------- the simulator's PKI


@pytest.fixture(scope="module")
def sim() -> object:
    pki = pytest.importorskip("simulator.pki")
    try:
        return pki.load_pki()
    except pki.PkiError as exc:  # pragma: no cover - keys not shipped yet
        pytest.skip(str(exc))


def _sim_pub(key: object) -> PublicKey:
    return PublicKey(key.modulus, key.exponent)  # type: ignore[attr-defined]


ISSUER_TAMPER_NAMES = {
    "header": "issuer_certificate_header",
    "format": "issuer_certificate_format",
    "trailer": "issuer_certificate_trailer",
    "hash": "issuer_certificate_hash",
    "issuer_id": "issuer_identifier_mismatch",
    "expired": "issuer_certificate_expired",
    "length": "issuer_certificate_length",
}
ICC_TAMPER_NAMES = {
    "header": "icc_certificate_header",
    "format": "icc_certificate_format",
    "trailer": "icc_certificate_trailer",
    "hash": "icc_certificate_hash",
    "pan": "icc_pan_mismatch",
    "expired": "icc_certificate_expired",
}


@pytest.mark.parametrize("tamper", [None, *sorted(ISSUER_TAMPER_NAMES)])
def test_simulator_issuer_certificates(sim: object, tamper: str | None) -> None:
    from simulator import pki

    ca = sim.ca("A000000003", 0x50)  # type: ignore[attr-defined]
    issuer = sim.issuer("visa-issuer")  # type: ignore[attr-defined]
    cert, rem, exp = pki.issuer_certificate(
        ca, issuer.public, "476173", "1230", b"\x00\x00\x01", tamper=tamper
    )
    if tamper is None:
        key = recover_issuer_key(_sim_pub(ca), cert, rem, exp, PAN, TODAY)
        assert key.public_key == _sim_pub(issuer)
    else:
        fails(
            ISSUER_TAMPER_NAMES[tamper], lambda: recover_issuer_key(_sim_pub(ca), cert, rem, exp, PAN, TODAY)
        )


@pytest.mark.parametrize("tamper", [None, *sorted(ICC_TAMPER_NAMES)])
def test_simulator_icc_certificates(sim: object, tamper: str | None) -> None:
    from simulator import pki

    issuer = sim.issuer("visa-issuer")  # type: ignore[attr-defined]
    icc = sim.icc("visa-qvsdc-offline")  # type: ignore[attr-defined]
    cert, rem, exp = pki.icc_certificate(
        issuer, icc.public, PAN, "1230", b"\x00\x00\x02", STATIC, tamper=tamper
    )

    def call() -> PublicKey:
        return recover_icc_key(_sim_pub(issuer), cert, rem, exp, PAN, STATIC, TODAY)

    if tamper is None:
        assert call() == _sim_pub(icc)
    else:
        fails(ICC_TAMPER_NAMES[tamper], call)


@pytest.mark.parametrize("tamper", [None, "header", "format", "trailer", "hash"])
def test_simulator_ssad_and_sdad(sim: object, tamper: str | None) -> None:
    from simulator import pki

    issuer = sim.issuer("visa-issuer")  # type: ignore[attr-defined]
    icc = sim.icc("mc-cda-offline")  # type: ignore[attr-defined]
    ssad = pki.ssad(issuer, STATIC, b"\xda\xc1", tamper=tamper)
    tdhc = hashlib.sha1(b"x").digest()
    sdad = pki.sdad(icc, _cda_dynamic(0x40, tdhc), UN, tamper=tamper)
    if tamper is None:
        assert verify_ssad(_sim_pub(issuer), ssad, STATIC) == b"\xda\xc1"
        assert verify_cda(_sim_pub(icc), sdad, UN, 0x40, tdhc).cryptogram == AC
    else:
        fails(f"ssad_{tamper}", lambda: verify_ssad(_sim_pub(issuer), ssad, STATIC))
        fails(f"sdad_{tamper}", lambda: verify_cda(_sim_pub(icc), sdad, UN, 0x40, tdhc))
