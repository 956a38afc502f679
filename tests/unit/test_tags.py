"""emv.tags: the dictionary is complete for the books we follow, and consistent."""

from __future__ import annotations

import pytest

from emv import dol
from emv.tags import FORMATS, SOURCES, TAGS, TagInfo, format_of, name_of, source_of
from emv.tlv import _read_tag, encode_tag, is_constructed


def _words(text: str) -> list[str]:
    return text.split()


BOOK3_ANNEX_A = _words("""
9F01 9F40 81 9F02 9F04 9F03 9F3A 9F26 9F42 9F44 9F05 5F25 5F24 94 4F 9F06 82 50 9F12 5A 5F34
87 9F3B 9F43 61 9F36 9F07 9F08 9F09 89 8A 5F54 8C 8D 5F20 9F0B 8E 9F34 8F 9F22 83 9F27 9F45 84
9D 73 9F49 BF0C A5 6F 9F4C 9F2D 9F2E 9F2F 9F46 9F47 9F48 9F1E 5F53 9F0D 9F0E 9F0F 9F10 91 9F11
5F28 5F55 5F56 42 9F0C 90 9F32 92 86 9F18 71 72 5F50 5F2D 9F13 9F4D 9F4F 9F14 9F15 9F16 9F4E 9F17
9F39 9F38 80 77 5F30 88 9F4B 93 9F4A 9F33 9F1A 9F1B 9F1C 9F1D 9F35 95 9F1F 9F20 57 98 97 5F2A
5F36 9A 99 9F3C 9F3D 9F41 9B 9F21 9C 9F37 9F23 70 5F57 9F24 9F19 9F25 9F0A
""")
ENTRY_POINT_AND_KERNELS = _words("""
9F2A 9F29 87 BF0C 61 4F 50 9F66 9F6C 9F69 9F6E 9F5D 9F7C 9F4B 9F6D 9F7E DF8117 DF8118 DF8119
DF811F DF8123 DF8124 DF8125 DF8126 DF8129 DF8120 DF8121 DF8122 9F6A
""")


@pytest.mark.parametrize("tag", BOOK3_ANNEX_A + ENTRY_POINT_AND_KERNELS)
def test_required_tags_are_known(tag: str) -> None:
    assert int(tag, 16) in TAGS


def test_entries_are_consistent() -> None:
    names = set()
    for tag, info in TAGS.items():
        assert isinstance(info, TagInfo)
        assert info.format in FORMATS and info.source in SOURCES
        assert info.name and info.name not in names, info.name
        names.add(info.name)
        # the integer is a well-formed BER tag that reads back as itself
        raw = encode_tag(tag)
        assert _read_tag(raw, 0) == (tag, len(raw))
        if info.template is not None:
            assert info.template in TAGS and is_constructed(info.template), hex(tag)


@pytest.mark.parametrize("tag", [0x61, 0x6F, 0x70, 0x71, 0x72, 0x73, 0x77, 0xA5, 0xBF0C, 0xFF8101, 0xFF8105])
def test_templates_are_constructed(tag: int) -> None:
    assert is_constructed(tag) and TAGS[tag].format == "b"


@pytest.mark.parametrize(
    ("tag", "fmt", "source"),
    [
        (0x9F02, "n", "terminal"),
        (0x9F03, "n", "terminal"),
        (0x5F2A, "n", "terminal"),
        (0x9F1A, "n", "terminal"),
        (0x9A, "n", "terminal"),
        (0x9F21, "n", "terminal"),
        (0x9C, "n", "terminal"),
        (0x9F35, "n", "terminal"),
        (0x5A, "cn", "card"),
        (0x9F37, "b", "terminal"),
        (0x9F66, "b", "terminal"),
        (0x9F1C, "an", "terminal"),
        (0x9F4E, "ans", "terminal"),
        (0x50, "ans", "card"),
        (0x8A, "an", "issuer"),
        (0x91, "b", "issuer"),
        (0x9F6C, "b", "card"),
        (0xDF8126, "n", "terminal"),
    ],
)
def test_known_formats_and_sources(tag: int, fmt: str, source: str) -> None:
    assert format_of(tag) == fmt
    assert source_of(tag) == source


def test_names() -> None:
    assert name_of(0x9F66) == "Terminal Transaction Qualifiers (TTQ)"
    assert name_of(0x9F6C) == "Card Transaction Qualifiers (CTQ)"
    assert name_of(0x9F2A) == "Kernel Identifier"
    assert name_of(0xDF8118) == "CVM Capability - CVM Required"
    assert name_of(0x9F4B) == "Signed Dynamic Application Data (SDAD)"


def test_unknown_tags() -> None:
    assert format_of(0xDF8F01) == "b"
    assert name_of(0xDF8F01) == "Unknown tag DF8F01"
    assert name_of(-1) == "Unknown tag -1"
    assert source_of(0xDF8F01) is None


def test_dol_uses_the_dictionary_formats() -> None:
    entries = dol.parse(bytes.fromhex("9F0208 5A0A 9F6604 9F1C0A"))
    built = dol.build(
        entries,
        {0x9F02: bytes.fromhex("1234"), 0x5A: bytes.fromhex("4761"), 0x9F66: b"\x36", 0x9F1C: b"T1"},
    )
    assert built.hex().upper() == ("0000000000001234" + "4761" + "FF" * 8 + "36000000" + "5431" + "00" * 8)
