"""The terminal's own figures for whoever runs it: its queues, its host, its devices, its certificate.

What an operator watches on a fleet of terminals (docs/operations.md, "The terminal"
says what each figure means and what to alert on):

- the store-and-forward queue: how many payments wait, the age of the
  oldest (the offline age limit refuses new offline payments beyond it), how
  much per currency, and the limits themselves;
- reversals waiting to be sent (money the customer may be charged until they go);
- the host's last contact, whatever its result, and the last time it answered;
- each configured device: up, down (with why) or not known;
- the days left on the terminal's certificate for the host, when enrolled;
- payments whose outcome nobody was shown (:mod:`terminal.notices`).

:func:`snapshot` reads them from a terminal (the journal and the data
directory; nothing is sent, nothing is opened); ``posterm diag --json`` adds
them as ``metrics`` (:func:`diag_metrics`, with the devices as its tests found
them), and a terminal that runs as a service (``posterm ecr serve``, the
kiosk) serves them in Prometheus' text format with its payments by outcome
(:class:`UsageTracker` counts them, and keeps each device's state as its last
use left it).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from terminal.bootstrap import ENROLMENT_FILE
from terminal.diag_result import DiagResult
from terminal.facade import Terminal
from terminal.limits import MAX_STATE_FILE_BYTES, read_json_input
from terminal.money import currency
from terminal.results import TerminalEvent

__all__ = [
    "DEVICE_KINDS",
    "DeviceState",
    "TerminalMetrics",
    "UsageTracker",
    "certificate_expiry",
    "devices_of_results",
    "diag_metrics",
    "snapshot",
]

DEVICE_KINDS: Final = ("reader", "scanner", "printer")
# The reasons a payment gives when the reader could not be used (terminal.card_reading, the facade).
_READER_FAULTS: Final = frozenset({"reader_gone", "reader_error", "no_reader"})


@dataclass(frozen=True)
class DeviceState:
    """A device of the terminal: ``up``, ``down``, ``unknown`` (not used or tested yet) or ``not_configured``."""

    kind: str
    url: str | None
    state: str
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "state": self.state, "reason": self.reason}


@dataclass(frozen=True)
class TerminalMetrics:
    """One reading of the figures (see the module docstring); ``to_json`` is ``diag --json``'s ``metrics``."""

    at: str
    terminal_id: str
    merchant_id: str
    saf_depth: int
    saf_oldest_at: str | None
    saf_oldest_age_seconds: float | None
    saf_amounts: dict[int, tuple[int, int]]  # currency -> (count, amount in minor units)
    saf_max_depth: int
    saf_max_age_seconds: float
    declined_after_forwarding: int
    reversals_pending: int
    host_last_contact: dict[str, Any] | None  # at, result, what, error
    host_last_answer: dict[str, Any] | None
    security_events: int
    devices: dict[str, DeviceState]
    certificate_not_after: str | None
    certificate_days_left: float | None
    payments_unshown: int
    payments: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, outcome) -> count, service only

    def seconds_since(self, moment: str | None) -> float | None:
        if moment is None:
            return None
        return round((datetime.fromisoformat(self.at) - datetime.fromisoformat(moment)).total_seconds(), 3)

    def to_json(self) -> dict[str, Any]:
        answer = self.host_last_answer
        return {
            "at": self.at,
            "terminal_id": self.terminal_id,
            "merchant_id": self.merchant_id,
            "saf": {
                "depth": self.saf_depth,
                "oldest_at": self.saf_oldest_at,
                "oldest_age_seconds": self.saf_oldest_age_seconds,
                "amounts": {_code(c): {"count": n, "amount": a} for c, (n, a) in sorted(self.saf_amounts.items())},
                "max_depth": self.saf_max_depth,
                "max_age_seconds": self.saf_max_age_seconds,
                "declined_after_forwarding": self.declined_after_forwarding,
            },
            "reversals_pending": self.reversals_pending,
            "host": {
                "last_contact": self.host_last_contact,
                "last_answer": answer,
                "seconds_since_answer": self.seconds_since(answer["at"] if answer else None),
                "certificate_rejections": self.security_events,
            },
            "devices": {kind: state.to_json() for kind, state in self.devices.items()},
            "certificate": {"not_after": self.certificate_not_after, "days_left": self.certificate_days_left},
            "payments_unshown": self.payments_unshown,
        }


