"""emv.pan: the one PAN reader (5A or 57), the one PAN mask and the one free-text scrubber."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emv.outcome import Outcome, TransactionResult
from emv.pan import PAN_MAX_DIGITS, PAN_MIN_DIGITS, mask_command, mask_hex, mask_pan, mask_response, mask_text, pan_of
from emv.tlv import encode

pans = st.text(alphabet="0123456789", min_size=PAN_MIN_DIGITS, max_size=PAN_MAX_DIGITS)


def _bcd(pan: str) -> bytes:
    return bytes.fromhex(pan + ("F" if len(pan) % 2 else ""))


def _track2(pan: str) -> bytes:
    digits = pan + "D2512201" + "0" * 13
    return bytes.fromhex(digits + ("F" if len(digits) % 2 else ""))


# ----------------------------------------------------------------------------- pan_of


@given(pans)
def test_pan_of_reads_5a_and_57_alike(pan: str) -> None:
    assert pan_of({0x5A: _bcd(pan)}) == pan
    assert pan_of({0x57: _track2(pan)}) == pan
    assert pan_of({0x5A: _bcd(pan), 0x57: _track2("4761739001010010")}) == pan  # 5A first


@pytest.mark.parametrize(
    "card_data",
    [
        {},
        {0x5A: _bcd("47617390010")},  # 11 digits
        {0x5A: _bcd("47617390010100100010")},  # 20 digits
        {0x5A: bytes.fromhex("4761739001010A10")},  # not BCD
        {0x5A: b""},
        {0x57: bytes.fromhex("4761739001010010")},  # no field separator
        {0x57: bytes.fromhex("D2512201")},  # nothing before it
        {0x5A: bytes.fromhex("47AB"), 0x57: _track2("4761739001010010")},  # a bad 5A is not replaced by 57
    ],
)
def test_pan_of_refuses_what_is_no_pan(card_data: dict[int, bytes]) -> None:
    assert pan_of(card_data) is None


# ----------------------------------------------------------------------------- mask_pan


@pytest.mark.parametrize(
    ("pan", "masked"),
    [
        ("4761739001010010", "476173******0010"),
        ("6759649826438453017", "675964*********3017"),
        ("374245455400126", "37424******0126"),
        ("36227206271667", "3622******1667"),
        ("6759649826438", "675******6438"),
        ("675964982643", "67******2643"),  # Maestro, 12 digits: first 2 and last 4
        ("4761739001010010F", "476173******0010"),
        ("12345678901", "***********"),
        ("4761-7390-0101", "**************"),
        ("", ""),
    ],
)
def test_mask_pan(pan: str, masked: str) -> None:
    assert mask_pan(pan) == masked


@given(pans)
def test_mask_pan_shows_at_most_first_6_and_last_4_and_hides_at_least_6(pan: str) -> None:
    masked = mask_pan(pan)
    shown_first = len(masked) - len(masked.lstrip("0123456789"))
    assert len(masked) == len(pan)
    assert masked.endswith(pan[-4:]) and masked[:shown_first] == pan[:shown_first]
    assert shown_first <= 6 and masked.count("*") >= 6
    assert masked.count("*") + shown_first + 4 == len(pan)


# ----------------------------------------------------------------------------- mask_text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("4761739001010010", "476173******0010"),
        ("x 5413330089010038 y", "x 541333******0038 y"),
        ("4761 7390 0101 0010", "476173******0010"),
        ("4761-7390-0101-0010", "476173******0010"),
        ("Maestro 675964982643.", "Maestro 67******2643."),  # 12 digits are masked too
        ("6759 6498 2643", "67******2643"),
        ("5A0847617390010100105F24", "5A084761*********0105F24"),  # hex: the digit run is masked
        ("12345678901234567890123", "123456*************0123"),  # longer than a PAN: masked whole
        ("amount 1234, txn 20240501120000-0a1b2c3d4e5f", "amount 1234, txn 20240501120000-0a1b2c3d4e5f"),
        ("2024-05-01 12:00:00", "2024-05-01 12:00:00"),
        ("ref 12345678901", "ref 12345678901"),  # 11 digits
        ("1 2 3", "1 2 3"),
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@given(pans, st.sampled_from(["", " ", "-"]), st.text(alphabet="abc ,:=()", max_size=10))
def test_no_pan_survives_mask_text(pan: str, separator: str, around: str) -> None:
    grouped = separator.join(pan[i : i + 4] for i in range(0, len(pan), 4))
    text = mask_text(f"{around}{grouped}{around}")
    assert pan not in text.replace(" ", "").replace("-", "")
    assert mask_pan(pan) in text


# ----------------------------------------------------------------------------- mask_hex


@given(pans)
def test_mask_hex_hides_pan_and_track_data(pan: str) -> None:
    record = encode(0x70, encode(0x5A, _bcd(pan)) + encode(0x57, _track2(pan)) + encode(0x5F20, b"DOE/JOHN"))
    text = mask_hex(record)
    assert pan not in text and "D2512201" not in text and b"DOE/JOHN".hex().upper() not in text
    joined = text.replace(" ", "")
    assert pan not in joined and not re.search(r"\d{12,}", joined)  # nor across objects
    # shown masked as a PAN is, unless digits around it made a longer run that is hidden whole
    assert text.count(mask_pan(pan)) == 2 or text.count("*" * 6) >= 2
    assert mask_pan(pan) in mask_hex(b"\x9f\x4b\x8a" + _bcd(pan) + b"\xaa")  # not TLV: digit runs masked


def test_mask_hex_keeps_the_length_of_a_padded_pan() -> None:
    assert mask_hex(encode(0x5A, _bcd("6759649826438"))) == "5A07675******6438F"


def test_mask_hex_hides_a_pan_held_as_text_under_any_tag() -> None:
    assert mask_hex(encode(0xDF01, b"B4761739001010010^DOE")) == "DF0115" + "*" * 42
    assert mask_hex(encode(0x50, b"VISA CREDIT")) == "500B" + b"VISA CREDIT".hex().upper()


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("00A4040007A000000003101000", "00A4040007 A0000000031010 00"),  # an AID is no card number
        ("00A404000E325041592E5359532E444446303100", "00A404000E 325041592E5359532E4444463031 00"),
        ("80A8000002830000", "80A8000002 8300 00"),
        ("0020008008241234FFFFFFFFFF", "0020008008 ****************"),  # a PIN block: hidden whole
        ("00B2010C00", "00B2010C 00"),
        ("00B2", "00B2"),
        ("80AE80000300", "80AE8000 0300"),  # Lc does not fit: shown through mask_text
    ],
)
def test_mask_command(command: str, shown: str) -> None:
    assert mask_command(bytes.fromhex(command)) == shown


@given(pans)
def test_no_pan_survives_an_apdu_trace(pan: str) -> None:
    data = bytes(4) + _bcd(pan)
    command = bytes.fromhex("80AE8000") + bytes([len(data)]) + data + b"\x00"
    response = encode(0x77, encode(0x5A, _bcd(pan)) + encode(0x9F27, b"\x80")) + b"\x90\x00"
    for shown in (mask_command(command), mask_response(response), mask_response(_bcd(pan) + b"\x90\x00")):
        assert pan not in shown.replace(" ", "")
    assert mask_response(response).endswith(" 9000")


# ----------------------------------------------------------------------------- users


def test_the_result_json_shows_the_pan_masked_from_5a_or_57() -> None:
    maestro = TransactionResult(Outcome.APPROVED, card_data={0x57: _track2("675964982643")})
    assert maestro.masked_pan == "67******2643" and maestro.to_json()["pan"] == "67******2643"
    assert TransactionResult(Outcome.APPROVED, card_data={0x5A: b"\x12"}).masked_pan is None
