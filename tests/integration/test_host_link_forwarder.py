"""SafForwarder with a real Terminal (SQLite journal, keystore, simulated card): the queue drains in order, once,
through a host that goes away mid-batch and comes back; over real HTTPS too."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from host_link.client import HttpsHostLink, IdempotentRetry
from host_link.forwarder import SafForwarder
from host_link.reachability import Reachability
from host_link.tls import client_context
from simulator.host.inprocess import InProcessHost
from terminal.bootstrap import open_terminal
from terminal.facade import Terminal
from terminal.host import Advice, AuthorisationRequest, BatchTotals, HostAnswer, Reversal, SettlementAnswer
from terminal.lifecycle import State
from terminal.offline import RetryPolicy
from terminal.settings import load_default_settings
from tests.integration.host_link_rig import MID, TID, Pki, TlsHost, install_protocol, make_pki, server_context


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    """A terminal whose host cannot be reached, with 12 card-approved offline payments queued."""
    settings = replace(load_default_settings(), retry=RetryPolicy(base_seconds=0.02, cap_seconds=0.1, jitter=0))
    term = open_terminal(tmp_path / "t", reader_url="sim:card=visa-qvsdc-offline", host="none", settings=settings)
    for i in range(12):
        assert term.sale(1000 + i, 978).state is State.OFFLINE_APPROVED
    assert term.offline_status().queued == 12
    yield term
    term.store.close()


def queued_order(term: Terminal) -> list[str]:
    return [item.txn_id for item in term.store.saf_queued(None)]


class Outage:
    """An in-process host that goes down after ``after`` advices; ``back()`` brings it back."""

    def __init__(self, after: int) -> None:
        self.inner = InProcessHost()
        self.after = after
        self.advices = 0
        self.went_down = threading.Event()

    def advise(self, advice: Advice) -> HostAnswer:
        self.advices += 1
        if self.advices == self.after:
            self.inner.faults.down = True
            self.went_down.set()
        return self.inner.advise(advice)

    def authorise(self, request: AuthorisationRequest) -> HostAnswer:
        return self.inner.authorise(request)

    def reverse(self, reversal: Reversal) -> HostAnswer:
        return self.inner.reverse(reversal)

    def close_batch(self, totals: BatchTotals) -> SettlementAnswer:
        return self.inner.close_batch(totals)

    def back(self) -> None:
        self.inner.faults.down = False


def test_the_queue_drains_in_order_once_through_an_outage_mid_batch(terminal: Terminal) -> None:
    order = queued_order(terminal)
    host = Outage(after=4)
    terminal.host = host
    fwd = SafForwarder(terminal, batch_size=5, interval_seconds=0.02, max_backoff_seconds=0.1)
    fwd.start()
    try:
        assert host.went_down.wait(10)
        wait_for(lambda: fwd.last_error is not None)  # a round was stopped by the outage
        assert 0 < terminal.offline_status().queued <= 9
        time.sleep(0.2)  # rounds keep failing while it is down, and the thread keeps going
        assert fwd.running
        host.back()
        fwd.kick()
        wait_for(lambda: terminal.offline_status().queued == 0)
    finally:
        assert fwd.stop(timeout=5)
    accepted = [r.txn_id for r in host.inner.records if r.method == "advise"]
    assert sorted(accepted) == sorted(order)  # each once (the order: see the test below)
    assert host.inner.duplicates() == {}
    assert all(terminal.store.get(t).state is State.FORWARDED for t in order)  # type: ignore[union-attr]
    assert any(c.outcome == "unreachable" for c in host.inner.calls)


def test_after_a_failure_the_queue_still_leaves_in_order(terminal: Terminal) -> None:
    terminal.settings = replace(terminal.settings, retry=RetryPolicy(base_seconds=60, cap_seconds=60, jitter=0))
    order = queued_order(terminal)
    host = InProcessHost()
    terminal.host = host
    host.faults.down = True
    assert terminal.forward_due(limit=50).stopped_by is not None  # the head of the queue failed
    host.faults.down = False
    terminal.forward_due(limit=50)  # what the forwarder does next when the host is back
    assert [r.txn_id for r in host.records if r.method == "advise"] == []  # none jumps the head's backoff
    assert terminal.forward_now().accepted == len(order)
    assert [r.txn_id for r in host.records if r.method == "advise"] == order


def test_an_answer_lost_mid_batch_is_resent_with_its_key_and_counted_once(terminal: Terminal) -> None:
    order = queued_order(terminal)
    host = InProcessHost()
    host.faults.only = {"advise"}
    host.faults.no_answer = 1  # the first advice is processed, its answer lost
    terminal.host = host
    fwd = SafForwarder(terminal, batch_size=5, interval_seconds=0.02, max_backoff_seconds=0.1)
    fwd.start()
    try:
        wait_for(lambda: terminal.offline_status().queued == 0)
    finally:
        assert fwd.stop(timeout=5)
    assert [r.txn_id for r in host.records if r.method == "advise"] == order
    assert host.duplicates() == {}
    assert [c.outcome for c in host.calls if c.txn_id == order[0]] == ["approved+no_answer", "replay"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_over_https_the_host_goes_away_and_comes_back_mid_batch(terminal: Terminal, pki: Pki) -> None:
    order = queued_order(terminal)
    keys = {item.idempotency_key for item in terminal.store.saf_queued(None)}
    server = TlsHost(server_context(pki)).start()
    install_protocol(server)
    link = HttpsHostLink(
        server.url,
        terminal_id=TID,
        merchant_id=MID,
        ssl_context=client_context(ca_file=pki.ca_file, cert_file=pki.cert("client"), key_file=pki.key("client")),
        connect_timeout=1,
        read_timeout=2,
        retry=IdempotentRetry(attempts=2, backoff_seconds=0.01, total_seconds=5),
        reachability=Reachability(retry_after_seconds=0.1),
    )
    terminal.host = link
    fwd = SafForwarder(terminal, batch_size=3, interval_seconds=0.02, max_backoff_seconds=0.1)

    def advices_received() -> int:
        return sum(len(r.json()["advices"]) for r in server.received("/v1/advices"))

    try:
        gate = threading.Event()
        original = terminal.forward_due

        def paced(limit: int | None = None):  # type: ignore[no-untyped-def]
            report = original(limit)
            if advices_received() >= 6:
                gate.wait(10)  # hold the forwarder while the test takes the host away
            return report

        terminal.forward_due = paced  # type: ignore[method-assign]
        fwd.start()
        wait_for(lambda: advices_received() >= 6)
        server.stop()
        gate.set()
        wait_for(lambda: not link.reachable)
        assert terminal.offline_status().queued > 0
        server.start()
        fwd.kick()
        wait_for(lambda: terminal.offline_status().queued == 0)
    finally:
        fwd.stop(timeout=5)
        link.close()
        server.stop()
    received = server.received("/v1/advices")
    assert {a["idempotency_key"] for r in received for a in r.json()["advices"]} == keys
    assert [a["txn_id"] for r in received[:2] for a in r.json()["advices"]] == order[:6]  # before the outage
    assert all(len(r.json()["advices"]) <= 3 for r in received)  # batch_size: one POST per round
    assert all(r.peer_cn == TID for r in received)
    assert all(terminal.store.get(t).state is State.FORWARDED for t in order)  # type: ignore[union-attr]