def _code(numeric: int) -> str:
    try:
        return currency(numeric).code
    except ValueError:
        return f"{numeric:03d}"


def certificate_expiry(data_dir: Path, now: datetime) -> tuple[str | None, float | None]:
    """When the terminal's certificate for its host expires, and the days left; (None, None) when not enrolled.

    From the enrolment record (``host-link/enrolment.json``, written by
    host_link's enrolment and its certificate renewal); a record that cannot
    be read counts as not known.
    """
    try:
        doc = read_json_input(Path(data_dir) / ENROLMENT_FILE, MAX_STATE_FILE_BYTES, "enrolment record")
        not_after = str(doc["certificate_not_after"])
        moment = datetime.fromisoformat(not_after)
    except (OSError, ValueError, KeyError, TypeError):
        return None, None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return not_after, round((moment - now).total_seconds() / 86400, 2)


def snapshot(
    terminal: Terminal,
    *,
    data_dir: Path | None = None,
    devices: Mapping[str, DeviceState] | None = None,
    payments: Mapping[tuple[str, str], int] | None = None,
) -> TerminalMetrics:
    """The terminal's figures now, from its journal and data directory (nothing is sent or opened).

    ``devices``: their states as known to the caller (a diagnostics run, a
    service's last uses); a kind not given is ``not_configured`` or ``unknown``.
    """
    now = terminal.clock.now()
    directory = Path(data_dir) if data_dir is not None else Path(terminal.store.path).parent
    saf = terminal.offline_status()
    last, answered = terminal.host_contact()
    not_after, days = certificate_expiry(directory, now)
    limits = terminal.settings.offline_limits
    known = dict(devices or {})
    configured = {"reader": terminal.reader, "scanner": terminal.scanner, "printer": terminal.printer}
    states: dict[str, DeviceState] = {}
    for kind in DEVICE_KINDS:
        if kind in known:
            states[kind] = known[kind]
            continue
        device = configured[kind]
        url = getattr(device, "url", None) if device is not None else None
        states[kind] = (
            DeviceState(kind, None, "not_configured")
            if device is None
            else DeviceState(kind, url if isinstance(url, str) else None, "unknown", "not used since the start")
        )
    return TerminalMetrics(
        at=now.astimezone(UTC).isoformat(timespec="microseconds"),
        terminal_id=terminal.config.terminal_id,
        merchant_id=terminal.config.merchant_id,
        saf_depth=saf.queued,
        saf_oldest_at=saf.oldest_at,
        saf_oldest_age_seconds=None if saf.oldest_age_seconds is None else round(saf.oldest_age_seconds, 3),
        saf_amounts=dict(saf.totals),
        saf_max_depth=limits.max_count,
        saf_max_age_seconds=float(limits.max_age_seconds),
        declined_after_forwarding=len(saf.declined_after_forwarding),
        reversals_pending=saf.reversals_queued,
        host_last_contact=last,
        host_last_answer=answered,
        security_events=saf.security_events,
        devices=states,
        certificate_not_after=not_after,
        certificate_days_left=days,
        payments_unshown=terminal.store.count_unshown(),
        payments=dict(payments or {}),
    )


def devices_of_results(results: Collection[DiagResult]) -> dict[str, DeviceState]:
    """The devices as a diagnostics run found them: passed ``up``, failed ``down``, skipped as it says why."""
    states: dict[str, DeviceState] = {}
    for result in results:
        if result.name not in DEVICE_KINDS:
            continue
        url = result.details.get("url")
        url = url if isinstance(url, str) else None
        if result.passed is None:
            state = "not_configured" if url is None and "configured" in result.reason else "unknown"
        else:
            state = "up" if result.passed else "down"
        states[result.name] = DeviceState(result.name, url, state, result.reason)
    return states


