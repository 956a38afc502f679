"""The ECR interface's speed (issue 10): from a register's start request to the card reader polling.

A real server (uvicorn on a loopback port, on a thread of this process) over
a real terminal (its SQLite journal on disk, the simulator's in-process host),
driven by httpx as a register drives it: each payment is started with
``POST /v1/payments`` and followed by long poll to its result before the
next.  The reader is the simulator's online card behind a wrapper that notes
the moment ``wait_for_card`` is called: the figure is from just before the
request is sent to that moment (the request's HTTP round trip, the body's
checks against the OpenAPI document, the journal looked up for the key, the
hand-over to the worker thread, the facade's checks before it polls).
Target: a median of at most 20 ms.  The first payments (imports, schema
compilation) are run and left out.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TARGET_MS", "EcrFigures", "markdown", "run"]

TARGET_MS = 20.0
WARM_UP = 10


@dataclass(frozen=True)
class EcrFigures:
    to_poll_ms: list[float]  # start request sent -> wait_for_card called, one per payment
    answer_ms: list[float]  # start request sent -> its 202 answer read
    whole_ms: list[float]  # start request sent -> the approved result read (long poll)

    @property
    def median_to_poll(self) -> float:
        return statistics.median(self.to_poll_ms)


class _TimedReader:
    """The reader, noting when it is asked to poll for a card."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.url = getattr(inner, "url", "timed")
        self.polled: list[float] = []

    def wait_for_card(self, timeout: float | None = None, cancel: Any = None) -> Any:
        self.polled.append(time.perf_counter())
        return self.inner.wait_for_card(timeout, cancel)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def run(runs: int = 200, base: Path | None = None) -> EcrFigures:
    """``runs`` payments (after the warm-up) through a real server; their times."""
    import httpx

    from terminal.bootstrap import open_terminal
    from ui.ecr.server import EcrServer

    with tempfile.TemporaryDirectory(dir=base) as tmp:
        terminal = open_terminal(Path(tmp) / "data", reader_url="sim:card=visa-qvsdc-online", host="memory")
        reader = _TimedReader(terminal.reader)
        terminal.reader = reader
        server = EcrServer(terminal, port=0)
        server.start()
        to_poll: list[float] = []
        answers: list[float] = []
        wholes: list[float] = []
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for n in range(WARM_UP + runs):
                    key = f"bench-{n:05d}"
                    body = {"kind": "sale", "amount": 1000 + 10 * (n % 500), "currency": "EUR"}
                    polls = len(reader.polled)
                    began = time.perf_counter()
                    answer = client.post("/v1/payments", json=body, headers={"Idempotency-Key": key})
                    answered = time.perf_counter()
                    if answer.status_code != 202:
                        raise RuntimeError(f"start refused: {answer.status_code} {answer.text}")
                    payment = answer.json()
                    while not payment["final"]:
                        payment = client.get(
                            f"/v1/payments/{key}", params={"wait": 10, "after": payment["version"]}
                        ).json()
                    done = time.perf_counter()
                    if payment["status"] != "approved" or len(reader.polled) <= polls:
                        raise RuntimeError(f"payment {key}: {payment['status']} ({payment['message']})")
                    if n >= WARM_UP:
                        to_poll.append((reader.polled[polls] - began) * 1000)
                        answers.append((answered - began) * 1000)
                        wholes.append((done - began) * 1000)
        finally:
            server.stop()
            terminal.close()
    return EcrFigures(to_poll, answers, wholes)


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def markdown(figures: EcrFigures) -> str:
    met = "met" if figures.median_to_poll <= TARGET_MS else "NOT met"
    rows = [
        ("start request -> the reader polls for the card", figures.to_poll_ms),
        ("start request -> its 202 answer", figures.answer_ms),
        ("start request -> the approved result (long poll)", figures.whole_ms),
    ]
    lines = [
        f"{len(figures.to_poll_ms)} sales in a row, each followed to its result before the next.",
        "",
        "| from a register's start request to | median | p95 |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {what} | {statistics.median(ms):.2f} ms | {_p95(ms):.2f} ms |" for what, ms in rows]
    lines += ["", f"Target: the reader polling within a median of {TARGET_MS:.0f} ms: {met}."]
    return "\n".join(lines)
