"""The terminal's digital-currency offline state, on a real SQLite store with a real keystore."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from terminal.cbdc_state import last_counter, note_counter_seen, offline_state, wallet_hex
from terminal.keystore import FileKeystore
from terminal.lifecycle import Event
from terminal.store import NewPayment, StorageCorrupt, Store

CNY, EUR = 156, 978
WALLET = bytes.fromhex("D1A0000000000001")
OTHER = bytes.fromhex("D1A0000000000002")
T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def _open(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "journal.sqlite", FileKeystore.open(tmp_path / "keys"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = _open(tmp_path)
    yield opened
    opened.close()


def _offline_sale(store: Store, txn_id: str, amount: int, currency: int, scheme: str, at: datetime) -> None:
    store.record(
        txn_id,
        Event.OFFLINE_APPROVED,
        at.isoformat(timespec="microseconds"),
        {},
        new=NewPayment(txn_id, "sale", amount, currency, scheme, "prefer_online"),
    )


def test_a_new_terminal_has_seen_no_wallet_and_has_nothing_unsent(store: Store) -> None:
    state = offline_state(store, CNY, T0)
    assert (state.count_since_sync, state.total_since_sync, state.oldest_unsent_age_s) == (0, 0, None)
    assert state.last_counters.get(WALLET) is None and len(state.last_counters) == 0
    assert last_counter(store, WALLET) is None


def test_a_counter_seen_only_goes_up_and_outlives_the_process(tmp_path: Path, store: Store) -> None:
    assert note_counter_seen(store, WALLET, 5, T0) == 5
    assert note_counter_seen(store, WALLET, 3, T0) == 5  # a lower one changes nothing
    assert note_counter_seen(store, WALLET.hex(), 5, T0) == 5
    assert note_counter_seen(store, OTHER, 1, T0) == 1
    assert note_counter_seen(store, WALLET, 6, T0 + timedelta(seconds=1)) == 6
    store.close()
    again = _open(tmp_path)
    try:
        state = offline_state(again, CNY, T0)
        assert state.last_counters[WALLET] == 6 and state.last_counters.get(OTHER) == 1
        assert dict(state.last_counters) == {WALLET: 6, OTHER: 1}
        assert last_counter(again, "d1a0000000000001") == 6
        assert again.verify().ok
    finally:
        again.close()


def test_a_counter_lowered_outside_posterm_fails_closed(tmp_path: Path, store: Store) -> None:
    note_counter_seen(store, WALLET, 9, T0)
    with sqlite3.connect(tmp_path / "journal.sqlite") as conn:
        conn.execute("UPDATE cbdc_counters SET counter=1")
    with pytest.raises(StorageCorrupt, match="last counter of wallet D1A0000000000001"):
        offline_state(store, CNY, T0).last_counters.get(WALLET)
    with pytest.raises(StorageCorrupt):
        note_counter_seen(store, WALLET, 10, T0)
    problems = store.verify().problems
    assert any("counter of wallet D1A0000000000001" in p for p in problems)


def test_counts_totals_and_age_come_from_the_unsent_digital_currency_entries(store: Store) -> None:
    _offline_sale(store, "c1", 1500, CNY, "cbdc", T0)
    _offline_sale(store, "v1", 9999, CNY, "visa", T0 - timedelta(hours=5))  # a card: not digital currency
    _offline_sale(store, "c2", 2500, CNY, "cbdc", T0 + timedelta(minutes=10))
    _offline_sale(store, "c3", 700, EUR, "cbdc", T0 + timedelta(minutes=20))
    state = offline_state(store, CNY, T0 + timedelta(hours=1))
    assert (state.count_since_sync, state.total_since_sync) == (2, 4000)
    assert state.oldest_unsent_age_s == 3600.0
    assert offline_state(store, EUR, T0 + timedelta(hours=1)).total_since_sync == 700
    # the host acknowledges the oldest: it no longer counts, and the age is the next one's
    store.record("c1", Event.FORWARD_ACCEPTED, (T0 + timedelta(minutes=30)).isoformat(), {"response_code": "00"})
    state = offline_state(store, CNY, T0 + timedelta(hours=1))
    assert (state.count_since_sync, state.total_since_sync) == (1, 2500)
    assert state.oldest_unsent_age_s == 3000.0


def test_refused_records_and_torn_notices_count_for_the_age_but_not_the_limits(tmp_path: Path, store: Store) -> None:
    _offline_sale(store, "r1", 800, CNY, "cbdc", T0)
    _offline_sale(store, "c1", 1000, CNY, "cbdc", T0 + timedelta(minutes=1))
    with sqlite3.connect(tmp_path / "journal.sqlite") as conn:  # the payment code's evidence kinds
        conn.execute("UPDATE transactions SET saf_kind='cbdc_refused' WHERE txn_id='r1'")
    state = offline_state(store, CNY, T0 + timedelta(minutes=2))
    assert (state.count_since_sync, state.total_since_sync, state.oldest_unsent_age_s) == (1, 1000, 120.0)


def test_a_store_of_schema_5_gains_the_counters_table(tmp_path: Path) -> None:
    store = _open(tmp_path)
    store.close()
    with sqlite3.connect(tmp_path / "journal.sqlite") as conn:
        conn.execute("DROP TABLE cbdc_counters")
        conn.execute("UPDATE meta SET value='5' WHERE key='schema_version'")
    store = _open(tmp_path)
    try:
        assert note_counter_seen(store, WALLET, 2, T0) == 2
        with sqlite3.connect(tmp_path / "journal.sqlite") as conn:
            assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("6",)
    finally:
        store.close()


@pytest.mark.parametrize("bad", [b"\x01" * 7, "D1A000000000000", "D1A000000000000G", 12])
def test_a_malformed_wallet_id_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="wallet id"):
        wallet_hex(bad)  # type: ignore[arg-type]


def test_a_counter_out_of_range_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="counter"):
        note_counter_seen(store, WALLET, 2**32, T0)


def test_a_counter_noted_in_a_payment_commit_that_fails_is_not_kept(store: Store) -> None:
    note_counter_seen(store, WALLET, 3, T0)
    with pytest.raises(RuntimeError), store.atomic():
        _offline_sale(store, "c1", 1500, CNY, "cbdc", T0)
        note_counter_seen(store, WALLET, 4, T0)
        raise RuntimeError("the terminal fails before the commit")
    assert last_counter(store, WALLET) == 3 and store.get("c1") is None
    with store.atomic():
        _offline_sale(store, "c1", 1500, CNY, "cbdc", T0)
        note_counter_seen(store, WALLET, 4, T0)
    assert last_counter(store, WALLET) == 4 and store.get("c1") is not None
