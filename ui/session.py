"""One running application: the terminal, the worker, the language, where we are, and the events.

The view models share one :class:`Session`.  It runs every facade call on the
worker (:meth:`Session.run`) and brings the terminal's events to the UI thread
(:meth:`Session.start` subscribes; :meth:`Session.on_event` registers a
handler by event kind), so no view model ever blocks the screen or touches
the terminal from another thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from terminal.facade import Terminal, TerminalEvent
from ui.i18n import Translator
from ui.timers import Timers
from ui.viewmodel import Navigator, ViewModel
from ui.worker import Dispatcher, Job, Worker

__all__ = ["Session"]

T = TypeVar("T")
V = TypeVar("V", bound=ViewModel)
_log = logging.getLogger("ui.session")


class Session:
    """What the screens share; build it with the terminal and the UI thread's dispatcher."""

    def __init__(
        self,
        terminal: Terminal,
        dispatch: Dispatcher,
        *,
        language: str = "en",
        kiosk: bool = False,
        data_dir: Path | None = None,
    ) -> None:
        self.terminal = terminal
        self.dispatch = dispatch
        self.worker = Worker(dispatch)
        # The terminal's data directory (devices, PINs, logs, parameters): given, else the journal's.
        self.data_dir = Path(data_dir) if data_dir is not None else Path(terminal.store.path).parent
        self.timers = Timers(dispatch)  # calls made later on the UI thread (ui.timers)
        self._stopping: list[Callable[[], None]] = []
        self.tr = Translator(language)
        self.navigator = Navigator()
        self.kiosk = kiosk
        self.screens: dict[str, ViewModel] = {}  # name -> the screen's view model (ui.screens.registry)
        self.bars: dict[str, ViewModel] = {}  # name -> a bar's view model (drawn above every screen)
        self._handlers: dict[str, list[Callable[[TerminalEvent], None]]] = {}
        self._unsubscribe: Callable[[], None] | None = None

    def screen(self, name: str, kind: type[V]) -> V:
        """The view model of screen ``name``, of the class the caller expects."""
        vm = self.screens.get(name)
        if not isinstance(vm, kind):
            raise KeyError(f"no {kind.__name__} screen {name!r}")
        return vm

    @property
    def currency(self) -> int:
        """The terminal's currency (ISO 4217 numeric)."""
        return self.terminal.config_currency

    def start(self) -> None:
        """Listen to the terminal: each event is handed to the UI thread, then to its handlers."""
        if self._unsubscribe is None:
            self._unsubscribe = self.terminal.subscribe(lambda event: self.dispatch(lambda: self._deliver(event)))

    def stop(self) -> None:
        """Stop listening and let the worker finish what it was given (the terminal stays open)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for fn in reversed(self._stopping):
            try:
                fn()
            except Exception:  # the others must stop too
                _log.exception("stopping %r failed", fn)
        self._stopping.clear()
        self.timers.stop()
        self.worker.stop()

    def on_stop(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` when the session stops (a screen's own thread, such as the kiosk's device watch)."""
        self._stopping.append(fn)

    def on_event(self, kind: str, handler: Callable[[TerminalEvent], None]) -> None:
        """Call ``handler(event)`` on the UI thread for each terminal event of ``kind`` ("*": every one)."""
        self._handlers.setdefault(kind, []).append(handler)

    def _deliver(self, event: TerminalEvent) -> None:
        for handler in [*self._handlers.get(event.kind, []), *self._handlers.get("*", [])]:
            try:
                handler(event)
            except Exception:  # a broken screen must not stop the others hearing
                _log.exception("a handler of %s failed", event.kind)

    def run(
        self,
        call: Callable[[Terminal], T],
        on_done: Callable[[T], None],
        on_error: Callable[[BaseException], None] | None = None,
        *,
        name: str = "",
    ) -> Job[T]:
        """Run ``call(terminal)`` on the worker; the outcome comes back on the UI thread."""

        def job() -> T:
            return call(self.terminal)

        def failed(exc: BaseException) -> None:
            _log.info("%s failed: %s", name or "a job", exc)
            if on_error is not None:
                on_error(exc)

        return self.worker.submit(job, on_done, failed, name=name)

    def cancel(self) -> None:
        """Cancel what waits on the customer (the card); safe from the UI thread while a job runs."""
        self.terminal.cancel()

    def describe(self, exc: BaseException) -> str:
        """An error in one line for the screen (the terminal's errors are written for people already)."""
        text = str(exc) or type(exc).__name__
        return text[0].upper() + text[1:] if text else text

    def state(self) -> dict[str, Any]:
        return {"screen": self.navigator.current.name, "language": self.tr.language, "kiosk": self.kiosk}
