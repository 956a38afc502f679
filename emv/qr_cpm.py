"""EMV QR Code, consumer-presented mode (EMVCo CPM specification v1.0): decoding and the POI's processing.

The phone shows base64 (RFC 4648) of BER-TLV: the payload format indicator
``85`` "CPV01" first, then one or more application templates ``61``, and an
optional common data template ``62``.  Inside a ``61`` the application
specific transparent template ``63``, inside the ``62`` the common data
transparent template ``64``, carry data for the issuer (a cryptogram and what
it covers) in a format the payment system defines: the POI passes it on
unparsed.

:func:`decode` reads the code into a :class:`ConsumerPresentedCode`;
:func:`process` then does the POI's part (§5 of the specification): it picks
the application template whose AID matches one of the terminal's (an equal
AID, or a longer one that starts with it; templates without a 5 to 16-byte
``4F`` are skipped; when several match, the terminal's AID listed first
wins), and returns the :class:`PoiData`: the objects of the template and of
the common data template outside the transparent templates (a primitive
given twice there is an error; unknown objects are kept), and the contents
of the transparent templates, unparsed.

>>> poi = process(EXAMPLE_1, [bytes.fromhex("A000000055")])
>>> poi.aid.hex().upper(), poi.pan, poi.transparent
('A0000000555555', '1234567890123458', b'')
>>> decode(EXAMPLE_2).applications[1].get(0x50)
b'Product2'
>>> decode("hQVDUFYwMg==")
Traceback (most recent call last):
emv.qr_cpm.UnsupportedVersion: payload format indicator 'CPV02' is not 'CPV01' (tag 85 at byte 0)
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from emv import tlv
from emv.pan import pan_of

__all__ = [
    "EXAMPLE_1",
    "EXAMPLE_2",
    "ApplicationTemplate",
    "ConsumerPresentedCode",
    "CpmError",
    "DuplicateData",
    "MalformedCode",
    "MissingData",
    "NoApplication",
    "PoiData",
    "UnsupportedVersion",
    "choose",
    "decode",
    "encode",
    "process",
]

#: The specification's Annex B examples: one application, and two applications with common data.
EXAMPLE_1: Final = "hQVDUFYwMWEaTwegAAAAVVVVVw8SNFZ4kBI0WNGRIgESNF8="
EXAMPLE_2: Final = (
    "hQVDUFYwMWETTwegAAAAVVVVUAhQcm9kdWN0MWETTwegAAAAZmZmUAhQcm9kdWN0MmJJWggSNFZ4kBI0WF8gDkNBUkRIT0xERVIvRU1WXy0"
    "IcnVlc2RlZW5kIZ8QBwYBCgMAAACfJghYT9OF+iNLzJ82AgABnzcEbVjvEw=="
)

#: What a CPM payload starts with: the base64 of ``85 05 "CPV"``.
PREFIX: Final = "hQVDUFY"
VERSION: Final = "CPV01"
_APPLICATION, _COMMON, _APP_TRANSPARENT, _COMMON_TRANSPARENT = 0x61, 0x62, 0x63, 0x64
_AID_SIZES: Final = range(5, 17)

Objects = tuple[tuple[int, bytes], ...]


class CpmError(ValueError):
    """A payload the POI must refuse; ``tag`` and ``offset`` (a byte of the decoded data) say where, when known."""

    def __init__(self, reason: str, tag: int | None = None, offset: int | None = None) -> None:
        where = []
        if tag is not None:
            where.append(f"tag {tlv.tag_hex(tag)}")
        if offset is not None:
            where.append(f"at byte {offset}")
        super().__init__(f"{reason} ({' '.join(where)})" if where else reason)
        self.reason = reason
        self.tag = tag
        self.offset = offset


class MalformedCode(CpmError):
    """Not base64, not BER-TLV, or a first object other than ``85``: no CPM code."""


class UnsupportedVersion(CpmError):
    """The payload format indicator is not "CPV01"."""


class NoApplication(CpmError):
    """No application template, or none whose AID the terminal supports."""


class DuplicateData(CpmError):
    """A primitive object (or a transparent template) twice in the POI data."""


class MissingData(CpmError):
    """The chosen application has no track 2 equivalent data (57) nor PAN (5A)."""


def _tags(objects: Objects) -> str:
    return "[" + " ".join(tlv.tag_hex(tag) for tag, _ in objects) + "]"


def _get(objects: Objects, tag: int) -> bytes | None:
    return next((value for t, value in objects if t == tag), None)


@dataclass(frozen=True)
class ApplicationTemplate:
    """A ``61`` (or the ``62``): its objects outside the transparent template, and that template's content."""

    objects: Objects
    transparent: bytes | None = None  # the value of 63 (64 in the common data), unparsed
    offset: int = field(default=0, compare=False)  # of the template in the decoded bytes

    def __repr__(self) -> str:  # the tags only: the values hold card data (a PAN is never shown in clear)
        size = "none" if self.transparent is None else f"{len(self.transparent)} bytes"
        return f"ApplicationTemplate(tags={_tags(self.objects)}, transparent={size})"

    def get(self, tag: int) -> bytes | None:
        """The value of the first object ``tag``, or None."""
        return _get(self.objects, tag)

    @property
    def aid(self) -> bytes | None:
        """The application's AID (``4F``) when it is 5 to 16 bytes, else None: such a template is skipped."""
        aid = self.get(0x4F)
        return aid if aid is not None and len(aid) in _AID_SIZES else None


