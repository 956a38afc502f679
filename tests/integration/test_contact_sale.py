"""The contact kernel through the sale, in process: every simulated contact card, the card that refuses
an approval (reversed), the contactless card that asks for the chip, and no PIN pad.

The terminal (Terminal facade, real SQLite journal, the simulator's in-process host) reads each
``contact-*`` card on the simulator's reader (its T=1 ATR tells the terminal it is inserted), with the
simulated PIN pad ``sim:pin=1234``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.contact.card import ContactCard
from terminal import registry
from terminal.devices import LazyPinPad
from terminal.lifecycle import Event, State
from terminal.ports import CancelToken, PinEntry, PinOutcome, PinRequest
from terminal.receipts import render_text
from terminal.results import TerminalEvent
from tests.integration.conftest import Rig

EUR = 978

#: card -> amount -> (state, cvm, pin, words in the message)
EXPECTED: dict[str, dict[int, tuple[State, str, str | None, str]]] = {
    "contact-offline-pin": {
        1234: (State.OFFLINE_APPROVED, "offline_pin", "offline_verified", "PIN verified by the card"),
        6000: (State.APPROVED, "offline_pin", "offline_verified", "approved"),
    },
    "contact-enciphered-pin": {
        1234: (State.OFFLINE_APPROVED, "offline_pin", "offline_verified", "PIN verified by the card"),
        6000: (State.APPROVED, "offline_pin", "offline_verified", "approved"),
    },
    "contact-online-pin": {
        1234: (State.APPROVED, "online_pin", "verified", "PIN verified by the issuer"),
        6000: (State.APPROVED, "online_pin", "verified", "PIN verified by the issuer"),
    },
    # PIN try counter 0: offline PIN not asked, verification failed, online
    "contact-pin-blocked": {1234: (State.APPROVED, "failed", None, "approved")},
    "contact-scripts": {1234: (State.APPROVED, "no_cvm", None, "approved")},
    # ARPC method 2: the issuer's 91 is ARPC || CSU, checked by EXTERNAL AUTHENTICATE
    "contact-arpc2": {
        1234: (State.APPROVED, "no_cvm", None, "approved"),
        6000: (State.APPROVED, "no_cvm", None, "approved"),
    },
    "contact-sda": {
        1234: (State.OFFLINE_APPROVED, "signature", None, "approved (offline)"),
        6000: (State.APPROVED, "signature", None, "approved"),
    },
    "contact-dda": {
        1234: (State.OFFLINE_APPROVED, "no_cvm", None, "approved (offline)"),
        6000: (State.APPROVED, "no_cvm", None, "approved"),
    },
    # ODA failed: the TVR sends them online, where the issuer decides
    "contact-bad-sda": {1234: (State.APPROVED, "no_cvm", None, "approved")},
    "contact-bad-dda": {1234: (State.APPROVED, "no_cvm", None, "approved")},
    "contact-bad-cda": {1234: (State.DECLINED, "no_cvm", None, "declined by the card")},
    "contact-garbage": {1234: (State.CANCELLED, "not_performed", None, "not completed")},
    "contact-mute": {1234: (State.CANCELLED, "not_performed", None, "not completed")},
}
CASES = [(card, amount) for card, amounts in EXPECTED.items() for amount in amounts]


@pytest.fixture(autouse=True)
def _pad_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTERM_SIM_STATE", str(tmp_path / "sim"))


def test_every_contact_card_has_a_case() -> None:
    from simulator.contact.profiles import list_names

    assert set(list_names()) == set(EXPECTED)


@pytest.mark.parametrize(("card", "amount"), CASES, ids=[f"{c}-{a}" for c, a in CASES])
def test_a_sale_on_every_contact_card(rig: Rig, card: str, amount: int) -> None:
    state, cvm, pin, words = EXPECTED[card][amount]
    rig.terminal.pin_pad = LazyPinPad("sim:pin=1234")
    rig.card(card)
    result = rig.terminal.sale(amount, EUR)
    assert result.state is state, result.message
    assert result.kernel == "contact" and result.card_result is not None and result.card_result.kernel == "contact"
    assert result.cvm == cvm and result.pin == pin
    assert words in result.message
    row = rig.terminal.get(result.txn_id)
    assert row is not None and row.details["kernel"] == "contact" and "cvm_results" in row.details
    receipt = render_text(rig.terminal.receipt(result.txn_id, "customer", issue=False), "customer")
    assert ("PIN VERIFIED" in receipt) == (pin in ("verified", "offline_verified") and result.approved)
    # the card's VERIFY went with its data zeroed into what the terminal keeps of the exchange
    verify = [c for c in result.card_result.commands if c[:2] == b"\x00\x20"]
    assert all(not any(c[5:]) for c in verify)


def test_the_card_refusing_the_issuers_approval_is_reversed(rig: Rig) -> None:
    """The card leaves before its second GENERATE AC: the issuer's approval is reversed, nothing charged."""
    rig.card("contact-scripts")
    reader = rig.terminal.reader

    def pull_the_card(event: TerminalEvent) -> None:
        if event.kind == "state_changed" and event.data.get("event") == Event.GO_ONLINE.value:
            reader.remove_after(0)  # type: ignore[union-attr]

    rig.terminal.subscribe(pull_the_card)
    result = rig.terminal.sale(1234, EUR)
    assert not result.approved and result.state is State.REVERSED, result.message
    assert "declined by the card after the issuer approved" in result.message
    assert "nothing was charged" in result.message
    # REVERSED is reached only on the host's acknowledgement of the reversal
    row = rig.terminal.get(result.txn_id)
    assert row is not None and row.details["response_code"] == "00"
    assert row.details["card_outcome_after_host"] == "end_application"


