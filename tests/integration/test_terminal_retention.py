"""Retention: settled records older than ``retention_years`` are purged; the journal still verifies."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from terminal.facade import TerminalSettings
from terminal.lifecycle import State
from terminal.settings import SettingsError, load_default_settings, load_settings

if TYPE_CHECKING:
    from tests.integration.conftest import FixedClock, Rig

EUR = 978
ONLINE = "visa-qvsdc-online"
OFFLINE = "visa-qvsdc-offline"


def _sale(rig: Rig, amount: int, profile: str = ONLINE) -> str:
    rig.card(profile)
    result = rig.terminal.sale(amount, EUR)
    assert result.approved, result
    return result.txn_id


def _old_then_new(make_rig: Callable[..., Rig], clock: FixedClock) -> tuple[Rig, list[str], list[str]]:
    """Two settled batches five years and a month ago, then a sale today."""
    today = clock.moment
    clock.moment = today - timedelta(days=5 * 365 + 31)
    rig = make_rig()
    old = [_sale(rig, 1000), _sale(rig, 1100, OFFLINE)]
    assert rig.terminal.forward_now().accepted == 1
    rig.terminal.settle()
    clock.advance(24 * 3600)
    old.append(_sale(rig, 1200))
    rig.terminal.settle()
    clock.moment = today
    new = [_sale(rig, 1300)]
    return rig, old, new


def test_settlement_purges_what_retention_no_longer_requires(make_rig: Callable[..., Rig], clock: FixedClock) -> None:
    rig, old, new = _old_then_new(make_rig, clock)
    rows_before = rig.sql("SELECT COUNT(*) FROM journal")[0][0]
    rig.terminal.settle()  # the settlement of today's batch purges the old ones
    for txn_id in old:
        assert rig.terminal.get(txn_id) is None
        assert rig.terminal.store.journal_rows(txn_id=txn_id) == []
    kept = rig.terminal.get(new[0])
    assert kept is not None and kept.state is State.APPROVED
    report = rig.terminal.store.verify()
    assert report.ok, report.problems
    rows_after = rig.sql("SELECT COUNT(*) FROM journal")[0][0]
    assert rows_after < rows_before
    (purge_row,) = [r for r in rig.terminal.store.journal_rows() if r["event"] == "journal_purged"]
    assert purge_row["data"]["transactions"] == 3
    # the old batches are gone, today's closed one stays
    yesterday = (clock.moment - timedelta(days=1)).isoformat()
    assert rig.sql("SELECT COUNT(*) FROM batches WHERE closed_at < ?", (yesterday,)) == [(0,)]
    # a second purge finds nothing more, and the chain still verifies after further payments
    assert rig.terminal.purge_expired_records().transactions == 0
    _sale(rig, 1400)
    assert rig.terminal.store.verify().ok
    assert rig.reopen().store.verify().ok


def test_nothing_pending_is_purged_and_the_journal_stays_gapless(
    make_rig: Callable[..., Rig], clock: FixedClock
) -> None:
    today = clock.moment
    clock.moment = today - timedelta(days=6 * 365)
    rig = make_rig()
    settled = _sale(rig, 1000)
    rig.terminal.settle()
    clock.advance(3600)
    queued = _sale(rig, 1100, OFFLINE)  # never forwarded: still owed to the host
    after = _sale(rig, 1200)  # settled? no: its batch is open because of the queue
    clock.moment = today
    report = rig.terminal.purge_expired_records()
    assert report.transactions == 1 and rig.terminal.get(settled) is None
    # the queued payment stays, and with it everything journalled after it
    assert rig.terminal.get(queued) is not None and rig.terminal.get(after) is not None
    assert rig.terminal.store.verify().ok


def test_verify_still_catches_tampering_after_a_purge(make_rig: Callable[..., Rig], clock: FixedClock) -> None:
    rig, _, _ = _old_then_new(make_rig, clock)
    rig.terminal.settle()
    rig.close()
    conn = sqlite3.connect(str(rig.db_path))
    try:
        conn.execute("DROP TRIGGER journal_no_delete")
        first = conn.execute("SELECT MIN(seq) FROM journal").fetchone()[0]
        conn.execute("DELETE FROM journal WHERE seq=?", (first,))  # cut the first row after the anchor
        conn.commit()
    finally:
        conn.close()
    problems = rig.reopen().store.verify().problems
    assert any("missing" in p for p in problems), problems


def test_a_forged_anchor_is_caught(make_rig: Callable[..., Rig], clock: FixedClock) -> None:
    rig, _, _ = _old_then_new(make_rig, clock)
    rig.terminal.settle()
    rig.close()
    conn = sqlite3.connect(str(rig.db_path))
    try:
        # move the anchor forward as if more rows had been purged, without the key to seal it
        conn.execute("DROP TRIGGER journal_no_delete")
        seq, digest = conn.execute("SELECT seq, hash FROM journal ORDER BY seq LIMIT 1").fetchone()
        conn.execute("DELETE FROM journal WHERE seq=?", (seq,))
        conn.execute(
            "UPDATE meta SET value=json_object('seq', ?, 'hash', ?, 'seal', '00') WHERE key='journal_anchor'",
            (seq, bytes(digest).hex()),
        )
        conn.commit()
    finally:
        conn.close()
    problems = rig.reopen().store.verify().problems
    assert any("anchor" in p for p in problems), problems


def test_retention_is_at_least_five_years() -> None:
    with pytest.raises(ValueError, match="at least 5 years"):
        replace(load_default_settings(), retention_years=3)
    with pytest.raises(SettingsError, match="at least 5 years"):
        load_settings({"retention_years": 2})
    assert load_settings({"retention_years": 10}).retention_years == 10
    assert isinstance(load_default_settings(), TerminalSettings) and load_default_settings().retention_years == 5


def test_purge_report_counts(make_rig: Callable[..., Rig], clock: FixedClock) -> None:
    rig, old, _ = _old_then_new(make_rig, clock)
    report = rig.terminal.purge_expired_records()
    assert report.transactions == len(old) and report.batches == 2 and report.journal_rows > 0
    assert rig.terminal.store.verify().ok


def test_cli_purge(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    from terminal.cli import main

    _sale(rig, 1000)
    rig.close()
    assert main(["journal", "purge", "--data-dir", str(rig.data_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"journal_rows": 0, "transactions": 0, "batches": 0, "retention_years": 5}
