"""A virtual serial QR / barcode scanner on a pty pair: a real serial device path for ``serial:``.

:class:`VirtualScanner` opens a pseudo-terminal; its slave side
(:attr:`~VirtualScanner.device_path`, e.g. ``/dev/pts/7``) is what the
terminal opens with ``serial:/dev/pts/7?suffix=CR``, and the scanner writes
to the master side what a scanner sends: each code, with an optional prefix,
an AIM symbology identifier when asked, and the suffix.  Faults: a noise line
(random bytes, some of them control bytes, then the suffix), a partial line
(no suffix: the driver drops it after its quiet time), a stream of codes at a
chosen rate with noise between them, and the port vanishing (:meth:`close`).

The pty is switched to raw mode at once, so that bytes sent before the driver
configures the port reach it unchanged (no echo, no CR -> LF).  Note that
pyserial flushes the input when it opens a port: codes sent before the
scanner is opened are lost, as with a real scanner nobody listens to.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import threading
import time
import tty
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from drivers.serial_scanner import aim_identifier, parse_token
from simulator.net_printer import run_until_signalled
from simulator.sim_cli import background_reads_fail, console_note, stdin_fd, typed_lines
from terminal.ports import DeviceError

__all__ = ["VirtualScanner", "add_scanner_arguments", "serve_scanner_cli"]

_SUFFIX_NAMES = {b"\r": "CR", b"\n": "LF", b"\r\n": "CRLF", b"\t": "TAB"}


class VirtualScanner:
    """A scanner on a pty: ``send`` codes, noise and partial lines; ``close`` unplugs it."""

    def __init__(
        self, *, suffix: bytes = b"\r", prefix: bytes = b"", rate: float = 10.0, seed: int | None = None
    ) -> None:
        if not suffix:
            raise ValueError("a scanner ends its codes with a suffix (CR, LF, CRLF, TAB, ...)")
        self.suffix = suffix
        self.prefix = prefix
        self.rate = rate  # codes a second, for stream()
        self.sent = 0  # codes sent
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._stream_stop = threading.Event()
        self._stream: threading.Thread | None = None
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.device_path = os.ttyname(self._slave)

    @property
    def url(self) -> str:
        """The ``serial:`` URL the driver opens this scanner with."""
        suffix = _SUFFIX_NAMES.get(self.suffix) or "0x" + self.suffix.hex()
        url = f"serial:{self.device_path}?suffix={suffix}"
        if self.prefix:
            url += "&prefix=" + quote("0x" + self.prefix.hex(), safe="")
        return url

    # -- what a scanner sends --

    def send_raw(self, data: bytes) -> None:
        """Write bytes to the port as they are (waits while the pty is full; DeviceError once closed)."""
        with self._lock:
            view = memoryview(data)
            while view:
                if self._closed.is_set():
                    raise DeviceError(f"virtual scanner {self.device_path} is closed")
                try:
                    written = os.write(self._master, view)
                except BlockingIOError:
                    time.sleep(0.005)  # nobody reads: the pty buffer is full
                    continue
                except OSError as exc:
                    raise DeviceError(f"virtual scanner {self.device_path}: {exc}") from exc
                view = view[written:]

    def send(self, text: str, symbology: str | None = None) -> None:
        """One code, as the scanner reads it: prefix, AIM identifier (if ``symbology``), text, suffix."""
        self.send_raw(self.prefix + aim_identifier(symbology).encode() + text.encode("utf-8") + self.suffix)
        self.sent += 1

    def noise(self, n: int = 16) -> bytes:
        """``n`` bytes of line noise: random, at least one control byte, never a terminator byte."""
        banned = set(self.suffix) | {0x0A, 0x0D, 0x1D}
        controls = [b for b in range(0x20) if b not in banned] + [0x7F, 0xFF]
        body = [self._random.choice(controls)]
        while len(body) < max(1, n):
            byte = self._random.randrange(256)
            if byte not in banned:
                body.append(byte)
        self._random.shuffle(body)
        return bytes(body)

    def send_noise(self, n: int = 16) -> None:
        """A line of noise, terminated: the driver must drop it (and count it as garbage)."""
        self.send_raw(self.noise(n) + self.suffix)

    def send_partial(self, text: str) -> None:
        """The start of a code and no suffix (a scan cut short): the driver drops it after its quiet time."""
        self.send_raw(self.prefix + text.encode("utf-8"))

    # -- a stream of codes --

    def stream(
        self,
        codes: Sequence[str],
        *,
        rate: float | None = None,
        noise_every: int = 0,
        symbology: str | None = None,
        repeat: bool = False,
    ) -> threading.Thread:
        """Send ``codes`` at ``rate`` a second (default :attr:`rate`) in a thread, a noise line after every
        ``noise_every`` codes (0: none); ``repeat`` cycles until :meth:`stop_stream`."""
        if not codes:
            raise ValueError("no codes to stream")
        self.stop_stream()
        interval = 1.0 / (rate or self.rate)
        self._stream_stop.clear()
        thread = threading.Thread(
            target=self._run_stream, args=(list(codes), interval, noise_every, symbology, repeat), daemon=True
        )
        self._stream = thread
        thread.start()
        return thread

    def _run_stream(self, codes: list[str], interval: float, noise_every: int, symbology: str | None,
                    repeat: bool) -> None:  # fmt: skip
        count = 0
        next_at = time.monotonic()
        source: Iterable[str] = codes
        while True:
            for code in source:
                if self._stream_stop.wait(max(0.0, next_at - time.monotonic())):
                    return
                next_at += interval
                try:
                    self.send(code, symbology)
                    count += 1
                    if noise_every and count % noise_every == 0:
                        self.send_noise()
                except DeviceError:
                    return
            if not repeat:
                return

    def stop_stream(self) -> None:
        self._stream_stop.set()
        thread, self._stream = self._stream, None
        if thread is not None:
            thread.join(timeout=5.0)

    def wait_stream(self, timeout: float | None = None) -> bool:
        """Wait for a finite stream to be sent; False on timeout."""
        thread = self._stream
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # -- unplugging --

    def close(self) -> None:
        """Unplug: both ends of the pty close, and the driver's reads fail (DeviceGone)."""
        if self._closed.is_set():
            return
        self._stream_stop.set()
        self._closed.set()
        thread, self._stream = self._stream, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        with self._lock:
            for fd in (self._master, self._slave):
                with contextlib.suppress(OSError):
                    os.close(fd)

    unplug = close

    def __enter__(self) -> VirtualScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the command line (posterm sim scanner) ------------------------------------------------------------------------


