"""Crash-consistency torture: a payment stream killed with SIGKILL at random moments, again and again.

A child process (``crash_worker.py``) opens the terminal on a file-backed
SQLite store and the in-process host (``memory``, its SQLite database in the
same data directory), and runs
a random stream of offline and online sales, host faults (down, no answer),
forwarding, voids and settlements.  It reports each result on stdout only
after the call returned, i.e. once the terminal made it durable.  The parent
kills it with SIGKILL at a random moment (sometimes while it starts or
recovers, often right after it announced a call, so that the kill lands in
the middle of a payment), restarts the terminal in-process (recovery is part
of a restart) and checks, against everything the children ever reported:

1. the journal's hash chain verifies, and every transaction's state is what
   the journal says;
2. every payment reported approved is still there, with its amount, in a
   state that can follow the reported one: never missing, never cancelled or
   reversed; voided only if a void of it was started; declined after
   forwarding only for a deferred authorisation the host's rules decline;
   what was reported declined or voided stays so;
3. no payment is queued twice: at most one SAF entry per transaction, exactly
   one queued entry for each offline / deferred approval, none for anything
   else; the host's answer is recorded for every forwarded entry;
4. nothing is left ``started`` or ``authorising`` after recovery; every
   ``reversal_pending`` / ``void_pending`` has exactly one queued reversal and
   nothing else has one; sensitive card data is kept only while a payment
   waits to be forwarded;
5. at the host (its database): no transaction accepted twice; every
   payment the terminal holds as approved online or forwarded is charged
   exactly once and not reversed; nothing the terminal holds as declined,
   cancelled, reversed or voided is still charged, unless its reversal is
   still queued; every delivered reversal reached the host; every charge
   belongs to a transaction the terminal knows;
6. the open batch's totals (``Terminal.batch_lines``) are the sum of its
   approved transactions, and every settlement the children made was in
   balance and none was refused for a reused idempotency key;
7. a payment is marked shown only if a child reported it (as a command
   prints it), and every payment with an outcome that no child reported (the
   kill came between its commit and the report) is among those the next
   start tells (``Terminal.unshown_payments``);
8. the money rule, on the terminal's books and on the host's records: for
   every sale, what the customer has paid is the sale amount less its
   refunds (refunds still in flight counted), or nothing if voided or
   reversed, and never below nothing; no refund counts against a sale that
   no longer does.

``POSTERM_TORTURE_KILLS`` sets the number of kills (default 200) and
``POSTERM_TORTURE_SEED`` the master seed (default: random, printed; each
round's child seed and kill timing derive from it).
"""

from __future__ import annotations

import collections
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from simulator.host.inprocess import InProcessHost, memory_host_database
from terminal.bootstrap import open_terminal
from terminal.lifecycle import APPROVED_STATES, COUNTED_REFUND_STATES, State, customer_paid

WORKER = Path(__file__).with_name("crash_worker.py")
REPO = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("POSTERM_TORTURE_KILLS", "200"))
MAGIC_ENDINGS = (51, 5, 54)  # amounts the simulated issuer declines (see simulator.host.issuer)
START_TIMEOUT = 60.0  # seconds for a child to import, open and recover (slow CI)
# One result line closes each BEGIN (a forward before a settle is its own BEGIN / FORWARD pair).
RESULT_WORDS = frozenset({"APPROVED", "DECLINED", "VOIDED", "REFUSED", "FORWARD", "SETTLED", "REFUNDED"})

S = State
VOID_STATES = frozenset({S.VOID_PENDING, S.VOIDED})
# What a payment reported approved in a given state may have become since (without a void).
LATER_STATES: dict[State, frozenset[State]] = {
    S.APPROVED: frozenset({S.APPROVED}),
    S.OFFLINE_APPROVED: frozenset({S.OFFLINE_APPROVED, S.FORWARDED}),
    S.DEFERRED_APPROVED: frozenset({S.DEFERRED_APPROVED, S.FORWARDED}),
}
QUEUED_STATES = frozenset({S.OFFLINE_APPROVED, S.DEFERRED_APPROVED})
REVERSING_STATES = frozenset({S.REVERSAL_PENDING, S.VOID_PENDING})
# States in which the host may hold a live (approved, not reversed) charge for the transaction.
HOST_MAY_CHARGE = APPROVED_STATES | REVERSING_STATES


