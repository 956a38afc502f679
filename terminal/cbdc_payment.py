"""The terminal's digital-currency kernel: a hard-wallet payment, from the tap to the journal (CBDC-SPEC).

Entry Point (:func:`emv.entry_point.process`) selects the wallet beside the
EMV applications (its PPSE entry names the domestic kernel ``81 01 56``) and
activates :meth:`WalletSale.kernel`, which this module gives it for one sale.
The kernel runs the pure protocol (:func:`cbdc.kernel.pay`) with what the
terminal holds: the trust roots, block lists and limits of the parameters,
the offline state of :mod:`terminal.cbdc_state`, a fresh challenge, the
merchant's and terminal's ids, and the write-ahead: ``before_payment`` writes
the intent to the journal (``wallet_intent``) durably before the PAY command
goes to the wallet.

What the wallet's answer becomes is decided by :class:`terminal.payments.Payments`
through :func:`complete`:

- approved: the record (in the envelope of CBDC-SPEC section 10, encrypted
  like card data) is queued as a ``cbdc_payment`` advice, and the wallet's
  counter noted, in one commit; only then is the sale shown approved
  (offline: no host needed);
- refused before PAY (nothing debited): declined, with the refusal's name and
  its words (:data:`terminal.response_codes.WALLET_REFUSALS`);
- refused after PAY: declined, the record kept and queued as ``cbdc_refused``
  (evidence for the operator, who credits the wallet back);
- torn (the wallet left before its record came back): "present the same wallet
  again", and the re-tap of the same sale runs :func:`cbdc.kernel.resume`; a
  customer who never presents it again (time-out, cancel) ends NOT PAID with a
  ``cbdc_torn`` notice queued.

The states and what each change queues are rows of :mod:`terminal.lifecycle`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cbdc import tlv as cbdc_tlv
from cbdc.checks import TrustStore
from cbdc.kernel import Intent, OfflineState, WalletOutcome, pay, resume
from cbdc.protocol import AID, PaymentRecord, PaymentRequest, Tag
from emv.apdu import ApduTransport
from emv.config import Combination, TerminalConfig
from emv.outcome import Message, Outcome, ReaderStatus, TransactionResult, UiMessage
from emv.transaction import TransactionData
from terminal.cbdc_state import CBDC_SCHEME, note_counter_seen, offline_state
from terminal.core import Core
from terminal.lifecycle import Event
from terminal.response_codes import refusal_words
from terminal.results import PaymentResult
from terminal.store import CardRecord, NewPayment, StorageError

__all__ = [
    "WALLET_AID",
    "WALLET_KERNEL",
    "WalletSale",
    "complete",
    "envelope",
    "mask_wallet",
    "not_paid",
    "trust_of",
    "wallet_combination",
]

#: The domestic kernel identifier of the wallet's PPSE entry (9F2A 81 01 56), as Entry Point reads it.
WALLET_KERNEL = 0x810156
WALLET_AID = AID
WALLET_LABEL = "DIGITAL CNY"
PRESENT_SAME_WALLET = "present the same wallet again"


def wallet_combination() -> Combination:
    """The combination (AID + kernel) of the hard wallet, for Entry Point's candidate list."""
    return Combination(aid=WALLET_AID, kernel_id=WALLET_KERNEL, label=WALLET_LABEL)


def trust_of(core: Core) -> TrustStore | None:
    """The digital-currency trust of the parameters in force (roots, block lists, limits); None without them."""
    trust = getattr(core.settings, "cbdc", None)
    return trust if isinstance(trust, TrustStore) else None


def mask_wallet(wallet_id: bytes | str) -> str:
    """A wallet id as receipts and results show it: the first 4 and last 4 of its 16 hex digits.

    >>> mask_wallet(bytes.fromhex("D1A0000000000001"))
    'D1A0********0001'
    """
    text = wallet_id.hex().upper() if isinstance(wallet_id, bytes) else wallet_id.upper()
    return f"{text[:4]}{'*' * (len(text) - 8)}{text[-4:]}" if len(text) > 8 else "*" * len(text)


def envelope(intent: Intent, record: PaymentRecord | None) -> bytes:
    """The advice's data for the host (CBDC-SPEC section 10): ``E6 [E4][E2 wallet][E2 operator][E3][DF41][DF42][DF43]``.

    The record is absent from a "torn, not paid" notice.
    """
    body = b"".join(
        (
            record.raw if record is not None else b"",
            intent.wallet_certificate,
            intent.operator_certificate,
            intent.request.encode(),
            cbdc_tlv.encode(Tag.WALLET_ID, intent.wallet_id),
            cbdc_tlv.encode(Tag.COUNTER, intent.expected_counter.to_bytes(4, "big")),
            cbdc_tlv.encode(Tag.PREVIOUS_HASH, intent.previous_hash),
        )
    )
    return cbdc_tlv.encode(Tag.ENVELOPE, body)


