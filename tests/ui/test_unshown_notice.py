"""The application's first screen tells the payments made and never shown before the last stop (no window).

A payment committed by a process that died before it showed it is made
here with the facade alone (which does not mark what it returns), as the
killed process left it; the application then starts on the same data
directory.  What the screens show, they mark: a sale seen on the result
screen is not told again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.net_printer import VirtualNetworkPrinter
from terminal import registry
from terminal.bootstrap import open_terminal
from tests.ui.conftest import App
from ui.screens.sale import AmountEntry, PaymentOutcome
from ui.screens.unshown import UnshownNotice

ONLINE = "sim:card=visa-qvsdc-online"


def _left_unshown(data_dir: Path, *amounts: int) -> list[str]:
    """Payments made as a process killed before it showed them leaves them."""
    terminal = open_terminal(data_dir, reader_url=ONLINE, host="memory")
    try:
        return [terminal.sale(amount, 978).txn_id for amount in amounts]
    finally:
        terminal.close()


def _start(data_dir: Path, *, kiosk: bool = False) -> App:
    app = App(open_terminal(data_dir, reader_url=ONLINE, host="memory"), kiosk=kiosk)
    app.session.bars["unshown"].start()  # type: ignore[attr-defined]  # what the application does at start-up
    app.settle()
    return app


@pytest.fixture
def printer() -> Iterator[VirtualNetworkPrinter]:
    with VirtualNetworkPrinter() as virtual:
        yield virtual


def test_a_payment_nobody_saw_is_on_the_first_screen_until_ok(data_dir: Path) -> None:
    made = _left_unshown(data_dir, 1234, 1051)
    app = _start(data_dir)
    try:
        notice = app.session.bars["unshown"]
        assert isinstance(notice, UnshownNotice)
        assert notice.visible and notice.title == "Not shown: the terminal stopped before it showed 2 payments"
        assert notice.lines[0].startswith("Sale 12.34 EUR approved at ")
        assert notice.lines[1].startswith("Sale 10.51 EUR declined at ")
        assert notice.can_receipt
        assert [r.result.txn_id for r in notice.records] == made
        notice.ok()
        app.settle()
        assert not notice.visible
        assert app.terminal.unshown_payments() == []
        assert {app.terminal.transaction(t).shown_by for t in made} == {"ui"}  # type: ignore[union-attr]
    finally:
        app.close()
    again = _start(data_dir)
    try:
        assert not again.session.bars["unshown"].visible  # type: ignore[attr-defined]
    finally:
        again.close()


def test_its_receipt_is_printed_again_and_said_so(data_dir: Path, printer: VirtualNetworkPrinter) -> None:
    (txn_id,) = _left_unshown(data_dir, 2000)
    app = App(open_terminal(data_dir, reader_url=ONLINE, host="memory"))
    try:
        app.terminal.printer = registry.open_printer(printer.url)
        notice = app.session.bars["unshown"]
        assert isinstance(notice, UnshownNotice)
        notice.start()
        app.settle()
        assert notice.lines == (notice.lines[0],) and notice.lines[0].endswith(", receipt printed")
        printer.wait_idle()
        (job,) = printer.engine.jobs()
        assert txn_id.encode() in job
    finally:
        app.close()


def test_in_chinese(data_dir: Path) -> None:
    _left_unshown(data_dir, 1234)
    app = _start(data_dir)
    try:
        app.session.tr.set_language("zh_CN")
        notice = app.session.bars["unshown"]
        assert notice.title == "未显示：终端在显示这笔交易前停止了"  # type: ignore[attr-defined]
        assert "消费 €12.34 交易成功" in notice.lines[0]  # type: ignore[attr-defined]
    finally:
        app.close()


def test_a_result_seen_on_the_screen_is_not_told_again(data_dir: Path) -> None:
    app = _start(data_dir)
    try:
        amount = app.session.screen("amount", AmountEntry)
        for key in "777":
            amount.press(key)
        amount.charge()
        app.settle()
        result = app.session.screen("result", PaymentOutcome)
        assert result.approved
        assert app.terminal.unshown_payments() == []
        assert app.terminal.transaction(result.txn_id).shown_by == "ui"  # type: ignore[union-attr]
    finally:
        app.close()


def test_the_kiosk_shows_it_too(data_dir: Path) -> None:
    _left_unshown(data_dir, 450)
    app = _start(data_dir, kiosk=True)
    try:
        notice = app.session.bars["unshown"]
        assert notice.visible and notice.lines[0].startswith("Sale 4.50 EUR approved at ")  # type: ignore[attr-defined]
        assert not notice.can_receipt  # type: ignore[attr-defined]  # no cashier's receipt screen at a kiosk
    finally:
        app.close()
