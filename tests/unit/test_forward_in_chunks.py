"""The forwarder records a chunk's answers in one commit (Store.atomic), each still all or nothing.

A chunk is at most the protocol's maximum of advices per request; the
listeners hear of the answers only once they are durable; a failure while
recording a chunk leaves every entry of it queued and marked as sent (so that
its resend is flagged a retransmission and answered from the host's records).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from host_link.wire import MAX_ADVICES_PER_REQUEST
from simulator.host.inprocess import InProcessHost
from terminal.bootstrap import open_terminal
from terminal.facade import Terminal, TerminalEvent, TerminalSettings
from terminal.forwarding import SEND_CHUNK
from terminal.lifecycle import Event, State
from terminal.offline import OfflineLimits
from terminal.store import StorageError

EUR = 978


def _terminal(tmp_path: Path, sales: int) -> Terminal:
    limits = OfflineLimits(
        per_payment={EUR: 5000}, total_per_currency={EUR: 5000 * 500}, max_count=500, max_age_seconds=10**9
    )
    terminal = open_terminal(
        tmp_path / "t",
        reader_url="sim:card=visa-qvsdc-offline",
        host="none",
        settings=TerminalSettings(offline_limits=limits),
    )
    for _ in range(sales):
        assert terminal.sale(1234, EUR).approved
    return terminal


def test_a_chunk_is_the_protocols_most_advices_per_request() -> None:
    assert SEND_CHUNK == MAX_ADVICES_PER_REQUEST


def test_answers_are_recorded_a_chunk_a_commit_and_told_after_it(tmp_path: Path) -> None:
    terminal = _terminal(tmp_path, SEND_CHUNK + 5)
    terminal.host = InProcessHost()
    told: list[tuple[str, int]] = []

    def listen(event: TerminalEvent) -> None:
        if event.kind == "saf_forwarded":
            # Told after the chunk's commit: every answer of the chunk is recorded by then.
            told.append((event.txn_id or "", terminal.offline_status().queued))

    terminal.subscribe(listen)
    report = terminal.forward_now()
    assert report.accepted == SEND_CHUNK + 5 and report.stopped_by is None
    assert terminal.offline_status().queued == 0
    assert [n for _, n in told[:SEND_CHUNK]] == [5] * SEND_CHUNK  # the first chunk, all recorded before any was told
    assert all(t.state is State.FORWARDED for t in terminal.transactions())
    terminal.close()


def test_a_failure_while_recording_a_chunk_keeps_all_of_it_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _terminal(tmp_path, 10)
    terminal.host = InProcessHost()
    store = terminal.store
    real = store.record
    seen = []

    def record(txn_id: str, event: Event, *args: object, **kw: object) -> State:
        if event is Event.FORWARD_ACCEPTED:
            seen.append(txn_id)
            if len(seen) == 7:
                raise StorageError("disk full (injected)")
        return real(txn_id, event, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "record", record)
    with pytest.raises(StorageError):
        terminal.forward_now()
    monkeypatch.undo()
    status = terminal.offline_status()
    assert status.queued == 10  # the six recorded before the failure were undone with it
    assert terminal.store.verify().ok
    report = terminal.forward_now()  # sent again, flagged as retransmissions, answered from the host's records
    assert report.accepted == 10 and terminal.offline_status().queued == 0
    assert terminal.store.verify().ok
    terminal.close()


def test_a_change_that_fails_inside_atomic_is_undone_alone(tmp_path: Path) -> None:
    terminal = _terminal(tmp_path, 2)
    store = terminal.store
    first, second = (t.txn_id for t in terminal.transactions())
    at = "2030-01-01T00:00:00.000000+00:00"
    with store.atomic():
        store.record(first, Event.FORWARD_ACCEPTED, at, {"response_code": "00"})
        with pytest.raises(Exception):  # noqa: B017 - the table forbids it, whichever error names it
            store.record(first, Event.FORWARD_ACCEPTED, at, {"response_code": "00"})
        store.record(second, Event.FORWARD_ACCEPTED, at, {"response_code": "00"})
    states = {t.txn_id: t.state for t in terminal.transactions()}
    assert states == {first: State.FORWARDED, second: State.FORWARDED}
    assert store.verify().ok
    terminal.close()
