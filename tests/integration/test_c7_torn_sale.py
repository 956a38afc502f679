"""A UnionPay electronic-cash card taken away after its debit, through the whole terminal (emv.c7_torn).

The terminal facade on a real SQLite journal with the in-process host: the
unionpay-ec-torn card debits its balance at GPO and leaves the field before
answering; the terminal asks for the card again within the same sale, sends the
same GPO, and the card answers it without a second debit.  One sale, one debit,
one approval in the journal and at the host.  The torn record (the number the
terminal would send again) stays in memory: it is nowhere on disk nor in the logs.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from simulator import profiles
from simulator.card import SimulatedCard
from terminal import registry
from terminal.lifecycle import State
from terminal.offline import PaymentRefused
from terminal.settings import load_default_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.integration.conftest import Rig

CNY = 156
BALANCE = 30000  # unionpay-ec-torn's 300.00 CNY


def _card(rig: Rig, url: str) -> SimulatedCard:
    reader = registry.open_reader(url)
    rig.terminal.reader = reader
    card = reader.card  # type: ignore[attr-defined]
    assert isinstance(card, SimulatedCard)
    return card


def _files(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()]


def test_ec_card_torn_after_its_debit_is_charged_once_and_the_books_agree(rig: Rig) -> None:
    """Requirement: one sale, one EC debit, one approval: the journal holds one offline approval of
    100.00 CNY, the card's balance fell by 100.00 once (its ATC counted one GPO), the host accepts one
    advice whose TC it verifies over the first tap's data, and the torn log is empty afterwards."""
    card = _card(rig, "sim:card=unionpay-ec-torn")
    result = rig.terminal.sale(10000, CNY)
    assert result.approved and result.state is State.OFFLINE_APPROVED, result
    assert card.ec_balance == BALANCE - 10000
    assert card.atc == profiles.load("unionpay-ec-torn").atc + 1  # one GPO counted: the re-tap was the same
    assert [(t.state, t.amount) for t in rig.terminal.store.list_transactions()] == [(State.OFFLINE_APPROVED, 10000)]
    assert rig.sql("SELECT COUNT(*) FROM saf")[0][0] == 1
    assert len(rig.terminal._core.ec_torn_log.records()) == 0
    report = rig.terminal.forward_now()
    assert (report.accepted, report.declined, report.rejected) == (1, 0, 0), report
    assert rig.host.accepted_count(result.txn_id) == 1 and rig.host.processed_count(result.txn_id) == 1
    assert rig.terminal.offline_status().queued == 0


def test_a_torn_record_never_reaches_disk_or_the_logs(
    make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """Requirement: the torn record (the PDOL values, with the unpredictable number the terminal would send
    again) is kept in memory only.  The card does not come back within the sale's wait: the sale ends with
    no card, the record is held (with the card's answer), and no file of the data directory nor any log
    line holds its values."""
    rig = make_rig(replace(load_default_settings(), card_timeout_seconds=0.2))
    caplog.set_level(logging.DEBUG)
    _card(rig, "sim:card=unionpay-ec?remove-after=3&reinsert-after=60")  # gone after PPSE, SELECT and GPO
    with pytest.raises(PaymentRefused, match="no card"):
        rig.terminal.sale(10000, CNY)
    [record] = rig.terminal._core.ec_torn_log.records()
    un = record.pdol_values[-5:-1]  # the PDOL ends 9F37 04, 9F7A 01
    rig.terminal.store.close()
    assert record.answer is not None  # the card answered GPO (it debited) before it left
    needles = [record.pdol_values, un, un.hex().encode(), un.hex().upper().encode(), record.answer.cryptogram]
    needles.append(record.answer.cryptogram.hex().upper().encode())
    files = _files(rig.data_dir)
    assert any(path.name == "journal.sqlite" for path, _ in files)
    for path, content in files:
        assert not any(n in content for n in needles), path
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert un.hex() not in logged.lower() and record.pdol_values.hex() not in logged.lower()
    assert record.answer.cryptogram.hex() not in logged.lower()
