"""Processing restrictions, terminal risk management and terminal action analysis.

EMV Book 3 sections 10.4 (processing restrictions), 10.6 (terminal risk
management) and 10.7 (terminal action analysis).  Each step is a pure function
that says which TVR / TSI bits it sets (:class:`RiskResult`); the last one,
:func:`terminal_action_analysis`, reads the TVR and the action codes and says
which cryptogram to ask the card for.

>>> r = processing_restrictions({0x5F24: bytes.fromhex("241231")}, RestrictionContext(
...     transaction_date=bytes.fromhex("250614"), terminal_country=b"\\x02\\x76",
...     terminal_application_version=b"\\x00\\x02"))
>>> r.tvr_names()
['expired_application']
>>> tvr = Tvr(); r.apply_to(tvr, Tsi())
>>> terminal_action_analysis(tvr.value, ActionCodes(tac_denial=bytes.fromhex("0040000000")),
...                          online_capable=True).cryptogram
'AAC'
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from emv.apdu import AC_AAC, AC_ARQC, AC_TC
from emv.transaction import bcd_date
from emv.tvr import Bit, BitEffects, Tsi, Tvr

__all__ = [
    "ActionCodes",
    "RandomSelection",
    "RestrictionContext",
    "RiskResult",
    "TaaDecision",
    "VelocityData",
    "check_dates",
    "floor_limit_check",
    "is_atm",
    "processing_restrictions",
    "random_selection",
    "terminal_action_analysis",
    "terminal_risk_management",
    "velocity_check",
]


# Application Usage Control (9F07), Book 3 Annex C2
AUC_DOMESTIC_CASH = (0, 0x80)
AUC_INTERNATIONAL_CASH = (0, 0x40)
AUC_DOMESTIC_GOODS = (0, 0x20)
AUC_INTERNATIONAL_GOODS = (0, 0x10)
AUC_DOMESTIC_SERVICES = (0, 0x08)
AUC_INTERNATIONAL_SERVICES = (0, 0x04)
AUC_ATM = (0, 0x02)
AUC_NON_ATM = (0, 0x01)
AUC_DOMESTIC_CASHBACK = (1, 0x80)
AUC_INTERNATIONAL_CASHBACK = (1, 0x40)

CASH_TYPES = frozenset({0x01, 0x17})
PURCHASE_TYPES = frozenset({0x00})
CASHBACK_TYPES = frozenset({0x09})

ALL_ONES = b"\xff" * 5
ALL_ZEROS = bytes(5)


@dataclass(frozen=True)
class RiskResult(BitEffects):
    """TVR / TSI bits a step sets, in the order it decided them."""

    tvr_bits: tuple[Bit, ...] = ()
    tsi_bits: tuple[Bit, ...] = ()

    def __add__(self, other: RiskResult) -> RiskResult:
        tvr = self.tvr_bits + tuple(b for b in other.tvr_bits if b not in self.tvr_bits)
        tsi = self.tsi_bits + tuple(b for b in other.tsi_bits if b not in self.tsi_bits)
        return RiskResult(tvr, tsi)


# --------------------------------------------------------------------------- processing restrictions


def is_atm(terminal_type: int, additional_capabilities: bytes) -> bool:
    """Book 4 Annex A: an ATM is an unattended financial-institution terminal (9F35 14, 15
    or 16) that can dispense cash (9F40 byte 1 b8).

    >>> is_atm(0x14, bytes.fromhex("8000000000")), is_atm(0x22, bytes.fromhex("8000000000"))
    (True, False)
    """
    return (
        terminal_type in (0x14, 0x15, 0x16)
        and bool(additional_capabilities[:1])
        and bool(additional_capabilities[0] & 0x80)
    )


@dataclass(frozen=True)
class RestrictionContext:
    """The terminal side of processing restrictions.

    ``transaction_date`` is 9A (YYMMDD BCD), ``terminal_country`` 9F1A (2 bytes
    BCD), ``terminal_application_version`` 9F09 of the combination.
    ``purchase_kind`` says whether the merchant sells goods or services (the AUC
    has a bit for each).
    """

    transaction_date: bytes
    terminal_country: bytes
    terminal_application_version: bytes
    transaction_type: int = 0x00
    atm: bool = False
    purchase_kind: Literal["goods", "services"] = "goods"


def _card_date(value: bytes) -> datetime.date | None:
    try:
        return bcd_date(value)
    except ValueError:
        return None


def check_dates(card: Mapping[int, bytes], transaction_date: bytes) -> RiskResult:
    """Effective date 5F25 and expiry date 5F24 against 9A (Book 3 10.4.3).

    A date the card sends that is not a valid YYMMDD counts against it: an
    unreadable expiry date is "expired", an unreadable effective date "not yet
    effective".

    >>> check_dates({0x5F25: bytes.fromhex("250701")}, bytes.fromhex("250614")).tvr_names()
    ['application_not_yet_effective']
    >>> check_dates({0x5F24: bytes.fromhex("250614")}, bytes.fromhex("250614")).tvr_names()
    []
    >>> check_dates({0x5F24: bytes.fromhex("251399")}, bytes.fromhex("250614")).tvr_names()
    ['expired_application']
    """
    today = bcd_date(transaction_date)  # the terminal's own date: an error here is a bug
    bits: list[Bit] = []
    effective = card.get(0x5F25)
    if effective is not None:
        day = _card_date(effective)
        if day is None or today < day:
            bits.append(Tvr.NOT_YET_EFFECTIVE)
    expiry = card.get(0x5F24)
    if expiry is not None:
        day = _card_date(expiry)
        if day is None or today > day:
            bits.append(Tvr.EXPIRED_APPLICATION)
    return RiskResult(tuple(bits))


def _auc_allows(auc: bytes, bit: Bit) -> bool:
    return len(auc) > bit[0] and bool(auc[bit[0]] & bit[1])


def _usage_allowed(auc: bytes, issuer_country: bytes | None, ctx: RestrictionContext) -> bool:
    """Book 3 10.4.2: the AUC against the terminal kind and the transaction."""
    if not _auc_allows(auc, AUC_ATM if ctx.atm else AUC_NON_ATM):
        return False
    if issuer_country is None:
        return True
    domestic = issuer_country == ctx.terminal_country
    ttype = ctx.transaction_type
    needed: list[Bit] = []
    if ttype in CASH_TYPES:
        needed.append(AUC_DOMESTIC_CASH if domestic else AUC_INTERNATIONAL_CASH)
    if ttype in PURCHASE_TYPES or ttype in CASHBACK_TYPES:
        if ctx.purchase_kind == "goods":
            needed.append(AUC_DOMESTIC_GOODS if domestic else AUC_INTERNATIONAL_GOODS)
        else:
            needed.append(AUC_DOMESTIC_SERVICES if domestic else AUC_INTERNATIONAL_SERVICES)
    if ttype in CASHBACK_TYPES:
        needed.append(AUC_DOMESTIC_CASHBACK if domestic else AUC_INTERNATIONAL_CASHBACK)
    return all(_auc_allows(auc, bit) for bit in needed)


def processing_restrictions(card: Mapping[int, bytes], ctx: RestrictionContext) -> RiskResult:
    """Application version, usage control and dates (Book 3 10.4).

    ``card`` holds the card's data objects (9F08, 9F07, 5F28, 5F25, 5F24 are read).

    >>> ctx = RestrictionContext(bytes.fromhex("250614"), b"\\x02\\x76", b"\\x00\\x02")
    >>> processing_restrictions({0x9F08: b"\\x00\\x01"}, ctx).tvr_names()
    ['different_application_versions']
    >>> card = {0x9F07: bytes.fromhex("AB00"), 0x5F28: b"\\x08\\x40"}  # no international goods
    >>> processing_restrictions(card, ctx).tvr_names()
    ['service_not_allowed']
    """
    bits: list[Bit] = []
    version = card.get(0x9F08)
    if version is not None and version != ctx.terminal_application_version:
        bits.append(Tvr.DIFFERENT_APPLICATION_VERSIONS)
    auc = card.get(0x9F07)
    if auc is not None and not _usage_allowed(auc, card.get(0x5F28), ctx):
        bits.append(Tvr.SERVICE_NOT_ALLOWED)
    return RiskResult(tuple(bits)) + check_dates(card, ctx.transaction_date)


# --------------------------------------------------------------------------- terminal risk management


def floor_limit_check(amount: int, floor_limit: int | None, *, at_limit_exceeds: bool = True) -> RiskResult:
    """Book 3 10.6.1: amount at or above the floor limit sets "transaction exceeds floor limit".

    Kernel C-2 compares with ">" (``at_limit_exceeds=False``).  No floor limit: no check.

    >>> floor_limit_check(5000, 5000).tvr_names()
    ['floor_limit_exceeded']
    >>> floor_limit_check(5000, 5000, at_limit_exceeds=False).tvr_names()
    []
    """
    if floor_limit is None:
        return RiskResult()
    exceeded = amount >= floor_limit if at_limit_exceeds else amount > floor_limit
    return RiskResult((Tvr.FLOOR_LIMIT_EXCEEDED,) if exceeded else ())


@dataclass(frozen=True)
class RandomSelection:
    """Random transaction selection parameters (Book 3 10.6.2); amounts in minor units."""

    target_percent: int = 0
    max_target_percent: int = 0
    threshold: int = 0


def random_selection(
    amount: int, floor_limit: int | None, params: RandomSelection, random_number: int
) -> RiskResult:
    """Book 3 10.6.2 with the biased selection between the threshold and the floor limit.

    ``random_number`` is uniform in 0..99 (:class:`emv.transaction.TransactionData`);
    a transaction is selected when it is *below* the (transaction) target
    percentage, so that a target of 0 never selects and a target of 25 selects a
    quarter of the transactions.  (The book draws 1..99 and compares with "<=".)
    Amounts at or above the floor limit are not subject to random selection.

    Below the threshold the target percentage applies; from the threshold up to
    the floor limit it rises linearly towards the maximum target percentage:
    ``TTP = (max - target) * (amount - threshold) / (floor - threshold) + target``.

    >>> p = RandomSelection(target_percent=20, max_target_percent=60, threshold=1000)
    >>> random_selection(500, 5000, p, 19).tvr_names(), random_selection(500, 5000, p, 20).tvr_names()
    (['random_selection'], [])
    >>> random_selection(3000, 5000, p, 39).tvr_names(), random_selection(3000, 5000, p, 40).tvr_names()
    (['random_selection'], [])
    >>> random_selection(6000, 5000, p, 0).tvr_names()
    []
    """
    if floor_limit is None or amount >= floor_limit:
        return RiskResult()
    if amount < params.threshold or params.threshold >= floor_limit:
        percentage = Fraction(params.target_percent)
    else:
        rise = Fraction(params.max_target_percent - params.target_percent) * (amount - params.threshold)
        percentage = rise / (floor_limit - params.threshold) + params.target_percent
    selected = random_number < percentage
    return RiskResult((Tvr.RANDOM_SELECTION,) if selected else ())


@dataclass(frozen=True)
class VelocityData:
    """Velocity checking inputs: LCOL 9F14 / UCOL 9F23 from the records, ATC 9F36 and
    last online ATC 9F13 from GET DATA (None when the card did not give them)."""

    lcol: bytes | None = None
    ucol: bytes | None = None
    atc: bytes | None = None
    last_online_atc: bytes | None = None


def _counter(value: bytes | None, length: int) -> int | None:
    if value is None or len(value) != length:
        return None
    return int.from_bytes(value, "big")


def velocity_check(data: VelocityData) -> RiskResult:
    """Book 3 10.6.3.  Only when the card gives both LCOL and UCOL.

    An ATC or last online ATC that could not be read (or is not 2 bytes) sets
    both "LCOL exceeded" and "UCOL exceeded" and not "new card"; so does an ATC
    not above the last online ATC.  A last online ATC of zero is a new card.

    >>> velocity_check(VelocityData(b"\\x03", b"\\x05", b"\\x00\\x14", b"\\x00\\x10")).tvr_names()
    ['lcol_exceeded']
    >>> velocity_check(VelocityData(b"\\x03", b"\\x05", None, None)).tvr_names()
    ['lcol_exceeded', 'ucol_exceeded']
    >>> velocity_check(VelocityData(b"\\x03", b"\\x05", b"\\x00\\x01", b"\\x00\\x00")).tvr_names()
    ['new_card']
    """
    if data.lcol is None or data.ucol is None:
        return RiskResult()
    lcol = int.from_bytes(data.lcol, "big")
    ucol = int.from_bytes(data.ucol, "big")
    atc = _counter(data.atc, 2)
    last = _counter(data.last_online_atc, 2)
    if atc is None or last is None:
        return RiskResult((Tvr.LCOL_EXCEEDED, Tvr.UCOL_EXCEEDED))
    bits: list[Bit] = []
    if atc <= last:
        bits += [Tvr.LCOL_EXCEEDED, Tvr.UCOL_EXCEEDED]
    else:
        if atc - last > lcol:
            bits.append(Tvr.LCOL_EXCEEDED)
        if atc - last > ucol:
            bits.append(Tvr.UCOL_EXCEEDED)
    if last == 0:
        bits.append(Tvr.NEW_CARD)
    return RiskResult(tuple(bits))


def terminal_risk_management(
    amount: int,
    floor_limit: int | None,
    random_number: int,
    selection: RandomSelection = RandomSelection(),
    velocity: VelocityData = VelocityData(),
    *,
    at_limit_exceeds: bool = True,
) -> RiskResult:
    """Floor limit, random selection and velocity checking; sets the TSI bit.

    >>> r = terminal_risk_management(6000, 5000, 50)
    >>> r.tvr_names(), [Tsi.NAMES[b] for b in r.tsi_bits]
    (['floor_limit_exceeded'], ['terminal_risk_management_performed'])
    """
    result = (
        floor_limit_check(amount, floor_limit, at_limit_exceeds=at_limit_exceeds)
        + random_selection(amount, floor_limit, selection, random_number)
        + velocity_check(velocity)
    )
    return result + RiskResult((), (Tsi.TERMINAL_RISK_MANAGEMENT_PERFORMED,))


# --------------------------------------------------------------------------- terminal action analysis


@dataclass(frozen=True)
class ActionCodes:
    """Terminal action codes (from the combination) and issuer action codes (card
    9F0E denial, 9F0F online, 9F0D default; None when the card has none)."""

    tac_denial: bytes = ALL_ZEROS
    tac_online: bytes = ALL_ZEROS
    tac_default: bytes = ALL_ZEROS
    iac_denial: bytes | None = None
    iac_online: bytes | None = None
    iac_default: bytes | None = None

    @classmethod
    def from_card(
        cls, tac_denial: bytes, tac_online: bytes, tac_default: bytes, card: Mapping[int, bytes]
    ) -> ActionCodes:
        return cls(tac_denial, tac_online, tac_default, card.get(0x9F0E), card.get(0x9F0F), card.get(0x9F0D))


@dataclass(frozen=True)
class TaaDecision:
    """The cryptogram to request and why: ``reason`` is "denial", "online",
    "default" (a TVR bit matched that code) or "none" (nothing matched)."""

    reference: int
    cryptogram: Literal["AAC", "TC", "ARQC"]
    reason: str


def _iac(value: bytes | None, absent: bytes) -> bytes:
    # Book 3 10.7: absent IAC-Denial counts as all zeros, absent IAC-Online and
    # IAC-Default as all ones.  A card IAC that is not 5 bytes is treated as absent.
    return value if value is not None and len(value) == 5 else absent


def _matches(tvr: bytes, *codes: bytes) -> bool:
    return any(t & c for code in codes for t, c in zip(tvr, code, strict=False))


def terminal_action_analysis(tvr: bytes, codes: ActionCodes, *, online_capable: bool) -> TaaDecision:
    """Book 3 10.7, first GENERATE AC.

    Denial codes matching → AAC.  An online-capable terminal then asks an ARQC
    when the online codes match and a TC otherwise; an offline-only terminal
    skips the online codes and uses the default codes (match → AAC, else TC).

    >>> tvr = bytes.fromhex("0000008000")  # floor limit exceeded
    >>> terminal_action_analysis(tvr, ActionCodes(), online_capable=True).cryptogram  # no IAC-Online: ones
    'ARQC'
    >>> terminal_action_analysis(tvr, ActionCodes(iac_online=bytes(5)), online_capable=True).cryptogram
    'TC'
    >>> terminal_action_analysis(tvr, ActionCodes(), online_capable=False).cryptogram
    'AAC'
    >>> terminal_action_analysis(bytes(5), ActionCodes(), online_capable=False).cryptogram
    'TC'
    """
    if _matches(tvr, codes.tac_denial, _iac(codes.iac_denial, ALL_ZEROS)):
        return TaaDecision(AC_AAC, "AAC", "denial")
    if online_capable:
        if _matches(tvr, codes.tac_online, _iac(codes.iac_online, ALL_ONES)):
            return TaaDecision(AC_ARQC, "ARQC", "online")
        return TaaDecision(AC_TC, "TC", "none")
    if _matches(tvr, codes.tac_default, _iac(codes.iac_default, ALL_ONES)):
        return TaaDecision(AC_AAC, "AAC", "default")
    return TaaDecision(AC_TC, "TC", "none")
