"""ESC/POS receipt printers on the network (raw port 9100), a serial port or USB, through python-escpos.

URLs (options after ``?``, joined with ``&``)::

    escpos:net:HOST[:PORT]          port 9100 by default; IPv6 as [::1]:9100
    escpos:serial:PATH              baud=9600 bytesize=8 parity=N stopbits=1 dsrdtr=1 xonxoff=0
    escpos:usb:VID:PID              hex ids (04b8:0202); in_ep=0x82 out_ep=0x01

and for all of them: ``status_timeout`` (seconds to wait for each status
answer, default 1), ``confirm`` (1: wait for the printer to confirm each job,
the default; 0: do not), ``confirm_timeout`` (default 15), ``timeout``
(connecting and sending, default 10).

python-escpos opens the connections (its ``Network``, ``Serial`` and ``Usb``
classes) and sends the bytes; what it does not do is read status back in a
usable way: its ``query_status`` reads with the connection's one timeout (60 s
on the network by default), knows only DLE EOT 1 (online) and DLE EOT 4 (paper),
takes no answer for "paper adequate", and has no cover or error cause.  So the
answers are read here, from the connection object python-escpos opened (the
socket, the ``serial.Serial``, the pyusb device) with a timeout per answer:

1. :meth:`EscposPrinter.status` sends the real-time requests DLE EOT 1
   (printer), 2 (offline cause), 3 (error cause) and 4 (paper roll sensor) one
   at a time; no answer to the first means the printer does not answer status
   (``UNKNOWN``).  Paper end -> ``PAPER_OUT``, cover open -> ``COVER_OPEN``,
   offline or an error -> ``OFFLINE``, near end -> ``PAPER_LOW``.
2. :meth:`EscposPrinter.print_job` asks first and refuses (``PrinterError``
   with that status) when the printer cannot print; sends the job; then, if
   the printer answers status, sends GS r 1 (paper sensor status), which a
   printer answers only once it has processed everything before it, and polls
   DLE EOT meanwhile: paper running out, the cover opening or the printer going
   offline during the job raises ``PrinterError`` with that status, as does no
   confirmation within ``confirm_timeout``.  A connection lost while sending
   or before the confirmation raises ``PrinterError`` (``OFFLINE``).  A job is
   reported printed only when it was confirmed, or, for a printer that does not
   answer status at all, when every byte was handed over.

A network printer gets a new connection per job and per status request (one
connection is one job for a port-9100 printer, and it leaves the printer to
other terminals in between); serial and USB printers stay open and are opened
again after a failure.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from terminal.ports import DeviceError, PrinterError, PrinterStatus

__all__ = ["EscposPrinter", "PrinterTarget", "decode_status", "parse_escpos_url"]

DLE_EOT = b"\x10\x04"
GS_R_PAPER = b"\x1dr\x01"  # transmit paper sensor status: answered in order, after the data before it
_CANNOT_PRINT = (PrinterStatus.PAPER_OUT, PrinterStatus.COVER_OPEN, PrinterStatus.OFFLINE)
_WHY = {
    PrinterStatus.PAPER_OUT: "is out of paper",
    PrinterStatus.COVER_OPEN: "has its cover open",
    PrinterStatus.OFFLINE: "is offline",
}
_COMMON_OPTIONS = {"status_timeout", "confirm", "confirm_timeout", "timeout"}
_SERIAL_OPTIONS = {"baud", "bytesize", "parity", "stopbits", "dsrdtr", "xonxoff"}
_USB_OPTIONS = {"in_ep", "out_ep"}


def is_status_answer(byte: int) -> bool:
    """A DLE EOT answer: bit 1 and bit 4 set, bits 0 and 7 clear."""
    return byte & 0x93 == 0x12


def is_transmit_answer(byte: int) -> bool:
    """A GS r answer: bits 4 and 7 clear (which tells it from a DLE EOT answer)."""
    return byte & 0x90 == 0


def decode_status(answers: dict[int, int]) -> PrinterStatus:
    """The state from the answers to DLE EOT n (n -> answer byte); ``UNKNOWN`` if there are none.

    >>> decode_status({1: 0x12, 2: 0x12, 3: 0x12, 4: 0x12})
    <PrinterStatus.READY: 'ready'>
    >>> decode_status({1: 0x1A, 4: 0x7E})
    <PrinterStatus.PAPER_OUT: 'paper_out'>
    """
    if not answers:
        return PrinterStatus.UNKNOWN
    printer, cause, error, paper = (answers.get(n, 0x12) for n in (1, 2, 3, 4))
    if paper & 0x60 or cause & 0x20:
        return PrinterStatus.PAPER_OUT
    if cause & 0x04:
        return PrinterStatus.COVER_OPEN
    if printer & 0x08 or cause & 0x40 or error & 0x68:
        return PrinterStatus.OFFLINE
    if paper & 0x0C:
        return PrinterStatus.PAPER_LOW
    return PrinterStatus.READY


class _LinkLost(Exception):
    """The connection to the printer broke (closed, reset, unplugged, stopped taking data)."""


class _Link(Protocol):
    def send(self, data: bytes) -> None: ...

    def recv(self, timeout: float) -> bytes:
        """What came within ``timeout`` seconds (b"" if nothing); :class:`_LinkLost` when the link broke."""
        ...

    def drain(self) -> None:
        """Forget answers nobody waited for."""
        ...

    def close(self) -> None: ...


def _escpos_printers() -> Any:
    """python-escpos's printer classes, imported on first use (see terminal.receipts: it works at import)."""
    cache = Path(
        os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(Path(tempfile.gettempdir()) / "posterm-escpos"))
    )
    cache.mkdir(parents=True, exist_ok=True)
    from escpos import printer

    return printer


