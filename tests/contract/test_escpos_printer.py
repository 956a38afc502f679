"""The printer contract on the ESC/POS driver (``escpos:``).

Three worlds: the virtual network printer (``escpos:net:`` on a loopback TCP
port), a virtual serial printer on a pty pair (``escpos:serial:``, the same
printer engine answering on the pty's master side), and a real printer when
one is named by ``POSTERM_TEST_PRINTER`` (``escpos:usb:04b8:0202``,
``escpos:serial:/dev/ttyUSB0``, ...); without it that case skips, saying so.
"""

from __future__ import annotations

import contextlib
import os
import threading
import tty
from collections.abc import Iterator

import pytest

from drivers import preview
from simulator.net_printer import JobStream, PrinterEngine, VirtualNetworkPrinter
from terminal import registry
from terminal.ports import PrinterStatus, ReceiptPrinter
from tests.contract.printer_suite import *  # noqa: F403
from tests.contract.rigs import Unsupported

FAST = "status_timeout=0.5&confirm_timeout=5"


class NetRig:
    def __init__(self) -> None:
        self.virtual = VirtualNetworkPrinter().start()
        self.printer: ReceiptPrinter = registry.open_printer(f"{self.virtual.url}?{FAST}")

    def set_status(self, status: PrinterStatus) -> None:
        self.virtual.set_status(status)

    def jobs(self) -> list[bytes]:
        self.virtual.wait_idle()
        return self.virtual.jobs()

    def close(self) -> None:
        self.printer.close()
        self.virtual.stop()


class PtyPrinter:
    """The virtual printer's engine on the master side of a pty; a job ends with its cut (GS V)."""

    def __init__(self) -> None:
        self.engine = PrinterEngine()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.device_path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import select

        stream: JobStream = self.engine.new_job()
        pending = bytearray()
        while not self._stop.is_set():
            readable, _, _ = select.select([self._master], [], [], 0.05)
            if not readable:
                continue
            try:
                pending += os.read(self._master, 65536)
            except OSError:
                return
            cut_end = 0
            for start, end in preview.iter_commands(pending):
                if pending[start : start + 2] == b"\x1dV":
                    cut_end = end
            piece, rest = (bytes(pending[:cut_end]), bytes(pending[cut_end:])) if cut_end else (b"", bytes(pending))
            replies = stream.feed(piece) if piece else b""
            if cut_end:
                stream.finish()
                stream = self.engine.new_job()
            replies += stream.feed(rest)
            pending.clear()
            if replies:
                os.write(self._master, replies)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class SerialRig:
    def __init__(self) -> None:
        self.virtual = PtyPrinter()
        self.printer: ReceiptPrinter = registry.open_printer(f"escpos:serial:{self.virtual.device_path}?{FAST}")

    def set_status(self, status: PrinterStatus) -> None:
        self.virtual.engine.set_status(status)

    def jobs(self) -> list[bytes]:
        return self.virtual.engine.jobs()

    def close(self) -> None:
        self.printer.close()
        self.virtual.close()


class RecordingPrinter:
    """A real printer, remembering the jobs it accepted (what came out is for the person watching it)."""

    def __init__(self, printer: ReceiptPrinter) -> None:
        self.inner = printer
        self.url = printer.url
        self.accepted: list[bytes] = []

    def print_job(self, data: bytes) -> None:
        self.inner.print_job(data)
        self.accepted.append(data)

    def status(self) -> PrinterStatus:
        return self.inner.status()

    def close(self) -> None:
        self.inner.close()


class HardwareRig:
    def __init__(self, url: str) -> None:
        self.recorder = RecordingPrinter(registry.open_printer(url))
        self.printer: ReceiptPrinter = self.recorder

    def set_status(self, status: PrinterStatus) -> None:
        raise Unsupported("a real printer's paper and cover are changed by hand, not by the test")

    def jobs(self) -> list[bytes]:
        return self.recorder.accepted

    def close(self) -> None:
        self.printer.close()


@pytest.fixture(params=["net", "serial-pty", "hardware"])
def printer_rig(request: pytest.FixtureRequest) -> Iterator[NetRig | SerialRig | HardwareRig]:
    rig: NetRig | SerialRig | HardwareRig
    if request.param == "net":
        rig = NetRig()
    elif request.param == "serial-pty":
        rig = SerialRig()
    else:
        url = os.environ.get("POSTERM_TEST_PRINTER")
        if not url:
            pytest.skip(
                "no printer attached: set POSTERM_TEST_PRINTER to its URL "
                "(escpos:usb:04b8:0202, escpos:serial:/dev/ttyUSB0, escpos:net:HOST:9100) to run this on it"
            )
        rig = HardwareRig(url)
    yield rig
    rig.close()
