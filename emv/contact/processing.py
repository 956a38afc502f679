"""From GET PROCESSING OPTIONS to terminal risk management (EMV Book 3 10.1-10.4, 10.6).

- :func:`initiate`: GET PROCESSING OPTIONS with the PDOL (10.1); 6985 means
  "select another application";
- :func:`read_application_data`: READ RECORD along the AFL (10.2), keeping
  the records the AFL marks for offline data authentication; the mandatory
  data (5A, 5F24, 8C, 8D) must be there;
- :func:`offline_data_authentication`: CDA, else DDA, else SDA, as card and
  terminal both support (10.3, Book 2 5-6); DDA sends INTERNAL AUTHENTICATE
  with the card's DDOL or the terminal's default DDOL;
- :func:`processing_restrictions`: application version, usage control, dates
  (10.4);
- :func:`terminal_risk_management`: exception file, floor limit, random
  selection, velocity checking with GET DATA of the ATC and last online ATC
  (10.6), when the AIP asks for it.
"""

from __future__ import annotations

from emv import apdu, dol, oda, risk, tlv
from emv.contact.session import SelectNext, Session, send
from emv.kernel_common import KernelError, gpo_response, parse_afl
from emv.pan import pan_of
from emv.tvr import Tsi, Tvr

__all__ = [
    "AIP_CDA",
    "AIP_CVM",
    "AIP_DDA",
    "AIP_ISSUER_AUTHENTICATION",
    "AIP_SDA",
    "AIP_TRM",
    "icc_public_key",
    "initiate",
    "issuer_public_key",
    "offline_data_authentication",
    "processing_restrictions",
    "read_application_data",
    "terminal_risk_management",
]

# AIP (82) byte 1
AIP_SDA = 0x40
AIP_DDA = 0x20
AIP_CVM = 0x10
AIP_TRM = 0x08
AIP_ISSUER_AUTHENTICATION = 0x04
AIP_CDA = 0x01
# 9F33 byte 3
TERM_SDA = 0x80
TERM_DDA = 0x40
TERM_CDA = 0x08

MANDATORY = (0x5F24, 0x8C, 0x8D)


def initiate(session: Session) -> None:
    """GET PROCESSING OPTIONS; the AIP and AFL go into the card data."""
    pdol_raw = session.selected.fci_data.get(0x9F38, b"")
    try:
        pdol = dol.parse(pdol_raw)
    except dol.DolError as exc:
        raise KernelError(f"PDOL (9F38): {exc}") from None
    values = dol.build(pdol, session.terminal_data())
    if len(values) > 127:
        raise KernelError(f"PDOL asks for {len(values)} bytes, more than GPO carries")
    session.pdol_values = values
    resp = send(session, apdu.gpo(values), "GET PROCESSING OPTIONS")
    if resp.sw == 0x6985:
        raise SelectNext("GET PROCESSING OPTIONS answered 6985: conditions of use not satisfied")
    if not resp.ok:
        raise KernelError(f"GET PROCESSING OPTIONS: status {resp.sw:04X}")
    _aip, _afl, data = gpo_response(resp.data)
    session.card_data.update(data)


def read_application_data(session: Session) -> None:
    """READ RECORD of every AFL record; a tag twice, or a record not 70, ends the transaction."""
    afl = session.card_data.get(0x94, b"")
    if not afl:
        raise KernelError("the AFL (94) is empty")
    seen = dict(session.card_data)
    for entry in parse_afl(afl):
        for number in range(entry.first, entry.last + 1):
            where = f"READ RECORD SFI {entry.sfi} record {number}"
            resp = send(session, apdu.read_record(entry.sfi, number), where)
            if not resp.ok:
                raise KernelError(f"{where}: status {resp.sw:04X}")
            try:
                objs = tlv.decode(resp.data)
            except tlv.TlvError as exc:
                raise KernelError(f"{where}: {exc}") from None
            if entry.sfi <= 10 and (len(objs) != 1 or objs[0].tag != 0x70 or objs[0].children is None):
                raise KernelError(f"{where}: not a record template 70")
            inner = objs[0].children if len(objs) == 1 and objs[0].children is not None else objs
            for obj in tlv.iter_primitives(inner):
                if obj.tag in seen:
                    raise KernelError(f"{where}: tag {tlv.tag_hex(obj.tag)} appears more than once")
                seen[obj.tag] = obj.value
                session.card_data[obj.tag] = obj.value
            if number - entry.first < entry.oda_count:
                session.oda_records.append((entry.sfi, resp.data))
    missing = [tlv.tag_hex(t) for t in MANDATORY if t not in session.card_data]
    if missing:
        raise KernelError(f"mandatory data missing: {', '.join(missing)}")
    if pan_of(session.card_data) is None:
        raise KernelError("no PAN (5A) in the records")


