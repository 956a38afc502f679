"""The issuer behind the simulated host: its decision table, after the card has proven itself.

What a message must prove first — card data and a cryptogram that verifies
(:mod:`simulator.host.proofs`), then the acquirer's own checks (a transaction
approved once, a refund against its sale, :mod:`simulator.host.rules`) — comes
before this table; :class:`simulator.host.acquirer.Acquirer` runs them in that
order. The whole order, the first that applies decides:

=====================================  ======  ==========================================
Condition                              Code    Meaning
=====================================  ======  ==========================================
``emv_data`` not BER-TLV               ``30``  format error (a declined answer, not a 4xx)
``txn_id`` approved before             ``94``  duplicate transaction (same merchant and
                                               terminal, whatever the idempotency key)
no card data (no PAN in 5A / 57)       ``14``  invalid card number
no cryptogram, of the wrong type, or   ``82``  cryptogram (card authentication) failed;
not verified                                   no ARPC (see :mod:`simulator.host.proofs`)
the card signed another amount or      ``13``  invalid amount: 9F02 / 5F2A are not the
currency                                       message's ``amount`` / ``currency``
a refund that its sale does not cover  ``25``  ``12`` ``13`` ``58``: see :mod:`simulator.host.rules`
card blocked (the host's card token)   ``62``  restricted card, or the code given with
                                               the block (``43`` stolen card, ...)
a PIN block that is not the card's     ``55``  incorrect PIN; ``75`` PIN tries exceeded:
PIN, or tries exceeded                         see :mod:`simulator.host.pin_check`
application expiry 5F24 before today   ``54``  expired card
amount ends in ``999NN``               ``NN``  any response code a tester wants: 999.12
                                               (99912) gives ``12``; ``99900`` approves
amount ends in ``51``                  ``51``  insufficient funds
amount ends in ``05``                  ``05``  do not honour
amount ends in ``54``                  ``54``  expired card
velocity limit reached                 ``65``  more approvals of this card (the host's
                                               token) within the window than allowed
anything else                          ``00``  approved, 6-character approval code
=====================================  ======  ==========================================

The table from "card blocked" on is this module's (:meth:`Issuer.decide`); it
applies to online sales and refunds and to deferred authorisations. Offline
approvals and offline refunds were decided by the card: once proven (and, for
a refund, covered), the host takes note.

One issuer decides for both ways to the simulated host, HTTPS and in-process
(:mod:`simulator.host.acquirer`), so tests behave the same on both.

When an ARQC was verified the answer carries the issuer authentication data
(91) for the card, declined or approved: method 1 (CVN 10, 16), the ARPC over
the ARQC and the ARC (the response code in ASCII) followed by the ARC; method 2
(CVN 18, EMV Book 2 8.2.2), the 4-byte ARPC followed by the card status update
``00800000`` (approved) or ``00000000`` (declined) (:mod:`simulator.csu`).  The
protocol's older ``arpc`` is the first 8 bytes of it (the ARPC, or ARPC || CSU).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from emv.tlv import TlvError, decode_primitive_map
from simulator.host.pin_check import check_pin
from simulator.host.proofs import Claim, EmvCardProof, ProofVerifier, Proven, Refusal, prove
from simulator.host.rules import DUPLICATE_CODE
from simulator.host.store import HostStore
from terminal.pinblock import EncryptedPin

__all__ = [
    "ARQC_FAILED_CODE",
    "BLOCKED_CARD_CODE",
    "DUPLICATE_CODE",
    "EXPIRED_CARD_CODE",
    "FORMAT_ERROR_CODE",
    "MAGIC_AMOUNT_CODES",
    "VELOCITY_CODE",
    "Decision",
    "EmvDataError",
    "Issuer",
    "parse_emv_data",
]

ARQC_FAILED_CODE = "82"
FORMAT_ERROR_CODE = "30"
BLOCKED_CARD_CODE = "62"
EXPIRED_CARD_CODE = "54"
VELOCITY_CODE = "65"
#: Last two digits of the amount (minor units) -> response code (the README's "amounts ending in .51, .05, .54").
MAGIC_AMOUNT_CODES: dict[int, str] = {51: "51", 5: "05", 54: "54"}


class EmvDataError(ValueError):
    """``emv_data`` is not BER-TLV."""


def parse_emv_data(emv_data: bytes) -> dict[int, bytes]:
    """Tag -> value of the primitive data objects (raises :class:`EmvDataError`)."""
    if not emv_data:
        return {}
    try:
        return decode_primitive_map(emv_data)
    except (TlvError, ValueError) as exc:
        raise EmvDataError(f"emv_data: not BER-TLV ({exc})") from None


@dataclass(frozen=True)
class Decision:
    """The answer: response code, the reason recorded, the ARPC when an ARQC was verified, the card's token.

    ``card_token`` is the host's token of the card ("" when the message proved none).
    ``issuer_authentication_data`` is 91 for the card (ARPC method 1 or 2), ``arpc`` its first 8 bytes.
    """

    response_code: str
    reason: str  # approved | duplicate_transaction | no_card_data | arqc_failed | blocked | expired | ...
    issuer_authentication_data: bytes | None = None
    card_token: str = ""
    proof: str | None = None  # the one-time proof approved (Proven.proof), kept on the record
    scripts: bytes = b""  # issuer scripts (templates 71 / 72) for a chip card, sent with the answer

    @property
    def approved(self) -> bool:
        return self.response_code == "00"

    @property
    def arpc(self) -> bytes | None:
        """The protocol's ``arpc``: method 1 the 8-byte ARPC, method 2 ARPC (4) || CSU (4)."""
        data = self.issuer_authentication_data
        return data[:8] if data else None


