"""host_link.forwarder with a fake terminal: rounds, kicks, backoff, survival, a bounded stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from host_link.forwarder import SafForwarder
from terminal.facade import ForwardReport, TerminalEvent


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


class FakeTerminal:
    """forward_due pops scripted reports (or raises); records the limits asked for."""

    def __init__(self) -> None:
        self.script: list[ForwardReport | Exception] = []
        self.limits: list[int | None] = []
        self.listeners: list[Callable[[TerminalEvent], None]] = []
        self.gate: threading.Event | None = None
        self.lock = threading.Lock()

    def forward_due(self, limit: int | None = None) -> ForwardReport:
        if self.gate is not None:
            self.gate.wait()
        with self.lock:
            self.limits.append(limit)
            item = self.script.pop(0) if self.script else ForwardReport()
        if isinstance(item, Exception):
            raise item
        return item

    def subscribe(self, listener: Callable[[TerminalEvent], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def emit(self, kind: str, **data: object) -> None:
        for listener in list(self.listeners):
            listener(TerminalEvent(kind, None, dict(data)))

    @property
    def rounds(self) -> int:
        with self.lock:
            return len(self.limits)


def test_first_round_at_once_then_rounds_go_on_while_entries_move() -> None:
    term = FakeTerminal()
    term.script = [ForwardReport(accepted=50), ForwardReport(accepted=50), ForwardReport(accepted=3)]
    fwd = SafForwarder(term, batch_size=50, interval_seconds=60)
    fwd.start()
    try:
        wait_for(lambda: term.rounds == 4)  # 3 with entries, one that finds nothing; then it waits 60 s
        time.sleep(0.05)
        assert term.rounds == 4 and term.limits == [50, 50, 50, 50]
        assert fwd.running and fwd.last_error is None
    finally:
        assert fwd.stop(timeout=2)
    assert not fwd.running and term.listeners == []


def test_kick_runs_a_round_now() -> None:
    term = FakeTerminal()
    fwd = SafForwarder(term, interval_seconds=60)
    fwd.start()
    try:
        wait_for(lambda: term.rounds == 1)
        fwd.kick()
        wait_for(lambda: term.rounds == 2)
    finally:
        fwd.stop(timeout=2)


def test_a_payment_stored_by_another_thread_kicks_it_but_its_own_status_event_does_not() -> None:
    term = FakeTerminal()

    def forward_due(limit: int | None = None) -> ForwardReport:
        term.limits.append(limit)
        term.emit("offline_status", queued=3, reversals_queued=0)  # what the facade emits after a round
        return ForwardReport()

    term.forward_due = forward_due  # type: ignore[method-assign]
    fwd = SafForwarder(term, interval_seconds=60)
    fwd.start()
    try:
        wait_for(lambda: len(term.limits) == 1)
        time.sleep(0.05)
        assert len(term.limits) == 1  # not woken by itself
        term.emit("offline_status", queued=0, reversals_queued=0)
        time.sleep(0.05)
        assert len(term.limits) == 1  # nothing queued: no news
        term.emit("offline_status", queued=1, reversals_queued=0)
        wait_for(lambda: len(term.limits) == 2)
    finally:
        fwd.stop(timeout=2)


def test_backoff_doubles_while_the_host_fails_and_resets_after_a_clean_round() -> None:
    term = FakeTerminal()
    fwd = SafForwarder(term, interval_seconds=0.5, max_backoff_seconds=3)
    assert fwd._pause() == 0.5
    for expected in (0.5, 1.0, 2.0, 3.0, 3.0):
        term.script = [ForwardReport(failed=1, stopped_by="HostUnreachable: refused")]
        assert fwd._round() is False
        assert fwd._pause() == expected
    assert fwd.last_error == "HostUnreachable: refused"
    term.script = [ForwardReport()]  # nothing was due: no news about the host
    assert fwd._round() is False
    assert fwd._pause() == 3.0 and fwd.last_error == "HostUnreachable: refused"
    term.script = [ForwardReport(accepted=1)]
    assert fwd._round() is True
    assert fwd._pause() == 0.5 and fwd.last_error is None


def test_it_survives_exceptions_from_the_terminal() -> None:
    term = FakeTerminal()
    term.script = [RuntimeError("database is locked"), ForwardReport(accepted=2)]
    fwd = SafForwarder(term, interval_seconds=0.01, max_backoff_seconds=0.02)
    fwd.start()
    try:
        wait_for(lambda: term.rounds >= 3)  # the failed round, the one that moved 2, one that found nothing
        assert fwd.running and fwd.last_error is None
    finally:
        fwd.stop(timeout=2)


def test_stop_is_bounded_while_a_round_is_stuck_in_a_host_call() -> None:
    term = FakeTerminal()
    term.gate = threading.Event()
    fwd = SafForwarder(term, interval_seconds=60)
    fwd.start()
    started = time.monotonic()
    assert fwd.stop(timeout=0.2) is False
    assert time.monotonic() - started < 2
    term.gate.set()
    wait_for(lambda: not fwd.running)


def test_start_twice_and_stop_without_start() -> None:
    term = FakeTerminal()
    fwd = SafForwarder(term, interval_seconds=60)
    assert fwd.stop() is True
    fwd.start()
    fwd.start()
    assert len(term.listeners) == 1
    assert fwd.stop(timeout=2)
    fwd.start()  # and again after a stop
    assert fwd.running
    assert fwd.stop(timeout=2)


@pytest.mark.parametrize(
    "kw", [{"batch_size": 0}, {"interval_seconds": 0}, {"interval_seconds": 5, "max_backoff_seconds": 1}]
)
def test_bad_arguments(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SafForwarder(FakeTerminal(), **kw)  # type: ignore[arg-type]
