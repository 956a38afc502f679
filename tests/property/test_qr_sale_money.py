"""Property: whatever runs of QR sales, refunds, voids and host faults, the terminal's books and the wallets agree.

A real terminal (journal on disk) pays through the simulator's in-process
host (``memory``) and its wallets.  Hypothesis draws a run of steps: a code
shown (paid by the app or not), a wallet code scanned (the wallets paying,
asking for in-app confirmation nobody gives, or declining), a refund of a
paid sale, a void; each with the host's QR messages failing on the way (down:
nothing sent; no answer: processed, the answer lost).  At the end the faults
stop and the terminal asks the host about what it left in doubt.  Then:

- nothing is left in doubt;
- what left the wallets is exactly what the terminal's books say the
  customers paid (QR sales paid, less QR refunds made): nobody is charged
  without a recorded sale, nobody is paid back what was not recorded;
- no sale is refunded beyond its amount (:func:`terminal.lifecycle.customer_paid`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.host.inprocess import MEMORY_HOST_DIR
from simulator.host.wallet_admin import accounts, make_code, pay_payload, set_mode
from terminal.bootstrap import open_terminal
from terminal.lifecycle import APPROVED_STATES, QR_CHECKED_STATES, State, customer_paid
from terminal.offline import PaymentRefused
from terminal.ports import NoCodeError, ScannedCode
from terminal.qr_payment import QrOptions

EUR = 978
OPTIONS = QrOptions(timeout=0.2, confirm_limit=0.2, poll=1, confirm_poll=1)


class OneCode:
    url = "test:one-code"

    def __init__(self, code: str) -> None:
        self.code: str | None = code

    def read(self, timeout: float | None = None, cancel: Any = None) -> ScannedCode:
        code, self.code = self.code, None
        if code is None:
            raise NoCodeError("no more codes")
        return ScannedCode(code)

    def close(self) -> None:
        return None


def _wallets(host_dir: Path) -> int:
    return sum(int(b["balance"]) for a in accounts(host_dir) for b in a["balances"] if b["currency"] == EUR)


FAULT = st.sampled_from(["none", "none", "down", "no_answer"])
STEP = st.one_of(
    st.tuples(st.just("show"), st.integers(1, 5000), st.booleans(), FAULT),
    st.tuples(st.just("code"), st.integers(1, 5000), st.sampled_from(["normal", "confirm", "decline"]), FAULT),
    st.tuples(st.just("refund"), st.integers(1, 5000), st.integers(0, 10), FAULT),
    st.tuples(st.just("void"), st.integers(0, 10), st.just(None), FAULT),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=1, max_size=6))
def test_the_books_and_the_wallets_agree(steps: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory(prefix="qr-money-") as scratch:
        data = Path(scratch) / "terminal"
        terminal = open_terminal(data, host="memory", reader_url="none")
        host: Any = terminal.host
        host_dir = data / MEMORY_HOST_DIR
        make_code(host_dir, "bob")  # (the wallet side makes the host's books on first use)
        before = _wallets(host_dir)
        try:
            for kind, amount, how, fault in steps:
                host.faults.clear()
                host.faults.only = {"qr"}
                if fault == "down":
                    host.faults.down = True
                elif fault == "no_answer":
                    host.faults.no_answer = 1
                paid = [r for r in terminal.transactions() if r.kind == "sale" and r.state is State.QR_PAID]
                try:
                    if kind == "show":

                        def app(_txn: str, payload: str, pays: bool = bool(how)) -> None:
                            if pays:
                                pay_payload(host_dir, payload, "alice")

                        terminal.qr_sale(amount, EUR, show=app, options=OPTIONS)
                    elif kind == "code":
                        set_mode(host_dir, str(how))
                        terminal.scanner = OneCode(make_code(host_dir, "bob")["code"])
                        terminal.qr_sale(amount, EUR, attempts=1, options=OPTIONS)
                    elif kind == "refund" and paid:
                        terminal.refund(amount, EUR, original_txn_id=paid[int(how) % len(paid)].txn_id)
                    elif kind == "void" and paid:
                        terminal.void(paid[int(amount) % len(paid)].txn_id)
                except PaymentRefused:
                    pass  # refused in words before anything was sent (more than was paid, no host, ...)
            host.faults.clear()
            set_mode(host_dir, "normal")
            terminal.qr_check()
            rows = terminal.transactions()
            assert not [r for r in rows if r.state in QR_CHECKED_STATES | {State.QR_PENDING}]
            sales = [r for r in rows if r.kind == "sale"]
            books = 0
            for sale in sales:
                refunds = [(r.amount, r.state) for r in rows if r.original_txn_id == sale.txn_id]
                left = customer_paid(sale.amount, sale.state, refunds)
                assert left >= 0 or sale.state not in APPROVED_STATES
                books += max(left, 0) if sale.state in APPROVED_STATES else 0
            assert before - _wallets(host_dir) == books
        finally:
            terminal.close()