def _magic(amount: int) -> str | None:
    if (amount // 100) % 1000 == 999:
        return f"{amount % 100:02d}"
    return MAGIC_AMOUNT_CODES.get(amount % 100)


class Issuer:
    """Proves cards and decides payments with rules a tester can steer.

    Blocked cards and the velocity limit live in the host store (so the CLI can
    change them while the server runs); see the module docstring for the table.
    ``proofs``: the means of payment the issuer can verify, in order (the seam
    of :mod:`simulator.host.proofs`; EMV cards by default).
    """

    def __init__(self, store: HostStore, proofs: tuple[ProofVerifier, ...] = (EmvCardProof(),)) -> None:
        self._store = store
        self.proofs = proofs

    def prove(self, tags: dict[int, bytes], claim: Claim) -> Proven | Refusal:
        """The card (or other means of payment) in ``tags``, proven for ``claim``, or the refusal."""
        return prove(self.proofs, tags, claim, self._store.card_token)

    @staticmethod
    def refuse(refusal: Refusal, proven: Proven | None = None) -> Decision:
        """A decision that refuses (with the ARPC of its code when the card was proven with an ARQC)."""
        mac = proven.answer(refusal.code) if proven is not None and proven.answer is not None else None
        return Decision(refusal.code, refusal.reason, mac, proven.token if proven is not None else "")

    def decide(
        self,
        *,
        amount: int,
        proven: Proven,
        now: dt.datetime,
        pin: EncryptedPin | None = None,
        pan: str | None = None,
    ) -> Decision:
        """The decision table from "card blocked" on, for a payment of ``amount`` by the proven card.

        ``pin``: the online PIN block the message carries, checked against the
        card's PIN (``pan``: the card's PAN, in memory only; a PIN with no PAN
        to bind it cannot be the card's: ``55``).
        """
        code, reason = self._rules(amount, proven, now, pin, pan)
        mac = proven.answer(code) if proven.answer is not None else None
        scripts = proven.scripts(code) if proven.scripts is not None else b""
        return Decision(code, reason, mac, proven.token, scripts=scripts)

    def _rules(
        self, amount: int, proven: Proven, now: dt.datetime, pin: EncryptedPin | None, pan: str | None
    ) -> tuple[str, str]:
        blocked = self._store.blocked_code(proven.token)
        if blocked is not None:
            return blocked, "blocked"
        if pin is not None:
            if pan is None:
                return "55", "pin_without_card"
            refused = check_pin(self._store, pan=pan, token=proven.token, pin=pin, now=now)
            if refused is not None:
                return refused
        if proven.expired(now.date()):
            return EXPIRED_CARD_CODE, "expired"
        magic = _magic(amount)
        if magic is not None and magic != "00":
            return magic, "magic_amount"
        max_approvals, window = self._store.velocity()
        if max_approvals > 0 and window > 0:
            since = (now - dt.timedelta(seconds=window)).isoformat(timespec="microseconds")
            # In the acquirer's transaction: the card's lock is held until its record is stored, so host
            # workers deciding for the same card at once (other terminals) count each other's approvals.
            with self._store.transaction():
                self._store.lock("card", proven.token)
                if self._store.approvals_since(proven.token, since) >= max_approvals:
                    return VELOCITY_CODE, "velocity"
        return "00", "approved"
