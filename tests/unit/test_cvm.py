"""CVM list processing (emv.cvm), EMV Book 3 section 10.5."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emv.cvm import (
    CAP_ENCIPHERED_PIN_OFFLINE,
    CAP_NO_CVM,
    CAP_ONLINE_PIN,
    CAP_PLAINTEXT_PIN,
    CAP_SIGNATURE,
    CvmContext,
    CvmListError,
    CvmMethod,
    CvmRule,
    PinResult,
    condition_satisfied,
    no_cvm_supported_by_card,
    parse_cvm_list,
    process,
    terminal_supports,
)
from emv.outcome import CvmPerformed
from emv.tvr import Tsi, Tvr

EUR = b"\x09\x78"
USD = b"\x08\x40"
ALL_CAPS = CAP_PLAINTEXT_PIN | CAP_ONLINE_PIN | CAP_SIGNATURE | CAP_ENCIPHERED_PIN_OFFLINE | CAP_NO_CVM


def cvm_list(rules: str, x: int = 0, y: int = 0) -> bytes:
    return x.to_bytes(4, "big") + y.to_bytes(4, "big") + bytes.fromhex(rules)


def ctx(**kw: object) -> CvmContext:
    base: dict[str, object] = {
        "amount": 1000,
        "transaction_currency": EUR,
        "application_currency": EUR,
        "cvm_capability": ALL_CAPS,
    }
    base.update(kw)
    return CvmContext(**base)  # type: ignore[arg-type]


def run(rules: str, x: int = 0, y: int = 0, **kw: object) -> tuple[str, CvmPerformed, list[str]]:
    out = process(parse_cvm_list(cvm_list(rules, x, y)), ctx(**kw))
    return out.results.hex().upper(), out.performed, out.tvr_names()


# --------------------------------------------------------------------------- parsing


def test_parse_amounts_and_rules() -> None:
    cl = parse_cvm_list(cvm_list("4203 1E03 1F00", x=5000, y=20000))
    assert (cl.amount_x, cl.amount_y) == (5000, 20000)
    assert [(r.method, r.condition, r.apply_next_if_fails) for r in cl.rules] == [
        (0x02, 0x03, True),
        (0x1E, 0x03, False),
        (0x1F, 0x00, False),
    ]


@pytest.mark.parametrize("length", [0, 7, 9, 11])
def test_parse_rejects_bad_lengths(length: int) -> None:
    with pytest.raises(CvmListError):
        parse_cvm_list(bytes(length))


@given(st.binary(max_size=64), st.integers(0, 99_999), st.sampled_from([0x00, 0x01, 0x09, 0x17, 0x20]))
def test_any_list_gives_a_defined_result(data: bytes, amount: int, ttype: int) -> None:
    try:
        cl = parse_cvm_list(data)
    except CvmListError:
        return
    out = process(cl, ctx(amount=amount, transaction_type=ttype))
    assert len(out.results) == 3
    assert out.results[2] in (0, 1, 2)


def test_no_list_is_icc_data_missing() -> None:
    out = process(None, ctx())
    assert out.results.hex().upper() == "3F0000"
    assert out.tvr_names() == ["icc_data_missing"]
    assert out.tsi_bits == ()
    empty = process(parse_cvm_list(cvm_list("")), ctx())
    assert empty.results.hex().upper() == "3F0000"


def test_card_without_cvm_support() -> None:
    out = no_cvm_supported_by_card()
    assert out.results == bytes.fromhex("3F0000")
    assert out.performed is CvmPerformed.NO_CVM
    assert out.tvr_bits == () and out.tsi_bits == ()


# --------------------------------------------------------------------------- conditions


def test_always() -> None:
    assert run("1F00") == ("1F0002", CvmPerformed.NO_CVM, [])


def test_unattended_cash() -> None:
    # cash at an unattended terminal: condition holds
    assert run("0201 1F00", transaction_type=0x01, terminal_type=0x25)[0] == "020100"
    # attended terminal: skipped
    assert run("0201 1F00", transaction_type=0x01, terminal_type=0x22)[0] == "1F0002"
    # purchase at unattended terminal: skipped
    assert run("0201 1F00", transaction_type=0x00, terminal_type=0x25)[0] == "1F0002"


def test_manual_cash() -> None:
    assert run("1E04 1F00", transaction_type=0x01, terminal_type=0x11)[0] == "1E0400"
    assert run("1E04 1F00", transaction_type=0x01, terminal_type=0x14)[0] == "1F0002"
    assert run("1E04 1F00", transaction_type=0x00, terminal_type=0x11)[0] == "1F0002"


def test_not_cash_or_cashback() -> None:
    assert run("1E02 1F00", transaction_type=0x00)[0] == "1E0200"
    assert run("1E02 1F00", transaction_type=0x01)[0] == "1F0002"
    assert run("1E02 1F00", transaction_type=0x09)[0] == "1F0002"


def test_cashback() -> None:
    assert run("1E05 1F00", transaction_type=0x09)[0] == "1E0500"
    assert run("1E05 1F00", transaction_type=0x00)[0] == "1F0002"


def test_terminal_supports_condition() -> None:
    # signature not supported: rule skipped (not failed), next one applies
    assert run("1E03 1F00", cvm_capability=CAP_NO_CVM) == ("1F0002", CvmPerformed.NO_CVM, [])
    assert run("1E03 1F00", cvm_capability=CAP_SIGNATURE)[0] == "1E0300"


@pytest.mark.parametrize(
    ("cond", "amount", "holds"),
    [
        (0x06, 4999, True),
        (0x06, 5000, False),
        (0x07, 5001, True),
        (0x07, 5000, False),
        (0x08, 19999, True),
        (0x08, 20000, False),
        (0x09, 20001, True),
        (0x09, 20000, False),
    ],
)
def test_amount_conditions(cond: int, amount: int, holds: bool) -> None:
    cl = parse_cvm_list(cvm_list("", x=5000, y=20000))
    rule = CvmRule(0x1F, cond)
    assert condition_satisfied(rule, cl, ctx(amount=amount)) is holds


@pytest.mark.parametrize("cond", [0x06, 0x07, 0x08, 0x09])
def test_amount_conditions_skipped_in_other_currency(cond: int) -> None:
    cl = parse_cvm_list(cvm_list("", x=5000, y=20000))
    rule = CvmRule(0x1F, cond)
    for amount in (0, 5000, 10000, 30000):
        assert not condition_satisfied(rule, cl, ctx(amount=amount, transaction_currency=USD))
        assert not condition_satisfied(rule, cl, ctx(amount=amount, application_currency=None))


def test_over_x_selects_pin_under_x_no_cvm() -> None:
    rules = "4207 1F06"
    assert run(rules, x=5000, amount=6000)[0] == "420700"
    assert run(rules, x=5000, amount=4000)[0] == "1F0602"
    # in another currency neither amount rule applies: nothing satisfied
    assert run(rules, x=5000, amount=6000, transaction_currency=USD) == (
        "3F0001",
        CvmPerformed.FAILED,
        ["cardholder_verification_failed"],
    )


def test_unknown_condition_is_skipped() -> None:
    assert run("1F0A 1E00")[0] == "1E0000"
    assert run("1F80")[0] == "3F0001"


# --------------------------------------------------------------------------- methods


def test_online_pin() -> None:
    results, performed, tvr = run("0200")
    assert (results, performed, tvr) == ("020000", CvmPerformed.ONLINE_PIN, ["online_pin_entered"])


def test_online_pin_with_pin_pad_absent() -> None:
    results, performed, tvr = run("0200", pin_pad_working=False)
    assert results == "020001"
    assert performed is CvmPerformed.FAILED
    assert tvr == ["pin_pad_absent", "cardholder_verification_failed"]


def test_signature() -> None:
    out = process(parse_cvm_list(cvm_list("1E00")), ctx())
    assert out.results.hex().upper() == "1E0000"
    assert out.signature_required and out.performed is CvmPerformed.SIGNATURE


def test_fail_cvm_method() -> None:
    assert run("0000 1F00") == ("000001", CvmPerformed.FAILED, ["cardholder_verification_failed"])
    # with apply-next the next rule is tried, no "unrecognised" bit
    assert run("4000 1F00") == ("1F0002", CvmPerformed.NO_CVM, [])


def test_unrecognised_method() -> None:
    assert run("2500") == (
        "250001",
        CvmPerformed.FAILED,
        ["unrecognised_cvm", "cardholder_verification_failed"],
    )
    assert run("6500 1F00") == ("1F0002", CvmPerformed.NO_CVM, ["unrecognised_cvm"])


def test_unsupported_method_fails_without_apply_next() -> None:
    assert run("1E00 1F00", cvm_capability=CAP_NO_CVM) == (
        "1E0001",
        CvmPerformed.FAILED,
        ["cardholder_verification_failed"],
    )


def test_unsupported_method_with_apply_next() -> None:
    assert run("5E00 1F00", cvm_capability=CAP_NO_CVM) == ("1F0002", CvmPerformed.NO_CVM, [])
    assert run("5E00 4200 1F00", cvm_capability=CAP_NO_CVM) == ("1F0002", CvmPerformed.NO_CVM, [])


def test_all_attempted_fail_records_last() -> None:
    # both attempted, both fail: the last attempted rule goes into 9F34
    assert run("5E00 0200", cvm_capability=CAP_NO_CVM)[0] == "020001"
    # apply-next on the last rule, and it fails: still that rule
    assert run("5E00 4200", cvm_capability=CAP_NO_CVM)[0] == "420001"


def test_no_cvm_required_needs_capability() -> None:
    assert run("1F00", cvm_capability=CAP_ONLINE_PIN)[0] == "1F0001"


def test_offline_pin_without_pin_entry_is_pin_pad_absent() -> None:
    assert run("4100 1E00") == ("1E0000", CvmPerformed.SIGNATURE, ["pin_pad_absent"])


@pytest.mark.parametrize(
    ("pin", "results", "tvr"),
    [
        (PinResult.VERIFIED, "010002", []),
        (PinResult.FAILED, "010001", ["cardholder_verification_failed"]),
        (
            PinResult.TRY_LIMIT_EXCEEDED,
            "010001",
            ["pin_try_limit_exceeded", "cardholder_verification_failed"],
        ),
        (PinResult.NOT_ENTERED, "010001", ["pin_not_entered", "cardholder_verification_failed"]),
    ],
)
def test_offline_pin_results(pin: PinResult, results: str, tvr: list[str]) -> None:
    seen: list[CvmMethod] = []

    def verify(method: CvmMethod) -> PinResult:
        seen.append(method)
        return pin

    got = run("0100", offline_pin=verify)
    assert got[0] == results and got[2] == tvr
    assert seen == [CvmMethod.PLAINTEXT_PIN_ICC]


def test_offline_pin_and_signature() -> None:
    out = process(parse_cvm_list(cvm_list("0500")), ctx(offline_pin=lambda m: PinResult.VERIFIED))
    assert out.results.hex().upper() == "050000"
    assert out.signature_required


def test_terminal_supports_table() -> None:
    assert terminal_supports(CvmMethod.FAIL, 0)
    assert terminal_supports(CvmMethod.ENCIPHERED_PIN_ICC, CAP_ENCIPHERED_PIN_OFFLINE)
    assert not terminal_supports(CvmMethod.ENCIPHERED_PIN_ICC_AND_SIGNATURE, CAP_ENCIPHERED_PIN_OFFLINE)
    assert terminal_supports(
        CvmMethod.ENCIPHERED_PIN_ICC_AND_SIGNATURE, CAP_ENCIPHERED_PIN_OFFLINE | CAP_SIGNATURE
    )


def test_apply_to_sets_bits() -> None:
    out = process(parse_cvm_list(cvm_list("0200")), ctx())
    tvr, tsi = Tvr(), Tsi()
    out.apply_to(tvr, tsi)
    assert tvr.names() == ["online_pin_entered"]
    assert tsi.names() == ["cardholder_verification_performed"]


def test_keeps_rule_byte_with_apply_next_in_results() -> None:
    assert run("5E03 1F03", cvm_capability=CAP_SIGNATURE | CAP_NO_CVM)[0] == "5E0300"
