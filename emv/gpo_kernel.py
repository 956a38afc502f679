"""What kernels C-3 (qVSDC) and C-7 (qPBOC) share: the card decides at GET PROCESSING OPTIONS.

Both kernels send one GPO whose PDOL carries the TTQ (9F66); the card answers
with its cryptogram straight away (and, when it approves offline, the fDDA
signature 9F4B), and the reader reads the records and then decides:

- AAC -> Declined; ARQC -> Online Request (fDDA only to inform the issuer,
  when the TTQ asks for ODA for online authorisations);
- TC -> the reader's offline checks (:func:`offline_checks`: exception file,
  fDDA, dates), a failure falling back on what the card's CTQ (9F6C) says
  (:func:`offline_decision`);
- then card verification when pre-processing asked for a CVM
  (:func:`verify_cardholder`), and the outcome with its UI messages
  (:func:`final_result`).

C-7 adds UnionPay's electronic cash on top (:mod:`emv.kernel_c7`); the bits
and the order of the checks are Book C-3's, which C-7 follows.

>>> no_common_cvm(bytes.fromhex("32404000"), bytes.fromhex("8000"))[0].value
'try_another_interface'
>>> no_common_cvm(bytes.fromhex("22404000"), bytes.fromhex("8000"))[0].value
'declined'
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from emv import dol, oda
from emv.capabilities import without_pin_ttq
from emv.kernel_common import KernelContext, KernelError, RecordsRead, recover_oda_keys, result_from
from emv.outcome import CvmPerformed, Message, OdaReport, Outcome, ReaderStatus, TransactionResult, UiMessage
from emv.pan import pan_of
from emv.transaction import bcd_date
from emv.tvr import Tsi, Tvr

__all__ = [
    "AIP_DDA",
    "CTQ_CDCVM_PERFORMED",
    "CTQ_ONLINE_IF_EXPIRED",
    "CTQ_ONLINE_IF_ODA_FAILS",
    "CTQ_ONLINE_PIN",
    "CTQ_SIGNATURE",
    "CTQ_SWITCH_IF_ODA_FAILS",
    "TTQ_CDCVM",
    "TTQ_CONTACT_SUPPORTED",
    "TTQ_CVM_REQUIRED",
    "TTQ_ODA_FOR_ONLINE",
    "TTQ_OFFLINE_ONLY",
    "TTQ_ONLINE_PIN",
    "TTQ_SIGNATURE",
    "Checks",
    "Cryptogram",
    "bit_set",
    "decide_cvm",
    "fdda",
    "final_result",
    "gpo_values",
    "mandatory_pan",
    "no_common_cvm",
    "offline_checks",
    "offline_decision",
    "online_oda",
    "parse_pdol",
    "read_cryptogram_type",
    "status_outcome",
    "verify_cardholder",
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


def bit_set(value: bytes | None, bit: tuple[int, int]) -> bool:
    """Whether ``bit`` (byte index, mask) is set in ``value``; False when the value is absent or short."""
    index, mask = bit
    return value is not None and len(value) > index and bool(value[index] & mask)


class Cryptogram(enum.Enum):
    AAC = "AAC"
    TC = "TC"
    ARQC = "ARQC"


_CRYPTOGRAM_BITS = {0: Cryptogram.AAC, 1: Cryptogram.TC, 2: Cryptogram.ARQC}


def read_cryptogram_type(
    card: Mapping[int, bytes], cvr_bits_of_iad: Callable[[bytes | None], int | None], no_iad: str
) -> Cryptogram:
    """The cryptogram the card produced: from 9F27 (bits 8-7), else from the IAD's CVR.

    ``cvr_bits_of_iad`` reads the two cryptogram-type bits from the kernel's
    IAD format (None when the IAD is not one it knows); ``no_iad`` is the
    error when there is neither.
    """
    cid = card.get(0x9F27)
    if cid is not None:
        if len(cid) != 1:
            raise KernelError("Cryptogram Information Data (9F27) is not 1 byte")
        code = cid[0] >> 6
    else:
        bits = cvr_bits_of_iad(card.get(0x9F10))
        if bits is None:
            raise KernelError(no_iad)
        code = bits
    if code not in _CRYPTOGRAM_BITS:
        raise KernelError(f"cryptogram type bits {code:02b} are reserved")
    return _CRYPTOGRAM_BITS[code]


def parse_pdol(ctx: KernelContext) -> list[dol.DolEntry]:
    """The card's PDOL (9F38 of the FCI; none: empty), KernelError when malformed."""
    try:
        return dol.parse(ctx.fci_data.get(0x9F38, b""))
    except dol.DolError as exc:
        raise KernelError(f"PDOL (9F38): {exc}") from None


def gpo_values(pdol: list[dol.DolEntry], data: Mapping[int, bytes]) -> bytes:
    """The PDOL related data for GPO from the terminal's ``data``; KernelError past what a GPO carries."""
    values = dol.build(pdol, data)
    if len(values) > 127:
        raise KernelError(f"PDOL asks for {len(values)} bytes, more than GPO can carry")
    return values


