"""The payment desk: the ECR interface's payments, one at a time, run on a worker through the Terminal facade.

No HTTP here (that is :mod:`ui.ecr.app`): the desk is what a register's
requests do, in plain Python, so that the Kivy application can share it with
its own screens.

Why it is shaped so:

- The terminal has one reader and one journal: one payment at a time.  A
  second start while one runs is refused (:class:`Busy`, naming what runs)
  instead of queued behind a customer who may never tap.  Voids, receipts,
  printing and totals take the same slot: they write to the journal (a
  receipt given out is recorded, so that a second one says DUPLICATE), and
  every write goes through the worker, never from two threads at once.
- The facade makes a key's payment once, even across restarts
  (``Terminal.sale(..., request_key=KEY)``), but only once the card was
  read: before that nothing is written.  The desk remembers each request
  (in memory) from the moment it is accepted, so that a repeated key finds
  its payment at every stage, and a key reused with another body is told
  apart (:class:`Conflict`); after a restart the journal answers for the
  keys whose payment reached it.
- Progress comes from the terminal's events (``card_prompt``,
  ``ui_message``, ``state_changed``), which the facade emits on the thread
  that runs the payment: the desk takes only those of its worker thread, so
  a background forwarder's events never land in a register's payment.
- Cancel: :meth:`Terminal.cancel` stops the card wait only while a wait
  exists, so the desk also keeps the request and cancels again when the
  prompt appears; a payment not yet begun never begins.  Once the card was
  read the payment rules decide, and the payment ends in its own state.

Threads: the desk's methods may be called from any thread.  Those that read
the journal block (call them off an event loop); worker jobs answer with a
:class:`concurrent.futures.Future`; :meth:`PaymentDesk.wait_for_change` is
for asyncio.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from terminal.exit_status import expected
from terminal.facade import PaymentResult, Terminal, TerminalEvent
from terminal.offline import PaymentRefused
from terminal.store import StorageError
from ui.ecr import day
from ui.ecr.book import PaymentBook
from ui.ecr.records import (
    NOT_COMPLETED,
    PROCESSING,
    VOIDED,
    EcrPayment,
    PaymentRequest,
    status_of_refusal,
)
from ui.worker import Worker as UiWorker

__all__ = ["Busy", "Conflict", "DeskClosed", "NoPayment", "PaymentDesk", "Worker"]

_log = logging.getLogger("ui.ecr")
_T = TypeVar("_T")
#: How many payments delivered to registers the desk remembers, to write each shown mark once.
_SHOWN_REMEMBERED = 100_000


class Worker(Protocol):
    """Where the desk runs facade calls: one background thread, jobs in order (:class:`ui.worker.Worker`).

    The desk's jobs record their own results and never raise, so
    ``on_done`` has nothing to do: with the Kivy application's worker it is
    a no-op handed to the UI thread.
    """

    def submit(self, call: Callable[[], Any], on_done: Callable[[Any], None], /) -> Any: ...


def _ignore(result: object) -> None:
    """The ``on_done`` of the desk's jobs."""


class Busy(Exception):
    """The terminal is doing something else; ``payment`` is the payment that runs, if it is one."""

    def __init__(self, what: str, payment: EcrPayment | None = None) -> None:
        super().__init__(f"the terminal is busy: {what}")
        self.what = what
        self.payment = payment


class Conflict(Exception):
    """An idempotency key used before for another request."""


class NoPayment(Exception):
    """No payment with that id, or one with nothing recorded for what was asked (a receipt, a void)."""


