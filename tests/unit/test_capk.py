"""emv.capk: the published CAPKs load and verify; bad keys are refused by name."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from emv.capk import Capk, CapkError, CapkStore, checksum_of

ROOT = Path(__file__).resolve().parents[2]
VISA = bytes.fromhex("A000000003")


SHIPPED = ROOT / "terminal" / "data" / "capks-public.json"
SHARED = ROOT.parent / "shared" / "data" / "capks.json"


@pytest.fixture(scope="module")
def entries() -> list[dict[str, Any]]:
    """The public EMV CAPKs as posterm ships them (a copy of the project's shared data)."""
    keys: list[dict[str, Any]] = json.loads(SHIPPED.read_text(encoding="utf-8"))["keys"]
    return keys


def test_the_shipped_copy_matches_the_shared_data(entries: list[dict[str, Any]]) -> None:
    if not SHARED.is_file():
        pytest.skip(f"no shared data beside this checkout ({SHARED}) to compare with")
    assert json.loads(SHARED.read_text(encoding="utf-8"))["keys"] == entries


def _entry(index: int = 0x92, expiry: str | None = None, **change: str) -> dict[str, str]:
    """A well-formed entry (correct checksum), then ``change`` applied as is."""
    modulus, exponent = bytes.fromhex("C1" * 128), b"\x03"
    entry = {
        "rid": VISA.hex().upper(),
        "index": f"{index:02X}",
        "modulus": modulus.hex().upper(),
        "exponent": exponent.hex().upper(),
        "checksum": checksum_of(VISA, index, modulus, exponent).hex().upper(),
        "scheme": "Visa",
        "kind": "test",
    }
    if expiry is not None:
        entry["expiry"] = expiry
    entry.update(change)
    return entry


def test_every_published_key_loads_and_verifies(entries: list[dict[str, Any]]) -> None:
    store = CapkStore.from_entries(entries)
    assert len(store) == len(entries) >= 20
    assert store.rejected == []
    for key in store:
        assert key.checksum_ok()
        assert len(key.rid) == 5
        assert key.exponent in (b"\x03", b"\x01\x00\x01")
        assert key.scheme in {"Visa", "Mastercard", "Amex"}
        assert key.kind in {"live", "test"}
    assert (VISA, 0x92) in store
    assert store.get(VISA, 0x92, date(2025, 1, 1)).modulus[:2] == bytes.fromhex("996A")


def test_round_trip(entries: list[dict[str, Any]]) -> None:
    store = CapkStore.from_entries(entries)
    again = CapkStore.from_entries(store.to_entries())
    assert list(again) == list(store)
    normalised = {(e["rid"].upper(), e["index"].upper()): e for e in entries}
    for out in store.to_entries():
        original = normalised[(out["rid"], out["index"])]
        assert {k: v.upper() for k, v in out.items() if k not in ("scheme", "kind")} == {
            k: v.upper() for k, v in original.items() if k not in ("scheme", "kind")
        }


def test_round_trip_keeps_expiry() -> None:
    store = CapkStore.from_entries([_entry(expiry="2029-12-31")])
    assert store.to_entries()[0]["expiry"] == "2029-12-31"
    assert CapkStore.from_entries(store.to_entries()).get(VISA, 0x92, date(2029, 12, 31)).expiry == date(
        2029, 12, 31
    )


def test_simulator_capks_load_too() -> None:
    path = ROOT / "simulator" / "data" / "capks.json"
    if not path.is_file():  # pragma: no cover
        pytest.skip("simulator capks not shipped")
    store = CapkStore.from_entries(json.loads(path.read_text(encoding="utf-8"))["keys"])
    assert (VISA, 0x50) in store


@pytest.mark.parametrize("field", ["modulus", "exponent", "checksum", "index"])
def test_a_damaged_key_is_refused_naming_rid_and_index(field: str) -> None:
    good = _entry()
    bad = dict(good)
    if field == "modulus":
        bad["modulus"] = "C0" + good["modulus"][2:]
    elif field == "exponent":
        bad["exponent"] = "010001"
    elif field == "checksum":
        bad["checksum"] = "00" + good["checksum"][2:]
    else:
        bad["index"] = "93"
    with pytest.raises(CapkError) as info:
        CapkStore.from_entries([_entry(0x95), bad])
    assert info.value.name == "ca_key_invalid"
    assert "A000000003" in str(info.value) and f"index {bad['index']}" in str(info.value)
    assert info.value.rid == VISA and info.value.index == int(bad["index"], 16)


def test_non_strict_load_skips_and_reports() -> None:
    bad = _entry(0x93, checksum="00" * 20)
    store = CapkStore.from_entries([_entry(0x92), bad, _entry(0x95)], strict=False)
    assert len(store) == 2 and (VISA, 0x93) not in store
    assert [e.index for e in store.rejected] == [0x93]
    assert "checksum" in str(store.rejected[0])


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"rid": "A0000003"}, "RID must be 5 bytes"),
        ({"rid": "XYZ"}, "CA key XYZ index 92"),
        ({"modulus": "zz"}, "index 92"),
        ({"index": "1FF"}, "one byte"),
        ({"expiry": "31/12/2030"}, "index 92"),
        ({"modulus": ""}, "modulus"),
        ({"exponent": "05"}, "not 3 or 65537"),
    ],
)
def test_malformed_entries(change: dict[str, str], text: str) -> None:
    with pytest.raises(CapkError) as info:
        CapkStore.from_entries([{**_entry(), **change}])
    assert info.value.name == "ca_key_invalid"
    assert text in str(info.value)


def test_missing_field_and_duplicate() -> None:
    entry = _entry()
    del entry["checksum"]
    with pytest.raises(CapkError, match="missing field 'checksum'"):
        CapkStore.from_entries([entry])
    with pytest.raises(CapkError, match="duplicate CA key A000000003 index 92"):
        CapkStore.from_entries([_entry(), _entry()])


def test_index_may_be_an_int() -> None:
    entry: dict[str, Any] = _entry()
    entry["index"] = 0x92
    assert CapkStore.from_entries([entry]).get(VISA, 0x92, date(2025, 1, 1)).index == 0x92


def test_lookup_errors_are_named() -> None:
    store = CapkStore.from_entries(
        [_entry(0x92, expiry="2025-06-30"), _entry(0x51)], revoked=[("A000000003", "51"), (VISA, 0x99)]
    )
    assert store.get(VISA, 0x92, date(2025, 6, 30)).index == 0x92  # valid through its expiry day
    cases = [
        ((VISA, 0x92, date(2025, 7, 1)), "ca_key_expired"),
        ((VISA, 0x51, date(2025, 1, 1)), "ca_key_revoked"),
        ((VISA, 0x99, date(2025, 1, 1)), "ca_key_revoked"),  # revoked wins over missing
        ((VISA, 0x94, date(2025, 1, 1)), "ca_key_missing"),
        ((bytes.fromhex("A000000004"), 0x92, date(2025, 1, 1)), "ca_key_missing"),
    ]
    for (rid, index, day), name in cases:
        with pytest.raises(CapkError) as info:
            store.get(rid, index, day)
        assert info.value.name == name
        assert f"{rid.hex().upper()} index {index:02X}" in str(info.value)


def test_capk_without_expiry_never_expires() -> None:
    key = Capk.from_entry(_entry())
    assert key.expiry is None and not key.expired(date(2999, 1, 1))
    assert key.label == "A000000003 index 92"
