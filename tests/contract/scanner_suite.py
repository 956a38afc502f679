"""The code scanner contract. Import into a test file that defines ``scanner_rig`` (see rigs.py)."""

from __future__ import annotations

import threading

import pytest

from terminal.ports import CancelToken, NoCodeError, WaitCancelled
from tests.contract.rigs import ScannerRig, Unsupported

__all__ = [
    "test_scanner_cancel",
    "test_scanner_garbage_is_dropped",
    "test_scanner_reads_a_code",
    "test_scanner_times_out",
]


def test_scanner_reads_a_code(scanner_rig: ScannerRig) -> None:
    scanner_rig.send("POSTERM-TEST-0001", "QRCODE")
    code = scanner_rig.scanner.read(timeout=10)
    assert code.text == "POSTERM-TEST-0001"
    assert code.source == scanner_rig.scanner.url


def test_scanner_garbage_is_dropped(scanner_rig: ScannerRig) -> None:
    try:
        scanner_rig.send_garbage(b"\x00\xff\x13garbage-without-end")
    except Unsupported as exc:
        pytest.skip(str(exc))
    scanner_rig.send("AFTER-GARBAGE")
    assert scanner_rig.scanner.read(timeout=10).text == "AFTER-GARBAGE"


def test_scanner_times_out(scanner_rig: ScannerRig) -> None:
    with pytest.raises(NoCodeError):
        scanner_rig.scanner.read(timeout=0.3)


def test_scanner_cancel(scanner_rig: ScannerRig) -> None:
    token = CancelToken()
    threading.Timer(0.2, token.cancel).start()
    with pytest.raises(WaitCancelled):
        scanner_rig.scanner.read(timeout=30, cancel=token)
