"""Every cashier screen (and the banner) has a sample for the screenshots, in both languages, and a view."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui.conftest import App
from ui.screens.registry import BARS, SCREENS
from ui.views.base import class_name

CASHIER = ["menu", "journal", "receipt", "refund", "supervisor_pin", "x_report", "day_end"]
VIEWS = Path(__file__).resolve().parents[2] / "ui" / "views"


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_every_sample_fills_its_screen(app: App, language: str) -> None:
    app.session.tr.set_language(language)
    for name in CASHIER:
        vm = app.session.screens[name]
        vm.sample()
        state = vm.state()
        shown = [v for v in state.values() if isinstance(v, str) and v]
        assert len(shown) >= 3, (name, state)
    banner = app.session.bars["banner"]
    banner.sample()
    assert banner.state()["visible"] and banner.state()["detail"]
    if language == "zh_CN":
        assert app.session.screens["menu"].state()["day_end_label"] == "日结"
        assert banner.state()["title"] == "无法连接主机"


def test_the_samples_show_what_they_say() -> None:
    # (typical content: a receipt with its QR code, a report, a list)
    import tempfile

    from terminal.bootstrap import open_terminal

    with tempfile.TemporaryDirectory() as scratch:
        terminal = open_terminal(Path(scratch), reader_url="sim:card=visa-qvsdc-online", host="memory")
        application = App(terminal)
        try:
            receipt = application.session.screens["receipt"]
            receipt.sample()
            assert "APPROVED" in receipt.state()["receipt_text"] and receipt.state()["qr_rows"]
            report = application.session.screens["x_report"]
            report.sample()
            assert "VOIDED (NOT IN THE TOTALS)" in report.state()["report_text"]
            journal = application.session.screens["journal"]
            journal.sample()
            assert len(journal.state()["rows"]) == 6
        finally:
            application.close()


def test_every_cashier_screen_and_bar_has_its_kv_rule() -> None:
    rules = "\n".join(path.read_text(encoding="utf-8") for path in VIEWS.glob("*.kv"))
    for spec in SCREENS:
        if spec.name in CASHIER:
            assert f"<{class_name(spec.name)}@VmScreen>:" in rules, spec.name
    for spec in BARS:
        assert f"<{class_name(spec.name, 'Bar')}@VmBar>:" in rules, spec.name
