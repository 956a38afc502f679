"""TVR (95) and TSI (9B) bit by bit, with names (EMV Book 3 Annex C).

>>> t = Tvr()
>>> t.set(Tvr.EXPIRED_APPLICATION)
>>> t.value.hex().upper()
'0040000000'
>>> t.names()
['expired_application']
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["Bit", "BitEffects", "Tsi", "Tvr"]

Bit = tuple[int, int]  # (byte index from 0, mask)


class _Bits:
    """A fixed-length bit field; each named bit is (byte index 0-based, mask)."""

    LENGTH: ClassVar[int] = 0
    NAMES: ClassVar[dict[tuple[int, int], str]] = {}

    def __init__(self, value: bytes | None = None) -> None:
        self._v = bytearray(value if value is not None else bytes(self.LENGTH))
        if len(self._v) != self.LENGTH:
            raise ValueError(f"{type(self).__name__} is {self.LENGTH} bytes")

    def set(self, bit: tuple[int, int]) -> None:
        self._v[bit[0]] |= bit[1]

    def clear(self, bit: tuple[int, int]) -> None:
        self._v[bit[0]] &= ~bit[1] & 0xFF

    def is_set(self, bit: tuple[int, int]) -> bool:
        return bool(self._v[bit[0]] & bit[1])

    @property
    def value(self) -> bytes:
        return bytes(self._v)

    def names(self) -> list[str]:
        return [name for bit, name in self.NAMES.items() if self.is_set(bit)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value.hex().upper()} {self.names()})"


class Tvr(_Bits):
    LENGTH = 5
    ODA_NOT_PERFORMED = (0, 0x80)
    SDA_FAILED = (0, 0x40)
    ICC_DATA_MISSING = (0, 0x20)
    PAN_IN_EXCEPTION_FILE = (0, 0x10)
    DDA_FAILED = (0, 0x08)
    CDA_FAILED = (0, 0x04)
    SDA_SELECTED = (0, 0x02)
    DIFFERENT_APPLICATION_VERSIONS = (1, 0x80)
    EXPIRED_APPLICATION = (1, 0x40)
    NOT_YET_EFFECTIVE = (1, 0x20)
    SERVICE_NOT_ALLOWED = (1, 0x10)
    NEW_CARD = (1, 0x08)
    CARDHOLDER_VERIFICATION_FAILED = (2, 0x80)
    UNRECOGNISED_CVM = (2, 0x40)
    PIN_TRY_LIMIT_EXCEEDED = (2, 0x20)
    PIN_PAD_ABSENT = (2, 0x10)
    PIN_NOT_ENTERED = (2, 0x08)
    ONLINE_PIN_ENTERED = (2, 0x04)
    FLOOR_LIMIT_EXCEEDED = (3, 0x80)
    LCOL_EXCEEDED = (3, 0x40)
    UCOL_EXCEEDED = (3, 0x20)
    RANDOM_SELECTION = (3, 0x10)
    MERCHANT_FORCED_ONLINE = (3, 0x08)
    DEFAULT_TDOL_USED = (4, 0x80)
    ISSUER_AUTHENTICATION_FAILED = (4, 0x40)
    SCRIPT_FAILED_BEFORE_FINAL_GAC = (4, 0x20)
    SCRIPT_FAILED_AFTER_FINAL_GAC = (4, 0x10)
    # Book C-2 gives byte 5 bits 4-1 meanings of its own (Book 3: RFU); kernel C-3 leaves them 0.
    RELAY_RESISTANCE_THRESHOLD_EXCEEDED = (4, 0x08)
    RELAY_RESISTANCE_TIME_LIMITS_EXCEEDED = (4, 0x04)
    # bits 2-1, "relay resistance performed": 00 RRP not supported, 01 RRP NOT PERFORMED, 10 RRP PERFORMED
    RRP_PERFORMED = (4, 0x02)
    RRP_NOT_PERFORMED = (4, 0x01)

    NAMES: ClassVar[dict[tuple[int, int], str]] = {
        ODA_NOT_PERFORMED: "oda_not_performed",
        SDA_FAILED: "sda_failed",
        ICC_DATA_MISSING: "icc_data_missing",
        PAN_IN_EXCEPTION_FILE: "pan_in_exception_file",
        DDA_FAILED: "dda_failed",
        CDA_FAILED: "cda_failed",
        SDA_SELECTED: "sda_selected",
        DIFFERENT_APPLICATION_VERSIONS: "different_application_versions",
        EXPIRED_APPLICATION: "expired_application",
        NOT_YET_EFFECTIVE: "application_not_yet_effective",
        SERVICE_NOT_ALLOWED: "service_not_allowed",
        NEW_CARD: "new_card",
        CARDHOLDER_VERIFICATION_FAILED: "cardholder_verification_failed",
        UNRECOGNISED_CVM: "unrecognised_cvm",
        PIN_TRY_LIMIT_EXCEEDED: "pin_try_limit_exceeded",
        PIN_PAD_ABSENT: "pin_pad_absent",
        PIN_NOT_ENTERED: "pin_not_entered",
        ONLINE_PIN_ENTERED: "online_pin_entered",
        FLOOR_LIMIT_EXCEEDED: "floor_limit_exceeded",
        LCOL_EXCEEDED: "lcol_exceeded",
        UCOL_EXCEEDED: "ucol_exceeded",
        RANDOM_SELECTION: "random_selection",
        MERCHANT_FORCED_ONLINE: "merchant_forced_online",
        DEFAULT_TDOL_USED: "default_tdol_used",
        ISSUER_AUTHENTICATION_FAILED: "issuer_authentication_failed",
        SCRIPT_FAILED_BEFORE_FINAL_GAC: "script_failed_before_final_gac",
        SCRIPT_FAILED_AFTER_FINAL_GAC: "script_failed_after_final_gac",
        RELAY_RESISTANCE_THRESHOLD_EXCEEDED: "relay_resistance_threshold_exceeded",
        RELAY_RESISTANCE_TIME_LIMITS_EXCEEDED: "relay_resistance_time_limits_exceeded",
        RRP_PERFORMED: "rrp_performed",
        RRP_NOT_PERFORMED: "rrp_not_performed",
    }


class Tsi(_Bits):
    LENGTH = 2
    ODA_PERFORMED = (0, 0x80)
    CARDHOLDER_VERIFICATION_PERFORMED = (0, 0x40)
    CARD_RISK_MANAGEMENT_PERFORMED = (0, 0x20)
    ISSUER_AUTHENTICATION_PERFORMED = (0, 0x10)
    TERMINAL_RISK_MANAGEMENT_PERFORMED = (0, 0x08)
    SCRIPT_PROCESSING_PERFORMED = (0, 0x04)

    NAMES: ClassVar[dict[tuple[int, int], str]] = {
        ODA_PERFORMED: "oda_performed",
        CARDHOLDER_VERIFICATION_PERFORMED: "cardholder_verification_performed",
        CARD_RISK_MANAGEMENT_PERFORMED: "card_risk_management_performed",
        ISSUER_AUTHENTICATION_PERFORMED: "issuer_authentication_performed",
        TERMINAL_RISK_MANAGEMENT_PERFORMED: "terminal_risk_management_performed",
        SCRIPT_PROCESSING_PERFORMED: "script_processing_performed",
    }


class BitEffects:
    """Mixin for a step's result that names TVR and TSI bits to set.

    The class using it provides ``tvr_bits`` and ``tsi_bits`` (tuples of
    :data:`Bit`), in the order the step decided them.
    """

    tvr_bits: tuple[Bit, ...]
    tsi_bits: tuple[Bit, ...]

    def apply_to(self, tvr: Tvr, tsi: Tsi) -> None:
        for bit in self.tvr_bits:
            tvr.set(bit)
        for bit in self.tsi_bits:
            tsi.set(bit)

    def tvr_names(self) -> list[str]:
        return [Tvr.NAMES[b] for b in self.tvr_bits]
