"""The terminal and the simulated host end to end: real HTTPS with mutual TLS on loopback.

One host process serves the module, once with its books in SQLite (``host.db``
in its data directory) and once in PostgreSQL (a database of the session's
private cluster, tests/conftest.py); each test enrols a terminal of its own
(its own id, so its own host batch). Every fault of the host is tried at every
step the terminal talks to it (authorisation, forwarding, reversal,
settlement); after each, the faults are cleared, the terminal drains, and the
invariants are checked against the host's own records:

- no payment lost: every payment the terminal shows approved is held by the
  host, approved and not reversed, exactly once;
- none charged twice: no transaction is approved twice at the host;
- reversals delivered: what the terminal reversed or voided is reversed at the
  host, and nothing waits in the terminal's queues;
- the batch settles in balance, and the journal verifies.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from host_link.client import HttpsHostLink, IdempotentRetry
from host_link.credentials import load_credentials
from host_link.enrolment import CredentialBundle, enrol
from host_link.tls import client_context
from simulator.host.service import HostService, start_host
from terminal import registry
from terminal.bootstrap import open_terminal
from terminal.facade import SettlementRefused, Terminal
from terminal.host import HostNoAnswer, HostUnreachable
from terminal.lifecycle import APPROVED_STATES, State
from tests.integration.host_store import engine_store
from tests.postgres_rig import ENGINES

EUR = 978
ONLINE = "visa-qvsdc-online"
OFFLINE = "visa-qvsdc-offline"
READ_TIMEOUT = 1.0  # the "slow" fault waits longer than this
SLOW_MS = 1800

FAULTS: dict[str, dict[str, Any]] = {
    "down": {"down": True},
    "slow": {"slow_ms": SLOW_MS},
    "5xx": {"error_status": 503},
    "drop": {"drop_after_request": True},
}
_ids = itertools.count(1)


@pytest.fixture(scope="module", params=ENGINES)
def host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostService]:
    """The host server process, on each store engine."""
    with engine_store(request.param, request) as store, start_host(
        tmp_path_factory.mktemp("host"), store=store
    ) as service:
        yield service


@dataclass
class Counter_:
    """One enrolled terminal with a link of short timeouts, and the host it talks to."""

    terminal: Terminal
    host: HostService
    terminal_id: str

    def sale(self, amount: int, card: str = ONLINE) -> Any:
        self.terminal.reader = registry.open_reader(f"sim:card={card}")
        return self.terminal.sale(amount, EUR)

    def fault(self, name: str, path: str) -> None:
        spec = FAULTS[name]
        # "down" closes the port for everyone; the others can be aimed at one path
        self.host.set_faults(**spec) if name == "down" else self.host.set_faults(**spec, only=[path])

    def clear(self) -> None:
        self.host.clear_faults()
        link = self.terminal.host
        assert isinstance(link, HttpsHostLink)
        link.echo(force=True)  # what the link check does: the host is reachable again

    def records(self) -> list[dict[str, Any]]:
        return [r for r in self.host.records() if r["terminal_id"] == self.terminal_id]

    def drain_and_check(self) -> None:
        """Clear the faults, send everything, settle, and check the invariants against the host."""
        self.clear()
        report = self.terminal.forward_now()
        assert report.stopped_by is None, report
        status = self.terminal.offline_status()
        assert status.queued == 0 and status.reversals_queued == 0, status
        records = self.records()
        held = Counter(r["txn_id"] for r in records if r["method"] != "reverse" and r["approved"] and not r["reversed"])
        assert all(n == 1 for n in held.values()), f"charged twice: {held}"
        for row in self.terminal.store.list_transactions():
            if row.state in APPROVED_STATES:
                assert held[row.txn_id] == 1, f"{row.txn_id} ({row.state.value}) is not held by the host"
            else:
                assert held[row.txn_id] == 0, f"{row.txn_id} ({row.state.value}) is still charged at the host"
        settled = self.terminal.settle()
        assert settled.in_balance, settled.differences
        assert self.terminal.store.verify().ok


@pytest.fixture
def counter(host: HostService, tmp_path: Path) -> Iterator[Counter_]:
    terminal_id = f"E2E{next(_ids):05d}"
    data_dir = tmp_path / "terminal"
    enrol(CredentialBundle.from_json(host.credential_bundle(terminal_id, "POSTERM0000001")), data_dir)
    creds = load_credentials(data_dir)
    assert creds is not None
    link = HttpsHostLink(
        creds.url,
        terminal_id=creds.terminal_id,
        merchant_id=creds.merchant_id,
        ssl_context=client_context(ca_file=creds.ca_file, cert_file=creds.cert_file, key_file=creds.key_file),
        connect_timeout=1.0,
        read_timeout=READ_TIMEOUT,
        retry=IdempotentRetry(attempts=2, backoff_seconds=0.05, total_seconds=3.0),
    )
    terminal = open_terminal(data_dir, host="none")
    terminal.host = link  # the enrolled link brings the terminal's identity
    try:
        yield Counter_(terminal, host, terminal_id)
    finally:
        host.clear_faults()
        link.close()
        terminal.store.close()


# -- every message, no faults ---------------------------------------------------------------------


def test_the_host_keeps_its_books_in_the_store_it_was_given(counter: Counter_) -> None:
    counter.sale(2500)
    on_postgresql = counter.host.store is not None
    assert (counter.host.data_dir / "host.db").exists() is not on_postgresql
    assert counter.host.status()["store"].startswith("postgresql://" if on_postgresql else "/")
    assert any(r["terminal_id"] == counter.terminal_id for r in counter.host.records())


def test_a_day_without_faults(counter: Counter_) -> None:
    approved = counter.sale(2500)
    assert approved.state is State.APPROVED and approved.approval_code
    declined = counter.sale(1251)
    assert declined.state is State.DECLINED and declined.response_code == "51"
    offline = counter.sale(1234, OFFLINE)
    assert offline.state is State.OFFLINE_APPROVED
    refund = counter.terminal.refund(500, EUR, original_txn_id=approved.txn_id)
    assert refund.state is State.APPROVED
    voided = counter.sale(800)
    assert counter.terminal.void(voided.txn_id).state is State.VOIDED
    by_txn = {r["txn_id"]: r for r in counter.records() if r["method"] != "reverse"}
    assert by_txn[approved.txn_id]["approved"] and by_txn[declined.txn_id]["response_code"] == "51"
    assert by_txn[voided.txn_id]["reversed"]
    counter.drain_and_check()


# -- faults at every step -------------------------------------------------------------------------


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_during_authorisation(counter: Counter_, fault: str) -> None:
    counter.fault(fault, "/v1/authorisations")
    result = counter.sale(2000)
    if fault == "down":  # nothing was sent: a deferred authorisation, within the offline limits
        assert result.state is State.DEFERRED_APPROVED
    else:  # sent, answer unknown: never shown approved; reversed at once (the reversal path is not faulted)
        assert result.state in (State.REVERSAL_PENDING, State.REVERSED) and not result.approved
    counter.drain_and_check()
    final = counter.terminal.get(result.txn_id)
    assert final is not None
    assert final.state is (State.FORWARDED if fault == "down" else State.REVERSED)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_during_forwarding(counter: Counter_, fault: str) -> None:
    offline = counter.sale(1234, OFFLINE).txn_id
    counter.fault(fault, "/v1/advices")
    report = counter.terminal.forward_now()
    assert report.accepted == 0 and report.failed == 1
    assert [i.txn_id for i in counter.terminal.store.saf_queued()] == [offline]  # kept, in order
    counter.drain_and_check()
    assert counter.terminal.get(offline).state is State.FORWARDED  # type: ignore[union-attr]


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_during_reversal(counter: Counter_, fault: str) -> None:
    # the authorisation's answer is lost, and so is the reversal's first attempt: it stays queued
    lost = "drop" if fault == "down" else fault
    counter.host.set_faults(**FAULTS[lost], only=["/v1/authorisations", "/v1/reversals"])
    unknown = counter.sale(2100)
    assert unknown.state is State.REVERSAL_PENDING and not unknown.approved
    if fault == "down":
        counter.fault("down", "")
    report = counter.terminal.forward_now()
    assert report.reversals_sent == 0 and counter.terminal.offline_status().reversals_queued == 1
    # an online payment waits behind the reversal: it is not sent while the reversal is not through
    counter.terminal.reader = registry.open_reader(f"sim:card={ONLINE}")
    behind = counter.terminal.sale(2200, EUR)
    assert behind.state is State.DEFERRED_APPROVED
    counter.drain_and_check()
    assert counter.terminal.get(unknown.txn_id).state is State.REVERSED  # type: ignore[union-attr]


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_during_settlement(counter: Counter_, fault: str) -> None:
    counter.sale(2300)
    counter.sale(1234, OFFLINE)
    assert counter.terminal.forward_now().accepted == 1
    counter.fault(fault, "/v1/batches/close")
    with pytest.raises(SettlementRefused):
        counter.terminal.settle()
    # the frozen batch is closed first when the host is back; payments made meanwhile go to the next batch
    counter.clear()
    later = counter.sale(2400)
    assert later.state is State.APPROVED
    counter.drain_and_check()


def test_the_link_reports_what_the_terminal_may_conclude(counter: Counter_) -> None:
    link = counter.terminal.host
    assert isinstance(link, HttpsHostLink)
    counter.fault("down", "")
    with pytest.raises(HostUnreachable):
        link.echo(force=True)
    counter.clear()
    counter.fault("drop", "/v1/echo")
    with pytest.raises((HostNoAnswer, HostUnreachable)):
        link.echo(force=True)


@pytest.mark.parametrize("certificate", ["wrong", "expired"])
def test_a_rejected_host_certificate_is_a_security_event(
    counter: Counter_, certificate: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: an ordinary outage.  Now: logged at ERROR, on the sale's result, counted by saf status and diag."""
    counter.host.set_faults(certificate=certificate)
    try:
        with caplog.at_level("ERROR", logger="terminal.security"):
            result = counter.sale(2000)
            # within the link's retry window nothing is tried again, but the cashier is told again
            again = counter.sale(2100)
    finally:
        counter.host.clear_faults()
    for paid in (result, again):
        assert paid.state is State.DEFERRED_APPROVED and paid.approved
        assert any("host certificate rejected" in w and "stored offline" in w for w in paid.warnings), paid
    assert any(r.levelname == "ERROR" and "certificate" in r.getMessage() for r in caplog.records)
    status = counter.terminal.offline_status()
    assert status.security_events == 1 and "host certificate rejected" in (status.last_security_event or "")
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) == 1  # one event, logged once
    from terminal.diag_checks import judge_saf

    judged = judge_saf(status, counter.terminal.store, counter.terminal.settings)
    assert any(w.startswith("SECURITY") for w in judged.warnings)
    counter.drain_and_check()  # and nothing was lost: the deferred payment reaches the host once
