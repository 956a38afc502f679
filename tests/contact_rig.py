"""Shared pieces of the contact kernel's tests: the simulator's CA keys, a scripted cardholder, a host's ARPC.

The card is a real :class:`simulator.contact.card.ContactCard`; the host side
(ARPC, script MACs) uses :mod:`simulator.cryptograms` with the card's issuer keys,
as the simulated issuer does.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from emv.capk import CapkStore
from emv.contact import Candidate, ContactConfig, ContactKernel, ContactResult, PinEntry, PinKind, PinStatus
from emv.tlv import encode
from emv.transaction import TransactionData
from simulator.contact.card import ContactCard
from simulator.contact.profiles import ContactProfile, load
from simulator.cryptograms import arpc, command_mac, issuer_authentication_data
from simulator.pki import CAPKS_FILE
from simulator.transport import as_transport

__all__ = [
    "DATE",
    "UN",
    "Pad",
    "capks",
    "config",
    "host_91",
    "host_arpc",
    "profile",
    "run",
    "script",
    "txn",
]

DATE = bytes.fromhex("261121")
UN = bytes.fromhex("1A2B3C4D")


@lru_cache(maxsize=1)
def capks() -> CapkStore:
    return CapkStore.from_entries(json.loads(CAPKS_FILE.read_text(encoding="utf-8"))["keys"])


def config(**changes: Any) -> ContactConfig:
    return dataclasses.replace(ContactConfig.example(capks()), **changes)


def txn(amount: int = 1234, **changes: Any) -> TransactionData:
    return TransactionData(amount, 978, DATE, UN, **changes)


def profile(name: str, **changes: Any) -> ContactProfile:
    """A shipped profile, changed (the card's certificates follow the change)."""
    base = load(name)
    data = changes.pop("data", None)
    drop = changes.pop("drop", ())
    if data is not None or drop:
        merged = {k: v for k, v in {**base.data, **(data or {})}.items() if k not in drop}
        changes["data"] = merged
    return dataclasses.replace(base, **changes)


class Pad:
    """A cardholder at the PIN pad: enters the scripted PINs in turn, picks and confirms as told."""

    def __init__(self, *entries: str | PinStatus, pick: int = 0, confirm: bool = True) -> None:
        self.entries = list(entries)
        self.pick = pick
        self.confirm_answer = confirm
        self.asked: list[tuple[PinKind, int | None, bool]] = []
        self.offered: list[list[Candidate]] = []
        self.confirmed: list[Candidate] = []

    def choose(self, candidates: Sequence[Candidate]) -> Candidate | None:
        self.offered.append(list(candidates))
        return candidates[self.pick] if self.pick < len(candidates) else None

    def confirm(self, candidate: Candidate) -> bool:
        self.confirmed.append(candidate)
        return self.confirm_answer

    def enter_pin(self, kind: PinKind, tries_left: int | None, last_try: bool) -> PinEntry:
        self.asked.append((kind, tries_left, last_try))
        entry = self.entries.pop(0) if self.entries else PinStatus.TIMEOUT
        return PinEntry.of(entry) if isinstance(entry, PinStatus) else PinEntry.digits(entry)


def run(
    card: ContactCard | str | ContactProfile,
    amount: int = 1234,
    cardholder: Pad | None = None,
    cfg: ContactConfig | None = None,
    **txn_changes: Any,
) -> tuple[ContactKernel, ContactResult, ContactCard]:
    """Start a transaction on the card (a profile name makes a fresh card)."""
    if not isinstance(card, ContactCard):
        card = ContactCard(card, seed=7)
    kernel = ContactKernel(
        as_transport(card), cfg or config(), txn(amount, **txn_changes), cardholder=cardholder, entropy=b"test"
    )
    return kernel, kernel.start(), card


def host_arpc(card: ContactCard, result: ContactResult, code: str = "00") -> bytes:
    """The ARPC the issuer computes for the result's ARQC (method 1)."""
    p = card.profile
    data = result.card_data
    return arpc(p.cryptogram_key, p.pan, p.psn, arqc=data[0x9F26], atc=data[0x9F36], response=code.encode())


def host_91(card: ContactCard, result: ContactResult, code: str = "00") -> bytes:
    """The issuer authentication data (91) the simulated issuer sends for the result's ARQC (method 1 or 2)."""
    p = card.profile
    data = result.card_data
    return issuer_authentication_data(
        p.cryptogram_key, p.pan, p.psn, arqc=data[0x9F26], atc=data[0x9F36], response_code=code
    )


def script(
    card: ContactCard,
    result: ContactResult,
    template: int,
    commands: Sequence[tuple[bytes, bytes]],
    ident: bytes = b"\x00\x00\x00\x01",
    *,
    bad_mac: bool = False,
) -> bytes:
    """An issuer script template: each (CLA INS P1 P2, data) gets the MAC the card checks."""
    p = card.profile
    arqc, atc = result.card_data[0x9F26], result.card_data[0x9F36]
    body = encode(0x9F18, ident)
    for head, data in commands:
        header = head + bytes([len(data) + 8])
        mac = command_mac(p.cryptogram_key, p.pan, p.psn, header=header, arqc=arqc, atc=atc, data=data)
        if bad_mac:
            mac = bytes([mac[0] ^ 1]) + mac[1:]
        body += encode(0x86, header + data + mac)
    return encode(template, body)
