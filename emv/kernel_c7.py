"""Kernel 7 (UnionPay QuickPass), a qPBOC-style kernel built from public facts.

Book C-7 is not public.  This kernel follows what public code and POS
configurations show of UnionPay contactless (``docs/internals.md`` "Kernel C-7"
lists every point that is a guess, and which are facts): the flow of qVSDC
(Book C-3) with UnionPay's electronic cash (EC) on top.

- One GET PROCESSING OPTIONS does the card's work: the PDOL carries the TTQ
  (9F66) and, when the card asks for it, the EC Terminal Support Indicator
  (9F7A); the card answers with its cryptogram, its CTQ (9F6C), the fDDA
  signature (9F4B) when it approves offline, and its Available Offline
  Spending Amount (9F5D).
- The reader reads the records, then decides as qVSDC does: AAC -> Declined;
  ARQC -> Online Request; TC -> the offline checks (exception file, fDDA,
  dates), a failure falling back on what the CTQ says.
- Electronic cash: the terminal offers EC (9F7A = 01) when its combination
  supports it (9F7A = 01 among its data objects), the transaction is a purchase
  of a non-zero amount, the amount is within the terminal's EC limit (9F7B),
  and neither an online cryptogram nor a CVM is required.  A TC the card gives after that offer,
  with its EC balance (9F5D), is an EC approval: the reader checks it against
  the card's EC data (single-transaction limit 9F78, balance limit 9F77,
  currency 9F51) and reads the balance after the sale (GET DATA 9F79), or
  computes it from 9F5D when the card does not answer.  An AAC after the offer
  from a card whose EC balance is below the amount is "declined: EC balance
  short".
- Card verification as Book C-3 (:func:`emv.gpo_kernel.decide_cvm`): online PIN
  only with a PIN pad, which no terminal has yet, so a card that requires it is
  sent to the contact interface (or declined without one).

- A card removed too early after its EC debit (posterm's own mechanism, a guess:
  :mod:`emv.c7_torn`): a GPO that offered EC and was torn is kept in the
  terminal's torn EC log, and the re-tap for the same sale sends the same GPO
  again, which the card that debited answers as it did: one debit.

Malformed card data raise :class:`~emv.kernel_common.KernelError` (End
Application); GPO status words 6984/6985/6986 give Try Another Interface,
Select Next and Try Again ("See phone") as in C-3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from emv import apdu, c7_torn, tlv
from emv.gpo_kernel import (
    TTQ_CVM_REQUIRED,
    Cryptogram,
    bit_set,
    final_result,
    gpo_values,
    mandatory_pan,
    offline_checks,
    offline_decision,
    online_oda,
    parse_pdol,
    read_cryptogram_type,
    status_outcome,
    verify_cardholder,
)
from emv.kernel_common import KernelContext, KernelError, RecordsRead, gpo_response, read_records, send
from emv.outcome import ElectronicCash, OdaReport, Outcome, TransactionResult
from emv.transaction import bcd_to_int
from emv.tvr import Tvr

__all__ = [
    "EC_SUPPORTED",
    "Cryptogram",
    "cryptogram_type",
    "ec_offered",
    "run",
]

#: 9F7A (EC Terminal Support Indicator) when the terminal offers electronic cash.
EC_SUPPORTED = b"\x01"
EC_NOT_SUPPORTED = b"\x00"

# TTQ (9F66) bits of C-7's own (the rest as C-3: emv.gpo_kernel)
TTQ_ONLINE_CRYPTOGRAM_REQUIRED = (1, 0x80)

# The card's EC data objects (PBOC reuses the numbers of Visa's VLP)
TAG_EC_BALANCE = 0x9F79
TAG_EC_BALANCE_LIMIT = 0x9F77
TAG_EC_SINGLE_LIMIT = 0x9F78
TAG_EC_RESET_THRESHOLD = 0x9F6D
TAG_EC_CURRENCY = 0x9F51
TAG_AOSA = 0x9F5D
TAG_EC_TERMINAL_SUPPORT = 0x9F7A
TAG_EC_TERMINAL_LIMIT = 0x9F7B


def _unionpay_cvr_bits(iad: bytes | None) -> int | None:
    """CVR byte 2 bits 6-5 of a UnionPay-style IAD (07 DKI CVN CVR(4) ...) or a Visa-format one (06 ...)."""
    if iad is None or len(iad) < 7 or iad[0] not in (0x06, 0x07) or iad[3] != 0x03:
        return None
    return (iad[4] >> 4) & 0x03


def cryptogram_type(card: Mapping[int, bytes]) -> Cryptogram:
    """The cryptogram the card produced: from 9F27 (bits 8-7), else the IAD's CVR.

    A UnionPay-style IAD is ``07 DKI CVN CVR(4) ...`` (a Visa-format one,
    ``06 DKI CVN CVR(4)``, is accepted too); CVR byte 2 bits 6-5 say what the
    card answered: 00 AAC, 01 TC, 10 ARQC.

    >>> cryptogram_type({0x9F10: bytes.fromhex("07010103900000 01")}).value
    'TC'
    >>> cryptogram_type({0x9F27: b"\\x00"}).value
    'AAC'
    """
    return read_cryptogram_type(
        card, _unionpay_cvr_bits, "no 9F27 and no IAD (9F10) with a CVR to tell the cryptogram type"
    )


def _amount(card: Mapping[int, bytes], tag: int) -> int | None:
    """An n12 amount of the card (6 bytes BCD); None when absent; KernelError when malformed."""
    raw = card.get(tag)
    if raw is None:
        return None
    if len(raw) != 6:
        raise KernelError(f"{tag:X} is not 6 bytes (n12)")
    try:
        return bcd_to_int(raw)
    except ValueError:
        raise KernelError(f"{tag:X} is not BCD") from None


def ec_offered(ctx: KernelContext) -> bool:
    """Whether this terminal offers electronic cash for this transaction (9F7A = 01 in the PDOL).

    The combination must support EC (its data object 9F7A is 01); the
    transaction must be a purchase (9C 00) of a non-zero amount, neither an
    online cryptogram nor a CVM may be required (TTQ byte 2 b8, b7), and the
    amount must be within the terminal's EC transaction limit 9F7B when one is
    configured.
    """
    td = ctx.terminal_data()
    if td.get(TAG_EC_TERMINAL_SUPPORT) != EC_SUPPORTED:
        return False
    if ctx.txn.transaction_type != 0x00 or ctx.txn.amount <= 0:
        return False
    if bit_set(ctx.ttq, TTQ_ONLINE_CRYPTOGRAM_REQUIRED) or bit_set(ctx.ttq, TTQ_CVM_REQUIRED):
        return False  # no CVM for electronic cash: the card must not debit what a failed CVM would decline
    limit = td.get(TAG_EC_TERMINAL_LIMIT)
    if limit is not None:
        try:
            if ctx.txn.amount > bcd_to_int(limit):
                return False
        except ValueError:
            return False  # a configuration that is not BCD offers nothing
    return True


@dataclass
class _Gpo:
    """GET PROCESSING OPTIONS as sent: the answer, whether EC was offered, the PDOL and its values,
    and the torn record (emv.c7_torn) whose values were sent again, if any."""

    response: apdu.Response
    offer_ec: bool
    pdol: bytes
    values: bytes
    resent: c7_torn.EcTornRecord | None


def _gpo(ctx: KernelContext) -> _Gpo:
    """GET PROCESSING OPTIONS (9F7A = 01 in the PDOL when EC is offered).

    Offering EC, the values of a matching torn EC GPO are sent again (the card
    that debited then answers as it did, without debiting again); a GPO
    offering EC that gets no answer is kept in the torn EC log.
    """
    pdol_raw = ctx.fci_data.get(0x9F38, b"")
    pdol = parse_pdol(ctx)
    offer_ec = any(e.tag == TAG_EC_TERMINAL_SUPPORT for e in pdol) and ec_offered(ctx)
    data = ctx.terminal_data()
    data[TAG_EC_TERMINAL_SUPPORT] = EC_SUPPORTED if offer_ec else EC_NOT_SUPPORTED
    values = gpo_values(pdol, data)
    resent = c7_torn.take_pending(ctx, pdol_raw, pdol, values) if offer_ec else None
    if resent is not None:
        values = resent.pdol_values
    ctx.record_dol_values(pdol, values)  # the card computes its cryptogram at GPO, over these
    try:
        response = send(ctx, apdu.gpo(values), "GET PROCESSING OPTIONS")
    except apdu.CardCommunicationError:
        if offer_ec:  # the card may have debited its EC balance: keep what was sent
            c7_torn.keep(ctx, pdol_raw, values, resent=resent, answer=None)
        raise
    return _Gpo(response, offer_ec, pdol_raw, values, resent)


def _read_records_or_keep(ctx: KernelContext, gpo: _Gpo, afl: bytes, gpo_data: Mapping[int, bytes]) -> RecordsRead:
    """READ RECORD; the card taken away after a GPO that offered EC and was not refused (AAC) or sent
    online (ARQC): the torn EC log keeps the GPO and the card's answer (it may have debited)."""
    try:
        return read_records(ctx, afl, known=gpo_data)
    except apdu.CardCommunicationError:
        if gpo.offer_ec and _maybe_debited(gpo_data):
            answer = c7_torn.CardAnswer(gpo_data.get(0x9F36, b""), gpo_data.get(0x9F26, b""), gpo_data.get(TAG_AOSA))
            c7_torn.keep(ctx, gpo.pdol, gpo.values, resent=gpo.resent, answer=answer)
        raise


