"""emv.qr_cpm: the vectors of ../shared/PAYMENT-MEANS.md §2 and the POI processing of the CPM specification."""

from __future__ import annotations

import base64

import pytest

from emv import tlv
from emv.qr_cpm import (
    EXAMPLE_1,
    EXAMPLE_2,
    ApplicationTemplate,
    ConsumerPresentedCode,
    CpmError,
    DuplicateData,
    MalformedCode,
    MissingData,
    NoApplication,
    UnsupportedVersion,
    decode,
    encode,
    process,
)

H = bytes.fromhex
PFI = tlv.encode(0x85, b"CPV01")
UNIONPAY = H("A000000333010101")
TRACK2 = H("6234567890123456D3012201123456789F")  # a token's track 2 equivalent data


def b64(*objects: bytes) -> str:
    return base64.b64encode(b"".join(objects)).decode("ascii")


def unionpay_style() -> str:
    """The shape of the notes' UnionPay-style sample: 4F, 57, 5F34, then 63 with the ARQC and what it covers."""
    transparent = tlv.encode_pairs([
        (0x9F26, H("1122334455667788")), (0x9F27, H("80")), (0x9F10, H("07010103A00000010A010000000000")),
        (0x9F36, H("0001")), (0x82, H("0000")), (0x9F37, H("9A8B7C6D")),
    ])  # fmt: skip
    app = tlv.encode_pairs([(0x4F, UNIONPAY), (0x57, TRACK2), (0x5F34, H("00"))]) + tlv.encode(0x63, transparent)
    return b64(PFI, tlv.encode(0x61, app))


# ------------------------------------------------------------------------------ the notes' vectors


def test_example_1_bytes_are_those_of_annex_b() -> None:
    assert base64.b64decode(EXAMPLE_1) == H(
        "85054350563031" "611A" "4F07A0000000555555" "570F1234567890123458D191220112345F"
    )


def test_example_1() -> None:
    code = decode(EXAMPLE_1)
    assert code.version == "CPV01" and code.common is None and code.other == ()
    (app,) = code.applications
    assert app.aid == H("A0000000555555") and app.transparent is None
    assert app.get(0x57) == H("1234567890123458D191220112345F")
    poi = process(EXAMPLE_1, [H("A0000000555555")])
    assert poi.pan == "1234567890123458" and poi.transparent == b"" and poi.data_format == H("0010")
    assert [tag for tag, _ in poi.objects] == [0x4F, 0x57]


def test_example_2_two_applications_and_common_data() -> None:
    code = decode(EXAMPLE_2)
    assert [a.aid for a in code.applications] == [H("A0000000555555"), H("A0000000666666")]
    assert [a.get(0x50) for a in code.applications] == [b"Product1", b"Product2"]
    assert code.common is not None
    assert code.common.get(0x5A) == H("1234567890123458")
    assert code.common.get(0x5F20) == b"CARDHOLDER/EMV" and code.common.get(0x5F2D) == b"ruesdeen"
    inner = tlv.decode(code.common.transparent or b"")
    assert [o.tag for o in inner] == [0x9F10, 0x9F26, 0x9F36, 0x9F37]
    assert inner[1].value == H("584FD385FA234BCC")


def test_example_2_poi_data_of_the_second_application() -> None:
    poi = process(EXAMPLE_2, [H("A0000000666666")])
    assert poi.aid == H("A0000000666666") and poi.get(0x50) == b"Product2"
    assert [tag for tag, _ in poi.objects] == [0x4F, 0x50, 0x5A, 0x5F20, 0x5F2D]
    assert poi.transparent == decode(EXAMPLE_2).common.transparent  # type: ignore[union-attr]
    assert poi.pan == "1234567890123458"


def test_unionpay_style_sample() -> None:
    payload = unionpay_style()
    assert payload.startswith("hQVDUFYwMW")
    poi = process(payload, [H("A000000333")])
    assert poi.aid == UNIONPAY and poi.pan == "6234567890123456" and poi.get(0x5F34) == H("00")
    fields = {o.tag: o.value for o in tlv.decode(poi.transparent)}
    assert fields[0x9F27] == H("80") and fields[0x9F36] == H("0001") and fields[0x82] == H("0000")
    assert 0x9F26 not in dict(poi.objects)  # the cryptogram is transparent data, not POI data


