"""What a cash register or kiosk relies on (the ECR interface builds on it): idempotency keys, references, lookups."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from terminal.lifecycle import State
from terminal.store import StorageError

if TYPE_CHECKING:
    from tests.integration.conftest import Rig

EUR = 978
ONLINE = "visa-qvsdc-online"


def test_the_same_request_key_charges_once(rig: Rig) -> None:
    rig.card(ONLINE)
    first = rig.terminal.sale(2000, EUR, request_key="reg-1/k-1", reference="R-0001")
    again = rig.terminal.sale(2000, EUR, request_key="reg-1/k-1", reference="R-0001")
    assert first.approved and again.approved and again.txn_id == first.txn_id
    assert len(rig.terminal.transactions()) == 1
    assert rig.host.accepted_count(first.txn_id) == 1
    assert rig.terminal.payment_for_request("reg-1/k-1") == again
    assert rig.terminal.payment_for_request("reg-1/k-2") is None
    assert [r.txn_id for r in rig.terminal.payments_for_reference("R-0001")] == [first.txn_id]
    assert rig.terminal.transaction(first.txn_id).details["reference"] == "R-0001"  # type: ignore[union-attr]
    assert rig.terminal.verify_journal().ok


def test_a_repeated_key_after_a_restart_finds_the_payment_as_it_stands(rig: Rig) -> None:
    rig.card(ONLINE)
    first = rig.terminal.sale(2000, EUR, request_key="k-restart")
    rig.terminal.void(first.txn_id)
    terminal = rig.reopen()
    again = terminal.sale(2000, EUR, request_key="k-restart")
    assert again.txn_id == first.txn_id and again.state is State.VOIDED and not again.approved
    assert again.message == "voided"


def test_a_declined_payment_is_the_answer_to_its_key_too(rig: Rig) -> None:
    rig.card(ONLINE)
    declined = rig.terminal.sale(1051, EUR, request_key="k-declined")
    assert not declined.approved
    again = rig.terminal.sale(1051, EUR, request_key="k-declined")
    assert again.txn_id == declined.txn_id and again.message == "declined: insufficient funds (51)"


def test_refunds_take_keys_too(rig: Rig) -> None:
    rig.card(ONLINE)
    sale = rig.terminal.sale(2000, EUR)
    refund = rig.terminal.refund(500, EUR, original_txn_id=sale.txn_id, request_key="k-refund")
    again = rig.terminal.refund(500, EUR, original_txn_id=sale.txn_id, request_key="k-refund")
    assert again.txn_id == refund.txn_id
    assert len([r for r in rig.terminal.transactions() if r.kind == "refund"]) == 1


def test_a_key_is_one_payment_at_the_store(rig: Rig) -> None:
    from terminal.lifecycle import Event
    from terminal.store import NewPayment

    rig.card(ONLINE)
    rig.terminal.sale(2000, EUR, request_key="k-store")
    with pytest.raises(StorageError, match="request key"):
        rig.terminal.store.record(
            "other",
            Event.CARD_DECLINED,
            "2026-01-01T00:00:00+00:00",
            {},
            new=NewPayment("other", "sale", 1, EUR, "visa", "prefer_online", request_key="k-store"),
        )


def test_find_a_sale_by_amount_date_and_by_tapping_the_same_card(rig: Rig) -> None:
    rig.card(ONLINE)
    sale = rig.terminal.sale(2345, EUR)
    rig.card("mc-cda-online")
    rig.terminal.sale(2345, EUR)
    found = rig.terminal.find_payments(kind="sale", amount=2345)
    assert len(found) == 2
    rig.card(ONLINE)
    card = rig.terminal.read_card_token()
    assert card is not None and card[0] == sale.masked_pan
    assert [r.txn_id for r in rig.terminal.find_payments(pan_token=card[1])] == [sale.txn_id]
    assert len(rig.terminal.transactions()) == 2  # reading the card made no payment
    assert rig.terminal.find_payments(since="2999-01-01T00:00:00+00:00") == []
