"""Simulated card profiles: the data files in ``simulator/profiles/*.json``.

One file per profile of ``docs/card-profiles.md``.  A file holds the card's
personalisation (AID, label, PDOL, AIP, CTQ, records and the tags in them, data
objects as hex), its risk behaviour, which simulator PKI keys certify it, which
tamper or fault to apply, and the outcome the default terminal should reach
(``expected``, informational).

Records name their tags; values come from ``data`` or are computed by the card:
``5A`` ``57`` ``5F24`` ``5F25`` ``5F34`` from ``pan``/``expiry``/``effective``/``psn``,
``8F`` ``90`` ``92`` ``9F32`` ``9F46`` ``9F47`` ``9F48`` ``93`` from the PKI,
``9F69`` (card authentication related data) per transaction, and ``9F77`` ``9F78``
``9F6D`` from a kernel 7 card's electronic cash (``"ec"``, :class:`EcSpec`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from simulator._bounded import read_json_file

__all__ = [
    "COMPUTED_TAGS",
    "MAX_PROFILE_BYTES",
    "CardProfile",
    "EcSpec",
    "OdaSpec",
    "ProfileError",
    "RecordSpec",
    "RelayResistanceSpec",
    "list_names",
    "load",
]

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
MAX_PROFILE_BYTES = 256 << 10
"""The largest profile file read: 256 KiB (the shipped ones are 1 to 2 KiB)."""

#: Tags whose values the card computes rather than reading them from ``data``.
COMPUTED_TAGS = frozenset(
    {0x5A, 0x57, 0x5F24, 0x5F25, 0x5F34, 0x8F, 0x90, 0x92, 0x93, 0x9F32, 0x9F46, 0x9F47, 0x9F48, 0x9F69}
    | {0x9F77, 0x9F78, 0x9F6D}  # a kernel 7 card's electronic cash limits, from its "ec"
)
#: Computed tags that change per transaction or depend on the ODA records themselves,
#: so they may not sit in a record that takes part in offline data authentication.
_NOT_IN_ODA_RECORDS = frozenset({0x8F, 0x90, 0x92, 0x93, 0x9F32, 0x9F46, 0x9F47, 0x9F48, 0x9F69})
_ODA_METHODS = frozenset({"sda", "dda", "fdda", "cda"})
_TAMPER_TARGETS = frozenset({"issuer_certificate", "icc_certificate", "ssad", "sdad"})
_FAULTS = frozenset({"garbage", "mute", "torn"})


class ProfileError(Exception):
    """Unknown profile name or a malformed profile file."""


@dataclass(frozen=True)
class RecordSpec:
    """One record: its SFI, number, whether it is signed (ODA) and its tags in order.

    ``emv_mode`` false: the record is in the AFL but the card refuses to read it
    in EMV mode (6985), as a mag-stripe record (SFI 1 record 1) may be.
    """

    sfi: int
    number: int
    oda: bool
    tags: tuple[int, ...]
    emv_mode: bool = True


@dataclass(frozen=True)
class RelayResistanceSpec:
    """What the card answers to EXCHANGE RELAY RESISTANCE DATA (times in units of 100 us)."""

    min_time: int
    max_time: int
    transmission_time: int


@dataclass(frozen=True)
class EcSpec:
    """A UnionPay-style card's electronic cash (kernel 7), amounts in minor units of its currency.

    ``balance`` is the balance a new card starts with (9F79); ``balance_limit``
    (9F77) and ``single_limit`` (9F78) bound it, ``reset_threshold`` (9F6D) is
    where the issuer would load it again.  ``only``: an EC-only card (AID ...06),
    which declines what its electronic cash cannot pay; otherwise the card goes
    online when the balance is short.
    """

    balance: int
    balance_limit: int
    single_limit: int
    reset_threshold: int
    only: bool


@dataclass(frozen=True)
class OdaSpec:
    """Which PKI keys certify the card and how (see :mod:`simulator.pki`)."""

    method: str  # sda | dda | fdda | cda
    issuer_key: str
    icc_key: str | None
    issuer_id: str
    issuer_cert_expiry: str  # MMYY
    icc_cert_expiry: str
    issuer_cert_serial: bytes
    icc_cert_serial: bytes
    dynamic_number: str  # "atc" (2 bytes) or "random8"
    tamper: Mapping[str, str] = field(default_factory=dict)
    dac: bytes = b"\xda\xc0"


@dataclass(frozen=True)
class CardProfile:
    """Everything a :class:`simulator.card.SimulatedCard` is personalised with."""

    name: str
    description: str
    kernel: int
    aid: bytes
    label: str
    priority: int
    kernel_id: bytes | None
    pdol: bytes
    aip: bytes
    ctq: bytes | None
    form_factor: bytes | None
    pan: str
    psn: str
    expiry: str  # YYMMDD
    effective: str  # YYMMDD
    service_code: str
    currency: bytes
    country: bytes
    data: Mapping[int, bytes]
    records: tuple[RecordSpec, ...]
    cryptogram_key: str
    online_only: bool
    offline_limit: int  # minor units of ``currency``
    atc: int
    last_online_atc: int
    pin_try_counter: int
    oda: OdaSpec | None
    fault: str | None
    expected: Mapping[str, str]
    relay_resistance: RelayResistanceSpec | None = None
    ec: EcSpec | None = None
    #: The PIN the simulated issuer holds for this card (online PIN; simulator.host.pin_check), None: the default.
    pin: str | None = None

    @property
    def cdol1(self) -> bytes:
        return self.data.get(0x8C, b"")

    @property
    def cdol2(self) -> bytes:
        return self.data.get(0x8D, b"")


def list_names() -> list[str]:
    """The names of all shipped profiles, sorted."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


