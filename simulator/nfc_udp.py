"""Virtual ISO/IEC 14443-4 cards answering over nfcpy's udp transport (``nfc:udp:HOST:PORT``).

nfcpy has no Type 4 card emulation, so the card side is written here: a
:class:`VirtualNfcField` is the RF field in front of a reader.  It holds zero,
one or two :class:`VirtualCard` objects; each runs the ISO/IEC 14443-3
activation of a Type A card (ATQA, anticollision with cascade levels, SAK with
the ISO-DEP bit, RATS/ATS) or of a Type B card (ATQB, ATTRIB), then the
ISO-DEP block protocol of ISO/IEC 14443-4 (I-blocks with chaining both ways,
R(ACK)/R(NAK) with retransmission, S(DESELECT)), and hands every complete
command APDU to a simulated card (:class:`simulator.card.SimulatedCard`), a
replay card or any object with ``exchange(bytes) -> bytes``.

Who listens
-----------
nfcpy's udp *reader* (``nfc.clf.udp.Device`` in ``sense_*`` mode) sends its
frames to ``HOST:PORT`` from an ephemeral socket and reads the answers on that
same socket.  So the field is the UDP server: it binds ``HOST:PORT`` and
answers every datagram to its sender.  ``nfc:udp:127.0.0.1:54329`` on the
reader side reaches a field bound to ``127.0.0.1:54329``.

Frame format (nfcpy 1.0.4, ``nfc/clf/udp.py``)
----------------------------------------------
One frame per datagram, ``b"<brty> <hex>"``: the bit rate and technology
(``106A``, ``106B``), a space, the frame bytes in hex.  No CRC_A / CRC_B and
no parity travel: nfcpy's udp driver neither adds nor checks them.  The
reader sends ``b"RFOFF"`` when it switches its field off (``mute``); every
card in the field then loses power (IDLE, ISO-DEP state and the application's
selection gone).

What the air does, and the two simulation conventions
-----------------------------------------------------
- Several cards answering the same frame: identical answers superpose
  cleanly; different answers collide.  A collided frame is sent as
  ``b"<brty> <hex of the OR of the answers> COLLISION"``, which nfcpy's udp
  driver cannot split into two fields and reports as
  ``nfc.clf.TransmissionError`` (a real PN53x reports a bit collision as a
  transmission error too).  The two cards of :meth:`VirtualNfcField.insert_two`
  have UIDs of different sizes (4 and 7 bytes), hence different ATQAs, so the
  collision shows already in the answer to the poll (SENS_RES), where the
  driver sees it.  (Two cards with the same ATQA collide only in the UID;
  nfcpy's udp ``sense_tta`` swallows that collision and reports no card.)
- No card answers: on a real RF link the reader's frame waiting time runs
  out after milliseconds; nfcpy's udp driver waits a fixed 1 s for a poll
  answer and a full FWT for a block.  With ``announce_silence`` (the
  default) the field tells the reader at once that nothing answered, with a
  datagram starting ``RFOFF``: nfcpy raises ``nfc.clf.BrokenLinkError``
  ("the remote device ... is no longer within communication distance").  A
  *mute* card (fault ``mute_after``, the ``visa-mute`` profile) is in the
  field but silent: then nothing is sent, and the reader finds out by its
  own timeout, as it would with real hardware.

Faults: :meth:`~VirtualNfcField.remove` (the cards leave), ``remove_after(n)``
(the cards leave when command n+1 arrives: activation frames are not
commands), ``mute_after(n)``, and for the command line a re-insertion some
seconds after a removal.  ``posterm sim card PROFILE --via nfc-udp`` runs a
field until SIGINT / SIGTERM (:func:`serve_card_cli`).

Frame waiting time: the ATS (and ATQB) announce FWI 12, about 1.24 s.  That
is far above what a simulated card needs to compute an answer, so no S(WTX)
is ever sent, and above 1 s, so nfcpy makes no R(NAK) retries (a late answer
to a retried block would otherwise sit in the reader's socket as a stale
datagram).
"""

