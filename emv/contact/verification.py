"""Cardholder verification on the contact interface (EMV Book 3 10.5, Book 2 7).

The CVM list is walked by :func:`emv.cvm.process`; this module supplies what
it cannot do itself, the offline PIN:

- the PIN try counter first (GET DATA 9F17): at 0 the PIN is not asked for and
  "PIN try limit exceeded" is set (10.5.1);
- the cardholder enters the PIN through the :class:`~emv.contact.ports.Cardholder`
  port (or bypasses it: "PIN not entered"; cancel and timeout end the transaction);
- plaintext PIN: VERIFY with P2 80 and the PIN block of format 2;
- enciphered PIN: GET CHALLENGE, then the PIN block, the card's challenge and
  padding enciphered with the ICC PIN encipherment key (9F2D/9F2E/9F2F) or, without
  one, the ICC key (9F46/9F47/9F48), and VERIFY with P2 88.  When the cardholder
  interface enciphers the PIN itself (:class:`~emv.contact.ports.EncipheringCardholder`,
  a separate PIN pad), GET CHALLENGE comes first and the pad gets the key and
  the challenge, and hands back only the ciphertext: the kernel never sees a
  digit.  The challenge is valid for the next command only, and no command
  goes to the card while the customer keys the PIN;
- 63Cx is a wrong PIN with x tries left (the cardholder may try again while
  tries are left, up to :attr:`ContactConfig.max_pin_entries`); 63C0, 6983 and
  6984 are "PIN try limit exceeded".

Online PIN is only recorded (9F34 result "unknown", TVR "online PIN entered"):
the PIN block for the host is formed by the PIN pad, outside ``emv``.

>>> pin_block("1234").hex().upper()
'241234FFFFFFFFFF'
"""

from __future__ import annotations

import hashlib

from emv import cvm, oda, tlv
from emv.contact.ports import EncipheringCardholder, PinKind, PinStatus
from emv.contact.processing import AIP_CVM, icc_public_key, issuer_public_key
from emv.contact.session import Session, send
from emv.pan import pan_of

__all__ = ["PinCancelled", "cardholder_verification", "encipher_pin", "pin_block"]

_ENCIPHERED = frozenset({cvm.CvmMethod.ENCIPHERED_PIN_ICC, cvm.CvmMethod.ENCIPHERED_PIN_ICC_AND_SIGNATURE})


class PinCancelled(Exception):
    """The cardholder cancelled PIN entry, or it timed out: the transaction ends."""


def pin_block(pin: str) -> bytes:
    """The offline PIN block (format 2): 2 | N | PIN | F padding, 8 bytes."""
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise ValueError("a PIN is 4 to 12 digits")
    return bytes.fromhex(f"2{len(pin):X}{pin}".ljust(16, "F"))


def encipher_pin(key: oda.PublicKey, block: bytes, challenge: bytes, entropy: bytes) -> bytes:
    """Book 2 7.1: RSA over 7F | PIN block | ICC unpredictable number | padding.

    The padding is expanded from ``entropy`` and the challenge (the kernel draws
    no random numbers of its own: the caller gives the entropy).
    """
    size = key.size
    need = size - 17
    pad = b""
    counter = 0
    while len(pad) < need:
        pad += hashlib.sha256(entropy + challenge + counter.to_bytes(4, "big")).digest()
        counter += 1
    message = b"\x7f" + block + challenge + pad[:need]
    n = int.from_bytes(key.modulus, "big")
    e = int.from_bytes(key.exponent, "big")
    return pow(int.from_bytes(message, "big"), e, n).to_bytes(size, "big")


def _pin_key(session: Session) -> oda.PublicKey | None:
    """The ICC PIN encipherment key when the card has one, else the ICC key."""
    card = session.card_data
    if 0x9F2D in card and 0x9F2E in card:
        try:
            return oda.recover_icc_key(
                issuer_public_key(session),
                card[0x9F2D],
                card.get(0x9F2F, b""),
                card[0x9F2E],
                pan_of(card) or "",
                b"",
                session.txn.on_date(),
            )
        except oda.OdaFailure:
            return None
    return icc_public_key(session)


def _pin_try_counter(session: Session) -> int | None:
    resp = send(session, bytes.fromhex("80CA9F1700"), "GET DATA 9F17")
    if not resp.ok:
        return None
    try:
        objs = tlv.decode(resp.data)
    except tlv.TlvError:
        return None
    if len(objs) != 1 or objs[0].tag != 0x9F17 or len(objs[0].value) != 1:
        return None
    return objs[0].value[0]


