"""The templates and commands of the hard-wallet protocol: exact encodings, and strict parsing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from cbdc import protocol as p
from cbdc import sm2, tlv
from cbdc.protocol import Certificate, PaymentRecord, PaymentRequest, ProtocolError, UnsupportedVersion, WalletInfo
from cbdc.sm3 import sm3
from tests.unit.cbdc.wallet import NOW, WALLET, WALLET_ID, operator_certificate, request, wallet_certificate


def _record() -> PaymentRecord:
    unsigned = PaymentRecord.for_request(request(), WALLET_ID, 1, bytes(32))
    return unsigned.with_signature(WALLET.sign(unsigned.encode_unsigned()))


def _rewrap(template: int, body: bytes) -> bytes:
    return tlv.encode(template, body)


def test_commands_are_the_bytes_of_the_spec() -> None:
    assert p.select_command().hex().upper() == "00A404000BF0504F535443424443010100"
    assert p.get_wallet_info_command().hex().upper() == "80CA000000"
    assert p.read_certificate_command(p.WALLET_CERTIFICATE).hex().upper() == "80B2010000"
    assert p.read_certificate_command(p.OPERATOR_CERTIFICATE).hex().upper() == "80B2020000"
    assert p.get_record_command().hex().upper() == "8056000000"
    assert p.get_record_command(0x01020304).hex().upper() == "805600000401020304" + "00"
    pay = p.pay_command(request())
    assert pay[:4].hex().upper() == "80540000" and pay[4] == len(pay) - 6 and pay[-1] == 0
    assert PaymentRequest.parse(pay[5:-1]) == request()
    assert request().date_time == NOW.replace(tzinfo=UTC)


def test_ppse_entry_carries_the_kernel_id() -> None:
    assert p.ppse_entry().hex().upper() == (
        "61234F0BF0504F5354434244430101500B4449474954414C20434E598701019F2A03810156"
    )


def test_request_encoding_is_the_table_of_the_spec() -> None:
    challenge = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    req = PaymentRequest(1234, 156, "M1", "TERM0001", challenge, datetime(2026, 12, 6, 9, 30, 5, tzinfo=UTC))
    expected = (
        "DF5106000000001234"
        "DF44020156"
        "DF52024D31"
        "DF56085445524D30303031"
        "DF531000112233445566778899AABBCCDDEEFF"
        "DF540720261206093005"
    )
    assert req.encode().hex().upper() == "E3" + f"{len(expected) // 2:02X}" + expected


def test_request_refuses_what_it_cannot_encode() -> None:
    with pytest.raises(ValueError, match="amount"):
        request(amount=0)
    with pytest.raises(ValueError, match="terminal id"):
        request(terminal_id="T1")
    with pytest.raises(ValueError, match="merchant id"):
        request(merchant_id="M" * 16)
    with pytest.raises(ValueError, match="challenge"):
        request(challenge=bytes(15))


def test_record_round_trip_keeps_the_exact_bytes() -> None:
    record = _record()
    assert PaymentRecord.parse(record.raw) == record
    assert record.signed_bytes == record.raw[3:-67]  # E4 81 xx, ..., DF5F 40 <64>
    assert record.hash == sm3(record.raw)
    assert sm2.verify(WALLET.public, record.signed_bytes, record.signature)
    assert record.counter == 1 and record.amount == 1234 and record.wallet_id_hex == "D1A0000000000001"


def test_unknown_tags_before_the_signature_are_covered_and_ignored() -> None:
    unsigned = PaymentRecord.for_request(request(), WALLET_ID, 1, bytes(32))
    body = unsigned.encode_unsigned() + tlv.encode(0xDF60, b"extra")
    raw = _rewrap(0xE4, body + tlv.encode(0xDF5F, WALLET.sign(body)))
    record = PaymentRecord.parse(raw)
    assert record.signed_bytes == body and sm2.verify(WALLET.public, record.signed_bytes, record.signature)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b + tlv.encode(0xDF41, WALLET_ID), "duplicate tag DF41"),
        (lambda b: b.replace(tlv.encode(0xDF42, (1).to_bytes(4, "big")), b""), "missing DF42"),
        (lambda b: b.replace(tlv.encode(0xDF42, (1).to_bytes(4, "big")), tlv.encode(0xDF42, b"\x01")), "wrong length"),
        (lambda b: b.replace(tlv.encode(0xDF40, b"\x01"), b""), "missing DF40"),
    ],
)
def test_record_refusals_are_named(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    record = _record()
    body = mutate(record.signed_bytes) + tlv.encode(0xDF5F, record.signature)
    with pytest.raises(ProtocolError, match=reason):
        PaymentRecord.parse(_rewrap(0xE4, body))


def test_anything_after_the_signature_is_refused() -> None:
    record = _record()
    body = record.signed_bytes + tlv.encode(0xDF5F, record.signature) + tlv.encode(0xDF60, b"x")
    with pytest.raises(ProtocolError, match="after the signature"):
        PaymentRecord.parse(_rewrap(0xE4, body))
    with pytest.raises(ProtocolError, match="missing DF5F"):
        PaymentRecord.parse(_rewrap(0xE4, record.signed_bytes))
    with pytest.raises(ProtocolError, match="expected one element"):
        PaymentRecord.parse(record.raw + tlv.encode(0xDF60, b"x"))
    with pytest.raises(ProtocolError, match="runs past the end"):
        PaymentRecord.parse(record.raw[:-1])
    with pytest.raises(ProtocolError, match="expected tag E4"):
        PaymentRecord.parse(_rewrap(0xE2, record.raw[3:]))


def test_other_versions_are_unsupported() -> None:
    unsigned = PaymentRecord.for_request(request(), WALLET_ID, 1, bytes(32))
    body = unsigned.encode_unsigned().replace(tlv.encode(0xDF40, b"\x01"), tlv.encode(0xDF40, b"\x02"))
    with pytest.raises(UnsupportedVersion):
        PaymentRecord.parse(_rewrap(0xE4, body + tlv.encode(0xDF5F, bytes(64))))


def test_bad_field_contents_are_named() -> None:
    unsigned = PaymentRecord.for_request(request(), WALLET_ID, 1, bytes(32))
    body = unsigned.encode_unsigned().replace(tlv.encode(0xDF51, bytes.fromhex("000000001234")),
                                              tlv.encode(0xDF51, bytes.fromhex("00000000123A")))  # fmt: skip
    with pytest.raises(ProtocolError, match="DF51 is not BCD"):
        PaymentRecord.parse(_rewrap(0xE4, body + tlv.encode(0xDF5F, bytes(64))))


def test_wallet_info_round_trip_and_first_record_hash() -> None:
    info = WalletInfo(WALLET_ID, 0, bytes(32), 156, 500_000)
    assert WalletInfo.parse(info.encode()) == WalletInfo(WALLET_ID, 0, bytes(32), 156, 500_000, raw=info.encode())
    bad = WalletInfo(WALLET_ID, 0, b"\x01" * 32, 156, 0).encode()
    with pytest.raises(ProtocolError, match="DF43 is not zero"):
        WalletInfo.parse(bad)


def test_certificates_round_trip_and_check_their_shape() -> None:
    wallet = wallet_certificate()
    operator = operator_certificate()
    assert Certificate.parse(wallet.raw) == wallet and Certificate.parse(operator.raw) == operator
    assert wallet.per_payment_limit == 200_000 and operator.tier is None
    assert wallet.not_after == date(2028, 12, 31)
    with_limits = operator.signed_bytes + tlv.encode(0xDF78, b"\x01") + tlv.encode(0xDF5F, bytes(64))
    with pytest.raises(ProtocolError, match="not a wallet's"):
        Certificate.parse(_rewrap(0xE2, with_limits))
    without = wallet.signed_bytes.split(tlv.encode(0xDF78, b"\x01"))[0] + tlv.encode(0xDF5F, bytes(64))
    with pytest.raises(ProtocolError, match="without its tier"):
        Certificate.parse(_rewrap(0xE2, without))


def test_select_response() -> None:
    fci = p.SelectResponse(p.AID, p.LABEL, 1).encode()
    assert fci.hex().upper() == "6F20840BF0504F5354434244430101A511500B4449474954414C20434E59DF400101"
    assert p.SelectResponse.parse(fci).label == "DIGITAL CNY"
    with pytest.raises(UnsupportedVersion):
        p.SelectResponse.parse(p.SelectResponse(p.AID, p.LABEL, 2).encode())


def test_split_response() -> None:
    assert p.split_response(b"\x01\x90\x00") == (b"\x01", 0x9000)
    with pytest.raises(ProtocolError):
        p.split_response(b"\x90")


def test_tlv_is_strict() -> None:
    for bad, reason in [
        ("DF4081 05 0102030405", "non-minimal length"),
        ("DF40 83 000001 01", "unsupported length form"),
        ("DF40 80", "unsupported length form"),
        ("DF 8001 01 00", "tag longer than two bytes"),
        ("1F05 01 00", "non-minimal tag"),
        ("00 DF40 01 01", "padding"),
        ("DF40 02 01", "runs past the end"),
        ("DF", "truncated tag"),
    ]:
        with pytest.raises(tlv.TlvError, match=reason):
            tlv.decode(bytes.fromhex(bad))
    assert tlv.encode(0xE4, bytes(200))[:3].hex().upper() == "E481C8"
    assert tlv.encode(0xE4, bytes(300))[:4].hex().upper() == "E482012C"


def test_the_envelope_to_the_host() -> None:
    from cbdc.envelope import Envelope
    from cbdc.state import Intent

    wallet, operator = wallet_certificate(), operator_certificate()
    intent = Intent(request(), WALLET_ID, 1, bytes(32), wallet.raw, operator.raw)
    record = _record()
    full = Envelope.for_intent(intent, record.raw)
    torn = Envelope.for_intent(intent)
    assert Envelope.parse(full.encode()) == full and Envelope.parse(torn.encode()) == torn
    assert full.encode()[:2] == b"\xe6\x82" and tlv.decode_one(full.encode(), 0xE6).value.startswith(record.raw)
    assert PaymentRecord.parse(full.record or b"") == record and full.request == request().encode()
    body = tlv.decode_one(torn.encode(), 0xE6).value
    for bad in [body + tlv.encode(0xDF41, WALLET_ID), body[len(wallet.raw) :], operator.raw + wallet.raw[:-1]]:
        with pytest.raises(ProtocolError):
            Envelope.parse(tlv.encode(0xE6, bad))
    with pytest.raises(ProtocolError):
        Envelope.parse(torn.encode() + b"\x00")


@pytest.mark.parametrize("bad", ["20261206093060", "20260229000000", "20261206240000", "00001206000000"])
def test_a_record_date_that_does_not_exist_is_named(bad: str) -> None:
    unsigned = PaymentRecord.for_request(request(), WALLET_ID, 1, bytes(32))
    body = unsigned.encode_unsigned().replace(tlv.encode(0xDF54, bytes.fromhex("20261206093000")),
                                              tlv.encode(0xDF54, bytes.fromhex(bad)))  # fmt: skip
    with pytest.raises(ProtocolError, match="DF54 is not a date and time"):
        PaymentRecord.parse(_rewrap(0xE4, body + tlv.encode(0xDF5F, bytes(64))))


@pytest.mark.parametrize("bad", ["20261301", "20260000", "00000101", "2026A101"])
def test_a_certificate_date_that_does_not_exist_is_named(bad: str) -> None:
    wallet = wallet_certificate()
    body = wallet.signed_bytes.replace(tlv.encode(0xDF77, bytes.fromhex("20281231")),
                                       tlv.encode(0xDF77, bytes.fromhex(bad)))  # fmt: skip
    with pytest.raises(ProtocolError, match="DF77 is not"):
        Certificate.parse(_rewrap(0xE2, body + tlv.encode(0xDF5F, wallet.signature)))
