"""Entry Point's pre-processing (Book B 3.1) and the data of combination selection (Book B 3.3).

:func:`pre_process` gives every combination its Entry Point Pre-Processing
Indicators and says which are allowed; :func:`parse_ppse` reads the directory
entries of a PPSE FCI; :func:`candidates` matches the two into the ordered
candidate list.  :mod:`emv.entry_point` runs the flow around them.

>>> from emv.config import TerminalConfig
>>> from emv.transaction import TransactionData
>>> cfg = TerminalConfig.example(capks=None)
>>> [(c.label, i.ttq.hex()) for c, i in pre_process(cfg, TransactionData(0, 978, bytes.fromhex("250614"), bytes(4)))]
[('VISA', '32804000'), ('MASTERCARD', '00800000')]
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from emv import tlv
from emv.config import Combination, TerminalConfig
from emv.kernel_common import PreProcessingIndicators
from emv.transaction import TransactionData

__all__ = [
    "DEFAULT_KERNEL_BY_RID",
    "OVER_CONTACTLESS_LIMIT",
    "Candidate",
    "DirectoryEntry",
    "candidates",
    "indicators_of",
    "kernel_id_of",
    "none_allowed_reason",
    "parse_ppse",
    "pre_process",
]

#: Kernel identifier when a directory entry has no 9F2A, or one whose first byte is 00 (Book B 3.3.2.5).
DEFAULT_KERNEL_BY_RID: dict[bytes, int] = {
    bytes.fromhex("A000000004"): 2,
    bytes.fromhex("A000000003"): 3,
    bytes.fromhex("A000000025"): 4,
    bytes.fromhex("A000000065"): 5,
    bytes.fromhex("A000000152"): 6,
    bytes.fromhex("A000000333"): 7,
}

_OFFLINE_ONLY_READER = 0x08  # TTQ byte 1 b4


# --------------------------------------------------------------------------- pre-processing (3.1)


def indicators_of(combo: Combination, config: TerminalConfig, txn: TransactionData) -> PreProcessingIndicators:
    """The Entry Point Pre-Processing Indicators of one combination (Book B 3.1.1.1 - 3.1.1.12).

    3.1.1.1-2: every indicator starts at 0; the TTQ is copied with byte 2 b8-b7 reset.
    3.1.1.3: status check (a single unit of currency); 3.1.1.4: zero amount (not allowed
    when the combination says so); 3.1.1.5: amount >= Reader Contactless Transaction Limit:
    not allowed; 3.1.1.6-7: amount > Reader Contactless Floor Limit, else > Terminal Floor
    Limit 9F1B; 3.1.1.8: amount >= Reader CVM Required Limit.  3.1.1.9-10: floor limit
    exceeded or status check: TTQ byte 2 b8 (online cryptogram required); 3.1.1.11: zero
    amount: b8 too on a reader that can go online, not allowed on an offline-only one (TTQ
    byte 1 b4); 3.1.1.12: CVM required limit exceeded: byte 2 b7 (CVM required).
    """
    amount = txn.amount
    ind = PreProcessingIndicators()
    ttq = bytearray(combo.ttq)
    ttq[1] &= 0x3F  # 3.1.1.2: online cryptogram required / CVM required are set below, never configured
    if combo.status_check and amount == 10**txn.currency_exponent:
        ind.status_check_requested = True
    if amount == 0:
        if not combo.zero_amount_allowed:
            ind.contactless_application_not_allowed = True
        else:
            ind.zero_amount = True
    if combo.transaction_limit is not None and amount >= combo.transaction_limit:
        ind.contactless_application_not_allowed = True
    floor = combo.floor_limit if combo.floor_limit is not None else config.terminal_floor_limit
    if amount > floor:
        ind.floor_limit_exceeded = True
    if combo.cvm_required_limit is not None and amount >= combo.cvm_required_limit:
        ind.cvm_required_limit_exceeded = True
    if ind.floor_limit_exceeded or ind.status_check_requested:
        ttq[1] |= 0x80  # online cryptogram required
    if ind.zero_amount:
        if ttq[0] & _OFFLINE_ONLY_READER:
            ind.contactless_application_not_allowed = True
        else:
            ttq[1] |= 0x80
    if ind.cvm_required_limit_exceeded:
        ttq[1] |= 0x40  # CVM required
    ind.ttq = bytes(ttq)
    return ind


def pre_process(config: TerminalConfig, txn: TransactionData) -> list[tuple[Combination, PreProcessingIndicators]]:
    """Book B 3.1: the indicators of every combination, and which are allowed.

    Returns the allowed combinations in configuration order with their
    indicators (including the TTQ to use); empty: Book B 3.1.1.13.

    >>> from emv.config import TerminalConfig
    >>> cfg = TerminalConfig.example(capks=None)
    >>> t = TransactionData(6000, 978, bytes.fromhex("250614"), bytes(4))
    >>> [(c.label, i.ttq.hex()) for c, i in pre_process(cfg, t)]
    [('VISA', '32c04000'), ('MASTERCARD', '00c00000')]
    >>> pre_process(cfg, TransactionData(100000, 978, bytes.fromhex("250614"), bytes(4)))
    []
    """
    allowed: list[tuple[Combination, PreProcessingIndicators]] = []
    for combo in config.combinations:
        ind = indicators_of(combo, config, txn)
        if not ind.contactless_application_not_allowed:
            allowed.append((combo, ind))
    return allowed


#: The error of a result when every combination's contactless transaction limit is reached:
#: what the cashier and the customer must do, in words (Book A message 18 goes with it).
OVER_CONTACTLESS_LIMIT = "over the contactless limit: insert or use another payment"


def none_allowed_reason(config: TerminalConfig, txn: TransactionData) -> str:
    """Why pre-processing allowed no combination, in words for the cashier.

    When the amount is at or over the contactless transaction limit of every
    combination, that is what the customer needs to hear
    (:data:`OVER_CONTACTLESS_LIMIT`), not a bare "try another interface".

    >>> from emv.config import TerminalConfig
    >>> cfg = TerminalConfig.example(capks=None)
    >>> none_allowed_reason(cfg, TransactionData(100000, 978, bytes.fromhex("250614"), bytes(4)))
    'over the contactless limit: insert or use another payment'
    """
    limits = [c.transaction_limit for c in config.combinations]
    if limits and all(limit is not None and txn.amount >= limit for limit in limits):
        return OVER_CONTACTLESS_LIMIT
    return "no combination allowed for this amount"


# --------------------------------------------------------------------------- PPSE (3.3.2)


@dataclass(frozen=True)
class DirectoryEntry:
    """One 61 entry of the PPSE's FCI (Book B 3.3.2)."""

    adf_name: bytes
    label: str | None
    priority: int  # 1 (highest) .. 15; 0 = none
    kernel_id: int | None  # None: a kernel identifier that names no kernel (RFU, a domestic one too short)
    extended_selection: bytes | None
    order: int


