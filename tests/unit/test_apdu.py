"""emv.apdu: command builders and transmit() with 61xx / 6Cxx."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from emv import apdu
from emv.apdu import ApduError, ApduTransport, CardCommunicationError, Response, transmit


def h(text: str) -> bytes:
    return bytes.fromhex(text)


class FakeCard:
    """A transport answering from a function, recording every command."""

    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        self.answer = answer
        self.commands: list[bytes] = []

    def exchange(self, command: bytes) -> bytes:
        self.commands.append(command)
        return self.answer(command)


class Scripted(FakeCard):
    def __init__(self, *responses: str) -> None:
        queue = [h(r) for r in responses]
        super().__init__(lambda _cmd: queue.pop(0))


def test_builders() -> None:
    assert apdu.select(b"2PAY.SYS.DDF01") == h("00A404000E325041592E5359532E444446303100")
    assert apdu.select(h("A0000000031010"), next_occurrence=True) == h("00A4040207A000000003101000")
    assert apdu.gpo(b"") == h("80A8000002830000")
    assert apdu.gpo(h("36000000")) == h("80A8000006830436000000" + "00")
    assert apdu.read_record(1, 1) == h("00B2010C00")
    assert apdu.read_record(30, 255) == h("00B2FFF400")
    assert apdu.generate_ac(apdu.AC_ARQC, h("0102")) == h("80AE8000020102" + "00")
    assert apdu.generate_ac(apdu.AC_TC, h("0102"), cda=True) == h("80AE5000020102" + "00")
    assert apdu.generate_ac(apdu.AC_AAC, b"\x00") == h("80AE00000100" + "00")
    assert apdu.internal_authenticate(h("11223344")) == h("008800000411223344" + "00")
    assert apdu.get_data(0x9F36) == h("80CA9F3600")
    assert apdu.get_data(0x9F17) == h("80CA9F1700")
    assert apdu.get_response(0x10) == h("00C0000010")


def test_builder_limits() -> None:
    with pytest.raises(ValueError):
        apdu.read_record(0, 1)
    with pytest.raises(ValueError):
        apdu.read_record(31, 1)
    with pytest.raises(ValueError):
        apdu.gpo(bytes(128))
    with pytest.raises(ValueError):
        apdu.generate_ac(apdu.AC_TC, bytes(256))


def test_response() -> None:
    resp = apdu.parse_response(h("6F00 9000"))
    assert resp == Response(h("6F00"), 0x90, 0x00) and resp.ok and resp.sw == 0x9000
    assert str(resp) == "6F00 9000"
    assert not apdu.parse_response(h("6A82")).ok
    with pytest.raises(ApduError):
        apdu.parse_response(h("90"))


def test_fake_card_is_a_transport() -> None:
    assert isinstance(Scripted("9000"), ApduTransport)


def test_plain_exchange() -> None:
    card = Scripted("77029F36 9000"[:0] + "7000 9000")
    resp = transmit(card, apdu.read_record(1, 1))
    assert resp == Response(h("7000"), 0x90, 0x00)
    assert card.commands == [apdu.read_record(1, 1)]


def test_61xx_fetches_the_rest_with_get_response() -> None:
    card = Scripted("7703 6110", "9F3602 00 61 02", "0001 9000")
    resp = transmit(card, apdu.gpo(b""))
    assert resp.data == h("77039F3602000001")
    assert resp.sw == 0x9000
    assert card.commands[1:] == [h("00C0000010"), h("00C0000002")]


def test_61xx_then_error() -> None:
    card = Scripted("6105", "6A81")
    resp = transmit(card, apdu.get_data(0x9F36))
    assert resp.sw == 0x6A81 and resp.data == b""


def test_6cxx_sends_again_with_the_right_le() -> None:
    card = Scripted("6C05", "9F36020001 9000")
    resp = transmit(card, apdu.get_data(0x9F36))
    assert resp.data == h("9F36020001") and resp.ok
    assert card.commands == [h("80CA9F3600"), h("80CA9F3605")]


def test_6cxx_then_61xx() -> None:
    card = Scripted("6C10", "AABB 6102", "CCDD 9000")
    resp = transmit(card, apdu.read_record(2, 1))
    assert resp.data == h("AABBCCDD") and resp.ok
    assert card.commands[1] == h("00B2011410") and card.commands[2] == h("00C0000002")


def test_endless_61xx_is_an_error() -> None:
    card = FakeCard(lambda _cmd: h("0161FF"))
    with pytest.raises(ApduError, match="61xx"):
        transmit(card, apdu.select(b"2PAY.SYS.DDF01"), max_chain=4)
    assert len(card.commands) == 5


def test_short_response_is_an_apdu_error() -> None:
    with pytest.raises(ApduError):
        transmit(Scripted(""), apdu.select(b"x"))


def test_transport_errors_pass_through() -> None:
    def mute(_cmd: bytes) -> bytes:
        raise CardCommunicationError("card removed")

    with pytest.raises(CardCommunicationError):
        transmit(FakeCard(mute), apdu.select(b"x"))
