"""The rig of tests/integration/test_cbdc_attacks.py: enrolled terminals on a real host, and the books checked.

:class:`Till` is one terminal enrolled with the simulated host (its own process, HTTPS with mutual TLS on
loopback), with its journal and SAF queue in SQLite files of its own; its link keeps a copy of every advice
sent (:class:`RecordingLink`), which is what a terminal's side could send again. :func:`claim_of` makes the
advice that claims a record as a payment (a record replayed, a payment its payee forwards late).

:func:`check_books` forwards everything, then checks:

- every payment a terminal showed approved is, after forwarding, credited exactly once by the operator, or
  declined after forwarding (reported by the terminal) and not credited;
- nothing the terminal did not show approved is credited; no transaction is credited twice, no (wallet, counter)
  twice (no double spend credited);
- each wallet's account at the operator is consistent: credited = the payments credited to merchants,
  balance = opening + top-ups - credited, never below zero; an honest wallet is never credited (to merchants
  and back to itself) more than it debited on its card;
- each terminal's journal verifies, and its batch settles in balance, its digital-currency lines (scheme
  ``cbdc``) holding exactly the payments credited.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cbdc.envelope import Envelope
from cbdc.protocol import PaymentRecord, PaymentRequest
from host_link.client import HttpsHostLink, IdempotentRetry
from host_link.credentials import load_credentials
from host_link.enrolment import CredentialBundle, enrol
from host_link.parameters import download_and_apply
from host_link.tls import client_context
from simulator.host import cbdc_admin
from simulator.host.service import HostService
from terminal import registry
from terminal.bootstrap import open_terminal
from terminal.facade import NothingToSettle, Terminal
from terminal.host import Advice, HostAnswer, HostRejected
from terminal.lifecycle import State
from terminal.params import reload_configuration
from terminal.ports import CancelToken, CardSession, NoCardError

CNY = 156
MID = "POSTERM0000001"
POSTERM = str(Path(sys.executable).with_name("posterm"))
#: wallets whose card lies about its own state: their debits on the card say nothing of what they spent
LYING = {"cbdc-clone-a", "cbdc-clone-b", "cbdc-rollback", "cbdc-replay"}
_ids = itertools.count(1)


class RecordingLink:
    """The terminal's real HTTPS link, keeping a copy of every advice the terminal sent (what an attacker on the
    terminal's side could send again)."""

    def __init__(self, link: HttpsHostLink) -> None:
        self.link = link
        self.sent: list[Advice] = []

    def advise(self, advice: Advice) -> HostAnswer:
        self.sent.append(advice)
        return self.link.advise(advice)

    def advise_many(self, advices: Sequence[Advice]) -> list[HostAnswer | HostRejected]:
        self.sent.extend(advices)
        return self.link.advise_many(advices)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.link, name)


