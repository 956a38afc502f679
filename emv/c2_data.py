"""Kernel C-2's configuration as Book C-2's data objects (Annex A), per combination.

A C-2 terminal is configured with data objects, as a certification or test
tool gives them: DF811B Kernel Configuration, DF8118/DF8119 CVM capabilities,
DF8120-DF8122 the TACs, DF8123-DF8126 the limits, DF8132-DF8137 relay
resistance, and so on.  :data:`SPECS` names each with its format and length
(data, not code), and the default Book C-2 gives it where it gives one.

Where the values come from, the later winning (:func:`resolve`):

1. the combination's named keys of terminal.json (``tac_default`` is DF8120,
   ``floor_limit`` DF8123, ``transaction_limit`` DF8124 *and* DF8125,
   ``cvm_required_limit`` DF8126, ``kernel_configuration`` DF811B, ...: see
   :data:`NAMED_KEYS`), so that existing files keep working;
2. the combination's ``extra`` (tag -> hex), where any of them may be given
   by tag (checked on load by :func:`emv.config.Combination.from_dict`);
3. the transaction's overrides (``posterm emv tap|replay --set DF811B=30``).

Without a PIN pad the PIN methods of DF8118/DF8119 are masked whatever the
source (see :mod:`emv.capabilities`).

>>> cfg = resolve({0xDF811B: b"\\x30", 0xDF8126: bytes.fromhex("000000005000")}, {}, pin_pad=False)
>>> cfg.rrp_supported, cfg.mag_stripe_supported, cfg.on_device_cvm_supported, cfg.limit(0xDF8126)
(True, True, True, 5000)
>>> cfg.value(0xDF8133).hex(), cfg.value(0xDF8137).hex()   # Book C-2 defaults
('0032', '32')
>>> check(0xDF8124, bytes.fromhex("0100"))
'Reader Contactless Transaction Limit (No On-device CVM) (DF8124) is n12 in 6 bytes, got 2 bytes'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from emv.capabilities import without_pin
from emv.transaction import bcd, bcd_to_int

if TYPE_CHECKING:
    from emv.config import Combination

__all__ = [
    "KCFG_EMV_MODE_NOT_SUPPORTED",
    "KCFG_MAG_STRIPE_NOT_SUPPORTED",
    "KCFG_ON_DEVICE_CVM",
    "KCFG_RRP",
    "NAMED_KEYS",
    "SPECS",
    "C2Config",
    "DataObjectSpec",
    "check",
    "combination_objects",
    "resolve",
]

# DF811B Kernel Configuration, byte 1
KCFG_MAG_STRIPE_NOT_SUPPORTED = 0x80  # b8: mag-stripe mode contactless transactions not supported
KCFG_EMV_MODE_NOT_SUPPORTED = 0x40  # b7: EMV mode contactless transactions not supported
KCFG_ON_DEVICE_CVM = 0x20  # b6: on device cardholder verification supported
KCFG_RRP = 0x10  # b5: relay resistance protocol supported


@dataclass(frozen=True)
class DataObjectSpec:
    """One configuration data object of Book C-2: name, format (``b`` or ``n``), length in bytes."""

    tag: int
    name: str
    format: Literal["b", "n"]
    length: int
    default: bytes | None = None  # Book C-2's default, where it gives one that posterm uses

    @property
    def format_text(self) -> str:
        """``b`` or ``n12`` (n: digits, two per byte), as the book prints it."""
        return "b" if self.format == "b" else f"n{self.length * 2}"


def _s(tag: int, name: str, fmt: Literal["b", "n"], length: int, default: str | None = None) -> DataObjectSpec:
    return DataObjectSpec(tag, name, fmt, length, None if default is None else bytes.fromhex(default))


#: The C-2 configuration data objects (Book C-2 Annex A), with the defaults of its Annex A where used.
SPECS: dict[int, DataObjectSpec] = {
    s.tag: s
    for s in (
        _s(0xDF810C, "Kernel ID", "b", 1, "02"),
        _s(0xDF8117, "Card Data Input Capability", "b", 1),
        _s(0xDF8118, "CVM Capability - CVM Required", "b", 1),
        _s(0xDF8119, "CVM Capability - No CVM Required", "b", 1),
        _s(0xDF811B, "Kernel Configuration", "b", 1),
        _s(0xDF811C, "Max Lifetime of Torn Transaction Log Record", "b", 2, "012C"),
        _s(0xDF811D, "Max Number of Torn Transaction Log Records", "b", 1, "00"),
        _s(0xDF811E, "Mag-stripe CVM Capability - CVM Required", "b", 1, "F0"),
        _s(0xDF811F, "Security Capability", "b", 1),
        _s(0xDF8120, "Terminal Action Code - Default", "b", 5),
        _s(0xDF8121, "Terminal Action Code - Denial", "b", 5),
        _s(0xDF8122, "Terminal Action Code - Online", "b", 5),
        _s(0xDF8123, "Reader Contactless Floor Limit", "n", 6),
        _s(0xDF8124, "Reader Contactless Transaction Limit (No On-device CVM)", "n", 6),
        _s(0xDF8125, "Reader Contactless Transaction Limit (On-device CVM)", "n", 6),
        _s(0xDF8126, "Reader CVM Required Limit", "n", 6),
        _s(0xDF812C, "Mag-stripe CVM Capability - No CVM Required", "b", 1, "F0"),
        # relay resistance: times in units of 100 microseconds, the mismatch threshold in percent
        _s(0xDF8132, "Minimum Relay Resistance Grace Period", "b", 2, "0032"),
        _s(0xDF8133, "Maximum Relay Resistance Grace Period", "b", 2, "0032"),
        _s(0xDF8134, "Terminal Expected Transmission Time For Relay Resistance C-APDU", "b", 2, "0012"),
        _s(0xDF8135, "Terminal Expected Transmission Time For Relay Resistance R-APDU", "b", 2, "0018"),
        _s(0xDF8136, "Relay Resistance Accuracy Threshold", "b", 2, "012C"),
        _s(0xDF8137, "Relay Resistance Transmission Time Mismatch Threshold", "b", 1, "32"),
    )
}

#: terminal.json's named keys of a combination and the data objects they stand for.
NAMED_KEYS: dict[str, tuple[int, ...]] = {
    "card_data_input_capability": (0xDF8117,),
    "cvm_capability_cvm_required": (0xDF8118,),
    "cvm_capability_no_cvm_required": (0xDF8119,),
    "kernel_configuration": (0xDF811B,),
    "security_capability": (0xDF811F,),
    "tac_default": (0xDF8120,),
    "tac_denial": (0xDF8121,),
    "tac_online": (0xDF8122,),
    "floor_limit": (0xDF8123,),
    "transaction_limit": (0xDF8124, 0xDF8125),
    "cvm_required_limit": (0xDF8126,),
}


def check(tag: int, value: bytes) -> str | None:
    """Why ``value`` cannot be C-2 data object ``tag`` (length, format); None when it can, or when
    ``tag`` is not a C-2 configuration object."""
    spec = SPECS.get(tag)
    if spec is None:
        return None
    label = f"{spec.name} ({tag:X})"
    if len(value) != spec.length:
        return f"{label} is {spec.format_text} in {spec.length} bytes, got {len(value)} bytes"
    if spec.format == "n" and not value.hex().isdigit():
        return f"{label} is {spec.format_text}: BCD digits 0-9 only"
    return None


def combination_objects(combo: Combination) -> dict[int, bytes]:
    """The C-2 data objects a combination's named keys and ``extra`` give (``extra`` wins)."""
    out: dict[int, bytes] = {0xDF810C: bytes([combo.kernel_id])}
    for name, tags in NAMED_KEYS.items():
        value: bytes | int | None = getattr(combo, name)
        if value is None:
            continue
        raw = bcd(value, 6) if isinstance(value, int) else value
        for tag in tags:
            out[tag] = raw
    out.update({t: v for t, v in combo.extra.items() if t in SPECS})
    return out


