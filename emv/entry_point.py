"""Entry Point (EMV Contactless Book B): pre-processing, PPSE selection, kernel activation.

:func:`process` runs one card presentation to a :class:`~emv.outcome.TransactionResult`.
Cards are untrusted: whatever bytes come back, the result is one of the
defined outcomes (malformed data -> *End Application* with a processing error;
a card that stops answering -> *Try Again* with "Present card again").

The flow is the transition table :data:`TRANSITIONS`; each state has one step
function that does the work and names the event that happened::

    PRE_PROCESSING --allowed--> PPSE --candidates--> CHOOSE --candidate--> FINAL_SELECT
    FINAL_SELECT --selected--> KERNEL --final--> DONE
    FINAL_SELECT --select_failed--> CHOOSE        (Select Next: drop the candidate)
    KERNEL --select_next--> CHOOSE                (the kernel asked for Select Next)
    CHOOSE --empty--> DONE                        (End Application, try another card)

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
from dataclasses import dataclass, field

from emv import apdu, tlv
from emv.apdu import ApduTransport, CardCommunicationError, CollisionDetected
from emv.config import Combination, TerminalConfig
from emv.kernel_common import KernelContext, KernelError, PreProcessingIndicators
from emv.outcome import Message, Outcome, ReaderStatus, TransactionResult, UiMessage
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

#: Kernel identifier when a directory entry has no 9F2A (Book B 3.3.2.5).
DEFAULT_KERNEL_BY_RID: dict[bytes, int] = {
    bytes.fromhex("A000000004"): 2,
    bytes.fromhex("A000000003"): 3,
    bytes.fromhex("A000000025"): 4,
    bytes.fromhex("A000000065"): 5,
    bytes.fromhex("A000000152"): 6,
    bytes.fromhex("A000000333"): 7,
}


# --------------------------------------------------------------------------- pre-processing


def pre_process(
    config: TerminalConfig, txn: TransactionData
) -> list[tuple[Combination, PreProcessingIndicators]]:
    """Book B 3.1: the indicators of every combination, and which are allowed.

    Returns the allowed combinations in configuration order with their
    indicators (including the TTQ to use).

    >>> from emv.config import TerminalConfig
    >>> cfg = TerminalConfig.example(capks=None)
    >>> t = TransactionData(6000, 978, bytes.fromhex("250614"), bytes(4))
    >>> [(c.label, i.ttq.hex()) for c, i in pre_process(cfg, t)]
    [('VISA', '32c04000'), ('MASTERCARD', '00c00000')]
    >>> pre_process(cfg, TransactionData(100000, 978, bytes.fromhex("250614"), bytes(4)))
    []
    """
    allowed: list[tuple[Combination, PreProcessingIndicators]] = []
    amount = txn.amount
    for combo in config.combinations:
        ind = PreProcessingIndicators()
        ttq = bytearray(combo.ttq)
        ttq[1] &= 0x3F  # online cryptogram required / CVM required are set below, never configured
        if combo.status_check and amount == 10**txn.currency_exponent:
            ind.status_check_requested = True
        if amount == 0:
            if not combo.zero_amount_allowed:
                ind.contactless_application_not_allowed = True
            else:
                ind.zero_amount = True
        if combo.transaction_limit is not None and amount >= combo.transaction_limit:
            ind.contactless_application_not_allowed = True
        floor = combo.floor_limit if combo.floor_limit is not None else config.terminal_floor_limit
        if amount > floor:
            ind.floor_limit_exceeded = True
        if combo.cvm_required_limit is not None and amount >= combo.cvm_required_limit:
            ind.cvm_required_limit_exceeded = True
        if ind.floor_limit_exceeded or ind.status_check_requested or ind.zero_amount:
            ttq[1] |= 0x80  # online cryptogram required
        if ind.cvm_required_limit_exceeded:
            ttq[1] |= 0x40  # CVM required
        ind.ttq = bytes(ttq)
        if not ind.contactless_application_not_allowed:
            allowed.append((combo, ind))
    return allowed


#: The error of a result when every combination's contactless transaction limit is reached:
#: what the cashier and the customer must do, in words (Book A message 1C goes with it).
OVER_CONTACTLESS_LIMIT = "over the contactless limit: insert or use another payment"


def none_allowed_reason(config: TerminalConfig, txn: TransactionData) -> str:
    """Why pre-processing allowed no combination, in words for the cashier.

    When the amount is at or over the contactless transaction limit of every
    combination, that is what the customer needs to hear
    (:data:`OVER_CONTACTLESS_LIMIT`), not a bare "try another interface".

    >>> from emv.config import TerminalConfig
    >>> cfg = TerminalConfig.example(capks=None)
    >>> none_allowed_reason(cfg, TransactionData(100000, 978, bytes.fromhex("250614"), bytes(4)))
    'over the contactless limit: insert or use another payment'
    """
    limits = [c.transaction_limit for c in config.combinations]
    if limits and all(limit is not None and txn.amount >= limit for limit in limits):
        return OVER_CONTACTLESS_LIMIT
    return "no combination allowed for this amount"


# --------------------------------------------------------------------------- PPSE


@dataclass(frozen=True)
class DirectoryEntry:
    """One 61 entry of the PPSE's FCI (Book B 3.3.2)."""

    adf_name: bytes
    label: str | None
    priority: int  # 1 (highest) .. 15; 0 = none
    kernel_id: int | None  # None: a domestic or unusable kernel identifier
    extended_selection: bytes | None
    order: int


