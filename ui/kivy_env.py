"""Kivy's environment, set before Kivy is imported (Kivy reads it at import time).

Kivy keeps its own configuration and logs in ``KIVY_HOME`` and reads the
command line unless told not to; on a machine with no display it renders
through SDL's offscreen driver (Mesa's llvmpipe).  The CJK font must be there
for the Chinese screens: :func:`cjk_font` finds it, and the application
refuses to start without it, saying which Debian package to install.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CJK_FONTS", "CJK_FONT_PACKAGE", "FontMissing", "cjk_font", "has_display", "prepare"]

#: Fonts with the Simplified Chinese glyphs (and Latin), first found wins.
CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)
CJK_FONT_PACKAGE = "fonts-wqy-microhei"


class FontMissing(RuntimeError):
    """No font with the Chinese glyphs: the screens would show empty boxes."""


def cjk_font() -> str:
    """The path of a CJK font on this machine (:class:`FontMissing` naming the package otherwise)."""
    for path in CJK_FONTS:
        if Path(path).is_file():
            return path
    raise FontMissing(
        f"no font with Chinese glyphs is installed: install the Debian package {CJK_FONT_PACKAGE} "
        f"(apt-get install {CJK_FONT_PACKAGE}); looked for {', '.join(CJK_FONTS)}"
    )


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def prepare(home: Path, *, offscreen: bool, width: int = 800, height: int = 480) -> None:
    """Set the environment Kivy reads when imported: its home, no argument parsing, the window.

    ``offscreen``: render without a display (SDL's offscreen driver).
    """
    home.mkdir(parents=True, exist_ok=True)
    os.environ["KIVY_HOME"] = str(home)
    os.environ["KIVY_NO_ARGS"] = "1"
    os.environ["KIVY_NO_CONSOLELOG"] = "1"
    os.environ["KIVY_NO_FILELOG"] = "1"
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    os.environ["KIVY_METRICS_DENSITY"] = os.environ.get("KIVY_METRICS_DENSITY", "1")
    # A counter's or a kiosk's screen is touched: a text field brings up an on-screen keyboard, docked
    # at the bottom (a physical keyboard still types).  KCFG_* overrides Kivy's configuration.
    os.environ.setdefault("KCFG_KIVY_KEYBOARD_MODE", "systemanddock")
    if offscreen:
        os.environ["SDL_VIDEODRIVER"] = "offscreen"
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ["POSTERM_UI_SIZE"] = f"{width}x{height}"
