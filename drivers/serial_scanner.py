"""QR / barcode scanners on a serial port (RS-232, USB CDC-ACM, a pty), through pyserial.

URL: ``serial:PATH?baud=9600&bytesize=8&parity=N&stopbits=1&prefix=...&suffix=CR&symbology=aim``
(a URL with ``protocol=...`` names a PIN pad: :mod:`drivers.serial_pinpad`)

==============  =================================================================
``baud``        bits per second (default 9600)
``bytesize``    5, 6, 7 or 8 (default 8)
``parity``      N, E, O, M or S (default N)
``stopbits``    1, 1.5 or 2 (default 1)
``prefix``      what the scanner sends before each code (default none)
``suffix``      the line terminator: CR, LF, CRLF, TAB, or bytes in hex written
                ``0x0D0A`` (default: a line ends at CR or LF, whichever comes)
``symbology``   ``aim`` (default): AIM identifiers (``]Q1`` QR, ``]E0`` EAN-13,
                ``]C1`` Code 128, ...) at the start of a code are parsed and
                removed when present; ``none``: codes are taken as they come
``quiet``       seconds of silence after which a line with no terminator is a
                partial line and is dropped (default 0.5)
``maxlen``      longest code in characters; longer lines are dropped (default 8192)
``encoding``    how the scanner encodes text (default utf-8)
==============  =================================================================

``prefix`` and ``suffix`` also take the names STX, ETX, ESC, CR, LF, CRLF, TAB
and hex written ``0x...``; anything else is literal text.

Empty lines are ignored, and CR / LF around a code are taken off even when
the suffix is another one (a scanner sending CRLF where CR is configured
still scans).

A thread reads the port as bytes arrive (so that the quiet time is measured
when the bytes come, not when somebody asks for a code) and queues the codes;
:meth:`SerialScanner.read` takes them from the queue.  What is dropped is
counted in :attr:`SerialScanner.dropped`, for the diagnostics:

- ``garbage``: a line with bytes that are no text (control bytes other than
  the GS1 separator 0x1D, invalid UTF-8, line noise);
- ``partial``: bytes with no terminator followed by the quiet time;
- ``overlong``: a line longer than ``maxlen``;
- ``no_prefix``: a line without the configured prefix;
- ``bytes``: all the bytes dropped for any of these reasons.
"""

from __future__ import annotations

import codecs
import contextlib
import re
import threading
import time
import unicodedata
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from drivers.serial_errors import open_failure
from terminal.ports import CancelToken, DeviceError, DeviceGone, NoCodeError, ScannedCode, WaitCancelled

__all__ = [
    "AIM_SYMBOLOGIES",
    "LineAssembler",
    "ScannerOptions",
    "SerialScanner",
    "aim_identifier",
    "parse_serial_url",
    "parse_token",
]

# AIM code characters (ISO/IEC 15424) -> the symbology names pyzbar uses (None: known, no pyzbar name).
AIM_SYMBOLOGIES: dict[str, str | None] = {
    "A": "CODE39",
    "C": "CODE128",
    "d": "DATAMATRIX",
    "E": "EAN13",  # ]E0 EAN-13 / UPC-A / UPC-E as 13 digits; ]E4 EAN-8 (see _aim_name)
    "F": "CODABAR",
    "G": "CODE93",
    "I": "I25",
    "L": "PDF417",
    "Q": "QRCODE",
    "e": "DATABAR",
    "z": "AZTEC",
    "H": "CODE11",
    "M": "MSI",
    "X": None,
}
_AIM = re.compile(r"\]([A-Za-z])([0-9A-Za-z])")
_NAMED_BYTES = {
    "CR": b"\r",
    "LF": b"\n",
    "CRLF": b"\r\n",
    "TAB": b"\t",
    "STX": b"\x02",
    "ETX": b"\x03",
    "ESC": b"\x1b",
}
_PARITIES = {key: name[0] for name in ("NONE", "EVEN", "ODD", "MARK", "SPACE") for key in (name, name[0])}
_OPTIONS = ("baud", "bytesize", "parity", "stopbits", "prefix", "suffix", "symbology", "quiet", "maxlen", "encoding")
_GS = "\x1d"  # the GS1 field separator: the one control character a code may carry
_POLL_SECONDS = 0.05


