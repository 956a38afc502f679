"""Kernel 2 (Mastercard-style contactless, EMV mode), after EMV Contactless Book C-2.

:func:`run` takes a :class:`~emv.kernel_common.KernelContext` whose application
Entry Point has just selected and carries the transaction to its first
GENERATE AC:

    INITIATE        GET PROCESSING OPTIONS with the PDOL values (9F33 built the C-2 way)
    READ            READ RECORD per AFL; mandatory data; exception file
    ODA             choose CDA / DDA / SDA; recover keys; DDA (INTERNAL AUTHENTICATE) or SDA now
    RESTRICTIONS    application version, usage control, dates (emv.risk)
    CVM             on-device CVM or the CVM list with the capability byte in use (emv.cvm)
    RISK            floor limit, random selection, velocity (GET DATA ATC / last online ATC)
    ACTION          terminal action analysis: AAC, TC or ARQC to ask for
    GENERATE_AC     GENERATE AC with the CDOL1 values, CDA requested where it can be
    VERIFY_CDA      the SDAD over the response: dynamic number, CID, AC, transaction data hash
    OUTCOME         TC -> Approved, ARQC -> Online Request, AAC -> Declined

The order of the steps and what may follow each is :data:`TRANSITIONS`.

Cards are untrusted.  Whatever a card answers ends in a result or in
:class:`~emv.kernel_common.KernelError` (Entry Point: *End Application*);
:class:`~emv.apdu.CardCommunicationError` goes up unchanged (*Try Again*).

C-2 choices worth knowing:

- 9F33 byte 2 is DF8118 ("CVM required") when the amount is *above* the CVM
  required limit, else DF8119, without its PIN methods when the configuration
  has no PIN pad (:mod:`emv.capabilities`); the floor limit is exceeded
  *above* the limit (C-2 compares with ">", Book 3 with ">=").
- A CDA failure declines the transaction whatever cryptogram the card gave.
- A GPO answered with an error status word gives *Select Next*.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from emv import apdu, cvm, dol, oda, risk, tlv
from emv.capabilities import without_pin_cvm_capability
from emv.kernel_common import (
    KernelContext,
    KernelError,
    OdaKeys,
    RecordsRead,
    gpo_response,
    read_records,
    recover_oda_keys,
    result_from,
    send,
    unique_primitives,
)
from emv.outcome import CvmPerformed, Message, OdaReport, Outcome, ReaderStatus, TransactionResult, UiMessage
from emv.pan import pan_of
from emv.tvr import Tsi, Tvr

__all__ = [
    "TRANSITIONS",
    "Event",
    "GacResponse",
    "State",
    "choose_oda_method",
    "cryptogram_type",
    "parse_gac_response",
    "run",
]

# AIP (82) byte 1
AIP_SDA = 0x40
AIP_DDA = 0x20
AIP_CVM = 0x10
AIP_TRM = 0x08
AIP_ON_DEVICE_CVM = 0x02
AIP_CDA = 0x01
# 9F33 byte 3, security capability
SEC_SDA = 0x80
SEC_DDA = 0x40
SEC_CDA = 0x08
# DF811B kernel configuration: b6 on-device cardholder verification supported
KCFG_ON_DEVICE_CVM = 0x20

CID_TYPE_MASK = 0xC0
MANDATORY = (0x5A, 0x5F24, 0x8C)
REFUND = 0x20


class State(enum.Enum):
    INITIATE = "initiate"
    READ = "read"
    ODA = "oda"
    RESTRICTIONS = "restrictions"
    CVM = "cvm"
    RISK = "risk"
    ACTION = "action"
    GENERATE_AC = "generate_ac"
    VERIFY_CDA = "verify_cda"
    OUTCOME = "outcome"
    DONE = "done"


class Event(enum.Enum):
    OK = "ok"
    SELECT_NEXT = "select_next"
    SIGNED = "signed"  # a TC or ARQC answered to a CDA request: verify it
    UNSIGNED = "unsigned"  # no CDA asked, or an AAC
    FINAL = "final"


#: (state, event) -> next state.  Processing errors leave through KernelError from any state.
TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.INITIATE, Event.OK): State.READ,
    (State.INITIATE, Event.SELECT_NEXT): State.DONE,
    (State.READ, Event.OK): State.ODA,
    (State.ODA, Event.OK): State.RESTRICTIONS,
    (State.RESTRICTIONS, Event.OK): State.CVM,
    (State.CVM, Event.OK): State.RISK,
    (State.RISK, Event.OK): State.ACTION,
    (State.ACTION, Event.OK): State.GENERATE_AC,
    (State.GENERATE_AC, Event.SIGNED): State.VERIFY_CDA,
    (State.GENERATE_AC, Event.UNSIGNED): State.OUTCOME,
    (State.VERIFY_CDA, Event.OK): State.OUTCOME,
    (State.OUTCOME, Event.FINAL): State.DONE,
}


def choose_oda_method(aip: bytes, capabilities: bytes) -> str | None:
    """The ODA method both card (AIP byte 1) and terminal (9F33 byte 3) support: CDA, DDA, SDA.

    >>> choose_oda_method(bytes.fromhex("1980"), bytes.fromhex("E06008"))
    'CDA'
    >>> choose_oda_method(bytes.fromhex("4000"), bytes.fromhex("E06008")) is None
    True
    """
    card = aip[0] if aip else 0
    term = capabilities[2] if len(capabilities) > 2 else 0
    if card & AIP_CDA and term & SEC_CDA:
        return "CDA"
    if card & AIP_DDA and term & SEC_DDA:
        return "DDA"
    if card & AIP_SDA and term & SEC_SDA:
        return "SDA"
    return None


def cryptogram_type(cid: int) -> str | None:
    """9F27 bits 8-7: 00 AAC, 01 TC, 10 ARQC; 11 is RFU (None).

    >>> cryptogram_type(0x80), cryptogram_type(0x40), cryptogram_type(0x00), cryptogram_type(0xC0)
    ('ARQC', 'TC', 'AAC', None)
    """
    return {0x00: "AAC", 0x40: "TC", 0x80: "ARQC"}.get(cid & CID_TYPE_MASK)


#: Book 3 9.3: to a TC request the card may answer TC, ARQC or AAC; to an ARQC request
#: ARQC or AAC; to an AAC request only AAC.  A card may never answer above the request.
_STRENGTH = {"AAC": 0, "ARQC": 1, "TC": 2}
_REQUESTED = {apdu.AC_AAC: "AAC", apdu.AC_TC: "TC", apdu.AC_ARQC: "ARQC"}


@dataclass(frozen=True)
class GacResponse:
    """A GENERATE AC response: ``objects`` are its primitives; ``template77`` the
    raw value of a format 2 response (for the CDA transaction data hash)."""

    cid: int
    objects: dict[int, bytes]
    template77: bytes | None


def parse_gac_response(data: bytes) -> GacResponse:
    """Format 1 (80: CID | ATC (2) | AC (8) | IAD) or format 2 (77).

    >>> r = parse_gac_response(bytes.fromhex("800C 40 0001 1122334455667788 06"))
    >>> r.cid, r.objects[0x9F26].hex(), r.objects[0x9F10].hex()
    (64, '1122334455667788', '06')
    >>> parse_gac_response(bytes.fromhex("7709 9F270100 9F36020001")).cid
    0
    """
    try:
        objs = tlv.decode(data)
    except tlv.TlvError as exc:
        raise KernelError(f"GENERATE AC response: {exc}") from None
    if len(objs) != 1:
        raise KernelError("GENERATE AC response: expected one template 80 or 77")
    top = objs[0]
    if top.tag == 0x80:
        v = top.value
        if len(v) < 11 or len(v) > 43:
            raise KernelError(f"GENERATE AC response format 1 of {len(v)} bytes")
        out = {0x9F27: v[0:1], 0x9F36: v[1:3], 0x9F26: v[3:11]}
        if len(v) > 11:
            out[0x9F10] = v[11:]
        return GacResponse(v[0], out, None)
    if top.tag == 0x77 and top.children is not None:
        prim = unique_primitives(top.children, "GENERATE AC response")
        cid = prim.get(0x9F27)
        if cid is None or len(cid) != 1:
            raise KernelError("GENERATE AC response: CID (9F27) missing or not 1 byte")
        atc = prim.get(0x9F36)
        if atc is None or len(atc) != 2:
            raise KernelError("GENERATE AC response: ATC (9F36) missing or not 2 bytes")
        return GacResponse(cid[0], prim, top.value)
    raise KernelError(f"GENERATE AC response: template {tlv.tag_hex(top.tag)} is neither 80 nor 77")


def _ui(message: Message, status: ReaderStatus = ReaderStatus.CARD_READ_SUCCESSFULLY) -> UiMessage:
    return UiMessage(message, status)


@dataclass
class _Run:
    """One kernel 2 transaction: the steps of :data:`TRANSITIONS` and what they found."""

    ctx: KernelContext
    td: dict[int, bytes] = field(default_factory=dict)
    capabilities: bytes = b""
    pdol_values: bytes = b""
    aip: bytes = b"\x00\x00"
    afl: bytes = b""
    records: RecordsRead = field(default_factory=RecordsRead)
    method: str | None = None
    oda_report: OdaReport = field(default_factory=OdaReport)
    keys: OdaKeys | None = None
    cda_possible: bool = False
    cvm_outcome: cvm.CvmOutcome | None = None
    decision: risk.TaaDecision | None = None
    cda_requested: bool = False
    cdol1_values: bytes = b""
    gac: GacResponse | None = None
    cryptogram: bytes | None = None
    cda_failed: bool = False
    result: TransactionResult | None = None

    # -- helpers -------------------------------------------------------------------------------------

    @property
    def card(self) -> dict[int, bytes]:
        return self.ctx.card_data

    @property
    def tvr(self) -> Tvr:
        return self.ctx.tvr

    @property
    def tsi(self) -> Tsi:
        return self.ctx.tsi

    def values(self) -> dict[int, bytes]:
        """What a DOL can ask for now: the card's data and the kernel's own objects (CVM
        results 9F34, DAC 9F45, ICC dynamic number 9F4C live in ``card``), then the terminal
        data (which wins, with the transaction's overrides), then the live TVR and TSI."""
        out = dict(self.card)
        out.update(self.td)
        out[0x95] = self.tvr.value
        out[0x9B] = self.tsi.value
        return out

    def terminal_type(self) -> int:
        """9F35 as the byte it is (0x22 for an attended online-capable merchant terminal)."""
        return (self.td.get(0x9F35) or b"\x22")[0]

    def oda_failed(self, failure: str) -> None:
        assert self.method is not None
        for bit in oda.tvr_bits(self.method, failure):
            self.tvr.set(bit)
        self.oda_report.result = "failed"
        self.oda_report.failure = failure

    def recover_keys(self) -> OdaKeys:
        try:
            static = oda.static_data_to_authenticate(
                self.records.oda_records, self.aip, self.card.get(0x9F4A)
            )
        except oda.OdaFailure as exc:
            return OdaKeys(failure=exc.name)
        keys = recover_oda_keys(self.ctx, self.card, static)
        self.oda_report.issuer_key_recovered = keys.issuer_key_recovered
        self.oda_report.icc_key_recovered = keys.ok
        return keys

    # -- steps ---------------------------------------------------------------------------------------

    def initiate(self) -> Event:
        ctx = self.ctx
        self.capabilities = ctx.terminal_capabilities()
        self.td = ctx.terminal_data()
        self.td[0x9F33] = self.capabilities
        self.td.update(ctx.txn.overrides)
        if len(self.td[0x9F33]) == 3:  # an override (replay --set 9F33=...) is what the kernel uses
            self.capabilities = self.td[0x9F33]
        self.card[0x9F33] = self.td[0x9F33]
        pdol_raw = ctx.fci_data.get(0x9F38, b"")
        try:
            pdol = dol.parse(pdol_raw)
            self.pdol_values = dol.build(pdol, self.values())
            command = apdu.gpo(self.pdol_values)
        except (dol.DolError, ValueError) as exc:
            raise KernelError(f"PDOL: {exc}") from None
        resp = send(ctx, command, "GET PROCESSING OPTIONS")
        if not resp.ok:
            self.result = result_from(
                ctx,
                Outcome.SELECT_NEXT,
                [],
                error=f"GET PROCESSING OPTIONS: status {resp.sw:04X}",
            )
            return Event.SELECT_NEXT
        self.aip, self.afl, objects = gpo_response(resp.data)
        self.card.update(objects)
        return Event.OK

    def read(self) -> Event:
        known = {t: v for t, v in self.card.items() if t != 0x9F33}
        self.records = read_records(self.ctx, self.afl, known=known)
        self.card.update(self.records.data)
        self.card[0x9F33] = self.td[0x9F33]  # terminal-sourced: a card's copy does not count
        missing = [tlv.tag_hex(t) for t in MANDATORY if not self.card.get(t)]
        if missing:
            raise KernelError(f"mandatory card data missing: {', '.join(missing)}")
        pan = pan_of(self.card)
        if pan is None:
            raise KernelError("PAN (5A) is not numeric")
        if self.ctx.config.exception_file.contains(pan):
            self.tvr.set(Tvr.PAN_IN_EXCEPTION_FILE)
        return Event.OK

    def oda(self) -> Event:
        self.method = choose_oda_method(self.aip, self.capabilities)
        self.oda_report = OdaReport(method=self.method)
        if self.method is None:
            self.tvr.set(Tvr.ODA_NOT_PERFORMED)
            return Event.OK
        if self.method == "SDA":
            self.tvr.set(Tvr.SDA_SELECTED)
            self.tsi.set(Tsi.ODA_PERFORMED)
            self._sda()
            return Event.OK
        self.keys = self.recover_keys()
        if not self.keys.ok:
            self.tsi.set(Tsi.ODA_PERFORMED)
            self.oda_failed(self.keys.failure or "icc_data_missing")
            return Event.OK
        if self.method == "DDA":
            self.tsi.set(Tsi.ODA_PERFORMED)
            self._dda()
        else:
            self.cda_possible = True  # verified after GENERATE AC
        return Event.OK

    def _sda(self) -> None:
        ctx = self.ctx
        needed = (0x8F, 0x90, 0x9F32, 0x93)
        pan = pan_of(self.card)
        if any(t not in self.card for t in needed) or pan is None or len(self.card[0x8F]) != 1:
            self.oda_failed("icc_data_missing")
            return
        rid, index = ctx.aid[:5], self.card[0x8F][0]
        today = ctx.txn.on_date()
        try:
            static = oda.static_data_to_authenticate(
                self.records.oda_records, self.aip, self.card.get(0x9F4A)
            )
            ca_key = oda.ca_public_key(ctx.config.capks, rid, index, today)
            issuer = oda.recover_issuer_key(
                ca_key,
                self.card[0x90],
                self.card.get(0x92),
                self.card[0x9F32],
                pan,
                today,
                ctx.config.revocation_list,
                rid=rid,
                capk_index=index,
            )
            self.oda_report.issuer_key_recovered = True
            dac = oda.verify_ssad(issuer, self.card[0x93], static)
        except oda.OdaFailure as exc:
            self.oda_failed(exc.name)
            return
        self.card[0x9F45] = dac
        self.oda_report.result = "passed"

    def _dda(self) -> None:
        assert self.keys is not None
        ddol_raw = self.card.get(0x9F49) or self.ctx.combination.default_ddol
        if not ddol_raw:
            self.oda_failed("icc_data_missing")
            return
        try:
            ddol_values = dol.build(dol.parse(ddol_raw), self.values())
            command = apdu.internal_authenticate(ddol_values)
        except (dol.DolError, ValueError):
            self.oda_failed("icc_data_missing")
            return
        resp = send(self.ctx, command, "INTERNAL AUTHENTICATE")
        sdad = _sdad_of(resp.data) if resp.ok else None
        try:
            assert self.keys.icc_key is not None
            data = oda.verify_sdad(self.keys.icc_key, sdad, ddol_values)
        except oda.OdaFailure as exc:
            self.oda_failed(exc.name)
            return
        self.card[0x9F4C] = data.dynamic_number
        self.oda_report.result = "passed"

    def restrictions(self) -> Event:
        ctx = self.ctx
        rctx = risk.RestrictionContext(
            transaction_date=ctx.txn.date,
            terminal_country=self.td.get(0x9F1A, ctx.config.country_code_bcd()),
            terminal_application_version=ctx.combination.application_version,
            transaction_type=ctx.txn.transaction_type,
            atm=risk.is_atm(self.terminal_type(), self.td.get(0x9F40, b"")),
        )
        risk.processing_restrictions(self.card, rctx).apply_to(self.tvr, self.tsi)
        return Event.OK

    def cvm(self) -> Event:
        ctx = self.ctx
        limit = ctx.combination.cvm_required_limit
        above_limit = limit is not None and ctx.txn.amount > limit
        on_device = bool(self.aip[0] & AIP_ON_DEVICE_CVM) and bool(
            (ctx.combination.kernel_configuration or b"\x00")[0] & KCFG_ON_DEVICE_CVM
        )
        if on_device:
            # C-2: the phone verified the cardholder (or no CVM is needed below the limit).
            if above_limit:
                outcome = cvm.CvmOutcome(bytes.fromhex("010002"), CvmPerformed.CONSUMER_DEVICE)
            else:
                outcome = cvm.CvmOutcome(bytes.fromhex("3F0002"), CvmPerformed.NO_CVM)
        elif not self.aip[0] & AIP_CVM:
            outcome = cvm.no_cvm_supported_by_card()
        else:
            cvm_list: cvm.CvmList | None = None
            raw = self.card.get(0x8E)
            if raw:
                try:
                    cvm_list = cvm.parse_cvm_list(raw)
                except cvm.CvmListError as exc:
                    raise KernelError(f"CVM list (8E): {exc}") from None
            # Without a PIN pad the PIN methods are not supported, whatever 9F33 (an override
            # included) claims: the CVM list moves on to the next rule, or CVM fails (TVR byte 3).
            capability = self.capabilities[1]
            if not ctx.config.pin_pad:
                capability = without_pin_cvm_capability(capability)
            cctx = cvm.CvmContext(
                amount=ctx.txn.amount,
                transaction_currency=ctx.txn.currency_bcd(),
                application_currency=self.card.get(0x9F42),
                cvm_capability=capability,
                transaction_type=ctx.txn.transaction_type,
                terminal_type=self.terminal_type(),
                pin_pad_working=ctx.config.pin_pad,
            )
            outcome = cvm.process(cvm_list, cctx)
        outcome.apply_to(self.tvr, self.tsi)
        self.cvm_outcome = outcome
        self.card[0x9F34] = outcome.results
        return Event.OK

    def _get_data(self, tag: int) -> bytes | None:
        resp = send(self.ctx, apdu.get_data(tag), f"GET DATA {tlv.tag_hex(tag)}")
        if not resp.ok:
            return None
        try:
            found = tlv.find(tlv.decode(resp.data), tag)
        except tlv.TlvError:
            return None
        return None if found is None else found.value

    def risk(self) -> Event:
        ctx = self.ctx
        c = ctx.combination
        floor = c.floor_limit if c.floor_limit is not None else ctx.config.terminal_floor_limit
        if not self.aip[0] & AIP_TRM:
            # C-2 checks the floor limit whatever the AIP says; the rest only when asked.
            risk.floor_limit_check(ctx.txn.amount, floor, at_limit_exceeds=False).apply_to(self.tvr, self.tsi)
            return Event.OK
        velocity = risk.VelocityData()
        lcol, ucol = self.card.get(0x9F14), self.card.get(0x9F23)
        if lcol is not None and ucol is not None:
            velocity = risk.VelocityData(lcol, ucol, self._get_data(0x9F36), self._get_data(0x9F13))
        selection = risk.RandomSelection(c.target_percent, c.max_target_percent, c.threshold)
        result = risk.terminal_risk_management(
            ctx.txn.amount, floor, ctx.txn.random_number, selection, velocity, at_limit_exceeds=False
        )
        result.apply_to(self.tvr, self.tsi)
        return Event.OK

    def action(self) -> Event:
        ctx = self.ctx
        c = ctx.combination
        codes = risk.ActionCodes.from_card(c.tac_denial, c.tac_online, c.tac_default, self.card)
        decision = risk.terminal_action_analysis(
            self.tvr.value, codes, online_capable=ctx.config.online_capable
        )
        if ctx.txn.transaction_type == REFUND and decision.cryptogram != "AAC":
            decision = risk.TaaDecision(apdu.AC_AAC, "AAC", "refund")
        self.decision = decision
        return Event.OK

    def generate_ac(self) -> Event:
        assert self.decision is not None
        self.card.setdefault(0x9F45, bytes(2))
        self.card.setdefault(0x9F4C, bytes(8))
        try:
            cdol1 = dol.parse(self.card[0x8C])
        except dol.DolError as exc:
            raise KernelError(f"CDOL1 (8C): {exc}") from None
        self.cda_requested = self.cda_possible and self.decision.cryptogram != "AAC"
        self.cdol1_values = dol.build(cdol1, self.values())
        self.ctx.record_dol_values(cdol1, self.cdol1_values)
        try:
            command = apdu.generate_ac(self.decision.reference, self.cdol1_values, cda=self.cda_requested)
        except ValueError as exc:
            raise KernelError(f"CDOL1: {exc}") from None
        resp = send(self.ctx, command, "GENERATE AC")
        if not resp.ok:
            raise KernelError(f"GENERATE AC: status {resp.sw:04X}")
        gac = parse_gac_response(resp.data)
        kind = cryptogram_type(gac.cid)
        if kind is None:
            raise KernelError(f"GENERATE AC: CID {gac.cid:02X} names no cryptogram")
        if _STRENGTH[kind] > _STRENGTH[self.decision.cryptogram]:
            raise KernelError(
                f"GENERATE AC: card answered {kind} to a request for {self.decision.cryptogram}"
            )
        self.gac = gac
        for tag, value in gac.objects.items():
            if tag != 0x9F4B:
                self.card[tag] = value
        self.tsi.set(Tsi.CARD_RISK_MANAGEMENT_PERFORMED)
        if self.cda_requested and kind != "AAC":
            return Event.SIGNED
        self.cryptogram = gac.objects.get(0x9F26)
        if self.cryptogram is None or len(self.cryptogram) != 8:
            raise KernelError("GENERATE AC: application cryptogram (9F26) missing or not 8 bytes")
        return Event.UNSIGNED

    def verify_cda(self) -> Event:
        assert self.gac is not None and self.keys is not None
        self.tsi.set(Tsi.ODA_PERFORMED)
        gac = self.gac
        try:
            if gac.template77 is None:
                raise oda.OdaFailure("sdad_missing", "format 1 response to a CDA request")
            assert self.keys.icc_key is not None
            tdhc = oda.cda_transaction_data_hash(self.pdol_values, self.cdol1_values, gac.template77)
            data = oda.verify_cda(
                self.keys.icc_key,
                gac.objects.get(0x9F4B),
                self.values()[0x9F37],
                gac.cid,
                tdhc,
            )
        except oda.OdaFailure as exc:
            self.oda_failed(exc.name)
            self.cda_failed = True
            self.cryptogram = gac.objects.get(0x9F26)
            return Event.OK
        self.oda_report.result = "passed"
        self.cryptogram = data.cryptogram
        if data.cryptogram is not None:
            self.card[0x9F26] = data.cryptogram
        self.card[0x9F4C] = data.dynamic_number
        return Event.OK

    def outcome(self) -> Event:
        assert self.gac is not None and self.cvm_outcome is not None
        kind = cryptogram_type(self.gac.cid)
        signature = self.cvm_outcome.signature_required
        if self.cda_failed:
            outcome, messages, error = Outcome.DECLINED, [_ui(Message.NOT_AUTHORISED)], "CDA failed"
        elif kind == "TC":
            final = Message.APPROVED_PLEASE_SIGN if signature else Message.APPROVED
            outcome, messages, error = Outcome.APPROVED, [_ui(final)], None
        elif kind == "ARQC":
            outcome, messages, error = Outcome.ONLINE_REQUEST, [_ui(Message.AUTHORISING)], None
        else:
            outcome, messages, error = Outcome.DECLINED, [_ui(Message.NOT_AUTHORISED)], None
        self.result = result_from(
            self.ctx,
            outcome,
            [_ui(Message.CARD_READ_OK), *messages],
            cryptogram_type=kind,
            cryptogram=self.cryptogram,
            oda=self.oda_report,
            cvm=self.cvm_outcome.performed,
            error=error,
        )
        return Event.FINAL

    def run(self) -> TransactionResult:
        steps: dict[State, Callable[[], Event]] = {
            State.INITIATE: self.initiate,
            State.READ: self.read,
            State.ODA: self.oda,
            State.RESTRICTIONS: self.restrictions,
            State.CVM: self.cvm,
            State.RISK: self.risk,
            State.ACTION: self.action,
            State.GENERATE_AC: self.generate_ac,
            State.VERIFY_CDA: self.verify_cda,
            State.OUTCOME: self.outcome,
        }
        state = State.INITIATE
        while state is not State.DONE:
            event = steps[state]()
            nxt = TRANSITIONS.get((state, event))
            if nxt is None:  # pragma: no cover - a bug in this module, not in the card
                raise KernelError(f"kernel 2: no transition from {state.value} on {event.value}")
            state = nxt
        assert self.result is not None
        return self.result


def _sdad_of(data: bytes) -> bytes | None:
    """The SDAD of an INTERNAL AUTHENTICATE response: format 1 (80) or 9F4B in 77."""
    try:
        objs = tlv.decode(data)
    except tlv.TlvError:
        return None
    if len(objs) != 1:
        return None
    if objs[0].tag == 0x80:
        return objs[0].value
    if objs[0].tag == 0x77:
        found = tlv.find(objs, 0x9F4B)
        return None if found is None else found.value
    return None


def run(ctx: KernelContext) -> TransactionResult:
    """Run kernel 2 on the selected application up to the first GENERATE AC's outcome.

    Raises :class:`~emv.kernel_common.KernelError` (End Application) for a card
    that breaks the protocol, and lets :class:`~emv.apdu.CardCommunicationError`
    through (Try Again).  Nothing else escapes, whatever the card sends.
    """
    try:
        return _Run(ctx).run()
    except (KernelError, apdu.CardCommunicationError):
        raise
    except (tlv.TlvError, apdu.ApduError, ValueError, IndexError, KeyError) as exc:
        raise KernelError(f"kernel 2: card data not usable ({type(exc).__name__}: {exc})") from None
