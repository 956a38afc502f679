"""Application selection on the contact interface (EMV Book 1 section 12) over a scripted card."""

from __future__ import annotations

import dataclasses

import pytest

from emv import tlv
from emv.contact import ContactApplication, ContactKernel
from emv.contact.selection import CardBlocked, SelectionCancelled, build_candidates, choose, order_candidates
from emv.outcome import Outcome
from tests.contact_rig import Pad, config, run, txn

VISA = bytes.fromhex("A0000000031010")
VISA_ELECTRON = bytes.fromhex("A0000000032010")
MC = bytes.fromhex("A0000000041010")
OK = b"\x90\x00"


def _entry(adf: bytes, label: str, prio: int | None) -> bytes:
    body = tlv.encode(0x4F, adf) + tlv.encode(0x50, label.encode())
    if prio is not None:
        body += tlv.encode(0x87, bytes([prio]))
    return tlv.encode(0x61, body)


def _fci(name: bytes, label: str = "APP", prio: int | None = None) -> bytes:
    prop = tlv.encode(0x50, label.encode()) + (tlv.encode(0x87, bytes([prio])) if prio is not None else b"")
    return tlv.encode(0x6F, tlv.encode(0x84, name) + tlv.encode(0xA5, prop))


class Scripted:
    """A card answering from a table of command (hex) -> response; anything else 6A82."""

    def __init__(self, table: dict[str, bytes]) -> None:
        self.table = {k.replace(" ", "").upper(): v for k, v in table.items()}
        self.sent: list[str] = []

    def exchange(self, command: bytes) -> bytes:
        key = command.hex().upper()
        self.sent.append(key)
        return self.table.get(key, b"\x6a\x82")


def _select(name: bytes, next_: bool = False) -> str:
    return "00A404" + ("02" if next_ else "00") + f"{len(name):02X}" + name.hex().upper() + "00"


PSE_FCI = tlv.encode(0x6F, tlv.encode(0x84, b"1PAY.SYS.DDF01") + tlv.encode(0xA5, tlv.encode(0x88, b"\x01"))) + OK


def test_pse_directory_lists_the_applications_the_terminal_supports() -> None:
    """Book 1 12.3.2: READ RECORD of the directory SFI until 6A83; unknown AIDs are left out."""
    record = tlv.encode(
        0x70, _entry(MC, "MC", 2) + _entry(VISA, "VISA", 1) + _entry(bytes.fromhex("A0000009991010"), "X", 1)
    )
    card = Scripted({_select(b"1PAY.SYS.DDF01"): PSE_FCI, "00B2010C00": record + OK, "00B2020C00": b"\x6a\x83"})
    found, method = build_candidates(card, config())
    assert method == "PSE" and [c.adf_name for c in found] == [MC, VISA]
    ordered = order_candidates(found, config())
    assert [c.label for c in ordered] == ["VISA", "MC"]  # 87: 1 before 2


def test_a_broken_pse_falls_back_to_the_list_of_aids() -> None:
    """Book 1 12.3.2: a directory record that is not a 70 template: the list of AIDs method."""
    card = Scripted(
        {
            _select(b"1PAY.SYS.DDF01"): PSE_FCI,
            "00B2010C00": b"\x61\x00" + OK,
            _select(VISA): _fci(VISA, "VISA") + OK,
        }
    )
    found, method = build_candidates(card, config())
    assert method == "AIDs" and [c.adf_name for c in found] == [VISA]


def test_pse_6a81_means_the_card_is_blocked() -> None:
    """Book 1 12.3.2: SELECT PSE answered 6A81: card blocked, the transaction ends."""
    card = Scripted({_select(b"1PAY.SYS.DDF01"): b"\x6a\x81"})
    with pytest.raises(CardBlocked):
        build_candidates(card, config())
    r = ContactKernel(card, config(), txn()).start()
    assert r.outcome is Outcome.END_APPLICATION and "blocked" in (r.error or "")


