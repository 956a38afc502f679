"""Issuer scripts the simulated issuer sends to a chip card with its answer (EMV Book 3 10.10).

Which cards get which scripts is the issuer's own table, :data:`SCRIPTED`,
by card profile: ``contact-scripts`` gets, with an approval, a script 71
(run before the second GENERATE AC) that sets its Lower Consecutive Offline
Limit (PUT DATA 9F14 = 09) and a script 72 (after it) that updates the same
data object again.  Each command carries the 8-byte MAC
(:func:`simulator.cryptograms.command_mac`) of secure messaging for integrity:
the session key from the ATC, the transaction's ARQC in the MAC input, as the
simulated card checks it.

The answer's ``issuer_scripts`` (docs/host-protocol.md) are the templates
back to back, BER-TLV, as the terminal hands them to the card.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from simulator.contact import profiles as contact_profiles
from simulator.cryptograms import command_mac
from simulator.issuer_keys import IssuerMasterKeys
from simulator.profiles import ProfileError

__all__ = ["SCRIPTED", "scripts_for"]

#: profile -> [(template 71 or 72, script id, [(CLA INS P1 P2, data)])]
SCRIPTED: dict[str, list[tuple[int, bytes, list[tuple[bytes, bytes]]]]] = {
    "contact-scripts": [
        (0x71, bytes.fromhex("00000071"), [(bytes.fromhex("84DA9F14"), b"\x09")]),
        (0x72, bytes.fromhex("00000072"), [(bytes.fromhex("84DA9F14"), b"\x0a")]),
    ],
}


def _tlv(tag: int, value: bytes) -> bytes:
    head = tag.to_bytes(2, "big") if tag > 0xFF else bytes([tag])
    n = len(value)
    length = bytes([n]) if n < 0x80 else bytes([0x81, n]) if n <= 0xFF else bytes([0x82]) + n.to_bytes(2, "big")
    return head + length + value


@lru_cache(maxsize=1)
def _by_pan() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in SCRIPTED:
        try:
            out[contact_profiles.load(name).pan] = name
        except ProfileError:  # the simulator's own test material: no scripts then
            continue
    return out


def scripts_for(keys: IssuerMasterKeys, pan: str, psn: str, arqc: bytes, atc: bytes) -> Callable[[str], bytes] | None:
    """The scripts for an answer with a response code (approvals only), None for a card that gets none."""
    name = _by_pan().get(pan)
    if name is None:
        return None

    def scripts(code: str) -> bytes:
        if code != "00":
            return b""
        out = b""
        for template, ident, commands in SCRIPTED[name]:
            body = _tlv(0x9F18, ident)
            for head, data in commands:
                header = head + bytes([len(data) + 8])
                mac = command_mac(keys, pan, psn, header=header, arqc=arqc, atc=atc, data=data)
                body += _tlv(0x86, header + data + mac)
            out += _tlv(template, body)
        return out

    return scripts
