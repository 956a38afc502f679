"""What kernels C-2 and C-3 share: the context, terminal data, records, ODA keys.

Entry Point builds a :class:`KernelContext` for the selected combination and
hands it to a kernel's ``run(ctx) -> TransactionResult``.  Errors that must end
the transaction with *End Application* (Book A: a processing error) are raised
as :class:`KernelError`; Entry Point turns them into a result.  A
:class:`emv.apdu.CardCommunicationError` from the transport goes straight up
(Entry Point answers it with *Try Again*).

>>> from emv.config import TerminalConfig
>>> from emv.transaction import TransactionData
>>> cfg = TerminalConfig.example(capks=None)
>>> txn = TransactionData(1234, 978, bytes.fromhex("250614"), bytes.fromhex("01020304"))
>>> ctx = KernelContext.create(_Silent(), cfg, cfg.combinations[0], txn, aid=bytes.fromhex("A0000000031010"))
>>> td = ctx.terminal_data()
>>> td[0x9F02].hex(), td[0x5F2A].hex(), td[0x9F66].hex()
('000000001234', '0978', '32004000')
>>> read_records(ctx, bytes.fromhex("08010100"))
Traceback (most recent call last):
...
emv.kernel_common.KernelError: READ RECORD SFI 1 record 1: status 6A83
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from emv import apdu, c2_data, dol, oda, tlv
from emv.apdu import ApduTransport, Response
from emv.config import Combination, TerminalConfig
from emv.outcome import CvmPerformed, OdaReport, Outcome, TransactionResult, UiMessage
from emv.pan import pan_of
from emv.recorder import ApduRecorder
from emv.transaction import TransactionData
from emv.tvr import Tsi, Tvr

__all__ = [
    "AflEntry",
    "KernelContext",
    "KernelError",
    "OdaKeys",
    "PreProcessingIndicators",
    "RecordsRead",
    "gpo_response",
    "parse_afl",
    "read_records",
    "recover_oda_keys",
    "result_from",
    "send",
    "unique_primitives",
]


class KernelError(Exception):
    """A processing error: the kernel ends with *End Application* (message 0F).

    ``sw``: the status word of the card's answer when that is what was wrong.
    """

    def __init__(self, message: str, *, sw: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.sw = sw


class _Silent:
    """A transport for doctests: every command gets 6A83 (record not found)."""

    def exchange(self, command: bytes) -> bytes:
        return b"\x6a\x83"


@dataclass
class PreProcessingIndicators:
    """Entry Point Pre-Processing Indicators of one combination (Book B 3.1.1)."""

    status_check_requested: bool = False
    contactless_application_not_allowed: bool = False
    zero_amount: bool = False
    cvm_required_limit_exceeded: bool = False
    floor_limit_exceeded: bool = False
    ttq: bytes = bytes(4)


@dataclass
class KernelContext:
    """Everything a kernel works with for one transaction on one selected application."""

    transport: ApduRecorder
    config: TerminalConfig
    combination: Combination
    txn: TransactionData
    aid: bytes
    fci: bytes = b""
    fci_data: dict[int, bytes] = field(default_factory=dict)
    ttq: bytes = bytes(4)
    indicators: PreProcessingIndicators = field(default_factory=PreProcessingIndicators)
    tvr: Tvr = field(default_factory=Tvr)
    tsi: Tsi = field(default_factory=Tsi)
    card_data: dict[int, bytes] = field(default_factory=dict)
    # The terminal data objects as the card received them in the command that produced the
    # cryptogram (PDOL at GPO for C-3, CDOL1 at GENERATE AC for C-2): the issuer verifies the
    # cryptogram over these, and the terminal may change some (the TVR) after the command.
    cryptogram_inputs: dict[int, bytes] = field(default_factory=dict)

    def record_dol_values(self, dol_list: Sequence[dol.DolEntry], values: bytes) -> None:
        """Remember the values a DOL-built command sent (see :attr:`cryptogram_inputs`)."""
        self.cryptogram_inputs = dict(dol.split(dol_list, values))

    @classmethod
    def create(
        cls,
        transport: ApduTransport,
        config: TerminalConfig,
        combination: Combination,
        txn: TransactionData,
        *,
        aid: bytes,
        fci: bytes = b"",
        indicators: PreProcessingIndicators | None = None,
    ) -> KernelContext:
        """A context with a recording transport; the FCI's primitives become ``fci_data``."""
        rec = transport if isinstance(transport, ApduRecorder) else ApduRecorder(transport)
        ind = indicators or PreProcessingIndicators(ttq=combination.ttq)
        fci_data: dict[int, bytes] = {}
        if fci:
            try:
                fci_data = tlv.decode_primitive_map(fci)
            except tlv.TlvError:
                fci_data = {}
        return cls(rec, config, combination, txn, bytes(aid), bytes(fci), fci_data, ind.ttq, ind)

    @property
    def commands(self) -> list[bytes]:
        return self.transport.commands

    @property
    def application_label(self) -> str | None:
        raw = self.fci_data.get(0x50) or self.card_data.get(0x50)
        if raw is None:
            return self.combination.label or None
        return raw.decode("ascii", "replace")

    def cvm_required(self) -> bool:
        """True when pre-processing found the amount at or above the CVM required limit."""
        return self.indicators.cvm_required_limit_exceeded

    def terminal_capabilities(self) -> bytes:
        """9F33 as configured; the C-2 way when the combination has C-2 parameters.

        Byte 1 from Card Data Input Capability (DF8117), byte 3 from Security
        Capability (DF811F), byte 2 the terminal's own: this is the value a PDOL
        gets at GET PROCESSING OPTIONS.  Kernel C-2 sets byte 2 from DF8118 /
        DF8119 itself before CVM selection (:mod:`emv.kernel_c2`).  A parameter
        the combination lacks comes from the terminal's own 9F33.

        >>> from emv.config import TerminalConfig
        >>> from emv.transaction import TransactionData
        >>> cfg = TerminalConfig.example(capks=None)
        >>> mc = cfg.combinations[1]
        >>> txn = TransactionData(6000, 978, bytes.fromhex("250614"), bytes(4))
        >>> ctx = KernelContext.create(None, cfg, mc, txn, aid=mc.aid)  # type: ignore[arg-type]
        >>> ctx.terminal_capabilities().hex().upper()
        'E02808'
        """
        c = self.combination
        base = self.config.terminal_capabilities
        return (c.card_data_input_capability or base[0:1]) + base[1:2] + (c.security_capability or base[2:3])

    def terminal_data(self) -> dict[int, bytes]:
        """The terminal data objects a DOL may ask for; ``txn.overrides`` win."""
        txn = self.txn
        c = self.combination
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
                0x9F33: self.terminal_capabilities(),
                0x9F66: self.ttq,
                0x9F09: c.application_version,
                0x95: self.tvr.value,
                0x9B: self.tsi.value,
            }
        )
        if c.kernel_id == 2:
            out.update(c2_data.combination_objects(c))
        out.update(c.extra)
        out.update(txn.overrides)
        return out


