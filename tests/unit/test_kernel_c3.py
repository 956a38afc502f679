"""Kernel 3 (qVSDC) against a small hand-written card with its own test PKI.

The card here is deliberately independent of simulator/: it builds its
certificates and fDDA signature from the EMV Book 2 layouts with keys made
for this test module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emv.apdu import CardCommunicationError
from emv.capk import Capk, CapkStore, checksum_of
from emv.config import ExceptionFile, TerminalConfig
from emv.entry_point import process
from emv.kernel_c3 import Cryptogram, cryptogram_type, decide_cvm
from emv.kernel_common import KernelError
from emv.oda import CertificateRevocationList
from emv.outcome import CvmPerformed, Message, Outcome, TransactionResult
from emv.tlv import encode
from emv.transaction import TransactionData
from emv.tvr import Tsi, Tvr

RID = bytes.fromhex("A000000003")
AID = RID + b"\x10\x10"
CA_INDEX = 0x99
PAN = "4761739001010010"
OK = b"\x90\x00"
PDOL = bytes.fromhex("9F6604 9F0206 9F3704 5F2A02")


@dataclass(frozen=True)
class Key:
    n: int
    e: int
    d: int
    size: int

    @property
    def modulus(self) -> bytes:
        return self.n.to_bytes(self.size, "big")

    @property
    def exponent(self) -> bytes:
        return self.e.to_bytes(1 if self.e == 3 else 3, "big")

    def sign(self, message: bytes) -> bytes:
        assert len(message) == self.size
        return pow(int.from_bytes(message, "big"), self.d, self.n).to_bytes(self.size, "big")


def _key(bits: int) -> Key:
    priv = rsa.generate_private_key(public_exponent=3, key_size=bits)
    nums = priv.private_numbers()
    return Key(nums.public_numbers.n, 3, nums.d, bits // 8)


@pytest.fixture(scope="module")
def keys() -> dict[str, Key]:
    return {"ca": _key(1408), "issuer": _key(1152), "icc": _key(1024)}


def _sha1(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts)).digest()


def issuer_certificate(ca: Key, issuer: Key, serial: bytes, tamper: bool = False) -> tuple[bytes, bytes]:
    room = ca.size - 36
    pk = issuer.modulus
    part, remainder = (pk[:room], pk[room:]) if len(pk) > room else (pk + b"\xbb" * (room - len(pk)), b"")
    body = (
        b"\x02"
        + bytes.fromhex(PAN[:6] + "FF")
        + bytes.fromhex("1230")
        + serial
        + b"\x01\x01"
        + bytes([issuer.size, len(issuer.exponent)])
        + part
    )
    digest = _sha1(body, remainder, issuer.exponent)
    if tamper:
        digest = bytes([digest[0] ^ 1]) + digest[1:]
    return ca.sign(b"\x6a" + body + digest + b"\xbc"), remainder


def icc_certificate(issuer: Key, icc: Key, static_data: bytes) -> tuple[bytes, bytes]:
    room = issuer.size - 42
    pk = icc.modulus
    part, remainder = (pk[:room], pk[room:]) if len(pk) > room else (pk + b"\xbb" * (room - len(pk)), b"")
    body = (
        b"\x04"
        + bytes.fromhex(PAN.ljust(20, "F"))
        + bytes.fromhex("1230")
        + b"\x00\x00\x01"
        + b"\x01\x01"
        + bytes([icc.size, len(icc.exponent)])
        + part
    )
    digest = _sha1(body, remainder, icc.exponent, static_data)
    return issuer.sign(b"\x6a" + body + digest + b"\xbc"), remainder


def sdad(icc: Key, terminal_dynamic_data: bytes) -> bytes:
    dyn = b"\x04\x11\x22\x33\x44"
    pad = icc.size - 25 - len(dyn)
    body = b"\x05\x01" + bytes([len(dyn)]) + dyn + b"\xbb" * pad
    return icc.sign(b"\x6a" + body + _sha1(body, terminal_dynamic_data) + b"\xbc")


@dataclass
class Card:
    """A qVSDC card: answers PPSE, SELECT, GPO and READ RECORD; everything tunable."""

    keys: dict[str, Key]
    cid: int | None = 0x40  # 9F27; None: only the IAD tells
    cvr_bits: int = 0x10  # CVR byte 2 bits 6-5 (01 = TC)
    aip: bytes = bytes.fromhex("2000")
    ctq: bytes | None = bytes.fromhex("2000")
    expiry: str = "301231"
    effective: str = "200101"
    capk_index: int = CA_INDEX
    issuer_serial: bytes = b"\x00\x00\x42"
    tamper_issuer: bool = False
    tamper_sdad: bool = False
    gpo_sw: bytes = OK
    gpo_override: bytes | None = None
    afl: bytes = bytes.fromhex("08010101 10010200")
    record_override: dict[tuple[int, int], bytes] = field(default_factory=dict)
    remove_at_record: tuple[int, int] | None = None
    extra_gpo: bytes = b""
    commands: list[bytes] = field(default_factory=list)

    def records(self) -> dict[tuple[int, int], bytes]:
        r1 = encode(
            0x70,
            encode(0x5A, bytes.fromhex(PAN))
            + encode(0x5F24, bytes.fromhex(self.expiry))
            + encode(0x5F25, bytes.fromhex(self.effective))
            + encode(0x9F4A, b"\x82"),
        )
        static = r1[2:] + self.aip
        icert, irem = issuer_certificate(
            self.keys["ca"], self.keys["issuer"], self.issuer_serial, self.tamper_issuer
        )
        ccert, crem = icc_certificate(self.keys["issuer"], self.keys["icc"], static)
        r2 = encode(
            0x70,
            encode(0x8F, bytes([self.capk_index]))
            + encode(0x90, icert)
            + encode(0x92, irem)
            + encode(0x9F32, self.keys["issuer"].exponent),
        )
        r3 = encode(
            0x70,
            encode(0x9F46, ccert)
            + encode(0x9F48, crem)
            + encode(0x9F47, self.keys["icc"].exponent)
            + encode(0x9F69, bytes.fromhex("01AABBCCDD0000")),
        )
        out = {(1, 1): r1, (2, 1): r2, (2, 2): r3}
        out.update(self.record_override)
        return out

    def gpo(self, pdol_values: bytes) -> bytes:
        if self.gpo_override is not None:
            return self.gpo_override
        ttq, amount, un, currency = pdol_values[:4], pdol_values[4:10], pdol_values[10:14], pdol_values[14:16]
        assert ttq  # the terminal sent a TTQ
        signed_un = bytes(4) if self.tamper_sdad else un
        tdd = signed_un + amount + currency + bytes.fromhex("01AABBCCDD0000")
        iad = bytes([0x06, 0x01, 0x11, 0x03, self.cvr_bits, 0x00, 0x00])
        body = (
            encode(0x82, self.aip)
            + encode(0x94, self.afl)
            + encode(0x9F36, b"\x00\x07")
            + encode(0x9F26, bytes.fromhex("1122334455667788"))
            + encode(0x9F10, iad)
            + (encode(0x9F27, bytes([self.cid])) if self.cid is not None else b"")
            + (encode(0x9F6C, self.ctq) if self.ctq is not None else b"")
            + encode(0x9F4B, sdad(self.keys["icc"], tdd))
            + self.extra_gpo
        )
        return encode(0x77, body) + self.gpo_sw

    def exchange(self, command: bytes) -> bytes:
        self.commands.append(command)
        ins = command[1]
        if ins == 0xA4:
            name = command[5 : 5 + command[4]]
            if name == b"2PAY.SYS.DDF01":
                entry = encode(0x61, encode(0x4F, AID) + encode(0x50, b"VISA") + encode(0x87, b"\x01"))
                return encode(0x6F, encode(0x84, name) + encode(0xA5, encode(0xBF0C, entry))) + OK
            if name == AID:
                return encode(0x6F, encode(0x84, AID) + encode(0xA5, encode(0x9F38, PDOL))) + OK
            return b"\x6a\x82"
        if ins == 0xA8:
            if self.gpo_sw != OK:
                return self.gpo_sw
            return self.gpo(command[7 : 7 + command[6]])
        if ins == 0xB2:
            key = (command[3] >> 3, command[2])
            if key == self.remove_at_record:
                raise CardCommunicationError("card removed")
            rec = self.records().get(key)
            return rec + OK if rec is not None else b"\x6a\x83"
        return b"\x6d\x00"


def config(keys: dict[str, Key], pin_pad: bool = False, **kw: Any) -> TerminalConfig:
    ca = keys["ca"]
    capk = Capk(RID, CA_INDEX, ca.modulus, ca.exponent, checksum_of(RID, CA_INDEX, ca.modulus, ca.exponent))
    base = TerminalConfig.example(capks=CapkStore([capk]), pin_pad=pin_pad)
    return replace(base, **kw)


def txn(amount: int = 1234, **kw: Any) -> TransactionData:
    return TransactionData(amount, 978, bytes.fromhex("250614"), bytes.fromhex("A1B2C3D4"), **kw)


def run(card: Card, cfg: TerminalConfig | None = None, amount: int = 1234, **kw: Any) -> TransactionResult:
    return process(card, cfg or config(card.keys), txn(amount, **kw))


def messages(r: TransactionResult) -> list[Message]:
    return [m.message for m in r.messages]


# --------------------------------------------------------------------------- outcomes


def test_offline_approval_with_fdda(keys: dict[str, Key]) -> None:
    card = Card(keys)
    r = run(card)
    assert r.outcome is Outcome.APPROVED, r.error
    assert (r.kernel, r.aid, r.cryptogram_type) == (3, AID, "TC")
    assert r.cryptogram == bytes.fromhex("1122334455667788")
    assert (r.oda.method, r.oda.result, r.oda.failure) == ("fDDA", "passed", None)
    assert r.oda.issuer_key_recovered and r.oda.icc_key_recovered
    assert Tsi(r.tsi).is_set(Tsi.ODA_PERFORMED)
    assert r.tvr == bytes(5)
    assert messages(r) == [Message.CARD_READ_OK, Message.APPROVED]
    assert r.cvm is CvmPerformed.NO_CVM
    assert r.card_data[0x9F02] == bytes.fromhex("000000001234")
    assert r.commands == card.commands
    assert r.masked_pan == "476173******0010"


def test_pdol_data_in_gpo_and_overrides_win(keys: dict[str, Key]) -> None:
    card = Card(keys)
    r = run(card, overrides={0x9F37: bytes.fromhex("0BADCAFE")})
    gpo = next(c for c in card.commands if c[1] == 0xA8)
    assert gpo[5:7] == bytes([0x83, 16])
    assert gpo[7:23] == bytes.fromhex("32004000 000000001234 0BADCAFE 0978")  # no PIN pad: TTQ without online PIN
    assert r.outcome is Outcome.APPROVED  # the card signed what the terminal sent


def test_arqc_is_online_request(keys: dict[str, Key]) -> None:
    r = run(Card(keys, cid=0x80))
    assert r.outcome is Outcome.ONLINE_REQUEST
    assert r.cryptogram_type == "ARQC"
    assert r.oda.result == "not_performed"
    assert Tvr(r.tvr).is_set(Tvr.ODA_NOT_PERFORMED)
    assert messages(r) == [Message.CARD_READ_OK, Message.AUTHORISING]


def test_aac_is_declined(keys: dict[str, Key]) -> None:
    r = run(Card(keys, cid=0x00))
    assert (r.outcome, r.cryptogram_type) == (Outcome.DECLINED, "AAC")
    assert messages(r) == [Message.CARD_READ_OK, Message.NOT_AUTHORISED]


@pytest.mark.parametrize(("bits", "kind"), [(0x00, "AAC"), (0x10, "TC"), (0x20, "ARQC")])
def test_cryptogram_type_from_iad(keys: dict[str, Key], bits: int, kind: str) -> None:
    r = run(Card(keys, cid=None, cvr_bits=bits))
    assert r.cryptogram_type == kind


def test_cryptogram_type_unit() -> None:
    assert cryptogram_type({0x9F27: b"\x40", 0x9F10: bytes.fromhex("06011103A00000")}) is Cryptogram.TC
    with pytest.raises(KernelError):
        cryptogram_type({0x9F27: b"\xc0"})  # reserved
    with pytest.raises(KernelError):
        cryptogram_type({0x9F10: bytes.fromhex("0A01")})
    with pytest.raises(KernelError):
        cryptogram_type({0x9F27: b"\x40\x00"})


# --------------------------------------------------------------------------- ODA failures and the CTQ


@pytest.mark.parametrize(
    ("ctq", "online_capable", "outcome"),
    [
        ("2000", True, Outcome.ONLINE_REQUEST),
        ("2000", False, Outcome.DECLINED),
        ("1000", True, Outcome.TRY_ANOTHER_INTERFACE),
        ("0000", True, Outcome.DECLINED),
        (None, True, Outcome.DECLINED),
    ],
)
def test_sdad_failure_follows_ctq(
    keys: dict[str, Key], ctq: str | None, online_capable: bool, outcome: Outcome
) -> None:
    card = Card(keys, tamper_sdad=True, ctq=bytes.fromhex(ctq) if ctq else None)
    r = run(card, config(keys, online_capable=online_capable))
    assert r.outcome is outcome
    assert (r.oda.result, r.oda.failure) == ("failed", "sdad_hash")
    assert r.oda.icc_key_recovered
    assert Tvr(r.tvr).names() == ["dda_failed"]


def test_issuer_certificate_hash(keys: dict[str, Key]) -> None:
    r = run(Card(keys, tamper_issuer=True))
    assert r.outcome is Outcome.ONLINE_REQUEST
    assert r.oda.failure == "issuer_certificate_hash"
    assert not r.oda.issuer_key_recovered


def test_ca_key_missing_and_revoked_certificate(keys: dict[str, Key]) -> None:
    r = run(Card(keys, capk_index=0x42, ctq=bytes.fromhex("1000")))
    assert (r.outcome, r.oda.failure) == (Outcome.TRY_ANOTHER_INTERFACE, "ca_key_missing")
    assert messages(r)[-1] is Message.INSERT_CARD
    crl = CertificateRevocationList([(RID, CA_INDEX, b"\x00\x00\x42")])
    r = run(Card(keys), config(keys, revocation_list=crl))
    assert (r.outcome, r.oda.failure) == (Outcome.ONLINE_REQUEST, "issuer_certificate_revoked")


def test_icc_data_missing(keys: dict[str, Key]) -> None:
    card = Card(keys, afl=bytes.fromhex("08010101"))  # the certificates are never read
    r = run(card)
    assert r.oda.failure == "icc_data_missing"
    assert set(Tvr(r.tvr).names()) == {"dda_failed", "icc_data_missing"}


def test_tc_without_dda_support_is_not_approved(keys: dict[str, Key]) -> None:
    r = run(Card(keys, aip=bytes.fromhex("0000"), ctq=bytes.fromhex("0000")))
    assert r.outcome is Outcome.DECLINED
    assert Tvr(r.tvr).is_set(Tvr.ODA_NOT_PERFORMED)


# --------------------------------------------------------------------------- dates, exception file


@pytest.mark.parametrize(("ctq", "outcome"), [("0000", Outcome.DECLINED), ("0800", Outcome.ONLINE_REQUEST)])
def test_expired(keys: dict[str, Key], ctq: str, outcome: Outcome) -> None:
    r = run(Card(keys, expiry="250613", ctq=bytes.fromhex(ctq)))
    assert r.outcome is outcome
    assert "expired_application" in Tvr(r.tvr).names()
    assert r.oda.result == "passed"


def test_expires_today_is_fine(keys: dict[str, Key]) -> None:
    assert run(Card(keys, expiry="250614")).outcome is Outcome.APPROVED


def test_not_yet_effective(keys: dict[str, Key]) -> None:
    r = run(Card(keys, effective="250615"))
    assert r.outcome is Outcome.DECLINED
    assert Tvr(r.tvr).is_set(Tvr.NOT_YET_EFFECTIVE)


def test_bad_expiry_date_is_processing_error(keys: dict[str, Key]) -> None:
    r = run(Card(keys, expiry="251399"))
    assert r.outcome is Outcome.END_APPLICATION


def test_exception_file_declines(keys: dict[str, Key]) -> None:
    ef = ExceptionFile.from_entries([ExceptionFile.entry_for(PAN)])
    r = run(Card(keys), config(keys, exception_file=ef))
    assert r.outcome is Outcome.DECLINED
    assert Tvr(r.tvr).is_set(Tvr.PAN_IN_EXCEPTION_FILE)
    assert messages(r)[-1] is Message.NOT_AUTHORISED


def test_exception_file_wins_over_go_online(keys: dict[str, Key]) -> None:
    ef = ExceptionFile.from_entries([ExceptionFile.entry_for(PAN)])
    r = run(Card(keys, tamper_sdad=True), config(keys, exception_file=ef))
    assert r.outcome is Outcome.DECLINED


# --------------------------------------------------------------------------- CVM


@pytest.mark.parametrize(
    ("cid", "ctq", "outcome", "cvm"),
    [
        (0x80, "8000", Outcome.ONLINE_REQUEST, CvmPerformed.ONLINE_PIN),
        (0x80, "4000", Outcome.ONLINE_REQUEST, CvmPerformed.SIGNATURE),
        (0x80, "0080", Outcome.ONLINE_REQUEST, CvmPerformed.CONSUMER_DEVICE),
        (0x80, "0000", Outcome.DECLINED, CvmPerformed.FAILED),
        (0x40, "4000", Outcome.APPROVED, CvmPerformed.SIGNATURE),
        (0x40, "8000", Outcome.ONLINE_REQUEST, CvmPerformed.ONLINE_PIN),
    ],
)
def test_cvm_when_required_with_a_pin_pad(
    keys: dict[str, Key], cid: int, ctq: str, outcome: Outcome, cvm: CvmPerformed
) -> None:
    cfg = config(keys, pin_pad=True)
    assert cfg.combinations[0].ttq[0] & 0x04  # online PIN advertised: there is a PIN pad
    visa = replace(cfg.combinations[0], cvm_required_limit=1000)
    r = run(Card(keys, cid=cid, ctq=bytes.fromhex(ctq)), replace(cfg, combinations=(visa,)))
    assert (r.outcome, r.cvm) == (outcome, cvm)
    assert Tsi(r.tsi).is_set(Tsi.CARDHOLDER_VERIFICATION_PERFORMED)
    if cvm is CvmPerformed.SIGNATURE and outcome is Outcome.APPROVED:
        assert messages(r)[-1] is Message.APPROVED_PLEASE_SIGN
    assert Tvr(r.tvr).is_set(Tvr.ONLINE_PIN_ENTERED) == (cvm is CvmPerformed.ONLINE_PIN)


@pytest.mark.parametrize(
    ("cid", "ctq", "outcome", "cvm"),
    [
        # the card requires online PIN, nobody can enter one: insert the card (contact supported)
        (0x80, "8000", Outcome.TRY_ANOTHER_INTERFACE, CvmPerformed.FAILED),
        (0x40, "8000", Outcome.TRY_ANOTHER_INTERFACE, CvmPerformed.FAILED),
        # online PIN or signature: signature
        (0x80, "C000", Outcome.ONLINE_REQUEST, CvmPerformed.SIGNATURE),
        (0x40, "C000", Outcome.APPROVED, CvmPerformed.SIGNATURE),
        (0x80, "4000", Outcome.ONLINE_REQUEST, CvmPerformed.SIGNATURE),
        (0x80, "0080", Outcome.ONLINE_REQUEST, CvmPerformed.CONSUMER_DEVICE),
        (0x80, "0000", Outcome.DECLINED, CvmPerformed.FAILED),
    ],
)
def test_cvm_when_required_without_a_pin_pad(
    keys: dict[str, Key], cid: int, ctq: str, outcome: Outcome, cvm: CvmPerformed
) -> None:
    cfg = config(keys)
    visa = replace(cfg.combinations[0], cvm_required_limit=1000)
    r = run(Card(keys, cid=cid, ctq=bytes.fromhex(ctq)), replace(cfg, combinations=(visa,)))
    assert (r.outcome, r.cvm) == (outcome, cvm)
    tvr = Tvr(r.tvr)
    assert not tvr.is_set(Tvr.ONLINE_PIN_ENTERED)
    assert tvr.is_set(Tvr.CARDHOLDER_VERIFICATION_FAILED) == (cvm is CvmPerformed.FAILED)
    if outcome is Outcome.TRY_ANOTHER_INTERFACE:
        assert messages(r)[-1] is Message.INSERT_CARD
        assert r.error == (
            "the card requires online PIN and this reader has no PIN pad: insert the card or use another payment"
        )
        assert r.to_json()["cvm"] == "failed"


def test_online_pin_required_without_pin_pad_or_contact_is_declined(keys: dict[str, Key]) -> None:
    cfg = config(keys)
    visa = replace(cfg.combinations[0], cvm_required_limit=1000, ttq=bytes.fromhex("22004000"))  # no contact
    r = run(Card(keys, cid=0x80, ctq=bytes.fromhex("8000")), replace(cfg, combinations=(visa,)))
    assert (r.outcome, r.cvm) == (Outcome.DECLINED, CvmPerformed.FAILED)
    assert r.error == "the card requires online PIN and this reader has no PIN pad"


def test_a_ttq_claiming_online_pin_is_masked_without_a_pin_pad(keys: dict[str, Key]) -> None:
    """A configuration cannot make the reader claim online PIN without a PIN pad, even rebuilt by hand."""
    cfg = config(keys)
    visa = replace(cfg.combinations[0], cvm_required_limit=1000, ttq=bytes.fromhex("36204000"))
    rebuilt = replace(cfg, combinations=(visa,))
    assert rebuilt.combinations[0].ttq == bytes.fromhex("32004000")
    assert any("combinations[0].ttq: 36204000 claims online PIN" in note for note in rebuilt.capability_notes)
    card = Card(keys, cid=0x80, ctq=bytes.fromhex("8000"))
    r = run(card, rebuilt)
    gpo = next(c for c in card.commands if c[1] == 0xA8)
    assert gpo[7] == 0x32  # what the card was told: no online PIN
    assert r.cvm is CvmPerformed.FAILED and r.outcome is Outcome.TRY_ANOTHER_INTERFACE


def test_no_cvm_below_limit(keys: dict[str, Key]) -> None:
    r = run(Card(keys, ctq=bytes.fromhex("8000")))
    assert r.cvm is CvmPerformed.NO_CVM
    assert not Tsi(r.tsi).is_set(Tsi.CARDHOLDER_VERIFICATION_PERFORMED)


def test_decide_cvm_without_ctq() -> None:
    assert decide_cvm(bytes.fromhex("36404000"), None, online=True) is CvmPerformed.SIGNATURE
    assert decide_cvm(bytes.fromhex("34404000"), None, online=True) is CvmPerformed.ONLINE_PIN
    assert decide_cvm(bytes.fromhex("34404000"), None, online=False) is CvmPerformed.FAILED
    # CDCVM claimed by the card but not supported by the reader
    assert decide_cvm(bytes.fromhex("30400000"), bytes.fromhex("0080"), online=True) is CvmPerformed.FAILED


# --------------------------------------------------------------------------- GPO status words


@pytest.mark.parametrize(
    ("sw", "outcome", "message"),
    [
        (b"\x69\x86", Outcome.TRY_AGAIN, Message.SEE_PHONE),
        (b"\x69\x84", Outcome.TRY_ANOTHER_INTERFACE, Message.INSERT_SWIPE_OR_TRY_ANOTHER),
        (b"\x69\x85", Outcome.END_APPLICATION, Message.INSERT_SWIPE_OR_TRY_ANOTHER),  # select next, none left
        (b"\x6a\x80", Outcome.END_APPLICATION, Message.PROCESSING_ERROR),
    ],
)
def test_gpo_status(keys: dict[str, Key], sw: bytes, outcome: Outcome, message: Message) -> None:
    r = run(Card(keys, gpo_sw=sw))
    assert r.outcome is outcome
    assert messages(r)[-1] is message


# --------------------------------------------------------------------------- malformed cards


@pytest.mark.parametrize(
    "afl",
    [
        "080101",  # not a multiple of 4
        "00010100",  # SFI 0
        "F8010100",  # SFI 31
        "08000100",  # first record 0
        "08020100",  # last before first
        "08010102",  # more ODA records than the span
        "09010100",  # low bits of the SFI byte set
    ],
)
def test_bad_afl(keys: dict[str, Key], afl: str) -> None:
    r = run(Card(keys, afl=bytes.fromhex(afl)))
    assert r.outcome is Outcome.END_APPLICATION
    assert messages(r) == [Message.PROCESSING_ERROR]
    assert r.error is not None and "AFL" in r.error


@pytest.mark.parametrize(
    "records",
    [
        {(1, 1): encode(0x71, b"")},  # not a 70 template
        {(1, 1): b"\x70\x05\x5a"},  # truncated
        {(2, 2): encode(0x70, encode(0x5A, bytes.fromhex(PAN)))},  # 5A again
        {(2, 2): encode(0x70, encode(0x9F36, b"\x00\x01"))},  # ATC already in the GPO response
    ],
)
def test_bad_records(keys: dict[str, Key], records: dict[tuple[int, int], bytes]) -> None:
    r = run(Card(keys, record_override=records))
    assert r.outcome is Outcome.END_APPLICATION
    assert messages(r) == [Message.PROCESSING_ERROR]


def test_missing_record(keys: dict[str, Key]) -> None:
    r = run(Card(keys, afl=bytes.fromhex("08010101 10010300")))
    assert r.outcome is Outcome.END_APPLICATION
    assert r.error is not None and "6A83" in r.error


@pytest.mark.parametrize(
    "gpo",
    [
        encode(0x77, encode(0x94, b"\x08\x01\x01\x00")) + OK,  # no AIP
        encode(0x80, b"\x20") + OK,  # format 1 without AFL bytes
        encode(0x80, bytes.fromhex("2000 08010100")) + OK,  # format 1: no cryptogram anywhere
        encode(0x78, b"") + OK,
        b"\x77\x81" + OK,
        encode(0x77, encode(0x82, b"\x20\x00")) + encode(0x77, b"") + OK,
    ],
)
def test_bad_gpo_response(keys: dict[str, Key], gpo: bytes) -> None:
    r = run(Card(keys, gpo_override=gpo))
    assert r.outcome is Outcome.END_APPLICATION


def test_missing_pan(keys: dict[str, Key]) -> None:
    rec = encode(0x70, encode(0x5F24, bytes.fromhex("301231")))
    r = run(Card(keys, record_override={(1, 1): rec}))
    assert r.outcome is Outcome.END_APPLICATION
    assert r.error is not None and "PAN" in r.error


def test_card_removed_while_reading(keys: dict[str, Key]) -> None:
    r = run(Card(keys, remove_at_record=(2, 1)))
    assert r.outcome is Outcome.TRY_AGAIN
    assert messages(r) == [Message.PRESENT_CARD_AGAIN]


@pytest.fixture(scope="module")
def good_exchange(keys: dict[str, Key]) -> dict[str, Any]:
    card = Card(keys)
    process(card, config(keys), txn())
    gpo_cmd = next(c for c in card.commands if c[1] == 0xA8)
    return {"gpo": card.gpo(gpo_cmd[7:23]), "records": card.records()}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_flipped_bytes_end_in_an_outcome(
    keys: dict[str, Key], good_exchange: dict[str, Any], data: st.DataObject
) -> None:
    """Any single corruption of the GPO response or a record gives a defined outcome."""
    gpo: bytes = good_exchange["gpo"]
    records: dict[tuple[int, int], bytes] = dict(good_exchange["records"])
    targets: list[tuple[int, int] | None] = [None, (1, 1), (2, 1), (2, 2)]  # None: the GPO response
    target = data.draw(st.sampled_from(targets))
    raw = gpo[:-2] if target is None else records[target]
    pos = data.draw(st.integers(0, len(raw) - 1))
    new = data.draw(st.integers(0, 255))
    cut = data.draw(st.booleans())
    mutated = raw[:pos] if cut else raw[:pos] + bytes([new]) + raw[pos + 1 :]
    if target is None:
        card = Card(keys, gpo_override=mutated + OK)
    else:
        records[target] = mutated
        card = Card(keys, record_override=records)
    r = run(card)
    assert isinstance(r.outcome, Outcome)
    assert r.error is None or "unexpected" not in r.error, r.error


def test_today_is_the_transaction_date(keys: dict[str, Key]) -> None:
    # The certificates expire end of 12/2030: a transaction in 2031 fails on the issuer certificate.
    r = process(Card(keys), config(keys), TransactionData(1234, 978, bytes.fromhex("310101"), bytes(4)))
    assert r.oda.failure == "issuer_certificate_expired"
