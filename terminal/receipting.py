"""Receipts of journalled payments: what they say, who got one, and the printer.

A receipt is built from the journal only (no sensitive data).  The first
receipt of a copy (customer or merchant) given out is the original; any
later one of the same copy is marked duplicate, so that a reprint can never
pass for a second payment.  At the end of a payment, when a printer is
configured, the copies of ``TerminalSettings.receipt_copies`` print by
themselves; a printer fault is told to the cashier and never undoes the
payment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from terminal.core import Core
from terminal.lifecycle import APPROVED_STATES, State
from terminal.ports import ReceiptPrinter
from terminal.response_codes import decline_reason, refusal_words

__all__ = ["RECEIPT_STATUS", "Receipts"]

# What a receipt says of a payment in each state that is not approved.
RECEIPT_STATUS: dict[State, str] = {
    State.DECLINED: "DECLINED",
    State.DECLINED_AFTER_FORWARDING: "DECLINED",
    State.REJECTED_BY_HOST: "DECLINED",
    State.EXPIRED: "DECLINED",
    State.CANCELLED: "NOT COMPLETED",
    State.STARTED: "NOT COMPLETED",
    State.AUTHORISING: "NOT COMPLETED",
    State.REVERSAL_PENDING: "REVERSAL PENDING",
    State.REVERSED: "REVERSED",
    State.VOID_PENDING: "VOID PENDING",
    State.VOIDED: "VOIDED",
    State.WALLET_PAYING: "NOT COMPLETED",
    State.WALLET_TORN: "NOT COMPLETED",
    State.WALLET_REFUSED: "DECLINED",
    State.WALLET_NOT_PAID: "NOT COMPLETED",
}

_CVMS_SHOWN = ("signature", "online_pin", "offline_pin", "consumer_device")


def _reason(state: State, details: dict[str, Any]) -> str | None:
    """The reason printed under a status that is not APPROVED, in words."""
    if state in APPROVED_STATES:
        return None
    code = details.get("response_code")
    refusal = details.get("refusal")
    if state in (State.DECLINED, State.WALLET_REFUSED) and refusal:  # a wallet refused by name
        return refusal_words(refusal)
    if state in (State.WALLET_NOT_PAID, State.WALLET_TORN) or (state is State.CANCELLED and details.get("torn")):
        return "not paid: the wallet left before its record came"
    if state in (State.DECLINED, State.DECLINED_AFTER_FORWARDING) and code and code != "00":
        return decline_reason(code)
    if state is State.EXPIRED:
        return "not confirmed by the host in time"
    if state is State.REJECTED_BY_HOST:
        return "refused by the host"
    return None


class Receipts:
    def __init__(self, core: Core) -> None:
        self._core = core

    def data(self, txn_id: str, copy: str, *, issue: bool) -> Any:
        """The :class:`terminal.receipts.ReceiptData` of a transaction; KeyError when there is none."""
        from terminal.receipts import ReceiptData

        core = self._core
        row = core.store.get(txn_id)
        if row is None:
            raise KeyError(txn_id)
        before = (
            core.store.issue_receipt(txn_id, copy, core.now()) if issue else core.store.receipts_issued(txn_id, copy)
        )
        d = row.details
        status = "APPROVED" if row.state in APPROVED_STATES else RECEIPT_STATUS.get(row.state, "DECLINED")
        return ReceiptData(
            merchant_name=core.settings.merchant_name,
            merchant_address=core.settings.merchant_address,
            terminal_id=core.config.terminal_id,
            merchant_id=core.config.merchant_id,
            txn_id=row.txn_id,
            kind=row.kind,  # type: ignore[arg-type]
            at=datetime.fromisoformat(row.created_at),
            masked_pan=row.masked_pan or "",
            application_label=d.get("application_label") or "",
            aid=d.get("aid") or "",
            amount=row.amount,
            currency=row.currency,
            cryptogram_type=d.get("cryptogram_type"),
            cryptogram=d.get("cryptogram"),
            tvr=d.get("tvr") or "0000000000",
            tsi=d.get("tsi") or "0000",
            cvm=d["cvm"] if d.get("cvm") in _CVMS_SHOWN else "no_cvm",
            status=status,  # type: ignore[arg-type]
            offline=bool(d.get("offline")),
            deferred=bool(d.get("deferred")),
            approval_code=d.get("approval_code"),
            host_reference=d.get("host_reference"),
            response_code=d.get("response_code"),
            reprint=before > 0,
            # a PIN really typed on the PIN pad for this payment (terminal.pin_entry): the receipt says
            # "PIN VERIFIED" for an issuer's approval of it, or the card's own check of an offline PIN
            pin_entered=d.get("cvm") in ("online_pin", "offline_pin")
            and d.get("pin") in ("verified", "offline_verified", "incorrect", "tries_exceeded", "entered"),
            reason=_reason(row.state, d),
            wallet_counter=d.get("counter") if d.get("kernel") == "cbdc" else None,
            record_hash=d.get("record_hash"),
        )

    def print(self, printer: ReceiptPrinter, txn_id: str, copy: str) -> None:
        """Print one copy (raises DeviceError from the printer, KeyError for an unknown payment)."""
        from terminal.receipts import render_escpos

        printer.print_job(render_escpos(self.data(txn_id, copy, issue=True), copy))  # type: ignore[arg-type]

    def print_after_payment(self, printer: ReceiptPrinter, txn_id: str) -> str | None:
        """Print the configured copies; the warning to show when the printer failed, else None."""
        for copy in self._core.settings.receipt_copies:
            try:
                self.print(printer, txn_id, copy)
            except Exception as exc:  # any fault of the printer or its configuration: the payment stands
                return f"receipt not printed ({exc}): 'posterm receipt {txn_id} --print' prints it"
        return None
