"""The X report, end of day and the offline banner (no window): what is stored is sent with progress,
the batch settled, the Z report shown and printed; nothing to settle and the refusals said in words."""

from __future__ import annotations

from terminal.results import TerminalEvent
from tests.ui.cashier_steps import sell, until
from tests.ui.conftest import App
from ui.screens.banner import Banner
from ui.screens.day_end import DayEnd
from ui.screens.menu import CashierMenu
from ui.screens.reports import XReport, report_job


def _banner(app: App) -> Banner:
    banner = app.session.bars["banner"]
    assert isinstance(banner, Banner)
    return banner


def _offline_sales(app: App, *amounts: str) -> list[str]:
    """Sales made while the host cannot be reached: approved, deferred, stored."""
    link, app.terminal.host = app.terminal.host, None
    try:
        ids = []
        for digits in amounts:
            result = sell(app, digits)
            assert result.approved
            ids.append(result.txn_id)
        return ids
    finally:
        app.terminal.host = link


def test_the_x_report_lists_the_totals_and_the_voids(app: App) -> None:
    sell(app, "2000")
    voided = sell(app, "899").txn_id
    app.terminal.void(voided)
    app.session.screen("menu", CashierMenu).x_report()
    app.settle()
    report = app.session.screen("x_report", XReport)
    text = report.report_text
    assert app.at == "x_report" and "X REPORT" in text and "BATCH OPEN - NOT SETTLED" in text
    assert "TOTAL SALES" in text and "20.00 EUR" in text
    assert "VOIDED (NOT IN THE TOTALS)" in text and "SALE visa x1" in text and "8.99 EUR" in text
    assert not report.can_print  # no printer
    report.back()
    assert app.at == "menu"


def test_report_jobs_are_plain_esc_pos() -> None:
    job = report_job("X REPORT\nNET 1.00 EUR\n")
    assert job.startswith(b"\x1b@") and job.endswith(b"\x1dV\x00") and b"X REPORT\r\nNET 1.00 EUR" in job


def test_the_banner_counts_what_is_stored_and_sends_it(app: App) -> None:
    banner = _banner(app)
    assert not banner.visible
    _offline_sales(app, "2000", "1250")
    until(app, lambda: banner.visible)
    assert banner.tone == "offline" and banner.title == "Host unreachable" and banner.can_send
    assert banner.detail.startswith("2 payments stored offline (32.50 EUR) since ")
    banner.send_now()
    assert banner.sending and banner.send_label == "Sending" and not banner.can_send
    app.settle()
    assert not banner.visible and banner.message == "2 sent" and not banner.unreachable


def test_send_now_with_the_host_still_down_says_so(app: App) -> None:
    banner = _banner(app)
    _offline_sales(app, "2000")
    app.terminal.host = None
    banner.send_now()
    app.settle()
    assert banner.visible and banner.message == "Not sent: no host link configured" and banner.can_send


def test_a_rejected_host_certificate_is_said_as_such(app: App) -> None:
    banner = _banner(app)
    banner._heard(TerminalEvent("security", None, {"error": "host certificate rejected: unknown issuer"}))
    assert banner.visible and banner.tone == "security"
    assert banner.title == "Host certificate rejected: payments are kept here, not sent"
    assert banner.detail == "No payments stored" and not banner.can_send
    sell(app, "2000")  # the host answers again
    until(app, lambda: not banner.visible)
    assert not banner.certificate_rejected


def test_a_terminal_restarted_with_payments_stored_shows_the_banner_at_once(app: App) -> None:
    _offline_sales(app, "2000")
    fresh = Banner(app.session)
    assert not fresh.visible
    fresh.start()
    app.settle()
    assert fresh.visible and fresh.detail.startswith("1 payment stored offline (20.00 EUR)")


def test_end_of_day_sends_with_progress_settles_and_shows_the_z_report(app: App) -> None:
    sell(app, "2000")
    _offline_sales(app, "1250", "500", "733")
    day_end = app.session.screen("day_end", DayEnd)
    app.session.screen("menu", CashierMenu).day_end()
    app.settle()
    assert app.at == "day_end" and day_end.stage == "ready" and day_end.to_send == 3
    assert day_end.message == "3 stored payments will be sent first" and day_end.can_start
    sent_seen: list[int] = []
    day_end.observe(lambda name, value: sent_seen.append(value) if name == "sent" else None)
    day_end.start()
    assert day_end.stage == "sending" and day_end.can_stop and not day_end.can_start
    app.settle()
    until(app, lambda: day_end.stage == "done")
    assert sent_seen[:3] == [1, 2, 3]  # counted as the host took them
    assert [step["state"] for step in day_end.steps] == ["done", "done", "done"]
    assert day_end.steps[0]["text"] == "Send stored payments: 3 of 3" and day_end.progress == 1.0
    assert "Z REPORT" in day_end.report_text and "HOST: IN BALANCE" in day_end.report_text
    assert "TOTAL SALES" in day_end.report_text and "44.83 EUR" in day_end.report_text
    assert day_end.message == "Batch 1 settled · In balance" and not day_end.error
    assert not _banner(app).visible
    assert day_end.back_label == "Done"
    day_end.back()
    assert app.at == "amount"

    day_end.open()
    day_end.start()
    app.settle()
    until(app, lambda: bool(day_end.report_text))
    assert day_end.stage == "nothing"
    assert day_end.message.startswith("Nothing to settle: no payments since the last end of day")
    assert "BATCH 1" in day_end.report_text  # the last Z report


def test_end_of_day_with_the_host_down_is_refused_in_words(app: App) -> None:
    _offline_sales(app, "1250")
    app.terminal.host = None
    day_end = app.session.screen("day_end", DayEnd)
    day_end.open()
    app.settle()
    day_end.start()
    app.settle()
    assert day_end.stage == "failed" and day_end.error
    assert day_end.message == (
        "1 payments could not be sent (no host link configured): the batch cannot be settled yet"
    )
    assert day_end.steps[0]["state"] == "failed" and day_end.start_label == "Try again"
    assert app.terminal.closed_batches() == []


def test_end_of_day_can_be_stopped_between_chunks(app: App) -> None:
    import threading

    _offline_sales(app, "100", "200")
    day_end = app.session.screen("day_end", DayEnd)
    day_end.open()
    app.settle()
    gate = threading.Event()
    app.session.run(lambda _t: gate.wait(10), lambda _r: None)  # the worker busy: the sending waits its turn
    day_end.start()
    day_end.stop()  # before the first chunk is sent
    assert day_end.message == "Stopping after the payments being sent" and not day_end.can_stop
    gate.set()
    app.settle()
    assert day_end.stage == "failed" and day_end.start_label == "Try again"
    assert day_end.message == "Stopped: 2 payments still stored; the batch was not settled"
    assert app.terminal.offline_status().queued == 2 and app.terminal.closed_batches() == []


def test_end_of_day_prints_the_z_report_when_a_printer_is_configured(app: App) -> None:
    from simulator.net_printer import VirtualNetworkPrinter
    from terminal import registry

    virtual = VirtualNetworkPrinter().start()
    device = registry.open_printer(virtual.url)
    try:
        app.terminal.printer = device
        sell(app, "2000")
        day_end = app.session.screen("day_end", DayEnd)
        day_end.open()
        day_end.start()
        app.settle()
        until(app, lambda: day_end.stage == "done")
        assert day_end.message.endswith("Z report printed") and day_end.can_print
        jobs = virtual.engine.jobs()
        assert b"Z REPORT" in jobs[-1] and b"HOST: IN BALANCE" in jobs[-1]
    finally:
        device.close()
        virtual.stop()
