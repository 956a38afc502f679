"""Facade calls off the UI thread, their results back on it.

A tap, a host timeout, forwarding or settlement may take seconds; the screen
must keep drawing.  :class:`Worker` runs each job on one background thread,
in order (the terminal serialises its verbs anyway), and hands the result or
the error to a :class:`Dispatcher`, which runs it on the UI thread: Kivy's
``Clock`` in the application (:func:`ui.app.kivy_dispatcher`), a queue that a
test drains in the tests (:class:`ManualDispatcher`).  The terminal's events
come back the same way (:meth:`ui.session.Session.start`).

>>> dispatch = ManualDispatcher()
>>> worker = Worker(dispatch)
>>> seen = []
>>> job = worker.submit(lambda: 6 * 7, seen.append)
>>> job.wait(5)
True
>>> dispatch.drain(), seen
(1, [42])
>>> worker.stop()
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["Dispatcher", "Job", "ManualDispatcher", "Worker"]

T = TypeVar("T")


class Dispatcher(Protocol):
    """Runs a function on the UI thread, soon (never blocking the caller)."""

    def __call__(self, fn: Callable[[], None]) -> None: ...


class ManualDispatcher:
    """A dispatcher for tests and headless runs: functions wait until :meth:`drain` runs them."""

    def __init__(self) -> None:
        self._pending: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def __call__(self, fn: Callable[[], None]) -> None:
        self._pending.put(fn)

    def drain(self) -> int:
        """Run what is waiting (and what that adds); returns how many functions ran."""
        count = 0
        while True:
            try:
                fn = self._pending.get_nowait()
            except queue.Empty:
                return count
            fn()
            count += 1


@dataclass
class Job(Generic[T]):
    """One submitted call: done once its callback was handed to the dispatcher."""

    name: str
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    result: T | None = None
    error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the call to end (in tests; the UI never waits)."""
        return self._done.wait(timeout)


def _log_error(exc: BaseException) -> None:
    import logging

    logging.getLogger("ui.worker").error("a background job failed: %s", exc, exc_info=exc)


class Worker:
    """One background thread running jobs in the order they were submitted."""

    def __init__(self, dispatch: Dispatcher) -> None:
        self._dispatch = dispatch
        self._jobs: queue.SimpleQueue[tuple[Job[Any], Callable[[], Any], Callable[[Any], None], Callable[
            [BaseException], None]] | None] = queue.SimpleQueue()  # fmt: skip
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._busy = 0

    @property
    def busy(self) -> bool:
        """Whether a job is running or waiting."""
        return self._busy > 0

    def submit(
        self,
        call: Callable[[], T],
        on_done: Callable[[T], None],
        on_error: Callable[[BaseException], None] = _log_error,
        *,
        name: str = "",
    ) -> Job[T]:
        """Run ``call`` in the background; ``on_done(result)`` or ``on_error(exc)`` on the UI thread."""
        job: Job[T] = Job(name or getattr(call, "__name__", "job"))
        with self._lock:
            self._busy += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="posterm-ui-worker", daemon=True)
                self._thread.start()
        self._jobs.put((job, call, on_done, on_error))
        return job

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            job, call, on_done, on_error = item
            try:
                result = call()
            except BaseException as exc:  # handed to the UI thread, which says what went wrong
                job.error = exc
                self._dispatch(lambda exc=exc, on_error=on_error: on_error(exc))  # type: ignore[misc]
            else:
                job.result = result
                self._dispatch(lambda result=result, on_done=on_done: on_done(result))  # type: ignore[misc]
            finally:
                with self._lock:
                    self._busy -= 1
                job._done.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the jobs already submitted, then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join(timeout)
