"""An inserted chip card's offline PIN on a serial PIN pad: the pad enciphers it, the clear PIN never crosses the line.

The terminal (Terminal facade, real SQLite journal, the simulator's in-process host) reads the
simulator's ``contact-*`` cards; its PIN pad is ``posterm sim pinpad`` in a subprocess on a real pty,
opened through the registry and the serial driver (``serial:/dev/pts/N?protocol=posterm-pinpad``).
The pad gets the card's public key and challenge (``EPIN``) and answers the ciphertext the kernel
sends in VERIFY (P2 88); a plaintext offline PIN cannot go through a separate pad, so the terminal
does not claim it (9F33) and the card goes on to its next CVM rule.  The scan at the end records
every line the serial link carried, on an in-process pad on a real pty.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from emv.tvr import Tvr
from simulator.contact.card import ContactCard
from simulator.pinpad import PinKeys, parse_action
from simulator.pty_pinpad import VirtualPinPad
from terminal.devices import LazyPinPad
from terminal.lifecycle import State
from tests.contract.test_serial_pin_pad import ServedPinPad
from tests.integration.conftest import Rig

EUR = 978
PLAINTEXT_PIN = 0x80  # 9F33 byte 2
ENCIPHERED_PIN = 0x10
ONLINE_PIN = 0x40


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServedPinPadMaker]:
    maker = ServedPinPadMaker(tmp_path / "pad-state")
    yield maker
    maker.stop()


class ServedPinPadMaker:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.served: list[ServedPinPad] = []

    def __call__(self, rig: Rig, action: str, *more: str) -> ServedPinPad:
        served = ServedPinPad("--pin", action, "--state-dir", str(self.state), *more)
        self.served.append(served)
        rig.terminal.pin_pad = LazyPinPad(served.url)
        return served

    def stop(self) -> None:
        for served in self.served:
            served.stop()


def _card(rig: Rig) -> ContactCard:
    card = rig.terminal.reader.card  # type: ignore[union-attr]
    assert isinstance(card, ContactCard)
    return card


def _verify_commands(rig: Rig, result_commands: list[bytes]) -> list[bytes]:
    return [c for c in result_commands if c[:2] == b"\x00\x20"]


def test_an_enciphered_pin_formed_by_the_serial_pad_is_verified_by_the_card(rig: Rig, serve: ServedPinPadMaker) -> None:
    served = serve(rig, "1234")
    rig.card("contact-enciphered-pin")
    result = rig.terminal.sale(1234, EUR)
    assert result.state is State.OFFLINE_APPROVED, result.message
    assert result.kernel == "contact" and result.cvm == "offline_pin" and result.pin == "offline_verified"
    assert "PIN verified by the card" in result.message
    card_result = result.card_result
    assert card_result is not None
    caps = card_result.card_data[0x9F33][1]
    assert caps & ENCIPHERED_PIN and caps & ONLINE_PIN and not caps & PLAINTEXT_PIN  # a separate pad: no plaintext
    assert card_result.card_data[0x9F34].hex().upper() == "440002"
    verify = _verify_commands(rig, card_result.commands)
    assert len(verify) == 1 and verify[0][3] == 0x88 and verify[0][4] == 0x80  # the card's 1024-bit key
    # GET CHALLENGE went right before the VERIFY: nothing else went to the card while the customer keyed
    at = card_result.commands.index(verify[0])
    assert card_result.commands[at - 2][:2] == b"\x00\x84" or card_result.commands[at - 1][:2] == b"\x00\x84"
    assert _card(rig).pin_try_counter == 3
    out = "".join(served.lines) + served.stop()
    assert "1234" not in out.replace(served.url, "")


def test_a_wrong_pin_counts_down_the_cards_tries_then_the_next_cvm(rig: Rig, serve: ServedPinPadMaker) -> None:
    serve(rig, "9999")
    rig.card("contact-enciphered-pin")
    result = rig.terminal.sale(1234, EUR)
    card_result = result.card_result
    assert card_result is not None
    # three wrong PINs, each VERIFY with a ciphertext of its own: the card's try counter ran down to 0
    verify = _verify_commands(rig, card_result.commands)
    assert len(verify) == 3 and all(c[3] == 0x88 for c in verify)
    assert _card(rig).pin_try_counter == 0
    byte, mask = Tvr.PIN_TRY_LIMIT_EXCEEDED
    assert card_result.tvr[byte] & mask
    # the CVM list goes on (4400 apply next, then 1E03): signature
    assert result.cvm == "signature" and result.pin is None
    assert card_result.card_data[0x9F34].hex().upper() == "1E0300"


@pytest.mark.parametrize(("action", "words"), [("cancel", "cancel"), ("timeout", "timeout")])
def test_cancel_or_timeout_on_the_serial_pad_ends_the_inserted_card_not_completed(
    rig: Rig, serve: ServedPinPadMaker, action: str, words: str
) -> None:
    serve(rig, action)
    rig.card("contact-enciphered-pin")
    result = rig.terminal.sale(1234, EUR)
    assert result.state is State.CANCELLED and not result.approved, result.message
    assert "not completed" in result.message and result.response_code is None
    assert result.card_result is not None and words in (result.card_result.error or "")
    assert not _verify_commands(rig, result.card_result.commands)
    assert _card(rig).pin_try_counter == 3


def test_the_terminals_cancel_aborts_the_pads_entry(rig: Rig, serve: ServedPinPadMaker) -> None:
    serve(rig, "1234", "--delay", "120")
    rig.card("contact-enciphered-pin")
    stop = threading.Event()

    def cashier() -> None:  # the cashier presses Cancel while the customer is keying
        while not stop.wait(0.2):
            rig.terminal.cancel()

    helper = threading.Thread(target=cashier)
    helper.start()
    try:
        result = rig.terminal.sale(1234, EUR)
    finally:
        stop.set()
        helper.join()
    assert result.state is State.CANCELLED and not result.approved, result.message
    assert result.card_result is None or not _verify_commands(rig, result.card_result.commands)


def test_a_plaintext_offline_pin_with_the_serial_pad_goes_on_to_the_cards_next_cvm(
    rig: Rig, serve: ServedPinPadMaker
) -> None:
    """contact-offline-pin's list is 4100 (plaintext PIN, apply next) 1E03 (signature) 1F03 (no CVM).

    The terminal does not claim plaintext PIN with a separate pad: the first rule is "not supported",
    fails with no TVR bit of its own, and the next applies; no VERIFY goes to the card. (Before, the
    terminal claimed it and the card ended "the PIN pad cannot take an offline PIN".)
    """
    serve(rig, "1234")
    rig.card("contact-offline-pin")
    result = rig.terminal.sale(1234, EUR)
    assert result.approved, result.message
    assert result.kernel == "contact" and result.cvm == "signature" and result.pin is None
    card_result = result.card_result
    assert card_result is not None
    assert not card_result.card_data[0x9F33][1] & PLAINTEXT_PIN
    assert card_result.card_data[0x9F34].hex().upper() == "1E0300"
    assert not _verify_commands(rig, card_result.commands)
    assert card_result.tvr[2] & 0xF8 == 0  # byte 3: no PIN bit, no "cardholder verification failed"
    assert _card(rig).pin_try_counter == 3


class RecordingPad(VirtualPinPad):
    """The simulated pad on a real pty, keeping every line that crossed the serial link, both ways."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.link: list[str] = []
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _send(self, line: str) -> None:
        self.link.append(line)
        super()._send(line)

    def _read_line(self, until: float) -> str | None:
        line = super()._read_line(until)
        if line:
            self.link.append(line)
        return line


