"""Online PIN at the simulated issuer: decipher the PIN block, compare with the card's PIN, count wrong tries.

An authorisation, a sale's or a refund's (a terminal whose ``pin_on_refund`` is
``online``), may carry an ISO 9564 PIN block with its DUKPT key serial number
and format (``pin``: docs/host-protocol.md). The issuer
(:meth:`simulator.host.issuer.Issuer.decide`) checks it after "card blocked"
and before everything else in its table, the same way for both kinds and with
one count of wrong tries per card (a refund is checked against its sale's cover
first, :func:`simulator.host.rules.check_refund`; a refund declined for its PIN
refunds nothing):

==========================================  ======  ==========================
Condition                                   Code    Reason recorded
==========================================  ======  ==========================
the card has 3 wrong tries already          ``75``  ``pin_tries_exceeded``
no BDK of the host for the KSN              ``55``  ``pin_key_unknown``
the block does not decipher to a PIN        ``55``  ``pin_block_unreadable``
block of that format (another key, PAN)
the PIN is not the card's; 1st / 2nd try    ``55``  ``incorrect_pin``
the PIN is not the card's; 3rd try          ``75``  ``pin_tries_exceeded``
the PIN is the card's                       (on)    the count goes back to 0
==========================================  ======  ==========================

Only a PIN that deciphers and differs counts as a wrong try: a block the host
cannot read says nothing of the cardholder (a terminal with the wrong key). A
card at the limit stays there, right PIN or not, until the operator resets it
(``posterm host issuer pin-reset CARD``), as an issuer's PIN try limit does.
The count is kept per card by the host's card token, in the store
(:meth:`~simulator.host.store_issuer.IssuerTables.count_wrong_pin`), under the
card's lock within the acquirer's transaction, so that two workers deciding for
one card count both tries.

The key. The host derives the PIN key from the BDK the KSN names
(:meth:`simulator.host.keys.HostKeys.pin_bdk_for`): AES DUKPT's PIN working
key for format 4, TDES DUKPT's PIN variant for format 0 (:mod:`terminal.dukpt`).

The card's PIN. The simulated issuer issued the simulator's cards: a card's PIN
is its profile's ``pin`` (:mod:`simulator.profiles`, :mod:`simulator.contact.profiles`), found by the PAN in
memory; a card of no profile, or of a profile without one, has
:data:`DEFAULT_PIN`. The deciphered PIN is compared in constant time and wiped;
it is never stored or logged, and neither is the block.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Final

from simulator import profiles
from simulator.contact import profiles as contact_profiles
from simulator.host.keys import HostKeys
from simulator.host.store import HostStore
from terminal.dukpt import DukptError, aes_host_pin_key, tdes_host_pin_key
from terminal.pinblock import EncryptedPin, PinBlockError, PinFormat, pin_matches

__all__ = [
    "DEFAULT_PIN",
    "INCORRECT_PIN_CODE",
    "PIN_TRIES_EXCEEDED_CODE",
    "PIN_TRY_LIMIT",
    "card_pin",
    "check_pin",
]

INCORRECT_PIN_CODE: Final = "55"
PIN_TRIES_EXCEEDED_CODE: Final = "75"
PIN_TRY_LIMIT: Final = 3
#: The PIN of a card whose profile names none (SIMULATOR ONLY).
DEFAULT_PIN: Final = b"1234"


@lru_cache(maxsize=1)
def _pins() -> dict[str, bytes]:
    """PAN -> PIN of every simulated card whose profile names one (contactless and contact cards)."""
    out: dict[str, bytes] = {}
    for source in (profiles, contact_profiles):
        for name in source.list_names():
            try:
                profile = source.load(name)
            except profiles.ProfileError:
                continue  # a broken profile is the simulator's own test material: it issues no PIN
            if profile.pin is not None:
                out[profile.pan] = profile.pin.encode("ascii")
    return out


def card_pin(pan: str) -> bytes:
    """The PIN the simulated issuer holds for a card (its profile's, else :data:`DEFAULT_PIN`)."""
    return _pins().get(pan, DEFAULT_PIN)


def _pin_key(keys: HostKeys, pin: EncryptedPin) -> bytes | None:
    found = keys.pin_bdk_for(pin.ksn)
    if found is None:
        return None
    bdk, value = found
    try:
        if pin.format is PinFormat.ISO_4 and bdk.algorithm == "AES-128":
            return aes_host_pin_key(value, pin.ksn)
        if pin.format is PinFormat.ISO_0 and bdk.algorithm == "TDES":
            return tdes_host_pin_key(value, pin.ksn)
    except DukptError:
        return None  # a counter no PIN pad uses (0, too many one bits)
    return None


def check_pin(
    store: HostStore, *, pan: str, token: str, pin: EncryptedPin, now: dt.datetime
) -> tuple[str, str] | None:
    """None when the PIN is the card's; else (response code, reason) by the module docstring's table."""
    with store.transaction():
        store.lock("card", token)
        if store.wrong_pin_tries(token) >= PIN_TRY_LIMIT:
            return PIN_TRIES_EXCEEDED_CODE, "pin_tries_exceeded"
        key = _pin_key(store.keys, pin)
        if key is None:
            return INCORRECT_PIN_CODE, "pin_key_unknown"
        try:
            right = pin_matches(pin.block, pan, key, pin.format, card_pin(pan))
        except PinBlockError:
            return INCORRECT_PIN_CODE, "pin_block_unreadable"
        if right:
            store.reset_pin_tries(token)
            return None
        wrong = store.count_wrong_pin(token, now.astimezone(dt.UTC).isoformat(timespec="microseconds"))
        if wrong >= PIN_TRY_LIMIT:
            return PIN_TRIES_EXCEEDED_CODE, "pin_tries_exceeded"
        return INCORRECT_PIN_CODE, "incorrect_pin"