class _CountersByHex(Mapping[str, int]):
    """The last counters seen (the store's, keyed by 8-byte ids) as ``cbdc`` asks for them: by 16 hex digits."""

    def __init__(self, seen: Mapping[bytes, int]) -> None:
        self._seen = seen

    def __getitem__(self, wallet_hex: str) -> int:
        try:
            return self._seen[bytes.fromhex(wallet_hex)]
        except ValueError:
            raise KeyError(wallet_hex) from None

    def __iter__(self) -> Iterator[str]:
        return (key.hex().upper() for key in self._seen)

    def __len__(self) -> int:
        return len(self._seen)


def _kind(outcome: WalletOutcome) -> str:
    return str(getattr(outcome.kind, "value", outcome.kind))


def _refusal(outcome: WalletOutcome) -> str | None:
    refusal = outcome.refusal
    return None if refusal is None else str(getattr(refusal, "value", refusal))


@dataclass
class WalletSale:
    """One sale's digital-currency kernel: made per sale, activated by Entry Point if a wallet is selected.

    ``new_id`` gives the transaction id (and its moment) when the intent is
    written.  After Entry Point returns, :func:`complete` turns what happened
    into the journal's outcome.
    """

    core: Core
    amount: int
    currency: int
    trust: TrustStore
    offline_behavior: str
    new_id: Callable[[], tuple[str, str]]
    request_key: str | None = None
    reference: str | None = None
    ran: bool = False  # Entry Point activated the wallet's kernel
    txn_id: str | None = None  # set once the intent is journalled
    intent: Intent | None = None
    outcome: WalletOutcome | None = None
    error: BaseException | None = None  # the terminal's own fault (writing the intent), raised after Entry Point
    torn: bool = False  # the last tap ended torn: the same wallet is asked for again
    refused_before: str | None = None  # a refusal of the terminal's own before anything was read

    # -- what read_card asks ---------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """The intent is journalled and no outcome is: a torn payment waiting for the same wallet."""
        return self.txn_id is not None and self.torn

    def restrict(self, config: TerminalConfig) -> TerminalConfig:
        """While torn, only the wallet may answer: the same sale must not be paid by a card instead."""
        if not self.pending:
            return config
        from dataclasses import replace

        return replace(config, combinations=tuple(c for c in config.combinations if c.kernel_id == WALLET_KERNEL))

    def ask_again(self, result: TransactionResult) -> bool:
        """Whether the reading ends in 'present the same wallet again' (torn, and this tap did not finish it)."""
        return self.pending and result.outcome is not Outcome.SELECT_NEXT

    @property
    def prompt(self) -> str:
        return PRESENT_SAME_WALLET

    @property
    def kernels(self) -> dict[int, Callable[[ApduTransport, bytes, TransactionData], TransactionResult]]:
        return {WALLET_KERNEL: self.kernel}

    # -- the kernel Entry Point activates -----------------------------------------------------------

    def _state(self, now: datetime) -> OfflineState:
        known = offline_state(self.core.store, self.currency, now)
        return OfflineState(
            last_counters=_CountersByHex(known.last_counters),
            count_since_sync=known.count_since_sync,
            total_since_sync=known.total_since_sync,
            oldest_unsent_age_s=known.oldest_unsent_age_s,
        )

    def kernel(self, transport: ApduTransport, fci: bytes, txn: TransactionData) -> TransactionResult:
        """The digital-currency kernel (Entry Point's caller-supplied kernel ``0x810156``)."""
        self.ran = True
        core = self.core
        now = core.clock.now()
        if self.offline_behavior == "require_online" and self.intent is None:
            self.refused_before = "online_required"
            return TransactionResult(
                Outcome.DECLINED,
                messages=[UiMessage(Message.NOT_AUTHORISED, ReaderStatus.CARD_READ_SUCCESSFULLY)],
                error="a digital-currency wallet pays offline only; this payment requires the host",
            )
        state = self._state(now)
        if self.intent is None:
            config = core.config
            request = PaymentRequest(
                amount=self.amount,
                currency=self.currency,
                merchant_id=config.merchant_id.strip(),
                terminal_id=config.terminal_id,
                challenge=secrets.token_bytes(16),
                date_time=now,
            )
            outcome = pay(
                transport, request, self.trust, state, on=now, before_payment=self._before_payment, selected=fci
            )
        else:
            outcome = resume(transport, self.intent, self.trust, state, selected=fci)
        if self.error is not None:
            raise self.error  # Entry Point ends the application; Payments raises it again
        return self._result(outcome)

    def _before_payment(self, intent: Intent) -> None:
        """The write-ahead: the intent, and the envelope of a torn notice, durable before PAY is sent."""
        core = self.core
        txn_id, at = self.new_id()
        wallet = intent.wallet_id.hex().upper()
        try:
            core.record(
                txn_id,
                Event.WALLET_INTENT,
                {"amount": self.amount, "currency": self.currency, "intent": _journalled(intent)},
                at=at,
                new=NewPayment(
                    txn_id,
                    "sale",
                    self.amount,
                    self.currency,
                    CBDC_SCHEME,
                    self.offline_behavior,
                    request_key=self.request_key,
                    reference=self.reference,
                ),
                card=CardRecord(mask_wallet(wallet), wallet, None),
                details=_wallet_details(intent),
                sensitive=core.keystore.encrypt(envelope(intent, None), b"sad:" + txn_id.encode()),
            )
        except BaseException as exc:
            self.error = exc
            raise
        self.txn_id, self.intent = txn_id, intent

    def _result(self, outcome: WalletOutcome) -> TransactionResult:
        """What Entry Point hands back: final, or Try Again ("present the same wallet again") when torn."""
        core = self.core
        kind = _kind(outcome)
        self.outcome = outcome
        if outcome.intent is not None and self.intent is None:
            self.intent = outcome.intent
        # CBDC-SPEC section 7: a garbled answer after the intent (nothing parses as a record) is torn too:
        # the wallet may have debited, and the re-tap fetches its record rather than guess
        garbled = kind == "refused" and outcome.record is None and _refusal(outcome) == "malformed"
        if (kind == "torn" or garbled) and self.txn_id is not None:
            if not self.torn:
                core.record(self.txn_id, Event.WALLET_TORN, {"torn": True})
            self.torn = True
            return TransactionResult(
                Outcome.TRY_AGAIN,
                messages=[UiMessage(Message.PRESENT_CARD_AGAIN, ReaderStatus.READY_TO_READ)],
                error=f"the wallet left before its record came back: {PRESENT_SAME_WALLET}",
            )
        if kind == "no_wallet":  # Book A: the card stopped answering: present it again (the same one, when torn)
            again = PRESENT_SAME_WALLET if self.txn_id is not None else "present it again"
            return TransactionResult(
                Outcome.TRY_AGAIN,
                messages=[UiMessage(Message.PRESENT_CARD_AGAIN, ReaderStatus.READY_TO_READ)],
                error=f"the wallet did not answer: {again}",
            )
        if kind == "other_wallet":
            return TransactionResult(
                Outcome.TRY_AGAIN,
                messages=[UiMessage(Message.PRESENT_CARD_AGAIN, ReaderStatus.READY_TO_READ)],
                error=f"another wallet was presented: {PRESENT_SAME_WALLET}",
            )
        self.torn = False
        if kind == "approved":
            return TransactionResult(
                Outcome.APPROVED,
                messages=[UiMessage(Message.APPROVED, ReaderStatus.CARD_READ_SUCCESSFULLY)],
            )
        if kind in ("refused", "wallet_declined", "not_debited"):
            return TransactionResult(
                Outcome.DECLINED,
                messages=[UiMessage(Message.NOT_AUTHORISED, ReaderStatus.CARD_READ_SUCCESSFULLY)],
                error=refusal_words(_refusal(outcome)),
            )
        return TransactionResult(
            Outcome.END_APPLICATION,
            messages=[UiMessage(Message.PROCESSING_ERROR, ReaderStatus.PROCESSING_ERROR)],
            error="the wallet did not answer as a wallet",
        )


