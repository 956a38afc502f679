"""Hard wallets are untrusted: any answer to any command ends in a defined outcome, and only a genuine record pays.

A fake wallet makes one genuine session of each flow once (a payment; the
re-tap of a payment torn after the debit; the re-tap of one torn before it),
then Hypothesis replays those answers with one to three of them corrupted
(a bit flipped, cut short, bytes inserted, the status word replaced, random
bytes instead, or the wallet gone).  After each run: no unhandled exception,
the outcome is one of the defined kinds, the intent was written once and
before PAY, and ``approved`` only ever comes with the genuine record, whose
signature verifies with the genuine wallet key.  CI runs at least 10,000 examples.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbdc import kernel, sm2
from cbdc.kernel import Intent, OfflineState, OutcomeKind, WalletOutcome
from cbdc.protocol import Ins
from tests.unit.cbdc.wallet import NOW, WALLET, FakeWallet, WalletGone, request, trust

EXAMPLES = int(os.environ.get("POSTERM_FUZZ_EXAMPLES", "10000"))
FLOWS = ("pay", "resume_debited", "resume_not_debited")
MODES = ("flip", "truncate", "insert", "status_word", "replace", "gone")


@dataclass(frozen=True)
class Session:
    answers: dict[int, bytes]  # INS -> the genuine R-APDU
    intent: Intent | None  # for the re-taps
    record: bytes  # the genuine E4


@functools.cache
def sessions() -> dict[str, Session]:
    """One genuine session per flow (the fake wallet signs with gmssl: slow, so once)."""
    out: dict[str, Session] = {}
    wallet = FakeWallet()
    answers = {}
    for ins, command in [(Ins.SELECT, "00A404000BF0504F535443424443010100"), (Ins.GET_WALLET_INFO, "80CA000000"),
                         (Ins.READ_CERTIFICATE, "80B2010000")]:  # fmt: skip
        answers[ins] = wallet.exchange(bytes.fromhex(command))
    operator = wallet.exchange(bytes.fromhex("80B2020000"))
    first = kernel.pay(wallet, request(), trust(), OfflineState(), NOW, lambda i: None)
    assert first.approved and first.intent is not None
    answers[Ins.PAY] = wallet.records[1] + b"\x90\x00"
    out["pay"] = Session({**answers, 0x1B2: operator}, None, wallet.records[1])
    torn = FakeWallet(leave_after_debit=True)
    outcome = kernel.pay(torn, request(), trust(), OfflineState(), NOW, lambda i: None)
    assert outcome.kind is OutcomeKind.TORN and outcome.intent is not None
    debited = {
        Ins.SELECT: answers[Ins.SELECT],
        Ins.GET_WALLET_INFO: torn.exchange(bytes.fromhex("80CA000000")),
        Ins.GET_RECORD: torn.records[1] + b"\x90\x00",
    }
    out["resume_debited"] = Session(debited, outcome.intent, torn.records[1])
    not_debited = {Ins.SELECT: answers[Ins.SELECT], Ins.GET_WALLET_INFO: answers[Ins.GET_WALLET_INFO],
                   Ins.PAY: answers[Ins.PAY]}  # fmt: skip
    out["resume_not_debited"] = Session(not_debited, first.intent, wallet.records[1])
    return out


class Scripted:
    """Answers each command with the session's genuine answer, corrupted where the faults say."""

    def __init__(self, session: Session, faults: dict[int, tuple[str, int, bytes]]) -> None:
        self.session = session
        self.faults = faults  # position of the exchange -> (mode, offset, payload)
        self.commands: list[bytes] = []

    def exchange(self, command: bytes) -> bytes:
        position = len(self.commands)
        self.commands.append(command)
        ins = command[1]
        key = 0x1B2 if ins == Ins.READ_CERTIFICATE and command[2] == 2 else ins
        answer = self.session.answers.get(key, b"\x6d\x00")
        fault = self.faults.get(position)
        if fault is None:
            return answer
        mode, offset, payload = fault
        at = offset % (len(answer) + 1)
        if mode == "gone":
            raise WalletGone("left")
        if mode == "flip":
            i = offset % len(answer)
            return answer[:i] + bytes([answer[i] ^ (1 << (offset % 8))]) + answer[i + 1 :]
        if mode == "truncate":
            return answer[:at]
        if mode == "insert":
            return answer[:at] + payload + answer[at:]
        if mode == "status_word":
            return answer[:-2] + (payload + b"\x6a\x80")[:2]
        return payload


faults = st.dictionaries(
    st.integers(min_value=0, max_value=6),
    st.tuples(st.sampled_from(MODES), st.integers(min_value=0, max_value=4096), st.binary(max_size=40)),
    min_size=1,
    max_size=3,
)


def _check(out: WalletOutcome, session: Session, transport: Scripted, intents: list[Intent], flow: str) -> None:
    assert isinstance(out.kind, OutcomeKind)
    json.dumps(out.to_json())
    if out.kind is OutcomeKind.APPROVED:
        assert out.record is not None and out.record.raw == session.record
        assert sm2.verify(WALLET.public, out.record.signed_bytes, out.record.signature)
    if out.record is not None:
        assert out.kind in (OutcomeKind.APPROVED, OutcomeKind.REFUSED)
    sent_pay = [i for i, c in enumerate(transport.commands) if c[1] == Ins.PAY]
    if flow == "pay":
        assert len(intents) <= 1 and len(sent_pay) <= 1
        assert bool(sent_pay) == bool(intents)
        if out.kind in (OutcomeKind.NO_WALLET,) or (out.kind is OutcomeKind.REFUSED and out.record is None
                                                    and not intents):  # fmt: skip
            assert not sent_pay
        if out.kind is OutcomeKind.TORN:
            assert intents and out.intent == intents[0]
    else:
        assert not intents
        assert all(c == transport.commands[sent_pay[0]] for c in (transport.commands[i] for i in sent_pay))
    assert [e.command for e in out.exchanges] == transport.commands


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flow=st.sampled_from(FLOWS), faults=faults)
def test_any_wallet_answer_ends_in_a_defined_outcome(flow: str, faults: dict[int, tuple[str, int, bytes]]) -> None:
    session = sessions()[flow]
    transport = Scripted(session, faults)
    intents: list[Intent] = []
    if flow == "pay":
        out = kernel.pay(transport, request(), trust(), OfflineState(), NOW, intents.append,
                         transport_errors=(WalletGone,))  # fmt: skip
    else:
        assert session.intent is not None
        out = kernel.resume(transport, session.intent, trust(), OfflineState(), transport_errors=(WalletGone,))
    _check(out, session, transport, intents, flow)
