"""The reader contract on the PC/SC adapter (``pcsc:``), over the real pcscd with a vpcd virtual card.

Besides the shared suite: the URL forms, discovery, T=0 and T=1, the PC/SC
error table, a card that stops answering, reinsertion, and pcscd going away.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from drivers.pcsc import PCSC_ERRORS, PcscReader, error_for, reader_url
from emv.apdu import CardCommunicationError
from simulator.vpcd import T0_ATR, VirtualCard
from terminal import registry
from terminal.ports import (
    CancelToken,
    CardReader,
    CardRemovedError,
    CardSession,
    DeviceError,
    DeviceGone,
    NoCardError,
    WaitCancelled,
)
from tests.contract.reader_suite import *  # noqa: F403
from tests.contract.rigs import Unsupported
from tests.integration.pcscd_rig import PcscdRig, pcscd, vpcd  # noqa: F401

PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")


class PcscRig:
    """The ``pcsc:`` reader on vpcd's first virtual reader; cards are vpcd virtual cards."""

    def __init__(self, rig: PcscdRig) -> None:
        self.rig = rig
        self.reader: CardReader = registry.open_reader(rig.url)
        self.card: VirtualCard | None = None

    def insert(self, profile: str) -> None:
        self.remove()
        self.card = self.rig.card(profile)

    def insert_two(self, first: str, second: str) -> None:
        raise Unsupported(
            "vpcd serves one card per reader (a second card's connection waits until the first leaves); "
            "PC/SC readers do the anti-collision themselves"
        )

    def remove(self) -> None:
        if self.card is not None:
            self.card.remove()
            self.card = None
        self.rig.wait_present(False)

    def remove_after(self, exchanges: int) -> None:
        if self.card is None:
            raise AssertionError("no card to remove")
        self.card.remove_after(exchanges)

    def unplug(self) -> None:
        self.rig.unplug()  # the tests' own pcscd stops (and starts again after the test)


@pytest.fixture
def reader_rig(vpcd: PcscdRig) -> Iterator[PcscRig]:  # noqa: F811
    rig = PcscRig(vpcd)
    yield rig
    rig.reader.close()


# -- the adapter's own cases --------------------------------------------------------------------


def test_pcsc_error_table_names_every_code_with_a_port_error() -> None:
    allowed = (CardRemovedError, DeviceGone, DeviceError, WaitCancelled, NoCardError)
    for code, entry in PCSC_ERRORS.items():
        error = error_for(code, "reader")
        assert isinstance(error, allowed), entry.name
        assert entry.name in str(error) and entry.text.split(" (")[0] in str(error)
    assert isinstance(error_for(0x80100069), CardRemovedError)  # SCARD_W_REMOVED_CARD
    assert isinstance(error_for(0x8010000C), CardRemovedError)  # SCARD_E_NO_SMARTCARD
    assert isinstance(error_for(0x80100017), DeviceGone)  # SCARD_E_READER_UNAVAILABLE
    assert "start it" in str(error_for(0x8010001D))  # SCARD_E_NO_SERVICE says how to start pcscd
    assert "0x80100099" in str(error_for(0x80100099))  # an unknown code is still named by its number


def test_pcsc_url_forms() -> None:
    assert reader_url("ACS ACR122U 00 00") == "pcsc:ACS ACR122U 00 00"
    assert reader_url("odd%name?") == "pcsc:odd%25name%3F"
    with pytest.raises(DeviceError, match="answer-timeout"):
        PcscReader.open("pcsc:?answer-timeout=soon")
    with pytest.raises(DeviceError, match="unknown option"):
        PcscReader.open("pcsc:?speed=9600")


def test_pcsc_opens_by_name_prefix_and_percent_encoding(vpcd: PcscdRig) -> None:  # noqa: F811
    assert registry.open_reader("pcsc:").url == "pcsc:"
    assert isinstance(registry.open_reader("pcsc:"), PcscReader)
    assert PcscReader.open("pcsc:Virtual%20PCD%2000%2000").name == vpcd.reader
    assert PcscReader.open("pcsc:Virtual PCD 00 01").name == "Virtual PCD 00 01"
    assert PcscReader.open("pcsc:Virtual PCD 00 01?answer-timeout=2").answer_timeout == 2
    with pytest.raises(DeviceError, match="more than one reader"):
        PcscReader.open("pcsc:Virtual")
    with pytest.raises(DeviceError, match="no such reader"):
        PcscReader.open("pcsc:No Such Reader")


def test_pcsc_discover_lists_the_vpcd_readers(vpcd: PcscdRig) -> None:  # noqa: F811
    found = registry.discover("pcsc")
    assert vpcd.url in found and "pcsc:Virtual PCD 00 01" in found
    assert vpcd.url in registry.discover_all(["reader"])["reader"]


