"""An in-process acquiring host: a :class:`~terminal.host.HostLink` for tests and the headless CLI.

:class:`MemoryHost` is a test double in the spirit of httpx's ``MockTransport``,
but it behaves like an acquirer: it decides by rules a tester can steer, keeps
records of what it accepted, honours idempotency keys, reconciles batch totals
and can be told to fail in the ways a network fails.

Decision rules
--------------

The "magic amounts" look at the last two digits of the amount in minor units
(``amount % 100``); a blocked card (by ``pan_token``, see :meth:`MemoryHost.block`)
is checked first.

========================  ======  ===========================================
Condition                 Code    Meaning
========================  ======  ===========================================
blocked ``pan_token``     ``62``  restricted card (or the code given to
                                  :meth:`~MemoryHost.block`, e.g. ``43``
                                  stolen card, pick up)
amount ends in ``51``     ``51``  insufficient funds
amount ends in ``05``     ``05``  do not honour
amount ends in ``54``     ``54``  expired card
anything else             ``00``  approved (6-character approval code and a
                                  host reference)
========================  ======  ===========================================

- :meth:`~MemoryHost.authorise`: sales and refunds (``kind == "refund"``) both
  follow the table.
- :meth:`~MemoryHost.advise`: ``"deferred_authorisation"`` advices are
  authorised after forwarding by the same table, so a decline after forwarding
  happens with the same amounts; ``"offline_approval"`` and ``"offline_refund"``
  advices were approved by the card and are always accepted (``00``, no
  approval code), even for blocked cards.
- :meth:`~MemoryHost.reverse`: undoes every approved, not yet reversed
  authorisation or advice with the same ``txn_id`` and answers ``00``;
  reversing an unknown, declined or already reversed transaction is
  acknowledged with ``00`` too ("nothing to reverse") and recorded. A
  reversal of a transaction whose batch is already closed changes no totals.
- :meth:`~MemoryHost.close_batch`: compares the terminal's totals, summed over
  schemes per (currency, kind), with the host's approved, not reversed records
  of that terminal in the open host batch (``kind`` is ``"sale"`` for sales,
  offline approvals and deferred authorisations, ``"refund"`` for refunds and
  offline refunds), answers in or out of balance with the differences, then
  opens a new host batch for the terminal. Repeating the close of the same
  ``batch_id`` with the same totals gets the same answer and no second close.

A message the host cannot accept raises :class:`~terminal.host.HostRejected`:
an empty ``txn_id``, ``idempotency_key``, ``terminal_id`` or ``pan_token``, an
unknown ``kind`` or reversal ``reason``, an amount outside 1..999 999 999 999,
a currency outside 1..999, or a totals line with a negative count or amount.

Idempotency
-----------

Every state-changing call carries an idempotency key (for a batch close, the
terminal's ``batch_id`` plays that part), scoped by terminal. The same key with
the same body (compared in a canonical form that ignores ``retransmission``)
gets exactly the first answer and has no second effect; the same key with a
different body raises ``HostRejected("idempotency key reused with a different
body")``. The host does *not* deduplicate by ``txn_id``: a transaction sent
twice under two keys is accepted twice, which :meth:`MemoryHost.accepted_count`
and :meth:`MemoryHost.duplicates` reveal.

Faults
------

:attr:`MemoryHost.faults` (a :class:`HostFaults`) can be changed at any time,
from any thread. Faults are checked in this order, before the request is
validated or looked up:

- ``down = True``: :class:`~terminal.host.HostUnreachable`, nothing recorded;
- ``fail_before_processing = N``: the next N calls raise
  :class:`~terminal.host.HostNoAnswer` with no effect;
- ``reject_next = N``: the next N calls raise ``HostRejected`` (malformed);
- ``no_answer = N``: the next N calls are processed (recorded, effect applied,
  answer kept for a repeat of the key) and then raise ``HostNoAnswer``.

``faults.only = {"advise"}`` limits the faults to those methods (``None``, the
default, means every method). Every call is logged in :attr:`MemoryHost.calls`
as a :class:`Call` ``(method, txn_id, outcome)``.

Persistence
-----------

``MemoryHost(state_file=path)`` loads its state (records, idempotency cache,
host batches, blocked cards, sequence numbers) from the JSON file if it exists
and saves it after every state change (written to a temporary file, then
renamed), so that separate CLI invocations talk to the same host. Before each
call the file is read again if another instance has changed it since; the file
is not locked, so two processes must not use it at the same moment. Faults
and the call log are not persisted. Without a path the host lives in memory.

>>> from terminal.host import AuthorisationRequest
>>> host = MemoryHost()
>>> req = AuthorisationRequest("t1", "k1", "sale", 1051, 978, "T1", "M1", b"", "tok")
>>> host.authorise(req).response_code
'51'
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from terminal.files import atomic_write
from terminal.host import (
    Advice,
    AnswerStatus,
    AuthorisationRequest,
    BatchTotals,
    HostAnswer,
    HostNoAnswer,
    HostRejected,
    HostUnreachable,
    Reversal,
    SettlementAnswer,
    reconcile,
)

__all__ = ["MAGIC_AMOUNT_CODES", "Call", "HostFaults", "HostRecord", "MemoryHost"]

#: Last two digits of the amount (minor units) → response code of the decline.
MAGIC_AMOUNT_CODES: dict[int, str] = {51: "51", 5: "05", 54: "54"}

#: Default response code for a blocked card ("restricted card").
BLOCKED_CARD_CODE = "62"

_AUTH_KINDS = frozenset({"sale", "refund"})
_ADVICE_KINDS = frozenset({"offline_approval", "deferred_authorisation", "offline_refund"})
_REVERSAL_REASONS = frozenset({"no_answer", "void", "recovery", "expired"})
_TOTALS_KINDS = frozenset({"sale", "refund"})
_SETTLEMENT_KIND = {
    "sale": "sale",
    "refund": "refund",
    "offline_approval": "sale",
    "deferred_authorisation": "sale",
    "offline_refund": "refund",
}
_MAX_AMOUNT = 999_999_999_999
_STATE_VERSION = 1


class Call(NamedTuple):
    """One entry of the call log.

    ``outcome`` is one of ``"approved"``, ``"declined:<code>"``, ``"reversed"``,
    ``"nothing_to_reverse"``, ``"in_balance"``, ``"out_of_balance"`` for a
    processed call, the same followed by ``"+no_answer"`` when the answer was
    lost, ``"replay"`` for a repeated key, or ``"unreachable"``,
    ``"no_answer_before_processing"``, ``"rejected"``, ``"conflict"``.
    """

    method: str
    txn_id: str
    outcome: str


@dataclass(frozen=True)
class HostRecord:
    """What the host did with one processed (not replayed) request.

    For a reversal, ``kind`` is the reversal's reason and ``note`` says how many
    records it reversed (``"reversed 1"``) or ``"nothing to reverse"``.
    """

    seq: int
    method: str  # "authorise" | "advise" | "reverse"
    txn_id: str
    idempotency_key: str
    kind: str
    terminal_id: str
    amount: int
    currency: int
    pan_token: str
    response_code: str
    approved: bool
    batch: int  # the host batch of the terminal at the time
    reversed: bool = False
    original_txn_id: str | None = None
    note: str = ""

    @property
    def settlement_kind(self) -> str | None:
        """``"sale"`` or ``"refund"`` for an authorisation or advice, ``None`` for a reversal."""
        if self.method == "reverse":
            return None
        return _SETTLEMENT_KIND.get(self.kind)


class HostFaults:
    """Faults to inject, switchable at run time from any thread.

    Set the attributes directly (``host.faults.no_answer = 2``); the counters
    are consumed one per call, under a lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.down: bool = False
        self.no_answer: int = 0
        self.fail_before_processing: int = 0
        self.reject_next: int = 0
        self.only: frozenset[str] | set[str] | None = None

    def clear(self) -> None:
        """Switch every fault off."""
        with self._lock:
            self.down = False
            self.no_answer = 0
            self.fail_before_processing = 0
            self.reject_next = 0
            self.only = None

    def _applies(self, method: str) -> bool:
        return self.only is None or method in self.only

    def _is_down(self, method: str) -> bool:
        with self._lock:
            return self.down and self._applies(method)

    def _take(self, name: str, method: str) -> bool:
        """Consume one unit of the counter ``name`` if it is set and applies to ``method``."""
        with self._lock:
            if not self._applies(method):
                return False
            left: int = getattr(self, name)
            if left <= 0:
                return False
            setattr(self, name, left - 1)
            return True


