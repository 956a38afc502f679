"""The data objects a terminal sends the host for a simulated card, without running a card.

A message's ``emv_data`` as a posterm terminal builds it after a tap
(``terminal.card_reading.HOST_DATA_TAGS``): the card's PAN, PAN sequence
number and expiry, and an application cryptogram computed the way the
simulated card computes it (:func:`simulator.cryptograms.compute`, the
simulator's issuer keys), over the terminal's data objects. The simulated
host verifies it as it verifies a card's. For host tests and load
generators that speak the protocol without a card reader:

>>> data = card_emv_data(1234, 978)
>>> from emv.tlv import decode_primitive_map
>>> sorted(decode_primitive_map(data))[:3]
[90, 130, 149]
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Final, Literal

from emv import tlv
from simulator.cryptograms import CVN_MC_16, CryptogramData, build_iad, compute
from simulator.issuer_keys import issuer_master_keys

__all__ = ["CARDS", "card_emv_data"]

#: Simulated cards by name: (PAN, PAN sequence number, key set, expiry YYMMDD) as the profiles have them.
CARDS: Final[dict[str, tuple[str, str, str, str]]] = {
    "visa": ("4761739001010010", "01", "sim-visa-cvn10", "301231"),
    "visa-cvn18": ("4761739001010036", "01", "sim-visa-cvn18", "301231"),
    "mastercard": ("5413330089010012", "00", "sim-mc-cvn16", "301231"),
}
_CID = {"arqc": 0x80, "tc": 0x40, "aac": 0x00}


def card_emv_data(
    amount: int,
    currency: int,
    *,
    card: str = "visa",
    pan: str | None = None,
    cryptogram: Literal["arqc", "tc", "aac"] = "arqc",
    transaction_type: int = 0x00,
    atc: int = 1,
    unpredictable_number: bytes | None = None,
    date: dt.date = dt.date(2026, 3, 2),
    country: int = 276,
    track2: bool = False,
    expiry: str | None = None,
) -> bytes:
    """TLV of a card's data objects with a cryptogram of type ``cryptogram`` over them.

    ``card`` names one of :data:`CARDS`; ``pan`` gives another PAN under its
    keys (another card of the same issuer); ``track2`` sends the PAN in track 2
    equivalent data (57) instead of 5A. ``transaction_type`` is 9C (``0x20``
    for a refund); ``expiry`` (YYMMDD) replaces the card's. Without an
    ``unpredictable_number`` the terminal's is random, as a kernel's is, so
    each call gives another cryptogram (the host approves a cryptogram once).
    """
    default_pan, psn, key_name, default_expiry = CARDS[card]
    pan = pan or default_pan
    expiry = expiry or default_expiry
    keys = issuer_master_keys(key_name)
    cid = _CID[cryptogram]
    cvr = bytes([cid >> 2 | 0x20, 0, 0, 0, 0, 0]) if keys.cvn == CVN_MC_16 else bytes([0x03, cid >> 2, 0, 0])
    data = CryptogramData(
        amount=bytes.fromhex(f"{amount:012d}"),
        amount_other=bytes(6),
        country=bytes.fromhex(f"{country:04d}"),
        tvr=bytes(5),
        currency=bytes.fromhex(f"{currency:04d}"),
        date=bytes.fromhex(date.strftime("%y%m%d")),
        transaction_type=bytes([transaction_type]),
        unpredictable_number=unpredictable_number if unpredictable_number is not None else os.urandom(4),
        aip=bytes.fromhex("1980" if keys.cvn == CVN_MC_16 else "0000"),
        atc=atc.to_bytes(2, "big"),
        iad=build_iad(keys, cvr),
    )
    ac = compute(keys, pan, psn, data)
    card_tags: list[tuple[int, bytes]] = [(0x5F34, bytes.fromhex(psn)), (0x5F24, bytes.fromhex(expiry))]
    if track2:
        digits = pan + "D" + expiry[:4] + "201" + "0" * 10
        card_tags.append((0x57, bytes.fromhex(digits + ("F" if len(digits) % 2 else ""))))
    else:
        card_tags.append((0x5A, bytes.fromhex(pan + ("F" if len(pan) % 2 else ""))))
    return tlv.encode_pairs(
        [
            *card_tags,
            (0x9F26, ac),
            (0x9F27, bytes([cid])),
            (0x9F10, data.iad),
            (0x9F36, data.atc),
            (0x9F37, data.unpredictable_number),
            (0x9F02, data.amount),
            (0x9F03, data.amount_other),
            (0x5F2A, data.currency),
            (0x9F1A, data.country),
            (0x9A, data.date),
            (0x9C, data.transaction_type),
            (0x95, data.tvr),
            (0x82, data.aip),
        ]
    )