@dataclass
class Ledger:
    """Everything the children reported, over all rounds."""

    approved: dict[str, tuple[int, State]] = field(default_factory=dict)  # txn -> (amount, reported state)
    declined: dict[str, State] = field(default_factory=dict)
    void_started: set[str] = field(default_factory=set)
    voided: dict[str, State] = field(default_factory=dict)
    forward_declined: set[str] = field(default_factory=set)
    settlements: list[tuple[int, bool]] = field(default_factory=list)
    settle_conflicts: list[str] = field(default_factory=list)
    refused: collections.Counter[str] = field(default_factory=collections.Counter)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    reported: set[str] = field(default_factory=set)  # payments whose result a child printed

    def take(self, line: str) -> None:
        word, *args = line.split(" ")
        self.counts[word] += 1
        if word in ("APPROVED", "DECLINED", "REFUNDED"):
            self.reported.add(args[0])
        if word == "APPROVED":
            self.approved[args[0]] = (int(args[1]), State(args[2]))
        elif word == "DECLINED":
            self.declined[args[0]] = State(args[2])
        elif word == "BEGIN" and args[0] == "void":
            self.void_started.add(args[1])
        elif word == "VOIDED":
            self.voided[args[0]] = State(args[1])
        elif word == "FWD_DECLINED":
            self.forward_declined.add(args[0])
        elif word == "SETTLED":
            self.settlements.append((int(args[0]), args[1] == "1"))
        elif word == "REFUSED":
            self.refused[f"{args[0]}:{args[1]}"] += 1
            if args[0] == "settle" and "idempotency key reused" in line:
                self.settle_conflicts.append(line)


@dataclass
class Stats:
    kills: int = 0
    kills_by_mode: collections.Counter[str] = field(default_factory=collections.Counter)
    kills_before_ready: int = 0
    kills_mid_call: collections.Counter[str] = field(default_factory=collections.Counter)
    recovered_by_parent: int = 0
    recovered_by_child: int = 0
    states_seen: collections.Counter[str] = field(default_factory=collections.Counter)
    host_records: int = 0
    journal_rows: int = 0
    unshown: int = 0  # payments with an outcome that no child reported: the next start tells them
    unshown_approved: int = 0


class ChildOutput:
    """The child's stdout, read line by line as it comes (select on the pipe, no threads)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._fd = stream.fileno()
        self._buf = b""
        self.lines: list[str] = []
        self.eof = False

    def _pump(self, timeout: float) -> None:
        ready, _, _ = select.select([self._fd], [], [], max(timeout, 0.0))
        if not ready:
            return
        chunk = os.read(self._fd, 65536)
        if not chunk:
            self.eof = True
            return
        *complete, self._buf = (self._buf + chunk).split(b"\n")
        self.lines.extend(c.decode() for c in complete)

    def wait_for(self, predicate: Callable[[str], bool], count: int, timeout: float) -> bool:
        """Read until ``count`` lines satisfy ``predicate``; False at EOF or on the timeout."""
        deadline = time.monotonic() + timeout
        seen, scanned = 0, 0
        while True:
            for line in self.lines[scanned:]:
                seen += predicate(line)
            scanned = len(self.lines)
            if seen >= count:
                return True
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                return False
            self._pump(left)

    def drain(self, timeout: float = 30.0) -> None:
        """Read to EOF (the child is dead; what it wrote is still in the pipe)."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._pump(deadline - time.monotonic())


@dataclass
class Round:
    number: int
    child_seed: int
    mode: str
    parent_recovers: bool
    lines: list[str]
    stderr: str