def test_partial_selection_with_next_occurrence() -> None:
    """Book 1 12.3.3: a 5-byte terminal AID finds longer ADF names, SELECT next until 6A82."""
    short = ContactApplication(aid=bytes.fromhex("A000000003"), label="VISA")
    cfg = dataclasses.replace(config(), applications=(short,))
    card = Scripted(
        {
            _select(short.aid): _fci(VISA, "VISA CREDIT", 2) + OK,
            _select(short.aid, True): _fci(VISA_ELECTRON, "VISA ELECTRON", 1) + OK,
        }
    )
    found, method = build_candidates(card, cfg)
    assert method == "AIDs" and [c.adf_name for c in found] == [VISA, VISA_ELECTRON]
    assert card.sent.count(_select(short.aid, True)) == 2  # the card repeats itself: selection stops


def test_no_partial_selection_when_the_terminal_forbids_it() -> None:
    exact = ContactApplication(aid=bytes.fromhex("A000000003"), label="VISA", partial_selection=False)
    cfg = dataclasses.replace(config(), applications=(exact,))
    card = Scripted({_select(exact.aid): _fci(VISA) + OK})
    assert build_candidates(card, cfg)[0] == []


def test_blocked_application_is_not_a_candidate() -> None:
    """Book 1 12.3.3: 6283 (selected file invalidated): not added."""
    card = Scripted({_select(VISA): _fci(VISA) + b"\x62\x83"})
    assert build_candidates(card, config())[0] == []


def test_terminal_priority_breaks_ties_of_the_card() -> None:
    """Book 1 12.4: equal card priority: the terminal's own priority, then its order."""
    record = tlv.encode(0x70, _entry(VISA, "VISA", None) + _entry(MC, "MC", None))
    card = Scripted({_select(b"1PAY.SYS.DDF01"): PSE_FCI, "00B2010C00": record + OK, "00B2020C00": b"\x6a\x83"})
    apps = config().applications
    cfg = dataclasses.replace(config(), applications=(apps[0], dataclasses.replace(apps[1], priority=-1)))
    found, _ = build_candidates(card, cfg)
    assert [c.label for c in order_candidates(found, cfg)] == ["MC", "VISA"]


def test_cardholder_chooses_among_several() -> None:
    """Book 1 12.4: with a cardholder interface the list is offered; the choice is taken."""
    record = tlv.encode(0x70, _entry(VISA, "VISA", 1) + _entry(MC, "MC", 2))
    card = Scripted({_select(b"1PAY.SYS.DDF01"): PSE_FCI, "00B2010C00": record + OK, "00B2020C00": b"\x6a\x83"})
    found, _ = build_candidates(card, config())
    pad = Pad(pick=1)
    assert choose(order_candidates(found, config()), pad).label == "MC"  # type: ignore[union-attr]
    assert [c.label for c in pad.offered[0]] == ["VISA", "MC"]
    with pytest.raises(SelectionCancelled):
        choose(order_candidates(found, config()), Pad(pick=5))


def test_confirmation_required_without_a_cardholder_interface_excludes_the_application() -> None:
    """Book 1 12.4: 87 bit 8 and no way to confirm: the application is not selected."""
    confirm = bytes.fromhex("81")[0]
    _k, r, _card = run(_with_priority("contact-dda", confirm))
    assert r.outcome is Outcome.END_APPLICATION and "no application" in (r.error or "")


def test_confirmation_asked_and_given() -> None:
    pad = Pad()
    _k, r, _card = run(_with_priority("contact-dda", 0x81), cardholder=pad)
    assert r.outcome is Outcome.APPROVED and [c.adf_name for c in pad.confirmed] == [VISA]


def test_confirmation_refused_ends_the_transaction() -> None:
    _k, r, _card = run(_with_priority("contact-dda", 0x81), cardholder=Pad(confirm=False))
    assert r.outcome is Outcome.END_APPLICATION and (r.error or "").startswith("cancelled")


def test_final_select_answering_another_df_name_removes_the_candidate() -> None:
    """Book 1 12.4: the FCI of the final SELECT must name the candidate."""
    card = Scripted({_select(VISA): _fci(VISA) + OK})
    first = True

    class Other(Scripted):
        def exchange(self, command: bytes) -> bytes:
            nonlocal first
            if command.hex().upper() == _select(VISA) and not first:
                return _fci(MC) + OK
            first = False
            return super().exchange(command)

    r = ContactKernel(Other(card.table), config(), txn()).start()
    assert r.outcome is Outcome.END_APPLICATION and "no application" in (r.error or "")


def _with_priority(name: str, priority: int) -> object:
    from tests.contact_rig import profile

    return profile(name, priority=priority)