def _verify(session: Session, p2: int, data: bytes) -> int:
    return send(session, bytes([0x00, 0x20, 0x00, p2, len(data)]) + data, "VERIFY").sw


def _challenge(session: Session) -> bytes | None:
    resp = send(session, bytes.fromhex("0084000000"), "GET CHALLENGE")
    return resp.data if resp.ok and len(resp.data) == 8 else None


def _ended(status: PinStatus) -> cvm.PinResult:
    """A PIN entry that gave no PIN: bypass is "PIN not entered"; cancel and timeout end the transaction."""
    if status is PinStatus.BYPASS:
        return cvm.PinResult.NOT_ENTERED
    raise PinCancelled(f"PIN entry: {status.value}")


def _verify_once(session: Session, kind: PinKind, key: oda.PublicKey | None, tries: int | None) -> int | cvm.PinResult:
    """One PIN entry and its VERIFY: the status word, or how the entry ended without one."""
    cardholder = session.cardholder
    assert cardholder is not None
    if key is not None and isinstance(cardholder, EncipheringCardholder):
        challenge = _challenge(session)
        if challenge is None:
            return cvm.PinResult.FAILED
        sealed = cardholder.encipher_pin(key, challenge, tries, tries == 1)
        if sealed.status is not PinStatus.ENTERED or sealed.data is None:
            return _ended(sealed.status)
        if len(sealed.data) != key.size:  # not the key's ciphertext: the PIN pad is not working
            return cvm.PinResult.FAILED
        return _verify(session, 0x88, sealed.data)
    entry = cardholder.enter_pin(kind, tries, tries == 1)
    if entry.status is not PinStatus.ENTERED or entry.pin is None:
        return _ended(entry.status)
    block = pin_block(entry.pin)
    if key is None:
        return _verify(session, 0x80, block)
    challenge = _challenge(session)
    if challenge is None:
        return cvm.PinResult.FAILED
    return _verify(session, 0x88, encipher_pin(key, block, challenge, session.entropy))


def _offline_pin(session: Session, method: cvm.CvmMethod) -> cvm.PinResult:
    cardholder = session.cardholder
    if cardholder is None:
        return cvm.PinResult.NOT_ENTERED
    kind: PinKind = "enciphered" if method in _ENCIPHERED else "plaintext"
    tries = _pin_try_counter(session)
    if tries == 0:
        return cvm.PinResult.TRY_LIMIT_EXCEEDED
    key = None
    if kind == "enciphered":
        key = _pin_key(session)
        if key is None or key.size < 17 + 8:
            return cvm.PinResult.FAILED
    for _ in range(max(1, session.config.max_pin_entries)):
        sw = _verify_once(session, kind, key, tries)
        if isinstance(sw, cvm.PinResult):
            return sw
        if sw == 0x9000:
            return cvm.PinResult.VERIFIED
        if sw in (0x6983, 0x6984) or sw == 0x63C0:
            return cvm.PinResult.TRY_LIMIT_EXCEEDED
        if sw & 0xFFF0 != 0x63C0:
            return cvm.PinResult.FAILED
        tries = sw & 0x0F
    return cvm.PinResult.FAILED


def cardholder_verification(session: Session) -> None:
    """Book 3 10.5: 9F34, the CVM for the result, TVR and TSI bits; PinCancelled ends the transaction."""
    if not session.aip_bit(AIP_CVM):
        outcome = cvm.no_cvm_supported_by_card()
    else:
        raw = session.card_data.get(0x8E)
        try:
            cvm_list = cvm.parse_cvm_list(raw) if raw is not None else None
        except cvm.CvmListError:
            cvm_list = None
        txn = session.txn
        ctx = cvm.CvmContext(
            amount=txn.amount,
            transaction_currency=txn.currency_bcd(),
            application_currency=session.card_data.get(0x9F42),
            cvm_capability=session.config.terminal_capabilities()[1],
            transaction_type=txn.transaction_type,
            terminal_type=session.config.terminal_type,
            # without a cardholder interface there is no PIN pad to enter a PIN on
            pin_pad_working=session.config.pin_pad and session.cardholder is not None,
            offline_pin=lambda method: _offline_pin(session, method),
        )
        outcome = cvm.process(cvm_list, ctx)
    outcome.apply_to(session.tvr, session.tsi)
    session.cvm_results = outcome.results
    session.card_data[0x9F34] = outcome.results
    session.signature_required = outcome.signature_required
    session.online_pin = outcome.online_pin
    session.cvm_performed = outcome.performed