def _maybe_debited(gpo_data: Mapping[int, bytes]) -> bool:
    """Whether a GPO answer may be an EC debit: a TC, or a cryptogram type that cannot be told."""
    try:
        return cryptogram_type(gpo_data) is Cryptogram.TC
    except KernelError:
        return True


def _ec_refusal(ctx: KernelContext, card: Mapping[int, bytes], aosa: int) -> str | None:
    """An EC approval against the card's own EC data: why the reader refuses it, or None.

    ``aosa`` (9F5D) is the balance after the sale as the card reports it.  The
    card's single-transaction limit (9F78) and balance limit (9F77) bound it
    when the card gives them, and its EC currency (9F51) must be the
    transaction's.
    """
    amount = ctx.txn.amount
    single = _amount(card, TAG_EC_SINGLE_LIMIT)
    limit = _amount(card, TAG_EC_BALANCE_LIMIT)
    currency = card.get(TAG_EC_CURRENCY)
    if currency is not None and currency != ctx.txn.currency_bcd():
        return f"EC currency {currency.hex()} is not the transaction's"
    if single is not None and amount > single:
        return f"EC approval over the card's single-transaction limit ({single})"
    if limit is not None and aosa + amount > limit:
        return f"EC balance before the sale above the card's balance limit ({limit})"
    return None


