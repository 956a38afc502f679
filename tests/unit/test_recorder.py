"""emv.recorder: the one APDU recorder, and its users (Entry Point, trace files, the diagnostics' trace)."""

from __future__ import annotations

import itertools

import pytest

from emv.config import TerminalConfig
from emv.entry_point import process
from emv.recorder import ApduRecorder, Exchange
from emv.transaction import TransactionData
from simulator.card import SimulatedCard
from simulator.transport import as_transport
from terminal.apdu_trace import ApduTrace, observe
from terminal.emv_session import run_tap
from terminal.ports import CancelToken, CardRemovedError, CardSession
from terminal.trace import to_trace


class _Card:
    def __init__(self) -> None:
        self.calls = 0

    def exchange(self, command: bytes) -> bytes:
        self.calls += 1
        if self.calls == 2:
            raise OSError("gone")
        return b"\x90\x00"


def test_the_recorder_keeps_every_exchange_and_tells_observers() -> None:
    seen: list[Exchange] = []
    rec = ApduRecorder(_Card(), observers=[seen.append])
    assert rec.exchange(b"\x00\xa4\x04\x00") == b"\x90\x00"
    with pytest.raises(OSError):
        rec.exchange(b"\x80\xa8\x00\x00")
    assert seen == rec.exchanges and len(seen) == 2
    assert seen[1].response is None and seen[1].error == "OSError: gone"
    assert rec.commands == [b"\x00\xa4\x04\x00", b"\x80\xa8\x00\x00"]
    assert to_trace({"amount": 1}, rec.exchanges) == {
        "amount": 1,
        "exchanges": [{"command": "00A40400", "response": "9000"}, {"command": "80A80000", "response": None}],
    }


def test_a_broken_observer_is_passed_over_and_the_others_still_hear() -> None:
    def broken(exchange: Exchange) -> None:
        raise RuntimeError("observer bug")

    seen: list[Exchange] = []
    rec = ApduRecorder(_Card(), observers=[broken, seen.append], keep=False)
    assert rec.exchange(b"\x00\xa4\x04\x00") == b"\x90\x00"
    assert len(seen) == 1 and rec.exchanges == []  # keep=False: only the observers have it


def test_a_recorder_with_a_clock_times_each_exchange() -> None:
    ticks = itertools.count(start=10.0, step=0.25)
    rec = ApduRecorder(_Card(), clock=lambda: next(ticks), source="sim:card=x")
    rec.exchange(b"\x00\xa4\x04\x00")
    assert rec.exchanges[0].seconds == 0.25 and rec.exchanges[0].source == "sim:card=x"
    plain = ApduRecorder(_Card())
    plain.exchange(b"\x00\xa4\x04\x00")
    assert plain.exchanges[0].seconds is None and plain.exchanges[0].source == ""


def test_entry_point_and_a_tap_record_through_the_same_recorder(terminal_config: TerminalConfig) -> None:
    txn = TransactionData(1000, 978, bytes.fromhex("250614"), bytes.fromhex("01020304"))
    report = run_tap(as_transport(SimulatedCard("visa-qvsdc-offline", seed=1)), terminal_config, txn)
    assert isinstance(report.recorder, ApduRecorder)
    assert report.result.commands == report.recorder.commands
    again = process(as_transport(SimulatedCard("visa-qvsdc-offline", seed=1)), terminal_config, txn)
    assert again.commands == report.result.commands


# ----------------------------------------------------------------------------- the diagnostics' trace


class _Session:
    atr = b"\x3b\x80"

    def __init__(self, answers: list[bytes | Exception]) -> None:
        self.answers = answers
        self.closed = False

    def exchange(self, command: bytes) -> bytes:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        self.closed = True


class _Reader:
    url = "fake:"

    def __init__(self, session: _Session) -> None:
        self.session = session
        self.extra = "the adapter's own"

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> CardSession:
        return self.session

    def close(self) -> None:
        pass


def test_an_observed_reader_reports_every_exchange_masked() -> None:
    record = bytes.fromhex("70105A0867596498264384535F2403301231") + b"\x90\x00"
    session = _Session([record, CardRemovedError("card taken away")])
    trace, heard = ApduTrace(), ApduTrace()
    reader = observe(_Reader(session), trace)
    assert observe(reader, heard) is reader and reader.extra == "the adapter's own"
    card = reader.wait_for_card()
    assert card.atr == b"\x3b\x80"
    assert card.exchange(bytes.fromhex("00B2010C00")) == record
    with pytest.raises(CardRemovedError):
        card.exchange(bytes.fromhex("00B2020C00"))
    card.close()
    assert session.closed and len(trace) == len(heard) == 2
    first, second = trace.to_json()
    assert first["reader"] == "fake:" and first["ms"] is not None and first["ms"] >= 0
    assert first["response"] == "7010 5A08675964******8453 5F2403301231 9000"
    assert second["response"] is None and second["error"] == "CardRemovedError: card taken away"
    assert "6759649826438453" not in "\n".join(trace.lines())
