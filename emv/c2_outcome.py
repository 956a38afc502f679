"""Kernel C-2's outcome data objects, built: DF8129, DF8116, DF8115 and FF8106 (Book C-2 / Book A).

posterm's own fields of a result (outcome, messages, CVM) say the same thing
in its own words; these are the data objects a C-2 kernel hands over, so that
a certification tool or a log reader sees the book's coding.  Decoding is in
:mod:`emv.outcome_data`.

:class:`C2KernelError` is a :class:`~emv.kernel_common.KernelError` (End
Application) that says which L2 error it is, with its data objects ready in
``outcome_data``.

>>> from emv.outcome import CvmPerformed, Message, Outcome, ReaderStatus, UiMessage
>>> objs = outcome_objects(Outcome.APPROVED, UiMessage(Message.APPROVED, ReaderStatus.CARD_READ_SUCCESSFULLY),
...                        CvmPerformed.NO_CVM, currency=bytes.fromhex("0978"))
>>> objs[0xDF8129].hex().upper(), objs[0xDF8115].hex().upper()
('10F0F00090F0FF00', '0000000000FF')
"""

from __future__ import annotations

from emv import tlv
from emv.kernel_common import KernelError
from emv.outcome import CvmPerformed, Message, Outcome, ReaderStatus, UiMessage
from emv.outcome_data import DISCRETIONARY_DATA, ERROR_INDICATION, OUTCOME_PARAMETER_SET, USER_INTERFACE_REQUEST_DATA

__all__ = [
    "L2_CAM_FAILED",
    "L2_CARD_DATA_ERROR",
    "L2_CARD_DATA_MISSING",
    "L2_MAGSTRIPE_NOT_SUPPORTED",
    "L2_MAX_LIMIT_EXCEEDED",
    "L2_OK",
    "L2_PARSING_ERROR",
    "L2_STATUS_BYTES",
    "C2KernelError",
    "error_indication",
    "final_outcome",
    "outcome_objects",
]

L2_OK = 0x00
L2_CARD_DATA_MISSING = 0x01
L2_CAM_FAILED = 0x02
L2_STATUS_BYTES = 0x03
L2_PARSING_ERROR = 0x04
L2_MAX_LIMIT_EXCEEDED = 0x05
L2_CARD_DATA_ERROR = 0x06
L2_MAGSTRIPE_NOT_SUPPORTED = 0x07

_STATUS = {
    Outcome.APPROVED: 0x10,
    Outcome.DECLINED: 0x20,
    Outcome.ONLINE_REQUEST: 0x30,
    Outcome.END_APPLICATION: 0x40,
    Outcome.SELECT_NEXT: 0x50,
    Outcome.TRY_ANOTHER_INTERFACE: 0x60,
    Outcome.TRY_AGAIN: 0x70,
}
# Book C-2: Start C after Select Next, B after Try Again; N/A otherwise.
_START = {Outcome.SELECT_NEXT: 0x20, Outcome.TRY_AGAIN: 0x10}
_CVM = {
    CvmPerformed.NO_CVM: 0x00,
    CvmPerformed.SIGNATURE: 0x10,
    CvmPerformed.ONLINE_PIN: 0x20,
    CvmPerformed.CONSUMER_DEVICE: 0x30,  # CONFIRMATION CODE VERIFIED
}
_UI_STATUS = {
    ReaderStatus.NOT_READY: 0x00,
    ReaderStatus.IDLE: 0x01,
    ReaderStatus.READY_TO_READ: 0x02,
    ReaderStatus.PROCESSING: 0x03,
    ReaderStatus.CARD_READ_SUCCESSFULLY: 0x04,
    ReaderStatus.PROCESSING_ERROR: 0x05,
}


def error_indication(l2: int = L2_OK, sw: int = 0x0000, msg_on_error: int = 0xFF) -> bytes:
    """DF8115: L1 OK, ``l2``, L3 OK, SW12, message on error (FF: N/A)."""
    return bytes([0x00, l2, 0x00]) + sw.to_bytes(2, "big") + bytes([msg_on_error])


def outcome_objects(
    outcome: Outcome,
    ui: UiMessage,
    cvm: CvmPerformed,
    *,
    currency: bytes,
    error: bytes | None = None,
    card_discretionary: dict[int, bytes] | None = None,
) -> dict[int, bytes]:
    """DF8129, DF8116, DF8115 and FF8106 for a C-2 outcome shown with ``ui``."""
    receipt = cvm is CvmPerformed.SIGNATURE
    flags = 0x80 | 0x10 | (0x08 if receipt else 0)  # UI request on outcome; discretionary data present
    opset = bytes(
        [
            _STATUS[outcome],
            _START.get(outcome, 0xF0),
            0xF0,  # online response data: N/A
            _CVM.get(cvm, 0xF0),
            flags,
            0xF0,  # alternate interface preference: N/A
            0xFF,  # field off request: N/A
            0x00,  # removal timeout
        ]
    )
    uird = (
        bytes([int(ui.message), _UI_STATUS[ui.status]])
        + bytes(3)  # hold time
        + bytes(8)  # language preference
        + b"\x00"  # value qualifier: none
        + bytes(6)  # value
        + (currency if len(currency) == 2 else bytes(2))
    )
    ei = error if error is not None else error_indication()
    discretionary = tlv.encode(ERROR_INDICATION, ei)
    for tag, value in (card_discretionary or {}).items():
        discretionary += tlv.encode(tag, value)
    return {
        OUTCOME_PARAMETER_SET: opset,
        USER_INTERFACE_REQUEST_DATA: uird,
        ERROR_INDICATION: ei,
        DISCRETIONARY_DATA: discretionary,
    }


def final_outcome(kind: str | None, *, cda_failed: bool, signature: bool) -> tuple[Outcome, Message, str | None]:
    """posterm's outcome, its last UI message and the error text, for the cryptogram the card gave.

    TC: Approved (Approved - please sign with a signature CVM); ARQC: Online
    Request (Authorising); AAC: Declined (Not authorised); a CDA failure declines
    whatever the cryptogram (Book C-2 would end the application: a departure kept
    for posterm's outcomes).
    """
    if cda_failed:
        return Outcome.DECLINED, Message.NOT_AUTHORISED, "CDA failed"
    if kind == "TC":
        return Outcome.APPROVED, Message.APPROVED_PLEASE_SIGN if signature else Message.APPROVED, None
    if kind == "ARQC":
        return Outcome.ONLINE_REQUEST, Message.AUTHORISING, None
    return Outcome.DECLINED, Message.NOT_AUTHORISED, None


class C2KernelError(KernelError):
    """A C-2 processing error (End Application) with its L2 error and status word.

    ``outcome_data`` holds the outcome's data objects for whoever builds the
    End Application result (Entry Point, today, builds it from the message only).
    """

    def __init__(self, message: str, l2: int, sw: int = 0x0000, *, currency: bytes = bytes(2)) -> None:
        super().__init__(message, sw=sw)
        self.l2 = l2
        ui = UiMessage(Message.PROCESSING_ERROR, ReaderStatus.PROCESSING_ERROR)
        self.outcome_data = outcome_objects(
            Outcome.END_APPLICATION,
            ui,
            CvmPerformed.NOT_PERFORMED,
            currency=currency,
            error=error_indication(l2, sw, int(Message.PROCESSING_ERROR)),
        )
