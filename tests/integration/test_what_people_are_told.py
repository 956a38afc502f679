"""What a cashier and a technician are told (issue 9, section 5), each as a defect was met.

Real terminal on a temporary data directory, simulated cards through the
driver registry, the in-process host; the printer is the simulator's network
printer on loopback, reached through the ``escpos:net`` driver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from terminal import registry
from terminal.facade import NothingToSettle
from terminal.lifecycle import State
from terminal.receipts import render_text
from terminal.response_codes import decline_reason

if TYPE_CHECKING:
    from tests.integration.conftest import Rig

EUR = 978
ONLINE = "visa-qvsdc-online"
OFFLINE = "visa-qvsdc-offline"


def test_a_host_decline_is_told_in_words(rig: Rig) -> None:
    rig.card(ONLINE)
    result = rig.terminal.sale(1051, EUR)
    assert result.state is State.DECLINED
    assert result.message == "declined: insufficient funds (51)"
    assert "declined by the host (51)" not in result.message
    assert decline_reason("05") == "do not honour (05)"


def test_a_card_taken_away_too_early_is_asked_for_again_in_the_same_sale(rig: Rig) -> None:
    """Before: 'not completed: try again' at once.  Now: 'present card again', and the sale goes on."""
    rig.terminal.reader = registry.open_reader(f"sim:card={ONLINE}?remove-after=3")
    result = rig.terminal.sale(2000, EUR)
    assert result.approved, result.message
    prompts = [e.data["prompt"] for e in rig.events_of("card_prompt")]
    assert prompts == ["present card", "present card again"]
    assert all(e.data["amount"] == "20.00 EUR" for e in rig.events_of("card_prompt"))
    assert len(rig.terminal.transactions()) == 1  # one payment, not a failed one and a new one


def test_a_card_that_keeps_leaving_ends_the_sale_without_charging(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.terminal.reader = registry.open_reader("sim:card=visa-mute")
    result = rig.terminal.sale(2000, EUR)
    assert not result.approved and result.state is State.CANCELLED
    assert "nothing was charged" in result.message
    prompts = [e.data["prompt"] for e in rig.events_of("card_prompt")]
    assert prompts[0] == "present card" and set(prompts[1:]) == {"present card again"}
    assert len(prompts) == 1 + rig.terminal.settings.card_retries


def test_a_lost_answer_says_reversal_pending_until_the_reversal_is_delivered(rig: Rig) -> None:
    rig.card(ONLINE)
    rig.host.faults.only = {"authorise", "reverse"}
    rig.host.faults.no_answer = 1  # the authorisation is processed, its answer lost
    rig.host.faults.fail_before_processing = 0
    rig.host.faults.down = False
    result = rig.terminal.sale(2000, EUR)
    # the reversal went through at once: what is true is said
    assert result.state is State.REVERSED and "reversed" in result.message, result.message
    rig.host.faults.clear()
    rig.host.faults.only = {"authorise"}
    rig.host.faults.no_answer = 1
    # the host goes down after the lost answer: the reversal waits
    original_reverse = rig.host.reverse

    def down_for_reversals(reversal):  # type: ignore[no-untyped-def]
        from terminal.host import HostUnreachable

        raise HostUnreachable("down")

    rig.host.reverse = down_for_reversals  # type: ignore[method-assign]
    try:
        result = rig.terminal.sale(2000, EUR)
    finally:
        rig.host.reverse = original_reverse  # type: ignore[method-assign]
    assert result.state is State.REVERSAL_PENDING
    assert "reversal pending" in result.message and "was reversed" not in result.message
    receipt = render_text(rig.terminal.receipt(result.txn_id, issue=False), "customer")
    assert "REVERSAL PENDING" in receipt and "APPROVED" not in receipt


def test_over_the_contactless_limit_says_insert_or_use_another_payment(rig: Rig) -> None:
    rig.card(ONLINE)
    result = rig.terminal.sale(150000, EUR)
    assert not result.approved
    assert "over the contactless limit: insert or use another payment" in result.message


def test_a_cancelled_payment_s_receipt_does_not_say_declined(rig: Rig) -> None:
    rig.terminal.reader = registry.open_reader("sim:card=visa-mute")
    result = rig.terminal.sale(2000, EUR)
    assert result.state is State.CANCELLED
    text = render_text(rig.terminal.receipt(result.txn_id), "customer")
    assert "NOT COMPLETED" in text and "DECLINED" not in text


def test_the_x_report_shows_voids_and_a_second_settle_says_there_is_nothing(rig: Rig) -> None:
    from terminal.reports import render_report

    rig.card(ONLINE)
    kept = rig.terminal.sale(2000, EUR)
    voided = rig.terminal.sale(1500, EUR)
    rig.terminal.void(voided.txn_id)
    batch, lines = rig.terminal.batch_lines()
    info = rig.terminal.batch()
    assert info is not None
    from datetime import datetime

    from terminal.host import TotalsLine

    voids = [TotalsLine(r.scheme, r.currency, r.kind, 1, r.amount) for r in rig.terminal.voids(batch)]
    text = render_report("X", batch, "T1", datetime.fromisoformat(info["opened_at"]), None, lines, voids=voids)
    assert "VOIDED" in text and "15.00 EUR" in text
    assert kept.approved
    rig.terminal.settle()
    with pytest.raises(NothingToSettle, match="nothing to settle"):
        rig.terminal.settle()
    assert len(rig.terminal.closed_batches()) == 1  # no empty batch was closed


def test_the_receipt_prints_by_itself_and_a_reprint_is_a_duplicate(rig: Rig) -> None:
    from simulator.net_printer import VirtualNetworkPrinter

    with VirtualNetworkPrinter(port=0) as printer:
        rig.terminal.printer = registry.open_printer(printer.url)
        rig.card(ONLINE)
        result = rig.terminal.sale(2000, EUR)
        assert result.approved and not result.warnings
        rig.terminal.print_receipt(result.txn_id)  # what `posterm receipt TXN --print` does
        assert printer.wait_idle(10)
        jobs = printer.jobs()
        assert len(jobs) == 2
        assert b"APPROVED" in jobs[0] and b"DUPLICATE" not in jobs[0]
        assert b"DUPLICATE" in jobs[1]
        rig.terminal.printer.close()


def test_a_printer_that_fails_never_undoes_the_payment(rig: Rig) -> None:
    from terminal.ports import DeviceError

    class Jammed:
        def print_job(self, data: bytes) -> None:
            raise DeviceError("paper out")

        def status(self):  # type: ignore[no-untyped-def]
            raise DeviceError("paper out")

        def close(self) -> None:
            pass

    rig.terminal.printer = Jammed()  # type: ignore[assignment]
    rig.card(ONLINE)
    result = rig.terminal.sale(2000, EUR)
    assert result.approved and result.state is State.APPROVED
    assert result.warnings and "receipt not printed (paper out)" in result.warnings[0]