class Till:
    """One terminal enrolled with the host, its data directory, and the payments it showed approved."""

    def __init__(self, host: HostService, data_dir: Path, terminal_id: str | None = None, merchant_id: str = MID
                 ) -> None:  # fmt: skip
        self.host = host
        self.terminal_id = terminal_id or f"CA{next(_ids):06d}"
        self.data_dir = data_dir
        enrol(CredentialBundle.from_json(host.credential_bundle(self.terminal_id, merchant_id)), data_dir)
        creds = load_credentials(data_dir)
        assert creds is not None
        self.link = RecordingLink(
            HttpsHostLink(
                creds.url,
                terminal_id=creds.terminal_id,
                merchant_id=creds.merchant_id,
                ssl_context=client_context(ca_file=creds.ca_file, cert_file=creds.cert_file, key_file=creds.key_file),
                connect_timeout=1.0,
                read_timeout=5.0,
                retry=IdempotentRetry(attempts=2, backoff_seconds=0.05, total_seconds=5.0),
            )
        )
        download_and_apply(self.link, data_dir)  # the host's parameters, with its cbdc section
        self.terminal: Terminal = open_terminal(data_dir, host="none")
        self.terminal.host = self.link
        self.shown_approved: dict[str, Any] = {}  # txn_id -> the sale's result

    def pay(self, profile: str, amount: int, reader: Any = None) -> Any:
        self.terminal.reader = reader or registry.open_reader(f"sim:card={profile}")
        result = self.terminal.sale(amount, CNY)
        if result.approved:
            self.shown_approved[result.txn_id] = result
        return result

    def refused(self, profile: str, amount: int, refusal: str) -> Any:
        result = self.pay(profile, amount)
        assert not result.approved and result.refusal == refusal, (result.state, result.refusal, result.message)
        return result

    def sync(self) -> None:
        """Forward everything (the host is up): the terminal's sync with its host."""
        self.link.echo(force=True)
        report = self.terminal.forward_now()
        assert report.stopped_by is None, report
        assert self.terminal.offline_status().queued == 0

    def parameters(self) -> None:
        """The next parameter download, applied at once (what the terminal does between sales)."""
        assert download_and_apply(self.link, self.data_dir) is not None, "the parameters did not move"
        reload_configuration(self.terminal, self.data_dir)

    def at_the_counter(self, *args: str, status: int) -> subprocess.CompletedProcess[str]:
        """A ``posterm`` command on this terminal's data directory (the terminal is closed meanwhile: one user)."""
        self.terminal.host = None
        self.terminal.close()
        try:
            return cli(*args, "--data-dir", str(self.data_dir), status=status)
        finally:
            self.terminal = open_terminal(self.data_dir, host="none")
            self.terminal.host = self.link

    def row(self, txn_id: str) -> Any:
        """The journal's row of a transaction (it must exist)."""
        found = self.terminal.transaction(txn_id)
        assert found is not None, txn_id
        return found

    def queued_kinds(self) -> list[str]:
        return [e.kind for e in self.terminal.store.saf_entries(["queued"])]

    def close(self) -> None:
        self.terminal.close()  # the link too


def accounts(host: HostService) -> dict[str, dict[str, Any]]:
    return {w["wallet_id"]: w for w in cbdc_admin.wallets(host.data_dir)}