def test_without_a_pin_pad_offline_pin_is_not_offered(rig: Rig) -> None:
    rig.card("contact-offline-pin")
    result = rig.terminal.sale(1234, EUR)
    assert result.kernel == "contact" and result.cvm == "signature" and result.pin is None
    assert result.card_result is not None and result.card_result.card_data[0x9F33][1] & 0xD0 == 0


def test_a_tap_that_asks_for_the_chip_reads_the_inserted_card(rig: Rig) -> None:
    """visa-qvsdc-online above the CVM limit without a PIN pad: "insert card", then the chip, in one sale."""
    rig.terminal.reader = registry.open_reader("sim:card=visa-qvsdc-online?insert=contact-sda")
    result = rig.terminal.sale(6000, EUR)
    assert result.approved and result.kernel == "contact"
    prompts = [e.data.get("prompt") for e in rig.events_of("card_prompt")]
    assert prompts == ["present card", "insert card"]


class WaitingPad:
    """A PIN pad whose customer never finishes: the entry ends when the terminal cancels it."""

    url = "test:waiting"

    def __init__(self) -> None:
        import threading

        self.waiting = threading.Event()

    def enter_pin(
        self, request: PinRequest, timeout: float | None = None, cancel: CancelToken | None = None
    ) -> PinEntry:
        self.waiting.set()
        assert cancel is not None and cancel.wait(30), "the terminal's cancel never reached the PIN entry"
        return PinEntry(PinOutcome.CANCELLED)

    def close(self) -> None:
        pass


def test_the_terminals_cancel_reaches_the_pin_entry(rig: Rig) -> None:
    import threading

    pad = WaitingPad()
    rig.terminal.pin_pad = pad
    rig.card("visa-online-pin")

    def cashier() -> None:
        if pad.waiting.wait(30):
            rig.terminal.cancel()

    helper = threading.Thread(target=cashier)
    helper.start()
    result = rig.terminal.sale(8000, EUR)
    helper.join()
    assert result.state is State.CANCELLED and "PIN entry cancelled" in result.message
    assert result.response_code is None


def test_online_pin_in_the_tvr_and_the_receipt(rig: Rig) -> None:
    """Entered and approved: TVR "online PIN entered", PIN VERIFIED; bypassed: "PIN not entered", no PIN line."""
    rig.card("visa-online-pin")
    rig.terminal.pin_pad = LazyPinPad("sim:pin=1234")
    verified = rig.terminal.sale(8000, EUR)
    rig.card("visa-online-pin")
    rig.terminal.pin_pad = LazyPinPad("sim:pin=bypass")
    bypassed = rig.terminal.sale(8000, EUR)
    assert verified.pin == "verified" and bypassed.pin == "bypassed" and bypassed.approved
    for result, entered, not_entered, line in ((verified, 0x04, 0, True), (bypassed, 0, 0x08, False)):
        row = rig.terminal.get(result.txn_id)
        assert row is not None
        tvr = bytes.fromhex(row.details["tvr"])
        assert tvr[2] & 0x04 == entered and tvr[2] & 0x08 == not_entered
        text = render_text(rig.terminal.receipt(result.txn_id, "merchant", issue=False), "merchant")
        assert ("PIN VERIFIED" in text) is line and tvr.hex().upper() in text  # the merchant copy has the TVR


