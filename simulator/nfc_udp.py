"""Virtual ISO/IEC 14443-4 cards answering over nfcpy's udp transport (``nfc:udp:HOST:PORT``).

nfcpy has no Type 4 card emulation, so the card side is written here: a
:class:`VirtualNfcField` is the RF field in front of a reader.  It holds zero,
one or two :class:`~simulator.nfc_card.VirtualCard` objects (the card
itself, its activation and ISO-DEP: :mod:`simulator.nfc_card`); this module
is the air and the transport between them and the reader.

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
"""

from __future__ import annotations

import argparse
import errno
import logging
import select
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from simulator.cbdc.wallet import WalletCard
from simulator.nfc_card import DEFAULT_FWI, FRAME_SIZES, ApduCard, CardSpec, VirtualCard, frame_size_code, make_card
from terminal.cli_output import CommandError, Unavailable

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
#: Sent when no card answered a frame (see the module doc); nfcpy's udp driver raises BrokenLinkError on it.
NO_ANSWER = b"RFOFF no card answered"
#: Appended to a collided frame; nfcpy's udp driver raises TransmissionError on a three-field datagram.
COLLISION_MARK = b"COLLISION"


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
        frame_size_code(frame_size)
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


def _bind_error(exc: OSError, host: str, port: int) -> Exception:
    """The command's error when the field cannot bind ``host:port`` (see :mod:`terminal.exit_status`).

    An address that is not this machine's (or no address at all) is the
    user's input (:class:`~terminal.cli_output.CommandError`, 2); a port in
    use, or one this user may not bind, leaves the card server
    :class:`~terminal.cli_output.Unavailable` (3).

    >>> import errno
    >>> type(_bind_error(OSError(errno.EADDRINUSE, "Address already in use"), "127.0.0.1", 54329)).__name__
    'Unavailable'
    """
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return CommandError(f"--bind {host}: the card cannot listen there ({reason}): not an address of this machine")
    if exc.errno == errno.EADDRINUSE:
        return Unavailable(f"the card cannot listen on {where}: the port is in use (another card or program serves it)")
    return Unavailable(f"the card cannot listen on {where}: {reason}")


def serve_card_cli(args: argparse.Namespace) -> int:
    """``posterm sim card PROFILE --via nfc-udp``: a field with the card(s) until SIGINT / SIGTERM.

    Errors follow the command line's contract (:mod:`terminal.exit_status`):
    a card, trace or fault that cannot be used raises
    :class:`~terminal.cli_output.CommandError` (2), a field that cannot
    listen raises :class:`~terminal.cli_output.Unavailable` (3) or, for an
    address that is not this machine's, a ``CommandError``.
    """
    try:
        faults = parse_faults(list(getattr(args, "fault", None) or []))
        state = getattr(args, "state_dir", None)
        first = make_card(args.card, state_dir=state)
        second_spec = getattr(args, "second_card", None)
        second = make_card(second_spec, uid_size=7, state_dir=state) if second_spec else None
    except Exception as exc:  # unknown profile, unreadable trace, bad fault
        raise CommandError(f"{exc}") from None
    port = args.port if getattr(args, "port", None) is not None else DEFAULT_PORT
    field = VirtualNfcField(host=getattr(args, "bind", None) or "127.0.0.1", port=port, faults=faults)
    if second is None:
        field.insert(first)
    else:
        field.insert_two(first, second)
    try:
        field.start()
    except OSError as exc:
        raise _bind_error(exc, field.host, port) from None
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _on_signal)
    names = " and ".join(c.name for c in field.cards)
    stores = [c.app.store.path for c in field.cards if isinstance(c.app, WalletCard)]
    state = f"; wallet state {stores[0]}" if stores else ""
    print(f"nfc-udp: {names} in the field; reader URL: {field.url}{state}", flush=True)
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
