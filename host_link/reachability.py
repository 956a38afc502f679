"""Whether the host can be reached, so that a dead host costs the cashier one connect timeout, not one per payment.

After a failure to connect, the host is *down* for ``retry_after_seconds``:
every call in that window is refused at once with
:class:`~terminal.host.HostUnreachable` (nothing is sent, so the terminal may
store the payment as a deferred authorisation).  When the window has passed,
exactly one call is let through to try again (the *probe*); calls arriving
while the probe is under way are refused at once too.  Any answer from the
host, even an error status, marks it reachable again; a connection that was
made and then lost counts as reached too (it says nothing against connecting).

>>> times = iter([0.0, 1.0, 31.0])
>>> r = Reachability(retry_after_seconds=30.0, clock=lambda: next(times))
>>> r.failed("connection refused")
>>> r.reachable
False
>>> try:
...     r.admit()
... except HostUnreachable as exc:
...     print(exc)
host unreachable (connection refused); next attempt in 29 s
>>> r.admit()  # 31 s later: this call is the probe
>>> r.succeeded()
>>> r.reachable
True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from terminal.host import HostCertificateRejected, HostUnreachable

__all__ = ["Reachability", "ReachabilityStatus"]


@dataclass(frozen=True)
class ReachabilityStatus:
    """A snapshot for status screens and diagnostics (monotonic-clock seconds)."""

    reachable: bool
    last_error: str | None
    failures: int  # consecutive connect failures
    retry_in_seconds: float | None  # None while reachable


class Reachability:
    """Thread-safe reachability state of one host."""

    def __init__(self, retry_after_seconds: float = 20.0, clock: Callable[[], float] = time.monotonic) -> None:
        if retry_after_seconds < 0:
            raise ValueError("retry_after_seconds must be >= 0")
        self.retry_after_seconds = retry_after_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._down_until: float | None = None  # None: reachable (or not tried yet)
        self._probing = False
        self._failures = 0
        self._last_error: str | None = None
        self._certificate = False  # the last failure was the host's certificate failing our check

    @property
    def reachable(self) -> bool:
        """False from a connect failure until the next call that reaches the host."""
        with self._lock:
            return self._down_until is None

    @property
    def last_error(self) -> str | None:
        """The last connect failure (kept after recovery, for diagnostics)."""
        with self._lock:
            return self._last_error

    def status(self) -> ReachabilityStatus:
        with self._lock:
            retry_in = None if self._down_until is None else max(0.0, self._down_until - self._clock())
            return ReachabilityStatus(self._down_until is None, self._last_error, self._failures, retry_in)

    def admit(self, *, force: bool = False) -> None:
        """Let a call try the network, or raise HostUnreachable at once.

        ``force=True`` (an explicit echo from diagnostics) always tries, as a probe.
        """
        with self._lock:
            if self._down_until is None:
                return
            now = self._clock()
            if force or (now >= self._down_until and not self._probing):
                self._probing = True
                return
            # Within the window after a rejected certificate, the refusal says so again (the cashier
            # is warned for each payment), marked as a repeat: it is the same event, counted once.
            error = HostCertificateRejected if self._certificate else HostUnreachable
            if self._probing:
                refused = error(f"host unreachable ({self._last_error}); another attempt is under way")
            else:
                wait = self._down_until - now
                refused = error(f"host unreachable ({self._last_error}); next attempt in {wait:.0f} s")
            refused.repeated = True  # type: ignore[attr-defined]
            raise refused

    def succeeded(self) -> None:
        """The host was reached (any answer, or a connection that was made)."""
        with self._lock:
            self._down_until = None
            self._probing = False
            self._failures = 0

    def failed(self, error: str, *, certificate: bool = False) -> None:
        """A connection could not be made: refuse calls for the window.

        ``certificate``: because the host's certificate failed our check (a
        security event: the window's refusals say so too).
        """
        with self._lock:
            self._failures += 1
            self._last_error = error
            self._certificate = certificate
            self._down_until = self._clock() + self.retry_after_seconds
            self._probing = False

    def release(self) -> None:
        """A call admitted as the probe ended without saying anything about the host (a local error)."""
        with self._lock:
            self._probing = False
