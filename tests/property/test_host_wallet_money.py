"""Property: whatever terminals, apps and the operator do to QR orders, in any order, the money adds up.

Random runs of code payments (in every wallet mode), in-app confirmations and
declines, merchant-presented orders paid by an app or closed by the terminal,
cancels and refunds, on one host store. After each run:

- every account holds its opening balance less what its paid orders took,
  plus what was refunded of them (nothing else moved money);
- no order is refunded more than it paid, nor refunded unless paid, and its
  refunds are the refund rows' sum;
- an order that the terminal closed or cancelled was never paid afterwards.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.host.acquirer import Acquirer, IdempotencyConflict, Peer
from simulator.host.store import HostStore
from simulator.host.wallets import AppRefused, NotFound, ReferenceConflict, app_pay, confirm, issue_code

PEER = Peer("T1", "M1")
EUR = 978
ACCOUNTS = ("alice", "bob", "dora", "empty")
REFS = ["r0", "r1"]  # few references: operations meet on the same orders
NOW = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.UTC)

amounts = st.integers(min_value=1, max_value=5000)  # several payments fit a balance; refunds often fit a payment
ops = st.one_of(
    st.tuples(st.just("code"), st.sampled_from(REFS), amounts, st.sampled_from(ACCOUNTS)),
    st.tuples(st.just("order"), st.sampled_from(REFS), amounts),
    st.tuples(st.just("app_pay"), st.sampled_from(REFS), st.sampled_from(ACCOUNTS)),
    st.tuples(st.just("confirm"), st.sampled_from(REFS), st.booleans()),
    st.tuples(st.just("cancel"), st.sampled_from(REFS)),
    st.tuples(st.just("close"), st.sampled_from(REFS)),
    st.tuples(st.just("refund"), st.sampled_from(REFS), amounts),
    st.tuples(st.just("mode"), st.sampled_from(["normal", "confirm", "decline"])),
    st.tuples(st.just("settle")),
)


def _balances(store: HostStore) -> dict[str, int]:
    return {a.account: a.balances.get(EUR, 0) for a in store.wallet_accounts()}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=8, max_size=30))
def test_any_run_of_qr_operations_keeps_the_money_right(run: list[tuple[Any, ...]]) -> None:
    store = HostStore(Path(":memory:"))
    try:
        acquirer = Acquirer(store, clock=lambda: NOW)
        opening = _balances(store)
        given_up: set[str] = set()  # orders the terminal closed or cancelled (by order id)
        keys = iter(range(10**6))

        def send(what: str, body: dict[str, Any]) -> dict[str, Any] | None:
            full = {"terminal_id": PEER.terminal_id, "merchant_id": PEER.merchant_id, **body}
            try:
                answer: dict[str, Any] = acquirer.handle(what, full, PEER, f"k{next(keys)}").json()
            except (ReferenceConflict, NotFound, IdempotencyConflict):
                return None
            return answer

        def order_of(ref: str) -> Any:
            return store.qr_order_by_reference(PEER.merchant_id, PEER.terminal_id, ref)

        for op in run:
            kind, args = op[0], op[1:]
            known = order_of(args[0]) if args and args[0] in REFS else None
            if kind == "code":
                ref, amount, account = args
                code = issue_code(store, account, NOW)[0]
                send("qr-payment", {"reference": ref, "amount": amount, "currency": EUR, "code": code})
            elif kind == "order":
                send("qr-order", {"reference": args[0], "amount": args[1], "currency": EUR})
            elif kind == "app_pay" and known is not None:
                with contextlib.suppress(AppRefused):  # refused: nothing charged (checked below)
                    app_pay(store, known.order_id, args[1], NOW)
            elif kind == "confirm" and known is not None:
                with contextlib.suppress(AppRefused):
                    confirm(store, known.order_id, NOW, accept=args[1])
            elif kind == "cancel" and known is not None:
                answer = send("qr-cancel", {"reference": args[0], "amount": known.amount, "currency": EUR})
                if answer is not None and answer["status"] == "cancelled":
                    given_up.add(known.order_id)
            elif kind == "close" and known is not None:
                answer = send("qr-close", {"order_id": known.order_id})
                if answer is not None and answer["status"] == "closed":
                    given_up.add(known.order_id)
            elif kind == "refund":
                send("qr-refund", {"refund_reference": f"f{next(keys)}", "original_reference": args[0],
                                   "amount": args[1], "currency": EUR})  # fmt: skip
            elif kind == "mode":
                store.set_wallet_mode(args[0])
            elif kind == "settle":
                batch = store.batch_number(PEER.merchant_id, PEER.terminal_id)
                send("batch-close", {"batch_id": batch, "terminal_id": PEER.terminal_id, "lines": []})

        expected = dict(opening)
        refund_rows = store._all("SELECT order_id, SUM(amount) FROM qr_refunds GROUP BY order_id")
        refunds = {str(o): int(a) for o, a in refund_rows}
        for order in store.qr_orders():
            assert 0 <= order.refunded <= order.amount
            assert order.refunded == refunds.get(order.order_id, 0)
            if order.refunded:
                assert order.state == "paid"
            if order.state == "paid":
                assert order.account is not None
                expected[order.account] -= order.amount - order.refunded
                assert order.order_id not in given_up, "paid after the terminal gave it up"
        assert _balances(store) == expected
    finally:
        store.close()