@dataclass(frozen=True)
class Candidate:
    """A (directory entry, combination) pair on the candidate list (Book B 3.3.2.5 step 4)."""

    entry: DirectoryEntry
    combination: Combination
    indicators: PreProcessingIndicators = field(compare=False)

    @property
    def select_name(self) -> bytes:
        """The name SELECT sends: the ADF name, with the Extended Selection (9F29) appended when the
        combination supports it (Book B 3.3.2.5 step 5, 3.3.3.3)."""
        ext = self.entry.extended_selection
        if ext and self.combination.extended_selection_supported:
            return self.entry.adf_name + ext
        return self.entry.adf_name

    @property
    def sort_key(self) -> tuple[int, int]:
        """Book B 3.3.3.2: priority 1 first; no priority (absent or 0) last; ties in directory order."""
        p = self.entry.priority
        return (p if p else 16, self.entry.order)


def parse_ppse(fci: bytes) -> list[DirectoryEntry]:
    """Directory entries of a PPSE FCI; malformed entries are skipped, malformed FCI -> [].

    Book B 3.3.2.3-4: no FCI template 6F, no A5 / BF0C, or no 61 entry: no entry at all.
    3.3.2.5 step 1: an entry without an ADF name of 5 to 16 bytes is ignored.

    >>> from emv.tlv import encode
    >>> entry = encode(0x61, encode(0x4F, bytes.fromhex("A0000000031010")) + encode(0x50, b"VISA")
    ...                + encode(0x87, b"\x01"))
    >>> fci = encode(0x6F, encode(0x84, b"2PAY.SYS.DDF01") + encode(0xA5, encode(0xBF0C, entry)))
    >>> [(e.adf_name.hex(), e.label, e.priority, e.kernel_id) for e in parse_ppse(fci)]
    [('a0000000031010', 'VISA', 1, 3)]
    """
    try:
        objs = tlv.decode(fci)
    except tlv.TlvError:
        return []
    if len(objs) != 1 or objs[0].tag != 0x6F or objs[0].children is None:
        return []
    a5 = next((o for o in objs[0].children if o.tag == 0xA5 and o.children is not None), None)
    if a5 is None or a5.children is None:
        return []
    bf0c = next((o for o in a5.children if o.tag == 0xBF0C and o.children is not None), None)
    if bf0c is None or bf0c.children is None:
        return []
    out: list[DirectoryEntry] = []
    for order, entry in enumerate(o for o in bf0c.children if o.tag == 0x61):
        if entry.children is None:
            continue
        fields_: dict[int, bytes] = {}
        for child in entry.children:
            if child.children is None:
                fields_.setdefault(child.tag, child.value)
        adf = fields_.get(0x4F)
        if adf is None or not 5 <= len(adf) <= 16:
            continue  # Book B 3.3.2.5 step 1: no usable ADF name, the entry is ignored
        label_raw = fields_.get(0x50)
        label = label_raw.decode("ascii", "replace") if label_raw else None
        prio_raw = fields_.get(0x87)
        priority = prio_raw[0] & 0x0F if prio_raw and len(prio_raw) == 1 else 0
        kernel_id = kernel_id_of(adf, fields_.get(0x9F2A))
        ext = fields_.get(0x9F29)
        out.append(DirectoryEntry(adf, label, priority, kernel_id, ext or None, order))
    return out


