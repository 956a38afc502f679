"""ISO/IEC 14443 airtime of an APDU exchange at 106 kbit/s: the physical floor.

A byte costs 9 bit times (8 data bits + parity) at fc/128; each I-block adds
its PCB byte and a 2-byte CRC; about 86 µs of frame delay separates a command
from its response.  Start/end of frame bits and the card's own computing time
are not counted, so the figure is a lower bound of the time in the field.

>>> round(exchange_seconds(bytes(5), bytes(2)) * 1e6)
1190
"""

from __future__ import annotations

FC_HZ = 13_560_000
BIT_SECONDS = 128 / FC_HZ  # 106 kbit/s
BYTE_SECONDS = 9 * BIT_SECONDS
FRAME_DELAY_SECONDS = 86e-6
BLOCK_OVERHEAD_BYTES = 3  # PCB + CRC_A


def frame_seconds(payload: bytes) -> float:
    return (len(payload) + BLOCK_OVERHEAD_BYTES) * BYTE_SECONDS


def exchange_seconds(command: bytes, response: bytes) -> float:
    return frame_seconds(command) + FRAME_DELAY_SECONDS + frame_seconds(response)
