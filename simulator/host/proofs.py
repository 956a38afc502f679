"""What a payment must prove before the issuer decides on it: the card is there, and it is this card.

The issuer (:mod:`simulator.host.issuer`) approves nothing on the terminal's
word. Each means of payment has a :class:`ProofVerifier`: it recognises its
own data in a message and either establishes the means of payment
(:class:`Proven`: the host's own token for it, and how to answer the card) or
refuses (:class:`Refusal`, a response code and a reason). The issuer asks the
verifiers in order; the first that recognises the data decides, and data that
no verifier recognises is refused as "no card data" (``14``).

Today there is one verifier, :class:`EmvCardProof`, for EMV cards (contact and
contactless). The QR and digital-currency payments add theirs (a wallet's
signed payment record, an EMV CPM code's cryptogram) by passing them to
:class:`~simulator.host.issuer.Issuer` — this module is the seam.

EMV cards
---------

Card data: the PAN from 5A, else from track 2 equivalent data (57); when both
are there they must name the same PAN. The application cryptogram (9F26, its
type in 9F27 bits 8-7) is verified with the simulator's issuer master keys
(:data:`simulator.issuer_keys.ISSUER_MASTER_KEYS`, chosen by the key index and
CVN in the IAD 9F10) strictly over the data objects sent
(:class:`simulator.cryptograms.CryptogramData`). What each purpose needs:

==================  ==================================  ===============================
Purpose             the messages                         cryptogram required
==================  ==================================  ===============================
``online``          a sale's authorisation               an ARQC (the card asked for the
                                                         issuer)
``deferred``        a deferred authorisation advice      an ARQC (a tap, or a card not
                                                         asked again), or a TC with 8A
                                                         ``Y3``: an inserted card that
                                                         approved in its second GENERATE
                                                         AC, unable to go online
``offline``         an offline approval advice           a TC (the card approved)
``refund``          a refund, online or offline          any AC the card gave (C-2 cards
                                                         answer a refund with an AAC)
==================  ==================================  ===============================

The cryptogram covers the amount (9F02) and the currency (5F2A) the card was
shown: they must be the message's ``amount`` and ``currency``, else ``13``
(a card that signed 10.00 proves nothing about a message of 1000.00).

A TC or an AAC is the same MAC as an ARQC over the same inputs, so it is
verified alike: an offline approval whose TC does not verify is declined after
forwarding (``82``), as an issuer refuses to clear it. A card whose key set
the simulator's issuer does not hold cannot be verified, so it is refused
too. Only a verified ARQC gets an ARPC.

The PAN is used in memory only: the host keeps the card by its own token
(HMAC-SHA-256 of the PAN under the host's secret,
:meth:`simulator.host.store.HostStore.card_token`), the same whichever
terminal sends the card.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final, Protocol

from emv.pan import pan_of
from simulator.cryptograms import CVN_MC_16, CVN_UNIONPAY_01, CryptogramData, issuer_authentication_data, verify_arqc
from simulator.host.scripts import scripts_for
from simulator.issuer_keys import ISSUER_MASTER_KEYS, IssuerMasterKeys

__all__ = [
    "AMOUNT_DIFFERS_CODE",
    "CRYPTOGRAM_FAILED_CODE",
    "NO_CARD_DATA_CODE",
    "Claim",
    "EmvCardProof",
    "ProofVerifier",
    "Proven",
    "Purpose",
    "Refusal",
    "prove",
]

NO_CARD_DATA_CODE: Final = "14"  # invalid card number: no card, or card data that names none
CRYPTOGRAM_FAILED_CODE: Final = "82"  # the card's cryptogram is missing, of the wrong type, or does not verify
AMOUNT_DIFFERS_CODE: Final = "13"  # invalid amount: the card was shown another amount or currency
_AC_TYPES: Final = {0x80: "arqc", 0x40: "tc", 0x00: "aac"}


class Purpose(Enum):
    """What the message asks of the means of payment (see the module docstring's table)."""

    ONLINE = "online"
    DEFERRED = "deferred"
    OFFLINE = "offline"
    REFUND = "refund"


#: The cryptogram types each purpose accepts.
_WANTED: Final = {
    Purpose.ONLINE: ("arqc",),
    Purpose.DEFERRED: ("arqc", "tc"),
    Purpose.OFFLINE: ("tc",),
    Purpose.REFUND: ("arqc", "tc", "aac"),
}
_UNABLE_TO_GO_ONLINE_APPROVED: Final = b"Y3"  # 8A of a card's offline approval when the host could not be reached


@dataclass(frozen=True)
class Claim:
    """What the message says the payment is: what it needs of the card, its amount and currency."""

    purpose: Purpose
    amount: int
    currency: int


@dataclass(frozen=True)
class Refusal:
    """Not proven: the response code and the reason recorded (``no_card_data``, ``arqc_failed``...)."""

    code: str
    reason: str


@dataclass(frozen=True)
class Proven:
    """A means of payment established: the host's token for it, and how to answer it.

    ``answer``: the issuer authentication data (91, the card's whole answer: ARPC method 1 or 2) for a
    response code, when an ARQC was verified.
    ``cryptogram``: the type of the cryptogram verified ("arqc", "tc", "aac"), None for other proofs.
    ``proof``: the host's token of the one-time proof itself (for a card, its cryptogram with the ATC and
    the PAN), so that the same proof is approved once: a cryptogram sent again under another transaction
    id, by any terminal, is a replay (:func:`simulator.host.rules.replayed`). None: nothing one-time.
    """

    token: str
    expiry: dt.date | None = None
    answer: Callable[[str], bytes] | None = None
    proof: str | None = None
    #: the issuer scripts for an answer's response code (a chip card the issuer scripts: simulator.host.scripts)
    scripts: Callable[[str], bytes] | None = None
    cryptogram: str | None = None

    def expired(self, today: dt.date) -> bool:
        return self.expiry is not None and self.expiry < today


class ProofVerifier(Protocol):
    """One means of payment's proof (EMV card today; QR and digital-currency payments add theirs)."""

    def recognises(self, tags: Mapping[int, bytes]) -> bool:
        """Whether the message's data objects are this means of payment's."""
        ...

    def verify(self, tags: Mapping[int, bytes], claim: Claim, token: Callable[[str], str]) -> Proven | Refusal:
        """Proven for ``claim`` (``token`` makes the host's token of an identifier, such as a PAN), or refused."""
        ...


def prove(
    verifiers: tuple[ProofVerifier, ...], tags: Mapping[int, bytes], claim: Claim, token: Callable[[str], str]
) -> Proven | Refusal:
    """The first verifier that recognises ``tags`` decides; none: no card data (``14``)."""
    for verifier in verifiers:
        if verifier.recognises(tags):
            return verifier.verify(tags, claim, token)
    return Refusal(NO_CARD_DATA_CODE, "no_card_data")


def _keys_for(iad: bytes) -> IssuerMasterKeys | None:
    for keys in ISSUER_MASTER_KEYS.values():
        if keys.cvn == CVN_MC_16:
            if len(iad) >= 8 and iad[0] == keys.dki and iad[1] == keys.cvn:
                return keys
        elif len(iad) >= 7 and iad[0] == _iad_first_byte(keys.cvn) and iad[1] == keys.dki and iad[2] == keys.cvn:
            return keys
    return None


def _iad_first_byte(cvn: int) -> int:
    """The length byte of a Visa-format IAD (06) or a UnionPay-style one (07, :mod:`simulator.cryptograms`)."""
    return 0x07 if cvn == CVN_UNIONPAY_01 else 0x06


def _expiry(tags: Mapping[int, bytes]) -> dt.date | None:
    raw = tags.get(0x5F24)
    if raw is None or len(raw) != 3:
        return None
    try:
        yy, mm, dd = (int(raw[i : i + 1].hex()) for i in range(3))
        return dt.date(2000 + yy, mm, dd)
    except ValueError:
        return None  # not BCD or not a date: the kernel judged the card; nothing to add here


def _bcd(value: bytes) -> int | None:
    digits = value.hex()
    return int(digits) if digits.isdigit() else None


def _track2_pan(tags: Mapping[int, bytes]) -> str | None:
    return pan_of({0x57: tags[0x57]}) if 0x57 in tags else None


class EmvCardProof:
    """An EMV card: its PAN, and an application cryptogram that verifies under the simulator's issuer keys."""

    def recognises(self, tags: Mapping[int, bytes]) -> bool:
        return 0x5A in tags or 0x57 in tags

    def verify(self, tags: Mapping[int, bytes], claim: Claim, token: Callable[[str], str]) -> Proven | Refusal:
        pan = pan_of(tags)
        if pan is None:
            return Refusal(NO_CARD_DATA_CODE, "no_card_data")
        if 0x5A in tags and 0x57 in tags and _track2_pan(tags) != pan:
            return Refusal(NO_CARD_DATA_CODE, "card_data_inconsistent")
        cryptogram, cid = tags.get(0x9F26), tags.get(0x9F27)
        if cryptogram is None or not cid:
            return Refusal(CRYPTOGRAM_FAILED_CODE, "no_cryptogram")
        kind = _AC_TYPES.get(cid[0] & 0xC0)
        wanted = _WANTED[claim.purpose]
        if kind not in wanted:
            return Refusal(CRYPTOGRAM_FAILED_CODE, f"{kind or 'unknown'}_not_{'_or_'.join(wanted)}")
        if claim.purpose is Purpose.DEFERRED and kind == "tc" and tags.get(0x8A) != _UNABLE_TO_GO_ONLINE_APPROVED:
            return Refusal(CRYPTOGRAM_FAILED_CODE, "tc_without_y3")
        keys = _keys_for(tags.get(0x9F10, b""))
        atc = tags.get(0x9F36)
        if keys is None or atc is None or len(cryptogram) != 8:
            return Refusal(CRYPTOGRAM_FAILED_CODE, f"{kind}_failed")
        psn_raw = tags.get(0x5F34, b"\x00")
        psn = psn_raw[:1].hex() if psn_raw else "00"
        try:
            verified = verify_arqc(keys, pan, psn, CryptogramData.from_tags(tags), cryptogram)
        except Exception:  # untrusted data objects into pyemv: any failure is "not verified"
            verified = False
        if not verified:
            return Refusal(CRYPTOGRAM_FAILED_CODE, f"{kind}_failed")
        if _bcd(tags[0x9F02]) != claim.amount:
            return Refusal(AMOUNT_DIFFERS_CODE, "amount_differs_from_card")
        if _bcd(tags[0x5F2A]) != claim.currency:
            return Refusal(AMOUNT_DIFFERS_CODE, "currency_differs_from_card")
        answer = _arpc_for(keys, pan, psn, cryptogram, atc) if kind == "arqc" else None
        scripts = scripts_for(keys, pan, psn, cryptogram, atc) if kind == "arqc" else None
        return Proven(
            token(pan),
            _expiry(tags),
            answer,
            proof=token(f"{pan}:{atc.hex()}:{cryptogram.hex()}"),
            scripts=scripts,
            cryptogram=kind,
        )


def _arpc_for(keys: IssuerMasterKeys, pan: str, psn: str, cryptogram: bytes, atc: bytes) -> Callable[[str], bytes]:
    """91 for a verified ARQC and a response code: method 1 (CVN 10, 16: ARPC || ARC, 10 bytes) or method 2
    (CVN 18: ARPC || CSU, 8 bytes; the CSU approves for ``00`` and declines otherwise, :mod:`simulator.csu`)."""

    def answer(code: str) -> bytes:
        return issuer_authentication_data(keys, pan, psn, arqc=cryptogram, atc=atc, response_code=code)

    return answer