@dataclass(frozen=True)
class C2Config:
    """The resolved C-2 configuration of one transaction: every data object present, by tag."""

    objects: Mapping[int, bytes] = field(default_factory=dict)

    def get(self, tag: int) -> bytes | None:
        """The configured value, or None when it is absent (no default applied)."""
        return self.objects.get(tag)

    def value(self, tag: int) -> bytes:
        """The configured value, else Book C-2's default; KeyError when there is neither."""
        found = self.objects.get(tag)
        if found is not None:
            return found
        default = SPECS[tag].default
        if default is None:
            raise KeyError(f"{tag:X} is not configured and has no default")
        return default

    def number(self, tag: int) -> int:
        """A binary object (DF8132-DF8137, DF811C) as an unsigned integer."""
        return int.from_bytes(self.value(tag), "big")

    def limit(self, tag: int) -> int | None:
        """An n12 limit (DF8123-DF8126) in minor units; None when absent."""
        raw = self.objects.get(tag)
        return None if raw is None else bcd_to_int(raw)

    @property
    def kernel_configuration(self) -> int:
        raw = self.objects.get(0xDF811B)
        return raw[0] if raw else 0

    @property
    def mag_stripe_supported(self) -> bool:
        return not self.kernel_configuration & KCFG_MAG_STRIPE_NOT_SUPPORTED

    @property
    def emv_mode_supported(self) -> bool:
        return not self.kernel_configuration & KCFG_EMV_MODE_NOT_SUPPORTED

    @property
    def on_device_cvm_supported(self) -> bool:
        return bool(self.kernel_configuration & KCFG_ON_DEVICE_CVM)

    @property
    def rrp_supported(self) -> bool:
        return bool(self.kernel_configuration & KCFG_RRP)


def resolve(combination: Mapping[int, bytes], overrides: Mapping[int, bytes], *, pin_pad: bool) -> C2Config:
    """The combination's objects (:func:`combination_objects`) with the transaction's overrides on top."""
    objects = dict(combination)
    objects.update({t: bytes(v) for t, v in overrides.items() if t in SPECS})
    if not pin_pad:
        for tag in (0xDF8118, 0xDF8119):
            if tag in objects:
                objects[tag] = without_pin(tag, objects[tag])
    return C2Config(objects)
