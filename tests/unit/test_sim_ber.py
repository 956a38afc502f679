"""The simulator's own BER-TLV and DOL code."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator import _ber


def test_encode_decode_round_trip() -> None:
    data = _ber.encode(0x9F02, bytes(6)) + _ber.encode(0x5A, b"\x47\x61") + _ber.encode(0x90, bytes(200))
    assert data[:3] == bytes.fromhex("9F0206")
    assert _ber.decode(data) == [(0x9F02, bytes(6)), (0x5A, b"\x47\x61"), (0x90, bytes(200))]
    assert _ber.encode(0x90, bytes(200))[:3] == bytes.fromhex("9081C8")
    assert _ber.encode(0x70, bytes(300))[:4] == bytes.fromhex("7082012C")


def test_nested_find_and_padding() -> None:
    inner = _ber.encode(0xBF0C, _ber.encode(0x61, _ber.encode(0x4F, b"\xa0\x00")))
    fci = _ber.encode(0x6F, _ber.encode(0x84, b"x") + _ber.encode(0xA5, inner))
    assert _ber.find(fci, 0x4F) == b"\xa0\x00"
    assert _ber.find(fci, 0x9F38) is None
    assert _ber.decode(b"\x00\xff" + _ber.encode(0x82, b"\x20\x00")) == [(0x82, b"\x20\x00")]


@pytest.mark.parametrize("bad", ["9F", "9F02", "9F0206000000", "5A8401", "9F8080800100", "81"])
def test_malformed_raises_ber_error(bad: str) -> None:
    with pytest.raises(_ber.BerError):
        _ber.decode(bytes.fromhex(bad))


def test_dol_parse_and_split_keep_order() -> None:
    dol = _ber.parse_dol(bytes.fromhex("9F66049F0206950595059C01"))
    assert dol == [(0x9F66, 4), (0x9F02, 6), (0x95, 5), (0x95, 5), (0x9C, 1)]
    values = bytes(range(21))
    split = _ber.split_dol(dol, values)
    assert [t for t, _ in split] == [0x9F66, 0x9F02, 0x95, 0x95, 0x9C]
    assert b"".join(v for _, v in split) == values
    with pytest.raises(_ber.BerError):
        _ber.split_dol(dol, values[:-1])


@given(st.binary(max_size=80))
def test_decode_never_raises_anything_else(data: bytes) -> None:
    try:
        for _ in _ber.iter_flat(data):
            pass
    except _ber.BerError:
        pass
