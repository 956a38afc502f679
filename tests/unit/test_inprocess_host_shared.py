"""simulator.host.inprocess as the terminal's ``memory`` link: its database, threads, batches, echo, registration.

Also the issuer's rules that the in-process host has from the shared acquirer (999NN amounts, ARQC checks,
velocity) and the records a money check needs (refunds against their sale).
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from simulator.card_data import CARDS
from simulator.host import admin
from simulator.host.inprocess import Call, InProcessHost, memory_host_database, open_memory_host
from simulator.host.store import DB_NAME
from terminal.bootstrap import open_host
from terminal.host import BatchAdvising, HostAnswer, HostNoAnswer, HostRejected, HostUnreachable
from terminal.ports import DeviceError
from tests.unit.host_messages import EUR, TID, advice, auth, reversal, totals


@pytest.fixture
def host() -> InProcessHost:
    return InProcessHost()


# --------------------------------------------------------------------------- persistence


def test_state_persists_across_instances(tmp_path: Path) -> None:
    state = tmp_path / "host" / "state.json"
    first = InProcessHost(state)
    a1 = first.authorise(auth("s1", 1000))
    first.advise(advice("o1", 400))
    first.authorise(auth("s2", 500))
    first.reverse(reversal("s2", 500))
    first.block(CARDS["mastercard"][0], "43")
    assert state.exists()
    assert not list(state.parent.glob("*.tmp"))  # the temporary file was renamed

    second = InProcessHost(state)
    assert second.records == first.records
    assert second.authorise(auth("s1", 1000)) == a1  # idempotency cache survived
    assert second.accepted_count("s1") == 1
    with pytest.raises(HostRejected):
        second.authorise(auth("s1", 1001))
    assert second.authorise(auth("s3", card="mastercard")).response_code == "43"
    assert second.is_reversed("s2")
    assert second.close_batch(totals(("visa", EUR, "sale", 2, 1400))).in_balance
    assert second.batch_number(TID) == 2

    third = InProcessHost(state)
    assert third.batch_number(TID) == 2
    assert third.open_totals(TID) == {}
    assert third.close_batch(totals(("visa", EUR, "sale", 2, 1400))).in_balance  # replay
    assert third.batch_number(TID) == 2
    new = third.authorise(auth("s9"))
    assert new.host_reference != a1.host_reference


def test_instances_on_one_file_see_each_others_changes(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    cli_sale = InProcessHost(state)
    cli_forward = InProcessHost(state)
    cli_sale.authorise(auth("s1"))
    cli_forward.advise(advice("o1"))
    cli_sale.authorise(auth("s2"))
    assert {r.txn_id for r in cli_forward.records} == {"s1", "o1", "s2"}
    assert len({r.seq for r in cli_forward.records}) == 3


def test_in_memory_host_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    InProcessHost().authorise(auth())
    assert list(tmp_path.iterdir()) == []


def test_the_database_is_a_host_data_directory(tmp_path: Path) -> None:
    database = tmp_path / "memory-host" / DB_NAME
    host = InProcessHost(database)
    host.authorise(auth())
    host.close()
    # the operator's commands (posterm host records / issuer block --data-dir) work on it
    assert [r["txn_id"] for r in admin.records(database.parent)] == ["t1"]
    admin.block_card(database.parent, CARDS["visa"][0], "43")
    assert host.authorise(auth("t2")).response_code == "43"


def test_the_database_is_opened_on_first_use(tmp_path: Path) -> None:
    database = tmp_path / "memory-host" / DB_NAME
    host = InProcessHost(database)
    assert not database.parent.exists()  # a command that never talks to the host creates nothing
    host.echo()
    assert not database.parent.exists()  # nor does an echo to a host that has no database yet
    host.authorise(auth())
    assert database.exists()


def test_a_damaged_database_is_unreachable_never_reset(tmp_path: Path) -> None:
    database = tmp_path / "host.db"
    database.write_text("{not a database" * 100)
    host = InProcessHost(database)
    with pytest.raises(HostUnreachable, match=r"host\.db"):
        host.authorise(auth())
    with pytest.raises(HostUnreachable, match=r"host\.db"):
        host.echo()
    assert database.read_text() == "{not a database" * 100
    assert host.calls[0] == Call("authorise", "t1", "unreachable")


# --------------------------------------------------------------------------- threads


def test_concurrent_advices_each_accepted_exactly_once() -> None:
    host = InProcessHost()
    entries = [advice(f"a{i:04d}", 100 + i) for i in range(1000)]
    # 20 threads × 50 entries; each thread also resends 10 entries of its neighbour's share.
    shares = [entries[n * 50 : (n + 1) * 50] for n in range(20)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(20)

    def forward(n: int) -> None:
        try:
            barrier.wait()
            resent = [dataclasses.replace(e, retransmission=True) for e in shares[(n + 1) % 20][:10]]
            mine = shares[n] + resent
            for entry in mine:
                assert host.advise(entry).approved
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=forward, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(host.records) == 1000
    assert all(host.accepted_count(e.txn_id) == 1 for e in entries)
    assert host.duplicates() == {}
    outcomes = [c.outcome for c in host.calls]
    assert outcomes.count("approved") == 1000 and outcomes.count("replay") == 200


def test_faults_switched_from_another_thread_while_forwarding() -> None:
    host = InProcessHost()
    host.faults.no_answer = 5
    results: list[str] = []

    def forward() -> None:
        for i in range(30):
            entry = advice(f"a{i}")
            for _attempt in range(10):
                try:
                    host.advise(entry)
                    results.append("ok")
                    break
                except HostNoAnswer:
                    entry = dataclasses.replace(entry, retransmission=True)

    worker = threading.Thread(target=forward)
    worker.start()
    host.faults.fail_before_processing = 3
    worker.join()
    assert results == ["ok"] * 30
    assert all(host.accepted_count(f"a{i}") == 1 for i in range(30))


# --------------------------------------------------------------------------- one acquirer: what the HTTPS host does


@pytest.mark.parametrize(("amount", "code"), [(99912, "12"), (199943, "43"), (99900, "00")])
def test_the_issuers_999nn_amounts(host: InProcessHost, amount: int, code: str) -> None:
    assert host.authorise(auth(amount=amount)).response_code == code


def test_an_arqc_that_does_not_verify_is_declined_82(host: InProcessHost) -> None:
    forged = bytes.fromhex(  # an ARQC (9F27 = 80) for a Visa PAN, with no key set named and a made-up value
        "9F270180" "9F26081122334455667788" "5A084761739001010010" "9F36020001"
    )
    answer = host.authorise(auth(emv_data=forged))
    assert answer.response_code == "82" and answer.arpc is None
    assert host.records_for("t1")[0].note == "arqc_failed"


def test_emv_data_that_is_not_tlv_is_declined_30(host: InProcessHost) -> None:
    assert host.authorise(auth(emv_data=b"\x9f")).response_code == "30"


def test_velocity(host: InProcessHost) -> None:
    host.set_velocity(2, 3600)
    codes = [host.authorise(auth(f"t{i}")).response_code for i in range(3)]
    assert codes == ["00", "00", "65"]


@pytest.mark.parametrize("reason", ["no_answer", "void", "recovery", "expired"])
def test_every_reversal_reason_of_the_port_is_accepted(host: InProcessHost, reason: str) -> None:
    host.authorise(auth("t1"))
    assert host.reverse(reversal("t1", reason=reason)).approved
    assert host.is_reversed("t1")


def test_refunds_carry_their_original_and_sale_positions_add_them_up(host: InProcessHost) -> None:
    host.authorise(auth("s1", 500))
    host.authorise(auth("rf1", 300, kind="refund", original_txn_id="s1"))
    host.advise(advice("rf2", 100, kind="offline_refund", original_txn_id="s1"))
    host.advise(advice("rf3", 50, kind="offline_refund", original_txn_id="s1"))
    host.reverse(reversal("rf3", 50))  # reversed: no longer counts
    assert host.authorise(auth("rf4", 101, kind="refund", original_txn_id="s1")).response_code == "13"  # > left
    host.advise(advice("o1", 700))
    ghost = host.advise(advice("rf5", 20, kind="offline_refund", original_txn_id="ghost"))  # a sale never seen
    assert ghost.response_code == "25"
    host.set_refund_allowance("M1", 20)
    host.advise(advice("rf6", 20, kind="offline_refund"))  # unreferenced, within the allowance: no position
    assert host.records_for("rf2")[0].original_txn_id == "s1"
    positions = host.sale_positions(TID)
    assert {t: (p.charged, p.refunded) for t, p in positions.items()} == {"s1": (500, 400), "o1": (700, 0)}
    assert positions["s1"].net == 100
    assert host.sale_positions("OTHER") == {}


def test_advices_in_one_batch(host: InProcessHost) -> None:
    host.advise(advice("a1"))
    results = host.advise_many(
        [advice("a1"), advice("d1", 1051, kind="deferred_authorisation"), advice("x", kind="online"), advice("a2")]
    )
    assert [type(r).__name__ for r in results] == ["HostAnswer", "HostAnswer", "HostRejected", "HostAnswer"]
    assert [c.outcome for c in host.calls[1:]] == ["replay", "declined:51", "rejected", "approved"]
    assert host.advise_many([]) == []
    with pytest.raises(ValueError, match="at most 100"):
        host.advise_many([advice(f"a{i}") for i in range(101)])


def test_faults_strike_a_batch_as_one_request(host: InProcessHost) -> None:
    host.faults.only = {"advise"}
    host.faults.no_answer = 1
    with pytest.raises(HostNoAnswer):
        host.advise_many([advice("a1"), advice("a2")])
    assert host.accepted_count("a1") == host.accepted_count("a2") == 1  # both processed, the answer lost
    assert [c.outcome for c in host.calls] == ["approved+no_answer"] * 2
    again = host.advise_many([advice("a1", retransmission=True), advice("a2", retransmission=True)])
    assert all(isinstance(r, HostAnswer) and r.approved for r in again)
    assert [c.outcome for c in host.calls[2:]] == ["replay", "replay"]
    host.faults.down = True
    with pytest.raises(HostUnreachable):
        host.advise_many([advice("a3"), advice("a4")])
    assert host.calls[-2:] == (Call("advise", "a3", "unreachable"), Call("advise", "a4", "unreachable"))


def test_echo(host: InProcessHost) -> None:
    assert host.echo() >= 0
    details = host.echo_details(force=True)
    assert details.host_reference and details.host_time.endswith("Z")
    host.faults.down = True
    with pytest.raises(HostUnreachable):
        host.echo()


def test_faults_survive_being_shared_between_hosts(tmp_path: Path) -> None:
    faults = InProcessHost().faults
    first, second = InProcessHost(tmp_path / "h.db"), InProcessHost(tmp_path / "h.db")
    first.faults = second.faults = faults  # a test keeps the network's state across terminal restarts
    faults.fail_before_processing = 1
    with pytest.raises(HostNoAnswer):
        first.authorise(auth())
    assert second.authorise(auth()).approved


def test_memory_is_a_registered_host_link(tmp_path: Path) -> None:
    host = open_host("memory", tmp_path)
    assert isinstance(host, InProcessHost) and isinstance(host, BatchAdvising)
    assert host.database == memory_host_database(tmp_path) == tmp_path / "memory-host" / DB_NAME
    assert isinstance(open_host("auto", tmp_path), InProcessHost)
    with pytest.raises(DeviceError, match="'memory'"):
        open_memory_host("memory:x", tmp_path)
