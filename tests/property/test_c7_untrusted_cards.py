"""UnionPay-style cards are untrusted too: any answer through kernel C-7 ends in a defined outcome.

Two hypothesis searches over the simulator's UnionPay cards (kernel 7):

- one answer of a real card replaced, corrupted, cut or lost, at a position
  hypothesis picks (as tests/property/test_untrusted_cards.py does for all
  cards), in CNY and in EUR;
- the GET PROCESSING OPTIONS answer replaced by a well-formed template 77 of
  the data objects the kernel reads (cryptogram, CID, IAD, ATC, CTQ, the EC
  balance 9F5D, the SDAD, track 2 ...) with values hypothesis chooses, so that
  the kernel's own checks (EC, cryptogram type, fDDA) are reached, not only
  the TLV parser; and a GET DATA 9F79 answer of its choosing.

Whatever happens, the result is a TransactionResult with one of the defined
outcomes, displayable as JSON, and an electronic cash approval stays within
the card's own single-transaction and balance limits (9F78, 9F77).  CI runs at least 10,000
examples of each (``POSTERM_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emv.apdu import CardCommunicationError
from emv.entry_point import process
from emv.outcome import Outcome, TransactionResult
from emv.tlv import encode
from emv.transaction import TransactionData
from simulator import profiles
from simulator.card import SimulatedCard, SimulatedCardError
from terminal.settings import load_default_config

EXAMPLES = int(os.environ.get("POSTERM_FUZZ_EXAMPLES", "10000"))
UNIONPAY = sorted(n for n in profiles.list_names() if n.startswith("unionpay-"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


class Field:
    """A simulated card; answer number ``position`` (or every answer to INS ``ins``) goes through a fault."""

    def __init__(self, card: SimulatedCard, position: int, mode: str, payload: bytes, ins: int | None = None) -> None:
        self.card = card
        self.position = position
        self.mode = mode
        self.payload = payload
        self.ins = ins
        self.count = 0

    def exchange(self, command: bytes) -> bytes:
        index = self.count
        self.count += 1
        hit = command[1] == self.ins if self.ins is not None else index == self.position
        try:
            real = self.card.exchange(command)
        except SimulatedCardError as exc:
            raise CardCommunicationError(str(exc)) from exc
        if not hit:
            return real
        if self.mode == "silent":
            raise CardCommunicationError("card left the field")
        if self.mode == "replace":
            return self.payload
        if self.mode == "replace_ok":
            return self.payload + b"\x90\x00"
        if self.mode == "truncate":
            return real[: self.payload[0] % max(len(real), 1)] if self.payload else b""
        body = bytearray(real[:-2])  # "flip": xor the payload over the answer, keeping the status word
        for i, b in enumerate(self.payload):
            if body:
                body[(i * 7 + b) % len(body)] ^= b or 0x01
        return bytes(body) + real[-2:]


def _check(result: TransactionResult, card: SimulatedCard, amount: int) -> None:
    assert isinstance(result, TransactionResult)
    assert isinstance(result.outcome, Outcome)
    assert len(result.tvr) == 5 and len(result.tsi) == 2
    result.to_json()  # displayable whatever the card sent
    ec = result.electronic_cash
    spec = card.profile.ec
    if result.outcome is Outcome.APPROVED and ec is not None and ec.balance is not None and spec is not None:
        # an EC approval: the card's balance before the sale was within its own balance limit (9F77)
        assert ec.offline_spending_amount is not None
        assert ec.offline_spending_amount + amount <= spec.balance_limit
        assert amount <= spec.single_limit
    assert card.ec_balance is None or card.ec_balance >= 0


@SETTINGS
@given(
    profile=st.sampled_from(UNIONPAY),
    position=st.integers(min_value=0, max_value=10),
    mode=st.sampled_from(["replace", "replace_ok", "truncate", "flip", "silent"]),
    payload=st.binary(max_size=260),
    amount=st.sampled_from([0, 1, 10000, 50000, 50001, 200000, 99_999_999]),
    currency=st.sampled_from([156, 978]),
    un=st.binary(min_size=4, max_size=4),
)
def test_any_answer_of_a_unionpay_card_ends_in_a_defined_outcome(
    profile: str, position: int, mode: str, payload: bytes, amount: int, currency: int, un: bytes
) -> None:
    card = SimulatedCard(profile, seed=1)
    txn = TransactionData(amount=amount, currency=currency, date=bytes.fromhex("261121"), unpredictable_number=un)
    result = process(Field(card, position, mode, payload), load_default_config(), txn)
    _check(result, card, amount)


_N12 = st.integers(min_value=0, max_value=999_999_999_999).map(lambda v: bytes.fromhex(f"{v:012d}"))
_GPO_OBJECTS = st.fixed_dictionaries(
    {},
    optional={
        0x82: st.sampled_from([bytes.fromhex("2000"), bytes.fromhex("0000")]) | st.binary(max_size=3),
        0x94: st.sampled_from([bytes.fromhex("08010101 10010200"), bytes.fromhex("08010100")]) | st.binary(max_size=9),
        0x57: st.sampled_from([bytes.fromhex("6214830001010031D30122200000000000000F")]) | st.binary(max_size=20),
        0x9F26: st.binary(min_size=7, max_size=9),
        0x9F27: st.sampled_from([b"\x00", b"\x40", b"\x80", b"\xc0"]) | st.binary(max_size=2),
        0x9F10: st.sampled_from([bytes.fromhex("0701010390000001"), bytes.fromhex("07010103A0000001")])
        | st.binary(max_size=10),
        0x9F36: st.binary(min_size=1, max_size=3),
        0x9F6C: st.binary(max_size=3),
        0x9F5D: _N12 | st.binary(max_size=7),
        0x9F4B: st.binary(max_size=140),
        0x9F69: st.binary(max_size=8),
        0x5F34: st.binary(max_size=2),
    },
)


@SETTINGS
@given(
    profile=st.sampled_from([n for n in UNIONPAY if profiles.load(n).fault is None]),
    objects=_GPO_OBJECTS,
    get_data=st.one_of(
        st.just(b"\x6a\x88"), _N12.map(lambda v: encode(0x9F79, v) + b"\x90\x00"), st.binary(max_size=12)
    ),
    amount=st.sampled_from([1, 10000, 50000, 60000, 200000]),
    un=st.binary(min_size=4, max_size=4),
)
def test_any_well_formed_gpo_answer_ends_in_a_defined_outcome(
    profile: str, objects: dict[int, bytes], get_data: bytes, amount: int, un: bytes
) -> None:
    """Well-formed TLV of the right tags with any values: the kernel's checks, not the parser, decide."""
    card = SimulatedCard(profile, seed=1)
    gpo_answer = encode(0x77, b"".join(encode(tag, value) for tag, value in objects.items())) + b"\x90\x00"
    gpo = Field(card, 0, "replace", gpo_answer, ins=0xA8)
    field = Field(gpo, 0, "replace", get_data, ins=0xCA)  # type: ignore[arg-type]
    txn = TransactionData(amount=amount, currency=156, date=bytes.fromhex("261121"), unpredictable_number=un)
    result = process(field, load_default_config(), txn)
    _check(result, card, amount)