def mandatory_pan(card: Mapping[int, bytes]) -> str:
    """Book C-3 5.4: the PAN, after checking the data without which there is no transaction."""
    missing = [f"{t:X}" for t in (0x9F26, 0x9F36, 0x9F10) if t not in card]
    if missing:
        raise KernelError(f"mandatory data missing: {', '.join(missing)}")
    pan = pan_of(card)
    if pan is None:
        raise KernelError("neither a PAN (5A) nor track 2 data (57)")
    if len(card[0x9F26]) != 8:
        raise KernelError("Application Cryptogram (9F26) is not 8 bytes")
    return pan


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
        if bit_set(ctq, CTQ_CDCVM_PERFORMED) and bit_set(ttq, TTQ_CDCVM):
            return CvmPerformed.CONSUMER_DEVICE
        if bit_set(ctq, CTQ_ONLINE_PIN) and bit_set(ttq, TTQ_ONLINE_PIN) and online:
            return CvmPerformed.ONLINE_PIN
        if bit_set(ctq, CTQ_SIGNATURE) and bit_set(ttq, TTQ_SIGNATURE):
            return CvmPerformed.SIGNATURE
        return CvmPerformed.FAILED
    if bit_set(ttq, TTQ_SIGNATURE):
        return CvmPerformed.SIGNATURE
    if bit_set(ttq, TTQ_ONLINE_PIN) and online:
        return CvmPerformed.ONLINE_PIN
    return CvmPerformed.FAILED


@dataclass
class Checks:
    """What the reader found in its offline checks of a TC (``ec_refusal``: C-7's electronic cash)."""

    exception_file: bool = False
    expired: bool = False
    not_yet_effective: bool = False
    oda_failed: bool = False
    ec_refusal: str | None = None


def status_outcome(ctx: KernelContext, sw: int) -> TransactionResult:
    """Book C-3 5.2: GPO status words other than 9000 (C-7 is taken to do the same)."""
    if sw == 0x6986:  # the mobile asks the cardholder to do something on the phone first
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


