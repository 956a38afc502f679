"""Kernel C-2 against EMV Contactless Book C-2 (issue 15 section 1): each test names what it checks.

Requirement numbers are Book C-2's (v2.x) as this project reads them; where a
single number would be a guess the state or section is named instead.  The
table of what is covered is in docs/internals.md ("Book C-2 coverage").

The card is the scriptable :class:`FakeCard` of test_kernel_c2, extended here
with a mag-stripe first AFL entry and EXCHANGE RELAY RESISTANCE DATA.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from emv import c2_data, c2_records, dol, kernel_c2
from emv.c2_outcome import C2KernelError
from emv.config import Combination, ConfigError, TerminalConfig
from emv.kernel_common import KernelContext
from emv.outcome import Outcome, TransactionResult
from emv.outcome_data import decode
from emv.transaction import TransactionData
from emv.tvr import Tvr
from tests.unit.test_kernel_c2 import AID, CDOL1, DATE, UN, FakeCard, config, fci, gac_command
from tests.unit.test_kernel_c2 import tlv as enc

CDOL1_WITH_9F33 = "9F02069F03069F1A0295055F2A029A039C019F37049F35019F45029F4C089F34039F3303"
RRP_KERNEL = {"kernel_configuration": b"\x30"}  # on-device CVM and relay resistance supported


@dataclass
class C2Card(FakeCard):
    """FakeCard plus: a first AFL entry 08 01 01 00 for a mag-stripe record it refuses to read in
    EMV mode (``magstripe``), and EXCHANGE RELAY RESISTANCE DATA (``rrp``: min, max, estimated)."""

    magstripe: bool = False
    rrp: tuple[int, int, int] | None = None
    errd_answer: bytes | None = None
    errd_entropies: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.magstripe:  # the EMV records move to SFI 2 and 3; SFI 1 record 1 is mag-stripe
            self.records = {(sfi + 1, rec): body for (sfi, rec), body in self.records.items()}

    def afl(self) -> bytes:
        if not self.magstripe:
            return super().afl()
        out = bytes.fromhex("08010100") + bytes.fromhex("10010202")
        return out + bytes([3 << 3, 1, 2 if (3, 2) in self.records else 1, 0])

    def exchange(self, command: bytes) -> bytes:
        if command[1] == 0xB2 and self.magstripe and (command[3] >> 3, command[2]) == (1, 1):
            self.commands.append(command)
            return b"\x69\x85"
        if command[1] == 0xEA:
            self.commands.append(command)
            self.errd_entropies.append(command[5:9])
            if self.errd_answer is not None:
                return self.errd_answer
            if self.rrp is None:
                return b"\x6d\x00"
            lo, hi, est = self.rrp
            body = bytes.fromhex("D1D2D3D4") + lo.to_bytes(2, "big") + hi.to_bytes(2, "big") + est.to_bytes(2, "big")
            return enc(0x80, body) + b"\x90\x00"
        return super().exchange(command)


class Clock:
    """A clock that advances by the next of ``durations`` (seconds) each time the ERRD is timed."""

    def __init__(self, *durations: float) -> None:
        self.now = 100.0
        self.durations: Iterator[float] = iter(durations)
        self.started = False

    def __call__(self) -> float:
        if self.started:
            self.now += next(self.durations)
        self.started = not self.started
        return self.now


def run(
    card: FakeCard,
    amount: int = 1234,
    cfg: TerminalConfig | None = None,
    **txn: object,
) -> TransactionResult:
    cfg = cfg or config()
    t = TransactionData(amount, 978, DATE, UN, **txn)  # type: ignore[arg-type]
    ctx = KernelContext.create(card, cfg, cfg.combinations[1], t, aid=AID, fci=fci(card.pdol))
    return kernel_c2.run(ctx)


def cdol_values(card: FakeCard, cdol: str = CDOL1_WITH_9F33) -> dict[int, bytes]:
    """The values of the GENERATE AC the card received, by tag (``cdol``: the CDOL1 it had)."""
    return dict(dol.split(dol.parse(bytes.fromhex(cdol)), card.cdol_values))


def reads(card: FakeCard) -> list[tuple[int, int]]:
    return [(c[3] >> 3, c[2]) for c in card.commands if c[1] == 0xB2]


# --------------------------------------------------------------------------- S3: the active AFL


def test_S3_30_emv_mode_leaves_the_magstripe_record_out_of_the_active_afl() -> None:
    """S3.30ff: in EMV mode, with mag-stripe mode supported by the Kernel Configuration and an AFL
    beginning 08 01 01 00, that entry is removed from the active AFL: it is not read."""
    card = C2Card(magstripe=True)
    r = run(card)
    assert (1, 1) not in reads(card)
    assert reads(card) == [(2, 1), (2, 2), (3, 1), (3, 2)]
    assert r.outcome is Outcome.APPROVED and r.oda.result == "passed"


def test_S3_30_without_magstripe_mode_the_afl_is_read_whole() -> None:
    """S3.30ff: a Kernel Configuration saying "mag-stripe mode not supported" (DF811B b8) keeps the
    entry; this card refuses the read, which ends the transaction with STATUS BYTES (L2)."""
    card = C2Card(magstripe=True)
    with pytest.raises(C2KernelError) as err:
        run(card, overrides={0xDF811B: b"\xa0"})
    assert reads(card)[0] == (1, 1)
    assert err.value.l2 == 0x03 and err.value.sw == 0x6985
    assert decode(0xDF8115, err.value.outcome_data[0xDF8115]) == {
        "l1": "OK",
        "l2": "STATUS BYTES",
        "l3": "OK",
        "sw12": "6985",
        "msg_on_error": "0F",
    }


def test_S3_30_only_a_first_entry_08010100_is_removed() -> None:
    cfg = c2_data.C2Config({0xDF811B: b"\x20"})
    assert c2_records.active_afl(bytes.fromhex("08010200 10010100"), cfg).hex() == "0801020010010100"
    assert c2_records.active_afl(bytes.fromhex("10010100 08010100"), cfg).hex() == "1001010008010100"
    assert c2_records.active_afl(bytes.fromhex("08010100"), cfg) == b""


def test_S3_card_without_emv_mode_ends_with_magstripe_not_supported() -> None:
    """S3: AIP byte 2 b8 (EMV mode) clear: posterm has no mag-stripe mode, so L2 MAGSTRIPE NOT SUPPORTED."""
    with pytest.raises(C2KernelError) as err:
        run(C2Card(aip="1900"))
    assert err.value.l2 == 0x07


# --------------------------------------------------------------------------- relay resistance


def test_S3_65_rrp_not_performed_when_the_kernel_does_not_support_it() -> None:
    """S3.65: card supports RRP (AIP byte 2 b1), the Kernel Configuration does not: TVR byte 5 = 01b."""
    card = C2Card(aip="1981", rrp=(0, 50, 18))
    r = run(card, cfg=config(kernel_configuration=b"\x20"))  # on-device CVM only
    assert not any(c[1] == 0xEA for c in card.commands)
    assert r.tvr[4] & 0x03 == 0x01
    assert cdol_values(card, CDOL1)[0x95][4] == 0x01  # the card's CDA signature covers it


def test_S3_65_rrp_not_performed_when_the_card_does_not_support_it() -> None:
    card = C2Card(aip="1980", rrp=(0, 50, 18))
    r = run(card, cfg=config(**RRP_KERNEL))
    assert not any(c[1] == 0xEA for c in card.commands)
    assert Tvr(r.tvr).names() == ["rrp_not_performed"]


def test_S3_60_exchange_relay_resistance_data_after_gpo_then_rrp_performed() -> None:
    """S3.60ff / R1: 80 EA 00 00 04 <entropy = unpredictable number> 00, after GPO and before the
    first READ RECORD; the card's times are kept; TVR byte 5 = 10b (RRP performed)."""
    card = C2Card(aip="1981", rrp=(10, 50, 18))
    r = run(card, cfg=config(**RRP_KERNEL), clock=Clock(0.0040))
    ins = [c[1] for c in card.commands]
    assert ins[:3] == [0xA8, 0xEA, 0xB2]
    assert card.commands[1] == bytes.fromhex("80EA000004") + UN + b"\x00"
    assert Tvr(r.tvr).names() == ["rrp_performed"]
    assert r.outcome is Outcome.APPROVED
    # 40 units measured, less 18 (C-APDU) and min(18, 24): 4
    assert r.card_data[0xDF8306] == bytes.fromhex("0004")
    assert r.card_data[0xDF8302] == bytes.fromhex("D1D2D3D4")
    assert r.card_data[0xDF8304] == bytes.fromhex("0032")


