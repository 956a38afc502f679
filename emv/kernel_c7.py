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
- Card verification as Book C-3 (:func:`emv.kernel_c3.decide_cvm`): online PIN
  only with a PIN pad, which no terminal has yet, so a card that requires it is
  sent to the contact interface (or declined without one).

Malformed card data raise :class:`~emv.kernel_common.KernelError` (End
Application); GPO status words 6984/6985/6986 give Try Another Interface,
Select Next and Try Again ("See phone") as in C-3.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from emv import apdu, dol, oda, tlv
from emv.capabilities import without_pin_ttq
from emv.kernel_c3 import decide_cvm
from emv.kernel_common import (
    KernelContext,
    KernelError,
    gpo_response,
    read_records,
    recover_oda_keys,
    result_from,
    send,
)
from emv.outcome import (
    CvmPerformed,
    ElectronicCash,
    Message,
    OdaReport,
    Outcome,
    ReaderStatus,
    TransactionResult,
    UiMessage,
)
from emv.pan import pan_of
from emv.transaction import bcd_date, bcd_to_int
from emv.tvr import Tsi, Tvr

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

# TTQ (9F66) bits: (byte index, mask), as in C-3
TTQ_QPBOC = (0, 0x20)
TTQ_CONTACT_SUPPORTED = (0, 0x10)
TTQ_OFFLINE_ONLY = (0, 0x08)
TTQ_ONLINE_PIN = (0, 0x04)
TTQ_ODA_FOR_ONLINE = (0, 0x01)
TTQ_ONLINE_CRYPTOGRAM_REQUIRED = (1, 0x80)
TTQ_CVM_REQUIRED = (1, 0x40)

# CTQ (9F6C) bits
CTQ_ONLINE_PIN = (0, 0x80)
CTQ_ONLINE_IF_ODA_FAILS = (0, 0x20)
CTQ_SWITCH_IF_ODA_FAILS = (0, 0x10)
CTQ_ONLINE_IF_EXPIRED = (0, 0x08)

AIP_DDA = (0, 0x20)

# The card's EC data objects (PBOC reuses the numbers of Visa's VLP)
TAG_EC_BALANCE = 0x9F79
TAG_EC_BALANCE_LIMIT = 0x9F77
TAG_EC_SINGLE_LIMIT = 0x9F78
TAG_EC_RESET_THRESHOLD = 0x9F6D
TAG_EC_CURRENCY = 0x9F51
TAG_AOSA = 0x9F5D
TAG_EC_TERMINAL_SUPPORT = 0x9F7A
TAG_EC_TERMINAL_LIMIT = 0x9F7B


def _bit(value: bytes | None, bit: tuple[int, int]) -> bool:
    return value is not None and len(value) > bit[0] and bool(value[bit[0]] & bit[1])


class Cryptogram(enum.Enum):
    AAC = "AAC"
    TC = "TC"
    ARQC = "ARQC"


_CRYPTOGRAM_BITS = {0: Cryptogram.AAC, 1: Cryptogram.TC, 2: Cryptogram.ARQC}


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
    cid = card.get(0x9F27)
    if cid is not None:
        if len(cid) != 1:
            raise KernelError("Cryptogram Information Data (9F27) is not 1 byte")
        code = cid[0] >> 6
    else:
        iad = card.get(0x9F10)
        if iad is None or len(iad) < 7 or iad[0] not in (0x06, 0x07) or iad[3] != 0x03:
            raise KernelError("no 9F27 and no IAD (9F10) with a CVR to tell the cryptogram type")
        code = (iad[4] >> 4) & 0x03
    if code not in _CRYPTOGRAM_BITS:
        raise KernelError(f"cryptogram type bits {code:02b} are reserved")
    return _CRYPTOGRAM_BITS[code]


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
    if _bit(ctx.ttq, TTQ_ONLINE_CRYPTOGRAM_REQUIRED) or _bit(ctx.ttq, TTQ_CVM_REQUIRED):
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
class _Checks:
    """What the reader found in its offline checks of a TC."""

    exception_file: bool = False
    expired: bool = False
    not_yet_effective: bool = False
    oda_failed: bool = False
    ec_refusal: str | None = None