def _read_ec_balance(ctx: KernelContext) -> int | None:
    """GET DATA 9F79 after the card approved from EC: its balance after the sale, None when not given.

    The card debited its balance at GPO, and the sale is complete with its TC
    and records: a card taken away before it answers leaves the balance unread,
    never a "present card again" that would debit it a second time.
    """
    try:
        resp = send(ctx, apdu.get_data(TAG_EC_BALANCE), "GET DATA 9F79")
    except (KernelError, apdu.CardCommunicationError):
        return None
    if not resp.ok:
        return None
    try:
        objs = tlv.decode(resp.data)
    except tlv.TlvError:
        return None
    if len(objs) != 1 or objs[0].tag != TAG_EC_BALANCE or len(objs[0].value) != 6:
        return None
    try:
        return bcd_to_int(objs[0].value)
    except ValueError:
        return None


def run(ctx: KernelContext) -> TransactionResult:
    """Kernel 7 from GPO to the outcome.

    Raises :class:`~emv.kernel_common.KernelError` on malformed card data and
    lets :class:`~emv.apdu.CardCommunicationError` through (Entry Point maps
    both to outcomes).
    """
    gpo = _gpo(ctx)
    resp, offer_ec = gpo.response, gpo.offer_ec
    if not resp.ok:
        return status_outcome(ctx, resp.sw)
    aip, afl, gpo_data = gpo_response(resp.data)
    ctx.card_data.update(gpo_data)
    records = _read_records_or_keep(ctx, gpo, afl, gpo_data)
    ctx.card_data.update(records.data)
    card = ctx.card_data
    pan = mandatory_pan(card)
    kind = cryptogram_type(card)
    aosa = _amount(card, TAG_AOSA)
    ec = ElectronicCash(offline_spending_amount=aosa) if aosa is not None else None

    report = OdaReport()
    why = ""
    if kind is Cryptogram.TC:
        checks, report = offline_checks(ctx, card, aip, records, pan)
        if offer_ec and aosa is not None:  # the card approved from its electronic cash
            checks.ec_refusal = _ec_refusal(ctx, card, aosa)
            # The balance after the sale: read (GET DATA 9F79), else the card's own figure (9F5D).
            read = _read_ec_balance(ctx)
            ec = ElectronicCash(balance=read if read is not None else aosa, offline_spending_amount=aosa,
                                balance_source="read" if read is not None else "computed")  # fmt: skip
            if read is not None and read != aosa and checks.ec_refusal is None:
                checks.ec_refusal = f"EC balance read ({read}) differs from the card's 9F5D ({aosa})"
            threshold = _amount(card, TAG_EC_RESET_THRESHOLD)
            ec.below_reset_threshold = threshold is not None and ec.balance is not None and ec.balance < threshold
        outcome, why = offline_decision(ctx, card, checks)
        if outcome is not Outcome.APPROVED and ec is not None and ec.balance is not None:
            why += " (the card may already have debited its EC balance)"
    elif kind is Cryptogram.ARQC:
        outcome = Outcome.ONLINE_REQUEST
        report = online_oda(ctx, card, aip, records)
    else:
        outcome, why = Outcome.DECLINED, "card declined (AAC)"
        if offer_ec and aosa is not None and aosa < ctx.txn.amount:
            why = f"declined: EC balance short ({aosa} available, {ctx.txn.amount} asked, minor units)"
        ctx.tvr.set(Tvr.ODA_NOT_PERFORMED)

    cvm, outcome, why = verify_cardholder(ctx, card, outcome, why)
    result = final_result(ctx, outcome, cvm, kind, report, why)
    result.electronic_cash = ec
    return result
