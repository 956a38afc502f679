"""The PAN: read from a card's data, masked wherever it is shown, scrubbed from free text.

One module for the rules that keep card numbers out of sight (DESIGN §5: the
PAN is stored encrypted; everywhere else it appears masked):

- :func:`pan_of` reads the PAN from 5A or, when the card gave no 5A, from track 2
  equivalent data (57); anything but 12 to 19 digits is no PAN (``None``);
- :func:`mask_pan` is what may be shown of a PAN (see its rule);
- :func:`mask_text` masks every run of 12 or more digits in free text (logs,
  traces, error messages, support bundles) with :func:`mask_pan`;
- :func:`mask_hex` shows card data as hex with the PAN, track data and the
  cardholder's name masked inside TLV, and digit runs masked elsewhere;
  :func:`mask_command` and :func:`mask_response` show whole APDUs that way
  (APDU traces, driver and simulator logs).

12 digits, not 13: a Maestro PAN can be 12 digits long (ISO/IEC 7812 allows
8 to 19; the card schemes issue 12 to 19).

>>> pan = pan_of({0x57: bytes.fromhex("5413330089010038D25122010000000000000F")})
>>> pan, mask_pan(pan)
('5413330089010038', '541333******0038')
>>> mask_text("card 6759 6498 2643 declined")
'card 67******2643 declined'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

from emv import tlv

__all__ = [
    "PAN_MAX_DIGITS",
    "PAN_MIN_DIGITS",
    "mask_command",
    "mask_hex",
    "mask_pan",
    "mask_response",
    "mask_text",
    "pan_of",
]

#: The shortest and the longest PAN the schemes issue (a Maestro PAN can be 12 digits).
PAN_MIN_DIGITS: Final = 12
PAN_MAX_DIGITS: Final = 19

#: Digits of a PAN that always stay hidden: as many as a 16-digit PAN hides when its
#: first 6 and last 4 are shown.
_MIN_HIDDEN: Final = 6
_MAX_FIRST: Final = 6
_LAST: Final = 4

# 12 or more digits, possibly grouped with single spaces or dashes ("4761 7390 0101 0010"), as
# a PAN is printed or typed.  A posterm transaction id (14 digits of UTC time, a dash, 12 hex
# digits) is left alone: it is no card number and a technician needs to read it.
_PAN_LIKE: Final = re.compile(
    r"(?<!\d)(?!\d{14}-[0-9a-f]{12}(?![0-9a-f]))\d(?:[ -]?\d){11,}(?!\d)"  # 1 + 11: PAN_MIN_DIGITS
)
_SEPARATORS: Final = re.compile(r"[ -]")

_INS_SELECT: Final = 0xA4
_INS_PIN: Final = frozenset({0x20, 0x24})  # VERIFY, CHANGE REFERENCE DATA: their data is a PIN block

# Tags whose values are card numbers, track data or the cardholder's name.
_PAN_TAGS: Final = frozenset({0x5A})
_TRACK2_TAGS: Final = frozenset({0x57, 0x9F6B})  # track 2 equivalent data; track 2 data (Mastercard)
_NAME_TAGS: Final = frozenset({0x5F20, 0x56, 0x9F1F, 0x9F0B})  # name, track 1, track 1 discretionary, name ext.


def _is_pan(digits: str) -> bool:
    return digits.isascii() and digits.isdigit() and PAN_MIN_DIGITS <= len(digits) <= PAN_MAX_DIGITS


def pan_of(card_data: Mapping[int, bytes]) -> str | None:
    """The PAN from 5A or, when there is no 5A, from track 2 equivalent data (57).

    5A is the PAN in BCD, padded with a trailing ``F`` to a whole byte; in 57
    the PAN is the digits before the ``D`` field separator.  A card that sends
    5A is taken at its word: a malformed 5A gives ``None``, not 57's digits.
    The PAN must be 12 to 19 digits; anything else is ``None``.

    >>> pan_of({0x5A: bytes.fromhex("4761739001010010")})
    '4761739001010010'
    >>> pan_of({0x5A: bytes.fromhex("67596498264384534F")})  # 17 digits, F padded
    '67596498264384534'
    >>> pan_of({0x57: bytes.fromhex("4761739001010010D25122010000000000000F")})
    '4761739001010010'
    >>> pan_of({0x5A: bytes.fromhex("675964982643")})  # 12 digits: a Maestro PAN
    '675964982643'
    >>> [pan_of(d) for d in ({}, {0x5A: bytes.fromhex("12345678")}, {0x57: bytes.fromhex("4761739001010010")},
    ...                      {0x5A: bytes.fromhex("47617390010100AB")})]
    [None, None, None, None]
    """
    raw = card_data.get(0x5A)
    if raw is not None:
        digits = raw.hex().upper().rstrip("F")
    else:
        track2 = card_data.get(0x57)
        if track2 is None:
            return None
        digits, separator, _ = track2.hex().upper().partition("D")
        if not separator:
            return None
    return digits if _is_pan(digits) else None


def mask_pan(pan: str) -> str:
    """What may be shown of ``pan``: the last 4 digits and at most the first 6, with 6 always hidden.

    The rule (PCI DSS 3.4.1: the BIN and the last four digits are the most that
    may be shown) for every length: the last 4 digits show, at least 6 digits
    stay hidden (as many as a 16-digit PAN hides), and the first digits show up
    to 6 with what is left.  So a 16 to 19-digit PAN shows its first 6 and last
    4, a 15-digit one its first 5, a 12-digit Maestro PAN its first 2.  Trailing
    ``F`` padding (BCD) is dropped.  Anything that is not 12 or more digits is
    hidden whole: it cannot be told apart from part of a PAN.

    >>> mask_pan("4761739001010010")
    '476173******0010'
    >>> mask_pan("6759649826438453017")  # 19 digits
    '675964*********3017'
    >>> mask_pan("374245455400126")  # 15 digits
    '37424******0126'
    >>> mask_pan("675964982643")  # 12 digits: first 2, last 4
    '67******2643'
    >>> mask_pan("4761739001010010F")
    '476173******0010'
    >>> mask_pan("1234"), mask_pan("47617390010100AB")
    ('****', '****************')
    """
    digits = pan.rstrip("Ff")
    if not (digits.isascii() and digits.isdigit()) or len(digits) < PAN_MIN_DIGITS:
        return "*" * len(digits)
    first = min(_MAX_FIRST, len(digits) - _LAST - _MIN_HIDDEN)
    return digits[:first] + "*" * (len(digits) - first - _LAST) + digits[-_LAST:]


def _mask_match(match: re.Match[str]) -> str:
    return mask_pan(_SEPARATORS.sub("", match.group(0)))


def mask_text(text: str) -> str:
    """``text`` with every run of 12 or more digits masked by :func:`mask_pan`.

    Digits grouped by single spaces or dashes count as one run, as a PAN is
    printed ("4761 7390 0101 0010"), and are shown ungrouped once masked.  A run
    longer than 19 digits is masked whole: it may hold a PAN among other digits
    (BCD card data in hex, say).

    >>> mask_text("card 4761739001010010 declined, ref 12345")
    'card 476173******0010 declined, ref 12345'
    >>> mask_text("PAN 4761 7390 0101 0010, Maestro 6759-6498-2643")
    'PAN 476173******0010, Maestro 67******2643'
    >>> mask_text("5A0847617390010100105F24")
    '5A084761*********0105F24'
    >>> mask_text("txn 20240501120000-0a1b2c3d4e5f at 2024-05-01 12:00:00, amount 12345678901")
    'txn 20240501120000-0a1b2c3d4e5f at 2024-05-01 12:00:00, amount 12345678901'
    """
    return _PAN_LIKE.sub(_mask_match, text)


def _mask_bcd(hex_digits: str) -> str:
    """A PAN in BCD hex, masked; its ``F`` padding kept so that the hex keeps its length."""
    digits = hex_digits.rstrip("F")
    return mask_pan(digits) + hex_digits[len(digits) :]


def _mask_value(tag: int, value: bytes) -> str:
    text = value.hex().upper()
    if tag in _PAN_TAGS:
        return _mask_bcd(text)
    if tag in _TRACK2_TAGS:
        pan, separator, rest = text.partition("D")
        return _mask_bcd(pan) + separator + "*" * len(rest)
    if tag in _NAME_TAGS:
        return "*" * len(text)
    # Another tag's value shows as it is (AIDs, cryptograms and labels are no secret), unless it
    # carries a card number as text (track 1 style data under a proprietary tag, say).
    if _PAN_LIKE.search(value.decode("latin-1")):
        return "*" * len(text)
    return text


def _mask_tlv(objects: Iterable[tlv.Tlv]) -> list[list[str]]:
    """The objects as shown: one token an object, each the segments [tag and length, value]."""
    out: list[list[str]] = []
    for obj in objects:
        head = tlv.encode_tag(obj.tag).hex().upper() + tlv.encode_length(len(obj.value)).hex().upper()
        if obj.children is not None:
            out.append([head])
            out.extend(_mask_tlv(obj.children))
        else:
            out.append([head, _mask_value(obj.tag, obj.value)])
    return out


_DIGIT_RUN: Final = re.compile(r"\d{12,}")


def mask_hex(data: bytes) -> str:
    """Hex of card data (a C-APDU, or an R-APDU's data) with card numbers and names masked.

    Where ``data`` parses as TLV, each object is shown apart: the PAN (5A)
    masked by :func:`mask_pan`, track 2 data (57, 9F6B) masked after its PAN,
    names and track 1 data (5F20, 56, 9F1F, 9F0B) hidden, and any value that
    holds 12 or more digits as text hidden; other values show as they are.
    What does not parse is shown through :func:`mask_text`.

    >>> mask_hex(bytes.fromhex("70105A0847617300000000105F2403301231"))
    '7010 5A08476173******0010 5F2403301231'
    >>> mask_hex(bytes.fromhex("5713 4761739001010010D25122010000000000000F"))
    '5713476173******0010D*********************'
    >>> mask_hex(bytes.fromhex("6F1B840E325041592E5359532E4444463031A5094F07A0000000031010"))
    '6F1B 840E325041592E5359532E4444463031 A509 4F07A0000000031010'
    >>> mask_hex(bytes.fromhex("9F4B8A4761739001010010"))  # not TLV: digit runs masked
    '9F4B8A476173******0010'
    """
    try:
        objects = tlv.decode(data)
    except tlv.TlvError:
        objects = []
    if objects:
        return " ".join(_hide_runs_across(_mask_tlv(objects)))
    return mask_text(data.hex().upper())


def _hide_runs_across(tokens: list[list[str]]) -> list[str]:
    """The tokens joined, with every run of 12 or more digits that crosses a segment hidden.

    Bytes that happen to parse as TLV may split a PAN into a tag, a length and
    a value, or into several objects, each too short to be masked, which a
    reader joins again.  A run within one value was judged with that value
    (an AID shows as it is).
    """
    segments = [segment for token in tokens for segment in token]
    joined = "".join(segments)
    ends: list[int] = []
    position = 0
    for segment in segments:
        position += len(segment)
        ends.append(position)
    hidden = list(joined)
    for run in _DIGIT_RUN.finditer(joined):
        if any(run.start() < end < run.end() for end in ends):
            hidden[run.start() : run.end()] = "*" * (run.end() - run.start())
    out: list[str] = []
    start = 0
    for token in tokens:
        width = sum(len(segment) for segment in token)
        out.append("".join(hidden[start : start + width]))
        start += width
    return out


def mask_command(command: bytes) -> str:
    """A C-APDU as hex, ``header+Lc data Le``, with its data masked.

    The data is shown apart from the header and Le, so that no digit run
    crosses them: SELECT's data (an application or file name) shows as it is,
    VERIFY's and CHANGE REFERENCE DATA's (a PIN block) is hidden whole, and
    any other command's goes through :func:`mask_hex`.  What is not a short
    APDU goes through :func:`mask_text` whole.

    >>> mask_command(bytes.fromhex("00A404000E325041592E5359532E444446303100"))
    '00A404000E 325041592E5359532E4444463031 00'
    >>> mask_command(bytes.fromhex("00B2010C00")), mask_command(bytes.fromhex("0020008008241234FFFFFFFFFF"))
    ('00B2010C 00', '0020008008 ****************')
    >>> mask_command(bytes.fromhex("80E2000008 4761739001010010"))
    '80E2000008 476173******0010'
    """
    header, body = command[:4].hex().upper(), command[4:]
    if not body:
        return mask_text(header)
    if len(body) == 1:
        return f"{header} {body.hex().upper()}"
    lc = body[0]
    if lc == 0 or len(body) not in (lc + 1, lc + 2):  # extended length, or Lc does not fit
        return mask_text(f"{header} {body.hex().upper()}")
    data, le = body[1 : 1 + lc], body[1 + lc :]
    if command[1] == _INS_SELECT:
        shown = data.hex().upper()
    elif command[1] in _INS_PIN:
        shown = "*" * (2 * len(data))
    else:
        # A command's data is DOL-built raw bytes (PDOL, CDOL, DDOL data), not TLV: read as TLV,
        # it splits into pieces each too short to look like a PAN.  As one hex text, any PAN in
        # it is a run of digits that mask_text finds.
        shown = mask_text(data.hex().upper())
    return " ".join([f"{header}{lc:02X}", shown, *([le.hex().upper()] if le else [])])


def mask_response(response: bytes) -> str:
    """An R-APDU as hex, ``data SW1SW2``, with its data masked by :func:`mask_hex`.

    >>> mask_response(bytes.fromhex("70105A0847617300000000105F2403301231 9000"))
    '7010 5A08476173******0010 5F2403301231 9000'
    >>> mask_response(bytes.fromhex("6A82")), mask_response(b"")
    ('6A82', '')
    """
    if len(response) < 2:
        return mask_text(response.hex().upper())
    body, sw = response[:-2], response[-2:].hex().upper()
    return f"{mask_hex(body)} {sw}" if body else sw