@dataclass(frozen=True)
class Candidate:
    """A (directory entry, combination) pair on the candidate list."""

    entry: DirectoryEntry
    combination: Combination
    indicators: PreProcessingIndicators = field(compare=False)

    @property
    def select_name(self) -> bytes:
        ext = self.entry.extended_selection
        if ext and self.combination.extended_selection_supported:
            return self.entry.adf_name + ext
        return self.entry.adf_name

    @property
    def sort_key(self) -> tuple[int, int]:
        p = self.entry.priority
        return (p if p else 16, self.entry.order)


def parse_ppse(fci: bytes) -> list[DirectoryEntry]:
    """Directory entries of a PPSE FCI; malformed entries are skipped, malformed FCI -> [].

    >>> from emv.tlv import encode
    >>> entry = encode(0x61, encode(0x4F, bytes.fromhex("A0000000031010")) + encode(0x50, b"VISA")
    ...                + encode(0x87, b"\x01"))
    >>> fci = encode(0x6F, encode(0x84, PPSE_NAME) + encode(0xA5, encode(0xBF0C, entry)))
    >>> [(e.adf_name.hex(), e.label, e.priority, e.kernel_id) for e in parse_ppse(fci)]
    [('a0000000031010', 'VISA', 1, 3)]
    """
    try:
        objs = tlv.decode(fci)
    except tlv.TlvError:
        return []
    if len(objs) != 1 or objs[0].tag != 0x6F or objs[0].children is None:
        return []
    a5 = next((o for o in objs[0].children if o.tag == 0xA5 and o.children is not None), None)
    if a5 is None or a5.children is None:
        return []
    bf0c = next((o for o in a5.children if o.tag == 0xBF0C and o.children is not None), None)
    if bf0c is None or bf0c.children is None:
        return []
    out: list[DirectoryEntry] = []
    for order, entry in enumerate(o for o in bf0c.children if o.tag == 0x61):
        if entry.children is None:
            continue
        fields_: dict[int, bytes] = {}
        for child in entry.children:
            if child.children is None:
                fields_.setdefault(child.tag, child.value)
        adf = fields_.get(0x4F)
        if adf is None or not 5 <= len(adf) <= 16:
            continue  # Book B 3.3.2.5: no usable ADF name, the entry is ignored
        label_raw = fields_.get(0x50)
        label = label_raw.decode("ascii", "replace") if label_raw else None
        prio_raw = fields_.get(0x87)
        priority = prio_raw[0] & 0x0F if prio_raw and len(prio_raw) == 1 else 0
        kernel_id = _kernel_id(adf, fields_.get(0x9F2A))
        ext = fields_.get(0x9F29)
        out.append(DirectoryEntry(adf, label, priority, kernel_id, ext or None, order))
    return out


