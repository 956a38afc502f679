"""Languages: English and Simplified Chinese, switchable while the application runs.

Texts are looked up in gettext catalogues, ``ui/locale/<lang>/LC_MESSAGES/posterm.po``,
read directly (no compiled ``.mo`` to keep in step): the source text is the
English, so a missing translation shows English.  Amounts and dates are
formatted for the language.  The language can change at run time (a kiosk
customer picks theirs); view models re-read their texts when told.

>>> tr = Translator("en")
>>> tr.amount(1234, 978)
'12.34 EUR'
>>> tr.set_language("zh_CN"); tr.amount(1234, 156)
'¥12.34'
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path

from terminal.money import currency as currency_of

__all__ = ["LANGUAGES", "Translator", "catalogue"]

#: The languages the application speaks: code -> its own name.
LANGUAGES: dict[str, str] = {"en": "English", "zh_CN": "简体中文"}

_LOCALE = Path(__file__).with_name("locale")
_ENTRY = re.compile(r'^(msgid|msgstr)\s+(".*")\s*$')
_CONTINUATION = re.compile(r'^(".*")\s*$')

# How each language writes an amount: the symbol or code, before or after.
_SYMBOLS_ZH = {156: "¥", 344: "HK$", 840: "US$", 978: "€", 826: "£", 392: "JP¥"}


@cache
def catalogue(language: str) -> dict[str, str]:
    """The translations of ``language`` (msgid -> msgstr), read from its .po file; {} for English."""
    path = _LOCALE / language / "LC_MESSAGES" / "posterm.po"
    if not path.exists():
        return {}
    entries: dict[str, str] = {}
    key: str | None = None
    current: str | None = None
    parts: list[str] = []

    def flush() -> None:
        if current == "msgstr" and key is not None:
            text = "".join(parts)
            if key and text:
                entries[key] = text

    for line in path.read_text(encoding="utf-8").splitlines():
        match = _ENTRY.match(line)
        if match:
            if match.group(1) == "msgid":
                flush()
                key, current, parts = None, "msgid", [ast.literal_eval(match.group(2))]
            else:
                key, current, parts = "".join(parts), "msgstr", [ast.literal_eval(match.group(2))]
            continue
        more = _CONTINUATION.match(line)
        if more and current is not None:
            parts.append(ast.literal_eval(more.group(1)))
            continue
        if not line.strip() or line.startswith("#"):
            flush()
            current = None
    flush()
    return entries


class Translator:
    """The language in force, and the texts, amounts and dates in it."""

    def __init__(self, language: str = "en") -> None:
        self.language = "en"
        self._listeners: list[Callable[[str], None]] = []
        self.set_language(language)

    def set_language(self, language: str) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
        changed = language != self.language
        self.language = language
        if changed:
            for listener in list(self._listeners):
                listener(language)

    def listen(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(language)`` when the language changes."""
        self._listeners.append(listener)

    def __call__(self, text: str, **values: object) -> str:
        """``text`` in the language in force, with ``{name}`` fields filled from ``values``."""
        translated = catalogue(self.language).get(text, text) if self.language != "en" else text
        return translated.format(**values) if values else translated

    def amount(self, minor: int, code: int) -> str:
        """An amount in minor units as this language writes it."""
        cur = currency_of(code)
        sign = "-" if minor < 0 else ""
        whole, frac = divmod(abs(minor), 10**cur.exponent) if cur.exponent else (abs(minor), 0)
        number = f"{whole:,}" + (f".{frac:0{cur.exponent}d}" if cur.exponent else "")
        if self.language == "zh_CN":
            symbol = _SYMBOLS_ZH.get(cur.numeric)
            return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {cur.code}"
        return f"{sign}{number} {cur.code}"

    def when(self, moment: datetime) -> str:
        """A date and time as this language writes it (in the local time zone)."""
        local = moment.astimezone()
        if self.language == "zh_CN":
            return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"
        return f"{local:%d %b %Y %H:%M}"
