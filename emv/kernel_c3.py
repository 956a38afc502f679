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

from collections.abc import Mapping

from emv import apdu
from emv.gpo_kernel import (
    Cryptogram,
    decide_cvm,
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
from emv.kernel_common import KernelContext, gpo_response, read_records, send
from emv.outcome import OdaReport, Outcome, TransactionResult
from emv.tvr import Tvr

__all__ = [
    "Cryptogram",
    "cryptogram_type",
    "decide_cvm",
    "run",
]


def _visa_cvr_bits(iad: bytes | None) -> int | None:
    """CVR byte 2 bits 6-5 of a Visa IAD format 0 (06 DKI CVN CVR(4) ..., CVN 10 or 17), else None."""
    if iad is None or len(iad) < 5 or iad[0] != 0x06 or iad[2] not in (0x0A, 0x11) or iad[3] != 0x03:
        return None
    return (iad[4] >> 4) & 0x03


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
    return read_cryptogram_type(card, _visa_cvr_bits, "no 9F27 and no Visa IAD (9F10) to tell the cryptogram type")


def _gpo(ctx: KernelContext) -> apdu.Response:
    pdol = parse_pdol(ctx)
    values = gpo_values(pdol, ctx.terminal_data())
    ctx.record_dol_values(pdol, values)  # qVSDC computes its cryptogram at GPO, over these
    return send(ctx, apdu.gpo(values), "GET PROCESSING OPTIONS")


def run(ctx: KernelContext) -> TransactionResult:
    """Kernel 3 from GPO to the outcome.

    Raises :class:`~emv.kernel_common.KernelError` on malformed card data and
    lets :class:`~emv.apdu.CardCommunicationError` through (Entry Point maps
    both to outcomes).
    """
    resp = _gpo(ctx)
    if not resp.ok:
        return status_outcome(ctx, resp.sw)
    aip, afl, gpo_data = gpo_response(resp.data)
    ctx.card_data.update(gpo_data)
    records = read_records(ctx, afl, known=gpo_data)
    ctx.card_data.update(records.data)
    card = ctx.card_data
    pan = mandatory_pan(card)
    kind = cryptogram_type(card)

    report = OdaReport()
    if kind is Cryptogram.TC:
        checks, report = offline_checks(ctx, card, aip, records, pan)
        outcome, why = offline_decision(ctx, card, checks)
    elif kind is Cryptogram.ARQC:
        outcome, why = Outcome.ONLINE_REQUEST, ""
        report = online_oda(ctx, card, aip, records)
    else:
        outcome, why = Outcome.DECLINED, "card declined (AAC)"
        ctx.tvr.set(Tvr.ODA_NOT_PERFORMED)

    cvm, outcome, why = verify_cardholder(ctx, card, outcome, why)
    return final_result(ctx, outcome, cvm, kind, report, why)
