"""The terminal's words on the screen, in the screen's language.

The terminal writes its results for people, in English ("declined:
insufficient funds (51)").  A result screen shows the reason under a title
that already says "Declined", so the prefix goes, and the reason is looked up
in the catalogue: whole, or as words with a response code after them, whose
words are translated and whose code stays.

>>> from ui.i18n import Translator
>>> reason_text(Translator("en"), "declined: insufficient funds (51)", approved=False)
'Insufficient funds (51)'
>>> reason_text(Translator("zh_CN"), "declined: insufficient funds (51)", approved=False)
'余额不足 (51)'
"""

from __future__ import annotations

import re

from ui.i18n import Translator

__all__ = ["reason_text"]

_WITH_CODE = re.compile(r"^(?P<words>.+?) \((?P<code>[0-9A-Z]{2})\)$")
_SAID_BY_THE_TITLE = ("declined: ", "not completed: ")


def reason_text(tr: Translator, message: str, *, approved: bool) -> str:
    """The reason under a result's title, in the screen's language ("" when there is nothing to add)."""
    if approved and message.lower() == "approved":
        return ""
    for said in _SAID_BY_THE_TITLE:
        if message.lower().startswith(said):
            message = message[len(said) :]
            break
    message = message[:1].upper() + message[1:]
    whole = tr(message)
    if whole != message or tr.language == "en":
        return whole
    coded = _WITH_CODE.match(message)
    if coded:
        return f"{tr(coded.group('words'))} ({coded.group('code')})"
    return message
