"""Processing restrictions, terminal risk management, terminal action analysis (emv.risk)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emv.apdu import AC_AAC, AC_ARQC, AC_TC
from emv.risk import (
    ActionCodes,
    RandomSelection,
    RestrictionContext,
    RiskResult,
    VelocityData,
    check_dates,
    floor_limit_check,
    is_atm,
    processing_restrictions,
    random_selection,
    terminal_action_analysis,
    terminal_risk_management,
    velocity_check,
)
from emv.tvr import Tsi, Tvr

DE = b"\x02\x76"
US = b"\x08\x40"
TODAY = bytes.fromhex("250614")


def pr(card: dict[int, bytes], **kw: object) -> list[str]:
    base: dict[str, object] = {
        "transaction_date": TODAY,
        "terminal_country": DE,
        "terminal_application_version": b"\x00\x02",
    }
    base.update(kw)
    return processing_restrictions(card, RestrictionContext(**base)).tvr_names()  # type: ignore[arg-type]


# --------------------------------------------------------------------------- processing restrictions


def test_application_version() -> None:
    assert pr({0x9F08: b"\x00\x02"}) == []
    assert pr({0x9F08: b"\x00\x03"}) == ["different_application_versions"]
    assert pr({}) == []


def test_dates() -> None:
    assert pr({0x5F25: bytes.fromhex("250614"), 0x5F24: bytes.fromhex("250614")}) == []
    assert pr({0x5F25: bytes.fromhex("250615")}) == ["application_not_yet_effective"]
    assert pr({0x5F24: bytes.fromhex("250613")}) == ["expired_application"]
    assert pr({0x5F24: bytes.fromhex("491231")}) == []
    assert pr({0x5F24: bytes.fromhex("991231")}) == ["expired_application"]  # 1999


@pytest.mark.parametrize(
    "bad", [b"", b"\x25", bytes.fromhex("25AA01"), bytes.fromhex("251301"), b"\x25\x02\x30"]
)
def test_unreadable_card_dates_count_against_the_card(bad: bytes) -> None:
    assert check_dates({0x5F24: bad}, TODAY).tvr_names() == ["expired_application"]
    assert check_dates({0x5F25: bad}, TODAY).tvr_names() == ["application_not_yet_effective"]


ALL_AUC = bytes.fromhex("FFC0")


@pytest.mark.parametrize(
    ("auc_off", "ttype", "country", "kind", "atm"),
    [
        ((0, 0x01), 0x00, DE, "goods", False),  # valid at non-ATM terminals
        ((0, 0x02), 0x01, DE, "goods", True),  # valid at ATMs
        ((0, 0x80), 0x01, DE, "goods", False),  # domestic cash
        ((0, 0x40), 0x01, US, "goods", False),  # international cash
        ((0, 0x20), 0x00, DE, "goods", False),  # domestic goods
        ((0, 0x10), 0x00, US, "goods", False),  # international goods
        ((0, 0x08), 0x00, DE, "services", False),  # domestic services
        ((0, 0x04), 0x00, US, "services", False),  # international services
        ((1, 0x80), 0x09, DE, "goods", False),  # domestic cashback
        ((1, 0x40), 0x09, US, "goods", False),  # international cashback
        ((0, 0x20), 0x09, DE, "goods", False),  # cashback is also a purchase of goods
    ],
)
def test_usage_control_each_bit(
    auc_off: tuple[int, int], ttype: int, country: bytes, kind: str, atm: bool
) -> None:
    auc = bytearray(ALL_AUC)
    card = {0x9F07: bytes(auc), 0x5F28: country}
    assert pr(card, transaction_type=ttype, purchase_kind=kind, atm=atm) == []
    auc[auc_off[0]] &= ~auc_off[1] & 0xFF
    card[0x9F07] = bytes(auc)
    assert pr(card, transaction_type=ttype, purchase_kind=kind, atm=atm) == ["service_not_allowed"]


def test_usage_control_without_issuer_country_checks_only_the_terminal_kind() -> None:
    assert pr({0x9F07: bytes.fromhex("0100")}) == []
    assert pr({0x9F07: bytes.fromhex("0200")}) == ["service_not_allowed"]


def test_usage_control_short_value_denies() -> None:
    assert pr({0x9F07: b"\xff", 0x5F28: DE}, transaction_type=0x09) == ["service_not_allowed"]
    assert pr({0x9F07: b"", 0x5F28: DE}) == ["service_not_allowed"]


def test_refund_only_checks_terminal_kind() -> None:
    assert pr({0x9F07: bytes.fromhex("0100"), 0x5F28: US}, transaction_type=0x20) == []


def test_is_atm() -> None:
    assert is_atm(0x14, bytes.fromhex("8000000000"))
    assert not is_atm(0x14, bytes.fromhex("0000000000"))
    assert not is_atm(0x22, bytes.fromhex("8000000000"))
    assert not is_atm(0x15, b"")


@given(st.dictionaries(st.sampled_from([0x9F07, 0x9F08, 0x5F24, 0x5F25, 0x5F28]), st.binary(max_size=6)))
def test_restrictions_never_raise_on_card_data(card: dict[int, bytes]) -> None:
    for ttype in (0x00, 0x01, 0x09, 0x20):
        pr(card, transaction_type=ttype)


# --------------------------------------------------------------------------- terminal risk management


def test_floor_limit() -> None:
    assert floor_limit_check(4999, 5000).tvr_names() == []
    assert floor_limit_check(5000, 5000).tvr_names() == ["floor_limit_exceeded"]
    assert floor_limit_check(5000, 5000, at_limit_exceeds=False).tvr_names() == []
    assert floor_limit_check(5001, 5000, at_limit_exceeds=False).tvr_names() == ["floor_limit_exceeded"]
    assert floor_limit_check(10**9, None).tvr_names() == []


PARAMS = RandomSelection(target_percent=10, max_target_percent=50, threshold=2000)


def selected(amount: int, rnd: int, floor: int | None = 6000, params: RandomSelection = PARAMS) -> bool:
    return random_selection(amount, floor, params, rnd).tvr_bits == (Tvr.RANDOM_SELECTION,)


def test_random_selection_below_threshold_uses_target() -> None:
    assert selected(1000, 9)
    assert not selected(1000, 10)
    assert sum(selected(1999, r) for r in range(100)) == 10


def test_random_selection_biased_above_threshold() -> None:
    # at the threshold TTP = target, halfway to the floor limit TTP = 30, just below it ~50
    assert sum(selected(2000, r) for r in range(100)) == 10
    assert sum(selected(4000, r) for r in range(100)) == 30
    assert sum(selected(5999, r) for r in range(100)) == 50  # 49.99 -> 0..49
    assert not selected(4000, 30)
    assert selected(4000, 29)


def test_random_selection_not_at_or_above_floor_limit() -> None:
    assert not any(selected(6000, r) for r in range(100))
    assert not any(selected(9000, r) for r in range(100))
    assert not selected(100, 0, floor=None)


def test_random_selection_zero_target_never_selects() -> None:
    params = RandomSelection(0, 0, 0)
    assert not any(selected(a, r, params=params) for a in (0, 100, 5999) for r in range(100))


def test_random_selection_threshold_at_floor_limit() -> None:
    params = RandomSelection(25, 99, 6000)
    assert sum(selected(5999, r, params=params) for r in range(100)) == 25


def vel(lcol: int, ucol: int, atc: int | None, last: int | None) -> list[str]:
    return velocity_check(
        VelocityData(
            bytes([lcol]),
            bytes([ucol]),
            None if atc is None else atc.to_bytes(2, "big"),
            None if last is None else last.to_bytes(2, "big"),
        )
    ).tvr_names()


def test_velocity() -> None:
    assert vel(3, 5, 12, 10) == []
    assert vel(3, 5, 13, 10) == []
    assert vel(3, 5, 14, 10) == ["lcol_exceeded"]
    assert vel(3, 5, 16, 10) == ["lcol_exceeded", "ucol_exceeded"]


def test_velocity_atc_not_above_last_online() -> None:
    assert vel(3, 5, 10, 10) == ["lcol_exceeded", "ucol_exceeded"]
    assert vel(3, 5, 9, 10) == ["lcol_exceeded", "ucol_exceeded"]


def test_velocity_missing_counters() -> None:
    assert vel(3, 5, None, 10) == ["lcol_exceeded", "ucol_exceeded"]
    assert vel(3, 5, 10, None) == ["lcol_exceeded", "ucol_exceeded"]
    # wrong length from GET DATA counts as not obtained; no new-card bit
    odd = VelocityData(b"\x03", b"\x05", b"\x00\x00\x10", b"\x00\x00")
    assert velocity_check(odd).tvr_names() == ["lcol_exceeded", "ucol_exceeded"]


def test_velocity_new_card() -> None:
    assert vel(3, 5, 2, 0) == ["new_card"]
    assert vel(3, 5, 9, 0) == ["lcol_exceeded", "ucol_exceeded", "new_card"]


def test_velocity_needs_both_limits() -> None:
    assert velocity_check(VelocityData(b"\x03", None, b"\x00\x20", b"\x00\x01")).tvr_names() == []
    assert velocity_check(VelocityData(None, b"\x03", None, None)).tvr_names() == []


def test_trm_combined_sets_tsi() -> None:
    r = terminal_risk_management(
        1000, 5000, 0, RandomSelection(20, 20, 0), VelocityData(b"\x01", b"\x02", b"\x00\x05", b"\x00\x00")
    )
    assert r.tvr_names() == ["random_selection", "lcol_exceeded", "ucol_exceeded", "new_card"]
    assert r.tsi_bits == (Tsi.TERMINAL_RISK_MANAGEMENT_PERFORMED,)
    tvr, tsi = Tvr(), Tsi()
    r.apply_to(tvr, tsi)
    assert tvr.value.hex().upper() == "0008007000"
    assert tsi.names() == ["terminal_risk_management_performed"]


def test_risk_result_add_deduplicates() -> None:
    a = RiskResult((Tvr.NEW_CARD,))
    assert (a + a).tvr_bits == (Tvr.NEW_CARD,)


# --------------------------------------------------------------------------- terminal action analysis

FLOOR = bytes.fromhex("0000008000")
EXPIRED = bytes.fromhex("0040000000")


def taa(tvr: bytes, online: bool = True, **codes: bytes | None) -> tuple[int, str, str]:
    d = terminal_action_analysis(tvr, ActionCodes(**codes), online_capable=online)  # type: ignore[arg-type]
    return d.reference, d.cryptogram, d.reason


def test_denial_gives_aac() -> None:
    assert taa(EXPIRED, tac_denial=EXPIRED) == (AC_AAC, "AAC", "denial")
    assert taa(EXPIRED, iac_denial=EXPIRED, iac_online=bytes(5)) == (AC_AAC, "AAC", "denial")
    assert taa(EXPIRED, online=False, iac_denial=EXPIRED) == (AC_AAC, "AAC", "denial")


def test_online_gives_arqc() -> None:
    assert taa(FLOOR, tac_online=FLOOR, iac_online=bytes(5)) == (AC_ARQC, "ARQC", "online")
    assert taa(FLOOR, iac_online=FLOOR) == (AC_ARQC, "ARQC", "online")


def test_no_match_online_capable_gives_tc() -> None:
    assert taa(FLOOR, iac_online=bytes(5)) == (AC_TC, "TC", "none")
    assert taa(bytes(5)) == (AC_TC, "TC", "none")


def test_absent_iac_online_means_all_bits() -> None:
    assert taa(FLOOR)[1] == "ARQC"
    # absent IAC-denial means no bits
    assert taa(FLOOR, iac_online=bytes(5))[1] == "TC"


def test_offline_only_terminal_uses_default() -> None:
    # the online codes are not consulted
    assert taa(FLOOR, online=False, tac_online=FLOOR, iac_default=bytes(5)) == (AC_TC, "TC", "none")
    assert taa(FLOOR, online=False, tac_default=FLOOR, iac_default=bytes(5)) == (AC_AAC, "AAC", "default")
    assert taa(FLOOR, online=False, iac_default=FLOOR) == (AC_AAC, "AAC", "default")
    # absent IAC-default: all ones
    assert taa(FLOOR, online=False) == (AC_AAC, "AAC", "default")
    assert taa(bytes(5), online=False) == (AC_TC, "TC", "none")


def test_malformed_iac_is_treated_as_absent() -> None:
    assert taa(FLOOR, iac_online=b"\x00")[1] == "ARQC"
    assert taa(EXPIRED, iac_denial=b"\xff", iac_online=bytes(5))[1] == "TC"


def test_action_codes_from_card() -> None:
    card = {0x9F0E: bytes(5), 0x9F0F: FLOOR, 0x9F0D: EXPIRED}
    codes = ActionCodes.from_card(bytes(5), bytes(5), bytes(5), card)
    assert (codes.iac_denial, codes.iac_online, codes.iac_default) == (bytes(5), FLOOR, EXPIRED)
