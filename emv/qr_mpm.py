"""EMV QR Code, merchant-presented mode (EMVCo MPM specification v1.0): a strict decoder and an encoder.

A payload is a run of objects ``ID LL VALUE``: a two-digit ID, a two-digit
length (01-99) counted in *characters*, not bytes, and the value.  The
payload format indicator (ID 00, "01") comes first and the CRC (ID 63) last;
the CRC is CRC-16/CCITT-FALSE over the UTF-8 bytes of everything before its
value, its own "6304" included, written as four hex digits.

An ID means what its level says: 02-25 are primitive merchant accounts
(never parsed as templates: UnionPay's 15 is a plain 31-character string),
26-51 and 80-99 are templates whose sub-ID 00 is a globally unique
identifier, 62 holds the additional data (its 50-99 are templates again), 64
the merchant's name and city in another language.  RFU and unknown IDs are
kept in ``unknown`` and written back.

Decoding is strict: every error is an :class:`MpmError` (a ``ValueError``)
whose message names the ID (``62.05`` inside a template) and the character
position where the object starts.  It checks the CRC (present, last, right;
its hex compared in either case), the structure (00 "01" first, each ID once
per level, lengths 01-99 that fit), the numeric and amount formats, maximum
lengths, 55/56/57 against each other and the mandatory objects (52, 53, 58,
59, 60, a merchant account 02-51).  It does not police character sets: a
name outside the EMV common character set is read as it is.  :func:`encode`
writes objects in ID order with the CRC in upper-case hex, and decodes its
own result, so it never gives out a code :func:`decode` refuses.

>>> code = decode(ANNEX_B)
>>> code.merchant_name, code.amount_value, code.currency, code.language.merchant_name
('BEST TRANSPORT', Decimal('23.72'), '156', '最佳运输')
>>> code.template("29").gui, code.additional_data.terminal_label
('D15600000000', 'A6008667')
>>> decode(encode(code)) == code
True
>>> decode(ANNEX_B[:-1] + "B")
Traceback (most recent call last):
emv.qr_mpm.CrcError: CRC A13B is wrong, the payload's is A13A (ID 63, character 240)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Final

__all__ = [
    "ANNEX_B",
    "AdditionalData",
    "CrcError",
    "DuplicateObject",
    "InvalidValue",
    "LanguageTemplate",
    "MalformedObject",
    "MerchantPresentedCode",
    "MissingObject",
    "MpmError",
    "Template",
    "crc16",
    "decode",
    "encode",
    "with_crc",
]

#: The example of the specification's Annex B (its CRC recomputed: A13A).
ANNEX_B: Final = (
    "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST "
    "TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A600866709"
    "02ME91320016A0112233449988770708123456786304A13A"
)

Pairs = tuple[tuple[str, str], ...]


class MpmError(ValueError):
    """A payload that is not a valid MPM code; ``id`` is the object's ID path, ``position`` its first character."""

    def __init__(self, reason: str, ident: str | None, position: int) -> None:
        where = f"ID {ident}, character {position}" if ident is not None else f"character {position}"
        super().__init__(f"{reason} ({where})")
        self.reason = reason
        self.id = ident
        self.position = position


class MalformedObject(MpmError):
    """An ID, a length or a value that cannot be read: the payload's structure is broken."""


class CrcError(MpmError):
    """The CRC (ID 63) is missing, not last, not four hex digits, or wrong."""


class DuplicateObject(MpmError):
    """An ID given twice at one level."""


class MissingObject(MpmError):
    """A mandatory object is absent; the position is that of the template (or the payload's end)."""


class InvalidValue(MpmError):
    """A value of the wrong format or length, or objects that contradict each other (55/56/57)."""


