"""Faults switched on and off during a load run, through the host's own fault switch.

A schedule is a list of steps ``KIND[=VALUE]@START+SECONDS``, comma-separated:

- ``down@60+15``: the host stops listening and drops every connection at 60 s,
  for 15 s;
- ``slow=300@120+15``: every answer waits 300 ms;
- ``drop@180+10``: the host reads each request and closes the connection
  without answering (nor processing);
- ``error=503@240+10``: every request is answered 503 without processing.

Steps may overlap: at any moment the faults in force are those of every step
under way. The changes go to the running host with
:func:`simulator.host.faults.request_faults`, which returns once the host
applied them.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from simulator.host.faults import Faults, request_faults

__all__ = [
    "FaultChange",
    "FaultStep",
    "ScheduleError",
    "change_faults",
    "default_schedule",
    "faults_at",
    "parse_schedule",
    "run_schedule",
]

_STEP = re.compile(r"(down|slow|drop|error)(?:=(\d+))?@(\d+(?:\.\d+)?)\+(\d+(?:\.\d+)?)")


class ScheduleError(ValueError):
    """A fault schedule that cannot be read (the message says which step and why)."""


@dataclass(frozen=True)
class FaultStep:
    kind: str  # down | slow | drop | error
    value: int | None
    start: float
    seconds: float

    @property
    def end(self) -> float:
        return self.start + self.seconds

    def __str__(self) -> str:
        value = f"={self.value}" if self.value is not None else ""
        return f"{self.kind}{value}@{self.start:g}+{self.seconds:g}"


def parse_schedule(text: str) -> tuple[FaultStep, ...]:
    """The steps of ``text`` (empty or ``none``: no faults).

    >>> [str(s) for s in parse_schedule("down@4+2, slow=200@1+1")]
    ['down@4+2', 'slow=200@1+1']
    """
    if text.strip().lower() in ("", "none"):
        return ()
    steps: list[FaultStep] = []
    for part in text.split(","):
        match = _STEP.fullmatch(part.strip())
        if match is None:
            raise ScheduleError(
                f"fault step {part.strip()!r}: expected KIND[=VALUE]@START+SECONDS, KIND one of down, slow=MS, "
                "drop, error=STATUS (for example down@60+15)"
            )
        kind, value, start, seconds = match.groups()
        number = int(value) if value is not None else None
        if kind in ("slow", "error") and number is None:
            raise ScheduleError(f"fault step {part.strip()!r}: {kind} needs a value ({kind}=...)")
        if kind in ("down", "drop") and number is not None:
            raise ScheduleError(f"fault step {part.strip()!r}: {kind} takes no value")
        step = FaultStep(kind, number, float(start), float(seconds))
        try:
            _faults([step])
        except ValueError as exc:
            raise ScheduleError(f"fault step {part.strip()!r}: {exc}") from None
        steps.append(step)
    return tuple(steps)


def default_schedule(duration: float) -> tuple[FaultStep, ...]:
    """One of each fault, spread over the run: down at 20% for 5%, slow (300 ms), drop, 503, each a few %.

    >>> [str(s) for s in default_schedule(300)]
    ['down@60+15', 'slow=300@120+15', 'drop@180+9', 'error=503@240+9']
    """
    d = duration
    return (
        FaultStep("down", None, round(0.2 * d, 1), round(max(1.0, 0.05 * d), 1)),
        FaultStep("slow", 300, round(0.4 * d, 1), round(max(1.0, 0.05 * d), 1)),
        FaultStep("drop", None, round(0.6 * d, 1), round(max(1.0, 0.03 * d), 1)),
        FaultStep("error", 503, round(0.8 * d, 1), round(max(1.0, 0.03 * d), 1)),
    )


def _faults(steps: Sequence[FaultStep]) -> Faults:
    return Faults(
        down=any(s.kind == "down" for s in steps),
        slow_ms=max((s.value or 0 for s in steps if s.kind == "slow"), default=0),
        error_status=next((s.value for s in steps if s.kind == "error"), None),
        drop_after_request=any(s.kind == "drop" for s in steps),
    )


def faults_at(steps: Sequence[FaultStep], elapsed: float) -> Faults:
    """The faults in force ``elapsed`` seconds into the run."""
    return _faults([s for s in steps if s.start <= elapsed < s.end])


@dataclass(frozen=True)
class FaultChange:
    """A change of the host's faults: when it was asked and when the host had applied it (seconds into the run)."""

    asked: float
    applied: float
    in_force: str  # the steps under way after it ("down@60+15, slow=300@62+5"), or "none"


async def change_faults(data_dir: Path, faults: Faults, in_force: str, started: float) -> FaultChange:
    """Ask the running host for ``faults`` and wait until it applied them (a thread waits, not the loop)."""
    asked = time.monotonic() - started
    await asyncio.to_thread(request_faults, data_dir, faults)
    return FaultChange(round(asked, 3), round(time.monotonic() - started, 3), in_force)


async def run_schedule(data_dir: Path, steps: Sequence[FaultStep], started: float, log: list[FaultChange]) -> None:
    """Apply ``steps`` on time (``started`` is the run's ``time.monotonic()`` start), noting each change in ``log``.

    Cancel it to stop early; the faults then stay as they are (the run clears them).
    """
    moments = sorted({s.start for s in steps} | {s.end for s in steps})
    current = Faults()
    for moment in moments:
        await asyncio.sleep(max(0.0, started + moment - time.monotonic()))
        wanted = faults_at(steps, moment)
        if wanted == current:
            continue
        active = [str(s) for s in steps if s.start <= moment < s.end]
        log.append(await change_faults(data_dir, wanted, ", ".join(active) or "none", started))
        current = wanted
