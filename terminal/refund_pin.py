"""The cardholder's PIN on a refund, where the terminal is configured to ask for one.

Some acquirers and markets require the cardholder's PIN to refund to a card
(UnionPay terminals carry "PIN for refund" among their parameters); others
never ask.  :attr:`TerminalSettings.pin_on_refund <terminal.core.TerminalSettings>`
says which (terminal.json or the downloaded parameters, key ``pin_on_refund``):

``never`` (the default)
    a refund asks no PIN, whatever PIN pad is configured.
``online``
    a refund that reads a card (an unreferenced refund, or one against a sale
    with the card presented) asks the cardholder's PIN on the PIN pad, showing
    the amount and the masked PAN, after the card was read and before anything
    is journalled, and sends the PIN block with the refund's authorisation for
    the issuer to check.  A refund against a sale that reads no card (it goes
    to the sale's card, and the host checks that it is covered) asks none.

What follows from ``online`` (:func:`refund_pin_needed` before the card is
read, :func:`collect_refund_pin` after):

- no PIN pad configured: refused in one line before the card is read
  (``PaymentRefused`` ``pin_pad``), nothing journalled, nothing refunded;
- ``force_offline``: refused likewise (only the issuer can check the PIN, so
  such a refund cannot be stored offline); with the host unreachable
  otherwise, the refund is declined in words, nothing stored
  (:meth:`terminal.payments.Payments._go_online`);
- cancel, timeout, a PIN pad that cannot be used: not completed, nothing sent;
- no bypass: the pad is asked without the bypass key (a PIN the acquirer
  requires cannot be skipped), and a pad that answers "bypassed" anyway ends
  the refund not completed;
- an inserted card that verified the cardholder's PIN itself during its
  reading (offline PIN, ``pin`` ``offline_verified``) is not asked again;
- the refund's ``pin`` (JSON result, journal) is ``entered`` when sent, then
  ``verified`` when the issuer approved it, ``incorrect`` (55) or
  ``tries_exceeded`` (75) when it declined for the PIN; its ``cvm`` is
  ``online_pin`` and the journal's copy of the TVR has "online PIN entered"
  (the host gets the data objects as the card gave them).  The receipt says
  "PIN VERIFIED" only for ``verified``.

Voids never read a card in posterm (a void reverses a payment of the open
batch at the host, :meth:`terminal.follow_ups.FollowUps.void`), so they ask no PIN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from emv.outcome import TransactionResult
from emv.tvr import Tvr
from terminal.offline import OfflineBehavior, PaymentRefused
from terminal.pin_entry import OnlinePin, collect_online_pin
from terminal.ports import CancelToken

if TYPE_CHECKING:
    from terminal.core import Core

__all__ = ["collect_refund_pin", "refund_pin_needed", "tvr_online_pin_entered"]

_UNDONE = "nothing was refunded"


def refund_pin_needed(core: Core, *, reads_card: bool, behavior: OfflineBehavior) -> bool:
    """Whether this refund asks the cardholder's PIN (called before the card is read).

    Raises PaymentRefused (reason ``pin_pad``, or ``pin_offline``) when it
    needs a PIN it cannot take: nothing has been read or journalled then.
    """
    if not reads_card or core.settings.pin_on_refund != "online":
        return False
    if core.pin_pad is None:
        raise PaymentRefused(
            "pin_pad",
            "refused: a refund to a card needs the cardholder's PIN here (pin_on_refund: online) and no PIN pad "
            "is configured ('posterm devices set pin-pad URL', or --pin-pad URL); nothing was refunded",
        )
    if behavior is OfflineBehavior.FORCE_OFFLINE:
        raise PaymentRefused(
            "pin_offline",
            "refused: a refund with the cardholder's PIN goes to the issuer, which alone checks the PIN: it cannot "
            "be stored offline (force_offline); nothing was refunded",
        )
    return True


def collect_refund_pin(
    core: Core,
    result: TransactionResult,
    amount: int,
    currency: int,
    details: dict[str, Any],
    new_token: Callable[[], CancelToken] | None,
) -> tuple[OnlinePin | None, dict[str, Any]]:
    """Ask the PIN for a refund whose card was read; the PIN (None: the card verified it) and the details then.

    Raises PaymentRefused (reasons ``pin_cancelled``, ``pin_timeout``,
    ``pin_pad``, ``pin_bypassed``) for a refund not completed: nothing is
    journalled yet, nothing is sent.
    """
    if details.get("pin") == "offline_verified":  # the card checked the PIN it was given: not asked twice
        return None, details
    online = collect_online_pin(
        core.pin_pad, result, amount, currency, allow_bypass=False, timeout=core.settings.pin_timeout_seconds,
        cancel=new_token() if new_token is not None else None, undone=_UNDONE, purpose="refund",
    )  # fmt: skip
    if online.bypassed:  # a pad that ignored the request's "no bypass"
        raise PaymentRefused(
            "pin_bypassed", f"not completed: a refund here needs the cardholder's PIN, and it was bypassed; {_UNDONE}"
        )
    out = details | {"pin": "entered", "cvm": "online_pin"}
    if isinstance(out.get("tvr"), str):
        out["tvr"] = tvr_online_pin_entered(out["tvr"])
    return online, out


def tvr_online_pin_entered(tvr_hex: str) -> str:
    """The journal's TVR once an online PIN was entered (EMV Book 3 Annex C1: byte 3 b3).

    >>> tvr_online_pin_entered("0000000000")
    '0000040000'
    """
    try:
        raw = bytes.fromhex(tvr_hex)
    except ValueError:
        return tvr_hex
    if len(raw) != Tvr.LENGTH:
        return raw.hex().upper()
    tvr = Tvr(raw)
    tvr.set(Tvr.ONLINE_PIN_ENTERED)
    return tvr.value.hex().upper()
