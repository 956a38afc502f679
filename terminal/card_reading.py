"""Reading the card for a payment, and what of it is kept.

:func:`read_card` waits for the card, runs Entry Point and a kernel, and asks
for the card again when it was taken away too early (EMV Book A "present
card again"), up to ``TerminalSettings.card_retries`` times within the same
payment.  While it waits, listeners hear a ``card_prompt`` event with the
amount and the prompt, so a screen (or the command line, on standard error)
can show them; :meth:`terminal.facade.Terminal.cancel` stops the wait.  The
EMV Book A messages come as ``ui_message`` events as they happen: "Present
card" (one light), "Processing" once a card is in the field (two), then the
kernel's own at the end of the reading (four lights for a card read).

:class:`CardData` is what the journal keeps of a card: the PAN masked, a
keyed token, the rest encrypted; the data objects the host needs, encrypted
until their authorisation completes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from emv import tlv
from emv.apdu import ApduTransport
from emv.config import TerminalConfig
from emv.contact import card_interface
from emv.outcome import Message, Outcome, ReaderStatus, Restart, TransactionResult, UiMessage
from emv.pan import mask_pan, pan_of
from emv.transaction import TransactionData
from terminal.contact_reading import HeldCard, read_contact
from terminal.core import Core
from terminal.emv_session import TapInputs, build_transaction, run_tap
from terminal.keystore import Keystore
from terminal.money import currency, format_amount
from terminal.offline import PaymentRefused
from terminal.ports import (
    CancelToken,
    CardReader,
    CollisionDetected,
    DeviceError,
    DeviceGone,
    NoCardError,
    WaitCancelled,
)
from terminal.store import CardRecord

__all__ = ["COMPLETION_TAGS", "HOST_DATA_TAGS", "SCHEMES", "CardRequest", "ExtraKernels", "card_details",
           "card_record", "host_data", "read_card", "scheme_of"]  # fmt: skip

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
# With an inserted card's second GENERATE AC (a deferred authorisation it approved, unable to go online),
# the advice also carries the authorisation response code it was given (8A: Y3) and the final TSI.
COMPLETION_TAGS = (0x8A, 0x9B)

SCHEMES = {
    "A000000003": "visa",
    "A000000004": "mastercard",
    "A000000025": "amex",
    "A000000065": "jcb",
    "A000000152": "discover",
    "A000000333": "unionpay",
}

PRESENT_CARD = "present card"
PRESENT_CARD_AGAIN = "present card again"
INSERT_CARD = "insert card"


class ExtraKernels(Protocol):
    """Kernels a payment brings beside the EMV ones (a digital-currency wallet's: :mod:`terminal.cbdc_payment`).

    ``kernels``: kernel id -> callable for Entry Point.  ``restrict``: the
    configuration for the next tap (a torn wallet payment admits only the
    same wallet).  ``ask_again``: this tap's result needs the same payment
    presented again, whatever its outcome; ``prompt``: what is asked then.
    """

    @property
    def kernels(self) -> Mapping[int, Callable[[ApduTransport, bytes, TransactionData], TransactionResult]]: ...

    def restrict(self, config: TerminalConfig) -> TerminalConfig: ...

    def ask_again(self, result: TransactionResult) -> bool: ...

    @property
    def prompt(self) -> str: ...


def scheme_of(aid: bytes | None) -> str:
    if not aid:
        return "unknown"
    return SCHEMES.get(aid[:5].hex().upper(), "other")


@dataclass(frozen=True)
class CardRequest:
    """What the card is asked for: the amount and its currency, the kind of transaction."""

    amount: int
    currency: int
    exponent: int
    transaction_type: int  # 0x00 purchase, 0x20 refund
    force_online: bool  # no room to store an offline approval: ask for an online cryptogram


#: Book B 3.2.1: two cards in the field: "present one card only", and the reader polls again, every
#: COLLISION_PAUSE seconds, COLLISION_POLLS times at most before the payment is refused (one_card_only).
COLLISION_PAUSE = 0.5
COLLISION_POLLS = 6


def _poll(reader: CardReader, core: Core, token: CancelToken) -> Any:
    """Protocol activation (Book B 3.2.1): poll for one card.  A collision (two cards: :func:`_wait`'s
    "one_card_only") shows "present one card only" (19, processing error) and polls again, up to
    :data:`COLLISION_POLLS` times; a collision that stays refuses the payment."""
    collisions = 0
    while True:
        try:
            return _wait(reader, core, token)
        except PaymentRefused as exc:
            if exc.reason != "one_card_only" or collisions >= COLLISION_POLLS:
                raise
        collisions += 1
        if core.listeners:
            ui = UiMessage(Message.PRESENT_ONE_CARD_ONLY, ReaderStatus.PROCESSING_ERROR)
            core.emit("ui_message", None, **ui.to_json())
        if token.wait(COLLISION_PAUSE):
            raise PaymentRefused("cancelled", "cancelled: no card was read")


def _show_restart(core: Core, restart: Restart | None) -> None:
    """Book B 3.2.1.2: on a restart, the outcome's UI Request on Restart, when it is not the "present card
    again" (21, ready to read) that :func:`_prompt` has shown."""
    ui = restart.ui_request if restart is not None else None
    if ui is None or not core.listeners or ui == UiMessage(Message.PRESENT_CARD_AGAIN, ReaderStatus.READY_TO_READ):
        return
    core.emit("ui_message", None, **ui.to_json())


def _prompt(core: Core, request: CardRequest, text: str, attempt: int) -> None:
    if not core.listeners:
        return
    try:
        shown = format_amount(request.amount, currency(request.currency))
    except ValueError:
        shown = f"{request.amount} (currency {request.currency:03d})"
    core.emit("card_prompt", None, prompt=text, amount=shown, attempt=attempt)
    if text == INSERT_CARD:
        core.emit("ui_message", None, **UiMessage(Message.INSERT_CARD, ReaderStatus.READY_TO_READ).to_json())
        return
    message = Message.PRESENT_CARD_AGAIN if attempt else Message.PRESENT_CARD
    core.emit("ui_message", None, **UiMessage(message, ReaderStatus.READY_TO_READ).to_json())


def _wait(reader: CardReader, core: Core, token: CancelToken, inserting: bool = False) -> Any:
    try:
        if inserting:
            return reader.wait_for_insert(  # type: ignore[attr-defined]
                timeout=core.settings.card_timeout_seconds, cancel=token
            )
        return reader.wait_for_card(timeout=core.settings.card_timeout_seconds, cancel=token)
    except WaitCancelled:
        raise PaymentRefused("cancelled", "cancelled: no card was read") from None
    except NoCardError:
        raise PaymentRefused("no_card", "no card was presented in time") from None
    except CollisionDetected:
        raise PaymentRefused("one_card_only", "more than one card in the field: present one card") from None
    except DeviceGone as exc:
        raise PaymentRefused("reader_gone", f"the card reader is gone: {exc}") from None
    except DeviceError as exc:  # e.g. another application holds the card exclusively
        raise PaymentRefused("reader_error", f"the card reader cannot be used: {exc}") from None


def read_card(
    core: Core,
    reader: CardReader,
    request: CardRequest,
    token: CancelToken,
    extra: ExtraKernels | None = None,
    on_hold: Callable[[HeldCard], None] | None = None,
) -> TransactionResult:
    """Read the card once, asking for it again (same payment) when it was taken away too early.

    ``extra``: the payment's own kernels (a digital-currency wallet's), which
    may also ask for the same card or wallet again (a torn wallet payment).

    An inserted card (its ATR says contact) runs the contact kernel; when it
    asks to go online its session is handed, open, to ``on_hold`` (the payment
    completes it with the host's answer); without ``on_hold`` it is closed.
    A tap that ends "try another interface" prompts "insert card" and, on a
    reader that can wait for an inserted card (``wait_for_insert``: the
    simulator's with ``insert=PROFILE``), reads the inserted card in the same
    payment; other readers end the payment with "insert card" and the next
    payment reads the inserted card (a PC/SC reader reports it by its ATR).
    """
    config = core.config
    if request.force_online:
        config = replace(
            config,
            combinations=tuple(replace(c, floor_limit=0) for c in config.combinations),
            terminal_floor_limit=0,
        )
    attempt = 0
    prompt = PRESENT_CARD
    inserting = False
    opener = getattr(reader, "device", None)  # a reader opened when first used: open it before prompting
    if callable(opener):
        try:
            opener()
        except DeviceGone as exc:
            raise PaymentRefused("reader_gone", f"the card reader is gone: {exc}") from None
        except DeviceError as exc:
            raise PaymentRefused("reader_error", f"the card reader cannot be used: {exc}") from None
    restart: Restart | None = None  # Book B: set after a Try Again, for the restart at Start B
    while True:
        _prompt(core, request, prompt, attempt)
        _show_restart(core, restart)
        if token.cancelled:
            raise PaymentRefused("cancelled", "cancelled: no card was read")
        session = _wait(reader, core, token, inserting=True) if inserting else _poll(reader, core, token)
        if core.listeners:  # Book A: a card in the field, being read (the second light)
            core.emit("ui_message", None, **UiMessage(Message.PROCESSING, ReaderStatus.PROCESSING).to_json())
        held: HeldCard | None = None
        result: TransactionResult
        try:
            if token.cancelled:
                raise PaymentRefused("cancelled", "cancelled: no card was read")
            txn = build_transaction(
                TapInputs(
                    amount=request.amount,
                    currency=request.currency,
                    currency_exponent=request.exponent,
                    transaction_type=request.transaction_type,
                ),
                now=core.clock.now,
                torn_log=core.torn_log,
                ec_torn_log=core.ec_torn_log,
            )
            atr = bytes(getattr(session, "atr", b"") or b"")
            # a session that reports no ATR (a reader that cannot tell) is taken as contactless, as before chips
            if atr and card_interface(atr) == "contact":
                result, held = read_contact(core, session, config, txn, token)
                if held is not None and on_hold is not None:
                    on_hold(held)
            else:
                tap_config = config if extra is None else extra.restrict(config)
                kernels = None if extra is None else extra.kernels
                result = run_tap(session, tap_config, txn, kernels, restart).result
        finally:
            if held is None or on_hold is None:
                session.close()
        for message in result.messages:
            core.emit("ui_message", None, **message.to_json())
        if result.outcome is Outcome.TRY_ANOTHER_INTERFACE and not inserting and _can_insert(reader):
            # Book A "insert card": the cashier tells the customer; this reader reads the chip next.
            inserting = True
            prompt = INSERT_CARD
            continue
        # Book A: Try Again with "present card again" (the card left mid-transaction, or it
        # answered garbage): the same payment asks for it again, a few times, then gives up.
        again = extra is not None and extra.ask_again(result)
        if (result.outcome is not Outcome.TRY_AGAIN and not again) or attempt >= core.settings.card_retries:
            return result
        attempt += 1
        prompt = extra.prompt if again and extra is not None else PRESENT_CARD_AGAIN
        # Book B 3.5.1.2: Try Again restarts at Start B (the Restart flag set: pre-processing kept)
        restart = result.restart if result.outcome is Outcome.TRY_AGAIN else None
        # Book B 3.5: the field off for the hold time (100 ms units) before polling again
        if result.field_off_hold and token.wait(result.field_off_hold / 10):
            raise PaymentRefused("cancelled", "cancelled: no card was read")


def _can_insert(reader: CardReader) -> bool:
    """The reader can wait for an inserted card within the same payment (``can_insert``, ``wait_for_insert``)."""
    return bool(getattr(reader, "can_insert", False)) and callable(getattr(reader, "wait_for_insert", None))


def card_record(keystore: Keystore, txn_id: str, result: TransactionResult) -> CardRecord:
    """The card as the journal keeps it: masked, as a keyed token, and encrypted."""
    pan = pan_of(result.card_data)
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
        pan_token=keystore.mac(pan.encode(), "pan-token").hex()[:32],
        card_blob=keystore.encrypt(blob, b"card:" + txn_id.encode()),
    )


