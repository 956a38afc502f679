"""The banner above every cashier screen: the host unreachable or its certificate rejected, what is stored.

Shown whenever the cashier should know that payments are not reaching the
acquirer: how many are stored offline (and how much), since when, and a
"Send now" that forwards them at once.  It reads the terminal's events, so
it needs no polling:

- ``offline_status`` (after every payment and every forwarding): the counts;
- a payment approved as deferred, or declined because the host could not be
  reached (``state_changed`` with ``not_sent_deferred`` / ``not_sent_declined``),
  and a failed forwarding (``saf_failed``, ``reversal_failed``): the host is
  unreachable;
- ``security``: the host's certificate was rejected.  That is not an outage
  but possibly someone between the terminal and its acquirer, so it is said
  as such, in red, and stays until a payment or a forwarding reaches the
  host again;
- any answer from the host (``saf_forwarded``, ``reversal_sent``, an online
  approval or decline): the host is back.

With nothing stored and the host answering, the banner is not there at all
(no height taken).  At start-up the queue and the last forwarding error are
read once, so a terminal restarted with payments stored says so at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from terminal.results import ForwardReport, SafStatus, TerminalEvent
from ui.session import Session
from ui.viewmodel import ViewModel

__all__ = ["Banner"]

_UNREACHABLE_EVENTS = frozenset({"not_sent_deferred", "not_sent_declined"})
_HOST_ANSWERED_EVENTS = frozenset({"host_approved", "host_declined", "forward_accepted", "forward_declined"})


class Banner(ViewModel):
    """What the banner says: whether it shows, its tone, the fact, the counts, and "Send now"."""

    screen = "banner"
    visible: bool = False
    tone: str = "offline"  # security | offline | waiting
    title: str = ""
    detail: str = ""
    sending: bool = False
    can_send: bool = False
    send_label: str = ""
    message: str = ""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.unreachable = False
        self.certificate_rejected = False
        self._queued = 0
        self._reversals = 0
        self._totals: dict[int, tuple[int, int]] = {}
        self._oldest: str | None = None
        for kind in ("offline_status", "security", "state_changed", "saf_failed", "reversal_failed",
                     "saf_forwarded", "reversal_sent"):  # fmt: skip
            session.on_event(kind, self._heard)
        session.tr.listen(lambda _: self._show())
        self._show()

    def start(self) -> None:
        """Read the queue once (at start-up: a terminal restarted with payments stored says so)."""
        self.session.run(lambda t: t.offline_status(), self._status, lambda _e: None, name="banner status")

    # -- what is heard -------------------------------------------------------------------------

    def _status(self, status: SafStatus) -> None:
        self._queued, self._reversals = status.queued, status.reversals_queued
        self._totals, self._oldest = dict(status.totals), status.oldest_at
        if status.last_error and "certificate" in status.last_error.lower():
            self.certificate_rejected = True
        elif status.last_error and (status.queued or status.reversals_queued):
            self.unreachable = True
        self._show()

    def _heard(self, event: TerminalEvent) -> None:
        data = event.data
        if event.kind == "offline_status":
            self._queued = int(data.get("queued", 0))
            self._reversals = int(data.get("reversals_queued", 0))
            self._totals = {
                int(code): (int(v.get("count", 0)), int(v.get("amount", 0)))
                for code, v in dict(data.get("totals") or {}).items()
            }
            self._oldest = data.get("oldest_at")
        elif event.kind == "security":
            self.certificate_rejected = True
        elif event.kind in ("saf_failed", "reversal_failed"):
            self.unreachable = True
        elif event.kind in ("saf_forwarded", "reversal_sent"):
            self.unreachable = self.certificate_rejected = False
        elif event.kind == "state_changed":
            change = str(data.get("event", ""))
            if change in _UNREACHABLE_EVENTS:
                self.unreachable = True
            elif change in _HOST_ANSWERED_EVENTS:
                self.unreachable = self.certificate_rejected = False
        self._show()

    # -- what is shown -------------------------------------------------------------------------

    def _since(self) -> str:
        if not self._oldest:
            return ""
        at = datetime.fromisoformat(self._oldest).astimezone()
        today = self.session.terminal.clock.now().astimezone().date()
        return f"{at:%H:%M}" if at.date() == today else self.session.tr.when(at)

    def _show(self) -> None:
        tr = self.session.tr
        stored = self._queued + self._reversals
        visible = self.certificate_rejected or self.unreachable or stored > 0
        if self.certificate_rejected:
            tone, title = "security", tr("Host certificate rejected: payments are kept here, not sent")
        elif self.unreachable:
            tone, title = "offline", tr("Host unreachable")
        else:
            tone, title = "waiting", tr("Payments waiting to be sent")
        parts = []
        if self._queued:
            amounts = ", ".join(tr.amount(amount, code) for code, (_n, amount) in sorted(self._totals.items()))
            text = (
                tr("1 payment stored offline")
                if self._queued == 1
                else tr("{n} payments stored offline", n=self._queued)
            )
            if amounts:
                text += f" ({amounts})"
            since = self._since()
            if since:
                text += " " + tr("since {when}", when=since)
            parts.append(text)
        if self._reversals:
            parts.append(tr("{n} reversals to send", n=self._reversals))
        if not parts and visible:
            parts.append(tr("No payments stored"))
        self.update(
            visible=visible,
            tone=tone,
            title=title,
            detail="; ".join(parts),
            send_label=tr("Sending") if self.sending else tr("Send now"),
            can_send=stored > 0 and not self.sending,
        )

    # -- "Send now" ----------------------------------------------------------------------------

    def send_now(self) -> None:
        """Forward what is stored, now (the queue's order, each once); the outcome is said in one line."""
        if not self.can_send:
            return
        tr = self.session.tr
        self.update(sending=True, message="")
        self._show()

        def done(report: ForwardReport) -> None:
            self.update(sending=False)
            if report.stopped_by or report.failed:
                self.unreachable = self.unreachable or not self.certificate_rejected
                self.update(message=tr("Not sent: {why}", why=report.stopped_by or tr("the host did not answer")))
            else:
                self.update(message=tr("{n} sent", n=report.accepted + report.declined + report.reversals_sent))
            self._show()

        def failed(exc: BaseException) -> None:
            self.update(sending=False, message=tr("Not sent: {why}", why=self.session.describe(exc)))
            self._show()

        self.session.run(lambda t: t.forward_now(), done, failed, name="send now")

    def sample(self) -> None:
        from datetime import UTC

        now = self.session.terminal.clock.now().astimezone(UTC).replace(hour=9, minute=42, second=0, microsecond=0)
        self.unreachable, self.certificate_rejected = True, False
        self._queued, self._reversals = 3, 0
        self._totals = {self.session.currency: (3, 6420)}
        self._oldest = now.isoformat()
        self.update(message="")
        self._show()

    def state(self) -> dict[str, Any]:
        return super().state() | {"unreachable": self.unreachable, "certificate_rejected": self.certificate_rejected}
