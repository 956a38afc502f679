"""The outcome as Book A and Book C-2 code it, decoded for the result JSON.

Kernel C-2 hands its outcome over as four data objects:

- DF8129 Outcome Parameter Set (8 bytes): status, start, online response data,
  CVM, the flags of byte 5 (UI request on outcome / on restart, data record,
  discretionary data, receipt), alternate interface, field off request, removal
  timeout;
- DF8116 User Interface Request Data (22 bytes): message identifier, status,
  hold time, language preference, value qualifier, value, currency code;
- DF8115 Error Indication (6 bytes): L1, L2, L3, SW12, message on error;
- FF8106 Discretionary Data: a template (Error Indication among its objects).

:func:`decode` turns any of them into a dict of names; :func:`to_json` gives
``{"DF8129": {"hex": ..., "decoded": {...}}, ...}``.

>>> decode(0xDF8129, bytes.fromhex("10F0F010B0F0FF00"))["status"]
'APPROVED'
>>> decode(0xDF8115, bytes.fromhex("00060000 00FF"))["l2"]
'CARD DATA ERROR'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emv import tlv

__all__ = [
    "CVM",
    "DISCRETIONARY_DATA",
    "ERROR_INDICATION",
    "L1",
    "L2",
    "L3",
    "OUTCOME_PARAMETER_SET",
    "OUTCOME_TAGS",
    "START",
    "STATUS",
    "UI_STATUS",
    "USER_INTERFACE_REQUEST_DATA",
    "decode",
    "to_json",
]

OUTCOME_PARAMETER_SET = 0xDF8129
USER_INTERFACE_REQUEST_DATA = 0xDF8116
ERROR_INDICATION = 0xDF8115
DISCRETIONARY_DATA = 0xFF8106
#: The four, in the order the JSON gives them.
OUTCOME_TAGS = (OUTCOME_PARAMETER_SET, USER_INTERFACE_REQUEST_DATA, ERROR_INDICATION, DISCRETIONARY_DATA)

STATUS = {
    0x10: "APPROVED",
    0x20: "DECLINED",
    0x30: "ONLINE REQUEST",
    0x40: "END APPLICATION",
    0x50: "SELECT NEXT",
    0x60: "TRY ANOTHER INTERFACE",
    0x70: "TRY AGAIN",
    0xF0: "N/A",
}
START = {0x00: "A", 0x10: "B", 0x20: "C", 0x30: "D", 0xF0: "N/A"}
CVM = {0x00: "NO CVM", 0x10: "OBTAIN SIGNATURE", 0x20: "ONLINE PIN", 0x30: "CONFIRMATION CODE VERIFIED", 0xF0: "N/A"}
ALTERNATE_INTERFACE = {0x10: "CONTACT CHIP", 0x20: "MAG-STRIPE", 0xF0: "N/A"}
UI_STATUS = {
    0x00: "NOT READY",
    0x01: "IDLE",
    0x02: "READY TO READ",
    0x03: "PROCESSING",
    0x04: "CARD READ SUCCESSFULLY",
    0x05: "PROCESSING ERROR",
    0xFF: "N/A",
}
VALUE_QUALIFIER = {0x00: "NONE", 0x10: "AMOUNT", 0x20: "BALANCE"}
L1 = {0x00: "OK", 0x01: "TIME OUT ERROR", 0x02: "TRANSMISSION ERROR", 0x03: "PROTOCOL ERROR"}
L2 = {
    0x00: "OK",
    0x01: "CARD DATA MISSING",
    0x02: "CAM FAILED",
    0x03: "STATUS BYTES",
    0x04: "PARSING ERROR",
    0x05: "MAX LIMIT EXCEEDED",
    0x06: "CARD DATA ERROR",
    0x07: "MAGSTRIPE NOT SUPPORTED",
    0x08: "NO PPSE",
    0x09: "PPSE FAULT",
    0x0A: "EMPTY CANDIDATE LIST",
    0x0B: "IDS READ ERROR",
    0x0C: "IDS WRITE ERROR",
    0x0D: "IDS DATA ERROR",
    0x0E: "IDS NO MATCHING AC",
    0x0F: "TERMINAL DATA ERROR",
}
L3 = {0x00: "OK", 0x01: "TIME OUT", 0x02: "STOP", 0x03: "AMOUNT NOT PRESENT"}


def _name(table: Mapping[int, str], value: int) -> str:
    return table.get(value, f"RFU ({value:02X})")


def _opset(v: bytes) -> dict[str, Any]:
    b5 = v[4]
    return {
        "status": _name(STATUS, v[0]),
        "start": _name(START, v[1]),
        "online_response_data": "N/A" if v[2] == 0xF0 else f"{v[2]:02X}",
        "cvm": _name(CVM, v[3]),
        "ui_request_on_outcome_present": bool(b5 & 0x80),
        "ui_request_on_restart_present": bool(b5 & 0x40),
        "data_record_present": bool(b5 & 0x20),
        "discretionary_data_present": bool(b5 & 0x10),
        "receipt": bool(b5 & 0x08),
        "alternate_interface_preference": _name(ALTERNATE_INTERFACE, v[5]),
        "field_off_request": "N/A" if v[6] == 0xFF else v[6],
        "removal_timeout": v[7],
    }


def _uird(v: bytes) -> dict[str, Any]:
    lang = v[5:13].rstrip(b"\x00").decode("ascii", "replace")
    return {
        "message_identifier": f"{v[0]:02X}",
        "status": _name(UI_STATUS, v[1]),
        "hold_time": v[2:5].hex().upper(),
        "language_preference": lang,
        "value_qualifier": _name(VALUE_QUALIFIER, v[13]),
        "value": v[14:20].hex().upper(),
        "currency_code": v[20:22].hex().upper(),
    }


def _error_indication(v: bytes) -> dict[str, Any]:
    return {
        "l1": _name(L1, v[0]),
        "l2": _name(L2, v[1]),
        "l3": _name(L3, v[2]),
        "sw12": v[3:5].hex().upper(),
        "msg_on_error": "N/A" if v[5] == 0xFF else f"{v[5]:02X}",
    }


def _discretionary(v: bytes) -> dict[str, Any]:
    try:
        objects = tlv.decode(v)
    except tlv.TlvError:
        return {"undecodable": v.hex().upper()}
    out: dict[str, Any] = {}
    for obj in tlv.iter_primitives(objects):
        if obj.tag in _DECODERS:
            out[tlv.tag_hex(obj.tag)] = {"hex": obj.value.hex().upper(), "decoded": decode(obj.tag, obj.value)}
        else:
            out[tlv.tag_hex(obj.tag)] = obj.value.hex().upper()
    return out


_LENGTHS = {OUTCOME_PARAMETER_SET: 8, USER_INTERFACE_REQUEST_DATA: 22, ERROR_INDICATION: 6}
_DECODERS = {
    OUTCOME_PARAMETER_SET: _opset,
    USER_INTERFACE_REQUEST_DATA: _uird,
    ERROR_INDICATION: _error_indication,
    DISCRETIONARY_DATA: _discretionary,
}


def decode(tag: int, value: bytes) -> dict[str, Any] | None:
    """The named fields of one of :data:`OUTCOME_TAGS`; None for a value of the wrong length."""
    want = _LENGTHS.get(tag)
    if want is not None and len(value) != want:
        return None
    decoder = _DECODERS.get(tag)
    return None if decoder is None else decoder(value)


def to_json(objects: Mapping[int, bytes]) -> dict[str, Any] | None:
    """``{"DF8129": {"hex": ..., "decoded": ...}, ...}`` of those present; None when none is."""
    present = [t for t in OUTCOME_TAGS if t in objects]
    if not present:
        return None
    return {f"{t:X}": {"hex": objects[t].hex().upper(), "decoded": decode(t, objects[t])} for t in present}
