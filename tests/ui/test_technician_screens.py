"""The technician's screens without a window: the PIN (wrong tries, the lock and its time left), the menu,
the diagnostics with each verdict, devices, host echo and the offline queue, parameters, the log, the bundle.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from terminal.bootstrap import open_terminal
from terminal.devices import LazyPrinter, load_devices
from terminal.diagnostics import TEST_NAMES
from terminal.host import HostUnreachable
from terminal.logfile import open_log_handler
from terminal.pins import PinStore
from tests.ui.conftest import App
from tests.ui.test_kiosk_screens import until
from tests.unit.test_host_link_parameters import download
from ui.screens.technician import TechDiagnostics, TechnicianMenu, TechnicianPin, ask_for_technician
from ui.screens.technician_tools import TechBundle, TechDevices, TechHost, TechLog, TechParams, removable_folders

PIN = "4826"


@pytest.fixture
def tech(app: App) -> App:
    """The cashier's application, its technician PIN set."""
    PinStore(app.session.data_dir).set("technician", PIN)
    return app


def enter(app: App, pin: str) -> TechnicianPin:
    vm = app.session.screen("technician_pin", TechnicianPin)
    for key in pin:
        vm.press(key)
    vm.submit()
    app.settle()
    return vm


def test_the_pin_opens_the_menu_and_cancel_goes_back(tech: App) -> None:
    ask_for_technician(tech.session)
    pin = tech.session.screen("technician_pin", TechnicianPin)
    assert tech.at == "technician_pin" and pin.purpose == "menu" and not pin.can_submit
    for key in "48":
        pin.press(key)
    pin.press("back")
    assert pin.dots == "●" and not pin.can_submit
    pin.cancel()
    assert tech.at == "amount"  # where it was asked from
    ask_for_technician(tech.session)
    enter(tech, PIN)
    assert tech.at == "technician"
    menu = tech.session.screen("technician", TechnicianMenu)
    assert [label for _, label in menu.items] == [
        "Diagnostics", "Devices", "Host and offline queue", "Parameters", "Log", "Support bundle",
    ]  # fmt: skip
    assert not menu.can_leave  # the cashier's application is closed as any window
    menu.close()
    assert tech.at == "menu"


def test_the_cashiers_menu_leads_to_the_technician(tech: App) -> None:
    from ui.screens.menu import CashierMenu

    cashier = tech.session.screen("menu", CashierMenu)
    tech.session.navigator.go("menu")
    assert cashier.technician_label == "Technician"
    cashier.technician()
    pin = tech.session.screen("technician_pin", TechnicianPin)
    assert tech.at == "technician_pin" and pin.purpose == "menu"
    pin.cancel()
    assert tech.at == "menu"
    cashier.technician()
    enter(tech, PIN)
    assert tech.at == "technician"


def test_five_wrong_tries_lock_it_and_the_time_left_counts_down(tech: App) -> None:
    pin = tech.session.screen("technician_pin", TechnicianPin)
    ask_for_technician(tech.session)
    for tries_left in (4, 3, 2, 1):
        enter(tech, "1357")
        assert pin.message == f"Wrong PIN: {tries_left} tries left" and not pin.locked
    enter(tech, "1357")
    assert pin.locked and not pin.can_submit
    assert pin.message == "Locked after 5 wrong tries: try again in 5 min 0 s"
    until(tech, lambda: "4 min 59 s" in pin.message, timeout=5)  # a second later
    for key in PIN:
        pin.press(key)
    assert not pin.can_submit  # not even the right one while locked
    pin.submit()
    tech.settle()
    assert tech.at == "technician_pin"
    tech.session.tr.set_language("zh_CN")
    assert pin.message.startswith("连续 5 次密码错误已锁定：请在 4 分")


def test_a_lock_found_when_checking_shows_its_time(tech: App) -> None:
    store = PinStore(tech.session.data_dir)
    for _ in range(4):
        store.check("technician", "1357")
    with pytest.raises(Exception, match="locked"):
        store.check("technician", "1357")  # locked by another application (the CLI, another screen)
    ask_for_technician(tech.session)
    pin = enter(tech, PIN)
    assert pin.locked and ("try again in 4 min" in pin.message or "try again in 5 min" in pin.message)


def test_no_technician_pin_set_says_how_to_set_one(app: App) -> None:
    ask_for_technician(app.session)
    pin = enter(app, PIN)
    assert app.at == "technician_pin"
    assert pin.message == "No technician PIN is set: set it on the terminal with 'posterm pin set technician'"


