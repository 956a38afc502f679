"""emv.dol corner cases: n/cn/b padding and truncation, absent tags, order."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emv.dol import DolEntry, DolError, build, fit, parse, split


def h(text: str) -> bytes:
    return bytes.fromhex(text)


@pytest.mark.parametrize(
    ("value", "length", "fmt", "want"),
    [
        ("1234", 6, "n", "000000001234"),  # n shorter: left-pad 00
        ("000000001234", 2, "n", "1234"),  # n longer: drop leftmost
        ("4761739001", 8, "cn", "4761739001FFFFFF"),  # cn shorter: right-pad FF
        ("4761739001010010", 4, "cn", "47617390"),  # cn longer: drop rightmost
        ("3600", 4, "b", "36000000"),  # b shorter: right-pad 00
        ("36008000", 2, "b", "3600"),  # b longer: drop rightmost
        ("5431", 4, "an", "54310000"),
        ("54313233", 2, "ans", "5431"),
        ("ABCD", 2, "n", "ABCD"),  # exact length untouched
        ("", 3, "n", "000000"),
        ("", 2, "cn", "FFFF"),
        ("1234", 0, "b", ""),
    ],
)
def test_fit(value: str, length: int, fmt: str, want: str) -> None:
    assert fit(h(value), length, fmt) == h(want)


def test_parse_keeps_order_and_duplicates() -> None:
    entries = parse(h("9F3704 9F0206 5F2A02 9F3704 DF811701"))
    assert [(e.tag, e.length) for e in entries] == [
        (0x9F37, 4),
        (0x9F02, 6),
        (0x5F2A, 2),
        (0x9F37, 4),
        (0xDF8117, 1),
    ]
    assert str(entries[0]) == "9F37(4)"


def test_parse_long_length_form_and_empty() -> None:
    assert parse(h("9F4B 8180")) == [DolEntry(0x9F4B, 128)]
    assert parse(b"") == []


@pytest.mark.parametrize(
    ("raw", "offset", "tag"),
    [("9F", 0, None), ("9F37", 2, 0x9F37), ("9F3782", 2, 0x9F37), ("9F3780", 2, 0x9F37)],
)
def test_parse_errors_name_offset_and_tag(raw: str, offset: int, tag: int | None) -> None:
    with pytest.raises(DolError) as info:
        parse(h(raw))
    assert info.value.offset == offset and info.value.tag == tag


def test_parse_refuses_entries_no_command_can_carry() -> None:
    with pytest.raises(DolError, match="larger than a command"):
        parse(h("9F4B 81FD"))


def test_build_pads_by_dictionary_format_and_keeps_order() -> None:
    dol = parse(h("9F6604 9F0206 9F0306 9F1A02 5F2A02 9A03 9C01 9F3704 5A0A"))
    values = {
        0x9F66: h("36"),
        0x9F02: h("1234"),
        0x5F2A: h("0978"),
        0x9A: h("250615"),
        0x9F37: h("A1B2C3D4E5"),
        0x5A: h("4761739001010010"),
    }
    out = build(dol, values)
    assert out == h(
        "36000000"  # b: right-pad
        "000000001234"  # n: left-pad
        "000000000000"  # 9F03 absent: zeros
        "0000"  # 9F1A absent: zeros
        "0978"
        "250615"
        "00"  # 9C absent
        "A1B2C3D4"  # b longer: drop rightmost
        "4761739001010010FFFF"  # cn: right-pad FF
    )
    assert split(dol, out)[0] == (0x9F66, h("36000000"))
    assert [t for t, _ in split(dol, out)] == [e.tag for e in dol]


def test_build_with_a_custom_format_function() -> None:
    dol = parse(h("DF8F0104"))
    assert build(dol, {0xDF8F01: h("12")}, format_of=lambda _tag: "n") == h("00000012")


def test_unknown_tag_present_is_binary_and_absent_is_zeros() -> None:
    dol = parse(h("DF8F0103 DF8F0202"))
    assert build(dol, {0xDF8F01: h("AB")}) == h("AB0000 0000")


def test_split_refuses_wrong_length() -> None:
    dol = parse(h("9F3704"))
    with pytest.raises(DolError):
        split(dol, h("010203"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_random_dol_parses_or_raises_dol_error(raw: bytes) -> None:
    try:
        entries = parse(raw)
    except DolError:
        return
    data = build(entries, {})
    assert data == bytes(sum(e.length for e in entries))


@settings(max_examples=200, deadline=None)
@given(value=st.binary(max_size=12), length=st.integers(0, 12), fmt=st.sampled_from(["n", "cn", "b", "an"]))
def test_fit_always_gives_the_asked_length(value: bytes, length: int, fmt: str) -> None:
    out = fit(value, length, fmt)
    assert len(out) == length
    if len(value) >= length:
        assert out in value