class _NetLink:
    """python-escpos's ``Network`` printer on a socket connected here: its ``open()`` is IPv4 only and
    leaks the socket when the connection is refused, so the connection is made with
    :func:`socket.create_connection` and handed to it (it sends and closes)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self._timeout = timeout
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise _LinkLost(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
        self._printer = _escpos_printers().Network(host=host, port=port, timeout=timeout)
        self._printer.device = self._sock

    def send(self, data: bytes) -> None:
        try:
            self._sock.settimeout(self._timeout)
            self._printer._raw(data)
        except OSError as exc:
            raise _LinkLost(f"connection lost while sending: {exc}") from exc

    def recv(self, timeout: float) -> bytes:
        try:
            self._sock.settimeout(max(timeout, 0.001))
            data = self._sock.recv(64)
        except TimeoutError:
            return b""
        except OSError as exc:
            raise _LinkLost(f"connection lost: {exc}") from exc
        if not data:
            raise _LinkLost("the printer closed the connection")
        return data

    def drain(self) -> None:
        while True:
            try:
                if not self.recv(0.0):
                    return
            except _LinkLost:
                return

    def close(self) -> None:
        with suppress(Exception):
            self._printer.close()


class _SerialLink:
    def __init__(self, path: str, options: dict[str, Any], timeout: float) -> None:
        from escpos.exceptions import DeviceNotFoundError

        self._printer = _escpos_printers().Serial(devfile=path, timeout=timeout, **options)
        try:
            self._printer.open()
        except DeviceNotFoundError as exc:
            self._printer.device = False
            raise _LinkLost(f"cannot open {path}: {str(exc).splitlines()[-1]}") from exc
        self._port: Any = self._printer.device
        self._port.write_timeout = timeout  # a printer that stops taking data (flow control) must not hang us

    def send(self, data: bytes) -> None:
        import serial

        try:
            self._printer._raw(data)
        except (serial.SerialException, OSError) as exc:  # SerialTimeoutException included
            raise _LinkLost(f"serial printer stopped taking data: {exc}") from exc

    def recv(self, timeout: float) -> bytes:
        import serial

        try:
            self._port.timeout = max(timeout, 0.0)
            data: bytes = self._port.read(max(1, self._port.in_waiting))
        except (serial.SerialException, OSError, TypeError) as exc:
            raise _LinkLost(f"serial port lost: {exc}") from exc
        return data

    def drain(self) -> None:
        with suppress(Exception):
            self._port.reset_input_buffer()

    def close(self) -> None:
        with suppress(Exception):
            self._printer.close()


class _UsbLink:
    def __init__(self, vendor: int, product: int, in_ep: int, out_ep: int, timeout: float) -> None:
        if importlib.util.find_spec("usb") is None:
            raise DeviceError(
                "escpos:usb needs pyusb (pip install pyusb) and libusb, which posterm does not install; "
                "or use the printer's serial or network interface"
            )
        from escpos.exceptions import DeviceNotFoundError

        self._timeout_ms = int(timeout * 1000)
        self._printer = _escpos_printers().Usb(
            idVendor=vendor, idProduct=product, timeout=self._timeout_ms, in_ep=in_ep, out_ep=out_ep
        )
        try:
            self._printer.open()
        except DeviceNotFoundError as exc:
            self._printer.device = False
            raise _LinkLost(f"no USB printer {vendor:04x}:{product:04x}: {str(exc).splitlines()[-1]}") from exc
        self._in_ep = in_ep

    def send(self, data: bytes) -> None:
        try:
            self._printer._raw(data)
        except Exception as exc:  # usb.core.USBError and its timeout
            raise _LinkLost(f"USB printer stopped taking data: {exc}") from exc

    def recv(self, timeout: float) -> bytes:
        usb_core: Any = importlib.import_module("usb.core")  # pyusb: there when this link could be opened
        try:
            return bytes(self._printer.device.read(self._in_ep, 64, max(1, int(timeout * 1000))))
        except usb_core.USBTimeoutError:
            return b""
        except usb_core.USBError as exc:
            raise _LinkLost(f"USB printer lost: {exc}") from exc

    def drain(self) -> None:
        with suppress(_LinkLost):
            while self.recv(0.01):
                pass

    def close(self) -> None:
        with suppress(Exception):
            self._printer.close()


@dataclass
class _Answers:
    """Reads a link's answers: DLE EOT answers to the request in flight, a GS r answer kept aside."""

    link: _Link
    confirmation: int | None = None
    stray: list[int] = field(default_factory=list)

    def _take(self, data: bytes) -> int | None:
        status = None
        for byte in data:
            if is_status_answer(byte) and status is None:
                status = byte
            elif is_transmit_answer(byte) and self.confirmation is None:
                self.confirmation = byte
            else:
                self.stray.append(byte)  # automatic status back, or noise
        return status

    def query(self, n: int, timeout: float) -> int | None:
        self.link.send(DLE_EOT + bytes([n]))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            answer = self._take(self.link.recv(remaining))
            if answer is not None:
                return answer

    def status(self, timeout: float) -> PrinterStatus:
        first = self.query(1, timeout)
        if first is None:
            return PrinterStatus.UNKNOWN
        answers = {1: first}
        for n in (2, 3, 4):
            answer = self.query(n, timeout)
            if answer is not None:
                answers[n] = answer
        return decode_status(answers)

    def listen(self, seconds: float) -> None:
        """Read for ``seconds``, keeping a GS r answer if one comes."""
        deadline = time.monotonic() + seconds
        while self.confirmation is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._take(self.link.recv(remaining))


