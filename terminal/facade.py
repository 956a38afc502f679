"""The Terminal facade: the verbs a cashier, a kiosk and the command line use.

A payment is read from the card, written to the journal, and only then acted
on (write-ahead): the customer is told "approved" only once the record that
makes it true is durable.  See :mod:`terminal.lifecycle` for the states and
:mod:`terminal.store` for what is stored how.
"""

from __future__ import annotations

import contextlib
import json
import random
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from emv import tlv
from emv.config import TerminalConfig
from emv.outcome import Outcome, TransactionResult, mask_pan
from terminal.emv_session import TapInputs, build_transaction, run_tap
from terminal.host import (
    Advice,
    AuthorisationRequest,
    BatchAdvising,
    BatchTotals,
    HostAnswer,
    HostError,
    HostLink,
    HostNoAnswer,
    HostRejected,
    HostUnreachable,
    Reversal,
    SettlementAnswer,
    TotalsLine,
)
from terminal.keystore import Keystore, KeystoreError
from terminal.lifecycle import APPROVED_STATES, Event, State
from terminal.offline import OfflineBehavior, OfflineLimits, PaymentRefused, RetryPolicy
from terminal.ports import (
    CancelToken,
    CardReader,
    CollisionDetected,
    DeviceError,
    DeviceGone,
    NoCardError,
    WaitCancelled,
)
from terminal.store import CardRecord, NewPayment, PurgeReport, QueuedItem, StorageError, Store, TxnRow

__all__ = [
    "CancelToken",
    "Clock",
    "ForwardReport",
    "PaymentResult",
    "SafStatus",
    "SettlementRefused",
    "SettlementResult",
    "SystemClock",
    "Terminal",
    "TerminalEvent",
    "TerminalSettings",
]

SEND_CHUNK = 32  # SAF entries marked "being sent" per commit before they go out

# The data objects a host gets with an authorisation or advice, in this order: the ICC
# data an acquirer carries in ISO 8583 field 55 (the cryptogram, its inputs, the
# card's and terminal's risk results), plus the PAN, PAN sequence number, track 2
# equivalent data and expiry date that fields 2, 23, 35 and 14 would carry.  Not the
# certificates, the DOLs or the signed data: they served offline authentication and
# are no use to the issuer.
HOST_DATA_TAGS = (
    0x5A, 0x5F34, 0x57, 0x5F24,  # PAN, PSN, track 2 equivalent, expiry
    0x9F26, 0x9F27, 0x9F10, 0x9F36, 0x9F37,  # AC, CID, issuer application data, ATC, unpredictable number
    0x9F02, 0x9F03, 0x5F2A, 0x9F1A, 0x9A, 0x9C, 0x95, 0x82, 0x84,  # the cryptogram's other inputs, the DF name
    0x9F33, 0x9F34, 0x9F35, 0x9F09, 0x9F1E, 0x9F41, 0x9F53,  # terminal: capabilities, CVM results, type, ...
    0x9F66, 0x9F6C, 0x9F6E, 0x9F7C,  # contactless: TTQ, CTQ, form factor, customer exclusive data
)  # fmt: skip

MIN_RETENTION_YEARS = 5

SCHEMES = {
    "A000000003": "visa",
    "A000000004": "mastercard",
    "A000000025": "amex",
    "A000000065": "jcb",
    "A000000152": "discover",
    "A000000333": "unionpay",
}


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class TerminalEvent:
    """What the UI hears: ``kind`` is one of state_changed, ui_message, offline_status,
    saf_forwarded, saf_declined, saf_rejected, saf_expired, saf_failed, reversal_sent,
    reversal_failed, recovered, settled."""

    kind: str
    txn_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TerminalSettings:
    merchant_name: str = "posterm test shop"
    merchant_address: str = ""
    offline_limits: OfflineLimits = field(default_factory=OfflineLimits)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    card_timeout_seconds: float = 30.0
    retention_years: int = 5  # settled records are kept at least this long (5 at the least)

    def __post_init__(self) -> None:
        if self.retention_years < MIN_RETENTION_YEARS:
            raise ValueError(
                f"retention_years is {self.retention_years}: records are kept at least {MIN_RETENTION_YEARS} years"
            )


@dataclass(frozen=True)
class PaymentResult:
    txn_id: str
    kind: str
    state: State
    amount: int
    currency: int
    approved: bool
    message: str
    masked_pan: str | None = None
    scheme: str | None = None
    offline: bool = False
    deferred: bool = False
    approval_code: str | None = None
    response_code: str | None = None
    card_result: TransactionResult | None = None  # the kernel's result; ``.to_json()`` shows it masked

    def to_json(self) -> dict[str, Any]:
        return {
            "txn_id": self.txn_id,
            "kind": self.kind,
            "state": self.state.value,
            "approved": self.approved,
            "message": self.message,
            "amount": self.amount,
            "currency": self.currency,
            "masked_pan": self.masked_pan,
            "scheme": self.scheme,
            "offline": self.offline,
            "deferred": self.deferred,
            "approval_code": self.approval_code,
            "response_code": self.response_code,
        }


@dataclass(frozen=True)
class SafStatus:
    queued: int
    totals: dict[int, tuple[int, int]]  # currency -> (count, amount)
    oldest_at: str | None
    oldest_age_seconds: float | None
    last_attempt_at: str | None
    last_error: str | None
    reversals_queued: int
    declined_after_forwarding: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "totals": {f"{cur:03d}": {"count": n, "amount": amt} for cur, (n, amt) in sorted(self.totals.items())},
            "oldest_at": self.oldest_at,
            "oldest_age_seconds": self.oldest_age_seconds,
            "last_attempt_at": self.last_attempt_at,
            "last_error": self.last_error,
            "reversals_queued": self.reversals_queued,
            "declined_after_forwarding": self.declined_after_forwarding,
        }


