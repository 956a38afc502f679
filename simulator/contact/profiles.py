"""Contact card profiles: the data files ``simulator/contact/profiles/contact-*.json``.

A contact profile is a contactless one's cousin (see :mod:`simulator.profiles`):
AID, label, priority indicator, AIP, records and their tags, ODA keys, risk
behaviour and faults, plus what only an inserted card has: whether it has a
PSE (``1PAY.SYS.DDF01``), its offline PIN (``pin``, ``pin_try_limit``), the
response format of GET PROCESSING OPTIONS, and whether it requires issuer
authentication to approve online.

Names start with ``contact-``; the card is :class:`simulator.contact.card.ContactCard`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from simulator._bounded import read_json_file
from simulator.profiles import MAX_PROFILE_BYTES, OdaSpec, ProfileError, RecordSpec

__all__ = ["PREFIX", "ContactProfile", "is_contact_name", "list_names", "load"]

PREFIX = "contact-"
PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
_FAULTS = frozenset({"garbage", "mute"})
_ODA_METHODS = frozenset({"sda", "dda", "cda"})
_TAMPERS = frozenset({"issuer_certificate", "icc_certificate", "ssad", "sdad"})
#: Tags the card computes: PAN, track 2, dates, PSN, and the PKI's certificates.
COMPUTED_TAGS = frozenset(
    {0x5A, 0x57, 0x5F24, 0x5F25, 0x5F34, 0x8F, 0x90, 0x92, 0x93, 0x9F32, 0x9F46, 0x9F47, 0x9F48, 0x9F2D, 0x9F2E, 0x9F2F}
)


@dataclass(frozen=True)
class ContactProfile:
    """Everything a :class:`~simulator.contact.card.ContactCard` is personalised with."""

    name: str
    description: str
    aid: bytes
    label: str
    priority: int | None
    pse: bool
    pdol: bytes
    gpo_format: int
    aip: bytes
    pan: str
    psn: str
    expiry: str
    effective: str
    service_code: str
    currency: bytes
    data: Mapping[int, bytes]
    records: tuple[RecordSpec, ...]
    cryptogram_key: str
    online_only: bool
    offline_limit: int
    atc: int
    last_online_atc: int
    pin: str | None
    pin_try_limit: int
    pin_try_counter: int
    oda: OdaSpec | None
    fault: str | None
    issuer_authentication_required: bool
    expected: Mapping[str, str]
    pin_key: str | None = None  # an ICC PIN encipherment key of the simulator PKI (9F2D/9F2E/9F2F)

    @property
    def cdol1(self) -> bytes:
        return self.data.get(0x8C, b"")

    @property
    def cdol2(self) -> bytes:
        return self.data.get(0x8D, b"")


def is_contact_name(name: str) -> bool:
    return name.startswith(PREFIX)


def list_names() -> list[str]:
    """The names of the shipped contact profiles, sorted."""
    return sorted(p.stem for p in PROFILE_DIR.glob(f"{PREFIX}*.json"))


def load(name: str) -> ContactProfile:
    """Profile ``name``; an unknown name is a :class:`ProfileError` listing the known ones."""
    if name not in list_names():
        raise ProfileError(f"unknown contact card profile {name!r}; valid: {', '.join(list_names())}")
    return _load_cached(name)


@lru_cache(maxsize=32)
def _load_cached(name: str) -> ContactProfile:
    path = PROFILE_DIR / f"{name}.json"
    raw = read_json_file(path, MAX_PROFILE_BYTES, "card profile", ProfileError)
    try:
        return _from_dict(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(f"{path.name}: malformed contact profile: {exc!r}") from exc


def _hex(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"expected a hex string, got {value!r}")
    return bytes.fromhex(value)


def _oda(raw: Mapping[str, Any] | None) -> OdaSpec | None:
    if raw is None:
        return None
    spec = OdaSpec(
        method=str(raw["method"]),
        issuer_key=str(raw["issuer_key"]),
        icc_key=None if raw.get("icc_key") is None else str(raw["icc_key"]),
        issuer_id=str(raw["issuer_id"]),
        issuer_cert_expiry=str(raw["issuer_cert_expiry"]),
        icc_cert_expiry=str(raw.get("icc_cert_expiry", "1230")),
        issuer_cert_serial=_hex(raw["issuer_cert_serial"]),
        icc_cert_serial=_hex(raw.get("icc_cert_serial", "000001")),
        dynamic_number=str(raw.get("dynamic_number", "atc")),
        tamper=MappingProxyType({str(k): str(v) for k, v in dict(raw.get("tamper") or {}).items()}),
        dac=_hex(raw.get("dac", "DAC0")),
    )
    if spec.method not in _ODA_METHODS:
        raise ValueError(f"ODA method {spec.method!r} not one of {sorted(_ODA_METHODS)}")
    if not set(spec.tamper) <= _TAMPERS:
        raise ValueError(f"tamper targets {sorted(spec.tamper)}")
    if spec.method != "sda" and spec.icc_key is None:
        raise ValueError(f"ODA method {spec.method} needs an ICC key")
    return spec


def _from_dict(raw: Mapping[str, Any]) -> ContactProfile:
    records = tuple(
        RecordSpec(int(r["sfi"]), int(r["record"]), bool(r["oda"]), tuple(int(t, 16) for t in r["tags"]))
        for r in raw["records"]
    )
    counters = raw["counters"]
    pin = raw.get("pin")
    priority = raw.get("priority")
    p = ContactProfile(
        name=str(raw["name"]),
        description=str(raw["description"]),
        aid=_hex(raw["aid"]),
        label=str(raw["label"]),
        priority=None if priority is None else int(str(priority), 16),
        pse=bool(raw.get("pse", True)),
        pdol=_hex(raw.get("pdol") or ""),
        gpo_format=int(raw.get("gpo_format", 1)),
        aip=_hex(raw["aip"]),
        pan=str(raw["pan"]),
        psn=str(raw["psn"]),
        expiry=str(raw["expiry"]),
        effective=str(raw["effective"]),
        service_code=str(raw.get("service_code", "201")),
        currency=_hex(raw["currency"]),
        data=MappingProxyType({int(k, 16): _hex(v) for k, v in raw["data"].items()}),
        records=records,
        cryptogram_key=str(raw["cryptogram"]["key"]),
        online_only=bool(raw["risk"]["online_only"]),
        offline_limit=int(raw["risk"]["offline_limit"]),
        atc=int(counters["atc"]),
        last_online_atc=int(counters["last_online_atc"]),
        pin=None if pin is None else str(pin),
        pin_try_limit=int(raw.get("pin_try_limit", 3)),
        pin_try_counter=int(counters["pin_try_counter"]),
        oda=_oda(raw.get("oda")),
        fault=raw.get("fault"),
        issuer_authentication_required=bool(raw.get("issuer_authentication_required", True)),
        expected=MappingProxyType({str(k): str(v) for k, v in dict(raw.get("expected") or {}).items()}),
        pin_key=None if raw.get("pin_key") is None else str(raw["pin_key"]),
    )
    _validate(p)
    return p


def _validate(p: ContactProfile) -> None:
    if not is_contact_name(p.name):
        raise ValueError(f"a contact profile's name starts with {PREFIX!r}")
    if p.fault is not None and p.fault not in _FAULTS:
        raise ValueError(f"fault {p.fault!r} not one of {sorted(_FAULTS)}")
    if p.pin_key is not None and p.oda is None:
        raise ValueError("a PIN encipherment key is certified by the issuer key of the oda section")
    if p.gpo_format not in (1, 2):
        raise ValueError("gpo_format is 1 or 2")
    if p.pin is not None and (not p.pin.isdigit() or not 4 <= len(p.pin) <= 12):
        raise ValueError("pin must be 4 to 12 digits")
    if not p.pan.isdigit() or not 12 <= len(p.pan) <= 19:
        raise ValueError(f"PAN {p.pan!r}")
    if p.cdol1 == b"" or p.cdol2 == b"":
        raise ValueError("a contact card needs CDOL1 (8C) and CDOL2 (8D)")
    seen: set[tuple[int, int]] = set()
    for rec in p.records:
        if not 2 <= rec.sfi <= 10 or (rec.sfi, rec.number) in seen:
            raise ValueError(f"record {rec.sfi}/{rec.number}: SFI 2-10 (SFI 1 is the PSE directory), once each")
        seen.add((rec.sfi, rec.number))
        for tag in rec.tags:
            if tag not in COMPUTED_TAGS and tag not in p.data:
                raise ValueError(f"record {rec.sfi}/{rec.number} names tag {tag:X} without a value")
    for sfi in {r.sfi for r in p.records}:
        flags = [r.oda for r in sorted(p.records, key=lambda r: r.number) if r.sfi == sfi]
        if flags != sorted(flags, reverse=True):
            raise ValueError(f"SFI {sfi}: signed records come first")
        numbers = sorted(r.number for r in p.records if r.sfi == sfi)
        if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            raise ValueError(f"SFI {sfi}: record numbers must be contiguous")
