"""The contact EMV kernel (EMV Book 1 12, Book 2, Book 3): a chip card inserted in the terminal.

Pure like the rest of ``emv``: the card through :class:`~emv.apdu.ApduTransport`,
the cardholder through :class:`Cardholder`, the host's answer as a
:class:`HostAnswer`.  Use::

    kernel = ContactKernel(transport, ContactConfig.from_terminal(cfg), txn, cardholder=pin_pad_ui)
    result = kernel.start()                      # Approved / Declined / Online Request / End Application
    if result.outcome is Outcome.ONLINE_REQUEST:
        result = kernel.complete(HostAnswer.from_host(code, arpc, scripts))   # or unable_to_go_online()

The result is a :class:`ContactResult` (a :class:`~emv.outcome.TransactionResult`)
whose ``kernel`` is ``"contact"``.  Modules: :mod:`.selection` (Book 1 12),
:mod:`.processing` (GPO, records, ODA, restrictions, risk management),
:mod:`.verification` (CVM and offline PIN), :mod:`.actions` (action analysis,
GENERATE AC, CDA), :mod:`.online` (issuer authentication and scripts),
:mod:`.kernel` (the flow), :mod:`.interface` (contact or contactless, from the ATR).
"""

from emv.contact.config import ContactApplication, ContactConfig
from emv.contact.interface import card_interface
from emv.contact.kernel import KERNEL, ContactKernel, ContactResult
from emv.contact.ports import Candidate, Cardholder, HostAnswer, PinEntry, PinKind, PinStatus
from emv.contact.verification import encipher_pin, pin_block

__all__ = [
    "KERNEL",
    "Candidate",
    "Cardholder",
    "ContactApplication",
    "ContactConfig",
    "ContactKernel",
    "ContactResult",
    "HostAnswer",
    "PinEntry",
    "PinKind",
    "PinStatus",
    "card_interface",
    "encipher_pin",
    "pin_block",
]
