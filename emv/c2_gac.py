"""GENERATE AC for kernel C-2: the command's answer parsed, the cryptogram it names, what may answer what.

Also the SDAD of an INTERNAL AUTHENTICATE response (DDA), which has the same
two formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from emv import apdu, tlv
from emv.kernel_common import KernelError, unique_primitives

__all__ = ["REQUESTED", "STRENGTH", "GacResponse", "cryptogram_type", "parse_gac_response", "sdad_of"]

CID_TYPE_MASK = 0xC0


def cryptogram_type(cid: int) -> str | None:
    """9F27 bits 8-7: 00 AAC, 01 TC, 10 ARQC; 11 is RFU (None).

    >>> cryptogram_type(0x80), cryptogram_type(0x40), cryptogram_type(0x00), cryptogram_type(0xC0)
    ('ARQC', 'TC', 'AAC', None)
    """
    return {0x00: "AAC", 0x40: "TC", 0x80: "ARQC"}.get(cid & CID_TYPE_MASK)


#: Book 3 9.3: to a TC request the card may answer TC, ARQC or AAC; to an ARQC request
#: ARQC or AAC; to an AAC request only AAC.  A card may never answer above the request.
STRENGTH = {"AAC": 0, "ARQC": 1, "TC": 2}
REQUESTED: dict[int, Literal["AAC", "TC", "ARQC"]] = {apdu.AC_AAC: "AAC", apdu.AC_TC: "TC", apdu.AC_ARQC: "ARQC"}


@dataclass(frozen=True)
class GacResponse:
    """A GENERATE AC response: ``objects`` are its primitives; ``template77`` the
    raw value of a format 2 response (for the CDA transaction data hash)."""

    cid: int
    objects: dict[int, bytes]
    template77: bytes | None


def parse_gac_response(data: bytes) -> GacResponse:
    """Format 1 (80: CID | ATC (2) | AC (8) | IAD) or format 2 (77).

    >>> r = parse_gac_response(bytes.fromhex("800C 40 0001 1122334455667788 06"))
    >>> r.cid, r.objects[0x9F26].hex(), r.objects[0x9F10].hex()
    (64, '1122334455667788', '06')
    >>> parse_gac_response(bytes.fromhex("7709 9F270100 9F36020001")).cid
    0
    """
    try:
        objs = tlv.decode(data)
    except tlv.TlvError as exc:
        raise KernelError(f"GENERATE AC response: {exc}") from None
    if len(objs) != 1:
        raise KernelError("GENERATE AC response: expected one template 80 or 77")
    top = objs[0]
    if top.tag == 0x80:
        v = top.value
        if len(v) < 11 or len(v) > 43:
            raise KernelError(f"GENERATE AC response format 1 of {len(v)} bytes")
        out = {0x9F27: v[0:1], 0x9F36: v[1:3], 0x9F26: v[3:11]}
        if len(v) > 11:
            out[0x9F10] = v[11:]
        return GacResponse(v[0], out, None)
    if top.tag == 0x77 and top.children is not None:
        prim = unique_primitives(top.children, "GENERATE AC response")
        cid = prim.get(0x9F27)
        if cid is None or len(cid) != 1:
            raise KernelError("GENERATE AC response: CID (9F27) missing or not 1 byte")
        atc = prim.get(0x9F36)
        if atc is None or len(atc) != 2:
            raise KernelError("GENERATE AC response: ATC (9F36) missing or not 2 bytes")
        return GacResponse(cid[0], prim, top.value)
    raise KernelError(f"GENERATE AC response: template {tlv.tag_hex(top.tag)} is neither 80 nor 77")


def sdad_of(data: bytes) -> bytes | None:
    """The SDAD of an INTERNAL AUTHENTICATE response: format 1 (80) or 9F4B in 77."""
    try:
        objs = tlv.decode(data)
    except tlv.TlvError:
        return None
    if len(objs) != 1:
        return None
    if objs[0].tag == 0x80:
        return objs[0].value
    if objs[0].tag == 0x77:
        found = tlv.find(objs, 0x9F4B)
        return None if found is None else found.value
    return None
