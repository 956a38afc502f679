"""The simulator's DUKPT base derivation keys (TEST KEYS, SIMULATOR ONLY — NOT FOR PRODUCTION).

The simulated PIN pads (:mod:`simulator.pinpad`) are loaded with initial keys
derived from these, and the simulated host holds the same BDKs in its key
store (:meth:`simulator.host.keys.HostKeys.pin_bdk`), so that it derives each
PIN block's key. Both are the standards' own published test keys: the TDES
BDK and initial KSN of ANSI X9.24-1:2009 Annex A, and the AES-128 BDK and
initial key id of the X9.24-3 examples. Anyone can decipher what they protect.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "SIM_AES_BDK",
    "SIM_AES_BDK_ID",
    "SIM_AES_IKID",
    "SIM_SCREEN_AES_IKID",
    "SIM_SCREEN_TDES_INITIAL_KSN",
    "SIM_TDES_BDK",
    "SIM_TDES_INITIAL_KSN",
    "SIM_TDES_KEY_SET_ID",
]

#: AES-128 BDK of the simulator's AES DUKPT PIN pads (ISO 9564 format 4).
SIM_AES_BDK: Final = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
#: The simulated PIN pads' initial key id: BDK id ``12345678``, derivation id ``90123456``.
SIM_AES_IKID: Final = bytes.fromhex("1234567890123456")
SIM_AES_BDK_ID: Final = SIM_AES_IKID[:4]
#: TDES BDK of the simulator's TDES DUKPT PIN pads (ISO 9564 format 0).
SIM_TDES_BDK: Final = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
#: The simulated PIN pads' initial KSN (counter bits zero); its first 5 bytes name the key set.
SIM_TDES_INITIAL_KSN: Final = bytes.fromhex("FFFF9876543210E00000")
SIM_TDES_KEY_SET_ID: Final = SIM_TDES_INITIAL_KSN[:5]

#: The on-screen PIN pad's initial key id (``posterm ui``'s ``screen:``): the same AES BDK, its own device.
SIM_SCREEN_AES_IKID: Final = SIM_AES_BDK_ID + bytes.fromhex("5C0EE001")
#: The on-screen PIN pad's initial KSN under the same TDES key set (counter bits zero).
SIM_SCREEN_TDES_INITIAL_KSN: Final = SIM_TDES_KEY_SET_ID + bytes.fromhex("5C0EE00000")