def run_round(number: int, master_seed: int, data_dir: Path, err_path: Path, stats: Stats) -> Round:
    rng = random.Random(f"{master_seed}:{number}")
    child_seed = rng.randrange(2**63)
    mode = rng.choices(("startup", "in_flight", "random"), weights=(1, 3, 6))[0]
    with err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(data_dir), str(child_seed)],
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=REPO,
        )
    assert proc.stdout is not None
    out = ChildOutput(proc.stdout)
    alive = False
    try:
        if mode == "startup":  # during imports, opening the store, or recovery
            out.wait_for(lambda line: line == "OPENING", 1, START_TIMEOUT)
            time.sleep(rng.uniform(0.0, 0.25))
        else:
            out.wait_for(lambda line: line.startswith("READY"), 1, START_TIMEOUT)
            if mode == "in_flight":  # right after the child announced a call (of a chosen kind, if it comes)
                op = rng.choices(("sale", "forward", "void", "settle"), weights=(5, 3, 1, 1))[0]
                target = f"BEGIN {op}"
                out.wait_for(lambda line: line.startswith(target), rng.randint(1, 4), 2.5)
                pause = rng.choice((0.0, 0.0, 0.0, 0.0005, 0.001, 0.002, 0.004))
                if pause:
                    time.sleep(pause)
            else:
                time.sleep(rng.uniform(0.02, 0.25) if rng.random() < 0.85 else rng.uniform(0.25, 1.0))
        alive = proc.poll() is None
        if alive:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        out.drain()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    stderr = err_path.read_text(errors="replace")
    rnd = Round(number, child_seed, mode, rng.random() < 0.7, out.lines, stderr)
    if not alive or proc.returncode != -signal.SIGKILL:
        raise AssertionError(
            f"round {number}: the child ended by itself (status {proc.returncode}) instead of being killed\n"
            + describe(rnd)
        )
    stats.kills += 1
    stats.kills_by_mode[mode] += 1
    if not any(line.startswith("READY") for line in out.lines):
        stats.kills_before_ready += 1
    else:
        stats.recovered_by_child += next(int(x.split()[1]) for x in out.lines if x.startswith("READY"))
    begun = [line for line in out.lines if line.startswith("BEGIN")]
    results = [line for line in out.lines if line.split(" ")[0] in RESULT_WORDS]
    if len(begun) > len(results):
        stats.kills_mid_call[begun[-1].split(" ")[1]] += 1
    return rnd


def name(state: State | None) -> str:
    return "missing" if state is None else state.value


def describe(rnd: Round) -> str:
    tail = "\n".join(rnd.lines[-15:])
    return (
        f"round {rnd.number}: mode {rnd.mode}, child seed {rnd.child_seed}, parent recovers "
        f"{rnd.parent_recovers}\nlast lines of the child:\n{tail}\nstderr:\n{rnd.stderr[-3000:]}"
    )


