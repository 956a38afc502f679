"""Card profile files: all names of docs/card-profiles.md, and clear errors."""

from __future__ import annotations

import pytest

from simulator import profiles
from simulator.pki import load_pki

NAMES = [
    "visa-qvsdc-online", "visa-qvsdc-offline", "visa-mobile-cdcvm", "mc-cda-online", "mc-cda-offline",
    "visa-expired", "visa-bad-issuer-cert", "visa-bad-sdad", "visa-revoked-ca", "visa-exception-pan",
    "mc-bad-cda", "visa-garbage", "visa-mute", "mc-magstripe-afl", "mc-rrp",
    "mc-torn",
]


def test_all_documented_profiles_exist() -> None:
    assert profiles.list_names() == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_profile_loads_and_is_consistent(name: str) -> None:
    p = profiles.load(name)
    assert p.name == name
    assert p.kernel == (2 if name.startswith("mc-") else 3)
    assert p.aid.hex().upper() == ("A0000000041010" if p.kernel == 2 else "A0000000031010")
    assert p.expected
    if p.oda is not None:
        keys = load_pki()
        keys.issuer(p.oda.issuer_key)
        if p.oda.icc_key:
            keys.icc(p.oda.icc_key)
    if p.kernel == 2:
        assert p.cdol1 and p.cdol2 and p.aip[0] & 0x01
    else:
        assert p.ctq is not None and len(p.pdol) == 24


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