@pytest.mark.parametrize("payload", [EXAMPLE_1, EXAMPLE_2])
def test_encode_gives_the_payload_back(payload: str) -> None:
    assert encode(decode(payload)) == payload


# ------------------------------------------------------------------------ choosing the application


def test_the_terminal_aid_listed_first_wins() -> None:
    assert process(EXAMPLE_2, [H("A0000000666666"), H("A0000000555555")]).aid == H("A0000000666666")
    assert process(EXAMPLE_2, [H("A0000000555555"), H("A0000000666666")]).aid == H("A0000000555555")


def test_a_longer_aid_in_the_code_matches_its_prefix_but_not_the_reverse() -> None:
    assert process(EXAMPLE_1, [H("A000000055")]).aid == H("A0000000555555")
    with pytest.raises(NoApplication, match="A0000000555555"):
        process(EXAMPLE_1, [H("A000000055555501")])


def test_no_matching_application() -> None:
    with pytest.raises(NoApplication) as info:
        process(EXAMPLE_2, [H("A000000333")])
    assert "A0000000555555, A0000000666666" in str(info.value)


@pytest.mark.parametrize("aid", ["A0000000", "A00000005555555555555555555555555555"])
def test_templates_with_an_aid_not_5_to_16_bytes_are_skipped(aid: str) -> None:
    bad = tlv.encode(0x61, tlv.encode(0x4F, H(aid)) + tlv.encode(0x57, TRACK2))
    good = tlv.encode(0x61, tlv.encode(0x4F, UNIONPAY) + tlv.encode(0x57, TRACK2))
    with pytest.raises(NoApplication):
        process(b64(PFI, bad), [H(aid[:8])])
    assert process(b64(PFI, bad, good), [H(aid[:8]), UNIONPAY]).aid == UNIONPAY


def test_a_template_without_an_aid_is_skipped() -> None:
    no_aid = tlv.encode(0x61, tlv.encode(0x57, TRACK2))
    good = tlv.encode(0x61, tlv.encode(0x4F, UNIONPAY) + tlv.encode(0x57, TRACK2))
    assert process(b64(PFI, no_aid, good), [H("A000000333")]).application.offset == 7 + len(no_aid)


# ------------------------------------------------------------------------------- named errors


@pytest.mark.parametrize(
    ("payload", "error", "text"),
    [
        ("", MalformedCode, "starts with 'hQVDUFY'"),
        ("00020101021229", MalformedCode, "starts with"),
        ("hQVDUFYwMWE!", MalformedCode, "not base64"),
        ("hQVDUFYwMWE", MalformedCode, "not base64"),  # bad padding
        ("hQVDUFYwMWE=", MalformedCode, "not BER-TLV"),  # 61 without a length
        (b64(H("85054350563032"), H("6100")), UnsupportedVersion, "'CPV02'"),
        (b64(PFI), NoApplication, "no application template"),
        (b64(PFI, tlv.encode(0x62, tlv.encode(0x5A, H("1234567890123458")))), NoApplication, "no application"),
        (b64(PFI, PFI, tlv.encode(0x61, tlv.encode(0x4F, UNIONPAY))), DuplicateData, "second payload format"),
        (b64(PFI, tlv.encode(0x61, tlv.encode(0x63, b"") * 2)), DuplicateData, "second transparent"),
        (b64(PFI, tlv.encode(0x62, b""), tlv.encode(0x62, b"")), DuplicateData, "second common"),
    ],
)
def test_errors(payload: str, error: type[CpmError], text: str) -> None:
    with pytest.raises(error, match=text) as info:
        decode(payload)
    assert isinstance(info.value, ValueError) and type(info.value) is error


