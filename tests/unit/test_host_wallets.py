"""The host's wallet side on both store engines: code payments, orders, cancels, refunds, settlement, workers.

The acquirer is driven as the HTTP app drives it (``Acquirer.handle`` with a
body valid against its schema, a peer and a key) with an injected clock; the
wallet apps' side (``issue_code``, ``app_pay``, ``confirm``) is what
``posterm sim wallet`` and ``posterm host wallet confirm`` call.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from simulator.host.acquirer import COMPONENTS, Acquirer, Peer
from simulator.host.schema import first_error
from simulator.host.storage import Location
from simulator.host.store import HostStore, StoreError
from simulator.host.wallets import AppRefused, NotFound, ReferenceConflict, app_pay, confirm, issue_code

TID, MID, EUR = "T1", "M1", 978
PEER = Peer(TID, MID)
OTHER = Peer("T2", MID)
_T = TypeVar("_T")


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def acquirer(host_store: HostStore, clock: Clock) -> Acquirer:
    return Acquirer(host_store, clock=clock)


def send(acquirer: Acquirer, what: str, body: dict[str, Any], key: str, peer: Peer = PEER) -> dict[str, Any]:
    full = {"terminal_id": peer.terminal_id, "merchant_id": peer.merchant_id, **body}
    assert first_error(COMPONENTS[what], full) is None, first_error(COMPONENTS[what], full)
    answer: dict[str, Any] = acquirer.handle(what, full, peer, key).json()
    assert first_error("QrOrderCreated" if what == "qr-order" else "QrRefundResponse" if what == "qr-refund"
                       else "QrPayment", answer) is None, answer  # fmt: skip
    return answer


def pay(acquirer: Acquirer, reference: str, code: str, amount: int = 1250, peer: Peer = PEER) -> dict[str, Any]:
    body = {"reference": reference, "amount": amount, "currency": EUR, "code": code}
    return send(acquirer, "qr-payment", body, f"pay:{reference}", peer)


def balance(store: HostStore, account: str, currency: int = EUR) -> int:
    found = store.wallet_account(account)
    assert found is not None
    return found.balances.get(currency, 0)


def code_of(store: HostStore, clock: Clock, account: str = "alice") -> str:
    code, _, _ = issue_code(store, account, clock())
    return code


# ----------------------------------------------------------------------------- codes


def test_a_code_pays_once_and_debits_its_account(host_store: HostStore, acquirer: Acquirer, clock: Clock) -> None:
    before = balance(host_store, "alice")
    code = code_of(host_store, clock)
    assert len(code) == 18 and code.startswith("91")  # alice's wallet is simpay
    answer = pay(acquirer, "r1", code)
    assert (answer["status"], answer["reason"], answer["wallet"], answer["amount"]) == ("paid", None, "simpay", 1250)
    assert balance(host_store, "alice") == before - 1250
    again = pay(acquirer, "r2", code)
    assert (again["status"], again["reason"]) == ("declined", "code_used")
    assert balance(host_store, "alice") == before - 1250
    assert code not in repr(host_store._all("SELECT * FROM wallet_codes"))  # kept as a digest only


def test_unknown_expired_and_uncovered_codes_are_declined(
    host_store: HostStore, acquirer: Acquirer, clock: Clock
) -> None:
    assert pay(acquirer, "r1", "910000000000000000")["reason"] == "unknown_code"
    assert pay(acquirer, "r2", "100000000000000000")["reason"] == "unknown_code"  # no simulator wallet's prefix
    code = code_of(host_store, clock)
    clock.advance(60)
    assert pay(acquirer, "r3", code)["status"] == "paid"  # valid 60 s
    late = code_of(host_store, clock)
    clock.advance(60.001)
    assert pay(acquirer, "r4", late)["reason"] == "expired_code"
    poor = code_of(host_store, clock, "empty")
    assert pay(acquirer, "r5", poor)["reason"] == "insufficient_balance"
    assert balance(host_store, "empty") == 0


def test_decline_mode_declines_and_normal_mode_pays_again(
    host_store: HostStore, acquirer: Acquirer, clock: Clock
) -> None:
    host_store.set_wallet_mode("decline")
    answer = pay(acquirer, "r1", code_of(host_store, clock))
    assert (answer["status"], answer["reason"]) == ("declined", "wallet_declined")
    host_store.set_wallet_mode("normal")
    assert pay(acquirer, "r2", code_of(host_store, clock))["status"] == "paid"


def test_user_paying_then_confirmed_or_declined_in_the_app(
    host_store: HostStore, acquirer: Acquirer, clock: Clock
) -> None:
    before = balance(host_store, "alice")
    host_store.set_wallet_mode("confirm")
    first = pay(acquirer, "r1", code_of(host_store, clock))
    second = pay(acquirer, "r2", code_of(host_store, clock))
    assert first["status"] == second["status"] == "user_paying"
    assert acquirer.wallets.query("r1", MID, TID)["status"] == "user_paying"
    assert balance(host_store, "alice") == before  # nothing taken while the customer confirms
    clock.advance(20)
    assert confirm(host_store, first["order_id"], clock()).state == "paid"
    declined = confirm(host_store, second["order_id"], clock(), accept=False)
    assert (declined.state, declined.reason) == ("declined", "user_declined")
    assert acquirer.wallets.query("r1", MID, TID)["status"] == "paid"
    assert acquirer.wallets.query("r2", MID, TID)["reason"] == "user_declined"
    assert balance(host_store, "alice") == before - 1250
    with pytest.raises(AppRefused, match="not waiting"):
        confirm(host_store, first["order_id"], clock())


def test_a_lost_answer_is_resolved_by_query_and_a_repeat_replays(
    host_store: HostStore, acquirer: Acquirer, clock: Clock
) -> None:
    assert acquirer.wallets.query("r1", MID, TID)["status"] == "unknown"
    code = code_of(host_store, clock)
    body = {"terminal_id": TID, "merchant_id": MID, "reference": "r1", "amount": 700, "currency": EUR, "code": code}
    first = acquirer.handle("qr-payment", body, PEER, "pay:r1")  # the answer "lost" on its way back
    assert acquirer.wallets.query("r1", MID, TID)["status"] == "paid"
    repeat = acquirer.handle("qr-payment", body, PEER, "pay:r1")
    assert repeat.replayed and repeat.body == first.body
    other_key = acquirer.handle("qr-payment", body, PEER, "pay:r1:again")  # same order, another key: its state
    assert other_key.json()["status"] == "paid" and other_key.json()["order_id"] == first.json()["order_id"]
    with pytest.raises(ReferenceConflict, match="another order"):
        send(acquirer, "qr-payment", {**body, "amount": 701}, "pay:r1:other")
    assert balance(host_store, "alice") == 100000 - 700


# ----------------------------------------------------------------------------- cancel


def test_cancel_of_a_paid_order_reverses_it_once(host_store: HostStore, acquirer: Acquirer, clock: Clock) -> None:
    before = balance(host_store, "alice")
    pay(acquirer, "r1", code_of(host_store, clock))
    cancel = {"reference": "r1", "amount": 1250, "currency": EUR}
    assert send(acquirer, "qr-cancel", cancel, "cancel:r1")["status"] == "reversed"
    assert balance(host_store, "alice") == before
    again = send(acquirer, "qr-cancel", cancel, "cancel:r1:again")  # another key: still once
    assert again["status"] == "reversed" and balance(host_store, "alice") == before
    with pytest.raises(ReferenceConflict, match="nothing cancelled"):
        send(acquirer, "qr-cancel", {**cancel, "amount": 1}, "cancel:r1:wrong")


def test_a_payment_after_its_cancel_is_refused(host_store: HostStore, acquirer: Acquirer, clock: Clock) -> None:
    before = balance(host_store, "alice")
    cancelled = send(acquirer, "qr-cancel", {"reference": "r1", "amount": 1250, "currency": EUR}, "cancel:r1")
    assert cancelled["status"] == "cancelled"
    late = pay(acquirer, "r1", code_of(host_store, clock))
    assert (late["status"], late["reason"]) == ("declined", "order_cancelled")
    assert balance(host_store, "alice") == before


def test_cancel_while_the_customer_confirms_stops_the_payment(
    host_store: HostStore, acquirer: Acquirer, clock: Clock
) -> None:
    host_store.set_wallet_mode("confirm")
    waiting = pay(acquirer, "r1", code_of(host_store, clock))
    assert send(acquirer, "qr-cancel", {"reference": "r1", "amount": 1250, "currency": EUR}, "c1")["status"] == (
        "cancelled"
    )
    with pytest.raises(AppRefused, match="cancelled"):
        confirm(host_store, waiting["order_id"], clock())
    assert balance(host_store, "alice") == 100000


def test_a_paid_order_of_a_closed_batch_is_not_reversed(
    host_store: HostStore, acquirer: Acquirer, clock: Clock
) -> None:
    pay(acquirer, "r1", code_of(host_store, clock))
    lines = [{"scheme": "qr-simpay", "currency": EUR, "kind": "sale", "count": 1, "amount": 1250}]
    assert send_close(acquirer, 1, lines)["in_balance"] is True
    answer = send(acquirer, "qr-cancel", {"reference": "r1", "amount": 1250, "currency": EUR}, "c1")
    assert (answer["status"], answer["reason"]) == ("paid", "already_settled")


# ----------------------------------------------------------------------------- merchant-presented orders


def order(acquirer: Acquirer, reference: str, amount: int = 990) -> dict[str, Any]:
    return send(acquirer, "qr-order", {"reference": reference, "amount": amount, "currency": EUR}, f"order:{reference}")


def close(acquirer: Acquirer, order_id: str) -> dict[str, Any]:
    return send(acquirer, "qr-close", {"order_id": order_id}, f"close:{order_id}")


def test_an_order_paid_by_the_app(host_store: HostStore, acquirer: Acquirer, clock: Clock) -> None:
    created = order(acquirer, "m1")
    assert created["status"] == "pending"
    assert created["mpm"]["templates"]["26"] == {"00": "org.posterm.wallet", "01": MID, "02": created["order_id"]}
    assert (created["mpm"]["reference_label"], created["mpm"]["terminal_label"]) == ("m1", TID)
    paid = app_pay(host_store, created["order_id"], "bob", clock())
    assert (paid.state, paid.wallet, paid.account) == ("paid", "simchat", "bob")
    assert acquirer.wallets.query("m1", MID, TID)["status"] == "paid"
    assert close(acquirer, created["order_id"])["status"] == "paid"  # the race: paid first, the terminal learns it
    assert balance(host_store, "bob") == 50000 - 990
    with pytest.raises(AppRefused, match="paid"):
        app_pay(host_store, created["order_id"], "bob", clock())  # never twice
    assert balance(host_store, "bob") == 50000 - 990


def test_an_order_closed_by_the_terminal_is_never_charged(
    host_store: HostStore, acquirer: Acquirer, clock: Clock
) -> None:
    created = order(acquirer, "m1")
    assert close(acquirer, created["order_id"])["status"] == "closed"
    with pytest.raises(AppRefused, match="closed by the terminal"):
        app_pay(host_store, created["order_id"], "bob", clock())
    assert balance(host_store, "bob") == 50000
    assert acquirer.wallets.query("m1", MID, TID)["status"] == "closed"


def test_orders_are_the_terminal_s_own_and_expire(host_store: HostStore, acquirer: Acquirer, clock: Clock) -> None:
    created = order(acquirer, "m1")
    with pytest.raises(NotFound):
        send(acquirer, "qr-close", {"order_id": created["order_id"]}, "close:x", OTHER)
    with pytest.raises(AppRefused, match="no wallet account"):
        app_pay(host_store, created["order_id"], "mallory", clock())
    with pytest.raises(AppRefused, match="balance"):
        app_pay(host_store, created["order_id"], "empty", clock())
    clock.advance(601)
    with pytest.raises(AppRefused, match="expired"):
        app_pay(host_store, created["order_id"], "bob", clock())
    assert balance(host_store, "bob") == 50000


def test_app_pay_and_close_racing_across_workers_charge_at_most_once(
    host_store_at: Location, open_host_store: Callable[..., HostStore], clock: Clock
) -> None:
    stores = [open_host_store(host_store_at) for _ in range(2)]
    try:
        acquirers = [Acquirer(s, clock=clock) for s in stores]
        for n in range(6):
            created = order(acquirers[0], f"m{n}")

            def work(i: int, store: HostStore, order_id: str = created["order_id"]) -> str:
                if i == 0:
                    return str(close(acquirers[0], order_id)["status"])
                try:
                    return app_pay(store, order_id, "alice", clock()).state
                except AppRefused:
                    return "refused"

            closed, paid = together(stores, work)
            final = acquirers[0].wallets.query(f"m{n}", MID, TID)["status"]
            assert (closed, paid) in (("closed", "refused"), ("paid", "paid")), (closed, paid)
            assert final == closed
        charged = sum(o.amount for o in stores[0].qr_orders() if o.state == "paid")
        assert balance(stores[0], "alice") == 100000 - charged
    finally:
        for store in stores:
            store.close()


# ----------------------------------------------------------------------------- refunds and settlement


def refund(acquirer: Acquirer, ref: str, original: str, amount: int) -> dict[str, Any]:
    body = {"refund_reference": ref, "original_reference": original, "amount": amount, "currency": EUR}
    return send(acquirer, "qr-refund", body, f"refund:{ref}")


def test_refunds_go_back_to_the_account_and_never_exceed(
    host_store: HostStore, acquirer: Acquirer, clock: Clock
) -> None:
    before = balance(host_store, "alice")
    pay(acquirer, "r1", code_of(host_store, clock))
    assert refund(acquirer, "f1", "r1", 1000)["status"] == "approved"
    too_much = refund(acquirer, "f2", "r1", 251)
    assert (too_much["status"], too_much["reason"], too_much["refunded_total"]) == (
        "declined", "refund_exceeds_payment", 1000,
    )  # fmt: skip
    rest = refund(acquirer, "f3", "r1", 250)
    assert (rest["status"], rest["refunded_total"]) == ("approved", 1250)
    assert refund(acquirer, "f1", "r1", 1000)["status"] == "approved"  # its own reference again: the same refund
    with pytest.raises(ReferenceConflict, match="another refund"):  # another key, the same refund reference
        body = {"refund_reference": "f1", "original_reference": "r1", "amount": 999, "currency": EUR}
        send(acquirer, "qr-refund", body, "refund:f1:again")
    with pytest.raises(ReferenceConflict, match="another order"):
        order(acquirer, "r1")  # a code payment's reference is not an MPM order's
    assert refund(acquirer, "f4", "r1", 1)["reason"] == "refund_exceeds_payment"
    assert refund(acquirer, "f5", "nope", 1)["reason"] == "original_not_found"
    assert balance(host_store, "alice") == before
    with pytest.raises(StoreError), host_store.transaction():  # the database itself refuses more refunded than paid
        host_store._exec("UPDATE qr_orders SET refunded = amount + 1")
    with pytest.raises(StoreError), host_store.transaction():  # and a balance below zero
        host_store._exec("UPDATE wallet_balances SET balance = -1 WHERE account = 'alice'")


def test_a_refund_of_an_order_that_is_not_paid_is_declined(
    host_store: HostStore, acquirer: Acquirer, clock: Clock
) -> None:
    created = order(acquirer, "m1")
    assert refund(acquirer, "f1", "m1", 1)["reason"] == "original_not_paid"
    close(acquirer, created["order_id"])
    assert refund(acquirer, "f2", "m1", 1)["reason"] == "original_not_paid"


def send_close(acquirer: Acquirer, batch_id: int, lines: list[dict[str, Any]]) -> dict[str, Any]:
    body = {"batch_id": batch_id, "terminal_id": TID, "lines": lines}
    answer: dict[str, Any] = acquirer.handle("batch-close", body, PEER, f"batch:{batch_id}").json()
    return answer


def test_qr_orders_and_refunds_reconcile_in_their_own_lines(
    host_store: HostStore, acquirer: Acquirer, clock: Clock
) -> None:
    pay(acquirer, "r1", code_of(host_store, clock), amount=1000)
    pay(acquirer, "r2", code_of(host_store, clock, "dora"), amount=500)
    created = order(acquirer, "m1", amount=300)
    app_pay(host_store, created["order_id"], "bob", clock())
    pay(acquirer, "r3", code_of(host_store, clock), amount=70)
    send(acquirer, "qr-cancel", {"reference": "r3", "amount": 70, "currency": EUR}, "c3")  # reversed: not counted
    refund(acquirer, "f1", "r1", 400)
    lines = [
        {"scheme": "qr-simpay", "currency": EUR, "kind": "sale", "count": 1, "amount": 1000},
        {"scheme": "qr-simdc", "currency": EUR, "kind": "sale", "count": 1, "amount": 500},
        {"scheme": "qr-simchat", "currency": EUR, "kind": "sale", "count": 1, "amount": 300},
        {"scheme": "qr-simpay", "currency": EUR, "kind": "refund", "count": 1, "amount": 400},
    ]
    assert host_store.qr_totals(MID, TID, 1) == {
        (EUR, "sale", "qr-simpay"): (1, 1000), (EUR, "sale", "qr-simdc"): (1, 500),
        (EUR, "sale", "qr-simchat"): (1, 300), (EUR, "refund", "qr-simpay"): (1, 400),
    }  # fmt: skip
    wrong = send_close(acquirer, 1, lines[:2])
    assert wrong["in_balance"] is False  # the sale of the MPM order and the refund missing
    assert {(d["kind"], d["host_amount"]) for d in wrong["differences"]} == {("sale", 1800), ("refund", 400)}
    pay(acquirer, "r4", code_of(host_store, clock), amount=5)  # in the next batch
    assert send_close(acquirer, 2, [{**lines[0], "amount": 5}])["in_balance"] is True


# ----------------------------------------------------------------------------- several workers


def together(stores: list[HostStore], work: Callable[[int, HostStore], _T]) -> list[_T]:
    barrier = threading.Barrier(len(stores))

    def run(i: int) -> _T:
        barrier.wait()
        return work(i, stores[i])

    with ThreadPoolExecutor(len(stores)) as pool:
        return list(pool.map(run, range(len(stores))))


@pytest.fixture()
def stores(host_store_at: Location, open_host_store: Callable[..., HostStore]) -> Iterator[list[HostStore]]:
    opened = [open_host_store(host_store_at) for _ in range(6)]
    yield opened
    for store in opened:
        store.close()


def test_one_code_from_several_terminals_at_once_is_paid_once(stores: list[HostStore], clock: Clock) -> None:
    for round_ in range(3):
        code = code_of(stores[0], clock)

        def work(i: int, store: HostStore, code: str = code, n: int = round_) -> dict[str, Any]:
            return pay(Acquirer(store, clock=clock), f"r{n}", code, peer=Peer(f"T{i}", MID))

        answers = together(stores, work)
        assert sorted(a["status"] for a in answers) == ["declined"] * (len(stores) - 1) + ["paid"]
        assert {a["reason"] for a in answers if a["status"] == "declined"} == {"code_used"}
    assert balance(stores[0], "alice") == 100000 - 3 * 1250


def test_refunds_from_several_workers_at_once_never_exceed(stores: list[HostStore], clock: Clock) -> None:
    pay(Acquirer(stores[0], clock=clock), "r1", code_of(stores[0], clock), amount=1000)
    answers = together(stores, lambda i, s: refund(Acquirer(s, clock=clock), f"f{i}", "r1", 300))
    assert sum(a["status"] == "approved" for a in answers) == 3
    (paid,) = stores[0].qr_orders()
    assert paid.refunded == 900
    assert balance(stores[0], "alice") == 100000 - 1000 + 900