@dataclass(frozen=True)
class ConsumerPresentedCode:
    """A decoded CPM code; ``other`` keeps the top-level objects after ``85`` that are neither 61 nor 62."""

    applications: tuple[ApplicationTemplate, ...]
    common: ApplicationTemplate | None = None
    other: Objects = field(default=(), repr=False)  # may hold card data: not in the repr
    version: str = VERSION


@dataclass(frozen=True)
class PoiData:
    """What the POI takes from the chosen application: its data, and the transparent data for the issuer."""

    application: ApplicationTemplate
    objects: Objects  # the POI data: the 61's objects, then the 62's, outside 63 and 64
    transparent: bytes  # the content of 63, then of 64; b"" when there is none

    def __repr__(self) -> str:
        return f"PoiData(tags={_tags(self.objects)}, transparent={len(self.transparent)} bytes)"

    def get(self, tag: int) -> bytes | None:
        return _get(self.objects, tag)

    @property
    def aid(self) -> bytes:
        aid = self.application.aid
        assert aid is not None  # process() chose it by its AID
        return aid

    @property
    def pan(self) -> str | None:
        """The PAN from 5A, else from track 2 equivalent data (57); None if neither holds 12 to 19 digits."""
        return pan_of(dict(self.objects))

    @property
    def data_format(self) -> bytes:
        """9F08 (with the AID it names the transparent data's format); "0010" when absent."""
        return self.get(0x9F08) or bytes.fromhex("0010")


# ------------------------------------------------------------------------------------- decoding


def _base64(payload: str | bytes) -> bytes:
    text = payload.decode("latin-1") if isinstance(payload, bytes) else payload
    if not text.startswith(PREFIX):
        raise MalformedCode(f"a CPM payload starts with {PREFIX!r} (the base64 of 85 05 'CPV')")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise MalformedCode(f"the payload is not base64 ({exc})") from None


def _flat(data: bytes, base: int, within: int | None) -> list[tuple[tlv.Tlv, int]]:
    """One level of BER-TLV with each object's offset; a constructed object's value stays unparsed."""
    try:
        objects = tlv.decode(data, nested=False)
    except tlv.TlvError as exc:
        raise MalformedCode(f"not BER-TLV: {exc.reason}", exc.tag or within, base + exc.offset) from None
    out: list[tuple[tlv.Tlv, int]] = []
    pos = 0
    for obj in objects:  # where each starts: tlv.decode checked every byte read here
        while data[pos] in (0x00, 0xFF):  # padding between objects, as tlv.decode skips it
            pos += 1
        out.append((obj, base + pos))
        pos += 1
        if data[pos - 1] & 0x1F == 0x1F:  # a tag of more than one byte
            while data[pos] & 0x80:
                pos += 1
            pos += 1
        length_bytes = data[pos] & 0x7F if data[pos] & 0x80 else 0  # a length in any form, 81 05 too
        pos += 1 + length_bytes + len(obj.value)
    return out


def _template(obj: tlv.Tlv, offset: int, transparent_tag: int) -> ApplicationTemplate:
    value_at = offset + len(tlv.encode_tag(obj.tag)) + len(tlv.encode_length(len(obj.value)))
    objects: list[tuple[int, bytes]] = []
    transparent: bytes | None = None
    for inner, at in _flat(obj.value, value_at, obj.tag):
        if inner.tag == transparent_tag:
            if transparent is not None:
                raise DuplicateData("a second transparent template", inner.tag, at)
            transparent = inner.value
            continue
        objects.append((inner.tag, inner.value))  # a primitive twice is an error of the POI data: process()
    return ApplicationTemplate(tuple(objects), transparent, offset)