def _journalled(intent: Intent) -> dict[str, Any]:
    """The intent as the journal shows it: its certificates are in the envelope (encrypted), not repeated here."""
    return {k: v for k, v in intent.to_dict().items() if k not in ("wallet_certificate", "operator_certificate")}


def _wallet_details(intent: Intent) -> dict[str, Any]:
    return {
        "kernel": "cbdc",
        "aid": WALLET_AID.hex().upper(),
        "application_label": WALLET_LABEL,
        "wallet_id": mask_wallet(intent.wallet_id),
        "counter": intent.expected_counter,
        "offline": True,
    }


def _record_details(record: PaymentRecord) -> dict[str, Any]:
    return {"counter": record.counter, "record_hash": record.hash.hex().upper()[:16]}


def _payment_result(core: Core, txn_id: str, message: str, card: TransactionResult | None) -> PaymentResult:
    row = core.store.get(txn_id)
    if row is None:  # pragma: no cover - recorded just before
        raise StorageError(f"transaction {txn_id} vanished")
    return PaymentResult.from_row(row, message, card, offline=True, kernel="cbdc")


def not_paid(sale: WalletSale, why: str) -> PaymentResult:
    """A torn payment whose wallet was not presented again: NOT PAID, and a notice queued for the operator."""
    core = sale.core
    assert sale.txn_id is not None
    core.record(sale.txn_id, Event.WALLET_NOT_PAID, {"error": why}, details={"torn": True})
    text = (
        f"not paid: {why}; if the wallet was debited, its operator credits it back when the wallet syncs "
        "(a notice is queued)"
    )
    return _payment_result(core, sale.txn_id, text, None)