def kernel_id_of(adf: bytes, raw: bytes | None) -> int | None:
    """The Requested Kernel ID of a directory entry (Book B 3.3.2.5 step 3).

    Absent, empty, or a first byte of 00: the default kernel of the RID (Table 3-6).
    Byte 1 b8-b7 = 00, an international kernel: its short id (b6-b1), whatever
    follows.  b8 = 1, a domestic kernel (10: EMVCo format, 11: proprietary): the
    short id with its extended id, the first three bytes as an int
    (``81 01 56`` -> ``0x810156``); fewer than three bytes name no kernel.
    b8-b7 = 01 (RFU) names none.

    >>> hex(kernel_id_of(bytes.fromhex("F0504F5354434244430101"), bytes.fromhex("810156")))
    '0x810156'
    >>> kernel_id_of(bytes.fromhex("A0000000031010"), bytes.fromhex("8101")) is None
    True
    >>> kernel_id_of(bytes.fromhex("A0000000041010"), bytes.fromhex("00")), kernel_id_of(b"\\xa0" * 5, b"\\x00")
    (2, None)
    """
    if raw is None or len(raw) == 0 or raw[0] == 0:
        return DEFAULT_KERNEL_BY_RID.get(adf[:5])
    if raw[0] & 0x80:
        return int.from_bytes(raw[:3], "big") if len(raw) >= 3 else None
    if raw[0] & 0x40:
        return None
    return raw[0] & 0x3F


def candidates(
    entries: list[DirectoryEntry],
    allowed: list[tuple[Combination, PreProcessingIndicators]],
    kernels: Collection[int],
) -> list[Candidate]:
    """The candidate list (Book B 3.3.2.5), ordered for final selection (3.3.3.2).

    Step 2, partial matching: an ADF name matches a configured AID that it equals
    or begins with.  Step 3: the Requested Kernel ID must be the combination's.
    Step 4: the kernel must be one the reader has (``kernels``).
    """
    out: list[Candidate] = []
    for entry in entries:
        for combo, ind in allowed:
            if entry.kernel_id != combo.kernel_id:
                continue
            if not entry.adf_name.startswith(combo.aid):
                continue
            if combo.kernel_id not in kernels:
                continue
            out.append(Candidate(entry, combo, ind))
    out.sort(key=lambda c: c.sort_key)
    return out
