"""How fast enrolment codes can be tried: token buckets per client address and overall.

Why it matters. An enrolment code is 16 characters from a 32-letter alphabet
(``A-Z`` and ``2-9`` without ``I``, ``O``, ``0``, ``1``; :mod:`simulator.host.admin`),
so there are 32**16 = 2**80 (about 1.2e24) codes. With N codes open at a time,
a guess succeeds with probability N / 2**80. The host answers an unknown, a
used and an expired code alike (no oracle), makes every refused attempt wait
:attr:`EnrolmentLimits.failure_delay_seconds` before it answers, and admits at
most :attr:`EnrolmentLimits.overall_per_minute` attempts a minute from
everyone together (after a burst of as many): at the default 120 a minute and
1,000 open codes, finding one takes about 2**80 / 1000 / 120 minutes, some
19 million years on average. Attempts beyond a bucket are answered ``429`` with
``Retry-After`` (seconds, rounded up) before anything is read or looked up.

The buckets live in the server process: with several worker processes each
has its own, so the host as a whole admits up to that many times the limit
(still far beyond what guessing needs). The limits are settings of the host's
database (``meta.enrol_limits``, ``posterm host enrol-rate``), read when the
host starts; a fleet roll-out from one address (a load generator enrolling
1,000 terminals) raises them first.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Final

__all__ = ["ENROL_LIMITS_KEY", "EnrolmentLimiter", "EnrolmentLimits", "TokenBucket"]

#: The ``meta`` key of the host database holding the limits (JSON of :class:`EnrolmentLimits`).
ENROL_LIMITS_KEY: Final = "enrol_limits"
#: How many client addresses are tracked at once (the least recently seen are forgotten first).
_MAX_CLIENTS: Final = 10_000


@dataclass(frozen=True)
class EnrolmentLimits:
    """Attempts per minute (each bucket also allows a burst of that many) and the delay of a refusal."""

    per_client_per_minute: int = 20
    overall_per_minute: int = 120
    failure_delay_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.per_client_per_minute < 1 or self.overall_per_minute < 1:
            raise ValueError("enrolment limits: at least 1 attempt per minute")
        if not 0 <= self.failure_delay_seconds <= 60:
            raise ValueError("enrolment limits: the failure delay is 0 to 60 seconds")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> EnrolmentLimits:
        """The limits stored as :meth:`to_json`; the defaults for None or anything unreadable."""
        if not text:
            return cls()
        try:
            doc = json.loads(text)
            return cls(
                int(doc["per_client_per_minute"]),
                int(doc["overall_per_minute"]),
                float(doc["failure_delay_seconds"]),
            )
        except (ValueError, TypeError, KeyError):
            return cls()


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; :meth:`take` one or learn how long to wait."""

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = now

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0: one is there now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1


class EnrolmentLimiter:
    """The per-address and overall buckets of enrolment attempts (thread-safe)."""

    def __init__(self, limits: EnrolmentLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        per_minute = limits.overall_per_minute
        self._overall = TokenBucket(per_minute, per_minute / 60, clock())
        self._clients: OrderedDict[str, TokenBucket] = OrderedDict()

    def admit(self, client: str) -> int:
        """Take a token from both buckets and return 0, or take none and return the seconds to wait (>= 1)."""
        now = self._clock()
        with self._lock:
            bucket = self._clients.get(client)
            if bucket is None:
                per_minute = self.limits.per_client_per_minute
                bucket = TokenBucket(per_minute, per_minute / 60, now)
                self._clients[client] = bucket
                while len(self._clients) > _MAX_CLIENTS:
                    self._clients.popitem(last=False)
            self._clients.move_to_end(client)
            wait = max(bucket.wait(now), self._overall.wait(now))
            if wait > 0:
                return max(1, math.ceil(wait))
            bucket.take(now)
            self._overall.take(now)
            return 0