def diag_metrics(data_dir: Path, results: Collection[DiagResult]) -> dict[str, Any] | None:
    """``posterm diag --json``'s ``metrics``: :func:`snapshot` of the data directory's journal, read only.

    None when there is no journal yet (nothing to measure) or it cannot be
    opened (the ``journal`` test says why).
    """
    from terminal.bootstrap import load_configuration
    from terminal.diag_checks import open_journal

    journal = open_journal(Path(data_dir))
    try:
        if journal.store is None or journal.keystore is None:
            return None
        try:
            config, settings, _ = load_configuration(Path(data_dir))
        except Exception:  # the configuration test says what is wrong; the figures need only its limits
            from terminal.settings import load_default_config, load_default_settings

            config, settings = load_default_config(), load_default_settings()
        terminal = Terminal(config=config, store=journal.store, keystore=journal.keystore, host=None, settings=settings)
        return snapshot(terminal, data_dir=Path(data_dir), devices=devices_of_results(results)).to_json()
    finally:
        journal.close()


class UsageTracker:
    """A running terminal's payments by outcome, and each device's state as its last use left it.

    Subscribed to the terminal's events (:meth:`attach`): a payment's end
    (``payment_finished``) counts its outcome (approved, declined, refused,
    not_completed); a card prompt says the reader polls (``up``), a payment
    refused for the reader says it is ``down``; a receipt printed says the
    printer is ``up``, one that could not be says it is ``down``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._payments: Counter[tuple[str, str]] = Counter()
        self._devices: dict[str, tuple[str, str]] = {}  # kind -> (state, reason)
        self._printer = False

    def attach(self, terminal: Terminal) -> Any:
        """Listen to ``terminal``; returns the function that stops it."""
        self._printer = terminal.printer is not None
        return terminal.subscribe(self.heard)

    def heard(self, event: TerminalEvent) -> None:
        data = event.data
        with self._lock:
            if event.kind == "card_prompt":
                self._devices["reader"] = ("up", "polled for a card")
            elif event.kind == "payment_finished":
                kind = str(data.get("payment", "payment"))
                refused = data.get("refused")
                if refused is not None:
                    outcome = "not_completed" if refused in _READER_FAULTS or refused == "cancelled" else "refused"
                    if refused in _READER_FAULTS:
                        self._devices["reader"] = ("down", str(data.get("message", refused))[:200])
                elif data.get("approved"):
                    outcome = "approved"
                elif str(data.get("state", "")).startswith("declined"):
                    outcome = "declined"
                else:
                    outcome = "not_completed"
                self._payments[(kind, outcome)] += 1
                warnings = [str(w) for w in data.get("warnings") or []]
                printing = [w for w in warnings if w.startswith("receipt not printed")]
                if printing:
                    self._devices["printer"] = ("down", printing[0][:200])
                elif self._printer and refused is None and event.txn_id is not None:
                    self._devices["printer"] = ("up", "printed the last receipt")

    @property
    def payments(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._payments)

    def devices(self, terminal: Terminal) -> dict[str, DeviceState]:
        """The configured devices with their state as last used (``unknown`` before their first use)."""
        with self._lock:
            seen = dict(self._devices)
        configured = {"reader": terminal.reader, "scanner": terminal.scanner, "printer": terminal.printer}
        states: dict[str, DeviceState] = {}
        for kind, device in configured.items():
            if device is None:
                states[kind] = DeviceState(kind, None, "not_configured")
                continue
            url = getattr(device, "url", None)
            state, reason = seen.get(kind, ("unknown", "not used since the start"))
            states[kind] = DeviceState(kind, url if isinstance(url, str) else None, state, reason)
        return states
