"""emv.qr_mpm: the vectors of ../shared/PAYMENT-MEANS.md §1 and every rule of the strict decoder.

The library defects the notes list each have a test here: a CRC with a
leading zero (emvqr#13), a lowercase CRC (emvqr#8), decoding that must
require the CRC (emv-qrcode#4/#5, #30), the CRC over UTF-8 bytes (#9), IDs
02-25 parsed as templates (emv-qrcode#28, juanroman/emvqr#2), an unknown 00
inside 62 refused (MPQR SDK #4).
"""

from __future__ import annotations

import dataclasses

import pytest

from emv.qr_mpm import (
    ANNEX_B,
    AdditionalData,
    CrcError,
    DuplicateObject,
    InvalidValue,
    LanguageTemplate,
    MalformedObject,
    MerchantPresentedCode,
    MissingObject,
    MpmError,
    Template,
    crc16,
    decode,
    encode,
    with_crc,
)

#: A UnionPay merchant account as the five public real codes carry it: 8 + "00520446" + 15 characters.
UNIONPAY_15 = "25510000" + "00520446" + "104540000000123"


def body_of(payload: str) -> str:
    """The payload without its CRC object."""
    assert payload[-8:-4] == "6304"
    return payload[:-8]


def shop(**changes: object) -> MerchantPresentedCode:
    base = MerchantPresentedCode(
        merchant_category_code="5411",
        currency="156",
        country="CN",
        merchant_name="POSTERM TEST SHOP",
        merchant_city="SHANGHAI",
        accounts=(("15", UNIONPAY_15),),
        point_of_initiation="12",
        amount="12.34",
        additional_data=AdditionalData(reference_label="ORDER-1", terminal_label="TERM0001"),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ the notes' vectors


def test_annex_b_decodes_field_by_field() -> None:
    assert len(ANNEX_B) == 248 and len(ANNEX_B.encode("utf-8")) == 260  # length in characters, CRC over bytes
    code = decode(ANNEX_B)
    assert (code.point_of_initiation, code.merchant_category_code, code.currency) == ("12", "4111", "156")
    assert (code.country, code.merchant_name, code.merchant_city) == ("CN", "BEST TRANSPORT", "BEIJING")
    assert (code.amount, code.tip_indicator, code.fee_fixed, code.fee_percentage) == ("23.72", "01", None, None)
    assert code.accounts == ()
    assert [(t.id, t.gui, t.fields) for t in code.templates] == [
        ("29", "D15600000000", (("05", "A93FO3230Q"),)),
        ("31", "D15600000001", (("03", "12345678"),)),
        ("91", "A011223344998877", (("07", "12345678"),)),
    ]
    assert code.language == LanguageTemplate("ZH", "最佳运输", "北京")
    assert code.additional_data == AdditionalData(
        store_label="1234", customer_label="***", terminal_label="A6008667", consumer_data_request="ME"
    )
    assert code.dynamic


def test_annex_b_re_encodes_to_a_code_that_decodes_the_same() -> None:
    code = decode(ANNEX_B)
    again = encode(code)
    assert decode(again) == code
    assert sorted(again[:-8]) == sorted(ANNEX_B[:-8])  # the same objects, in ID order


def test_crc_check_value() -> None:
    assert crc16(b"123456789") == 0x29B1
    assert ANNEX_B.endswith("6304A13A")


def test_lowercase_crc_is_accepted() -> None:  # emvqr#8
    lower = ANNEX_B[:-4] + ANNEX_B[-4:].lower()
    assert lower.endswith("a13a")
    assert decode(lower) == decode(ANNEX_B)


def test_crc_with_a_leading_zero_is_written_and_read() -> None:  # emvqr#13
    for n in range(100_000):
        code = shop(additional_data=AdditionalData(reference_label=f"R{n}"))
        payload = encode(code)
        if payload[-4] == "0":
            break
    else:  # pragma: no cover - one CRC in 16 starts with 0
        pytest.fail("no CRC below 1000 found")
    assert int(payload[-4:], 16) < 0x1000 and len(payload[-4:]) == 4
    assert decode(payload) == code


def test_the_crc_is_over_utf8_bytes_not_characters() -> None:  # emv-qrcode#9
    body = body_of(ANNEX_B) + "6304"
    assert crc16(body.encode("utf-8")) == 0xA13A
    assert crc16(body.encode("utf-16-le")) != 0xA13A


# ----------------------------------------------------------------------- primitive 02-25, templates


def test_unionpay_15_is_primitive() -> None:  # emv-qrcode#28 (Laos)
    payload = encode(shop())
    assert "1531" + UNIONPAY_15 in payload
    code = decode(payload)
    assert code.account("15") == UNIONPAY_15 and code.templates == ()


@pytest.mark.parametrize("ident", ["02", "04", "15", "25"])
def test_primitive_accounts_whose_value_looks_like_objects(ident: str) -> None:  # juanroman/emvqr#2 (Ghana)
    value = "0002010102"  # reads as objects if parsed as a template, with a duplicate ID
    code = decode(with_crc(f"000201{ident}{len(value):02d}{value}52045411530393658" + "02GH5903ABC6005ACCRA"))
    assert code.account(ident) == value


def test_sgqr_shaped_code_round_trips() -> None:
    code = shop(
        accounts=(),
        country="SG",
        currency="702",
        templates=(
            Template("26", "SG.PAYNOW", (("01", "2"), ("02", "201403121W"), ("03", "1"), ("04", "20991231"))),
            Template(
                "51", "SG.SGQR", (("01", "180625C3F4B1"), ("02", "01.0001"), ("03", "608526"), ("07", "20180625"))
            ),
        ),
    )
    assert decode(encode(code)) == code


def test_unknown_and_rfu_objects_are_kept() -> None:
    data = AdditionalData(reference_label="R1", unknown=(("00", "X"), ("10", "TAX-1"), ("11", "C")),
                          templates=(Template("50", "COM.EXAMPLE", (("01", "Y"),)),))  # fmt: skip
    code = shop(
        additional_data=data,
        unknown=(("65", "RFU"), ("79", "ZZ")),
        templates=(Template("80", "ORG.EXAMPLE", (("01", "A"),)),),
        language=LanguageTemplate("DE", "Laden", "Berlin", unknown=(("03", "x"),)),
    )
    payload = encode(code)
    assert "6503RFU" in payload and "0001X" in payload
    assert decode(payload) == code


def test_a_code_with_only_an_unreserved_template_has_no_merchant_account() -> None:
    body = "00020180150011ORG.EXAMPLE52045411530397858" + "02DE5904SHOP6006BERLIN"
    with pytest.raises(MissingObject) as info:
        decode(with_crc(body))
    assert info.value.id == "02"


# ---------------------------------------------------------------------------------- CRC errors


def test_decode_requires_the_crc() -> None:  # emv-qrcode#4/#5, dongri#30
    with pytest.raises(CrcError, match=r"has no CRC \(ID 63, character 240\)"):
        decode(body_of(ANNEX_B))


def test_a_wrong_crc_names_id_63_and_its_position() -> None:
    with pytest.raises(CrcError) as info:
        decode(ANNEX_B[:-4] + "A13B")
    assert (info.value.id, info.value.position) == ("63", 240)
    assert "A13B" in str(info.value) and "A13A" in str(info.value)


def test_a_changed_character_is_caught_by_the_crc() -> None:
    with pytest.raises(CrcError):
        decode(ANNEX_B.replace("23.72", "93.72"))


def test_crc_not_last() -> None:
    body = body_of(encode(shop()))
    with pytest.raises(CrcError, match="not the last"):
        decode(body + "63041234" + "6502XX")


@pytest.mark.parametrize("crc", ["12G4", "+123", "１２３４"])
def test_crc_not_hex(crc: str) -> None:
    with pytest.raises(CrcError, match="four hex digits"):
        decode(body_of(ANNEX_B) + "6304" + crc)


def test_crc_of_a_wrong_length() -> None:
    with pytest.raises(CrcError, match="four hex digits"):
        decode(body_of(ANNEX_B) + "6303A13")


# ------------------------------------------------------------------------------- structure errors


@pytest.mark.parametrize(
    ("payload", "error", "ident", "position"),
    [
        ("", MalformedObject, None, 0),
        ("0002", MalformedObject, "00", 0),  # the value runs past the end
        ("000201630", MalformedObject, None, 6),  # three characters left
        ("00020163", MalformedObject, None, 6),
        ("0x0201", MalformedObject, None, 0),
        ("0002016304ABCD", CrcError, "63", 6),
        ("000201520A5411", MalformedObject, "52", 6),
        ("000201520054116304ABCD", MalformedObject, "52", 6),  # length 00
        ("000201٥٢045411", MalformedObject, None, 6),  # Arabic-Indic digits are no ID
        ("010212000201", MalformedObject, "01", 0),  # 00 is not first
        ("000202", InvalidValue, "00", 0),  # format indicator other than 01
        ("0002010102120102116304ABCD", DuplicateObject, "01", 12),
    ],
)
def test_structure_errors(payload: str, error: type[MpmError], ident: str | None, position: int) -> None:
    with pytest.raises(error) as info:
        decode(payload)
    assert type(info.value) is error and isinstance(info.value, ValueError)
    assert (info.value.id, info.value.position) == (ident, position)
    if ident is not None:
        assert f"ID {ident}, character {position}" in str(info.value)


def test_duplicate_inside_a_template_names_the_path() -> None:
    body = body_of(encode(shop()))
    doubled = body.replace("6223", "6231").replace("0507ORDER-1", "0507ORDER-10504ABCD", 1)
    assert doubled != body
    with pytest.raises(DuplicateObject) as info:
        decode(with_crc(doubled))
    assert info.value.id == "62.05" and info.value.position == doubled.index("0504ABCD")


def test_an_object_overrunning_its_template() -> None:
    body = body_of(encode(shop()))
    broken = body.replace("0708TERM0001", "0709TERM0001")
    with pytest.raises(MalformedObject) as info:
        decode(with_crc(broken))
    assert info.value.id == "62.07" and "runs past the end of the template 62" in str(info.value)


def test_a_character_utf8_cannot_encode() -> None:
    with pytest.raises(MalformedObject) as info:
        decode("000201\udc80")
    assert info.value.position == 6


def test_length_counts_characters() -> None:
    code = shop(merchant_name="上海测试商店", language=LanguageTemplate("ZH", "上海测试商店"))
    payload = encode(code)
    assert "5906上海测试商店" in payload
    assert decode(payload) == code


# ----------------------------------------------------------------------------------- value errors


@pytest.mark.parametrize("amount", ["98.73", "98", "98.", "0.01", "1234567890.12", ".5"])
def test_amounts_accepted(amount: str) -> None:
    assert decode(encode(shop(amount=amount))).amount == amount


@pytest.mark.parametrize("amount", ["98,73", "3 705", "0", "0.00", "1.2.3", "-1", "1e3", "12345678901.23", "١٢"])
def test_amounts_refused(amount: str) -> None:
    body = body_of(encode(shop(amount=None))) + f"54{len(amount):02d}{amount}"
    with pytest.raises(InvalidValue) as info:
        decode(with_crc(body))
    assert info.value.id == "54" and info.value.position == len(body) - len(amount) - 4


@pytest.mark.parametrize(
    ("ident", "value"),
    [("01", "13"), ("52", "541"), ("52", "54a1"), ("53", "9780"), ("55", "04"), ("58", "C1"), ("58", "CHN"),
     ("59", "N" * 26), ("60", "C" * 16), ("61", "1" * 11)],
)  # fmt: skip
def test_root_values_refused(ident: str, value: str) -> None:
    code = shop(tip_indicator=None)
    body = "".join(
        obj for obj in _split(body_of(encode(code))) if obj[:2] != ident
    ) + f"{ident}{len(value):02d}{value}"
    with pytest.raises(InvalidValue) as info:
        decode(with_crc(body))
    assert info.value.id == ident


def _split(body: str) -> list[str]:
    out, pos = [], 0
    while pos < len(body):
        size = int(body[pos + 2 : pos + 4])
        out.append(body[pos : pos + 4 + size])
        pos += 4 + size
    return out


@pytest.mark.parametrize("ident", ["52", "53", "58", "59", "60"])
def test_mandatory_objects(ident: str) -> None:
    body = "".join(obj for obj in _split(body_of(encode(shop()))) if obj[:2] != ident)
    with pytest.raises(MissingObject) as info:
        decode(with_crc(body))
    assert info.value.id == ident and f"mandatory ID {ident}" in str(info.value)


def test_no_merchant_account() -> None:
    body = "".join(obj for obj in _split(body_of(encode(shop()))) if obj[:2] != "15")
    with pytest.raises(MissingObject, match="no merchant account"):
        decode(with_crc(body))


def test_template_without_gui() -> None:
    body = body_of(encode(shop())) + "26080104ABCD"
    with pytest.raises(MissingObject) as info:
        decode(with_crc(body))
    assert info.value.id == "26" and info.value.position == len(body) - 12


def test_gui_longer_than_32() -> None:
    gui = "A" * 33
    body = body_of(encode(shop())) + "2637" + f"0033{gui}"
    with pytest.raises(InvalidValue) as info:
        decode(with_crc(body))
    assert info.value.id == "26.00"


@pytest.mark.parametrize(
    ("tip", "fixed", "percent", "error", "ident"),
    [
        ("02", None, None, MissingObject, "55"),
        ("03", None, None, MissingObject, "55"),
        ("02", None, "5.00", InvalidValue, "57"),
        ("03", "1.00", None, InvalidValue, "56"),
        (None, "1.00", None, InvalidValue, "56"),
        (None, None, "5", InvalidValue, "57"),
        ("01", "1.00", None, InvalidValue, "56"),
    ],
)
def test_tip_and_fee_consistency(
    tip: str | None, fixed: str | None, percent: str | None, error: type[MpmError], ident: str
) -> None:
    body = body_of(encode(shop()))
    for i, value in (("55", tip), ("56", fixed), ("57", percent)):
        if value is not None:
            body += f"{i}{len(value):02d}{value}"
    with pytest.raises(error) as info:
        decode(with_crc(body))
    assert info.value.id == ident


@pytest.mark.parametrize(("tip", "fixed", "percent"), [("01", None, None), ("02", "0.50", None), ("03", None, "3.5"),
                                                       ("03", None, "00.01"), ("03", None, "99.99")])  # fmt: skip
def test_tip_and_fee_accepted(tip: str, fixed: str | None, percent: str | None) -> None:
    code = shop(tip_indicator=tip, fee_fixed=fixed, fee_percentage=percent)
    assert decode(encode(code)) == code


@pytest.mark.parametrize("percent", ["0", "00.00", "100", "5%", "5.001", "5,5"])
def test_fee_percentage_refused(percent: str) -> None:
    body = body_of(encode(shop())) + "550203" + f"57{len(percent):02d}{percent}"
    with pytest.raises(InvalidValue) as info:
        decode(with_crc(body))
    assert info.value.id == "57"


@pytest.mark.parametrize("request_", ["AA", "X", "AMEA", "ame"])
def test_consumer_data_request_refused(request_: str) -> None:
    with pytest.raises(InvalidValue) as info:
        encode(shop(additional_data=AdditionalData(consumer_data_request=request_)))
    assert info.value.id == "62.09"


def test_additional_field_longer_than_25() -> None:
    with pytest.raises(InvalidValue) as info:
        encode(shop(additional_data=AdditionalData(reference_label="R" * 26)))
    assert info.value.id == "62.05"


def test_language_template_needs_language_and_name() -> None:
    body = body_of(encode(shop())) + "64060002ZH"
    with pytest.raises(MissingObject) as info:
        decode(with_crc(body))
    assert info.value.id == "64" and "merchant name" in str(info.value)


# ------------------------------------------------------------------------------------- encoding


def test_encode_refuses_a_value_over_99_characters() -> None:
    with pytest.raises(InvalidValue) as info:
        encode(shop(accounts=(("15", "X" * 100),)))
    assert info.value.id == "15"


@pytest.mark.parametrize(
    "code",
    [
        shop(accounts=(("26", "X"),)),  # a template ID as a primitive account
        shop(templates=(Template("15", "GUI"),)),  # a primitive ID as a template
        shop(unknown=(("62", "X"),)),
        shop(additional_data=AdditionalData(unknown=(("50", "X"),))),
    ],
)
def test_encode_refuses_ids_of_the_wrong_kind(code: MerchantPresentedCode) -> None:
    with pytest.raises(InvalidValue):
        encode(code)


def test_models_are_normalised_so_equal_codes_compare_equal() -> None:
    a = Template("26", "G", (("02", "B"), ("01", "A")))
    assert a == Template("26", "G", (("01", "A"), ("02", "B")))
    assert a.field("02") == "B" and a.field("03") is None
