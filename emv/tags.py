"""The EMV tag dictionary, as data.

Sources: EMV Book 3 Annex A (all its data elements), Book B (Entry Point),
Book C-3 (Visa-style qVSDC) and Book C-2 (Mastercard-style).  A few tags mean
different things in C-2 and C-3 (``9F5D``, ``9F69``, ``9F6B``, ``9F6E``,
``9F74``, ``9F7C``), or in C-2 and UnionPay's C-7 (its electronic cash reuses
VLP numbers: ``9F6D``, ``9F77``, ``9F78``, ``9F79``); their entry names both meanings and takes the format that
is safe for both (the format only matters when the *terminal* puts a value in
a DOL, and the terminal never sources those tags).

``format`` is the EMV data format the DOL padding rules use (see
:func:`emv.dol.fit`): ``n`` numeric BCD, ``cn`` compressed numeric, ``b``
binary, ``an``/``ans`` (alphabetic ``a`` is filed as ``an``).  ``source`` says
who provides the value: ``card``, ``terminal`` or ``issuer``.  ``template`` is
the template the object usually travels in, or None.

>>> TAGS[0x9F02]
TagInfo(name='Amount, Authorised (Numeric)', format='n', source='terminal', template=None)
>>> format_of(0x5A), format_of(0x9F37), format_of(0xDF8F01)
('cn', 'b', 'b')
>>> name_of(0x9F66)
'Terminal Transaction Qualifiers (TTQ)'
>>> name_of(0xDF8F01)
'Unknown tag DF8F01'
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from emv.tlv import tag_hex

__all__ = [
    "FORMATS",
    "LENGTHS",
    "MAX_DOL_LENGTH",
    "SOURCES",
    "TAGS",
    "TagInfo",
    "check_terminal_value",
    "format_of",
    "name_of",
    "source_of",
]

Format = Literal["n", "cn", "b", "an", "ans"]
Source = Literal["card", "terminal", "issuer"]

FORMATS: frozenset[str] = frozenset({"n", "cn", "b", "an", "ans"})
SOURCES: frozenset[str] = frozenset({"card", "terminal", "issuer"})


class TagInfo(NamedTuple):
    """What the books say about one tag."""

    name: str
    format: Format
    source: Source
    template: int | None = None


def _t(name: str, fmt: Format, source: Source, template: int | None = None) -> TagInfo:
    return TagInfo(name, fmt, source, template)


TAGS: dict[int, TagInfo] = {
    # ---- EMV Book 3, Annex A -------------------------------------------------
    0x42: _t("Issuer Identification Number (IIN)", "n", "card", 0xBF0C),
    0x4F: _t("Application Dedicated File (ADF) Name", "b", "card", 0x61),
    0x50: _t("Application Label", "ans", "card", 0x61),
    0x56: _t("Track 1 Data", "ans", "card", 0x70),
    0x57: _t("Track 2 Equivalent Data", "b", "card", 0x70),
    0x5A: _t("Application Primary Account Number (PAN)", "cn", "card", 0x70),
    0x5F20: _t("Cardholder Name", "ans", "card", 0x70),
    0x5F24: _t("Application Expiration Date", "n", "card", 0x70),
    0x5F25: _t("Application Effective Date", "n", "card", 0x70),
    0x5F28: _t("Issuer Country Code", "n", "card", 0x70),
    0x5F2A: _t("Transaction Currency Code", "n", "terminal"),
    0x5F2D: _t("Language Preference", "an", "card", 0xA5),
    0x5F30: _t("Service Code", "n", "card", 0x70),
    0x5F34: _t("Application PAN Sequence Number", "n", "card", 0x70),
    0x5F36: _t("Transaction Currency Exponent", "n", "terminal"),
    0x5F50: _t("Issuer URL", "ans", "card", 0xBF0C),
    0x5F53: _t("International Bank Account Number (IBAN)", "b", "card", 0xBF0C),
    0x5F54: _t("Bank Identifier Code (BIC)", "b", "card", 0xBF0C),
    0x5F55: _t("Issuer Country Code (alpha2 format)", "an", "card", 0xBF0C),
    0x5F56: _t("Issuer Country Code (alpha3 format)", "an", "card", 0xBF0C),
    0x5F57: _t("Account Type", "n", "terminal"),
    0x61: _t("Application Template", "b", "card", 0x70),
    0x6F: _t("File Control Information (FCI) Template", "b", "card"),
    0x70: _t("READ RECORD Response Message Template", "b", "card"),
    0x71: _t("Issuer Script Template 1", "b", "issuer"),
    0x72: _t("Issuer Script Template 2", "b", "issuer"),
    0x73: _t("Directory Discretionary Template", "b", "card", 0x61),
    0x77: _t("Response Message Template Format 2", "b", "card"),
    0x80: _t("Response Message Template Format 1", "b", "card"),
    0x81: _t("Amount, Authorised (Binary)", "b", "terminal"),
    0x82: _t("Application Interchange Profile (AIP)", "b", "card", 0x77),
    0x83: _t("Command Template", "b", "terminal"),
    0x84: _t("Dedicated File (DF) Name", "b", "card", 0x6F),
    0x86: _t("Issuer Script Command", "b", "issuer", 0x71),
    0x87: _t("Application Priority Indicator", "b", "card", 0x61),
    0x88: _t("Short File Identifier (SFI)", "b", "card", 0xA5),
    0x89: _t("Authorisation Code", "an", "issuer"),
    0x8A: _t("Authorisation Response Code", "an", "issuer"),
    0x8C: _t("Card Risk Management Data Object List 1 (CDOL1)", "b", "card", 0x70),
    0x8D: _t("Card Risk Management Data Object List 2 (CDOL2)", "b", "card", 0x70),
    0x8E: _t("Cardholder Verification Method (CVM) List", "b", "card", 0x70),
    0x8F: _t("Certification Authority Public Key Index (card)", "b", "card", 0x70),
    0x90: _t("Issuer Public Key Certificate", "b", "card", 0x70),
    0x91: _t("Issuer Authentication Data", "b", "issuer"),
    0x92: _t("Issuer Public Key Remainder", "b", "card", 0x70),
    0x93: _t("Signed Static Application Data (SSAD)", "b", "card", 0x70),
    0x94: _t("Application File Locator (AFL)", "b", "card", 0x77),
    0x95: _t("Terminal Verification Results (TVR)", "b", "terminal"),
    0x97: _t("Transaction Certificate Data Object List (TDOL)", "b", "card", 0x70),
    0x98: _t("Transaction Certificate (TC) Hash Value", "b", "terminal"),
    0x99: _t("Transaction Personal Identification Number (PIN) Data", "b", "terminal"),
    0x9A: _t("Transaction Date", "n", "terminal"),
    0x9B: _t("Transaction Status Information (TSI)", "b", "terminal"),
    0x9C: _t("Transaction Type", "n", "terminal"),
    0x9D: _t("Directory Definition File (DDF) Name", "b", "card", 0x61),
    0x9F01: _t("Acquirer Identifier", "n", "terminal"),
    0x9F02: _t("Amount, Authorised (Numeric)", "n", "terminal"),
    0x9F03: _t("Amount, Other (Numeric)", "n", "terminal"),
    0x9F04: _t("Amount, Other (Binary)", "b", "terminal"),
    0x9F05: _t("Application Discretionary Data", "b", "card", 0x70),
    0x9F06: _t("Application Identifier (AID) - terminal", "b", "terminal"),
    0x9F07: _t("Application Usage Control", "b", "card", 0x70),
    0x9F08: _t("Application Version Number (card)", "b", "card", 0x70),
    0x9F09: _t("Application Version Number (terminal)", "b", "terminal"),
    0x9F0A: _t("Application Selection Registered Proprietary Data", "b", "card", 0xBF0C),
    0x9F0B: _t("Cardholder Name Extended", "ans", "card", 0x70),
    0x9F0C: _t("Issuer Identification Number Extended (IINE)", "n", "card", 0xBF0C),
    0x9F0D: _t("Issuer Action Code - Default", "b", "card", 0x70),
    0x9F0E: _t("Issuer Action Code - Denial", "b", "card", 0x70),
    0x9F0F: _t("Issuer Action Code - Online", "b", "card", 0x70),
    0x9F10: _t("Issuer Application Data (IAD)", "b", "card", 0x77),
    0x9F11: _t("Issuer Code Table Index", "n", "card", 0xA5),
    0x9F12: _t("Application Preferred Name", "ans", "card", 0x61),
    0x9F13: _t("Last Online Application Transaction Counter (ATC) Register", "b", "card"),
    0x9F14: _t("Lower Consecutive Offline Limit (LCOL)", "b", "card", 0x70),
    0x9F15: _t("Merchant Category Code", "n", "terminal"),
    0x9F16: _t("Merchant Identifier", "ans", "terminal"),
    0x9F17: _t("Personal Identification Number (PIN) Try Counter", "b", "card"),
    0x9F18: _t("Issuer Script Identifier", "b", "issuer", 0x71),
    0x9F19: _t("Token Requestor ID", "n", "card", 0x70),
    0x9F1A: _t("Terminal Country Code", "n", "terminal"),
    0x9F1B: _t("Terminal Floor Limit", "b", "terminal"),
    0x9F1C: _t("Terminal Identification", "an", "terminal"),
    0x9F1D: _t("Terminal Risk Management Data", "b", "terminal"),
    0x9F1E: _t("Interface Device (IFD) Serial Number", "an", "terminal"),
    0x9F1F: _t("Track 1 Discretionary Data", "ans", "card", 0x70),
    0x9F20: _t("Track 2 Discretionary Data", "cn", "card", 0x70),
    0x9F21: _t("Transaction Time", "n", "terminal"),
    0x9F22: _t("Certification Authority Public Key Index (terminal)", "b", "terminal"),
    0x9F23: _t("Upper Consecutive Offline Limit (UCOL)", "b", "card", 0x70),
    0x9F24: _t("Payment Account Reference (PAR)", "an", "card", 0x70),
    0x9F25: _t("Last 4 Digits of PAN", "n", "card", 0x70),
    0x9F26: _t("Application Cryptogram", "b", "card", 0x77),
    0x9F27: _t("Cryptogram Information Data (CID)", "b", "card", 0x77),
    0x9F2D: _t("ICC PIN Encipherment Public Key Certificate", "b", "card", 0x70),
    0x9F2E: _t("ICC PIN Encipherment Public Key Exponent", "b", "card", 0x70),
    0x9F2F: _t("ICC PIN Encipherment Public Key Remainder", "b", "card", 0x70),
    0x9F32: _t("Issuer Public Key Exponent", "b", "card", 0x70),
    0x9F33: _t("Terminal Capabilities", "b", "terminal"),
    0x9F34: _t("Cardholder Verification Method (CVM) Results", "b", "terminal"),
    0x9F35: _t("Terminal Type", "n", "terminal"),
    0x9F36: _t("Application Transaction Counter (ATC)", "b", "card", 0x77),
    0x9F37: _t("Unpredictable Number", "b", "terminal"),
    0x9F38: _t("Processing Options Data Object List (PDOL)", "b", "card", 0xA5),
    0x9F39: _t("Point-of-Service (POS) Entry Mode", "n", "terminal"),
    0x9F3A: _t("Amount, Reference Currency", "b", "terminal"),
    0x9F3B: _t("Application Reference Currency", "n", "card", 0x70),
    0x9F3C: _t("Transaction Reference Currency Code", "n", "terminal"),
    0x9F3D: _t("Transaction Reference Currency Exponent", "n", "terminal"),
    0x9F40: _t("Additional Terminal Capabilities", "b", "terminal"),
    0x9F41: _t("Transaction Sequence Counter", "n", "terminal"),
    0x9F42: _t("Application Currency Code", "n", "card", 0x70),
    0x9F43: _t("Application Reference Currency Exponent", "n", "card", 0x70),
    0x9F44: _t("Application Currency Exponent", "n", "card", 0x70),
    0x9F45: _t("Data Authentication Code", "b", "card"),
    0x9F46: _t("ICC Public Key Certificate", "b", "card", 0x70),
    0x9F47: _t("ICC Public Key Exponent", "b", "card", 0x70),
    0x9F48: _t("ICC Public Key Remainder", "b", "card", 0x70),
    0x9F49: _t("Dynamic Data Authentication Data Object List (DDOL)", "b", "card", 0x70),
    0x9F4A: _t("Static Data Authentication Tag List", "b", "card", 0x70),
    0x9F4B: _t("Signed Dynamic Application Data (SDAD)", "b", "card", 0x77),
    0x9F4C: _t("ICC Dynamic Number", "b", "card"),
    0x9F4D: _t("Log Entry", "b", "card", 0xBF0C),
    0x9F4E: _t("Merchant Name and Location", "ans", "terminal"),
    0x9F4F: _t("Log Format", "b", "card"),
    0xA5: _t("File Control Information (FCI) Proprietary Template", "b", "card", 0x6F),
    0xBF0C: _t("File Control Information (FCI) Issuer Discretionary Data", "b", "card", 0xA5),
    # ---- Book B, Entry Point ----------------------------------------------------
    0x9F29: _t("Extended Selection", "b", "card", 0x61),
    0x9F2A: _t("Kernel Identifier", "b", "card", 0x61),
    # ---- Book C-3 (Visa-style qVSDC) --------------------------------------------
    0x9F5A: _t("Application Program Identifier", "b", "card", 0xBF0C),
    0x9F5D: _t(
        "Available Offline Spending Amount (C-3) / Application Capabilities Information (C-2)",
        "b",
        "card",
    ),
    0x9F66: _t("Terminal Transaction Qualifiers (TTQ)", "b", "terminal"),
    0x9F68: _t("Card Additional Processes", "b", "card"),
    0x9F69: _t("Card Authentication Related Data (C-3) / UDOL (C-2)", "b", "card", 0x70),
    0x9F6B: _t("Card CVM Limit (C-3) / Track 2 Data (C-2)", "b", "card", 0x70),
    0x9F6C: _t("Card Transaction Qualifiers (CTQ)", "b", "card", 0x77),
    0x9F6E: _t("Form Factor Indicator (C-3) / Third Party Data (C-2)", "b", "card"),
    0x9F7A: _t("VLP Terminal Support Indicator (C-3) / EC Terminal Support Indicator (C-7)", "b", "terminal"),
    0x9F7B: _t("VLP Terminal Transaction Limit (C-3) / EC Terminal Transaction Limit (C-7)", "n", "terminal"),
    0x9F74: _t("VLP Issuer Authorisation Code (C-3) / Protected Data Envelope 5 (C-2)", "b", "card"),
    0x9F7C: _t("Customer Exclusive Data (C-3) / Merchant Custom Data (C-2)", "b", "card"),
    # ---- Book C-2 (Mastercard-style) --------------------------------------------
    0x9F50: _t("Offline Accumulator Balance", "n", "card"),
    0x9F51: _t("DRDOL", "b", "card", 0x70),
    0x9F53: _t("Transaction Category Code", "an", "terminal"),
    0x9F54: _t("DS ODS Card", "b", "card"),
    0x9F5C: _t("DS Requested Operator ID", "b", "terminal"),
    0x9F5E: _t("DS ID", "b", "card"),
    0x9F5F: _t("DS Slot Availability", "b", "card"),
    0x9F60: _t("CVC3 (Track1)", "b", "card"),
    0x9F61: _t("CVC3 (Track2)", "b", "card"),
    0x9F62: _t("PCVC3 (Track1)", "b", "card"),
    0x9F63: _t("PUNATC (Track1)", "b", "card"),
    0x9F64: _t("NATC (Track1)", "b", "card"),
    0x9F65: _t("PCVC3 (Track2)", "b", "card"),
    0x9F67: _t("NATC (Track2)", "b", "card"),
    0x9F6A: _t("Unpredictable Number (Numeric)", "n", "terminal"),
    0x9F6D: _t("Mag-stripe Application Version Number (Reader) (C-2) / EC Reset Threshold (C-7)", "b", "terminal"),
    0x9F6F: _t("DS Slot Management Control", "b", "card"),
    0x9F70: _t("Protected Data Envelope 1", "b", "card"),
    0x9F71: _t("Protected Data Envelope 2", "b", "card"),
    0x9F72: _t("Protected Data Envelope 3", "b", "card"),
    0x9F73: _t("Protected Data Envelope 4", "b", "card"),
    0x9F75: _t("Unprotected Data Envelope 1", "b", "card"),
    0x9F76: _t("Unprotected Data Envelope 2", "b", "card"),
    0x9F77: _t("Unprotected Data Envelope 3 (C-2) / EC Balance Limit (C-7)", "b", "card"),
    0x9F78: _t("Unprotected Data Envelope 4 (C-2) / EC Single Transaction Limit (C-7)", "b", "card"),
    0x9F79: _t("Unprotected Data Envelope 5 (C-2) / EC Balance (C-7)", "b", "card"),
    0x9F7D: _t("DS Summary 1", "b", "card"),
    0x9F7E: _t("Mobile Support Indicator", "b", "terminal"),
    0x9F7F: _t("DS Unpredictable Number", "b", "terminal"),
    0xDF4B: _t("POS Cardholder Interaction Information", "b", "card", 0x77),
    0xDF60: _t("DS Input (Card)", "b", "card"),
    0xDF61: _t("DS Digest H", "b", "card"),
    0xDF62: _t("DS ODS Info", "b", "card"),
    0xDF63: _t("DS ODS Term", "b", "card"),
    0xDF8101: _t("DS Summary 2", "b", "card"),
    0xDF8102: _t("DS Summary 3", "b", "card"),
    0xDF8104: _t("Balance Read Before Gen AC", "n", "terminal"),
    0xDF8105: _t("Balance Read After Gen AC", "n", "terminal"),
    0xDF8106: _t("Data Needed", "b", "terminal"),
    0xDF8107: _t("CDOL1 Related Data", "b", "terminal"),
    0xDF8108: _t("DS AC Type", "b", "terminal"),
    0xDF8109: _t("DS Input (Term)", "b", "terminal"),
    0xDF810A: _t("DS ODS Info For Reader", "b", "terminal"),
    0xDF810B: _t("DS Summary Status", "b", "terminal"),
    0xDF810C: _t("Kernel ID", "b", "terminal"),
    0xDF810D: _t("DSVN Term", "b", "terminal"),
    0xDF810E: _t("Post-Gen AC Put Data Status", "b", "terminal"),
    0xDF810F: _t("Pre-Gen AC Put Data Status", "b", "terminal"),
    0xDF8110: _t("Proceed To First Write Flag", "b", "terminal"),
    0xDF8111: _t("PDOL Related Data", "b", "terminal"),
    0xDF8112: _t("Tags To Read", "b", "terminal"),
    0xDF8113: _t("DRDOL Related Data", "b", "terminal"),
    0xDF8114: _t("Reference Control Parameter", "b", "terminal"),
    0xDF8115: _t("Error Indication", "b", "terminal"),
    0xDF8116: _t("User Interface Request Data", "b", "terminal"),
    0xDF8117: _t("Card Data Input Capability", "b", "terminal"),
    0xDF8118: _t("CVM Capability - CVM Required", "b", "terminal"),
    0xDF8119: _t("CVM Capability - No CVM Required", "b", "terminal"),
    0xDF811A: _t("Default UDOL", "b", "terminal"),
    0xDF811B: _t("Kernel Configuration", "b", "terminal"),
    0xDF811C: _t("Max Lifetime of Torn Transaction Log Record", "b", "terminal"),
    0xDF811D: _t("Max Number of Torn Transaction Log Records", "b", "terminal"),
    0xDF811E: _t("Mag-stripe CVM Capability - CVM Required", "b", "terminal"),
    0xDF811F: _t("Security Capability", "b", "terminal"),
    0xDF8120: _t("Terminal Action Code - Default", "b", "terminal"),
    0xDF8121: _t("Terminal Action Code - Denial", "b", "terminal"),
    0xDF8122: _t("Terminal Action Code - Online", "b", "terminal"),
    0xDF8123: _t("Reader Contactless Floor Limit", "n", "terminal"),
    0xDF8124: _t("Reader Contactless Transaction Limit (No On-device CVM)", "n", "terminal"),
    0xDF8125: _t("Reader Contactless Transaction Limit (On-device CVM)", "n", "terminal"),
    0xDF8126: _t("Reader CVM Required Limit", "n", "terminal"),
    0xDF8127: _t("Time Out Value", "b", "terminal"),
    0xDF8128: _t("IDS Status", "b", "terminal"),
    0xDF8129: _t("Outcome Parameter Set", "b", "terminal"),
    0xDF812A: _t("DD Card (Track1)", "ans", "terminal"),
    0xDF812B: _t("DD Card (Track2)", "b", "terminal"),
    0xDF812C: _t("Mag-stripe CVM Capability - No CVM Required", "b", "terminal"),
    0xDF812D: _t("Message Hold Time", "n", "terminal"),
    0xDF8130: _t("Hold Time Value", "b", "terminal"),
    0xDF8131: _t("Phone Message Table", "b", "terminal"),
    0xDF8132: _t("Minimum Relay Resistance Grace Period", "b", "terminal"),
    0xDF8133: _t("Maximum Relay Resistance Grace Period", "b", "terminal"),
    0xDF8134: _t("Terminal Expected Transmission Time For Relay Resistance C-APDU", "b", "terminal"),
    0xDF8135: _t("Terminal Expected Transmission Time For Relay Resistance R-APDU", "b", "terminal"),
    0xDF8136: _t("Relay Resistance Accuracy Threshold", "b", "terminal"),
    0xDF8137: _t("Relay Resistance Transmission Time Mismatch Threshold", "b", "terminal"),
    0xDF8301: _t("Terminal Relay Resistance Entropy", "b", "terminal"),
    0xDF8302: _t("Device Relay Resistance Entropy", "b", "card"),
    0xDF8303: _t("Min Time For Processing Relay Resistance APDU", "b", "card"),
    0xDF8304: _t("Max Time For Processing Relay Resistance APDU", "b", "card"),
    0xDF8305: _t("Device Estimated Transmission Time For Relay Resistance R-APDU", "b", "card"),
    0xDF8306: _t("Measured Relay Resistance Processing Time", "b", "terminal"),
    0xDF8307: _t("RRP Counter", "b", "terminal"),
    0xFF8101: _t("Torn Record", "b", "terminal"),
    0xFF8102: _t("Tags To Write Before Gen AC", "b", "terminal"),
    0xFF8103: _t("Tags To Write After Gen AC", "b", "terminal"),
    0xFF8104: _t("Data To Send", "b", "terminal"),
    0xFF8105: _t("Data Record", "b", "terminal"),
    0xFF8106: _t("Discretionary Data", "b", "terminal"),
}


def format_of(tag: int) -> str:
    """The data format of ``tag``; unknown tags are binary (``'b'``).

    >>> format_of(0x9F02), format_of(0x5A), format_of(0x9F66)
    ('n', 'cn', 'b')
    """
    info = TAGS.get(tag)
    return info.format if info is not None else "b"


def name_of(tag: int) -> str:
    """The book name of ``tag``, or ``'Unknown tag XXXX'``.

    >>> name_of(0x5A)
    'Application Primary Account Number (PAN)'
    >>> name_of(0x9F8F01)
    'Unknown tag 9F8F01'
    """
    info = TAGS.get(tag)
    if info is not None:
        return info.name
    try:
        return f"Unknown tag {tag_hex(tag)}"
    except ValueError:
        return f"Unknown tag {tag}"


def source_of(tag: int) -> str | None:
    """Who provides ``tag`` (``card``, ``terminal``, ``issuer``), None if unknown.

    >>> source_of(0x9F37), source_of(0x9F26), source_of(0x91)
    ('terminal', 'card', 'issuer')
    """
    info = TAGS.get(tag)
    return info.source if info is not None else None


# Lengths in bytes (least, most) of the data objects the terminal provides, from EMV Book 3
# Annex A and Book C-2 Annex A ("var." lengths with no upper bound in the books are left out).
# A DOL asks for a fixed length and emv.dol.fit pads or cuts a value to it; so a value given
# from outside (``posterm emv tap --set``) is checked against these before it is used, or a
# too long value would be cut silently and the card would see something else than was asked.
LENGTHS: dict[int, tuple[int, int]] = {
    0x5F2A: (2, 2),  # n3
    0x5F36: (1, 1),  # n1
    0x5F57: (1, 1),  # n2
    0x81: (4, 4),
    0x95: (5, 5),
    0x98: (20, 20),
    0x9A: (3, 3),  # n6 YYMMDD
    0x9B: (2, 2),
    0x9C: (1, 1),  # n2
    0x9F01: (6, 6),  # n6-11
    0x9F02: (6, 6),  # n12
    0x9F03: (6, 6),  # n12
    0x9F04: (4, 4),
    0x9F06: (5, 16),
    0x9F09: (2, 2),
    0x9F15: (2, 2),  # n4
    0x9F16: (15, 15),  # ans15
    0x9F1A: (2, 2),  # n3
    0x9F1B: (4, 4),
    0x9F1C: (8, 8),  # an8
    0x9F1D: (1, 8),
    0x9F1E: (8, 8),  # an8
    0x9F21: (3, 3),  # n6 HHMMSS
    0x9F22: (1, 1),
    0x9F33: (3, 3),
    0x9F34: (3, 3),
    0x9F35: (1, 1),  # n2
    0x9F37: (4, 4),
    0x9F39: (1, 1),  # n2
    0x9F3A: (4, 4),
    0x9F3C: (2, 2),  # n3
    0x9F3D: (1, 1),  # n1
    0x9F40: (5, 5),
    0x9F41: (2, 4),  # n4-8
    0x9F53: (1, 1),  # an1
    0x9F5C: (8, 8),
    0x9F66: (4, 4),
    0x9F6A: (4, 4),  # n8
    0x9F6D: (2, 2),
    0x9F7A: (1, 1),
    0x9F7B: (6, 6),  # n12
    0x9F7E: (1, 1),
    0x9F7F: (4, 4),
    0xDF8104: (6, 6),  # n12
    0xDF8105: (6, 6),  # n12
    0xDF8108: (1, 1),
    0xDF8109: (8, 8),
    0xDF810A: (1, 1),
    0xDF810B: (1, 1),
    0xDF810C: (1, 1),
    0xDF810E: (1, 1),
    0xDF810F: (1, 1),
    0xDF8110: (1, 1),
    0xDF8114: (1, 1),
    0xDF8115: (6, 6),
    0xDF8116: (22, 22),
    0xDF8117: (1, 1),
    0xDF8118: (1, 1),
    0xDF8119: (1, 1),
    0xDF811A: (3, 3),
    0xDF811B: (1, 1),
    0xDF811C: (2, 2),
    0xDF811D: (1, 1),
    0xDF811E: (1, 1),
    0xDF811F: (1, 1),
    0xDF8120: (5, 5),
    0xDF8121: (5, 5),
    0xDF8122: (5, 5),
    0xDF8123: (6, 6),  # n12
    0xDF8124: (6, 6),  # n12
    0xDF8125: (6, 6),  # n12
    0xDF8126: (6, 6),  # n12
    0xDF8127: (2, 2),
    0xDF8128: (1, 1),
    0xDF8129: (8, 8),
    0xDF812A: (0, 56),  # ans..56
    0xDF812B: (8, 8),
    0xDF812C: (1, 1),
    0xDF812D: (3, 3),  # n6
    0xDF8130: (1, 1),
    0xDF8132: (2, 2),
    0xDF8133: (2, 2),
    0xDF8134: (2, 2),
    0xDF8135: (2, 2),
    0xDF8136: (2, 2),
    0xDF8137: (1, 1),
    0xDF8301: (4, 4),
    0xDF8306: (2, 2),
    0xDF8307: (1, 1),
}

#: The longest value a DOL can ask for (its length is one byte): the bound for tags with no length above.
MAX_DOL_LENGTH = 255


def _format_error(fmt: str, value: bytes) -> str | None:
    if fmt == "n" and not value.hex().isdigit():
        return "numeric (n): BCD digits 0-9 only"
    if fmt == "cn" and not value.hex().upper().rstrip("F").isdigit() and value:
        return "compressed numeric (cn): digits, then F padding"
    if fmt == "an" and not all(chr(c).isalnum() and c < 0x80 for c in value):
        return "alphanumeric (an): letters and digits only"
    if fmt == "ans" and not all(0x20 <= c < 0x7F for c in value):
        return "alphanumeric special (ans): printable ASCII only"
    return None


def check_terminal_value(tag: int, value: bytes) -> str | None:
    """Why ``value`` cannot stand for the terminal's data object ``tag``; None when it can.

    The tag must be one the terminal provides (not the card's or the
    issuer's), the value's length within :data:`LENGTHS` (at most
    :data:`MAX_DOL_LENGTH` for tags the books give no bound or the dictionary
    does not know), and its bytes of the tag's format.

    >>> check_terminal_value(0x9F1A, bytes.fromhex("0840")) is None
    True
    >>> check_terminal_value(0x9F1A, bytes.fromhex("084000"))
    'Terminal Country Code (9F1A) is 2 bytes, got 3'
    >>> check_terminal_value(0x9F02, bytes.fromhex("00000000AB00"))
    'Amount, Authorised (Numeric) (9F02) is numeric (n): BCD digits 0-9 only'
    >>> check_terminal_value(0x5A, bytes.fromhex("4761739001010010"))
    'Application Primary Account Number (PAN) (5A) comes from the card, not the terminal'
    """
    info = TAGS.get(tag)
    label = f"{name_of(tag)} ({tag_hex(tag)})" if info is not None else f"tag {tag_hex(tag)}"
    if info is not None and info.source != "terminal":
        return f"{label} comes from the {info.source}, not the terminal"
    low, high = LENGTHS.get(tag, (0, MAX_DOL_LENGTH))
    if not low <= len(value) <= high:
        size = f"{low}" if low == high else f"{low} to {high}"
        return f"{label} is {size} bytes, got {len(value)}"
    if info is not None:
        why = _format_error(info.format, value)
        if why is not None:
            return f"{label} is {why}"
    return None
