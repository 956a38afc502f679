"""Kernel 3 (EMV Contactless Book C-3), qVSDC path.

One GET PROCESSING OPTIONS does the card's work: the card answers with its
cryptogram (and, offline, the fDDA signature 9F4B) straight away; the reader
then reads the records and decides:

- AAC -> Declined; ARQC -> Online Request;
- TC  -> the reader's offline checks: exception file, fDDA, expiry.  A failure
  falls back on what the card's CTQ (9F6C) says: go online, switch interface,
  or decline.

Card Verification follows the CTQ when pre-processing asked for a CVM
(TTQ byte 2 b7), against the TTQ with its PIN bits removed when the terminal has
no PIN pad (:mod:`emv.capabilities`), so "online PIN" is never reported for a
PIN nobody could enter.  A card that requires online PIN from a reader that
cannot take one gets Try Another Interface ("Insert card") when the reader has a
contact interface (TTQ byte 1 b5), where the card's own CVM list decides, and
is declined otherwise.  Malformed card data raises :class:`~emv.kernel_common.KernelError`
(End Application); GPO status words 6984/6985/6986 give Try Another Interface,
Select Next and Try Again ("See phone") as Book C-3 says.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from emv import apdu, dol, oda
from emv.capabilities import without_pin_ttq
from emv.config import ExceptionFile
from emv.kernel_common import (
    KernelContext,
    KernelError,
    gpo_response,
    read_records,
    recover_oda_keys,
    result_from,
    send,
)
from emv.outcome import CvmPerformed, Message, OdaReport, Outcome, ReaderStatus, TransactionResult, UiMessage
from emv.pan import pan_of
from emv.transaction import bcd_date
from emv.tvr import Tsi, Tvr

__all__ = [
    "Cryptogram",
    "cryptogram_type",
    "decide_cvm",
    "run",
]

# TTQ (9F66) bits: (byte index, mask)
TTQ_CONTACT_SUPPORTED = (0, 0x10)
TTQ_OFFLINE_ONLY = (0, 0x08)
TTQ_ONLINE_PIN = (0, 0x04)
TTQ_SIGNATURE = (0, 0x02)
TTQ_ODA_FOR_ONLINE = (0, 0x01)
TTQ_CVM_REQUIRED = (1, 0x40)
TTQ_CDCVM = (2, 0x40)

# CTQ (9F6C) bits
CTQ_ONLINE_PIN = (0, 0x80)
CTQ_SIGNATURE = (0, 0x40)
CTQ_ONLINE_IF_ODA_FAILS = (0, 0x20)
CTQ_SWITCH_IF_ODA_FAILS = (0, 0x10)
CTQ_ONLINE_IF_EXPIRED = (0, 0x08)
CTQ_CDCVM_PERFORMED = (1, 0x80)

AIP_DDA = (0, 0x20)


def _bit(value: bytes | None, bit: tuple[int, int]) -> bool:
    return value is not None and len(value) > bit[0] and bool(value[bit[0]] & bit[1])


class Cryptogram(enum.Enum):
    AAC = "AAC"
    TC = "TC"
    ARQC = "ARQC"


_CRYPTOGRAM_BITS = {0: Cryptogram.AAC, 1: Cryptogram.TC, 2: Cryptogram.ARQC}


def cryptogram_type(card: Mapping[int, bytes]) -> Cryptogram:
    """The cryptogram the card produced: from 9F27 (bits 8-7), else the Visa IAD's CVR.

    For IAD format 0 (9F10 = 06 DKI CVN CVR(4) ..., CVN 10 or 17), CVR byte 2
    bits 6-5 say what the card answered: 00 AAC, 01 TC, 10 ARQC.

    >>> cryptogram_type({0x9F27: b"\\x80"}).value
    'ARQC'
    >>> cryptogram_type({0x9F10: bytes.fromhex("06010A03900000")}).value
    'TC'
    >>> cryptogram_type({0x9F10: bytes.fromhex("06010A03A00000")}).value
    'ARQC'
    """
    cid = card.get(0x9F27)
    if cid is not None:
        if len(cid) != 1:
            raise KernelError("Cryptogram Information Data (9F27) is not 1 byte")
        code = cid[0] >> 6
    else:
        iad = card.get(0x9F10)
        if iad is None or len(iad) < 5 or iad[0] != 0x06 or iad[2] not in (0x0A, 0x11) or iad[3] != 0x03:
            raise KernelError("no 9F27 and no Visa IAD (9F10) to tell the cryptogram type")
        code = (iad[4] >> 4) & 0x03
    if code not in _CRYPTOGRAM_BITS:
        raise KernelError(f"cryptogram type bits {code:02b} are reserved")
    return _CRYPTOGRAM_BITS[code]


def decide_cvm(ttq: bytes, ctq: bytes | None, online: bool) -> CvmPerformed:
    """Book C-3 CVM selection, run only when the reader asked for a CVM.

    Consumer device CVM (CTQ byte 2 b8, when the reader supports it) comes
    first; then online PIN when the card wants it, the reader supports it and
    the transaction goes online; then signature.  Without a CTQ the reader
    falls back on signature, then online PIN.  Nothing fitting -> FAILED.

    >>> decide_cvm(bytes.fromhex("36404000"), bytes.fromhex("8000"), online=True).value
    'online_pin'
    >>> decide_cvm(bytes.fromhex("36404000"), bytes.fromhex("0080"), online=True).value
    'consumer_device'
    >>> decide_cvm(bytes.fromhex("30404000"), bytes.fromhex("8000"), online=True).value
    'failed'
    """
    if ctq is not None:
        if _bit(ctq, CTQ_CDCVM_PERFORMED) and _bit(ttq, TTQ_CDCVM):
            return CvmPerformed.CONSUMER_DEVICE
        if _bit(ctq, CTQ_ONLINE_PIN) and _bit(ttq, TTQ_ONLINE_PIN) and online:
            return CvmPerformed.ONLINE_PIN
        if _bit(ctq, CTQ_SIGNATURE) and _bit(ttq, TTQ_SIGNATURE):
            return CvmPerformed.SIGNATURE
        return CvmPerformed.FAILED
    if _bit(ttq, TTQ_SIGNATURE):
        return CvmPerformed.SIGNATURE
    if _bit(ttq, TTQ_ONLINE_PIN) and online:
        return CvmPerformed.ONLINE_PIN
    return CvmPerformed.FAILED


@dataclass
class _Checks:
    """What the reader found in its offline checks of a TC."""

    exception_file: bool = False
    expired: bool = False
    not_yet_effective: bool = False
    oda_failed: bool = False


def _gpo(ctx: KernelContext) -> tuple[apdu.Response, bytes]:
    pdol_raw = ctx.fci_data.get(0x9F38, b"")
    try:
        pdol = dol.parse(pdol_raw)
    except dol.DolError as exc:
        raise KernelError(f"PDOL (9F38): {exc}") from None
    values = dol.build(pdol, ctx.terminal_data())
    if len(values) > 127:
        raise KernelError(f"PDOL asks for {len(values)} bytes, more than GPO can carry")
    ctx.record_dol_values(pdol, values)  # qVSDC computes its cryptogram at GPO, over these
    return send(ctx, apdu.gpo(values), "GET PROCESSING OPTIONS"), values


def _status_outcome(ctx: KernelContext, sw: int) -> TransactionResult:
    """Book C-3 5.2: GPO status words other than 9000."""
    if sw == 0x6986:  # the mobile asks the cardholder to do something on the phone first
        return result_from(
            ctx,
            Outcome.TRY_AGAIN,
            [UiMessage(Message.SEE_PHONE, ReaderStatus.READY_TO_READ)],
            error="GPO 6986: see phone",
        )
    if sw == 0x6984:
        return result_from(
            ctx,
            Outcome.TRY_ANOTHER_INTERFACE,
            [UiMessage(Message.INSERT_SWIPE_OR_TRY_ANOTHER, ReaderStatus.NOT_READY)],
            error="GPO 6984: try another interface",
        )
    if sw == 0x6985:
        return result_from(ctx, Outcome.SELECT_NEXT, [], error="GPO 6985: select next")
    raise KernelError(f"GET PROCESSING OPTIONS: status {sw:04X}")


def _fdda(ctx: KernelContext, card: Mapping[int, bytes], oda_records: list[tuple[int, bytes]]) -> OdaReport:
    """fDDA (Book C-3 5.8): the ICC key chain, then the SDAD over 9F37 | 9F02 | 5F2A | 9F69."""
    report = OdaReport(method="fDDA")
    ctx.tsi.set(Tsi.ODA_PERFORMED)
    aip = card.get(0x82, bytes(2))
    try:
        static = oda.static_data_to_authenticate(oda_records, aip, card.get(0x9F4A))
    except oda.OdaFailure as exc:
        return _oda_failed(ctx, report, exc.name)
    keys = recover_oda_keys(ctx, card, static)
    report.issuer_key_recovered = keys.issuer_key_recovered
    if keys.failure is not None or keys.icc_key is None:
        return _oda_failed(ctx, report, keys.failure or "icc_data_missing")
    report.icc_key_recovered = True
    td = ctx.terminal_data()
    terminal_dynamic = oda.fdda_terminal_data(td[0x9F37], td[0x9F02], td[0x5F2A], card.get(0x9F69, b""))
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
    expiry = card.get(0x5F24)
    if expiry is not None:
        try:
            if today > bcd_date(expiry):
                checks.expired = True
                ctx.tvr.set(Tvr.EXPIRED_APPLICATION)
        except ValueError as exc:
            raise KernelError(f"Application Expiration Date (5F24): {exc}") from None
    effective = card.get(0x5F25)
    if effective is not None:
        try:
            if today < bcd_date(effective):
                checks.not_yet_effective = True
                ctx.tvr.set(Tvr.NOT_YET_EFFECTIVE)
        except ValueError as exc:
            raise KernelError(f"Application Effective Date (5F25): {exc}") from None


def _exception_file(ctx: KernelContext, pan: str, checks: _Checks, ef: ExceptionFile) -> None:
    if ef.contains(pan):
        checks.exception_file = True
        ctx.tvr.set(Tvr.PAN_IN_EXCEPTION_FILE)


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
    return Outcome.APPROVED, ""


def _no_common_cvm(ttq: bytes, ctq: bytes | None) -> tuple[Outcome, str]:
    """A CVM is required and the card and the reader share none: what to do, and why in words.

    A card that requires online PIN (CTQ byte 1 b8) from a reader that cannot take
    one (no PIN pad, TTQ byte 1 b3 clear) is sent to the contact interface when
    the reader has one, where the card's CVM list can choose what the terminal
    supports; without a contact interface, and for every other mismatch, the
    transaction is declined.

    >>> _no_common_cvm(bytes.fromhex("32404000"), bytes.fromhex("8000"))[0].value
    'try_another_interface'
    >>> _no_common_cvm(bytes.fromhex("22404000"), bytes.fromhex("8000"))[0].value
    'declined'
    """
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


def run(ctx: KernelContext) -> TransactionResult:
    """Kernel 3 from GPO to the outcome.

    Raises :class:`~emv.kernel_common.KernelError` on malformed card data and
    lets :class:`~emv.apdu.CardCommunicationError` through (Entry Point maps
    both to outcomes).
    """
    resp, _pdol_values = _gpo(ctx)
    if not resp.ok:
        return _status_outcome(ctx, resp.sw)
    aip, afl, gpo_data = gpo_response(resp.data)
    ctx.card_data.update(gpo_data)
    records = read_records(ctx, afl, known=gpo_data)
    ctx.card_data.update(records.data)
    card = ctx.card_data

    # Book C-3 5.4: the data without which there is no transaction
    missing = [f"{t:X}" for t in (0x9F26, 0x9F36, 0x9F10) if t not in card]
    if missing:
        raise KernelError(f"mandatory data missing: {', '.join(missing)}")
    pan = pan_of(card)
    if pan is None:
        raise KernelError("neither a PAN (5A) nor track 2 data (57)")
    if len(card[0x9F26]) != 8:
        raise KernelError("Application Cryptogram (9F26) is not 8 bytes")
    kind = cryptogram_type(card)

    checks = _Checks()
    report = OdaReport()
    if kind is Cryptogram.TC:
        _exception_file(ctx, pan, checks, ctx.config.exception_file)
        if _bit(aip, AIP_DDA):
            report = _fdda(ctx, card, records.oda_records)
            checks.oda_failed = report.result == "failed"
        else:
            # qVSDC never approves offline without fDDA
            ctx.tvr.set(Tvr.ODA_NOT_PERFORMED)
            checks.oda_failed = True
        _date_checks(ctx, card, checks)
        outcome, why = _offline_decision(ctx, card, checks)
    elif kind is Cryptogram.ARQC:
        outcome, why = Outcome.ONLINE_REQUEST, ""
        if _bit(ctx.ttq, TTQ_ODA_FOR_ONLINE) and _bit(aip, AIP_DDA) and 0x9F4B in card:
            report = _fdda(ctx, card, records.oda_records)  # informs the issuer; the outcome stays online
        else:
            ctx.tvr.set(Tvr.ODA_NOT_PERFORMED)
    else:
        outcome, why = Outcome.DECLINED, "card declined (AAC)"
        ctx.tvr.set(Tvr.ODA_NOT_PERFORMED)

    cvm = CvmPerformed.NO_CVM
    if _bit(ctx.ttq, TTQ_CVM_REQUIRED) and outcome in (Outcome.APPROVED, Outcome.ONLINE_REQUEST):
        # What this reader can do: never a PIN without a PIN pad, whatever the TTQ says.
        ttq = ctx.ttq if ctx.config.pin_pad else without_pin_ttq(ctx.ttq)
        online_ok = ctx.config.online_capable and not _bit(ttq, TTQ_OFFLINE_ONLY)
        cvm = decide_cvm(ttq, card.get(0x9F6C), online=online_ok)
        if cvm is CvmPerformed.ONLINE_PIN:
            outcome = Outcome.ONLINE_REQUEST  # the PIN can only be checked online
            ctx.tvr.set(Tvr.ONLINE_PIN_ENTERED)
        if cvm is CvmPerformed.FAILED:
            ctx.tvr.set(Tvr.CARDHOLDER_VERIFICATION_FAILED)
            outcome, why = _no_common_cvm(ttq, card.get(0x9F6C))
        ctx.tsi.set(Tsi.CARDHOLDER_VERIFICATION_PERFORMED)

    messages = [UiMessage(Message.CARD_READ_OK, ReaderStatus.CARD_READ_SUCCESSFULLY)]
    final = _FINAL_MESSAGE[outcome]
    if outcome is Outcome.APPROVED and cvm is CvmPerformed.SIGNATURE:
        final = UiMessage(Message.APPROVED_PLEASE_SIGN, ReaderStatus.CARD_READ_SUCCESSFULLY)
    messages.append(final)
    return result_from(
        ctx,
        outcome,
        messages,
        cryptogram_type=kind.value,
        cryptogram=card[0x9F26],
        oda=report,
        cvm=cvm,
        error=why or None,
    )