# --------------------------------------------------------------------------- commands


def send(ctx: KernelContext, command: bytes, what: str) -> Response:
    """Send ``command`` through the recording transport; a malformed R-APDU is a KernelError."""
    try:
        return apdu.transmit(ctx.transport, command)
    except apdu.ApduError as exc:
        raise KernelError(f"{what}: {exc}") from None


def unique_primitives(objects: Iterable[tlv.Tlv], what: str) -> dict[int, bytes]:
    """The primitive objects of a response template by tag; a tag twice is a card error."""
    prim: dict[int, bytes] = {}
    for obj in tlv.iter_primitives(objects):
        if obj.tag in prim:
            raise KernelError(f"{what}: tag {tlv.tag_hex(obj.tag)} twice")
        prim[obj.tag] = obj.value
    return prim


def gpo_response(data: bytes) -> tuple[bytes, bytes, dict[int, bytes]]:
    """(AIP, AFL, all primitives) of a GPO response in format 1 (80) or format 2 (77).

    >>> aip, afl, objs = gpo_response(bytes.fromhex("8006 1980 08010100"))
    >>> aip.hex(), afl.hex()
    ('1980', '08010100')
    >>> gpo_response(bytes.fromhex("770A 8202 2000 9404 10010100"))[1].hex()
    '10010100'
    """
    try:
        objs = tlv.decode(data)
    except tlv.TlvError as exc:
        raise KernelError(f"GPO response: {exc}") from None
    if len(objs) != 1:
        raise KernelError("GPO response: expected one template 80 or 77")
    top = objs[0]
    if top.tag == 0x80:
        if len(top.value) < 2 or (len(top.value) - 2) % 4:
            raise KernelError("GPO response format 1: AIP and AFL entries of 4 bytes expected")
        return top.value[:2], top.value[2:], {0x82: top.value[:2], 0x94: top.value[2:]}
    if top.tag == 0x77 and top.children is not None:
        prim = unique_primitives(top.children, "GPO response")
        aip = prim.get(0x82)
        if aip is None or len(aip) != 2:
            raise KernelError("GPO response: AIP (82) missing or not 2 bytes")
        afl = prim.get(0x94, b"")
        return aip, afl, prim
    raise KernelError(f"GPO response: template {tlv.tag_hex(top.tag)} is neither 80 nor 77")


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class AflEntry:
    sfi: int
    first: int
    last: int
    oda_count: int


