"""Entry Point (EMV Contactless Book B): pre-processing, PPSE selection, kernel activation.

:func:`process` runs one card presentation to a :class:`~emv.outcome.TransactionResult`.
Cards are untrusted: whatever bytes come back, the result is one of the
defined outcomes (malformed data -> *End Application* with a processing error;
a card that stops answering -> *Try Again* with "Present card again").

The flow is the transition table :data:`TRANSITIONS`; each state has one step
function that does the work and names the event that happened::

    PRE_PROCESSING --allowed--> PPSE --candidates--> CHOOSE --candidate--> FINAL_SELECT
    PRE_PROCESSING --restarted--> PPSE            (Start B after Try Again: indicators kept)
    FINAL_SELECT --selected--> KERNEL --final--> DONE
    FINAL_SELECT --select_failed--> CHOOSE        (Select Next: drop the candidate)
    KERNEL --select_next--> CHOOSE                (Start C: the kernel asked for Select Next)
    CHOOSE --empty--> DONE                        (End Application, try another card)

Pre-processing and the candidate list are :mod:`emv.ep_select`'s.  A *Try Again*
result carries :attr:`~emv.outcome.TransactionResult.restart` (Book B 3.5.1.2): the
caller polls for the card again, shows its UI Request on Restart, and passes it to
the next :func:`process` call, which starts at Start B without repeating pre-processing.

Kernels beside C-2 and C-3 come from the caller: ``process(..., extra_kernels={id: fn})``
maps a kernel identifier to a callable ``fn(transport, fci, txn) -> TransactionResult``,
activated like the built-in kernels when a candidate of that kernel is selected.  A
domestic kernel (Book B 3.3.2.5: byte 1 b8 set) is identified by the first three bytes
of its Kernel Identifier 9F2A, e.g. ``81 01 56`` -> ``0x810156`` (posterm's
digital-currency wallet); ``emv`` knows nothing of what such a kernel does.

>>> from emv.config import TerminalConfig
>>> from emv.transaction import TransactionData
>>> class NoCard:
...     def exchange(self, command: bytes) -> bytes:
...         return bytes.fromhex("6A82")
>>> txn = TransactionData(1234, 978, bytes.fromhex("250614"), bytes(4))
>>> r = process(NoCard(), TerminalConfig.example(capks=None), txn)
>>> r.outcome.value, r.messages[0].message.name
('end_application', 'INSERT_SWIPE_OR_TRY_ANOTHER')
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping

from emv import apdu, tlv
from emv.apdu import ApduTransport, CardCommunicationError, CollisionDetected
from emv.config import Combination, TerminalConfig
from emv.ep_select import (
    DEFAULT_KERNEL_BY_RID,
    OVER_CONTACTLESS_LIMIT,
    Candidate,
    DirectoryEntry,
    candidates,
    none_allowed_reason,
    parse_ppse,
    pre_process,
)
from emv.kernel_common import KernelContext, KernelError, PreProcessingIndicators
from emv.outcome import Message, Outcome, ReaderStatus, Restart, Start, TransactionResult, UiMessage
from emv.recorder import ApduRecorder
from emv.transaction import TransactionData

__all__ = [
    "DEFAULT_KERNEL_BY_RID",
    "OVER_CONTACTLESS_LIMIT",
    "PPSE_NAME",
    "TRANSITIONS",
    "Candidate",
    "CollisionDetected",
    "Event",
    "KernelFn",
    "State",
    "build_candidates",
    "none_allowed_reason",
    "parse_ppse",
    "pre_process",
    "process",
]

PPSE_NAME = b"2PAY.SYS.DDF01"

#: A kernel the caller supplies: (the card's transport, the selected application's FCI,
#: the transaction) -> its outcome.  It may raise CardCommunicationError (the card left:
#: Try Again) and, as cards are untrusted, anything else ends the application.
KernelFn = Callable[[ApduTransport, bytes, TransactionData], TransactionResult]

def build_candidates(
    entries: list[DirectoryEntry],
    allowed: list[tuple[Combination, PreProcessingIndicators]],
    extra_kernels: Collection[int] = (),
) -> list[Candidate]:
    """The candidate list (Book B 3.3.2.5) for the kernels here: C-2, C-3, and ``extra_kernels``
    (the ids of the caller's kernels); see :func:`emv.ep_select.candidates`."""
    return candidates(entries, allowed, {*_KERNELS, *extra_kernels})


# --------------------------------------------------------------------------- kernels


def _run_c2(ctx: KernelContext) -> TransactionResult:
    from emv.kernel_c2 import run

    return run(ctx)


def _run_c3(ctx: KernelContext) -> TransactionResult:
    from emv.kernel_c3 import run

    return run(ctx)


_KERNELS: dict[int, Callable[[KernelContext], TransactionResult]] = {2: _run_c2, 3: _run_c3}


# --------------------------------------------------------------------------- state machine


class State(enum.Enum):
    PRE_PROCESSING = "pre_processing"
    PPSE = "ppse"
    CHOOSE = "choose"
    FINAL_SELECT = "final_select"
    KERNEL = "kernel"
    DONE = "done"


class Event(enum.Enum):
    ALLOWED = "allowed"  # at least one combination allowed
    RESTARTED = "restarted"  # Start B with the Restart flag: the indicators kept, pre-processing not repeated
    NONE_ALLOWED = "none_allowed"  # no combination left -> Try Another Interface (over the limit: say so)
    CANDIDATES = "candidates"  # PPSE gave a candidate list (maybe empty)
    CANDIDATE = "candidate"  # the highest-priority candidate is chosen
    EMPTY = "empty"  # candidate list exhausted -> End Application
    SELECTED = "selected"  # SELECT AID answered 9000 with a usable FCI
    SELECT_FAILED = "select_failed"  # SELECT AID failed: remove the candidate
    FINAL = "final"  # the kernel gave its outcome
    SELECT_NEXT = "select_next"  # the kernel's outcome was Select Next
    KERNEL_ERROR = "kernel_error"  # processing error -> End Application
    COMM_ERROR = "comm_error"  # card gone -> Try Again
    COLLISION = "collision"  # two cards -> Try Again, present one card only


#: (state, event) -> next state.  Anything not listed is a bug (KeyError).
TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.PRE_PROCESSING, Event.ALLOWED): State.PPSE,
    (State.PRE_PROCESSING, Event.RESTARTED): State.PPSE,
    (State.PRE_PROCESSING, Event.NONE_ALLOWED): State.DONE,
    (State.PPSE, Event.CANDIDATES): State.CHOOSE,
    (State.PPSE, Event.COMM_ERROR): State.DONE,
    (State.PPSE, Event.COLLISION): State.DONE,
    (State.CHOOSE, Event.CANDIDATE): State.FINAL_SELECT,
    (State.CHOOSE, Event.EMPTY): State.DONE,
    (State.FINAL_SELECT, Event.SELECTED): State.KERNEL,
    (State.FINAL_SELECT, Event.SELECT_FAILED): State.CHOOSE,
    (State.FINAL_SELECT, Event.COMM_ERROR): State.DONE,
    (State.FINAL_SELECT, Event.COLLISION): State.DONE,
    (State.KERNEL, Event.FINAL): State.DONE,
    (State.KERNEL, Event.SELECT_NEXT): State.CHOOSE,
    (State.KERNEL, Event.KERNEL_ERROR): State.DONE,
    (State.KERNEL, Event.COMM_ERROR): State.DONE,
    (State.KERNEL, Event.COLLISION): State.DONE,
}