def _kernel_id(adf: bytes, raw: bytes | None) -> int | None:
    """The kernel identifier of a directory entry (Book B 3.3.2.5 step 3).

    Absent, or a first byte of 00: the default kernel of the RID.  A first
    byte with b8-b7 = 00 is an international kernel: the short id (b6-b1).
    b8 = 1 is a domestic kernel: its identifier is the first three bytes
    (short id and country code), as an int (``81 01 56`` -> ``0x810156``);
    fewer than three bytes name no kernel.  b8-b7 = 01 (RFU) names none.

    >>> hex(_kernel_id(bytes.fromhex("F0504F5354434244430101"), bytes.fromhex("810156")))
    '0x810156'
    >>> _kernel_id(bytes.fromhex("A0000000031010"), bytes.fromhex("8101")) is None
    True
    """
    if raw is None or len(raw) == 0 or raw[0] == 0:
        return DEFAULT_KERNEL_BY_RID.get(adf[:5])
    if raw[0] & 0x80:
        return int.from_bytes(raw[:3], "big") if len(raw) >= 3 else None
    if raw[0] & 0x40:
        return None
    return raw[0] & 0x3F


def build_candidates(
    entries: list[DirectoryEntry],
    allowed: list[tuple[Combination, PreProcessingIndicators]],
    extra_kernels: Collection[int] = (),
) -> list[Candidate]:
    """Match directory entries against allowed combinations; order by priority, then directory order.

    Partial matching: an ADF name matches a configured AID it begins with.  A
    combination is a candidate only if its kernel is here: C-2, C-3, or one of
    ``extra_kernels`` (the ids of the caller's kernels).
    """
    out: list[Candidate] = []
    for entry in entries:
        for combo, ind in allowed:
            if entry.kernel_id != combo.kernel_id:
                continue
            if not entry.adf_name.startswith(combo.aid):
                continue
            if combo.kernel_id not in _KERNELS and combo.kernel_id not in extra_kernels:
                continue
            out.append(Candidate(entry, combo, ind))
    out.sort(key=lambda c: c.sort_key)
    return out


# --------------------------------------------------------------------------- kernels


def _run_c2(ctx: KernelContext) -> TransactionResult:
    from emv.kernel_c2 import run

    return run(ctx)


def _run_c3(ctx: KernelContext) -> TransactionResult:
    from emv.kernel_c3 import run

    return run(ctx)


def _run_c7(ctx: KernelContext) -> TransactionResult:
    from emv.kernel_c7 import run

    return run(ctx)


_KERNELS: dict[int, Callable[[KernelContext], TransactionResult]] = {2: _run_c2, 3: _run_c3, 7: _run_c7}


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
    ) -> None:
        self.transport = ApduRecorder(transport)
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

    def comm_error(self, exc: CardCommunicationError) -> Event:
        if isinstance(exc, CollisionDetected):
            self.finish(
                Outcome.TRY_AGAIN,
                _ui(Message.PRESENT_ONE_CARD_ONLY, ReaderStatus.READY_TO_READ),
                f"collision: {exc}",
            )
            return Event.COLLISION
        self.finish(
            Outcome.TRY_AGAIN,
            _ui(Message.PRESENT_CARD_AGAIN, ReaderStatus.READY_TO_READ),
            f"card communication: {exc}",
        )
        return Event.COMM_ERROR

    # -- steps ---------------------------------------------------------------------------------------

    def pre_processing(self) -> Event:
        self.allowed = pre_process(self.config, self.txn)
        if not self.allowed:
            self.finish(
                Outcome.TRY_ANOTHER_INTERFACE,
                _ui(Message.INSERT_SWIPE_OR_TRY_ANOTHER, ReaderStatus.PROCESSING_ERROR),
                none_allowed_reason(self.config, self.txn),
            )
            return Event.NONE_ALLOWED
        return Event.ALLOWED

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
                _ui(Message.INSERT_SWIPE_OR_TRY_ANOTHER, ReaderStatus.PROCESSING_ERROR),
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
) -> TransactionResult:
    """One card presentation from pre-processing to the outcome (Book B sections 3.1-3.5).

    Try Again and Try Another Interface come back to the caller, which polls
    again (or tells the cardholder to use another interface) and calls
    :func:`process` anew.  ``extra_kernels``: the caller's kernels by kernel
    identifier (see the module's docstring), activated as C-2 and C-3 are
    (Book B 3.4) when a combination of theirs is selected.
    """
    return _Run(transport, config, txn, extra_kernels).run()