@dataclass(frozen=True)
class PrinterTarget:
    """What an ``escpos:`` URL says: where the printer is and how to talk to it."""

    kind: str  # net | serial | usb
    host: str = ""
    port: int = 9100
    path: str = ""
    vendor: int = 0
    product: int = 0
    serial_options: dict[str, Any] = field(default_factory=dict)
    in_ep: int = 0x82
    out_ep: int = 0x01
    status_timeout: float = 1.0
    confirm: bool = True
    confirm_timeout: float = 15.0
    timeout: float = 10.0


def _float(name: str, text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DeviceError(f"escpos option {name}={text!r} is not a number") from None
    if not low <= value <= high:
        raise DeviceError(f"escpos option {name}={text!r} is out of range ({low:g}..{high:g})")
    return value


def _int(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise DeviceError(f"escpos option {name}={text!r} is not a whole number") from None
    if not low <= value <= high:
        raise DeviceError(f"escpos option {name}={text!r} is out of range ({low}..{high})")
    return value


def _flag(name: str, text: str) -> bool:
    if text not in ("0", "1"):
        raise DeviceError(f"escpos option {name}={text!r}: expected 0 or 1")
    return text == "1"


def _split_host_port(text: str, url: str) -> tuple[str, int]:
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise DeviceError(f"{url!r}: unclosed [ in the IPv6 address")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise DeviceError(f"{url!r}: expected [ADDRESS]:PORT")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise DeviceError(f"{url!r} names no host (expected escpos:net:HOST:9100)")
    port = _int("port", port_text, 1, 65535) if port_text else 9100
    return host, port


def parse_escpos_url(url: str) -> PrinterTarget:
    """``escpos:net|serial|usb:...`` -> where the printer is and how to talk to it; DeviceError if malformed."""
    scheme, _, rest = url.partition(":")
    kind, sep, address = rest.partition(":")
    if scheme != "escpos" or not sep or kind not in ("net", "serial", "usb"):
        raise DeviceError(
            f"{url!r} is not an escpos URL (escpos:net:HOST:9100, escpos:serial:/dev/ttyUSB0, escpos:usb:04b8:0202)"
        )
    address, _, query = address.partition("?")
    options: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        name, _, value = (unquote(part) for part in item.partition("="))
        if name in options:
            raise DeviceError(f"escpos option {name!r} given twice in {url!r}")
        options[name] = value
    allowed = _COMMON_OPTIONS | (_SERIAL_OPTIONS if kind == "serial" else _USB_OPTIONS if kind == "usb" else set())
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise DeviceError(f"unknown escpos:{kind} option(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
    common: dict[str, Any] = {}
    if "status_timeout" in options:
        common["status_timeout"] = _float("status_timeout", options["status_timeout"], 0.01, 60)
    if "confirm" in options:
        common["confirm"] = _flag("confirm", options["confirm"])
    if "confirm_timeout" in options:
        common["confirm_timeout"] = _float("confirm_timeout", options["confirm_timeout"], 0.1, 600)
    if "timeout" in options:
        common["timeout"] = _float("timeout", options["timeout"], 0.1, 600)
    if kind == "net":
        host, port = _split_host_port(address, url)
        return PrinterTarget("net", host=host, port=port, **common)
    if kind == "serial":
        if not address:
            raise DeviceError(f"{url!r} names no serial port (expected escpos:serial:/dev/ttyUSB0)")
        serial_options: dict[str, Any] = {}
        if "baud" in options:
            serial_options["baudrate"] = _int("baud", options["baud"], 50, 4_000_000)
        if "bytesize" in options:
            serial_options["bytesize"] = _int("bytesize", options["bytesize"], 5, 8)
        if "parity" in options:
            parity = options["parity"].upper()[:1]
            if parity not in ("N", "E", "O", "M", "S"):
                raise DeviceError(f"escpos option parity={options['parity']!r}: expected N, E, O, M or S")
            serial_options["parity"] = parity
        if "stopbits" in options:
            if options["stopbits"] not in ("1", "1.5", "2"):
                raise DeviceError(f"escpos option stopbits={options['stopbits']!r}: expected 1, 1.5 or 2")
            serial_options["stopbits"] = (
                float(options["stopbits"]) if options["stopbits"] == "1.5" else int(options["stopbits"])
            )
        if "dsrdtr" in options:
            serial_options["dsrdtr"] = _flag("dsrdtr", options["dsrdtr"])
        if "xonxoff" in options:
            serial_options["xonxoff"] = _flag("xonxoff", options["xonxoff"])
        return PrinterTarget("serial", path=address, serial_options=serial_options, **common)
    vendor_text, _, product_text = address.partition(":")
    try:
        vendor, product = int(vendor_text, 16), int(product_text, 16)
    except ValueError:
        raise DeviceError(f"{url!r}: expected escpos:usb:VID:PID in hex, e.g. escpos:usb:04b8:0202") from None
    if not (0 <= vendor <= 0xFFFF and 0 <= product <= 0xFFFF):
        raise DeviceError(f"{url!r}: USB ids are 4 hex digits each")
    in_ep = _int("in_ep", options["in_ep"], 0, 255) if "in_ep" in options else 0x82
    out_ep = _int("out_ep", options["out_ep"], 0, 255) if "out_ep" in options else 0x01
    return PrinterTarget("usb", vendor=vendor, product=product, in_ep=in_ep, out_ep=out_ep, **common)


class EscposPrinter:
    """A receipt printer speaking ESC/POS; see the module's documentation for the URLs and the status logic."""

    kind = "printer"
    scheme = "escpos"

    def __init__(self, url: str, target: PrinterTarget) -> None:
        self.url = url
        self.target = target
        self._lock = threading.Lock()
        self._link: _Link | None = None  # serial / USB: kept open between jobs
        self._closed = False

    @classmethod
    def open(cls, url: str) -> EscposPrinter:
        """Check the URL; a serial or USB printer is opened now (DeviceError if absent), a network one per job."""
        printer = cls(url, parse_escpos_url(url))
        if printer.target.kind != "net":
            try:
                printer._link = printer._connect()
            except _LinkLost as exc:
                raise DeviceError(f"cannot open printer {url}: {exc}") from exc
        return printer

    @staticmethod
    def discover() -> list[str]:
        """Nothing: a network printer is not discovered, and a serial port or a USB device does not say it is
        a printer without being opened (the scanners' ``serial`` discovery lists the serial ports)."""
        return []

    def _connect(self) -> _Link:
        t = self.target
        if t.kind == "net":
            return _NetLink(t.host, t.port, t.timeout)
        if t.kind == "serial":
            return _SerialLink(t.path, t.serial_options, t.timeout)
        return _UsbLink(t.vendor, t.product, t.in_ep, t.out_ep, t.timeout)

    @contextmanager
    def _session(self) -> Iterator[_Link]:
        """A link for one operation: a new connection (network), or the open port, opened again if it broke."""
        if self._closed:
            raise PrinterError(f"printer {self.url} is closed", PrinterStatus.OFFLINE)
        link = self._link if self.target.kind != "net" else None
        if link is None:
            try:
                link = self._connect()
            except _LinkLost as exc:
                raise PrinterError(f"printer {self.url} is unreachable: {exc}", PrinterStatus.OFFLINE) from exc
            if self.target.kind != "net":
                self._link = link
        broken = False
        try:
            link.drain()
            yield link
        except (_LinkLost, PrinterError) as exc:
            broken = isinstance(exc, _LinkLost) or exc.status is PrinterStatus.OFFLINE
            raise
        finally:
            if self.target.kind == "net" or broken:
                link.close()
                if self._link is link:
                    self._link = None

    def status(self) -> PrinterStatus:
        with self._lock:
            try:
                with self._session() as link:
                    return _Answers(link).status(self.target.status_timeout)
            except PrinterError as exc:
                return exc.status
            except _LinkLost:
                return PrinterStatus.OFFLINE

    def print_job(self, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            try:
                with self._session() as link:
                    self._print_on(link, bytes(data))
            except _LinkLost as exc:
                raise PrinterError(
                    f"printer {self.url}: {exc}; the receipt was not (completely) printed", PrinterStatus.OFFLINE
                ) from exc

    def _print_on(self, link: _Link, data: bytes) -> None:
        answers = _Answers(link)
        state = answers.status(self.target.status_timeout)
        if state in _CANNOT_PRINT:
            raise PrinterError(f"printer {self.url} {_WHY[state]}: nothing was printed", state)
        link.send(data)
        if state is PrinterStatus.UNKNOWN or not self.target.confirm:
            return  # it does not answer status (or was told not to wait): handed over is all we can know
        self._confirm(answers)

    def _confirm(self, answers: _Answers) -> None:
        answers.link.send(GS_R_PAPER)
        deadline = time.monotonic() + self.target.confirm_timeout
        while True:
            answers.listen(0.1)
            if answers.confirmation is not None:
                if answers.confirmation & 0x0C:
                    raise PrinterError(
                        f"printer {self.url} ran out of paper during the job: the receipt is incomplete",
                        PrinterStatus.PAPER_OUT,
                    )
                return
            state = answers.status(self.target.status_timeout)
            if answers.confirmation is not None:
                continue
            if state in _CANNOT_PRINT:
                raise PrinterError(f"printer {self.url} {_WHY[state]} during the job: the receipt is incomplete", state)
            if time.monotonic() >= deadline:
                raise PrinterError(
                    f"printer {self.url} did not confirm the job within {self.target.confirm_timeout:g} s "
                    "(GS r unanswered; set confirm=0 in the URL for a printer that cannot confirm): "
                    "it may not have printed",
                    PrinterStatus.UNKNOWN,
                )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._link is not None:
                self._link.close()
                self._link = None

    def __enter__(self) -> EscposPrinter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
