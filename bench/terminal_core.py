"""Durable offline approvals through the terminal vs raw SQLite commits; SAF forwarding.

Both rates are measured in one run, on the same disk, with the same SQLite
settings (WAL, synchronous=FULL): the raw rate is one single-row INSERT per
committed transaction; the terminal's is complete offline approvals (card
tap on a simulated card, journal rows, encrypted card data, the SAF entry,
all in one commit).  Target: the terminal at least half the raw rate.
Then the time to forward 10,000 queued entries to the in-process host (the
simulated acquirer over an in-memory database).
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from simulator.host.inprocess import InProcessHost
from terminal.bootstrap import open_terminal
from terminal.facade import TerminalEvent, TerminalSettings
from terminal.offline import OfflineLimits
from terminal.store import PAGE_SIZE

TARGET_RATIO = 0.5


@dataclass(frozen=True)
class CoreFigures:
    approvals_per_second: float  # the terminal's durable approval step, after the card was read
    sales_per_second: float  # whole sales, terminal time: EMV kernel included, the card's computing subtracted
    sales_per_second_with_card: float  # whole sales, wall clock, the simulated card's RSA signing included
    raw_inserts_per_second: float
    raw_inserts_per_second_1k: float  # the same with 1 KiB pages, for comparison
    approvals: int
    raw_inserts: int
    forward_entries: int
    forward_seconds: float

    @property
    def ratio(self) -> float:
        return self.approvals_per_second / self.raw_inserts_per_second


def raw_insert_rate(directory: Path, count: int, page_size: int = PAGE_SIZE) -> float:
    """Single-row INSERTs, each its own committed transaction, with the store's settings
    (WAL, synchronous=FULL, its page size unless another is given)."""
    conn = sqlite3.connect(str(directory / f"raw-{page_size}.sqlite"), isolation_level=None)
    conn.execute(f"PRAGMA page_size={page_size}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, txn TEXT, amount INTEGER, data BLOB)")
    payload = bytes(200)
    started = time.perf_counter()
    for i in range(count):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t(txn, amount, data) VALUES(?, ?, ?)", (f"txn-{i}", i, payload))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return count / elapsed


def _settings(capacity: int) -> TerminalSettings:
    limits = OfflineLimits(
        per_payment={978: 5000},
        total_per_currency={978: 5000 * capacity},
        max_count=capacity,
        max_age_seconds=10**9,
    )
    return TerminalSettings(offline_limits=limits)


def offline_approval_rate(directory: Path, count: int) -> float:
    """Durable offline approvals per second: the terminal's step after the card was read.

    Public calls only: ``count`` whole sales (``Terminal.sale``) on an offline
    card, each timed through the events the terminal emits, from the last
    event of the card reading (the kernel's outcome message) to the first
    ``state_changed`` (emitted once the new payment's commit returned): what
    lies between is the approval step (new transaction id, the card data
    encrypted, the journal row, the sensitive data, the SAF entry, one
    commit).  The rate is ``count`` over the sum of those steps.  (Timing
    whole sales less the same number of taps alone left the step as the
    difference of two figures ten times its size, each with the simulated
    card's RSA signing in it: it moved by tens of percent between runs.)
    """
    terminal = open_terminal(
        directory / "approvals", reader_url="sim:card=visa-qvsdc-offline", host="none", settings=_settings(count + 10)
    )
    steps: list[float] = []
    card_done: list[float] = []

    def listen(event: TerminalEvent) -> None:
        now = time.perf_counter()
        if event.kind in ("card_prompt", "ui_message"):
            card_done[:] = [now]
        elif event.kind == "state_changed" and card_done:
            steps.append(now - card_done[0])
            card_done.clear()

    unsubscribe = terminal.subscribe(listen)
    try:
        for _ in range(count):
            if not terminal.sale(1234, 978).approved:
                raise RuntimeError("benchmark approval not approved")
    finally:
        unsubscribe()
        terminal.close()
    if len(steps) != count:
        raise RuntimeError(f"timed {len(steps)} approval steps of {count} sales")
    return count / sum(steps)


def sale_rate(directory: Path, count: int) -> tuple[float, float]:
    """Whole sales: (per second of terminal time, per second of wall clock with the simulated card)."""
    terminal = open_terminal(
        directory / "sales", reader_url="sim:card=visa-qvsdc-offline", host="none", settings=_settings(count + 10)
    )
    card = terminal.reader.card  # type: ignore[union-attr]
    card_before = card.compute_seconds
    started = time.perf_counter()
    for _ in range(count):
        if not terminal.sale(1234, 978).approved:
            raise RuntimeError("benchmark sale not approved")
    elapsed = time.perf_counter() - started
    card_seconds = card.compute_seconds - card_before
    terminal.close()
    return count / (elapsed - card_seconds), count / elapsed


def forward_time(directory: Path, entries: int) -> float:
    terminal = open_terminal(
        directory / "forward",
        reader_url="sim:card=visa-qvsdc-offline",
        host="none",
        settings=_settings(entries + 10),
    )
    for _ in range(entries):
        terminal.sale(1234, 978)
    terminal.host = InProcessHost()
    started = time.perf_counter()
    report = terminal.forward_now()
    elapsed = time.perf_counter() - started
    if report.accepted != entries:
        raise RuntimeError(f"forwarded {report.accepted} of {entries}: {report.stopped_by}")
    terminal.close()
    return elapsed


def run(approvals: int = 1000, raw: int = 2000, forward_entries: int = 10_000, rounds: int = 7) -> CoreFigures:
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as tmp:
        base = Path(tmp)
        raw_rates: list[float] = []
        raw_1k_rates: list[float] = []
        app_rates: list[float] = []
        sale_rates: list[float] = []
        wall_rates: list[float] = []
        for i in range(rounds):  # interleaved, so that all see the same disk conditions
            round_dir = base / f"round{i}"
            round_dir.mkdir()
            raw_rates.append(raw_insert_rate(round_dir, raw))
            raw_1k_rates.append(raw_insert_rate(round_dir, raw, page_size=1024))
            app_rates.append(offline_approval_rate(round_dir, approvals))
            terminal_rate, wall_rate = sale_rate(round_dir, approvals)
            sale_rates.append(terminal_rate)
            wall_rates.append(wall_rate)
        seconds = forward_time(base, forward_entries)
    return CoreFigures(
        approvals_per_second=statistics.median(app_rates),
        sales_per_second=statistics.median(sale_rates),
        sales_per_second_with_card=statistics.median(wall_rates),
        raw_inserts_per_second=statistics.median(raw_rates),
        raw_inserts_per_second_1k=statistics.median(raw_1k_rates),
        approvals=approvals,
        raw_inserts=raw,
        forward_entries=forward_entries,
        forward_seconds=seconds,
    )


def markdown(f: CoreFigures) -> str:
    met = "met" if f.ratio >= TARGET_RATIO else "NOT met"
    return "\n".join(
        [
            "| measure | figure |",
            "| --- | ---: |",
            f"| durable offline approvals through the terminal | {f.approvals_per_second:,.0f} /s |",
            f"| raw single-row committed SQLite inserts (WAL, synchronous=FULL) | {f.raw_inserts_per_second:,.0f} /s |",
            f"| ratio (target at least {TARGET_RATIO:.0%}) | {f.ratio:.0%} ({met}) |",
            f"| for comparison: raw inserts with 1 KiB pages, and the terminal's rate against them | "
            f"{f.raw_inserts_per_second_1k:,.0f} /s ({f.approvals_per_second / f.raw_inserts_per_second_1k:.0%}) |",
            f"| whole sales on a simulated card, terminal time (EMV kernel included, the card's own computing "
            f"subtracted) | {f.sales_per_second:,.0f} /s |",
            f"| whole sales, wall clock (the simulated card's RSA signing included) | "
            f"{f.sales_per_second_with_card:,.0f} /s |",
            f"| forward {f.forward_entries:,} queued entries to the in-memory host | {f.forward_seconds:.2f} s "
            f"({f.forward_entries / f.forward_seconds:,.0f} entries/s) |",
        ]
    )