def _gpo(ctx: KernelContext) -> tuple[apdu.Response, bool]:
    """GET PROCESSING OPTIONS; the answer, and whether EC was offered (9F7A = 01 in the PDOL)."""
    pdol_raw = ctx.fci_data.get(0x9F38, b"")
    try:
        pdol = dol.parse(pdol_raw)
    except dol.DolError as exc:
        raise KernelError(f"PDOL (9F38): {exc}") from None
    offer_ec = any(e.tag == TAG_EC_TERMINAL_SUPPORT for e in pdol) and ec_offered(ctx)
    data = ctx.terminal_data()
    data[TAG_EC_TERMINAL_SUPPORT] = EC_SUPPORTED if offer_ec else EC_NOT_SUPPORTED
    values = dol.build(pdol, data)
    if len(values) > 127:
        raise KernelError(f"PDOL asks for {len(values)} bytes, more than GPO can carry")
    ctx.record_dol_values(pdol, values)  # the card computes its cryptogram at GPO, over these
    return send(ctx, apdu.gpo(values), "GET PROCESSING OPTIONS"), offer_ec


def _status_outcome(ctx: KernelContext, sw: int) -> TransactionResult:
    """GPO status words other than 9000, as Book C-3 5.2 has them (a guess for C-7)."""
    if sw == 0x6986:
        return result_from(
            ctx, Outcome.TRY_AGAIN, [UiMessage(Message.SEE_PHONE, ReaderStatus.READY_TO_READ)],
            error="GPO 6986: see phone",
        )  # fmt: skip
    if sw == 0x6984:
        return result_from(
            ctx, Outcome.TRY_ANOTHER_INTERFACE,
            [UiMessage(Message.INSERT_SWIPE_OR_TRY_ANOTHER, ReaderStatus.NOT_READY)],
            error="GPO 6984: try another interface",
        )  # fmt: skip
    if sw == 0x6985:
        return result_from(ctx, Outcome.SELECT_NEXT, [], error="GPO 6985: select next")
    raise KernelError(f"GET PROCESSING OPTIONS: status {sw:04X}")


def _fdda(ctx: KernelContext, card: Mapping[int, bytes], oda_records: list[tuple[int, bytes]]) -> OdaReport:
    """fDDA as Book C-3 5.8: the ICC key chain, then the SDAD over 9F37 | 9F02 | 5F2A | 9F69."""
    report = OdaReport(method="fDDA")
    ctx.tsi.set(Tsi.ODA_PERFORMED)
    try:
        static = oda.static_data_to_authenticate(oda_records, card.get(0x82, bytes(2)), card.get(0x9F4A))
    except oda.OdaFailure as exc:
        return _oda_failed(ctx, report, exc.name)
    keys = recover_oda_keys(ctx, card, static)
    report.issuer_key_recovered = keys.issuer_key_recovered
    if keys.failure is not None or keys.icc_key is None:
        return _oda_failed(ctx, report, keys.failure or "icc_data_missing")
    report.icc_key_recovered = True
    inputs = ctx.cryptogram_inputs  # what the card received at GPO
    td = ctx.terminal_data()
    terminal_dynamic = oda.fdda_terminal_data(
        inputs.get(0x9F37, td[0x9F37]), inputs.get(0x9F02, td[0x9F02]), inputs.get(0x5F2A, td[0x5F2A]),
        card.get(0x9F69, b""),
    )  # fmt: skip
    try:
        oda.verify_sdad(keys.icc_key, card.get(0x9F4B), terminal_dynamic)
    except oda.OdaFailure as exc:
        return _oda_failed(ctx, report, exc.name)
    report.result = "passed"
    return report


def _oda_failed(ctx: KernelContext, report: OdaReport, failure: str) -> OdaReport:
    report.result = "failed"
    report.failure = failure
    oda.apply_failure(ctx.tvr, "fDDA", failure)
    return report


