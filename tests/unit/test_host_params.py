"""Parameter versions of the simulated host: version 1 from the shipped data, publishing the next ones."""

from __future__ import annotations

import json

import pytest

from simulator.host.params import ParametersError, capk_checksum, default_document, ensure_initial, publish
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
