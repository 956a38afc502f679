"""Card profile files: all names of docs/card-profiles.md, and clear errors."""

from __future__ import annotations

import pytest

from simulator import profiles
from simulator.pki import load_pki

NAMES = [
    "visa-qvsdc-online", "visa-qvsdc-offline", "visa-mobile-cdcvm", "mc-cda-online", "mc-cda-offline",
    "visa-expired", "visa-bad-issuer-cert", "visa-bad-sdad", "visa-revoked-ca", "visa-exception-pan",
    "mc-bad-cda", "visa-garbage", "visa-mute", "mc-magstripe-afl", "mc-rrp",
    "mc-torn", "unionpay-debit", "unionpay-credit", "unionpay-ec", "unionpay-ec-torn", "unionpay-bad-fdda",
    "unionpay-mute", "unionpay-garbage", "visa-online-pin",
]
UNIONPAY_AIDS = {"A000000333010101", "A000000333010102", "A000000333010103", "A000000333010106"}


def test_all_documented_profiles_exist() -> None:
    assert profiles.list_names() == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_profile_loads_and_is_consistent(name: str) -> None:
    p = profiles.load(name)
    assert p.name == name
    assert p.kernel == (2 if name.startswith("mc-") else 7 if name.startswith("unionpay-") else 3)
    if p.kernel == 7:
        assert p.aid.hex().upper() in UNIONPAY_AIDS and p.currency == bytes.fromhex("0156")
        assert (p.ec is not None) == name.startswith("unionpay-ec")
    else:
        assert p.aid.hex().upper() == ("A0000000041010" if p.kernel == 2 else "A0000000031010")
    assert p.expected
    if p.oda is not None:
        keys = load_pki()
        keys.issuer(p.oda.issuer_key)
        if p.oda.icc_key:
            keys.icc(p.oda.icc_key)
    if p.kernel == 2:
        assert p.cdol1 and p.cdol2 and p.aip[0] & 0x01
    elif p.kernel == 3:
        assert p.ctq is not None and len(p.pdol) == 24
    else:  # the EC card asks for the EC Terminal Support Indicator in its PDOL
        assert p.ctq is not None and len(p.pdol) == (27 if p.ec is not None else 24)


def test_unknown_profile_lists_valid_names() -> None:
    with pytest.raises(profiles.ProfileError, match="visa-qvsdc-online") as info:
        profiles.load("visa-nope")
    assert "visa-nope" in str(info.value) and "mc-bad-cda" in str(info.value)


def test_faults_and_tampers() -> None:
    assert profiles.load("visa-garbage").fault == "garbage"
    assert profiles.load("visa-mute").fault == "mute"
    assert dict(profiles.load("visa-bad-sdad").oda.tamper) == {"sdad": "hash"}  # type: ignore[union-attr]
    assert dict(profiles.load("mc-bad-cda").oda.tamper) == {"sdad": "hash"}  # type: ignore[union-attr]
    bad = profiles.load("visa-bad-issuer-cert").oda
    assert bad is not None and dict(bad.tamper) == {"issuer_certificate": "hash"}
    revoked = profiles.load("visa-revoked-ca").oda
    assert revoked is not None and load_pki().issuer_ca_index(revoked.issuer_key) == 0x51
    assert profiles.load("visa-exception-pan").pan == "4761739001010119"
    assert profiles.load("unionpay-garbage").fault == "garbage"
    assert profiles.load("unionpay-mute").fault == "mute"
    assert profiles.load("unionpay-ec-torn").fault == "torn"
    assert dict(profiles.load("unionpay-bad-fdda").oda.tamper) == {"sdad": "hash"}  # type: ignore[union-attr]


def test_electronic_cash_is_for_kernel_7_cards_only() -> None:
    import dataclasses

    from simulator.profiles import EcSpec, _validate

    ec = EcSpec(balance=100, balance_limit=1000, single_limit=500, reset_threshold=0, only=True)
    with pytest.raises(ValueError, match="kernel 7"):
        _validate(dataclasses.replace(profiles.load("visa-qvsdc-offline"), ec=ec))
