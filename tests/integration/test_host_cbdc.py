"""The digital-currency operator of a real host: two worker processes on one store (SQLite, PostgreSQL), real
HTTPS with mutual TLS, the operator's commands as subprocesses.

- two clones' records for one (wallet, counter), sent by two terminals at the same moment to the two
  workers: exactly one is credited, the other declined 59, the wallet blocked;
- two genuine records of one wallet that together spend more than it holds, at the same moment: one
  credited, the other an overspend;
- the block list reaches every terminal with its next parameter download, at a higher version;
- ``posterm host cbdc blocklist|block|unblock|wallets|topup|wallet-sync``: what they print and their exit
  statuses, a torn record credited back once.

The host trusts the test kit's root (tests/unit/cbdc_host_kit.py, records signed with gmssl): the store is
seeded with it before the host starts (``simulator.host.cbdc_admin.seed_pki``).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.host.cbdc_admin import seed_pki
from simulator.host.service import ClientCredentials, HostService, start_host
from tests.integration.host_store import engine_store
from tests.postgres_rig import ENGINES
from tests.unit.cbdc_host_kit import KitWallet, advice, envelope, kit

MID, TID_A, TID_B = "MERCHANTC00001", "TCA00001", "TCB00001"
POSTERM = str(Path(sys.executable).with_name("posterm"))
OPENING = 100_000
#: The wallets the fleet's rounds use (one per round), each opening with 1,000.00 CNY.
ROUNDS = 6


def _openings() -> dict[str, int]:
    return {f"D1A0000000000{p}{i:02X}": OPENING for p in ("1", "2", "3") for i in range(1, 0x40)}


@pytest.fixture(scope="module", params=ENGINES)
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[HostService, ClientCredentials, ClientCredentials]]:  # fmt: skip
    """Two workers sharing one store, two enrolled terminals of one merchant."""
    base = tmp_path_factory.mktemp("cbdc-fleet")
    with engine_store(request.param, request) as store:
        seed_pki(base / "host", kit().pki(_openings()), store=store)
        with start_host(base / "host", workers=2, store=store) as host:
            yield host, host.enrol(TID_A, MID, base / "a"), host.enrol(TID_B, MID, base / "b")


def _client(host: HostService, terminal: ClientCredentials, worker: str) -> httpx.Client:
    """A kept-alive client of ``terminal`` connected to worker ``worker`` (new connections until one is)."""
    context = ssl.create_default_context(cafile=str(host.ca_certificate_path))
    context.load_cert_chain(terminal.certificate, terminal.key)
    for _ in range(200):  # the kernel picks a worker per connection: 200 misses have odds 2**-200
        client = httpx.Client(base_url=host.url, verify=context, timeout=30.0)
        if client.get("/v1/echo").headers["posterm-worker"] == worker:
            return client
        client.close()
    raise AssertionError(f"worker {worker} never answered")


def _together(calls: list[Any]) -> list[Any]:
    """Run the calls at the same moment (a barrier), one thread each; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait(10)
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def _post(client: httpx.Client, item: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/v1/advices", json={"advices": [item]}, headers={"Idempotency-Key": f"r-{item['txn_id']}"})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["results"][0]
    return result


def _payment(wallet: KitWallet, amount: int, terminal_id: str, txn: str) -> dict[str, Any]:
    raw, payment, counter, previous = wallet.pay(amount, MID, terminal_id)
    return advice("cbdc_payment", txn, envelope(wallet, raw, payment, counter, previous), payment, wallet)


def host_cli(host: HostService, *args: str, stdin: str | None = None, status: int = 0
             ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTERM_")}
    store = ["--store", host.store] if host.store else []
    done = subprocess.run(
        [POSTERM, "host", "cbdc", *args, "--data-dir", str(host.data_dir), *store],
        input=stdin, capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    return done


def _parameters(host: HostService, terminal: ClientCredentials) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(host.ca_certificate_path))
    context.load_cert_chain(terminal.certificate, terminal.key)
    with httpx.Client(base_url=host.url, verify=context, timeout=30.0) as client:
        answer = client.get("/v1/parameters")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def test_two_workers_credit_one_of_two_clones_records_and_block_the_wallet(
    fleet: tuple[HostService, ClientCredentials, ClientCredentials],
) -> None:
    host, a, b = fleet
    before = {t.terminal_id: _parameters(host, t) for t in (a, b)}
    on_one, on_two = _client(host, a, "1"), _client(host, b, "2")
    blocked: list[str] = []
    try:
        for round_ in range(ROUNDS):
            wallet = kit().wallet(f"D1A00000000001{round_ + 1:02X}")
            clone = kit().clone(wallet)
            first = _payment(wallet, 1000 + round_, TID_A, f"clone-a-{round_}")
            second = _payment(clone, 2000 + round_, TID_B, f"clone-b-{round_}")  # counter 1 again, another record
            results = _together([lambda f=first: _post(on_one, f), lambda s=second: _post(on_two, s)])
            codes = sorted(r["response_code"] for r in results)
            assert codes == ["00", "59"], [(r["response_code"], r["message"]) for r in results]
            assert any("double_spend" in (r["message"] or "") for r in results)
            blocked.append(wallet.hex)
    finally:
        on_one.close()
        on_two.close()
    shown = json.loads(host_cli(host, "wallets", "--json").stdout)["wallets"]
    by_id = {w["wallet_id"]: w for w in shown}
    for round_, wallet_id in enumerate(blocked):
        entry = by_id[wallet_id]
        assert entry["blocked"] and entry["records"] == 1 and entry["last_counter"] == 1
        assert entry["balance"] in (OPENING - 1000 - round_, OPENING - 2000 - round_)  # exactly one credited
    credited = [r for r in host.records() if r["kind"] == "cbdc_payment" and r["approved"]]
    assert len(credited) == ROUNDS
    for terminal in (a, b):  # every terminal's next download carries the block list, at a higher version
        after = _parameters(host, terminal)
        assert after["version"] > before[terminal.terminal_id]["version"]
        assert after["cbdc"]["version"] > before[terminal.terminal_id]["cbdc"]["version"]
        assert set(blocked) <= set(after["cbdc"]["blocked_wallets"])


def test_two_workers_never_credit_more_than_a_wallet_held(
    fleet: tuple[HostService, ClientCredentials, ClientCredentials],
) -> None:
    host, a, b = fleet
    on_one, on_two = _client(host, a, "1"), _client(host, b, "2")
    try:
        for round_ in range(ROUNDS):
            wallet = kit().wallet(f"D1A00000000002{round_ + 1:02X}")
            first = _payment(wallet, 60_000, TID_A, f"over-a-{round_}")  # counter 1
            second = _payment(wallet, 60_000, TID_B, f"over-b-{round_}")  # counter 2: 1,200.00 of 1,000.00
            results = _together([lambda f=first: _post(on_one, f), lambda s=second: _post(on_two, s)])
            assert sorted(r["response_code"] for r in results) == ["00", "59"], results
            assert any("overspend" in (r["message"] or "") for r in results)
    finally:
        on_one.close()
        on_two.close()
    shown = {w["wallet_id"]: w for w in json.loads(host_cli(host, "wallets", "--json").stdout)["wallets"]}
    for round_ in range(ROUNDS):
        entry = shown[f"D1A00000000002{round_ + 1:02X}"]
        assert (entry["balance"], entry["credited"], entry["blocked"]) == (OPENING - 60_000, 60_000, True)


def test_the_operators_commands(fleet: tuple[HostService, ClientCredentials, ClientCredentials],
                                tmp_path: Path) -> None:  # fmt: skip
    host, a, _ = fleet
    wallet = kit().wallet("D1A0000000000301")
    listed = json.loads(host_cli(host, "blocklist", "--json").stdout)
    version = listed["cbdc"]["version"]
    assert listed["cbdc"]["roots"][0]["id"] == kit().root_id.hex().upper()
    done = host_cli(host, "block", wallet.hex.lower(), "--reason", "lost card")
    assert f"wallet {wallet.hex} blocked; cbdc parameters version {version + 1}" in done.stdout
    listed = json.loads(host_cli(host, "blocklist", "--json").stdout)
    assert {"id": wallet.hex, "reason": "lost card"}.items() <= next(
        w for w in listed["wallets"] if w["id"] == wallet.hex
    ).items()
    assert wallet.hex in _parameters(host, a)["cbdc"]["blocked_wallets"]
    assert "was blocked already" in host_cli(host, "block", wallet.hex).stdout
    assert "unblocked" in host_cli(host, "unblock", wallet.hex).stdout
    assert wallet.hex not in _parameters(host, a)["cbdc"]["blocked_wallets"]
    operator_id = kit().operator_id.hex().upper()
    assert f"operator {operator_id} blocked" in host_cli(host, "block", operator_id, "--operator").stdout
    assert _parameters(host, a)["cbdc"]["blocked_operators"] == [operator_id]
    assert f"operator {operator_id} unblocked" in host_cli(host, "unblock", operator_id, "--operator").stdout
    assert "is not an operator id" in host_cli(host, "block", wallet.hex, "--operator", status=2).stderr
    topped = json.loads(host_cli(host, "topup", wallet.hex, "2500", "--json").stdout)
    assert (topped["balance"], topped["topups"]) == (OPENING + 2500, 2500)
    # a payment, a torn one, the wallet's sync: the torn record credited back, once
    client = _client(host, a, "1")
    try:
        assert _post(client, _payment(wallet, 1000, TID_A, "cli-paid"))["response_code"] == "00"
        _, payment, counter, previous = wallet.pay(400, MID, TID_A)
        notice = advice("cbdc_torn", "cli-torn", envelope(wallet, None, payment, counter, previous), payment, wallet)
        assert _post(client, notice)["response_code"] == "00"
    finally:
        client.close()
    upload = tmp_path / "records.txt"
    upload.write_text("# the wallet's records\n" + "\n".join(wallet.made[c].hex() for c in (1, 2)) + "\n")
    synced = host_cli(host, "wallet-sync", wallet.hex, "--records", str(upload))
    assert "credited back: counter 2, 400 (currency 156), torn at MERCHANTC00001/TCA00001 (cli-torn)" in synced.stdout
    assert "credited back in all: 400" in synced.stdout
    again = json.loads(host_cli(host, "wallet-sync", wallet.hex, "--records", "-", "--json",
                                stdin=upload.read_text()).stdout)  # fmt: skip
    assert (again["credited_back"], again["credited_back_total"], again["new"]) == ([], 0, 0)
    shown = next(w for w in json.loads(host_cli(host, "wallets", "--json").stdout)["wallets"]
                 if w["wallet_id"] == wallet.hex)  # fmt: skip
    assert (shown["balance"], shown["credited_back"], shown["last_counter"], shown["records"]) == (
        OPENING + 2500 - 1000, 400, 2, 2)
    # bad input: one line, exit 2, nothing kept
    bad = host_cli(host, "topup", "NOT-A-WALLET", "5", status=2)
    assert "is not a wallet id" in bad.stderr and "Traceback" not in bad.stderr
    assert host_cli(host, "topup", wallet.hex, "0", status=2).stderr.count("\n") == 1
    forged = kit().wallet(wallet.hex)  # the same id, another key
    refused = host_cli(host, "wallet-sync", wallet.hex, "--records", "-", stdin=forged.pay(1, MID, TID_A)[0].hex(),
                       status=2)  # fmt: skip
    assert "wallet sync refused, nothing kept" in refused.stderr and "signature does not verify" in refused.stderr
    assert "not hex" in host_cli(host, "wallet-sync", wallet.hex, "--records", "-", stdin="zz\n", status=2).stderr
