"""Kernel C-2's records: the active AFL (without the mag-stripe record) and what reading it must give.

Book C-2 S3.30ff: in EMV mode, when the Kernel Configuration supports
mag-stripe mode and the AFL begins with the entry 08 01 01 00 (SFI 1, record
1: the mag-stripe record), that entry is removed from the active AFL: the
record is not read.  A card may refuse to read it in EMV mode, and a kernel
that read it would end the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping

from emv import tlv
from emv.c2_data import C2Config
from emv.c2_outcome import L2_CARD_DATA_ERROR, L2_CARD_DATA_MISSING, C2KernelError
from emv.kernel_common import KernelContext, RecordsRead, read_records
from emv.pan import pan_of

__all__ = ["MAG_STRIPE_AFL_ENTRY", "MANDATORY", "active_afl", "read_active_afl"]

#: The AFL entry of the mag-stripe record: SFI 1, record 1 to 1, none for ODA.
MAG_STRIPE_AFL_ENTRY = bytes.fromhex("08010100")
#: What the records must give: PAN, expiry date, CDOL1.
MANDATORY = (0x5A, 0x5F24, 0x8C)


def active_afl(afl: bytes, cfg: C2Config) -> bytes:
    """The AFL the kernel reads in EMV mode (Book C-2 S3.30ff): without a first entry
    08 01 01 00 (the mag-stripe record) when the Kernel Configuration supports mag-stripe mode.

    >>> active_afl(bytes.fromhex("08010100 10010301"), C2Config({0xDF811B: bytes.fromhex("20")})).hex()
    '10010301'
    >>> active_afl(bytes.fromhex("08010100 10010301"), C2Config({0xDF811B: bytes.fromhex("A0")})).hex()
    '0801010010010301'
    """
    if cfg.mag_stripe_supported and afl[:4] == MAG_STRIPE_AFL_ENTRY:
        return afl[4:]
    return afl


def read_active_afl(ctx: KernelContext, afl: bytes, known: Mapping[int, bytes]) -> tuple[RecordsRead, str]:
    """READ RECORD every record of the active AFL; the records and the PAN.

    ``known``: what the card gave before (a record may not repeat it).  Raises
    :class:`~emv.c2_outcome.C2KernelError`: CARD DATA MISSING without PAN,
    expiry date or CDOL1; CARD DATA ERROR for a PAN that is not numeric.
    """
    currency = ctx.txn.currency_bcd()
    records = read_records(ctx, afl, known=known)
    data = {**known, **records.data}
    missing = [tlv.tag_hex(t) for t in MANDATORY if not data.get(t)]
    if missing:
        raise C2KernelError(
            f"mandatory card data missing: {', '.join(missing)}", L2_CARD_DATA_MISSING, currency=currency
        )
    pan = pan_of(data)
    if pan is None:
        raise C2KernelError("PAN (5A) is not numeric", L2_CARD_DATA_ERROR, currency=currency)
    return records, pan
