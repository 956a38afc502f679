"""Store and forward: queued reversals first, then the SAF queue in order, with the host's answers recorded.

Before any online message a terminal must deliver what it owes the host:
a batch close left half-done, then every queued reversal (oldest first).
:meth:`Forwarder.clear_the_way` does that; the facade calls it before an
authorisation, and :meth:`Forwarder.forward` before sending the queue.

The queue is sent FIFO, in chunks marked "being sent" before they go out
(so that after a crash their resend carries the retransmission flag), as one
request per chunk when the link takes batches.  Forwarding stops at the first
entry that cannot be delivered, so the order is kept; a failed attempt
schedules the next with the retry policy's backoff.  An entry older than the
policy allows expires; if an earlier attempt may have reached the host, it is
reversed instead of dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial

from terminal.core import Core, iso
from terminal.host import (
    Advice,
    BatchAdvising,
    HostAnswer,
    HostError,
    HostNoAnswer,
    HostRejected,
    HostUnreachable,
    Reversal,
)
from terminal.keystore import KeystoreError
from terminal.lifecycle import Event, State, expires
from terminal.results import ForwardReport
from terminal.store import QueuedItem

__all__ = ["SEND_CHUNK", "Forwarder"]

#: SAF entries marked "being sent" per commit before they go out: the protocol's most advices
#: per request (host_link.wire.MAX_ADVICES_PER_REQUEST), whose answers are recorded in one commit.
SEND_CHUNK = 100


def _raise_or_return(answer: HostAnswer | HostRejected) -> HostAnswer:
    if isinstance(answer, HostRejected):
        raise answer
    return answer


class Forwarder:
    """Delivers reversals and the SAF queue of one terminal; callers hold the terminal's lock.

    ``finish_close`` finishes a batch close that was started and not answered
    (True when none is left, False when the host could not be reached).
    """

    def __init__(self, core: Core, finish_close: Callable[[ForwardReport | None], bool]) -> None:
        self._core = core
        self._finish_close = finish_close

    def clear_the_way(self, report: ForwardReport | None = None) -> bool:
        """Finish a started batch close, then send every queued reversal, oldest first.

        True when nothing is left in the way of a new online message.  A close
        left half-done by a crash must reach the host before anything else
        does, or the host would count new payments in the batch that the
        terminal froze without them.
        """
        core = self._core
        if core.host is None:
            return not core.store.reversals_queued() and core.store.closing_batch() is None
        if not self._finish_close(report):
            return False
        for item in core.store.reversals_queued():
            core.store.mark_sending("reversals", [item.id], core.now())
            reversal = Reversal(
                txn_id=item.txn_id,
                idempotency_key=item.idempotency_key,
                amount=item.amount,
                currency=item.currency,
                terminal_id=core.config.terminal_id,
                reason=item.kind,
                retransmission=item.attempts > 0,
            )
            try:
                core.host.reverse(reversal)
            except HostError as exc:
                core.host_failed(exc)
                nxt = iso(core.settings.retry.next_attempt(core.clock.now(), item.attempts + 1, core.rng))
                core.store.note_failure(
                    "reversals", item.id, str(exc) or type(exc).__name__, nxt, contact=_contact_result(exc)
                )
                core.emit("reversal_failed", item.txn_id, error=str(exc))
                if report is not None:
                    report.failed += 1
                    report.stopped_by = f"reversal: {type(exc).__name__}: {exc}"
                return False
            row = core.store.get(item.txn_id)
            event = (
                Event.VOID_REVERSED
                if row is not None and row.state is State.VOID_PENDING
                else Event.REVERSAL_ACKNOWLEDGED
            )
            core.record(item.txn_id, event, {"reversal": item.kind})
            core.emit("reversal_sent", item.txn_id, reason=item.kind)
            if report is not None:
                report.reversals_sent += 1
        return True

    def forward(self, *, due_only: bool, limit: int | None) -> ForwardReport:
        """Send reversals, then the queue in order; ``due_only``: only entries whose backoff has passed."""
        core = self._core
        report = ForwardReport()
        if core.host is None:
            report.stopped_by = "no host link configured"
            return report
        if not self.clear_the_way(report):
            return report
        now = core.clock.now()
        sendable: list[QueuedItem] = []
        reversals_added = False
        for item in core.store.saf_queued(limit):
            if due_only and item.next_attempt_at is not None and datetime.fromisoformat(item.next_attempt_at) > now:
                break  # FIFO: what is behind an entry waiting out its backoff waits too
            age = (now - datetime.fromisoformat(item.created_at)).total_seconds()
            if age > core.settings.retry.expire_after_seconds and self._may_expire(item):
                # Sent before with the answer lost: the host may hold it, so it is reversed.
                maybe_received = item.attempts > 0
                core.record(
                    item.txn_id,
                    Event.SAF_EXPIRED_AFTER_SENDING if maybe_received else Event.SAF_EXPIRED,
                    {"saf_id": item.id},
                )
                core.emit("saf_expired", item.txn_id, amount=item.amount, currency=item.currency)
                report.expired += 1
                reversals_added = reversals_added or maybe_received
                continue
            sendable.append(item)
        if reversals_added and not self.clear_the_way(report):
            return report  # reversals go before any other online message
        for start in range(0, len(sendable), SEND_CHUNK):
            chunk = sendable[start : start + SEND_CHUNK]
            core.store.mark_sending("saf", [item.id for item in chunk], core.now())
            if not self._send_chunk(chunk, report):
                break
        return report

    def _may_expire(self, item: QueuedItem) -> bool:
        """Whether the lifecycle lets this entry expire (a wallet's record or notice never does)."""
        row = self._core.store.get(item.txn_id)
        return row is not None and expires(row.state)

    def _send_chunk(self, chunk: list[QueuedItem], report: ForwardReport) -> bool:
        """Send a chunk of SAF entries (in one request when the host link takes batches).

        Each answer is recorded as it is classified; False when the host could
        not be reached or did not answer (the rest waits for the next attempt).
        """
        host = self._core.host
        assert host is not None
        advices: list[tuple[QueuedItem, Advice]] = []
        for item in chunk:
            advice = self._advice(item, report)
            if advice is not None:
                advices.append((item, advice))
        if not advices:
            return True
        if not isinstance(host, BatchAdvising):
            return all(self._answer_one(item, partial(host.advise, advice), report) for item, advice in advices)
        try:
            answers = list(host.advise_many([a for _, a in advices]))
        except HostError as exc:
            for item, _ in advices:
                self._failed(item, exc, report)
            return False
        if len(answers) != len(advices):
            short = HostNoAnswer(f"the host answered {len(answers)} of {len(advices)} advices")
            for item, _ in advices:
                self._failed(item, short, report)
            return False
        with self._core.atomic():  # the chunk's answers in one commit, each recorded before the next chunk goes
            for (item, _), answer in zip(advices, answers, strict=True):
                self._answer_one(item, partial(_raise_or_return, answer), report)
        return True

    def _advice(self, item: QueuedItem, report: ForwardReport) -> Advice | None:
        core = self._core
        row = core.store.get(item.txn_id)
        assert row is not None
        try:
            emv_data = core.emv_data(item.txn_id)
        except KeystoreError as exc:
            # Its card data cannot be read: it stays queued (and settlement refused) for a
            # technician, but it must not block the entries behind it.
            core.store.note_failure("saf", item.id, f"card data unreadable: {exc}", None, contact=None)
            core.emit("saf_failed", item.txn_id, error=f"card data unreadable: {exc}")
            report.failed += 1
            return None
        return Advice(
            txn_id=item.txn_id,
            idempotency_key=item.idempotency_key,
            kind=item.kind,
            amount=item.amount,
            currency=item.currency,
            terminal_id=core.config.terminal_id,
            merchant_id=core.config.merchant_id,
            emv_data=emv_data,
            pan_token=row.pan_token or "",
            created_at=item.created_at,
            retransmission=item.attempts > 0,
            original_txn_id=row.original_txn_id,
        )

    def _failed(self, item: QueuedItem, exc: HostError, report: ForwardReport) -> None:
        core = self._core
        core.host_failed(exc)
        nxt = iso(core.settings.retry.next_attempt(core.clock.now(), item.attempts + 1, core.rng))
        core.store.note_failure("saf", item.id, f"{type(exc).__name__}: {exc}", nxt, contact=_contact_result(exc))
        core.emit("saf_failed", item.txn_id, error=str(exc))
        report.failed += 1
        report.stopped_by = f"{type(exc).__name__}: {exc}"

    def _answer_one(self, item: QueuedItem, ask: Callable[[], HostAnswer], report: ForwardReport) -> bool:
        """Ask (or take) the host's answer to one entry and record it; False if there was none."""
        core = self._core
        try:
            answer = ask()
        except HostRejected as exc:
            core.record(item.txn_id, Event.FORWARD_REJECTED, {"error": str(exc)})
            core.emit("saf_rejected", item.txn_id, error=str(exc), amount=item.amount, currency=item.currency)
            report.rejected += 1
            return True
        except HostError as exc:
            self._failed(item, exc, report)
            return False
        details = {
            "response_code": answer.response_code,
            "approval_code": answer.approval_code,
            "host_reference": answer.host_reference,
        }
        if answer.approved:
            core.record(item.txn_id, Event.FORWARD_ACCEPTED, details, details=details)
            core.emit("saf_forwarded", item.txn_id)
            report.accepted += 1
        else:
            core.record(item.txn_id, Event.FORWARD_DECLINED, details, details=details)
            core.emit(
                "saf_declined",
                item.txn_id,
                response_code=answer.response_code,
                amount=item.amount,
                currency=item.currency,
            )
            report.declined += 1
        return True


def _contact_result(exc: HostError) -> str:
    """How the host failed, for its last contact (:mod:`terminal.store_outcomes`)."""
    if isinstance(exc, HostUnreachable):
        return "unreachable"
    if isinstance(exc, HostNoAnswer):
        return "no_answer"
    return "failed"