def _date_checks(ctx: KernelContext, card: Mapping[int, bytes], checks: _Checks) -> None:
    today = ctx.txn.on_date()
    for tag, name in ((0x5F24, "Application Expiration Date"), (0x5F25, "Application Effective Date")):
        raw = card.get(tag)
        if raw is None:
            continue
        try:
            day = bcd_date(raw)
        except ValueError as exc:
            raise KernelError(f"{name} ({tag:X}): {exc}") from None
        if tag == 0x5F24 and today > day:
            checks.expired = True
            ctx.tvr.set(Tvr.EXPIRED_APPLICATION)
        if tag == 0x5F25 and today < day:
            checks.not_yet_effective = True
            ctx.tvr.set(Tvr.NOT_YET_EFFECTIVE)


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


def _offline_decision(ctx: KernelContext, card: Mapping[int, bytes], checks: _Checks) -> tuple[Outcome, str]:
    """What becomes of a TC after the reader's checks; the string says why, for the log."""
    ctq = card.get(0x9F6C)
    online_ok = ctx.config.online_capable and not _bit(ctx.ttq, TTQ_OFFLINE_ONLY)
    if checks.exception_file:
        return Outcome.DECLINED, "PAN in exception file"
    if checks.oda_failed:
        if _bit(ctq, CTQ_ONLINE_IF_ODA_FAILS) and online_ok:
            return Outcome.ONLINE_REQUEST, "fDDA failed: CTQ says go online"
        if _bit(ctq, CTQ_SWITCH_IF_ODA_FAILS) and _bit(ctx.ttq, TTQ_CONTACT_SUPPORTED):
            return Outcome.TRY_ANOTHER_INTERFACE, "fDDA failed: CTQ says switch interface"
        return Outcome.DECLINED, "fDDA failed"
    if checks.expired:
        if _bit(ctq, CTQ_ONLINE_IF_EXPIRED) and online_ok:
            return Outcome.ONLINE_REQUEST, "application expired: CTQ says go online"
        return Outcome.DECLINED, "application expired"
    if checks.not_yet_effective:
        return Outcome.DECLINED, "application not yet effective"
    if checks.ec_refusal is not None:
        return Outcome.DECLINED, checks.ec_refusal
    return Outcome.APPROVED, ""


def _no_common_cvm(ttq: bytes, ctq: bytes | None) -> tuple[Outcome, str]:
    """A CVM is required and the card and the reader share none (as kernel C-3)."""
    if _bit(ctq, CTQ_ONLINE_PIN) and not _bit(ttq, TTQ_ONLINE_PIN):
        why = "the card requires online PIN and this reader has no PIN pad"
        if _bit(ttq, TTQ_CONTACT_SUPPORTED):
            return Outcome.TRY_ANOTHER_INTERFACE, f"{why}: insert the card or use another payment"
        return Outcome.DECLINED, why
    return Outcome.DECLINED, "no CVM the card and the reader share"


_FINAL_MESSAGE = {
    Outcome.APPROVED: UiMessage(Message.APPROVED, ReaderStatus.CARD_READ_SUCCESSFULLY),
    Outcome.DECLINED: UiMessage(Message.NOT_AUTHORISED, ReaderStatus.CARD_READ_SUCCESSFULLY),
    Outcome.ONLINE_REQUEST: UiMessage(Message.AUTHORISING, ReaderStatus.CARD_READ_SUCCESSFULLY),
    Outcome.TRY_ANOTHER_INTERFACE: UiMessage(Message.INSERT_CARD, ReaderStatus.NOT_READY),
}


def _mandatory(card: Mapping[int, bytes]) -> str:
    """The PAN, after checking the data without which there is no transaction."""
    missing = [f"{t:X}" for t in (0x9F26, 0x9F36, 0x9F10) if t not in card]
    if missing:
        raise KernelError(f"mandatory data missing: {', '.join(missing)}")
    pan = pan_of(card)
    if pan is None:
        raise KernelError("neither a PAN (5A) nor track 2 data (57)")
    if len(card[0x9F26]) != 8:
        raise KernelError("Application Cryptogram (9F26) is not 8 bytes")
    return pan