def parse_afl(afl: bytes) -> list[AflEntry]:
    """Validate and split an AFL (94) into entries (Book 3 10.2).

    >>> parse_afl(bytes.fromhex("08010201 18010100"))
    [AflEntry(sfi=1, first=1, last=2, oda_count=1), AflEntry(sfi=3, first=1, last=1, oda_count=0)]
    >>> parse_afl(bytes.fromhex("08020100"))
    Traceback (most recent call last):
    ...
    emv.kernel_common.KernelError: AFL entry 1: last record 1 before first 2
    """
    if len(afl) % 4:
        raise KernelError(f"AFL of {len(afl)} bytes is not a multiple of 4")
    out: list[AflEntry] = []
    for i in range(0, len(afl), 4):
        n = i // 4 + 1
        b0, first, last, oda = afl[i : i + 4]
        sfi = b0 >> 3
        if b0 & 0x07 or not 1 <= sfi <= 30:
            raise KernelError(f"AFL entry {n}: SFI byte {b0:02X} invalid")
        if first == 0:
            raise KernelError(f"AFL entry {n}: first record 0")
        if last < first:
            raise KernelError(f"AFL entry {n}: last record {last} before first {first}")
        if oda > last - first + 1:
            raise KernelError(f"AFL entry {n}: {oda} ODA records in a span of {last - first + 1}")
        out.append(AflEntry(sfi, first, last, oda))
    return out


@dataclass
class RecordsRead:
    """The outcome of reading the AFL's records.

    ``data``: primitives of all records (each tag once); ``oda_records``:
    (SFI, raw record including its 70 template) of the records the AFL marks
    for offline data authentication, in reading order.
    """

    data: dict[int, bytes] = field(default_factory=dict)
    oda_records: list[tuple[int, bytes]] = field(default_factory=list)
    records: list[tuple[int, int, bytes]] = field(default_factory=list)