def decode(payload: str | bytes) -> ConsumerPresentedCode:
    """The code of a CPM payload (the text the QR code holds), checked as §5 of the specification says."""
    data = _base64(payload)
    top = _flat(data, 0, None)
    if not top or top[0][0].tag != 0x85:
        raise MalformedCode("the first object is not the payload format indicator 85", 0x85, 0)
    first, _ = top[0]
    if first.value != VERSION.encode("ascii"):
        shown = first.value.decode("latin-1")
        raise UnsupportedVersion(f"payload format indicator {shown!r} is not {VERSION!r}", 0x85, 0)
    applications: list[ApplicationTemplate] = []
    common: ApplicationTemplate | None = None
    other: list[tuple[int, bytes]] = []
    for obj, at in top[1:]:
        if obj.tag == 0x85:
            raise DuplicateData("a second payload format indicator", 0x85, at)
        if obj.tag == _APPLICATION:
            applications.append(_template(obj, at, _APP_TRANSPARENT))
        elif obj.tag == _COMMON:
            if common is not None:
                raise DuplicateData("a second common data template", _COMMON, at)
            common = _template(obj, at, _COMMON_TRANSPARENT)
        else:
            other.append((obj.tag, obj.value))
    if not applications:
        raise NoApplication("the code has no application template", _APPLICATION)
    return ConsumerPresentedCode(tuple(applications), common, tuple(other))


def encode(code: ConsumerPresentedCode) -> str:
    """The payload of ``code`` (base64 of its BER-TLV): what a phone shows.

    >>> encode(decode(EXAMPLE_2)) == EXAMPLE_2
    True
    """
    parts = [tlv.encode(0x85, code.version.encode("ascii"))]
    for template, tag, inner in [(a, _APPLICATION, _APP_TRANSPARENT) for a in code.applications] + (
        [(code.common, _COMMON, _COMMON_TRANSPARENT)] if code.common is not None else []
    ):
        body = tlv.encode_pairs(template.objects)
        if template.transparent is not None:
            body += tlv.encode(inner, template.transparent)
        parts.append(tlv.encode(tag, body))
    parts.append(tlv.encode_pairs(code.other))
    return base64.b64encode(b"".join(parts)).decode("ascii")


# ------------------------------------------------------------------------------- POI processing


def _matches(aid: bytes, terminal_aid: bytes) -> bool:
    return aid.startswith(terminal_aid)


def choose(code: ConsumerPresentedCode, terminal_aids: Sequence[bytes]) -> ApplicationTemplate:
    """The application template the POI uses: the first of ``terminal_aids`` (the merchant's order of
    preference) that some template's AID equals or starts with; among templates matching it, the first."""
    for terminal_aid in terminal_aids:
        for template in code.applications:
            aid = template.aid
            if aid is not None and _matches(aid, terminal_aid):
                return template
    offered = ", ".join(aid.hex().upper() for a in code.applications if (aid := a.get(0x4F)) is not None) or "none"
    raise NoApplication(f"no application of the code is one the terminal accepts (the code offers {offered})",
                        _APPLICATION)  # fmt: skip


def process(payload: str | bytes | ConsumerPresentedCode, terminal_aids: Sequence[bytes]) -> PoiData:
    """The POI data of the application chosen among ``terminal_aids`` (see :func:`choose`)."""
    code = payload if isinstance(payload, ConsumerPresentedCode) else decode(payload)
    application = choose(code, terminal_aids)
    objects = list(application.objects)
    transparent = application.transparent or b""
    if code.common is not None:
        objects += code.common.objects
        transparent += code.common.transparent or b""
    seen: set[int] = set()
    for n, (tag, _) in enumerate(objects):
        if tag in seen and not tlv.is_constructed(tag):
            where = application.offset if n < len(application.objects) or code.common is None else code.common.offset
            raise DuplicateData("a primitive object given twice in the POI data", tag, where)
        seen.add(tag)
    poi = PoiData(application, tuple(objects), transparent)
    if poi.get(0x57) is None and poi.get(0x5A) is None:
        raise MissingData("neither track 2 equivalent data (57) nor a PAN (5A)", 0x57, application.offset)
    return poi
