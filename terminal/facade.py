"""The Terminal facade: the verbs a cashier, a kiosk and the command line use.

A payment is read from the card, written to the journal, and only then acted
on (write-ahead): the customer is told "approved" only once the record that
makes it true is durable.  The states and their effects are the table of
:mod:`terminal.lifecycle`; what is stored how, :mod:`terminal.store`.  Behind
this face: reading the card (:mod:`terminal.card_reading`), store and forward
(:mod:`terminal.forwarding`), batches and settlement
(:mod:`terminal.settlement`), receipts (:mod:`terminal.receipting`); its
reads of payments found, outcomes shown and the host's last contact are
:class:`terminal.telling.Telling`'s.

The money rule every verb keeps (checked by a stateful property test):
for every sale, what the customer has paid is the sale amount less its
refunds, or nothing if voided or reversed, and never below nothing.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import Any

from emv.config import TerminalConfig
from emv.outcome import Message, ReaderStatus, TransactionResult, UiMessage
from terminal.card_reading import CardRequest, ExtraKernels, card_record, read_card
from terminal.core import Clock, Core, SystemClock, TerminalSettings
from terminal.forwarding import Forwarder
from terminal.host import (
    HostLink,
    TotalsLine,
)
from terminal.keystore import Keystore
from terminal.lifecycle import (
    RECOVERY,
    State,
)
from terminal.offline import OfflineBehavior, PaymentRefused
from terminal.payments import Payments
from terminal.ports import (
    CancelToken,
    CardReader,
    CodeScanner,
    DeviceError,
    NoCodeError,
    PinPad,
    ReceiptPrinter,
    WaitCancelled,
)
from terminal.receipting import Receipts
from terminal.results import (
    ForwardReport,
    PaymentResult,
    SafStatus,
    SettlementRefused,
    SettlementResult,
    TerminalEvent,
)
from terminal.settlement import NothingToSettle, Settlement
from terminal.store import PurgeReport, StorageCorrupt, StorageError, Store, TxnRow
from terminal.store_cbdc import CBDC_EVIDENCE_KINDS
from terminal.telling import Telling

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


_ONLINE_PIN_CVM = 0x40  # 9F33 byte 2 / DF8118: enciphered PIN for online verification
_TTQ_ONLINE_PIN = 0x04  # TTQ byte 1 b3: online PIN supported


def _with_pin_pad(config: TerminalConfig, present: bool) -> TerminalConfig:
    """The EMV configuration advertising online PIN exactly when a PIN pad is there.

    With one: 9F33 byte 2 "enciphered PIN for online verification", the TTQ's
    "online PIN supported" (kernel 3 combinations, whose TTQ is set) and the
    C-2 "CVM required" capability's online PIN.  Without: ``pin_pad`` false,
    whose construction masks every PIN claim off (:mod:`emv.capabilities`).
    """
    if config.pin_pad == present:
        return config
    if not present:
        return replace(config, pin_pad=False)
    caps = bytearray(config.terminal_capabilities)
    if len(caps) == 3:
        caps[1] |= _ONLINE_PIN_CVM
    combos = []
    for combo in config.combinations:
        changes: dict[str, Any] = {}
        if len(combo.ttq) == 4 and any(combo.ttq):
            changes["ttq"] = bytes([combo.ttq[0] | _TTQ_ONLINE_PIN]) + combo.ttq[1:]
        if combo.cvm_capability_cvm_required:
            value = combo.cvm_capability_cvm_required
            changes["cvm_capability_cvm_required"] = bytes([value[0] | _ONLINE_PIN_CVM]) + value[1:]
        combos.append(replace(combo, **changes) if changes else combo)
    return replace(config, pin_pad=True, terminal_capabilities=bytes(caps), combinations=tuple(combos))


class Terminal(Telling):
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
        scanner: CodeScanner | None = None,
        clock: Clock | None = None,
        settings: TerminalSettings | None = None,
        rng: random.Random | None = None,
        pin_pad: PinPad | None = None,
    ) -> None:
        self._core = Core(
            config=_with_pin_pad(config, pin_pad is not None),
            store=store,
            keystore=keystore,
            host=host,
            clock=clock or SystemClock(),
            settings=settings or TerminalSettings(),
            rng=rng or random.Random(),
        )
        self._core.pin_pad = pin_pad
        self.reader = reader
        self.printer = printer
        self.scanner = scanner
        self._settlement = Settlement(self._core)
        self._forwarder = Forwarder(self._core, self._settlement.finish_pending_close)
        self._receipts = Receipts(self._core)
        self._payments = Payments(self._core, self._forwarder, self._read_card, self._pin_token)
        self._lock = threading.RLock()
        self._cancel: CancelToken | None = None

    # -- what the terminal is -------------------------------------------------------------------

    @property
    def config(self) -> TerminalConfig:
        return self._core.config

    @config.setter
    def config(self, config: TerminalConfig) -> None:
        """A new EMV configuration from now on (parameters downloaded or rolled back while running)."""
        with self._lock:
            self._core.config = _with_pin_pad(config, self._core.pin_pad is not None)

    @property
    def pin_pad(self) -> PinPad | None:
        """The PIN pad (None: none; the kernels then advertise no PIN)."""
        return self._core.pin_pad

    @pin_pad.setter
    def pin_pad(self, pad: PinPad | None) -> None:
        """Another PIN pad from now on (or none): the kernels advertise online PIN with it."""
        with self._lock:
            self._core.pin_pad = pad
            self._core.config = _with_pin_pad(self._core.config, pad is not None)

    @property
    def settings(self) -> TerminalSettings:
        return self._core.settings

    @settings.setter
    def settings(self, settings: TerminalSettings) -> None:
        """New settings from now on (a parameter download, or a test's limits)."""
        with self._lock:
            self._core.settings = settings

    @property
    def host(self) -> HostLink | None:
        return self._core.host

    @host.setter
    def host(self, link: HostLink | None) -> None:
        """Another host link from now on (tests put a faulty or batching link in place).

        A link that knows the terminal's identity (an enrolled one: its
        certificate says it) brings it, as :func:`terminal.bootstrap.open_terminal` does.
        """
        with self._lock:
            self._core.host = link
            terminal_id, merchant_id = getattr(link, "terminal_id", None), getattr(link, "merchant_id", None)
            if isinstance(terminal_id, str) and isinstance(merchant_id, str):
                self._core.config = replace(self._core.config, terminal_id=terminal_id, merchant_id=merchant_id)

    @property
    def store(self) -> Store:
        """The store, for tests and tools; the command line uses the read verbs below."""
        return self._core.store

    @property
    def config_currency(self) -> int:
        """The terminal's currency (ISO 4217 numeric), from its configuration."""
        return int(str(self._core.config.currency))

    @property
    def keystore(self) -> Keystore:
        return self._core.keystore

    @property
    def clock(self) -> Clock:
        return self._core.clock

    def close(self) -> None:
        """Release the store and the devices (a Terminal is not used after this)."""
        with self._lock:
            for device in (self.reader, self.printer, self.scanner, self._core.host):
                close = getattr(device, "close", None)
                if callable(close):
                    with suppress(Exception):  # closing must release the rest whatever one does
                        close()
            self._core.store.close()

    def warm_up(self) -> None:
        """Load now what the first payment would load, so that it is no slower than the next (best effort).

        The kernels and the host link's machinery (its HTTP and schema code,
        a TLS session) are loaded when first used: about 90 ms, which an
        application would rather spend before its first customer.  An echo to
        the host, when the link offers one, also opens its connection.
        """
        import emv.kernel_c2
        import emv.kernel_c3  # noqa: F401

        echo = getattr(self._core.host, "echo", None)
        if callable(echo):
            with suppress(Exception):  # an unreachable host is the first payment's business
                echo()

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
        oldest, age = self._payments.oldest_queued()
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
            evidence_queued=sum(1 for e in core.store.saf_queued() if e.kind in CBDC_EVIDENCE_KINDS),
        )

    # -- helpers --------------------------------------------------------------------------------

    @contextmanager
    def _refusing_on_storage_errors(self) -> Iterator[None]:
        try:
            yield
        except StorageCorrupt:
            raise
        except StorageError as exc:
            raise PaymentRefused("storage", f"payment refused: {exc}") from exc

    def _pin_token(self) -> CancelToken:
        """A cancel for the PIN entry that follows the card's reading: :meth:`cancel` reaches it."""
        token = CancelToken()
        self._cancel = token
        return token

    def _read_card(self, request: CardRequest, extra: ExtraKernels | None = None) -> TransactionResult:
        if self.reader is None:
            raise PaymentRefused("no_reader", "no card reader is configured")
        token = CancelToken()
        self._cancel = token
        try:
            return read_card(self._core, self.reader, request, token, extra, on_hold=self._payments.hold)
        finally:
            self._cancel = None

    @contextmanager
    def _told(self, kind: str, amount: int, code: int) -> Iterator[Callable[[PaymentResult], PaymentResult]]:
        """``payment_started`` now, ``payment_finished`` at the end, whoever started the payment and however it ends.

        A screen that did not start the payment (the kiosk's, while a register
        drives it through the ECR interface) follows it by these two events:
        a payment refused before its card was read writes no journal row, so
        ``state_changed`` alone would never tell that it is over.  The block
        passes its result through the function it is given.
        """
        core = self._core
        if core.listeners:
            core.emit("payment_started", None, payment=kind, amount=amount, currency=code)
        try:
            yield self._finished
        except BaseException as exc:
            if core.listeners:
                core.emit(
                    "payment_finished", core.current_txn_id, payment=kind, amount=amount, currency=code, approved=False,
                    refused=getattr(exc, "reason", "error"), message=str(exc) or type(exc).__name__,
                )  # fmt: skip
            raise

    def _finished(self, result: PaymentResult) -> PaymentResult:
        if self._core.listeners:
            # Book A's last message: the outcome, as the customer sees it on the reader's display.
            if result.approved:
                shown = UiMessage(Message.APPROVED, ReaderStatus.CARD_READ_SUCCESSFULLY)
            elif result.state is State.DECLINED or result.state is State.DECLINED_AFTER_FORWARDING:
                shown = UiMessage(Message.NOT_AUTHORISED, ReaderStatus.CARD_READ_SUCCESSFULLY)
            else:
                shown = UiMessage(Message.PROCESSING_ERROR, ReaderStatus.PROCESSING_ERROR)
            self._core.emit("ui_message", result.txn_id, **shown.to_json())
            data = {k: v for k, v in result.to_json().items() if k not in ("txn_id", "kind")}
            self._core.emit("payment_finished", result.txn_id, payment=result.kind, **data)
        return result

    def _after_payment(self, result: PaymentResult) -> PaymentResult:
        """Print the receipt when a printer is configured; a printer fault never undoes a payment."""
        self._emit_offline_status()
        if self.printer is None:
            return result
        warning = self._receipts.print_after_payment(self.printer, result.txn_id)
        if warning is None:
            return result
        return PaymentResult(**{**result.__dict__, "warnings": (*result.warnings, warning)})

    def _writable(self) -> None:
        if self.read_only:
            raise PaymentRefused(
                "busy",
                f"the terminal in {self._core.store.path.parent} is in use by another process: "
                "this one can only read (stop the other first)",
            )

    # -- verbs ----------------------------------------------------------------------------------

    def sale(
        self,
        amount: int,
        code: int,
        *,
        exponent: int = 2,
        offline_behavior: OfflineBehavior = OfflineBehavior.PREFER_ONLINE,
        request_key: str | None = None,
        reference: str | None = None,
    ) -> PaymentResult:
        """Charge ``amount`` (minor units of currency ``code``) to the card the customer presents.

        ``request_key``: the idempotency key of a cash register's or kiosk's
        request (the ECR interface).  A payment made for that key before is
        not made again: its result, as it stands now, is the answer.
        ``reference``: the register's own reference, kept with the payment.
        """
        with self._lock, self._refusing_on_storage_errors():
            self._writable()
            done = self._done_for(request_key)
            if done is not None:
                return done
            with self._told("sale", amount, code) as told:
                result = self._payments.sale(
                    amount, code, exponent=exponent, offline_behavior=offline_behavior, request_key=request_key,
                    reference=reference,
                )  # fmt: skip
                return told(self._after_payment(result))

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
        request_key: str | None = None,
        reference: str | None = None,
    ) -> PaymentResult:
        """Refund ``amount``: against an original sale, or to the card presented (unreferenced).

        With ``original_txn_id`` the refund goes to the original's card and no
        card is read, unless ``present_card``: then the card presented must be
        the original's, or ``to_other_card`` must say that another card is
        meant.  Without an original, the card presented gets an unreferenced
        refund.  Refused (PaymentRefused, with the reason in words) when it
        would pay back more than the customer paid.  ``request_key`` and
        ``reference`` as for :meth:`sale`.
        """
        with self._lock, self._refusing_on_storage_errors():
            self._writable()
            done = self._done_for(request_key)
            if done is not None:
                return done
            with self._told("refund", amount, code) as told:
                result = self._payments.refund(
                    amount,
                    code,
                    exponent=exponent,
                    original_txn_id=original_txn_id,
                    present_card=present_card,
                    to_other_card=to_other_card,
                    offline_behavior=offline_behavior,
                    request_key=request_key,
                    reference=reference,
                )
                return told(self._after_payment(result))

    def qr_sale(self, amount: int, code: int, **how: Any) -> PaymentResult:
        """A QR sale; ``how``: :func:`terminal.qr_sale.qr_sale`'s options (``show=`` the terminal shows a code,
        else the scanner's code pays).  :meth:`cancel` stops the wait (the order is then closed at the host)."""
        from terminal.qr_sale import qr_sale

        with self._lock, self._refusing_on_storage_errors():
            self._writable()
            done = self._done_for(how.get("request_key"))
            if done is not None:
                return done
            with self._told("sale", amount, code) as told:
                self._cancel = token = CancelToken()
                try:
                    result = qr_sale(self._core, self._payments, self.scanner, self.printer, token, amount, code, **how)
                finally:
                    self._cancel = None
                return told(self._after_payment(result))

    def qr_check(self) -> list[Any]:
        """Ask the host about the QR payments in doubt (:func:`terminal.qr_check.check_orders`)."""
        from terminal.qr_check import check_orders, qr_flow

        with self._lock, self._refusing_on_storage_errors():
            self._writable()
            return check_orders(qr_flow(self._core, self._payments._new_txn_id))

    def _done_for(self, request_key: str | None) -> PaymentResult | None:
        if request_key is None:
            return None
        txn_id = self._core.store.request(request_key)
        return None if txn_id is None else self._payments.result_of(txn_id)

    def payment_for_request(self, request_key: str) -> PaymentResult | None:
        """The payment made for a register's request key, as it stands now; None if none was made."""
        return self._done_for(request_key)

    def payments_for_reference(self, reference: str) -> list[PaymentResult]:
        """The payments made under a register's reference, oldest first."""
        return [self._payments.result_of(txn_id) for txn_id in self._core.store.by_reference(reference)]

    def result(self, txn_id: str) -> PaymentResult:
        """A payment's result as it stands now (its state may have moved since it was made)."""
        return self._payments.result_of(txn_id)

    def scan_code(self, timeout: float = 30.0) -> str:
        """The next code the scanner reads (a receipt's QR code, say); :meth:`cancel` stops the wait.

        PaymentRefused (in words) when no scanner is configured, no code came
        in time, the wait was cancelled, or the scanner cannot be used.  The
        text is the scanner's, untrusted: the caller checks what it holds.
        """
        if self.scanner is None:
            raise PaymentRefused("no_scanner", "no code scanner is configured ('posterm devices set scanner URL')")
        token = CancelToken()
        self._cancel = token
        try:
            return self.scanner.read(timeout=timeout, cancel=token).text
        except WaitCancelled:
            raise PaymentRefused("cancelled", "cancelled: no code was scanned") from None
        except NoCodeError:
            raise PaymentRefused("no_code", "no code was scanned in time") from None
        except DeviceError as exc:
            raise PaymentRefused("scanner_error", f"the code scanner cannot be used: {exc}") from None
        finally:
            self._cancel = None

    def read_card_token(self) -> tuple[str, str] | None:
        """Read the card presented, to find its payments: (masked PAN, its token), or None if unreadable.

        No payment is made: the card is read as for a refund, and nothing of
        it is stored.
        """
        self._writable()  # the reader is the other process's
        with self._lock:
            result = self._read_card(CardRequest(1, self.config_currency, 2, 0x20, False))
            self._payments.release()
            card = card_record(self._core.keystore, "lookup", result)
            if card.pan_token is None or card.masked_pan is None:
                return None
            return card.masked_pan, card.pan_token

    def void(self, txn_id: str) -> PaymentResult:
        """Cancel an approved payment (a sale or a refund) of the open batch."""
        with self._lock, self._refusing_on_storage_errors():
            self._writable()
            return self._after_payment(self._payments.void(txn_id))

    # -- store and forward ------------------------------------------------------------------------

    def forward_now(self, limit: int | None = None) -> ForwardReport:
        """Send queued reversals, then SAF entries in order, now (backoff is not waited for)."""
        self._writable()
        with self._lock:
            report = self._forwarder.forward(due_only=False, limit=limit)
        self._emit_offline_status()
        return report

    def forward_due(self, limit: int | None = None) -> ForwardReport:
        """What a background forwarder calls: only entries whose backoff has passed."""
        self._writable()
        with self._lock:
            report = self._forwarder.forward(due_only=True, limit=limit)
        self._emit_offline_status()
        return report

    # -- recovery -------------------------------------------------------------------------------

    def recover(self) -> list[tuple[str, State]]:
        """Resolve transactions a crash left unfinished; returns (txn_id, new state) for each.

        Not when read only: what looks unfinished is another process's payment in progress.
        """
        core = self._core
        done: list[tuple[str, State]] = []
        if self.read_only:
            return done
        with self._lock:
            # the request may have reached the host: an authorisation is reversed, never resent as new;
            # a wallet's intent without its outcome ends not paid, with a notice to the wallet's operator
            for row in core.store.list_transactions(states=list(RECOVERY)):
                state = core.record(row.txn_id, RECOVERY[row.state], {"recovered": True})
                done.append((row.txn_id, state))
                core.emit("recovered", row.txn_id, state=state.value)
        return done

    # -- batch ----------------------------------------------------------------------------------

    def settle(self) -> SettlementResult:
        """Close the batch with the host; see :meth:`terminal.settlement.Settlement.settle`."""
        if self.read_only:
            raise SettlementRefused("settlement refused: the terminal is in use by another process")
        with self._lock:
            from terminal.qr_check import before_settling

            before_settling(self._core, self._payments._new_txn_id)  # QR payments in doubt: asked about first
            return self._settlement.settle()

    def purge_expired_records(self) -> PurgeReport:
        """Delete the settled records older than the retention period (``retention_years``)."""
        self._writable()
        with self._lock:
            return self._settlement.purge_expired_records()
