"""emv.tlv corner cases: multi-byte tags, long lengths, templates, padding, errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emv.tlv import (
    Tlv,
    TlvError,
    decode,
    decode_primitive_map,
    encode,
    encode_all,
    encode_length,
    encode_tag,
    find,
    find_all,
    is_constructed,
    iter_primitives,
    tag_hex,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# --------------------------------------------------------------------------- tags


@pytest.mark.parametrize(
    ("raw", "tag"),
    [
        ("5A0112", 0x5A),
        ("9F020100", 0x9F02),
        ("5F2A0209 78", 0x5F2A),
        ("DF81170100", 0xDF8117),  # three-byte tag
        ("DF8181010100", 0xDF818101),  # four bytes, the most accepted
        ("BF0C00", 0xBF0C),
    ],
)
def test_multi_byte_tags(raw: str, tag: int) -> None:
    (obj,) = decode(h(raw))
    assert obj.tag == tag
    assert obj.encode() == h(raw)
    assert tag_hex(tag) == raw.replace(" ", "")[: len(encode_tag(tag)) * 2]


def test_tag_longer_than_four_bytes() -> None:
    with pytest.raises(TlvError) as info:
        decode(h("DF8181818101 00"))
    assert info.value.offset == 0 and "longer than 4" in str(info.value)


def test_truncated_tag() -> None:
    with pytest.raises(TlvError) as info:
        decode(h("5A0101 9F"))
    assert info.value.offset == 3 and info.value.reason == "truncated tag"
    with pytest.raises(TlvError):
        decode(h("5A0101 DF81"))


def test_constructed_bit() -> None:
    assert is_constructed(0x70) and is_constructed(0x77) and is_constructed(0xBF0C)
    assert is_constructed(0xA5) and is_constructed(0x61) and is_constructed(0xFF8101)
    assert not is_constructed(0x9F02) and not is_constructed(0x5A) and not is_constructed(0x80)


def test_encode_tag_limits() -> None:
    assert encode_tag(0) == b"\x00"
    assert encode_tag(0xDF8117) == h("DF8117")
    with pytest.raises(ValueError):
        encode_tag(-1)


# --------------------------------------------------------------------------- lengths


@pytest.mark.parametrize(
    ("length", "raw"),
    [
        (0, "00"),
        (0x7F, "7F"),
        (0x80, "8180"),
        (0xFF, "81FF"),
        (0x100, "820100"),
        (0xFFFF, "82FFFF"),
        (0x10000, "83010000"),
    ],
)
def test_length_forms(length: int, raw: str) -> None:
    assert encode_length(length) == h(raw)
    value = bytes(length % 251 for _ in range(length))
    encoded = encode(0x9F05, value)
    assert encoded == h("9F05") + h(raw) + value
    (obj,) = decode(encoded)
    assert obj.value == value


def test_length_out_of_range() -> None:
    with pytest.raises(ValueError):
        encode_length(-1)
    with pytest.raises(ValueError):
        encode_length(0x1000000)


def test_non_minimal_length_is_accepted_on_decode() -> None:
    (obj,) = decode(h("9F02 8106 000000001234"))
    assert obj.value == h("000000001234")
    assert obj.encode() == h("9F0206000000001234")  # re-encoding is minimal


@pytest.mark.parametrize(
    ("raw", "reason", "offset"),
    [
        ("9F02 80 00", "indefinite length not allowed", 2),
        ("9F02 84 00000001 00", "length field of 4 bytes is too long", 2),
        ("9F02 82 01", "truncated length", 2),
        ("9F02", "missing length", 2),
    ],
)
def test_malformed_lengths(raw: str, reason: str, offset: int) -> None:
    with pytest.raises(TlvError) as info:
        decode(h(raw))
    assert info.value.reason == reason
    assert info.value.offset == offset
    assert info.value.tag == 0x9F02
    assert f"offset {offset}" in str(info.value) and "9F02" in str(info.value)


def test_value_overrun_names_offset_and_tag() -> None:
    with pytest.raises(TlvError) as info:
        decode(h("5A0112 9F0206 0000"))
    assert info.value.offset == 3 and info.value.tag == 0x9F02
    assert "overruns" in info.value.reason
    assert "offset 3" in str(info.value) and "tag 9F02" in str(info.value)


def test_error_inside_a_template_has_an_absolute_offset() -> None:
    # 77 0A | 9F27 01 80 | 9F36 05 0001  (9F36 claims 5 bytes, 2 left)
    with pytest.raises(TlvError) as info:
        decode(h("770A 9F270180 9F3605 0001 0000"))
    assert info.value.tag == 0x9F36
    assert info.value.offset == 6
    assert "inside 77" in str(info.value)


def test_oversized_template_length() -> None:
    with pytest.raises(TlvError) as info:
        decode(h("7081FF 5A0112"))
    assert info.value.tag == 0x70 and info.value.offset == 0


# --------------------------------------------------------------------------- templates and padding


APP = h("4F07A0000000031010 500456495341 870101 9F2A0103")
FCI = encode(0x6F, h("840E325041592E5359532E4444463031") + encode(0xA5, encode(0xBF0C, encode(0x61, APP))))


def test_constructed_templates_decode_to_children() -> None:
    (fci,) = decode(FCI)
    assert fci.constructed and fci.tag == 0x6F
    assert [c.tag for c in fci.children or ()] == [0x84, 0xA5]
    app = find(decode(FCI), 0x61)
    assert app is not None and app.constructed
    assert [p.tag for p in iter_primitives([app])] == [0x4F, 0x50, 0x87, 0x9F2A]
    aid = find(decode(FCI), 0x4F)
    assert aid is not None and aid.value == h("A0000000031010")
    assert find(decode(FCI), 0x9F38) is None


def test_find_all_and_primitive_map_first_wins() -> None:
    objs = decode(h("700A 5A0111 5A0122 9F0101 00") + h("7003 5A0133"))
    assert [o.value for o in find_all(objs, 0x5A)] == [h("11"), h("22"), h("33")]
    assert decode_primitive_map(encode_all(objs))[0x5A] == h("11")


@pytest.mark.parametrize("pad", ["00", "FF", "0000FF", "FFFF"])
def test_padding_between_and_around_objects(pad: str) -> None:
    raw = h(pad + "5A0112" + pad + "9F020100" + pad)
    assert [(o.tag, o.value) for o in decode(raw)] == [(0x5A, h("12")), (0x9F02, h("00"))]


def test_padding_inside_a_template() -> None:
    (rec,) = decode(h("7009 00 5A0112 FF 9F020100"))
    assert [c.tag for c in rec.children or ()] == [0x5A, 0x9F02]


def test_empty_input_and_empty_template() -> None:
    assert decode(b"") == []
    (obj,) = decode(h("7000"))
    assert obj.children == () and obj.value == b""


def test_nesting_limit() -> None:
    raw = h("5A00")
    for _ in range(20):
        raw = encode(0x70, raw)
    with pytest.raises(TlvError, match="nested too deeply"):
        decode(raw)


def test_round_trip_of_a_response() -> None:
    objs = decode(FCI)
    assert encode_all(objs) == FCI
    assert decode(encode_all(objs)) == objs


def test_ff_tags_decode() -> None:
    (obj,) = decode(encode(0xFF8101, encode(0x9F02, h("000000000100"))), ff_padding=False)
    assert obj.tag == 0xFF8101
    assert obj.children is not None and obj.children[0].tag == 0x9F02


def test_ff_padding_around_objects_is_skipped() -> None:
    data = h("FFFF") + encode(0x5A, h("4761")) + h("FF00FF") + encode(0x9F36, h("0001")) + h("FFFF")
    assert [o.tag for o in decode(data)] == [0x5A, 0x9F36]


# --------------------------------------------------------------------------- properties

TAGS = st.sampled_from([0x5A, 0x9F02, 0x57, 0x5F2A, 0xDF8117, 0x9F4B, 0x82, 0x94])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(TAGS, st.binary(max_size=300)), max_size=6))
def test_primitive_round_trip(items: list[tuple[int, bytes]]) -> None:
    raw = b"".join(encode(tag, value) for tag, value in items)
    objs = decode(raw)
    assert [(o.tag, o.value) for o in objs] == items
    assert encode_all(objs) == raw
    wrapped = decode(encode(0x70, raw))
    assert wrapped == [Tlv(0x70, raw, tuple(objs))]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_decode_or_raise_tlv_error(raw: bytes) -> None:
    try:
        objs = decode(raw)
    except TlvError as exc:
        assert 0 <= exc.offset <= len(raw)
    else:
        for obj in iter_primitives(objs):
            assert isinstance(obj.value, bytes)
