"""The Card Status Update (CSU) of ARPC method 2, as the simulated issuer writes it and its cards read it.

EMV Book 2 8.2.2: with ARPC method 2 the issuer authentication data (91) is
ARPC (4 bytes) || CSU (4 bytes) || proprietary authentication data (0 to 8
bytes), and the ARPC is a MAC over ARQC || CSU || proprietary data.  The CSU
tells the card what the issuer decided and what to change.  Its layout here is
the Common Core Definitions' (EMV Book 3 Annex C, "Card Status Update") as
recalled, not checked against the book (none was at hand): byte 1 b8, byte 2
b8 (approved) and the PIN try counter are the parts posterm relies on; both
writer and reader are the simulator's, so a slip here cannot reach a real card:

====  ====  ==================================================
byte  bits  meaning
====  ====  ==================================================
1     b8    proprietary authentication data included
1     b4-1  the new PIN try counter (with "update PIN try counter")
2     b8    issuer approves the online transaction
2     b7    card block
2     b6    application block
2     b5    update PIN try counter
2     b4    set "go online on next transaction"
2     b3    CSU created by a proxy for the issuer
2     b2-1  update counters: 00 leave, 01 set to zero (reset the offline
            counters), 10 add this transaction, 11 RFU
3     —     RFU
4     —     issuer discretionary
====  ====  ==================================================

>>> CardStatusUpdate.decode(bytes.fromhex("00800000")).approved
True
>>> CardStatusUpdate(approved=True, pin_try_counter=3).encode().hex().upper()
'03900000'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CSU_APPROVED", "CSU_DECLINED", "CardStatusUpdate"]

_PROPRIETARY = 0x80
_APPROVED, _CARD_BLOCK, _APP_BLOCK, _UPDATE_PTC, _GO_ONLINE, _PROXY = 0x80, 0x40, 0x20, 0x10, 0x08, 0x04
COUNTERS = {0: "leave", 1: "reset", 2: "add", 3: "rfu"}


@dataclass(frozen=True)
class CardStatusUpdate:
    """The four bytes of a CSU, by meaning (see the module docstring)."""

    approved: bool = False
    card_block: bool = False
    application_block: bool = False
    pin_try_counter: int | None = None  # set the PIN try counter to this (0-15)
    go_online_next: bool = False
    proxy: bool = False
    counters: str = "leave"  # leave | reset | add
    proprietary_data: bool = False
    discretionary: int = 0

    def encode(self) -> bytes:
        if self.pin_try_counter is not None and not 0 <= self.pin_try_counter <= 0x0F:
            raise ValueError("a PIN try counter in a CSU is 0 to 15")
        if self.counters not in ("leave", "reset", "add"):
            raise ValueError(f"counters {self.counters!r}: leave, reset or add")
        b1 = (_PROPRIETARY if self.proprietary_data else 0) | (self.pin_try_counter or 0)
        b2 = (
            (_APPROVED if self.approved else 0)
            | (_CARD_BLOCK if self.card_block else 0)
            | (_APP_BLOCK if self.application_block else 0)
            | (_UPDATE_PTC if self.pin_try_counter is not None else 0)
            | (_GO_ONLINE if self.go_online_next else 0)
            | (_PROXY if self.proxy else 0)
            | {"leave": 0, "reset": 1, "add": 2}[self.counters]
        )
        return bytes([b1, b2, 0, self.discretionary & 0xFF])

    @classmethod
    def decode(cls, raw: bytes) -> CardStatusUpdate:
        if len(raw) != 4:
            raise ValueError("a CSU is 4 bytes")
        b1, b2 = raw[0], raw[1]
        return cls(
            approved=bool(b2 & _APPROVED),
            card_block=bool(b2 & _CARD_BLOCK),
            application_block=bool(b2 & _APP_BLOCK),
            pin_try_counter=b1 & 0x0F if b2 & _UPDATE_PTC else None,
            go_online_next=bool(b2 & _GO_ONLINE),
            proxy=bool(b2 & _PROXY),
            counters=COUNTERS[b2 & 0x03],
            proprietary_data=bool(b1 & _PROPRIETARY),
            discretionary=raw[3],
        )


CSU_APPROVED = CardStatusUpdate(approved=True).encode()  # 00800000, what the simulated issuer sent before
CSU_DECLINED = CardStatusUpdate().encode()
