"""posterm's EMV contactless core: pure protocol code, no I/O, no clock, no threads.

The public face for the layers above:

>>> import emv
>>> cfg = emv.TerminalConfig.example(capks=None)
>>> txn = emv.TransactionData(1234, 978, bytes.fromhex("250614"), bytes(4))
>>> class NoCard:
...     def exchange(self, command: bytes) -> bytes:
...         raise emv.CardCommunicationError("no card")
>>> emv.process(NoCard(), cfg, txn).outcome
<Outcome.TRY_AGAIN: 'try_again'>
"""

from emv.apdu import ApduTransport, CardCommunicationError
from emv.capk import Capk, CapkError, CapkStore
from emv.config import Combination, ConfigError, ExceptionFile, TerminalConfig
from emv.entry_point import CollisionDetected, process
from emv.kernel_common import KernelContext, KernelError
from emv.oda import CertificateRevocationList, OdaFailure
from emv.outcome import CvmPerformed, Message, OdaReport, Outcome, ReaderStatus, TransactionResult, UiMessage
from emv.transaction import TransactionData
from emv.tvr import Tsi, Tvr

__all__ = [
    "ApduTransport",
    "Capk",
    "CapkError",
    "CapkStore",
    "CardCommunicationError",
    "CertificateRevocationList",
    "CollisionDetected",
    "Combination",
    "ConfigError",
    "CvmPerformed",
    "ExceptionFile",
    "KernelContext",
    "KernelError",
    "Message",
    "OdaFailure",
    "OdaReport",
    "Outcome",
    "ReaderStatus",
    "TerminalConfig",
    "TransactionData",
    "TransactionResult",
    "Tsi",
    "Tvr",
    "UiMessage",
    "process",
]
