"""A recorded contact transaction replays to the same outcome (EMV Book 3 end to end, twice).

The live run records every exchange with :class:`emv.recorder.ApduRecorder`;
the trace is written to a JSON file as ``posterm emv tap --record`` writes
one (:func:`terminal.trace.to_trace`), read back by the replay card
(:func:`simulator.replay.load_trace`) and run again through the contact
kernel with the same inputs: the same commands, outcome, cryptograms, TVR,
TSI, CVM results and script results.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emv.contact import ContactKernel, ContactResult, HostAnswer
from emv.outcome import Outcome
from emv.recorder import ApduRecorder
from simulator.contact.card import ContactCard
from simulator.replay import ReplayCard, load_trace
from simulator.transport import as_transport
from terminal.emv_session import trace_header
from terminal.trace import to_trace
from tests.contact_rig import Pad, config, host_arpc, script, txn


def _same(a: ContactResult, b: ContactResult) -> None:
    assert b.outcome is a.outcome
    assert b.commands == a.commands
    assert (b.cryptogram_type, b.cryptogram) == (a.cryptogram_type, a.cryptogram)
    assert b.oda.to_json() == a.oda.to_json()
    assert (b.tvr, b.tsi, b.cvm_results, b.script_results) == (a.tvr, a.tsi, a.cvm_results, a.script_results)


@pytest.mark.parametrize(
    ("name", "amount", "pins"),
    [
        ("contact-offline-pin", 1234, ("0000", "1234")),
        ("contact-enciphered-pin", 1234, ("1234",)),
        ("contact-offline-pin", 6000, ("1234",)),
        ("contact-scripts", 1234, ()),
        ("contact-bad-cda", 1234, ()),
        ("contact-mute", 1234, ()),
    ],
)
def test_recorded_contact_trace_replays_to_the_same_outcome(
    tmp_path: Path, name: str, amount: int, pins: tuple[str, ...]
) -> None:
    card = ContactCard(name, seed=3)
    recorder = ApduRecorder(as_transport(card))
    data = txn(amount)
    kernel = ContactKernel(recorder, config(), data, cardholder=Pad(*pins), entropy=b"trace")
    live = kernel.start()
    answer = None
    if live.outcome is Outcome.ONLINE_REQUEST:
        scripts = script(card, live, 0x72, [(bytes.fromhex("84DA9F14"), b"\x03")])
        answer = HostAnswer.approved(arpc=host_arpc(card, live), scripts=scripts)
        live = kernel.complete(answer)
    path = tmp_path / "contact.json"
    path.write_text(json.dumps(to_trace(trace_header(data), recorder.exchanges)), encoding="utf-8")
    for pin in pins:  # the trace holds no PIN block (format 2: 2N, the digits, F padding)
        assert f"2{len(pin):X}{pin}".ljust(16, "F") not in path.read_text(encoding="utf-8").upper()

    replay = ContactKernel(
        as_transport(ReplayCard(load_trace(str(path)))), config(), data, cardholder=Pad(*pins), entropy=b"trace"
    )
    again = replay.start()
    if answer is not None:
        assert again.outcome is Outcome.ONLINE_REQUEST
        again = replay.complete(answer)
    _same(live, again)
    assert live.outcome is not Outcome.ONLINE_REQUEST
