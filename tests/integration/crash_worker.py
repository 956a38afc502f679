"""The child of the crash-consistency torture test (tests/integration/test_crash_torture.py).

Run as ``python crash_worker.py DATA_DIR SEED``: opens the terminal in DATA_DIR
with the in-process host ``memory``, its database in DATA_DIR too (recovery
runs on open), then runs a random
stream of payments, host faults, forwarding, voids and settlements until it
is killed.  It reports on stdout, one line per event, written with a single
``os.write`` (atomic on a pipe), and only *after* the call returned, i.e.
after the terminal made the result durable:

    OPENING                               before open_terminal()
    READY <recovered>                     the terminal is open, recovery done (how many it resolved)
    BEGIN <op> <args...>                  just before calling the terminal (in flight)
    APPROVED <txn_id> <amount> <state>    sale() returned PaymentResult.approved
    DECLINED <txn_id> <amount> <state>    sale() returned not approved
    VOIDED <txn_id> <state>               void() returned (voided or void_pending)
    REFUNDED <txn_id> <original> <amount> <state> <approved>   refund() against a sale returned
    REFUSED <op> <reason> <message>       PaymentRefused / SettlementRefused
    FORWARD <accepted> <declined> <rejected> <failed> <reversals_sent>
    FWD_DECLINED <txn_id>                 the host declined a forwarded entry
    FWD_REJECTED <txn_id>                 the host rejected a forwarded entry
    REVERSAL_SENT <txn_id>                a queued reversal was acknowledged
    SETTLED <batch_id> <in_balance> <new_batch_id>
    FAULTS <down> <no_answer>             host faults switched
    ERROR <text>                          an unexpected exception: the worker exits with status 3

Nothing is done at import time (pytest imports this file for doctests).
"""

from __future__ import annotations

import os
import random
import sys
import traceback
from pathlib import Path

CARDS = ("visa-qvsdc-offline", "visa-qvsdc-online", "mc-cda-offline")
MAGIC_ENDINGS = (51, 5, 54)  # the simulated issuer declines amounts ending in these


def emit(*parts: object) -> None:
    os.write(1, (" ".join(str(p) for p in parts) + "\n").encode())


