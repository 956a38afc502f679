"""The contact kernel's TVR (95) and TSI (9B), bit by bit: one test per bit it sets (EMV Book 3 Annex C5, C6).

Each bit is provoked on a real simulated card changed just enough, and the
test checks that bit is set (and, where the cause is single, that it is the
only one of its byte).
"""

from __future__ import annotations

import dataclasses

import pytest

from emv.config import ExceptionFile
from emv.contact import HostAnswer, PinStatus
from emv.risk import RandomSelection
from emv.tvr import Tsi, Tvr
from tests.contact_rig import Pad, config, host_arpc, profile, run, script

Bit = tuple[int, int]


def _apps(**changes: object) -> dict[str, object]:
    return {"applications": tuple(dataclasses.replace(a, **changes) for a in config().applications)}  # type: ignore[arg-type]


def tvr_of(card: object, amount: int = 1234, cardholder: Pad | None = None, **cfg: object) -> Tvr:
    _k, r, _c = run(card, amount, cardholder, config(**cfg) if cfg else None)  # type: ignore[arg-type]
    return Tvr(r.tvr)


# --------------------------------------------------------------------------- byte 1: ODA


def test_b1_oda_not_performed() -> None:
    """10.3: no method both support (the card's AIP offers none)."""
    assert Tvr.ODA_NOT_PERFORMED in _bits(tvr_of("contact-scripts"))


def test_b1_sda_failed() -> None:
    """10.3: SDA selected and its SSAD fails."""
    assert _bits(tvr_of("contact-bad-sda"))[:2] == [Tvr.SDA_FAILED, Tvr.SDA_SELECTED]


def test_b1_icc_data_missing() -> None:
    """10.5: the AIP says CVM is supported and there is no CVM list (8E): 9F34 3F0000, no TSI bit."""
    p = profile("contact-dda", data={}, records=_without_tag("contact-dda", 0x8E))
    _k, r, _c = run(p)
    assert _bits(Tvr(r.tvr)) == [Tvr.ICC_DATA_MISSING] and r.cvm_results == bytes.fromhex("3F0000")
    assert not Tsi(r.tsi).is_set(Tsi.CARDHOLDER_VERIFICATION_PERFORMED)


def test_b1_pan_in_exception_file() -> None:
    """10.6: exception file check in terminal risk management."""
    ef = ExceptionFile.from_entries([ExceptionFile.entry_for("4761739001010176")])
    t = tvr_of("contact-dda", exception_file=ef)
    assert t.is_set(Tvr.PAN_IN_EXCEPTION_FILE)


def test_b1_dda_failed() -> None:
    """10.3: the dynamic signature of INTERNAL AUTHENTICATE fails."""
    assert _bits(tvr_of("contact-bad-dda"))[:1] == [Tvr.DDA_FAILED]


def test_b1_cda_failed() -> None:
    """10.8 / Book 2 6.6: the CDA signature of GENERATE AC fails."""
    assert _bits(tvr_of("contact-bad-cda"))[:1] == [Tvr.CDA_FAILED]


def test_b1_sda_selected() -> None:
    """10.3: SDA is the method selected."""
    assert _bits(tvr_of("contact-sda")) == [Tvr.SDA_SELECTED]


# --------------------------------------------------------------------------- byte 2: restrictions


def test_b2_different_application_versions() -> None:
    """10.4.1: 9F08 of the card differs from the terminal's 9F09."""
    assert _bits(tvr_of(profile("contact-dda", data={0x9F08: b"\x00\x01"}))) == [Tvr.DIFFERENT_APPLICATION_VERSIONS]


def test_b2_expired_application() -> None:
    """10.4.3: the expiry date 5F24 is before the transaction date."""
    assert Tvr.EXPIRED_APPLICATION in _bits(tvr_of(profile("contact-dda", expiry="251231")))


def test_b2_application_not_yet_effective() -> None:
    """10.4.3: the effective date 5F25 is after the transaction date."""
    assert Tvr.NOT_YET_EFFECTIVE in _bits(tvr_of(profile("contact-dda", effective="271231")))


def test_b2_service_not_allowed() -> None:
    """10.4.2: the AUC (9F07) allows no domestic goods."""
    assert Tvr.SERVICE_NOT_ALLOWED in _bits(tvr_of(profile("contact-dda", data={0x9F07: bytes.fromhex("C300")})))


def test_b2_new_card() -> None:
    """10.6.3: last online ATC 0."""
    p = profile("contact-dda", last_online_atc=0, atc=2)
    assert Tvr.NEW_CARD in _bits(tvr_of(p))


# --------------------------------------------------------------------------- byte 3: CVM


def test_b3_cardholder_verification_failed() -> None:
    """10.5: no CVM rule succeeded."""
    assert Tvr.CARDHOLDER_VERIFICATION_FAILED in _bits(tvr_of("contact-pin-blocked", cardholder=Pad("1234")))


def test_b3_unrecognised_cvm() -> None:
    """10.5: a CVM code the terminal does not know (0x25), with apply-next; then no CVM."""
    p = profile("contact-dda", data={0x8E: bytes.fromhex("0000000000000000 6500 1F00".replace(" ", ""))})
    assert _bits(tvr_of(p)) == [Tvr.UNRECOGNISED_CVM]