def host_data(keystore: Keystore, txn_id: str, result: TransactionResult, *, extra: tuple[int, ...] = ()) -> bytes:
    """The data objects for the host's authorisation or advice, encrypted for the journal.

    The cryptogram's inputs as the card received them win over their later
    values (C-3 sets TVR bits after GPO): the issuer must see what the card signed.
    ``extra``: tags to carry besides :data:`HOST_DATA_TAGS` (:data:`COMPLETION_TAGS`).
    """
    card_data = result.card_data | result.cryptogram_inputs
    tags = HOST_DATA_TAGS + tuple(t for t in extra if t not in HOST_DATA_TAGS)
    emv_data = tlv.encode_pairs([(tag, card_data[tag]) for tag in tags if tag in card_data])
    return keystore.encrypt(emv_data, b"sad:" + txn_id.encode())


def card_details(result: TransactionResult) -> dict[str, Any]:
    """What the journal keeps in clear of the card's side of a payment (no card data)."""
    ec = result.electronic_cash
    return (
        {
            "aid": result.aid.hex().upper() if result.aid else None,
            "application_label": result.application_label,
            "cryptogram_type": result.cryptogram_type,
            "cryptogram": result.cryptogram.hex().upper() if result.cryptogram else None,
            "tvr": result.tvr.hex().upper(),
            "tsi": result.tsi.hex().upper(),
            "cvm": result.cvm.value,
            "card_outcome": result.outcome.value,
            "oda": result.oda.to_json(),
            # kernel C-7: the card's electronic cash balance after the sale and its available offline
            # spending amount (minor units), for the receipt; None when the card gave none
            "ec_balance": ec.balance if ec else None,
            "offline_spending_amount": ec.offline_spending_amount if ec else None,
        }
        | _cvm_results(result)
        | _contact_details(result)
    )


def _cvm_results(result: TransactionResult) -> dict[str, Any]:
    """9F34 as the kernel set it (C-2, contact), for the journal and the receipt's audit lines."""
    value = result.card_data.get(0x9F34)
    return {"cvm_results": value.hex().upper()} if value else {}


def _contact_details(result: TransactionResult) -> dict[str, Any]:
    """An inserted card's: the kernel, its CVM results (9F34) and an offline PIN the card verified."""
    if result.kernel != "contact":
        return {}
    cvm_results = getattr(result, "cvm_results", b"") or b""
    out: dict[str, Any] = {"kernel": "contact", "cvm_results": cvm_results.hex().upper()}
    # 9F34: method (b1-6; 01 plaintext, 04 enciphered, with or without signature 03, 05), result 02 successful
    if len(cvm_results) == 3 and cvm_results[0] & 0x3F in (0x01, 0x03, 0x04, 0x05) and cvm_results[2] == 0x02:
        out["pin"] = "offline_verified"
    return out
