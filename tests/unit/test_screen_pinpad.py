"""The on-screen PIN pad (``screen:``) without a window: its keypad, its PIN blocks, and where it cannot be opened.

The front-end here is the test's: it presses the keys from another thread, as
the application's UI thread does while the PIN pad waits on the worker. The
blocks are deciphered as the simulated issuer does: the BDK found by the
host's key store from the KSN (:meth:`simulator.host.keys.HostKeys.pin_bdk_for`),
the key derived from it (:func:`simulator.host.pin_check._pin_key`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simulator.host.keys import HostKeys
from simulator.host.pin_check import _pin_key
from simulator.screen_pinpad_key import load_simulator_keys
from terminal import registry
from terminal.pinblock import EncryptedPin, PinFormat, decipher, wipe
from terminal.ports import (
    CancelToken,
    DeviceError,
    DeviceUrlError,
    OfflinePinAbility,
    OfflinePinPad,
    OfflinePinRequest,
    PinOutcome,
    PinRequest,
    offline_pin_ability,
)
from terminal.screen_pinpad import OUTSIDE_UI, Keypad, ScreenPinPad, drawn, install
from terminal.soft_pinpad import KEYS_FILE, SoftwarePinPad

PAN = "4761739001010010"


class Customer:
    """A front-end whose customer does ``act(keypad)`` on another thread once the keypad is shown."""

    def __init__(self, data_dir: Path, act: Callable[[Keypad], None]) -> None:
        self.data_dir = data_dir
        self.act = act
        self.shown: list[Keypad] = []
        self.hidden: list[PinOutcome] = []

    def show(self, keypad: Keypad) -> None:
        self.shown.append(keypad)
        threading.Thread(target=self.act, args=(keypad,), daemon=True).start()

    def hide(self, keypad: Keypad, outcome: PinOutcome) -> None:
        self.hidden.append(outcome)


def keys(text: str, then: str = "enter") -> Callable[[Keypad], None]:
    def act(keypad: Keypad) -> None:
        for key in text:
            keypad.press(key)
        getattr(keypad, then)()

    return act


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    load_simulator_keys(tmp_path)
    return tmp_path


@pytest.fixture
def screen(data_dir: Path) -> Iterator[Callable[[Callable[[Keypad], None]], Customer]]:
    undo: list[Callable[[], None]] = []

    def make(act: Callable[[Keypad], None]) -> Customer:
        customer = Customer(data_dir, act)
        undo.append(install(customer))
        return customer

    yield make
    for fn in undo:
        fn()


def host_pin(pin: EncryptedPin, pan: str = PAN) -> bytes:
    """The PIN the simulated issuer deciphers from a block (its own BDK lookup and key derivation)."""
    key = _pin_key(HostKeys.in_memory(), pin)
    assert key is not None, "the host holds no BDK for this KSN"
    clear = decipher(pin.block, pan, key, pin.format)
    try:
        return bytes(clear)
    finally:
        wipe(clear)


@pytest.mark.parametrize("fmt", [PinFormat.ISO_4, PinFormat.ISO_0])
def test_the_issuer_deciphers_the_pin_keyed_on_the_screen(screen, fmt: PinFormat) -> None:
    customer = screen(keys("482915"))
    assert drawn()
    pad = registry.open_pin_pad("screen:")
    entry = pad.enter_pin(PinRequest(8000, 978, PAN, format=fmt), timeout=30)
    assert entry.outcome is PinOutcome.ENTERED and entry.pin is not None
    assert entry.pin.format is fmt and len(entry.pin.ksn) == fmt.ksn_bytes
    assert host_pin(entry.pin) == b"482915"
    assert customer.hidden == [PinOutcome.ENTERED]
    assert customer.shown[0].count == 0  # the digits left the keypad for the block (and were wiped there)


def test_a_configured_format_0_pad_forms_format_0_whatever_the_request_asks(screen) -> None:
    screen(keys("1234"))
    entry = registry.open_pin_pad("screen:?format=0").enter_pin(PinRequest(100, 978, PAN), timeout=30)
    assert entry.pin is not None and entry.pin.format is PinFormat.ISO_0
    assert host_pin(entry.pin) == b"1234"


def test_every_block_has_a_new_ksn_kept_across_pads(screen, data_dir: Path) -> None:
    screen(keys("1234"))
    seen = []
    for _ in range(3):  # a new pad each time, as a new process would
        entry = ScreenPinPad.open("screen:").enter_pin(PinRequest(100, 978, PAN), timeout=30)
        assert entry.pin is not None
        seen.append(entry.pin.ksn)
    assert len(set(seen)) == 3
    assert SoftwarePinPad(data_dir).counters()["aes"] == int.from_bytes(seen[-1][8:], "big")


def test_cancel_clear_and_the_wipe() -> None:
    keypad = Keypad(PinRequest(100, 978, PAN))
    for key in "98765":
        keypad.press(key)
    buffer = keypad._digits
    keypad.clear()
    assert keypad.count == 0 and bytes(buffer) == b""
    for key in "4321":
        keypad.press(key)
    buffer = keypad._digits
    assert keypad.cancel() and keypad.outcome is PinOutcome.CANCELLED
    assert bytes(buffer) == b"" and keypad.count == 0
    assert not keypad.press("1") and not keypad.enter()  # ended: the keys do nothing


def test_enter_needs_four_digits_and_a_pin_has_at_most_twelve() -> None:
    keypad = Keypad(PinRequest(100, 978, PAN))
    assert not keypad.enter()  # no digits, no bypass: Enter does nothing
    for key in "123":
        keypad.press(key)
    assert not keypad.can_enter and not keypad.enter()
    for key in "4567890123":
        keypad.press(key)
    assert keypad.count == 12 and not keypad.press("4")
    with pytest.raises(ValueError):
        keypad.press("12")


def test_bypass_only_where_the_request_allows_it(screen) -> None:
    refused = Keypad(PinRequest(100, 978, PAN, allow_bypass=False))
    assert not refused.bypass() and refused.outcome is None
    screen(lambda keypad: keypad.bypass())
    assert registry.open_pin_pad("screen:").enter_pin(
        PinRequest(100, 978, PAN, allow_bypass=True), timeout=30
    ).outcome is PinOutcome.BYPASSED  # fmt: skip
    allowed = Keypad(PinRequest(100, 978, PAN, allow_bypass=True))
    assert allowed.can_enter and allowed.enter() and allowed.outcome is PinOutcome.BYPASSED  # Enter with no digits


def test_nobody_keys_a_pin_the_entry_times_out(screen) -> None:
    customer = screen(lambda keypad: keypad.press("1"))  # starts, never finishes
    entry = registry.open_pin_pad("screen:").enter_pin(PinRequest(100, 978, PAN), timeout=0.2)
    assert entry.outcome is PinOutcome.TIMEOUT and entry.pin is None
    assert customer.hidden == [PinOutcome.TIMEOUT] and customer.shown[0].count == 0


def test_the_terminal_cancels_the_wait(screen) -> None:
    token = CancelToken()
    customer = screen(lambda keypad: token.cancel())  # the cashier's Cancel while the customer looks
    entry = registry.open_pin_pad("screen:").enter_pin(PinRequest(100, 978, PAN), timeout=30, cancel=token)
    assert entry.outcome is PinOutcome.CANCELLED and customer.hidden == [PinOutcome.CANCELLED]


def test_outside_posterm_ui_it_says_so_in_one_line() -> None:
    assert not drawn()
    with pytest.raises(DeviceError) as raised:
        registry.open_pin_pad("screen:")
    assert str(raised.value) == OUTSIDE_UI
    registry.check_url("screen:", "pin-pad")  # set it anywhere: it is opened inside posterm ui
    with pytest.raises(DeviceUrlError, match="format=4"):
        registry.check_url("screen:?format=7", "pin-pad")


def test_no_keys_is_said_before_the_customer_keys_a_pin(tmp_path: Path) -> None:
    customer = Customer(tmp_path, keys("1234"))
    undo = install(customer)
    try:
        with pytest.raises(DeviceError, match="posterm sim pinpad-key"):
            registry.open_pin_pad("screen:").enter_pin(PinRequest(100, 978, PAN), timeout=30)
        assert customer.shown == []
        (tmp_path / KEYS_FILE).write_text("{not json", encoding="ascii")
        with pytest.raises(DeviceError, match="damaged"):
            registry.open_pin_pad("screen:").enter_pin(PinRequest(100, 978, PAN), timeout=30)
    finally:
        undo()


def test_the_key_file_is_the_terminal_users_only(data_dir: Path) -> None:
    assert (data_dir / KEYS_FILE).stat().st_mode & 0o077 == 0


def test_a_pad_kept_open_asks_the_screen_installed_now(data_dir: Path) -> None:
    """A terminal keeps its PIN pad open (LazyPinPad); the application that drew it may have been replaced since."""
    old = Customer(data_dir, keys("1111"))
    undo_old = install(old)
    pad = registry.open_pin_pad("screen:")
    undo_old()
    new = Customer(data_dir, keys("2222"))
    undo_new = install(new)
    try:
        entry = pad.enter_pin(PinRequest(100, 978, PAN), timeout=30)
    finally:
        undo_new()
    assert old.shown == [] and len(new.shown) == 1
    assert entry.pin is not None and host_pin(entry.pin) == b"2222"
    with pytest.raises(DeviceError, match=OUTSIDE_UI):  # and none at all: said in one line
        pad.enter_pin(PinRequest(100, 978, PAN), timeout=30)


def test_the_simulated_host_provisions_the_keys_of_a_configured_screen_pad(tmp_path: Path) -> None:
    from terminal.bootstrap import open_terminal
    from terminal.devices import set_device

    plain, screen_pad = tmp_path / "plain", tmp_path / "screen"
    set_device(screen_pad, "pin-pad", "screen:")
    for data_dir in (plain, screen_pad):
        open_terminal(data_dir, reader_url="sim:card=visa-qvsdc-online", host="memory").close()
    assert not (plain / KEYS_FILE).exists()  # no on-screen PIN pad, no keys
    assert SoftwarePinPad(screen_pad).counters() == {"aes": 0, "tdes": 0}


def test_an_offline_pin_keyed_on_the_screen_goes_to_the_card_and_is_wiped(tmp_path: Path) -> None:
    """No DUKPT keys needed: an inserted card checks its own PIN; the digits are handed over once, then wiped."""
    customer = Customer(tmp_path, keys("482915"))  # no key file in tmp_path
    undo = install(customer)
    try:
        pad = registry.open_pin_pad("screen:")
        assert offline_pin_ability(pad) == OfflinePinAbility(digits=True)
        assert isinstance(pad, OfflinePinPad)
        request = OfflinePinRequest(1234, 978, "enciphered", tries_left=1, last_try=True)
        answer = pad.enter_offline_pin(request, timeout=30)
    finally:
        undo()
    assert answer.outcome is PinOutcome.ENTERED and "482915" not in repr(answer)
    assert customer.shown[0].request is request and customer.shown[0].count == 0
    assert answer.take() == "482915"
    with pytest.raises(ValueError):
        answer.take()  # once
    assert customer.hidden == [PinOutcome.ENTERED]


@pytest.mark.parametrize(("act", "outcome"), [("cancel", PinOutcome.CANCELLED), ("bypass", PinOutcome.BYPASSED)])
def test_an_offline_pin_cancelled_or_bypassed_on_the_screen(screen, act: str, outcome: PinOutcome) -> None:
    screen(lambda keypad: getattr(keypad, act)())
    answer = registry.open_pin_pad("screen:").enter_offline_pin(OfflinePinRequest(100, 978), timeout=30)
    assert answer.outcome is outcome
    with pytest.raises(ValueError):
        answer.take()


def test_an_offline_pin_nobody_keys_times_out(screen) -> None:
    customer = screen(lambda keypad: keypad.press("1"))
    answer = registry.open_pin_pad("screen:").enter_offline_pin(OfflinePinRequest(100, 978), timeout=0.2)
    assert answer.outcome is PinOutcome.TIMEOUT and customer.shown[0].count == 0
