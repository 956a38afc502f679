"""The scanner contract on the serial driver (``serial:``), over a virtual scanner on a pty pair."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from simulator.pty_scanner import VirtualScanner
from terminal import registry
from terminal.ports import CodeScanner
from tests.contract.scanner_suite import *  # noqa: F403

QUIET = 0.15  # the driver's quiet time: a line with no terminator is dropped after it


class SerialRig:
    """A real serial device path (the pty's slave side) opened through the registry."""

    def __init__(self) -> None:
        self.virtual = VirtualScanner()
        self.scanner: CodeScanner = registry.open_scanner(f"{self.virtual.url}&quiet={QUIET}")

    def send(self, text: str, symbology: str | None = None) -> None:
        self.virtual.send(text, symbology)

    def send_garbage(self, data: bytes) -> None:
        """A burst of noise, then the silence after it (a scanner does not scan again within 0.15 s)."""
        self.virtual.send_raw(data)
        time.sleep(QUIET + 0.15)

    def close(self) -> None:
        self.scanner.close()
        self.virtual.close()


@pytest.fixture
def scanner_rig() -> Iterator[SerialRig]:
    rig = SerialRig()
    yield rig
    rig.close()


def test_serial_scanner_reports_the_aim_symbology(scanner_rig: SerialRig) -> None:
    scanner_rig.send("4006381333931", "EAN13")
    code = scanner_rig.scanner.read(timeout=10)
    assert (code.text, code.symbology) == ("4006381333931", "EAN13")