class DeskClosed(Exception):
    """The desk is shutting down, or cannot start a payment now (no reader); the message says which."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class PaymentDesk:
    """The register's payments on one :class:`~terminal.facade.Terminal`; see the module docstring.

    ``worker``: where facade calls run (default: a :class:`ui.worker.Worker`
    of the desk's own).  Sharing the application's worker, the application
    marks its own payments with :meth:`hold`, so that a register is told
    the terminal is busy instead of queueing behind them.  ``keep``: how
    many finished payments stay in memory (older ones are still found in
    the journal when their card was read).
    """

    def __init__(self, terminal: Terminal, worker: Worker | None = None, *, keep: int = 10_000) -> None:
        self.terminal = terminal
        self._own_worker: UiWorker | None = None
        if worker is None:
            # Results are recorded by the jobs themselves: the callback runs where it is (no UI thread here).
            worker = self._own_worker = UiWorker(lambda fn: fn())
        self._worker: Worker = worker
        self.book = PaymentBook(terminal, self._notify, keep=keep)
        self._lock = self.book.lock
        self._running: EcrPayment | None = None
        self._held: str | None = None
        self._thread: int | None = None  # the worker thread, while it runs one of the desk's payments
        self._watchers: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._closing = False
        self._shown: set[str] = set()  # txn_ids whose outcome went out to a register (marked, or being marked)

    # -- life ---------------------------------------------------------------------------------

    def open(self) -> None:
        """Listen to the terminal's events (idempotent)."""
        with self._lock:
            if self._unsubscribe is None:
                self._unsubscribe = self.terminal.subscribe(self._on_event)

    @property
    def closing(self) -> bool:
        return self._closing

    def begin_close(self) -> None:
        """Accept nothing new, and wake every register waiting for a change (their streams end)."""
        with self._lock:
            self._closing = True
            watchers = [w for ws in self._watchers.values() for w in ws]
            self._watchers.clear()
        for loop, future in watchers:
            with contextlib.suppress(RuntimeError):  # its loop is closed already
                loop.call_soon_threadsafe(_wake, future)

    def close(self, timeout: float | None = None) -> None:
        """Stop: a card wait is cancelled, a payment past it is let finish; the terminal is left open.

        ``timeout`` bounds the wait for the running payment (None: as long
        as it takes, which the host link's own time-outs bound).
        """
        self.begin_close()
        with self._lock:
            running = self._running
            if running is not None and not running.card_read:
                running.cancel_requested = True
        if running is not None:
            if not running.card_read:
                self.terminal.cancel()
            running.done.wait(timeout)
        if self._own_worker is not None:
            self._own_worker.stop(5.0 if timeout is None else timeout)
        with self._lock:
            unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            with contextlib.suppress(ValueError):
                unsubscribe()

    # -- what runs ------------------------------------------------------------------------------

    @property
    def running(self) -> EcrPayment | None:
        """The desk's payment that runs now, if any."""
        return self._running

    def busy_with(self) -> str | None:
        """What holds the terminal (a payment, a void, a receipt, the screen), in words; None when free."""
        with self._lock:
            if self._running is not None:
                return f"{self._running.request.describe()} (payment {self._running.id}, {self._running.status})"
            return self._held

    def _check_free(self) -> None:
        if self._closing:
            raise DeskClosed("shutting_down", "the ECR interface is shutting down")
        if self._running is not None:
            raise Busy(self.busy_with() or "a payment", self._running)
        if self._held is not None:
            raise Busy(self._held)

    @contextlib.contextmanager
    def hold(self, what: str) -> Iterator[None]:
        """Hold the terminal for something done elsewhere (the cashier's screen taking a payment).

        Registers are told the terminal is busy with ``what`` meanwhile;
        :class:`Busy` when it is held already.
        """
        with self._lock:
            self._check_free()
            self._held = what
        try:
            yield
        finally:
            with self._lock:
                self._held = None

    def exclusive(self, what: str, fn: Callable[[], _T]) -> concurrent.futures.Future[_T]:
        """Run ``fn`` on the worker with the terminal held for ``what`` (:class:`Busy` if it is not free)."""
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()
        with self._lock:
            self._check_free()
            self._held = what

        def release() -> None:
            with self._lock:
                self._held = None

        def job() -> None:
            # The terminal is free again before the answer is out: a register that starts its
            # next payment as soon as it has the receipt must not be told it is busy.
            if not future.set_running_or_notify_cancel():
                release()
                return
            try:
                value = fn()
            except BaseException as exc:
                release()
                future.set_exception(exc)
            else:
                release()
                future.set_result(value)

        try:
            self._worker.submit(job, _ignore)
        except BaseException:
            with self._lock:
                self._held = None
            raise
        return future

    # -- finding --------------------------------------------------------------------------------

    def find(self, payment_id: str) -> EcrPayment | None:
        """The payment whose id (its Idempotency-Key) or txn_id this is, as it stands; None if none. Blocks."""
        return self.book.find(payment_id, self._running)

    def by_reference(self, reference: str) -> list[EcrPayment]:
        """The payments made under a register's reference, oldest first. Blocks."""
        return self.book.by_reference(reference, self._running)

    # -- starting -------------------------------------------------------------------------------

    def start(self, key: str, request: PaymentRequest) -> tuple[EcrPayment, bool]:
        """Start the payment of ``key``, or find it: (the payment, whether it was started now).

        The same key with the same request is the same payment, at whatever
        stage; with another request, :class:`Conflict`.  Blocks (a key not in
        memory is looked up in the journal).  :class:`Busy` while another
        payment runs; :class:`DeskClosed` when no reader is configured for a
        payment that needs a card, or while shutting down.
        """
        known = self.book.in_memory(key)
        if known is not None and known.key == key:
            return self._same(known, request), False
        journalled = self.terminal.payment_for_request(key)
        if journalled is not None:
            row = self.terminal.transaction(journalled.txn_id)
            if row is not None and not request.matches(row):
                raise Conflict(
                    f"the Idempotency-Key {key} was used for another payment ({PaymentRequest.of_row(row).describe()}, "
                    f"txn {row.txn_id}): a new payment needs a new key"
                )
            return self.book.adopt(key, key, journalled), False
        with self._lock:
            known = self.book.in_memory(key)
            if known is not None and known.key == key:
                return self._same(known, request), False
            self._check_free()
            if request.needs_card and self.terminal.reader is None:
                raise DeskClosed(
                    "no_reader", "no card reader is configured ('posterm devices set reader URL', or --reader/--card)"
                )
            payment = EcrPayment(id=key, key=key, request=request)
            self.book.remember(payment)
            self._running = payment
        try:
            self._worker.submit(lambda: self._run(payment), _ignore)
        except BaseException as exc:
            with self._lock:
                payment.fail(NOT_COMPLETED, "error", f"the payment could not be started: {exc}")
                payment.changed()
                self._running = None
                self._notify(payment)
        return payment, True

    @staticmethod
    def _same(known: EcrPayment, request: PaymentRequest) -> EcrPayment:
        if known.request != request:
            raise Conflict(
                f"the Idempotency-Key {known.key} was used for another payment ({known.request.describe()}): "
                "a new payment needs a new key"
            )
        return known

    def _pay(self, payment: EcrPayment) -> PaymentResult:
        request, terminal = payment.request, self.terminal
        cur = request.currency
        if request.kind == "sale":
            return terminal.sale(
                request.amount, cur.numeric, exponent=cur.exponent, offline_behavior=request.offline_behavior,
                request_key=payment.key, reference=request.reference,
            )  # fmt: skip
        return terminal.refund(
            request.amount,
            cur.numeric,
            exponent=cur.exponent,
            original_txn_id=request.original_txn_id,
            present_card=request.present_card,
            to_other_card=request.to_other_card,
            offline_behavior=request.offline_behavior,
            request_key=payment.key,
            reference=request.reference,
        )

    def _run(self, payment: EcrPayment) -> None:
        """The payment, on the worker: the facade's verb, then its result (or why there is none)."""
        with self._lock:
            if payment.final:  # cancelled before it began: the card is never asked for
                return
            if payment.cancel_requested:  # the desk is closing
                payment.fail(NOT_COMPLETED, "cancelled", "cancelled before the card was asked for: no payment was made")
                payment.changed()
                if self._running is payment:
                    self._running = None
                self._notify(payment)
                return
            self._thread = threading.get_ident()
            if not payment.request.needs_card:
                payment.status, payment.message = PROCESSING, "processing"
                payment.changed()
                self._notify(payment)
        result: PaymentResult | None = None
        failure: tuple[str, str, str] | None = None
        try:
            result = self._pay(payment)
        except PaymentRefused as exc:
            failure = (status_of_refusal(exc), exc.reason, str(exc))
        except StorageError as exc:
            failure = (NOT_COMPLETED, "storage", str(exc))
        except Exception as exc:
            if expected(exc):
                failure = (NOT_COMPLETED, "error", str(exc) or type(exc).__name__)
            else:
                _log.exception("ECR payment %s: unexpected error", payment.id)
                failure = (NOT_COMPLETED, "error", f"internal error: {type(exc).__name__} (details in the log)")
        if result is None and payment.key is not None:
            # The journal is the truth: a payment made for the key stands, whatever was raised after.
            with contextlib.suppress(Exception):
                result = self.terminal.payment_for_request(payment.key)
        with self._lock:
            self._thread = None
            if result is not None:
                payment.finish(result)
                payment.done.set()
                self.book.index(payment)
            elif failure is not None:
                payment.fail(*failure)
            payment.changed()
            if self._running is payment:
                self._running = None
            self._notify(payment)
        _log.info("ECR payment %s: %s (%s)", payment.id, payment.status, payment.state or payment.reason)

    # -- progress -------------------------------------------------------------------------------

    def _on_event(self, event: TerminalEvent) -> None:
        """A terminal event: the running payment's progress when it comes from the payment's own thread."""
        if threading.get_ident() != self._thread:
            return
        cancel = False
        with self._lock:
            payment = self._running
            if payment is None or payment.final:
                return
            if event.kind == "card_prompt":
                payment.show_prompt(str(event.data.get("prompt") or "present card"))
                cancel = payment.cancel_requested
            elif event.kind == "ui_message":
                payment.show_message(event.data)
            elif event.kind == "state_changed" and event.txn_id is not None:
                if event.txn_id != self.terminal.payment_in_progress:
                    return  # a reversal sent first, or another payment's change
                payment.txn_id = event.txn_id
                payment.state = str(event.data.get("state"))
                payment.status = PROCESSING
                payment.card_read = payment.card_read or payment.request.needs_card
                self.book.index(payment)
            else:
                return
            payment.changed()
            self._notify(payment)
        if cancel:
            self.terminal.cancel()

    def _notify(self, payment: EcrPayment) -> None:
        """Wake the registers waiting on ``payment`` (called under the lock)."""
        for loop, future in self._watchers.pop(payment.id, []):
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake, future)

    async def wait_for_change(self, payment: EcrPayment, after: int, timeout: float) -> None:
        """Return once ``payment.version`` is past ``after``, the desk closes, or ``timeout`` seconds pass."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with self._lock:
            if payment.version > after or self._closing:
                return
            self._watchers.setdefault(payment.id, []).append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                waiting = self._watchers.get(payment.id)
                if waiting is not None and entry in waiting:
                    waiting.remove(entry)

    # -- cancel, void, receipts -----------------------------------------------------------------

    def cancel(self, payment_id: str) -> tuple[EcrPayment, bool]:
        """Ask the payment to stop: (the payment, whether it was final already). Blocks (a lookup).

        Before it began, it never begins (``not_completed``, reason
        ``cancelled``, at once).  While the card is awaited, the wait is
        cancelled.  After the card was read nothing is stopped: wait for
        the payment to end and read its status.
        """
        payment = self.find(payment_id)
        if payment is None:
            raise NoPayment(f"no payment {payment_id}")
        cancel_wait = False
        with self._lock:
            if payment.final:
                return payment, True
            payment.cancel_requested = True
            if payment is self._running and self._thread is None:
                payment.fail(NOT_COMPLETED, "cancelled", "cancelled before the card was asked for: no payment was made")
                payment.changed()
                self._running = None
                self._notify(payment)
            else:
                cancel_wait = not payment.card_read
        if cancel_wait:
            self.terminal.cancel()
        return payment, False

    def _recorded(self, payment_id: str, what: str) -> EcrPayment:
        payment = self.find(payment_id)
        if payment is None:
            raise NoPayment(f"no payment {payment_id}")
        if payment.txn_id is None:
            raise NoPayment(
                f"payment {payment_id} has no {what}: nothing was recorded ({payment.status}: {payment.message})"
            )
        return payment

    def void(self, payment_id: str) -> tuple[concurrent.futures.Future[EcrPayment], bool]:
        """Void a payment of the open batch: (its future, whether it was voided already). Blocks (a lookup).

        Voiding twice is one void: a payment voided already is the answer.
        The payment rules refuse what cannot be voided (PaymentRefused, in words).
        """
        payment = self._recorded(payment_id, "void: it was not made")
        if payment.status == VOIDED:
            done: concurrent.futures.Future[EcrPayment] = concurrent.futures.Future()
            done.set_result(payment)
            return done, True
        txn_id = payment.txn_id
        assert txn_id is not None

        def void() -> EcrPayment:
            result = self.terminal.void(txn_id)
            with self._lock:
                payment.finish(result)
                payment.changed()
                self._notify(payment)
            return payment

        return self.exclusive(f"void of payment {payment.id}", void), False

    def receipt(self, payment_id: str, copy: str) -> concurrent.futures.Future[tuple[str, bool]]:
        """The receipt as text, given out (a later one says DUPLICATE): (text, whether it is a duplicate)."""
        from terminal.receipts import render_text

        payment = self._recorded(payment_id, "receipt")
        txn_id = payment.txn_id
        assert txn_id is not None

        def receipt() -> tuple[str, bool]:
            data = self.terminal.receipt(txn_id, copy, issue=True)
            return render_text(data, copy), bool(data.reprint)  # type: ignore[arg-type]

        return self.exclusive(f"receipt of payment {payment.id}", receipt)

    def print_receipt(self, payment_id: str, copy: str) -> concurrent.futures.Future[str]:
        """Print the receipt on the terminal's printer: its txn_id once printed (PaymentRefused ``no_printer``)."""
        payment = self._recorded(payment_id, "receipt")
        txn_id = payment.txn_id
        assert txn_id is not None
        if self.terminal.printer is None:
            raise PaymentRefused("no_printer", "no receipt printer is configured ('posterm devices set printer URL')")

        def print_it() -> str:
            self.terminal.print_receipt(txn_id, copy)
            return txn_id

        return self.exclusive(f"printing the receipt of payment {payment.id}", print_it)

    # -- shown --------------------------------------------------------------------------------

    def delivered(self, payments: Iterable[EcrPayment]) -> None:
        """These payments' final outcomes went out to a register: marked shown in the journal, on the worker.

        Once a register has a payment's outcome, a restart need not tell it
        again (:mod:`terminal.notices`).  Does not block: the mark waits its
        turn behind the payment that runs, if any.
        """
        with self._lock:
            if len(self._shown) > _SHOWN_REMEMBERED:
                self._shown.clear()  # marking again is a no-op in the journal: the memory only saves a write
            ids = [p.txn_id for p in payments if p.final and p.txn_id is not None and p.txn_id not in self._shown]
            self._shown.update(ids)
        if not ids:
            return

        def mark() -> None:
            try:
                self.terminal.mark_shown(ids, "ecr")
            except Exception as exc:  # told again at the next start: better than a register's request failing
                _log.warning("ECR: cannot mark %s shown: %s", ", ".join(ids), exc)
                with self._lock:
                    self._shown.difference_update(ids)

        try:
            self._worker.submit(mark, _ignore)
        except Exception:  # the worker has stopped: the next start tells them
            with self._lock:
                self._shown.difference_update(ids)

    # -- the day --------------------------------------------------------------------------------

    def totals(self) -> concurrent.futures.Future[dict[str, Any]]:
        """The open batch's totals and the SAF queue (:func:`ui.ecr.day.totals`), on the worker."""
        return self.exclusive("reading the totals", lambda: day.totals(self.terminal))

    def echo(self) -> concurrent.futures.Future[dict[str, Any]]:
        """An echo to the host now (the diagnostics' host test), on the worker."""
        return self.exclusive("an echo to the host", lambda: day.echo(self.terminal))

    def snapshot(self, payment: EcrPayment) -> dict[str, Any]:
        """The payment as JSON, taken whole (the worker may be changing it)."""
        with self._lock:
            return payment.to_json()

    def status(self) -> dict[str, Any]:
        """What a register checks before it starts: busy or not, the devices, the host, the queues. Blocks."""
        with self._lock:
            running = self._running.to_json() if self._running is not None else None
            what = self.busy_with()
        return {"accepting": not self._closing, "busy": what is not None, "busy_with": what, "running": running} | (
            day.status(self.terminal)
        )
