"""The on-screen PIN pad really rendered (SDL offscreen): a PIN keyed by touching the keys, and a bypass in Chinese.

The application runs in a child process (Kivy owns it); the PIN is asked on
its worker (:mod:`tests.ui.pin_rig`), the keys are touched as a finger would
(their ``on_release``), and the block the PIN pad returned is deciphered as
the simulated issuer does.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from simulator.host.keys import HostKeys
from simulator.host.pin_check import _pin_key
from terminal.pinblock import EncryptedPin, PinFormat, decipher
from tests.ui.pin_rig import PAN
from ui.scripted import run_script


def _not_blank(png: str) -> bool:
    colours = Image.open(png).convert("RGB").getcolors(maxcolors=1 << 16)
    return colours is None or len(colours) > 3


def test_a_pin_keyed_on_the_screen_then_a_bypass_in_chinese(tmp_path: Path) -> None:
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    script = {
        "data_dir": str(tmp_path / "terminal"),
        "reader": "sim:card=visa-qvsdc-online",
        "host": "memory",
        "steps": [
            {"call": "tests.ui.pin_rig:ask_pin", "args": [str(first)]},
            {"wait": "customer_pin", "state": {"active": True}},
            *({"touch": f"key_{k}"} for k in "1984"),
            {"touch": "enter"},
            {"wait": "amount"},
            {"language": "zh_CN"},
            {"call": "tests.ui.pin_rig:ask_pin", "args": [str(second), True, 0]},
            {"wait": "customer_pin", "state": {"active": True}},
            {"touch": "bypass"},
            {"wait": "amount"},
        ],
    }
    report = run_script(script, tmp_path / "run")
    assert report["error"] is None, report
    steps = report["steps"]
    shown = steps[1]
    assert shown["screen"] == "customer_pin"
    assert {"Enter your PIN", "80.00 EUR", "Card 476173******0010", "Cancel", "Clear", "Enter"} <= set(shown["texts"])
    keyed = steps[5]
    assert keyed["state"]["count"] == 4 and "●●●●" in keyed["texts"]
    assert not any("1984" in text for step in steps for text in step["texts"])
    assert not any("1984" in json.dumps(step["state"]) for step in steps)
    # the bypass key is there only when the request allows it: hidden (no height, no label drawn) the first time
    assert shown["state"]["can_bypass"] is False
    entry = json.loads(first.read_text(encoding="utf-8"))
    assert entry["outcome"] == "entered" and entry["format"] == 4
    pin = EncryptedPin(bytes.fromhex(entry["block"]), bytes.fromhex(entry["ksn"]), PinFormat.ISO_4)
    key = _pin_key(HostKeys.in_memory(), pin)
    assert key is not None and bytes(decipher(pin.block, PAN, key, pin.format)) == b"1984"
    chinese = steps[10]
    assert chinese["screen"] == "customer_pin" and chinese["state"]["can_bypass"] is True
    assert {"请输入密码", "€80.00", "不输密码", "取消", "清除", "确认"} <= set(chinese["texts"])
    assert json.loads(second.read_text(encoding="utf-8")) == {"outcome": "bypassed"}
    assert steps[-1]["screen"] == "amount"
    for step in steps:
        assert _not_blank(step["png"]), step["png"]
    assert "1984" not in report["stderr"]  # nor in what the application logged


def test_an_inserted_cards_offline_pin_keyed_on_the_screen(tmp_path: Path) -> None:
    """The chip card's PIN on the same screen: its tries left, keyed by touch, handed over (never shown)."""
    result = tmp_path / "offline.json"
    script = {
        "data_dir": str(tmp_path / "terminal"),
        "reader": "sim:card=contact-offline-pin",
        "host": "memory",
        "steps": [
            {"call": "tests.ui.pin_rig:ask_offline_pin", "args": [str(result), 2]},
            {"wait": "customer_pin", "state": {"active": True}},
            *({"touch": f"key_{k}"} for k in "2580"),
            {"touch": "enter"},
            {"wait": "amount"},
        ],
    }
    report = run_script(script, tmp_path / "run")
    assert report["error"] is None, report
    shown = report["steps"][1]
    assert {"Enter your PIN", "12.34 EUR", "PIN for the chip card · 2 tries left", "Enter"} <= set(shown["texts"])
    assert "Last try: a wrong PIN blocks the card's PIN" not in shown["texts"]
    assert not any("2580" in text for step in report["steps"] for text in step["texts"])
    assert json.loads(result.read_text(encoding="utf-8")) == {"outcome": "entered", "digits": 4}