def complete(sale: WalletSale, result: TransactionResult) -> PaymentResult:
    """Journal what the wallet's tap came to (Entry Point has returned), and the sale's result."""
    core = sale.core
    if sale.error is not None:
        raise sale.error
    outcome = sale.outcome
    txn_id = sale.txn_id
    if txn_id is None:
        # nothing was journalled: refused before the intent (the terminal's checks), or no wallet answered
        txn_id, at = sale.new_id()
        new = NewPayment(
            txn_id, "sale", sale.amount, sale.currency, CBDC_SCHEME, sale.offline_behavior,
            request_key=sale.request_key, reference=sale.reference,
        )  # fmt: skip
        wallet = None if outcome is None else outcome.wallet_id
        card = CardRecord(mask_wallet(wallet), wallet.hex().upper(), None) if wallet else None
        details: dict[str, Any] = {"kernel": "cbdc", "aid": WALLET_AID.hex().upper(), "application_label": WALLET_LABEL}
        if wallet:
            details["wallet_id"] = mask_wallet(wallet)
        refusal = sale.refused_before or (None if outcome is None else _refusal(outcome))
        base = {"amount": sale.amount, "currency": sale.currency, "card_outcome": result.outcome.value}
        if refusal is not None or result.outcome is Outcome.DECLINED:
            details["refusal"] = refusal
            core.record(txn_id, Event.WALLET_DECLINED, base | {"refusal": refusal}, at=at, new=new, card=card,
                        details=details)  # fmt: skip
            words = result.error if refusal == "online_required" else refusal_words(refusal)
            return _payment_result(core, txn_id, f"declined: {words}", result)
        core.record(txn_id, Event.NOT_COMPLETED, base | {"error": result.error}, at=at, new=new, card=card,
                    details=details)  # fmt: skip
        why = "the wallet stopped answering" if result.outcome is Outcome.TRY_AGAIN else result.error
        return _payment_result(core, txn_id, f"not completed: {why or 'the wallet did not answer'}; nothing was paid",
                               result)  # fmt: skip
    if sale.pending or outcome is None:
        return not_paid(sale, "the wallet was not presented again")
    kind = _kind(outcome)
    refusal = _refusal(outcome)
    intent = sale.intent
    assert intent is not None
    record = outcome.record
    if kind == "approved" and record is not None:
        sensitive = core.keystore.encrypt(envelope(intent, record), b"sad:" + txn_id.encode())
        with core.atomic():  # the record, its advice and the wallet's counter: all or nothing
            core.record(
                txn_id, Event.WALLET_APPROVED, {"counter": record.counter, "record_hash": record.hash.hex()},
                details=_record_details(record), sensitive=sensitive,
            )  # fmt: skip
            note_counter_seen(core.store, intent.wallet_id, record.counter, core.clock.now())
        return _payment_result(core, txn_id, "approved (offline)", result)
    if kind == "refused" and record is not None:
        sensitive = core.keystore.encrypt(envelope(intent, record), b"sad:" + txn_id.encode())
        core.record(
            txn_id, Event.WALLET_REFUSED, {"refusal": refusal, "record_hash": record.hash.hex()},
            details={"refusal": refusal, "record_hash": record.hash.hex().upper()[:16]}, sensitive=sensitive,
        )  # fmt: skip
        return _payment_result(
            core, txn_id, f"declined: {refusal_words(refusal)}; the record is kept and sent to the operator", result
        )
    if kind in ("wallet_declined", "not_debited"):
        # the wallet refused before it debited (its status word), or it did not debit
        core.record(txn_id, Event.WALLET_DECLINED, {"refusal": refusal}, details={"refusal": refusal})
        return _payment_result(core, txn_id, f"declined: {refusal_words(refusal)}", result)
    # the intent is written and no record came: the wallet may have debited
    return not_paid(sale, result.error or "the wallet's answer was not a record")
