"""The customers' cards of a load run: simulated cards tapped through the terminal's own kernels.

Every payment of the load generator carries the EMV data a real tap gives:
:class:`CardPool` holds a set of :class:`~simulator.card.SimulatedCard` objects
personalised from the shipped profiles, each with its own PAN (the profile's
BIN, a serial number, a Luhn check digit), and runs Entry Point and the
selected kernel (:func:`terminal.emv_session.run_tap`) over them, as a
terminal does. The data objects sent to the host are the terminal's own
choice (:data:`terminal.card_reading.HOST_DATA_TAGS`, the cryptogram's inputs
as the card received them), so the issuer verifies a real ARQC (or TC).

A card is shared by every terminal, as customers' cards are; its application
transaction counter goes up by one at every tap, so no two payments carry the
same ATC and cryptogram for one card. A card stops at ATC 0xFFFF: the pool is
sized so that no card gets near it (``cards_for``).

Cost on this machine: an online tap (``visa-qvsdc-online``: no offline data
authentication, a Visa CVN 10 ARQC) takes about 0.3 ms, so taps are made as
payments happen; an offline approval (``visa-qvsdc-offline``: fDDA, an RSA
signature per tap) takes about 3 ms, so those are made before the run
(:meth:`CardPool.precompute_offline`) and handed out one by one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import random
import secrets
import time
from collections import deque
from dataclasses import dataclass

from emv import tlv
from emv.config import TerminalConfig
from emv.outcome import Outcome, TransactionResult
from simulator import profiles
from simulator.card import SimulatedCard
from simulator.transport import as_transport
from terminal.card_reading import HOST_DATA_TAGS
from terminal.emv_session import TapInputs, build_transaction, run_tap
from terminal.settings import load_default_config

__all__ = ["OFFLINE_PROFILE", "ONLINE_PROFILE", "CardPool", "CardTapError", "Tap", "luhn_pan"]

ONLINE_PROFILE = "visa-qvsdc-online"
OFFLINE_PROFILE = "visa-qvsdc-offline"
#: Taps per card before the pool would rather use another card (the ATC is two bytes).
_TAPS_PER_CARD = 30_000
PURCHASE = 0x00
REFUND = 0x20


class CardTapError(RuntimeError):
    """A tap did not end as the load generator needs (an online request, or an offline approval)."""


@dataclass(frozen=True)
class Tap:
    """One tap's result as a terminal sends it: the card's index in the pool, its data objects, its token."""

    card: int
    emv_data: bytes
    pan_token: str
    atc: int
    cryptogram: bytes
    amount: int
    transaction_type: int


def luhn_pan(prefix: str, length: int = 16) -> str:
    """``prefix`` padded with zeros to ``length - 1`` digits, then its Luhn check digit.

    >>> luhn_pan("476173900101001")
    '4761739001010010'
    """
    body = prefix.ljust(length - 1, "0")[: length - 1]
    total = 0
    for i, ch in enumerate(reversed(body)):
        digit = int(ch)
        if i % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return body + str((10 - total % 10) % 10)


def _host_data(result: TransactionResult) -> bytes:
    """The TLV a terminal sends (see :func:`terminal.card_reading.host_data`, here not encrypted)."""
    data = result.card_data | result.cryptogram_inputs
    return tlv.encode_pairs([(tag, data[tag]) for tag in HOST_DATA_TAGS if tag in data])


class CardPool:
    """``online`` cards that ask to go online, ``offline`` cards that approve small amounts offline.

    ``token_secret`` keys the card tokens (``pan_token``) the terminals send,
    the same for a card on every terminal. ``seed`` makes the choice of cards
    reproducible (the cryptograms still differ: the unpredictable number is
    random).
    """

    def __init__(
        self,
        online: int,
        offline: int = 0,
        *,
        seed: int | None = None,
        token_secret: bytes | None = None,
        config: TerminalConfig | None = None,
    ) -> None:
        if online < 1:
            raise ValueError("a card pool needs at least one online card")
        self._config = config or load_default_config()
        self._secret = token_secret or secrets.token_bytes(32)
        self._rng = random.Random(seed)
        self._online = [self._card(ONLINE_PROFILE, 1_000_000 + i) for i in range(online)]
        self._offline = [self._card(OFFLINE_PROFILE, 2_000_000 + i) for i in range(offline)]
        self._ready: deque[Tap] = deque()
        self.tap_seconds = 0.0  # wall time spent tapping (the kernels and the cards), precomputed taps excluded
        self.taps = 0
        self.precompute_seconds = 0.0

    @staticmethod
    def cards_for(payments: int) -> int:
        """How many cards keep every ATC well below its end for ``payments`` taps."""
        return max(1, -(-payments // _TAPS_PER_CARD))

    def _card(self, name: str, serial: int) -> SimulatedCard:
        base = profiles.load(name)
        pan = luhn_pan(base.pan[:6] + f"{serial:09d}", len(base.pan))
        return SimulatedCard(dataclasses.replace(base, pan=pan, atc=1), seed=serial)

    def token(self, card: SimulatedCard) -> str:
        """The card's token as a terminal sends it: 32 hex digits of a keyed MAC of the PAN."""
        return hmac.new(self._secret, card.profile.pan.encode(), hashlib.sha256).hexdigest()[:32]

    @property
    def online_cards(self) -> int:
        return len(self._online)

    def _tap(self, cards: list[SimulatedCard], index: int, amount: int, currency: int, kind: int) -> Tap:
        card = cards[index]
        card.reset()
        txn = build_transaction(TapInputs(amount=amount, currency=currency, transaction_type=kind))
        result = run_tap(as_transport(card), self._config, txn).result
        cryptogram = result.card_data.get(0x9F26, b"")
        wanted = Outcome.APPROVED if cards is self._offline else Outcome.ONLINE_REQUEST
        if result.outcome is not wanted or not cryptogram:
            raise CardTapError(f"{card.profile.name}: {result.outcome.value} for {amount}, not {wanted.value}")
        atc = int.from_bytes(result.card_data.get(0x9F36, b"\x00\x00"), "big")
        return Tap(index, _host_data(result), self.token(card), atc, cryptogram, amount, kind)

    def tap_online(self, amount: int, currency: int = 978, *, card: int | None = None, refund: bool = False) -> Tap:
        """An ARQC for ``amount`` from a random online card (or card number ``card``: a refund to the same card)."""
        index = self._rng.randrange(len(self._online)) if card is None else card
        started = time.perf_counter()
        try:
            return self._tap(self._online, index, amount, currency, REFUND if refund else PURCHASE)
        finally:
            self.tap_seconds += time.perf_counter() - started
            self.taps += 1

    def precompute_offline(self, count: int, amounts: list[int], currency: int = 978) -> None:
        """``count`` offline approvals (TCs) made now, amounts drawn from ``amounts``, for :meth:`offline_tap`."""
        if not self._offline:
            return
        started = time.perf_counter()
        for i in range(count):
            index = i % len(self._offline)
            self._ready.append(self._tap(self._offline, index, self._rng.choice(amounts), currency, PURCHASE))
        self.precompute_seconds += time.perf_counter() - started

    def offline_tap(self) -> Tap | None:
        """The next precomputed offline approval; None when they are used up."""
        return self._ready.popleft() if self._ready else None

    @property
    def offline_left(self) -> int:
        return len(self._ready)
