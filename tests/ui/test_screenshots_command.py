"""``posterm ui --screenshots DIR`` on a machine with no display: a PNG of every screen, in both languages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ui.i18n import LANGUAGES
from ui.screens.registry import BARS, SCREENS

POSTERM = str(Path(sys.executable).with_name("posterm"))


def _colours(path: Path) -> int:
    found = Image.open(path).convert("RGB").getcolors(maxcolors=1 << 20)
    return len(found) if found is not None else 1 << 20


@pytest.mark.parametrize("mode", ["cashier", "kiosk"])
def test_every_screen_in_every_language_with_no_display(tmp_path: Path, mode: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "POSTERM_DATA_DIR")}
    args = [POSTERM, "ui", "--screenshots", str(tmp_path / "shots"), "--data-dir", str(tmp_path / "data")]
    if mode == "kiosk":
        args.append("--kiosk")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    names = [spec.name for spec in SCREENS if mode in spec.modes]
    assert names
    for language in LANGUAGES:
        for name in names:
            png = tmp_path / "shots" / language / f"{name}.png"
            assert png.is_file(), f"no screenshot of {name} in {language}"
            assert Image.open(png).size[0] >= 800
            assert _colours(png) > 8, f"{png} is blank"
    # the languages differ where the screens have words (the amount screen's keys are digits)
    words = "idle" if mode == "kiosk" else "menu"
    english = (tmp_path / "shots" / "en" / f"{words}.png").read_bytes()
    chinese = (tmp_path / "shots" / "zh_CN" / f"{words}.png").read_bytes()
    assert english != chinese
    # and so do the bars drawn over a screen, the kiosk's included (whose idle screen puts the kiosk's own
    # language back on arrival: the notice was once drawn in Chinese in both folders)
    for bar in [spec.name for spec in BARS if mode in spec.modes]:
        english = (tmp_path / "shots" / "en" / f"{bar}.png").read_bytes()
        chinese = (tmp_path / "shots" / "zh_CN" / f"{bar}.png").read_bytes()
        assert english != chinese, f"the {bar} bar is drawn alike in both languages"