def _ui(message: Message, status: ReaderStatus) -> list[UiMessage]:
    return [UiMessage(message, status)]


class _Run:
    """The working state of one :func:`process` call; one method per state."""

    def __init__(
        self,
        transport: ApduTransport,
        config: TerminalConfig,
        txn: TransactionData,
        extra_kernels: Mapping[int, KernelFn] | None = None,
        restart: Restart | None = None,
    ) -> None:
        self.transport = ApduRecorder(transport)
        self.restart = restart
        self.config = config
        self.txn = txn
        self.extra_kernels: Mapping[int, KernelFn] = extra_kernels or {}
        self.allowed: list[tuple[Combination, PreProcessingIndicators]] = []
        self.candidates: list[Candidate] = []
        self.over_limit: list[Candidate] = []  # what the card offers that the amount put over its contactless limit
        self.current: Candidate | None = None
        self.fci = b""
        self.result: TransactionResult | None = None
        self.trail: list[tuple[State, Event]] = []

    # -- results -------------------------------------------------------------------------------------

    def finish(self, outcome: Outcome, messages: list[UiMessage], error: str | None) -> None:
        cand = self.current
        self.result = TransactionResult(
            outcome=outcome,
            kernel=cand.combination.kernel_id if cand else None,
            aid=cand.entry.adf_name if cand else None,
            application_label=(cand.entry.label or cand.combination.label or None) if cand else None,
            messages=messages,
            commands=list(self.transport.commands),
            error=error,
        )

    def restart_b(self, ui: UiMessage) -> Restart:
        """Book B 3.5.1.2: Try Again restarts at Start B with the Restart flag: protocol activation shows
        ``ui`` (the UI Request on Restart), and pre-processing is not repeated (its indicators are kept)."""
        kept = {(c.aid, c.kernel_id): ind for c, ind in self.allowed}
        return Restart(Start.B, ui, kept)

    def comm_error(self, exc: CardCommunicationError) -> Event:
        """Book B 3.3.2.2 / 3.5.1.2: the card left, or answered no more (an L1 error): Try Again, Start B,
        "present card again"; two cards in the field (a collision, 3.2.1): "present one card only"."""
        if isinstance(exc, CollisionDetected):
            ui = UiMessage(Message.PRESENT_ONE_CARD_ONLY, ReaderStatus.READY_TO_READ)
            self.finish(Outcome.TRY_AGAIN, [ui], f"collision: {exc}")
            assert self.result is not None
            self.result.restart = self.restart_b(ui)
            return Event.COLLISION
        ui = UiMessage(Message.PRESENT_CARD_AGAIN, ReaderStatus.READY_TO_READ)
        self.finish(Outcome.TRY_AGAIN, [ui], f"card communication: {exc}")
        assert self.result is not None
        self.result.restart = self.restart_b(ui)
        return Event.COMM_ERROR

    # -- steps ---------------------------------------------------------------------------------------

    def pre_processing(self) -> Event:
        """Book B 3.1; on a restart at Start B (3.2.1.1, Restart flag set) the indicators kept instead,
        for the combinations the configuration still has."""
        restarted = self.restart is not None and self.restart.start is Start.B
        if self.restart is not None and restarted:
            kept = self.restart.indicators
            combos = self.config.combinations
            self.allowed = [(c, kept[(c.aid, c.kernel_id)]) for c in combos if (c.aid, c.kernel_id) in kept]
        else:
            self.allowed = pre_process(self.config, self.txn)
        if not self.allowed:
            # Book B 3.1.1.13: Try Another Interface, message 18 (insert or swipe card), processing error
            self.finish(
                Outcome.TRY_ANOTHER_INTERFACE,
                _ui(Message.INSERT_OR_SWIPE, ReaderStatus.PROCESSING_ERROR),
                none_allowed_reason(self.config, self.txn),
            )
            return Event.NONE_ALLOWED
        return Event.RESTARTED if restarted else Event.ALLOWED

    def ppse(self) -> Event:
        try:
            resp = apdu.transmit(self.transport, apdu.select(PPSE_NAME))
        except CardCommunicationError as exc:
            return self.comm_error(exc)
        except apdu.ApduError:
            resp = None
        # Book B 3.3.2: a failed or unparsable PPSE leaves the candidate list empty.
        entries = parse_ppse(resp.data) if resp is not None and resp.ok else []
        self.candidates = build_candidates(entries, self.allowed, self.extra_kernels.keys())
        over = [
            (c, PreProcessingIndicators())
            for c in self.config.combinations
            if c.transaction_limit is not None and self.txn.amount >= c.transaction_limit
        ]
        self.over_limit = build_candidates(entries, over, self.extra_kernels.keys()) if over else []
        return Event.CANDIDATES

    def choose(self) -> Event:
        if not self.candidates and self.over_limit and self.current is None:
            # the card's applications are there, over their contactless limit (another combination, a
            # wallet's, was allowed): what the cardholder must hear is the limit, as when none is allowed
            self.finish(
                Outcome.TRY_ANOTHER_INTERFACE,
                _ui(Message.INSERT_OR_SWIPE, ReaderStatus.PROCESSING_ERROR),
                OVER_CONTACTLESS_LIMIT,
            )
            return Event.EMPTY
        if not self.candidates:
            self.current = None
            self.finish(
                Outcome.END_APPLICATION,
                _ui(Message.INSERT_SWIPE_OR_TRY_ANOTHER, ReaderStatus.PROCESSING_ERROR),
                "no matching application on the card",
            )
            return Event.EMPTY
        self.current = self.candidates[0]
        return Event.CANDIDATE

    def final_select(self) -> Event:
        assert self.current is not None
        try:
            resp = apdu.transmit(self.transport, apdu.select(self.current.select_name))
        except CardCommunicationError as exc:
            return self.comm_error(exc)
        except (apdu.ApduError, ValueError):  # malformed R-APDU, or a name too long to send
            resp = None
        if resp is None or not resp.ok or not _usable_fci(resp.data):
            self.candidates.remove(self.current)
            return Event.SELECT_FAILED
        self.fci = resp.data
        return Event.SELECTED

    def kernel(self) -> Event:
        cand = self.current
        assert cand is not None
        kernel_id = cand.combination.kernel_id
        if kernel_id not in _KERNELS:
            extra = self.extra_kernels[kernel_id]

            def run_extra() -> TransactionResult:
                result = extra(self.transport, self.fci, self.txn)
                # the identity of what ran is Entry Point's to say, whatever the kernel put there
                result.kernel, result.aid = kernel_id, cand.select_name
                if result.application_label is None:
                    result.application_label = cand.entry.label or cand.combination.label or None
                return result

            return self._activate(cand, run_extra)
        ctx = KernelContext.create(
            self.transport,
            self.config,
            cand.combination,
            self.txn,
            aid=cand.select_name,
            fci=self.fci,
            indicators=cand.indicators,
        )
        return self._activate(cand, lambda: _KERNELS[kernel_id](ctx))

    def _activate(self, cand: Candidate, run: Callable[[], TransactionResult]) -> Event:
        """Run a kernel to its outcome (Book B 3.4); card faults and untrusted data end in an outcome."""
        try:
            result = run()
        except CardCommunicationError as exc:
            return self.comm_error(exc)
        except KernelError as exc:
            self.finish(
                Outcome.END_APPLICATION,
                _ui(Message.PROCESSING_ERROR, ReaderStatus.PROCESSING_ERROR),
                exc.message,
            )
            assert self.result is not None
            # the kernel's own coding of the End Application (C-2: DF8129, DF8116, DF8115 with its
            # L2 error and status word, FF8106) goes into the result as the kernel gave it
            self.result.outcome_data = dict(getattr(exc, "outcome_data", None) or {})
            return Event.KERNEL_ERROR
        except Exception as exc:  # untrusted card data must never escape as a crash
            self.finish(
                Outcome.END_APPLICATION,
                _ui(Message.PROCESSING_ERROR, ReaderStatus.PROCESSING_ERROR),
                f"unexpected {type(exc).__name__} in kernel {cand.combination.kernel_id}: {exc}",
            )
            return Event.KERNEL_ERROR
        if result.outcome is Outcome.SELECT_NEXT:
            self.candidates.remove(cand)
            return Event.SELECT_NEXT
        result.commands = list(self.transport.commands)
        _book_parameters(result)
        if result.outcome is Outcome.TRY_AGAIN and result.restart is None:
            # Book B 3.5.1.2: the kernel's Try Again restarts at Start B; without a UI Request on
            # Restart of the kernel's, the cardholder is asked to present the card again
            result.restart = self.restart_b(UiMessage(Message.PRESENT_CARD_AGAIN, ReaderStatus.READY_TO_READ))
        self.result = result
        return Event.FINAL

    def run(self) -> TransactionResult:
        steps: dict[State, Callable[[], Event]] = {
            State.PRE_PROCESSING: self.pre_processing,
            State.PPSE: self.ppse,
            State.CHOOSE: self.choose,
            State.FINAL_SELECT: self.final_select,
            State.KERNEL: self.kernel,
        }
        state = State.PRE_PROCESSING
        while state is not State.DONE:
            event = steps[state]()
            self.trail.append((state, event))
            state = TRANSITIONS[(state, event)]
        assert self.result is not None
        return self.result