def test_R1_too_slow_is_retried_with_a_new_entropy_then_time_limits_exceeded() -> None:
    """R1: measured above Max Time + Maximum Grace Period: repeated (RRP Counter < 2) with a fresh
    unpredictable number each time; still too slow: "relay resistance time limits exceeded"."""
    spare = (bytes.fromhex("0A0B0C0D"), bytes.fromhex("0E0F1011"))
    card = C2Card(aip="1981", rrp=(10, 50, 18), extra={0x8C: bytes.fromhex(CDOL1_WITH_9F33)})
    r = run(card, cfg=config(**RRP_KERNEL), clock=Clock(0.05, 0.05, 0.05), retry_numbers=spare)
    assert card.errd_entropies == [UN, *spare]
    assert r.card_data[0xDF8307] == b"\x02"
    names = Tvr(r.tvr).names()
    assert "relay_resistance_time_limits_exceeded" in names and "rrp_performed" in names
    assert cdol_values(card)[0x9F37] == spare[-1]  # the CDOL1 carries the last unpredictable number


def test_R1_a_retry_in_time_clears_the_time_limit() -> None:
    spare = (bytes.fromhex("0A0B0C0D"),)
    card = C2Card(aip="1981", rrp=(10, 50, 18))
    r = run(card, cfg=config(**RRP_KERNEL), clock=Clock(0.05, 0.004), retry_numbers=spare)
    assert card.errd_entropies == [UN, spare[0]]
    assert Tvr(r.tvr).names() == ["rrp_performed"]


