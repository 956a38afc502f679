"""terminal/: the shipped configuration, money, traces and the device registry."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from emv.capk import CapkError
from terminal import registry
from terminal.emv_session import TapInputs, build_transaction, trace_header
from terminal.money import MoneyError, currency, format_amount, parse_amount
from terminal.ports import DeviceError
from terminal.settings import SettingsError, load_config, load_default_config
from terminal.trace import TraceError, read_trace_header

DATA = Path(__file__).resolve().parents[2] / "terminal" / "data"


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / "terminal.json").read_text())
    return doc


def test_default_config_trusts_test_and_simulator_keys_only() -> None:
    cfg = load_default_config()
    kinds = {key.kind for key in cfg.capks}  # type: ignore[attr-defined]
    assert kinds == {"test", "simulator"}
    on = datetime.date(2026, 1, 1)
    assert cfg.capks.get(bytes.fromhex("A000000003"), 0x50, on).kind == "simulator"
    with pytest.raises(CapkError) as err:
        cfg.capks.get(bytes.fromhex("A000000003"), 0x51, on)
    assert err.value.name == "ca_key_revoked"
    with pytest.raises(CapkError):  # a live key is not trusted by default
        cfg.capks.get(bytes.fromhex("A000000003"), 0x09, on)


def test_shipped_simulator_keys_are_the_simulators_own() -> None:
    shipped = json.loads((DATA / "capks-simulator.json").read_text())
    own = json.loads((DATA.parent.parent / "simulator" / "data" / "capks.json").read_text())
    assert shipped == own


def test_exception_file_holds_no_clear_pan() -> None:
    text = (DATA / "terminal.json").read_text()
    assert "4761739001010119" not in text
    assert load_default_config().exception_file.contains("4761739001010119")


def test_a_capk_with_a_bad_checksum_is_refused(tmp_path: Path) -> None:
    keys = json.loads((DATA / "capks-simulator.json").read_text())
    keys["keys"][0]["modulus"] = "00" + keys["keys"][0]["modulus"][2:]
    (tmp_path / "bad.json").write_text(json.dumps(keys))
    doc = _doc() | {"capk_files": ["bad.json"], "capk_kinds": ["simulator"]}
    with pytest.raises(SettingsError, match="A000000003"):
        load_config(doc, base=tmp_path)


def test_a_wrong_configuration_names_the_field() -> None:
    doc = _doc()
    doc["combinations"][0]["ttq"] = "36"
    with pytest.raises(SettingsError, match=r"combinations\[0\]\.ttq"):
        load_config(doc)
    with pytest.raises(SettingsError, match="not found"):
        load_config(_doc() | {"capk_files": ["missing.json"]}, base=Path("/nonexistent"))


@pytest.mark.parametrize(
    ("text", "code", "minor"),
    [("12.34", "EUR", 1234), ("0.5", "978", 50), ("500", "JPY", 500), ("1.234", "KWD", 1234)],
)
def test_amounts_in_minor_units(text: str, code: str, minor: int) -> None:
    assert parse_amount(text, currency(code)) == minor


@pytest.mark.parametrize("text", ["1.001", "-1", "abc", "NaN", "1e20", ""])
def test_bad_amounts_are_refused(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_amount(text, currency("EUR"))


def test_currency_lookup_and_format() -> None:
    assert currency("eur") == currency(978) == currency("0978")
    assert format_amount(5, currency("USD")) == "0.05 USD"
    with pytest.raises(MoneyError):
        currency("XYZ")


def test_build_transaction_reads_clock_and_randomness_only_when_not_given() -> None:
    fixed = datetime.datetime(2026, 11, 21, 9, 30, 5)
    txn = build_transaction(TapInputs(1234, 978), now=lambda: fixed, random_bytes=lambda n: b"\x07" * n)
    assert txn.date.hex() == "261121" and txn.time.hex() == "093005"
    assert txn.unpredictable_number == b"\x07" * 4
    given = build_transaction(TapInputs(1, 978, unpredictable_number=b"ABCD", date=bytes.fromhex("200101")))
    assert given.unpredictable_number == b"ABCD" and given.date.hex() == "200101"
    assert trace_header(given) == {
        "unpredictable_number": "41424344",
        "date": "200101",
        "amount": 1,
        "currency": "0978",
        "transaction_type": "00",
    }


def test_trace_header_is_validated(tmp_path: Path) -> None:
    good = tmp_path / "t.json"
    good.write_text(json.dumps({"amount": 200, "currency": "0840", "date": "190819", "exchanges": []}))
    assert read_trace_header(str(good)) == {"amount": 200, "currency": 840, "date": bytes.fromhex("190819")}
    for bad in ({"exchanges": [], "date": "1908"}, {"exchanges": [], "amount": -1}, {"no": "exchanges"}):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(TraceError):
            read_trace_header(str(path))


def test_registry_opens_sim_readers_and_names_bad_urls() -> None:
    assert "sim" in registry.schemes()
    assert "sim:card=visa-qvsdc-offline" in registry.discover("sim")
    reader = registry.open_reader("sim:card=visa-qvsdc-offline")
    session = reader.wait_for_card(timeout=1)
    assert session.exchange(bytes.fromhex("00A404000E325041592E5359532E444446303100")).endswith(b"\x90\x00")
    for url in ("nothing", "zz:x", "sim:card=nope", "sim:thing=1"):
        with pytest.raises(DeviceError):
            registry.open_reader(url)


def test_the_documented_state_table_is_the_code() -> None:
    from terminal.lifecycle import TRANSITIONS

    doc = (DATA.parent.parent / "docs" / "terminal-core.md").read_text()
    for (state, event), row in TRANSITIONS.items():
        assert f"| {state.value} | {event.value} | {row.to.value} | {row.money.value} |" in doc
