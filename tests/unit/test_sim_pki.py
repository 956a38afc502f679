"""The simulator's test PKI: shipped keys load, certificates recover, tampers hit one check."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from simulator import pki

DATA = Path(pki.__file__).resolve().parent / "data"
STATIC = bytes.fromhex("5A0847617390010100109F0702FF00") + bytes.fromhex("3C00")


def raw_recover(signature: bytes, n: int, e: int) -> bytes:
    """An independent raw RSA public operation, not pki's own."""
    size = (n.bit_length() + 7) // 8
    return pow(int.from_bytes(signature, "big"), e, n).to_bytes(size, "big")


@pytest.fixture(scope="module")
def keys() -> pki.SimulatorPki:
    return pki.load_pki()


def test_key_file_is_marked_and_sizes_are_right(keys: pki.SimulatorPki) -> None:
    raw = json.loads(pki.KEYS_FILE.read_text(encoding="utf-8"))
    assert "NOT FOR PRODUCTION" in raw["WARNING"]
    assert "NOT-FOR-PRODUCTION" in pki.KEYS_FILE.name
    assert set(keys.cas) == {
        ("A000000003", 0x50), ("A000000004", 0x50), ("A000000003", 0x51), ("A000000333", 0x50)
    }  # fmt: skip
    for ca in keys.cas.values():
        assert ca.n.bit_length() == 1408 and ca.e == 3
    for info in keys.issuers.values():
        assert info.key.n.bit_length() == 1152 and info.key.e in (3, 65537)
    for icc in keys.iccs.values():
        assert icc.n.bit_length() == 1024
    assert pki.load_pki() is keys  # cached


def test_private_keys_are_consistent(keys: pki.SimulatorPki) -> None:
    for key in [*keys.cas.values(), *(i.key for i in keys.issuers.values()), *keys.iccs.values()]:
        m = 0x1234567890ABCDEF
        assert pow(pow(m, key.d, key.n), key.e, key.n) == m


def test_capks_json_matches_keys_and_checksums(keys: pki.SimulatorPki) -> None:
    doc = json.loads((DATA / "capks.json").read_text(encoding="utf-8"))
    assert len(doc["keys"]) == 4
    for entry in doc["keys"]:
        assert entry["scheme"] == "posterm simulator" and entry["kind"] == "simulator"
        assert entry["expiry"] == "2035-12-31"
        key = keys.ca(entry["rid"], int(entry["index"], 16))
        assert entry["modulus"] == key.modulus.hex().upper()
        assert entry["exponent"] == "03"
        expected = hashlib.sha1(
            bytes.fromhex(entry["rid"] + entry["index"] + entry["modulus"] + entry["exponent"])
        ).hexdigest().upper()
        assert entry["checksum"] == expected


def _issuer_cert(keys: pki.SimulatorPki, tamper: str | None = None) -> tuple[bytes, bytes, bytes]:
    ca = keys.ca("A000000003", 0x50)
    return pki.issuer_certificate(ca, keys.issuer("visa-issuer").public, "476173", "1230",
                                  b"\x00\x00\x01", tamper=tamper)


def test_issuer_certificate_recovers(keys: pki.SimulatorPki) -> None:
    ca = keys.ca("A000000003", 0x50)
    issuer = keys.issuer("visa-issuer")
    cert, rem, exp = _issuer_cert(keys)
    assert len(cert) == ca.size == 176
    rec = raw_recover(cert, ca.n, ca.e)
    assert rec[0] == 0x6A and rec[1] == 0x02 and rec[-1] == 0xBC
    assert rec[2:6] == bytes.fromhex("476173FF")
    assert rec[6:8] == bytes.fromhex("1230")
    assert rec[11:13] == b"\x01\x01" and rec[13] == issuer.size and rec[14] == 1
    part = rec[15:-21]
    assert part + rem == issuer.modulus
    assert exp == b"\x03"
    assert hashlib.sha1(rec[1:-21] + rem + exp).digest() == rec[-21:-1]


@pytest.mark.parametrize("tamper", sorted(pki.ISSUER_TAMPERS))
def test_issuer_certificate_tampers(keys: pki.SimulatorPki, tamper: str) -> None:
    ca = keys.ca("A000000003", 0x50)
    cert, rem, exp = _issuer_cert(keys, tamper)
    if tamper == "length":
        assert len(cert) == ca.size + 1
        cert = cert[1:]
    rec = raw_recover(cert, ca.n, ca.e)
    checks = {
        "header": rec[0] == 0x6A,
        "format": rec[1] == 0x02,
        "trailer": rec[-1] == 0xBC,
        "hash": hashlib.sha1(rec[1:-21] + rem + exp).digest() == rec[-21:-1],
        "issuer_id": rec[2:6] == bytes.fromhex("476173FF"),
        "expired": rec[6:8] == bytes.fromhex("1230"),
    }
    failing = {name for name, ok in checks.items() if not ok}
    assert failing == (set() if tamper == "length" else {tamper})


