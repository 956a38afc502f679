"""One simulated terminal of a load run: payments, its journal in memory, store-and-forward, settlement.

It behaves as the real terminal does where the host is concerned
(:mod:`terminal.payments`, :mod:`host_link.client`), with the messages built
and the answers checked by the terminal's own wire code
(:mod:`host_link.wire`):

- every state-changing message carries an ``Idempotency-Key`` fixed when the
  payment was made; a lost answer (reset, timeout, 5xx, dropped after the
  request) is asked again with the same key, up to ``attempts`` times with
  backoff;
- an authorisation whose answer never came is reversed (reason
  ``no_answer``), and pending reversals are sent before anything else;
- an authorisation that could not be sent at all (connection refused, host
  unreachable within the reachability window, reversals not yet delivered)
  becomes a deferred authorisation in the SAF queue, within offline limits;
- offline approvals by the card (TCs) go to the SAF queue; the queue is
  forwarded in batches of up to 100 advices, each with its own key;
- at the end the terminal drains its reversals and its queue and closes its
  batch with its totals; the host answers in balance or not.

What the terminal does when (``think`` seconds between payments, the mix of
sales, refunds, voids and offline approvals) comes from its own seeded
random generator.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from host_link import wire
from host_link.client import IdempotentRetry, advices_key, header_key
from simulator.loadgen.books import Books, Ev, St, Txn
from simulator.loadgen.cards import CardPool, CardTapError, Tap
from simulator.loadgen.fleet import TerminalIdentity
from simulator.loadgen.https import HostConnection, Lost, NotSent
from simulator.loadgen.stats import RunStats
from terminal.host import Advice, AuthorisationRequest, BatchTotals, HostRejected, Reversal, TotalsLine

__all__ = ["Mix", "Settlement", "SimTerminal"]

EUR = 978
SCHEME = "visa"


@dataclass(frozen=True)
class Mix:
    """What the terminals do: pauses, the share of each kind of payment, amounts, offline limits, retries."""

    think_seconds: float = 5.0  # mean pause between a terminal's payments (exponential)
    refund_share: float = 0.04
    void_share: float = 0.02
    offline_share: float = 0.03  # offline approvals by the card, while precomputed ones last
    min_amount: int = 100
    max_amount: int = 4999  # the online card asks for a PIN from 50.00 EUR on, which the fleet has not
    offline_max_count: int = 100  # stored payments a terminal may hold
    offline_max_amount: int = 5000
    reachability_seconds: float = 2.0  # after "not sent", payments go offline at once for about this long
    retry: IdempotentRetry = field(default_factory=IdempotentRetry)


@dataclass(frozen=True)
class Settlement:
    """How a terminal's batch ended: closed in balance or not, or not closed (and why)."""

    terminal_id: str
    closed: bool
    in_balance: bool
    reason: str
    lines: tuple[tuple[int, str, int, int], ...]
    differences: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class _Answer:
    doc: Any