def test_diagnostics_show_each_verdict_as_it_comes(tech: App) -> None:
    diag = tech.session.screen("tech_diagnostics", TechDiagnostics)
    assert [row["status"] for row in diag.rows] == ["wait"] * len(TEST_NAMES)
    seen_progress: list[str] = []
    diag.observe(lambda name, value: seen_progress.append(value) if name == "progress_text" and value else None)
    diag.start()
    assert diag.running and diag.rows[0]["status"] == "run" and diag.progress_text == "Testing 1 of 8: Card reader"
    until(tech, lambda: not diag.running, timeout=60)
    rows = {row["name"]: row for row in diag.rows}
    assert rows["reader"]["status"] == "pass" and rows["reader"]["status_text"] == "PASS"
    assert rows["scanner"]["status"] == "skip" and rows["printer"]["status"] == "skip"
    assert rows["host_link"]["status"] == "pass" and "echo answered" in rows["host_link"]["reason"]
    assert rows["journal"]["status"] == "pass" and rows["configuration"]["status"] == "pass"
    assert all(row["reason"] for row in diag.rows)
    assert diag.progress == 1.0 and diag.summary
    assert seen_progress[-1] == "Testing 8 of 8: Keys" and len(seen_progress) == 8
    assert tech.terminal.sale(100, 978).approved  # the terminal's reader is usable again


def test_diagnostics_cancel_stops_the_card_wait_and_the_rest(tech: App) -> None:
    from terminal import registry

    tech.terminal.reader = registry.open_reader("sim:card=visa-qvsdc-online?present-after=30")
    diag = tech.session.screen("tech_diagnostics", TechDiagnostics)
    diag.start()
    until(tech, lambda: bool(diag.prompt), timeout=20)
    assert "card" in diag.prompt.lower()
    diag.cancel()
    until(tech, lambda: not diag.running, timeout=20)
    assert diag.results["reader"].status == "fail" and set(diag.results) == {"reader"}


def test_devices_listed_and_chosen(tech: App) -> None:
    devices = tech.session.screen("tech_devices", TechDevices)
    devices.shown()
    tech.settle()
    assert devices.kind == "reader" and devices.configured == "sim:card=visa-qvsdc-online"
    assert "sim:card=visa-qvsdc-online" in devices.attached  # the simulator's profiles, as the reader is one
    devices.show_kind("printer")
    assert devices.configured == "none" and devices.attached == ()
    devices.type_url("escpos:net:127.0.0.1:9")
    devices.use_typed()
    tech.settle()
    assert isinstance(tech.terminal.printer, LazyPrinter) and tech.terminal.printer.url == "escpos:net:127.0.0.1:9"
    assert load_devices(tech.session.data_dir).printer == "escpos:net:127.0.0.1:9"
    assert devices.configured == "escpos:net:127.0.0.1:9" and devices.status_text.startswith("does not answer")
    devices.type_url("bogus:thing")
    devices.use_typed()
    tech.settle()
    assert devices.message.startswith("Setting the device failed: ") and "bogus" in devices.message
    devices.choose(None)
    tech.settle()
    assert tech.terminal.printer is None and load_devices(tech.session.data_dir).printer is None


def test_host_echo_and_the_offline_queue_sent(tech: App) -> None:
    host = tech.session.screen("tech_host", TechHost)
    host.echo()
    tech.settle()
    assert host.echo_passed is True and host.round_trip_text.startswith("Round trip: ")
    real = tech.terminal.host
    tech.terminal.host = None  # the host away: the payment is stored
    tech.terminal.sale(1200, 978)
    tech.terminal.host = real
    host.shown()
    tech.settle()
    assert host.queue_lines[0] == "Waiting to be sent: 1" and host.can_send
    host.send_now()
    tech.settle()
    assert host.message.startswith("Sent: 1 accepted") and host.queue_lines[0] == "Waiting to be sent: 0"
    assert not host.can_send


def test_host_echo_failing_says_why(tech: App) -> None:
    class Down:
        def echo(self, *, force: bool = False) -> float:
            raise HostUnreachable("connection refused")

    tech.terminal.host = Down()  # type: ignore[assignment]
    host = tech.session.screen("tech_host", TechHost)
    host.echo()
    tech.settle()
    assert host.echo_passed is False and "unreachable" in host.echo_text and host.round_trip_text == ""


