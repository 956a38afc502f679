"""The issuer behind the simulated host: cryptogram checks, decisions and ARPCs.

Decision table
--------------

Checked in this order; the first that applies decides. "Magic amounts" look at
the amount in minor units, so they work in any currency.

=====================================  ======  ==========================================
Condition                              Code    Meaning
=====================================  ======  ==========================================
``emv_data`` not BER-TLV               ``30``  format error (a declined answer, not a 4xx)
ARQC present and not verified          ``82``  cryptogram (card authentication) failed;
                                               no ARPC
card blocked (``pan_token``)           ``62``  restricted card, or the code given with
                                               the block (``43`` stolen card, ...)
application expiry 5F24 before today   ``54``  expired card
amount ends in ``999NN``               ``NN``  any response code a tester wants: 999.12
                                               (99912) gives ``12``; ``99900`` approves
amount ends in ``51``                  ``51``  insufficient funds
amount ends in ``05``                  ``05``  do not honour
amount ends in ``54``                  ``54``  expired card
velocity limit reached                 ``65``  more approvals of this ``pan_token``
                                               within the window than allowed
anything else                          ``00``  approved, 6-character approval code
=====================================  ======  ==========================================

One issuer decides for both ways to the simulated host, HTTPS and in-process
(:mod:`simulator.host.acquirer`), so tests behave the same on both.

Cryptograms
-----------

An ARQC is a 9F26 whose 9F27 has bits 8-7 = ``10``. The PAN comes from 5A (or
57), the PAN sequence number from 5F34 (``00`` when absent), the key set from
the IAD (9F10): Visa format ``06 | DKI | CVN | CVR`` for CVN 10 / 18,
Mastercard ``DKI | 10 | ...`` for CVN 16, matched against
:data:`simulator.issuer_keys.ISSUER_MASTER_KEYS`. The cryptogram is verified
strictly over the data objects sent: a qVSDC card computes its ARQC at GET
PROCESSING OPTIONS, so the terminal sends the values the card received then
(its TVR of that moment, not the one it holds at the end).

When the ARQC verifies, the answer carries an ARPC, declined or approved:
method 1 (CVN 10, 16) over the ARQC and the ARC = the response code in ASCII;
method 2 (CVN 18) with the card status update ``00800000`` (approved) or
``00000000`` (declined), returned as ARPC (4 bytes) followed by the CSU.

The PAN is used in memory only, for these checks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from emv.pan import pan_of
from emv.tlv import TlvError, decode_primitive_map
from simulator.cryptograms import CVN_MC_16, CVN_VISA_18, CryptogramData, arpc, verify_arqc
from simulator.host.store import HostStore
from simulator.issuer_keys import ISSUER_MASTER_KEYS, IssuerMasterKeys

__all__ = [
    "ARQC_FAILED_CODE",
    "BLOCKED_CARD_CODE",
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
_CSU_APPROVED = bytes.fromhex("00800000")
_CSU_DECLINED = bytes(4)


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
    """The issuer's answer: response code, and the ARPC when an ARQC was verified."""

    response_code: str
    reason: str  # approved | arqc_failed | blocked | expired | magic_amount | velocity
    arpc: bytes | None = None

    @property
    def approved(self) -> bool:
        return self.response_code == "00"


@dataclass(frozen=True)
class _Arqc:
    keys: IssuerMasterKeys
    pan: str
    psn: str
    cryptogram: bytes
    atc: bytes


def _keys_for(iad: bytes) -> IssuerMasterKeys | None:
    for keys in ISSUER_MASTER_KEYS.values():
        if keys.cvn == CVN_MC_16:
            if len(iad) >= 8 and iad[0] == keys.dki and iad[1] == keys.cvn:
                return keys
        elif len(iad) >= 7 and iad[0] == 0x06 and iad[1] == keys.dki and iad[2] == keys.cvn:
            return keys
    return None


def _expired(tags: dict[int, bytes], today: dt.date) -> bool:
    raw = tags.get(0x5F24)
    if raw is None or len(raw) != 3:
        return False
    try:
        yy, mm, dd = (int(raw[i : i + 1].hex()) for i in range(3))
        expiry = dt.date(2000 + yy, mm, dd)
    except ValueError:
        return False  # not BCD or not a date: the kernel judged the card; nothing to add here
    return expiry < today


def _magic(amount: int) -> str | None:
    if (amount // 100) % 1000 == 999:
        return f"{amount % 100:02d}"
    return MAGIC_AMOUNT_CODES.get(amount % 100)


class Issuer:
    """Decides authorisations and deferred authorisations with rules a tester can steer.

    Blocked cards and the velocity limit live in the host store (so the CLI can
    change them while the server runs); see the module docstring for the table.
    """

    def __init__(self, store: HostStore) -> None:
        self._store = store

    def decide(self, *, amount: int, pan_token: str, tags: dict[int, bytes], now: dt.datetime) -> Decision:
        """The decision for a payment of ``amount`` with the card data objects ``tags``."""
        arqc = self._arqc(tags)
        if arqc is False:
            return Decision(ARQC_FAILED_CODE, "arqc_failed")
        code, reason = self._rules(amount, pan_token, tags, now)
        mac = self._arpc(arqc, code) if isinstance(arqc, _Arqc) else None
        return Decision(code, reason, mac)

    def _rules(self, amount: int, pan_token: str, tags: dict[int, bytes], now: dt.datetime) -> tuple[str, str]:
        blocked = self._store.blocked_code(pan_token)
        if blocked is not None:
            return blocked, "blocked"
        if _expired(tags, now.date()):
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
                self._store.lock("card", pan_token)
                if self._store.approvals_since(pan_token, since) >= max_approvals:
                    return VELOCITY_CODE, "velocity"
        return "00", "approved"

    @staticmethod
    def _arqc(tags: dict[int, bytes]) -> _Arqc | bool | None:
        """None: no ARQC in the data; False: an ARQC that does not verify; else the verified ARQC."""
        cryptogram = tags.get(0x9F26)
        cid = tags.get(0x9F27)
        if cryptogram is None or not cid or cid[0] & 0xC0 != 0x80:
            return None
        pan = pan_of(tags)
        iad = tags.get(0x9F10, b"")
        keys = _keys_for(iad)
        atc = tags.get(0x9F36)
        if pan is None or keys is None or atc is None or len(cryptogram) != 8:
            return False
        psn_raw = tags.get(0x5F34, b"\x00")
        psn = psn_raw[:1].hex() if psn_raw else "00"
        try:
            data = CryptogramData.from_tags(tags)
            if verify_arqc(keys, pan, psn, data, cryptogram):
                return _Arqc(keys, pan, psn, cryptogram, atc)
        except Exception:  # untrusted data objects into pyemv: any failure is "not verified"
            return False
        return False

    @staticmethod
    def _arpc(arqc: _Arqc, code: str) -> bytes:
        if arqc.keys.cvn == CVN_VISA_18:
            csu = _CSU_APPROVED if code == "00" else _CSU_DECLINED
            return arpc(arqc.keys, arqc.pan, arqc.psn, arqc=arqc.cryptogram, atc=arqc.atc, response=csu) + csu
        return arpc(arqc.keys, arqc.pan, arqc.psn, arqc=arqc.cryptogram, atc=arqc.atc, response=code.encode("ascii"))
