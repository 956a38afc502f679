"""Application selection on the contact interface (EMV Book 1 section 12).

Two ways to build the candidate list:

- the Payment System Environment: SELECT "1PAY.SYS.DDF01", then READ RECORD of
  the directory's SFI (88 in the FCI) from record 1 until 6A83; each 61 entry
  whose ADF name (4F) matches a terminal AID, exactly or by partial selection,
  is a candidate (12.3.2);
- the list of AIDs, when there is no PSE, it is blocked or broken, or it lists
  nothing the terminal supports: SELECT each terminal AID, and SELECT next
  occurrence while the card answers with longer ADF names (partial selection,
  12.3.3).

SELECT of the PSE answered 6A81 means the card is blocked: the transaction ends.
Candidates are ordered by the card's priority (87, low nibble; 0 last), then by
the terminal's own order (12.4).  With a cardholder interface the cardholder
chooses among several and confirms an application that asks for it (87 bit 8);
without one such applications are left out.  The final SELECT must answer 9000
with the same DF name, else the candidate is removed and selection goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from emv import apdu, tlv
from emv.apdu import ApduTransport, Response
from emv.contact.config import ContactApplication, ContactConfig
from emv.contact.ports import Candidate, Cardholder

__all__ = [
    "PSE",
    "CardBlocked",
    "Selected",
    "SelectionCancelled",
    "build_candidates",
    "choose",
    "final_select",
    "order_candidates",
]

PSE = b"1PAY.SYS.DDF01"
SW_CARD_BLOCKED = 0x6A81
SW_SELECTED_FILE_INVALIDATED = 0x6283
SW_RECORD_NOT_FOUND = 0x6A83
MAX_DIRECTORY_RECORDS = 32
MAX_NEXT_OCCURRENCES = 16


class CardBlocked(Exception):
    """SELECT answered 6A81: the card (or its selection function) is blocked."""


class SelectionCancelled(Exception):
    """The cardholder cancelled application selection."""


@dataclass(frozen=True)
class Selected:
    """The application selected: its candidate entry, terminal application and FCI."""

    candidate: Candidate
    application: ContactApplication
    fci: bytes
    fci_data: dict[int, bytes] = field(default_factory=dict)
    method: str = "PSE"


def _send(transport: ApduTransport, command: bytes) -> Response | None:
    try:
        return apdu.transmit(transport, command)
    except apdu.ApduError:
        return None


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return raw.decode("ascii", "replace")


def _fci(data: bytes) -> tuple[bytes | None, dict[int, bytes]] | None:
    """(DF name 84, primitives of the FCI) or None when it is not an FCI template 6F."""
    try:
        objs = tlv.decode(data)
    except tlv.TlvError:
        return None
    if len(objs) != 1 or objs[0].tag != 0x6F or objs[0].children is None:
        return None
    prim: dict[int, bytes] = {}
    for obj in tlv.iter_primitives(objs[0].children):
        prim.setdefault(obj.tag, obj.value)
    return prim.get(0x84), prim


def _pse_candidates(transport: ApduTransport, config: ContactConfig) -> list[Candidate] | None:
    """Candidates from the PSE directory; None when the PSE cannot be used (then: list of AIDs)."""
    resp = _send(transport, apdu.select(PSE))
    if resp is None:
        return None
    if resp.sw == SW_CARD_BLOCKED:
        raise CardBlocked("SELECT of the PSE answered 6A81: card blocked")
    if not resp.ok:
        return None
    fci = _fci(resp.data)
    if fci is None:
        return None
    sfi_raw = fci[1].get(0x88)
    if sfi_raw is None or len(sfi_raw) != 1 or not 1 <= sfi_raw[0] <= 30:
        return None
    sfi = sfi_raw[0]
    out: list[Candidate] = []
    for number in range(1, MAX_DIRECTORY_RECORDS + 1):
        resp = _send(transport, apdu.read_record(sfi, number))
        if resp is None:
            return None
        if resp.sw == SW_RECORD_NOT_FOUND:
            break
        if not resp.ok:
            return None
        try:
            objs = tlv.decode(resp.data)
        except tlv.TlvError:
            return None
        if len(objs) != 1 or objs[0].tag != 0x70 or objs[0].children is None:
            return None
        for entry in objs[0].children:
            if entry.tag != 0x61 or entry.children is None:
                continue  # 9D (DDF) entries and others are not followed
            prim = {o.tag: o.value for o in tlv.iter_primitives(entry.children)}
            adf = prim.get(0x4F)
            if adf is None or not 5 <= len(adf) <= 16 or config.application_for(adf) is None:
                continue
            prio = prim.get(0x87)
            out.append(
                Candidate(
                    adf,
                    _text(prim.get(0x50)) or "",
                    prio[0] if prio is not None and len(prio) == 1 else None,
                    _text(prim.get(0x9F12)),
                )
            )
    return out


def _aid_list_candidates(transport: ApduTransport, config: ContactConfig) -> list[Candidate]:
    out: list[Candidate] = []
    seen: set[bytes] = set()
    for app in config.applications:
        command = apdu.select(app.aid)
        occurrences: set[bytes] = set()
        for _ in range(MAX_NEXT_OCCURRENCES):
            resp = _send(transport, command)
            if resp is None:
                break
            if resp.sw == SW_CARD_BLOCKED:
                raise CardBlocked(f"SELECT {app.aid.hex().upper()} answered 6A81: card blocked")
            if resp.sw not in (0x9000, SW_SELECTED_FILE_INVALIDATED):
                break
            fci = _fci(resp.data)
            name = fci[0] if fci is not None else None
            if fci is None or name is None:
                break
            exact = name == app.aid
            partial = app.partial_selection and name.startswith(app.aid) and len(name) > len(app.aid)
            if name in occurrences:
                break  # the card answers an occurrence it gave already: no further ones
            occurrences.add(name)
            if resp.ok and (exact or partial) and name not in seen:
                prio = fci[1].get(0x87)
                seen.add(name)
                out.append(
                    Candidate(
                        name,
                        _text(fci[1].get(0x50)) or app.label,
                        prio[0] if prio is not None and len(prio) == 1 else None,
                        _text(fci[1].get(0x9F12)),
                    )
                )
            if not app.partial_selection or not (exact or partial):
                break
            command = apdu.select(app.aid, next_occurrence=True)
    return out


def build_candidates(transport: ApduTransport, config: ContactConfig) -> tuple[list[Candidate], str]:
    """The candidate list and how it was built ("PSE" or "AIDs")."""
    found = _pse_candidates(transport, config)
    if found:
        return found, "PSE"
    return _aid_list_candidates(transport, config), "AIDs"


def order_candidates(candidates: Sequence[Candidate], config: ContactConfig) -> list[Candidate]:
    """By the card's priority (1 first, none last), then the terminal's priority and order."""

    def terminal_rank(c: Candidate) -> tuple[int, int]:
        for index, app in enumerate(config.applications):
            if config.application_for(c.adf_name) is app:
                return app.priority, index
        return 1 << 16, 0

    return sorted(candidates, key=lambda c: (c.priority, *terminal_rank(c)))


def choose(candidates: Sequence[Candidate], cardholder: Cardholder | None) -> Candidate | None:
    """Book 1 12.4: the cardholder chooses (and confirms), or the terminal takes the first allowed."""
    if not candidates:
        return None
    if cardholder is None:
        allowed = [c for c in candidates if not c.needs_confirmation]
        return allowed[0] if allowed else None
    if len(candidates) > 1:
        picked = cardholder.choose(list(candidates))
        if picked is None:
            raise SelectionCancelled("the cardholder cancelled application selection")
        if picked not in candidates:
            return None
        return picked  # choosing from the list is the cardholder's confirmation
    only = candidates[0]
    if only.needs_confirmation and not cardholder.confirm(only):
        raise SelectionCancelled("the cardholder did not confirm the application")
    return only


def final_select(transport: ApduTransport, config: ContactConfig, candidate: Candidate, method: str) -> Selected | None:
    """SELECT the candidate's ADF name; None when the card refuses it or answers another DF name."""
    resp = _send(transport, apdu.select(candidate.adf_name))
    if resp is None:
        return None
    if resp.sw == SW_CARD_BLOCKED:
        raise CardBlocked("final SELECT answered 6A81: card blocked")
    if not resp.ok:
        return None
    fci = _fci(resp.data)
    app = config.application_for(candidate.adf_name)
    if fci is None or fci[0] != candidate.adf_name or app is None:
        return None
    return Selected(candidate, app, resp.data, fci[1], method)