def test_R1_too_slow_without_spare_numbers_sets_time_limits_exceeded_and_goes_online() -> None:
    """The TAC online F45084800C has byte 5 b3: time limits exceeded sends the transaction online."""
    card = C2Card(aip="1981", rrp=(10, 50, 18))
    r = run(card, cfg=config(**RRP_KERNEL), clock=Clock(0.05))
    assert len(card.errd_entropies) == 1
    assert r.tvr[4] == 0x04 | 0x02
    assert r.outcome is Outcome.ONLINE_REQUEST


@pytest.mark.parametrize(
    ("card_times", "seconds", "why"),
    [
        ((10, 50, 1), 0.004, "device estimate 1 against terminal 24: below the 50% mismatch threshold"),
        ((10, 50, 200), 0.004, "terminal 24 against device 200: below the 50% mismatch threshold"),
        ((0, 400, 18), 0.0350, "measured 314 - min 0 above the accuracy threshold 300"),
    ],
)
def test_R1_relay_resistance_threshold_exceeded(card_times: tuple[int, int, int], seconds: float, why: str) -> None:
    card = C2Card(aip="1981", rrp=card_times)
    r = run(card, cfg=config(**RRP_KERNEL), clock=Clock(seconds))
    assert r.tvr[4] == 0x08 | 0x02, why


def test_R1_an_answer_faster_than_the_cards_minimum_is_card_data_error() -> None:
    """R1: measured below MAX(0, Min Time - Minimum Grace Period): CARD DATA ERROR, End Application."""
    card = C2Card(aip="1981", rrp=(256, 400, 18))
    with pytest.raises(C2KernelError) as err:
        run(card, cfg=config(**RRP_KERNEL), clock=Clock(0.001))
    assert err.value.l2 == 0x06


@pytest.mark.parametrize(
    ("answer", "l2"),
    [(b"\x6a\x81", 0x03), (enc(0x80, bytes(9)) + b"\x90\x00", 0x04), (enc(0x77, bytes(10)) + b"\x90\x00", 0x04)],
)
def test_R1_error_status_or_unparsable_answer_ends_the_transaction(answer: bytes, l2: int) -> None:
    card = C2Card(aip="1981", rrp=(0, 50, 18), errd_answer=answer)
    with pytest.raises(C2KernelError) as err:
        run(card, cfg=config(**RRP_KERNEL))
    assert err.value.l2 == l2


def test_R1_relay_resistance_parameters_come_from_the_data_objects() -> None:
    """DF8133 (maximum grace period) and DF8136 (accuracy threshold) through the overrides move the
    limits: 50 ms is then within both."""
    card = C2Card(aip="1981", rrp=(10, 50, 18))
    r = run(card, clock=Clock(0.05), overrides={0xDF8133: bytes.fromhex("0400")})
    assert Tvr(r.tvr).names() == ["relay_resistance_threshold_exceeded", "rrp_performed"]
    card = C2Card(aip="1981", rrp=(10, 50, 18))
    over = {0xDF8133: bytes.fromhex("0400"), 0xDF8136: bytes.fromhex("0400")}
    r = run(card, clock=Clock(0.05), overrides=over)
    assert Tvr(r.tvr).names() == ["rrp_performed"]


