"""Issue 9's speed figures: SAF forwarding over HTTPS, online authorisation, cold start of the CLI.

All through public calls, against a real simulated host process on loopback
with mutual TLS (:func:`simulator.host.service.start_host`), with the terminal
enrolled as a real one is (:func:`host_link.enrolment.enrol`):

- forward: queue ``entries`` offline approvals (whole sales on a simulated
  offline card, with no host), open the terminal again with its enrolled
  host (``host="https"``) and time :meth:`Terminal.forward_now` until the
  queue is empty: batched advices, each chunk marked "being sent" before it
  goes out and its answers recorded durably;
- online authorisation: whole sales on a simulated online card, approved by
  the host; per sale the wall clock less the time the simulated card spent
  computing (measured inside the card): the terminal (Entry Point, kernel,
  the write-ahead journal rows, the answer recorded) and the host (TLS,
  HTTP, validation, the issuer, its database) together;
- cold start: ``posterm --help`` and ``posterm saf status`` as new processes,
  interleaved, wall clock from start to exit.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from host_link.enrolment import CredentialBundle, enrol
from simulator.host.service import HostService, start_host
from terminal.bootstrap import open_terminal
from terminal.facade import Terminal, TerminalSettings
from terminal.offline import OfflineLimits

__all__ = ["SpeedFigures", "cold_start", "forward_over_https", "markdown", "online_authorisations", "run"]

FORWARD_TARGET_SECONDS = 3.0
AUTH_P95_TARGET_MS = 20.0
COLD_START_TARGET_SECONDS = 0.3
EUR = 978


@dataclass
class SpeedFigures:
    forward_entries: int
    forward_seconds: list[float]  # one per round
    auth_ms: list[float]  # terminal + host per sale, the card's computing subtracted
    cold_seconds: dict[str, list[float]] = field(default_factory=dict)

    @property
    def forward_median(self) -> float:
        return statistics.median(self.forward_seconds)

    @property
    def auth_median(self) -> float:
        return statistics.median(self.auth_ms)

    @property
    def auth_p95(self) -> float:
        return percentile(self.auth_ms, 95)


def percentile(samples: list[float], pct: float) -> float:
    """The nearest-rank percentile (the smallest sample with at least ``pct``% of them at or below it)."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def _settings(capacity: int) -> TerminalSettings:
    limits = OfflineLimits(
        per_payment={EUR: 5000},
        total_per_currency={EUR: 5000 * capacity},
        max_count=capacity,
        max_age_seconds=10**9,
    )
    return TerminalSettings(offline_limits=limits)


@contextmanager
def _host(directory: Path) -> Iterator[HostService]:
    with start_host(directory, log_level="warning") as host:
        yield host


def _enrolled(host: HostService, directory: Path, terminal_id: str) -> Path:
    enrol(CredentialBundle.from_json(host.credential_bundle(terminal_id, "POSTERM0000001")), directory)
    return directory


def forward_over_https(host: HostService, directory: Path, entries: int, terminal_id: str) -> float:
    """Seconds to forward ``entries`` queued offline approvals to ``host``."""
    data_dir = _enrolled(host, directory, terminal_id)
    settings = _settings(entries + 10)
    terminal = open_terminal(data_dir, reader_url="sim:card=visa-qvsdc-offline", host="none", settings=settings)
    try:
        for _ in range(entries):
            if not terminal.sale(1234, EUR).approved:
                raise RuntimeError("benchmark sale not approved")
    finally:
        terminal.close()
    terminal = open_terminal(data_dir, reader_url="none", host="https", settings=settings)
    try:
        started = time.perf_counter()
        report = terminal.forward_now()
        elapsed = time.perf_counter() - started
        if report.accepted != entries or terminal.offline_status().queued:
            raise RuntimeError(f"forwarded {report.accepted} of {entries}: {report.stopped_by}")
    finally:
        terminal.close()
    return elapsed


def online_authorisations(host: HostService, directory: Path, runs: int, warmup: int = 20) -> list[float]:
    """Milliseconds per online sale (terminal + host), the simulated card's computing subtracted."""
    data_dir = _enrolled(host, directory, "BENCHAU")
    terminal: Terminal = open_terminal(data_dir, reader_url="sim:card=visa-qvsdc-online", host="https")
    card = terminal.reader.card  # type: ignore[union-attr]
    samples: list[float] = []
    try:
        for i in range(warmup + runs):
            card_before = card.compute_seconds
            started = time.perf_counter()
            result = terminal.sale(1234, EUR)
            elapsed = time.perf_counter() - started
            if not result.approved or result.offline:
                raise RuntimeError(f"benchmark authorisation not approved online: {result}")
            if i >= warmup:
                samples.append(1000 * (elapsed - (card.compute_seconds - card_before)))
    finally:
        terminal.close()
    return samples


def _posterm() -> list[str]:
    script = Path(sys.executable).with_name("posterm")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from terminal.cli import main; sys.exit(main())"]


def cold_start(directory: Path, runs: int = 20) -> dict[str, list[float]]:
    """Wall seconds of whole ``posterm`` processes, the commands interleaved, after one warm-up each."""
    posterm = _posterm()
    commands = {
        "posterm --help": [*posterm, "--help"],
        "posterm saf status": [*posterm, "saf", "status", "--data-dir", str(directory / "cli")],
    }
    out: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(runs + 1):
        for name, argv in commands.items():
            started = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            elapsed = time.perf_counter() - started
            if i:
                out[name].append(elapsed)
    return out


def run(
    directory: Path, *, entries: int = 10_000, rounds: int = 3, auth_runs: int = 300, cold_runs: int = 20
) -> SpeedFigures:
    """Every figure of the section, in one run, on ``directory``'s disk."""
    forward: list[float] = []
    with _host(directory / "host") as host:
        auth = online_authorisations(host, directory / "auth", auth_runs)
        for i in range(rounds):
            forward.append(forward_over_https(host, directory / f"forward{i}", entries, f"BENCHFW{i}"))
    cold = cold_start(directory, cold_runs)
    return SpeedFigures(entries, forward, auth, cold)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def markdown(f: SpeedFigures) -> str:
    rows = [
        "| measure | figure | target |",
        "| --- | ---: | --- |",
        f"| forward {f.forward_entries:,} queued payments over HTTPS, mutual TLS, loopback (median of "
        f"{len(f.forward_seconds)} rounds: {', '.join(f'{s:.2f}' for s in f.forward_seconds)} s) | "
        f"{f.forward_median:.2f} s ({f.forward_entries / f.forward_median:,.0f} entries/s) | at most "
        f"{FORWARD_TARGET_SECONDS:g} s: {_met(f.forward_median <= FORWARD_TARGET_SECONDS)} |",
        f"| online authorisation, terminal + host, card time excluded ({len(f.auth_ms)} sales): median | "
        f"{f.auth_median:.2f} ms | |",
        f"| online authorisation: p95 (max {max(f.auth_ms):.1f} ms) | {f.auth_p95:.2f} ms | at most "
        f"{AUTH_P95_TARGET_MS:g} ms: {_met(f.auth_p95 <= AUTH_P95_TARGET_MS)} |",
    ]
    for name, samples in f.cold_seconds.items():
        median = statistics.median(samples)
        rows.append(
            f"| cold start, `{name}` (median of {len(samples)}, min {min(samples):.3f}, max {max(samples):.3f}) | "
            f"{median:.3f} s | at most {COLD_START_TARGET_SECONDS:g} s: {_met(median <= COLD_START_TARGET_SECONDS)} |"
        )
    return "\n".join(rows)
