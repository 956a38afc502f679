"""The Kivy application: the cashier's or the kiosk's, on one session.

Kivy is imported here only, after :func:`ui.kivy_env.prepare`.  The
application loads the kv files, makes one view per view model of the session
(:mod:`ui.screens.registry`), and shows the screen the navigator asks for.
Its clock is the session's dispatcher: every result of the worker and every
event of the terminal runs on the UI thread, between two frames.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from ui.kivy_env import cjk_font
from ui.screens.registry import build
from ui.session import Session
from ui.viewmodel import Screen

__all__ = ["PostermApp", "kivy_dispatcher", "load_views"]

_VIEWS = Path(__file__).with_name("views")
_FONT_SIZE = re.compile(r"font_size:\s*'(\d+)sp'")


@cache
def _font_sizes() -> tuple[int, ...]:
    """Every text size the kv rules use (in sp), for the warm-up."""
    sizes = {int(m) for path in _VIEWS.glob("*.kv") for m in _FONT_SIZE.findall(path.read_text(encoding="utf-8"))}
    return tuple(sorted(sizes))
_log = logging.getLogger("ui.app")


def kivy_dispatcher(fn: Callable[[], None]) -> None:
    """Run ``fn`` on Kivy's thread before the next frame (callable from any thread)."""
    from kivy.clock import Clock  # type: ignore[import-untyped]

    Clock.schedule_once(lambda _dt: fn(), 0)


def load_views() -> None:
    """Register the font for every label (Latin and Chinese from one face) and load the kv files."""
    from kivy.core.text import DEFAULT_FONT, LabelBase  # type: ignore[import-untyped]
    from kivy.lang import Builder  # type: ignore[import-untyped]

    from ui.views.base import register

    register()  # VmScreen, which every screen's kv class extends
    font = cjk_font()
    LabelBase.register(DEFAULT_FONT, fn_regular=font, fn_bold=font)
    Builder.load_file(str(_VIEWS / "common.kv"))
    for path in sorted(_VIEWS.glob("*.kv")):
        if path.name != "common.kv":
            Builder.load_file(str(path))


def _kiosk_window(app: Any, window: Any) -> None:
    """The kiosk's window: full screen, no decorations, and no way out without the technician PIN.

    Closing the window (the window manager's close, Alt+F4) and Escape both
    come to ``on_request_close``, which the technician PIN screen answers:
    refused, and the PIN asked for (:meth:`ui.screens.technician.TechnicianPin.refuse_close`);
    the right PIN stops the application (exit status 0, which a supervisor
    told ``--exit-on-success`` takes as the end).  Offscreen (tests,
    screenshots) the window keeps its size: there is no screen to fill.
    """
    from kivy.config import Config  # type: ignore[import-untyped]

    window.borderless = True
    if os.environ.get("SDL_VIDEODRIVER") != "offscreen":
        window.fullscreen = "auto"
    Config.set("input", "mouse", "mouse,disable_multitouch")  # a right click draws no touch marker
    guard = app.session.screens.get("technician_pin")
    if guard is not None:
        guard.on_exit = app.stop
    window.bind(on_request_close=lambda *_args, **_kw: bool(guard is None or guard.refuse_close()))


def _size() -> tuple[int, int]:
    width, _, height = os.environ.get("POSTERM_UI_SIZE", "800x480").partition("x")
    return int(width), int(height)


@cache
def _app_class() -> type:
    """posterm's Kivy App class, defined when first needed (Kivy is imported then, not with this module)."""
    from kivy.app import App  # type: ignore[import-untyped]

    class PostermKivyApp(App):  # type: ignore[misc]
        title = "posterm"

        def __init__(self, session: Session, on_started: Callable[[Any], None] | None, **kw: Any) -> None:
            super().__init__(**kw)
            self.session = session
            self.views: dict[str, Any] = {}
            self.bars: dict[str, Any] = {}
            self._on_started = on_started

        def build(self) -> Any:
            from kivy.core.window import Window  # type: ignore[import-untyped]
            from kivy.factory import Factory  # type: ignore[import-untyped]
            from kivy.uix.screenmanager import NoTransition, ScreenManager  # type: ignore[import-untyped]

            from ui.views.base import class_name

            Window.size = _size()
            Window.clearcolor = (0.97, 0.97, 0.95, 1)
            load_views()
            if not self.session.screens:
                build(self.session)
            from kivy.uix.boxlayout import BoxLayout  # type: ignore[import-untyped]

            manager = ScreenManager(transition=NoTransition())
            for name, vm in self.session.screens.items():
                view = getattr(Factory, class_name(name))(name=name)
                view.attach(vm)
                manager.add_widget(view)
                self.views[name] = view
            self.manager = manager
            if self.session.kiosk:
                _kiosk_window(self, Window)
            # The bars (the cashier's offline banner) above every screen: each takes no room while hidden.
            root = BoxLayout(orientation="vertical")
            for name, vm in self.session.bars.items():
                bar = getattr(Factory, class_name(name, "Bar"))()
                bar.attach(vm)
                root.add_widget(bar)
                self.bars[name] = bar
                start = getattr(vm, "start", None)
                if callable(start):
                    start()
            root.add_widget(manager)
            self.session.navigator.listen(self._show)
            first = "idle" if self.session.kiosk and "idle" in self.views else "amount"
            if first in self.views:
                self.session.navigator.go(first)
            return root

        def _show(self, screen: Screen) -> None:
            if screen.name in self.views:
                self.manager.current = screen.name
            else:
                _log.warning("no view for screen %s", screen.name)

        def on_start(self) -> None:
            from kivy.clock import Clock

            self.session.start()
            Clock.schedule_once(lambda _dt: self._warm_up(), 0.3)
            # and the terminal's first payment: its modules and the host link's, on the worker
            Clock.schedule_once(
                lambda _dt: self.session.run(lambda t: t.warm_up(), lambda _r: None, name="warm-up"), 0.3
            )
            if self._on_started is not None:
                self._on_started(self)

        def _warm_up(self) -> None:
            """Load the font at every size the screens use, while nobody waits.

            The first text drawn at a size loads the font at that size (the
            Chinese font is large).  Each size the kv rules use is rendered
            once, with Latin and Chinese text, into a texture thrown away.
            """
            from kivy.core.text import Label as CoreLabel
            from kivy.metrics import sp  # type: ignore[import-untyped]

            for size in _font_sizes():
                for bold in (False, True):
                    try:
                        sample = "Approved 12.34 EUR 交易成功 请出示卡片"
                        CoreLabel(text=sample, font_size=sp(size), bold=bold).refresh()
                    except Exception:  # a size that cannot be drawn now will be drawn when needed
                        _log.debug("warm-up at %s sp failed", size, exc_info=True)

        def on_stop(self) -> None:
            self.session.stop()

    return PostermKivyApp


def PostermApp(session: Session, *, on_started: Callable[[Any], None] | None = None, **kw: Any) -> Any:
    """posterm's application (a Kivy App) on ``session``: cashier or kiosk, as the session says.

    ``on_started(app)`` runs once the first frame is about to be drawn (screenshots and scripted runs).
    """
    return _app_class()(session, on_started, **kw)
