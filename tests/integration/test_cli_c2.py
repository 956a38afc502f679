"""Kernel C-2 to the book through ``posterm emv tap|replay`` as a user runs them (real subprocesses).

Book C-2 configuration through ``--set``, the two simulator cards of issue 15
(mc-magstripe-afl, mc-rrp), and traces that replay to the same outcome with a
byte-identical GENERATE AC.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.test_cli import run


def _tap(*args: str, cwd: Path | None = None) -> dict[str, Any]:
    proc = run("emv", "tap", "--currency", "978", "--un", "1A2B3C4D", "--date", "261121", *args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _gac(result: dict[str, Any]) -> str:
    return next(c for c in result["commands"] if c.startswith("80AE"))


def test_S3_30_the_magstripe_record_is_not_read_and_set_DF811B_changes_that() -> None:
    """Book C-2 S3.30ff with the shipped kernel configuration (mag-stripe mode supported): the card's
    first AFL entry 08 01 01 00 is not read; --set DF811B=B0 (mag-stripe mode not supported) reads
    it, and this card refuses that read in EMV mode: End Application."""
    read_ok = _tap("--card", "mc-magstripe-afl", "--amount", "12.34")
    assert read_ok["outcome"] == "approved" and read_ok["oda"]["result"] == "passed"
    assert "00B2010C00" not in read_ok["commands"]
    refused = _tap("--card", "mc-magstripe-afl", "--amount", "12.34", "--set", "DF811B=B0")
    assert refused["outcome"] == "end_application"
    assert refused["error"] == "READ RECORD SFI 1 record 1: status 6985"


def test_relay_resistance_recorded_and_replayed_to_the_same_outcome(tmp_path: Path) -> None:
    """mc-rrp with the shipped terminal (DF811B 30): EXCHANGE RELAY RESISTANCE DATA after GPO, TVR
    byte 5 "RRP performed"; its trace replays to the same outcome and the same GENERATE AC."""
    live = _tap("--card", "mc-rrp", "--amount", "12.34", "--record", "trace.json", cwd=tmp_path)
    assert live["commands"][3] == "80EA0000041A2B3C4D00"
    assert live["tvr"].endswith("02") and live["outcome"] == "approved"
    assert live["outcome_data"]["DF8129"]["decoded"]["status"] == "APPROVED"
    proc = run("emv", "replay", "trace.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    assert (again["outcome"], again["cryptogram"], again["tvr"]) == (live["outcome"], live["cryptogram"], live["tvr"])
    assert _gac(again) == _gac(live)
    assert again["outcome_data"] == live["outcome_data"]


def test_set_DF811B_without_relay_resistance_says_rrp_not_performed() -> None:
    result = _tap("--card", "mc-rrp", "--amount", "12.34", "--set", "DF811B=20")
    assert not any(c.startswith("80EA") for c in result["commands"])
    assert result["tvr"].endswith("01")


def test_a_trace_whose_relay_entropy_is_not_its_unpredictable_number_replays_byte_identical(
    tmp_path: Path,
) -> None:
    """A Book C-2 terminal may draw the relay resistance entropy apart from the GPO's unpredictable
    number (the CDOL1 then carries the entropy): the replay sends the recorded entropy, and its
    GENERATE AC is the recording's byte for byte."""
    from simulator.card import SimulatedCard
    from simulator.transport import as_transport
    from terminal.emv_session import TapInputs, build_transaction, run_tap, trace_header
    from terminal.settings import load_default_config
    from terminal.trace import to_trace

    inputs = TapInputs(
        amount=1234,
        currency=978,
        unpredictable_number=bytes.fromhex("1A2B3C4D"),
        date=bytes.fromhex("261121"),
        relay_entropies=(bytes.fromhex("C0FFEE01"),),
    )
    txn = build_transaction(inputs)
    live = run_tap(as_transport(SimulatedCard("mc-rrp", seed=5)), load_default_config(), txn)
    assert live.result.outcome.value == "approved" and live.result.oda.result == "passed"
    assert live.result.commands[3].hex().upper() == "80EA000004C0FFEE0100"
    (tmp_path / "trace.json").write_text(json.dumps(to_trace(trace_header(txn), live.recorder.exchanges)))
    proc = run("emv", "replay", "trace.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    live_gac = next(c for c in live.result.commands if c[1] == 0xAE).hex().upper()
    assert _gac(again) == live_gac
    assert (again["outcome"], again["oda"]["result"]) == ("approved", "passed")