@dataclass(frozen=True)
class _Cached:
    method: str
    body: str
    answer: HostAnswer | SettlementAnswer


# ----------------------------------------------------------------------------- helpers


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _canonical(method: str, body: Any) -> str:
    """A digest of the canonical text of a request dataclass, ignoring ``retransmission``.

    Only equality matters for idempotency, so the host keeps the SHA-256 of the
    body, never the body: requests carry card data (the EMV data objects).
    """
    fields = dataclasses.asdict(body)
    fields.pop("retransmission", None)
    text = json.dumps({"method": method, "body": _jsonable(fields)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _encode_answer(answer: HostAnswer | SettlementAnswer) -> dict[str, Any]:
    if isinstance(answer, HostAnswer):
        return {
            "type": "host_answer",
            "status": answer.status.value,
            "response_code": answer.response_code,
            "approval_code": answer.approval_code,
            "host_reference": answer.host_reference,
            "arpc": answer.arpc.hex() if answer.arpc is not None else None,
        }
    return {
        "type": "settlement_answer",
        "in_balance": answer.in_balance,
        "host_reference": answer.host_reference,
        "differences": [dict(d) for d in answer.differences],
    }


def _decode_answer(data: dict[str, Any]) -> HostAnswer | SettlementAnswer:
    if data["type"] == "host_answer":
        arpc = data.get("arpc")
        return HostAnswer(
            status=AnswerStatus(data["status"]),
            response_code=data["response_code"],
            approval_code=data.get("approval_code"),
            host_reference=data.get("host_reference"),
            arpc=bytes.fromhex(arpc) if arpc is not None else None,
        )
    return SettlementAnswer(
        in_balance=bool(data["in_balance"]),
        host_reference=data.get("host_reference"),
        differences=tuple(dict(d) for d in data.get("differences", [])),
    )


def _reject(reason: str) -> HostRejected:
    return HostRejected(f"malformed message: {reason}")


def _check_common(txn_id: str, key: str, terminal_id: str, amount: int, currency: int) -> None:
    if not txn_id:
        raise _reject("empty txn_id")
    if not key:
        raise _reject("empty idempotency_key")
    if not terminal_id:
        raise _reject("empty terminal_id")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= _MAX_AMOUNT:
        raise _reject(f"amount {amount!r} out of range")
    if isinstance(currency, bool) or not isinstance(currency, int) or not 0 < currency <= 999:
        raise _reject(f"currency {currency!r} out of range")


# ----------------------------------------------------------------------------- the host


class MemoryHost:
    """An in-process acquiring host implementing :class:`~terminal.host.HostLink`.

    See the module docstring for the decision rules, idempotency, faults and
    persistence. All public methods are thread-safe.
    """

    def __init__(self, state_file: Path | None = None) -> None:
        self._lock = threading.RLock()
        self._state_file = Path(state_file) if state_file is not None else None
        self._file_signature: tuple[int, int, int] | None = None
        self.faults = HostFaults()
        self._calls: list[Call] = []
        self._reset_state()
        if self._state_file is not None:
            self._load_if_changed()

    # ------------------------------------------------------------------ HostLink

    def authorise(self, request: AuthorisationRequest) -> HostAnswer:
        """Authorise a sale or refund online (see the decision table)."""

        def validate() -> None:
            _check_common(
                request.txn_id, request.idempotency_key, request.terminal_id, request.amount, request.currency
            )
            if request.kind not in _AUTH_KINDS:
                raise _reject(f"unknown authorisation kind {request.kind!r}")
            if not request.pan_token:
                raise _reject("empty pan_token")

        def process() -> tuple[HostAnswer, str]:
            code = self._decide(request.amount, request.pan_token)
            answer = self._answer(code, with_approval_code=True)
            self._add_record(
                method="authorise",
                txn_id=request.txn_id,
                idempotency_key=request.idempotency_key,
                kind=request.kind,
                terminal_id=request.terminal_id,
                amount=request.amount,
                currency=request.currency,
                pan_token=request.pan_token,
                response_code=code,
                approved=answer.approved,
                original_txn_id=request.original_txn_id,
            )
            return answer, _outcome(answer)

        return self._host_answer(
            self._handle(
                "authorise",
                request.txn_id,
                request.terminal_id,
                request.idempotency_key,
                request,
                validate,
                process,
            )
        )

    def advise(self, advice: Advice) -> HostAnswer:
        """Accept an advice from the SAF queue; a deferred authorisation is decided now."""

        def validate() -> None:
            _check_common(advice.txn_id, advice.idempotency_key, advice.terminal_id, advice.amount, advice.currency)
            if advice.kind not in _ADVICE_KINDS:
                raise _reject(f"unknown advice kind {advice.kind!r}")
            if not advice.pan_token:
                raise _reject("empty pan_token")

        def process() -> tuple[HostAnswer, str]:
            if advice.kind == "deferred_authorisation":
                code = self._decide(advice.amount, advice.pan_token)
                answer = self._answer(code, with_approval_code=True)
            else:  # approved by the card: the host records it
                code = "00"
                answer = self._answer(code, with_approval_code=False)
            self._add_record(
                method="advise",
                txn_id=advice.txn_id,
                idempotency_key=advice.idempotency_key,
                kind=advice.kind,
                terminal_id=advice.terminal_id,
                amount=advice.amount,
                currency=advice.currency,
                pan_token=advice.pan_token,
                response_code=code,
                approved=answer.approved,
            )
            return answer, _outcome(answer)

        return self._host_answer(
            self._handle("advise", advice.txn_id, advice.terminal_id, advice.idempotency_key, advice, validate, process)
        )

    def reverse(self, reversal: Reversal) -> HostAnswer:
        """Undo the approved authorisations/advices with the reversal's ``txn_id`` (always ``00``)."""

        def validate() -> None:
            _check_common(
                reversal.txn_id,
                reversal.idempotency_key,
                reversal.terminal_id,
                reversal.amount,
                reversal.currency,
            )
            if reversal.reason not in _REVERSAL_REASONS:
                raise _reject(f"unknown reversal reason {reversal.reason!r}")

        def process() -> tuple[HostAnswer, str]:
            undone = 0
            for i, rec in enumerate(self._records):
                if (
                    rec.method in ("authorise", "advise")
                    and rec.txn_id == reversal.txn_id
                    and rec.terminal_id == reversal.terminal_id
                    and rec.approved
                    and not rec.reversed
                ):
                    self._records[i] = dataclasses.replace(rec, reversed=True)
                    undone += 1
            answer = self._answer("00", with_approval_code=False)
            self._add_record(
                method="reverse",
                txn_id=reversal.txn_id,
                idempotency_key=reversal.idempotency_key,
                kind=reversal.reason,
                terminal_id=reversal.terminal_id,
                amount=reversal.amount,
                currency=reversal.currency,
                pan_token="",
                response_code="00",
                approved=True,
                note=f"reversed {undone}" if undone else "nothing to reverse",
            )
            return answer, "reversed" if undone else "nothing_to_reverse"

        return self._host_answer(
            self._handle(
                "reverse",
                reversal.txn_id,
                reversal.terminal_id,
                reversal.idempotency_key,
                reversal,
                validate,
                process,
            )
        )

    def close_batch(self, totals: BatchTotals) -> SettlementAnswer:
        """Reconcile the terminal's totals with the open host batch, then open a new one."""

        def validate() -> None:
            if not totals.terminal_id:
                raise _reject("empty terminal_id")
            if isinstance(totals.batch_id, bool) or not isinstance(totals.batch_id, int):
                raise _reject(f"batch_id {totals.batch_id!r} is not an integer")
            for line in totals.lines:
                if line.kind not in _TOTALS_KINDS:
                    raise _reject(f"unknown totals kind {line.kind!r}")
                if not 0 < line.currency <= 999:
                    raise _reject(f"currency {line.currency!r} out of range")
                if line.count < 0 or line.amount < 0:
                    raise _reject("negative count or amount in totals")

        def process() -> tuple[SettlementAnswer, str]:
            lines = ((line.currency, line.kind, line.count, line.amount) for line in totals.lines)
            differences = reconcile(lines, self._open_totals(totals.terminal_id))
            self._seq += 1
            answer = SettlementAnswer(
                in_balance=not differences,
                host_reference=f"MS{self._seq:010d}",
                differences=tuple(differences),
            )
            self._batches[totals.terminal_id] = self._batch_no(totals.terminal_id) + 1
            return answer, "in_balance" if answer.in_balance else "out_of_balance"

        answer = self._handle(
            "close_batch",
            f"batch-{totals.batch_id}",
            totals.terminal_id,
            f"batch-close:{totals.batch_id}",
            totals,
            validate,
            process,
        )
        if not isinstance(answer, SettlementAnswer):  # pragma: no cover - keys are namespaced per method
            raise HostRejected("idempotency key reused with a different body")
        return answer

    # ------------------------------------------------------------------ steering and inspection

    def block(self, pan_token: str, code: str = BLOCKED_CARD_CODE) -> None:
        """Decline authorisations for this card with ``code`` (``"62"`` restricted, ``"43"`` stolen...)."""
        with self._lock:
            self._load_if_changed()
            self._blocked[pan_token] = code
            self._save()

    def unblock(self, pan_token: str) -> None:
        """Stop declining this card."""
        with self._lock:
            self._load_if_changed()
            self._blocked.pop(pan_token, None)
            self._save()

    @property
    def records(self) -> tuple[HostRecord, ...]:
        """Every processed request, oldest first (replays and faulted calls add none)."""
        with self._lock:
            self._load_if_changed()
            return tuple(self._records)

    @property
    def calls(self) -> tuple[Call, ...]:
        """The log of every call made to this instance, faulted and replayed ones included."""
        with self._lock:
            return tuple(self._calls)

    def records_for(self, txn_id: str) -> tuple[HostRecord, ...]:
        """The records with this ``txn_id`` (authorisations, advices and reversals)."""
        return tuple(r for r in self.records if r.txn_id == txn_id)

    def accepted_count(self, txn_id: str) -> int:
        """How many times an authorisation/advice with this ``txn_id`` was approved (reversed or not)."""
        return sum(1 for r in self.records_for(txn_id) if r.method != "reverse" and r.approved)

    def processed_count(self, txn_id: str) -> int:
        """How many authorisations/advices with this ``txn_id`` were processed (approved or declined)."""
        return sum(1 for r in self.records_for(txn_id) if r.method != "reverse")

    def is_reversed(self, txn_id: str) -> bool:
        """Whether an authorisation/advice with this ``txn_id`` was approved and then reversed."""
        return any(r.reversed for r in self.records_for(txn_id))

    def duplicates(self) -> dict[str, int]:
        """The ``txn_id`` of every transaction accepted more than once, with its count."""
        counts: dict[str, int] = {}
        for r in self.records:
            if r.method != "reverse" and r.approved:
                counts[r.txn_id] = counts.get(r.txn_id, 0) + 1
        return {txn: n for txn, n in counts.items() if n > 1}

    def batch_number(self, terminal_id: str) -> int:
        """The number of the terminal's open host batch (1 before the first close)."""
        with self._lock:
            self._load_if_changed()
            return self._batch_no(terminal_id)

    def open_totals(self, terminal_id: str) -> dict[tuple[int, str], tuple[int, int]]:
        """The host's totals of the open batch: (currency, kind) → (count, amount)."""
        with self._lock:
            self._load_if_changed()
            return self._open_totals(terminal_id)

    # ------------------------------------------------------------------ internals

    def _reset_state(self) -> None:
        self._records: list[HostRecord] = []
        self._idempotency: dict[str, _Cached] = {}
        self._batches: dict[str, int] = {}
        self._blocked: dict[str, str] = {}
        self._seq = 0

    def _handle(
        self,
        method: str,
        txn_id: str,
        terminal_id: str,
        key: str,
        body: Any,
        validate: Callable[[], None],
        process: Callable[[], tuple[HostAnswer | SettlementAnswer, str]],
    ) -> HostAnswer | SettlementAnswer:
        with self._lock:
            faults = self.faults
            if faults._is_down(method):
                self._log(method, txn_id, "unreachable")
                raise HostUnreachable(f"memory host is down ({method})")
            if faults._take("fail_before_processing", method):
                self._log(method, txn_id, "no_answer_before_processing")
                raise HostNoAnswer(f"no answer from memory host ({method}, not processed)")
            if faults._take("reject_next", method):
                self._log(method, txn_id, "rejected")
                raise HostRejected(f"malformed message ({method}, injected fault)")
            self._load_if_changed()
            try:
                validate()
            except HostRejected:
                self._log(method, txn_id, "rejected")
                raise
            cache_key = json.dumps([terminal_id, key])
            canonical = _canonical(method, body)
            cached = self._idempotency.get(cache_key)
            if cached is not None:
                if cached.body != canonical:
                    self._log(method, txn_id, "conflict")
                    raise HostRejected("idempotency key reused with a different body")
                answer = cached.answer
                outcome = "replay"
            else:
                answer, outcome = process()
                self._idempotency[cache_key] = _Cached(method, canonical, answer)
                self._save()
            if faults._take("no_answer", method):
                self._log(method, txn_id, f"{outcome}+no_answer")
                raise HostNoAnswer(f"no answer from memory host ({method}, processed)")
            self._log(method, txn_id, outcome)
            return answer

    @staticmethod
    def _host_answer(answer: HostAnswer | SettlementAnswer) -> HostAnswer:
        if not isinstance(answer, HostAnswer):  # pragma: no cover - keys are namespaced per method
            raise HostRejected("idempotency key reused with a different body")
        return answer

    def _batch_no(self, terminal_id: str) -> int:
        return self._batches.get(terminal_id, 1)

    def _log(self, method: str, txn_id: str, outcome: str) -> None:
        self._calls.append(Call(method, txn_id, outcome))

    def _decide(self, amount: int, pan_token: str) -> str:
        blocked = self._blocked.get(pan_token)
        if blocked is not None:
            return blocked
        return MAGIC_AMOUNT_CODES.get(amount % 100, "00")

    def _answer(self, code: str, *, with_approval_code: bool) -> HostAnswer:
        self._seq += 1
        reference = f"MH{self._seq:010d}"
        if code != "00":
            return HostAnswer(AnswerStatus.DECLINED, code, host_reference=reference)
        approval = None
        if with_approval_code:
            digest = hashlib.sha256(f"{reference}".encode()).digest()
            approval = base64.b32encode(digest).decode("ascii")[:6]
        return HostAnswer(AnswerStatus.APPROVED, "00", approval_code=approval, host_reference=reference)

    def _add_record(self, **fields: Any) -> None:
        self._records.append(HostRecord(seq=self._seq, batch=self._batch_no(fields["terminal_id"]), **fields))

    def _open_totals(self, terminal_id: str) -> dict[tuple[int, str], tuple[int, int]]:
        batch = self._batch_no(terminal_id)
        out: dict[tuple[int, str], tuple[int, int]] = {}
        for rec in self._records:
            kind = rec.settlement_kind
            if rec.terminal_id != terminal_id or rec.batch != batch or kind is None:
                continue
            if not rec.approved or rec.reversed:
                continue
            count, amount = out.get((rec.currency, kind), (0, 0))
            out[(rec.currency, kind)] = (count + 1, amount + rec.amount)
        return out

    # ------------------------------------------------------------------ persistence

    def _signature(self) -> tuple[int, int, int] | None:
        assert self._state_file is not None
        try:
            st = self._state_file.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load_if_changed(self) -> None:
        if self._state_file is None:
            return
        signature = self._signature()
        if signature is None or signature == self._file_signature:
            return
        try:
            data = json.loads(self._state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read memory host state {self._state_file}: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
            raise ValueError(f"memory host state {self._state_file} has an unknown format")
        self._reset_state()
        self._records = [HostRecord(**r) for r in data["records"]]
        self._idempotency = {
            k: _Cached(v["method"], v["body"], _decode_answer(v["answer"])) for k, v in data["idempotency"].items()
        }
        self._batches = {str(k): int(v) for k, v in data["batches"].items()}
        self._blocked = {str(k): str(v) for k, v in data["blocked"].items()}
        self._seq = int(data["seq"])
        self._file_signature = signature

    def _save(self) -> None:
        if self._state_file is None:
            return
        data = {
            "version": _STATE_VERSION,
            "seq": self._seq,
            "records": [dataclasses.asdict(r) for r in self._records],
            "idempotency": {
                k: {"method": v.method, "body": v.body, "answer": _encode_answer(v.answer)}
                for k, v in self._idempotency.items()
            },
            "batches": self._batches,
            "blocked": self._blocked,
        }
        _atomic_write(self._state_file, json.dumps(data, indent=1, sort_keys=True))
        self._file_signature = self._signature()


def _outcome(answer: HostAnswer) -> str:
    return "approved" if answer.approved else f"declined:{answer.response_code}"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode("utf-8"))