class ParameterLink:
    def __init__(self, real: Any, downloads: list[dict[str, Any]]) -> None:
        self.real, self.downloads = real, downloads
        self.terminal_id: str | None = None
        self.merchant_id: str | None = None

    def fetch_parameters(self, have: int | None) -> dict[str, Any] | None:
        return self.downloads.pop(0) if self.downloads else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_parameters_download_and_roll_back_asked_twice(tech: App) -> None:
    params = tech.session.screen("tech_params", TechParams)
    params.shown()
    tech.settle()
    assert params.version_text == "The shipped configuration is in force" and not params.can_rollback
    params.download()
    tech.settle()
    assert params.message.startswith("Parameter download failed: ") and "offers no parameter download" in params.message
    tech.terminal.host = ParameterLink(tech.terminal.host, [download(1, merchant_name="One"), download(2)])
    params.download()
    tech.settle()
    params.download()
    tech.settle()
    assert params.message == "Parameters version 2 downloaded and in force"
    assert params.version_text == "Parameters version 2 in force" and params.kept_text == "Version 1 kept for rollback"
    params.download()
    tech.settle()
    assert params.message == "The parameters are up to date"
    params.rollback()
    assert params.confirming and params.rollback_label == "Press again to roll back"
    tech.settle()
    assert params.version_text == "Parameters version 2 in force"  # nothing yet
    params.rollback()
    tech.settle()
    assert params.message == "Parameters version 1 is in force again" and not params.confirming
    assert tech.terminal.settings.merchant_name == "One"  # the running terminal took it


def test_the_log_tail_is_masked(tech: App) -> None:
    handler = open_log_handler(tech.session.data_dir)
    logger = logging.getLogger("tests.technician")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("card 4761739001010010 read")
    finally:
        logger.removeHandler(handler)
        handler.close()
    log = tech.session.screen("tech_log", TechLog)
    log.shown()
    tech.settle()
    assert "476173******0010" in log.text and "4761739001010010" not in log.text


def test_the_log_when_there_is_none(tech: App) -> None:
    log = tech.session.screen("tech_log", TechLog)
    log.read()
    tech.settle()
    assert log.text == "The log is empty"


@pytest.fixture
def media(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "media"
    (root / "tech" / "POSTERM-USB").mkdir(parents=True)
    (root / "tech" / "OTHER").mkdir()
    yield root


def test_removable_folders_are_the_labels_below_each_user(media: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    (mnt / "usb").mkdir(parents=True)
    assert removable_folders((str(media), str(mnt), str(tmp_path / "absent"))) == [
        str(media / "tech" / "OTHER"), str(media / "tech" / "POSTERM-USB"), str(mnt / "usb"),
    ]  # fmt: skip


def test_the_support_bundle_is_written_to_the_usb_stick(tech: App, media: Path) -> None:
    bundle = tech.session.screen("tech_bundle", TechBundle)
    bundle.roots = (str(media),)
    bundle.shown()
    tech.settle()
    assert bundle.folders == (str(media / "tech" / "OTHER"), str(media / "tech" / "POSTERM-USB"))
    bundle.choose(str(media / "tech" / "POSTERM-USB"))
    bundle.write()
    tech.settle(timeout=60)
    written = Path(bundle.written)
    assert written.parent == media / "tech" / "POSTERM-USB" and written.name.startswith("posterm-support-")
    assert bundle.message.startswith(f"Written: {written} (")
    with zipfile.ZipFile(written) as archive:
        assert "diagnostics.json" in archive.namelist()
    bundle.choose(str(media / "nowhere"))
    bundle.write()
    assert bundle.message == "Choose a folder that exists first"


def test_no_media_says_what_to_do(tech: App, tmp_path: Path) -> None:
    bundle = tech.session.screen("tech_bundle", TechBundle)
    bundle.roots = (str(tmp_path / "none"),)
    bundle.look()
    tech.settle()
    assert bundle.folders == () and bundle.hint.startswith("Plug in a USB stick")


def test_every_technician_screen_has_a_sample_in_both_languages(data_dir: Path) -> None:
    terminal = open_terminal(data_dir, reader_url="sim:card=visa-qvsdc-online", host="memory")
    app = App(terminal, kiosk=True)
    try:
        for language in ("en", "zh_CN"):
            app.session.tr.set_language(language)
            for name, vm in app.screens.items():
                vm.sample()
                state = vm.state()
                assert state, name
        assert app.session.screen("tech_diagnostics", TechDiagnostics).rows[0]["status_text"] == "通过"
    finally:
        app.close()