def load(name: str) -> CardProfile:
    """Load profile ``name``; an unknown name raises :class:`ProfileError` listing the valid ones."""
    if name not in list_names():
        raise ProfileError(f"unknown card profile {name!r}; valid profiles: {', '.join(list_names())}")
    return _load_cached(name)


@lru_cache(maxsize=64)
def _load_cached(name: str) -> CardProfile:
    path = PROFILE_DIR / f"{name}.json"
    raw = read_json_file(path, MAX_PROFILE_BYTES, "card profile", ProfileError)
    try:
        return _from_dict(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(f"{path.name}: malformed profile: {exc!r}") from exc


def _hex(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"expected a hex string, got {value!r}")
    return bytes.fromhex(value)


def _opt_hex(value: Any) -> bytes | None:
    return None if value is None else _hex(value)


def _tag(text: str) -> int:
    return int(text, 16)


def _oda(raw: Mapping[str, Any] | None) -> OdaSpec | None:
    if raw is None:
        return None
    spec = OdaSpec(
        method=str(raw["method"]),
        issuer_key=str(raw["issuer_key"]),
        icc_key=None if raw.get("icc_key") is None else str(raw["icc_key"]),
        issuer_id=str(raw["issuer_id"]),
        issuer_cert_expiry=str(raw["issuer_cert_expiry"]),
        icc_cert_expiry=str(raw["icc_cert_expiry"]),
        issuer_cert_serial=_hex(raw["issuer_cert_serial"]),
        icc_cert_serial=_hex(raw["icc_cert_serial"]),
        dynamic_number=str(raw.get("dynamic_number", "atc")),
        tamper=MappingProxyType({str(k): str(v) for k, v in dict(raw.get("tamper") or {}).items()}),
        dac=_hex(raw.get("dac", "DAC0")),
    )
    if spec.method not in _ODA_METHODS:
        raise ValueError(f"ODA method {spec.method!r} not one of {sorted(_ODA_METHODS)}")
    if not set(spec.tamper) <= _TAMPER_TARGETS:
        raise ValueError(f"tamper targets {sorted(spec.tamper)} not within {sorted(_TAMPER_TARGETS)}")
    if spec.dynamic_number not in {"atc", "random8"}:
        raise ValueError(f"dynamic_number {spec.dynamic_number!r}")
    return spec


def _relay_resistance(raw: Mapping[str, Any] | None) -> RelayResistanceSpec | None:
    if raw is None:
        return None
    spec = RelayResistanceSpec(int(raw["min_time"]), int(raw["max_time"]), int(raw["transmission_time"]))
    if not 0 <= spec.min_time <= spec.max_time <= 0xFFFF or not 0 <= spec.transmission_time <= 0xFFFF:
        raise ValueError(f"relay resistance times {spec}")
    return spec


def _ec(raw: Mapping[str, Any] | None) -> EcSpec | None:
    if raw is None:
        return None
    spec = EcSpec(
        int(raw["balance"]),
        int(raw["balance_limit"]),
        int(raw["single_limit"]),
        int(raw["reset_threshold"]),
        bool(raw.get("only", False)),
    )
    if not 0 <= spec.balance <= spec.balance_limit <= 999_999_999_999 or spec.single_limit < 0:
        raise ValueError(f"electronic cash amounts {spec}")
    return spec


def _from_dict(raw: Mapping[str, Any]) -> CardProfile:
    records = tuple(
        RecordSpec(
            int(r["sfi"]),
            int(r["record"]),
            bool(r["oda"]),
            tuple(_tag(t) for t in r["tags"]),
            bool(r.get("emv_mode", True)),
        )
        for r in raw["records"]
    )
    risk = raw["risk"]
    counters = raw["counters"]
    profile = CardProfile(
        name=str(raw["name"]),
        description=str(raw["description"]),
        kernel=int(raw["kernel"]),
        aid=_hex(raw["aid"]),
        label=str(raw["label"]),
        priority=int(raw["priority"]),
        kernel_id=_opt_hex(raw.get("kernel_id")),
        pdol=_hex(raw.get("pdol") or ""),
        aip=_hex(raw["aip"]),
        ctq=_opt_hex(raw.get("ctq")),
        form_factor=_opt_hex(raw.get("form_factor")),
        pan=str(raw["pan"]),
        psn=str(raw["psn"]),
        expiry=str(raw["expiry"]),
        effective=str(raw["effective"]),
        service_code=str(raw.get("service_code", "201")),
        currency=_hex(raw["currency"]),
        country=_hex(raw["country"]),
        data=MappingProxyType({_tag(k): _hex(v) for k, v in raw["data"].items()}),
        records=records,
        cryptogram_key=str(raw["cryptogram"]["key"]),
        online_only=bool(risk["online_only"]),
        offline_limit=int(risk["offline_limit"]),
        atc=int(counters["atc"]),
        last_online_atc=int(counters["last_online_atc"]),
        pin_try_counter=int(counters["pin_try_counter"]),
        oda=_oda(raw.get("oda")),
        fault=raw.get("fault"),
        expected=MappingProxyType({str(k): str(v) for k, v in dict(raw.get("expected") or {}).items()}),
        relay_resistance=_relay_resistance(raw.get("relay_resistance")),
        ec=_ec(raw.get("ec")),
        pin=None if raw.get("pin") is None else str(raw["pin"]),
    )
    _validate(profile)
    return profile


def _validate(p: CardProfile) -> None:
    if p.kernel not in (2, 3, 7):
        raise ValueError(f"kernel {p.kernel} not simulated")
    if p.fault is not None and p.fault not in _FAULTS:
        raise ValueError(f"fault {p.fault!r} not one of {sorted(_FAULTS)}")
    if not p.pan.isdigit() or not 12 <= len(p.pan) <= 19:
        raise ValueError(f"PAN {p.pan!r}")
    if p.pin is not None and not (p.pin.isascii() and p.pin.isdigit() and 4 <= len(p.pin) <= 12):
        raise ValueError("pin: 4 to 12 digits")
    if len(p.psn) != 2 or not p.psn.isdigit():
        raise ValueError(f"PAN sequence number {p.psn!r} must be 2 digits")
    seen: set[tuple[int, int]] = set()
    for rec in p.records:
        if not 1 <= rec.sfi <= 30 or not 1 <= rec.number <= 255 or (rec.sfi, rec.number) in seen:
            raise ValueError(f"record {rec.sfi}/{rec.number}")
        seen.add((rec.sfi, rec.number))
        for tag in rec.tags:
            if tag not in COMPUTED_TAGS and tag not in p.data:
                raise ValueError(f"record {rec.sfi}/{rec.number} names tag {tag:X} without a value")
            if tag in (0x9F77, 0x9F78, 0x9F6D) and p.ec is None:
                raise ValueError(f"record {rec.sfi}/{rec.number} names tag {tag:X} of a card without electronic cash")
            if rec.oda and tag in _NOT_IN_ODA_RECORDS:
                raise ValueError(f"tag {tag:X} cannot sit in a signed record")
    for sfi in {r.sfi for r in p.records}:
        flags = [r.oda for r in sorted(p.records, key=lambda r: r.number) if r.sfi == sfi]
        if flags != sorted(flags, reverse=True):
            raise ValueError(f"SFI {sfi}: signed records come first (the AFL counts them from the start)")
        numbers = sorted(r.number for r in p.records if r.sfi == sfi)
        if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            raise ValueError(f"SFI {sfi}: record numbers must be contiguous")
    if p.ec is not None and p.kernel != 7:
        raise ValueError("electronic cash is simulated for kernel 7 cards only")
    if p.oda is not None and p.oda.method in {"dda", "fdda", "cda"} and p.oda.icc_key is None:
        raise ValueError(f"ODA method {p.oda.method} needs an ICC key")
