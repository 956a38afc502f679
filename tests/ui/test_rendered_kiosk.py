"""The kiosk really rendering (SDL offscreen): it refuses to close without the technician PIN and closes with
it; the technician menu runs every diagnostic test and shows each verdict; a device out of order and back.

Each step is checked on the view model and on the window drawn (the texts of its widgets, a non-blank
frame).  The application runs in a child process (Kivy owns its process); what the test must change
while it runs is done in that process (``tests.ui.kiosk_rig``), or asked of this one through files.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

from PIL import Image

from terminal.devices import set_device
from terminal.pins import PinStore
from tests.integration.pcscd_rig import PcscdRig, pcscd, vpcd  # noqa: F401
from ui.scripted import run_script

PIN = "4826"


def _not_blank(png: str) -> bool:
    colours = Image.open(png).convert("RGB").getcolors(maxcolors=1 << 16)
    return colours is None or len(colours) > 3


def _kiosk_dir(tmp_path: Path, **settings: object) -> Path:
    data_dir = tmp_path / "terminal"
    data_dir.mkdir()
    PinStore(data_dir).set("technician", PIN)
    (data_dir / "kiosk.json").write_text(json.dumps({"device_poll_seconds": 1} | settings), encoding="utf-8")
    return data_dir


def _keys(pin: str) -> list[dict[str, Any]]:
    return [{"touch": f"key_{digit}"} for digit in pin]


def _step(report: dict[str, Any], screen: str, index: int = 0) -> dict[str, Any]:
    """The ``index``-th step recorded on ``screen``."""
    found: dict[str, Any] = [s for s in report["steps"] if s["screen"] == screen][index]
    return found


def test_the_kiosk_refuses_to_close_without_the_technician_pin(tmp_path: Path) -> None:
    script = {
        "data_dir": str(_kiosk_dir(tmp_path)),
        "reader": "sim:card=visa-qvsdc-online",
        "host": "memory",
        "kiosk": True,
        "steps": [
            {"wait": "idle"},
            {"close": True},  # the window's close button: refused, the PIN asked for
            {"key": "escape"},  # Escape: the same
            *_keys("1357"),
            {"touch": "ok"},
            {"wait": "technician_pin", "state": {"message": "Wrong PIN: 4 tries left"}},
            {"touch": "cancel"},  # a customer who tried gets the idle screen back
            {"wait": "idle"},
            {"close": True},
            *_keys(PIN),
            {"touch": "ok"},
            {"sleep": 5},  # never reached: the application ends with the right PIN
        ],
    }
    report = run_script(script, tmp_path / "run")
    assert report["error"] is None, report
    assert report["exit_status"] == 0 and report["completed"] is False  # it ended itself, after the PIN
    assert report["window"]["borderless"] is True
    steps = report["steps"]
    assert steps[0]["screen"] == "idle" and "Welcome" in steps[0]["texts"] and "欢迎" in steps[0]["texts"]
    asked = steps[1]
    assert asked["screen"] == "technician_pin" and asked["state"]["purpose"] == "exit"
    assert "Enter the technician PIN to leave the kiosk" in asked["texts"]
    assert steps[2]["screen"] == "technician_pin"  # Escape did not close it either
    wrong = steps[8]
    assert wrong["state"]["message"] == "Wrong PIN: 4 tries left" and "Wrong PIN: 4 tries left" in wrong["texts"]
    assert steps[10]["screen"] == "idle"
    assert steps[11]["screen"] == "technician_pin"
    assert all(s["step"] != {"sleep": 5} for s in steps)
    for step in steps:
        assert _not_blank(step["png"]), step["png"]


def test_the_technician_menu_runs_every_diagnostic(tmp_path: Path) -> None:
    script = {
        "data_dir": str(_kiosk_dir(tmp_path)),
        "reader": "sim:card=visa-qvsdc-online",
        "host": "memory",
        "kiosk": True,
        "steps": [
            {"wait": "idle"},
            {"touch": "corner"},
            {"touch": "corner"},
            {"touch": "corner"},  # the third tap in the corner asks for the PIN
            *_keys(PIN),
            {"touch": "ok"},
            {"wait": "technician"},
            {"touch": "tech_diagnostics"},
            {"wait": "tech_diagnostics"},
            {"touch": "run"},
            {"wait": "tech_diagnostics", "state": {"running": False}, "timeout": 90},
            {"language": "zh_CN"},
            {"touch": "back"},
            {"wait": "technician"},
            {"touch": "close"},
            {"wait": "idle"},
        ],
    }
    report = run_script(script, tmp_path / "run", timeout=180)
    assert report["error"] is None, report
    assert report["completed"] is True
    assert _step(report, "technician_pin")["state"]["purpose"] == "menu"
    menu = _step(report, "technician")
    assert {"Diagnostics", "Devices", "Host and offline queue", "Parameters", "Log", "Support bundle"} <= set(
        menu["texts"]
    )
    assert "Leave the kiosk" in menu["texts"]
    done = [s for s in report["steps"] if s["screen"] == "tech_diagnostics"][-2]  # the run's end, in English
    rows = {row["name"]: row for row in done["state"]["rows"]}
    assert set(rows) == {"reader", "scanner", "printer", "host_link", "saf_queue", "journal", "configuration", "keys"}
    assert all(row["status"] in ("pass", "fail", "skip") and row["reason"] for row in rows.values())
    assert rows["reader"]["status"] == "pass" and rows["host_link"]["status"] == "pass"
    assert rows["scanner"]["status"] == "skip" and rows["printer"]["status"] == "skip"
    for row in rows.values():  # each verdict drawn, in words, with its reason
        assert row["label"] in done["texts"] and row["status_text"] in done["texts"] and row["reason"] in done["texts"]
    chinese = [s for s in report["steps"] if s["screen"] == "tech_diagnostics"][-1]
    assert "读卡器" in chinese["texts"] and "通过" in chinese["texts"] and "跳过" in chinese["texts"]
    assert report["steps"][-1]["screen"] == "idle"
    for step in report["steps"]:
        assert _not_blank(step["png"]), step["png"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_printer_out_of_order_and_back(tmp_path: Path) -> None:
    port = _free_port()
    data_dir = _kiosk_dir(tmp_path)
    set_device(data_dir, "printer", f"escpos:net:127.0.0.1:{port}")
    line = "Out of order: receipt printer / 暂停服务：收据打印机"
    script = {
        "data_dir": str(data_dir),
        "reader": "sim:card=visa-qvsdc-online",
        "host": "memory",
        "kiosk": True,
        "steps": [
            {"call": "tests.ui.kiosk_rig:start_printer", "args": [port]},
            {"wait": "idle"},
            {"sleep": 2.5},  # the watch has looked: the printer answers
            {"call": "tests.ui.kiosk_rig:stop_printer"},
            {"wait": "idle", "state": {"notices": [line]}, "timeout": 20},
            {"call": "tests.ui.kiosk_rig:start_printer", "args": [port]},
            {"wait": "idle", "state": {"notices": []}, "timeout": 20},
        ],
    }
    report = run_script(script, tmp_path / "run")
    assert report["error"] is None, report
    steps = report["steps"]
    assert steps[2]["state"]["notices"] == [] and line not in steps[2]["texts"]
    assert steps[4]["state"]["notices"] == [line] and line in steps[4]["texts"]
    assert steps[6]["state"]["notices"] == [] and line not in steps[6]["texts"]
    assert all(s["screen"] == "idle" for s in steps[1:])  # payments go on without a printer


def test_the_card_reader_out_of_order_and_back(tmp_path: Path, vpcd: PcscdRig) -> None:  # noqa: F811
    """The tests' pcscd (this process's) stops and starts again while the kiosk runs on its reader."""
    asks = tmp_path / "asks"
    asks.mkdir()
    stop = threading.Event()

    def answer() -> None:  # what the kiosk's process asks this one for
        actions = {"unplug": vpcd.unplug, "replug": vpcd.replug}
        while not stop.is_set():
            for name, action in actions.items():
                request, done = asks / f"{name}.request", asks / f"{name}.done"
                if request.exists() and not done.exists():
                    action()
                    done.write_text("", encoding="utf-8")
            stop.wait(0.05)

    helper = threading.Thread(target=answer, daemon=True)
    helper.start()
    script = {
        "data_dir": str(_kiosk_dir(tmp_path)),
        "reader": vpcd.url,
        "host": "memory",
        "kiosk": True,
        "steps": [
            {"wait": "idle"},
            {"sleep": 2.5},
            {"call": "tests.ui.kiosk_rig:ask", "args": [str(asks), "unplug"]},
            {"wait": "out_of_order", "timeout": 20},
            {"language": "zh_CN"},
            {"call": "tests.ui.kiosk_rig:ask", "args": [str(asks), "replug"]},
            {"wait": "idle", "timeout": 20},
        ],
    }
    try:
        report = run_script(script, tmp_path / "run")
    finally:
        stop.set()
        helper.join(5)
    assert report["error"] is None, report
    steps = report["steps"]
    assert steps[1]["screen"] == "idle"
    out = steps[3]
    assert out["screen"] == "out_of_order"
    assert "Out of order: card reader / 暂停服务：读卡器" in out["texts"]
    assert "Out of order  ·  暂停服务" in out["texts"]
    assert steps[-1]["screen"] == "idle"
    for step in steps:
        assert _not_blank(step["png"]), step["png"]


def test_a_payment_from_the_kiosks_software_shows_on_its_screen(tmp_path: Path) -> None:
    """The kiosk's software asks for 12.50 through the ECR interface served in the application's process."""
    port = _free_port()
    script = {
        "data_dir": str(_kiosk_dir(tmp_path, result_seconds=2)),
        "reader": "sim:card=visa-qvsdc-online?present-after=1.5",
        "host": "memory",
        "kiosk": True,
        "ecr_port": port,
        "steps": [
            {"wait": "idle"},
            {"touch": "lang_zh"},  # this customer reads Chinese
            {"call": "tests.ui.kiosk_rig:ecr_sale", "args": [port, 1250, "kiosk-order-1"]},
            {"wait": "kiosk_card", "state": {"prompt": "请出示卡片"}},
            {"wait": "kiosk_result"},
            {"call": "tests.ui.kiosk_rig:ecr_payment", "args": [port, "kiosk-order-1", "approved"]},
            {"wait": "idle", "timeout": 10},
        ],
    }
    report = run_script(script, tmp_path / "run")
    assert report["error"] is None, report
    assert report["ecr_url"] == f"http://127.0.0.1:{port}"
    steps = report["steps"]
    card = steps[3]
    assert card["screen"] == "kiosk_card" and card["state"]["amount_text"] == "€12.50"
    assert "€12.50" in card["texts"] and "请出示卡片" in card["texts"]
    result = steps[4]
    assert result["state"]["approved"] is True and "交易成功" in result["texts"]
    back = steps[-1]
    assert back["screen"] == "idle" and back["state"]["language"] == "en"  # the next customer starts in English
    for step in steps:
        assert _not_blank(step["png"]), step["png"]
