"""Issue 11's findings about the issuer side, over real HTTPS with mutual TLS, with real terminals and CLI commands.

One host process (``start_host``) serves the module, on each store engine (host.db, and a database of the
private PostgreSQL cluster: tests/conftest.py); terminals of two merchants enrol through the real
enrolment and pay with simulated cards (real kernels, real cryptograms). What a terminal would never send
(empty card data, a txn_id again, a refund of another terminal's sale, a reversal of another amount) goes
through the real client, ``HttpsHostLink``. The operator's commands run as subprocesses.

- parameters per terminal: two terminals of two merchants both download and apply their own;
- the host's own card token: a card blocked by its PAN is blocked on every terminal, and velocity counts
  the card on every terminal;
- an authorisation without card data, a duplicate txn_id, a refund naming another terminal's sale or
  ten times its sale, a reversal of another amount: refused;
- the host's data directory is its own (0700, every file 0600) and holds no secret in its database;
- two worker processes sharing one store (each engine) approve a txn_id once and refund a sale once.
"""

from __future__ import annotations

import json
import os
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import psycopg.sql
import pytest

from host_link.client import HttpsHostLink, IdempotentRetry
from host_link.credentials import load_credentials
from host_link.enrolment import CredentialBundle, enrol
from host_link.tls import client_context
from simulator.card_data import card_emv_data
from simulator.host import admin
from simulator.host.keys import CARD_TOKEN, DIGEST
from simulator.host.service import HostService, start_host
from simulator.profiles import load as load_profile
from terminal import registry
from terminal.bootstrap import open_terminal
from terminal.facade import Terminal
from terminal.host import AuthorisationRequest, HostRejected, Reversal
from terminal.lifecycle import State
from terminal.response_codes import decline_reason
from tests.integration.host_store import engine_store
from tests.postgres_rig import ENGINES

EUR = 978
POSTERM = str(Path(sys.executable).with_name("posterm"))
MERCHANT_A, MERCHANT_B = "MERCHANTA00001", "MERCHANTB00002"


@pytest.fixture(scope="module", params=ENGINES)
def host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostService]:
    with engine_store(request.param, request) as store, start_host(
        tmp_path_factory.mktemp("host") / "data", store=store
    ) as service:
        yield service


@dataclass
class Till:
    """An enrolled terminal: its data directory, its link (the real client) and the terminal on it."""

    terminal_id: str
    merchant_id: str
    data_dir: Path
    link: HttpsHostLink
    terminal: Terminal

    def sale(self, amount: int, card: str = "visa-qvsdc-online") -> Any:
        self.terminal.reader = registry.open_reader(f"sim:card={card}")
        return self.terminal.sale(amount, EUR)


@pytest.fixture(scope="module")
def tills(host: HostService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Till]]:
    out: dict[str, Till] = {}
    for terminal_id, merchant_id in (("TA01", MERCHANT_A), ("TB01", MERCHANT_B)):
        data_dir = tmp_path_factory.mktemp(terminal_id)
        enrol(CredentialBundle.from_json(host.credential_bundle(terminal_id, merchant_id)), data_dir)
        creds = load_credentials(data_dir)
        assert creds is not None
        link = HttpsHostLink(
            creds.url,
            terminal_id=creds.terminal_id,
            merchant_id=creds.merchant_id,
            ssl_context=client_context(ca_file=creds.ca_file, cert_file=creds.cert_file, key_file=creds.key_file),
            retry=IdempotentRetry(attempts=1),
        )
        terminal = open_terminal(data_dir, host="none")
        terminal.host = link
        out[terminal_id] = Till(terminal_id, merchant_id, data_dir, link, terminal)
    yield out
    for till in out.values():
        till.link.close()
        till.terminal.store.close()