def read_records(ctx: KernelContext, afl: bytes, known: Mapping[int, bytes] | None = None) -> RecordsRead:
    """READ RECORD every record of the AFL and collect their data objects.

    A tag that appears twice in the records, or that the card already gave in
    ``known`` (its GPO response), is a processing error (Book 3 7.5).
    """
    entries = parse_afl(afl)
    out = RecordsRead()
    seen = dict(known or {})
    for entry in entries:
        for rec in range(entry.first, entry.last + 1):
            where = f"READ RECORD SFI {entry.sfi} record {rec}"
            resp = send(ctx, apdu.read_record(entry.sfi, rec), where)
            if not resp.ok:
                raise KernelError(f"{where}: status {resp.sw:04X}", sw=resp.sw)
            try:
                objs = tlv.decode(resp.data)
            except tlv.TlvError as exc:
                raise KernelError(f"{where}: {exc}") from None
            if len(objs) != 1 or objs[0].tag != 0x70 or objs[0].children is None:
                raise KernelError(f"{where}: not a record template 70")
            for obj in tlv.iter_primitives(objs[0].children):
                if obj.tag in seen:
                    raise KernelError(f"{where}: tag {tlv.tag_hex(obj.tag)} appears more than once")
                seen[obj.tag] = obj.value
                out.data[obj.tag] = obj.value
            out.records.append((entry.sfi, rec, resp.data))
            if rec - entry.first < entry.oda_count:
                out.oda_records.append((entry.sfi, resp.data))
    return out


# --------------------------------------------------------------------------- ODA keys


@dataclass
class OdaKeys:
    """The end of the certificate chain: the ICC key, or the name of what failed."""

    icc_key: oda.PublicKey | None = None
    issuer_key_recovered: bool = False
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.icc_key is not None and self.failure is None


def recover_oda_keys(ctx: KernelContext, card_data: Mapping[int, bytes], static_data: bytes) -> OdaKeys:
    """CAPK lookup, issuer key, then ICC key (Book 2 sections 6.1-6.4).

    Never raises on card data: any failure comes back as an :class:`OdaKeys`
    with ``failure`` set to a name of :data:`emv.oda.FAILURES`.  The issuer
    certificate is checked against the configured revocation list.
    """
    needed = (0x8F, 0x90, 0x9F32, 0x9F46, 0x9F47)
    pan = pan_of(card_data)
    if any(t not in card_data for t in needed) or pan is None or len(card_data[0x8F]) != 1:
        return OdaKeys(failure="icc_data_missing")
    today = ctx.txn.on_date()
    rid = ctx.aid[:5]
    index = card_data[0x8F][0]
    try:
        ca_key = oda.ca_public_key(ctx.config.capks, rid, index, today)
        issuer = oda.recover_issuer_key(
            ca_key,
            card_data[0x90],
            card_data.get(0x92, b""),
            card_data[0x9F32],
            pan,
            today,
            ctx.config.revocation_list,
            rid=rid,
            capk_index=index,
        )
    except oda.OdaFailure as exc:
        return OdaKeys(failure=exc.name)
    try:
        icc_key = oda.recover_icc_key(
            issuer,
            card_data[0x9F46],
            card_data.get(0x9F48, b""),
            card_data[0x9F47],
            pan,
            static_data,
            today,
        )
    except oda.OdaFailure as exc:
        return OdaKeys(issuer_key_recovered=True, failure=exc.name)
    return OdaKeys(icc_key=icc_key, issuer_key_recovered=True)


# --------------------------------------------------------------------------- results


def result_from(
    ctx: KernelContext,
    outcome: Outcome,
    messages: list[UiMessage],
    *,
    cryptogram_type: str | None = None,
    cryptogram: bytes | None = None,
    oda: OdaReport | None = None,
    cvm: CvmPerformed = CvmPerformed.NOT_PERFORMED,
    error: str | None = None,
) -> TransactionResult:
    """A :class:`TransactionResult` carrying the context's TVR, TSI, commands and data."""
    data = ctx.terminal_data()
    data.update(ctx.fci_data)
    data.update(ctx.card_data)
    data[0x95] = ctx.tvr.value
    data[0x9B] = ctx.tsi.value
    return TransactionResult(
        outcome=outcome,
        kernel=ctx.combination.kernel_id,
        aid=ctx.aid,
        application_label=ctx.application_label,
        cryptogram_type=cryptogram_type,
        cryptogram=cryptogram,
        oda=oda or OdaReport(),
        tvr=ctx.tvr.value,
        tsi=ctx.tsi.value,
        cvm=cvm,
        messages=list(messages),
        commands=list(ctx.commands),
        card_data=data,
        cryptogram_inputs=dict(ctx.cryptogram_inputs),
        error=error,
    )