from __future__ import annotations

import argparse
import enum
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from operator import xor
from types import FrameType
from typing import Any, Protocol, runtime_checkable

from emv.pan import mask_command, mask_response
from simulator.card import SimulatedCard, SimulatedCardError
from simulator.replay import ReplayCard, load_trace

__all__ = [
    "COLLISION_MARK",
    "DEFAULT_FWI",
    "DEFAULT_PORT",
    "FRAME_SIZES",
    "NO_ANSWER",
    "ApduCard",
    "FieldFaults",
    "FieldStats",
    "VirtualCard",
    "VirtualNfcField",
    "make_card",
    "parse_faults",
    "serve_card_cli",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 54329
DEFAULT_FWI = 12  # FWT = 4096 / 13.56 MHz * 2**12, about 1.24 s
#: FSCI / FSDI -> frame size (ISO/IEC 14443-4 table); the index is the coded value.
FRAME_SIZES = (16, 24, 32, 40, 48, 64, 96, 128, 256)
#: Sent when no card answered a frame (see the module doc); nfcpy's udp driver raises BrokenLinkError on it.
NO_ANSWER = b"RFOFF no card answered"
#: Appended to a collided frame; nfcpy's udp driver raises TransmissionError on a three-field datagram.
COLLISION_MARK = b"COLLISION"
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


def _fsci(frame_size: int) -> int:
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
        self._fsci = _fsci(frame_size)
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
) -> VirtualCard:
    """A virtual card from a profile name, a trace file (``*.json``), an ``exchange`` object or itself."""
    if isinstance(spec, VirtualCard):
        return spec
    uid: bytes | None = None
    if technology == "A" and uid_size != 4:
        uid = b"\x04" + os.urandom(uid_size - 1)  # 04: a manufacturer code, as double-size UIDs carry
    if isinstance(spec, str):
        if spec.endswith(".json") or os.sep in spec:
            app: ApduCard = ReplayCard(load_trace(spec))
        else:
            app = SimulatedCard(spec)
        name = os.path.basename(spec)
        return VirtualCard(app, technology=technology, uid=uid, name=name, frame_size=frame_size, fwi=fwi)
    return VirtualCard(spec, technology=technology, uid=uid, frame_size=frame_size, fwi=fwi)


@dataclass(frozen=True)
class FieldFaults:
    """Faults applied to every presentation of a card (each time it enters the field).

    ``remove_after``: the card leaves when command n+1 arrives; ``mute_after``:
    it stops answering then; ``reinsert_after``: seconds after it left, it
    comes back (powered up anew).
    """

    remove_after: int | None = None
    mute_after: int | None = None
    reinsert_after: float | None = None


@dataclass(frozen=True)
class FieldStats:
    frames_in: int
    frames_out: int
    collisions: int
    silences: int  # frames nobody answered (NO_ANSWER sent, or nothing)


def parse_faults(items: Sequence[str]) -> FieldFaults:
    """``remove-after=N``, ``mute-after=N``, ``reinsert-after=SECONDS`` (the ``--fault`` options)."""
    values: dict[str, float] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("_", "-")
        if not sep or key not in ("remove-after", "mute-after", "reinsert-after"):
            raise ValueError(f"unknown fault {item!r}: expected remove-after=N, mute-after=N or reinsert-after=SECONDS")
        try:
            value = float(text) if key == "reinsert-after" else int(text)
        except ValueError:
            raise ValueError(f"fault {item!r}: {text!r} is not a number") from None
        if value < 0:
            raise ValueError(f"fault {item!r}: must not be negative")
        values[key] = value
    remove = values.get("remove-after")
    mute = values.get("mute-after")
    return FieldFaults(
        remove_after=None if remove is None else int(remove),
        mute_after=None if mute is None else int(mute),
        reinsert_after=values.get("reinsert-after"),
    )


