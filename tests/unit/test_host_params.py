"""Parameter versions of the simulated host: version 1 from the shipped data, publishing the next ones."""

from __future__ import annotations

import json

import pytest

from simulator.host.params import (
    ParametersError,
    capk_checksum,
    default_document,
    ensure_initial,
    for_terminal,
    publish,
    set_terminal_part,
)
from simulator.host.schema import first_error
from simulator.host.store import HostStore


@pytest.fixture()
def store(host_store: HostStore) -> HostStore:
    """A host store on each engine (SQLite, PostgreSQL: tests/conftest.py)."""
    return host_store


def current(store: HostStore) -> dict[str, object]:
    raw = store.parameters()
    assert raw is not None
    doc: dict[str, object] = json.loads(raw)
    return doc


def test_version_1_comes_from_the_terminal_data(store: HostStore) -> None:
    assert ensure_initial(store) == 1 and ensure_initial(store) == 1
    doc = current(store)
    assert first_error("ParametersResponse", doc) is None
    config, capks = doc["config"], doc["capks"]
    assert isinstance(config, dict) and isinstance(capks, list)
    assert "capk_files" not in config and config["combinations"]
    assert {k["kind"] for k in capks} == {"test", "simulator"}  # never live keys
    assert all(capk_checksum(k) == k["checksum"].upper() for k in capks)


def test_publish_merges_over_the_current_config(store: HostStore) -> None:
    ensure_initial(store)
    assert publish(store, {"merchant_name": "new name", "terminal_floor_limit": 0}) == 2
    doc = current(store)
    assert doc["version"] == 2
    assert doc["config"]["merchant_name"] == "new name"  # type: ignore[index]
    assert doc["capks"] == json.loads(store.parameters(1) or b"")["capks"]


def test_a_full_document_replaces_and_checksums_are_computed(store: HostStore) -> None:
    base = default_document()
    one_key = dict(base["capks"][0])
    del one_key["checksum"]
    version = publish(store, {"config": base["config"], "capks": [one_key]})
    doc = current(store)
    assert version == 2 and len(doc["capks"]) == 1  # type: ignore[arg-type]
    assert doc["capks"][0]["checksum"] == capk_checksum(one_key)  # type: ignore[index]


def test_what_the_terminal_would_refuse_needs_unchecked(store: HostStore) -> None:
    base = default_document()
    bad_key = dict(base["capks"][0], checksum="00" * 20)
    with pytest.raises(ParametersError, match="checksum"):
        publish(store, {"config": base["config"], "capks": [bad_key]})
    with pytest.raises(ParametersError, match="terminal_type"):
        publish(store, {"terminal_type": 19})
    assert publish(store, {"terminal_type": 19}, checked=False) == 2
    with pytest.raises(ParametersError, match="terminal_type"):  # the schema applies even unchecked
        publish(store, {"terminal_type": 99}, checked=False)
    with pytest.raises(ParametersError, match="unexpected"):
        publish(store, {"no_such_key": 1}, checked=False)
    assert store.parameters_version() == 2


# --------------------------------------------------------------------------- per terminal (issue 11)


def served(store: HostStore, merchant_id: str, terminal_id: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(for_terminal(store, merchant_id, terminal_id).document)
    assert first_error("ParametersResponse", doc) is None
    return doc


def test_each_terminal_is_served_its_own_ids_over_the_common_part(store: HostStore) -> None:
    one, two = served(store, "MERCHANT1", "T1"), served(store, "MERCHANT2", "T2")
    assert (one["config"]["terminal_id"], one["config"]["merchant_id"]) == ("T1", "MERCHANT1")  # type: ignore[index]
    assert (two["config"]["terminal_id"], two["config"]["merchant_id"]) == ("T2", "MERCHANT2")  # type: ignore[index]
    common = current(store)
    assert "terminal_id" not in common["config"] and "merchant_id" not in common["config"]  # type: ignore[operator]
    assert one["capks"] == two["capks"] == common["capks"]
    assert served(store, "MERCHANT1", "T1") == one  # nothing moved: the same version, the same document


def test_a_terminals_version_moves_with_the_common_part_or_its_own(store: HostStore) -> None:
    v1, v2 = served(store, "M1", "T1")["version"], served(store, "M2", "T2")["version"]
    assert isinstance(v1, int) and isinstance(v2, int) and v1 > current(store)["version"]  # type: ignore[operator]
    set_terminal_part(store, "M2", "T2", {"merchant_name": "Second Shop", "merchant_address": "2 Side Street"})
    assert served(store, "M1", "T1")["version"] == v1
    second = served(store, "M2", "T2")
    assert second["version"] == v2 + 1 and second["config"]["merchant_name"] == "Second Shop"  # type: ignore[index]
    publish(store, {"terminal_floor_limit": 0})
    one, two = served(store, "M1", "T1"), served(store, "M2", "T2")
    assert one["version"] > v1 and two["version"] > v2 + 1  # type: ignore[operator]
    assert one["config"]["terminal_floor_limit"] == two["config"]["terminal_floor_limit"] == 0  # type: ignore[index]
    assert two["config"]["merchant_name"] == "Second Shop"  # the own part stays over the common one  # type: ignore[index]
    set_terminal_part(store, "M2", "T2", {"merchant_name": None})  # null: back to the common part's
    assert served(store, "M2", "T2")["config"]["merchant_name"] == one["config"]["merchant_name"]  # type: ignore[index]


def test_a_version_is_above_any_the_terminal_id_had_under_another_merchant(store: HostStore) -> None:
    before = served(store, "OLD", "T1")["version"]
    after = served(store, "NEW", "T1")  # the terminal moved to another merchant
    assert after["version"] > before and after["config"]["merchant_id"] == "NEW"  # type: ignore[index, operator]


def test_the_ids_are_no_parts_business_and_parts_are_checked(store: HostStore) -> None:
    with pytest.raises(ParametersError, match="terminal_id: the ids are each terminal's own"):
        publish(store, {"terminal_id": "T9"})
    with pytest.raises(ParametersError, match="merchant_id"):
        set_terminal_part(store, "M1", "T1", {"merchant_id": "M9"})
    with pytest.raises(ParametersError, match="terminal_type"):
        set_terminal_part(store, "M1", "T1", {"terminal_type": 19})
    with pytest.raises(ParametersError, match="CA keys are common"):
        set_terminal_part(store, "M1", "T1", {"capks": []})
    set_terminal_part(store, "M1", "T1", {"terminal_type": 19}, checked=False)  # a tester's choice
    with pytest.raises(ParametersError, match=r"for terminal T1 of merchant M1: .*terminal_type"):
        publish(store, {"terminal_floor_limit": 0})  # the common part is checked with each terminal's own
    assert publish(store, {"terminal_floor_limit": 0}, checked=False) == 2
