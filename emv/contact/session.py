"""The state of one contact transaction, shared by the kernel's steps."""

from __future__ import annotations

from dataclasses import dataclass, field

from emv import apdu, oda
from emv.apdu import Response
from emv.contact.config import ContactConfig
from emv.contact.ports import Cardholder
from emv.contact.selection import Selected
from emv.kernel_common import KernelError
from emv.outcome import CvmPerformed, OdaReport, UiMessage
from emv.recorder import ApduRecorder
from emv.transaction import TransactionData
from emv.tvr import Tsi, Tvr

__all__ = ["SelectNext", "Session", "send"]


class SelectNext(Exception):
    """GET PROCESSING OPTIONS answered 6985: remove the application and select again (Book 3 10.1)."""


@dataclass
class Session:
    """Everything the steps of one transaction read and write."""

    transport: ApduRecorder
    config: ContactConfig
    txn: TransactionData
    selected: Selected
    cardholder: Cardholder | None = None
    entropy: bytes = b""
    tvr: Tvr = field(default_factory=Tvr)
    tsi: Tsi = field(default_factory=Tsi)
    card_data: dict[int, bytes] = field(default_factory=dict)
    oda_records: list[tuple[int, bytes]] = field(default_factory=list)
    pdol_values: bytes = b""
    cdol1_values: bytes = b""
    cdol2_values: bytes = b""
    cryptogram_inputs: dict[int, bytes] = field(default_factory=dict)
    oda_report: OdaReport = field(default_factory=OdaReport)
    issuer_key: oda.IssuerKey | None = None
    icc_key: oda.PublicKey | None = None
    key_failure: str | None = None
    keys_tried: bool = False
    cvm_results: bytes = bytes([0x3F, 0x00, 0x00])
    cvm_performed: CvmPerformed = CvmPerformed.NOT_PERFORMED
    signature_required: bool = False
    online_pin: bool = False
    script_results: list[bytes] = field(default_factory=list)
    messages: list[UiMessage] = field(default_factory=list)
    authorisation_response_code: bytes | None = None
    issuer_authentication_data: bytes | None = None

    @property
    def aid(self) -> bytes:
        return self.selected.candidate.adf_name

    @property
    def aip(self) -> bytes:
        return self.card_data.get(0x82, bytes(2))

    def aip_bit(self, mask: int) -> bool:
        return bool(self.aip[0] & mask)

    def terminal_data(self) -> dict[int, bytes]:
        """Data objects a DOL may ask for: terminal, transaction, and the TVR/TSI/9F34 as they are now."""
        txn = self.txn
        out = self.config.data_objects()
        out.update(
            {
                0x9F02: txn.amount_bcd(),
                0x9F03: txn.amount_other_bcd(),
                0x5F2A: txn.currency_bcd(),
                0x5F36: txn.currency_exponent_bcd(),
                0x9A: bytes(txn.date),
                0x9F21: bytes(txn.time),
                0x9C: txn.transaction_type_byte(),
                0x9F37: bytes(txn.unpredictable_number),
                0x9F41: txn.sequence_counter_bcd(),
                0x9F09: self.selected.application.application_version,
                0x9F06: self.selected.application.aid,
                0x95: self.tvr.value,
                0x9B: self.tsi.value,
                0x9F34: self.cvm_results,
            }
        )
        if self.authorisation_response_code is not None:
            out[0x8A] = self.authorisation_response_code
        if self.issuer_authentication_data is not None:
            out[0x91] = self.issuer_authentication_data
        out.update(txn.overrides)
        return out


def send(session: Session, command: bytes, what: str) -> Response:
    """Send through the recording transport; a malformed R-APDU is a :class:`KernelError`."""
    try:
        return apdu.transmit(session.transport, command)
    except apdu.ApduError as exc:
        raise KernelError(f"{what}: {exc}") from None