def parse_token(text: str, what: str) -> bytes:
    """``CR`` / ``CRLF`` / ``TAB`` / ... , ``0x0D0A`` (hex), or literal text, as bytes."""
    if text.upper() in _NAMED_BYTES:
        return _NAMED_BYTES[text.upper()]
    if text[:2].lower() == "0x":
        try:
            value = bytes.fromhex(text[2:])
        except ValueError:
            raise DeviceError(f"{what} {text!r}: expected hex bytes after 0x, e.g. 0x0D0A") from None
        if not value:
            raise DeviceError(f"{what} {text!r}: no bytes after 0x")
        return value
    return text.encode("utf-8")


@dataclass(frozen=True)
class ScannerOptions:
    baud: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1
    prefix: bytes = b""
    suffix: bytes | None = None  # None: a line ends at CR or LF
    aim: bool = True
    quiet: float = 0.5
    maxlen: int = 8192
    encoding: str = "utf-8"


def _number(name: str, text: str, kind: type[int] | type[float], low: float, high: float) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise DeviceError(f"serial option {name}={text!r} is not a number") from None
    if not low <= value <= high:
        raise DeviceError(f"serial option {name}={text!r} is out of range ({low:g}..{high:g})")
    return value


def parse_serial_url(url: str) -> tuple[str, ScannerOptions]:
    """``serial:PATH?options`` -> the device path and the options; :class:`DeviceError` for any bad option."""
    scheme, sep, rest = url.partition(":")
    if scheme != "serial" or not sep:
        raise DeviceError(f"{url!r} is not a serial: URL (expected serial:/dev/ttyACM0?baud=9600&suffix=CR)")
    path, _, query = rest.partition("?")
    if not path:
        raise DeviceError(f"{url!r} names no serial port (expected serial:/dev/ttyACM0)")
    seen: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        name, _, value = (unquote(part) for part in item.partition("="))
        if name not in _OPTIONS:
            raise DeviceError(f"unknown serial option {name!r} in {url!r}; known: {', '.join(_OPTIONS)}")
        if name in seen:
            raise DeviceError(f"serial option {name!r} given twice in {url!r}")
        seen[name] = value
    opts: dict[str, Any] = {}
    if "baud" in seen:
        opts["baud"] = _number("baud", seen["baud"], int, 50, 4_000_000)
    if "bytesize" in seen:
        opts["bytesize"] = _number("bytesize", seen["bytesize"], int, 5, 8)
    if "parity" in seen:
        parity = _PARITIES.get(seen["parity"].upper())
        if parity is None:
            raise DeviceError(f"serial option parity={seen['parity']!r}: expected N, E, O, M or S")
        opts["parity"] = parity
    if "stopbits" in seen:
        if seen["stopbits"] not in ("1", "1.5", "2"):
            raise DeviceError(f"serial option stopbits={seen['stopbits']!r}: expected 1, 1.5 or 2")
        opts["stopbits"] = float(seen["stopbits"])
    if "prefix" in seen:
        opts["prefix"] = parse_token(seen["prefix"], "prefix") if seen["prefix"] else b""
    if "suffix" in seen:
        if not seen["suffix"]:
            raise DeviceError("serial option suffix is empty: a scanner must end its codes (CR, LF, CRLF, TAB, 0x..)")
        opts["suffix"] = parse_token(seen["suffix"], "suffix")
    if "symbology" in seen:
        mode = seen["symbology"].lower()
        if mode not in ("aim", "none"):
            raise DeviceError(f"serial option symbology={seen['symbology']!r}: expected aim or none")
        opts["aim"] = mode == "aim"
    if "quiet" in seen:
        opts["quiet"] = _number("quiet", seen["quiet"], float, 0.01, 60.0)
    if "maxlen" in seen:
        opts["maxlen"] = _number("maxlen", seen["maxlen"], int, 1, 1_000_000)
    if "encoding" in seen:
        try:
            opts["encoding"] = codecs.lookup(seen["encoding"]).name
        except LookupError:
            raise DeviceError(f"serial option encoding={seen['encoding']!r}: unknown encoding") from None
    return path, ScannerOptions(**opts)


