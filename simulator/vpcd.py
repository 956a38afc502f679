"""A virtual card served to the real pcscd through vsmartcard's vpcd driver.

pcscd's vpcd driver listens on TCP (35963 for its first reader, "Virtual PCD
00 00", 35964 for the second).  A virtual card connecting is a card put on
the reader; closing the connection takes it away.  Every message, both ways,
is a 2-byte big-endian length and a payload.  From the reader, a payload of
one byte is a control code (0x00 power off, 0x01 power on, 0x02 reset,
0x04 send your ATR: pcscd asks for it every 400 ms to see the card is still
there); anything longer is a command APDU, answered with the response APDU.

The card behind it is a :class:`~simulator.card.SimulatedCard` of any
profile or a :class:`~simulator.replay.ReplayCard` of a recorded trace, so
applications read it through pyscard exactly as they read a card on a real
reader (``pcsc:Virtual PCD 00 00``).

Faults: :meth:`VirtualCard.remove_after` (the card leaves after answering N
more commands), :meth:`VirtualCard.mute_after` (it stops answering without
leaving), :meth:`VirtualCard.reinsert_after` (a card that left by itself comes
back).  A card that raises :class:`~simulator.card.SimulatedCardError` (the
``visa-mute`` profile, a replayed ``"response": null``) goes mute the same way.

Linux delays the ACK of a small TCP segment (up to 40 ms) unless the receiver
asks for a quick ACK, and the option does not stick: it is set before every
``recv``, or each APDU costs ~48 ms instead of ~0.1 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import struct
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import Protocol

from simulator.card import SimulatedCard, SimulatedCardError
from simulator.cards import open_card
from simulator.cbdc.wallet import WalletCard
from simulator.contact.card import ContactCard
from simulator.profiles import ProfileError
from simulator.replay import ReplayCard, TraceError, load_trace

__all__ = [
    "CONTACTLESS_ATR",
    "T0_ATR",
    "VPCD_PORT",
    "VirtualCard",
    "VpcdError",
    "load_card",
    "reader_name",
    "serve_card_cli",
]

VPCD_PORT = 35963  # the first vpcd reader; the n-th listens on VPCD_PORT + n
# PC/SC part 3's ATR for a contactless ISO 14443-4 card with no historical bytes:
# TS, T0 (TD1 follows, 0 historical bytes), TD1 (TD2 follows, T=0), TD2 (T=1), TCK.
CONTACTLESS_ATR = bytes.fromhex("3B80800101")
# A contact card speaking T=0 only (no interface bytes, two historical bytes, no TCK).
T0_ATR = bytes.fromhex("3B021450")

_POWER_OFF, _POWER_ON, _RESET, _GET_ATR = 0x00, 0x01, 0x02, 0x04

# pcscd looks at a vpcd reader every 400 ms.  A card back sooner than that after
# leaving can go unseen as gone, and pcscd then never powers the new card up
# (it keeps answering ATR polls, but the reader stays empty): a card that left
# stays away at least this long, and so does the next card on the same port.
MIN_AWAY_SECONDS = 0.5
_left_lock = threading.Lock()
_left_at: dict[tuple[str, int], float] = {}  # (host, port) -> time.monotonic() when a card last left


class VpcdError(Exception):
    """The virtual card cannot reach pcscd's vpcd driver; the message says what to do."""


class _Card(Protocol):
    def exchange(self, command: bytes) -> bytes: ...


def load_card(
    card: str | Path, *, state_dir: str | Path | None = None
) -> SimulatedCard | WalletCard | ContactCard | ReplayCard:
    """A simulated card of a profile name, or the replay card of a trace file (a path ending in ``.json``).

    A wallet profile (``cbdc-*``) keeps its state in ``state_dir`` (see :mod:`simulator.cbdc.state`).
    """
    text = str(card)
    if text.endswith(".json") or Path(text).is_file():
        return ReplayCard(load_trace(text))
    return open_card(text, state_dir=state_dir)


