"""Issue 11's speed figures: the host's authorisations per second against a bare TLS echo, and the fleet run.

Authorisations per second: a real host process (:func:`simulator.host.service.start_host`,
with ``workers`` and ``store`` when the host offers them) and, in the same run,
a bare TLS echo server (:mod:`bench.tls_echo`: the host's TLS settings and
certificates, no HTTP framework, no database) are driven by the same client:
``connections`` terminals enrolled with the host, each on its own mutual-TLS
connection kept alive (:class:`simulator.loadgen.https.HostConnection`), each
sending ``POST /v1/authorisations`` one after the other with real card data
(an ARQC per request from :class:`simulator.loadgen.cards.CardPool`, made
before the clock starts, every body ready). Rounds alternate echo and host;
the figures are the medians of the rounds, the ratio host / echo of those
medians. The server's CPU per request (its processes' user + system time
over the round) is given too: on a machine of two cores the client takes one
of them, and a rate can be the client's limit rather than the server's.

The fleet: :func:`simulator.loadgen.run.run_load` with its defaults (1,000
terminals, five minutes, the default fault schedule).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.host.service import HostService
from simulator.loadgen.cards import CardPool
from simulator.loadgen.fleet import Fleet, enrol_fleet, terminal_ids
from simulator.loadgen.https import HostConnection, Lost, NotSent
from simulator.loadgen.run import process_cpu_seconds
from simulator.loadgen.stats import percentile

__all__ = [
    "Combination",
    "PairFigures",
    "RateFigures",
    "fleet_markdown",
    "fleet_run",
    "measure",
    "rate_markdown",
]

TARGET_RATIO = 0.5
EUR = 978


@dataclass(frozen=True)
class Combination:
    store: str | None  # None: the embedded SQLite
    workers: int

    @property
    def label(self) -> str:
        store = "SQLite" if self.store is None else "PostgreSQL"
        return f"{store}, {self.workers} worker{'s' if self.workers > 1 else ''}"


@dataclass
class RateFigures:
    """Rounds of one server: requests answered, seconds, latencies, CPU."""

    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    server_cpu_per_request: list[float] = field(default_factory=list)
    client_cpu_share: list[float] = field(default_factory=list)
    failures: int = 0

    @property
    def rate(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0

    @property
    def server_ms(self) -> float:
        return 1000 * statistics.median(self.server_cpu_per_request) if self.server_cpu_per_request else 0.0


@dataclass
class PairFigures:
    combination: Combination
    connections: int
    seconds: float
    host: RateFigures
    echo: RateFigures

    @property
    def ratio(self) -> float:
        return self.host.rate / self.echo.rate if self.echo.rate else 0.0


def _bodies(fleet: Fleet, cards: CardPool, per_terminal: int, tag: str) -> list[list[tuple[str, bytes]]]:
    """Per terminal: (idempotency key, body) of ``per_terminal`` authorisations, each with its own ARQC."""
    out: list[list[tuple[str, bytes]]] = []
    for t in fleet.terminals:
        items: list[tuple[str, bytes]] = []
        for i in range(per_terminal):
            amount = 100 + (i * 37) % 4800
            if amount % 100 in (5, 51, 54):
                amount += 1
            tap = cards.tap_online(amount)
            txn_id = f"{tag}-{t.terminal_id}-{i:06d}"
            body = {
                "txn_id": txn_id, "kind": "sale", "amount": amount, "currency": EUR,
                "terminal_id": t.terminal_id, "merchant_id": t.merchant_id,
                "emv_data": tap.emv_data.hex().upper(), "pan_token": tap.pan_token, "original_txn_id": None,
            }  # fmt: skip
            items.append((txn_id, json.dumps(body, separators=(",", ":")).encode()))
        out.append(items)
    return out


async def _round(
    port: int, fleet: Fleet, work: Sequence[Sequence[tuple[str, bytes]]], seconds: float, pids: Sequence[int]
) -> tuple[int, float, list[float], float | None, float, int]:
    """(answered, seconds, latencies, server CPU, client CPU, failures) of one timed round."""
    connections = [HostConnection("127.0.0.1", port, t.context, idle_seconds=3600) for t in fleet.terminals]
    await asyncio.gather(*(c.request("GET", "/v1/echo") for c in connections))  # handshakes before the clock
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds

    async def terminal(connection: HostConnection, items: Sequence[tuple[str, bytes]]) -> None:
        nonlocal failures
        for key, body in items:
            if time.monotonic() >= deadline:
                return
            try:
                exchange = await connection.request("POST", "/v1/authorisations", body, [("Idempotency-Key", key)])
            except (NotSent, Lost):
                failures += 1
                continue
            if exchange.status == 200:
                latencies.append(exchange.seconds)
            else:
                failures += 1

    server_before = _cpu(pids)
    client_before = time.process_time()
    started = time.monotonic()
    await asyncio.gather(*(terminal(c, items) for c, items in zip(connections, work, strict=True)))
    elapsed = time.monotonic() - started
    client = time.process_time() - client_before
    server_after = _cpu(pids)
    for c in connections:
        c.close()
    server = None if server_before is None or server_after is None else server_after - server_before
    return len(latencies), elapsed, latencies, server, client, failures


def _cpu(pids: Sequence[int]) -> float | None:
    """CPU seconds of ``pids`` and their descendants (None if one cannot be read)."""
    total = 0.0
    for pid in pids:
        seconds = process_cpu_seconds(pid)
        if seconds is None:
            return None
        total += seconds
    return total


def _record(figures: RateFigures, result: tuple[int, float, list[float], float | None, float, int]) -> None:
    answered, elapsed, latencies, server, client, failures = result
    figures.rates.append(answered / elapsed)
    figures.latencies += latencies
    if server is not None and answered:
        figures.server_cpu_per_request.append(server / answered)
    figures.client_cpu_share.append(client / elapsed)
    figures.failures += failures


def _start_host(directory: Path, combination: Combination) -> HostService:
    from simulator.host.service import start_host

    return start_host(directory, log_level="warning", workers=combination.workers, store=combination.store)


def measure(
    directory: Path,
    combination: Combination,
    *,
    connections: int = 32,
    seconds: float = 5.0,
    rounds: int = 3,
    per_terminal: int = 150,
    database_pid: int | None = None,
) -> PairFigures:
    """Host and echo, ``rounds`` alternating rounds of ``seconds`` over ``connections`` terminals.

    ``database_pid``: the database server's process (PostgreSQL's postmaster), whose CPU (its backends'
    included) counts as the host's, as SQLite's does, in the host's process.
    """
    host = _start_host(directory / "host", combination)
    echo: subprocess.Popen[str] | None = None
    try:
        fleet = enrol_fleet(host.data_dir, terminal_ids(connections, "BH"), store=combination.store)
        cards = CardPool(CardPool.cards_for(connections * per_terminal * rounds) * 20, seed=11)
        echo = subprocess.Popen(
            [sys.executable, "-m", "bench.tls_echo", "--data-dir", str(host.data_dir), "--workers",
             str(combination.workers)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert echo.stdout is not None
        line = echo.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            raise RuntimeError(f"the TLS echo server did not start ({line})")
        echo_port = int(line[1])
        run = secrets.token_hex(2)  # txn ids of their own, should the store have served an earlier run
        echo_work = _bodies(fleet, cards, per_terminal, f"e{run}")
        host_figures, echo_figures = RateFigures(), RateFigures()
        for r in range(rounds):
            _record(echo_figures, asyncio.run(_round(echo_port, fleet, echo_work, seconds, [echo.pid])))
            work = _bodies(fleet, cards, per_terminal, f"r{run}{r}")
            server = [host.pid] if database_pid is None else [host.pid, database_pid]
            _record(host_figures, asyncio.run(_round(host.port, fleet, work, seconds, server)))
        return PairFigures(combination, connections, seconds, host_figures, echo_figures)
    finally:
        if echo is not None:
            echo.terminate()
            echo.wait(10)
        host.stop()


def rate_markdown(results: Sequence[PairFigures | tuple[Combination, str]]) -> str:
    rows = [
        "| host | authorisations/s (median) | TLS echo requests/s (median) | host / echo | p50 / p95 (ms) | "
        "server CPU per request, host (its database too) / echo (ms) | client CPU (share of a core) | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for item in results:
        if isinstance(item, tuple):
            combination, why = item
            rows.append(f"| {combination.label} | skipped: {why} | | | | | | |")
            continue
        h, e = item.host, item.echo
        met = "met" if item.ratio >= TARGET_RATIO else "NOT met"
        lat = h.latencies
        failures = f" ({h.failures} failed)" if h.failures else ""
        rows.append(
            f"| {item.combination.label} | {h.rate:,.0f}{failures} | {e.rate:,.0f} | {item.ratio:.0%} | "
            f"{1000 * percentile(lat, 50):.1f} / {1000 * percentile(lat, 95):.1f} | {h.server_ms:.2f} / "
            f"{e.server_ms:.2f} | {statistics.median(h.client_cpu_share):.0%} / "
            f"{statistics.median(e.client_cpu_share):.0%} | at least {TARGET_RATIO:.0%}: {met} |"
        )
    return "\n".join(rows)


def fleet_markdown(d: dict[str, Any]) -> str:
    """The fleet run's figures (the report's JSON, :meth:`simulator.loadgen.run.LoadReport.to_json`)."""
    auth = d["latency"].get("authorisation", {})
    calm = d["latency_without_faults"]["authorisation"]
    steady = d["latency_steady"]["authorisation"]
    books, settlement, cpu = d["books"], d["settlement"], d["cpu_seconds"]
    enrol, tls, throughput, memory = d["enrolment_seconds"], d["tls"], d["throughput_per_second"], d["memory_mb"]
    rows = [
        "| measure | figure |",
        "| --- | ---: |",
        f"| terminals, run time, mean pause between a terminal's payments | {d['terminals']:,}, "
        f"{d['duration_seconds']} s, {d['think_seconds']} s |",
        f"| enrolment: keys and CSRs / signed and recorded by the host / TLS contexts | {enrol['keys_and_csrs']} s "
        f"/ {enrol['host_ca_and_store']} s / {enrol['tls_contexts']} s |",
        f"| authorisations answered, per second | {auth.get('count', 0):,}, {throughput['authorisations']} /s |",
        f"| authorisation latency p50 / p95, whole run (answered exchanges) | {auth.get('p50_ms')} / "
        f"{auth.get('p95_ms')} ms |",
        f"| authorisation latency p50 / p95 while no fault was in force ({calm['count']:,} answers) | "
        f"{calm['p50_ms']} / {calm['p95_ms']} ms |",
        f"| authorisation latency p50 / p95 once no fault had been in force for "
        f"{d['latency_steady']['after_a_fault_seconds']:g} s ({steady['count']:,} answers) | "
        f"{steady['p50_ms']} / {steady['p95_ms']} ms |",
        f"| all messages answered per second | {throughput['all_messages']} /s |",
        f"| TLS handshakes / connections reused | {tls['handshakes']:,} / {tls['connections_reused']:,} |",
        f"| CPU: the generator (share of one core; of it, the card taps) / the host | {cpu['client']} s "
        f"({cpu['client_share_of_one_core']:.0%}; {cpu['card_taps']} s) / {cpu['host']} s |",
        f"| answers that came while the host was down | {d['answers_while_down']} |",
        f"| memory (peak resident): the generator / the host | {memory['client']} MB / {memory['host']} MB |",
        f"| batches closed in balance | {settlement['closed_in_balance']:,} of {settlement['batches']:,} |",
        f"| books: counted by the terminals / by the host | {books['counted_by_terminals']:,} / "
        f"{books['counted_by_host']:,} |",
        f"| lost / unknown to the terminals / different / duplicated | {len(books['missing_at_host'])} / "
        f"{len(books['unknown_to_terminals'])} / {len(books['different'])} / {len(books['duplicated'])} |",
        f"| verdict | {'books match, every batch in balance' if d['ok'] else 'BOOKS DO NOT MATCH'} |",
    ]
    timeline = "; ".join(f"{f['at_seconds']} s: {f['in_force']}" for f in d["faults"])
    outcomes = ", ".join(f"{k} x{n:,}" for k, n in d["outcomes"].items())
    kinds = ", ".join(f"{k} x{n}" for k, n in d["errors"].items()) or "none"
    return (
        "\n".join(rows)
        + f"\n\nFaults: {timeline or 'none'}.\n\nWhat the terminals did: {outcomes}.\n\nErrors by kind: {kinds}."
    )


def fleet_run(argv: Sequence[str], scratch: Path | None = None) -> dict[str, Any]:
    """Run ``posterm host load --json`` with ``argv`` as a process of its own (temporary files in ``scratch``)."""
    env = dict(os.environ, TMPDIR=str(scratch)) if scratch is not None else None
    done = subprocess.run(
        [sys.executable, "-m", "simulator.loadgen", "--json", *argv], capture_output=True, text=True, check=False,
        env=env,
    )  # fmt: skip
    if done.returncode not in (0, 1):
        raise RuntimeError(f"the load run failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report
