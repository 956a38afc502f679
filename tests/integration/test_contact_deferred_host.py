"""An inserted chip card when the host is down, then forwarded: real HTTPS with mutual TLS on loopback.

The host server process (``start_host``) on each store engine; a terminal enrolled through the real
enrolment, with the real client. With the host down, ``contact-arpc2`` (online for every payment) is
asked for its second GENERATE AC as "unable to go online": under the floor limit its default action
codes allow a TC, 8A ``Y3``, and the sale is a deferred authorisation. What the store-and-forward
entry sends later must be that TC, with 8A and the final TVR and TSI, not the ARQC of the first
GENERATE AC; the host verifies the TC (a cryptogram that does not verify is refused ``82``) and
notes that the card approved it (``deferred_card_tc_y3``). Over the terminal's offline limit the
terminal refuses and nothing is queued. The batch then settles in balance.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emv.tlv import decode_primitive_map
from host_link.client import HttpsHostLink, IdempotentRetry
from host_link.credentials import load_credentials
from host_link.enrolment import CredentialBundle, enrol
from host_link.tls import client_context
from simulator.host.service import HostService, start_host
from terminal import registry
from terminal.bootstrap import open_terminal
from terminal.facade import Terminal
from terminal.host import Advice, HostAnswer, HostRejected
from terminal.lifecycle import State
from tests.integration.host_store import engine_store
from tests.postgres_rig import ENGINES

EUR = 978
CARD = "contact-arpc2"
_ids = itertools.count(1)


class RecordingLink(HttpsHostLink):
    """The real client, keeping the advices it sent (what left the terminal for the host)."""

    sent: list[Advice]

    def advise_many(self, advices: Sequence[Advice]) -> list[HostAnswer | HostRejected]:
        self.sent.extend(advices)
        return list(super().advise_many(advices))


@pytest.fixture(scope="module", params=ENGINES)
def host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostService]:
    with engine_store(request.param, request) as store, start_host(
        tmp_path_factory.mktemp("host"), store=store
    ) as service:
        yield service


@dataclass
class Till:
    terminal: Terminal
    link: RecordingLink
    host: HostService
    terminal_id: str

    def insert(self, amount: int) -> Any:
        self.terminal.reader = registry.open_reader(f"sim:card={CARD}")
        return self.terminal.sale(amount, EUR)

    def records(self) -> list[dict[str, Any]]:
        return [r for r in self.host.records() if r["terminal_id"] == self.terminal_id]


@pytest.fixture
def till(host: HostService, tmp_path: Path) -> Iterator[Till]:
    terminal_id = f"CDF{next(_ids):05d}"
    data_dir = tmp_path / "terminal"
    enrol(CredentialBundle.from_json(host.credential_bundle(terminal_id, "POSTERM0000001")), data_dir)
    creds = load_credentials(data_dir)
    assert creds is not None
    link = RecordingLink(
        creds.url,
        terminal_id=creds.terminal_id,
        merchant_id=creds.merchant_id,
        ssl_context=client_context(ca_file=creds.ca_file, cert_file=creds.cert_file, key_file=creds.key_file),
        connect_timeout=1.0,
        read_timeout=5.0,
        retry=IdempotentRetry(attempts=1),
    )
    link.sent = []
    terminal = open_terminal(data_dir, host="none")
    terminal.host = link
    try:
        yield Till(terminal, link, host, terminal_id)
    finally:
        host.clear_faults()
        link.close()
        terminal.store.close()


def test_a_chip_sale_approved_y3_while_the_host_is_down_forwards_the_cards_tc(till: Till) -> None:
    till.host.set_faults(down=True)
    result = till.insert(1234)
    assert result.state is State.DEFERRED_APPROVED and result.approved, result.message
    assert result.kernel == "contact"
    row = till.terminal.get(result.txn_id)
    assert row is not None
    # the journal keeps the card's last word: its TC after "unable to go online"
    assert row.details["cryptogram_type"] == "TC" and row.details["card_outcome_after_host"] == "approved"
    tc, tvr, tsi = row.details["cryptogram"], row.details["tvr"], row.details["tsi"]

    # over the terminal's offline limit: refused before the card is asked for a last cryptogram
    declined = till.insert(6000)
    assert declined.state is State.DECLINED and "offline limit" in declined.message
    assert till.terminal.offline_status().queued == 1

    till.host.clear_faults()
    till.link.echo(force=True)
    report = till.terminal.forward_now()
    assert report.stopped_by is None and report.accepted == 1, report

    # what left the terminal: the TC, its cryptogram information 40, 8A Y3, the final TVR and TSI
    (advice,) = till.link.sent
    assert advice.txn_id == result.txn_id and advice.kind == "deferred_authorisation"
    tags = decode_primitive_map(advice.emv_data)
    assert tags[0x9F26].hex().upper() == tc and tags[0x9F27] == b"\x40"
    assert tags[0x8A] == b"Y3"
    assert tags[0x95].hex().upper() == tvr and tags[0x9B].hex().upper() == tsi
    assert tags[0x9F10][2] == 0x12  # the IAD of the second GENERATE AC (CVN 18)

    # what the host made of it: the TC verified (else 82), approved, noted as the card's Y3 approval
    (held,) = [r for r in till.records() if r["txn_id"] == result.txn_id]
    assert held["method"] == "advise" and held["kind"] == "deferred_authorisation"
    assert held["approved"] and held["response_code"] == "00" and held["note"] == "deferred_card_tc_y3"
    assert not [r for r in till.records() if r["txn_id"] == declined.txn_id]  # a decline sends nothing

    final = till.terminal.get(result.txn_id)
    assert final is not None and final.state is State.FORWARDED
    assert till.terminal.store.read_sensitive(result.txn_id) is None  # the advice answered: card data gone
    settled = till.terminal.settle()
    assert settled.in_balance, settled.differences
    assert till.terminal.store.verify().ok


def test_a_chip_sale_online_with_arpc_method_2_over_https(till: Till) -> None:
    """The host up: contact-arpc2's ARQC is verified, the answer's issuer_authentication_data (ARPC || CSU)
    crosses mutual TLS, the card checks it by EXTERNAL AUTHENTICATE and approves with a TC."""
    result = till.insert(1234)
    assert result.state is State.APPROVED and result.approval_code, result.message
    row = till.terminal.get(result.txn_id)
    assert row is not None
    assert row.details["issuer_authentication"] == "passed" and row.details["cryptogram_type"] == "TC"
    assert row.details["card_outcome_after_host"] == "approved"
    tvr = bytes.fromhex(row.details["tvr"])
    assert not tvr[4] & 0x40  # TVR byte 5: issuer authentication did not fail
    assert bytes.fromhex(row.details["tsi"])[0] & 0x10  # TSI: issuer authentication was performed
    (held,) = [r for r in till.records() if r["txn_id"] == result.txn_id]
    assert held["method"] == "authorise" and held["approved"] and not held["reversed"]
    settled = till.terminal.settle()
    assert settled.in_balance, settled.differences
