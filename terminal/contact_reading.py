"""An inserted chip card in a payment: the contact kernel over the reader's session.

:func:`read_card` (:mod:`terminal.card_reading`) tells an inserted card by its
ATR (:func:`emv.contact.card_interface`) and runs :func:`read_contact` instead
of Entry Point.  The contact kernel needs the card again after the host has
answered (issuer authentication, scripts, the second GENERATE AC), so an
Online Request keeps the card's session open in a :class:`HeldCard`, which the
payment completes with the host's answer (:meth:`HeldCard.complete`) and
closes; anything else closes the session at once.

The cardholder is the configured PIN pad (:func:`terminal.pin_entry.cardholder_for`)
for an offline PIN; without a PIN pad the kernel advertises no PIN (9F33) and
offline PIN counts as "PIN pad not present".  With one, 9F33 claims the
offline PINs the pad can take (:class:`~terminal.ports.OfflinePinAbility`):
the simulated pad all, the on-screen pad plaintext and enciphered (it hands
the digits to the kernel), a serial pad enciphered only, and only when it
said so when opened (it enciphers the PIN itself; a separate pad cannot hand
a clear PIN to the card).  A card asking for an offline PIN the terminal does
not claim goes on to its next CVM rule (Book 3 10.5).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from emv.config import TerminalConfig
from emv.contact import ContactConfig, ContactKernel, ContactResult
from emv.contact import HostAnswer as CardHostAnswer
from emv.outcome import Outcome
from emv.transaction import TransactionData
from terminal.core import Core
from terminal.pin_entry import PadCardholder, cardholder_for
from terminal.ports import CancelToken, CardSession

__all__ = ["HeldCard", "read_contact"]


@dataclass
class HeldCard:
    """An inserted card waiting for the host's answer to its ARQC (the session stays open)."""

    kernel: ContactKernel
    session: CardSession
    closed: bool = False

    def complete(
        self,
        response_code: str | None,
        arpc: bytes | None,
        scripts: bytes = b"",
        *,
        issuer_authentication_data: bytes | None = None,
    ) -> ContactResult:
        """The second half with the host's answer (None: the terminal could not go online); closes the card.

        ``issuer_authentication_data``: 91 whole as the host sent it (ARPC method 1 or 2); else ``arpc``.
        """
        try:
            answer = (
                CardHostAnswer.unable_to_go_online()
                if response_code is None
                else CardHostAnswer.from_host(
                    response_code, arpc, scripts, issuer_authentication_data=issuer_authentication_data
                )
            )
            return self.kernel.complete(answer)
        finally:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.session.close()


def read_contact(
    core: Core,
    session: CardSession,
    config: TerminalConfig,
    txn: TransactionData,
    token: CancelToken,
) -> tuple[ContactResult, HeldCard | None]:
    """Run the contact kernel to its first outcome; a :class:`HeldCard` for an Online Request."""
    pad = getattr(core, "pin_pad", None)
    contact = ContactConfig.from_terminal(config)
    cardholder: PadCardholder | None = None
    if pad is not None:
        cardholder, ability = cardholder_for(
            pad, txn.amount, txn.currency, allow_bypass=core.settings.pin_bypass,
            timeout=core.settings.pin_timeout_seconds, cancel=token,
        )  # fmt: skip
        contact = replace(contact, plaintext_pin=ability.plaintext, enciphered_pin=ability.enciphered)
    kernel = ContactKernel(session, contact, txn, cardholder=cardholder, entropy=secrets.token_bytes(32))
    result = kernel.start()
    if cardholder is not None and cardholder.problem and result.outcome is Outcome.END_APPLICATION:
        result.error = cardholder.problem  # the pad's fault, not the customer's cancel
    if result.outcome is Outcome.ONLINE_REQUEST:
        return result, HeldCard(kernel, session)
    return result, None