def _aim_name(code: str, modifier: str, text: str) -> str | None:
    if code == "E":
        if modifier == "4":
            return "EAN8"
        if modifier == "0" and len(text) == 12:
            return "UPCA"
    return AIM_SYMBOLOGIES.get(code)


def aim_identifier(symbology: str | None) -> str:
    """The AIM identifier a scanner puts before a code of this symbology (``QRCODE`` -> ``]Q1``); "" if none."""
    if symbology is None:
        return ""
    special = {"EAN8": "]E4", "UPCA": "]E0", "EAN13": "]E0", "QRCODE": "]Q1", "CODE128": "]C0"}
    if symbology in special:
        return special[symbology]
    for code, name in AIM_SYMBOLOGIES.items():
        if name == symbology:
            return f"]{code}0"
    return ""


class LineAssembler:
    """Bytes in, codes out: cuts lines at the terminator and drops what is not a code.

    Pure (no I/O, the time comes in): the reading thread feeds it what the
    port gives and ticks it when the port is quiet.
    """

    def __init__(self, options: ScannerOptions, source: str = "") -> None:
        self.options = options
        self.source = source
        self.dropped: Counter[str] = Counter({"garbage": 0, "partial": 0, "overlong": 0, "no_prefix": 0, "bytes": 0})
        self._buffer = bytearray()
        self._last_byte_at = 0.0
        self._discarding = False  # inside an over-long line: drop up to its terminator

    def _terminator(self) -> tuple[int, int]:
        """Where the first terminator is in the buffer and its length; (-1, 0) when there is none."""
        suffix = self.options.suffix
        if suffix is not None:
            return self._buffer.find(suffix), len(suffix)
        cr, lf = self._buffer.find(b"\r"), self._buffer.find(b"\n")
        ends = [i for i in (cr, lf) if i >= 0]
        return (min(ends), 1) if ends else (-1, 0)

    def _drop(self, reason: str, size: int) -> None:
        self.dropped[reason] += 1
        self.dropped["bytes"] += size

    def feed(self, data: bytes, now: float) -> list[ScannedCode]:
        """The codes completed by ``data``, which arrived at ``now`` (monotonic seconds)."""
        if not data:
            return self.tick(now)
        out = self.tick(now)
        self._last_byte_at = now
        self._buffer += data
        while True:
            index, length = self._terminator()
            if index < 0:
                break
            line = bytes(self._buffer[:index])
            del self._buffer[: index + length]
            if self._discarding:
                self._discarding = False
                self.dropped["bytes"] += len(line) + length
                continue
            code = self._line(line)
            if code is not None:
                out.append(code)
        # maxlen counts characters; a UTF-8 character takes up to 4 bytes
        if len(self._buffer) > self.options.maxlen * 4 + len(self.options.prefix) + 16:
            if not self._discarding:
                self._drop("overlong", 0)
            self.dropped["bytes"] += len(self._buffer)
            self._buffer.clear()
            self._discarding = True
        return out

    def tick(self, now: float) -> list[ScannedCode]:
        """Drop a partial line once the port has been quiet for ``quiet`` seconds."""
        if (self._buffer or self._discarding) and now - self._last_byte_at >= self.options.quiet:
            if self._discarding:
                self.dropped["bytes"] += len(self._buffer)
            else:
                self._drop("partial", len(self._buffer))
            self._buffer.clear()
            self._discarding = False
        return []

    def _line(self, line: bytes) -> ScannedCode | None:
        raw = line
        if not line.strip(b"\r\n"):
            return None  # an empty line (the LF of a CRLF when any terminator is accepted)
        prefix = self.options.prefix
        if prefix:
            at = line.find(prefix)
            if at < 0:
                self._drop("no_prefix", len(line))
                return None
            self.dropped["bytes"] += at  # noise before the prefix
            line = line[at + len(prefix) :]
        try:
            text = line.decode(self.options.encoding)
        except UnicodeDecodeError:
            self._drop("garbage", len(raw))
            return None
        text = text.strip("\r\n")  # a scanner sending CRLF where CR was configured still scans
        if any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") and ch != _GS for ch in text) or "\ufffd" in text:
            self._drop("garbage", len(raw))
            return None
        if len(text) > self.options.maxlen:
            self._drop("overlong", len(raw))
            return None
        symbology: str | None = None
        if self.options.aim:
            match = _AIM.match(text)
            if match and match.group(1) in AIM_SYMBOLOGIES:
                text = text[3:]
                symbology = _aim_name(match.group(1), match.group(2), text)
        if not text:
            self._drop("garbage", len(raw))
            return None
        return ScannedCode(text=text, symbology=symbology, raw=raw, source=self.source)


