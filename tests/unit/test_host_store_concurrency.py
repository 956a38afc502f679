"""Several host workers on one store at once: what must happen once happens once, on both engines.

Each "worker" is a thread with a store of its own (its own SQLite connection,
or its own PostgreSQL connection pool), as the host's worker processes have:
nothing is shared between them but the database. A barrier releases them
together. On PostgreSQL the workers' transactions really run side by side, so
these tests are what shows that the database (constraints, locks,
transactions) keeps the guarantees, not any process's memory.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from emv.tlv import encode_pairs
from simulator.card_data import card_emv_data
from simulator.cryptograms import CryptogramData, build_iad, compute
from simulator.host.acquirer import Acquirer, Peer, Reply
from simulator.host.params import ensure_initial
from simulator.host.storage import Location
from simulator.host.storage.migrations import migrations
from simulator.host.store import DB_NAME, HostStore
from simulator.issuer_keys import issuer_master_keys
from tests.postgres_rig import PostgresCluster

WORKERS = 8
TID, MID, EUR = "T1", "M1", 978
PEER = Peer(TID, MID)
PAN = "4761739001010010"
_T = TypeVar("_T")
OpenStore = Callable[..., HostStore]


def card_auth(txn_id: str, amount: int, atc: int) -> dict[str, Any]:
    """An authorisation body with card data and a correct ARQC (what an issuer approves)."""
    keys = issuer_master_keys("sim-visa-cvn10")
    today = dt.datetime.now(dt.UTC)
    data = CryptogramData(
        amount=bytes.fromhex(f"{amount:012d}"),
        amount_other=bytes(6),
        country=bytes.fromhex("0276"),
        tvr=bytes(5),
        currency=bytes.fromhex("0978"),
        date=bytes.fromhex(today.strftime("%y%m%d")),
        transaction_type=b"\x00",
        unpredictable_number=atc.to_bytes(4, "big"),
        aip=bytes.fromhex("1980"),
        atc=atc.to_bytes(2, "big"),
        iad=build_iad(keys, bytes([0x03, 0x80, 0, 0])),
    )
    tags = {
        0x5A: bytes.fromhex(PAN), 0x5F34: b"\x01", 0x9F02: data.amount, 0x9F03: data.amount_other,
        0x9F1A: data.country, 0x95: data.tvr, 0x5F2A: data.currency, 0x9A: data.date, 0x9C: data.transaction_type,
        0x9F37: data.unpredictable_number, 0x82: data.aip, 0x9F36: data.atc, 0x9F10: data.iad,
        0x9F26: compute(keys, PAN, "01", data), 0x9F27: b"\x80",
    }  # fmt: skip
    return {
        "txn_id": txn_id, "kind": "sale", "amount": amount, "currency": EUR, "terminal_id": TID,
        "merchant_id": MID, "emv_data": encode_pairs(tags.items()).hex().upper(), "pan_token": f"tok{atc % 7}",
    }  # fmt: skip


@pytest.fixture()
def stores(host_store_at: Location, open_host_store: OpenStore) -> Iterator[list[HostStore]]:
    """One store per worker, all on the same database and key store (each engine: tests/conftest.py)."""
    opened = [open_host_store(host_store_at) for _ in range(WORKERS)]
    yield opened
    for store in opened:
        store.close()


def together(stores: list[HostStore], work: Callable[[int, HostStore], _T]) -> list[_T]:
    """``work(i, store)`` in one thread per store, released at once; the results in order."""
    barrier = threading.Barrier(len(stores))

    def run(i: int) -> _T:
        barrier.wait()
        return work(i, stores[i])

    with ThreadPoolExecutor(len(stores)) as pool:
        return list(pool.map(run, range(len(stores))))


def test_workers_given_the_same_key_at_once_process_it_once(stores: list[HostStore]) -> None:
    body = card_auth("sale-1", 1250, atc=1)
    replies = together(stores, lambda i, s: Acquirer(s).handle("authorisation", body, PEER, "key-1"))
    assert len({r.body for r in replies}) == 1  # one answer, given to all
    assert sum(not r.replayed for r in replies) == 1  # processed once, replayed to the others
    records = stores[0].records()
    assert [(r.method, r.txn_id) for r in records] == [("authorise", "sale-1")]
    assert records[0].host_reference == replies[0].json()["host_reference"]


def test_workers_with_their_own_keys_at_once_each_process_theirs(stores: list[HostStore]) -> None:
    def sell(i: int, store: HostStore) -> list[Reply]:
        acquirer = Acquirer(store)
        return [acquirer.handle("authorisation", card_auth(f"s{i}-{n}", 100 + n, atc=10 * i + n), PEER,
                                f"k{i}-{n}") for n in range(5)]

    replies = [r for per_worker in together(stores, sell) for r in per_worker]
    assert not any(r.replayed for r in replies)
    records = stores[0].records()
    assert sorted(r.txn_id for r in records) == sorted(f"s{i}-{n}" for i in range(WORKERS) for n in range(5))
    assert len({r.host_reference for r in records}) == len(records)  # references never repeat


def test_the_same_batch_close_at_once_closes_it_once(stores: list[HostStore]) -> None:
    acquirer = Acquirer(stores[0])
    for n in range(3):
        reply = acquirer.handle("authorisation", card_auth(f"s{n}", 1000, atc=n + 1), PEER, f"k{n}")
        assert reply.json()["status"] == "approved", reply.json()
    close = {"batch_id": 1, "terminal_id": TID, "lines": [{"currency": EUR, "kind": "sale", "count": 3,
                                                           "amount": 3000, "scheme": "visa"}]}
    replies = together(stores, lambda i, s: Acquirer(s).handle("batch-close", close, PEER, f"close-{i}"))
    assert len({r.body for r in replies}) == 1  # every worker's key got the one close's answer
    assert replies[0].json()["in_balance"] is True
    assert stores[0].batch_number(MID, TID) == 2  # the host batch moved on once, not once per worker
    assert stores[0]._one("SELECT COUNT(*) FROM batch_closes") == (1,)


def test_authorisations_during_closes_land_in_exactly_one_closed_batch(stores: list[HostStore]) -> None:
    """A close totals its host batch while other workers authorise: each sale is counted by one close."""
    closes = 6

    def work(i: int, store: HostStore) -> list[Reply]:
        acquirer = Acquirer(store)
        if i == 0:  # the closing worker: closes 1..6 with no lines, so each answer shows the host's totals
            return [acquirer.handle("batch-close", {"batch_id": b, "terminal_id": TID, "lines": []}, PEER, f"c{b}")
                    for b in range(1, closes + 1)]
        return [acquirer.handle("authorisation", card_auth(f"s{i}-{n}", 100, atc=100 * i + n), PEER, f"k{i}-{n}")
                for n in range(12)]

    results = together(stores, work)
    final = Acquirer(stores[0]).handle("batch-close", {"batch_id": 99, "terminal_id": TID, "lines": []}, PEER, "c99")
    counted = [sum(d["host_count"] for d in r.json()["differences"]) for r in [*results[0], final]]
    approved = [r for r in stores[0].records() if r.approved]
    assert sum(counted) == len(approved) == (WORKERS - 1) * 12
    per_batch = [sum(1 for r in approved if r.batch == b) for b in range(1, closes + 2)]
    assert counted == per_batch  # what each close counted is exactly what its batch holds


def test_openers_of_a_new_database_at_once_upgrade_it_once(host_store_at: Location, tmp_path: Path,
                                                          request: pytest.FixtureRequest,
                                                          open_host_store: OpenStore) -> None:
    if isinstance(host_store_at, Path):
        location: Location = tmp_path / "fresh" / DB_NAME
        cleanup: Callable[[], None] = lambda: None  # noqa: E731
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        empty = cluster.create_database(template=None)
        location = cluster.url(empty)
        cleanup = lambda: cluster.drop_database(empty)  # noqa: E731
    try:
        barrier = threading.Barrier(WORKERS)

        def open_one(_: int) -> str:
            barrier.wait()
            with open_host_store(location) as store:
                return store.digest("body") + store.card_token(PAN)

        with ThreadPoolExecutor(WORKERS) as pool:
            secrets = list(pool.map(open_one, range(WORKERS)))
        assert len(set(secrets)) == 1  # one pair of secrets, made by the first opener, used by all
        with open_host_store(location) as store:
            versions = store._all("SELECT version FROM schema_version ORDER BY version")
            assert store.engine.has_index("records_approved_once")
        assert [v[0] for v in versions] == [m.version for m in migrations()]
    finally:
        cleanup()


def test_workers_starting_together_make_parameters_version_1_once(stores: list[HostStore]) -> None:
    versions = together(stores, lambda i, s: ensure_initial(s))
    assert versions == [1] * WORKERS
    assert stores[0]._all("SELECT version FROM parameters") == [(1,)]


def test_workers_deciding_for_one_card_at_once_keep_its_velocity_limit(stores: list[HostStore]) -> None:
    """Eight terminals (so eight terminal locks) pay with one card at once; at most 3 approvals allowed."""
    stores[0].set_velocity(3, 3600)

    def pay(i: int, store: HostStore) -> str:
        body = {**card_auth(f"v{i}", 500, atc=200 + i), "terminal_id": f"T{i}", "pan_token": "one-card"}
        reply = Acquirer(store).handle("authorisation", body, Peer(f"T{i}", MID), f"v{i}")
        return str(reply.json()["response_code"])

    codes = together(stores, pay)
    assert sorted(codes) == ["00"] * 3 + ["65"] * (WORKERS - 3)


def test_one_enrolment_code_used_by_workers_at_once_enrols_once(stores: list[HostStore]) -> None:
    stores[0].add_enrolment_code("ABCD-EFGH-JKLM-NPQR", TID, MID, "2025-01-01", "2099-01-01")
    outcomes = together(stores, lambda i, s: s.use_enrolment_code(
        "ABCD-EFGH-JKLM-NPQR", "2025-06-01", f"csr{i}", b"{}", f"SERIAL{i}"))
    assert sorted(outcomes) == ["enrolled"] + ["refused"] * (WORKERS - 1)
    valid = [r[0] for r in stores[0]._all("SELECT serial FROM certificates WHERE revoked_at IS NULL")]
    assert valid == [f"SERIAL{outcomes.index('enrolled')}"]  # one certificate issued for the one code


def test_one_certificate_rotated_by_workers_at_once_is_replaced_once(stores: list[HostStore]) -> None:
    stores[0].add_certificate("OLD1", MID, TID, "2025-01-01")
    done = together(stores, lambda i, s: s.rotate_certificate(
        "OLD1", f"NEW{i}", "2026-01-01", f"key{i}", f"pk{i}", b"{}", "2025-06-01"))
    assert sorted(done) == [False] * (WORKERS - 1) + [True]
    valid = [r[0] for r in stores[0]._all("SELECT serial FROM certificates WHERE revoked_at IS NULL")]
    assert valid == [f"NEW{done.index(True)}"]  # the terminal holds one valid certificate, not eight


def refund_body(txn_id: str, terminal_id: str, amount: int, atc: int) -> dict[str, Any]:
    """An unreferenced refund (no sale named) with a card that proves itself (an AAC over the refund)."""
    card = card_emv_data(amount, EUR, cryptogram="aac", transaction_type=0x20, atc=atc)
    return {"txn_id": txn_id, "kind": "refund", "amount": amount, "currency": EUR, "terminal_id": terminal_id,
            "merchant_id": MID, "emv_data": card.hex().upper(), "pan_token": "t"}  # fmt: skip


def test_terminals_of_one_merchant_refunding_at_once_keep_its_allowance(stores: list[HostStore]) -> None:
    """Eight terminals (eight terminal locks) refund 3.00 each at once against the merchant's 10.00 allowance."""
    with stores[0].transaction():
        stores[0].set_refund_allowance(MID, 1000, "2026-01-01T00:00:00+00:00")

    def refund(i: int, store: HostStore) -> str:
        reply = Acquirer(store).handle("authorisation", refund_body(f"rf{i}", f"T{i}", 300, atc=300 + i),
                                       Peer(f"T{i}", MID), f"rf{i}")
        return str(reply.json()["response_code"])

    codes = together(stores, refund)
    assert sorted(codes) == ["00"] * 3 + ["58"] * (WORKERS - 3)
    assert stores[0].allowance_used(MID, EUR, "2000-01-01") == 900