# ----------------------------------------------------------------------------------------- CRC


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE: Final = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (ISO/IEC 13239: polynomial 1021, initial FFFF, no reflection, no final XOR).

    >>> f"{crc16(b'123456789'):04X}"
    '29B1'
    """
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


# ------------------------------------------------------------------------------------- the model


def _sorted_pairs(pairs: Pairs) -> Pairs:
    return tuple(sorted((str(k), str(v)) for k, v in pairs))


@dataclass(frozen=True)
class Template:
    """A template with a globally unique identifier (sub-ID 00): merchant accounts 26-51, 80-99, 62's 50-99.

    ``fields`` are the other sub-objects (ID, value), sorted by ID.
    """

    id: str
    gui: str
    fields: Pairs = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", _sorted_pairs(self.fields))

    def field(self, sub_id: str) -> str | None:
        """The value of sub-ID ``sub_id``, or None."""
        return dict(self.fields).get(sub_id)


@dataclass(frozen=True)
class AdditionalData:
    """ID 62.  ``unknown`` holds 00 and the RFU 10-49 as they came; "***" in 01-08 asks the app to prompt."""

    bill_number: str | None = None  # 01
    mobile_number: str | None = None  # 02
    store_label: str | None = None  # 03
    loyalty_number: str | None = None  # 04
    reference_label: str | None = None  # 05
    customer_label: str | None = None  # 06
    terminal_label: str | None = None  # 07
    purpose: str | None = None  # 08
    consumer_data_request: str | None = None  # 09: any of "A", "M", "E", each once
    templates: tuple[Template, ...] = ()  # 50-99
    unknown: Pairs = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "templates", tuple(sorted(self.templates, key=lambda t: t.id)))
        object.__setattr__(self, "unknown", _sorted_pairs(self.unknown))


_ADDITIONAL: Final = {f"{n:02d}": f.name for n, f in enumerate(fields(AdditionalData)[:9], start=1)}


@dataclass(frozen=True)
class LanguageTemplate:
    """ID 64: the merchant's name and city in another language (ISO 639 language, two characters)."""

    language: str  # 00
    merchant_name: str  # 01
    merchant_city: str | None = None  # 02
    unknown: Pairs = ()  # 03-99 (RFU)

    def __post_init__(self) -> None:
        object.__setattr__(self, "unknown", _sorted_pairs(self.unknown))


@dataclass(frozen=True)
class MerchantPresentedCode:
    """One MPM code.  Values are kept as the payload has them (the amount "98." stays "98.").

    ``accounts`` are the primitive merchant accounts 02-25 (ID, value); ``templates`` the
    templates 26-51 and 80-99; ``unknown`` the RFU root IDs 65-79; each sorted by ID.
    """

    merchant_category_code: str  # 52, four digits
    currency: str  # 53, ISO 4217 numeric, three digits
    country: str  # 58, ISO 3166 alpha-2
    merchant_name: str  # 59
    merchant_city: str  # 60
    accounts: Pairs = ()
    templates: tuple[Template, ...] = ()
    point_of_initiation: str | None = None  # 01: "11" static, "12" dynamic
    amount: str | None = None  # 54
    tip_indicator: str | None = None  # 55: "01" prompt, "02" fixed fee (56), "03" percentage (57)
    fee_fixed: str | None = None  # 56
    fee_percentage: str | None = None  # 57
    postal_code: str | None = None  # 61
    additional_data: AdditionalData | None = None  # 62
    language: LanguageTemplate | None = None  # 64
    unknown: Pairs = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "accounts", _sorted_pairs(self.accounts))
        object.__setattr__(self, "templates", tuple(sorted(self.templates, key=lambda t: t.id)))
        object.__setattr__(self, "unknown", _sorted_pairs(self.unknown))

    @property
    def amount_value(self) -> Decimal | None:
        """The amount (54) as a number: ``Decimal("98")`` for "98.", None when the app is to prompt for it."""
        return Decimal(self.amount) if self.amount is not None else None

    @property
    def dynamic(self) -> bool:
        """Point of initiation 12: a code for one transaction."""
        return self.point_of_initiation == "12"

    def template(self, ident: str) -> Template | None:
        """The merchant account template (26-51, 80-99) with this ID, or None."""
        return next((t for t in self.templates if t.id == ident), None)

    def account(self, ident: str) -> str | None:
        """The primitive merchant account (02-25) with this ID, or None."""
        return dict(self.accounts).get(ident)


# ------------------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class _Obj:
    id: str
    value: str
    position: int  # of the ID's first character in the payload

    @property
    def value_at(self) -> int:
        return self.position + 4


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _path(parent: str, ident: str) -> str:
    return f"{parent}.{ident}" if parent else ident


