"""Terminal action analysis and GENERATE AC (EMV Book 3 10.7, 10.8, 6.5.5; Book 2 6.6 for CDA).

:func:`generate_ac` sends GENERATE AC with the CDOL's values (CDOL1 for the
first, CDOL2 for the second), asks for a CDA signature when CDA was selected
and the ICC key is at hand (never for an AAC), parses the response in format 1
(80: CID, ATC, AC, IAD) or format 2 (77), refuses a cryptogram the terminal did
not allow (a TC when it asked for an AAC, say), and checks the CDA signature:
the AC is then the one inside the signature.
"""

from __future__ import annotations

from dataclasses import dataclass

from emv import apdu, dol, oda, tlv
from emv.contact.processing import icc_public_key
from emv.contact.session import Session, send
from emv.kernel_common import KernelError, unique_primitives
from emv.risk import ActionCodes, TaaDecision, terminal_action_analysis
from emv.tvr import Tsi

__all__ = ["CRYPTOGRAMS", "GenAc", "action_codes", "first_analysis", "generate_ac", "unable_to_go_online"]

CRYPTOGRAMS = {0x00: "AAC", 0x40: "TC", 0x80: "ARQC"}
_ALLOWED = {apdu.AC_AAC: {0x00}, apdu.AC_TC: {0x00, 0x40, 0x80}, apdu.AC_ARQC: {0x00, 0x80}}


@dataclass(frozen=True)
class GenAc:
    """What a GENERATE AC gave: cryptogram type, the AC, and whether CDA was checked and passed."""

    cid: int
    cryptogram: bytes
    cda_requested: bool
    cda_failure: str | None = None

    @property
    def kind(self) -> str:
        return CRYPTOGRAMS[self.cid & 0xC0]


def action_codes(session: Session) -> ActionCodes:
    app = session.selected.application
    return ActionCodes.from_card(app.tac_denial, app.tac_online, app.tac_default, session.card_data)


def first_analysis(session: Session) -> TaaDecision:
    """Book 3 10.7 for the first GENERATE AC."""
    return terminal_action_analysis(
        session.tvr.value, action_codes(session), online_capable=session.config.online_capable
    )


def unable_to_go_online(session: Session) -> TaaDecision:
    """Book 3 10.7: no online answer: the default action codes decide between AAC and TC."""
    return terminal_action_analysis(session.tvr.value, action_codes(session), online_capable=False)


def _response(data: bytes) -> tuple[dict[int, bytes], bytes | None]:
    """(primitives, the 77 template's value for the CDA hash, or None for format 1)."""
    try:
        objs = tlv.decode(data)
    except tlv.TlvError as exc:
        raise KernelError(f"GENERATE AC response: {exc}") from None
    if len(objs) != 1:
        raise KernelError("GENERATE AC response: expected one template 80 or 77")
    top = objs[0]
    if top.tag == 0x80:
        v = top.value
        if not 11 <= len(v) <= 43:
            raise KernelError(f"GENERATE AC response format 1 of {len(v)} bytes")
        out = {0x9F27: v[0:1], 0x9F36: v[1:3], 0x9F26: v[3:11]}
        if len(v) > 11:
            out[0x9F10] = v[11:]
        return out, None
    if top.tag == 0x77 and top.children is not None:
        return unique_primitives(top.children, "GENERATE AC response"), top.value
    raise KernelError(f"GENERATE AC response: template {tlv.tag_hex(top.tag)}")


def generate_ac(session: Session, reference: int, *, second: bool) -> GenAc:
    """Send GENERATE AC for ``reference`` (apdu.AC_*); KernelError when the card's answer is unusable."""
    card = session.card_data
    raw = card.get(0x8D if second else 0x8C, b"")
    try:
        entries = dol.parse(raw)
    except dol.DolError as exc:
        raise KernelError(f"CDOL{2 if second else 1}: {exc}") from None
    values = dol.build(entries, session.terminal_data())
    if len(values) > 255:
        raise KernelError("CDOL asks for more than a command carries")
    if second:
        # the second cryptogram covers CDOL1's values as updated by CDOL2's (TVR, 8A, ...): an advice of it
        # must carry those, as the card received them
        session.cdol2_values = values
        session.cryptogram_inputs.update(dol.split(entries, values))
    else:
        session.cdol1_values = values
        session.cryptogram_inputs = dict(dol.split(entries, values))
    cda = (
        session.oda_report.method == "CDA"
        and reference != apdu.AC_AAC
        and icc_public_key(session) is not None
        and session.oda_report.result != "failed"
    )
    resp = send(session, apdu.generate_ac(reference, values, cda=cda), "GENERATE AC")
    if not resp.ok:
        raise KernelError(f"GENERATE AC: status {resp.sw:04X}")
    session.tsi.set(Tsi.CARD_RISK_MANAGEMENT_PERFORMED)
    prim, template = _response(resp.data)
    cid_raw = prim.get(0x9F27)
    if cid_raw is None or len(cid_raw) != 1 or 0x9F36 not in prim:
        raise KernelError("GENERATE AC response: CID (9F27) or ATC (9F36) missing")
    cid = cid_raw[0]
    if cid & 0xC0 not in _ALLOWED[reference]:
        raise KernelError(f"GENERATE AC: the card answered CID {cid:02X} to a request for {reference:02X}")
    if second and cid & 0xC0 == 0x80:
        raise KernelError("second GENERATE AC answered an ARQC")
    for tag in (0x9F27, 0x9F36, 0x9F10, 0x9F26, 0x9F4B):
        card.pop(tag, None)
    card.update(prim)
    if not cda or cid & 0xC0 == 0x00:
        ac = prim.get(0x9F26)
        if ac is None or len(ac) != 8:
            raise KernelError("GENERATE AC response: Application Cryptogram (9F26) missing or not 8 bytes")
        return GenAc(cid, ac, cda)
    return _check_cda(session, cid, prim, template, second)


def _check_cda(session: Session, cid: int, prim: dict[int, bytes], template: bytes | None, second: bool) -> GenAc:
    key = session.icc_key
    assert key is not None
    failure: str | None = None
    ac = b""
    if template is None:
        failure = "sdad_missing"
    else:
        cdol = session.cdol1_values + (session.cdol2_values if second else b"")
        try:
            hash_code = oda.cda_transaction_data_hash(session.pdol_values, cdol, template)
            signed = oda.verify_cda(key, prim.get(0x9F4B), session.txn.unpredictable_number, cid, hash_code)
            ac = signed.cryptogram or b""
            session.card_data[0x9F4C] = signed.dynamic_number
            session.card_data[0x9F26] = ac
        except oda.OdaFailure as exc:
            failure = exc.name
    if failure is not None:
        session.oda_report.result = "failed"
        session.oda_report.failure = failure
        oda.apply_failure(session.tvr, "CDA", failure)
        return GenAc(cid, prim.get(0x9F26, bytes(8)), True, failure)
    session.oda_report.result = "passed"
    return GenAc(cid, ac, True)
