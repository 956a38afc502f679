"""The simulated contact cards, card side: what they answer, command by command."""

from __future__ import annotations

import pytest

from simulator import cards
from simulator.contact.card import CONTACT_ATR, ContactCard
from simulator.contact.profiles import list_names, load
from simulator.devices import SimulatorCardReader
from simulator.profiles import ProfileError

SELECT_PSE = bytes.fromhex("00A404000E315041592E5359532E444446303100")
SELECT_VISA = bytes.fromhex("00A4040007A000000003101000")
GPO = bytes.fromhex("80A8000002830000")


def _pin(pin: str) -> bytes:
    return bytes.fromhex(f"2{len(pin):X}{pin}".ljust(16, "F"))


def test_names_start_with_contact_and_all_load() -> None:
    names = list_names()
    assert len(names) >= 12 and all(n.startswith("contact-") for n in names)
    for name in names:
        assert load(name).name == name
        assert name in cards.names()
        assert type(cards.open_card(name)).__name__ == "ContactCard"


def test_unknown_contact_name_is_a_clear_error() -> None:
    with pytest.raises(ProfileError, match="unknown card profile 'contact-nope'"):
        cards.check("contact-nope")


def test_in_process_reader_gives_a_t1_atr_and_no_ppse() -> None:
    """sim:card=contact-...: an inserted card: its own ATR (T=1), no PPSE, a PSE."""
    session = SimulatorCardReader.open("sim:card=contact-offline-pin").wait_for_card()
    assert session.atr == CONTACT_ATR and CONTACT_ATR[2] & 0x0F == 1
    ppse = bytes.fromhex("00A404000E325041592E5359532E444446303100")
    assert session.exchange(ppse) == b"\x6a\x82"
    assert session.exchange(SELECT_PSE)[-2:] == b"\x90\x00"
    contactless = SimulatorCardReader.open("sim:card=visa-qvsdc-online").wait_for_card()
    assert contactless.atr == bytes.fromhex("3B80800101")


def test_pse_directory_record() -> None:
    card = ContactCard("contact-offline-pin")
    assert card.exchange(SELECT_PSE)[-2:] == b"\x90\x00"
    record = card.exchange(bytes.fromhex("00B2010C00"))
    assert record[-2:] == b"\x90\x00" and bytes.fromhex("4F07A0000000031010") in record
    assert card.exchange(bytes.fromhex("00B2020C00")) == b"\x6a\x83"


def test_verify_counts_tries_and_blocks() -> None:
    card = ContactCard("contact-offline-pin")
    card.exchange(SELECT_VISA)
    card.exchange(GPO)
    verify = bytes.fromhex("0020008008")
    assert card.exchange(verify + _pin("1111")) == b"\x63\xc2"
    assert card.exchange(verify + _pin("1234")) == b"\x90\x00"
    for left in (2, 1, 0):
        assert card.exchange(verify + _pin("0000")) == bytes([0x63, 0xC0 | left])
    assert card.exchange(verify + _pin("1234")) == b"\x69\x83"
    assert card.exchange(bytes.fromhex("80CA9F1700")) == bytes.fromhex("9F1701009000")


def test_enciphered_verify_needs_a_fresh_challenge() -> None:
    card = ContactCard("contact-enciphered-pin")
    card.exchange(SELECT_VISA)
    card.exchange(GPO)
    assert card.exchange(bytes.fromhex("0020008880") + bytes(128)) == b"\x6a\x80"


def test_commands_out_of_order_get_status_words() -> None:
    card = ContactCard("contact-scripts")
    assert card.exchange(GPO) == b"\x69\x85"  # nothing selected
    card.exchange(SELECT_VISA)
    assert card.exchange(bytes.fromhex("008200000A") + bytes(10)) == b"\x69\x85"  # no ARQC yet
    assert card.exchange(bytes.fromhex("841E000008") + bytes(8)) == b"\x69\x85"  # a script before any ARQC
    assert card.exchange(bytes.fromhex("00B2")) == b"\x67\x00"
    assert card.exchange(bytes.fromhex("80FF000000")) == b"\x6d\x00"
    assert card.exchange(bytes.fromhex("00A8000000")) == b"\x6e\x00"


def test_mute_card_goes_silent_after_selecting_its_application() -> None:
    from simulator.card import CardMuteError

    card = ContactCard("contact-mute")
    assert card.exchange(SELECT_VISA)[-2:] == b"\x90\x00"
    with pytest.raises(CardMuteError):
        card.exchange(GPO)


def test_the_terminal_tells_a_contact_card_by_its_atr() -> None:
    from emv.contact import card_interface

    contact = SimulatorCardReader.open("sim:card=contact-dda").wait_for_card()
    contactless = SimulatorCardReader.open("sim:card=visa-qvsdc-offline").wait_for_card()
    assert card_interface(contact.atr) == "contact" and card_interface(contactless.atr) == "contactless"


def test_a_sale_on_the_in_process_reader() -> None:
    """sim:card=contact-...: the contact kernel over the simulator's reader session, offline PIN approved."""
    from emv.contact import ContactKernel
    from emv.outcome import Outcome
    from tests.contact_rig import Pad, config, txn

    session = SimulatorCardReader.open("sim:card=contact-offline-pin").wait_for_card()
    kernel = ContactKernel(session, config(), txn(), cardholder=Pad("1234"))
    result = kernel.start()
    assert result.outcome is Outcome.APPROVED and result.cvm_results == bytes.fromhex("410002")
    with pytest.raises(RuntimeError):
        kernel.start()
