"""Digital-currency payments: what is shown approved is credited exactly once, whatever happens (CBDC-SPEC).

Hypothesis drives two real terminals of one merchant (SQLite journals, file
keystores) and one simulated host with its digital-currency operator (an
in-process host over a SQLite file both share) with the simulator's wallets,
good and bad (the two clones can pay one at each terminal, so that only the
operator can catch them), through random sequences of payments,
offline periods (the host down), syncs (forwarding the queue), crashes (the
terminal abandoned and opened again from its data directory, start-up
recovery included), crashes between the intent and the wallet's answer, and
torn payments.  After every step:

- every payment shown approved is, on the terminal's books, approved and
  queued, or credited by the operator, and then credited exactly once (one
  record claimed by its transaction, credited), or declined after forwarding
  and not credited;
- no double spend is credited: per wallet, the operator's credited records have
  distinct counters and never more than the wallet held; no transaction is
  credited twice;
- the books agree: what the terminal holds as credited equals, payment for
  payment, what the operator credited to this terminal, and nothing the
  terminal did not show approved is credited;
- the operator never credits a wallet more than it held (a clone or a wallet
  that rolls back spends twice), nor an honest wallet more than it debited.

``POSTERM_CBDC_SM_EXAMPLES`` and ``POSTERM_CBDC_SM_STEPS`` set the size of the run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from simulator.cbdc import profiles as wallet_profiles
from simulator.cbdc.state import WalletStore
from simulator.devices import SimulatorCardReader
from simulator.host.admin import open_store
from simulator.host.inprocess import InProcessHost
from terminal.bootstrap import open_terminal
from terminal.facade import Terminal
from terminal.lifecycle import State
from terminal.ports import CancelToken, CardSession, NoCardError
from terminal.settings import load_default_settings

EXAMPLES = int(os.environ.get("POSTERM_CBDC_SM_EXAMPLES", "20"))
STEPS = int(os.environ.get("POSTERM_CBDC_SM_STEPS", "30"))
CNY = 156

GOOD = ["cbdc-anon", "cbdc-verified", "cbdc-torn"]
BAD = ["cbdc-low-balance", "cbdc-expired", "cbdc-blocked", "cbdc-tampered", "cbdc-garbage", "cbdc-replay",
       "cbdc-untrusted-operator", "cbdc-rollback", "cbdc-clone-a", "cbdc-clone-b"]  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.moment = datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        return self.moment


class Crash(BaseException):
    """The terminal's process dies here (nothing catches a BaseException): what a kill leaves on disk."""


class _Reader:
    """A simulated wallet presented once; ``dies_at_pay``: the terminal dies as PAY goes out; later taps: none."""

    kind = "reader"

    def __init__(self, url: str, *, dies_at_pay: bool = False, walks_away: bool = False) -> None:
        self._reader = SimulatorCardReader.open(url)
        self._dies = dies_at_pay
        self._walks_away = walks_away
        self._taps = 0

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> CardSession:
        self._taps += 1
        if self._taps > 1 and self._walks_away:
            raise NoCardError("the customer walked away")
        session = self._reader.wait_for_card(timeout=timeout, cancel=cancel)
        if not self._dies:
            return session
        dies = self._dies

        class Dying:
            atr = session.atr

            def exchange(self, command: bytes) -> bytes:
                if dies and command[:2] == b"\x80\x54":
                    raise Crash
                return session.exchange(command)

            def close(self) -> None:
                session.close()

        return Dying()  # type: ignore[return-value]


TERMINAL_IDS = ("TERM0001", "TERM0002")