def posterm(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTERM_")}
    return subprocess.run(
        [POSTERM, *args], input=stdin, capture_output=True, text=True, timeout=60, env=env, check=False
    )


def host_cli(host: HostService, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    store = ["--store", host.store] if host.store else []
    done = posterm("host", *args, "--data-dir", str(host.data_dir), *store, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return done


def applied(till: Till) -> dict[str, Any]:
    """The terminal.json of the parameter version in force on the till."""
    base = till.data_dir / "parameters"
    current = json.loads((base / "current.json").read_text())
    doc: dict[str, Any] = json.loads((base / current["dir"] / "terminal.json").read_text())
    return doc | {"version": current["version"]}


# --------------------------------------------------------------------------- parameters per terminal


def test_two_terminals_of_two_merchants_download_and_apply_their_own_parameters(
    host: HostService, tills: dict[str, Till], tmp_path: Path
) -> None:
    for till in tills.values():  # the parameters name each terminal itself
        done = posterm("params", "download", "--data-dir", str(till.data_dir))
        assert done.returncode == 0, done.stderr
        assert (applied(till)["terminal_id"], applied(till)["merchant_id"]) == (till.terminal_id, till.merchant_id)
    first = {t: applied(till)["version"] for t, till in tills.items()}
    own = tmp_path / "shop-b.json"
    own.write_text(json.dumps({"merchant_name": "Shop B", "merchant_address": "2 Side Street"}))
    host_cli(host, "params", "set-terminal", "TB01", str(own))  # the merchant: the one it is enrolled under
    for till in tills.values():
        done = posterm("params", "download", "--data-dir", str(till.data_dir))
        assert done.returncode == 0, done.stderr
    a, b = applied(tills["TA01"]), applied(tills["TB01"])
    assert a["version"] == first["TA01"] and b["version"] > first["TB01"]  # only B's own part moved
    assert (a["terminal_id"], a["merchant_id"]) == ("TA01", MERCHANT_A)
    assert (b["terminal_id"], b["merchant_id"], b["merchant_name"]) == ("TB01", MERCHANT_B, "Shop B")
    assert a["merchant_name"] == "posterm test shop"  # the common part's
    shown = json.loads(host_cli(host, "params", "show", "--terminal-id", "TB01").stdout)
    assert shown["version"] == b["version"] and shown["config"]["merchant_address"] == "2 Side Street"

    common = tmp_path / "common.json"
    common.write_text(json.dumps({"terminal_floor_limit": 2500}))
    host_cli(host, "params", "publish", str(common))  # the common part moves: every terminal's version moves
    for till in tills.values():
        assert posterm("params", "download", "--data-dir", str(till.data_dir)).returncode == 0
    a2, b2 = applied(tills["TA01"]), applied(tills["TB01"])
    assert a2["version"] > a["version"] and b2["version"] > b["version"]
    assert a2["terminal_floor_limit"] == b2["terminal_floor_limit"] == 2500 and b2["merchant_name"] == "Shop B"
    again = posterm("params", "download", "--data-dir", str(tills["TA01"].data_dir), "--json")
    assert again.returncode == 0 and applied(tills["TA01"])["version"] == a2["version"]  # up to date


# --------------------------------------------------------------------------- the host's card token


def test_a_card_blocked_by_its_pan_is_blocked_on_every_terminal(host: HostService, tills: dict[str, Till]) -> None:
    card = "visa-mobile-cdcvm"
    pan = load_profile(card).pan
    assert tills["TA01"].sale(1500, card).state is State.APPROVED
    blocked = host_cli(host, "issuer", "block", "-", "--code", "43", stdin=pan + "\n")  # the PAN kept off argv
    assert pan not in blocked.stdout and pan[-4:] in blocked.stdout
    for till in tills.values():
        result = till.sale(1600, card)
        assert (result.state, result.response_code) == (State.DECLINED, "43"), till.terminal_id
        assert "stolen card, pick up (43)" in result.message
    records = host_cli(host, "records", "--json").stdout
    assert pan not in records and pan not in stored_text(host)
    host_cli(host, "issuer", "unblock", pan)
    assert tills["TB01"].sale(1700, card).state is State.APPROVED


def test_velocity_counts_the_card_on_every_terminal(host: HostService, tills: dict[str, Till]) -> None:
    card = "mc-cda-online"
    host_cli(host, "issuer", "velocity", "2", "3600")
    try:
        assert tills["TA01"].sale(1100, card).state is State.APPROVED
        assert tills["TB01"].sale(1200, card).state is State.APPROVED
        third = tills["TB01"].sale(1300, card)
        assert (third.state, third.response_code) == (State.DECLINED, "65")
    finally:
        host_cli(host, "issuer", "velocity", "0", "0")


# --------------------------------------------------------------------------- what no issuer approves


def request(till: Till, txn_id: str, amount: int, *, key: str | None = None, **kw: Any) -> AuthorisationRequest:
    fields: dict[str, Any] = {
        "txn_id": txn_id, "idempotency_key": key or txn_id, "kind": "sale", "amount": amount, "currency": EUR,
        "terminal_id": till.terminal_id, "merchant_id": till.merchant_id,
        "emv_data": card_emv_data(amount, EUR, card="visa-cvn18"), "pan_token": "0" * 32,
    }  # fmt: skip
    return AuthorisationRequest(**(fields | kw))


def test_an_authorisation_without_card_data_is_declined(tills: dict[str, Till]) -> None:
    answer = tills["TA01"].link.authorise(request(tills["TA01"], "nocard-1", 1000, emv_data=b""))
    assert (answer.approved, answer.response_code) == (False, "14")


def test_the_same_txn_id_is_not_approved_twice_under_a_new_key(tills: dict[str, Till]) -> None:
    till = tills["TA01"]
    assert till.link.authorise(request(till, "dup-1", 1000)).approved
    again = till.link.authorise(request(till, "dup-1", 1000, key="dup-1-again"))
    assert (again.approved, again.response_code) == (False, "94")
    assert decline_reason(again.response_code) == "duplicate transaction (94)"


def test_a_refund_naming_another_terminals_sale_or_ten_times_its_own_is_declined(tills: dict[str, Till]) -> None:
    a, b = tills["TA01"], tills["TB01"]
    sale = a.sale(1000)
    assert sale.state is State.APPROVED
    refund_card = card_emv_data(10_000, EUR, card="visa", cryptogram="aac", transaction_type=0x20)
    other = b.link.authorise(
        request(b, "refund-1", 10_000, kind="refund", original_txn_id=sale.txn_id, emv_data=refund_card)
    )
    assert (other.approved, other.response_code) == (False, "25")
    ten_times = a.link.authorise(
        request(a, "refund-2", 10_000, kind="refund", original_txn_id=sale.txn_id, emv_data=refund_card)
    )
    assert (ten_times.approved, ten_times.response_code) == (False, "13")
    assert a.terminal.refund(1000, EUR, original_txn_id=sale.txn_id).state is State.APPROVED  # what it charged


def test_a_reversal_of_another_amount_reverses_nothing(host: HostService, tills: dict[str, Till]) -> None:
    a = tills["TA01"]
    sale = a.sale(2000)
    assert sale.state is State.APPROVED
    wrong = Reversal(sale.txn_id, "rev-wrong", 1, EUR, a.terminal_id, "void")
    with pytest.raises(HostRejected, match="422"):
        a.link.reverse(wrong)
    (held,) = [r for r in host.records() if r["txn_id"] == sale.txn_id and r["method"] != "reverse"]
    assert held["approved"] and not held["reversed"]
    assert a.terminal.void(sale.txn_id).state is State.VOIDED  # the terminal's own reversal names the amount
    (held,) = [r for r in host.records() if r["txn_id"] == sale.txn_id and r["method"] != "reverse"]
    assert held["reversed"]


# --------------------------------------------------------------------------- data at rest


def stored_text(host: HostService) -> str:
    """Everything the host's database holds, as text: host.db's bytes, or every PostgreSQL table's rows."""
    if host.store is None:
        return (host.data_dir / "host.db").read_bytes().decode("latin-1")
    with psycopg.connect(host.store) as conn:
        tables = [t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        query = psycopg.sql.SQL("SELECT * FROM {}")
        return "\n".join(str(row) for t in tables for row in conn.execute(query.format(psycopg.sql.Identifier(t))))


def modes(root: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def wrong_modes(root: Path) -> dict[str, str]:
    return {
        name: oct(mode)
        for name, mode in modes(root).items()
        if mode != (0o700 if (root / name).is_dir() else 0o600)
    }


def test_the_running_hosts_files_are_its_own(host: HostService, tills: dict[str, Till]) -> None:
    host.set_faults(slow_ms=1)  # the faults files too
    host.clear_faults()
    assert wrong_modes(host.data_dir) == {}
    names = set(modes(host.data_dir))
    assert {"host.log", "server.json", "faults.json"} <= names
    assert {"tls/ca/key.pem", "tls/ca/cert.pem", "tls/server-key.pem", "keys/digest.key"} <= names
    assert ({"host.db", "host.db-wal", "host.db-shm"} <= names) is (host.store is None)
    with admin.open_store(host.data_dir, create=False, store=host.store) as db:
        assert db.meta("digest_secret") is None  # no secret in the database
        secrets = [db.keys.secret(name).hex() for name in (DIGEST, CARD_TOKEN)]
    stored = stored_text(host)
    assert not [s for s in secrets if s in stored]


def test_a_data_directory_made_by_the_cli_is_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "new-host"
    done = posterm(
        "host", "enrol-code", "--terminal-id", "T1", "--merchant-id", "M1", "--url", "https://127.0.0.1:1",
        "--data-dir", str(data_dir),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert wrong_modes(data_dir) == {}
    assert {"host.db", "tls/ca/key.pem", "tls/ca/cert.pem", "keys/digest.key"} <= set(modes(data_dir))


# --------------------------------------------------------------------------- several workers at once


@pytest.mark.parametrize("engine", ENGINES)
def test_two_workers_approve_a_txn_once_and_never_refund_more_than_the_sale(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The checks read then write in one transaction: two worker processes on one store race and stay right."""
    with engine_store(engine, request) as store, start_host(tmp_path / "host", workers=2, store=store) as host:
        terminal = host.enrol("TW01", MERCHANT_A, tmp_path / "terminal")
        context = ssl.create_default_context(cafile=str(host.ca_certificate_path))
        context.load_cert_chain(terminal.certificate, terminal.key)
        clients = [httpx.Client(base_url=host.url, verify=context, timeout=30.0) for _ in range(8)]
        workers = {c.get("/v1/echo").headers["posterm-worker"] for c in clients}

        def body(txn_id: str, kind: str = "sale", amount: int = 1000, **kw: Any) -> dict[str, Any]:
            refund = kind == "refund"
            card = card_emv_data(amount, EUR, cryptogram="aac" if refund else "arqc", transaction_type=0x20 * refund)
            return {"txn_id": txn_id, "kind": kind, "amount": amount, "currency": EUR, "terminal_id": "TW01",
                    "merchant_id": MERCHANT_A, "emv_data": card.hex(), "pan_token": "t"} | kw  # fmt: skip

        def at_once(bodies: list[dict[str, Any]]) -> list[str]:
            barrier = threading.Barrier(len(bodies))

            def send(i: int) -> str:
                barrier.wait()
                key = f"{body_of[i]['txn_id']}-{i}"
                answer = clients[i].post("/v1/authorisations", json=body_of[i], headers={"Idempotency-Key": key})
                return str(answer.json().get("response_code", answer.text))

            body_of = bodies
            with ThreadPoolExecutor(len(bodies)) as pool:
                return list(pool.map(send, range(len(bodies))))

        try:
            sale_codes = at_once([body("same-txn") for _ in clients])  # one txn_id under eight keys
            refund_codes = at_once(
                [body(f"rf{i}", "refund", original_txn_id="same-txn") for i in range(len(clients))]
            )
        finally:
            for c in clients:
                c.close()
    assert len(workers) == 2  # both processes took part
    assert sorted(sale_codes) == ["00"] + ["94"] * 7
    assert sorted(refund_codes) == ["00"] + ["13"] * 7  # the sale's 10.00 refunded once, never eight times