def _book_parameters(result: TransactionResult) -> None:
    """Book B 3.5: the Field Off Request and Removal Timeout of the kernel's Outcome Parameter Set
    (DF8129, bytes 7 and 8, as C-2 codes it), when the kernel gave one and set neither itself."""
    opset = result.outcome_data.get(0xDF8129, b"")
    if len(opset) != 8:
        return
    if result.field_off_hold is None and opset[6] != 0xFF:
        result.field_off_hold = opset[6]
    if not result.removal_timeout:
        result.removal_timeout = opset[7]


def _usable_fci(data: bytes) -> bool:
    """A SELECT AID response we can go on with: one FCI template 6F holding a DF name 84."""
    try:
        objs = tlv.decode(data)
    except tlv.TlvError:
        return False
    if len(objs) != 1 or objs[0].tag != 0x6F or objs[0].children is None:
        return False
    return any(o.tag == 0x84 for o in objs[0].children)


def process(
    transport: ApduTransport,
    config: TerminalConfig,
    txn: TransactionData,
    extra_kernels: Mapping[int, KernelFn] | None = None,
    restart: Restart | None = None,
) -> TransactionResult:
    """One card presentation from pre-processing to the outcome (Book B sections 3.1-3.5).

    Try Again and Try Another Interface come back to the caller, which polls
    again (or tells the cardholder to use another interface) and calls
    :func:`process` anew.  ``extra_kernels``: the caller's kernels by kernel
    identifier (see the module's docstring), activated as C-2 and C-3 are
    (Book B 3.4) when a combination of theirs is selected.  ``restart``: the
    :attr:`~emv.outcome.TransactionResult.restart` of the previous presentation's
    Try Again, to start again at Start B without repeating pre-processing
    (Book B 3.5.1.2, 3.2.1.1).
    """
    return _Run(transport, config, txn, extra_kernels, restart).run()
