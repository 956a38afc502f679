"""What a contract suite needs from an adapter under test: the device and a way to steer its world.

Each adapter's contract test file (``tests/contract/test_<adapter>.py``)
defines a fixture ``reader_rig`` / ``scanner_rig`` / ``printer_rig`` yielding
one of these, then imports the suite's tests (``from tests.contract.reader_suite
import *``).  A rig method that the adapter's world cannot do raises
:class:`Unsupported` with the reason, and the test skips saying so (a
hardware-only case on a machine without the hardware, for instance).
"""

from __future__ import annotations

from typing import Protocol

from terminal.ports import CardReader, CodeScanner, PrinterStatus, ReceiptPrinter

__all__ = ["PrinterRig", "ReaderRig", "ScannerRig", "Unsupported"]


class Unsupported(Exception):
    """This adapter's world cannot do that; the message says why (the test skips with it)."""


class ReaderRig(Protocol):
    reader: CardReader

    def insert(self, profile: str) -> None:
        """Put a card of this simulator profile in the field (``visa-qvsdc-online``, ...)."""

    def insert_two(self, first: str, second: str) -> None:
        """Two cards in the field at once."""

    def remove(self) -> None:
        """Take the card(s) away."""

    def remove_after(self, exchanges: int) -> None:
        """The card leaves the field after answering ``exchanges`` more commands."""

    def unplug(self) -> None:
        """The reader goes away."""


class ScannerRig(Protocol):
    scanner: CodeScanner

    def send(self, text: str, symbology: str | None = None) -> None:
        """The scanner reads this code (a serial scanner sends it, a camera sees it)."""

    def send_garbage(self, data: bytes) -> None:
        """Bytes that are no code: noise, a partial line, an unreadable frame."""


class PrinterRig(Protocol):
    printer: ReceiptPrinter

    def set_status(self, status: PrinterStatus) -> None:
        """The printer's state (paper out, cover open, offline, ready)."""

    def jobs(self) -> list[bytes]:
        """What the printer received and printed, job by job."""
