"""The Terminal facade: the verbs a cashier, a kiosk and the command line use.

A payment is read from the card, written to the journal, and only then acted
on (write-ahead): the customer is told "approved" only once the record that
makes it true is durable.  The states and their effects are the table of
:mod:`terminal.lifecycle`; what is stored how, :mod:`terminal.store`.  Behind
this face: reading the card (:mod:`terminal.card_reading`), store and forward
(:mod:`terminal.forwarding`), batches and settlement
(:mod:`terminal.settlement`), receipts (:mod:`terminal.receipting`).

The money rule every verb keeps (checked by a stateful property test):
for every sale, what the customer has paid is the sale amount less its
refunds, or nothing if voided or reversed, and never below nothing.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from emv.config import TerminalConfig
from emv.outcome import Outcome, TransactionResult
from terminal.card_reading import CardRequest, card_details, card_record, host_data, read_card, scheme_of
from terminal.core import Clock, Core, SystemClock, TerminalSettings
from terminal.forwarding import Forwarder
from terminal.host import (
    AuthorisationRequest,
    HostAnswer,
    HostCertificateRejected,
    HostError,
    HostLink,
    HostNoAnswer,
    HostRejected,
    HostUnreachable,
    Reversal,
    TotalsLine,
)
from terminal.keystore import Keystore
from terminal.lifecycle import (
    APPROVED_STATES,
    COUNTED_REFUND_STATES,
    Event,
    FollowUp,
    State,
    follow_up_refusal,
)
from terminal.money import currency, format_amount
from terminal.offline import OfflineBehavior, PaymentRefused
from terminal.ports import CancelToken, CardReader, ReceiptPrinter
from terminal.receipting import Receipts
from terminal.response_codes import decline_reason
from terminal.results import (
    ForwardReport,
    PaymentResult,
    SafStatus,
    SettlementRefused,
    SettlementResult,
    TerminalEvent,
)
from terminal.settlement import NothingToSettle, Settlement
from terminal.store import CardRecord, NewPayment, PurgeReport, StorageCorrupt, StorageError, Store, TxnRow

__all__ = [
    "CancelToken",
    "Clock",
    "ForwardReport",
    "NothingToSettle",
    "PaymentResult",
    "SafStatus",
    "SettlementRefused",
    "SettlementResult",
    "SystemClock",
    "Terminal",
    "TerminalEvent",
    "TerminalSettings",
]


def _money(minor: int, code: int) -> str:
    try:
        return format_amount(minor, currency(code))
    except ValueError:
        return f"{minor} (currency {code:03d})"


class Terminal:
    """One terminal: its configuration, its store, its devices and its host link.

    Build it with :func:`terminal.bootstrap.open_terminal` (one wiring place),
    or directly in tests.  Public verbs are serialised by a lock, so the UI
    thread and a background forwarder can share one Terminal.  ``close()``
    releases the store and the devices.
    """

    def __init__(
        self,
        *,
        config: TerminalConfig,
        store: Store,
        keystore: Keystore,
        host: HostLink | None,
        reader: CardReader | None = None,
        printer: ReceiptPrinter | None = None,
        clock: Clock | None = None,
        settings: TerminalSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._core = Core(
            config=config,
            store=store,
            keystore=keystore,
            host=host,
            clock=clock or SystemClock(),
            settings=settings or TerminalSettings(),
            rng=rng or random.Random(),
        )
        self.reader = reader
        self.printer = printer
        self._settlement = Settlement(self._core)
        self._forwarder = Forwarder(self._core, self._settlement.finish_pending_close)
        self._receipts = Receipts(self._core)
        self._lock = threading.RLock()
        self._cancel: CancelToken | None = None

    # -- what the terminal is -------------------------------------------------------------------

    @property
    def config(self) -> TerminalConfig:
        return self._core.config

    @property
    def settings(self) -> TerminalSettings:
        return self._core.settings

    @property
    def host(self) -> HostLink | None:
        return self._core.host

    @host.setter
    def host(self, link: HostLink | None) -> None:
        """Another host link from now on (tests put a faulty or batching link in place)."""
        with self._lock:
            self._core.host = link

    @property
    def store(self) -> Store:
        """The store, for tests and tools; the command line uses the read verbs below."""
        return self._core.store

    @property
    def keystore(self) -> Keystore:
        return self._core.keystore

    @property
    def clock(self) -> Clock:
        return self._core.clock

    def close(self) -> None:
        """Release the store and the devices (a Terminal is not used after this)."""
        with self._lock:
            for device in (self.reader, self.printer, self._core.host):
                close = getattr(device, "close", None)
                if callable(close):
                    with suppress(Exception):  # closing must release the rest whatever one does
                        close()
            self._core.store.close()

    # -- events ---------------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[TerminalEvent], None]) -> Callable[[], None]:
        """Call ``listener`` for every event; returns the function that unsubscribes."""
        self._core.listeners.append(listener)
        return lambda: self._core.listeners.remove(listener)

    @property
    def payment_in_progress(self) -> str | None:
        """The id of the payment the last sale or refund created, once its first row is written.

        What a command interrupted (Ctrl-C) reports, with the payment's state.
        """
        return self._core.current_txn_id

    def cancel(self) -> None:
        """Cancel whatever waits on the customer (the card tap)."""
        token = self._cancel
        if token is not None:
            token.cancel()

    def _emit_offline_status(self) -> None:
        if self._core.listeners:  # the status costs queries: only when someone listens
            self._core.emit("offline_status", None, **self.offline_status().to_json())

    # -- reading --------------------------------------------------------------------------------

    def transaction(self, txn_id: str) -> TxnRow | None:
        return self._core.store.get(txn_id)

    get = transaction

    def transactions(
        self, *, batch_id: int | None = None, limit: int | None = None, original_txn_id: str | None = None
    ) -> list[TxnRow]:
        """Transactions oldest first; with ``limit``, the last ``limit`` of them."""
        store = self._core.store
        if limit is None:
            return store.list_transactions(batch_id=batch_id, original_txn_id=original_txn_id)
        rows = store.list_transactions(
            batch_id=batch_id, original_txn_id=original_txn_id, limit=limit, newest_first=True
        )
        return rows[::-1]

    def history(self, txn_id: str) -> list[dict[str, Any]]:
        """The journal rows of one transaction, in order."""
        return self._core.store.journal_rows(txn_id=txn_id)

    def journal_rows(self, since: str | None = None, until: str | None = None) -> list[dict[str, Any]]:
        return self._core.store.journal_rows(since=since, until=until)

    def verify_journal(self) -> Any:
        """The journal's chain and every sealed row checked (:class:`terminal.journal.VerifyReport`)."""
        return self._core.store.verify()

    def batch(self, batch_id: int | None = None) -> dict[str, Any] | None:
        """A batch's dates, balance and totals (default: the open batch); None if there is none."""
        store = self._core.store
        return store.batch_info(batch_id if batch_id is not None else store.current_batch(self._core.now()))

    def closed_batches(self) -> list[int]:
        return self._core.store.closed_batches()

    def batch_lines(self, batch_id: int | None = None) -> tuple[int, tuple[TotalsLine, ...]]:
        return self._settlement.batch_lines(batch_id)

    def voids(self, batch_id: int) -> list[TxnRow]:
        """The payments of a batch that were voided (or whose void waits to reach the host)."""
        return self._core.store.list_transactions(batch_id=batch_id, states=[State.VOIDED, State.VOID_PENDING])

    def receipt(self, txn_id: str, copy: str = "customer", *, issue: bool = True) -> Any:
        """The receipt of a transaction (:class:`terminal.receipts.ReceiptData`).

        ``issue``: it counts as given to someone, so any later one is marked
        duplicate.  KeyError when there is no such transaction.
        """
        return self._receipts.data(txn_id, copy, issue=issue)

    def print_receipt(self, txn_id: str, copy: str = "customer") -> None:
        """Print a receipt on the configured printer (raises PaymentRefused when there is none)."""
        if self.printer is None:
            raise PaymentRefused("no_printer", "no receipt printer is configured ('posterm devices set printer URL')")
        self._receipts.print(self.printer, txn_id, copy)

    def offline_status(self, *, checked: bool = False) -> SafStatus:
        """What waits in the queues; ``checked``: every queued entry is read in full and its seal checked."""
        core = self._core
        if checked:
            core.store.check_queues()
        oldest, age = self._oldest_queued()
        totals = core.store.saf_totals()
        last_at, last_error = core.store.last_attempt()
        security, last_security = core.store.security_events()
        return SafStatus(
            queued=sum(n for n, _ in totals.values()),
            totals=totals,
            oldest_at=oldest,
            oldest_age_seconds=age,
            last_attempt_at=last_at,
            last_error=last_error,
            reversals_queued=core.store.counts()["reversals_queued"],
            declined_after_forwarding=[e.txn_id for e in core.store.saf_entries(["declined", "rejected"])],
            security_events=security,
            last_security_event=last_security,
        )

    # -- helpers --------------------------------------------------------------------------------

    def _new_txn_id(self) -> tuple[str, str]:
        """A new transaction id and the moment it was made (ISO 8601 UTC).

        Time-sortable (the id starts with the UTC time, so a range of ids is a
        range of dates); 48 random bits keep two ids of the same second apart.
        """
        moment = self._core.clock.now().astimezone(UTC)
        return f"{moment:%Y%m%d%H%M%S}-{secrets.token_hex(6)}", moment.isoformat(timespec="microseconds")

    def _oldest_queued(self) -> tuple[str | None, float | None]:
        """When the oldest SAF entry was made, and its age in seconds now."""
        oldest = self._core.store.saf_oldest()
        age = None if oldest is None else (self._core.clock.now() - datetime.fromisoformat(oldest)).total_seconds()
        return oldest, age

    def _check_offline_room(self, code: int, amount: int) -> None:
        _, age = self._oldest_queued()
        self._core.settings.offline_limits.check(code, amount, self._core.store.saf_totals(), age)

    def _offline_room(self, code: int, amount: int) -> bool:
        try:
            self._check_offline_room(code, amount)
        except PaymentRefused:
            return False
        return True

    def _result(
        self, txn_id: str, message: str, emv: TransactionResult | None = None, warnings: tuple[str, ...] = ()
    ) -> PaymentResult:
        row = self._core.store.get(txn_id)
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
            warnings=warnings,
        )

    @contextmanager
    def _refusing_on_storage_errors(self) -> Iterator[None]:
        try:
            yield
        except StorageCorrupt:
            raise
        except StorageError as exc:
            raise PaymentRefused("storage", f"payment refused: {exc}") from exc

    def _checked(self, txn_id: str) -> TxnRow:
        """The row of a payment named by the operator, refused when it is missing or edited."""
        row = self._core.store.get(txn_id)
        if row is None:
            raise PaymentRefused("not_found", f"no transaction {txn_id}")
        if not row.sealed:
            raise StorageCorrupt(
                f"transaction {txn_id} was changed outside posterm (its seal does not match); "
                "see 'posterm journal verify'"
            )
        return row

    def _read_card(self, request: CardRequest) -> TransactionResult:
        if self.reader is None:
            raise PaymentRefused("no_reader", "no card reader is configured")
        token = CancelToken()
        self._cancel = token
        try:
            return read_card(self._core, self.reader, request, token)
        finally:
            self._cancel = None

    def _after_payment(self, result: PaymentResult) -> PaymentResult:
        """Print the receipt when a printer is configured; a printer fault never undoes a payment."""
        self._emit_offline_status()
        if self.printer is None:
            return result
        warning = self._receipts.print_after_payment(self.printer, result.txn_id)
        if warning is None:
            return result
        return PaymentResult(**{**result.__dict__, "warnings": (*result.warnings, warning)})

    # -- online ---------------------------------------------------------------------------------

    def _reverse_unrecorded(self, txn_id: str, amount: int, code: int) -> None:
        """The host approved but the approval cannot be stored: reverse it now, best effort.

        The payment stays ``authorising`` in the journal, so the next start-up
        queues a reversal too; the host acknowledges a second one as "nothing
        to reverse".
        """
        host = self._core.host
        if host is None:
            return
        with suppress(HostError):
            host.reverse(
                Reversal(
                    txn_id=txn_id,
                    idempotency_key=f"{txn_id}-unrecorded",
                    amount=amount,
                    currency=code,
                    terminal_id=self._core.config.terminal_id,
                    reason="recovery",
                )
            )

    def _go_online(self, txn_id: str, behavior: OfflineBehavior, emv: TransactionResult | None) -> PaymentResult:
        """The payment is journalled as ``authorising``; send it and act on the answer."""
        core = self._core
        row = core.store.get(txn_id)
        assert row is not None
        unreachable: HostError | None = None
        warnings: tuple[str, ...] = ()
        if core.host is None:
            unreachable = HostUnreachable("no host link configured")
        elif not self._forwarder.clear_the_way():
            unreachable = HostUnreachable("queued reversals could not be delivered first")
        answer: HostAnswer | None = None
        if unreachable is None and core.host is not None:
            request = AuthorisationRequest(
                txn_id=txn_id,
                idempotency_key=txn_id,
                kind=row.kind,
                amount=row.amount,
                currency=row.currency,
                terminal_id=core.config.terminal_id,
                merchant_id=core.config.merchant_id,
                emv_data=core.emv_data(txn_id),
                pan_token=row.pan_token or "",
                original_txn_id=row.original_txn_id,
            )
            try:
                answer = core.host.authorise(request)
            except HostUnreachable as exc:
                core.host_failed(exc)
                unreachable = exc
            except HostNoAnswer as exc:
                core.record(txn_id, Event.NO_ANSWER, {"error": str(exc)})
                self._forwarder.clear_the_way()
                done = core.store.get(txn_id)
                if done is not None and done.state is State.REVERSED:
                    text = "not completed: no answer from the host; the payment was reversed, nothing was charged"
                else:
                    text = (
                        "not completed: no answer from the host; reversal pending (it is sent before anything "
                        "else); nothing stays charged"
                    )
                return self._result(txn_id, text, emv)
            except HostRejected as exc:
                core.record(
                    txn_id, Event.HOST_DECLINED, {"response_code": "30", "error": str(exc)},
                    details={"response_code": "30"},
                )  # fmt: skip
                return self._result(txn_id, f"declined: the host refused the message ({exc})", emv)
        if answer is not None:
            details = {
                "approval_code": answer.approval_code,
                "response_code": answer.response_code,
                "host_reference": answer.host_reference,
            }
            event = Event.HOST_APPROVED if answer.approved else Event.HOST_DECLINED
            try:
                core.record(txn_id, event, details, details=details)
            except StorageError:
                if answer.approved:
                    self._reverse_unrecorded(txn_id, row.amount, row.currency)
                raise
            text = "approved" if answer.approved else f"declined: {decline_reason(answer.response_code)}"
            return self._result(txn_id, text, emv)
        # Not sent: a deferred authorisation, if allowed and within the limits.
        reason = str(unreachable) or "host unreachable"
        if isinstance(unreachable, HostCertificateRejected):
            warnings = (f"host certificate rejected ({unreachable}): payments are stored offline",)
        if behavior is OfflineBehavior.REQUIRE_ONLINE:
            core.record(txn_id, Event.NOT_SENT_DECLINED, {"error": reason})
            return self._result(
                txn_id,
                f"declined: the host cannot be reached ({reason}) and this payment requires online authorisation",
                emv,
                warnings,
            )
        try:
            self._check_offline_room(row.currency, row.amount)
        except PaymentRefused as exc:
            core.record(txn_id, Event.NOT_SENT_DECLINED, {"error": str(exc)})
            return self._result(txn_id, f"declined: the host cannot be reached and {exc}", emv, warnings)
        core.record(txn_id, Event.NOT_SENT_DEFERRED, {"error": reason}, details={"deferred": True})
        text = (
            "approved (deferred: the host will confirm later)"
            if row.kind == "sale"
            else "refund stored: the host will confirm it later"
        )
        return self._result(txn_id, text, emv, warnings)

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
            self._core.current_txn_id = None
            if amount <= 0:
                raise PaymentRefused("amount", "the amount must be above zero")
            room = self._offline_room(code, amount)
            if offline_behavior is OfflineBehavior.FORCE_OFFLINE and not room:
                self._check_offline_room(code, amount)  # raises the named limit
            # require_online: no offline approval by the card either, so ask it for an online cryptogram
            force_online = not room or offline_behavior is OfflineBehavior.REQUIRE_ONLINE
            result = self._read_card(CardRequest(amount, code, exponent, 0x00, force_online))
            return self._after_payment(self._complete_sale(result, amount, code, offline_behavior, force_online))

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
        core = self._core
        txn_id, at = self._new_txn_id()
        new = NewPayment(txn_id, "sale", amount, code, scheme_of(result.aid), offline_behavior.value)
        base = {"amount": amount, "currency": code, "card_outcome": result.outcome.value}
        card = card_record(core.keystore, txn_id, result)
        details = card_details(result)
        if result.outcome is Outcome.APPROVED:
            refusal: str | None = None
            if offline_behavior is OfflineBehavior.REQUIRE_ONLINE:
                refusal = "declined: the card approved offline, but this payment requires the host"
            elif force_online:  # the card approved although it was asked to go online
                try:
                    self._check_offline_room(code, amount)
                except PaymentRefused as exc:
                    refusal = f"declined: {exc}"
            if refusal is not None:
                core.record(txn_id, Event.NOT_SENT_DECLINED, base | {"error": refusal}, new=new, card=card,
                            details=details)  # fmt: skip
                return self._result(txn_id, refusal, result)
            state = core.record(
                txn_id,
                Event.OFFLINE_APPROVED,
                base,
                at=at,
                new=new,
                card=card,
                details=details | {"offline": True},
                sensitive=host_data(core.keystore, txn_id, result),
            )
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
            core.record(txn_id, Event.CARD_DECLINED, base, new=new, card=card, details=details)
            return self._result(txn_id, "declined by the card", result)
        if result.outcome is not Outcome.ONLINE_REQUEST:
            core.record(txn_id, Event.NOT_COMPLETED, base | {"error": result.error}, new=new, card=card,
                        details=details)  # fmt: skip
            return self._result(txn_id, _not_completed_text(result), result)
        if offline_behavior is OfflineBehavior.FORCE_OFFLINE:
            try:
                self._check_offline_room(code, amount)
            except PaymentRefused as exc:
                core.record(txn_id, Event.NOT_SENT_DECLINED, base | {"error": str(exc)}, new=new, card=card,
                            details=details)  # fmt: skip
                return self._result(txn_id, f"declined: {exc}", result)
            core.record(
                txn_id,
                Event.NOT_SENT_DEFERRED,
                base,
                new=new,
                card=card,
                details=details | {"deferred": True},
                sensitive=host_data(core.keystore, txn_id, result),
            )
            return self._result(txn_id, "approved (deferred: the host will confirm later)", result)
        core.record(
            txn_id,
            Event.GO_ONLINE,
            base,
            new=new,
            card=card,
            details=details,
            sensitive=host_data(core.keystore, txn_id, result),
        )
        return self._go_online(txn_id, offline_behavior, result)

    def refund(
        self,
        amount: int,
        code: int,
        *,
        exponent: int = 2,
        original_txn_id: str | None = None,
        present_card: bool = False,
        to_other_card: bool = False,
        offline_behavior: OfflineBehavior = OfflineBehavior.PREFER_ONLINE,
    ) -> PaymentResult:
        """Refund ``amount``: against an original sale, or to the card presented (unreferenced).

        With ``original_txn_id`` the refund goes to the original's card and no
        card is read, unless ``present_card``: then the card presented must be
        the original's, or ``to_other_card`` must say that another card is
        meant.  Without an original, the card presented gets an unreferenced
        refund.  Refused (PaymentRefused, with the reason in words) when it
        would pay back more than the customer paid.
        """
        with self._lock, self._refusing_on_storage_errors():
            self._core.current_txn_id = None
            if amount <= 0:
                raise PaymentRefused("amount", "the amount must be above zero")
            original = None if original_txn_id is None else self._refundable(original_txn_id, amount, code)
            result: TransactionResult | None = None
            if original is None or present_card:
                result = self._read_card(CardRequest(amount, code, exponent, 0x20, False))
            txn_id, _ = self._new_txn_id()
            core = self._core
            scheme = scheme_of(result.aid) if result is not None else original.scheme if original else "unknown"
            new = NewPayment(
                txn_id, "refund", amount, code, scheme, offline_behavior.value,
                original.txn_id if original else None,
            )  # fmt: skip
            data: dict[str, Any] = {"amount": amount, "currency": code}
            sensitive: bytes | None = None
            if result is not None:
                data["card_outcome"] = result.outcome.value
                card = card_record(core.keystore, txn_id, result)
                details = card_details(result)
                if card.pan_token is None:
                    core.record(txn_id, Event.NOT_COMPLETED, data | {"error": result.error}, new=new, details=details)
                    return self._after_payment(
                        self._result(txn_id, "not completed: the card could not be read", result)
                    )
                if original is not None and card.pan_token != original.pan_token and not to_other_card:
                    raise PaymentRefused(
                        "other_card",
                        f"the card presented ({card.masked_pan}) is not the card of {original.txn_id} "
                        f"({original.masked_pan}): nothing was refunded; a refund to another card must be asked "
                        "for as such",
                    )
                sensitive = host_data(core.keystore, txn_id, result)
            else:
                assert original is not None
                card = CardRecord(original.masked_pan, original.pan_token, None)
                details = {k: original.details.get(k) for k in ("aid", "application_label")}
            if original is not None:
                data["original_txn_id"] = original.txn_id
                details = details | {"to_other_card": card.pan_token != original.pan_token}
            if offline_behavior is OfflineBehavior.FORCE_OFFLINE:
                try:
                    self._check_offline_room(code, amount)
                except PaymentRefused as exc:
                    core.record(txn_id, Event.NOT_SENT_DECLINED, data | {"error": str(exc)}, new=new, card=card,
                                details=details)  # fmt: skip
                    return self._result(txn_id, f"declined: {exc}", result)
                core.record(txn_id, Event.NOT_SENT_DEFERRED, data, new=new, card=card,
                            details=details | {"deferred": True}, sensitive=sensitive)  # fmt: skip
                return self._after_payment(
                    self._result(txn_id, "refund stored: the host will confirm it later", result)
                )
            core.record(txn_id, Event.GO_ONLINE, data, new=new, card=card, details=details, sensitive=sensitive)
            return self._after_payment(self._go_online(txn_id, offline_behavior, result))

    def _refund_counted(self, original_txn_id: str) -> list[TxnRow]:
        return [
            r
            for r in self._core.store.list_transactions(original_txn_id=original_txn_id)
            if r.kind == "refund" and r.state in COUNTED_REFUND_STATES
        ]

    def _refundable(self, original_txn_id: str, amount: int, code: int) -> TxnRow:
        """The original sale, if ``amount`` may be refunded against it (else PaymentRefused, in words)."""
        original = self._checked(original_txn_id)
        why = follow_up_refusal(FollowUp.REFUND, original.kind, original.state)
        if why is not None:
            raise PaymentRefused("original_not_refundable", f"{original_txn_id} cannot be refunded: {why}")
        if original.currency != code:
            raise PaymentRefused(
                "currency",
                f"a refund is in the currency of the original payment ({_money(original.amount, original.currency)})",
            )
        refunded = sum(r.amount for r in self._refund_counted(original_txn_id))
        left = original.amount - refunded
        if amount > left:
            raise PaymentRefused(
                "amount",
                f"refund of {_money(amount, code)} refused: {original_txn_id} was {_money(original.amount, code)}, "
                f"{_money(refunded, code)} of it already refunded, {_money(left, code)} left",
            )
        return original

    def void(self, txn_id: str) -> PaymentResult:
        """Cancel an approved payment (a sale or a refund) of the open batch."""
        with self._lock, self._refusing_on_storage_errors():
            core = self._core
            row = self._checked(txn_id)
            why = follow_up_refusal(FollowUp.VOID, row.kind, row.state)
            if why is not None:
                raise PaymentRefused("not_voidable", f"{txn_id} cannot be voided: {why}")
            batch = core.store.current_batch(core.now())
            if row.batch_id != batch:
                raise PaymentRefused(
                    "other_batch",
                    f"{txn_id} cannot be voided: its batch {row.batch_id} is settled; refund it instead",
                )
            if row.kind == "sale":
                refunds = self._refund_counted(txn_id)
                if refunds:
                    raise PaymentRefused(
                        "not_voidable",
                        f"{txn_id} cannot be voided: {len(refunds)} refund(s) were made against it "
                        f"({', '.join(r.txn_id for r in refunds)}, "
                        f"{_money(sum(r.amount for r in refunds), row.currency)}); void those first, "
                        "or refund what is left",
                    )
            core.record(txn_id, Event.VOID_QUEUED, {"void": True})
            self._forwarder.clear_the_way()
            done = core.store.get(txn_id)
            text = (
                "voided"
                if done is not None and done.state is State.VOIDED
                else "voided (the reversal is sent when the host can be reached)"
            )
            return self._after_payment(self._result(txn_id, text))

    # -- store and forward ------------------------------------------------------------------------

    def forward_now(self, limit: int | None = None) -> ForwardReport:
        """Send queued reversals, then SAF entries in order, now (backoff is not waited for)."""
        with self._lock:
            report = self._forwarder.forward(due_only=False, limit=limit)
        self._emit_offline_status()
        return report

    def forward_due(self, limit: int | None = None) -> ForwardReport:
        """What a background forwarder calls: only entries whose backoff has passed."""
        with self._lock:
            report = self._forwarder.forward(due_only=True, limit=limit)
        self._emit_offline_status()
        return report

    # -- recovery -------------------------------------------------------------------------------

    def recover(self) -> list[tuple[str, State]]:
        """Resolve transactions a crash left unfinished; returns (txn_id, new state) for each."""
        core = self._core
        done: list[tuple[str, State]] = []
        with self._lock:
            for row in core.store.list_transactions(states=[State.STARTED, State.AUTHORISING]):
                if row.state is State.STARTED:
                    state = core.record(row.txn_id, Event.RECOVER_STARTED, {"recovered": True})
                else:
                    # The request may have reached the host: reverse it, never resend it as new.
                    state = core.record(row.txn_id, Event.RECOVER_AUTHORISING, {"recovered": True})
                done.append((row.txn_id, state))
                core.emit("recovered", row.txn_id, state=state.value)
        return done

    # -- batch ----------------------------------------------------------------------------------

    def settle(self) -> SettlementResult:
        """Close the batch with the host; see :meth:`terminal.settlement.Settlement.settle`."""
        with self._lock:
            return self._settlement.settle()

    def purge_expired_records(self) -> PurgeReport:
        """Delete the settled records older than the retention period (``retention_years``)."""
        with self._lock:
            return self._settlement.purge_expired_records()


def _not_completed_text(result: TransactionResult) -> str:
    """Why a card reading ended without a payment, in the words the customer needs."""
    error = result.error or ""
    if result.outcome is Outcome.TRY_ANOTHER_INTERFACE:
        if "insert" in error:  # Entry Point and the kernels say why in words (the limit, a PIN needed)
            return f"not completed: {error}"
        return "not completed: insert or use another payment"
    if result.outcome is Outcome.TRY_AGAIN:
        return "not completed: the card was taken away too early; nothing was charged"
    if result.outcome is Outcome.END_APPLICATION:
        return f"not completed: {error or 'the card ended the transaction'}; insert or use another payment"
    return f"not completed: {result.outcome.value.replace('_', ' ')}"