# --------------------------------------------------------------------------- 9F33


def _caps(card: C2Card) -> tuple[bytes, bytes]:
    return card.pdol_values[:3], cdol_values(card)[0x9F33]


def test_S456_terminal_capabilities_byte_2_from_cvm_capability_for_generate_ac() -> None:
    """S456: the PDOL gets 9F33 as configured; byte 2 is then DF8118 above the Reader CVM Required
    Limit (DF8126), else DF8119 (without PIN methods: no PIN pad), and GENERATE AC sends that."""
    card = C2Card(pdol="9F3303", extra={0x8C: bytes.fromhex(CDOL1_WITH_9F33)})
    run(card, amount=6000)
    assert _caps(card) == (bytes.fromhex("E02808"), bytes.fromhex("E02008"))
    card = C2Card(pdol="9F3303", extra={0x8C: bytes.fromhex(CDOL1_WITH_9F33)})
    run(card, amount=5000)  # at the limit: not above it
    assert _caps(card) == (bytes.fromhex("E02808"), bytes.fromhex("E00808"))


def test_S456_set_9F33_is_the_configured_value_and_the_rule_still_applies() -> None:
    """``--set 9F33=...`` replaces the configured value (the PDOL gets it as given); byte 2 still
    follows DF8118 / DF8119 at GENERATE AC."""
    card = C2Card(pdol="9F3303", extra={0x8C: bytes.fromhex(CDOL1_WITH_9F33)})
    run(card, amount=1234, overrides={0x9F33: bytes.fromhex("E0F8C8")})
    assert _caps(card) == (bytes.fromhex("E0F8C8"), bytes.fromhex("E008C8"))
    card = C2Card(pdol="9F3303", extra={0x8C: bytes.fromhex(CDOL1_WITH_9F33)})
    run(card, amount=6000, overrides={0x9F33: bytes.fromhex("E0F8C8"), 0xDF8118: b"\x60"})
    assert _caps(card)[1] == bytes.fromhex("E020C8")  # DF8118 60 without its PIN method: no PIN pad


def test_S456_cvm_selection_uses_the_cvm_capability_byte() -> None:
    """CVM selection reads byte 2 as set from DF8119 ("no CVM" only, while the terminal's own 9F33
    claims signature too): the CVM list's signature rule is not supported, the next one applies."""
    cvm_list = bytes.fromhex("00000000000000005E001F00")
    card = C2Card(extra={0x8C: bytes.fromhex(CDOL1_WITH_9F33), 0x8E: cvm_list})
    r = run(card, amount=1234)
    assert r.card_data[0x9F34] == bytes.fromhex("1F0002")


# --------------------------------------------------------------------------- configuration


def test_configuration_objects_map_the_named_keys() -> None:
    """terminal.json's named keys stand for Book C-2's data objects (transaction_limit for both DF8124
    and DF8125); a data object in ``extra`` wins."""
    mc = config().combinations[1]
    objs = c2_data.combination_objects(mc)
    assert objs[0xDF8120] == mc.tac_default and objs[0xDF8122] == mc.tac_online
    assert objs[0xDF8123] == objs[0xDF8126] == bytes.fromhex("000000005000")
    assert objs[0xDF8124] == objs[0xDF8125] == bytes.fromhex("000000100000")
    assert objs[0xDF811B] == b"\x30" and objs[0xDF810C] == b"\x02"
    moved = dataclasses.replace(mc, extra={0xDF8125: bytes.fromhex("000000200000")})
    assert c2_data.combination_objects(moved)[0xDF8125] == bytes.fromhex("000000200000")


@pytest.mark.parametrize(
    ("tag", "value", "why"),
    [
        ("DF8124", "0100", "n12 in 6 bytes, got 2"),
        ("DF8126", "00000000500A", "BCD digits"),
        ("DF811C", "01", "b in 2 bytes"),
        ("DF8137", "0032", "b in 1 bytes"),
    ],
)
def test_configuration_objects_in_extra_are_checked_on_load(tag: str, value: str, why: str) -> None:
    doc = TerminalConfig.example(capks=None).to_dict()
    doc["combinations"][1]["extra"] = {tag: value}
    with pytest.raises(ConfigError) as err:
        TerminalConfig.from_dict(doc, capks=None)
    assert err.value.field == f"combinations[1].extra.{tag}"
    assert why in err.value.message


