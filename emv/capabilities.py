"""The cardholder verification a terminal advertises, and the PIN bits it must not claim without a PIN pad.

A card chooses its CVM from what the terminal advertises: the CVM capability
byte of Terminal Capabilities (9F33 byte 2; kernel C-2 takes it from
DF8118 / DF8119) and, for kernel C-3, the TTQ (9F66).  A terminal that
advertises online PIN without a PIN pad invites a card to ask for a PIN that
nobody can enter; before issue 9 the kernels then reported "online PIN" as
performed and a receipt said "PIN VERIFIED" for a PIN never typed.  So the
PIN bits are tied to one fact of the configuration, whether a PIN pad is
present, and are removed from everything advertised when it is not.

Masked off, not refused: a :class:`emv.config.TerminalConfig` without a PIN pad
removes the PIN methods of 9F33 byte 2, of the C-2 CVM capabilities (DF8118,
DF8119) and of any such tag in a combination's ``extra``, and TTQ byte 1 b3
(online PIN) and byte 2 b6 (offline PIN), noting each change for the log.
Parameters often come from an acquirer whose defaults claim PIN: refused, they
would leave the terminal taking no payment at all; masked, it takes every
payment it honestly can, and the log says what was changed.

>>> without_pin_cvm_capability(0x68)   # online PIN, signature, no CVM -> signature, no CVM
40
>>> without_pin_terminal_capabilities(bytes.fromhex("E0F8C8")).hex().upper()
'E028C8'
>>> without_pin_ttq(bytes.fromhex("36204000")).hex().upper()
'32004000'
>>> pin_methods_in_cvm_capability(0xD0)
['plaintext PIN for ICC verification', 'enciphered PIN online', 'enciphered PIN for offline verification']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emv.config import Combination

__all__ = [
    "PIN_CVM_CAPABILITY",
    "PIN_TAGS",
    "TTQ_OFFLINE_PIN",
    "TTQ_ONLINE_PIN",
    "pin_methods_in_cvm_capability",
    "pin_methods_in_ttq",
    "without_pin",
    "without_pin_claims",
    "without_pin_cvm_capability",
    "without_pin_terminal_capabilities",
    "without_pin_ttq",
]

# 9F33 byte 2 (and DF8118 / DF8119), EMV Book 4 Annex A2: the PIN methods.
_CVM_PIN_BITS = (
    (0x80, "plaintext PIN for ICC verification"),
    (0x40, "enciphered PIN online"),
    (0x10, "enciphered PIN for offline verification"),
)
PIN_CVM_CAPABILITY = 0x80 | 0x40 | 0x10

# TTQ (9F66), (byte index, mask): byte 1 b3 online PIN supported; byte 2 b6 offline PIN
# supported (for the contact interface of the same reader).
TTQ_ONLINE_PIN = (0, 0x04)
TTQ_OFFLINE_PIN = (1, 0x20)
_TTQ_PIN_BITS = ((TTQ_ONLINE_PIN, "online PIN"), (TTQ_OFFLINE_PIN, "offline PIN (contact)"))


def without_pin_cvm_capability(byte: int) -> int:
    """A CVM capability byte (9F33 byte 2, DF8118, DF8119) with its PIN methods removed."""
    return byte & ~PIN_CVM_CAPABILITY & 0xFF


def pin_methods_in_cvm_capability(byte: int) -> list[str]:
    """The PIN methods a CVM capability byte claims, by name (empty: none)."""
    return [name for bit, name in _CVM_PIN_BITS if byte & bit]


def without_pin_terminal_capabilities(capabilities: bytes) -> bytes:
    """Terminal Capabilities (9F33) with the PIN methods of byte 2 removed; other lengths unchanged."""
    if len(capabilities) != 3:
        return capabilities
    return capabilities[:1] + bytes([without_pin_cvm_capability(capabilities[1])]) + capabilities[2:]


def without_pin_ttq(ttq: bytes) -> bytes:
    """The TTQ (9F66) without "online PIN supported" and "offline PIN supported"."""
    out = bytearray(ttq)
    for (index, mask), _ in _TTQ_PIN_BITS:
        if len(out) > index:
            out[index] &= ~mask & 0xFF
    return bytes(out)


def pin_methods_in_ttq(ttq: bytes) -> list[str]:
    """The PIN support a TTQ claims, by name (empty: none)."""
    return [name for (index, mask), name in _TTQ_PIN_BITS if len(ttq) > index and ttq[index] & mask]


def _byte_masker(value: bytes) -> bytes:
    return bytes([without_pin_cvm_capability(value[0])]) + value[1:] if value else value


#: Data objects that advertise PIN support, and how to remove it from each.
PIN_TAGS: dict[int, Callable[[bytes], bytes]] = {
    0x9F33: without_pin_terminal_capabilities,
    0x9F66: without_pin_ttq,
    0xDF8118: _byte_masker,  # C-2 CVM Capability - CVM Required
    0xDF8119: _byte_masker,  # C-2 CVM Capability - No CVM Required
}


def without_pin(tag: int, value: bytes) -> bytes:
    """``value`` of data object ``tag`` with any PIN support it advertises removed.

    >>> without_pin(0xDF8118, b"\\x60").hex(), without_pin(0x9F35, b"\\x22").hex()
    ('20', '22')
    """
    masker = PIN_TAGS.get(tag)
    return value if masker is None else masker(value)


def _note(path: str, before: bytes, claims: str, after: bytes) -> str:
    what = f"{before.hex().upper()} claims {claims} without a PIN pad (pin_pad false)"
    return f"{path}: {what}; advertised as {after.hex().upper()}"


def _combination_without_pin(combo: Combination, path: str) -> tuple[Combination, list[str]]:
    notes: list[str] = []
    changes: dict[str, Any] = {}
    ttq = without_pin_ttq(combo.ttq)
    if ttq != combo.ttq:
        notes.append(_note(f"{path}.ttq", combo.ttq, ", ".join(pin_methods_in_ttq(combo.ttq)), ttq))
        changes["ttq"] = ttq
    for name, tag in (("cvm_capability_cvm_required", 0xDF8118), ("cvm_capability_no_cvm_required", 0xDF8119)):
        value: bytes | None = getattr(combo, name)
        claims = pin_methods_in_cvm_capability(value[0]) if value else []
        if value is not None and claims:
            masked = without_pin(tag, value)
            notes.append(_note(f"{path}.{name}", value, ", ".join(claims), masked))
            changes[name] = masked
    extra = {tag: without_pin(tag, value) for tag, value in combo.extra.items()}
    for tag, value in combo.extra.items():
        if extra[tag] != value:
            notes.append(_note(f"{path}.extra.{tag:02X}", value, "PIN", extra[tag]))
            changes["extra"] = extra
    return (dataclasses.replace(combo, **changes) if changes else combo), notes


def without_pin_claims(
    terminal_capabilities: bytes, combinations: Sequence[Combination]
) -> tuple[bytes, tuple[Combination, ...], list[str]]:
    """9F33 and the combinations of a configuration with no PIN pad, and one note per change.

    The notes name the field as :class:`emv.config.ConfigError` does
    (``combinations[0].ttq``), what it claimed and what is advertised instead.
    """
    notes: list[str] = []
    caps = without_pin_terminal_capabilities(terminal_capabilities)
    if caps != terminal_capabilities:
        claims = ", ".join(pin_methods_in_cvm_capability(terminal_capabilities[1]))
        notes.append(_note("terminal_capabilities", terminal_capabilities, claims, caps))
    combos: list[Combination] = []
    for i, combo in enumerate(combinations):
        masked, combo_notes = _combination_without_pin(combo, f"combinations[{i}]")
        combos.append(masked)
        notes += combo_notes
    return caps, tuple(combos), notes
