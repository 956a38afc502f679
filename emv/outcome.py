"""What a kernel hands back: the outcome, UI messages, ODA report and data.

The names follow EMV Contactless Book A/B.  :class:`TransactionResult` is the
one object every layer above ``emv`` reads; its :meth:`TransactionResult.to_json`
is what ``posterm emv tap`` prints.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emv import outcome_data as _outcome_data
from emv.pan import mask_pan, pan_of

if TYPE_CHECKING:
    from emv.kernel_common import PreProcessingIndicators

__all__ = [
    "CvmPerformed",
    "Message",
    "OdaReport",
    "Outcome",
    "ReaderStatus",
    "Restart",
    "Start",
    "TransactionResult",
    "UiMessage",
    # re-exported from emv.pan for terminal.facade until it imports it from there (issue 9); then dropped
]


class Outcome(enum.Enum):
    APPROVED = "approved"
    DECLINED = "declined"
    ONLINE_REQUEST = "online_request"
    TRY_AGAIN = "try_again"
    SELECT_NEXT = "select_next"
    TRY_ANOTHER_INTERFACE = "try_another_interface"
    END_APPLICATION = "end_application"


class Message(enum.IntEnum):
    """User-interface message identifiers of EMV Book A."""

    APPROVED = 0x03
    NOT_AUTHORISED = 0x07
    ENTER_PIN = 0x09
    PROCESSING_ERROR = 0x0F
    REMOVE_CARD = 0x10
    PRESENT_CARD = 0x15
    PROCESSING = 0x16
    CARD_READ_OK = 0x17
    INSERT_OR_SWIPE = 0x18
    PRESENT_ONE_CARD_ONLY = 0x19
    APPROVED_PLEASE_SIGN = 0x1A
    AUTHORISING = 0x1B
    INSERT_SWIPE_OR_TRY_ANOTHER = 0x1C
    INSERT_CARD = 0x1D
    SEE_PHONE = 0x20
    PRESENT_CARD_AGAIN = 0x21


MESSAGE_TEXT: dict[Message, str] = {
    Message.APPROVED: "Approved",
    Message.NOT_AUTHORISED: "Not authorised",
    Message.ENTER_PIN: "Enter PIN",
    Message.PROCESSING_ERROR: "Processing error",
    Message.REMOVE_CARD: "Remove card",
    Message.PRESENT_CARD: "Present card",
    Message.PROCESSING: "Processing",
    Message.CARD_READ_OK: "Card read OK",
    Message.INSERT_OR_SWIPE: "Insert or swipe card",
    Message.PRESENT_ONE_CARD_ONLY: "Present one card only",
    Message.APPROVED_PLEASE_SIGN: "Approved - please sign",
    Message.AUTHORISING: "Authorising, please wait",
    Message.INSERT_SWIPE_OR_TRY_ANOTHER: "Insert, swipe or try another card",
    Message.INSERT_CARD: "Insert card",
    Message.SEE_PHONE: "See phone for instructions",
    Message.PRESENT_CARD_AGAIN: "Present card again",
}


class ReaderStatus(enum.Enum):
    """Reader status of Book A with the number of contactless lights lit."""

    NOT_READY = "not_ready"
    IDLE = "idle"
    READY_TO_READ = "ready_to_read"
    PROCESSING = "processing"
    CARD_READ_SUCCESSFULLY = "card_read_successfully"
    PROCESSING_ERROR = "processing_error"

    @property
    def lights(self) -> int:
        return {
            ReaderStatus.NOT_READY: 0,
            ReaderStatus.IDLE: 0,
            ReaderStatus.READY_TO_READ: 1,
            ReaderStatus.PROCESSING: 2,
            ReaderStatus.CARD_READ_SUCCESSFULLY: 4,
            ReaderStatus.PROCESSING_ERROR: 0,
        }[self]


@dataclass(frozen=True)
class UiMessage:
    message: Message
    status: ReaderStatus

    def to_json(self) -> dict[str, Any]:
        return {
            "id": f"{int(self.message):02X}",
            "text": MESSAGE_TEXT[self.message],
            "status": self.status.value,
            "lights": self.status.lights,
        }


class Start(enum.Enum):
    """Where Entry Point starts again after an outcome (Book B 3.5, the outcome parameter "Start")."""

    B = "B"  # protocol activation: poll for the card again (Try Again)
    C = "C"  # combination selection: the next candidate (Select Next)
    D = "D"  # kernel activation with the online response


@dataclass(frozen=True)
class Restart:
    """The outcome parameters of a restart (Book B 3.5.1, 3.2.1): where Entry Point starts again, the
    UI Request on Restart shown when it does, and the Pre-Processing Indicators kept for it (a restart
    does not repeat pre-processing: the Restart flag is set; keyed by (AID, kernel id))."""

    start: Start
    ui_request: UiMessage | None = None
    indicators: dict[tuple[bytes, int], PreProcessingIndicators] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.value,
            "ui_request_on_restart": self.ui_request.to_json() if self.ui_request else None,
        }


class CvmPerformed(enum.Enum):
    NO_CVM = "no_cvm"
    ONLINE_PIN = "online_pin"
    OFFLINE_PIN = "offline_pin"
    SIGNATURE = "signature"
    CONSUMER_DEVICE = "consumer_device"
    FAILED = "failed"
    NOT_PERFORMED = "not_performed"


@dataclass
class OdaReport:
    """Offline data authentication as the JSON result shows it."""

    method: str | None = None  # "SDA", "DDA", "fDDA", "CDA" or None
    result: str = "not_performed"  # "passed", "failed", "not_performed"
    issuer_key_recovered: bool = False
    icc_key_recovered: bool = False
    failure: str | None = None  # a name from emv.oda.FAILURES

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "result": self.result,
            "issuer_key_recovered": self.issuer_key_recovered,
            "icc_key_recovered": self.icc_key_recovered,
            "failure": self.failure,
        }


@dataclass
class TransactionResult:
    """Everything the terminal needs after a tap.

    ``card_data`` holds the data objects the card returned and the terminal
    data objects used (tag -> value).  It contains the PAN in clear: it must
    never be printed or logged; use :meth:`to_json` (masked) for display.
    """

    outcome: Outcome
    kernel: int | str | None = None  # a contactless kernel id (2, 3) or "contact"
    aid: bytes | None = None
    application_label: str | None = None
    cryptogram_type: str | None = None  # "TC", "ARQC", "AAC" or None
    cryptogram: bytes | None = None
    oda: OdaReport = field(default_factory=OdaReport)
    tvr: bytes = bytes(5)
    tsi: bytes = bytes(2)
    cvm: CvmPerformed = CvmPerformed.NOT_PERFORMED
    messages: list[UiMessage] = field(default_factory=list)
    commands: list[bytes] = field(default_factory=list)
    card_data: dict[int, bytes] = field(default_factory=dict)
    # the terminal data objects as the card received them when it computed its cryptogram
    # (they may differ from card_data's: the TVR changes after GPO in C-3); what a host needs
    # to verify the cryptogram
    cryptogram_inputs: dict[int, bytes] = field(default_factory=dict)
    # Book B outcome parameters: the restart (Start B after Try Again) or None; the Field Off Request's
    # hold time in units of 100 ms (None: N/A); the Removal Timeout in units of 100 ms
    restart: Restart | None = None
    field_off_hold: int | None = None
    removal_timeout: int = 0
    error: str | None = None  # why a non-final outcome was reached, for the log
    # the outcome as the kernel's book codes it (C-2: DF8129, DF8116, DF8115, FF8106); empty for C-3
    outcome_data: dict[int, bytes] = field(default_factory=dict)

    @property
    def masked_pan(self) -> str | None:
        """The PAN (:func:`emv.pan.pan_of`) masked by :func:`emv.pan.mask_pan`; None without a valid PAN."""
        pan = pan_of(self.card_data)
        return mask_pan(pan) if pan is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "kernel": self.kernel,
            "aid": self.aid.hex().upper() if self.aid else None,
            "application_label": self.application_label,
            "pan": self.masked_pan,
            "cryptogram_type": self.cryptogram_type,
            "cryptogram": self.cryptogram.hex().upper() if self.cryptogram else None,
            "oda": self.oda.to_json(),
            "tvr": self.tvr.hex().upper(),
            "tsi": self.tsi.hex().upper(),
            "cvm": self.cvm.value,
            "messages": [m.to_json() for m in self.messages],
            # Book B: {"start", "ui_request_on_restart", "field_off_request", "removal_timeout"}
            "outcome_parameters": {
                **(self.restart.to_json() if self.restart else {"start": None, "ui_request_on_restart": None}),
                "field_off_request": self.field_off_hold,
                "removal_timeout": self.removal_timeout,
            },
            "commands": [c.hex().upper() for c in self.commands],
            "error": self.error,
            # Book C-2 / Book A: {"DF8129": {"hex", "decoded"}, ...} or null (emv.outcome_data)
            "outcome_data": _outcome_data.to_json(self.outcome_data),
        }
