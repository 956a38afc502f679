"""Digital-currency payments against the simulated host over real HTTPS with mutual TLS on loopback.

The host is a separate process (its operator keeps the wallets' books in its
SQLite store); each terminal enrols with it, pays offline from the
simulator's wallets while the host's port is closed, and forwards later.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from host_link.client import HttpsHostLink, IdempotentRetry
from host_link.credentials import load_credentials
from host_link.enrolment import CredentialBundle, enrol
from host_link.parameters import download_and_apply
from host_link.tls import client_context
from simulator.host import cbdc_admin
from simulator.host.service import HostService, start_host
from terminal import registry
from terminal.bootstrap import open_terminal
from terminal.facade import Terminal
from terminal.lifecycle import State
from terminal.params import reload_configuration

CNY = 156
_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def wallet_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "wallets"
    monkeypatch.setenv("POSTERM_SIM_STATE", str(directory))
    return directory


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostService]:
    service = start_host(tmp_path_factory.mktemp("host"))
    try:
        yield service
    finally:
        service.stop()


class Till:
    """One enrolled terminal and its data directory."""

    def __init__(self, host: HostService, data_dir: Path) -> None:
        self.terminal_id = f"CB{next(_ids):06d}"
        self.data_dir = data_dir
        enrol(CredentialBundle.from_json(host.credential_bundle(self.terminal_id, "POSTERM0000001")), data_dir)
        creds = load_credentials(data_dir)
        assert creds is not None
        self.link = HttpsHostLink(
            creds.url,
            terminal_id=creds.terminal_id,
            merchant_id=creds.merchant_id,
            ssl_context=client_context(ca_file=creds.ca_file, cert_file=creds.cert_file, key_file=creds.key_file),
            connect_timeout=1.0,
            read_timeout=2.0,
            retry=IdempotentRetry(attempts=2, backoff_seconds=0.05, total_seconds=3.0),
        )
        download_and_apply(self.link, data_dir)  # the host's parameters, with its cbdc section
        self.terminal: Terminal = open_terminal(data_dir, host="none")
        self.terminal.host = self.link

    def pay(self, profile: str, amount: int) -> Any:
        self.terminal.reader = registry.open_reader(f"sim:card={profile}")
        return self.terminal.sale(amount, CNY)

    def close(self) -> None:
        self.link.close()
        self.terminal.store.close()


@pytest.fixture
def tills(host: HostService, tmp_path: Path) -> Iterator[list[Till]]:
    made = [Till(host, tmp_path / "till-1"), Till(host, tmp_path / "till-2")]
    try:
        yield made
    finally:
        host.clear_faults()
        for till in made:
            till.close()


def accounts(host: HostService) -> dict[str, dict[str, Any]]:
    return {w["wallet_id"]: w for w in cbdc_admin.wallets(host.data_dir)}


def test_offline_with_the_host_down_then_forwarded_exactly_once_and_settled(
    host: HostService, tills: list[Till]
) -> None:
    till = tills[0]
    host.set_faults(down=True)
    paid = [till.pay("cbdc-verified", 1500), till.pay("cbdc-verified", 2500)]
    refused = till.pay("cbdc-expired", 1000)
    assert all(p.approved and p.state is State.WALLET_APPROVED for p in paid)
    assert refused.refusal == "certificate_expired"
    assert till.terminal.forward_now().failed >= 1  # nothing goes while the port is closed
    host.clear_faults()
    till.link.echo(force=True)
    report = till.terminal.forward_now()
    assert (report.accepted, report.declined, report.stopped_by) == (2, 0, None)
    assert till.terminal.forward_now().accepted == 0  # exactly once
    held = Counter(
        r["txn_id"] for r in host.records() if r["terminal_id"] == till.terminal_id and r["approved"]
    )
    assert held == Counter({p.txn_id: 1 for p in paid})
    assert accounts(host)["D1A0000000000002"]["credited"] >= 4000
    settled = till.terminal.settle()
    assert settled.in_balance, settled.differences
    assert {(line.scheme, line.currency) for line in settled.lines} == {("cbdc", CNY)}


def test_a_clone_is_caught_at_sync_declined_after_forwarding_and_blocked_everywhere(
    host: HostService, tills: list[Till]
) -> None:
    first, second = tills
    a = first.pay("cbdc-clone-a", 1000)
    b = second.pay("cbdc-clone-b", 700)  # the same identity and counter, at a terminal that never saw it
    assert a.approved and b.approved
    assert first.terminal.forward_now().accepted == 1
    report = second.terminal.forward_now()
    assert report.declined == 1
    row = second.terminal.transaction(b.txn_id)
    assert row is not None and row.state is State.DECLINED_AFTER_FORWARDING
    assert row.details["response_code"] == "59"
    assert b.txn_id in second.terminal.offline_status().declined_after_forwarding
    assert accounts(host)["D1A000000000000A"]["blocked"]
    # the next parameter download carries the block list: the clone is refused before it pays
    assert download_and_apply(first.link, first.data_dir) is not None
    reload_configuration(first.terminal, first.data_dir)
    again = first.pay("cbdc-clone-a", 300)
    assert not again.approved and again.refusal == "wallet_blocked"
