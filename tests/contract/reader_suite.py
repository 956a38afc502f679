"""The card reader contract: every adapter behaves the same way at the port.

Import into a test file that defines the ``reader_rig`` fixture (see rigs.py).
"""

from __future__ import annotations

import threading
import time

import pytest

from emv.apdu import CardCommunicationError
from terminal.ports import CancelToken, CollisionDetected, DeviceGone, NoCardError, WaitCancelled
from tests.contract.rigs import ReaderRig, Unsupported

__all__ = [
    "test_reader_cancel_ends_the_wait",
    "test_reader_card_removed_mid_transaction",
    "test_reader_no_card_times_out",
    "test_reader_reader_gone",
    "test_reader_selects_ppse",
    "test_reader_two_cards",
]

PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")


def _do(action: object, *args: object) -> None:
    try:
        action(*args)  # type: ignore[operator]
    except Unsupported as exc:
        pytest.skip(str(exc))


def test_reader_selects_ppse(reader_rig: ReaderRig) -> None:
    _do(reader_rig.insert, "visa-qvsdc-online")
    session = reader_rig.reader.wait_for_card(timeout=10)
    try:
        answer = session.exchange(PPSE)
        assert answer[-2:] == b"\x90\x00" and answer[0] == 0x6F
        assert isinstance(session.atr, bytes) and session.atr
    finally:
        session.close()


def test_reader_no_card_times_out(reader_rig: ReaderRig) -> None:
    _do(reader_rig.remove)
    started = time.monotonic()
    with pytest.raises(NoCardError):
        reader_rig.reader.wait_for_card(timeout=0.5)
    assert time.monotonic() - started < 10


def test_reader_cancel_ends_the_wait(reader_rig: ReaderRig) -> None:
    _do(reader_rig.remove)
    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    with pytest.raises(WaitCancelled):
        reader_rig.reader.wait_for_card(timeout=30, cancel=token)


def test_reader_card_removed_mid_transaction(reader_rig: ReaderRig) -> None:
    _do(reader_rig.insert, "visa-qvsdc-online")
    session = reader_rig.reader.wait_for_card(timeout=10)
    try:
        _do(reader_rig.remove_after, 1)
        assert session.exchange(PPSE)[-2:] == b"\x90\x00"
        with pytest.raises(CardCommunicationError):
            session.exchange(PPSE)
    finally:
        session.close()


def test_reader_two_cards(reader_rig: ReaderRig) -> None:
    _do(reader_rig.insert_two, "visa-qvsdc-online", "mc-cda-online")
    with pytest.raises(CollisionDetected):
        reader_rig.reader.wait_for_card(timeout=10)


def test_reader_reader_gone(reader_rig: ReaderRig) -> None:
    _do(reader_rig.unplug)
    with pytest.raises((DeviceGone, NoCardError)):
        reader_rig.reader.wait_for_card(timeout=2)