def reader_name(port: int = VPCD_PORT) -> str:
    """The name pcscd gives the vpcd reader on ``port`` with the driver's shipped configuration."""
    return f"Virtual PCD 00 {port - VPCD_PORT:02d}"


class VirtualCard:
    """A card on pcscd's virtual reader, served from a thread.

    ``card`` is a profile name, a trace path, or any object with
    ``exchange(bytes) -> bytes``.  With ``stay=True`` the card comes back by
    itself when pcscd closes the connection (pcscd restarted): the card lies
    on the reader.  Faults are one-shot: each applies to the next commands.
    """

    def __init__(
        self,
        card: str | Path | _Card,
        *,
        host: str = "127.0.0.1",
        port: int = VPCD_PORT,
        atr: bytes | None = None,
        stay: bool = False,
        state_dir: str | Path | None = None,
    ) -> None:
        self.card: _Card = load_card(card, state_dir=state_dir) if isinstance(card, str | Path) else card
        self.host = host
        self.port = port
        own = getattr(self.card, "atr", None)  # a contact card (contact-*) has its own T=1 ATR
        self.atr = bytes(atr) if atr is not None else (bytes(own) if isinstance(own, bytes) else CONTACTLESS_ATR)
        self.stay = stay
        self.commands = 0  # command APDUs answered, over all insertions
        self.insertions = 0
        self.last_error: str | None = None  # why the last connection attempt failed
        self._cv = threading.Condition()
        self._want_in = False
        self._connected = False
        self._sock: socket.socket | None = None
        self._remove_after: int | None = None
        self._mute_after: int | None = None
        self._muted = False
        self._leaving = False  # remove_after(0): the end of file is the card leaving by itself
        self._reinsert_after: float | None = None
        self._closing = False
        self._thread: threading.Thread | None = None

    # -- the API -------------------------------------------------------------------------------

    @property
    def inserted(self) -> bool:
        """Connected to pcscd's vpcd driver (the card is on the reader)."""
        return self._connected

    @property
    def muted(self) -> bool:
        return self._muted

    def insert(self, timeout: float = 5.0) -> None:
        """Put the card on the reader: connect to pcscd's vpcd port (retrying until ``timeout``)."""
        with self._cv:
            if self._closing:
                raise VpcdError("the virtual card is closed")
            self._want_in = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"vpcd card :{self.port}", daemon=True)
                self._thread.start()
            self._cv.notify_all()
            if not self._cv.wait_for(lambda: self._connected, timeout):
                self._want_in = False
                self._cv.notify_all()
                raise VpcdError(
                    f"cannot reach pcscd's vpcd driver on {self.host}:{self.port} ({self.last_error or 'no answer'}): "
                    "is pcscd running with vsmartcard-vpcd installed? As root: 'pcscd --foreground' "
                    "(simulator.pcscd starts one), or 'apt-get install pcscd vsmartcard-vpcd'"
                )

    def remove(self, timeout: float = 5.0) -> None:
        """Take the card away (close the connection); a pending reinsertion is cancelled."""
        with self._cv:
            self._want_in = False
            self._remove_after = None
            self._cv.notify_all()
            self._shutdown()
            self._cv.wait_for(lambda: not self._connected, timeout)

    def remove_after(self, commands: int) -> None:
        """Leave the field after answering ``commands`` more command APDUs (0: now)."""
        if commands < 0:
            raise ValueError("commands must be >= 0")
        with self._cv:
            if commands == 0:
                self._remove_after = None
                self._leaving = self._connected
                self._shutdown()
            else:
                self._remove_after = commands

    def mute_after(self, commands: int) -> None:
        """Stop answering (anything) after ``commands`` more command APDUs, staying on the reader."""
        if commands < 0:
            raise ValueError("commands must be >= 0")
        with self._cv:
            self._mute_after = commands

    def reinsert_after(self, seconds: float | None) -> None:
        """The next time the card leaves by itself (:meth:`remove_after`), it comes back after ``seconds``.

        None: it stays away.
        """
        with self._cv:
            self._reinsert_after = seconds

    def wait_removed(self, timeout: float) -> bool:
        """Wait until the card is off the reader; True if it is."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._connected, timeout)

    def wait_inserted(self, timeout: float) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: self._connected, timeout)

    def close(self) -> None:
        """Take the card away for good and end the thread."""
        with self._cv:
            self._closing = True
            self._want_in = False
            self._cv.notify_all()
            self._shutdown()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def __enter__(self) -> VirtualCard:
        self.insert()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- the thread ----------------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Wake the serving thread's recv with an end of file (caller holds the lock)."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._want_in or self._closing)
                if self._closing:
                    return
            sock = self._connect()
            if sock is None:
                continue
            reason = self._serve(sock)
            sock.close()
            with _left_lock:
                _left_at[(self.host, self.port)] = time.monotonic()
            with self._cv:
                self._sock = None
                self._connected = False
                self._leaving = False
                self._muted = False
                self._mute_after = None
                self._cv.notify_all()
                if reason == "left" and self._reinsert_after is not None:
                    delay, self._reinsert_after = self._reinsert_after, None
                    # away for a while; remove() or close() meanwhile keeps it away
                    self._cv.wait_for(lambda: self._closing or not self._want_in, delay)
                elif reason == "left" or (reason == "reader" and not self.stay):
                    self._want_in = False
                elif reason == "reader":
                    self._cv.wait_for(lambda: self._closing or not self._want_in, 0.2)

    def _connect(self) -> socket.socket | None:
        with _left_lock:
            left = _left_at.get((self.host, self.port), -MIN_AWAY_SECONDS)
        with self._cv:
            away = left + MIN_AWAY_SECONDS - time.monotonic()
            if away > 0 and self._cv.wait_for(lambda: self._closing or not self._want_in, away):
                return None
        try:
            sock = socket.create_connection((self.host, self.port), timeout=1.0)
        except OSError as exc:
            with self._cv:
                self.last_error = exc.strerror or str(exc)
                self._cv.wait_for(lambda: self._closing or not self._want_in, 0.1)
            return None
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._cv:
            if self._closing or not self._want_in:
                sock.close()
                return None
            self._sock = sock
            self._connected = True
            self.insertions += 1
            self.last_error = None
            self._cv.notify_all()
        return sock

    def _recv_exact(self, sock: socket.socket, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            chunk = sock.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _serve(self, sock: socket.socket) -> str:
        """Answer pcscd until the connection ends: ``removed`` (by us), ``left`` (a fault), ``reader`` (pcscd)."""
        try:
            while True:
                head = self._recv_exact(sock, 2)
                payload = None if head is None else self._recv_exact(sock, struct.unpack(">H", head)[0])
                if payload is None:
                    return self._why_closed()
                answer = self._answer(payload)
                if answer is not None:
                    sock.sendall(struct.pack(">H", len(answer)) + answer)
                if len(payload) > 1 and answer is not None:
                    with self._cv:
                        self.commands += 1
                        if self._mute_after is not None:
                            self._mute_after -= 1
                        if self._remove_after is not None:
                            self._remove_after -= 1
                            if self._remove_after <= 0:
                                self._remove_after = None
                                return "left"
        except OSError:
            return self._why_closed()

    def _why_closed(self) -> str:
        with self._cv:
            if self._leaving:
                return "left"
            return "reader" if self._want_in and not self._closing else "removed"

    def _answer(self, payload: bytes) -> bytes | None:
        """The card's answer to one message from the reader; None: no answer (a control code, or mute)."""
        with self._cv:
            if self._muted:
                return None
            if len(payload) > 1 and self._mute_after is not None and self._mute_after <= 0:
                self._muted = True
                return None
        if len(payload) == 1:
            code = payload[0]
            if code == _GET_ATR:
                return self.atr
            if code in (_POWER_OFF, _POWER_ON, _RESET):
                reset = getattr(self.card, "reset", None)
                if callable(reset):
                    reset()
            return None
        try:
            return bytes(self.card.exchange(payload))
        except SimulatedCardError:  # the card stopped answering: so does the virtual card
            with self._cv:
                self._muted = True
            return None