def test_no_pin_crosses_the_serial_link_or_lands_anywhere(rig: Rig, tmp_path: Path) -> None:
    """Everything the link carried, the trace, the journal and the logs: no PIN digits, no PIN block."""
    pad = RecordingPad(parse_action("1234", "--pin"), keys=PinKeys(tmp_path / "keys"))
    try:
        rig.terminal.pin_pad = LazyPinPad(pad.url)
        rig.card("contact-enciphered-pin")
        result = rig.terminal.sale(2000, EUR)
        assert result.approved and result.pin == "offline_verified", result.message
    finally:
        pad.close()
    link = "\n".join(pad.link)
    assert any(line.startswith("EPIN ") for line in pad.link) and any(x.startswith("ENCIPHERED ") for x in pad.link)
    assert pad.shown and "3 tries left" in pad.shown[0]
    block = "241234FFFFFFFFFF"  # the card's plaintext PIN block (format 2) for 1234
    # a field that is the PIN (the hex of key, challenge and ciphertext may hold "1234" by chance inside)
    assert not re.search(r"(?<![0-9A-Fa-f])1234(?![0-9A-Fa-f])", link), link
    assert block not in link.upper()
    assert result.card_result is not None
    for command in _verify_commands(rig, result.card_result.commands):
        assert not any(command[5:])  # the trace keeps VERIFY with its data zeroed
    written = b"".join(p.read_bytes() for p in rig.data_dir.rglob("*") if p.is_file())
    assert bytes.fromhex(block) not in written and block.encode() not in written
    ciphertext = next(x for x in pad.link if x.startswith("ENCIPHERED ")).split()[1]
    assert ciphertext.encode() not in written.upper() and bytes.fromhex(ciphertext) not in written


def test_a_serial_pad_that_cannot_encipher_claims_no_offline_pin(rig: Rig, tmp_path: Path) -> None:
    """A pad whose PONG lists no EPIN (a version 1 pad of before): no offline PIN claimed, the next CVM applies."""
    pad = RecordingPad(parse_action("1234", "--pin"), keys=PinKeys(tmp_path / "keys"), features=())
    try:
        rig.terminal.pin_pad = LazyPinPad(pad.url)
        rig.card("contact-enciphered-pin")
        result = rig.terminal.sale(1234, EUR)
    finally:
        pad.close()
    assert result.approved and result.cvm == "signature" and result.pin is None, result.message
    assert result.card_result is not None
    caps = result.card_result.card_data[0x9F33][1]
    assert caps & ONLINE_PIN and not caps & (ENCIPHERED_PIN | PLAINTEXT_PIN)
    assert not any(line.startswith("EPIN") for line in pad.link)