def fdda(ctx: KernelContext, card: Mapping[int, bytes], oda_records: list[tuple[int, bytes]]) -> OdaReport:
    """fDDA (Book C-3 5.8): the ICC key chain, then the SDAD over 9F37 | 9F02 | 5F2A | 9F69.

    The terminal data are those the card received at GPO (the card signed
    over them), the terminal's own where the PDOL did not ask for them.
    """
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
    td = ctx.terminal_data()
    sent = ctx.cryptogram_inputs
    terminal_dynamic = oda.fdda_terminal_data(
        sent.get(0x9F37, td[0x9F37]), sent.get(0x9F02, td[0x9F02]), sent.get(0x5F2A, td[0x5F2A]),
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


def _date_checks(ctx: KernelContext, card: Mapping[int, bytes], checks: Checks) -> None:
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


def offline_checks(
    ctx: KernelContext, card: Mapping[int, bytes], aip: bytes, records: RecordsRead, pan: str
) -> tuple[Checks, OdaReport]:
    """The reader's checks of a TC: exception file, fDDA (never an offline approval without it), dates."""
    checks = Checks()
    report = OdaReport()
    if ctx.config.exception_file.contains(pan):
        checks.exception_file = True
        ctx.tvr.set(Tvr.PAN_IN_EXCEPTION_FILE)
    if bit_set(aip, AIP_DDA):
        report = fdda(ctx, card, records.oda_records)
        checks.oda_failed = report.result == "failed"
    else:
        ctx.tvr.set(Tvr.ODA_NOT_PERFORMED)
        checks.oda_failed = True
    _date_checks(ctx, card, checks)
    return checks, report


def online_oda(ctx: KernelContext, card: Mapping[int, bytes], aip: bytes, records: RecordsRead) -> OdaReport:
    """An ARQC: fDDA only when the TTQ asks for ODA for online authorisations (it informs the issuer)."""
    if bit_set(ctx.ttq, TTQ_ODA_FOR_ONLINE) and bit_set(aip, AIP_DDA) and 0x9F4B in card:
        return fdda(ctx, card, records.oda_records)
    ctx.tvr.set(Tvr.ODA_NOT_PERFORMED)
    return OdaReport()


def offline_decision(ctx: KernelContext, card: Mapping[int, bytes], checks: Checks) -> tuple[Outcome, str]:
    """What becomes of a TC after the reader's checks; the string says why, for the log."""
    ctq = card.get(0x9F6C)
    online_ok = ctx.config.online_capable and not bit_set(ctx.ttq, TTQ_OFFLINE_ONLY)
    if checks.exception_file:
        return Outcome.DECLINED, "PAN in exception file"
    if checks.oda_failed:
        if bit_set(ctq, CTQ_ONLINE_IF_ODA_FAILS) and online_ok:
            return Outcome.ONLINE_REQUEST, "fDDA failed: CTQ says go online"
        if bit_set(ctq, CTQ_SWITCH_IF_ODA_FAILS) and bit_set(ctx.ttq, TTQ_CONTACT_SUPPORTED):
            return Outcome.TRY_ANOTHER_INTERFACE, "fDDA failed: CTQ says switch interface"
        return Outcome.DECLINED, "fDDA failed"
    if checks.expired:
        if bit_set(ctq, CTQ_ONLINE_IF_EXPIRED) and online_ok:
            return Outcome.ONLINE_REQUEST, "application expired: CTQ says go online"
        return Outcome.DECLINED, "application expired"
    if checks.not_yet_effective:
        return Outcome.DECLINED, "application not yet effective"
    if checks.ec_refusal is not None:
        return Outcome.DECLINED, checks.ec_refusal
    return Outcome.APPROVED, ""


def no_common_cvm(ttq: bytes, ctq: bytes | None) -> tuple[Outcome, str]:
    """A CVM is required and the card and the reader share none: what to do, and why in words.

    A card that requires online PIN (CTQ byte 1 b8) from a reader that cannot take
    one (no PIN pad, TTQ byte 1 b3 clear) is sent to the contact interface when
    the reader has one, where the card's CVM list can choose what the terminal
    supports; without a contact interface, and for every other mismatch, the
    transaction is declined.
    """
    if bit_set(ctq, CTQ_ONLINE_PIN) and not bit_set(ttq, TTQ_ONLINE_PIN):
        why = "the card requires online PIN and this reader has no PIN pad"
        if bit_set(ttq, TTQ_CONTACT_SUPPORTED):
            return Outcome.TRY_ANOTHER_INTERFACE, f"{why}: insert the card or use another payment"
        return Outcome.DECLINED, why
    return Outcome.DECLINED, "no CVM the card and the reader share"


def verify_cardholder(
    ctx: KernelContext, card: Mapping[int, bytes], outcome: Outcome, why: str
) -> tuple[CvmPerformed, Outcome, str]:
    """Card verification when pre-processing asked for a CVM (TTQ byte 2 b7): the CVM, outcome and why.

    Against the TTQ with its PIN bits removed when the terminal has no PIN pad
    (:mod:`emv.capabilities`): "online PIN" is never reported for a PIN nobody
    could enter.  Online PIN makes the outcome Online Request (only the issuer
    can check it).
    """
    if not bit_set(ctx.ttq, TTQ_CVM_REQUIRED) or outcome not in (Outcome.APPROVED, Outcome.ONLINE_REQUEST):
        return CvmPerformed.NO_CVM, outcome, why
    ttq = ctx.ttq if ctx.config.pin_pad else without_pin_ttq(ctx.ttq)
    online_ok = ctx.config.online_capable and not bit_set(ttq, TTQ_OFFLINE_ONLY)
    cvm = decide_cvm(ttq, card.get(0x9F6C), online=online_ok)
    if cvm is CvmPerformed.ONLINE_PIN:
        outcome = Outcome.ONLINE_REQUEST
        ctx.tvr.set(Tvr.ONLINE_PIN_ENTERED)
    if cvm is CvmPerformed.FAILED:
        ctx.tvr.set(Tvr.CARDHOLDER_VERIFICATION_FAILED)
        outcome, why = no_common_cvm(ttq, card.get(0x9F6C))
    ctx.tsi.set(Tsi.CARDHOLDER_VERIFICATION_PERFORMED)
    return cvm, outcome, why


_FINAL_MESSAGE = {
    Outcome.APPROVED: UiMessage(Message.APPROVED, ReaderStatus.CARD_READ_SUCCESSFULLY),
    Outcome.DECLINED: UiMessage(Message.NOT_AUTHORISED, ReaderStatus.CARD_READ_SUCCESSFULLY),
    Outcome.ONLINE_REQUEST: UiMessage(Message.AUTHORISING, ReaderStatus.CARD_READ_SUCCESSFULLY),
    Outcome.TRY_ANOTHER_INTERFACE: UiMessage(Message.INSERT_CARD, ReaderStatus.NOT_READY),
}


def final_result(
    ctx: KernelContext, outcome: Outcome, cvm: CvmPerformed, kind: Cryptogram, report: OdaReport, why: str
) -> TransactionResult:
    """The outcome with "card read" and its final message ("approved, please sign" after a signature CVM)."""
    final = _FINAL_MESSAGE[outcome]
    if outcome is Outcome.APPROVED and cvm is CvmPerformed.SIGNATURE:
        final = UiMessage(Message.APPROVED_PLEASE_SIGN, ReaderStatus.CARD_READ_SUCCESSFULLY)
    return result_from(
        ctx,
        outcome,
        [UiMessage(Message.CARD_READ_OK, ReaderStatus.CARD_READ_SUCCESSFULLY), final],
        cryptogram_type=kind.value,
        cryptogram=ctx.card_data[0x9F26],
        oda=report,
        cvm=cvm,
        error=why or None,
    )
