"""The X report (the open batch, nothing changed) on screen and on paper; the report texts and print jobs.

The text is the terminal's (:func:`terminal.reports.render_report`): totals
per currency and scheme, then the voided payments listed apart (they are
not in the totals, and a cashier looking for a missing payment finds it
there), the payments still stored offline, and for a Z report the host's
balance.  :func:`report_text` builds either report as ``posterm report``
does; :func:`report_job` turns a text into the ESC/POS job a receipt printer
prints (plain text, then a cut), so a report needs no more of the printer
than a receipt does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from terminal.host import TotalsLine
from terminal.reports import ReportKind, render_report
from ui.session import Session
from ui.viewmodel import ViewModel

__all__ = ["XReport", "print_text", "report_job", "report_text", "sample_report"]

_WIDTH = 42
_INIT, _CUT = b"\x1b@", b"\x1dV\x00"


def report_text(terminal: Any, kind: ReportKind, batch_id: int | None = None) -> str:
    """The X report of the open batch, or the Z report of a settled batch (default: the last one).

    ValueError when there is no such batch (no settled batch for a Z report).
    """
    if kind == "Z" and batch_id is None:
        closed = terminal.closed_batches()
        if not closed:
            raise ValueError("no batch has been settled yet")
        batch_id = closed[-1]
    info = terminal.batch(batch_id)
    if info is None:
        raise ValueError(f"no batch {batch_id}")
    batch, lines = terminal.batch_lines(info["batch_id"])
    voided: dict[tuple[str, int, str], list[int]] = {}
    for row in terminal.voids(batch):
        acc = voided.setdefault((row.scheme, row.currency, row.kind), [0, 0])
        acc[0] += 1
        acc[1] += row.amount
    voids = [TotalsLine(s, c, k, n, a) for (s, c, k), (n, a) in sorted(voided.items())]
    settled = info["closed_at"] is not None
    return render_report(
        kind,
        batch,
        terminal.config.terminal_id,
        datetime.fromisoformat(info["opened_at"]),
        datetime.fromisoformat(info["closed_at"]) if kind == "Z" and settled else None,
        lines,
        saf_pending=0 if kind == "Z" else terminal.offline_status().queued,
        in_balance=info["in_balance"] if kind == "Z" else None,
        voids=voids,
        width=_WIDTH,
    )


def report_job(text: str) -> bytes:
    """``text`` as an ESC/POS job: initialise, the lines (ASCII; anything else as ``?``), feed, cut."""
    body = text.encode("ascii", "replace").replace(b"\n", b"\r\n")
    return _INIT + body + b"\r\n\r\n\r\n" + _CUT


def print_text(terminal: Any, text: str) -> bool:
    """Print ``text`` on the terminal's printer; False when none is configured (DeviceError if it fails)."""
    printer = terminal.printer
    if printer is None:
        return False
    printer.print_job(report_job(text))
    return True


def sample_report(kind: ReportKind, code: int) -> str:
    """A typical report for screenshots: two schemes, a refund, a void."""
    from datetime import UTC

    lines = [
        TotalsLine("mastercard", code, "sale", 3, 8450),
        TotalsLine("visa", code, "sale", 12, 31275),
        TotalsLine("visa", code, "refund", 1, 500),
    ]
    opened = datetime(2026, 12, 6, 7, 58, tzinfo=UTC)
    closed = datetime(2026, 12, 6, 20, 2, tzinfo=UTC) if kind == "Z" else None
    return render_report(
        kind, 41, "TERM0001", opened, closed, lines, saf_pending=0 if kind == "Z" else 2,
        in_balance=True if kind == "Z" else None, voids=[TotalsLine("visa", code, "sale", 1, 899)], width=_WIDTH,
    )  # fmt: skip


class XReport(ViewModel):
    """The open batch's totals, read on demand; "Print" puts them on paper."""

    screen = "x_report"
    title: str = ""
    report_text: str = ""
    busy: bool = False
    message: str = ""
    error: bool = False
    can_print: bool = False
    print_label: str = ""
    refresh_label: str = ""
    back_label: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._fresh = False  # just filled (opened, or a screenshot's sample): shown as is, not read again

    def _labels(self) -> None:
        tr = self.session.tr
        self.update(
            title=tr("X report"),
            print_label=tr("Print"),
            refresh_label=tr("Refresh"),
            back_label=tr("Back"),
            can_print=self.session.terminal.printer is not None and bool(self.report_text) and not self.busy,
        )

    def open(self) -> None:
        """The screen, the open batch's totals read."""
        self.refresh()
        self._fresh = True
        self.session.navigator.go(self.screen)

    def shown(self) -> None:
        if self._fresh:
            self._fresh = False
            return
        self.refresh()

    def refresh(self) -> None:
        """Read the open batch's totals again."""
        self.update(busy=True, message=self.session.tr("Loading"), error=False)
        self._labels()

        def done(text: str) -> None:
            self.update(report_text=text, busy=False, message="")
            self._labels()

        self.session.run(lambda t: report_text(t, "X"), done, self._failed, name="x report")

    def _failed(self, exc: BaseException) -> None:
        self.update(busy=False, error=True, message=self.session.describe(exc))
        self._labels()

    def print_report(self) -> None:
        if not self.can_print:
            return
        tr = self.session.tr
        text = self.report_text
        self.update(busy=True, message=tr("Printing"), error=False)
        self._labels()

        def done(_: object) -> None:
            self.update(busy=False, message=tr("Printed"))
            self._labels()

        def failed(exc: BaseException) -> None:
            self.update(busy=False, error=True, message=tr("Not printed: {why}", why=self.session.describe(exc)))
            self._labels()

        self.session.run(lambda t: print_text(t, text), done, failed, name="print x report")

    def back(self) -> None:
        self.session.navigator.go("menu" if "menu" in self.session.screens else "amount")

    def sample(self) -> None:
        self.update(report_text=sample_report("X", self.session.currency), busy=False, message="", error=False)
        self._labels()
        self.update(can_print=True)
        self._fresh = True