def _objects(text: str, start: int, end: int, parent: str) -> list[_Obj]:
    """The objects of ``text[start:end]``; IDs once each, every length within the bounds."""
    out: list[_Obj] = []
    seen: set[str] = set()
    where = f"template {parent}" if parent else "payload"
    pos = start
    while pos < end:
        if end - pos < 4:
            raise MalformedObject(f"{end - pos} character(s) left at the end of the {where}: no room for an ID and "
                                  "a length", parent or None, pos)  # fmt: skip
        ident, length = text[pos : pos + 2], text[pos + 2 : pos + 4]
        if not _digits(ident):
            raise MalformedObject(f"ID {ident!r} is not two digits", parent or None, pos)
        path = _path(parent, ident)
        if not _digits(length) or length == "00":
            raise MalformedObject(f"length {length!r} is not two digits from 01 to 99", path, pos)
        size = int(length)
        if pos + 4 + size > end:
            raise MalformedObject(
                f"a value of {size} characters runs past the end of the {where} ({end - pos - 4} left)", path, pos
            )
        if ident in seen:
            raise DuplicateObject(f"ID {ident} is given twice in the {where}", path, pos)
        seen.add(ident)
        out.append(_Obj(ident, text[pos + 4 : pos + 4 + size], pos))
        pos += 4 + size
    return out


_AMOUNT: Final = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)\Z", re.ASCII)
_PERCENT: Final = re.compile(r"[0-9]{1,2}(?:\.[0-9]{0,2})?\Z", re.ASCII)
_COUNTRY: Final = re.compile(r"[A-Za-z]{2}\Z", re.ASCII)


def _check_max(obj: _Obj, path: str, most: int) -> str:
    if len(obj.value) > most:
        raise InvalidValue(f"{len(obj.value)} characters, at most {most} allowed", path, obj.position)
    return obj.value


def _check_digits(obj: _Obj, path: str, size: int) -> str:
    if len(obj.value) != size or not _digits(obj.value):
        raise InvalidValue(f"{obj.value!r} is not {size} digits", path, obj.position)
    return obj.value


def _check_amount(obj: _Obj, path: str) -> str:
    _check_max(obj, path, 13)
    if not _AMOUNT.match(obj.value) or Decimal(obj.value) == 0:
        raise InvalidValue(f"{obj.value!r} is not a non-zero amount (digits and at most one '.')", path, obj.position)
    return obj.value


def _template(text: str, obj: _Obj, path: str) -> Template:
    subs = _objects(text, obj.value_at, obj.value_at + len(obj.value), path)
    gui = next((s for s in subs if s.id == "00"), None)
    if gui is None:
        raise MissingObject("the template has no globally unique identifier (sub-ID 00)", path, obj.position)
    _check_max(gui, _path(path, "00"), 32)
    return Template(obj.id, gui.value, tuple((s.id, s.value) for s in subs if s.id != "00"))


def _additional(text: str, obj: _Obj) -> AdditionalData:
    values: dict[str, str] = {}
    templates: list[Template] = []
    unknown: list[tuple[str, str]] = []
    for sub in _objects(text, obj.value_at, obj.value_at + len(obj.value), "62"):
        path = _path("62", sub.id)
        if sub.id in _ADDITIONAL:
            values[_ADDITIONAL[sub.id]] = _check_max(sub, path, 25)
            if sub.id == "09" and (len(set(sub.value)) != len(sub.value) or set(sub.value) - set("AME")):
                raise InvalidValue(f"{sub.value!r} is not a set of 'A', 'M', 'E', each once", path, sub.position)
        elif int(sub.id) >= 50:
            templates.append(_template(text, sub, path))
        else:  # 00 and the RFU 10-49
            unknown.append((sub.id, sub.value))
    return AdditionalData(**values, templates=tuple(templates), unknown=tuple(unknown))


def _language(text: str, obj: _Obj) -> LanguageTemplate:
    subs = {s.id: s for s in _objects(text, obj.value_at, obj.value_at + len(obj.value), "64")}
    for needed, what in (("00", "language preference"), ("01", "merchant name")):
        if needed not in subs:
            raise MissingObject(f"the language template has no {what} (sub-ID {needed})", "64", obj.position)
    if len(subs["00"].value) != 2:
        raise InvalidValue(f"language {subs['00'].value!r} is not two characters", "64.00", subs["00"].position)
    city = subs.get("02")
    return LanguageTemplate(
        language=subs["00"].value,
        merchant_name=_check_max(subs["01"], "64.01", 25),
        merchant_city=_check_max(city, "64.02", 15) if city is not None else None,
        unknown=tuple((s.id, s.value) for s in subs.values() if s.id not in ("00", "01", "02")),
    )


