"""What a payment's state and a card reading's end mean, in words; what the journal keeps of an inserted card's end.

Split from :mod:`terminal.payments`, which decides; this module only says.
"""

from __future__ import annotations

from typing import Any

from emv.outcome import Outcome, TransactionResult
from terminal.lifecycle import State
from terminal.money import currency, format_amount
from terminal.response_codes import decline_reason, refusal_words
from terminal.store import TxnRow

__all__ = ["card_after", "money_text", "not_completed_text", "state_text"]


def money_text(minor: int, code: int) -> str:
    try:
        return format_amount(minor, currency(code))
    except ValueError:
        return f"{minor} (currency {code:03d})"


_STATE_TEXT = {
    State.APPROVED: "approved",
    State.OFFLINE_APPROVED: "approved (offline)",
    State.DEFERRED_APPROVED: "approved (deferred: the host will confirm later)",
    State.FORWARDED: "approved (confirmed by the host)",
    State.CANCELLED: "not completed: nothing was charged",
    State.REVERSAL_PENDING: "not completed: reversal pending; nothing stays charged",
    State.REVERSED: "not completed: reversed; nothing was charged",
    State.VOID_PENDING: "voided (the reversal is sent when the host can be reached)",
    State.VOIDED: "voided",
    State.DECLINED_AFTER_FORWARDING: "declined by the host after forwarding",
    State.REJECTED_BY_HOST: "refused by the host",
    State.EXPIRED: "not confirmed by the host in time",
    State.AUTHORISING: "in progress",
    State.STARTED: "in progress",
    State.WALLET_PAYING: "in progress",
    State.WALLET_TORN: "in progress: present the same wallet again",
    State.WALLET_APPROVED: "approved (offline)",
    State.WALLET_CREDITED: "approved (credited by the wallet's operator)",
    State.WALLET_NOT_PAID: "not paid: the wallet left before its record came; a notice is queued for its operator",
    State.QR_PENDING: "in progress",
    State.QR_PAID: "approved",
    State.QR_IN_DOUBT: "not completed: in doubt ('posterm qr orders --check' asks the host)",
    State.QR_VOIDING: "voided (the host is asked to cancel it)",
}


def card_after(final: TransactionResult) -> dict[str, Any]:
    """What the journal keeps of an inserted card's second GENERATE AC (no card data)."""
    out: dict[str, Any] = {
        "card_outcome_after_host": final.outcome.value,
        "cryptogram_type": final.cryptogram_type,
        "cryptogram": final.cryptogram.hex().upper() if final.cryptogram else None,
        "tvr": final.tvr.hex().upper(),
        "tsi": final.tsi.hex().upper(),
    }
    for name in ("script_results", "cvm_results"):
        value = getattr(final, name, None)
        if isinstance(value, bytes) and value:
            out[name] = value.hex().upper()
    auth = getattr(final, "issuer_authentication", None)
    if isinstance(auth, str):
        out["issuer_authentication"] = auth
    return out


def state_text(row: TxnRow) -> str:
    """What a payment's state means for the customer, in words (a decline with its reason)."""
    if row.state in (State.DECLINED, State.WALLET_REFUSED) and row.details.get("refusal"):
        return f"declined: {refusal_words(row.details.get('refusal'))}"
    if row.state is State.DECLINED_AFTER_FORWARDING and row.details.get("response_code"):
        return f"declined by the host after forwarding: {decline_reason(row.details.get('response_code'))}"
    if row.state is State.DECLINED:
        code = row.details.get("response_code")
        return f"declined: {decline_reason(code)}" if code and code != "00" else "declined"
    return str(_STATE_TEXT.get(row.state, row.state.value))


def not_completed_text(result: TransactionResult) -> str:
    """Why a card reading ended without a payment, in the words the customer needs."""
    error = result.error or ""
    if result.kernel == "contact":  # an inserted card: it is already in the slot
        return f"not completed: {error or 'the card ended the transaction'}; nothing was charged"
    if result.outcome is Outcome.TRY_ANOTHER_INTERFACE:
        if "insert" in error:  # Entry Point and the kernels say why in words (the limit, a PIN needed)
            return f"not completed: {error}"
        return "not completed: insert or use another payment"
    if result.outcome is Outcome.TRY_AGAIN:
        return "not completed: the card was taken away too early; nothing was charged"
    if result.outcome is Outcome.END_APPLICATION:
        return f"not completed: {error or 'the card ended the transaction'}; insert or use another payment"
    return f"not completed: {result.outcome.value.replace('_', ' ')}"
