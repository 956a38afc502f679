"""A payment shown approved is never lost nor charged twice, whatever happens, crashes included.

Hypothesis drives a real :class:`~terminal.facade.Terminal` (a real SQLite file
in a temporary directory, a real :class:`~terminal.keystore.FileKeystore`,
simulated cards from the ``sim:`` driver, the in-process
:class:`~simulator.host.inprocess.InProcessHost` with its state file) through random
sequences of sales, refunds, voids, forwarding, settlement, host faults, clock
jumps and crashes.  A crash abandons the Terminal object (its SQLite
connection is closed without any cleanup: every transition was committed, so
this is what a kill leaves) and opens a new one with ``recover=True``.  The
"crash in the middle" rule makes the host raise a plain ``RuntimeError`` from
one of its methods (before or after it processed the request), as a bug or a
kill at that moment would, then crashes and recovers.

After every step the invariants are checked.  The money rule first: for
every sale, what the customer has paid is the sale amount less its refunds,
or nothing if voided or reversed, and never below nothing, on the terminal's
books and on the simulated host's records.  Then: each payment shown
approved is in the journal and queued or settled exactly once; no payment is
queued twice; the totals equal the sum of the journal.  Also: nothing is
approved that the customer was not shown approved; the host holds each
approved/forwarded payment exactly once and nothing of a voided, reversed or
declined one; queued reversals match the states; sensitive data is gone once
not needed; with the host healthy again one forwarding run empties the queues
and settlement succeeds, in balance.

The plain tests at the end are the shrunk failures the machine found.
``POSTERM_SM_EXAMPLES`` and ``POSTERM_SM_STEPS`` set the size of the run.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from simulator.host.inprocess import HostFaults, InProcessHost
from terminal import registry
from terminal.bootstrap import open_terminal
from terminal.facade import (
    NothingToSettle,
    PaymentResult,
    SettlementRefused,
    SettlementResult,
    Terminal,
    TerminalEvent,
    TerminalSettings,
)
from terminal.host import Advice, AuthorisationRequest, BatchTotals, HostAnswer, Reversal, SettlementAnswer
from terminal.lifecycle import APPROVED_STATES, COUNTED_REFUND_STATES, FINAL_STATES, State, customer_paid
from terminal.offline import OfflineBehavior, OfflineLimits, PaymentRefused, RetryPolicy
from terminal.ports import CardReader

EXAMPLES = int(os.environ.get("POSTERM_SM_EXAMPLES", "300"))
STEPS = int(os.environ.get("POSTERM_SM_STEPS", "50"))

EUR = 978
PER_PAYMENT = 5000
# Small offline limits, so that the count and total limits are reached in a short run.
SETTINGS = TerminalSettings(
    offline_limits=OfflineLimits(
        per_payment={EUR: PER_PAYMENT},
        total_per_currency={EUR: 12000},
        max_count=5,
        max_age_seconds=3 * 24 * 3600,
    ),
    # No jitter: the backoff (and so forward_due) does not depend on unseeded randomness.
    retry=RetryPolicy(base_seconds=5, cap_seconds=600, jitter=0.0, expire_after_seconds=7 * 24 * 3600),
)

OFFLINE_CARDS = ("visa-qvsdc-offline", "mc-cda-offline")
ONLINE_CARDS = ("visa-qvsdc-online", "mc-cda-online")
# 1051 / 4951: insufficient funds (51); 4905: do not honour (05); 6000 and 6051: over the
# offline per-payment limit; 150000: over the contactless transaction limit.
AMOUNTS = (100, 1234, 1051, 4905, 4951, 5000, 6000, 6051, 150000)
BEHAVIOURS = tuple(OfflineBehavior)
CLOCK_STEPS = (1, 600, 6 * 3600, 2 * 86400, 4 * 86400)

# States that count as "approved or later" for a payment shown approved.
STILL_APPROVED = APPROVED_STATES | {State.VOID_PENDING}
# A later decision on a payment shown approved, and the event that must have reported it.
REPORTED_LATER = {
    State.DECLINED_AFTER_FORWARDING: "saf_declined",
    State.REJECTED_BY_HOST: "saf_rejected",
    State.EXPIRED: "saf_expired",
}
QUEUED_STATES = frozenset({State.OFFLINE_APPROVED, State.DEFERRED_APPROVED})
REVERSAL_STATES = frozenset({State.REVERSAL_PENDING, State.VOID_PENDING})
# What the host must hold, approved and not reversed, once (HOST_HAS_IT) or not at all.  In-flight
# states (queued, reversal pending) and the host's or the policy's own later decisions are not checked.
HOST_HAS_IT = frozenset({State.APPROVED, State.FORWARDED})
HOST_HAS_NOT = frozenset(
    {State.DECLINED, State.CANCELLED, State.REVERSED, State.VOIDED, State.DECLINED_AFTER_FORWARDING}
)
# Ended by the host's rejection or the policy's expiry: an earlier attempt whose answer was lost may
# have reached the host, so the host's totals may hold it (not checked, reported in the final message).
AMBIGUOUS_AT_HOST = frozenset({State.EXPIRED, State.REJECTED_BY_HOST})
UNFINISHED = frozenset({State.STARTED, State.AUTHORISING})
# The reasons of the refusals the verbs may give here (anything else, "storage" included, is a bug).
SALE_REFUSALS = frozenset({"offline_limit"})
REFUND_REFUSALS = frozenset({"offline_limit", "original_not_refundable", "amount", "other_card"})
VOID_REFUSALS = frozenset({"not_voidable", "other_batch"})


def _event(value: str) -> None:
    """Note what a run reached, for ``--hypothesis-show-statistics`` (the plain tests below skip it)."""
    if currently_in_test_context():
        event(value)


class SteppingClock:
    """A controllable clock: jumps on request, and ticks 1 ms per reading so times are distinct."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        self.moment += timedelta(milliseconds=1)
        return self.moment

    def advance(self, seconds: int) -> None:
        self.moment += timedelta(seconds=seconds)