def _check_crc(text: str, root: list[_Obj]) -> None:
    crc = next((o for o in root if o.id == "63"), None)
    if crc is None:
        raise CrcError("the payload has no CRC", "63", len(text))
    if crc is not root[-1]:
        raise CrcError("the CRC is not the last object", "63", crc.position)
    if len(crc.value) != 4 or not all(c in "0123456789abcdefABCDEF" for c in crc.value):
        raise CrcError(f"CRC {crc.value!r} is not four hex digits", "63", crc.position)
    expected = crc16(text[: crc.value_at].encode("utf-8"))
    if int(crc.value, 16) != expected:
        raise CrcError(f"CRC {crc.value} is wrong, the payload's is {expected:04X}", "63", crc.position)


_ROOT_FIELDS: Final = {
    "01": "point_of_initiation",
    "52": "merchant_category_code",
    "53": "currency",
    "54": "amount",
    "55": "tip_indicator",
    "56": "fee_fixed",
    "57": "fee_percentage",
    "58": "country",
    "59": "merchant_name",
    "60": "merchant_city",
    "61": "postal_code",
}
_MANDATORY: Final = ("52", "53", "58", "59", "60")


def _root_value(obj: _Obj) -> str:
    """A typed root object's value, checked."""
    ident = obj.id
    if ident == "01":
        if obj.value not in ("11", "12"):
            raise InvalidValue(f"point of initiation {obj.value!r} is neither '11' nor '12'", ident, obj.position)
        return obj.value
    if ident == "52":
        return _check_digits(obj, ident, 4)
    if ident == "53":
        return _check_digits(obj, ident, 3)
    if ident in ("54", "56"):
        return _check_amount(obj, ident)
    if ident == "55":
        if obj.value not in ("01", "02", "03"):
            raise InvalidValue(f"tip or fee indicator {obj.value!r} is not '01', '02' or '03'", ident, obj.position)
        return obj.value
    if ident == "57":
        if not _PERCENT.match(obj.value) or not 0 < Decimal(obj.value) < 100:
            raise InvalidValue(f"{obj.value!r} is not a percentage from 00.01 to 99.99", ident, obj.position)
        return obj.value
    if ident == "58":
        if not _COUNTRY.match(obj.value):
            raise InvalidValue(f"{obj.value!r} is not an ISO 3166 alpha-2 country code", ident, obj.position)
        return obj.value
    return _check_max(obj, ident, {"59": 25, "60": 15, "61": 10}[ident])


def _check_fees(by_id: dict[str, _Obj]) -> None:
    indicator = by_id.get("55")
    value = indicator.value if indicator is not None else None
    for ident, needs in (("56", "02"), ("57", "03")):
        obj = by_id.get(ident)
        if obj is not None and value != needs:
            raise InvalidValue(f"ID {ident} is present but the tip or fee indicator (55) is not '{needs}'", ident,
                               obj.position)  # fmt: skip
    for ident, needs in (("56", "02"), ("57", "03")):
        if indicator is not None and value == needs and ident not in by_id:
            raise MissingObject(f"tip or fee indicator {needs} needs ID {ident}", "55", indicator.position)


def decode(payload: str) -> MerchantPresentedCode:
    """The code of an MPM payload, checked from end to end (see the module's docstring)."""
    try:
        payload.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedObject("a character that UTF-8 cannot encode", None, exc.start) from None
    if not payload:
        raise MalformedObject("the payload is empty", None, 0)
    root = _objects(payload, 0, len(payload), "")
    if root[0].id != "00":
        raise MalformedObject("the payload format indicator (ID 00) is not the first object", root[0].id, 0)
    if root[0].value != "01":
        raise InvalidValue(f"payload format indicator {root[0].value!r} is not '01'", "00", 0)
    _check_crc(payload, root)
    by_id = {o.id: o for o in root}
    for ident in _MANDATORY:
        if ident not in by_id:
            raise MissingObject(f"mandatory ID {ident} is absent", ident, len(payload))
    _check_fees(by_id)
    values: dict[str, str] = {}
    accounts: list[tuple[str, str]] = []
    templates: list[Template] = []
    unknown: list[tuple[str, str]] = []
    extra: dict[str, AdditionalData | LanguageTemplate] = {}
    for obj in root[1:-1]:
        number = int(obj.id)
        if obj.id in _ROOT_FIELDS:
            values[_ROOT_FIELDS[obj.id]] = _root_value(obj)
        elif 2 <= number <= 25:
            accounts.append((obj.id, obj.value))
        elif 26 <= number <= 51 or number >= 80:
            templates.append(_template(payload, obj, obj.id))
        elif obj.id == "62":
            extra["additional_data"] = _additional(payload, obj)
        elif obj.id == "64":
            extra["language"] = _language(payload, obj)
        else:  # 65-79: RFU
            unknown.append((obj.id, obj.value))
    if not accounts and not any(26 <= int(t.id) <= 51 for t in templates):
        raise MissingObject("no merchant account information (IDs 02 to 51)", "02", len(payload))
    return MerchantPresentedCode(
        **values,  # type: ignore[arg-type]  # the mandatory five are checked above
        accounts=tuple(accounts),
        templates=tuple(templates),
        unknown=tuple(unknown),
        **extra,  # type: ignore[arg-type]
    )