def test_another_version_names_tag_85() -> None:
    payload = b64(tlv.encode(0x85, b"CPV0A"), tlv.encode(0x61, tlv.encode(0x4F, UNIONPAY)))
    assert payload.startswith("hQVDUFY")  # the prefix only says "CPV"
    with pytest.raises(UnsupportedVersion, match=r"'CPV0A' is not 'CPV01' \(tag 85 at byte 0\)"):
        decode(payload)


def test_error_names_the_tag_and_the_byte() -> None:
    broken = PFI + H("611A4F07A0000000555555570F12")  # 57 runs past the end of the data
    with pytest.raises(MalformedCode) as info:
        decode(b64(broken))
    assert info.value.offset == len(PFI) and "tag 61" in str(info.value)


def test_a_primitive_twice_in_the_chosen_template_only_is_an_error() -> None:
    twice = tlv.encode(0x61, tlv.encode(0x4F, H("A0000000555555")) + tlv.encode(0x57, TRACK2) * 2)
    good = tlv.encode(0x61, tlv.encode(0x4F, UNIONPAY) + tlv.encode(0x57, TRACK2))
    payload = b64(PFI, twice, good)
    assert process(payload, [UNIONPAY]).aid == UNIONPAY  # the other template is no POI data
    with pytest.raises(DuplicateData, match="given twice in the POI data \\(tag 57 at byte 7\\)"):
        process(payload, [H("A0000000555555")])


def test_duplicate_between_application_and_common_data() -> None:
    app = tlv.encode(0x61, tlv.encode(0x4F, UNIONPAY) + tlv.encode(0x5A, H("6234567890123456")))
    common = tlv.encode(0x62, tlv.encode(0x5A, H("6234567890123456")))
    with pytest.raises(DuplicateData, match="tag 5A"):
        process(b64(PFI, app, common), [H("A000000333")])


def test_neither_track_2_nor_pan() -> None:
    app = tlv.encode(0x61, tlv.encode(0x4F, UNIONPAY) + tlv.encode(0x50, b"UnionPay"))
    with pytest.raises(MissingData, match="tag 57"):
        process(b64(PFI, app), [H("A000000333")])


def test_transparent_data_is_not_parsed() -> None:
    garbage = H("9F")  # not BER-TLV: the POI must not care
    app = tlv.encode(0x61, tlv.encode(0x4F, UNIONPAY) + tlv.encode(0x57, TRACK2) + tlv.encode(0x63, garbage))
    assert process(b64(PFI, app), [H("A000000333")]).transparent == garbage


def test_unknown_objects_are_kept() -> None:
    app = tlv.encode(0x61, tlv.encode(0x4F, UNIONPAY) + tlv.encode(0x57, TRACK2) + tlv.encode(0xDF01, b"x"))
    extra = tlv.encode(0x65, tlv.encode(0x01, b"y"))
    code = decode(b64(PFI, app, extra))
    assert code.applications[0].get(0xDF01) == b"x" and code.other == ((0x65, H("0101") + b"y"),)
    assert process(code, [H("A000000333")]).get(0xDF01) == b"x"
    assert decode(encode(code)) == code


def test_card_data_is_not_in_the_repr() -> None:
    code = decode(EXAMPLE_2)
    poi = process(code, [H("A0000000555555")])
    for shown in (repr(code), repr(poi), repr(code.common)):
        assert "1234567890123458" not in shown and "\\x124Vx" not in shown and "CARDHOLDER" not in shown
    assert repr(ApplicationTemplate(((0x4F, UNIONPAY),))) == "ApplicationTemplate(tags=[4F], transparent=none)"
    assert isinstance(code, ConsumerPresentedCode)


def test_lengths_in_the_long_form_and_padding_keep_offsets_right() -> None:  # found by the fuzz test
    app = H("4F8107") + UNIONPAY[:7] + H("00") + tlv.encode(0x57, TRACK2)
    payload = b64(PFI, H("00"), H("6181") + bytes([len(app)]) + app)
    (template,) = decode(payload).applications
    assert template.offset == len(PFI) + 1 and template.aid == UNIONPAY[:7]
    assert process(payload, [UNIONPAY[:7]]).pan == "6234567890123456"
