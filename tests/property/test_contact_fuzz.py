"""Cards are untrusted on the contact interface too: any bytes end in a defined outcome.

Hypothesis drives a real simulated contact card through the contact kernel,
from selection to the second GENERATE AC, and spoils one of its responses at
a position it chooses: replaced, replaced with 9000, truncated, bits flipped
(a valid response mutated), or the card falls silent.  The cardholder's PIN
entries and the host's answer (response code, ARPC right or wrong, issuer
scripts of random bytes) are drawn too, and whether the PIN pad enciphers an
offline PIN itself (a separate pad: the card's key and challenge, whatever the
spoiled card made of them, go to the pad).  Whatever happens, the kernel returns
a result with a defined outcome; an unhandled exception fails the test.
POSTERM_FUZZ_EXAMPLES sets the number of examples (default 10,000).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from emv.apdu import CardCommunicationError
from emv.contact import ContactKernel, ContactResult, HostAnswer, PinEntry, PinKind, PinStatus
from emv.contact.ports import EncipheredPinEntry
from emv.oda import PublicKey
from emv.outcome import Outcome
from simulator.contact.card import ContactCard
from simulator.contact.profiles import list_names
from simulator.pinpad import encipher_offline
from terminal.ports import DeviceError
from tests.contact_rig import config, host_91, txn

EXAMPLES = int(os.environ.get("POSTERM_FUZZ_EXAMPLES", "10000"))
FINAL = {Outcome.APPROVED, Outcome.DECLINED, Outcome.END_APPLICATION}


class Spoiled:
    """A contact card whose ``position``-th response is spoiled by ``mode``."""

    def __init__(self, card: ContactCard, position: int, mode: str, payload: bytes) -> None:
        self.card, self.position, self.mode, self.payload = card, position, mode, payload
        self.count = 0

    def exchange(self, command: bytes) -> bytes:
        index = self.count
        self.count += 1
        try:
            real = self.card.exchange(command)
        except Exception as exc:  # the simulator's own mute error
            raise CardCommunicationError(str(exc)) from exc
        if index != self.position:
            return real
        if self.mode == "silent":
            raise CardCommunicationError("card removed")
        if self.mode == "replace":
            return self.payload
        if self.mode == "replace_ok":
            return self.payload + b"\x90\x00"
        if self.mode == "truncate":
            return real[: self.payload[0] % max(len(real), 1)] if self.payload else b""
        body = bytearray(real[:-2])
        for i, b in enumerate(self.payload):
            if body:
                body[(i * 7 + b) % len(body)] ^= b or 0x01
        return bytes(body) + real[-2:]


class Cardholder:
    def __init__(self, entries: list[str | PinStatus], pick: int) -> None:
        self.entries, self.pick = entries, pick

    def choose(self, candidates):  # type: ignore[no-untyped-def]
        return candidates[self.pick % len(candidates)]

    def confirm(self, candidate) -> bool:  # type: ignore[no-untyped-def]
        return self.pick % 2 == 0

    def enter_pin(self, kind: PinKind, tries_left: int | None, last_try: bool) -> PinEntry:
        entry = self.entries.pop(0) if self.entries else PinStatus.TIMEOUT
        return PinEntry.of(entry) if isinstance(entry, PinStatus) else PinEntry.digits(entry)


class SealingCardholder(Cardholder):
    """A separate PIN pad: enciphers the PIN itself; a key it cannot use ends the entry (as the terminal does)."""

    def encipher_pin(
        self, key: PublicKey, challenge: bytes, tries_left: int | None, last_try: bool
    ) -> EncipheredPinEntry:
        entry = self.entries.pop(0) if self.entries else PinStatus.TIMEOUT
        if isinstance(entry, PinStatus):
            return EncipheredPinEntry(entry)
        try:
            return EncipheredPinEntry(PinStatus.ENTERED, encipher_offline(bytearray(entry.encode()), key, challenge))
        except DeviceError:
            return EncipheredPinEntry(PinStatus.CANCEL)


pins = st.one_of(st.sampled_from(["1234", "0000", "123456789012"]), st.sampled_from(list(PinStatus)[1:]))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(
    profile=st.sampled_from(list_names()),
    position=st.integers(min_value=0, max_value=24),
    mode=st.sampled_from(["replace", "replace_ok", "truncate", "flip", "silent"]),
    payload=st.binary(max_size=260),
    amount=st.sampled_from([0, 1234, 6000, 99_999_999]),
    entries=st.lists(pins, max_size=4),
    pick=st.integers(min_value=0, max_value=3),
    online=st.booleans(),
    code=st.sampled_from(["00", "05", "55", "Y3"]),
    arpc=st.sampled_from(["right", "wrong", "none", "short"]),
    scripts=st.one_of(st.just(b""), st.binary(max_size=80)),
    pin_pad=st.booleans(),
    sealing=st.booleans(),
)
def test_any_contact_card_response_ends_in_a_defined_outcome(
    profile: str,
    position: int,
    mode: str,
    payload: bytes,
    amount: int,
    entries: list[str | PinStatus],
    pick: int,
    online: bool,
    code: str,
    arpc: str,
    scripts: bytes,
    pin_pad: bool,
    sealing: bool,
) -> None:
    card = ContactCard(profile, seed=1)
    kernel = ContactKernel(
        Spoiled(card, position, mode, payload),
        config(pin_pad=pin_pad),
        txn(amount),
        cardholder=(SealingCardholder if sealing else Cardholder)(entries, pick),
    )
    result = kernel.start()
    event(f"start: {result.outcome.value}")
    if result.outcome is Outcome.ONLINE_REQUEST:
        if not online:
            answer = HostAnswer.unable_to_go_online()
        else:
            value = {"right": None, "wrong": bytes(8), "none": b"", "short": b"\x01\x02"}[arpc]
            whole = None
            if value is None:
                try:
                    whole = host_91(card, result, code)  # 91 whole, ARPC method 1 or 2 as the card's keys say
                except Exception:  # the spoiled response left no usable ARQC: send garbage
                    value = bytes(8)
            answer = HostAnswer.from_host(code, value or None, scripts, issuer_authentication_data=whole)
        result = kernel.complete(answer)
        event(f"complete: {result.outcome.value}")
        assert result.outcome in FINAL
    assert isinstance(result, ContactResult) and result.kernel == "contact"
    assert result.outcome in FINAL | {Outcome.ONLINE_REQUEST}
    assert len(result.tvr) == 5 and len(result.tsi) == 2
    result.to_json()


@settings(max_examples=max(EXAMPLES // 10, 100), deadline=None, database=None)
@given(responses=st.lists(st.binary(max_size=300), min_size=1, max_size=16), pin_pad=st.booleans())
def test_a_contact_card_of_pure_noise_ends_in_a_defined_outcome(responses: list[bytes], pin_pad: bool) -> None:
    """No real card at all: every answer is chosen by hypothesis, the host answers unable to go online."""

    class Noise:
        def __init__(self) -> None:
            self.i = 0

        def exchange(self, command: bytes) -> bytes:
            self.i += 1
            return responses[(self.i - 1) % len(responses)]

    kernel = ContactKernel(Noise(), config(pin_pad=pin_pad), txn(), cardholder=Cardholder(["1234"], 0))
    result = kernel.start()
    if result.outcome is Outcome.ONLINE_REQUEST:
        result = kernel.complete(HostAnswer.unable_to_go_online())
    assert result.outcome in FINAL | {Outcome.ONLINE_REQUEST}
    result.to_json()