def wallet_on_card(profile: str) -> dict[str, Any]:
    """What the simulated wallet's secure element holds (``posterm sim wallet show``)."""
    done = subprocess.run(
        [POSTERM, "sim", "wallet", "show", profile, "--json"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


def credited_payments(host: HostService) -> list[dict[str, Any]]:
    """The host's digital-currency payments it credited (answered 00): one per credited record."""
    return [r for r in host.records() if r["kind"] == "cbdc_payment" and r["approved"]]


# ----------------------------------------------------------------------------- the books


def check_books(host: HostService, tills: Sequence[Till], profiles: Sequence[str] = ()) -> None:
    """Forward everything, then the invariants of the module's docstring; ``profiles``: the wallets used."""
    host.clear_faults()
    for till in tills:
        till.sync()
    credited = credited_payments(host)
    by_txn = Counter((r["terminal_id"], r["txn_id"]) for r in credited)
    assert all(n == 1 for n in by_txn.values()), f"credited twice: {by_txn}"
    seen_counters: Counter[tuple[str, int]] = Counter()
    for till in tills:
        terminal = till.terminal
        declined = set(terminal.offline_status().declined_after_forwarding)
        credited_here = 0
        for row in terminal.transactions():
            held = by_txn[(till.terminal_id, row.txn_id)]
            if row.txn_id in till.shown_approved and row.state is State.WALLET_CREDITED:
                assert held == 1, f"{row.txn_id} shown approved, credited {held} times"
                credited_here += row.amount
                seen_counters[(row.details["wallet_id"], int(row.details["counter"]))] += 1
            elif row.txn_id in till.shown_approved:
                # shown approved, then found out at sync: declined after forwarding, reported, not credited
                assert row.state is State.DECLINED_AFTER_FORWARDING, row.state
                assert row.txn_id in declined and held == 0
            else:
                assert held == 0, f"{row.txn_id} ({row.state.value}) was never shown approved but is credited"
        assert terminal.verify_journal().ok
        try:
            settled = terminal.settle()
        except NothingToSettle:
            assert credited_here == 0
            continue
        assert settled.in_balance, settled.differences
        cbdc_lines = [line for line in settled.lines if line.scheme == "cbdc"]
        assert sum(line.amount for line in cbdc_lines if line.kind == "sale") == credited_here
        assert {line.scheme for line in settled.lines} <= {"cbdc"}
    assert all(n == 1 for n in seen_counters.values()), f"a (wallet, counter) credited twice: {seen_counters}"
    wallets_credited: Counter[str] = Counter()
    for r in credited:
        wallets_credited[r["pan_token"]] += r["amount"]
    for wallet_id, account in accounts(host).items():
        assert account["credited"] == wallets_credited[wallet_id], wallet_id
        assert account["balance"] == account["opening"] + account["topups"] - account["credited"] >= 0, account
    for profile in set(profiles) - LYING:
        card = wallet_on_card(profile)
        account = accounts(host)[card["wallet_id"]]
        debited = account["opening"] + account["topups"] - card["balance"]
        assert account["credited"] + account["credited_back"] <= debited, (profile, account, card["balance"])


def cli(*args: str, status: int, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [POSTERM, *args], input=stdin, capture_output=True, text=True, timeout=120, check=False, env=dict(os.environ)
    )
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done


class WalksAway:
    """A customer who presents the wallet once and never again: later waits time out as a reader's would."""

    kind = "reader"

    def __init__(self, url: str) -> None:
        self._reader = registry.open_reader(url)
        self._taps = 0

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> CardSession:
        self._taps += 1
        if self._taps > 1:
            raise NoCardError("no card presented")
        session: CardSession = self._reader.wait_for_card(timeout=timeout, cancel=cancel)
        return session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


def record_of(advice: Advice) -> bytes:
    """The record (E4) an advice's envelope carries."""
    record = Envelope.parse(advice.emv_data).record
    assert record is not None, advice.kind
    return record


def claim_of(advice: Advice, record: bytes, key: str, *, as_its_payee: bool = False) -> Advice:
    """A ``cbdc_payment`` advice claiming ``record``, made of an advice a terminal sent (evidence, a torn notice:
    its certificates and intent), as transaction and idempotency key ``key``. ``as_its_payee``: from the payee the
    record names, with the request and intent the record answers (what that payee's terminal forwards)."""
    carried = dataclasses.replace(Envelope.parse(advice.emv_data), record=record)
    if not as_its_payee:
        return dataclasses.replace(advice, kind="cbdc_payment", txn_id=key, idempotency_key=key,
                                   emv_data=carried.encode())  # fmt: skip
    paid = PaymentRecord.parse(record)
    asked = PaymentRequest(paid.amount, paid.currency, paid.merchant_id, paid.terminal_id, paid.challenge,
                           paid.date_time)  # fmt: skip
    carried = dataclasses.replace(carried, request=asked.encode(), expected_counter=paid.counter,
                                  previous_hash=paid.previous_hash)  # fmt: skip
    return dataclasses.replace(
        advice, kind="cbdc_payment", txn_id=key, idempotency_key=key, amount=paid.amount, currency=paid.currency,
        terminal_id=paid.terminal_id, merchant_id=paid.merchant_id, emv_data=carried.encode(),
    )  # fmt: skip


def wallet_sync(host: HostService, profile: str, wallet_id: str) -> dict[str, Any]:
    """The wallet's own sync with its operator: ``posterm sim wallet records --with-certificates`` piped into
    ``posterm host cbdc wallet-sync``; what the operator reports."""
    records = cli("sim", "wallet", "records", profile, "--with-certificates", status=0).stdout
    synced = cli("host", "cbdc", "wallet-sync", wallet_id, "--records", "-", "--data-dir", str(host.data_dir),
                 "--json", stdin=records, status=0)  # fmt: skip
    report: dict[str, Any] = json.loads(synced.stdout)
    return report