@dataclass
class ForwardReport:
    reversals_sent: int = 0
    accepted: int = 0
    declined: int = 0
    rejected: int = 0
    expired: int = 0
    failed: int = 0
    stopped_by: str | None = None  # the error that stopped forwarding, if any

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class SettlementRefused(Exception):
    """Settlement is not possible now; the message says what to do first."""


@dataclass(frozen=True)
class SettlementResult:
    batch_id: int
    in_balance: bool
    host_reference: str | None
    lines: tuple[TotalsLine, ...]
    differences: tuple[dict[str, Any], ...]
    new_batch_id: int


def _raise_or_return(answer: HostAnswer | HostRejected) -> HostAnswer:
    if isinstance(answer, HostRejected):
        raise answer
    return answer


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _scheme_of(aid: bytes | None) -> str:
    if not aid:
        return "unknown"
    return SCHEMES.get(aid[:5].hex().upper(), "other")


def _pan_of(result: TransactionResult) -> str | None:
    pan = result.card_data.get(0x5A)
    if pan is not None:
        return pan.hex().upper().rstrip("F")
    track2 = result.card_data.get(0x57)
    if track2 is not None:
        return track2.hex().upper().split("D")[0]
    return None


class Terminal:
    """One terminal: its configuration, its store, its devices and its host link.

    Build it with :func:`terminal.bootstrap.open_terminal` (one wiring place),
    or directly in tests.  Public verbs are serialised by a lock, so the UI
    thread and a background forwarder can share one Terminal.
    """

    def __init__(
        self,
        *,
        config: TerminalConfig,
        store: Store,
        keystore: Keystore,
        host: HostLink | None,
        reader: CardReader | None = None,
        clock: Clock | None = None,
        settings: TerminalSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.keystore = keystore
        self.host = host
        self.reader = reader
        self.clock = clock or SystemClock()
        self.settings = settings or TerminalSettings()
        self._rng = rng or random.Random()
        self._lock = threading.RLock()
        self._listeners: list[Callable[[TerminalEvent], None]] = []
        self._cancel: CancelToken | None = None

    # -- events ---------------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[TerminalEvent], None]) -> Callable[[], None]:
        """Call ``listener`` for every event; returns the function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, kind: str, txn_id: str | None = None, **data: Any) -> None:
        event = TerminalEvent(kind, txn_id, data)
        for listener in list(self._listeners):
            with contextlib.suppress(Exception):  # a broken listener must not break a payment
                listener(event)

    def _emit_offline_status(self) -> None:
        if self._listeners:  # the status costs queries: only when someone listens
            self._emit("offline_status", None, **self.offline_status().to_json())

    def cancel(self) -> None:
        """Cancel whatever waits on the customer (the card tap)."""
        token = self._cancel
        if token is not None:
            token.cancel()

    # -- helpers --------------------------------------------------------------------------------

    def _now(self) -> str:
        return _iso(self.clock.now())

    def _new_txn_id(self) -> tuple[str, str]:
        """A new transaction id and the moment it was made (ISO 8601 UTC).

        Time-sortable (the id starts with the UTC time, so a range of ids is a
        range of dates); 48 random bits keep two ids of the same second apart.
        """
        moment = self.clock.now().astimezone(UTC)
        return f"{moment:%Y%m%d%H%M%S}-{secrets.token_hex(6)}", moment.isoformat(timespec="microseconds")

    def _record(self, txn_id: str, event: Event, data: dict[str, Any], *, at: str | None = None, **kw: Any) -> State:
        state = self.store.record(txn_id, event, at or self._now(), data, **kw)
        if self._listeners:
            self._emit("state_changed", txn_id, state=state.value, event=event.value)
        return state

    def _card_record(self, txn_id: str, result: TransactionResult) -> CardRecord:
        pan = _pan_of(result)
        if pan is None:
            return CardRecord(None, None, None)
        blob = json.dumps(
            {
                "pan": pan,
                "expiry": (result.card_data.get(0x5F24) or b"").hex(),
                "psn": (result.card_data.get(0x5F34) or b"").hex(),
            }
        ).encode()
        return CardRecord(
            masked_pan=mask_pan(pan),
            pan_token=self.keystore.mac(pan.encode(), "pan-token").hex()[:32],
            card_blob=self.keystore.encrypt(blob, b"card:" + txn_id.encode()),
        )

    def _sensitive(self, txn_id: str, result: TransactionResult) -> bytes:
        # The cryptogram's inputs as the card received them win over their later values
        # (C-3 sets TVR bits after GPO): the issuer must see what the card signed.
        card_data = result.card_data | result.cryptogram_inputs
        emv_data = tlv.encode_pairs([(tag, card_data[tag]) for tag in HOST_DATA_TAGS if tag in card_data])
        return self.keystore.encrypt(emv_data, b"sad:" + txn_id.encode())

    def _emv_data(self, txn_id: str) -> bytes:
        blob = self.store.read_sensitive(txn_id)
        return b"" if blob is None else self.keystore.decrypt(blob, b"sad:" + txn_id.encode())

    def _details(self, result: TransactionResult) -> dict[str, Any]:
        return {
            "aid": result.aid.hex().upper() if result.aid else None,
            "application_label": result.application_label,
            "cryptogram_type": result.cryptogram_type,
            "cryptogram": result.cryptogram.hex().upper() if result.cryptogram else None,
            "tvr": result.tvr.hex().upper(),
            "tsi": result.tsi.hex().upper(),
            "cvm": result.cvm.value,
            "card_outcome": result.outcome.value,
            "oda": result.oda.to_json(),
        }

    def _oldest_queued(self) -> tuple[str | None, float | None]:
        """When the oldest SAF entry was made, and its age in seconds now."""
        oldest = self.store.saf_oldest()
        age = None if oldest is None else (self.clock.now() - datetime.fromisoformat(oldest)).total_seconds()
        return oldest, age

    def _check_offline_room(self, code: int, amount: int) -> None:
        _, age = self._oldest_queued()
        self.settings.offline_limits.check(code, amount, self.store.saf_totals(), age)

    def _offline_room(self, code: int, amount: int) -> bool:
        try:
            self._check_offline_room(code, amount)
        except PaymentRefused:
            return False
        return True

    def _result(self, txn_id: str, message: str, emv: TransactionResult | None = None) -> PaymentResult:
        row = self.store.get(txn_id)
        if row is None:  # pragma: no cover - record() created it
            raise StorageError(f"transaction {txn_id} vanished")
        return PaymentResult(
            txn_id=txn_id,
            kind=row.kind,
            state=row.state,
            amount=row.amount,
            currency=row.currency,
            approved=row.state in APPROVED_STATES,
            message=message,
            masked_pan=row.masked_pan,
            scheme=row.scheme,
            offline=row.state is State.OFFLINE_APPROVED or row.details.get("offline", False),
            deferred=row.state is State.DEFERRED_APPROVED or row.details.get("deferred", False),
            approval_code=row.details.get("approval_code"),
            response_code=row.details.get("response_code"),
            card_result=emv,
        )

    @contextlib.contextmanager
    def _refusing_on_storage_errors(self) -> Iterator[None]:
        try:
            yield
        except StorageError as exc:
            raise PaymentRefused("storage", f"payment refused: {exc}") from exc

    # -- the card -------------------------------------------------------------------------------

    def _tap(
        self, amount: int, code: int, exponent: int, transaction_type: int, force_online: bool
    ) -> TransactionResult:
        if self.reader is None:
            raise PaymentRefused("no_reader", "no card reader is configured")
        config = self.config
        if force_online:
            # No room to store an offline approval: ask every card for an online cryptogram.
            config = replace(
                config,
                combinations=tuple(replace(c, floor_limit=0) for c in config.combinations),
                terminal_floor_limit=0,
            )
        token = CancelToken()
        self._cancel = token
        try:
            if token.cancelled:
                raise PaymentRefused("cancelled", "cancelled")
            try:
                session = self.reader.wait_for_card(timeout=self.settings.card_timeout_seconds, cancel=token)
            except WaitCancelled:
                raise PaymentRefused("cancelled", "cancelled") from None
            except NoCardError:
                raise PaymentRefused("no_card", "no card was presented in time") from None
            except CollisionDetected:
                raise PaymentRefused("one_card_only", "more than one card in the field: present one card") from None
            except DeviceGone as exc:
                raise PaymentRefused("reader_gone", f"the card reader is gone: {exc}") from None
            except DeviceError as exc:  # e.g. another application holds the card exclusively
                raise PaymentRefused("reader_error", f"the card reader cannot be used: {exc}") from None
            try:
                if token.cancelled:
                    raise PaymentRefused("cancelled", "cancelled")
                txn = build_transaction(
                    TapInputs(
                        amount=amount,
                        currency=code,
                        currency_exponent=exponent,
                        transaction_type=transaction_type,
                    ),
                    now=self.clock.now,
                )
                result = run_tap(session, config, txn).result
            finally:
                session.close()
        finally:
            self._cancel = None
        for message in result.messages:
            self._emit("ui_message", None, **message.to_json())
        return result

    # -- online ---------------------------------------------------------------------------------

    def _frozen_batch(self) -> tuple[int, BatchTotals] | None:
        closing = self.store.closing_batch()
        if closing is None:
            return None
        batch, frozen = closing
        lines = tuple(TotalsLine(**line) for line in frozen["lines"])
        return batch, BatchTotals(batch, str(frozen["terminal_id"]), lines)

    def _finish_close(self, batch: int, totals: BatchTotals) -> SettlementAnswer:
        """Ask the host to close a frozen batch and record its answer (raises HostError)."""
        assert self.host is not None
        answer = self.host.close_batch(totals)
        self.store.finish_close(batch, self._now(), answer.in_balance, answer.host_reference, answer.differences)
        self._emit("settled", None, batch_id=batch, in_balance=answer.in_balance)
        return answer

    def _deliver_reversals(self, report: ForwardReport | None = None) -> bool:
        """Before any online message: finish a batch close that was started, then send every
        queued reversal, oldest first.  True when nothing is left in the way.

        A close left half-done by a crash must reach the host before anything
        else does, or the host would count new payments in the batch that the
        terminal froze without them.
        """
        if self.host is None:
            return not self.store.reversals_queued() and self.store.closing_batch() is None
        frozen = self._frozen_batch()
        if frozen is not None:
            try:
                self._finish_close(*frozen)
            except HostError as exc:
                if report is not None:
                    report.failed += 1
                    report.stopped_by = f"batch close: {type(exc).__name__}: {exc}"
                return False
        for item in self.store.reversals_queued():
            self.store.mark_sending("reversals", [item.id], self._now())
            reversal = Reversal(
                txn_id=item.txn_id,
                idempotency_key=item.idempotency_key,
                amount=item.amount,
                currency=item.currency,
                terminal_id=self.config.terminal_id,
                reason=item.kind,
                retransmission=item.attempts > 0,
            )
            try:
                self.host.reverse(reversal)
            except HostError as exc:
                now = self.clock.now()
                nxt = _iso(self.settings.retry.next_attempt(now, item.attempts + 1, self._rng))
                self.store.note_failure("reversals", item.id, str(exc) or type(exc).__name__, nxt)
                self._emit("reversal_failed", item.txn_id, error=str(exc))
                if report is not None:
                    report.failed += 1
                    report.stopped_by = f"reversal: {type(exc).__name__}: {exc}"
                return False
            row = self.store.get(item.txn_id)
            event = (
                Event.VOID_REVERSED
                if row is not None and row.state is State.VOID_PENDING
                else Event.REVERSAL_ACKNOWLEDGED
            )
            self._record(item.txn_id, event, {"reversal": item.kind}, reversal_done=True)
            self._emit("reversal_sent", item.txn_id, reason=item.kind)
            if report is not None:
                report.reversals_sent += 1
        return True

    def _reverse_unrecorded(self, txn_id: str, amount: int, code: int) -> None:
        """The host approved but the approval cannot be stored: reverse it now, best effort.

        The payment stays ``authorising`` in the journal, so the next start-up
        queues a reversal too; the host acknowledges a second one as "nothing
        to reverse".
        """
        if self.host is None:
            return
        with contextlib.suppress(HostError):
            self.host.reverse(
                Reversal(
                    txn_id=txn_id,
                    idempotency_key=f"{txn_id}-unrecorded",
                    amount=amount,
                    currency=code,
                    terminal_id=self.config.terminal_id,
                    reason="recovery",
                )
            )

    def _go_online(
        self,
        txn_id: str,
        kind: str,
        amount: int,
        code: int,
        behavior: OfflineBehavior,
        emv: TransactionResult | None,
        saf_kind: str,
    ) -> PaymentResult:
        """The payment is journalled as ``authorising``; send it and act on the answer."""
        row = self.store.get(txn_id)
        assert row is not None
        unreachable: HostError | None = None
        if self.host is None:
            unreachable = HostUnreachable("no host link configured")
        elif not self._deliver_reversals():
            unreachable = HostUnreachable("queued reversals could not be delivered first")
        answer: HostAnswer | None = None
        if unreachable is None and self.host is not None:
            request = AuthorisationRequest(
                txn_id=txn_id,
                idempotency_key=txn_id,
                kind=kind,
                amount=amount,
                currency=code,
                terminal_id=self.config.terminal_id,
                merchant_id=self.config.merchant_id,
                emv_data=self._emv_data(txn_id),
                pan_token=row.pan_token or "",
                original_txn_id=row.original_txn_id,
            )
            try:
                answer = self.host.authorise(request)
            except HostUnreachable as exc:
                unreachable = exc
            except HostNoAnswer as exc:
                self._record(
                    txn_id,
                    Event.NO_ANSWER,
                    {"error": str(exc)},
                    drop_sensitive=True,
                    reversal=("no_answer", secrets.token_hex(16)),
                )
                self._deliver_reversals()
                return self._result(txn_id, "no answer from the host: the payment was reversed; try again", emv)
            except HostRejected as exc:
                self._record(
                    txn_id,
                    Event.HOST_DECLINED,
                    {"response_code": "30", "error": str(exc)},
                    details={"response_code": "30"},
                    drop_sensitive=True,
                )
                return self._result(txn_id, f"declined: the host refused the message ({exc})", emv)
        if answer is not None:
            details = {
                "approval_code": answer.approval_code,
                "response_code": answer.response_code,
                "host_reference": answer.host_reference,
            }
            event = Event.HOST_APPROVED if answer.approved else Event.HOST_DECLINED
            try:
                self._record(txn_id, event, details, details=details, drop_sensitive=True)
            except StorageError:
                if answer.approved:
                    self._reverse_unrecorded(txn_id, amount, code)
                raise
            return self._result(
                txn_id,
                "approved" if answer.approved else f"declined by the host ({answer.response_code})",
                emv,
            )
        # Not sent: a deferred authorisation, if allowed and within the limits.
        reason = str(unreachable) or "host unreachable"
        if behavior is OfflineBehavior.REQUIRE_ONLINE:
            self._record(txn_id, Event.NOT_SENT_DECLINED, {"error": reason}, drop_sensitive=True)
            raise PaymentRefused(
                "host_unreachable",
                f"declined: the host cannot be reached ({reason}) and this payment requires online authorisation",
            )
        try:
            self._check_offline_room(code, amount)
        except PaymentRefused as exc:
            self._record(txn_id, Event.NOT_SENT_DECLINED, {"error": str(exc)}, drop_sensitive=True)
            raise
        self._record(
            txn_id,
            Event.NOT_SENT_DEFERRED,
            {"error": reason},
            details={"deferred": True},
            saf_kind=saf_kind,
            saf_key=secrets.token_hex(16),
        )
        self._emit_offline_status()
        return self._result(txn_id, "approved (deferred: the host will confirm later)", emv)

    # -- verbs ----------------------------------------------------------------------------------

    def sale(
        self,
        amount: int,
        code: int,
        *,
        exponent: int = 2,
        offline_behavior: OfflineBehavior = OfflineBehavior.PREFER_ONLINE,
    ) -> PaymentResult:
        """Charge ``amount`` (minor units of currency ``code``) to the card the customer presents."""
        with self._lock, self._refusing_on_storage_errors():
            if amount <= 0:
                raise PaymentRefused("amount", "the amount must be above zero")
            room = self._offline_room(code, amount)
            if offline_behavior is OfflineBehavior.FORCE_OFFLINE and not room:
                self._check_offline_room(code, amount)  # raises the named limit
            # require_online: no offline approval by the card either, so ask it for an online cryptogram
            force_online = not room or offline_behavior is OfflineBehavior.REQUIRE_ONLINE
            result = self._tap(amount, code, exponent, 0x00, force_online=force_online)
            return self._complete_sale(result, amount, code, offline_behavior, force_online)

    def _complete_sale(
        self,
        result: TransactionResult,
        amount: int,
        code: int,
        offline_behavior: OfflineBehavior,
        force_online: bool,
    ) -> PaymentResult:
        """The part of a sale after the card was read: journal it, then act on the outcome.

        Callers hold the lock.  The benchmark of durable offline approvals
        measures this step (the card's reading is measured apart).
        """
        txn_id, at = self._new_txn_id()
        new = NewPayment(txn_id, "sale", amount, code, _scheme_of(result.aid), offline_behavior.value)
        base = {"amount": amount, "currency": code, "card_outcome": result.outcome.value}
        card = self._card_record(txn_id, result)
        details = self._details(result)
        if result.outcome is Outcome.APPROVED:
            try:
                if offline_behavior is OfflineBehavior.REQUIRE_ONLINE:
                    raise PaymentRefused(
                        "card_offline", "declined: the card approved offline, but this payment requires the host"
                    )
                if force_online:  # the card approved although it was asked to go online
                    self._check_offline_room(code, amount)
            except PaymentRefused as exc:
                self._record(
                    txn_id,
                    Event.NOT_SENT_DECLINED,
                    base | {"error": str(exc)},
                    new=new,
                    card=card,
                    details=details,
                )
                raise
            state = self._record(
                txn_id,
                Event.OFFLINE_APPROVED,
                base,
                at=at,
                new=new,
                card=card,
                details=details | {"offline": True},
                sensitive=self._sensitive(txn_id, result),
                saf_kind="offline_approval",
                saf_key=secrets.token_hex(16),
            )
            self._emit_offline_status()
            # Built from what was just written rather than read back: this is the hot path.
            return PaymentResult(
                txn_id=txn_id,
                kind="sale",
                state=state,
                amount=amount,
                currency=code,
                approved=state in APPROVED_STATES,
                message="approved (offline)",
                masked_pan=card.masked_pan,
                scheme=new.scheme,
                offline=True,
                card_result=result,
            )
        if result.outcome is Outcome.DECLINED:
            self._record(txn_id, Event.CARD_DECLINED, base, new=new, card=card, details=details)
            return self._result(txn_id, "declined by the card", result)
        if result.outcome is not Outcome.ONLINE_REQUEST:
            self._record(
                txn_id,
                Event.NOT_COMPLETED,
                base | {"error": result.error},
                new=new,
                card=card,
                details=details,
            )
            return self._result(txn_id, f"not completed: {result.outcome.value.replace('_', ' ')}", result)
        if offline_behavior is OfflineBehavior.FORCE_OFFLINE:
            self._check_offline_room(code, amount)
            self._record(
                txn_id,
                Event.NOT_SENT_DEFERRED,
                base,
                new=new,
                card=card,
                details=details | {"deferred": True},
                sensitive=self._sensitive(txn_id, result),
                saf_kind="deferred_authorisation",
                saf_key=secrets.token_hex(16),
            )
            return self._result(txn_id, "approved (deferred: the host will confirm later)", result)
        self._record(
            txn_id,
            Event.GO_ONLINE,
            base,
            new=new,
            card=card,
            details=details,
            sensitive=self._sensitive(txn_id, result),
        )
        return self._go_online(txn_id, "sale", amount, code, offline_behavior, result, "deferred_authorisation")

    def refund(
        self,
        amount: int,
        code: int,
        *,
        exponent: int = 2,
        original_txn_id: str | None = None,
        offline_behavior: OfflineBehavior = OfflineBehavior.PREFER_ONLINE,
    ) -> PaymentResult:
        """Refund to a card: from an original payment (no tap) or to the card presented."""
        with self._lock, self._refusing_on_storage_errors():
            if amount <= 0:
                raise PaymentRefused("amount", "the amount must be above zero")
            txn_id, _ = self._new_txn_id()
            if original_txn_id is not None:
                original = self.store.get(original_txn_id)
                if original is None:
                    raise PaymentRefused("no_original", f"no transaction {original_txn_id}")
                if original.kind != "sale" or original.state not in APPROVED_STATES:
                    raise PaymentRefused(
                        "original_not_refundable",
                        f"{original_txn_id} is a {original.kind} in state {original.state.value}: "
                        "only an approved sale can be refunded",
                    )
                if original.currency != code:
                    raise PaymentRefused("currency", "a refund is in the currency of the original payment")
                refunded = sum(
                    r.amount
                    for r in self.store.list_transactions(states=list(APPROVED_STATES))
                    if r.kind == "refund" and r.original_txn_id == original_txn_id
                )
                if refunded + amount > original.amount:
                    raise PaymentRefused(
                        "amount",
                        f"refunds would exceed the original amount ({refunded} of {original.amount} already refunded)",
                    )
                new = NewPayment(
                    txn_id, "refund", amount, code, original.scheme, offline_behavior.value, original_txn_id
                )
                card = CardRecord(original.masked_pan, original.pan_token, None)
                details = {k: original.details.get(k) for k in ("aid", "application_label")}
                data = {"amount": amount, "currency": code, "original_txn_id": original_txn_id}
                if offline_behavior is OfflineBehavior.FORCE_OFFLINE:
                    return self._store_refund(txn_id, amount, code, data, new=new, card=card, details=details)
                self._record(txn_id, Event.GO_ONLINE, data, new=new, card=card, details=details)
                return self._go_online(txn_id, "refund", amount, code, offline_behavior, None, "offline_refund")
            result = self._tap(amount, code, exponent, 0x20, force_online=False)
            pan = _pan_of(result)
            new = NewPayment(txn_id, "refund", amount, code, _scheme_of(result.aid), offline_behavior.value)
            base = {"amount": amount, "currency": code, "card_outcome": result.outcome.value}
            if pan is None:
                self._record(
                    txn_id,
                    Event.NOT_COMPLETED,
                    base | {"error": result.error},
                    new=new,
                    details=self._details(result),
                )
                return self._result(txn_id, "not completed: the card could not be read", result)
            card = self._card_record(txn_id, result)
            sensitive = self._sensitive(txn_id, result)
            if offline_behavior is OfflineBehavior.FORCE_OFFLINE:
                return self._store_refund(
                    txn_id, amount, code, base, new=new, card=card, details=self._details(result), sensitive=sensitive
                )
            self._record(
                txn_id, Event.GO_ONLINE, base, new=new, card=card, details=self._details(result), sensitive=sensitive
            )
            return self._go_online(txn_id, "refund", amount, code, offline_behavior, result, "offline_refund")

    def _store_refund(self, txn_id: str, amount: int, code: int, data: dict[str, Any], **kw: Any) -> PaymentResult:
        """force_offline refund: queued for the host within the offline limits, never sent now."""
        self._check_offline_room(code, amount)
        details = dict(kw.pop("details", {})) | {"deferred": True}
        self._record(
            txn_id,
            Event.NOT_SENT_DEFERRED,
            data,
            details=details,
            saf_kind="offline_refund",
            saf_key=secrets.token_hex(16),
            **kw,
        )
        self._emit_offline_status()
        return self._result(txn_id, "refund stored: the host will confirm it later")

    def void(self, txn_id: str) -> PaymentResult:
        """Cancel an approved payment of the open batch."""
        with self._lock, self._refusing_on_storage_errors():
            row = self.store.get(txn_id)
            if row is None:
                raise PaymentRefused("not_found", f"no transaction {txn_id}")
            batch = self.store.current_batch(self._now())
            if row.batch_id != batch:
                raise PaymentRefused(
                    "other_batch",
                    f"{txn_id} belongs to batch {row.batch_id}, which is settled: refund it instead",
                )
            if row.state in APPROVED_STATES:
                queued = row.state in (State.OFFLINE_APPROVED, State.DEFERRED_APPROVED)
                self._record(
                    txn_id,
                    Event.VOID_QUEUED,
                    {"void": True},
                    reversal=("void", secrets.token_hex(16)),
                    saf_answer=("withdrawn", None) if queued else None,
                    drop_sensitive=queued,
                )
                self._deliver_reversals()
                row = self.store.get(txn_id)
                done = row is not None and row.state is State.VOIDED
                return self._result(
                    txn_id, "voided" if done else "voided (the reversal will be sent when the host can be reached)"
                )
            raise PaymentRefused(
                "not_voidable", f"{txn_id} is {row.state.value}: only an approved payment can be voided"
            )

    # -- store and forward ------------------------------------------------------------------------

    def offline_status(self) -> SafStatus:
        oldest, age = self._oldest_queued()
        totals = self.store.saf_totals()
        last_at, last_error = self.store.last_attempt()
        return SafStatus(
            queued=sum(n for n, _ in totals.values()),
            totals=totals,
            oldest_at=oldest,
            oldest_age_seconds=age,
            last_attempt_at=last_at,
            last_error=last_error,
            reversals_queued=self.store.counts()["reversals_queued"],
            declined_after_forwarding=[e.txn_id for e in self.store.saf_entries(["declined", "rejected"])],
        )

    def forward_now(self, limit: int | None = None) -> ForwardReport:
        """Send queued reversals, then SAF entries in order, now (backoff is not waited for)."""
        return self._forward(due_only=False, limit=limit)

    def forward_due(self, limit: int | None = None) -> ForwardReport:
        """What a background forwarder calls: only entries whose backoff has passed."""
        return self._forward(due_only=True, limit=limit)

    def _forward(self, *, due_only: bool, limit: int | None) -> ForwardReport:
        report = ForwardReport()
        with self._lock:
            if self.host is None:
                report.stopped_by = "no host link configured"
                return report
            if not self._deliver_reversals(report):
                return report
            now = self.clock.now()
            sendable: list[QueuedItem] = []
            reversals_added = False
            for item in self.store.saf_queued(limit):
                if due_only and item.next_attempt_at is not None and datetime.fromisoformat(item.next_attempt_at) > now:
                    break  # FIFO: what is behind an entry waiting out its backoff waits too
                if (
                    now - datetime.fromisoformat(item.created_at)
                ).total_seconds() > self.settings.retry.expire_after_seconds:
                    # Sent before with the answer lost: the host may hold it, so reverse it.
                    maybe_received = item.attempts > 0
                    self._record(
                        item.txn_id,
                        Event.SAF_EXPIRED_AFTER_SENDING if maybe_received else Event.SAF_EXPIRED,
                        {"saf_id": item.id},
                        saf_answer=("expired", None),
                        drop_sensitive=True,
                        reversal=("expired", secrets.token_hex(16)) if maybe_received else None,
                    )
                    self._emit("saf_expired", item.txn_id, amount=item.amount, currency=item.currency)
                    report.expired += 1
                    reversals_added = reversals_added or maybe_received
                    continue
                sendable.append(item)
            if reversals_added and not self._deliver_reversals(report):
                return report  # reversals go before any other online message
            for start in range(0, len(sendable), SEND_CHUNK):
                chunk = sendable[start : start + SEND_CHUNK]
                self.store.mark_sending("saf", [item.id for item in chunk], self._now())
                if not self._send_chunk(chunk, report):
                    break
        self._emit_offline_status()
        return report

    def _send_chunk(self, chunk: list[QueuedItem], report: ForwardReport) -> bool:
        """Send a chunk of SAF entries (in one request when the host link takes batches).

        Each answer is recorded as it is classified; False when the host could
        not be reached or did not answer (the rest waits for the next attempt).
        """
        assert self.host is not None
        advices: list[tuple[QueuedItem, Advice]] = []
        for item in chunk:
            advice = self._advice(item, report)
            if advice is not None:
                advices.append((item, advice))
        if not advices:
            return True
        if not isinstance(self.host, BatchAdvising):
            return all(self._answer_one(item, partial(self.host.advise, advice), report) for item, advice in advices)
        try:
            answers = list(self.host.advise_many([a for _, a in advices]))
        except HostError as exc:
            for item, _ in advices:
                self._forward_failed(item, exc, report)
            return False
        if len(answers) != len(advices):
            short = HostNoAnswer(f"the host answered {len(answers)} of {len(advices)} advices")
            for item, _ in advices:
                self._forward_failed(item, short, report)
            return False
        for (item, _), answer in zip(advices, answers, strict=True):
            self._answer_one(item, partial(_raise_or_return, answer), report)
        return True

    def _advice(self, item: QueuedItem, report: ForwardReport) -> Advice | None:
        row = self.store.get(item.txn_id)
        assert row is not None
        try:
            emv_data = self._emv_data(item.txn_id)
        except KeystoreError as exc:
            # Its card data cannot be read: it stays queued (and settlement refused) for a
            # technician, but it must not block the entries behind it.
            self.store.note_failure("saf", item.id, f"card data unreadable: {exc}", None)
            self._emit("saf_failed", item.txn_id, error=f"card data unreadable: {exc}")
            report.failed += 1
            return None
        return Advice(
            txn_id=item.txn_id,
            idempotency_key=item.idempotency_key,
            kind=item.kind,
            amount=item.amount,
            currency=item.currency,
            terminal_id=self.config.terminal_id,
            merchant_id=self.config.merchant_id,
            emv_data=emv_data,
            pan_token=row.pan_token or "",
            created_at=item.created_at,
            retransmission=item.attempts > 0,
        )

    def _forward_failed(self, item: QueuedItem, exc: HostError, report: ForwardReport) -> None:
        now = self.clock.now()
        nxt = _iso(self.settings.retry.next_attempt(now, item.attempts + 1, self._rng))
        self.store.note_failure("saf", item.id, f"{type(exc).__name__}: {exc}", nxt)
        self._emit("saf_failed", item.txn_id, error=str(exc))
        report.failed += 1
        report.stopped_by = f"{type(exc).__name__}: {exc}"

    def _answer_one(self, item: QueuedItem, ask: Callable[[], HostAnswer], report: ForwardReport) -> bool:
        """Ask (or take) the host's answer to one entry and record it; False if there was none."""
        try:
            answer = ask()
        except HostRejected as exc:
            self._record(
                item.txn_id,
                Event.FORWARD_REJECTED,
                {"error": str(exc)},
                saf_answer=("rejected", None),
                drop_sensitive=True,
            )
            self._emit("saf_rejected", item.txn_id, error=str(exc), amount=item.amount, currency=item.currency)
            report.rejected += 1
            return True
        except HostError as exc:
            self._forward_failed(item, exc, report)
            return False
        details = {
            "response_code": answer.response_code,
            "approval_code": answer.approval_code,
            "host_reference": answer.host_reference,
        }
        if answer.approved:
            self._record(
                item.txn_id,
                Event.FORWARD_ACCEPTED,
                details,
                details=details,
                saf_answer=("accepted", answer.response_code),
                drop_sensitive=True,
            )
            self._emit("saf_forwarded", item.txn_id)
            report.accepted += 1
        else:
            self._record(
                item.txn_id,
                Event.FORWARD_DECLINED,
                details,
                details=details,
                saf_answer=("declined", answer.response_code),
                drop_sensitive=True,
            )
            self._emit(
                "saf_declined",
                item.txn_id,
                response_code=answer.response_code,
                amount=item.amount,
                currency=item.currency,
            )
            report.declined += 1
        return True

    # -- recovery -------------------------------------------------------------------------------

    def recover(self) -> list[tuple[str, State]]:
        """Resolve transactions a crash left unfinished; returns (txn_id, new state) for each."""
        done: list[tuple[str, State]] = []
        with self._lock:
            for row in self.store.list_transactions(states=[State.STARTED, State.AUTHORISING]):
                if row.state is State.STARTED:
                    state = self._record(row.txn_id, Event.RECOVER_STARTED, {"recovered": True})
                else:
                    # The request may have reached the host: reverse it, never resend it as new.
                    state = self._record(
                        row.txn_id,
                        Event.RECOVER_AUTHORISING,
                        {"recovered": True},
                        drop_sensitive=True,
                        reversal=("recovery", secrets.token_hex(16)),
                    )
                done.append((row.txn_id, state))
                self._emit("recovered", row.txn_id, state=state.value)
        return done

    # -- batch ----------------------------------------------------------------------------------

    def batch_lines(self, batch_id: int | None = None) -> tuple[int, tuple[TotalsLine, ...]]:
        batch = batch_id if batch_id is not None else self.store.current_batch(self._now())
        sums: dict[tuple[str, int, str], list[int]] = {}
        for row in self.store.list_transactions(batch_id=batch, states=list(APPROVED_STATES)):
            key = (row.scheme, row.currency, row.kind)
            acc = sums.setdefault(key, [0, 0])
            acc[0] += 1
            acc[1] += row.amount
        lines = tuple(TotalsLine(s, c, k, n, a) for (s, c, k), (n, a) in sorted(sums.items()))
        return batch, lines

    def settle(self) -> SettlementResult:
        """Close the batch with the host; refused while anything waits to be sent.

        Two steps, each durable: the batch is frozen with its totals (and the
        next batch opened) before the host is asked; the host's answer closes
        it.  If the host does not answer, or the terminal stops in between, the
        next ``settle`` asks again with the same frozen totals (the host
        answers a repeated close the same way) before anything else.
        """
        with self._lock:
            if self.host is None:
                raise SettlementRefused("settlement refused: no host link configured")
            frozen = self._frozen_batch()
            if frozen is None:
                self._check_settleable()
                batch, lines = self.batch_lines()
                totals = BatchTotals(batch, self.config.terminal_id, lines)
                new_batch = self.store.begin_close(batch, self._now(), totals.to_json())
            else:
                batch, totals = frozen
                lines = totals.lines
                new_batch = self.store.current_batch(self._now())
            try:
                answer = self._finish_close(batch, totals)
            except HostError as exc:
                raise SettlementRefused(
                    f"settlement of batch {batch} is started but the host did not answer ({exc}); "
                    "run settle again to finish it"
                ) from exc
            with contextlib.suppress(StorageError):  # housekeeping: a failure here must not undo a settlement
                self.purge_expired_records()
            return SettlementResult(
                batch, answer.in_balance, answer.host_reference, lines, tuple(answer.differences), new_batch
            )

    def purge_expired_records(self) -> PurgeReport:
        """Delete the settled records older than the retention period (``retention_years``).

        Called after each successful settlement and by ``posterm journal purge``;
        see :meth:`terminal.store.Store.purge` for what may go and what stays.
        """
        with self._lock:
            now = self.clock.now().astimezone(UTC)
            years = self.settings.retention_years
            try:
                cutoff = now.replace(year=now.year - years)
            except ValueError:  # 29 February
                cutoff = now.replace(year=now.year - years, day=28)
            report = self.store.purge(_iso(cutoff), _iso(now))
            if report.journal_rows and self._listeners:
                self._emit("records_purged", None, **report.__dict__)
            return report

    def _check_settleable(self) -> None:
        counts = self.store.counts()
        if counts["saf_queued"] or counts["reversals_queued"]:
            raise SettlementRefused(
                f"settlement refused: {counts['saf_queued']} payment(s) wait in the SAF queue and "
                f"{counts['reversals_queued']} reversal(s) are queued; forward them first (posterm saf forward)"
            )
        unfinished = self.store.list_transactions(
            states=[State.STARTED, State.AUTHORISING, State.VOID_PENDING, State.REVERSAL_PENDING]
        )
        if unfinished:
            raise SettlementRefused(f"settlement refused: {len(unfinished)} transaction(s) are unfinished")

    def get(self, txn_id: str) -> TxnRow | None:
        return self.store.get(txn_id)


_RECEIPT_STATUS = {
    State.VOIDED: "VOIDED",
    State.VOID_PENDING: "VOIDED",
    State.REVERSED: "REVERSED",
    State.REVERSAL_PENDING: "REVERSED",
}


def receipt_data(terminal: Terminal, txn_id: str, *, reprint: bool = False) -> Any:
    """The :class:`terminal.receipts.ReceiptData` of a journalled transaction (no sensitive data)."""
    from terminal.receipts import ReceiptData

    row = terminal.store.get(txn_id)
    if row is None:
        raise KeyError(txn_id)
    d = row.details
    status = "APPROVED" if row.state in APPROVED_STATES else _RECEIPT_STATUS.get(row.state, "DECLINED")
    return ReceiptData(
        merchant_name=terminal.settings.merchant_name,
        merchant_address=terminal.settings.merchant_address,
        terminal_id=terminal.config.terminal_id,
        merchant_id=terminal.config.merchant_id,
        txn_id=row.txn_id,
        kind=row.kind,  # type: ignore[arg-type]
        at=datetime.fromisoformat(row.created_at),
        masked_pan=row.masked_pan or "",
        application_label=d.get("application_label") or "",
        aid=d.get("aid") or "",
        amount=row.amount,
        currency=row.currency,
        cryptogram_type=d.get("cryptogram_type"),
        cryptogram=d.get("cryptogram"),
        tvr=d.get("tvr") or "0000000000",
        tsi=d.get("tsi") or "0000",
        cvm=d["cvm"] if d.get("cvm") in ("signature", "online_pin", "consumer_device") else "no_cvm",
        status=status,  # type: ignore[arg-type]
        offline=bool(d.get("offline")),
        deferred=bool(d.get("deferred")),
        approval_code=d.get("approval_code"),
        host_reference=d.get("host_reference"),
        response_code=d.get("response_code"),
        reprint=reprint,
    )
