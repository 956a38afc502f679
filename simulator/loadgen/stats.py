"""What a load run counts: latencies per message, outcomes, errors by kind, CPU.

Latencies are kept whole (a five-minute run of a thousand terminals makes
well under a million samples) so that the report's percentiles are exact
nearest-rank ones, as bench/ computes them.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunStats", "percentile"]


def percentile(samples: list[float], pct: float) -> float:
    """The nearest-rank percentile (the smallest sample with at least ``pct``% of them at or below it); 0 if none.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.0
    >>> percentile([], 95)
    0.0
    """
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


@dataclass
class RunStats:
    """Counters of one run, shared by every simulated terminal of it (one asyncio loop: no locks)."""

    latencies: dict[str, list[float]] = field(default_factory=dict)  # message -> seconds of answered exchanges
    answered_at: dict[str, list[float]] = field(default_factory=dict)  # message -> when each answer came (monotonic)
    payments: list[float] = field(default_factory=list)  # seconds from the tap to the result, per sale
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # "<message>: <kind>"
    requests: Counter[str] = field(default_factory=Counter)
    replayed: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def answered(self, message: str, seconds: float, replayed: bool) -> None:
        self.latencies.setdefault(message, []).append(seconds)
        self.answered_at.setdefault(message, []).append(time.monotonic())
        if replayed:
            self.replayed[message] += 1

    def error(self, message: str, kind: str) -> None:
        self.errors[f"{message}: {kind}"] += 1

    def outcome(self, name: str) -> None:
        self.outcomes[name] += 1

    def between(self, message: str, windows: list[tuple[float, float]]) -> list[float]:
        """The latencies of ``message`` answered within any of ``windows`` (monotonic (start, end) pairs)."""
        times = self.answered_at.get(message, [])
        return [
            s
            for s, t in zip(self.latencies.get(message, []), times, strict=True)
            if any(a <= t < b for a, b in windows)
        ]

    def latency_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for message, samples in sorted(self.latencies.items()):
            out[message] = {
                "count": len(samples),
                "p50_ms": round(1000 * percentile(samples, 50), 2),
                "p95_ms": round(1000 * percentile(samples, 95), 2),
                "max_ms": round(1000 * max(samples), 2) if samples else 0.0,
            }
        return out
