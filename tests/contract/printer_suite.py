"""The receipt printer contract. Import into a test file that defines ``printer_rig`` (see rigs.py)."""

from __future__ import annotations

import pytest

from terminal.ports import PrinterError, PrinterStatus
from tests.contract.rigs import PrinterRig, Unsupported

__all__ = ["test_printer_prints_a_job", "test_printer_refuses_when_it_cannot_print", "test_printer_status"]

JOB = b"\x1b@posterm contract test\n\x1dV\x00"


def test_printer_prints_a_job(printer_rig: PrinterRig) -> None:
    printer_rig.printer.print_job(JOB)
    assert printer_rig.jobs()[-1] == JOB


def test_printer_status(printer_rig: PrinterRig) -> None:
    assert printer_rig.printer.status() in (PrinterStatus.READY, PrinterStatus.UNKNOWN)


@pytest.mark.parametrize("state", [PrinterStatus.PAPER_OUT, PrinterStatus.COVER_OPEN, PrinterStatus.OFFLINE])
def test_printer_refuses_when_it_cannot_print(printer_rig: PrinterRig, state: PrinterStatus) -> None:
    try:
        printer_rig.set_status(state)
    except Unsupported as exc:
        pytest.skip(str(exc))
    before = len(printer_rig.jobs())
    with pytest.raises(PrinterError) as raised:
        printer_rig.printer.print_job(JOB)
    assert raised.value.status is state
    assert len(printer_rig.jobs()) == before
    printer_rig.set_status(PrinterStatus.READY)
    printer_rig.printer.print_job(JOB)
    assert printer_rig.jobs()[-1] == JOB