def test_every_specified_object_has_its_length_and_format_as_data() -> None:
    for tag in (*range(0xDF8117, 0xDF8127), 0xDF810C, 0xDF812C, *range(0xDF8132, 0xDF8138)):
        if tag == 0xDF811A:  # Default UDOL: mag-stripe mode
            continue
        spec = c2_data.SPECS[tag]
        assert spec.format in ("b", "n") and spec.length >= 1


def test_S456_reader_contactless_transaction_limit_gives_select_next() -> None:
    """S456: amount above DF8124 (no on-device CVM): Select Next, L2 MAX LIMIT EXCEEDED, Start C."""
    card = C2Card()
    r = run(card, amount=1234, overrides={0xDF8124: bytes.fromhex("000000001000")})
    assert r.outcome is Outcome.SELECT_NEXT
    assert not any(c[1] == 0xAE for c in card.commands)
    assert decode(0xDF8115, r.outcome_data[0xDF8115])["l2"] == "MAX LIMIT EXCEEDED"
    opset = decode(0xDF8129, r.outcome_data[0xDF8129])
    assert opset is not None and (opset["status"], opset["start"]) == ("SELECT NEXT", "C")


def test_S456_on_device_cvm_uses_the_on_device_transaction_limit() -> None:
    """With on-device CVM (AIP byte 1 b2 and DF811B b6) the limit is DF8125, not DF8124."""
    over = {0xDF8124: bytes.fromhex("000000001000"), 0xDF8125: bytes.fromhex("000000100000")}
    r = run(C2Card(aip="1B80"), amount=1234, overrides=over)
    assert r.outcome is not Outcome.SELECT_NEXT


def test_tacs_and_floor_limit_are_taken_from_the_data_objects() -> None:
    """DF8121 (TAC denial) with "RRP not performed" set declines; DF8123 below the amount: floor limit."""
    card = C2Card()
    r = run(card, overrides={0xDF8121: bytes.fromhex("0000000001")})
    assert gac_command(card)[2] & 0xC0 == 0x00 and r.outcome is Outcome.DECLINED
    r = run(C2Card(), overrides={0xDF8123: bytes.fromhex("000000001000")})
    assert "floor_limit_exceeded" in Tvr(r.tvr).names()


# --------------------------------------------------------------------------- outcome


def test_outcome_data_objects_of_an_approval() -> None:
    """Book C-2 / Book A: Outcome Parameter Set, User Interface Request Data, Error Indication and
    Discretionary Data (holding the Error Indication), in the result and its JSON."""
    r = run(C2Card())
    doc = r.to_json()["outcome_data"]
    assert doc["DF8129"]["decoded"]["status"] == "APPROVED"
    assert doc["DF8129"]["decoded"]["cvm"] == "NO CVM"
    assert doc["DF8116"]["decoded"]["message_identifier"] == "03"
    assert doc["DF8116"]["decoded"]["status"] == "CARD READ SUCCESSFULLY"
    assert doc["DF8116"]["decoded"]["currency_code"] == "0978"
    assert doc["DF8115"]["decoded"]["l2"] == "OK"
    assert doc["FF8106"]["decoded"]["DF8115"]["hex"] == doc["DF8115"]["hex"]


def test_outcome_data_of_a_cda_failure_says_cam_failed() -> None:
    r = run(C2Card(tamper="hash"))
    assert r.outcome is Outcome.DECLINED
    doc = r.to_json()["outcome_data"]
    assert doc["DF8129"]["decoded"]["status"] == "DECLINED"
    assert doc["DF8115"]["decoded"]["l2"] == "CAM FAILED"


def test_outcome_data_of_an_online_request_with_signature() -> None:
    r = run(C2Card(), amount=6000)
    opset = r.to_json()["outcome_data"]["DF8129"]["decoded"]
    assert (opset["status"], opset["cvm"], opset["receipt"]) == ("ONLINE REQUEST", "OBTAIN SIGNATURE", True)


def test_gpo_error_status_is_select_next_with_status_bytes() -> None:
    r = run(C2Card(gpo_sw=b"\x69\x85"))
    assert r.outcome is Outcome.SELECT_NEXT
    assert decode(0xDF8115, r.outcome_data[0xDF8115])["sw12"] == "6985"


def test_combination_type_still_validates_named_keys() -> None:
    with pytest.raises(ConfigError):
        Combination.from_dict({"aid": "A0000000041010", "kernel_id": 2, "kernel_configuration": "3000"})

