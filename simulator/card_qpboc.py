"""The card side of a UnionPay-style QuickPass (qPBOC) card: its GPO answer and electronic cash.

Used by :class:`simulator.card.SimulatedCard` for profiles of kernel 7.  Like
a qVSDC card, it computes its cryptogram at GET PROCESSING OPTIONS; on top of
that it holds electronic cash (EC, ``"ec"`` in the profile): when the reader
offers EC (9F7A = 01 in the PDOL), does not require an online cryptogram, the
currency is the card's and the amount is within its single-transaction limit
and its balance, the card debits its balance and approves offline (TC, with an
fDDA signature); its Available Offline Spending Amount (9F5D) is the balance
after the sale, and GET DATA 9F79 reads it.  When the balance is short an
EC-only card declines (AAC); a debit or credit card with EC goes on as a
qPBOC card (online, or offline under its own limit).

What a real card does here is not public; docs/internals.md "Kernel C-7" lists
the guesses.  The balance lives in the card object: a new card (a new process,
a new ``sim:card=`` reader) starts again from the profile's balance.

A card taken away too early (posterm's guess at "闪卡" handling, :mod:`emv.c7_torn`):
the card remembers its last GPO when it was an EC debit (the PDOL values it
received, its answer, its card authentication number); a GPO with exactly
those values gets that answer again (:func:`replay`), without a new debit or a
new ATC, so that the reader can complete the transaction the card already
paid.  Any other GPO is a new transaction and the card forgets the debit.  The
profile fault ``torn`` makes the card leave the field after its first EC debit,
before sending its answer (unionpay-ec-torn).

It works with the card's own helpers (its cryptogram, AFL, signatures): one card, two modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from simulator import _ber

if TYPE_CHECKING:
    from simulator.card import SimulatedCard

__all__ = ["EcDebit", "ec_data_objects", "gpo_answer", "replay"]

CID_AAC = 0x00
CID_TC = 0x40
CID_ARQC = 0x80
_CVR_AC_BITS = {CID_AAC: 0x00, CID_TC: 0x10, CID_ARQC: 0x20}
SW_OK = b"\x90\x00"


def _n12(value: int) -> bytes:
    return bytes.fromhex(f"{value:012d}")


def _amount(value: bytes) -> int | None:
    digits = value.hex()
    return int(digits) if digits.isdigit() else None


@dataclass(frozen=True)
class EcDebit:
    """The card's last GPO when it debited its electronic cash: what it received and answered."""

    pdol_values: bytes
    answer: bytes
    card_un: bytes  # the card's number in 9F69, which its fDDA signature covers


def replay(card: SimulatedCard, pdol_values: bytes) -> bytes | None:
    """The answer of the card's last EC debit when ``pdol_values`` are exactly its GPO's; else None
    (and the debit is forgotten: this GPO is a new transaction)."""
    last = card.last_ec_debit
    if last is None or last.pdol_values != pdol_values:
        card.last_ec_debit = None
        return None
    card._card_un = last.card_un
    return last.answer


def ec_data_objects(card: SimulatedCard) -> dict[int, bytes]:
    """What GET DATA answers of the card's electronic cash (none for a card without EC)."""
    ec = card.profile.ec
    if ec is None or card.ec_balance is None:
        return {}
    return {
        0x9F79: _n12(card.ec_balance),
        0x9F77: _n12(ec.balance_limit),
        0x9F78: _n12(ec.single_limit),
        0x9F6D: _n12(ec.reset_threshold),
    }


def _decide(card: SimulatedCard, terminal: dict[int, bytes], ttq: bytes) -> tuple[int, bool]:
    """(CID, paid from EC) for this GPO; debits the EC balance when it pays."""
    p = card.profile
    ec = p.ec
    amount = _amount(terminal.get(0x9F02, bytes(6)))
    online_required = bool(ttq[1] & 0x80)
    offline_only_reader = bool(ttq[0] & 0x08)
    if ec is not None and card.ec_balance is not None:
        offered = terminal.get(0x9F7A, b"\x00") == b"\x01" and not online_required
        fits = (
            amount is not None
            and 0 < amount <= ec.single_limit
            and amount <= card.ec_balance
            and terminal.get(0x5F2A) == p.currency
            and terminal.get(0x9C, b"\x00") == b"\x00"
        )
        if offered and fits:
            assert amount is not None
            card.ec_balance -= amount
            return CID_TC, True
        if ec.only:
            return CID_AAC, False
    if p.online_only or online_required or card._wants_online(terminal):
        return (CID_AAC if offline_only_reader else CID_ARQC), False
    return CID_TC, False


def gpo_answer(card: SimulatedCard, terminal: dict[int, bytes], pdol_values: bytes) -> tuple[bytes, bool]:
    """The R-APDU of GET PROCESSING OPTIONS (template 77), the card's decision taken; and whether it
    debited its electronic cash (then remembered for :func:`replay`)."""
    answer, from_ec = _answer(card, terminal)
    if from_ec:
        card.last_ec_debit = EcDebit(pdol_values, answer, card._card_un)
    return answer, from_ec


def _answer(card: SimulatedCard, terminal: dict[int, bytes]) -> tuple[bytes, bool]:
    p = card.profile
    ttq = terminal.get(0x9F66, bytes(4)).ljust(4, b"\x00")
    cid, from_ec = _decide(card, terminal, ttq)
    cvr = bytes([0x03, _CVR_AC_BITS[cid], 0x00, 0x00])
    ac, iad = card._cryptogram(cid, terminal, cvr)
    items: list[tuple[int, bytes]] = [
        (0x82, p.aip),
        (0x94, card._afl()),
        (0x57, card._track2()),
        (0x5F34, bytes.fromhex(p.psn)),
        (0x9F10, iad),
        (0x9F26, ac),
        (0x9F27, bytes([cid])),
        (0x9F36, card.atc.to_bytes(2, "big")),
    ]
    if p.ctq is not None:
        items.append((0x9F6C, p.ctq))
    if card.ec_balance is not None:
        items.append((0x9F5D, _n12(card.ec_balance)))
    fdda = card._can_sign() and p.oda is not None and p.oda.method == "fdda"
    if fdda and (cid == CID_TC or (cid == CID_ARQC and ttq[0] & 0x01)):
        card_auth = card._plain_value(0x9F69) or b""
        tdd = (
            terminal.get(0x9F37, bytes(4))
            + terminal.get(0x9F02, bytes(6))
            + terminal.get(0x5F2A, bytes(2))
            + card_auth
        )
        number = card._dynamic_number()
        items.append((0x9F4B, card._sign_dynamic(bytes([len(number)]) + number, tdd)))
    return _ber.encode(0x77, b"".join(_ber.encode(t, v) for t, v in items)) + SW_OK, from_ec
