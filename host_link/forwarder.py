"""The SAF forwarder: a background thread that sends the terminal's queued payments to the host.

It never touches the store: each round calls ``terminal.forward_due(limit=batch_size)``,
and the terminal core sends queued reversals first, then the SAF entries in
order, and records the host's answer for each (accepted, declined after
forwarding, rejected).  The forwarder only decides *when*:

- after a round that moved entries and was not stopped by an error, at once
  again (more may be queued);
- after a round with nothing due, after ``interval_seconds`` (or the current
  backoff, if the last round that sent anything failed: a round that sends
  nothing proves nothing about the host);
- after a round stopped by the host (unreachable, no answer) or by an
  exception, after a backoff that doubles from ``interval_seconds`` up to
  ``max_backoff_seconds``; while the host is unreachable the host link's
  reachability window makes each attempt cost nothing on the network;
- at once on :meth:`SafForwarder.kick` (the terminal's ``offline_status``
  events from other threads kick it too: a payment was just stored).

:meth:`SafForwarder.stop` asks the thread to end and joins it within a bound.
A round that is in the middle of a host call finishes that call first (its
timeouts bound it); the thread is a daemon, so it never keeps a process alive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from terminal.facade import ForwardReport, TerminalEvent

__all__ = ["ForwardingTerminal", "SafForwarder"]

_log = logging.getLogger(__name__)


class ForwardingTerminal(Protocol):
    """What the forwarder needs of :class:`terminal.facade.Terminal`."""

    def forward_due(self, limit: int | None = None) -> ForwardReport: ...

    def subscribe(self, listener: Callable[[TerminalEvent], None]) -> Callable[[], None]: ...


def _moved(report: ForwardReport) -> int:
    return report.accepted + report.declined + report.rejected + report.expired + report.reversals_sent


class SafForwarder:
    """Forward the SAF queue of ``terminal`` in the background (see the module's docstring)."""

    def __init__(
        self,
        terminal: ForwardingTerminal,
        *,
        batch_size: int = 50,
        interval_seconds: float = 5.0,
        max_backoff_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if interval_seconds <= 0 or max_backoff_seconds < interval_seconds:
            raise ValueError("need 0 < interval_seconds <= max_backoff_seconds")
        self.terminal = terminal
        self.batch_size = batch_size
        self.interval_seconds = interval_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._clock = clock
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._failures = 0
        #: The report of the last round, the error that stopped the last round (None after a clean one),
        #: and how many rounds ran.
        self.last_report: ForwardReport | None = None
        self.last_error: str | None = None
        self.rounds = 0

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start the thread (a second call while it runs does nothing)."""
        with self._lock:
            if self.running:
                return
            self._stopping.clear()
            self._wake.set()  # a first round at once
            self._unsubscribe = self.terminal.subscribe(self._on_event)
            self._thread = threading.Thread(target=self._run, name="posterm-saf-forwarder", daemon=True)
            self._thread.start()

    def kick(self) -> None:
        """Run a round now (something was queued, or the host may be back)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask the thread to end and wait up to ``timeout`` seconds; True if it has ended."""
        with self._lock:
            thread = self._thread
            self._stopping.set()
            self._wake.set()
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
        if thread is None:
            return True
        thread.join(timeout)
        ended = not thread.is_alive()
        if not ended:
            _log.warning("SAF forwarder still busy after %.1f s (a host call in progress); left as a daemon", timeout)
        return ended

    # ------------------------------------------------------------------ the thread

    def _on_event(self, event: TerminalEvent) -> None:
        # The terminal emits offline_status after storing a payment, and after a round of ours:
        # only the former (another thread) is news.
        news = event.kind == "offline_status" and threading.current_thread() is not self._thread
        if news and (event.data.get("queued") or event.data.get("reversals_queued")):
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._pause())
            if self._stopping.is_set():
                break
            self._wake.clear()
            if self._round():
                self._wake.set()  # more may be waiting: go on at once

    def _pause(self) -> float:
        if self._failures == 0:
            return self.interval_seconds
        return min(self.max_backoff_seconds, self.interval_seconds * 2.0 ** (self._failures - 1))

    def _round(self) -> bool:
        """One call of forward_due; True when it is worth going on at once."""
        self.rounds += 1
        try:
            report = self.terminal.forward_due(limit=self.batch_size)
        except Exception as exc:  # the thread must survive anything a round raises (storage, a bug)
            self._failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            _log.error("SAF forwarding round failed: %s", self.last_error)
            return False
        self.last_report = report
        if report.stopped_by is not None:
            self._failures += 1
            self.last_error = report.stopped_by
            _log.info("SAF forwarding stopped (%s); next round in %.1f s", report.stopped_by, self._pause())
            return False
        if _moved(report) == 0:
            # Nothing was due (entries that failed wait out their backoff in the core): this says
            # nothing about the host, so the failure state and its backoff stay as they are.
            return False
        self._failures = 0
        self.last_error = None
        return True
