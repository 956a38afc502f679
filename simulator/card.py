"""A simulated contactless EMV card that computes real cryptograms and signatures.

:class:`SimulatedCard` answers C-APDUs the way a Visa-style qVSDC card (kernel 3),
a Mastercard-style EMV-mode card (kernel 2) or a UnionPay-style QuickPass card
(kernel 7, :mod:`simulator.card_qpboc`) would, personalised from a
:class:`simulator.profiles.CardProfile`.  Application cryptograms come from
:mod:`simulator.cryptograms` (pyemv), offline data authentication from the
simulator PKI (:mod:`simulator.pki`).

The card never imports the terminal's EMV code: it parses with its own
:mod:`simulator._ber`.  Malformed commands get status words, never exceptions;
the only exception it raises on purpose is :class:`CardMuteError` (the
``visa-mute`` profile).  :mod:`simulator.transport` turns that into the
terminal's ``CardCommunicationError``.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from simulator import _ber, card_qpboc, pki
from simulator.command_apdu import CommandApdu, parse_command_apdu
from simulator.cryptograms import CryptogramData, build_iad, compute
from simulator.issuer_keys import issuer_master_keys
from simulator.profiles import CardProfile, load

__all__ = [
    "PPSE",
    "CardMuteError",
    "CardTornError",
    "SimulatedCard",
    "SimulatedCardError",
]

PPSE = b"2PAY.SYS.DDF01"

SW_OK = b"\x90\x00"
SW_WRONG_LENGTH = b"\x67\x00"
SW_CONDITIONS = b"\x69\x85"
SW_WRONG_DATA = b"\x6a\x80"
SW_NOT_FOUND = b"\x6a\x82"
SW_RECORD_NOT_FOUND = b"\x6a\x83"
SW_WRONG_P1P2 = b"\x6a\x86"
SW_DATA_NOT_FOUND = b"\x6a\x88"
SW_INS_NOT_SUPPORTED = b"\x6d\x00"
SW_CLA_NOT_SUPPORTED = b"\x6e\x00"
SW_NO_DIAGNOSIS = b"\x6f\x00"

CID_AAC = 0x00
CID_TC = 0x40
CID_ARQC = 0x80
_CVR_AC_BITS = {CID_AAC: 0x00, CID_TC: 0x10, CID_ARQC: 0x20}


class SimulatedCardError(Exception):
    """Base of the exceptions a simulated card raises on purpose (the card left the field)."""


class CardMuteError(SimulatedCardError):
    """The card stopped answering (profile fault ``mute``)."""


class CardTornError(SimulatedCardError):
    """The card left the field after computing its GENERATE AC answer, before sending it
    (profile fault ``torn``: the first GENERATE AC of the card's life; for a kernel 7 card,
    its first GPO that debits its electronic cash)."""


def _bcd_amount(value: bytes) -> int | None:
    digits = value.hex()
    return int(digits) if digits.isdigit() else None


def _first_values(pairs: Sequence[tuple[int, bytes]]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for tag, value in pairs:
        out.setdefault(tag, value)
    return out


def _template(tag: int, items: Sequence[tuple[int, bytes]]) -> bytes:
    return _ber.encode(tag, b"".join(_ber.encode(t, v) for t, v in items))


@dataclass(frozen=True)
class _Certificates:
    """Everything the PKI gives one card: the computed record tags and the signing keys."""

    values: dict[int, bytes]
    icc: pki.RsaPrivateKey | None
    issuer: pki.RsaPrivateKey | None


# Certificates are deterministic for a profile; building them costs a few RSA
# private operations, so cards sharing a profile share them.
_CERT_CACHE: dict[tuple[object, ...], _Certificates] = {}


@dataclass
class _Txn:
    """Per-selection transaction state."""

    app_selected: bool = False
    gpo_done: bool = False
    pdol_values: bytes = b""
    genac_count: int = 0
    first_cid: int | None = None
    cdol1_values: bytes = b""
    cdol1: dict[int, bytes] = field(default_factory=dict)


class SimulatedCard:
    """A card personalised from a profile; feed it C-APDUs with :meth:`exchange`.

    ``seed`` makes the card's own randomness (dynamic numbers, garbage bytes)
    reproducible.  ``compute_seconds`` accumulates the time spent inside
    :meth:`exchange`, so a benchmark can subtract the card's own computing time.
    """

    def __init__(
        self,
        profile: CardProfile | str,
        *,
        seed: int | None = None,
        keys: pki.SimulatorPki | None = None,
    ) -> None:
        self.profile = load(profile) if isinstance(profile, str) else profile
        self.compute_seconds = 0.0
        self.atc = self.profile.atc
        self.last_online_atc = self.profile.last_online_atc
        self.pin_try_counter = self.profile.pin_try_counter
        self.ec_balance = self.profile.ec.balance if self.profile.ec is not None else None  # kernel 7 cards
        self.last_error: str | None = None
        self._rng = random.Random(seed)
        self._keys = keys
        self._certs: _Certificates | None = None
        self._txn = _Txn()
        self._mute_armed = False
        self._card_un = bytes(4)
        # The last first GENERATE AC (its terminal data by tag, its answer), kept across power-ups
        # for RECOVER AC; whether the fault "torn" has struck.
        self._last_gac: tuple[dict[int, bytes], bytes, int] | None = None
        self._torn = False
        # A kernel 7 card's last GPO when it debited its electronic cash (simulator.card_qpboc.replay).
        self.last_ec_debit: card_qpboc.EcDebit | None = None
        self._handlers: dict[int, Callable[[CommandApdu], bytes]] = {
            0xA4: self._select,
            0xA8: self._gpo,
            0xB2: self._read_record,
            0xAE: self._generate_ac,
            0x88: self._internal_authenticate,
            0xCA: self._get_data,
            0xEA: self._exchange_relay_resistance_data,
            0xD0: self._recover_ac,
        }
        self._cla = {0xA4: 0x00, 0xB2: 0x00, 0x88: 0x00, 0xA8: 0x80, 0xAE: 0x80, 0xCA: 0x80, 0xEA: 0x80, 0xD0: 0x80}

    # ------------------------------------------------------------ the port

    def exchange(self, command: bytes) -> bytes:
        """Answer one C-APDU with its R-APDU (data + SW1 SW2)."""
        start = time.perf_counter()
        try:
            if self._mute_armed:
                raise CardMuteError(f"card {self.profile.name} is mute")
            return self._dispatch(bytes(command))
        except SimulatedCardError:
            raise
        except Exception as exc:  # a card never crashes the reader: report, answer 6F00
            self.last_error = f"{type(exc).__name__}: {exc}"
            return SW_NO_DIAGNOSIS
        finally:
            self.compute_seconds += time.perf_counter() - start

    def reset(self) -> None:
        """Power cycle (the card left and re-entered the field): selection and transaction state go."""
        self._txn = _Txn()
        self._mute_armed = False

    def _dispatch(self, command: bytes) -> bytes:
        apdu = parse_command_apdu(command)
        if apdu is None:
            return SW_WRONG_LENGTH
        handler = self._handlers.get(apdu.ins)
        if handler is None:
            return SW_INS_NOT_SUPPORTED
        if apdu.cla != self._cla[apdu.ins]:
            return SW_CLA_NOT_SUPPORTED
        return handler(apdu)

    # ------------------------------------------------------------ data

    @property
    def _p(self) -> CardProfile:
        return self.profile

    def _track2(self) -> bytes:
        digits = f"{self._p.pan}D{self._p.expiry[:4]}{self._p.service_code}00000000000"
        if len(digits) % 2:
            digits += "F"
        return bytes.fromhex(digits)

    def _plain_value(self, tag: int) -> bytes | None:
        """Values from personalisation (not the PKI ones)."""
        p = self._p
        computed: dict[int, Callable[[], bytes]] = {
            0x5A: lambda: bytes.fromhex(p.pan + ("F" if len(p.pan) % 2 else "")),
            0x57: self._track2,
            0x5F24: lambda: bytes.fromhex(p.expiry),
            0x5F25: lambda: bytes.fromhex(p.effective),
            0x5F34: lambda: bytes.fromhex(p.psn),
            0x9F69: lambda: b"\x01" + self._card_un + (p.ctq or bytes(2)),
        }
        if tag in computed:
            return computed[tag]()
        if tag in (0x9F77, 0x9F78, 0x9F6D):  # electronic cash limits (kernel 7)
            return card_qpboc.ec_data_objects(self).get(tag)
        return p.data.get(tag)

    def _value(self, tag: int) -> bytes | None:
        certs = self._certificates()
        if tag in certs.values:
            return certs.values[tag]
        return self._plain_value(tag)

    def _record_body(self, tags: Sequence[int], value: Callable[[int], bytes | None]) -> bytes:
        out = b""
        for tag in tags:
            v = value(tag)
            if v is None or (tag in (0x92, 0x9F48) and not v):
                continue  # no remainder: the tag is left out
            out += _ber.encode(tag, v)
        return out

    def _afl(self) -> bytes:
        out = b""
        order: list[int] = []
        for rec in self._p.records:
            if rec.sfi not in order:
                order.append(rec.sfi)
        for sfi in order:
            recs = [r for r in self._p.records if r.sfi == sfi]
            numbers = [r.number for r in recs]
            out += bytes([sfi << 3, min(numbers), max(numbers), sum(r.oda for r in recs)])
        return out

    def _static_data(self) -> bytes:
        """Static data to authenticate: signed records (SFI 1-10 without 70 L), then AIP if 9F4A asks."""
        out = b""
        for rec in self._p.records:
            if not rec.oda:
                continue
            body = self._record_body(rec.tags, self._plain_value)
            out += body if rec.sfi <= 10 else _ber.encode(0x70, body)
        if self._p.data.get(0x9F4A) == b"\x82":  # the static data authentication tag list
            out += self._p.aip
        return out

    def _certificates(self) -> _Certificates:
        if self._certs is not None:
            return self._certs
        oda = self._p.oda
        if oda is None:
            self._certs = _Certificates({}, None, None)
            return self._certs
        static = self._static_data()
        key = (
            self._p.name, self._p.pan, static, oda.method, oda.issuer_key, oda.icc_key, oda.issuer_id,
            oda.issuer_cert_expiry, oda.icc_cert_expiry, oda.issuer_cert_serial, oda.icc_cert_serial,
            tuple(sorted(oda.tamper.items())), oda.dac,
        )
        cached = _CERT_CACHE.get(key)
        if cached is None:
            cached = self._build_certificates(static)
            _CERT_CACHE[key] = cached
        self._certs = cached
        return cached

    def _build_certificates(self, static: bytes) -> _Certificates:
        oda = self._p.oda
        assert oda is not None
        keys = self._keys or pki.load_pki()
        issuer = keys.issuer(oda.issuer_key)
        ca = keys.issuer_ca(oda.issuer_key)
        cert, rem, exp = pki.issuer_certificate(
            ca, issuer.public, oda.issuer_id, oda.issuer_cert_expiry, oda.issuer_cert_serial,
            tamper=oda.tamper.get("issuer_certificate"),
        )
        values = {0x8F: bytes([keys.issuer_ca_index(oda.issuer_key)]), 0x90: cert, 0x92: rem, 0x9F32: exp}
        icc: pki.RsaPrivateKey | None = None
        if oda.method == "sda":
            values[0x93] = pki.ssad(issuer, static, oda.dac, tamper=oda.tamper.get("ssad"))
        elif oda.icc_key is not None:
            icc = keys.icc(oda.icc_key)
            icert, irem, iexp = pki.icc_certificate(
                issuer, icc.public, self._p.pan, oda.icc_cert_expiry, oda.icc_cert_serial, static,
                tamper=oda.tamper.get("icc_certificate"),
            )
            values.update({0x9F46: icert, 0x9F48: irem, 0x9F47: iexp})
        return _Certificates(values, icc, issuer)

    def _dynamic_number(self) -> bytes:
        oda = self._p.oda
        if oda is not None and oda.dynamic_number == "random8":
            return self._rng.randbytes(8)
        return self.atc.to_bytes(2, "big")

    def _sign_dynamic(self, icc_dynamic_data: bytes, terminal_dynamic_data: bytes) -> bytes:
        certs = self._certificates()
        assert certs.icc is not None and self._p.oda is not None
        tamper = self._p.oda.tamper.get("sdad")
        return pki.sdad(certs.icc, icc_dynamic_data, terminal_dynamic_data, tamper=tamper)

    def _can_sign(self) -> bool:
        oda = self._p.oda
        return oda is not None and oda.icc_key is not None and oda.method in {"dda", "fdda", "cda"}

    def _cryptogram(self, cid: int, terminal: dict[int, bytes], cvr: bytes) -> tuple[bytes, bytes]:
        """(AC, IAD) over the terminal's data objects for the card's CVN."""
        keys = issuer_master_keys(self._p.cryptogram_key)
        iad = build_iad(keys, cvr)
        data = CryptogramData(
            amount=terminal.get(0x9F02, bytes(6)),
            amount_other=terminal.get(0x9F03, bytes(6)),
            country=terminal.get(0x9F1A, bytes(2)),
            tvr=terminal.get(0x95, bytes(5)),
            currency=terminal.get(0x5F2A, bytes(2)),
            date=terminal.get(0x9A, bytes(3)),
            transaction_type=terminal.get(0x9C, bytes(1)),
            unpredictable_number=terminal.get(0x9F37, bytes(4)),
            aip=self._p.aip,
            atc=self.atc.to_bytes(2, "big"),
            iad=iad,
        )
        return compute(keys, self._p.pan, self._p.psn, data), iad

    def _wants_online(self, terminal: dict[int, bytes]) -> bool:
        """The card's own risk management: online-only, over its own limit, or foreign currency."""
        amount = _bcd_amount(terminal.get(0x9F02, bytes(6)))
        return (
            self._p.online_only
            or amount is None
            or amount > self._p.offline_limit
            or terminal.get(0x5F2A, self._p.currency) != self._p.currency
        )

    # ------------------------------------------------------------ commands

    def _select(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 != 0x04 or apdu.p2 not in (0x00, 0x02):
            return SW_WRONG_P1P2
        if not apdu.data:
            return SW_WRONG_LENGTH
        p = self._p
        self._txn = _Txn()
        if apdu.p2 == 0x02:
            return SW_NOT_FOUND  # one application only: there is no next occurrence
        if apdu.data == PPSE:
            entry: list[tuple[int, bytes]] = [(0x4F, p.aid), (0x50, p.label.encode("ascii"))]
            entry.append((0x87, bytes([p.priority])))
            if p.kernel_id is not None:
                entry.append((0x9F2A, p.kernel_id))
            directory = _ber.encode(0xBF0C, _template(0x61, entry))
            fci = _ber.encode(0x6F, _ber.encode(0x84, PPSE) + _ber.encode(0xA5, directory))
            return fci + SW_OK
        if apdu.data == p.aid:
            prop: list[tuple[int, bytes]] = [(0x50, p.label.encode("ascii")), (0x87, bytes([p.priority]))]
            if p.pdol:
                prop.append((0x9F38, p.pdol))
            fci = _ber.encode(0x6F, _ber.encode(0x84, p.aid) + _template(0xA5, prop))
            self._txn.app_selected = True
            if p.fault == "mute":
                self._mute_armed = True
            return fci + SW_OK
        return SW_NOT_FOUND

    def _gpo(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 != 0x00 or apdu.p2 != 0x00:
            return SW_WRONG_P1P2
        txn = self._txn
        if not txn.app_selected or txn.gpo_done:
            return SW_CONDITIONS
        if self._p.fault == "garbage":
            return self._rng.randbytes(self._rng.randint(1, 64)) + SW_OK
        try:
            objects = _ber.decode(apdu.data)
        except _ber.BerError:
            return SW_WRONG_DATA
        if len(objects) != 1 or objects[0][0] != 0x83:
            return SW_WRONG_DATA
        values_raw = objects[0][1]
        try:
            terminal = _first_values(_ber.split_dol(_ber.parse_dol(self._p.pdol), values_raw))
        except _ber.BerError:
            return SW_WRONG_LENGTH
        if self.atc >= 0xFFFF:
            return SW_CONDITIONS
        if self._p.kernel in (3, 7) and not terminal.get(0x9F66, bytes(4))[0] & 0x20:
            return SW_CONDITIONS  # the reader does not support qVSDC / qPBOC; MSD is not simulated
        if self._p.kernel == 7:
            again = card_qpboc.replay(self, values_raw)  # the reader completes the EC debit it did not see
            if again is not None:
                txn.gpo_done = True
                txn.pdol_values = values_raw
                return again
        self.atc += 1
        txn.gpo_done = True
        txn.pdol_values = values_raw
        self._card_un = self._rng.randbytes(4)
        if self._p.kernel == 3:
            return self._qvsdc(terminal)
        if self._p.kernel == 7:
            answer, debited = card_qpboc.gpo_answer(self, terminal, values_raw)
            if debited and self._p.fault == "torn" and not self._torn:
                self._torn = True
                raise CardTornError(f"card {self._p.name} left the field before answering GPO (it debited)")
            return answer
        return _template(0x77, [(0x82, self._p.aip), (0x94, self._afl())]) + SW_OK

    def _qvsdc(self, terminal: dict[int, bytes]) -> bytes:
        p = self._p
        ttq = terminal.get(0x9F66, bytes(4)).ljust(4, b"\x00")
        if p.online_only or ttq[1] & 0x80 or self._wants_online(terminal):
            cid = CID_AAC if ttq[0] & 0x08 else CID_ARQC  # offline-only reader cannot go online
        else:
            cid = CID_TC
        cvr = bytes([0x03, _CVR_AC_BITS[cid], 0x00, 0x00])
        ac, iad = self._cryptogram(cid, terminal, cvr)
        items: list[tuple[int, bytes]] = [
            (0x82, p.aip),
            (0x94, self._afl()),
            (0x57, self._track2()),
            (0x5F34, bytes.fromhex(p.psn)),
            (0x9F10, iad),
            (0x9F26, ac),
            (0x9F27, bytes([cid])),
            (0x9F36, self.atc.to_bytes(2, "big")),
        ]
        if p.ctq is not None:
            items.append((0x9F6C, p.ctq))
        if p.form_factor is not None:
            items.append((0x9F6E, p.form_factor))
        fdda = self._can_sign() and p.oda is not None and p.oda.method == "fdda"
        if fdda and (cid == CID_TC or (cid == CID_ARQC and ttq[0] & 0x01)):
            number = self._dynamic_number()
            card_auth = self._plain_value(0x9F69) or b""
            tdd = (
                terminal.get(0x9F37, bytes(4))
                + terminal.get(0x9F02, bytes(6))
                + terminal.get(0x5F2A, bytes(2))
                + card_auth
            )
            items.append((0x9F4B, self._sign_dynamic(bytes([len(number)]) + number, tdd)))
        return _template(0x77, items) + SW_OK

    def _read_record(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 == 0 or apdu.p2 & 0x07 != 0x04 or apdu.p2 >> 3 == 0:
            return SW_WRONG_P1P2
        if not self._txn.app_selected:
            return SW_CONDITIONS
        sfi = apdu.p2 >> 3
        for rec in self._p.records:
            if rec.sfi == sfi and rec.number == apdu.p1:
                if not rec.emv_mode and self._txn.gpo_done:
                    return SW_CONDITIONS  # a mag-stripe record: not read in EMV mode
                return _ber.encode(0x70, self._record_body(rec.tags, self._value)) + SW_OK
        return SW_RECORD_NOT_FOUND

    def _generate_ac(self, apdu: CommandApdu) -> bytes:
        requested = apdu.p1 & 0xC0
        if apdu.p2 != 0x00 or requested == 0xC0 or apdu.p1 & 0x2F:
            return SW_WRONG_P1P2
        txn = self._txn
        if not txn.gpo_done or not self._p.cdol1 or txn.genac_count >= 2:
            return SW_CONDITIONS
        if txn.genac_count == 1 and (txn.first_cid != CID_ARQC or requested == CID_ARQC):
            return SW_CONDITIONS
        dol = _ber.parse_dol(self._p.cdol1 if txn.genac_count == 0 else self._p.cdol2)
        try:
            values = _first_values(_ber.split_dol(dol, apdu.data))
        except _ber.BerError:
            return SW_WRONG_LENGTH
        if txn.genac_count == 0:
            txn.cdol1_values = apdu.data
            txn.cdol1 = values
            terminal = values
            if requested == CID_AAC:
                cid = CID_AAC
            elif requested == CID_ARQC or self._wants_online(values):
                cid = CID_ARQC
            else:
                cid = CID_TC
            cvr = bytes([_CVR_AC_BITS[cid], 0x00, 0x00, 0x00, 0x00, 0x00])
            hashed_dols = txn.pdol_values + apdu.data
            txn.first_cid = cid
        else:
            terminal = {**txn.cdol1, **values}
            approved = values.get(0x8A, b"") in (b"00", b"Y1", b"Y3")
            cid = CID_TC if requested == CID_TC and approved else CID_AAC
            if values.get(0x8A) == b"00":
                self.last_online_atc = self.atc
            cvr = bytes([_CVR_AC_BITS[cid] << 2 | 0x20, 0x00, 0x00, 0x00, 0x00, 0x00])
            hashed_dols = txn.pdol_values + txn.cdol1_values + apdu.data
        txn.genac_count += 1
        ac, iad = self._cryptogram(cid, terminal, cvr)
        head = [(0x9F27, bytes([cid])), (0x9F36, self.atc.to_bytes(2, "big"))]
        cda = bool(apdu.p1 & 0x10) and bool(self._p.aip[0] & 0x01) and self._can_sign() and cid != CID_AAC
        if not cda:
            answer = _template(0x77, [*head, (0x9F26, ac), (0x9F10, iad)]) + SW_OK
        else:
            returned = b"".join(_ber.encode(t, v) for t, v in [*head, (0x9F10, iad)])
            hash_code = hashlib.sha1(hashed_dols + returned).digest()
            number = self._dynamic_number()
            icc_dynamic = bytes([len(number)]) + number + bytes([cid]) + ac + hash_code
            signature = self._sign_dynamic(icc_dynamic, terminal.get(0x9F37, bytes(4)))
            answer = _template(0x77, [*head, (0x9F4B, signature), (0x9F10, iad)]) + SW_OK
        if txn.genac_count == 1:
            self._last_gac = (dict(values), answer, cid)
            if self._p.fault == "torn" and not self._torn:
                self._torn = True
                raise CardTornError(f"card {self._p.name} left the field before answering GENERATE AC")
        return answer

    def _internal_authenticate(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 != 0x00 or apdu.p2 != 0x00:
            return SW_WRONG_P1P2
        if not apdu.data:
            return SW_WRONG_LENGTH
        if not self._txn.app_selected or not self._can_sign():
            return SW_CONDITIONS
        number = self._dynamic_number()
        return _ber.encode(0x80, self._sign_dynamic(bytes([len(number)]) + number, apdu.data)) + SW_OK

    def _exchange_relay_resistance_data(self, apdu: CommandApdu) -> bytes:
        """EXCHANGE RELAY RESISTANCE DATA (Book C-2): the terminal's entropy in, the card's
        entropy and its published times out (template 80, 10 bytes)."""
        rr = self._p.relay_resistance
        if rr is None:
            return SW_INS_NOT_SUPPORTED
        if apdu.p1 != 0x00 or apdu.p2 != 0x00:
            return SW_WRONG_P1P2
        if len(apdu.data) != 4:
            return SW_WRONG_LENGTH
        if not self._txn.gpo_done or self._txn.genac_count:
            return SW_CONDITIONS
        body = (
            self._rng.randbytes(4)
            + rr.min_time.to_bytes(2, "big")
            + rr.max_time.to_bytes(2, "big")
            + rr.transmission_time.to_bytes(2, "big")
        )
        return _ber.encode(0x80, body) + SW_OK

    def _recover_ac(self, apdu: CommandApdu) -> bytes:
        """RECOVER AC (Book C-2): the DRDOL related data of a torn transaction in; when they match the
        card's last first GENERATE AC, its answer again (the same cryptogram, ATC and signature)."""
        drdol = self._p.data.get(0x9F51)
        if not drdol:
            return SW_INS_NOT_SUPPORTED
        if apdu.p1 != 0x00 or apdu.p2 != 0x00:
            return SW_WRONG_P1P2
        txn = self._txn
        if not txn.gpo_done or txn.genac_count:
            return SW_CONDITIONS
        try:
            given = _first_values(_ber.split_dol(_ber.parse_dol(drdol), apdu.data))
        except _ber.BerError:
            return SW_WRONG_LENGTH
        if self._last_gac is None:
            return SW_DATA_NOT_FOUND
        values, answer, cid = self._last_gac
        if any(values.get(tag) != value for tag, value in given.items()):
            return SW_DATA_NOT_FOUND
        txn.genac_count = 1
        txn.first_cid = cid
        self._last_gac = None
        return answer

    def _get_data(self, apdu: CommandApdu) -> bytes:
        tag = apdu.p1 << 8 | apdu.p2
        values = {
            0x9F36: self.atc.to_bytes(2, "big"),
            0x9F13: self.last_online_atc.to_bytes(2, "big"),
            0x9F17: bytes([self.pin_try_counter]),
            **card_qpboc.ec_data_objects(self),
        }
        if tag not in values:
            return SW_DATA_NOT_FOUND
        return _ber.encode(tag, values[tag]) + SW_OK
