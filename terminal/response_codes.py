"""Host response codes in words, for the cashier, the receipt and the log.

The codes are the two-character ISO 8583 field 39 values that acquirers use
(the meanings are the common ones of ISO 8583:1987 and the card schemes'
guides).  A cashier is shown the words first and the code after them:

>>> decline_reason("51")
'insufficient funds (51)'
>>> decline_reason("Q7")
'declined by the issuer (code Q7)'
"""

from __future__ import annotations

__all__ = ["RESPONSE_CODES", "WALLET_REFUSALS", "decline_reason", "refusal_words"]

RESPONSE_CODES: dict[str, str] = {
    "00": "approved",
    "01": "refer to the card issuer",
    "02": "refer to the card issuer (special condition)",
    "03": "invalid merchant",
    "04": "pick up the card",
    "05": "do not honour",
    "06": "error",
    "07": "pick up the card (special condition)",
    "10": "approved for a partial amount",
    "12": "invalid transaction",
    "13": "invalid amount",
    "14": "invalid card number",
    "15": "no such issuer",
    "19": "re-enter the transaction",
    "21": "no action taken",
    "25": "the original transaction was not found",
    "30": "format error",
    "33": "expired card, pick up",
    "34": "suspected fraud, pick up",
    "36": "restricted card, pick up",
    "39": "no credit account",
    "41": "lost card, pick up",
    "43": "stolen card, pick up",
    "51": "insufficient funds",
    "52": "no cheque account",
    "53": "no savings account",
    "54": "expired card",
    "55": "incorrect PIN",
    "56": "no card record",
    "57": "transaction not permitted to the cardholder",
    "58": "transaction not permitted to the terminal",
    "59": "suspected fraud",
    "61": "over the amount limit",
    "62": "restricted card",
    "63": "security violation",
    "64": "the original amount is incorrect",
    "65": "over the number of payments allowed (velocity)",
    "68": "the response came too late",
    "75": "PIN tries exceeded",
    "76": "invalid account",
    "78": "the card is blocked or not activated",
    "82": "the card's cryptogram did not verify",
    "85": "no reason to decline",
    "89": "invalid terminal",
    "91": "the issuer cannot be reached",
    "92": "the issuer cannot be routed to",
    "93": "the transaction violates the law",
    "94": "duplicate transaction",
    "96": "system malfunction",
}


def decline_reason(code: str | None) -> str:
    """The reason for a response code in words, with the code after them."""
    if not code:
        return "declined by the host (no response code)"
    text = RESPONSE_CODES.get(code)
    if text is None:
        return f"declined by the issuer (code {code})"
    return f"{text} ({code})"


#: The refusals of a digital-currency hard-wallet payment (CBDC-SPEC section 5, ``cbdc.checks.Refusal``)
#: in words for the cashier and the customer; the name goes with them in the JSON result.
WALLET_REFUSALS: dict[str, str] = {
    "malformed": "the wallet's data is malformed",
    "unsupported_version": "the wallet speaks a protocol version this terminal does not",
    "untrusted_chain": "the wallet's certificates do not lead to a trusted root",
    "certificate_expired": "the wallet's certificate has expired",
    "certificate_not_yet_valid": "the wallet's certificate is not valid yet",
    "wallet_blocked": "the wallet is blocked",
    "counter_replayed": "the wallet repeated an old payment",
    "currency_mismatch": "the wallet does not hold this currency",
    "over_wallet_limit": "over the wallet's limit for one payment",
    "over_payment_limit": "over the terminal's offline limit for one digital-currency payment",
    "over_count_limit": "too many digital-currency payments since the last sync: forward the queue first",
    "over_total_limit": "over the digital-currency total allowed since the last sync: forward the queue first",
    "unsent_too_old": "digital-currency payments have waited too long to be sent: forward the queue first",
    "insufficient_balance": "the wallet's balance is too low",
    "over_daily_limit": "over the wallet's daily limit",
    "wallet_locked": "the wallet is locked by its operator",
    "record_signature": "the wallet's payment record does not verify",
    "wrong_payee": "the wallet's payment record names another payee",
    "wrong_challenge": "the wallet's payment record answers another request",
    "amount_mismatch": "the wallet's payment record is for another amount",
    "wrong_wallet": "the payment record comes from another wallet",
    "chain_broken": "the wallet's payment record does not follow its previous one",
}


def refusal_words(name: str | None) -> str:
    """A wallet refusal's name in words.

    >>> refusal_words("insufficient_balance")
    "the wallet's balance is too low"
    >>> refusal_words("something_new")
    'refused by the digital-currency checks (something_new)'
    """
    if not name:
        return "refused by the digital-currency checks"
    return WALLET_REFUSALS.get(name, f"refused by the digital-currency checks ({name})")
