"""Kernel C-2's cardholder verification: on-device CVM or the card's CVM list (emv.cvm).

Called after 9F33 byte 2 was set from DF8118 / DF8119 (S456): that byte is
the CVM capability the CVM list is read against, without its PIN methods when
the terminal has no PIN pad, whatever it claims (an override included): the
CVM list then moves on to the next rule, or CVM fails (TVR byte 3).
"""

from __future__ import annotations

from collections.abc import Mapping

from emv import cvm
from emv.c2_outcome import L2_CARD_DATA_ERROR, C2KernelError
from emv.capabilities import without_pin_cvm_capability
from emv.kernel_common import KernelContext
from emv.outcome import CvmPerformed

__all__ = ["AIP_CVM", "select_cvm"]

#: AIP byte 1 b5: cardholder verification is supported.
AIP_CVM = 0x10


def select_cvm(
    ctx: KernelContext,
    card: Mapping[int, bytes],
    aip: bytes,
    capability: int,
    *,
    on_device: bool,
    above_limit: bool,
    terminal_type: int,
) -> cvm.CvmOutcome:
    """The CVM: on-device CVM when card and kernel support it (the phone verified the cardholder
    above the CVM required limit; no CVM below it), none when the card does not support CVM,
    else the CVM list against ``capability`` (9F33 byte 2)."""
    if on_device:
        if above_limit:
            return cvm.CvmOutcome(bytes.fromhex("010002"), CvmPerformed.CONSUMER_DEVICE)
        return cvm.CvmOutcome(bytes.fromhex("3F0002"), CvmPerformed.NO_CVM)
    if not aip[0] & AIP_CVM:
        return cvm.no_cvm_supported_by_card()
    cvm_list: cvm.CvmList | None = None
    raw = card.get(0x8E)
    if raw:
        try:
            cvm_list = cvm.parse_cvm_list(raw)
        except cvm.CvmListError as exc:
            raise C2KernelError(f"CVM list (8E): {exc}", L2_CARD_DATA_ERROR, currency=ctx.txn.currency_bcd()) from None
    if not ctx.config.pin_pad:
        capability = without_pin_cvm_capability(capability)
    cctx = cvm.CvmContext(
        amount=ctx.txn.amount,
        transaction_currency=ctx.txn.currency_bcd(),
        application_currency=card.get(0x9F42),
        cvm_capability=capability,
        transaction_type=ctx.txn.transaction_type,
        terminal_type=terminal_type,
        pin_pad_working=ctx.config.pin_pad,
    )
    return cvm.process(cvm_list, cctx)
