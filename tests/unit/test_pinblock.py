"""ISO 9564-1 PIN blocks, formats 0 and 4: round trips, the PAN binding, errors that hold no PIN digit."""

from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terminal.pinblock import EncryptedPin, PinBlockError, PinFormat, decipher, encipher, pin_matches, wipe

h = bytes.fromhex
TDES_KEY = h("042666B49184CF5C68DE9628D0397B36")  # X9.24-1 Annex A: the PIN key of KSN ...E00001
AES_KEY = h("00112233445566778899AABBCCDDEEFF")
pins = st.text(alphabet="0123456789", min_size=4, max_size=12).map(str.encode)
pans = st.text(alphabet="0123456789", min_size=13, max_size=19)
short_pans = st.text(alphabet="0123456789", min_size=1, max_size=19)


@given(pins, pans)
def test_format_0_round_trip(pin: bytes, pan: str) -> None:
    block = encipher(pin, pan, TDES_KEY, PinFormat.ISO_0)
    assert len(block) == 8
    assert decipher(block, pan, TDES_KEY, PinFormat.ISO_0) == pin
    assert pin_matches(block, pan, TDES_KEY, PinFormat.ISO_0, pin)


@given(pins, short_pans)
def test_format_4_round_trip_any_pan_length(pin: bytes, pan: str) -> None:
    block = encipher(pin, pan, AES_KEY, PinFormat.ISO_4)
    assert len(block) == 16
    assert decipher(block, pan, AES_KEY, PinFormat.ISO_4) == pin


def test_format_4_has_a_random_fill_so_one_pin_gives_many_blocks() -> None:
    blocks = {encipher(b"1234", "4761739001010010", AES_KEY, PinFormat.ISO_4) for _ in range(20)}
    assert len(blocks) == 20


def test_format_0_of_the_published_example() -> None:
    # X9.24-1:2009 Annex A.4: PIN 1234, PAN 4012345678909, the first PIN key -> 1B9C1845EB993A7A
    assert encipher(b"1234", "4012345678909", TDES_KEY, PinFormat.ISO_0) == h("1B9C1845EB993A7A")


@settings(max_examples=200)
@given(pins, pans, pans)
def test_a_format_4_block_does_not_open_for_another_card(pin: bytes, pan: str, other: str) -> None:
    """The PAN field is enciphered into the block: another PAN gives no PIN block at all (the fill does not fit)."""
    if other.lstrip("0") == pan.lstrip("0") and len(other) == len(pan):
        return
    block = encipher(pin, pan, AES_KEY, PinFormat.ISO_4)
    with pytest.raises(PinBlockError, match="not a format 4 PIN block"):
        decipher(block, other, AES_KEY, PinFormat.ISO_4)


@given(pins, pans, pans)
def test_a_format_0_block_is_bound_to_the_12_digits_before_the_check_digit(pin: bytes, pan: str, other: str) -> None:
    bound, other_bound = pan[-13:-1], other[-13:-1]
    block = encipher(pin, pan, TDES_KEY, PinFormat.ISO_0)
    assert (block == encipher(pin, other, TDES_KEY, PinFormat.ISO_0)) == (bound == other_bound)
    if bound != other_bound:
        with contextlib.suppress(PinBlockError):  # as often: the other PAN leaves no format 0 block
            assert not pin_matches(block, other, TDES_KEY, PinFormat.ISO_0, pin)


def test_a_block_under_another_key_is_refused_without_quoting_what_it_deciphers_to() -> None:
    block = encipher(b"86420975", "4761739001010010", AES_KEY, PinFormat.ISO_4)
    with pytest.raises(PinBlockError) as caught:
        decipher(block, "4761739001010010", bytes(16), PinFormat.ISO_4)
    assert not any(ch.isdigit() for ch in str(caught.value).replace("format 4", ""))
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_psec_quotes_digits_in_its_errors_and_they_are_not_passed_on() -> None:
    """A format 0 block with a bad fill: psec's message quotes the fill; ours does not."""
    import psec.pinblock

    clear = bytes.fromhex("0412345678FFFFFF")  # length 4 but the fill holds digits 5678
    pan = "4012345678909"
    pan_field = b"\x00\x00" + bytes.fromhex(pan[-13:-1])
    raw = bytes(a ^ b for a, b in zip(clear, pan_field, strict=True))
    with pytest.raises(ValueError, match="5678"):
        psec.pinblock.decode_pinblock_iso_0(raw, pan)
    from terminal.dukpt import _tdes

    with pytest.raises(PinBlockError) as caught:
        decipher(_tdes(TDES_KEY, raw), pan, TDES_KEY, PinFormat.ISO_0)
    assert "5678" not in str(caught.value) and "1234" not in str(caught.value)


@pytest.mark.parametrize("pin", [b"123", b"1234567890123", b"12a4", b""])
def test_a_pin_of_the_wrong_length_or_not_digits_is_refused(pin: bytes) -> None:
    with pytest.raises(PinBlockError, match="4 to 12 digits"):
        encipher(pin, "4761739001010010", AES_KEY, PinFormat.ISO_4)


def test_format_0_needs_13_pan_digits_and_keys_are_16_bytes() -> None:
    with pytest.raises(PinBlockError, match="13 to 19"):
        encipher(b"1234", "476173900101", TDES_KEY, PinFormat.ISO_0)
    with pytest.raises(PinBlockError, match="16 bytes"):
        encipher(b"1234", "4761739001010010", bytes(24), PinFormat.ISO_4)


def test_encipher_leaves_the_buffer_to_its_owner_and_wipe_zeroes_it() -> None:
    buffer = bytearray(b"4321")
    encipher(buffer, "4761739001010010", AES_KEY, PinFormat.ISO_4)
    assert buffer == b"4321"
    wipe(buffer)
    assert buffer == bytearray(4)


def test_an_encrypted_pin_checks_its_lengths_and_never_shows_its_block() -> None:
    block, ksn = os.urandom(16), h("123456789012345600000001")
    pin = EncryptedPin(block, ksn, PinFormat.ISO_4)
    assert block.hex() not in repr(pin).lower() and "123456789012345600000001" in repr(pin)
    with pytest.raises(PinBlockError, match="16 bytes"):
        EncryptedPin(block[:8], ksn, PinFormat.ISO_4)
    with pytest.raises(PinBlockError, match="10-byte KSN"):
        EncryptedPin(block[:8], ksn, PinFormat.ISO_0)