def check_invariants(data_dir: Path, ledger: Ledger, rnd: Round, stats: Stats) -> list[str]:
    """Restart the terminal in-process (with or without recovery) and check everything; the problems."""
    problems: list[str] = []
    # open_terminal(recover=True) is open_terminal(recover=False) + recover(); split to count what it did.
    term = open_terminal(data_dir, host="memory", recover=False)
    try:
        if rnd.parent_recovers:
            stats.recovered_by_parent += len(term.recover())
        db = sqlite3.connect(f"file:{data_dir / 'journal.sqlite'}?mode=ro", uri=True)
        try:
            saf_rows = db.execute("SELECT txn_id, status, idempotency_key FROM saf").fetchall()
            reversal_rows = db.execute("SELECT txn_id, status FROM reversals").fetchall()
            sensitive = {r[0] for r in db.execute("SELECT txn_id FROM sensitive")}
        finally:
            db.close()

        # 1. the hash chain, and the transactions table agrees with the journal
        report = term.store.verify()
        stats.journal_rows = report.rows
        problems += [f"verify: {p}" for p in report.problems]

        txns = {row.txn_id: row for row in term.store.list_transactions()}
        state = {txn_id: row.state for txn_id, row in txns.items()}

        # 2. what was reported approved is there, in a state that can follow the reported one
        for txn_id, (amount, reported) in ledger.approved.items():
            row = txns.get(txn_id)
            if row is None:
                problems.append(f"{txn_id} was reported APPROVED ({reported.value}) and is missing")
                continue
            if row.amount != amount:
                problems.append(f"{txn_id}: reported approved for {amount}, stored with {row.amount}")
            allowed = set(LATER_STATES[reported])
            if txn_id in ledger.void_started:
                allowed |= VOID_STATES
            if reported is S.DEFERRED_APPROVED and amount % 100 in MAGIC_ENDINGS:
                allowed.add(S.DECLINED_AFTER_FORWARDING)  # the host's later decision, reported to the cashier
            if row.state not in allowed:
                problems.append(
                    f"{txn_id} was reported APPROVED ({reported.value}, {amount}), "
                    f"is now {row.state.value}"
                    + (" although no void of it was started" if row.state in VOID_STATES else "")
                )
        for txn_id, reported in ledger.declined.items():
            may_be: set[State] = {reported}
            if reported is S.REVERSAL_PENDING:
                may_be.add(S.REVERSED)
            if state.get(txn_id) not in may_be:
                problems.append(f"{txn_id} declined ({reported.value}), now {name(state.get(txn_id))}")
        for txn_id, reported in ledger.voided.items():
            if state.get(txn_id) not in ({S.VOIDED} if reported is S.VOIDED else VOID_STATES):
                problems.append(f"{txn_id} reported voided ({reported.value}), now {name(state.get(txn_id))}")
        for txn_id in ledger.forward_declined:
            if state.get(txn_id) is not S.DECLINED_AFTER_FORWARDING:
                problems.append(f"{txn_id}: the decline after forwarding is lost ({name(state.get(txn_id))})")

        # 3. the SAF queue: one entry per transaction, queued exactly while the payment waits
        saf_by_txn: dict[str, list[str]] = collections.defaultdict(list)
        for txn_id, status, _ in saf_rows:
            saf_by_txn[txn_id].append(status)
        for txn_id, statuses in saf_by_txn.items():
            if len(statuses) > 1:
                problems.append(f"{txn_id} is in the SAF table {len(statuses)} times: {statuses}")
            if txn_id not in txns:
                problems.append(f"SAF entry for unknown transaction {txn_id}")
        keys = [key for _, _, key in saf_rows]
        if len(keys) != len(set(keys)):
            problems.append("an SAF idempotency key is used twice")
        for txn_id, st in state.items():
            queued = saf_by_txn.get(txn_id, []).count("queued")
            if st in QUEUED_STATES and queued != 1:
                problems.append(f"{txn_id} is {st.value} with {queued} queued SAF entries (expected 1)")
            if st not in QUEUED_STATES and queued:
                problems.append(f"{txn_id} is {st.value} but still has a queued SAF entry")
            if st is S.FORWARDED and txns[txn_id].kind == "sale" and saf_by_txn.get(txn_id) != ["accepted"]:
                problems.append(f"{txn_id} is forwarded; its SAF entry says {saf_by_txn.get(txn_id)}")
            if st is S.DECLINED_AFTER_FORWARDING and saf_by_txn.get(txn_id) != ["declined"]:
                problems.append(f"{txn_id} was declined after forwarding; SAF says {saf_by_txn.get(txn_id)}")

        # 4. nothing unfinished after recovery; a queued reversal exactly where one is pending
        rev_by_txn: dict[str, list[str]] = collections.defaultdict(list)
        for txn_id, status in reversal_rows:
            rev_by_txn[txn_id].append(status)
        unfinished = {S.STARTED, S.AUTHORISING}
        for txn_id, st in state.items():
            if rnd.parent_recovers and st in unfinished:
                problems.append(f"{txn_id} is still {st.value} after recovery")
            queued = rev_by_txn.get(txn_id, []).count("queued")
            if st in REVERSING_STATES and queued != 1:
                problems.append(f"{txn_id} is {st.value} with {queued} queued reversals (expected 1)")
            if st not in REVERSING_STATES and queued:
                problems.append(f"{txn_id} is {st.value} but has a queued reversal")
            if st is S.REVERSED and rev_by_txn.get(txn_id) != ["done"]:
                problems.append(f"{txn_id} is reversed; its reversal says {rev_by_txn.get(txn_id)}")
            if txn_id in sensitive and st not in (QUEUED_STATES | {S.AUTHORISING}):
                problems.append(f"{txn_id} is {st.value} and still has sensitive card data stored")
        for txn_id in rev_by_txn:
            if txn_id not in txns:
                problems.append(f"reversal for unknown transaction {txn_id}")

        # 5. the host: nothing charged twice, and the host and the terminal agree on who pays
        with InProcessHost(memory_host_database(data_dir)) as host:
            records = host.records
            duplicates = host.duplicates()
        stats.host_records = len(records)
        for txn_id, n in duplicates.items():
            problems.append(f"host: {txn_id} accepted {n} times (at the terminal: {name(state.get(txn_id))})")
        live: collections.Counter[str] = collections.Counter()
        reversed_at_host: set[str] = set()
        for rec in records:
            if rec.method == "reverse":
                reversed_at_host.add(rec.txn_id)
                continue
            if rec.txn_id not in txns:
                problems.append(f"host: {rec.method} of {rec.txn_id}, which the terminal does not know")
            if rec.approved and not rec.reversed:
                live[rec.txn_id] += 1
        may_charge = HOST_MAY_CHARGE | ({S.AUTHORISING} if not rnd.parent_recovers else set())
        for txn_id, n in live.items():
            held = state.get(txn_id)
            if held is not None and held not in may_charge:
                hint = ""
                if held is S.VOIDED and saf_by_txn.get(txn_id) == ["withdrawn"]:
                    hint = (
                        ": voided by withdrawing its queued advice, which the host had already accepted"
                        " (killed between the host's answer and the terminal's record); no reversal was sent"
                    )
                problems.append(
                    f"host still charges {txn_id} ({n}x) which the terminal holds as {held.value}"
                    f" (SAF {saf_by_txn.get(txn_id)}, reversal {rev_by_txn.get(txn_id)}){hint}"
                )
        for txn_id, st in state.items():
            if st in (S.APPROVED, S.FORWARDED) and live.get(txn_id, 0) != 1:
                problems.append(f"{txn_id} is {st.value} at the terminal but charged {live.get(txn_id, 0)}x")
        for txn_id, status in reversal_rows:
            if status == "done" and txn_id not in reversed_at_host:
                problems.append(f"{txn_id}: reversal marked delivered but the host never processed one")

        # 6. totals of the open batch, and the settlements made so far
        batch, lines = term.batch_lines()
        approved_rows = [r for r in txns.values() if r.batch_id == batch and r.state in APPROVED_STATES]
        expected = (len(approved_rows), sum(r.amount for r in approved_rows))
        got = (sum(line.count for line in lines), sum(line.amount for line in lines))
        if got != expected:
            problems.append(f"batch {batch}: batch_lines says {got} (count, amount), transactions {expected}")
        for batch_id, in_balance in ledger.settlements:
            if not in_balance:
                info = term.store.batch_info(batch_id)
                problems.append(f"batch {batch_id} was settled out of balance: {info}")
        problems += [
            f"settlement refused for a reused key (the host closed the batch, the terminal did not: "
            f"a crash in between leaves the batch unsettleable): {line}"
            for line in ledger.settle_conflicts
        ]

        # 7. shown only what was reported; what was not reported is told at the next start
        told = {r.result.txn_id for r in term.unshown_payments()} if rnd.parent_recovers else set()
        for txn_id, row in txns.items():
            if row.shown_at is not None and txn_id not in ledger.reported:
                problems.append(f"{txn_id} ({row.state.value}) is marked shown but no child reported it")
            outcome = row.state not in (S.STARTED, S.AUTHORISING)
            if rnd.parent_recovers and outcome and txn_id not in ledger.reported and txn_id not in told:
                problems.append(f"{txn_id} ({row.state.value}) was never reported and would not be told")
        if rnd.parent_recovers:
            stats.unshown = len(told)
            stats.unshown_approved = sum(1 for t in told if txns[t].state in APPROVED_STATES)

        # 8. the money rule, on the books and at the host
        refunds: dict[str, list[tuple[int, State]]] = collections.defaultdict(list)
        for row in txns.values():
            if row.kind == "refund" and row.original_txn_id is not None:
                refunds[row.original_txn_id].append((row.amount, row.state))
        for original, against in refunds.items():
            sale_row = txns.get(original)
            if sale_row is None or sale_row.kind != "sale":
                problems.append(f"refunds against {original}, which is not a sale the terminal holds")
                continue
            counted = sum(amount for amount, st in against if st in COUNTED_REFUND_STATES)
            if counted > sale_row.amount:
                problems.append(f"{original} ({sale_row.amount}) has {counted} refunded or in flight")
            if customer_paid(sale_row.amount, sale_row.state, against) < 0:
                problems.append(f"{original} is {sale_row.state.value}: the customer got back more than paid")
        host = InProcessHost(memory_host_database(data_dir))
        try:
            for txn_id, position in host.sale_positions().items():
                if position.net < 0:
                    problems.append(
                        f"the host charged {position.charged} for {txn_id} and refunded {position.refunded}"
                    )
        finally:
            host.close()

        stats.states_seen = collections.Counter(st.value for st in state.values())
    finally:
        term.store.close()
    return problems


