"""End of day: send what is stored offline (with progress), settle the batch, show and print the Z report.

A batch closes only with nothing left to send (the terminal refuses
otherwise), so the stored payments and reversals go first, in chunks of
:data:`CHUNK`: the screen counts them as the host accepts them (the
terminal's ``saf_forwarded`` and ``reversal_sent`` events), and "Stop" ends
the sending between two chunks (nothing is half-sent; what is left stays
stored).  Then the batch is settled: that step is the host's and is not
cancelled once asked.  The Z report follows, printed by itself when a
printer is configured.

What can go wrong is said as such: nothing to settle (no payment since the
last end of day: the last Z report is shown instead); a payment the host
could not take (the forwarding stops, with the host's or the link's words);
a refusal of the settlement (:class:`terminal.results.SettlementRefused`:
what to do first); the host out of balance (the Z report says so, and the
batch is closed all the same, as the acquirer's report is what is compared).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from typing import Any

from terminal.results import ForwardReport, SettlementRefused, SettlementResult, TerminalEvent
from terminal.settlement import NothingToSettle
from ui.screens.reports import print_text, report_text, sample_report
from ui.session import Session
from ui.viewmodel import ViewModel

__all__ = ["CHUNK", "DayEnd"]

CHUNK = 20  # entries sent per call: "Stop" waits for at most this many


@dataclass(frozen=True)
class _Sent:
    report: ForwardReport
    left: int
    stopped: bool


@dataclass(frozen=True)
class _Closed:
    result: SettlementResult
    text: str
    printed: bool
    print_error: str | None


class DayEnd(ViewModel):
    """The three steps of the day's end, each with its state in words, then the Z report."""

    screen = "day_end"
    title: str = ""
    stage: str = "ready"  # ready | sending | settling | done | nothing | refused | failed
    steps: tuple[dict[str, str], ...] = ()  # {"text": ..., "state": todo|doing|done|failed|skipped}
    to_send: int = 0
    sent: int = 0
    progress: float = 0.0
    message: str = ""
    error: bool = False
    report_text: str = ""
    busy: bool = False
    can_start: bool = True
    can_stop: bool = False
    can_print: bool = False
    start_label: str = ""
    stop_label: str = ""
    print_label: str = ""
    back_label: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._stop = threading.Event()
        self._states = ["todo", "todo", "todo"]
        self._fresh = False  # a screenshot's sample: shown as is
        session.on_event("saf_forwarded", self._one_sent)
        session.on_event("reversal_sent", self._one_sent)
        session.tr.listen(lambda _: self._show())

    # -- what the screen shows -----------------------------------------------------------------

    def _step_texts(self) -> list[str]:
        tr = self.session.tr
        if self.stage == "sending" or (self.to_send and self._states[0] != "todo"):
            send = tr("Send stored payments: {sent} of {total}", sent=self.sent, total=self.to_send)
        elif self._states[0] == "skipped":
            send = tr("Send stored payments: none stored")
        else:
            send = tr("Send stored payments")
        return [send, tr("Settle the batch with the host"), tr("Z report")]

    def _show(self) -> None:
        tr = self.session.tr
        running = self.stage in ("sending", "settling")
        self.update(
            title=tr("End of day"),
            steps=tuple({"text": t, "state": s} for t, s in zip(self._step_texts(), self._states, strict=True)),
            progress=(self.sent / self.to_send) if self.to_send else (1.0 if self._states[0] != "todo" else 0.0),
            busy=running,
            can_start=not running and self.stage != "done",
            can_stop=self.stage == "sending" and not self._stop.is_set(),
            can_print=self.session.terminal.printer is not None and bool(self.report_text) and not running,
            start_label=tr("Try again") if self.stage in ("refused", "failed") else tr("Start"),
            stop_label=tr("Stop"),
            print_label=tr("Print"),
            back_label=tr("Done") if self.stage in ("done", "nothing") else tr("Back"),
        )

    def open(self) -> None:
        """The screen, ready to start (the queue is read to say how much will be sent first)."""
        if self.stage in ("sending", "settling"):
            self.session.navigator.go(self.screen)
            return
        self._states = ["todo", "todo", "todo"]
        self.update(stage="ready", sent=0, to_send=0, message="", error=False, report_text="")
        self._show()
        self.session.navigator.go(self.screen)

        def queued(terminal: Any) -> int:
            status = terminal.offline_status()
            return int(status.queued + status.reversals_queued)

        def known(count: int) -> None:
            if self.stage == "ready":
                tr = self.session.tr
                self.update(
                    to_send=count,
                    message=tr("{n} stored payments will be sent first", n=count) if count else "",
                )
                self._show()

        self.session.run(queued, known, name="day end status")

    def shown(self) -> None:
        if self._fresh:
            self._fresh = False
            return
        self._show()

    # -- the steps -----------------------------------------------------------------------------

    def start(self) -> None:
        """Send, settle, report: each step starts when the one before it ended well."""
        if not self.can_start:
            return
        tr = self.session.tr
        self._stop.clear()
        self._states = ["doing", "todo", "todo"]
        self.update(stage="sending", sent=0, message=tr("Sending stored payments"), error=False, report_text="")
        self._show()
        stop = self._stop

        def send(terminal: Any) -> _Sent:
            status = terminal.offline_status()
            total = ForwardReport()
            left = status.queued + status.reversals_queued
            self.session.dispatch(partial(self._to_send, left))  # (the count now, not as it is later)
            while left and not stop.is_set():
                report = terminal.forward_now(limit=CHUNK)
                for name in ("reversals_sent", "accepted", "declined", "rejected", "expired", "failed"):
                    setattr(total, name, getattr(total, name) + getattr(report, name))
                total.stopped_by = report.stopped_by
                status = terminal.offline_status()
                now_left = status.queued + status.reversals_queued
                if report.stopped_by or report.failed or now_left >= left:
                    left = now_left
                    break  # the host did not take them: settling would be refused
                left = now_left
            return _Sent(total, left, stop.is_set())

        self.session.run(send, self._sent, self._failed, name="day end send")

    def _to_send(self, count: int) -> None:
        self.update(to_send=count)
        self._show()

    def _one_sent(self, _event: TerminalEvent) -> None:
        if self.stage == "sending":
            self.update(sent=min(self.sent + 1, max(self.to_send, self.sent + 1)))
            self._show()

    def stop(self) -> None:
        """Stop sending after the chunk in progress (what is left stays stored, nothing is settled)."""
        if self.stage == "sending":
            self._stop.set()
            self.update(message=self.session.tr("Stopping after the payments being sent"))
            self._show()

    def _sent(self, sent: _Sent) -> None:
        tr = self.session.tr
        if sent.left:
            self._states = ["failed", "todo", "todo"]
            if sent.stopped:
                why = tr("Stopped: {n} payments still stored; the batch was not settled", n=sent.left)
            else:
                reason = sent.report.stopped_by or tr("the host did not take them")
                why = tr(
                    "{n} payments could not be sent ({why}): the batch cannot be settled yet", n=sent.left, why=reason
                )
            self.update(stage="failed", error=True, message=why)
            self._show()
            return
        self._states = ["done" if self.to_send else "skipped", "doing", "todo"]
        self.update(stage="settling", sent=self.to_send, message=tr("Settling with the host"))
        self._show()

        def settle(terminal: Any) -> _Closed:
            result = terminal.settle()
            text = report_text(terminal, "Z", result.batch_id)
            try:
                printed, error = print_text(terminal, text), None
            except Exception as exc:  # a printer fault never undoes a settlement: it is told
                printed, error = False, str(exc) or type(exc).__name__
            return _Closed(result, text, printed, error)

        self.session.run(settle, self._settled, self._failed, name="day end settle")

    def _settled(self, closed: _Closed) -> None:
        tr = self.session.tr
        self._states = [self._states[0], "done", "done"]
        balance = (
            tr("In balance")
            if closed.result.in_balance
            else tr("Out of balance: compare the Z report with the acquirer's")
        )
        notes = [tr("Batch {batch} settled", batch=closed.result.batch_id), balance]
        if closed.printed:
            notes.append(tr("Z report printed"))
        elif closed.print_error:
            notes.append(tr("Z report not printed: {why}", why=closed.print_error))
        self.update(
            stage="done", report_text=closed.text, message=" · ".join(notes), error=not closed.result.in_balance
        )
        self._show()

    def _failed(self, exc: BaseException) -> None:
        tr = self.session.tr
        if isinstance(exc, NothingToSettle):
            self._states = [self._states[0], "skipped", "skipped"]
            nothing = tr("Nothing to settle: no payments since the last end of day")
            self.update(stage="nothing", error=False, message=nothing)
            self._show()
            self.session.run(lambda t: report_text(t, "Z"), self._last_report, lambda _e: None, name="last z report")
            return
        self._states = ["failed" if s == "doing" else s for s in self._states]
        stage = "refused" if isinstance(exc, SettlementRefused) else "failed"
        self.update(stage=stage, error=True, message=tr("Not settled: {why}", why=self.session.describe(exc)))
        self._show()

    def _last_report(self, text: str) -> None:
        if self.stage == "nothing":
            self.update(report_text=text, message=self.message + " · " + self.session.tr("The last Z report:"))
            self._show()

    def print_report(self) -> None:
        """Print the Z report (again)."""
        if not self.can_print:
            return
        tr = self.session.tr
        text = self.report_text

        def done(_: object) -> None:
            self.update(message=tr("Z report printed"), error=False)

        def failed(exc: BaseException) -> None:
            self.update(message=tr("Z report not printed: {why}", why=self.session.describe(exc)), error=True)

        self.session.run(lambda t: print_text(t, text), done, failed, name="print z report")

    def back(self) -> None:
        if self.stage in ("sending", "settling"):
            return  # it goes on; the screen would only hide it
        done = self.stage in ("done", "nothing")
        self.session.navigator.go("amount" if done or "menu" not in self.session.screens else "menu")

    def sample(self) -> None:
        tr = self.session.tr
        self._states = ["done", "done", "done"]
        self.update(
            stage="done",
            to_send=2,
            sent=2,
            report_text=sample_report("Z", self.session.currency),
            message=" · ".join([tr("Batch {batch} settled", batch=41), tr("In balance"), tr("Z report printed")]),
            error=False,
        )
        self._show()
        self.update(can_print=True)  # (as with a printer: the Z report can be printed again)
        self._fresh = True