class VirtualNfcField:
    """The RF field in front of an nfcpy udp reader, with zero, one or two cards in it.

    Use as a context manager (or :meth:`start` / :meth:`stop`); a thread
    answers the reader's datagrams.  ``url`` is what the reader opens::

        with VirtualNfcField(["visa-qvsdc-online"]) as field:
            reader = registry.open_reader(field.url)   # nfc:udp:127.0.0.1:PORT

    ``port=0`` binds a free port.  ``frame_size`` / ``fwi`` go to every card
    made from a name (see :class:`VirtualCard`); ``announce_silence`` is
    explained in the module doc.
    """

    def __init__(
        self,
        cards: Sequence[CardSpec | VirtualCard] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        frame_size: int = 256,
        fwi: int = DEFAULT_FWI,
        announce_silence: bool = True,
        faults: FieldFaults | None = None,
        technologies: Sequence[str] | None = None,
    ) -> None:
        _fsci(frame_size)
        self.host = host
        self.frame_size = frame_size
        self.fwi = fwi
        self.announce_silence = announce_silence
        self.faults = faults or FieldFaults()
        self._requested_port = port
        self._lock = threading.RLock()
        self._cards: list[VirtualCard] = []
        self._gone: list[VirtualCard] = []
        self._reinsert_at: float | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._frames_in = self._frames_out = self._collisions = self._silences = 0
        if len(cards) > 2:
            raise ValueError("the field holds at most two cards")
        if len(cards) == 2:
            techs = tuple(technologies) if technologies else ("A", "A")
            self.insert_two(cards[0], cards[1], technologies=(techs[0], techs[1]))
        elif len(cards) == 1:
            self.insert(cards[0], technology=(technologies[0] if technologies else "A"))

    # -- life -----------------------------------------------------------------------------------

    def start(self) -> VirtualNfcField:
        if self._sock is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name=f"nfc-udp-field-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(5.0)
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> VirtualNfcField:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the field is not started")
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        """The reader's device URL (a field bound to all addresses is reached on 127.0.0.1)."""
        host = self.host if self.host not in ("", "0.0.0.0") else "127.0.0.1"
        return f"nfc:udp:{host}:{self.port}"

    # -- the cards ------------------------------------------------------------------------------

    @property
    def cards(self) -> list[VirtualCard]:
        """The cards in the field now."""
        with self._lock:
            return list(self._cards)

    def _make(self, spec: CardSpec | VirtualCard, technology: str, uid_size: int) -> VirtualCard:
        return make_card(spec, technology=technology, uid_size=uid_size, frame_size=self.frame_size, fwi=self.fwi)

    def _enter(self, cards: list[VirtualCard]) -> None:
        for card in cards:
            card.power_cycle()
            card.left = False
            card.remove_at = None if self.faults.remove_after is None else card.apdus + self.faults.remove_after
            card.mute_at = None if self.faults.mute_after is None else card.apdus + self.faults.mute_after
        self._cards = cards
        self._gone = []
        self._reinsert_at = None

    def insert(self, card: CardSpec | VirtualCard, *, technology: str = "A") -> VirtualCard:
        """This card alone in the field (whatever was there leaves)."""
        made = self._make(card, technology, 4)
        with self._lock:
            self._enter([made])
        return made

    def insert_two(
        self,
        first: CardSpec | VirtualCard,
        second: CardSpec | VirtualCard,
        *,
        technologies: tuple[str, str] = ("A", "A"),
    ) -> tuple[VirtualCard, VirtualCard]:
        """Two cards in the field at once (two Type A cards get 4- and 7-byte UIDs: their ATQAs collide)."""
        one = self._make(first, technologies[0], 4)
        two = self._make(second, technologies[1], 7)
        with self._lock:
            self._enter([one, two])
        return one, two

    def remove(self) -> None:
        """Every card leaves the field."""
        with self._lock:
            for card in list(self._cards):
                self._leave(card)

    def remove_after(self, exchanges: int) -> None:
        """The cards leave when command ``exchanges + 1`` (from now) arrives."""
        with self._lock:
            for card in self._cards:
                card.remove_at = card.apdus + exchanges

    def mute_after(self, exchanges: int) -> None:
        """The cards stop answering when command ``exchanges + 1`` (from now) arrives, until power off."""
        with self._lock:
            for card in self._cards:
                card.mute_at = card.apdus + exchanges

    def _leave(self, card: VirtualCard) -> None:
        card.left = True
        card.power_cycle()
        if card in self._cards:
            self._cards.remove(card)
        self._gone.append(card)
        log.info("virtual card %s left the field", card.name)
        if self.faults.reinsert_after is not None:
            self._reinsert_at = time.monotonic() + self.faults.reinsert_after

    @property
    def stats(self) -> FieldStats:
        with self._lock:
            return FieldStats(self._frames_in, self._frames_out, self._collisions, self._silences)

    # -- the air --------------------------------------------------------------------------------

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stopping.is_set():
            try:
                ready, _, _ = select.select([sock], [], [], 0.05)
            except (OSError, ValueError):
                break
            self._tick()
            if not ready:
                continue
            try:
                datagram, addr = sock.recvfrom(65535)
            except OSError:
                continue
            try:
                reply = self.answer(datagram)
                if reply is not None:
                    sock.sendto(reply, addr)
            except Exception:  # the field must outlive any one bad frame
                log.exception("nfc-udp field: frame from %s:%s failed", *addr)

    def _tick(self) -> None:
        with self._lock:
            if self._reinsert_at is not None and time.monotonic() >= self._reinsert_at:
                back = self._gone
                self._enter(back)
                log.info("virtual card(s) %s back in the field", ", ".join(c.name for c in back))

    def answer(self, datagram: bytes) -> bytes | None:
        """What the field sends back for one datagram from the reader (``None``: nothing)."""
        if datagram.startswith(b"RFOFF"):
            with self._lock:
                for card in self._cards:
                    card.power_cycle()
            return None
        try:
            brty_raw, hex_raw = datagram.split()
            brty = brty_raw.decode("ascii")
            frame = bytes.fromhex(hex_raw.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            log.debug("nfc-udp field: unreadable datagram (%d bytes)", len(datagram))
            return None
        with self._lock:
            self._frames_in += 1
            answers: list[bytes] = []
            silent = False
            for card in list(self._cards):
                reply = card.receive(brty, frame)
                if card.left:
                    self._leave(card)
                    continue
                silent = silent or card.muted
                if reply is not None:
                    answers.append(reply)
            if not answers:
                self._silences += 1
                if silent or not self.announce_silence:
                    return None
                return NO_ANSWER
            self._frames_out += 1
            if all(a == answers[0] for a in answers):
                return brty.encode("ascii") + b" " + answers[0].hex().encode("ascii")
            self._collisions += 1
            merged = bytearray(max(len(a) for a in answers))
            for one in answers:
                for i, byte in enumerate(one):
                    merged[i] |= byte
            return brty.encode("ascii") + b" " + merged.hex().encode("ascii") + b" " + COLLISION_MARK


def serve_card_cli(args: argparse.Namespace) -> int:
    """``posterm sim card PROFILE --via nfc-udp``: a field with the card(s) until SIGINT / SIGTERM."""
    try:
        faults = parse_faults(list(getattr(args, "fault", None) or []))
        first = make_card(args.card)
        second = make_card(args.second_card, uid_size=7) if getattr(args, "second_card", None) else None
    except Exception as exc:  # unknown profile, unreadable trace, bad fault
        print(f"posterm sim card: error: {exc}", file=sys.stderr)
        return 2
    port = args.port if getattr(args, "port", None) is not None else DEFAULT_PORT
    field = VirtualNfcField(host=getattr(args, "bind", None) or "127.0.0.1", port=port, faults=faults)
    if second is None:
        field.insert(first)
    else:
        field.insert_two(first, second)
    try:
        field.start()
    except OSError as exc:
        print(f"posterm sim card: error: cannot bind {field.host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _on_signal)
    names = " and ".join(c.name for c in field.cards)
    print(f"nfc-udp: {names} in the field; reader URL: {field.url}", flush=True)
    try:
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        field.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
