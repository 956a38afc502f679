"""The child of bench.ui_speed: the application offscreen, frames timed while the terminal works.

``python -m bench.ui_frames DIR OUT.json``.  Every frame's time is recorded
(a clock callback each frame); each scenario runs through the view models
and the worker, as a cashier's touches would, and its longest gap between two
frames is written out.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["main"]


class _SlowThenSilentHost:
    """A host that waits 2 s and then does not answer: what a timeout looks like to the terminal."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def authorise(self, request: Any) -> Any:
        from terminal.host import HostNoAnswer

        time.sleep(2.0)
        raise HostNoAnswer("no answer within the read timeout (benchmark)")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def main(argv: list[str]) -> int:
    base, out = Path(argv[1]), Path(argv[2])
    from ui.kivy_env import prepare

    prepare(base / "kivy", offscreen=True)
    from kivy.clock import Clock  # type: ignore[import-untyped]

    from terminal.bootstrap import open_terminal
    from ui.app import PostermApp, kivy_dispatcher
    from ui.screens.sale import AmountEntry
    from ui.session import Session

    terminal = open_terminal(base / "terminal", reader_url="sim:card=visa-qvsdc-online", host="memory")
    session = Session(terminal, kivy_dispatcher)
    frames: list[float] = []
    results: dict[str, Any] = {"gaps": {}, "frames": {}}
    real_host = terminal.host

    def tick(_dt: float) -> None:
        frames.append(time.perf_counter())

    def sale(amount: str) -> Callable[[], None]:
        def go() -> None:
            entry = session.screen("amount", AmountEntry)
            for key in amount:
                entry.press(key)
            entry.charge("card")

        return go

    def offline() -> None:
        terminal.host = None
        sale("3000")()

    def timeout() -> None:
        terminal.host = _SlowThenSilentHost(real_host)
        sale("2500")()

    def settle() -> None:
        terminal.host = real_host
        session.run(lambda t: (t.forward_now(), t.settle()), lambda _r: None, lambda _e: None, name="settle")

    scenarios: list[tuple[str, Callable[[], None]]] = [
        ("the first tap after start-up", sale("1000")),
        ("a tap approved online", sale("2000")),
        ("a payment stored offline (no host)", offline),
        ("a host timeout (2 s, then no answer)", timeout),
        ("forwarding and settlement", settle),
    ]

    def started(app: Any) -> None:
        Clock.schedule_interval(tick, 0)

        def run(index: int) -> None:
            if index >= len(scenarios):
                app.stop()
                return
            name, action = scenarios[index]
            first = len(frames)
            action()

            def wait(_dt: float) -> None:
                if session.worker.busy:
                    Clock.schedule_once(wait, 0.05)
                    return
                window = frames[first:]
                gaps = [b - a for a, b in itertools.pairwise(window)]
                results["gaps"][name] = max(gaps) if gaps else 0.0
                results["frames"][name] = len(window)
                session.navigator.go("amount")
                Clock.schedule_once(lambda _dt: run(index + 1), 0.3)

            Clock.schedule_once(wait, 0.05)

        Clock.schedule_once(lambda _dt: run(0), 2.0)  # after the start-up warm-up (ui.app), as a first customer

    try:
        PostermApp(session, on_started=started).run()
    finally:
        terminal.host = real_host
        terminal.close()
    out.write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
