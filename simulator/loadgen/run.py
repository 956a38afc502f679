"""A load run from start to end: the host, the fleet, the payments with faults, settlement, the books compared.

:func:`run_load` starts a host in a fresh data directory (or uses the one
running on ``data_dir``), enrols the fleet in bulk, precomputes the offline
approvals, runs every terminal in one asyncio loop for ``duration`` seconds
while the fault schedule switches the host's faults, clears the faults, lets
every terminal drain its reversals and stored payments and close its batch,
and compares the terminals' books with the host's records
(:func:`simulator.loadgen.books.reconcile`). The :class:`LoadReport` says
what happened; :attr:`LoadReport.ok` is the verdict: every batch closed in
balance and the books match.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import secrets
import string
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from simulator.loadgen.books import Reconciliation, reconcile
from simulator.loadgen.cards import CardPool
from simulator.loadgen.fleet import Fleet, enrol_fleet, source_addresses, terminal_ids
from simulator.loadgen.https import HostConnection, TransportStats
from simulator.loadgen.schedule import FaultChange, FaultStep, change_faults, default_schedule, run_schedule
from simulator.loadgen.sim_terminal import Mix, Settlement, SimTerminal
from simulator.loadgen.stats import RunStats, percentile

__all__ = ["LoadError", "LoadOptions", "LoadReport", "peak_resident_mb", "process_cpu_seconds", "run_load"]


#: "Steady": no fault in force, and none for this long (the terminals' backlogs after a fault are sent by then).
RECOVERY_SECONDS = 10.0
#: A 'down' counts from this long after the host said it applied it (an answer already on its way may still land).
DOWN_GRACE_SECONDS = 0.5


class LoadError(RuntimeError):
    """The run could not be made (no host, a host that would not start); one line."""


@dataclass(frozen=True)
class LoadOptions:
    """What to run. ``faults`` None: :func:`~simulator.loadgen.schedule.default_schedule` of the duration."""

    terminals: int = 1000
    duration: float = 300.0
    mix: Mix = field(default_factory=Mix)
    faults: tuple[FaultStep, ...] | None = None
    data_dir: Path | None = None  # a host's data directory (its running server is used), else a fresh one
    workers: int | None = None  # worker processes of the host it starts
    store: str | None = None  # the host's database (a postgresql:// URL; None: host.db in the data directory)
    serve_args: tuple[str, ...] = ()  # more 'posterm host serve' options for the host it starts
    source_addresses: int | None = None  # None: one loopback address per terminal; 1: all from 127.0.0.1
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    idle_seconds: float = 4.0  # a connection idle that long is not reused (the host's keep-alive is 5 s)
    settle_seconds: float = 120.0
    seed: int | None = None
    scratch: Path | None = None  # where temporary files go (the fresh host, the keys for a moment)


@dataclass
class LoadReport:
    """Everything measured; :meth:`to_json` for ``--json``, :meth:`text` for people."""

    options: LoadOptions
    url: str
    host_pid: int
    fleet: Fleet
    stats: RunStats
    transport: TransportStats
    run_seconds: float
    client_cpu_seconds: float
    host_cpu_seconds: float | None
    card_tap_seconds: float
    card_taps: int
    offline_precompute_seconds: float
    offline_precomputed: int
    fault_log: list[FaultChange]
    settlements: list[Settlement]
    reconciliation: Reconciliation
    settle_seconds: float
    client_peak_mb: float
    host_peak_mb: float | None
    calm: list[tuple[float, float]]  # monotonic windows of the run with no fault in force
    run_started: float  # monotonic
    answered_in_run: dict[str, int]  # answers per message while the terminals paid (settlement's left out)
    answers_while_down: int  # answers that came while the host was down (from DOWN_GRACE_SECONDS after it went)
    notes: list[str] = field(default_factory=list)

    @property
    def in_balance(self) -> int:
        return sum(1 for s in self.settlements if s.closed and s.in_balance)

    @property
    def ok(self) -> bool:
        return self.in_balance == len(self.settlements) and self.reconciliation.matched

    def throughput(self, message: str = "authorisation") -> float:
        return self.answered_in_run.get(message, 0) / self.run_seconds if self.run_seconds else 0.0

    def calm_latency(self, message: str = "authorisation", *, settled: float = 0.0) -> dict[str, Any]:
        """p50 / p95 of ``message`` answered while no fault was in force (and none for ``settled`` seconds)."""
        windows = [(a + settled if a > self.run_started else a, b) for a, b in self.calm]
        samples = self.stats.between(message, [(a, b) for a, b in windows if a < b])
        return {
            "count": len(samples),
            "p50_ms": round(1000 * percentile(samples, 50), 2),
            "p95_ms": round(1000 * percentile(samples, 95), 2),
        }

    def to_json(self) -> dict[str, Any]:
        unsettled = [s for s in self.settlements if not (s.closed and s.in_balance)]
        payments = self.stats.payments
        return {
            "ok": self.ok,
            "url": self.url,
            "terminals": self.options.terminals,
            "duration_seconds": round(self.run_seconds, 2),
            "think_seconds": self.options.mix.think_seconds,
            "enrolment_seconds": {
                "keys_and_csrs": round(self.fleet.keys_seconds, 3),
                "host_ca_and_store": round(self.fleet.enrol_seconds, 3),
                "tls_contexts": round(self.fleet.contexts_seconds, 3),
            },
            "throughput_per_second": {
                "authorisations": round(self.throughput("authorisation"), 1),
                "all_messages": round(sum(self.answered_in_run.values()) / self.run_seconds, 1),
            },
            "latency": self.stats.latency_json(),
            "latency_without_faults": {"authorisation": self.calm_latency()},
            "latency_steady": {
                "after_a_fault_seconds": RECOVERY_SECONDS,
                "authorisation": self.calm_latency(settled=RECOVERY_SECONDS),
            },
            "answers_while_down": self.answers_while_down,
            "sale_end_to_end": {
                "count": len(payments),
                "p50_ms": round(1000 * percentile(payments, 50), 2),
                "p95_ms": round(1000 * percentile(payments, 95), 2),
            },
            "requests": dict(self.stats.requests),
            "replayed": dict(self.stats.replayed),
            "outcomes": dict(sorted(self.stats.outcomes.items())),
            "errors": dict(self.stats.errors.most_common()),
            "tls": {
                "handshakes": self.transport.handshakes,
                "handshake_ms_mean": round(
                    1000 * self.transport.handshake_seconds / max(1, self.transport.handshakes), 2
                ),
                "connections_reused": self.transport.reused,
            },
            "cpu_seconds": {
                "client": round(self.client_cpu_seconds, 2),
                "client_share_of_one_core": round(self.client_cpu_seconds / self.run_seconds, 3),
                "host": None if self.host_cpu_seconds is None else round(self.host_cpu_seconds, 2),
                "card_taps": round(self.card_tap_seconds, 2),
            },
            "memory_mb": {
                "client": round(self.client_peak_mb, 1),
                "host": None if self.host_peak_mb is None else round(self.host_peak_mb, 1),
            },
            "cards": {
                "online_taps": self.card_taps,
                "offline_precomputed": self.offline_precomputed,
                "offline_precompute_seconds": round(self.offline_precompute_seconds, 2),
            },
            "faults": [
                {"at_seconds": c.applied, "asked_at_seconds": c.asked, "in_force": c.in_force} for c in self.fault_log
            ],
            "settlement": {
                "batches": len(self.settlements),
                "closed_in_balance": self.in_balance,
                "seconds": round(self.settle_seconds, 2),
                "not_in_balance": [
                    {
                        "terminal_id": s.terminal_id,
                        "closed": s.closed,
                        "reason": s.reason,
                        "differences": list(s.differences),
                    }
                    for s in unsettled[:20]
                ],
            },
            "books": self.reconciliation.to_json(),
            "notes": self.notes,
        }

    def text(self) -> str:
        doc = self.to_json()
        lat = doc["latency"].get("authorisation", {"p50_ms": 0, "p95_ms": 0, "count": 0})
        calm = doc["latency_without_faults"]["authorisation"]
        steady = doc["latency_steady"]["authorisation"]
        books = self.reconciliation
        lines = [
            f"{self.options.terminals} terminals for {self.run_seconds:.0f} s against {self.url}",
            f"enrolment: {self.fleet.keys_seconds:.2f} s keys and CSRs, {self.fleet.enrol_seconds:.2f} s signed "
            f"and recorded by the host, {self.fleet.contexts_seconds:.2f} s TLS contexts",
            f"authorisations: {lat['count']} answered, {self.throughput():.1f}/s, p50 {lat['p50_ms']} ms, "
            f"p95 {lat['p95_ms']} ms; with no fault in force p50 {calm['p50_ms']} ms, p95 {calm['p95_ms']} ms; "
            f"{RECOVERY_SECONDS:g} s or more after the last fault p50 {steady['p50_ms']} ms, p95 {steady['p95_ms']} ms",
            f"CPU: client {self.client_cpu_seconds:.1f} s ({doc['cpu_seconds']['client_share_of_one_core']:.0%} of "
            f"one core), host {doc['cpu_seconds']['host']} s",
            f"memory (peak resident): client {doc['memory_mb']['client']} MB, host {doc['memory_mb']['host']} MB",
            f"TLS handshakes {self.transport.handshakes}, connections reused {self.transport.reused}",
            f"answers that came while the host was down: {self.answers_while_down}",
            "faults: " + ("; ".join(f"{c.applied:g} s: {c.in_force}" for c in self.fault_log) or "none"),
            "errors by kind: " + (", ".join(f"{k} x{n}" for k, n in self.stats.errors.most_common()) or "none"),
            f"settlement: {self.in_balance} of {len(self.settlements)} batches closed in balance",
            f"books: {books.counted_by_terminals} payments counted by the terminals, {books.counted_by_host} "
            f"by the host; missing at the host {len(books.missing_at_host)}, unknown to the terminals "
            f"{len(books.unknown_to_terminals)}, different {len(books.different)}, duplicated {len(books.duplicated)}",
            "verdict: "
            + ("books match, every batch in balance" if self.ok else "BOOKS DO NOT MATCH or not in balance"),
        ]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` and its descendants, live or reaped (Linux /proc); None if unreadable."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        # utime, stime, and cutime, cstime: the children it has reaped (a database's finished backends)
        stats[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / ticks)
    if pid not in stats:
        return None
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        total += stats[current][1]
        todo += [p for p, (parent, _) in stats.items() if parent == current]
    return total


def peak_resident_mb(pid: int) -> float | None:
    """The peak resident memory (VmHWM) of ``pid`` and its live descendants, in MB (Linux /proc); None if unreadable."""
    try:
        children = {int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()}
    except OSError:
        return None
    parents: dict[int, int] = {}
    for child in children:
        try:
            raw = Path(f"/proc/{child}/stat").read_text()
        except OSError:
            continue
        parents[child] = int(raw[raw.rfind(")") + 2 :].split()[1])
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            if current == pid:
                return None
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
        todo += [p for p, parent in parents.items() if parent == current]
    return total


def _raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = hard if hard == resource.RLIM_INFINITY else min(hard, max(needed, soft))
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise LoadError(f"{needed} open files needed and the limit is {soft} (ulimit -n)")


@contextlib.contextmanager
def _host(options: LoadOptions) -> Iterator[tuple[Path, str, int]]:
    """(data dir, url, pid) of the host to load: the one running on ``data_dir``, or one started here."""
    from simulator.host.faults import running_server
    from simulator.host.service import HostStartError, start_host

    if options.data_dir is not None:
        info = running_server(options.data_dir)
        if info is not None:
            if options.workers is not None or options.serve_args:
                raise LoadError("--workers and --serve-args are for a host the run starts, not a running one")
            yield options.data_dir, info.url, info.pid
            return
    with contextlib.ExitStack() as stack:
        if options.data_dir is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="loadgen-host-", dir=options.scratch))
            data_dir = Path(folder) / "host"
        else:
            data_dir = options.data_dir
        try:
            host = start_host(
                data_dir,
                log_level="warning",
                workers=options.workers or 1,
                extra_args=options.serve_args,
                store=options.store,
            )
        except HostStartError as exc:
            raise LoadError(f"the host did not start: {exc}") from None
        stack.enter_context(host)
        yield data_dir, host.url, host.pid


def run_load(options: LoadOptions) -> LoadReport:
    """Run ``options`` (see the module docstring); raises :class:`LoadError` when the run cannot be made."""
    if options.terminals < 1 or options.duration <= 0:
        raise LoadError("at least one terminal and a duration above 0 s")
    _raise_open_files(options.terminals + 256)
    faults = options.faults if options.faults is not None else default_schedule(options.duration)
    seed = options.seed if options.seed is not None else secrets.randbits(32)
    with _host(options) as (data_dir, url, pid):
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 443
        spread = options.terminals if options.source_addresses is None else options.source_addresses
        prefix = "".join(secrets.choice(string.ascii_uppercase) for _ in range(2))
        fleet = enrol_fleet(
            data_dir, terminal_ids(options.terminals, prefix), sources=source_addresses(host, spread),
            scratch=options.scratch, store=options.store,
        )  # fmt: skip
        expected = options.terminals * options.duration / options.mix.think_seconds
        cards = CardPool(CardPool.cards_for(int(expected * 2) + 1) * 50, offline=20, seed=seed)
        offline_wanted = int(expected * options.mix.offline_share * 1.2) + 1
        cards.precompute_offline(offline_wanted, list(range(options.mix.min_amount, options.mix.max_amount + 1)))
        driven = asyncio.run(_drive(options, fleet, cards, faults, data_dir, host, port, pid, seed))
        from simulator.host.admin import records

        report = LoadReport(
            options=options,
            url=url,
            host_pid=pid,
            fleet=fleet,
            stats=driven.stats,
            transport=driven.transport,
            run_seconds=driven.run_seconds,
            client_cpu_seconds=driven.client_cpu_seconds,
            host_cpu_seconds=driven.host_cpu_seconds,
            card_tap_seconds=driven.card_tap_seconds,
            card_taps=cards.taps,
            offline_precompute_seconds=cards.precompute_seconds,
            offline_precomputed=offline_wanted,
            fault_log=driven.fault_log,
            settlements=driven.settlements,
            reconciliation=reconcile([t.books for t in driven.terminals], records(data_dir, store=options.store)),
            settle_seconds=driven.settle_seconds,
            client_peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            host_peak_mb=driven.host_peak_mb,
            calm=driven.calm,
            run_started=driven.started,
            answered_in_run=driven.answered_in_run,
            answers_while_down=driven.answers_while_down,
        )
        if spread < options.terminals or host != "127.0.0.1":
            report.notes.append(
                f"the terminals connect from {min(spread, options.terminals)} address(es): the host's "
                f"--max-client-connections must allow {-(-options.terminals // max(1, spread))} each"
            )
        else:
            report.notes.append(f"terminals spread over {min(spread, options.terminals)} loopback client addresses")
        return report


@dataclass
class _Driven:
    terminals: list[SimTerminal]
    stats: RunStats
    transport: TransportStats
    run_seconds: float
    client_cpu_seconds: float
    host_cpu_seconds: float | None
    card_tap_seconds: float
    fault_log: list[FaultChange]
    settlements: list[Settlement]
    settle_seconds: float
    host_peak_mb: float | None
    calm: list[tuple[float, float]]
    answered_in_run: dict[str, int]
    answers_while_down: int
    started: float


def _windows(
    started: float, ended: float, fault_log: list[FaultChange], wanted: Callable[[str], bool]
) -> list[tuple[float, float]]:
    """The windows of ``[started, ended)`` whose faults in force are ``wanted``, surely so.

    A window opens once the host applied a wanted change and closes as soon as the next change was asked;
    before the first change no fault was in force.
    """
    windows: list[tuple[float, float]] = []
    since: float | None = started if wanted("none") else None
    for change in fault_log:
        if wanted(change.in_force):
            since = started + change.applied if since is None else since
        elif since is not None:
            windows.append((since, started + change.asked))
            since = None
    if since is not None:
        windows.append((since, ended))
    return [(a, min(b, ended)) for a, b in windows if a < min(b, ended)]


async def _drive(
    options: LoadOptions,
    fleet: Fleet,
    cards: CardPool,
    faults: tuple[FaultStep, ...],
    data_dir: Path,
    host: str,
    port: int,
    pid: int,
    seed: int,
) -> _Driven:
    """The run proper: every terminal paying for ``options.duration`` under the faults, then settlement."""
    from simulator.host.faults import Faults

    stats = RunStats()
    transport = TransportStats()
    run_id = secrets.token_hex(3)
    terminals = [
        SimTerminal(
            identity,
            HostConnection(
                host,
                port,
                identity.context,
                source=identity.source,
                connect_timeout=options.connect_timeout,
                read_timeout=options.read_timeout,
                idle_seconds=options.idle_seconds,
                stats=transport,
            ),
            cards,
            stats,
            run_id=run_id,
            mix=options.mix,
            seed=seed + i,
        )
        for i, identity in enumerate(fleet.terminals)
    ]
    stop = asyncio.Event()
    fault_log: list[FaultChange] = []
    host_cpu_before = process_cpu_seconds(pid)
    cpu_before = time.process_time()
    taps_before = cards.tap_seconds
    started = time.monotonic()
    schedule = asyncio.create_task(run_schedule(data_dir, faults, started, fault_log))
    tasks = [asyncio.create_task(t.run(stop)) for t in terminals]
    await asyncio.sleep(options.duration)
    stop.set()
    await asyncio.gather(*tasks)
    ended = time.monotonic()
    run_seconds = ended - started
    answered_in_run = {message: len(samples) for message, samples in stats.latencies.items()}
    client_cpu = time.process_time() - cpu_before
    host_cpu_after = process_cpu_seconds(pid)
    host_peak = peak_resident_mb(pid)
    tap_seconds = cards.tap_seconds - taps_before
    schedule.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await schedule
    cleared = await change_faults(data_dir, Faults(), "none", started)
    if fault_log and fault_log[-1].in_force != "none":
        fault_log.append(cleared)
    settle_started = time.monotonic()
    deadline = settle_started + options.settle_seconds
    settlements = list(await asyncio.gather(*(t.settle(deadline) for t in terminals)))
    settle_seconds = time.monotonic() - settle_started
    for t in terminals:
        t.connection.close()
    host_cpu = None if host_cpu_before is None or host_cpu_after is None else host_cpu_after - host_cpu_before
    calm = _windows(started, ended, fault_log, lambda faults: faults == "none")
    down = _windows(started, ended, fault_log, lambda faults: "down@" in faults)
    return _Driven(
        terminals,
        stats,
        transport,
        run_seconds,
        client_cpu,
        host_cpu,
        tap_seconds,
        fault_log,
        settlements,
        settle_seconds,
        host_peak,
        calm,
        answered_in_run,
        sum(len(stats.between(m, [(a + DOWN_GRACE_SECONDS, b) for a, b in down])) for m in stats.latencies),
        started,
    )