class ExplodingHost:
    """The real host, except that ``method`` raises RuntimeError (before or after processing)."""

    def __init__(self, real: InProcessHost, method: str, after_processing: bool) -> None:
        self.real = real
        self.method = method
        self.after_processing = after_processing
        self.exploded = False

    def _call(self, method: str, real_call: Callable[[], Any]) -> Any:
        if method != self.method:
            return real_call()
        if self.after_processing:
            real_call()
        self.exploded = True
        raise RuntimeError(f"killed inside {method}")

    def authorise(self, request: AuthorisationRequest) -> HostAnswer:
        answer: HostAnswer = self._call("authorise", lambda: self.real.authorise(request))
        return answer

    def advise(self, advice: Advice) -> HostAnswer:
        answer: HostAnswer = self._call("advise", lambda: self.real.advise(advice))
        return answer

    def reverse(self, reversal: Reversal) -> HostAnswer:
        answer: HostAnswer = self._call("reverse", lambda: self.real.reverse(reversal))
        return answer

    def close_batch(self, totals: BatchTotals) -> SettlementAnswer:
        answer: SettlementAnswer = self._call("close_batch", lambda: self.real.close_batch(totals))
        return answer


class TerminalMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="posterm-sm-"))
        self.clock = SteppingClock()
        self.faults = HostFaults()  # the network's state: it survives a terminal restart
        self.readers: dict[str, CardReader] = {}
        self.shown_approved: set[str] = set()  # PaymentResult.approved was True
        self.voided_by_model: set[str] = set()  # void() accepted it
        self.events: dict[str, set[str]] = {}  # txn_id -> kinds of the events the UI heard
        self.crashes = 0
        self.term = self._open()

    # -- wiring ------------------------------------------------------------------------------------

    def _open(self) -> Terminal:
        term = open_terminal(self.dir, host="memory", clock=self.clock, settings=SETTINGS, recover=True)
        assert isinstance(term.host, InProcessHost)
        term.host.faults = self.faults
        term.subscribe(self._heard)
        return term

    def _heard(self, event: TerminalEvent) -> None:
        if event.txn_id is not None:
            self.events.setdefault(event.txn_id, set()).add(event.kind)

    @property
    def host(self) -> InProcessHost:
        host = self.term.host
        if isinstance(host, ExplodingHost):
            return host.real
        assert isinstance(host, InProcessHost)
        return host

    def _reader(self, profile: str) -> CardReader:
        if profile not in self.readers:
            self.readers[profile] = registry.open_reader(f"sim:card={profile}")
        return self.readers[profile]

    def _crash(self) -> None:
        """Abandon the terminal as a kill would (no cleanup but closing the file), then restart."""
        self.term.store.close()
        self.crashes += 1
        self.term = self._open()
        left = self.term.store.list_transactions(states=list(UNFINISHED))
        assert not left, f"after recovery, still unfinished: {[(r.txn_id, r.state.value) for r in left]}"

    def _txn_ids(self) -> list[str]:
        return [r.txn_id for r in self.term.store.list_transactions()]

    def _note(self, result: PaymentResult) -> None:
        if result.approved:
            self.shown_approved.add(result.txn_id)

    # -- rules: payments ---------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        assert self.term.store.verify().ok

    @rule(
        offline_card=st.booleans(),
        card=st.integers(0, 1),
        amount=st.sampled_from(AMOUNTS),
        behaviour=st.sampled_from(BEHAVIOURS),
    )
    def sale(self, offline_card: bool, card: int, amount: int, behaviour: OfflineBehavior) -> None:
        profile = (OFFLINE_CARDS if offline_card else ONLINE_CARDS)[card]
        self.term.reader = self._reader(profile)
        try:
            result = self.term.sale(amount, EUR, offline_behavior=behaviour)
        except PaymentRefused as exc:
            assert exc.reason in SALE_REFUSALS, f"sale refused for an unexpected reason: {exc.reason}: {exc}"
            return
        self._note(result)

    @rule(
        data=st.data(),
        fraction=st.sampled_from((1.0, 0.5, 0.3, 2.0)),
        behaviour=st.sampled_from(BEHAVIOURS),
        card=st.sampled_from((None, "same", "other", "other-on-purpose")),
    )
    def refund_with_original(
        self, data: st.DataObject, fraction: float, behaviour: OfflineBehavior, card: str | None
    ) -> None:
        """A refund against any payment (refused where the rules say), to its card or to one presented."""
        payments = self.term.store.list_transactions()
        if not payments:
            return
        original = data.draw(st.sampled_from(payments), label="original")
        amount = max(1, int(original.amount * fraction))
        if card is not None:
            profile = ONLINE_CARDS[0] if card == "same" else ONLINE_CARDS[1]
            if original.scheme == "mastercard":
                profile = ONLINE_CARDS[1] if card == "same" else ONLINE_CARDS[0]
            self.term.reader = self._reader(profile)
        try:
            result = self.term.refund(
                amount,
                EUR,
                original_txn_id=original.txn_id,
                present_card=card is not None,
                to_other_card=card == "other-on-purpose",
                offline_behavior=behaviour,
            )
        except PaymentRefused as exc:
            assert exc.reason in REFUND_REFUSALS, f"refund refused, unexpected reason: {exc.reason}: {exc}"
            _event(f"refund refused: {exc.reason}")
            return
        _event(f"refund against a sale: {result.state.value}")
        self._note(result)

    @rule(data=st.data(), fraction=st.sampled_from((0.3, 0.5, 1.0)), behaviour=st.sampled_from(BEHAVIOURS))
    def refund_a_confirmed_sale(self, data: st.DataObject, fraction: float, behaviour: OfflineBehavior) -> None:
        """A partial or full refund of a sale the host confirmed, to its card: the common case."""
        sales = self.term.store.list_transactions(states=[State.APPROVED, State.FORWARDED])
        sales = [r for r in sales if r.kind == "sale"]
        if not sales:
            return
        original = data.draw(st.sampled_from(sales), label="original")
        try:
            result = self.term.refund(
                max(1, int(original.amount * fraction)), EUR, original_txn_id=original.txn_id,
                offline_behavior=behaviour,
            )  # fmt: skip
        except PaymentRefused as exc:
            assert exc.reason in REFUND_REFUSALS, f"refund refused, unexpected reason: {exc.reason}: {exc}"
            _event(f"refund refused: {exc.reason}")
            return
        _event(f"refund of a confirmed sale: {result.state.value}")
        self._note(result)

    @rule(amount=st.sampled_from(AMOUNTS), behaviour=st.sampled_from(BEHAVIOURS))
    def unreferenced_refund(self, amount: int, behaviour: OfflineBehavior) -> None:
        self.term.reader = self._reader(ONLINE_CARDS[0])
        try:
            result = self.term.refund(amount, EUR, offline_behavior=behaviour)
        except PaymentRefused as exc:
            assert exc.reason in REFUND_REFUSALS, f"refund refused, unexpected reason: {exc.reason}: {exc}"
            return
        self._note(result)

    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        ids = self._txn_ids()
        if not ids:
            return
        self.void_txn(data.draw(st.sampled_from(ids), label="txn_id"))

    def void_txn(self, txn_id: str) -> None:
        self.voided_by_model.add(txn_id)  # a refused void changes nothing
        try:
            result = self.term.void(txn_id)
        except PaymentRefused as exc:
            assert exc.reason in VOID_REFUSALS, f"void refused for an unexpected reason: {exc.reason}: {exc}"
            return
        assert result.state in (State.VOIDED, State.VOID_PENDING), result

    # -- rules: the background and the back office -------------------------------------------------

    @rule()
    def forward_now(self) -> None:
        self.term.forward_now()

    @rule()
    def forward_due(self) -> None:
        self.term.forward_due()

    @rule()
    def settle(self) -> None:
        try:
            result = self.term.settle()
        except SettlementRefused:
            return
        self._check_settlement(result)

    @rule()
    def drain_and_settle(self) -> None:
        """With the host healthy again, one forwarding run empties the queues and settlement succeeds."""
        self.faults.clear()
        report = self.term.forward_now()
        counts = self.term.store.counts()
        assert (counts["saf_queued"], counts["reversals_queued"]) == (0, 0), (report, counts)
        try:
            result = self.term.settle()
        except NothingToSettle:
            assert not self.term.transactions(batch_id=self.term.batch()["batch_id"])  # type: ignore[index]
            return
        except SettlementRefused as exc:
            raise AssertionError(f"settlement refused with a healthy host and empty queues: {exc}") from exc
        _event("settled" if result.in_balance else "settled out of balance")
        self._check_settlement(result)

    def _check_settlement(self, result: SettlementResult) -> None:
        """The host agrees with the terminal's totals, unless the batch holds a payment it cannot know."""
        if result.in_balance:
            return
        unknown = self.term.store.list_transactions(batch_id=result.batch_id, states=list(AMBIGUOUS_AT_HOST))
        assert unknown, f"batch {result.batch_id} settled out of balance: {result.differences}"

    @rule(seconds=st.sampled_from(CLOCK_STEPS))
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(seconds)

    # -- rules: faults and crashes -----------------------------------------------------------------

    @rule(down=st.booleans())
    def host_down(self, down: bool) -> None:
        self.faults.down = down

    @rule(n=st.integers(0, 2), only=st.sampled_from((None, "authorise", "advise", "reverse")))
    def host_no_answer(self, n: int, only: str | None) -> None:
        self.faults.no_answer = n
        self.faults.only = None if only is None else {only}

    @rule(n=st.integers(0, 2))
    def host_fails_before_processing(self, n: int) -> None:
        self.faults.fail_before_processing = n

    @rule(n=st.integers(0, 1), only=st.sampled_from((None, "authorise", "advise")))
    def host_rejects_next(self, n: int, only: str | None) -> None:
        self.faults.reject_next = n
        self.faults.only = None if only is None else {only}

    @rule()
    def host_healthy(self) -> None:
        self.faults.clear()

    @rule()
    def crash(self) -> None:
        self._crash()

    @rule(
        method=st.sampled_from(("authorise", "advise", "reverse", "close_batch")),
        after_processing=st.booleans(),
        offline_card=st.booleans(),
        amount=st.sampled_from(AMOUNTS),
        data=st.data(),
    )
    def crash_in_the_middle(
        self, method: str, after_processing: bool, offline_card: bool, amount: int, data: st.DataObject
    ) -> None:
        """The host call raises (a bug, or the process killed there); then the terminal crashes."""
        void_txn = None
        if method == "reverse":
            ids = self._txn_ids()
            by_void: bool = data.draw(st.booleans(), label="by_void")
            if ids and by_void:
                void_txn = data.draw(st.sampled_from(ids), label="txn_id")
        self.crash_inside(method, after_processing, offline_card, amount, void_txn)

    def crash_inside(
        self, method: str, after_processing: bool, offline_card: bool, amount: int, void_txn: str | None
    ) -> None:
        exploding = ExplodingHost(self.host, method, after_processing)
        self.term.host = exploding
        try:
            if method == "authorise":
                profile = (OFFLINE_CARDS if offline_card else ONLINE_CARDS)[0]
                self.term.reader = self._reader(profile)
                result = self.term.sale(amount, EUR)
                self._note(result)
            elif method == "reverse" and void_txn is not None:
                self.voided_by_model.add(void_txn)  # asked for; it may be durable before the crash
                self.term.void(void_txn)
            elif method in ("reverse", "advise"):
                self.term.forward_now()
            else:
                self._check_settlement(self.term.settle())
        except RuntimeError:
            assert exploding.exploded
        except (PaymentRefused, SettlementRefused):
            pass
        self._crash()

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def customer_never_gets_back_more_than_paid_on_the_books(self) -> None:
        """The money rule on the terminal's books: refunds never exceed their sale, nor outlive it."""
        rows = self.term.store.list_transactions()
        refunds: dict[str, list[tuple[int, State]]] = {}
        for row in rows:
            if row.kind == "refund" and row.original_txn_id is not None:
                refunds.setdefault(row.original_txn_id, []).append((row.amount, row.state))
        sales = {row.txn_id: row for row in rows if row.kind == "sale"}
        for original, against in refunds.items():
            assert original in sales, f"refunds against {original}, which is not a sale"
            sale = sales[original]
            counted = sum(amount for amount, state in against if state in COUNTED_REFUND_STATES)
            assert counted <= sale.amount, f"{original} ({sale.amount}) has {counted} refunded or pending"
            paid = customer_paid(sale.amount, sale.state, against)
            assert paid >= 0, f"{original} is {sale.state.value}: the customer got back {-paid} more than paid"
            if any(state in APPROVED_STATES for _, state in against):
                assert sale.state in APPROVED_STATES, f"{original} is {sale.state.value} and has refunds that count"

    @invariant()
    def customer_never_gets_back_more_than_paid_at_the_host(self) -> None:
        """The money rule on the host's records: per sale, refunds approved there never exceed the charge."""
        for txn_id, position in self.host.sale_positions().items():
            assert position.net >= 0, (
                f"the host charged {position.charged} for {txn_id} and refunded {position.refunded} against it"
            )

    @invariant()
    def journal_verifies(self) -> None:
        report = self.term.store.verify()
        assert report.ok, report.problems

    @invariant()
    def shown_approved_is_kept(self) -> None:
        for txn_id in sorted(self.shown_approved):
            row = self.term.store.get(txn_id)
            assert row is not None, f"{txn_id} was shown approved and is not in the store"
            assert self.term.store.journal_rows(txn_id), f"{txn_id} was shown approved and is not journalled"
            if row.state in STILL_APPROVED:
                continue
            if row.state is State.VOIDED:
                assert txn_id in self.voided_by_model, f"{txn_id} was shown approved and became voided"
                continue
            expected_event = REPORTED_LATER.get(row.state)
            if row.state in (State.REVERSAL_PENDING, State.REVERSED):
                # expired after a send whose answer was lost: reversed, in case the host holds it
                expired = {e.txn_id for e in self.term.store.saf_entries(["expired"])}
                assert txn_id in expired, f"{txn_id} was shown approved and is now {row.state.value}"
                expected_event = "saf_expired"
            assert expected_event is not None, f"{txn_id} was shown approved and is now {row.state.value}"
            assert expected_event in self.events.get(txn_id, set()), (
                f"{txn_id} was shown approved and became {row.state.value} without a {expected_event} event"
            )

    @invariant()
    def nothing_approved_that_was_not_shown(self) -> None:
        for row in self.term.store.list_transactions(states=list(APPROVED_STATES)):
            assert row.txn_id in self.shown_approved, (
                f"{row.txn_id} is {row.state.value} but the customer was never shown it approved"
            )

    @invariant()
    def queues_match_states(self) -> None:
        con = sqlite3.connect(f"file:{self.dir / 'journal.sqlite'}?mode=ro", uri=True)
        try:
            saf_rows = con.execute("SELECT txn_id, status FROM saf").fetchall()
            reversal_rows = con.execute("SELECT txn_id, status FROM reversals").fetchall()
        finally:
            con.close()
        per_txn = Counter(txn for txn, _ in saf_rows)
        assert all(n == 1 for n in per_txn.values()), f"a payment queued twice: {per_txn}"
        saf_queued = Counter(txn for txn, status in saf_rows if status == "queued")
        rev_queued = Counter(txn for txn, status in reversal_rows if status == "queued")
        for row in self.term.store.list_transactions():
            what = f"{row.txn_id} is {row.state.value}"
            if row.state in QUEUED_STATES:
                assert saf_queued[row.txn_id] == 1, f"{what} with no queued SAF entry"
            else:
                assert saf_queued[row.txn_id] == 0, f"{what} and still queued"
            if row.state in FINAL_STATES:
                assert rev_queued[row.txn_id] == 0, f"{what} with a queued reversal"
            if row.state in REVERSAL_STATES:
                assert rev_queued[row.txn_id] == 1, f"{what} with no queued reversal"

    @invariant()
    def nothing_unfinished(self) -> None:
        left = self.term.store.list_transactions(states=list(UNFINISHED))
        assert not left, [(r.txn_id, r.state.value) for r in left]

    @invariant()
    def none_charged_twice(self) -> None:
        assert self.host.duplicates() == {}

    @invariant()
    def host_charged_what_the_terminal_says(self) -> None:
        """Settled exactly once: the host holds each settled payment once, and nothing undone."""
        live: Counter[str] = Counter(
            r.txn_id for r in self.host.records if r.method != "reverse" and r.approved and not r.reversed
        )
        for row in self.term.store.list_transactions():
            what = f"{row.txn_id} ({row.kind} {row.amount}) is {row.state.value}"
            if row.state in HOST_HAS_IT:
                assert live[row.txn_id] == 1, f"{what} but the host holds it {live[row.txn_id]} times"
            elif row.state in HOST_HAS_NOT:
                assert live[row.txn_id] == 0, f"{what} but the host holds it as approved (customer charged)"

    @invariant()
    def totals_are_the_sum_of_the_journal(self) -> None:
        batch, lines = self.term.batch_lines()
        assert batch == self.term.store.current_batch(self.clock.moment.isoformat())
        reported: Counter[tuple[int, str]] = Counter()
        reported_count: Counter[tuple[int, str]] = Counter()
        for line in lines:
            reported[(line.currency, line.kind)] += line.amount
            reported_count[(line.currency, line.kind)] += line.count
        started: dict[str, dict[str, Any]] = {}
        last_state: dict[str, str] = {}
        for entry in self.term.store.journal_rows():
            if entry["event"] == "batch_closing":
                # The batch is frozen and the next one opened in this commit: what started
                # before belongs to a batch that is closed or being closed.
                started.clear()
                continue
            if entry["txn_id"] not in last_state and not entry["txn_id"].startswith("batch-"):
                started[entry["txn_id"]] = entry["data"]  # a transaction's first row says what it is
            last_state[entry["txn_id"]] = entry["state"]
        expected: Counter[tuple[int, str]] = Counter()
        expected_count: Counter[tuple[int, str]] = Counter()
        approved = {s.value for s in APPROVED_STATES}
        for txn_id, start in started.items():
            if last_state[txn_id] in approved:
                expected[(start["currency"], start["kind"])] += start["amount"]
                expected_count[(start["currency"], start["kind"])] += 1
        assert (+reported, +reported_count) == (+expected, +expected_count)

    @invariant()
    def sensitive_data_only_while_needed(self) -> None:
        waiting = UNFINISHED | QUEUED_STATES
        for row in self.term.store.list_transactions():
            if row.state not in waiting:
                assert self.term.store.read_sensitive(row.txn_id) is None, (
                    f"{row.txn_id} is {row.state.value} and its sensitive data is still stored"
                )

    def check_all(self) -> None:
        """Every invariant, for the reproductions below (the state machine runs them itself)."""
        self.customer_never_gets_back_more_than_paid_on_the_books()
        self.customer_never_gets_back_more_than_paid_at_the_host()
        self.journal_verifies()
        self.shown_approved_is_kept()
        self.nothing_approved_that_was_not_shown()
        self.queues_match_states()
        self.nothing_unfinished()
        self.none_charged_twice()
        self.host_charged_what_the_terminal_says()
        self.totals_are_the_sum_of_the_journal()
        self.sensitive_data_only_while_needed()

    def teardown(self) -> None:
        try:
            # What the run reached, for --hypothesis-show-statistics.
            for state in sorted({r.state.value for r in self.term.store.list_transactions()}):
                _event(f"reached {state}")
            if self.crashes:
                _event("crashed")
            self.term.store.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


TerminalMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestTerminalStateMachine = TerminalMachine.TestCase


# -- the failures the state machine found, shrunk, as plain tests -----------------------------------


def _machine() -> TerminalMachine:
    machine = TerminalMachine()
    machine.start()
    return machine


def test_void_of_an_offline_payment_whose_advice_reached_the_host_is_reversed() -> None:
    """The advice was processed but its answer lost; the void must not just withdraw the entry."""
    machine = _machine()
    try:
        machine.host_no_answer(n=1, only=None)
        machine.sale(offline_card=True, card=0, amount=100, behaviour=OfflineBehavior.PREFER_ONLINE)
        machine.forward_due()  # the host records the advice, the answer is lost: it stays queued
        (txn_id,) = machine._txn_ids()
        machine.void_txn(txn_id)  # withdrawn from the queue, "it had not been sent to the host"
        machine.check_all()
    finally:
        machine.teardown()


def test_settlement_after_a_crash_inside_the_batch_close_is_possible() -> None:
    """The host closed the batch, the terminal was killed before recording it, then sold again."""
    machine = _machine()
    try:
        machine.crash_inside("close_batch", after_processing=True, offline_card=False, amount=100, void_txn=None)
        machine.sale(offline_card=False, card=0, amount=100, behaviour=OfflineBehavior.PREFER_ONLINE)
        machine.drain_and_settle()  # refused for ever: "idempotency key reused with a different body"
        machine.check_all()
    finally:
        machine.teardown()


