"""Command APDUs the kernels send, response parsing, and the transport port.

Everything goes through :func:`transmit`, the one place that deals with
``61xx`` (fetch the rest with GET RESPONSE) and ``6Cxx`` (send again with the
Le the card asked for).

>>> select(b"2PAY.SYS.DDF01").hex().upper()
'00A404000E325041592E5359532E444446303100'
>>> gpo(b"").hex().upper()
'80A8000002830000'
>>> read_record(1, 1).hex().upper()
'00B2010C00'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "AC_AAC",
    "AC_ARQC",
    "AC_TC",
    "ApduError",
    "ApduTransport",
    "CardCommunicationError",
    "CollisionDetected",
    "Response",
    "generate_ac",
    "get_data",
    "get_response",
    "gpo",
    "internal_authenticate",
    "read_record",
    "select",
    "transmit",
]

AC_AAC = 0x00
AC_TC = 0x40
AC_ARQC = 0x80
CDA_REQUESTED = 0x10


@runtime_checkable
class ApduTransport(Protocol):
    """The one port between EMV code and a card: send a C-APDU, get the R-APDU.

    The response includes SW1 SW2.  A transport raises
    :class:`CardCommunicationError` (or a subclass) when the card is gone or
    does not answer.
    """

    def exchange(self, command: bytes) -> bytes: ...


class CardCommunicationError(Exception):
    """The card could not be reached: removed, mute, or the link failed."""


class CollisionDetected(CardCommunicationError):
    """Raised by a reader's transport when more than one card is in the field.

    A subclass of :class:`CardCommunicationError` so that a reader
    that does not know it still works; Entry Point answers it with
    "Present one card only".
    """


class ApduError(Exception):
    """A response that is not a well-formed R-APDU."""


@dataclass(frozen=True)
class Response:
    data: bytes
    sw1: int
    sw2: int

    @property
    def sw(self) -> int:
        return (self.sw1 << 8) | self.sw2

    @property
    def ok(self) -> bool:
        return self.sw == 0x9000

    def __str__(self) -> str:
        return f"{self.data.hex().upper()} {self.sw:04X}"


def _case(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", *, le: int | None = 0) -> bytes:
    if len(data) > 255:
        raise ValueError(f"command data of {len(data)} bytes does not fit a short APDU")
    out = bytes([cla, ins, p1, p2])
    if data:
        out += bytes([len(data)]) + data
    if le is not None:
        out += bytes([le & 0xFF])
    return out


def select(name: bytes, next_occurrence: bool = False) -> bytes:
    """SELECT by DF name (first or next occurrence)."""
    return _case(0x00, 0xA4, 0x04, 0x02 if next_occurrence else 0x00, bytes(name))


def gpo(pdol_data: bytes) -> bytes:
    """GET PROCESSING OPTIONS with the PDOL values wrapped in template 83."""
    if len(pdol_data) > 127:
        raise ValueError("PDOL data longer than 127 bytes")
    return _case(0x80, 0xA8, 0x00, 0x00, bytes([0x83, len(pdol_data)]) + pdol_data)


def read_record(sfi: int, record: int) -> bytes:
    if not 1 <= sfi <= 30:
        raise ValueError(f"SFI {sfi} out of range")
    if not 1 <= record <= 0xFF:
        raise ValueError(f"record number {record} out of range 1..255")
    return _case(0x00, 0xB2, record, (sfi << 3) | 0x04)


def generate_ac(reference: int, cdol_data: bytes, cda: bool = False) -> bytes:
    """GENERATE AC; ``reference`` is AC_AAC, AC_TC or AC_ARQC."""
    p1 = reference | (CDA_REQUESTED if cda else 0)
    return _case(0x80, 0xAE, p1, 0x00, cdol_data)


def internal_authenticate(ddol_data: bytes) -> bytes:
    return _case(0x00, 0x88, 0x00, 0x00, ddol_data)


def get_data(tag: int) -> bytes:
    return _case(0x80, 0xCA, (tag >> 8) & 0xFF, tag & 0xFF)


def get_response(length: int) -> bytes:
    return _case(0x00, 0xC0, 0x00, 0x00, le=length)


def parse_response(raw: bytes) -> Response:
    if len(raw) < 2:
        raise ApduError(f"response of {len(raw)} bytes has no status word")
    return Response(bytes(raw[:-2]), raw[-2], raw[-1])


def transmit(transport: ApduTransport, command: bytes, max_chain: int = 16) -> Response:
    """Send ``command``, following 61xx and 6Cxx, and return the final response."""
    resp = parse_response(transport.exchange(command))
    if resp.sw1 == 0x6C and len(command) >= 5:
        command = command[:-1] + bytes([resp.sw2])
        resp = parse_response(transport.exchange(command))
    data = resp.data
    rounds = 0
    while resp.sw1 == 0x61:
        rounds += 1
        if rounds > max_chain:
            raise ApduError("card keeps answering 61xx")
        resp = parse_response(transport.exchange(get_response(resp.sw2)))
        data += resp.data
    return Response(data, resp.sw1, resp.sw2)
