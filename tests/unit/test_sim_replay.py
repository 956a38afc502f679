"""Replay cards: matching rules and trace loading errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.replay import ReplayCard, TraceError, load_trace

SELECT_PPSE = "00A404000E325041592E5359532E444446303100"
SELECT_VISA = "00A4040007A000000003101000"
SELECT_MC = "00A4040007A000000004101000"


def trace(*pairs: tuple[str, str]) -> dict[str, object]:
    return {
        "unpredictable_number": "DEADBEEF", "date": "251121", "amount": 1234, "currency": "0978",
        "transaction_type": "00",
        "exchanges": [{"command": c, "response": r} for c, r in pairs],
    }


def test_first_unused_match_by_header() -> None:
    card = ReplayCard(
        trace(("00B2010C00", "7001AA9000"), ("00B2010C00", "7001BB9000"), ("00B2020C00", "6A83"))
    )
    assert card.exchange(bytes.fromhex("00B2020C00")) == bytes.fromhex("6A83")
    assert card.exchange(bytes.fromhex("00B2010C00")) == bytes.fromhex("7001AA9000")
    assert card.exchange(bytes.fromhex("00B2010C00")) == bytes.fromhex("7001BB9000")
    assert card.exchange(bytes.fromhex("00B2010C00")) == bytes.fromhex("6A82")  # all used
    assert card.unused == []


def test_data_only_matters_for_select() -> None:
    card = ReplayCard(trace((SELECT_PPSE, "6F009000"), (SELECT_VISA, "6F019000"),
                            ("80A8000004830212340000", "77009000")))
    assert card.exchange(bytes.fromhex(SELECT_MC)) == bytes.fromhex("6A82")
    assert card.exchange(bytes.fromhex(SELECT_VISA)) == bytes.fromhex("6F019000")
    assert card.exchange(bytes.fromhex(SELECT_PPSE)) == bytes.fromhex("6F009000")
    # GPO with other PDOL values still matches on CLA INS P1 P2
    assert card.exchange(bytes.fromhex("80A8000004830299990000")) == bytes.fromhex("77009000")
    assert card.exchange(bytes.fromhex("80A8000100")) == bytes.fromhex("6A82")  # other P2
    assert card.exchange(b"\x00") == bytes.fromhex("6700")


def test_load_trace_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(trace((SELECT_PPSE, "9000"))))
    loaded = load_trace(path)
    assert loaded["unpredictable_number"] == "DEADBEEF"
    assert ReplayCard(loaded).exchange(bytes.fromhex(SELECT_PPSE)) == bytes.fromhex("9000")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("{not json", "is not JSON"),
        ("[]", "JSON object"),
        ('{"exchanges": 3}', "exchanges"),
        ('{"exchanges": [{"command": "00A4"}]}', "command"),
        ('{"exchanges": [{"command": "ZZ", "response": "9000"}]}', "not valid hex"),
        ('{"exchanges": [{"command": "00A40400", "response": "9G00"}]}', "response: not valid hex"),
        ('{"exchanges": [{"command": "00A4", "response": "9000"}]}', "4-byte header"),
        ('{"exchanges": [{"command": "00A40400", "response": "90"}]}', "status word"),
        ('{"exchanges": [{"command": 5, "response": "9000"}]}', "hex string"),
    ],
)
def test_load_trace_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "trace.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TraceError, match=message) as info:
        load_trace(path)
    assert "trace.json" in str(info.value)