def test_pcsc_contactless_card_speaks_t1_and_reports_its_atr(vpcd: PcscdRig) -> None:  # noqa: F811
    card = vpcd.card("visa-qvsdc-online")
    reader = PcscReader.open(vpcd.url)
    with reader.wait_for_card(timeout=5) as session:
        assert isinstance(session, CardSession)
        assert session.protocol == "T=1" and session.atr == card.atr
        assert session.exchange(PPSE)[-2:] == b"\x90\x00"


def test_pcsc_contact_card_speaks_t0(vpcd: PcscdRig) -> None:  # noqa: F811
    vpcd.card("visa-qvsdc-online", atr=T0_ATR)
    reader = PcscReader.open(vpcd.url)
    with reader.wait_for_card(timeout=5) as session:
        assert session.protocol == "T=0" and session.atr == T0_ATR
        assert session.exchange(PPSE)[-2:] == b"\x90\x00"


def test_pcsc_cancel_is_quick(vpcd: PcscdRig) -> None:  # noqa: F811
    reader = PcscReader.open(vpcd.url)
    token = CancelToken()
    threading.Timer(0.2, token.cancel).start()
    started = time.monotonic()
    with pytest.raises(WaitCancelled):
        reader.wait_for_card(timeout=None, cancel=token)
    assert time.monotonic() - started < 0.6


def test_pcsc_a_card_arriving_during_the_wait_is_connected(vpcd: PcscdRig) -> None:  # noqa: F811
    card = vpcd.card("mc-cda-online", insert=False)
    reader = PcscReader.open(vpcd.url)
    threading.Timer(0.3, card.insert).start()
    with reader.wait_for_card(timeout=5) as session:
        assert session.exchange(PPSE)[-2:] == b"\x90\x00"


def test_pcsc_card_that_stops_answering_is_a_removed_card(vpcd: PcscdRig) -> None:  # noqa: F811
    card = vpcd.card("visa-qvsdc-online")
    reader = PcscReader.open(f"{vpcd.url}?answer-timeout=0.5")
    session = reader.wait_for_card(timeout=5)
    card.mute_after(1)
    assert session.exchange(PPSE)[-2:] == b"\x90\x00"
    started = time.monotonic()
    with pytest.raises(CardRemovedError, match="stopped answering"):
        session.exchange(PPSE)
    assert time.monotonic() - started < 2
    with pytest.raises(CardRemovedError, match="stopped answering"):  # at once: the card is known gone
        session.exchange(PPSE)
    session.close()  # does not wait for pcscd, which still waits for the card
    # pcscd holds the reader until the mute card leaves: the next wait times out, then works again
    with pytest.raises(NoCardError):
        reader.wait_for_card(timeout=0.3)
    card.remove()
    vpcd.wait_present(False)
    vpcd.insert(card)
    with reader.wait_for_card(timeout=5) as again:
        assert again.exchange(PPSE)[-2:] == b"\x90\x00"


def test_pcsc_reinserted_card_is_read_again(vpcd: PcscdRig) -> None:  # noqa: F811
    card = vpcd.card("visa-qvsdc-offline")
    card.reinsert_after(0.2)
    card.remove_after(1)
    reader = PcscReader.open(vpcd.url)
    session = reader.wait_for_card(timeout=5)
    assert session.exchange(PPSE)[-2:] == b"\x90\x00"
    with pytest.raises(CardCommunicationError):
        session.exchange(PPSE)
    session.close()
    assert card.wait_removed(2)
    assert card.wait_inserted(3)
    with reader.wait_for_card(timeout=5) as again:
        assert again.exchange(PPSE)[-2:] == b"\x90\x00"
    assert card.insertions == 2


def test_pcsc_pcscd_gone_during_a_transaction_and_before_opening(vpcd: PcscdRig) -> None:  # noqa: F811
    vpcd.card("visa-qvsdc-online")
    reader = PcscReader.open(vpcd.url)
    session = reader.wait_for_card(timeout=5)
    assert session.exchange(PPSE)[-2:] == b"\x90\x00"
    vpcd.unplug()
    with pytest.raises(DeviceGone, match="pcscd is not running"):
        session.exchange(PPSE)
    session.close()
    with pytest.raises(DeviceGone, match="pcscd"):
        reader.wait_for_card(timeout=1)
    with pytest.raises(DeviceError, match=r"not running.*start it"):
        PcscReader.open("pcsc:")
    assert PcscReader.discover() == []
    vpcd.replug()
    vpcd.card("visa-qvsdc-online")
    with reader.wait_for_card(timeout=5) as again:  # the same reader object works once pcscd is back
        assert again.exchange(PPSE)[-2:] == b"\x90\x00"