def add_scanner_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--code", action="append", default=[], metavar="TEXT", help="a code to send; repeatable")
    parser.add_argument("--rate", type=float, default=1.0, metavar="PER_SECOND", help="codes a second (default 1)")
    parser.add_argument("--noise", action="store_true", help="a line of noise after every code")
    parser.add_argument("--suffix", default="CR", help="line terminator: CR (default), LF, CRLF, TAB or 0x..")
    parser.add_argument("--aim", metavar="SYMBOLOGY", help="send AIM identifiers for this symbology, e.g. QRCODE")


def serve_scanner_cli(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Print the device path and the URL, send the codes (cycling at ``--rate``) until SIGINT / SIGTERM.

    Without ``--code``, lines typed on standard input are sent as codes.
    """
    try:
        suffix = parse_token(args.suffix, "--suffix")
    except DeviceError as exc:
        print(f"posterm: error: {exc}", file=sys.stderr)
        return 2
    if args.rate <= 0:
        print("posterm: error: --rate must be positive", file=sys.stderr)
        return 2
    scanner = VirtualScanner(suffix=suffix, rate=args.rate)
    stop = stop or threading.Event()
    try:
        print(f"virtual scanner on {scanner.device_path}", flush=True)
        print(f"open it as: {scanner.url}", flush=True)
        if args.code:
            scanner.stream(args.code, noise_every=1 if args.noise else 0, symbology=args.aim, repeat=True)
            run_until_signalled(stop)
        else:
            # Typed codes are read from a terminal only while this is its foreground job (as the
            # printer's faults): started with '&' it leaves the terminal to the shell.
            stdin = stdin_fd()
            print(console_note(stdin) + "type a code and Enter to send it", flush=True)
            with background_reads_fail():
                if stdin is not None:
                    typed = typed_lines(stdin, stop)
                    threading.Thread(target=_send_typed, args=(scanner, args.aim, typed), daemon=True).start()
                run_until_signalled(stop)
    finally:
        stop.set()
        scanner.close()
    print("virtual scanner unplugged", flush=True)
    return 0


def _send_typed(scanner: VirtualScanner, symbology: str | None, typed: Iterable[str]) -> None:
    for line in typed:
        text = line.rstrip("\r\n")
        if text:
            try:
                scanner.send(text, symbology)
            except DeviceError:
                return
