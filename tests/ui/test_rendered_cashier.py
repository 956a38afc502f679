"""The cashier's application really rendering (SDL offscreen), driven as a cashier would drive it.

- a sale offline with the host down: approved, and the banner above the screen saying so, with "Send now";
- a card taken away too early: "Present card again", then approved;
- through the real stacks (a card on pcscd via vpcd, the network printer on a TCP port): a sale and its
  e-receipt, a refund and a void behind the supervisor's PIN, end of day with the Z report; the printed
  jobs checked.

Each step is checked on the view model and on the rendered window (the texts drawn, a frame that is
not blank).  The application runs in a child process, as Kivy owns the process it runs in.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from simulator.net_printer import VirtualNetworkPrinter
from simulator.pty_scanner import VirtualScanner
from terminal.devices import set_device
from terminal.pins import PinStore
from tests.integration.pcscd_rig import PcscdRig, pcscd, vpcd  # noqa: F401
from ui.scripted import run_script

PIN = "4826"


def _not_blank(png: str) -> bool:
    colours = Image.open(png).convert("RGB").getcolors(maxcolors=1 << 16)
    return colours is None or len(colours) > 3


def _keys(screen: str, keys: str) -> list[dict[str, Any]]:
    return [{"do": f"{screen}.press", "args": [key]} for key in keys]


def _run(script: dict[str, Any], workdir: Path) -> list[dict[str, Any]]:
    report = run_script(script, workdir)
    assert report["error"] is None, (report["error"], report["stderr"][-2000:])
    steps: list[dict[str, Any]] = report["steps"]
    for step in steps:
        assert _not_blank(step["png"]), step["png"]
    return steps


def _at(steps: list[dict[str, Any]], step: dict[str, Any]) -> dict[str, Any]:
    """The report of the first step that was ``step``."""
    return next(s for s in steps if s["step"] == step)


def test_a_sale_offline_with_the_host_down_and_the_banner(tmp_path: Path) -> None:
    script = {
        "data_dir": str(tmp_path / "terminal"),
        "reader": "sim:card=visa-qvsdc-online",
        "host": "none",
        "steps": [
            {"sleep": 0.3},
            *_keys("amount", "2000"),
            {"touch": "charge"},
            {"wait": "result"},
            {"touch": "next"},
            {"touch": "banner.send_now"},
            {"sleep": 0.5},
            {"language": "zh_CN"},
        ],
    }
    steps = _run(script, tmp_path / "run")
    before = steps[0]
    assert before["bars"]["banner"]["state"]["visible"] is False
    result = _at(steps, {"wait": "result"})
    assert result["state"]["approved"] is True and "Approved" in result["texts"]
    assert "Approved (deferred: the host will confirm later)" in result["texts"]
    banner = result["bars"]["banner"]
    assert banner["state"]["visible"] is True and banner["state"]["tone"] == "offline"
    assert "Host unreachable" in banner["texts"]
    assert any(t.startswith("1 payment stored offline (20.00 EUR) since ") for t in banner["texts"])
    sent = _at(steps, {"sleep": 0.5})
    assert sent["screen"] == "amount" and "Not sent: no host link configured" in sent["bars"]["banner"]["texts"]
    chinese = steps[-1]
    assert "无法连接主机" in chinese["bars"]["banner"]["texts"] and "立即上送" in chinese["bars"]["banner"]["texts"]
    assert "收款" in chinese["texts"] and "菜单" in chinese["texts"]
    # the banner takes its room above the screen: the amount screen's frame starts below it
    frame = Image.open(chinese["png"]).convert("RGB")
    assert frame.getpixel((400, 10)) == (199, 112, 5)


def test_a_card_taken_away_too_early_is_presented_again_then_approved(tmp_path: Path) -> None:
    script = {
        "data_dir": str(tmp_path / "terminal"),
        "reader": "sim:card=visa-qvsdc-online?remove-after=3&reinsert-after=2",
        "host": "memory",
        "steps": [
            *_keys("amount", "1500"),
            {"touch": "charge"},
            {"wait": "present_card", "state": {"prompt": "Present card again"}},
            {"wait": "result"},
        ],
    }
    steps = _run(script, tmp_path / "run")
    again = _at(steps, {"wait": "present_card", "state": {"prompt": "Present card again"}})
    assert "Present card again" in again["texts"] and "15.00 EUR" in again["texts"]
    result = steps[-1]
    assert result["screen"] == "result" and result["state"]["approved"] is True and "Approved" in result["texts"]


@pytest.fixture
def printer() -> Iterator[VirtualNetworkPrinter]:
    virtual = VirtualNetworkPrinter().start()
    yield virtual
    virtual.stop()


@pytest.fixture
def scanner() -> Iterator[VirtualScanner]:
    virtual = VirtualScanner(rate=4)
    yield virtual
    virtual.close()


def _scan_the_first_receipt(scanner: VirtualScanner, data_dir: Path, stop: threading.Event) -> None:
    """The cashier holds the sale's paper receipt under the scanner: its QR code holds the receipt number."""
    while not stop.is_set():
        try:
            conn = sqlite3.connect(f"file:{data_dir / 'journal.sqlite'}?mode=ro", uri=True)
            try:
                row = conn.execute(
                    "SELECT txn_id FROM transactions WHERE kind='sale' ORDER BY created_at LIMIT 1"
                ).fetchone()
            finally:
                conn.close()
        except sqlite3.Error:
            row = None
        if row is not None:
            scanner.stream([str(row[0])], repeat=True)
            return
        stop.wait(0.2)


