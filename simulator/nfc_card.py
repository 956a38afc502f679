"""One virtual ISO/IEC 14443-4 card, as it answers the frames of a contactless reader.

nfcpy has no Type 4 card emulation, so the card side is written here.  A
:class:`VirtualCard` runs the ISO/IEC 14443-3 activation of a Type A card
(ATQA, anticollision with cascade levels, SAK with the ISO-DEP bit, RATS/ATS)
or of a Type B card (ATQB, ATTRIB), then the ISO-DEP block protocol of
ISO/IEC 14443-4 (I-blocks with chaining both ways, R(ACK)/R(NAK) with
retransmission, S(DESELECT)), and hands every complete command APDU to a
simulated card (:class:`simulator.card.SimulatedCard`), a replay card or any
object with ``exchange(bytes) -> bytes`` (:class:`ApduCard`).  It knows
nothing of how frames travel: :class:`simulator.nfc_udp.VirtualNfcField` puts
it in front of nfcpy's udp reader.

Faults armed on a count of commands (``remove_at``, ``mute_at``): the card
leaves the field, or goes mute, when the next command starts; activation
frames are not commands.

Frame waiting time: the ATS (and ATQB) announce FWI 12, about 1.24 s.  That
is far above what a simulated card needs to compute an answer, so no S(WTX)
is ever sent, and above 1 s, so nfcpy makes no R(NAK) retries (a late answer
to a retried block would otherwise sit in the reader's socket as a stale
datagram).
"""

from __future__ import annotations

import enum
import logging
import os
from functools import reduce
from operator import xor
from typing import Protocol, runtime_checkable

from emv.pan import mask_command, mask_response
from simulator.card import SimulatedCardError
from simulator.cards import open_card
from simulator.replay import ReplayCard, load_trace

__all__ = [
    "DEFAULT_FWI",
    "FRAME_SIZES",
    "HISTORICAL_BYTES",
    "ApduCard",
    "CardSpec",
    "VirtualCard",
    "frame_size_code",
    "make_card",
]

log = logging.getLogger(__name__)

DEFAULT_FWI = 12  # FWT = 4096 / 13.56 MHz * 2**12, about 1.24 s
#: FSCI / FSDI -> frame size (ISO/IEC 14443-4 table); the index is the coded value.
FRAME_SIZES = (16, 24, 32, 40, 48, 64, 96, 128, 256)
#: The historical bytes of the ATS (ISO/IEC 7816-4: a first byte outside 00/10/8x is proprietary).
HISTORICAL_BYTES = b"POSTERM"

_REQA, _WUPA = 0x26, 0x52
_HLTA = b"\x50\x00"
_SEL = (0x93, 0x95, 0x97)
_SAK_CASCADE = 0x04
_SAK_ISO_DEP = 0x20
_RATS = 0xE0
_APF = 0x05  # anticollision prefix of REQB / WUPB
_ATTRIB = 0x1D
_HLTB = 0x50
_SW_NO_DIAGNOSIS = b"\x6f\x00"


@runtime_checkable
class ApduCard(Protocol):
    """What the virtual card forwards APDUs to (a simulated card, a replay card, a test double)."""

    def exchange(self, command: bytes) -> bytes: ...


CardSpec = str | ApduCard


class _State(enum.Enum):
    IDLE = "idle"
    READY = "ready"  # answered the poll, in anticollision (A) or waiting for ATTRIB (B)
    ACTIVE = "active"  # selected (A), waiting for RATS
    HALT = "halt"
    PROTOCOL = "protocol"  # ISO-DEP


def _bcc(part: bytes) -> int:
    return reduce(xor, part, 0)


def frame_size_code(frame_size: int) -> int:
    """The FSCI / FSDI that codes ``frame_size`` (one of :data:`FRAME_SIZES`), or ValueError."""
    if frame_size not in FRAME_SIZES:
        raise ValueError(f"frame size {frame_size} is not one of {FRAME_SIZES}")
    return FRAME_SIZES.index(frame_size)