def test_icc_certificate_and_tampers(keys: pki.SimulatorPki) -> None:
    issuer = keys.issuer("visa-issuer")
    icc = keys.icc("visa-qvsdc-offline")
    pan = "4761739001010010"
    for tamper in [None, *sorted(pki.ICC_TAMPERS)]:
        cert, rem, exp = pki.icc_certificate(issuer, icc.public, pan, "1230", b"\x00\x00\x02", STATIC,
                                             tamper=tamper)
        assert len(cert) == issuer.size
        rec = raw_recover(cert, issuer.n, issuer.e)
        checks = {
            "header": rec[0] == 0x6A,
            "format": rec[1] == 0x04,
            "trailer": rec[-1] == 0xBC,
            "hash": hashlib.sha1(rec[1:-21] + rem + exp + STATIC).digest() == rec[-21:-1],
            "pan": rec[2:12] == bytes.fromhex(pan + "FFFF"),
            "expired": rec[12:14] == bytes.fromhex("1230"),
        }
        failing = {name for name, ok in checks.items() if not ok}
        assert failing == ({tamper} if tamper else set())
        if tamper is None:
            assert rec[21:-21] + rem == icc.modulus
            assert rec[19] == icc.size and exp == icc.exponent


def test_ssad_and_sdad(keys: pki.SimulatorPki) -> None:
    issuer = keys.issuer("visa-issuer")
    icc = keys.icc("visa-qvsdc-offline")
    block = raw_recover(pki.ssad(issuer, STATIC, b"\xda\xc1"), issuer.n, issuer.e)
    assert block[:5] == bytes.fromhex("6A0301DAC1") and block[-1] == 0xBC
    assert set(block[5:-21]) == {0xBB}
    assert hashlib.sha1(block[1:-21] + STATIC).digest() == block[-21:-1]

    dyn = bytes.fromhex("0411223344")
    terminal = bytes.fromhex("0102030400000000123409780000")
    for tamper in [None, *sorted(pki.SIGNATURE_TAMPERS)]:
        rec = raw_recover(pki.sdad(icc, dyn, terminal, tamper=tamper), icc.n, icc.e)
        checks = {
            "header": rec[0] == 0x6A,
            "format": rec[1] == 0x05,
            "trailer": rec[-1] == 0xBC,
            "hash": hashlib.sha1(rec[1:-21] + terminal).digest() == rec[-21:-1],
        }
        assert {n for n, ok in checks.items() if not ok} == ({tamper} if tamper else set())
        assert rec[2] == 0x01 and rec[3] == len(dyn) and rec[4:4 + len(dyn)] == dyn


def test_bad_tamper_and_unknown_keys_are_clear_errors(keys: pki.SimulatorPki) -> None:
    with pytest.raises(pki.PkiError, match="unknown tamper"):
        _issuer_cert(keys, "nonsense")
    with pytest.raises(pki.PkiError, match="no simulator CA"):
        keys.ca("A000000003", 0x99)
    with pytest.raises(pki.PkiError, match="known"):
        keys.icc("nope")


def test_missing_key_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(pki.PkiError, match="generate"):
        pki.load_pki(tmp_path / "absent.json")


def test_add_missing_generates_only_what_the_key_file_lacks(tmp_path: Path) -> None:
    """``python -m simulator.pki add``: a new scheme's keys without re-keying the cards already shipped."""
    (tmp_path / "pki").mkdir()
    doc = json.loads(pki.KEYS_FILE.read_text(encoding="utf-8"))
    doc["icc"] = [k for k in doc["icc"] if k["name"] != "unionpay-fdda"]
    (tmp_path / "pki" / pki.KEYS_FILE.name).write_text(json.dumps(doc), encoding="utf-8")
    assert pki.add_missing(tmp_path) == ["unionpay-fdda"]
    after = json.loads((tmp_path / "pki" / pki.KEYS_FILE.name).read_text(encoding="utf-8"))
    assert after["ca"] == doc["ca"] and after["issuers"] == doc["issuers"]
    assert after["icc"][:-1] == doc["icc"] and after["icc"][-1]["issuer"] == "unionpay-issuer"
    assert json.loads((tmp_path / "capks.json").read_text(encoding="utf-8")) == json.loads(
        (DATA / "capks.json").read_text(encoding="utf-8")
    )
    assert pki.add_missing(tmp_path) == []
