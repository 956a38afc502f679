"""Which interface a card answered on, from the ATR a PC/SC reader reports.

A PC/SC reader makes up an ATR for a contactless card (PC/SC part 3, 3.1.3.2.3):
``3B 8n 80 01`` then n historical bytes and TCK.  Any other ATR is a card's own,
sent over its contacts: the terminal runs the contact kernel for it and Entry
Point (PPSE) for a contactless one.

>>> card_interface(bytes.fromhex("3B80800101"))
'contactless'
>>> card_interface(bytes.fromhex("3B8F8001804F0CA0000003060300030000000068"))
'contactless'
>>> card_interface(bytes.fromhex("3B808131FE458B"))
'contact'
>>> card_interface(bytes.fromhex("3B021450"))
'contact'
"""

from __future__ import annotations

from typing import Literal

__all__ = ["card_interface"]


def card_interface(atr: bytes) -> Literal["contact", "contactless"]:
    """``"contactless"`` for a PC/SC part 3 contactless ATR, else ``"contact"``."""
    atr = bytes(atr)
    if len(atr) >= 5 and atr[0] == 0x3B and atr[1] & 0xF0 == 0x80 and atr[2:4] == b"\x80\x01":
        return "contactless"
    return "contact"