def test_a_payment_made_while_a_batch_close_waits_for_the_host_is_settled_in_balance() -> None:
    """The close was refused by the host (the batch is frozen), a sale goes through, settle again."""
    machine = _machine()
    try:
        machine.sale(offline_card=False, card=0, amount=100, behaviour=OfflineBehavior.PREFER_ONLINE)
        machine.host_down(down=True)
        machine.settle()  # batch 1 frozen with 1 sale; the host cannot be reached
        machine.host_down(down=False)
        machine.sale(offline_card=False, card=0, amount=1234, behaviour=OfflineBehavior.PREFER_ONLINE)
        machine.drain_and_settle()  # the host counts the second sale in batch 1, the terminal in batch 2
        machine.check_all()
    finally:
        machine.teardown()


def test_a_sale_refunded_in_part_cannot_then_be_voided() -> None:
    """Found by hand (issue 9): 5.00, refunds of 3.00 and 1.00, then a void paid back 9.00."""
    machine = _machine()
    try:
        machine.sale(offline_card=False, card=0, amount=500, behaviour=OfflineBehavior.PREFER_ONLINE)
        (sale,) = machine._txn_ids()
        for amount in (300, 100):
            result = machine.term.refund(amount, EUR, original_txn_id=sale)
            assert result.approved
            machine._note(result)
        with pytest.raises(PaymentRefused, match="refund\\(s\\) were made against it"):
            machine.term.void(sale)
        machine.check_all()
    finally:
        machine.teardown()