def test_host_down_with_an_online_pin_is_declined_not_deferred(rig: Rig) -> None:
    """Only the issuer can check an online PIN: no deferred authorisation is stored for it."""
    rig.host.faults.down = True
    rig.terminal.pin_pad = LazyPinPad("sim:pin=1234")
    rig.card("visa-online-pin")
    result = rig.terminal.sale(8000, EUR)
    assert result.state is State.DECLINED and "only the issuer can check the PIN" in result.message
    assert rig.terminal.offline_status().queued == 0


def test_host_down_an_inserted_card_decides_with_its_default_action_codes(rig: Rig) -> None:
    """contact-scripts goes online; unable to go online, the action codes (TAC-Default DC4000A800: floor limit
    exceeded) ask for an AAC at the second GENERATE AC: declined, nothing stored to send later."""
    rig.host.faults.down = True
    rig.card("contact-scripts")
    result = rig.terminal.sale(1234, EUR)
    row = rig.terminal.get(result.txn_id)
    assert result.state is State.DECLINED and "declined by the card: the host cannot be reached" in result.message
    assert row is not None and row.details["cryptogram_type"] == "AAC"
    assert row.details["card_outcome_after_host"] == "declined"
    assert rig.terminal.offline_status().queued == 0


def test_force_offline_an_inserted_card_is_asked_for_its_second_cryptogram(rig: Rig) -> None:
    from terminal.offline import OfflineBehavior

    rig.card("contact-scripts")
    result = rig.terminal.sale(1234, EUR, offline_behavior=OfflineBehavior.FORCE_OFFLINE)
    row = rig.terminal.get(result.txn_id)
    assert result.state is State.DECLINED and result.message == "declined by the card (offline)"
    assert row is not None and row.details["cryptogram_type"] == "AAC"
    assert rig.terminal.offline_status().queued == 0


def test_the_inserted_card_is_in_the_diagnostics_apdu_trace(rig: Rig) -> None:
    from terminal.apdu_trace import ApduTrace, observe

    trace = ApduTrace()
    rig.terminal.reader = observe(registry.open_reader("sim:card=visa-qvsdc-online?insert=contact-sda"), trace)
    result = rig.terminal.sale(6000, EUR)
    assert result.approved and result.kernel == "contact"
    commands = [line["command"].replace(" ", "") for line in trace.to_json()]
    assert commands[0].startswith("00A404000E325041592E")  # the tap: PPSE (2PAY.SYS.DDF01)
    assert "00A404000E315041592E5359532E444446303100" in commands  # the chip: PSE (1PAY.SYS.DDF01), observed too
    assert commands[-1].startswith("80AE40")  # and its second GENERATE AC (TC)


def test_the_issuers_scripts_run_on_the_inserted_card_and_their_results_are_kept(rig: Rig) -> None:
    """contact-scripts: the simulated issuer sends a script 71 and a script 72 (PUT DATA with MACs)."""
    rig.card("contact-scripts")
    result = rig.terminal.sale(1234, EUR)
    assert result.approved
    row = rig.terminal.get(result.txn_id)
    assert row is not None
    # 9F5B: per script, result 2 (processed successfully) in the high nibble, then its id
    assert row.details["script_results"] == "20000000712000000072"
    assert bytes.fromhex(row.details["tsi"])[0] & 0x04  # TSI: script processing was performed
    assert row.details["issuer_authentication"] == "passed"


class RecordingCard(ContactCard):
    """A simulated contact card that keeps the commands it was sent (a trace masks digit runs)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.seen: list[bytes] = []

    def exchange(self, command: bytes) -> bytes:
        self.seen.append(bytes(command))
        return super().exchange(command)


def test_an_arpc_method_2_card_gets_the_issuers_91_whole(rig: Rig) -> None:
    """contact-arpc2 (CVN 18): the host's issuer_authentication_data (ARPC || CSU, 8 bytes) reaches EXTERNAL
    AUTHENTICATE byte for byte (not with the ARC appended as for method 1), the card accepts it and approves."""
    from simulator.devices import SimulatorCardReader

    card = RecordingCard("contact-arpc2")
    rig.terminal.reader = SimulatorCardReader("sim:card=contact-arpc2", card)
    result = rig.terminal.sale(1234, EUR)
    assert result.state is State.APPROVED, result.message
    row = rig.terminal.get(result.txn_id)
    assert row is not None and row.details["issuer_authentication"] == "passed"
    assert row.details["cryptogram_type"] == "TC"
    ext = [c for c in card.seen if c[:2] == b"\x00\x82"]
    assert len(ext) == 1 and ext[0][4] == 8 and ext[0][9:13] == bytes.fromhex("00800000")  # ARPC, then the CSU
    assert card.last_online_atc == 18  # the CSU said "leave the offline counters": the card left them