class VirtualCard:
    """One contactless card: a Type A or Type B front end, ISO-DEP, and the application card behind.

    ``uid``: Type A 4, 7 or 10 bytes (the ATQA says which size), Type B 4 bytes
    (the PUPI).  ``frame_size`` is the FSC the card announces and the largest
    frame it sends itself (ISO-DEP chaining splits longer answers; the reader's
    FSD bounds it too).  ``receive`` is called by the field for every frame and
    returns the answer or ``None`` (no answer).  Not thread-safe: the field
    serialises calls.
    """

    def __init__(
        self,
        app: ApduCard,
        *,
        technology: str = "A",
        uid: bytes | None = None,
        name: str = "",
        frame_size: int = 256,
        fwi: int = DEFAULT_FWI,
        historical_bytes: bytes = HISTORICAL_BYTES,
    ) -> None:
        if technology not in ("A", "B"):
            raise ValueError(f"technology must be 'A' or 'B', not {technology!r}")
        if not 0 <= fwi <= 14:
            raise ValueError("FWI must be 0..14")
        self.app = app
        self.technology = technology
        self.name = name or type(app).__name__
        self.frame_size = frame_size
        self._fsci = frame_size_code(frame_size)
        self.fwi = fwi
        self.historical_bytes = bytes(historical_bytes)[:15]
        if uid is None:
            uid = (b"\x08" + os.urandom(3)) if technology == "A" else os.urandom(4)
        if technology == "A" and len(uid) not in (4, 7, 10):
            raise ValueError("a Type A UID has 4, 7 or 10 bytes")
        if technology == "B" and len(uid) != 4:
            raise ValueError("a Type B PUPI has 4 bytes")
        self.uid = bytes(uid)
        # -- what the tests and faults look at
        self.apdus = 0  # commands answered by the application, over the card's life
        self.remove_at: int | None = None  # leave the field when command number remove_at + 1 arrives
        self.mute_at: int | None = None
        self.muted = False  # in the field, answering nothing until it loses power
        self.left = False  # set when a fault takes the card out of the field
        self.chained_in = 0  # I-blocks with the chaining bit received (command chaining)
        self.chained_out = 0  # I-blocks with the chaining bit sent (response chaining)
        self.blocks_in = 0
        self.blocks_out = 0
        self._levels = self._cascade_levels()
        self._reset_link()

    # -- identity -------------------------------------------------------------------------------

    @property
    def atqa(self) -> bytes:
        """SENS_RES as it travels (LSB first): UID size in b7-b8, bit frame anticollision b3."""
        size_bits = {4: 0x00, 7: 0x40, 10: 0x80}[len(self.uid)]
        return bytes([size_bits | 0x04, 0x00])

    @property
    def ats(self) -> bytes:
        """TL, T0 (TA, TB, TC present; FSCI), TA (106 kbit/s only), TB (FWI, SFGI 0), TC (no CID, no NAD), history."""
        body = bytes([0x70 | self._fsci, 0x80, (self.fwi << 4) & 0xF0, 0x00]) + self.historical_bytes
        return bytes([len(body) + 1]) + body

    @property
    def atqb(self) -> bytes:
        """SENSB_RES: 50, PUPI, application data (AFI 00, no CRC_B(AID), 1 application), protocol info."""
        protocol_info = bytes([0x00, (self._fsci << 4) | 0x01, (self.fwi << 4) & 0xF0])
        return b"\x50" + self.uid + b"\x00\x00\x00\x01" + protocol_info

    def _cascade_levels(self) -> list[bytes]:
        """The UID CLn answers (each 4 bytes + BCC) for a Type A card."""
        uid = self.uid
        if self.technology != "A":
            return []
        if len(uid) == 4:
            parts = [uid]
        elif len(uid) == 7:
            parts = [b"\x88" + uid[:3], uid[3:]]
        else:
            parts = [b"\x88" + uid[:3], b"\x88" + uid[3:6], uid[6:]]
        return [p + bytes([_bcc(p)]) for p in parts]

    # -- power ----------------------------------------------------------------------------------

    def _reset_link(self) -> None:
        self.state = _State.IDLE
        self._level = 0
        self._bn = 1  # ISO/IEC 14443-4: the PICC's block number starts at 1
        self._fsd = 256
        self._cid: int | None = None
        self._rx = bytearray()
        self._receiving = False  # in the middle of a chained command
        self._tx = b""  # rest of a chained answer
        self._last: bytes | None = None

    def power_cycle(self) -> None:
        """The field went off (or the card left and came back): link and application state go."""
        self._reset_link()
        self.muted = False
        reset = getattr(self.app, "reset", None)
        if callable(reset):
            reset()

    # -- frames ---------------------------------------------------------------------------------

    def receive(self, brty: str, frame: bytes) -> bytes | None:
        """One frame from the reader; the answer, or ``None`` when the card keeps silent."""
        if self.muted or self.left or not frame or not brty.endswith(self.technology):
            return None
        if self.technology == "A":
            return self._receive_a(frame)
        return self._receive_b(frame)

    def _receive_a(self, frame: bytes) -> bytes | None:
        if len(frame) == 1 and frame[0] in (_REQA, _WUPA):
            if self.state is _State.HALT and frame[0] == _REQA:
                return None
            if self.state in (_State.ACTIVE, _State.PROTOCOL):
                # A poll reaching an active card: the udp link has no carrier, so a reader that went
                # away without RF off looks like this.  Take it as a new power-up.
                self.power_cycle()
            self.state = _State.READY
            self._level = 0
            return self.atqa
        if self.state is _State.READY:
            return self._anticollision(frame)
        if self.state is _State.ACTIVE:
            if frame == _HLTA:
                self.state = _State.HALT
                return None
            if len(frame) == 2 and frame[0] == _RATS:
                self._fsd = FRAME_SIZES[min(frame[1] >> 4, 8)]
                cid = frame[1] & 0x0F
                self._cid = None if cid == 0 else cid  # CID 0 is what a reader without CID sends
                self.state = _State.PROTOCOL
                return self.ats
            return None
        if self.state is _State.PROTOCOL:
            return self._iso_dep(frame)
        return None

    def _anticollision(self, frame: bytes) -> bytes | None:
        if self._level >= len(self._levels) or len(frame) < 2 or frame[0] != _SEL[self._level]:
            return None
        expected = self._levels[self._level]
        if frame[1] == 0x20 and len(frame) == 2:  # SDD_REQ: nothing known yet, send the whole CLn
            return expected
        if frame[1] == 0x70 and frame[2:] == expected:  # SEL_REQ for this UID part
            self._level += 1
            if self._level < len(self._levels):
                return bytes([_SAK_CASCADE])
            self.state = _State.ACTIVE
            return bytes([_SAK_ISO_DEP])
        return None  # another card's UID, or a partial SDD_REQ this card does not resolve

    def _receive_b(self, frame: bytes) -> bytes | None:
        if len(frame) == 3 and frame[0] == _APF:
            wake = bool(frame[2] & 0x08)  # WUPB wakes halted cards, REQB does not
            if self.state is _State.HALT and not wake:
                return None
            if frame[1] != 0x00:
                return None  # an AFI asking for one family of applications: this card has none (AFI 00)
            if self.state is _State.PROTOCOL:
                self.power_cycle()
            self.state = _State.READY
            return self.atqb
        if frame[0] == _ATTRIB and len(frame) >= 9 and frame[1:5] == self.uid and self.state is _State.READY:
            self._fsd = FRAME_SIZES[min(frame[6] & 0x0F, 8)]
            cid = frame[8] & 0x0F
            self._cid = None if cid == 0 else cid
            self.state = _State.PROTOCOL
            return bytes([cid])  # MBLI 0, CID
        if frame[0] == _HLTB and frame[1:5] == self.uid and len(frame) == 5:
            self.state = _State.HALT
            return b"\x00"
        if self.state is _State.PROTOCOL:
            return self._iso_dep(frame)
        return None

    # -- ISO-DEP --------------------------------------------------------------------------------

    def _block(self, pcb: int, inf: bytes = b"") -> bytes:
        head = bytes([pcb | 0x08, self._cid]) if self._cid is not None else bytes([pcb])
        block = head + inf
        self.blocks_out += 1
        return block

    def _max_inf(self) -> int:
        return min(self._fsd, self.frame_size) - 3 - (1 if self._cid is not None else 0)

    def _iso_dep(self, frame: bytes) -> bytes | None:
        pcb = frame[0]
        index = 2 if pcb & 0x08 else 1  # CID follows
        self.blocks_in += 1
        if pcb & 0xE2 == 0x02:  # I-block
            if pcb & 0x04:  # NAD follows
                index += 1
            return self._i_block(pcb, frame[index:])
        if pcb & 0xE6 == 0xA2:  # R-block
            return self._r_block(pcb)
        if pcb & 0xF7 == 0xC2:  # S(DESELECT)
            self.state = _State.HALT
            self._last = None
            return self._block(0xC2)
        return None  # S(WTX) answers (never asked for), S(PARAMETERS), rubbish: no answer

    def _i_block(self, pcb: int, inf: bytes) -> bytes | None:
        self._bn = pcb & 0x01  # rule D: toggle on an I-block (set, so that a reader out of step heals)
        if not self._receiving and not self._command_allowed():
            return None
        if pcb & 0x10:  # chaining: more of this command follows
            self._receiving = True
            self._rx += inf
            self.chained_in += 1
            self._last = self._block(0xA2 | self._bn)
            return self._last
        command = bytes(self._rx + inf)
        self._rx = bytearray()
        self._receiving = False
        answer = self._process(command)
        if answer is None:
            return None
        return self._send(answer)

    def _send(self, data: bytes) -> bytes:
        size = self._max_inf()
        if len(data) > size:
            self._tx = data[size:]
            self.chained_out += 1
            self._last = self._block(0x12 | self._bn, data[:size])
        else:
            self._tx = b""
            self._last = self._block(0x02 | self._bn, data)
        return self._last

    def _r_block(self, pcb: int) -> bytes | None:
        number = pcb & 0x01
        if pcb & 0x10:  # R(NAK)
            if number == self._bn and self._last is not None:
                return self._last  # rule 11: the last block again
            return self._block(0xA2 | self._bn)  # rule 12: presence check, answer R(ACK)
        if number == self._bn:
            return self._last  # rule 11
        self._bn = number  # rule E
        if self._tx:
            return self._send(self._tx)
        self._last = self._block(0xA2 | self._bn)
        return self._last

    def _command_allowed(self) -> bool:
        """Faults armed on command count: leave or go mute when the next command starts."""
        if self.remove_at is not None and self.apdus >= self.remove_at:
            self.left = True
            return False
        if self.mute_at is not None and self.apdus >= self.mute_at:
            self.muted = True
            return False
        return True

    def _process(self, command: bytes) -> bytes | None:
        try:
            answer = bytes(self.app.exchange(command))
        except SimulatedCardError as exc:
            log.info("virtual card %s goes mute: %s", self.name, exc)
            self.muted = True
            return None
        except Exception as exc:  # a broken test double must not kill the field
            log.warning("virtual card %s failed on a command: %s: %s", self.name, type(exc).__name__, exc)
            answer = _SW_NO_DIAGNOSIS
        self.apdus += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("card %s > %s < %s", self.name, mask_command(command), mask_response(answer))
        return answer


def make_card(
    spec: CardSpec | VirtualCard,
    *,
    technology: str = "A",
    uid_size: int = 4,
    frame_size: int = 256,
    fwi: int = DEFAULT_FWI,
    state_dir: str | os.PathLike[str] | None = None,
) -> VirtualCard:
    """A virtual card from a profile name, a trace file (``*.json``), an ``exchange`` object or itself.

    A wallet profile (``cbdc-*``) keeps its state in ``state_dir`` (see :mod:`simulator.cbdc.state`).
    """
    if isinstance(spec, VirtualCard):
        return spec
    uid: bytes | None = None
    if technology == "A" and uid_size != 4:
        uid = b"\x04" + os.urandom(uid_size - 1)  # 04: a manufacturer code, as double-size UIDs carry
    if isinstance(spec, str):
        if spec.endswith(".json") or os.sep in spec:
            app: ApduCard = ReplayCard(load_trace(spec))
        else:
            app = open_card(spec, state_dir=state_dir)
        name = os.path.basename(spec)
        return VirtualCard(app, technology=technology, uid=uid, name=name, frame_size=frame_size, fwi=fwi)
    return VirtualCard(spec, technology=technology, uid=uid, frame_size=frame_size, fwi=fwi)