class CbdcDay(RuleBasedStateMachine):
    """Two terminals of one merchant and one host (the host's database in the first one's data directory)."""

    @initialize()
    def setup(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="posterm-cbdc-sm-"))
        self.wallets = self.root / "wallets"
        self.clock = Clock()
        self.down = False
        self.terminals = [self._open(0), self._open(1)]
        self.shown_approved: set[str] = set()
        self.shown_other: set[str] = set()

    def teardown(self) -> None:
        for terminal in getattr(self, "terminals", []):
            terminal.close()
        shutil.rmtree(getattr(self, "root", ""), ignore_errors=True)

    def _open(self, which: int) -> Terminal:
        terminal = open_terminal(
            self.root / f"terminal-{which}", host="none", clock=self.clock, settings=load_default_settings(),
            recover=False, reader_url="none",
        )  # fmt: skip
        terminal.config = replace(terminal.config, terminal_id=TERMINAL_IDS[which])
        host = InProcessHost(self.root / "host" / "host.db", clock=self.clock.now)
        host.faults.down = self.down
        terminal.host = host
        terminal.recover()  # start-up recovery, as open_terminal runs it
        return terminal

    def _pay(self, which: int, profile: str, amount: int, **reader: bool) -> None:
        terminal = self.terminals[which]
        terminal.reader = _Reader(f"sim:card={profile}?state-dir={self.wallets}", **reader)  # type: ignore[assignment]
        result = terminal.sale(amount, CNY)
        (self.shown_approved if result.approved else self.shown_other).add(result.txn_id)
        event(f"{profile}: {result.state.value} {result.refusal or ''}".strip())
        if result.refusal is not None:
            assert result.message.startswith("declined")

    # -- rules ------------------------------------------------------------------------------------

    @rule(which=st.integers(0, 1), profile=st.sampled_from(GOOD + BAD), amount=st.integers(1, 5000))
    def pay(self, which: int, profile: str, amount: int) -> None:
        self._pay(which, profile, amount)

    @rule(which=st.integers(0, 1), amount=st.integers(1, 5000))
    def torn_and_walks_away(self, which: int, amount: int) -> None:
        self._pay(which, "cbdc-torn", amount, walks_away=True)

    @rule(which=st.integers(0, 1), profile=st.sampled_from(["cbdc-anon", "cbdc-verified"]),
          amount=st.integers(1, 5000))  # fmt: skip
    def crash_between_intent_and_outcome(self, which: int, profile: str, amount: int) -> None:
        terminal = self.terminals[which]
        terminal.reader = _Reader(f"sim:card={profile}?state-dir={self.wallets}", dies_at_pay=True)  # type: ignore[assignment]
        try:
            terminal.sale(amount, CNY)
        except Crash:
            pass
        else:  # refused before PAY (a limit): nothing to crash on
            return
        self._crash(which)

    @rule(down=st.booleans())
    def host_up_or_down(self, down: bool) -> None:
        self.down = down
        for terminal in self.terminals:
            host = terminal.host
            assert isinstance(host, InProcessHost)
            host.faults.down = down

    @rule(which=st.integers(0, 1))
    def sync(self, which: int) -> None:
        report = self.terminals[which].forward_now()
        event(f"sync: {report.accepted} accepted, {report.declined} declined" if report.accepted + report.declined
              else "sync: nothing sent")  # fmt: skip

    @rule(hours=st.integers(1, 30))
    def time_passes(self, hours: int) -> None:
        self.clock.moment += timedelta(hours=hours)

    @rule(which=st.integers(0, 1))
    def crash(self, which: int) -> None:
        self._crash(which)

    def _crash(self, which: int) -> None:
        terminal = self.terminals[which]
        terminal.store.close()  # no cleanup beyond what is committed: what a kill leaves
        host = terminal.host
        if isinstance(host, InProcessHost):
            host.close()
        self.terminals[which] = self._open(which)

    # -- invariants -------------------------------------------------------------------------------

    def _operator_records(self) -> list[Any]:
        host_dir = self.root / "host"
        if not (host_dir / "host.db").exists():
            return []
        with open_store(host_dir, create=False) as db:
            return [r for account in db.cbdc_wallets() for r in db.cbdc_records(account.wallet_id)]

    @invariant()
    def shown_approved_is_credited_exactly_once_and_the_books_agree(self) -> None:
        if not hasattr(self, "terminals"):
            return
        records = self._operator_records()
        credited = [r for r in records if r.status == "credited"]
        by_txn = Counter(r.claimed_txn_id for r in credited)
        assert all(n == 1 for n in by_txn.values()), f"a payment credited twice: {by_txn}"
        # no double spend: one credited record per (wallet, counter), never beyond what the wallet held
        assert len({(r.wallet_id, r.counter) for r in credited}) == len(credited)
        rows = {row.txn_id: row for terminal in self.terminals for row in terminal.transactions()}
        for txn_id in self.shown_approved:
            row = rows[txn_id]
            assert row.state in (State.WALLET_APPROVED, State.WALLET_CREDITED, State.DECLINED_AFTER_FORWARDING), row
            assert by_txn[txn_id] == (1 if row.state is State.WALLET_CREDITED else 0), (txn_id, row.state)
        # nothing the terminal did not show approved is credited; the amounts agree payment for payment
        for record in credited:
            assert record.claimed_txn_id in self.shown_approved, record
            assert rows[record.claimed_txn_id].amount == record.amount
        for which, terminal in enumerate(self.terminals):  # each terminal's books against the operator's
            books = sum(r.amount for r in terminal.transactions() if r.state is State.WALLET_CREDITED)
            assert books == sum(r.amount for r in credited if r.claimed_terminal_id == TERMINAL_IDS[which])

    @invariant()
    def the_operator_never_credits_more_than_a_wallet_held_or_debited(self) -> None:
        if not hasattr(self, "wallets"):
            return
        credited: Counter[str] = Counter()
        for r in self._operator_records():
            if r.status == "credited":
                credited[r.wallet_id] += r.amount
        profiles = [wallet_profiles.load(name) for name in GOOD + BAD]
        opening = {p.keys.wallet_id.hex().upper(): p.keys.opening_balance for p in profiles}
        for wallet_id, amount in credited.items():  # a clone or a rollback spends twice: credited once at most
            assert amount <= opening[wallet_id], (wallet_id, amount, opening[wallet_id])
        if not self.wallets.exists():
            return
        for name, state in WalletStore(self.wallets).used().items():  # honest wallets: what they debited
            keys = wallet_profiles.load(name).keys
            assert state.balance >= 0
            if name in GOOD:
                wallet_id = keys.wallet_id.hex().upper()
                assert credited[wallet_id] <= keys.opening_balance - state.balance, (name, credited[wallet_id])

    @invariant()
    def nothing_is_left_between_intent_and_outcome(self) -> None:
        if not hasattr(self, "terminals"):
            return
        for terminal in self.terminals:  # (each payment ends before the next step: none is left in flight)
            assert not [r for r in terminal.transactions() if r.state in (State.WALLET_PAYING, State.WALLET_TORN)]


CbdcDay.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestCbdcDay = CbdcDay.TestCase
