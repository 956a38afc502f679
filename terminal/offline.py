"""Offline rules: how much the terminal may hold in its SAF queue, and how it retries.

The limits apply to every payment that would be stored for later forwarding
(card offline approvals and deferred authorisations alike).  A payment over a
limit is refused with :class:`OfflineLimitExceeded`, whose ``limit`` names the
limit, and nothing is queued.

>>> limits = OfflineLimits(per_payment={978: 5000}, total_per_currency={978: 20000}, max_count=3,
...                        max_age_seconds=86400)
>>> try:
...     limits.check(978, 6000, stored={}, oldest_age_seconds=None)
... except OfflineLimitExceeded as exc:
...     print(exc.limit)
per_payment_amount
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from terminal.money import currency, format_amount

__all__ = [
    "OfflineBehavior",
    "OfflineLimitExceeded",
    "OfflineLimits",
    "PaymentRefused",
    "RetryPolicy",
]


class OfflineBehavior(enum.Enum):
    """Per payment, as the leading terminal SDKs offer it."""

    PREFER_ONLINE = "prefer_online"  # online; if the host cannot be reached, store within the limits
    REQUIRE_ONLINE = "require_online"  # online or not at all
    FORCE_OFFLINE = "force_offline"  # do not contact the host; store within the limits


class PaymentRefused(Exception):
    """The terminal refused the payment before anything was charged; ``reason`` is a short name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class OfflineLimitExceeded(PaymentRefused):
    """A payment that would pass an offline limit; ``limit`` names it."""

    LIMITS = (
        "per_payment_amount",
        "total_stored_amount",
        "stored_count",
        "oldest_age",
        "currency_not_allowed",
    )

    def __init__(self, limit: str, message: str) -> None:
        super().__init__("offline_limit", f"offline limit {limit!r}: {message}")
        self.limit = limit


def _money(minor: int, code: int) -> str:
    try:
        return format_amount(minor, currency(code))
    except ValueError:
        return f"{minor} (currency {code:03d})"


@dataclass(frozen=True)
class OfflineLimits:
    """Limits on what may wait in the SAF queue.  Amounts in minor units per ISO 4217 numeric code.

    A currency missing from ``per_payment`` may not be stored offline at all.
    """

    per_payment: Mapping[int, int] = field(default_factory=lambda: {978: 5000})
    total_per_currency: Mapping[int, int] = field(default_factory=lambda: {978: 50000})
    max_count: int = 100
    max_age_seconds: int = 3 * 24 * 3600

    def check(
        self, code: int, amount: int, stored: Mapping[int, tuple[int, int]], oldest_age_seconds: float | None
    ) -> None:
        """Raise :class:`OfflineLimitExceeded` if storing ``amount`` would pass a limit."""
        if code not in self.per_payment:
            raise OfflineLimitExceeded("currency_not_allowed", f"currency {code:03d} may not be stored offline")
        if amount > self.per_payment[code]:
            raise OfflineLimitExceeded(
                "per_payment_amount",
                f"{_money(amount, code)} is over the {_money(self.per_payment[code], code)} allowed for one "
                "offline payment",
            )
        count = sum(n for n, _ in stored.values())
        if count + 1 > self.max_count:
            raise OfflineLimitExceeded("stored_count", f"{count} payments are stored; at most {self.max_count}")
        total = stored.get(code, (0, 0))[1]
        cap = self.total_per_currency.get(code, 0)
        if total + amount > cap:
            raise OfflineLimitExceeded(
                "total_stored_amount",
                f"{_money(total, code)} is stored; with {_money(amount, code)} it would pass {_money(cap, code)}",
            )
        if oldest_age_seconds is not None and oldest_age_seconds > self.max_age_seconds:
            hours = oldest_age_seconds / 3600
            raise OfflineLimitExceeded(
                "oldest_age",
                f"the oldest stored payment is {hours:.1f} h old; at most {self.max_age_seconds / 3600:.1f} h "
                "(forward the queue first)",
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OfflineLimits:
        def amounts(key: str) -> dict[int, int]:
            raw = d.get(key, {})
            if not isinstance(raw, Mapping):
                raise ValueError(f"offline_limits.{key}: expected a mapping of currency -> minor units")
            out = {}
            for code, value in raw.items():
                cur = currency(code)
                if not isinstance(value, int) or value < 0:
                    raise ValueError(f"offline_limits.{key}.{code}: expected whole minor units >= 0")
                out[cur.numeric] = value
            return out

        return cls(
            per_payment=amounts("per_payment"),
            total_per_currency=amounts("total_per_currency"),
            max_count=int(d.get("max_count", 100)),
            max_age_seconds=int(d.get("max_age_seconds", 3 * 24 * 3600)),
        )


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff with jitter between forwarding attempts, and when an entry expires."""

    base_seconds: float = 5.0
    cap_seconds: float = 600.0
    jitter: float = 0.5  # up to +50%
    expire_after_seconds: int = 7 * 24 * 3600

    def next_attempt(self, now: datetime, attempts: int, rng: random.Random | None = None) -> datetime:
        """When to try again after ``attempts`` failed attempts (1 = the first failure)."""
        delay = min(self.cap_seconds, self.base_seconds * (2 ** max(attempts - 1, 0)))
        spread = (rng or random.Random()).uniform(0.0, self.jitter)
        return now + timedelta(seconds=delay * (1.0 + spread))
