"""Cards are untrusted: any bytes as any response end in a defined outcome.

Hypothesis drives a real simulated card and replaces one of its responses (or
corrupts it, or truncates it, or makes the card fall silent) at a position it
chooses.  Whatever happens, Entry Point and the kernels must return a
:class:`~emv.outcome.TransactionResult` with one of the defined outcomes; an
unhandled exception fails the test.  CI runs at least 10,000 examples.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emv.apdu import CardCommunicationError
from emv.config import TerminalConfig
from emv.entry_point import process
from emv.outcome import Outcome, TransactionResult
from emv.transaction import TransactionData
from simulator import profiles
from simulator.card import SimulatedCard
from terminal.settings import load_default_config

EXAMPLES = int(os.environ.get("POSTERM_FUZZ_EXAMPLES", "10000"))
PROFILES = sorted(profiles.list_names())


class FaultyField:
    """A simulated card whose ``position``-th response is replaced by a fault."""

    def __init__(self, card: SimulatedCard, position: int, mode: str, payload: bytes) -> None:
        self.card = card
        self.position = position
        self.mode = mode
        self.payload = payload
        self.count = 0

    def exchange(self, command: bytes) -> bytes:
        index = self.count
        self.count += 1
        if index != self.position:
            try:
                return self.card.exchange(command)
            except Exception as exc:  # the simulator's own mute error
                raise CardCommunicationError(str(exc)) from exc
        if self.mode == "silent":
            raise CardCommunicationError("card left the field")
        real = self.card.exchange(command)
        if self.mode == "replace":
            return self.payload
        if self.mode == "replace_ok":
            return self.payload + b"\x90\x00"
        if self.mode == "truncate":
            cut = self.payload[0] % max(len(real), 1) if self.payload else 0
            return real[:cut]
        # "flip": xor the payload over the real response, keeping the status word
        body = bytearray(real[:-2])
        for i, b in enumerate(self.payload):
            if body:
                body[(i * 7 + b) % len(body)] ^= b or 0x01
        return bytes(body) + real[-2:]


def _terminal_config() -> TerminalConfig:
    return load_default_config()  # cached after the first call


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(
    profile=st.sampled_from(PROFILES),
    position=st.integers(min_value=0, max_value=12),
    mode=st.sampled_from(["replace", "replace_ok", "truncate", "flip", "silent"]),
    payload=st.binary(max_size=260),
    amount=st.sampled_from([0, 1, 1234, 6000, 99_999_999]),
    un=st.binary(min_size=4, max_size=4),
)
def test_any_card_response_ends_in_a_defined_outcome(
    profile: str, position: int, mode: str, payload: bytes, amount: int, un: bytes
) -> None:
    card = FaultyField(SimulatedCard(profile, seed=1), position, mode, payload)
    txn = TransactionData(amount=amount, currency=978, date=bytes.fromhex("261121"), unpredictable_number=un)
    result = process(card, _terminal_config(), txn)
    assert isinstance(result, TransactionResult)
    assert isinstance(result.outcome, Outcome)
    assert len(result.tvr) == 5 and len(result.tsi) == 2
    result.to_json()  # displayable whatever the card sent


@settings(max_examples=max(EXAMPLES // 10, 100), deadline=None, database=None)
@given(responses=st.lists(st.binary(max_size=300), min_size=1, max_size=12))
def test_a_card_of_pure_noise_ends_in_a_defined_outcome(responses: list[bytes]) -> None:
    """No real card at all: every answer is chosen by hypothesis."""

    class Noise:
        def __init__(self) -> None:
            self.i = 0

        def exchange(self, command: bytes) -> bytes:
            self.i += 1
            return responses[(self.i - 1) % len(responses)]

    txn = TransactionData(
        amount=1234, currency=978, date=bytes.fromhex("261121"), unpredictable_number=b"\x01\x02\x03\x04"
    )
    result = process(Noise(), _terminal_config(), txn)
    assert isinstance(result.outcome, Outcome)