# ------------------------------------------------------------------------------------- encoding


_ACCOUNT_TEMPLATES: Final = (*range(26, 52), *range(80, 100))


def _ranged(ident: str, allowed: Sequence[int], what: str) -> str:
    if not (_digits(ident) and len(ident) == 2 and int(ident) in allowed):
        raise InvalidValue(f"ID {ident!r} cannot hold {what}", ident, 0)
    return ident


def _emit(parts: list[str], ident: str, value: str, parent: str = "") -> None:
    if not 1 <= len(value) <= 99:
        raise InvalidValue(f"a value of {len(value)} characters (1 to 99 fit)", _path(parent, ident),
                           sum(map(len, parts)))  # fmt: skip
    parts.append(f"{ident}{len(value):02d}{value}")


def _template_value(template: Template, allowed: Sequence[int], what: str, parent: str = "") -> str:
    path = _path(parent, _ranged(template.id, allowed, what))
    parts: list[str] = []
    _emit(parts, "00", template.gui, path)
    for sub_id, value in template.fields:
        _emit(parts, _ranged(sub_id, range(1, 100), "a template's field"), value, path)
    return "".join(parts)


def _additional_value(data: AdditionalData) -> str:
    objects = [(sub_id, getattr(data, name)) for sub_id, name in _ADDITIONAL.items()]
    objects += [(_ranged(i, range(50), "unknown additional data"), v) for i, v in data.unknown]
    objects += [(t.id, _template_value(t, range(50, 100), "an additional data template", "62")) for t in data.templates]
    parts: list[str] = []
    for sub_id, value in sorted((i, v) for i, v in objects if v is not None):
        _emit(parts, sub_id, value, "62")
    return "".join(parts)


def _language_value(lang: LanguageTemplate) -> str:
    objects = [("00", lang.language), ("01", lang.merchant_name), ("02", lang.merchant_city)]
    objects += [(_ranged(i, range(3, 100), "unknown language data"), v) for i, v in lang.unknown]
    parts: list[str] = []
    for sub_id, value in sorted((i, v) for i, v in objects if v is not None):
        _emit(parts, sub_id, value, "64")
    return "".join(parts)


def encode(code: MerchantPresentedCode) -> str:
    """The payload of ``code``: objects in ID order, the CRC last; checked by decoding it again.

    >>> encode(MerchantPresentedCode("5411", "978", "DE", "SHOP", "BERLIN", accounts=(("15", "X"),)))
    '0002011501X5204541153039785802DE5904SHOP6006BERLIN63044976'
    """
    objects: list[tuple[str, str]] = [("00", "01")]
    for ident, name in _ROOT_FIELDS.items():
        value = getattr(code, name)
        if value is not None:
            objects.append((ident, value))
    objects += [(_ranged(i, range(2, 26), "a primitive merchant account"), v) for i, v in code.accounts]
    objects += [(t.id, _template_value(t, _ACCOUNT_TEMPLATES, "a merchant account template")) for t in code.templates]
    objects += [(_ranged(i, range(65, 80), "an RFU object"), v) for i, v in code.unknown]
    if code.additional_data is not None:
        objects.append(("62", _additional_value(code.additional_data)))
    if code.language is not None:
        objects.append(("64", _language_value(code.language)))
    parts: list[str] = []
    for ident, value in sorted(objects):
        _emit(parts, ident, value)
    payload = with_crc("".join(parts))
    again = decode(payload)
    if again != code:  # a value that reads back otherwise (a field that holds an object's text, say)
        differ = ", ".join(f.name for f in fields(code) if getattr(again, f.name) != getattr(code, f.name))
        raise InvalidValue(f"the code does not read back as given (fields {differ})", None, 0)
    return payload


def with_crc(body: str) -> str:
    """``body`` (every object but the CRC) with "6304" and its CRC appended.

    >>> with_crc("000201")
    '0002016304AAE6'
    """
    text = body + "6304"
    return text + f"{crc16(text.encode('utf-8')):04X}"
