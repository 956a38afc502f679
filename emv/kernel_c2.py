"""Kernel 2 (Mastercard-style contactless, EMV mode), after EMV Contactless Book C-2.

:func:`run` takes a :class:`~emv.kernel_common.KernelContext` whose application
Entry Point has just selected and carries the transaction to its first
GENERATE AC:

    INITIATE        GET PROCESSING OPTIONS with the PDOL values (9F33 as configured);
                    EMV mode; the active AFL (without the mag-stripe record, S3.30ff)
    RELAY           relay resistance: EXCHANGE RELAY RESISTANCE DATA, timed (emv.c2_rrp)
    READ            READ RECORD per active AFL; mandatory data; exception file
    LIMITS          Reader Contactless Transaction Limit (DF8124 / DF8125 with on-device CVM)
    ODA             choose CDA / DDA / SDA; recover keys; DDA (INTERNAL AUTHENTICATE) or SDA now
    RESTRICTIONS    application version, usage control, dates (emv.risk)
    CVM             9F33 byte 2 from DF8118 / DF8119; on-device CVM or the CVM list (emv.cvm)
    RISK            floor limit, random selection, velocity (GET DATA ATC / last online ATC)
    ACTION          terminal action analysis: AAC, TC or ARQC to ask for
    GENERATE_AC     GENERATE AC with the CDOL1 values, CDA requested where it can be; for
                    this card's torn transaction, RECOVER AC first (emv.c2_torn)
    VERIFY_CDA      the SDAD over the response: dynamic number, CID, AC, transaction data hash
    OUTCOME         TC -> Approved, ARQC -> Online Request, AAC -> Declined; DF8129 & co.

The order of the steps and what may follow each is :data:`TRANSITIONS`.  The
configuration is Book C-2's data objects (:mod:`emv.c2_data`), resolved per
transaction from the combination and the transaction's overrides.

Cards are untrusted.  Whatever a card answers ends in a result or in
:class:`~emv.kernel_common.KernelError` (a :class:`~emv.c2_outcome.C2KernelError`
naming its L2 error; Entry Point: *End Application*);
:class:`~emv.apdu.CardCommunicationError` goes up unchanged (*Try Again*).

C-2 choices worth knowing:

- 9F33: the configured value (``--set 9F33``, else DF8117 | the terminal's byte 2
  | DF811F) goes into the PDOL; before CVM selection byte 2 becomes DF8118 when
  the amount is *above* the Reader CVM Required Limit DF8126, else DF8119,
  without PIN methods when there is no PIN pad (:mod:`emv.capabilities`); that
  is the value CVM selection uses and GENERATE AC sends.
- The floor limit is exceeded *above* the limit (C-2 compares with ">", Book 3 with ">=").
- TVR byte 5 bits 2-1 are set in every EMV mode transaction: RRP performed, or
  RRP not performed when the card or the kernel does not support it.
- A CDA failure declines the transaction whatever cryptogram the card gave
  (DF8115 says CAM FAILED).
- A GPO answered with an error status word gives *Select Next*.
- Mag-stripe mode is not implemented: a card without EMV mode ends the
  transaction (L2 MAGSTRIPE NOT SUPPORTED).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from emv import apdu, c2_cvm, c2_data, c2_oda, c2_records, c2_rrp, c2_torn, cvm, dol, oda, risk, tlv
from emv.c2_data import C2Config
from emv.c2_gac import REQUESTED, STRENGTH, GacResponse, cryptogram_type, parse_gac_response
from emv.c2_oda import choose_oda_method
from emv.c2_outcome import (
    L2_CAM_FAILED,
    L2_CARD_DATA_ERROR,
    L2_MAGSTRIPE_NOT_SUPPORTED,
    L2_MAX_LIMIT_EXCEEDED,
    L2_STATUS_BYTES,
    C2KernelError,
    error_indication,
    final_outcome,
    outcome_objects,
)
from emv.kernel_common import (
    KernelContext,
    KernelError,
    OdaKeys,
    RecordsRead,
    gpo_response,
    result_from,
    send,
)
from emv.outcome import CvmPerformed, Message, OdaReport, Outcome, ReaderStatus, TransactionResult, UiMessage
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

# AIP (82) byte 1 (the ODA bits are emv.c2_oda's)
AIP_TRM = 0x08
AIP_ON_DEVICE_CVM = 0x02
# AIP byte 2
AIP2_EMV_MODE = 0x80

REFUND = 0x20


class State(enum.Enum):
    INITIATE = "initiate"
    RELAY = "relay"
    READ = "read"
    LIMITS = "limits"
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
    (State.INITIATE, Event.OK): State.RELAY,
    (State.INITIATE, Event.SELECT_NEXT): State.DONE,
    (State.RELAY, Event.OK): State.READ,
    (State.READ, Event.OK): State.LIMITS,
    (State.LIMITS, Event.OK): State.ODA,
    (State.LIMITS, Event.SELECT_NEXT): State.DONE,
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


def _ui(message: Message, status: ReaderStatus = ReaderStatus.CARD_READ_SUCCESSFULLY) -> UiMessage:
    return UiMessage(message, status)


@dataclass
class _Run:
    """One kernel 2 transaction: the steps of :data:`TRANSITIONS` and what they found."""

    ctx: KernelContext
    c2: C2Config = field(default_factory=C2Config)
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
        return c2_oda.recover_keys(self.ctx, self.card, self.records.oda_records, self.aip, self.oda_report)

    # -- steps ---------------------------------------------------------------------------------------

    def currency(self) -> bytes:
        return self.ctx.txn.currency_bcd()

    def initiate(self) -> Event:
        ctx = self.ctx
        self.c2 = c2_data.resolve(
            c2_data.combination_objects(ctx.combination), ctx.txn.overrides, pin_pad=ctx.config.pin_pad
        )
        self.td = ctx.terminal_data()
        self.td.update(ctx.txn.overrides)
        self.capabilities = self.configured_capabilities()
        self.td[0x9F33] = self.capabilities
        self.card[0x9F33] = self.capabilities
        pdol_raw = ctx.fci_data.get(0x9F38, b"")
        try:
            pdol = dol.parse(pdol_raw)
            self.pdol_values = dol.build(pdol, self.values())
            command = apdu.gpo(self.pdol_values)
        except (dol.DolError, ValueError) as exc:
            raise C2KernelError(f"PDOL: {exc}", L2_CARD_DATA_ERROR, currency=self.currency()) from None
        resp = send(ctx, command, "GET PROCESSING OPTIONS")
        if not resp.ok:
            return self.select_next(f"GET PROCESSING OPTIONS: status {resp.sw:04X}", L2_STATUS_BYTES, resp.sw)
        self.aip, afl, objects = gpo_response(resp.data)
        self.card.update(objects)
        if not (self.aip[1] & AIP2_EMV_MODE and self.c2.emv_mode_supported):
            # Mag-stripe mode (and a card without EMV mode) is not implemented.
            raise C2KernelError(
                "the card does not support EMV mode and posterm does not implement mag-stripe mode",
                L2_MAGSTRIPE_NOT_SUPPORTED,
                currency=self.currency(),
            )
        self.afl = c2_records.active_afl(afl, self.c2)
        return Event.OK

    def configured_capabilities(self) -> bytes:
        """9F33 as configured: ``--set 9F33`` as given, else DF8117 | the terminal's byte 2 | DF811F."""
        given = self.ctx.txn.overrides.get(0x9F33)
        if given is not None and len(given) == 3:
            return bytes(given)
        base = self.ctx.config.terminal_capabilities
        byte1 = self.c2.get(0xDF8117) or base[0:1]
        byte3 = self.c2.get(0xDF811F) or base[2:3]
        return byte1 + base[1:2] + byte3

    def relay(self) -> Event:
        """Relay resistance (Book C-2 S3.60ff and state R1), or "RRP not performed" (S3.65)."""
        if not (self.aip[1] & c2_rrp.AIP2_RRP_SUPPORTED and self.c2.rrp_supported):
            self.tvr.set(Tvr.RRP_NOT_PERFORMED)
            return Event.OK
        c2_rrp.perform(self.ctx, self.c2, self.td, self.card, self.tvr)
        return Event.OK

    def read(self) -> Event:
        known = {t: v for t, v in self.card.items() if t != 0x9F33}
        self.records, pan = c2_records.read_active_afl(self.ctx, self.afl, known)
        self.card.update(self.records.data)
        self.card[0x9F33] = self.td[0x9F33]  # terminal-sourced: a card's copy does not count
        if self.ctx.config.exception_file.contains(pan):
            self.tvr.set(Tvr.PAN_IN_EXCEPTION_FILE)
        return Event.OK

    def on_device_cvm(self) -> bool:
        """Both the card (AIP byte 1 b2) and the kernel (DF811B b6) support on-device CVM."""
        return bool(self.aip[0] & AIP_ON_DEVICE_CVM) and self.c2.on_device_cvm_supported

    def limits(self) -> Event:
        """Reader Contactless Transaction Limit: DF8125 with on-device CVM, else DF8124 (S456)."""
        tag = 0xDF8125 if self.on_device_cvm() else 0xDF8124
        limit = self.c2.limit(tag)
        if limit is None or self.ctx.txn.amount <= limit:
            return Event.OK
        return self.select_next(
            f"amount above the reader contactless transaction limit ({tag:X})", L2_MAX_LIMIT_EXCEEDED
        )

    def select_next(self, error: str, l2: int, sw: int = 0x0000) -> Event:
        """Outcome Select Next (Start C): Entry Point takes the next combination."""
        self.result = result_from(self.ctx, Outcome.SELECT_NEXT, [], error=error)
        ui = UiMessage(Message.PROCESSING, ReaderStatus.PROCESSING)
        currency, ei = self.currency(), error_indication(l2, sw)
        self.result.outcome_data = outcome_objects(
            Outcome.SELECT_NEXT, ui, CvmPerformed.NOT_PERFORMED, currency=currency, error=ei
        )
        return Event.SELECT_NEXT

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
        failure = c2_oda.sda(self.ctx, self.card, self.records.oda_records, self.aip, self.oda_report)
        if failure is not None:
            self.oda_failed(failure)

    def _dda(self) -> None:
        assert self.keys is not None and self.keys.icc_key is not None
        failure = c2_oda.dda(self.ctx, self.card, self.keys.icc_key, self.values())
        if failure is not None:
            self.oda_failed(failure)
        else:
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
        limit = self.c2.limit(0xDF8126)
        above_limit = limit is not None and ctx.txn.amount > limit
        # S456: 9F33 byte 2 from "CVM Capability - CVM Required" above the Reader CVM Required
        # Limit, else "No CVM Required"; CVM selection uses it, GENERATE AC sends it.
        byte2 = self.c2.get(0xDF8118 if above_limit else 0xDF8119)
        if byte2 is not None:
            self.capabilities = self.capabilities[0:1] + byte2 + self.capabilities[2:3]
            self.td[0x9F33] = self.capabilities
            self.card[0x9F33] = self.capabilities
        outcome = c2_cvm.select_cvm(
            ctx,
            self.card,
            self.aip,
            self.capabilities[1],
            on_device=self.on_device_cvm(),
            above_limit=above_limit,
            terminal_type=self.terminal_type(),
        )
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
        reader_floor = self.c2.limit(0xDF8123)
        floor = reader_floor if reader_floor is not None else ctx.config.terminal_floor_limit
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
        zeros = bytes(5)
        codes = risk.ActionCodes.from_card(
            self.c2.get(0xDF8121) or zeros, self.c2.get(0xDF8122) or zeros, self.c2.get(0xDF8120) or zeros, self.card
        )
        decision = risk.terminal_action_analysis(self.tvr.value, codes, online_capable=ctx.config.online_capable)
        if ctx.txn.transaction_type == REFUND and decision.cryptogram != "AAC":
            decision = risk.TaaDecision(apdu.AC_AAC, "AAC", "refund")
        self.decision = decision
        return Event.OK

    def generate_ac(self) -> Event:
        assert self.decision is not None
        self.card.setdefault(0x9F45, bytes(2))
        self.card.setdefault(0x9F4C, bytes(8))
        torn = c2_torn.pending_for(self.ctx, self.card, lifetime=self.c2.number(0xDF811C))
        if torn is not None:
            recovered = self.recover(torn)
            if recovered is not None:
                return self.gac_response(recovered, "RECOVER AC")
        try:
            cdol1 = dol.parse(self.card[0x8C])
        except dol.DolError as exc:
            raise C2KernelError(f"CDOL1 (8C): {exc}", L2_CARD_DATA_ERROR, currency=self.currency()) from None
        self.cda_requested = self.cda_possible and self.decision.cryptogram != "AAC"
        self.cdol1_values = dol.build(cdol1, self.values())
        self.ctx.record_dol_values(cdol1, self.cdol1_values)
        try:
            command = apdu.generate_ac(self.decision.reference, self.cdol1_values, cda=self.cda_requested)
        except ValueError as exc:
            raise KernelError(f"CDOL1: {exc}") from None
        try:
            resp = send(self.ctx, command, "GENERATE AC")
        except apdu.CardCommunicationError:
            self.log_torn()  # the card may have computed a cryptogram the terminal never saw
            raise
        return self.gac_response(resp, "GENERATE AC")

    def recover(self, torn: c2_torn.TornRecord) -> apdu.Response | None:
        """RECOVER AC; on 9000 the torn transaction's data come back (the card's signature covers
        them) and its answer stands for the GENERATE AC; otherwise None: GENERATE AC as usual."""
        assert self.ctx.txn.torn_log is not None
        resp = send(self.ctx, c2_torn.recover_ac(torn.drdol_values), "RECOVER AC")
        self.ctx.txn.torn_log.remove(torn)
        if not resp.ok:
            return None
        self.decision = risk.TaaDecision(torn.reference, REQUESTED[torn.reference], "torn transaction recovered")
        self.pdol_values, self.cdol1_values = torn.pdol_values, torn.cdol1_values
        self.cda_requested = torn.cda_requested
        self.ctx.cryptogram_inputs = dict(torn.cryptogram_inputs)
        self.ctx.tvr = Tvr(torn.tvr)
        self.td.update(torn.terminal_data)
        if 0x9F34 in torn.cryptogram_inputs:
            self.card[0x9F34] = torn.cryptogram_inputs[0x9F34]
        return resp

    def log_torn(self) -> None:
        """Keep the torn GENERATE AC in the torn log (when the transaction has one; emv.c2_torn)."""
        if self.decision is None:
            return
        c2_torn.log_torn(
            self.ctx,
            self.card,
            self.values(),
            max_records=self.c2.number(0xDF811D),
            pdol_values=self.pdol_values,
            cdol1_values=self.cdol1_values,
            reference=self.decision.reference,
            cda_requested=self.cda_requested,
        )

    def gac_response(self, resp: apdu.Response, what: str) -> Event:
        """The card's answer to GENERATE AC (or to RECOVER AC, which stands for it)."""
        assert self.decision is not None
        if not resp.ok:
            raise C2KernelError(f"{what}: status {resp.sw:04X}", L2_STATUS_BYTES, resp.sw, currency=self.currency())
        gac = parse_gac_response(resp.data)
        kind = cryptogram_type(gac.cid)
        if kind is None:
            raise KernelError(f"{what}: CID {gac.cid:02X} names no cryptogram")
        if STRENGTH[kind] > STRENGTH[self.decision.cryptogram]:
            raise KernelError(f"{what}: card answered {kind} to a request for {self.decision.cryptogram}")
        self.gac = gac
        for tag, value in gac.objects.items():
            if tag != 0x9F4B:
                self.card[tag] = value
        self.tsi.set(Tsi.CARD_RISK_MANAGEMENT_PERFORMED)
        if self.cda_requested and kind != "AAC":
            return Event.SIGNED
        self.cryptogram = gac.objects.get(0x9F26)
        if self.cryptogram is None or len(self.cryptogram) != 8:
            raise KernelError(f"{what}: application cryptogram (9F26) missing or not 8 bytes")
        return Event.UNSIGNED

    def verify_cda(self) -> Event:
        assert self.gac is not None
        self.tsi.set(Tsi.ODA_PERFORMED)
        self.method = self.oda_report.method = "CDA"  # a recovered torn transaction asked for CDA then
        gac = self.gac
        try:
            if gac.template77 is None:
                raise oda.OdaFailure("sdad_missing", "format 1 response to a CDA request")
            if self.keys is None or self.keys.icc_key is None:
                failure = (self.keys.failure if self.keys is not None else None) or "icc_data_missing"
                raise oda.OdaFailure(failure, "no ICC public key to verify the signature with")
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
        performed = self.cvm_outcome.performed
        signature = self.cvm_outcome.signature_required
        outcome, final, error = final_outcome(kind, cda_failed=self.cda_failed, signature=signature)
        self.result = result_from(
            self.ctx,
            outcome,
            [_ui(Message.CARD_READ_OK), _ui(final)],
            cryptogram_type=kind,
            cryptogram=self.cryptogram,
            oda=self.oda_report,
            cvm=performed,
            error=error,
        )
        self.result.outcome_data = outcome_objects(
            outcome,
            _ui(final),
            performed,
            currency=self.currency(),
            error=error_indication(L2_CAM_FAILED) if self.cda_failed else None,
            card_discretionary={t: self.card[t] for t in (0x9F5D,) if t in self.card},
        )
        return Event.FINAL

    def run(self) -> TransactionResult:
        steps: dict[State, Callable[[], Event]] = {
            State.INITIATE: self.initiate,
            State.RELAY: self.relay,
            State.READ: self.read,
            State.LIMITS: self.limits,
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


def run(ctx: KernelContext) -> TransactionResult:
    """Run kernel 2 on the selected application up to the first GENERATE AC's outcome.

    Raises :class:`~emv.c2_outcome.C2KernelError` (a KernelError: End Application)
    for a card that breaks the protocol, and lets :class:`~emv.apdu.CardCommunicationError`
    through (Try Again).  Nothing else escapes, whatever the card sends.
    """
    currency = ctx.txn.currency_bcd()
    try:
        return _Run(ctx).run()
    except (C2KernelError, apdu.CardCommunicationError):
        raise
    except KernelError as exc:  # the shared code's (emv.kernel_common): a status word or card data error
        if exc.sw is not None:
            raise C2KernelError(exc.message, L2_STATUS_BYTES, exc.sw, currency=currency) from None
        raise C2KernelError(exc.message, L2_CARD_DATA_ERROR, currency=currency) from None
    except (tlv.TlvError, apdu.ApduError, ValueError, IndexError, KeyError) as exc:
        what = f"kernel 2: card data not usable ({type(exc).__name__}: {exc})"
        raise C2KernelError(what, L2_CARD_DATA_ERROR, currency=currency) from None
