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

__all__ = ["RESPONSE_CODES", "decline_reason"]

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
    "75": "too many PIN tries",
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