def pick_amount(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.65:
        amount = rng.randrange(100, 5000)  # under the floor limit: offline-capable cards approve offline
    elif roll < 0.9:
        amount = rng.randrange(5000, 30000)  # over it: online (or deferred)
    else:
        amount = rng.randrange(1, 300) * 100 + rng.choice(MAGIC_ENDINGS)  # declined by the host
    if amount % 100 in MAGIC_ENDINGS and roll < 0.9:
        amount += 1  # keep the declines to the last branch
    return amount


def main(argv: list[str]) -> int:
    data_dir = Path(argv[1])
    rng = random.Random(int(argv[2]))

    emit("OPENING")
    from simulator.host.inprocess import InProcessHost
    from terminal import registry
    from terminal.bootstrap import open_terminal
    from terminal.facade import SettlementRefused, TerminalEvent
    from terminal.lifecycle import APPROVED_STATES, State
    from terminal.offline import OfflineBehavior, PaymentRefused
    from terminal.ports import CardReader

    waiting = (State.OFFLINE_APPROVED, State.DEFERRED_APPROVED)  # in the SAF queue

    # What open_terminal(recover=True) does, with the count of what recovery resolved.
    term = open_terminal(data_dir, reader_url=f"sim:card={CARDS[0]}", host="memory", recover=False)
    recovered = term.recover()
    host = term.host
    assert isinstance(host, InProcessHost)
    readers: dict[str, CardReader] = {}
    emit("READY", len(recovered))

    heard: list[TerminalEvent] = []
    term.subscribe(heard.append)

    def report_events() -> None:
        for event in heard:
            if event.kind == "saf_declined":
                emit("FWD_DECLINED", event.txn_id)
            elif event.kind == "saf_rejected":
                emit("FWD_REJECTED", event.txn_id)
            elif event.kind == "reversal_sent":
                emit("REVERSAL_SENT", event.txn_id)
        heard.clear()

    def refused(op: str, exc: Exception) -> None:
        reason = getattr(exc, "reason", type(exc).__name__)
        emit("REFUSED", op, reason, str(exc).replace("\n", " ")[:160])

    def forward() -> None:
        emit("BEGIN", "forward")
        report = term.forward_now()
        emit("FORWARD", report.accepted, report.declined, report.rejected, report.failed, report.reversals_sent)
        report_events()

    def sale() -> None:
        card = rng.choices(CARDS, weights=(5, 4, 1))[0]
        if card not in readers:
            readers[card] = registry.open_reader(f"sim:card={card}")
        term.reader = readers[card]
        amount = pick_amount(rng)
        behavior = rng.choices(
            (OfflineBehavior.PREFER_ONLINE, OfflineBehavior.FORCE_OFFLINE, OfflineBehavior.REQUIRE_ONLINE),
            weights=(7, 2, 1),
        )[0]
        emit("BEGIN", "sale", card, amount, behavior.value)
        try:
            result = term.sale(amount, 978, offline_behavior=behavior)
        except PaymentRefused as exc:
            report_events()
            refused("sale", exc)
            return
        report_events()
        verdict = "APPROVED" if result.approved else "DECLINED"
        emit(verdict, result.txn_id, result.amount, result.state.value)
        term.mark_shown([result.txn_id], "cli")

    def refund() -> None:
        """A refund against a sale, of a part, all, or more than it (which must be refused)."""
        sales = [r for r in term.store.list_transactions(states=list(APPROVED_STATES)) if r.kind == "sale"]
        if not sales:
            return
        original = rng.choice(sales)
        amount = max(1, int(original.amount * rng.choice((0.3, 0.5, 1.0, 1.5))))
        behavior = rng.choices((OfflineBehavior.PREFER_ONLINE, OfflineBehavior.FORCE_OFFLINE), weights=(4, 1))[0]
        emit("BEGIN", "refund", original.txn_id, amount)
        try:
            result = term.refund(amount, 978, original_txn_id=original.txn_id, offline_behavior=behavior)
        except PaymentRefused as exc:
            report_events()
            refused("refund", exc)
            return
        report_events()
        emit("REFUNDED", result.txn_id, original.txn_id, amount, result.state.value, int(result.approved))
        term.mark_shown([result.txn_id], "cli")

    def void(queued_only: bool = False) -> None:
        batch, _ = term.batch_lines()
        states = waiting if queued_only or rng.random() < 0.4 else APPROVED_STATES
        candidates = term.store.list_transactions(batch_id=batch, states=list(states))
        if not candidates:
            return
        txn_id = rng.choice(candidates).txn_id
        emit("BEGIN", "void", txn_id)
        try:
            result = term.void(txn_id)
        except PaymentRefused as exc:
            report_events()
            refused("void", exc)
            return
        report_events()
        emit("VOIDED", result.txn_id, result.state.value)

    def settle() -> None:
        forward()
        emit("BEGIN", "settle")
        try:
            result = term.settle()
        except SettlementRefused as exc:
            refused("settle", exc)
            return
        emit("SETTLED", result.batch_id, int(result.in_balance), result.new_batch_id)

    def faults() -> None:
        host.faults.down = rng.random() < 0.25
        host.faults.no_answer = rng.choices((0, 1, 2), weights=(6, 3, 1))[0]
        emit("FAULTS", int(host.faults.down), host.faults.no_answer)

    ops = (sale, faults, forward, void, settle, refund)
    weights = (10, 2, 3, 1, 0.6, 2)
    try:
        if rng.random() < 0.3:  # right after a restart: void a payment that waits in the SAF queue
            void(queued_only=True)
        while True:
            rng.choices(ops, weights=weights)[0]()
    except Exception as exc:  # anything else is a bug: say so and stop
        text = "".join(traceback.format_exception(exc)).replace("\n", " | ")
        emit("ERROR", text)
        return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