def test_b3_pin_try_limit_exceeded() -> None:
    """10.5.1: the PIN try counter is 0."""
    assert Tvr.PIN_TRY_LIMIT_EXCEEDED in _bits(tvr_of("contact-pin-blocked", cardholder=Pad("1234")))


def test_b3_pin_pad_absent() -> None:
    """10.5.1: offline PIN and no PIN pad to enter it on."""
    assert _bits(tvr_of("contact-offline-pin")) == [Tvr.PIN_PAD_ABSENT]


def test_b3_pin_not_entered() -> None:
    """10.5.1: the cardholder bypassed PIN entry."""
    assert _bits(tvr_of("contact-offline-pin", cardholder=Pad(PinStatus.BYPASS))) == [Tvr.PIN_NOT_ENTERED]


def test_b3_online_pin_entered() -> None:
    """10.5: online PIN is the CVM performed."""
    assert Tvr.ONLINE_PIN_ENTERED in _bits(tvr_of("contact-online-pin", cardholder=Pad()))


# --------------------------------------------------------------------------- byte 4: risk management


def test_b4_floor_limit_exceeded() -> None:
    """10.6.1: the amount at or above the floor limit."""
    assert _bits(tvr_of("contact-dda", 5000)) == [Tvr.FLOOR_LIMIT_EXCEEDED]


def test_b4_lcol_exceeded() -> None:
    """10.6.3: ATC - last online ATC above the lower consecutive offline limit 9F14 (5), not the upper (10)."""
    p = profile("contact-dda", atc=26, last_online_atc=18)
    assert _bits(tvr_of(p)) == [Tvr.LCOL_EXCEEDED]


def test_b4_ucol_exceeded() -> None:
    """10.6.3: ATC - last online ATC above the upper consecutive offline limit 9F23 (10) too."""
    p = profile("contact-dda", atc=40, last_online_atc=18)
    assert _bits(tvr_of(p)) == [Tvr.LCOL_EXCEEDED, Tvr.UCOL_EXCEEDED]


def test_b4_random_selection() -> None:
    """10.6.2: a target percentage of 99 selects random number 0."""
    t = tvr_of("contact-dda", **_apps(random_selection=RandomSelection(99, 99, 0)))
    assert _bits(t) == [Tvr.RANDOM_SELECTION]


# --------------------------------------------------------------------------- byte 5: online


def test_b5_issuer_authentication_failed() -> None:
    """10.9: EXTERNAL AUTHENTICATE refused."""
    kernel, _r, _card = run("contact-offline-pin", 6000, Pad("1234"))
    done = kernel.complete(HostAnswer.approved(arpc=bytes(8)))
    assert Tvr(done.tvr).is_set(Tvr.ISSUER_AUTHENTICATION_FAILED)


@pytest.mark.parametrize(
    ("template", "bit"), [(0x71, Tvr.SCRIPT_FAILED_BEFORE_FINAL_GAC), (0x72, Tvr.SCRIPT_FAILED_AFTER_FINAL_GAC)]
)
def test_b5_script_failed(template: int, bit: Bit) -> None:
    """10.10: a script command refused (wrong MAC), before or after the final GENERATE AC."""
    kernel, r, card = run("contact-scripts")
    bad = script(card, r, template, [(bytes.fromhex("84DA9F14"), b"\x01")], bad_mac=True)
    done = kernel.complete(HostAnswer.approved(arpc=host_arpc(card, r), scripts=bad))
    assert [b for b in _bits(Tvr(done.tvr)) if b[0] == 4] == [bit]


# --------------------------------------------------------------------------- TSI


def test_tsi_each_bit() -> None:
    """Annex C6: ODA, CVM, card and terminal risk management, issuer authentication, script processing."""
    _k, offline, _c = run("contact-offline-pin", cardholder=Pad("1234"))
    assert Tsi(offline.tsi).names() == [
        "oda_performed",
        "cardholder_verification_performed",
        "card_risk_management_performed",
        "terminal_risk_management_performed",
    ]
    kernel, r, card = run("contact-scripts")
    assert not Tsi(r.tsi).is_set(Tsi.ODA_PERFORMED)
    done = kernel.complete(
        HostAnswer.approved(
            arpc=host_arpc(card, r), scripts=script(card, r, 0x72, [(bytes.fromhex("84DA9F14"), b"\x02")])
        )
    )
    assert Tsi(done.tsi).is_set(Tsi.ISSUER_AUTHENTICATION_PERFORMED)
    assert Tsi(done.tsi).is_set(Tsi.SCRIPT_PROCESSING_PERFORMED)


def test_no_terminal_risk_management_when_the_aip_does_not_ask() -> None:
    """10.6: performed only when AIP byte 1 b4 is set."""
    p = profile("contact-dda", aip=bytes.fromhex("3400"))
    _k, r, _c = run(p, 6000)
    assert not Tsi(r.tsi).is_set(Tsi.TERMINAL_RISK_MANAGEMENT_PERFORMED)
    assert not Tvr(r.tvr).is_set(Tvr.FLOOR_LIMIT_EXCEEDED)


# --------------------------------------------------------------------------- helpers


def _bits(tvr: Tvr) -> list[Bit]:
    return [bit for bit in Tvr.NAMES if tvr.is_set(bit)]


def _without_tag(name: str, tag: int) -> tuple[object, ...]:
    base = profile(name)
    return tuple(dataclasses.replace(r, tags=tuple(t for t in r.tags if t != tag)) for r in base.records)
