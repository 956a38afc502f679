"""Issuer master keys of the simulated cards (TEST KEYS — NOT FOR PRODUCTION).

The one place that holds the symmetric keys behind the simulator's application
cryptograms.  A profile names its key set (``"cryptogram": {"key": ...}``); the
card derives its ICC master keys from these with EMV option A (PAN + PAN sequence
number), exactly as an issuer host would, so that the simulated host can verify
ARQCs and build ARPCs with :mod:`simulator.cryptograms` from the same entry.

The values are obviously patterned test keys; no real scheme uses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["ISSUER_MASTER_KEYS", "IssuerMasterKeys", "issuer_master_keys"]


@dataclass(frozen=True)
class IssuerMasterKeys:
    """Issuer master keys for one cryptogram version.

    ``cvn`` is the cryptogram version number as it appears in the IAD (9F10):
    0x0A (Visa CVN 10), 0x12 (Visa CVN 18), 0x10 (Mastercard CVN 16) or 0x01
    (UnionPay-style CVN 01, IAD ``07 DKI 01 CVR(4) 01``).
    ``dki`` is the derivation key index carried in the IAD.
    """

    name: str
    cvn: int
    dki: int
    mk_ac: bytes
    mk_smi: bytes
    mk_smc: bytes


def _keys(name: str, cvn: int, dki: int, *, ac: str, smi: str, smc: str) -> IssuerMasterKeys:
    return IssuerMasterKeys(name, cvn, dki, bytes.fromhex(ac), bytes.fromhex(smi), bytes.fromhex(smc))


ISSUER_MASTER_KEYS: Mapping[str, IssuerMasterKeys] = MappingProxyType(
    {
        k.name: k
        for k in (
            _keys(
                "sim-visa-cvn10", 0x0A, 0x01,
                ac="0123456789ABCDEFFEDCBA9876543210",
                smi="1111111111111111EEEEEEEEEEEEEEEE",
                smc="2222222222222222DDDDDDDDDDDDDDDD",
            ),
            _keys(
                "sim-visa-cvn18", 0x12, 0x01,
                ac="89ABCDEF01234567FEDCBA9876543210",
                smi="3333333333333333CCCCCCCCCCCCCCCC",
                smc="4444444444444444BBBBBBBBBBBBBBBB",
            ),
            _keys(
                "sim-mc-cvn16", 0x10, 0x01,
                ac="FEDCBA98765432100123456789ABCDEF",
                smi="5555555555555555AAAAAAAAAAAAAAAA",
                smc="66666666666666669999999999999999",
            ),
            _keys(
                "sim-unionpay-cvn01", 0x01, 0x01,
                ac="13579BDF02468ACE0F1E2D3C4B5A6978",
                smi="77777777777777778888888888888888",
                smc="88888888888888887777777777777777",
            ),
        )
    }
)


def issuer_master_keys(name: str) -> IssuerMasterKeys:
    """The key set ``name``; a clear error lists the known ones."""
    try:
        return ISSUER_MASTER_KEYS[name]
    except KeyError:
        known = sorted(ISSUER_MASTER_KEYS)
        raise KeyError(f"unknown issuer master key set {name!r}; known: {known}") from None
