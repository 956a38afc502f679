"""Cardholder verification: the CVM list (8E) and CVM results (9F34), EMV Book 3 section 10.5.

The card's CVM list is ``amount X (4) | amount Y (4) | rules of two bytes``.  The
terminal walks the rules in order.  A rule whose condition is not understood or
not satisfied is skipped.  A rule whose condition is satisfied is *attempted*:
when the method succeeds, processing ends there; when it fails, the rule's
"apply next" bit (byte 1 b7) decides between trying the next rule and failing
cardholder verification as a whole.

Whether the terminal supports a method is read from the CVM capability byte in
use (9F33 byte 2; kernel C-2 takes it from DF8118 or DF8119 by the amount against
the CVM required limit, which is how "no CVM below the limit" falls out).

Everything is pure: the outcome says which TVR / TSI bits to set, and the caller
applies them (:meth:`CvmOutcome.apply_to`).

>>> cvm_list = parse_cvm_list(bytes.fromhex("00000000 00000000 4203 1E03 1F03".replace(" ", "")))
>>> ctx = CvmContext(amount=6000, transaction_currency=b"\\x09\\x78",
...                  application_currency=b"\\x09\\x78", cvm_capability=0x60)
>>> out = process(cvm_list, ctx)
>>> out.results.hex().upper(), out.performed.value, out.tvr_names()
('420300', 'online_pin', ['online_pin_entered'])
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from emv.outcome import CvmPerformed
from emv.tvr import Bit, BitEffects, Tsi, Tvr

__all__ = [
    "APPLY_NEXT",
    "CAP_ENCIPHERED_PIN_OFFLINE",
    "CAP_NO_CVM",
    "CAP_ONLINE_PIN",
    "CAP_PLAINTEXT_PIN",
    "CAP_SIGNATURE",
    "NO_CVM_PERFORMED",
    "CvmCondition",
    "CvmContext",
    "CvmList",
    "CvmListError",
    "CvmMethod",
    "CvmOutcome",
    "CvmRule",
    "PinResult",
    "condition_satisfied",
    "no_cvm_supported_by_card",
    "parse_cvm_list",
    "process",
    "terminal_supports",
]


APPLY_NEXT = 0x40  # rule byte 1 b7: apply the next rule if this one fails
METHOD_MASK = 0x3F

# 9F33 byte 2, CVM capability (EMV Book 4 Annex A2)
CAP_PLAINTEXT_PIN = 0x80
CAP_ONLINE_PIN = 0x40
CAP_SIGNATURE = 0x20
CAP_ENCIPHERED_PIN_OFFLINE = 0x10
CAP_NO_CVM = 0x08

RESULT_UNKNOWN = 0x00
RESULT_FAILED = 0x01
RESULT_SUCCESSFUL = 0x02

NO_CVM_PERFORMED = 0x3F

# Transaction types (9C) that count as cash for the CVM conditions.
CASH_TYPES = frozenset({0x01, 0x17})
CASHBACK_TYPES = frozenset({0x09})


class CvmListError(ValueError):
    """A CVM list that is not ``X (4) | Y (4) | 2-byte rules``."""


class CvmMethod(enum.IntEnum):
    """CVM codes (rule byte 1, b6-b1)."""

    FAIL = 0x00
    PLAINTEXT_PIN_ICC = 0x01
    ENCIPHERED_PIN_ONLINE = 0x02
    PLAINTEXT_PIN_ICC_AND_SIGNATURE = 0x03
    ENCIPHERED_PIN_ICC = 0x04
    ENCIPHERED_PIN_ICC_AND_SIGNATURE = 0x05
    SIGNATURE = 0x1E
    NO_CVM_REQUIRED = 0x1F


class CvmCondition(enum.IntEnum):
    """CVM condition codes (rule byte 2)."""

    ALWAYS = 0x00
    UNATTENDED_CASH = 0x01
    NOT_CASH_OR_CASHBACK = 0x02
    TERMINAL_SUPPORTS = 0x03
    MANUAL_CASH = 0x04
    CASHBACK = 0x05
    UNDER_X = 0x06
    OVER_X = 0x07
    UNDER_Y = 0x08
    OVER_Y = 0x09


class PinResult(enum.Enum):
    """What an offline PIN verification (VERIFY, done by the caller) gave."""

    VERIFIED = "verified"
    FAILED = "failed"
    TRY_LIMIT_EXCEEDED = "try_limit_exceeded"
    NOT_ENTERED = "not_entered"


_CAPABILITY_NEEDED: dict[int, int] = {
    CvmMethod.FAIL: 0,
    CvmMethod.PLAINTEXT_PIN_ICC: CAP_PLAINTEXT_PIN,
    CvmMethod.ENCIPHERED_PIN_ONLINE: CAP_ONLINE_PIN,
    CvmMethod.PLAINTEXT_PIN_ICC_AND_SIGNATURE: CAP_PLAINTEXT_PIN | CAP_SIGNATURE,
    CvmMethod.ENCIPHERED_PIN_ICC: CAP_ENCIPHERED_PIN_OFFLINE,
    CvmMethod.ENCIPHERED_PIN_ICC_AND_SIGNATURE: CAP_ENCIPHERED_PIN_OFFLINE | CAP_SIGNATURE,
    CvmMethod.SIGNATURE: CAP_SIGNATURE,
    CvmMethod.NO_CVM_REQUIRED: CAP_NO_CVM,
}

_OFFLINE_PIN = frozenset(
    {
        CvmMethod.PLAINTEXT_PIN_ICC,
        CvmMethod.PLAINTEXT_PIN_ICC_AND_SIGNATURE,
        CvmMethod.ENCIPHERED_PIN_ICC,
        CvmMethod.ENCIPHERED_PIN_ICC_AND_SIGNATURE,
    }
)
_WITH_SIGNATURE = frozenset(
    {
        CvmMethod.PLAINTEXT_PIN_ICC_AND_SIGNATURE,
        CvmMethod.ENCIPHERED_PIN_ICC_AND_SIGNATURE,
        CvmMethod.SIGNATURE,
    }
)


@dataclass(frozen=True)
class CvmRule:
    """One CVM rule; ``code`` is rule byte 1 as the card sent it (it goes into 9F34)."""

    code: int
    condition: int

    @property
    def method(self) -> int:
        return self.code & METHOD_MASK

    @property
    def apply_next_if_fails(self) -> bool:
        return bool(self.code & APPLY_NEXT)

    @property
    def recognised(self) -> bool:
        return self.method in _CAPABILITY_NEEDED


@dataclass(frozen=True)
class CvmList:
    """A parsed CVM list; X and Y are binary amounts in the application currency."""

    amount_x: int
    amount_y: int
    rules: tuple[CvmRule, ...]


@dataclass(frozen=True)
class CvmContext:
    """What the conditions and the support checks need from the transaction.

    ``amount`` is the authorised amount in minor units; ``transaction_currency``
    is 5F2A and ``application_currency`` the card's 9F42 (or None).  X and Y
    are compared only when the two are equal.  ``terminal_type`` is 9F35:
    low nibble 4, 5 or 6 is unattended.  ``cvm_capability`` is 9F33 byte 2.
    ``offline_pin`` performs an offline PIN verification when the caller can
    (contactless kernels cannot: leave it None and offline PIN counts as
    "PIN pad not present or not working").
    """

    amount: int
    transaction_currency: bytes
    application_currency: bytes | None
    cvm_capability: int
    transaction_type: int = 0x00
    terminal_type: int = 0x22
    pin_pad_working: bool = True
    offline_pin: Callable[[CvmMethod], PinResult] | None = None

    @property
    def unattended(self) -> bool:
        return (self.terminal_type & 0x0F) in (4, 5, 6)

    @property
    def cash(self) -> bool:
        return self.transaction_type in CASH_TYPES

    @property
    def cashback(self) -> bool:
        return self.transaction_type in CASHBACK_TYPES


@dataclass(frozen=True)
class CvmOutcome(BitEffects):
    """The result of CVM processing: 9F34, the CVM for the outcome, TVR/TSI bits to set."""

    results: bytes
    performed: CvmPerformed
    tvr_bits: tuple[Bit, ...] = ()
    tsi_bits: tuple[Bit, ...] = ()
    signature_required: bool = False
    online_pin: bool = False

    @property
    def failed(self) -> bool:
        return Tvr.CARDHOLDER_VERIFICATION_FAILED in self.tvr_bits


def parse_cvm_list(data: bytes) -> CvmList:
    """Parse 8E.  Raises :class:`CvmListError` on a length that is not 8 + 2n.

    >>> cl = parse_cvm_list(bytes.fromhex("000003E8000000004106"))
    >>> cl.amount_x, cl.rules[0].method, cl.rules[0].apply_next_if_fails, cl.rules[0].condition
    (1000, 1, True, 6)
    >>> parse_cvm_list(b"\\x00" * 9)
    Traceback (most recent call last):
    ...
    emv.cvm.CvmListError: CVM list of 9 bytes is not 8 + 2n
    """
    if len(data) < 8 or (len(data) - 8) % 2:
        raise CvmListError(f"CVM list of {len(data)} bytes is not 8 + 2n")
    rules = tuple(CvmRule(data[i], data[i + 1]) for i in range(8, len(data), 2))
    return CvmList(int.from_bytes(data[0:4], "big"), int.from_bytes(data[4:8], "big"), rules)


def terminal_supports(method: int, cvm_capability: int) -> bool:
    """True when the CVM capability byte (9F33 byte 2) covers the method.

    >>> terminal_supports(CvmMethod.ENCIPHERED_PIN_ONLINE, 0x40)
    True
    >>> terminal_supports(CvmMethod.PLAINTEXT_PIN_ICC_AND_SIGNATURE, 0x80)
    False
    >>> terminal_supports(0x25, 0xFF)  # not a method the terminal knows
    False
    """
    needed = _CAPABILITY_NEEDED.get(method)
    if needed is None:
        return False
    return cvm_capability & needed == needed


def condition_satisfied(rule: CvmRule, cvm_list: CvmList, ctx: CvmContext) -> bool:
    """Whether the rule's condition holds.  Conditions not understood are not satisfied.

    >>> cl = parse_cvm_list(bytes.fromhex("00001388" "00000000"))
    >>> ctx = CvmContext(amount=6000, transaction_currency=b"\\x09\\x78",
    ...                  application_currency=b"\\x09\\x78", cvm_capability=0)
    >>> condition_satisfied(CvmRule(0x1F, CvmCondition.OVER_X), cl, ctx)
    True
    >>> other = CvmContext(amount=6000, transaction_currency=b"\\x08\\x40",
    ...                    application_currency=b"\\x09\\x78", cvm_capability=0)
    >>> condition_satisfied(CvmRule(0x1F, CvmCondition.OVER_X), cl, other)
    False
    """
    cond = rule.condition
    if cond == CvmCondition.ALWAYS:
        return True
    if cond == CvmCondition.UNATTENDED_CASH:
        return ctx.cash and ctx.unattended
    if cond == CvmCondition.NOT_CASH_OR_CASHBACK:
        return not ctx.cash and not ctx.cashback
    if cond == CvmCondition.TERMINAL_SUPPORTS:
        return terminal_supports(rule.method, ctx.cvm_capability)
    if cond == CvmCondition.MANUAL_CASH:
        return ctx.cash and not ctx.unattended
    if cond == CvmCondition.CASHBACK:
        return ctx.cashback
    if cond in (CvmCondition.UNDER_X, CvmCondition.OVER_X, CvmCondition.UNDER_Y, CvmCondition.OVER_Y):
        # Book 3 10.5: X and Y are in the application currency; when the
        # transaction is in another currency (or 9F42 is absent) the rule is skipped.
        if ctx.application_currency is None or ctx.application_currency != ctx.transaction_currency:
            return False
        on_x = cond in (CvmCondition.UNDER_X, CvmCondition.OVER_X)
        limit = cvm_list.amount_x if on_x else cvm_list.amount_y
        if cond in (CvmCondition.UNDER_X, CvmCondition.UNDER_Y):
            return ctx.amount < limit
        return ctx.amount > limit
    return False


def no_cvm_supported_by_card() -> CvmOutcome:
    """C-2 / Book 3: the AIP says the card does not support cardholder verification.

    >>> no_cvm_supported_by_card().results.hex().upper()
    '3F0000'
    """
    return CvmOutcome(bytes([NO_CVM_PERFORMED, 0x00, RESULT_UNKNOWN]), CvmPerformed.NO_CVM)


@dataclass(frozen=True)
class _Attempt:
    """How one attempted method ended."""

    success: bool
    result: int
    performed: CvmPerformed
    tvr_bits: tuple[Bit, ...] = ()
    signature: bool = False
    online_pin: bool = False


def _attempt(rule: CvmRule, ctx: CvmContext) -> _Attempt:
    method = rule.method
    if not rule.recognised:
        return _Attempt(False, RESULT_FAILED, CvmPerformed.FAILED, (Tvr.UNRECOGNISED_CVM,))
    if method == CvmMethod.FAIL:
        return _Attempt(False, RESULT_FAILED, CvmPerformed.FAILED)
    if not terminal_supports(method, ctx.cvm_capability):
        return _Attempt(False, RESULT_FAILED, CvmPerformed.FAILED)
    if method == CvmMethod.NO_CVM_REQUIRED:
        return _Attempt(True, RESULT_SUCCESSFUL, CvmPerformed.NO_CVM)
    if method == CvmMethod.SIGNATURE:
        # The signature is checked by the merchant later: result "unknown".
        return _Attempt(True, RESULT_UNKNOWN, CvmPerformed.SIGNATURE, signature=True)
    if not ctx.pin_pad_working:
        return _Attempt(False, RESULT_FAILED, CvmPerformed.FAILED, (Tvr.PIN_PAD_ABSENT,))
    if method == CvmMethod.ENCIPHERED_PIN_ONLINE:
        # Verified by the issuer: result "unknown", TVR "online PIN entered".
        return _Attempt(
            True, RESULT_UNKNOWN, CvmPerformed.ONLINE_PIN, (Tvr.ONLINE_PIN_ENTERED,), online_pin=True
        )
    assert method in _OFFLINE_PIN
    if ctx.offline_pin is None:
        return _Attempt(False, RESULT_FAILED, CvmPerformed.FAILED, (Tvr.PIN_PAD_ABSENT,))
    pin = ctx.offline_pin(CvmMethod(method))
    if pin is PinResult.VERIFIED:
        signature = method in _WITH_SIGNATURE
        result = RESULT_UNKNOWN if signature else RESULT_SUCCESSFUL
        performed = CvmPerformed.SIGNATURE if signature else CvmPerformed.OFFLINE_PIN
        return _Attempt(True, result, performed, signature=signature)
    bits: tuple[Bit, ...] = ()
    if pin is PinResult.TRY_LIMIT_EXCEEDED:
        bits = (Tvr.PIN_TRY_LIMIT_EXCEEDED,)
    elif pin is PinResult.NOT_ENTERED:
        bits = (Tvr.PIN_NOT_ENTERED,)
    return _Attempt(False, RESULT_FAILED, CvmPerformed.FAILED, bits)


def process(cvm_list: CvmList | None, ctx: CvmContext) -> CvmOutcome:
    """Run CVM list processing (Book 3 10.5) and say what happened.

    ``cvm_list`` None means the card has no 8E (or an empty one): 9F34 is
    3F0000, TVR "ICC data missing", and the TSI bit is not set.  The caller
    checks the AIP first (:func:`no_cvm_supported_by_card`).

    >>> cl = parse_cvm_list(bytes.fromhex("0000000000000000" "0200" "1E03"))
    >>> ctx = CvmContext(amount=100, transaction_currency=b"\\x09\\x78",
    ...                  application_currency=None, cvm_capability=0x60)
    >>> out = process(cl, ctx)
    >>> out.results.hex().upper(), out.performed.value
    ('020000', 'online_pin')
    >>> out = process(cl, CvmContext(100, b"\\x09\\x78", None, cvm_capability=0x20))
    >>> out.results.hex().upper(), out.tvr_names()   # no apply-next bit: the list stops at 02
    ('020001', ['cardholder_verification_failed'])
    >>> process(None, ctx).results.hex().upper()
    '3F0000'
    """
    if cvm_list is None or not cvm_list.rules:
        return CvmOutcome(
            bytes([NO_CVM_PERFORMED, 0x00, RESULT_UNKNOWN]),
            CvmPerformed.NO_CVM,
            tvr_bits=(Tvr.ICC_DATA_MISSING,),
        )
    tsi = (Tsi.CARDHOLDER_VERIFICATION_PERFORMED,)
    tvr: list[Bit] = []
    last_failed: CvmRule | None = None
    for rule in cvm_list.rules:
        if not condition_satisfied(rule, cvm_list, ctx):
            continue
        attempt = _attempt(rule, ctx)
        for bit in attempt.tvr_bits:
            if bit not in tvr:
                tvr.append(bit)
        if attempt.success:
            return CvmOutcome(
                bytes([rule.code, rule.condition, attempt.result]),
                attempt.performed,
                tvr_bits=tuple(tvr),
                tsi_bits=tsi,
                signature_required=attempt.signature,
                online_pin=attempt.online_pin,
            )
        last_failed = rule
        if not rule.apply_next_if_fails:
            break
    tvr.append(Tvr.CARDHOLDER_VERIFICATION_FAILED)
    if last_failed is None:
        # No condition was satisfied: "no CVM performed", failed.
        results = bytes([NO_CVM_PERFORMED, 0x00, RESULT_FAILED])
    else:
        results = bytes([last_failed.code, last_failed.condition, RESULT_FAILED])
    return CvmOutcome(results, CvmPerformed.FAILED, tvr_bits=tuple(tvr), tsi_bits=tsi)