def test_sale_refund_void_and_end_of_day_on_pcscd_the_scanner_and_the_network_printer(
    tmp_path: Path,
    vpcd: PcscdRig,  # noqa: F811
    printer: VirtualNetworkPrinter,
    scanner: VirtualScanner,
) -> None:
    data_dir = tmp_path / "terminal"
    data_dir.mkdir()
    set_device(data_dir, "printer", printer.url)
    set_device(data_dir, "scanner", scanner.url)  # the pty scanner, through the serial driver
    PinStore(data_dir).set("supervisor", PIN)
    vpcd.card("visa-qvsdc-online")
    pin_keyed = [*_keys("supervisor_pin", PIN), {"touch": "ok"}]
    script = {
        "data_dir": str(data_dir),
        "reader": vpcd.url,
        "host": "memory",
        "steps": [
            # a sale, and its e-receipt
            *_keys("amount", "2000"),
            {"touch": "charge"},
            {"wait": "result"},
            {"touch": "e_receipt"},
            {"wait": "receipt"},
            {"touch": "back"},
            {"touch": "next"},
            # a part refund: the sale found by scanning its receipt, the card tapped again, behind the PIN
            {"touch": "menu"},
            {"touch": "refund"},
            {"wait": "journal"},
            {"touch": "scan_receipt"},
            {"wait": "journal", "state": {"scanning": False}, "timeout": 30},
            {"do": "journal.select_index", "args": [0]},
            {"wait": "refund"},
            {"do": "refund.press", "args": ["clear"]},
            *_keys("refund", "500"),
            {"touch": "tap"},
            {"wait": "supervisor_pin"},
            *pin_keyed,
            {"wait": "result", "timeout": 30},
            {"touch": "next"},
            # a second sale, voided from its receipt, behind the PIN
            *_keys("amount", "1234"),
            {"touch": "charge"},
            {"wait": "result"},
            {"touch": "receipt"},
            {"wait": "receipt"},
            {"touch": "void"},
            {"wait": "supervisor_pin"},
            *pin_keyed,
            {"wait": "result", "timeout": 30},
            {"touch": "next"},
            # end of day
            {"touch": "menu"},
            {"touch": "day_end"},
            {"wait": "day_end"},
            {"touch": "start"},
            {"wait": "day_end", "state": {"stage": "done"}, "timeout": 60},
        ],
    }
    stop = threading.Event()
    scanning = threading.Thread(target=_scan_the_first_receipt, args=(scanner, data_dir, stop), daemon=True)
    scanning.start()
    try:
        steps = _run(script, tmp_path / "run")
    finally:
        stop.set()
        scanner.stop_stream()
    sale = _at(steps, {"wait": "result"})
    scanned = _at(steps, {"wait": "journal", "state": {"scanning": False}, "timeout": 30})
    assert scanned["state"]["receipt_query"] == sale["state"]["txn_id"], scanned["state"]
    assert len(scanned["state"]["rows"]) == 1 and not scanned["state"]["error"]
    assert sale["state"]["approved"] is True and sale["state"]["printed"] is True
    assert "Receipt printed" in sale["texts"] and "E-receipt" in sale["texts"] and "Next customer" in sale["texts"]
    e_receipt = _at(steps, {"wait": "receipt"})
    assert e_receipt["state"]["showing"] == "qr" and len(e_receipt["state"]["qr_rows"]) > 20
    assert "Scan with your phone's camera to keep this receipt" in e_receipt["texts"]
    zbar = pytest.importorskip("pyzbar.pyzbar")
    decoded = zbar.decode(Image.open(e_receipt["png"]).convert("L"))  # the code drawn, read as a phone would
    assert decoded, "no QR code readable in the rendered e-receipt"
    text = decoded[0].data.decode()
    assert "SALE 20.00 EUR APPROVED" in text and f"RECEIPT {sale['state']['txn_id']}" in text
    assert "DUPLICATE" in text  # the paper receipt had printed by itself first: the e-receipt is a second copy
    journal = _at(steps, {"wait": "journal"})
    assert journal["state"]["mode"] == "refund" and "Refund: find the sale" in journal["texts"]
    refund = _at(steps, {"wait": "refund"})
    assert "Left to refund: 20.00 EUR" in refund["texts"] and "20.00 EUR" in refund["texts"]
    pin = _at(steps, {"wait": "supervisor_pin"})
    assert any(t.startswith("Refund 5.00 EUR (card presented)\nOf: Sale 20.00 EUR") for t in pin["texts"])
    assert "Enter the supervisor PIN" in pin["texts"]
    keyed = _at(steps, {"do": "supervisor_pin.press", "args": [PIN[-1]]})
    assert "●●●●" in keyed["texts"]  # the PIN is never drawn, only its dots
    refunded = [s for s in steps if s["step"] == {"wait": "result", "timeout": 30}]
    assert refunded[0]["state"]["kind_text"] == "Refund" and "Approved" in refunded[0]["texts"]
    assert "5.00 EUR   visa 476173******0010" in refunded[0]["texts"]
    voided = refunded[1]
    assert voided["state"]["voided"] is True and "Voided" in voided["texts"] and "Void" in voided["texts"]
    day_end = steps[-1]
    assert day_end["state"]["stage"] == "done" and "Z REPORT" in day_end["state"]["report_text"]
    assert "Batch 1 settled · In balance · Z report printed" in day_end["texts"]
    assert any(t.startswith("[OK] Settle the batch") for t in day_end["texts"])

    jobs = printer.engine.jobs()
    printed = b"\n".join(jobs)
    assert b"SALE" in printed and b"REFUND" in printed and b"VOIDED" in printed
    assert b"Z REPORT" in jobs[-1] and b"HOST: IN BALANCE" in jobs[-1] and b"VOIDED (NOT IN THE TOTALS)" in jobs[-1]
    assert printed.count(b"20.00 EUR") >= 1 and b"5.00 EUR" in printed
