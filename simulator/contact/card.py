"""A simulated contact EMV card: PSE, offline PIN, two GENERATE ACs, issuer authentication, scripts.

:class:`ContactCard` answers the commands of EMV Book 3 as an inserted card
does, personalised from a :class:`~simulator.contact.profiles.ContactProfile`:

- SELECT of ``1PAY.SYS.DDF01`` (when the profile has a PSE) with its directory
  in SFI 1, SELECT of its application (exactly or by a partial name), 6283
  once an issuer script has blocked it;
- GET PROCESSING OPTIONS in format 1 (80) or 2 (77), READ RECORD, GET DATA of
  the PIN try counter, ATC and last online ATC;
- VERIFY of a plaintext (P2 80) or enciphered (P2 88, after GET CHALLENGE,
  deciphered with the ICC private key) PIN block of format 2, counting tries;
- INTERNAL AUTHENTICATE (DDA) and CDA signatures;
- GENERATE AC twice with cryptograms of :mod:`simulator.cryptograms` (its own
  card risk management at the first: online-only, over its offline limit,
  another currency, PIN try limit exceeded, "go online on next transaction"
  go online); EXTERNAL AUTHENTICATE or 91 in CDOL2 checks the ARPC and a
  failed one declines: method 1 (CVN 10, 16: ARPC || ARC) or method 2 (CVN 18:
  ARPC || CSU || proprietary data, EMV Book 2 8.2.2), whose card status update
  (:mod:`simulator.csu`) then decides the second GENERATE AC and is honoured
  (application block, PIN try counter, go online next, offline counters);
- issuer script commands with CLA 84 and an 8-byte MAC (PUT DATA, APPLICATION
  BLOCK and UNBLOCK, PIN CHANGE/UNBLOCK), accepted only after this
  transaction's ARQC and with the right MAC.

It imports nothing of ``emv``: BER from :mod:`simulator._ber`.  Malformed
commands get status words; the fault ``mute`` raises
:class:`~simulator.card.CardMuteError` after the application's SELECT.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from simulator import _ber, pki
from simulator.card import CardMuteError, SimulatedCardError
from simulator.command_apdu import CommandApdu, parse_command_apdu
from simulator.contact.profiles import ContactProfile, load
from simulator.cryptograms import CryptogramData, arpc, build_iad, command_mac, compute, uses_arpc_method_2
from simulator.csu import CardStatusUpdate
from simulator.issuer_keys import issuer_master_keys

__all__ = ["CONTACT_ATR", "PSE", "ContactCard"]

PSE = b"1PAY.SYS.DDF01"
#: A contact card speaking T=1: TS 3B, T0 80 (TD1), TD1 81 (TD2, T=1), TD2 31 (TA3, TB3, T=1),
#: TA3 FE (IFSC 254), TB3 45 (BWI 4, CWI 5), TCK.
CONTACT_ATR = bytes.fromhex("3B808131FE458B")
DIRECTORY_SFI = 1

OK = b"\x90\x00"
SW = {
    "wrong_length": b"\x67\x00",
    "conditions": b"\x69\x85",
    "blocked_pin": b"\x69\x83",
    "wrong_data": b"\x6a\x80",
    "not_found": b"\x6a\x82",
    "record_not_found": b"\x6a\x83",
    "wrong_p1p2": b"\x6a\x86",
    "data_not_found": b"\x6a\x88",
    "ins": b"\x6d\x00",
    "cla": b"\x6e\x00",
    "no_diagnosis": b"\x6f\x00",
    "sm_wrong": b"\x69\x88",
    "invalidated": b"\x62\x83",
    "auth_failed": b"\x63\x00",
}
AAC, TC, ARQC = 0x00, 0x40, 0x80

# Certificates depend only on the personalisation; building them costs RSA private
# operations, so cards of one personalisation share them.
_CERT_CACHE: dict[tuple[str, str, bytes, str, str | None], tuple[dict[int, bytes], pki.RsaPrivateKey | None]] = {}


def _template(tag: int, items: Sequence[tuple[int, bytes]]) -> bytes:
    return _ber.encode(tag, b"".join(_ber.encode(t, v) for t, v in items))


@dataclass
class _Txn:
    selected: str | None = None  # "pse" | "app"
    gpo_done: bool = False
    pdol_values: bytes = b""
    cdol1_values: bytes = b""
    cdol1: dict[int, bytes] = field(default_factory=dict)
    genac_count: int = 0
    first_cid: int | None = None
    arqc: bytes = b""
    issuer_auth: str | None = None  # None | "passed" | "failed"
    csu: CardStatusUpdate | None = None  # method 2: the issuer's card status update, once authenticated
    challenge: bytes | None = None
    offline_pin: str | None = None  # None | "passed" | "failed"


class ContactCard:
    """An inserted card of a contact profile; feed it C-APDUs with :meth:`exchange`."""

    atr = CONTACT_ATR

    def __init__(self, profile: ContactProfile | str, *, seed: int | None = None) -> None:
        self.profile = load(profile) if isinstance(profile, str) else profile
        p = self.profile
        self.atc = p.atc
        self.last_online_atc = p.last_online_atc
        self.pin_try_counter = p.pin_try_counter
        self.blocked = False
        self.go_online_next = False  # set by a CSU: the next transaction goes online
        self.put_data: dict[int, bytes] = {}
        self.scripts_run: list[bytes] = []
        self.compute_seconds = 0.0
        self.last_error: str | None = None
        self._rng = random.Random(seed)
        self._txn = _Txn()
        self._mute = False
        self._certs: tuple[dict[int, bytes], pki.RsaPrivateKey | None] | None = None
        self._handlers: dict[tuple[int, int], Callable[[CommandApdu], bytes]] = {
            (0x00, 0xA4): self._select,
            (0x80, 0xA8): self._gpo,
            (0x00, 0xB2): self._read_record,
            (0x80, 0xCA): self._get_data,
            (0x00, 0x20): self._verify,
            (0x00, 0x84): self._get_challenge,
            (0x00, 0x88): self._internal_authenticate,
            (0x80, 0xAE): self._generate_ac,
            (0x00, 0x82): self._external_authenticate,
            (0x84, 0xDA): self._script,
            (0x84, 0x1E): self._script,
            (0x84, 0x18): self._script,
            (0x84, 0x24): self._script,
        }

    # ------------------------------------------------------------------ the port

    def exchange(self, command: bytes) -> bytes:
        """Answer one C-APDU with its R-APDU."""
        start = time.perf_counter()
        try:
            if self._mute:
                raise CardMuteError(f"card {self.profile.name} is mute")
            apdu = parse_command_apdu(bytes(command))
            if apdu is None:
                return SW["wrong_length"]
            handler = self._handlers.get((apdu.cla, apdu.ins))
            if handler is None:
                known = {ins for _, ins in self._handlers}
                return SW["cla"] if apdu.ins in known else SW["ins"]
            return handler(apdu)
        except SimulatedCardError:
            raise
        except Exception as exc:  # a card never crashes the reader
            self.last_error = f"{type(exc).__name__}: {exc}"
            return SW["no_diagnosis"]
        finally:
            self.compute_seconds += time.perf_counter() - start

    def reset(self) -> None:
        """Power-up (card inserted again): selection and transaction state go."""
        self._txn = _Txn()
        self._mute = False

    # ------------------------------------------------------------------ data

    def _track2(self) -> bytes:
        p = self.profile
        digits = f"{p.pan}D{p.expiry[:4]}{p.service_code}00000000000"
        return bytes.fromhex(digits + ("F" if len(digits) % 2 else ""))

    def _plain(self, tag: int) -> bytes | None:
        p = self.profile
        if tag in self.put_data:
            return self.put_data[tag]
        computed: dict[int, Callable[[], bytes]] = {
            0x5A: lambda: bytes.fromhex(p.pan + ("F" if len(p.pan) % 2 else "")),
            0x57: self._track2,
            0x5F24: lambda: bytes.fromhex(p.expiry),
            0x5F25: lambda: bytes.fromhex(p.effective),
            0x5F34: lambda: bytes.fromhex(p.psn),
        }
        if tag in computed:
            return computed[tag]()
        return p.data.get(tag)

    def _personalised(self, tag: int) -> bytes | None:
        """The value as personalised (before any PUT DATA): what the certificates signed."""
        return self.profile.data.get(tag) if tag in self.put_data else self._plain(tag)

    def _value(self, tag: int) -> bytes | None:
        values, _ = self._certificates()
        return values[tag] if tag in values else self._plain(tag)

    def _body(self, tags: Sequence[int], value: Callable[[int], bytes | None]) -> bytes:
        out = b""
        for tag in tags:
            v = value(tag)
            if v is None or (tag in (0x92, 0x9F48) and not v):
                continue
            out += _ber.encode(tag, v)
        return out

    def _afl(self) -> bytes:
        out = b""
        for sfi in sorted({r.sfi for r in self.profile.records}):
            recs = [r for r in self.profile.records if r.sfi == sfi]
            numbers = [r.number for r in recs]
            out += bytes([sfi << 3, min(numbers), max(numbers), sum(r.oda for r in recs)])
        return out

    def _static_data(self) -> bytes:
        out = b""
        for sfi in sorted({r.sfi for r in self.profile.records}):
            for rec in sorted((r for r in self.profile.records if r.sfi == sfi), key=lambda r: r.number):
                if rec.oda:
                    out += self._body(rec.tags, self._personalised)
        if self.profile.data.get(0x9F4A) == b"\x82":
            out += self.profile.aip
        return out

    def _certificates(self) -> tuple[dict[int, bytes], pki.RsaPrivateKey | None]:
        if self._certs is not None:
            return self._certs
        oda = self.profile.oda
        if oda is None:
            self._certs = ({}, None)
            return self._certs
        key = (self.profile.name, self.profile.pan, self._static_data(), repr(oda), self.profile.pin_key)
        cached = _CERT_CACHE.get(key)
        if cached is None:
            cached = self._build_certificates()
            _CERT_CACHE[key] = cached
        self._certs = cached
        return cached

    def _build_certificates(self) -> tuple[dict[int, bytes], pki.RsaPrivateKey | None]:
        oda = self.profile.oda
        assert oda is not None
        keys = pki.load_pki()
        issuer = keys.issuer(oda.issuer_key)
        static = self._static_data()
        cert, rem, exp = pki.issuer_certificate(
            keys.issuer_ca(oda.issuer_key),
            issuer.public,
            oda.issuer_id,
            oda.issuer_cert_expiry,
            oda.issuer_cert_serial,
            tamper=oda.tamper.get("issuer_certificate"),
        )
        values = {0x8F: bytes([keys.issuer_ca_index(oda.issuer_key)]), 0x90: cert, 0x92: rem, 0x9F32: exp}
        icc: pki.RsaPrivateKey | None = None
        if oda.method == "sda":
            values[0x93] = pki.ssad(issuer, static, oda.dac, tamper=oda.tamper.get("ssad"))
        if oda.icc_key is not None:
            icc = keys.icc(oda.icc_key)
            icert, irem, iexp = pki.icc_certificate(
                issuer,
                icc.public,
                self.profile.pan,
                oda.icc_cert_expiry,
                oda.icc_cert_serial,
                static,
                tamper=oda.tamper.get("icc_certificate"),
            )
            values.update({0x9F46: icert, 0x9F48: irem, 0x9F47: iexp})
        if self.profile.pin_key is not None:
            # Book 2 7.1: certified like the ICC key, its hash without the static data
            pin = keys.icc(self.profile.pin_key)
            pcert, prem, pexp = pki.icc_certificate(
                issuer, pin.public, self.profile.pan, oda.icc_cert_expiry, oda.icc_cert_serial, b""
            )
            values.update({0x9F2D: pcert, 0x9F2F: prem, 0x9F2E: pexp})
        return values, icc

    def _sign(self, icc_dynamic: bytes, terminal_dynamic: bytes) -> bytes:
        _, icc = self._certificates()
        assert icc is not None and self.profile.oda is not None
        return pki.sdad(icc, icc_dynamic, terminal_dynamic, tamper=self.profile.oda.tamper.get("sdad"))

    def _dynamic_number(self) -> bytes:
        return self.atc.to_bytes(2, "big")

    # ------------------------------------------------------------------ selection and reading

    def _select(self, apdu: CommandApdu) -> bytes:
        p = self.profile
        if apdu.p1 != 0x04 or apdu.p2 not in (0x00, 0x02):
            return SW["wrong_p1p2"]
        if not apdu.data:
            return SW["wrong_length"]
        self._txn = _Txn()
        if apdu.p2 == 0x02:
            return SW["not_found"]
        if apdu.data == PSE:
            if not p.pse:
                return SW["not_found"]
            self._txn.selected = "pse"
            return _ber.encode(0x6F, _ber.encode(0x84, PSE) + _template(0xA5, [(0x88, bytes([DIRECTORY_SFI]))])) + OK
        if not p.aid.startswith(apdu.data) or len(apdu.data) < 5:
            return SW["not_found"]
        prop: list[tuple[int, bytes]] = [(0x50, p.label.encode("ascii"))]
        if p.priority is not None:
            prop.append((0x87, bytes([p.priority])))
        if p.pdol:
            prop.append((0x9F38, p.pdol))
        fci = _ber.encode(0x6F, _ber.encode(0x84, p.aid) + _template(0xA5, prop))
        if self.blocked:
            return fci + SW["invalidated"]
        self._txn.selected = "app"
        if p.fault == "mute":
            self._mute = True
        return fci + OK

    def _read_record(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 == 0 or apdu.p2 & 0x07 != 0x04:
            return SW["wrong_p1p2"]
        sfi = apdu.p2 >> 3
        p = self.profile
        if self._txn.selected == "pse":
            if sfi != DIRECTORY_SFI:
                return SW["record_not_found"]
            if apdu.p1 != 1:
                return SW["record_not_found"]
            entry: list[tuple[int, bytes]] = [(0x4F, p.aid), (0x50, p.label.encode("ascii"))]
            if p.priority is not None:
                entry.append((0x87, bytes([p.priority])))
            return _ber.encode(0x70, _template(0x61, entry)) + OK
        if self._txn.selected != "app":
            return SW["conditions"]
        for rec in p.records:
            if rec.sfi == sfi and rec.number == apdu.p1:
                return _ber.encode(0x70, self._body(rec.tags, self._value)) + OK
        return SW["record_not_found"]

    def _gpo(self, apdu: CommandApdu) -> bytes:
        p, txn = self.profile, self._txn
        if apdu.p1 or apdu.p2:
            return SW["wrong_p1p2"]
        if txn.selected != "app" or txn.gpo_done or self.blocked:
            return SW["conditions"]
        if p.fault == "garbage":
            return self._rng.randbytes(self._rng.randint(1, 64)) + OK
        try:
            objs = _ber.decode(apdu.data)
            if len(objs) != 1 or objs[0][0] != 0x83:
                return SW["wrong_data"]
            _ber.split_dol(_ber.parse_dol(p.pdol), objs[0][1])
        except _ber.BerError:
            return SW["wrong_length"]
        if self.atc >= 0xFFFF:
            return SW["conditions"]
        self.atc += 1
        txn.gpo_done = True
        txn.pdol_values = objs[0][1]
        if p.gpo_format == 1:
            return _ber.encode(0x80, p.aip + self._afl()) + OK
        return _template(0x77, [(0x82, p.aip), (0x94, self._afl())]) + OK

    def _get_data(self, apdu: CommandApdu) -> bytes:
        tag = apdu.p1 << 8 | apdu.p2
        values = {
            0x9F36: self.atc.to_bytes(2, "big"),
            0x9F13: self.last_online_atc.to_bytes(2, "big"),
            0x9F17: bytes([self.pin_try_counter]),
        }
        if tag not in values:
            return SW["data_not_found"]
        return _ber.encode(tag, values[tag]) + OK

    # ------------------------------------------------------------------ PIN

    def _get_challenge(self, apdu: CommandApdu) -> bytes:
        if self._txn.selected != "app":
            return SW["conditions"]
        self._txn.challenge = self._rng.randbytes(8)
        return self._txn.challenge + OK

    def _verify(self, apdu: CommandApdu) -> bytes:
        txn, p = self._txn, self.profile
        if apdu.p1 != 0x00 or apdu.p2 not in (0x80, 0x88):
            return SW["wrong_p1p2"]
        if not txn.gpo_done or p.pin is None:
            return SW["conditions"]
        if self.pin_try_counter == 0:
            return SW["blocked_pin"]
        if apdu.p2 == 0x88:
            block = self._decipher(apdu.data)
            if block is None:
                return SW["wrong_data"]
        else:
            block = apdu.data
        if len(block) != 8:
            return SW["wrong_length"]
        expected = bytes.fromhex(f"2{len(p.pin):X}{p.pin}".ljust(16, "F"))
        if hmac.compare_digest(block, expected):
            self.pin_try_counter = p.pin_try_limit
            txn.offline_pin = "passed"
            return OK
        self.pin_try_counter -= 1
        txn.offline_pin = "failed"
        return bytes([0x63, 0xC0 | self.pin_try_counter])

    def _decipher(self, data: bytes) -> bytes | None:
        _, icc = self._certificates()
        if self.profile.pin_key is not None:
            icc = pki.load_pki().icc(self.profile.pin_key)
        challenge, self._txn.challenge = self._txn.challenge, None
        if icc is None or challenge is None or len(data) != icc.size:
            return None
        plain = pow(int.from_bytes(data, "big"), icc.d, icc.n).to_bytes(icc.size, "big")
        if plain[0] != 0x7F or plain[9:17] != challenge:
            return None
        return plain[1:9]

    # ------------------------------------------------------------------ authentication and cryptograms

    def _internal_authenticate(self, apdu: CommandApdu) -> bytes:
        _, icc = self._certificates()
        if self._txn.selected != "app" or icc is None or not apdu.data:
            return SW["conditions"]
        number = self._dynamic_number()
        return _ber.encode(0x80, self._sign(bytes([len(number)]) + number, apdu.data)) + OK

    def _cvr(self, first: int, second: int | None) -> bytes:
        txn = self._txn
        b2 = {AAC: 0x00, TC: 0x10, ARQC: 0x20}[first]
        if second is not None:
            b2 |= {AAC: 0x00, TC: 0x40}[second]
        else:
            b2 |= 0x80  # second GENERATE AC not requested
        if txn.issuer_auth == "failed":
            b2 |= 0x08
        if txn.offline_pin is not None:
            b2 |= 0x04
        if txn.offline_pin == "failed":
            b2 |= 0x02
        b3 = 0x20 if self.pin_try_counter == 0 else 0x00
        return bytes([0x03, b2, b3, len(self.scripts_run) << 4 & 0xF0])

    def _cryptogram(self, terminal: dict[int, bytes], cvr: bytes) -> tuple[bytes, bytes]:
        keys = issuer_master_keys(self.profile.cryptogram_key)
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
            aip=self.profile.aip,
            atc=self.atc.to_bytes(2, "big"),
            iad=iad,
        )
        return compute(keys, self.profile.pan, self.profile.psn, data), iad

    def _wants_online(self, terminal: dict[int, bytes]) -> bool:
        p = self.profile
        digits = terminal.get(0x9F02, b"").hex()
        amount = int(digits) if digits.isdigit() else None
        return (
            p.online_only
            or amount is None
            or amount > p.offline_limit
            or terminal.get(0x5F2A) != p.currency
            or self.pin_try_counter == 0
            or self.go_online_next
        )

    def _arpc_ok(self, data: bytes) -> bool:
        """Book 2 8.2: the issuer authentication data 91 verifies (method 2 keeps its CSU for later)."""
        txn, p = self._txn, self.profile
        if not txn.arqc:
            return False
        atc = self.atc.to_bytes(2, "big")
        if not uses_arpc_method_2(p.cryptogram_key):
            if len(data) != 10:
                return False
            want = arpc(p.cryptogram_key, p.pan, p.psn, arqc=txn.arqc, atc=atc, response=data[8:])
            return hmac.compare_digest(want, data[:8])
        if not 8 <= len(data) <= 16:
            return False
        mac, raw = data[:4], data[4:8]
        csu = CardStatusUpdate.decode(raw)
        # without the "included" bit, bytes after the CSU may only be a DOL's zero padding
        proprietary = data[8:] if csu.proprietary_data else b""
        if not csu.proprietary_data and any(data[8:]):
            return False
        want = arpc(p.cryptogram_key, p.pan, p.psn, arqc=txn.arqc, atc=atc, response=raw, proprietary=proprietary)
        if not hmac.compare_digest(want, mac):
            return False
        txn.csu = csu
        return True

    def _apply_csu(self, csu: CardStatusUpdate) -> None:
        """What an authenticated card status update changes on the card, whatever it approves."""
        if csu.card_block or csu.application_block:
            self.blocked = True
        if csu.pin_try_counter is not None:
            self.pin_try_counter = min(csu.pin_try_counter, self.profile.pin_try_limit)
        self.go_online_next = csu.go_online_next
        if csu.counters == "reset":
            self.last_online_atc = self.atc

    def _external_authenticate(self, apdu: CommandApdu) -> bytes:
        txn = self._txn
        if apdu.p1 or apdu.p2:
            return SW["wrong_p1p2"]
        if txn.first_cid != ARQC or txn.genac_count != 1 or txn.issuer_auth is not None:
            return SW["conditions"]
        txn.issuer_auth = "passed" if self._arpc_ok(apdu.data) else "failed"
        return OK if txn.issuer_auth == "passed" else SW["auth_failed"]

    def _generate_ac(self, apdu: CommandApdu) -> bytes:
        txn, p = self._txn, self.profile
        requested = apdu.p1 & 0xC0
        if apdu.p2 or requested == 0xC0 or apdu.p1 & 0x2F:
            return SW["wrong_p1p2"]
        if not txn.gpo_done or txn.genac_count >= 2:
            return SW["conditions"]
        if txn.genac_count == 1 and (txn.first_cid != ARQC or requested == ARQC):
            return SW["conditions"]
        second = txn.genac_count == 1
        try:
            values = dict(_ber.split_dol(_ber.parse_dol(p.cdol2 if second else p.cdol1), apdu.data))
        except _ber.BerError:
            return SW["wrong_length"]
        if not second:
            txn.cdol1_values, txn.cdol1 = apdu.data, values
            if requested == AAC or self.blocked:
                cid = AAC
            elif requested == ARQC or self._wants_online(values):
                cid = ARQC
            else:
                cid = TC
            terminal = values
            cvr = self._cvr(cid, None)
            hashed = txn.pdol_values + apdu.data
            txn.first_cid = cid
        else:
            code = values.get(0x8A, b"")
            if 0x91 in values and txn.issuer_auth is None and code not in (b"Y3", b"Z3"):
                txn.issuer_auth = "passed" if self._arpc_ok(values[0x91]) else "failed"
            auth_ok = txn.issuer_auth == "passed" or not p.issuer_authentication_required or code == b"Y3"
            if txn.csu is not None:  # method 2: the issuer's CSU decides, not the ARC
                self._apply_csu(txn.csu)
                approved = txn.csu.approved and not self.blocked
            else:
                approved = code in (b"00", b"Y3") and auth_ok and not self.blocked
                if code == b"00" and auth_ok:
                    self.last_online_atc = self.atc
            cid = TC if requested == TC and approved else AAC
            terminal = {**txn.cdol1, **values}
            cvr = self._cvr(txn.first_cid or AAC, cid)
            hashed = txn.pdol_values + txn.cdol1_values + apdu.data
        txn.genac_count += 1
        ac, iad = self._cryptogram(terminal, cvr)
        if cid == ARQC:
            txn.arqc = ac
        head = [(0x9F27, bytes([cid])), (0x9F36, self.atc.to_bytes(2, "big"))]
        _, icc = self._certificates()
        cda = bool(apdu.p1 & 0x10) and bool(p.aip[0] & 0x01) and icc is not None and cid != AAC
        if not cda:
            return _template(0x77, [*head, (0x9F26, ac), (0x9F10, iad)]) + OK
        returned = b"".join(_ber.encode(t, v) for t, v in [*head, (0x9F10, iad)])
        hash_code = hashlib.sha1(hashed + returned).digest()
        number = self._dynamic_number()
        dynamic = bytes([len(number)]) + number + bytes([cid]) + ac + hash_code
        signature = self._sign(dynamic, terminal.get(0x9F37, bytes(4)))
        return _template(0x77, [*head, (0x9F4B, signature), (0x9F10, iad)]) + OK

    # ------------------------------------------------------------------ issuer scripts

    def _script(self, apdu: CommandApdu) -> bytes:
        txn, p = self._txn, self.profile
        if not txn.arqc or len(apdu.data) < 8:
            return SW["conditions"]
        body, mac = apdu.data[:-8], apdu.data[-8:]
        header = bytes([apdu.cla, apdu.ins, apdu.p1, apdu.p2, len(apdu.data)])
        atc = self.atc.to_bytes(2, "big")
        want = command_mac(p.cryptogram_key, p.pan, p.psn, header=header, arqc=txn.arqc, atc=atc, data=body)
        if not hmac.compare_digest(want, mac):
            return SW["sm_wrong"]
        if apdu.ins == 0xDA:
            tag = apdu.p1 << 8 | apdu.p2
            if tag not in (0x9F14, 0x9F23, 0x9F0D, 0x9F0E, 0x9F0F) or not body:
                return SW["wrong_p1p2"]
            self.put_data[tag] = body
        elif apdu.ins == 0x1E:
            self.blocked = True
        elif apdu.ins == 0x18:
            self.blocked = False
        elif apdu.ins == 0x24:
            if apdu.p2 != 0x00:
                return SW["wrong_p1p2"]
            self.pin_try_counter = p.pin_try_limit  # PIN UNBLOCK (no new PIN)
        self.scripts_run.append(bytes([apdu.cla, apdu.ins, apdu.p1, apdu.p2]))
        return OK
