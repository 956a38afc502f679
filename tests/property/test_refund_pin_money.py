"""Property: refunds that carry the cardholder's PIN never pay back more than the sale, whatever the PINs and faults.

A real terminal (journal on disk) whose ``pin_on_refund`` is ``online`` pays a sale through the simulator's
in-process host (``memory``), then Hypothesis draws a run of refunds against it, each with the card presented
again and a PIN on the simulated PIN pad: the right PIN, a wrong one, cancel or timeout, and the host's
authorisation failing on the way (down: nothing sent; no answer: processed, the answer lost, so the terminal
reverses it). At the end the faults stop and the queued reversals go. Then:

- the host holds refunded against the sale exactly what the terminal's books say was refunded, never more
  than the sale (:func:`terminal.lifecycle.customer_paid` never below nothing);
- every refund the terminal counts approved had its PIN verified by the issuer; none with a wrong PIN,
  cancelled or timed out was approved, and none is stored offline (nothing deferred, nothing queued);
- the sale's customer has paid the sale less those refunds.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from terminal import registry
from terminal.bootstrap import open_terminal
from terminal.devices import LazyPinPad
from terminal.lifecycle import APPROVED_STATES, customer_paid
from terminal.offline import PaymentRefused

EUR = 978
CARD = "visa-qvsdc-online"  # PIN 1234 at the simulated issuer

REFUND = st.tuples(
    st.integers(1, 4000),
    st.sampled_from(["1234", "1234", "0000", "cancel", "timeout"]),
    st.sampled_from(["none", "none", "down", "no_answer"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 40).map(lambda euros: euros * 100), st.lists(REFUND, min_size=1, max_size=6))
def test_refunds_with_a_pin_never_pay_back_more_than_the_sale(sale_amount: int, refunds: list[Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="refund-pin-money-") as scratch:
        state = os.environ.get("POSTERM_SIM_STATE")
        os.environ["POSTERM_SIM_STATE"] = str(Path(scratch) / "sim")  # the simulated pads' DUKPT counters
        terminal = open_terminal(Path(scratch) / "terminal", host="memory", reader_url=f"sim:card={CARD}")
        try:  # (the sale in whole euros: amounts ending in 51, 05, 54 are the hosts' test declines)
            terminal.settings = replace(terminal.settings, pin_on_refund="online")
            host: Any = terminal.host
            sale = terminal.sale(sale_amount, EUR)
            assert sale.approved and sale.pin is None
            for amount, pin, fault in refunds:
                host.faults.clear()
                if fault == "down":
                    host.faults.down = True
                elif fault == "no_answer":
                    host.faults.no_answer = 1
                terminal.pin_pad = LazyPinPad(f"sim:pin={pin}")
                terminal.reader = registry.open_reader(f"sim:card={CARD}")
                try:
                    result = terminal.refund(amount, EUR, original_txn_id=sale.txn_id, present_card=True)
                except PaymentRefused:
                    continue  # refused in words before the card was read (more than is left)
                event(f"refund {result.state.value} pin={result.pin}")
                assert not result.deferred and not result.offline
                if result.approved:
                    assert pin == "1234" and result.pin == "verified" and fault == "none"
            host.faults.clear()
            terminal.forward_now()  # the reversals of the answers lost
            rows = terminal.transactions()
            refunds_made = [(r.amount, r.state) for r in rows if r.original_txn_id == sale.txn_id]
            refunded = sum(amount for amount, state in refunds_made if state in APPROVED_STATES)
            assert customer_paid(sale_amount, sale.state, refunds_made) == sale_amount - refunded >= 0
            approved = [r.txn_id for r in rows if r.original_txn_id == sale.txn_id and r.state in APPROVED_STATES]
            assert all(terminal.result(txn_id).pin == "verified" for txn_id in approved)
            assert host.sale_positions()[sale.txn_id].refunded == refunded
            assert terminal.store.saf_totals() == {}  # nothing stored offline
        finally:
            terminal.close()
            if state is None:
                os.environ.pop("POSTERM_SIM_STATE", None)
            else:
                os.environ["POSTERM_SIM_STATE"] = state
