"""The cashier application really rendering (SDL offscreen): a sale approved and one declined.

Each step is checked on the view model and on the rendered window (the texts
drawn, a non-blank frame).  The application runs in a child process, as Kivy
owns the process it runs in.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from ui.scripted import run_script


def _not_blank(png: str) -> bool:
    colours = Image.open(png).convert("RGB").getcolors(maxcolors=1 << 16)
    return colours is None or len(colours) > 3


def test_a_sale_approved_then_one_declined(tmp_path: Path) -> None:
    keys = [{"touch": "charge"}]
    script = {
        "data_dir": str(tmp_path / "terminal"),
        "reader": "sim:card=visa-qvsdc-online",
        "host": "memory",
        "steps": [
            *({"do": "amount.press", "args": [k]} for k in "2000"),
            *keys,
            {"wait": "result"},
            {"do": "result.next_customer"},
            *({"do": "amount.press", "args": [k]} for k in "1051"),
            *keys,
            {"wait": "result"},
        ],
    }
    report = run_script(script, tmp_path / "run")
    assert report["error"] is None, report
    steps = report["steps"]
    typed = steps[3]
    assert typed["screen"] == "amount" and "20.00 EUR" in typed["texts"]
    approved = steps[5]
    assert approved["screen"] == "result" and approved["state"]["approved"] is True
    assert "Approved" in approved["texts"] and "20.00 EUR   visa 476173******0010" in approved["texts"]
    declined = steps[-1]
    assert declined["state"]["approved"] is False and "Declined" in declined["texts"]
    assert "Insufficient funds (51)" in declined["texts"]
    for step in steps:
        assert _not_blank(step["png"]), step["png"]
