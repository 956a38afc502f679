"""Terminal-side time of a contactless tap against the ISO/IEC 14443 airtime.

For each simulated card profile: run the same transaction many times, take
the wall time of Entry Point through outcome, subtract the time the simulated
card spent computing (its RSA signatures and cryptograms, measured inside the
card), and compare the median with the airtime of the bytes exchanged at
106 kbit/s.  Target: terminal-side processing at most 2% of the airtime.
Each card pays in its own currency (EUR for the Visa- and Mastercard-style
cards, CNY for the UnionPay-style ones, whose electronic cash pays only CNY).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.airtime import exchange_seconds
from emv.transaction import TransactionData
from simulator import profiles
from simulator.card import SimulatedCard
from simulator.transport import as_transport
from terminal.emv_session import run_tap
from terminal.settings import load_default_config

TARGET_RATIO = 0.02


@dataclass(frozen=True)
class TapFigures:
    profile: str
    outcome: str
    apdus: int
    bytes_exchanged: int
    terminal_ms: float  # median
    airtime_ms: float
    runs: int

    @property
    def ratio(self) -> float:
        return self.terminal_ms / self.airtime_ms


def measure_profile(name: str, runs: int = 200, amount: int = 1234) -> TapFigures:
    config = load_default_config()
    txn = TransactionData(
        amount=amount,
        currency=int(profiles.load(name).currency.hex()),
        date=bytes.fromhex("261121"),
        unpredictable_number=bytes.fromhex("1A2B3C4D"),
    )
    samples: list[float] = []
    report = None
    for i in range(runs + 10):
        card = SimulatedCard(name, seed=i)
        transport = as_transport(card)
        report = run_tap(transport, config, txn)
        if i >= 10:  # warm-up runs are not counted
            samples.append(report.elapsed_seconds - transport.compute_seconds)
    assert report is not None
    airtime = 0.0
    nbytes = 0
    for ex in report.recorder.exchanges:
        response = ex.response or b""
        airtime += exchange_seconds(ex.command, response)
        nbytes += len(ex.command) + len(response)
    return TapFigures(
        profile=name,
        outcome=report.result.outcome.value,
        apdus=len(report.recorder.exchanges),
        bytes_exchanged=nbytes,
        terminal_ms=statistics.median(samples) * 1000,
        airtime_ms=airtime * 1000,
        runs=runs,
    )


def run(runs: int = 200) -> list[TapFigures]:
    return [measure_profile(name, runs) for name in profiles.list_names()]


def markdown(rows: list[TapFigures]) -> str:
    lines = [
        "| profile | outcome | APDUs | bytes | terminal-side median (ms) | airtime at 106 kbit/s (ms) | ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        flag = "" if r.ratio <= TARGET_RATIO else " (over target)"
        lines.append(
            f"| {r.profile} | {r.outcome} | {r.apdus} | {r.bytes_exchanged} | {r.terminal_ms:.3f} | "
            f"{r.airtime_ms:.2f} | {r.ratio * 100:.1f}%{flag} |"
        )
    worst = max(rows, key=lambda r: r.ratio)
    lines.append("")
    lines.append(
        f"Worst ratio: {worst.profile} at {worst.ratio * 100:.1f}% "
        f"(target: at most {TARGET_RATIO * 100:.0f}% for every profile; "
        f"{'met' if worst.ratio <= TARGET_RATIO else 'NOT met'})."
    )
    return "\n".join(lines)