def test_sigkill_torture_keeps_every_approved_payment(tmp_path: Path) -> None:
    master_seed = int(os.environ.get("POSTERM_TORTURE_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\ncrash torture: master seed {master_seed} (POSTERM_TORTURE_SEED), {KILLS} kills")
    data_dir = tmp_path / "terminal"
    err_path = tmp_path / "child-stderr.txt"
    ledger = Ledger()
    stats = Stats()
    started = time.monotonic()
    for number in range(KILLS):
        rnd = run_round(number, master_seed, data_dir, err_path, stats)
        for line in rnd.lines:
            ledger.take(line)
        errors = [line for line in rnd.lines if line.startswith("ERROR")]
        assert not errors, f"master seed {master_seed}: the child failed\n{describe(rnd)}"
        problems = check_invariants(data_dir, ledger, rnd, stats)
        assert not problems, (
            f"master seed {master_seed}, after kill {number + 1}:\n  "
            + "\n  ".join(problems[:40])
            + f"\n{describe(rnd)}"
        )
        ledger.settlements.clear()  # checked once
    elapsed = time.monotonic() - started

    print(f"crash torture: {stats.kills} kills in {elapsed:.1f} s (master seed {master_seed})")
    print(f"  kills by mode: {dict(stats.kills_by_mode)}; before READY: {stats.kills_before_ready}")
    print(f"  kills in the middle of a call: {dict(stats.kills_mid_call)}")
    print(f"  reported: {dict(ledger.counts)}")
    print(f"  refusals: {dict(ledger.refused)}")
    print(
        f"  approved reported: {len(ledger.approved)} "
        f"({dict(collections.Counter(s.value for _, s in ledger.approved.values()))}); "
        f"voids started: {len(ledger.void_started)}; "
        f"declined after forwarding: {len(ledger.forward_declined)}"
    )
    print(f"  recovered: by the parent {stats.recovered_by_parent}, by the child {stats.recovered_by_child}")
    print(f"  final states: {dict(stats.states_seen)}")
    print(f"  journal rows {stats.journal_rows}, host records {stats.host_records}")
    print(
        f"  committed and never reported (told at the next start), at the last check: {stats.unshown}, "
        f"{stats.unshown_approved} of them approved"
    )

    # It must not pass vacuously.
    assert stats.kills == KILLS
    assert len(ledger.approved) >= KILLS // 2, "too few approvals reported: the stream did not run"
    assert sum(stats.kills_mid_call.values()) >= max(1, KILLS // 10), "too few kills landed mid-call"
    assert ledger.counts["FORWARD"] > 0 and ledger.counts["VOIDED"] > 0
    assert ledger.counts["REFUNDED"] > 0, "no refund was made: the money rule was not exercised"
    approved_kinds = {s for _, s in ledger.approved.values()}
    assert {S.APPROVED, S.OFFLINE_APPROVED} <= approved_kinds
    if KILLS >= 100:  # the full run also went through deferred approvals, recovery and settlements
        assert S.DEFERRED_APPROVED in approved_kinds
        assert stats.recovered_by_parent + stats.recovered_by_child > 0, "no kill left a payment to recover"
        assert ledger.counts["SETTLED"] > 0
