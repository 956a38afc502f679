"""Calls made later, on the UI thread: the kiosk's return to idle, countdowns, a PIN pad left untouched.

View models have no Kivy clock (they run in tests without a window), so a
:class:`Timers` keeps the due calls on one background thread and hands each
to the session's dispatcher when it is due: Kivy's clock in the application,
the test's queue in the tests.  A call can be cancelled until it runs; a
cancelled call whose dispatch already happened is dropped on the UI thread,
so a screen that moved on is never called back for the one it left.

>>> from ui.worker import ManualDispatcher
>>> dispatch = ManualDispatcher()
>>> timers, seen = Timers(dispatch), []
>>> _ = timers.call_later(0.0, lambda: seen.append("due"))
>>> late = timers.call_later(60.0, lambda: seen.append("never"))
>>> late.cancel()
>>> timers.wait_idle(5.0)
True
>>> dispatch.drain(), seen
(1, ['due'])
>>> timers.stop()
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from ui.worker import Dispatcher

__all__ = ["Timer", "Timers"]


class Timer:
    """One call to be made; :meth:`cancel` stops it if it has not run yet."""

    def __init__(self, due: float, fn: Callable[[], None]) -> None:
        self.due = due
        self._fn = fn
        self.cancelled = False
        self.ran = False

    def cancel(self) -> None:
        self.cancelled = True

    def _run(self) -> None:
        if not self.cancelled:
            self.ran = True
            self._fn()


class Timers:
    """Due calls on one daemon thread (started with the first call), run on the UI thread through ``dispatch``."""

    def __init__(self, dispatch: Dispatcher, clock: Callable[[], float] = time.monotonic) -> None:
        self._dispatch = dispatch
        self._clock = clock
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Timer:
        """Run ``fn`` on the UI thread in ``seconds`` (at the earliest); the handle cancels it."""
        timer = Timer(self._clock() + max(0.0, seconds), fn)
        with self._wake:
            if self._stopped:
                timer.cancel()
                return timer
            heapq.heappush(self._heap, (timer.due, next(self._order), timer))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="posterm-ui-timers", daemon=True)
                self._thread.start()
            self._wake.notify()
        return timer

    def pending(self) -> int:
        """Calls not yet handed to the UI thread (cancelled ones included until their time)."""
        with self._wake:
            return len(self._heap)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no call is waiting for its time (tests); False if some still are after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._wake:
                if not any(not t.cancelled for _, _, t in self._heap):
                    return True
            time.sleep(0.01)
        return False

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (not self._heap or self._heap[0][0] > self._clock()):
                    wait = self._heap[0][0] - self._clock() if self._heap else None
                    self._wake.wait(wait)
                if self._stopped:
                    return
                _, _, timer = heapq.heappop(self._heap)
            if not timer.cancelled:
                self._dispatch(timer._run)

    def stop(self) -> None:
        """Drop every waiting call and end the thread."""
        with self._wake:
            self._stopped = True
            for _, _, timer in self._heap:
                timer.cancel()
            self._heap.clear()
            self._wake.notify()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(2.0)