@dataclass(frozen=True)
class _Failed:
    """No usable answer: ``sent`` False when nothing reached the host, ``rejected`` for a 4xx."""

    sent: bool
    kind: str
    rejected: bool = False


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SimTerminal:
    """A terminal of the fleet, over its own connection to the host."""

    def __init__(
        self,
        identity: TerminalIdentity,
        connection: HostConnection,
        cards: CardPool,
        stats: RunStats,
        *,
        run_id: str,
        mix: Mix,
        seed: int,
    ) -> None:
        self.identity = identity
        self.connection = connection
        self.cards = cards
        self.stats = stats
        self.run_id = run_id
        self.mix = mix
        self.books = Books(identity.terminal_id, identity.merchant_id)
        self._rng = random.Random(seed)
        self._saf: deque[Txn] = deque()
        self._sent_before: set[str] = set()
        self._reversals: deque[Txn] = deque()
        self._stuck: list[Txn] = []
        self._unreachable_until = 0.0
        self._count = 0

    @property
    def terminal_id(self) -> str:
        return self.identity.terminal_id

    # ------------------------------------------------------------------ the run

    async def run(self, stop: asyncio.Event) -> None:
        """Sign on, then pay until ``stop`` is set (a payment under way finishes)."""
        if await self._pause(stop, self._rng.uniform(0, self.mix.think_seconds)):
            return
        await self._sign_on()
        while not stop.is_set():
            if await self._pause(stop, self._rng.expovariate(1.0 / self.mix.think_seconds)):
                return
            await self._one_payment()
            await self.forward()

    @staticmethod
    async def _pause(stop: asyncio.Event, seconds: float) -> bool:
        """Wait ``seconds`` or until ``stop``; True when stopped."""
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _next_id(self) -> str:
        self._count += 1
        return f"{self.run_id}-{self.terminal_id}-{self._count:06d}"

    def _amount(self) -> int:
        return self._rng.randint(self.mix.min_amount, self.mix.max_amount)

    async def _one_payment(self) -> None:
        roll = self._rng.random()
        mix = self.mix
        if roll < mix.void_share and await self._void():
            return
        if roll < mix.void_share + mix.refund_share and await self._refund():
            return
        if roll < mix.void_share + mix.refund_share + mix.offline_share and self._offline_approval():
            return
        await self._sale()

    # ------------------------------------------------------------------ payments

    def _txn(self, kind: str, tap: Tap, *, card: int | None, original: str | None = None) -> Txn:
        txn_id = self._next_id()
        return self.books.add(
            Txn(
                txn_id=txn_id,
                key=txn_id,
                kind=kind,
                amount=tap.amount,
                currency=EUR,
                emv_data=tap.emv_data,
                pan_token=tap.pan_token,
                card=card,
                created_at=_now_iso(),
                original_txn_id=original,
            )
        )

    async def _sale(self) -> None:
        started = time.perf_counter()
        try:
            tap = self.cards.tap_online(self._amount())
        except CardTapError as exc:
            self.stats.error("card", str(exc))
            return
        txn = self._txn("sale", tap, card=tap.card)
        await self._authorise(txn)
        self.stats.payments.append(time.perf_counter() - started)

    def _offline_approval(self) -> bool:
        tap = self.cards.offline_tap()
        if tap is None or len(self._saf) >= self.mix.offline_max_count:
            return False
        txn = self._txn("offline_approval", tap, card=None)
        txn.state = St.STORED  # approved by the card: stored before anything else, as the terminal does
        self._saf.append(txn)
        self.stats.outcome("offline approval (card)")
        return True

    async def _refund(self) -> bool:
        sales = [
            t
            for t in self.books.txns.values()
            if t.counted and t.card is not None and t.kind in ("sale", "deferred_authorisation")
            and t.amount > t.refunded
        ]  # fmt: skip
        if not sales:
            return False
        sale = self._rng.choice(sales)
        amount = self._rng.randint(1, sale.amount - sale.refunded)
        try:
            tap = self.cards.tap_online(amount, card=sale.card, refund=True)
        except CardTapError as exc:
            self.stats.error("card", str(exc))
            return True
        txn = self._txn("refund", tap, card=None, original=sale.txn_id)
        await self._authorise(txn)
        return True

    async def _void(self) -> bool:
        for txn in reversed(self.books.txns.values()):
            if txn.state is St.APPROVED and txn.kind == "sale" and txn.refunded == 0:
                if any(t.original_txn_id == txn.txn_id for t in self.books.txns.values()):
                    continue  # a refund was tried against it (declined or pending): leave it
                self.books.apply(txn, Ev.VOID)
                self._reversals.append(txn)
                self.stats.outcome("void")
                await self.clear_the_way()
                return True
        return False

    async def _authorise(self, txn: Txn) -> None:
        if not await self.clear_the_way():
            self._not_sent(txn, "reversals pending")
            return
        request = AuthorisationRequest(
            txn_id=txn.txn_id,
            idempotency_key=txn.key,
            kind=txn.kind,
            amount=txn.amount,
            currency=txn.currency,
            terminal_id=self.terminal_id,
            merchant_id=self.identity.merchant_id,
            emv_data=txn.emv_data,
            pan_token=txn.pan_token,
            original_txn_id=txn.original_txn_id,
        )
        result = await self._send("authorisation", "/v1/authorisations", wire.authorisation_json(request), txn.key)
        if isinstance(result, _Answer):
            try:
                answer = wire.authorisation_answer(result.doc)
            except wire.MalformedAnswer as exc:
                self.stats.error("authorisation", f"malformed answer ({exc})")
                result = _Failed(True, "malformed")
            else:
                txn.response_code = answer.response_code
                self.books.apply(txn, Ev.HOST_APPROVED if answer.approved else Ev.HOST_DECLINED)
                said = "approved" if answer.approved else f"declined {answer.response_code}"
                self.stats.outcome(f"{txn.kind} {said}")
                return
        if result.rejected:
            txn.response_code = "30"
            self.books.apply(txn, Ev.HOST_DECLINED)
            self.stats.outcome(f"{txn.kind} refused by the host ({result.kind})")
        elif not result.sent:
            self._not_sent(txn, result.kind)
        else:
            self.books.apply(txn, Ev.NO_ANSWER)
            self._reversals.append(txn)
            self.stats.outcome(f"{txn.kind} no answer: reversal pending")
            await self.clear_the_way()

    def _not_sent(self, txn: Txn, why: str) -> None:
        stored = sum(t.amount for t in self._saf)
        if (
            txn.kind == "sale"
            and len(self._saf) < self.mix.offline_max_count
            and txn.amount <= self.mix.offline_max_amount
            and stored + txn.amount <= self.mix.offline_max_amount * self.mix.offline_max_count
        ):
            txn.kind = "deferred_authorisation"
            txn.key = f"{txn.txn_id}.advice"
            self.books.apply(txn, Ev.NOT_SENT_DEFERRED)
            self._saf.append(txn)
            self.stats.outcome("sale stored offline (deferred)")
        else:
            self.books.apply(txn, Ev.NOT_SENT_DECLINED)
            self.stats.outcome(f"{txn.kind} declined offline ({why})")

    # ------------------------------------------------------------------ reversals and advices

    async def clear_the_way(self) -> bool:
        """Send the pending reversals, oldest first; True when none is left."""
        while self._reversals:
            txn = self._reversals[0]
            reason = "void" if txn.state is St.VOID_PENDING else "no_answer"
            reversal = Reversal(
                txn_id=txn.txn_id,
                idempotency_key=f"{txn.txn_id}.reversal",
                amount=txn.amount,
                currency=txn.currency,
                terminal_id=self.terminal_id,
                reason=reason,
                retransmission=txn.txn_id in self._sent_before,
            )
            self._sent_before.add(txn.txn_id)
            result = await self._send(
                "reversal", "/v1/reversals", wire.reversal_json(reversal), reversal.idempotency_key
            )
            if isinstance(result, _Answer):
                try:
                    wire.reversal_answer(result.doc)
                except wire.MalformedAnswer as exc:
                    self.stats.error("reversal", f"malformed answer ({exc})")
                    return False
                self._reversals.popleft()
                self.books.apply(txn, Ev.REVERSAL_DONE)
                continue
            if result.rejected:  # the host will never take it: the books cannot settle; said at the end
                self._reversals.popleft()
                self._stuck.append(txn)
                continue
            return False
        return True

    async def forward(self) -> bool:
        """Send the stored payments, up to 100 a request, until the queue is empty; True when it is."""
        while self._saf:
            if not await self.clear_the_way():
                return False
            batch = list(self._saf)[: wire.MAX_ADVICES_PER_REQUEST]
            advices = [self._advice(t) for t in batch]
            for txn in batch:
                self._sent_before.add(txn.txn_id)
            result = await self._send("advices", "/v1/advices", wire.advices_json(advices), advices_key(advices))
            if not isinstance(result, _Answer):
                return False
            try:
                answers = wire.advice_results(result.doc, advices)
            except wire.MalformedAnswer as exc:
                self.stats.error("advices", f"malformed answer ({exc})")
                return False
            for txn, answer in zip(batch, answers, strict=True):
                self._saf.remove(txn)
                if isinstance(answer, HostRejected):
                    self.books.apply(txn, Ev.ADVICE_REJECTED)
                    self.stats.error("advices", "advice rejected")
                elif answer.approved:
                    self.books.apply(txn, Ev.ADVICE_ACCEPTED)
                    self.stats.outcome(f"{txn.kind} accepted")
                else:
                    txn.response_code = answer.response_code
                    self.books.apply(txn, Ev.ADVICE_DECLINED)
                    self.stats.outcome(f"{txn.kind} declined after forwarding {answer.response_code}")
        return True

    def _advice(self, txn: Txn) -> Advice:
        return Advice(
            txn_id=txn.txn_id,
            idempotency_key=txn.key,
            kind=txn.kind,
            amount=txn.amount,
            currency=txn.currency,
            terminal_id=self.terminal_id,
            merchant_id=self.identity.merchant_id,
            emv_data=txn.emv_data,
            pan_token=txn.pan_token,
            created_at=txn.created_at,
            retransmission=txn.txn_id in self._sent_before,
            original_txn_id=txn.original_txn_id,
        )

    async def _sign_on(self) -> None:
        body = wire.sign_on_json(self.terminal_id, self.identity.merchant_id, "posterm-loadgen")
        result = await self._send("sign-on", "/v1/sign-on", body, secrets.token_hex(16))
        if isinstance(result, _Answer):
            try:
                wire.sign_on_answer(result.doc)
            except wire.MalformedAnswer as exc:
                self.stats.error("sign-on", f"malformed answer ({exc})")

    # ------------------------------------------------------------------ settlement

    async def settle(self, deadline: float, batch_id: int = 1) -> Settlement:
        """Drain reversals and stored payments (until ``deadline``, monotonic), then close the batch."""
        while (self._reversals or self._saf) and time.monotonic() < deadline:
            if await self.clear_the_way() and await self.forward():
                break
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            self._unreachable_until = 0.0
        lines = tuple(self.books.totals())
        open_items = self.books.open_items()
        if open_items:
            states = ", ".join(sorted({t.state.value for t in open_items}))
            refused = f", {len(self._stuck)} reversal(s) refused by the host" if self._stuck else ""
            reason = f"{len(open_items)} payment(s) not settled ({states}{refused})"
            return Settlement(self.terminal_id, False, False, reason, lines)
        totals = BatchTotals(batch_id, self.terminal_id, tuple(TotalsLine(SCHEME, *line) for line in lines))
        key = f"batch-close:{self.terminal_id}:{batch_id}"
        while True:
            result = await self._send("batch close", "/v1/batches/close", wire.batch_close_json(totals), key)
            if isinstance(result, _Answer):
                try:
                    answer = wire.settlement_answer(result.doc)
                except wire.MalformedAnswer as exc:
                    return Settlement(self.terminal_id, False, False, f"malformed answer ({exc})", lines)
                return Settlement(self.terminal_id, True, answer.in_balance, "", lines, answer.differences)
            if result.rejected or time.monotonic() >= deadline:
                return Settlement(self.terminal_id, False, False, f"batch close: {result.kind}", lines)
            await asyncio.sleep(1.0)
            self._unreachable_until = 0.0

    # ------------------------------------------------------------------ one message

    async def _send(self, message: str, path: str, body: dict[str, Any], key: str) -> _Answer | _Failed:
        """POST ``body`` with ``key``; retried with the same key while answers are lost (see the module)."""
        payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
        headers = [("Idempotency-Key", header_key(key))]
        retry = self.mix.retry
        started = time.monotonic()
        attempt = 0
        lost = ""
        while True:
            attempt += 1
            if time.monotonic() < self._unreachable_until:
                if attempt == 1:
                    return _Failed(False, "unreachable")
                return _Failed(True, lost)
            self.stats.requests[message] += 1
            try:
                exchange = await self.connection.request("POST", path, payload, headers)
            except NotSent as exc:
                self.stats.error(message, exc.kind)
                jitter = self._rng.uniform(0.5, 1.5)
                self._unreachable_until = time.monotonic() + self.mix.reachability_seconds * jitter
                return _Failed(attempt > 1, exc.kind if attempt == 1 else lost)
            except Lost as exc:
                self.stats.error(message, exc.kind)
                lost = exc.kind
            else:
                status = exchange.status
                if 200 <= status < 300:
                    try:
                        doc = wire.parse_json(exchange.body)
                    except wire.MalformedAnswer:
                        self.stats.error(message, "malformed answer")
                        lost = "malformed"
                    else:
                        self.stats.answered(message, exchange.seconds, exchange.replayed)
                        return _Answer(doc)
                elif status >= 500 or status in (408, 429):
                    self.stats.error(message, f"HTTP {status}")
                    lost = f"HTTP {status}"
                else:
                    self.stats.error(message, f"HTTP {status} {wire.error_text(exchange.body)}")
                    return _Failed(True, f"HTTP {status}", rejected=True)
            delay = retry.delay(attempt)
            if attempt >= retry.attempts or time.monotonic() - started + delay > retry.total_seconds:
                return _Failed(True, lost)
            await asyncio.sleep(delay)