def _parse_faults(faults: list[str]) -> tuple[int | None, int | None, float | None]:
    remove: int | None = None
    mute: int | None = None
    reinsert: float | None = None
    for fault in faults:
        key, sep, value = fault.partition("=")
        try:
            if key == "remove-after" and sep:
                remove = int(value)
            elif key == "mute-after" and sep:
                mute = int(value)
            elif key == "reinsert-after" and sep:
                reinsert = float(value)
            else:
                raise ValueError
        except ValueError:
            raise VpcdError(f"bad --fault {fault!r}: remove-after=N, mute-after=N or reinsert-after=SECONDS") from None
        if (remove is not None and remove < 0) or (mute is not None and mute < 0) or (reinsert or 0) < 0:
            raise VpcdError(f"bad --fault {fault!r}: the number must not be negative")
    return remove, mute, reinsert


def _one_line(exc: BaseException) -> str:
    """An error's message as the command line's one line: its first line, and its last when it has more.

    pcscd's errors end with the tail of its log; the last line of it is the
    one that says why.

    >>> _one_line(Exception("pcscd exited at once (status 1):\\nstarting\\nsocket in use"))
    'pcscd exited at once (status 1): socket in use'
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"


def serve_card_cli(args: argparse.Namespace) -> int:
    """``posterm sim card CARD --via vpcd``: serve the card to pcscd until SIGINT or SIGTERM.

    When pcscd is not running and the card is for this machine, a pcscd with
    the vpcd driver is started (as root) and stopped again at the end.
    Errors follow the command line's contract (:mod:`terminal.exit_status`):
    a fault, profile or trace that cannot be used raises
    :class:`~terminal.cli_output.CommandError` (2); a pcscd that cannot be
    started or reached raises :class:`~terminal.cli_output.Unavailable` (3).
    """
    from simulator import pcscd as pcscd_helper
    from terminal.cli_output import CommandError, Unavailable

    port = args.port or VPCD_PORT
    try:
        remove, mute, reinsert = _parse_faults(list(args.fault))
        card = VirtualCard(args.card, host=args.bind, port=port, stay=True, state_dir=getattr(args, "state_dir", None))
    except (VpcdError, ProfileError, TraceError, OSError) as exc:  # a bad fault, profile or trace file
        raise CommandError(_one_line(exc)) from None
    daemon: pcscd_helper.Pcscd | None = None
    if args.bind in ("127.0.0.1", "localhost", "::1"):
        try:
            daemon = pcscd_helper.ensure_pcscd()
        except pcscd_helper.PcscdError as exc:
            raise Unavailable(_one_line(exc)) from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if remove is not None:
            card.remove_after(remove)
        if mute is not None:
            card.mute_after(mute)
        card.reinsert_after(reinsert)
        card.insert()
        started = f"; pcscd started here, pid {daemon.pid}" if daemon is not None and daemon.started_here else ""
        # the shipped configuration names the readers on 35963 and 35964; another port's reader is named by its own
        reader = f"the reader configured as /dev/null:{port}"
        if port - VPCD_PORT in (0, 1):
            reader = f"reader {reader_name(port)!r}, device URL pcsc:{reader_name(port)}"
        state = f"; wallet state {card.card.store.path}" if isinstance(card.card, WalletCard) else ""
        print(
            f"serving {args.card} to pcscd's vpcd driver at {args.bind}:{port} ({reader}){started}{state}; "
            "Ctrl-C to stop",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
        return 0
    except VpcdError as exc:
        raise Unavailable(_one_line(exc)) from None
    finally:
        card.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if daemon is not None:
            daemon.stop()