def test_a_deferred_sale_cannot_be_refunded_and_then_voided() -> None:
    """Found by hand (issue 9): a deferred 30.00 sale refunded online, then voided as well."""
    machine = _machine()
    try:
        machine.host_down(down=True)
        machine.sale(offline_card=False, card=0, amount=3000, behaviour=OfflineBehavior.PREFER_ONLINE)
        machine.host_down(down=False)
        (sale,) = machine._txn_ids()
        with pytest.raises(PaymentRefused, match="not reached the host yet"):
            machine.term.refund(3000, EUR, original_txn_id=sale)
        machine.void_txn(sale)
        assert machine.term.transaction(sale).state in (State.VOIDED, State.VOID_PENDING)  # type: ignore[union-attr]
        with pytest.raises(PaymentRefused, match="voided"):
            machine.term.refund(3000, EUR, original_txn_id=sale)
        machine.check_all()
    finally:
        machine.teardown()


def test_a_refund_to_another_card_than_the_original_is_refused_unless_asked_for() -> None:
    """Found by hand (issue 9): --original with --card of another card refunded the original's card."""
    machine = _machine()
    try:
        machine.sale(offline_card=False, card=0, amount=500, behaviour=OfflineBehavior.PREFER_ONLINE)
        (sale,) = machine._txn_ids()
        machine.term.reader = machine._reader(ONLINE_CARDS[1])
        with pytest.raises(PaymentRefused, match="not the card of") as err:
            machine.term.refund(100, EUR, original_txn_id=sale, present_card=True)
        assert err.value.reason == "other_card"
        result = machine.term.refund(100, EUR, original_txn_id=sale, present_card=True, to_other_card=True)
        assert result.approved and result.scheme == "mastercard"
        machine._note(result)
        machine.check_all()
    finally:
        machine.teardown()
