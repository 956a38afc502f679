"""``posterm ui --screenshots DIR``: every screen, in every language, as a PNG, with no display.

The application runs offscreen on a throwaway terminal (a temporary data
directory, the simulator's card and in-process host), so nothing of the
real terminal is touched.  Each screen's view model fills itself with a
typical state (:meth:`ui.viewmodel.ViewModel.sample`); a frame is drawn, then
the window is saved as ``DIR/<language>/<screen>.png``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ui.i18n import LANGUAGES

__all__ = ["write_screenshots"]


def write_screenshots(out: Path, data_dir: Path, *, kiosk: bool = False) -> list[Path]:
    """Render every screen of the mode (cashier or kiosk), in both languages; returns the files written."""
    from kivy.clock import Clock  # type: ignore[import-untyped]

    from terminal.bootstrap import open_terminal
    from ui.app import PostermApp, kivy_dispatcher
    from ui.session import Session

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="posterm-screens-") as scratch:
        terminal = open_terminal(Path(scratch), reader_url="sim:card=visa-qvsdc-online", host="memory")
        session = Session(terminal, kivy_dispatcher, kiosk=kiosk)
        plan = [(language, name) for language in LANGUAGES for name in _names(session)]
        # A bar (the cashier's offline banner) is shown over the amount screen, as "<bar>.png".
        plan += [(language, f"bar:{name}") for language in LANGUAGES for name in _bars(session)]

        def started(app: Any) -> None:
            # A screen with more than one typical look names the others (``sample_variants()``, each drawn by
            # ``sample_<variant>()``), as "<screen>-<variant>.png": the receipt's e-receipt, its QR code.
            plan.extend(
                (language, f"{name}-{variant}")
                for language in LANGUAGES
                for name in _names(session)
                for variant in _variants(session, name)
            )

            def step(index: int) -> None:
                if index >= len(plan):
                    app.stop()
                    return
                language, name = plan[index]
                session.tr.set_language(language)
                if name.startswith("bar:"):
                    name = name[4:]
                    session.bars[name].sample()
                    session.navigator.go("amount" if "amount" in session.screens else next(iter(session.screens)))
                    # the kiosk's idle screen puts the kiosk's own language back on arrival: the bar's picture
                    # is taken in the language of its folder all the same
                    session.tr.set_language(language)
                else:
                    for bar in session.bars.values():
                        bar.update(visible=False)  # each screen alone; the bars have their own pictures
                    screen, _, variant = name.partition("-")
                    getattr(session.screens[screen], f"sample_{variant}" if variant else "sample")()
                    session.navigator.go(screen)

                def shoot(_dt: float) -> None:
                    path = out / language / f"{name}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    app.root_window.screenshot(name=str(path))
                    # Kivy numbers screenshots: keep the plain name
                    numbered = sorted(path.parent.glob(f"{name}*.png"), key=lambda p: p.stat().st_mtime)[-1]
                    if numbered != path:
                        numbered.replace(path)
                    written.append(path)
                    Clock.schedule_once(lambda _dt: step(index + 1), 0)

                Clock.schedule_once(shoot, 0.15)  # two frames: the first after a change may be stale

            Clock.schedule_once(lambda _dt: step(0), 0.2)

        try:
            app = PostermApp(session, on_started=started)
            from ui.screens.registry import build

            build(session)
            app.run()
        finally:
            terminal.close()
    return written


def _variants(session: Any, name: str) -> list[str]:
    variants = getattr(session.screens.get(name), "sample_variants", None)
    return list(variants()) if callable(variants) else []


def _bars(session: Any) -> list[str]:
    from ui.screens.registry import BARS

    mode = "kiosk" if session.kiosk else "cashier"
    return [spec.name for spec in BARS if mode in spec.modes]


def _names(session: Any) -> list[str]:
    from ui.screens.registry import SCREENS

    mode = "kiosk" if session.kiosk else "cashier"
    return [spec.name for spec in SCREENS if mode in spec.modes]