class SerialScanner:
    """A scanner on a serial port: see the module's documentation for the URL."""

    kind = "scanner"
    scheme = "serial"

    def __init__(self, url: str, port: Any, options: ScannerOptions) -> None:
        self.url = url
        self.options = options
        self._port = port
        self._assembler = LineAssembler(options, url)
        self._codes: deque[ScannedCode] = deque()
        self._ready = threading.Condition()
        self._gone: str | None = None  # why the port went away
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"posterm-scanner {port.port}", daemon=True)
        self._thread.start()

    @staticmethod
    def route(url: str) -> type:
        """A ``serial:`` URL with ``protocol=posterm-pinpad`` names a PIN pad (:mod:`drivers.serial_pinpad`)."""
        query = url.partition("?")[2]
        if any(item.startswith("protocol=") for item in query.split("&")):
            from drivers.serial_pinpad import SerialPinPad

            return SerialPinPad
        return SerialScanner

    @classmethod
    def open(cls, url: str) -> SerialScanner:
        path, options = parse_serial_url(url)
        import serial

        try:
            port = serial.Serial(
                port=path,
                baudrate=options.baud,
                bytesize=options.bytesize,
                parity=options.parity,
                stopbits=options.stopbits,
                timeout=_POLL_SECONDS,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError(f"cannot open serial scanner {path}: {open_failure(exc)}") from exc
        return cls(url, port, options)

    @staticmethod
    def discover() -> list[str]:
        """The serial ports attached now (any of them may be a scanner: nothing is opened to tell)."""
        from serial.tools import list_ports

        return sorted(f"serial:{info.device}" for info in list_ports.comports())

    @property
    def dropped(self) -> dict[str, int]:
        """What was dropped so far, by reason (``garbage``, ``partial``, ``overlong``, ``no_prefix``, ``bytes``)."""
        return dict(self._assembler.dropped)

    def _run(self) -> None:
        import serial

        port = self._port
        while not self._closed.is_set():
            try:
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                # TypeError / AttributeError: pyserial's state once the port was closed under it
                if not self._closed.is_set():
                    with self._ready:
                        self._gone = f"serial scanner {port.port} went away: {exc}"
                        self._ready.notify_all()
                return
            now = time.monotonic()
            codes = self._assembler.feed(data, now) if data else self._assembler.tick(now)
            if codes:
                with self._ready:
                    self._codes.extend(codes)
                    self._ready.notify_all()

    def read(self, timeout: float | None = None, cancel: CancelToken | None = None) -> ScannedCode:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            while True:
                if cancel is not None and cancel.cancelled:
                    raise WaitCancelled("the wait for a code was cancelled")
                if self._codes:
                    return self._codes.popleft()
                if self._gone is not None:
                    raise DeviceGone(self._gone)
                if self._closed.is_set():
                    raise DeviceError(f"serial scanner {self.url} is closed")
                wait = _POLL_SECONDS  # wakes up to look at the cancel token
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise NoCodeError(f"no code scanned within {timeout:g} s")
                    wait = min(wait, remaining)
                self._ready.wait(wait)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(Exception):  # the port may already be gone; closing it is all that is left
            self._port.cancel_read()
        self._thread.join(timeout=2.0)
        with contextlib.suppress(Exception):
            self._port.close()
        with self._ready:
            self._ready.notify_all()

    def __enter__(self) -> SerialScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
