"""Helpers of the cashier's kv rules: a QR code as a texture, a list's lines as a RecycleView's data.

A QR code drawn by Kivy: the view model's rows of modules as a texture, one texel a module.
The view model holds the code as rows of ``0``/``1`` (plain data, tested
without a window: :func:`ui.screens.receipt.qr_rows`); a kv rule draws it with
``Image: texture: qr_texture(v(root.s, 'qr_rows', ()))``.  The texture is
magnified with the nearest texel (no blur between modules), so the code is
as sharp at any size as the screen allows.  Kivy is imported when a texture
is made (a window exists then), never when this module is imported.
"""

from __future__ import annotations

from typing import Any

__all__ = ["lines_data", "qr_texture", "step_colour", "step_text"]

_DARK, _LIGHT = b"\x00\x00\x00\xff", b"\xff\xff\xff\xff"


def qr_texture(rows: tuple[str, ...] | list[str]) -> Any:
    """A Kivy texture of the QR code ``rows`` (``1``: dark); None when there are none."""
    if not rows:
        return None
    from kivy.graphics.texture import Texture  # type: ignore[import-untyped]

    size = len(rows)
    # RGBA, four bytes a texel: no row padding to worry about; Kivy's rows go bottom up.
    pixels = b"".join(_DARK if module == "1" else _LIGHT for row in reversed(rows) for module in row)
    texture = Texture.create(size=(len(rows[0]), size), colorfmt="rgba")
    texture.blit_buffer(pixels, colorfmt="rgba", bufferfmt="ubyte")
    texture.mag_filter = "nearest"
    texture.min_filter = "nearest"
    return texture


def lines_data(lines: tuple[dict[str, str], ...] | list[dict[str, str]], screen: Any) -> list[dict[str, Any]]:
    """A RecycleView's ``data`` for a view model's lines: each line's fields, its index, and the screen.

    (A function rather than a comprehension in the kv rule: kv evaluates an
    expression with the rule's names as locals, which a comprehension's own
    scope does not see.)
    """
    return [dict(line, index=index, screen=screen) for index, line in enumerate(lines)]


_MARKS = {"done": "[OK] ", "failed": "[!] ", "doing": "... ", "skipped": "-- "}
_COLOURS = {
    "done": (0.09, 0.50, 0.23, 1),
    "failed": (0.70, 0.12, 0.10, 1),
    "doing": (0.10, 0.36, 0.69, 1),
}
_MUTED = (0.45, 0.47, 0.50, 1)


def step_text(steps: tuple[dict[str, str], ...] | list[dict[str, str]], index: int) -> str:
    """A step of a list of steps ({"text", "state"}) as one line: its state marked in text, then its words."""
    if index >= len(steps):
        return ""
    step = steps[index]
    return _MARKS.get(step.get("state", ""), "") + step.get("text", "")


def step_colour(steps: tuple[dict[str, str], ...] | list[dict[str, str]], index: int) -> tuple[float, ...]:
    """The colour of a step's line (green done, red failed, blue under way, grey to do)."""
    if index >= len(steps):
        return _MUTED
    return _COLOURS.get(steps[index].get("state", ""), _MUTED)
