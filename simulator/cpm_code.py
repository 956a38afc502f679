"""An EMV consumer-presented code (CPM) that a simulated card's app shows: ``posterm sim wallet cpm``.

The code carries one application template ``61`` of a simulated card
profile (``simulator/profiles``): its AID and label, the PAN (5A), expiry,
PAN sequence number, and an ARQC computed with the card's issuer keys
(:mod:`simulator.cryptograms`) over the data the code itself carries: the
amount and currency it is made for, the country, the date, a fresh
unpredictable number and ATC, the AIP and an IAD.  A terminal passes them on
(:func:`emv.qr_cpm.process`: the POI data) and the simulated issuer verifies
the cryptogram as a tapped card's; a code made for another amount is declined
(13), the same code twice is a replay (94).
"""

from __future__ import annotations

import datetime as dt
import secrets

from emv.qr_cpm import ApplicationTemplate, ConsumerPresentedCode, encode
from emv.transaction import bcd
from simulator import cryptograms, profiles

__all__ = ["cpm_payload"]


def cpm_payload(profile_name: str, amount: int, currency: int, *, now: dt.datetime | None = None) -> str:
    """The base64 CPM payload of ``profile_name``'s card for ``amount`` (minor units) in ``currency``."""
    card = profiles.load(profile_name)
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    atc = secrets.randbelow(0xFFFF - 2) + 2
    data = {
        0x9F02: bcd(amount, 6), 0x9F03: bcd(0, 6), 0x9F1A: card.country, 0x95: bytes(5),
        0x5F2A: bcd(currency, 2), 0x9A: bytes.fromhex(f"{moment:%y%m%d}"), 0x9C: b"\x00",
        0x9F37: secrets.token_bytes(4), 0x82: card.aip, 0x9F36: atc.to_bytes(2, "big"),
        0x9F10: cryptograms.build_iad(card.cryptogram_key, bytes.fromhex("03A00000")),
    }  # fmt: skip
    arqc = cryptograms.compute(card.cryptogram_key, card.pan, card.psn, cryptograms.CryptogramData.from_tags(data))
    objects = (
        (0x4F, card.aid), (0x50, card.label.encode("ascii")), (0x5A, bytes.fromhex(card.pan)),
        (0x5F24, bytes.fromhex(card.expiry)), (0x5F34, bytes.fromhex(card.psn)),
        (0x9F26, arqc), (0x9F27, b"\x80"), *sorted(data.items()),
    )  # fmt: skip
    return encode(ConsumerPresentedCode(applications=(ApplicationTemplate(objects=tuple(objects)),)))