# --------------------------------------------------------------------------- ODA


def _static_data(session: Session) -> bytes:
    return oda.static_data_to_authenticate(session.oda_records, session.aip, session.card_data.get(0x9F4A))


def issuer_public_key(session: Session) -> oda.IssuerKey:
    """The issuer key from certificate 90 (recovered once); raises OdaFailure."""
    card = session.card_data
    pan = pan_of(card) or ""
    if any(t not in card for t in (0x8F, 0x90, 0x9F32)) or len(card[0x8F]) != 1:
        raise oda.OdaFailure("icc_data_missing", "issuer certificate data missing")
    if session.issuer_key is None:
        today = session.txn.on_date()
        rid = session.aid[:5]
        index = card[0x8F][0]
        ca = oda.ca_public_key(session.config.capks, rid, index, today)
        revoked = session.config.revocation_list
        session.issuer_key = oda.recover_issuer_key(
            ca,
            card[0x90],
            card.get(0x92, b""),
            card[0x9F32],
            pan,
            today,
            revoked,
            rid=rid if revoked is not None else None,
            capk_index=index if revoked is not None else None,
        )
    return session.issuer_key


def icc_public_key(session: Session) -> oda.PublicKey | None:
    """The ICC key (9F46 chain), recovered once; None with ``session.key_failure`` set when it fails."""
    if session.keys_tried:
        return session.icc_key
    session.keys_tried = True
    card = session.card_data
    try:
        if any(t not in card for t in (0x9F46, 0x9F47)):
            raise oda.OdaFailure("icc_data_missing", "ICC certificate data missing")
        issuer = issuer_public_key(session)
        session.oda_report.issuer_key_recovered = True
        session.icc_key = oda.recover_icc_key(
            issuer,
            card[0x9F46],
            card.get(0x9F48, b""),
            card[0x9F47],
            pan_of(card) or "",
            _static_data(session),
            session.txn.on_date(),
        )
    except oda.OdaFailure as exc:
        session.key_failure = exc.name
        return None
    session.oda_report.icc_key_recovered = True
    return session.icc_key


def _fail(session: Session, method: str, failure: str) -> None:
    session.oda_report.result = "failed"
    session.oda_report.failure = failure
    oda.apply_failure(session.tvr, method, failure)


def offline_data_authentication(session: Session) -> str | None:
    """Pick and run the ODA method (CDA's signature is checked at GENERATE AC); the method or None."""
    security = session.config.terminal_capabilities()[2]
    if session.aip_bit(AIP_CDA) and security & TERM_CDA:
        method = "CDA"
    elif session.aip_bit(AIP_DDA) and security & TERM_DDA:
        method = "DDA"
    elif session.aip_bit(AIP_SDA) and security & TERM_SDA:
        method = "SDA"
    else:
        session.tvr.set(Tvr.ODA_NOT_PERFORMED)
        return None
    session.oda_report.method = method
    session.tsi.set(Tsi.ODA_PERFORMED)
    if method == "SDA":
        session.tvr.set(Tvr.SDA_SELECTED)
        _sda(session)
    elif method == "DDA":
        _dda(session)
    elif icc_public_key(session) is None:
        _fail(session, "CDA", session.key_failure or "icc_data_missing")
    return method


