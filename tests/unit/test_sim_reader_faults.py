"""The ``sim:`` reader's fault options: a card taken away, gone mute, late, and the bad spellings."""

from __future__ import annotations

import threading
import time

import pytest

from emv.apdu import CardCommunicationError
from emv.entry_point import process
from emv.outcome import Message, Outcome
from emv.transaction import TransactionData
from simulator.devices import SimulatorCardReader, SimulatorDeviceError
from terminal import registry
from terminal.ports import CancelToken, CardReader, CardRemovedError, DeviceError, NoCardError, WaitCancelled
from terminal.settings import load_default_config

PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")


def tap(reader: CardReader, amount: int = 1234) -> tuple[Outcome, list[Message], str | None]:
    session = reader.wait_for_card(timeout=5)
    try:
        txn = TransactionData(amount, 978, bytes.fromhex("261121"), bytes.fromhex("1A2B3C4D"))
        result = process(session, load_default_config(), txn)
    finally:
        session.close()
    return result.outcome, [m.message for m in result.messages], result.error


@pytest.mark.parametrize("n", [0, 1, 3])
def test_remove_after_n_answers_n_then_the_card_is_gone(n: int) -> None:
    reader = registry.open_reader(f"sim:card=visa-qvsdc-online?remove-after={n}")
    session = reader.wait_for_card()
    for _ in range(n):
        assert session.exchange(PPSE)[-2:] == b"\x90\x00"
    for _ in range(2):  # gone is gone, for the rest of the session
        with pytest.raises(CardRemovedError, match=f"left the field after {n} command"):
            session.exchange(PPSE)


def test_a_card_taken_away_is_present_card_again_then_the_second_tap_completes() -> None:
    reader = registry.open_reader("sim:card=visa-qvsdc-online?remove-after=3")
    outcome, messages, error = tap(reader)
    assert outcome is Outcome.TRY_AGAIN
    assert messages == [Message.PRESENT_CARD_AGAIN]
    assert error is not None and "left the field" in error
    # presented again: a fresh session, the fault was for the first one only
    outcome, _, _ = tap(reader)
    assert outcome is Outcome.ONLINE_REQUEST
    assert tap(reader)[0] is Outcome.ONLINE_REQUEST


def test_mute_after_stays_mute_for_the_session_and_the_next_tap_answers() -> None:
    reader = registry.open_reader("sim:card=visa-qvsdc-offline?mute-after=2")
    session = reader.wait_for_card()
    session.exchange(PPSE)
    session.exchange(PPSE)
    for _ in range(2):
        with pytest.raises(CardCommunicationError, match="stopped answering after 2 commands"):
            session.exchange(PPSE)
    assert tap(reader)[0] is Outcome.APPROVED


def test_mute_during_the_kernel_is_present_card_again() -> None:
    reader = registry.open_reader("sim:card=mc-cda-offline?mute-after=4")
    outcome, messages, _ = tap(reader)
    assert (outcome, messages) == (Outcome.TRY_AGAIN, [Message.PRESENT_CARD_AGAIN])
    assert tap(reader)[0] is Outcome.APPROVED


def test_reinsert_after_keeps_the_card_away_that_long() -> None:
    reader = registry.open_reader("sim:card=visa-qvsdc-online?remove-after=0&reinsert-after=0.3")
    session = reader.wait_for_card()
    with pytest.raises(CardRemovedError):
        session.exchange(PPSE)
    with pytest.raises(NoCardError, match=r"within 0\.05 s"):
        reader.wait_for_card(timeout=0.05)
    started = time.monotonic()
    again = reader.wait_for_card(timeout=5)
    assert 0.1 < time.monotonic() - started < 2
    assert again.exchange(PPSE)[-2:] == b"\x90\x00"


def test_present_after_delays_the_first_card_and_a_cancel_ends_the_wait() -> None:
    reader = registry.open_reader("sim:card=visa-qvsdc-online?present-after=0.3")
    with pytest.raises(NoCardError):
        reader.wait_for_card(timeout=0.05)
    token = CancelToken()
    threading.Timer(0.05, token.cancel).start()
    with pytest.raises(WaitCancelled):
        reader.wait_for_card(timeout=5, cancel=token)
    session = reader.wait_for_card(timeout=5)  # by now the card has come
    assert session.exchange(PPSE)[-2:] == b"\x90\x00"


def test_without_options_the_card_is_always_there() -> None:
    reader = registry.open_reader("sim:card=visa-qvsdc-online")
    for _ in range(3):
        session = reader.wait_for_card(timeout=0)
        assert session.exchange(PPSE)[-2:] == b"\x90\x00"
    assert registry.open_reader("sim:card=visa-qvsdc-online?").wait_for_card(timeout=0)


def test_runtime_remove_after_counts_from_now() -> None:
    reader = SimulatorCardReader.open("sim:card=visa-qvsdc-online")
    session = reader.wait_for_card()
    session.exchange(PPSE)
    reader.remove_after(1)
    session.exchange(PPSE)
    with pytest.raises(CardRemovedError):
        session.exchange(PPSE)
    with pytest.raises(ValueError):
        reader.remove_after(-1)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sim:card=visa-qvsdc-online?remove-after=x", "option remove-after: 'x' is not a count of commands"),
        ("sim:card=visa-qvsdc-online?remove-after=-1", "option remove-after: '-1' is not a count of commands"),
        ("sim:card=visa-qvsdc-online?remove-after=1.5", "option remove-after: '1.5' is not a count"),
        ("sim:card=visa-qvsdc-online?mute-after=", "option mute-after: '' is not a count of commands"),
        ("sim:card=visa-qvsdc-online?mute-after", "option mute-after needs a value"),
        ("sim:card=visa-qvsdc-online?reinsert-after=soon", "option reinsert-after: 'soon' is not a number of seconds"),
        ("sim:card=visa-qvsdc-online?present-after=nan", "option present-after: seconds between 0 and 3600"),
        ("sim:card=visa-qvsdc-online?present-after=-1", "option present-after: seconds between 0 and 3600"),
        ("sim:card=visa-qvsdc-online?present-after=1e9", "option present-after: seconds between 0 and 3600"),
        ("sim:card=visa-qvsdc-online?remove-after=1&remove-after=2", "option remove-after given twice"),
        ("sim:card=visa-qvsdc-online?fly-away=1", "unknown option 'fly-away=1' (options: remove-after=N"),
        ("sim:card=nosuch?remove-after=1", "unknown card profile 'nosuch'"),
        ("sim:replay=/nonexistent/trace.json", "trace file /nonexistent/trace.json not found"),
    ],
)
def test_bad_options_are_one_line_device_errors_naming_them(url: str, message: str) -> None:
    with pytest.raises(SimulatorDeviceError) as info:
        registry.open_reader(url)
    assert isinstance(info.value, DeviceError)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_underscores_are_accepted_as_nfc_udp_accepts_them() -> None:
    reader = registry.open_reader("sim:card=visa-qvsdc-online?remove_after=0")
    with pytest.raises(CardRemovedError):
        reader.wait_for_card().exchange(PPSE)
