"""Command APDUs as the simulated cards and wallets receive them (ISO 7816-3 short cases 1-4).

The card side's own parser, independent of ``emv.apdu`` (the terminal's): a
bug in one must not hide behind the same bug in the other.

>>> parse_command_apdu(bytes.fromhex("00A404000E325041592E5359532E444446303100"))
CommandApdu(cla=0, ins=164, p1=4, p2=0, data=b'2PAY.SYS.DDF01', le=0)
>>> parse_command_apdu(bytes.fromhex("80A80000")) is None
False
>>> parse_command_apdu(bytes.fromhex("80A8000005AA")) is None  # Lc says 5, one byte follows
True
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CommandApdu", "parse_command_apdu"]


@dataclass(frozen=True)
class CommandApdu:
    """One command: header, data (empty for cases 1 and 2) and Le (None for cases 1 and 3)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    le: int | None


def parse_command_apdu(command: bytes) -> CommandApdu | None:
    """Short APDU cases 1-4; None when the lengths do not add up (extended lengths are not simulated)."""
    if len(command) < 4:
        return None
    cla, ins, p1, p2 = command[:4]
    body = command[4:]
    if not body:
        return CommandApdu(cla, ins, p1, p2, b"", None)
    if len(body) == 1:
        return CommandApdu(cla, ins, p1, p2, b"", body[0])
    lc = body[0]
    if lc == 0:
        return None
    if len(body) == 1 + lc:
        return CommandApdu(cla, ins, p1, p2, body[1:], None)
    if len(body) == 2 + lc:
        return CommandApdu(cla, ins, p1, p2, body[1 : 1 + lc], body[-1])
    return None