def _sda(session: Session) -> None:
    card = session.card_data
    try:
        issuer = issuer_public_key(session)
        session.oda_report.issuer_key_recovered = True
        if 0x93 not in card:
            raise oda.OdaFailure("icc_data_missing", "no signed static application data (93)")
        dac = oda.verify_ssad(issuer, card[0x93], _static_data(session))
    except oda.OdaFailure as exc:
        _fail(session, "SDA", exc.name)
        return
    card[0x9F45] = dac
    session.oda_report.result = "passed"


def _dda(session: Session) -> None:
    key = icc_public_key(session)
    if key is None:
        _fail(session, "DDA", session.key_failure or "icc_data_missing")
        return
    card_ddol = session.card_data.get(0x9F49)
    raw = card_ddol if card_ddol is not None else session.selected.application.default_ddol
    try:
        ddol = dol.parse(raw)
    except dol.DolError:
        _fail(session, "DDA", "icc_data_missing")
        return
    if not any(e.tag == 0x9F37 for e in ddol):  # Book 2 6.5.1: the DDOL must ask for the UN
        _fail(session, "DDA", "icc_data_missing")
        return
    values = dol.build(ddol, session.terminal_data())
    if not values or len(values) > 255:
        _fail(session, "DDA", "icc_data_missing")
        return
    resp = send(session, apdu.internal_authenticate(values), "INTERNAL AUTHENTICATE")
    sdad = _sdad_of(resp.data) if resp.ok else None
    if sdad is None:
        _fail(session, "DDA", "sdad_missing")
        return
    try:
        signed = oda.verify_sdad(key, sdad, values)
    except oda.OdaFailure as exc:
        _fail(session, "DDA", exc.name)
        return
    session.card_data[0x9F4C] = signed.dynamic_number
    session.oda_report.result = "passed"


def _sdad_of(data: bytes) -> bytes | None:
    """The SDAD of an INTERNAL AUTHENTICATE response: format 1 (80) or format 2 (77 with 9F4B)."""
    try:
        objs = tlv.decode(data)
    except tlv.TlvError:
        return None
    if len(objs) != 1:
        return None
    if objs[0].tag == 0x80:
        return objs[0].value
    if objs[0].tag == 0x77 and objs[0].children is not None:
        hit = tlv.find(objs[0].children, 0x9F4B)
        return hit.value if hit is not None else None
    return None


# --------------------------------------------------------------------------- restrictions and risk


def processing_restrictions(session: Session) -> None:
    """Book 3 10.4 with the terminal's date, country and application version."""
    ctx = risk.RestrictionContext(
        transaction_date=session.txn.date,
        terminal_country=session.config.country,
        terminal_application_version=session.selected.application.application_version,
        transaction_type=session.txn.transaction_type,
        atm=risk.is_atm(session.config.terminal_type, session.config.additional_capabilities),
    )
    risk.processing_restrictions(session.card_data, ctx).apply_to(session.tvr, session.tsi)


def _get_data(session: Session, tag: int) -> bytes | None:
    resp = send(session, apdu.get_data(tag), f"GET DATA {tag:X}")
    if not resp.ok:
        return None
    try:
        objs = tlv.decode(resp.data)
    except tlv.TlvError:
        return None
    if len(objs) != 1 or objs[0].tag != tag:
        return None
    return objs[0].value


def terminal_risk_management(session: Session) -> None:
    """Book 3 10.6, when the AIP asks for it (byte 1 b4)."""
    if not session.aip_bit(AIP_TRM):
        return
    pan = pan_of(session.card_data)
    if pan is not None and session.config.exception_file.contains(pan):
        session.tvr.set(Tvr.PAN_IN_EXCEPTION_FILE)
    card = session.card_data
    velocity = risk.VelocityData()
    if 0x9F14 in card and 0x9F23 in card:
        atc = _get_data(session, 0x9F36)
        last = _get_data(session, 0x9F13)
        velocity = risk.VelocityData(card[0x9F14], card[0x9F23], atc, last)
        if atc is not None:
            card[0x9F36] = atc
        if last is not None:
            card[0x9F13] = last
    app = session.selected.application
    risk.terminal_risk_management(
        session.txn.amount, app.floor_limit, session.txn.random_number, app.random_selection, velocity
    ).apply_to(session.tvr, session.tsi)