def run(ctx: KernelContext) -> TransactionResult:
    """Kernel 7 from GPO to the outcome.

    Raises :class:`~emv.kernel_common.KernelError` on malformed card data and
    lets :class:`~emv.apdu.CardCommunicationError` through (Entry Point maps
    both to outcomes).
    """
    resp, offer_ec = _gpo(ctx)
    if not resp.ok:
        return _status_outcome(ctx, resp.sw)
    aip, afl, gpo_data = gpo_response(resp.data)
    ctx.card_data.update(gpo_data)
    records = read_records(ctx, afl, known=gpo_data)
    ctx.card_data.update(records.data)
    card = ctx.card_data
    pan = _mandatory(card)
    kind = cryptogram_type(card)
    aosa = _amount(card, TAG_AOSA)
    ec = ElectronicCash(offline_spending_amount=aosa) if aosa is not None else None

    checks = _Checks()
    report = OdaReport()
    why = ""
    if kind is Cryptogram.TC:
        if ctx.config.exception_file.contains(pan):
            checks.exception_file = True
            ctx.tvr.set(Tvr.PAN_IN_EXCEPTION_FILE)
        if _bit(aip, AIP_DDA):
            report = _fdda(ctx, card, records.oda_records)
            checks.oda_failed = report.result == "failed"
        else:
            ctx.tvr.set(Tvr.ODA_NOT_PERFORMED)  # qPBOC never approves offline without fDDA
            checks.oda_failed = True
        _date_checks(ctx, card, checks)
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
        outcome, why = _offline_decision(ctx, card, checks)
        if outcome is not Outcome.APPROVED and ec is not None and ec.balance is not None:
            why += " (the card may already have debited its EC balance)"
    elif kind is Cryptogram.ARQC:
        outcome = Outcome.ONLINE_REQUEST
        if _bit(ctx.ttq, TTQ_ODA_FOR_ONLINE) and _bit(aip, AIP_DDA) and 0x9F4B in card:
            report = _fdda(ctx, card, records.oda_records)  # informs the issuer; the outcome stays online
        else:
            ctx.tvr.set(Tvr.ODA_NOT_PERFORMED)
    else:
        outcome, why = Outcome.DECLINED, "card declined (AAC)"
        if offer_ec and aosa is not None and aosa < ctx.txn.amount:
            why = f"declined: EC balance short ({aosa} available, {ctx.txn.amount} asked, minor units)"
        ctx.tvr.set(Tvr.ODA_NOT_PERFORMED)

    cvm = CvmPerformed.NO_CVM
    if _bit(ctx.ttq, TTQ_CVM_REQUIRED) and outcome in (Outcome.APPROVED, Outcome.ONLINE_REQUEST):
        ttq = ctx.ttq if ctx.config.pin_pad else without_pin_ttq(ctx.ttq)  # never a PIN without a PIN pad
        online_ok = ctx.config.online_capable and not _bit(ttq, TTQ_OFFLINE_ONLY)
        cvm = decide_cvm(ttq, card.get(0x9F6C), online=online_ok)
        if cvm is CvmPerformed.ONLINE_PIN:
            outcome = Outcome.ONLINE_REQUEST
            ctx.tvr.set(Tvr.ONLINE_PIN_ENTERED)
        if cvm is CvmPerformed.FAILED:
            ctx.tvr.set(Tvr.CARDHOLDER_VERIFICATION_FAILED)
            outcome, why = _no_common_cvm(ttq, card.get(0x9F6C))
        ctx.tsi.set(Tsi.CARDHOLDER_VERIFICATION_PERFORMED)

    final = _FINAL_MESSAGE[outcome]
    if outcome is Outcome.APPROVED and cvm is CvmPerformed.SIGNATURE:
        final = UiMessage(Message.APPROVED_PLEASE_SIGN, ReaderStatus.CARD_READ_SUCCESSFULLY)
    result = result_from(
        ctx,
        outcome,
        [UiMessage(Message.CARD_READ_OK, ReaderStatus.CARD_READ_SUCCESSFULLY), final],
        cryptogram_type=kind.value,
        cryptogram=card[0x9F26],
        oda=report,
        cvm=cvm,
        error=why or None,
    )
    result.electronic_cash = ec
    return result
