"""The hard wallet's application: ISO 7816-4, CLA 80, answering every command of CBDC-SPEC §4.

:class:`WalletCard` is a card in the field like :class:`simulator.card.SimulatedCard`:
``exchange(command) -> response``, ``reset()`` at power-up, ``compute_seconds``.
Its PPSE lists the wallet's application with kernel identifier ``81 01 56``;
a profile with ``emv`` also carries that EMV card's application (a
:class:`~simulator.card.SimulatedCard`): the PPSE lists both, and a SELECT of
its AID hands the commands to it until the next SELECT.
State (counter, previous hash, balance, spent today, records) lives in
:class:`simulator.cbdc.state.WalletStore`, read and written in one transaction
per command, so it survives the process and is shared by processes.

The wallet checks a payment request fully (well formed; not locked; currency;
amount > 0; its per-payment and daily limits; its balance) before it debits.
Malformed commands get status words, never exceptions; the one exception it
raises on purpose is :class:`simulator.card.CardMuteError` (profiles
``cbdc-mute`` and ``cbdc-torn``).

>>> import tempfile
>>> folder = tempfile.TemporaryDirectory()
>>> card = WalletCard("cbdc-anon", state_dir=folder.name)
>>> card.exchange(bytes.fromhex("00A404000B") + AID + b"\\x00")[-2:].hex()
'9000'
>>> card.exchange(bytes.fromhex("80CA000000"))[:2].hex()
'e147'
>>> card.exchange(bytes.fromhex("80CA0000"))[-2:].hex(), card.exchange(bytes.fromhex("00CA000000")).hex()
('9000', '6e00')
>>> folder.cleanup()
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace

from simulator.card import CardMuteError, SimulatedCard, SimulatedCardError
from simulator.cbdc import pki, records, tlv
from simulator.cbdc.profiles import WalletProfile, load
from simulator.cbdc.state import WalletState, WalletStore
from simulator.command_apdu import CommandApdu, parse_command_apdu

__all__ = ["AID", "KERNEL_ID", "PPSE", "WalletCard"]

AID = bytes.fromhex("F0504F5354434244430101")
KERNEL_ID = bytes.fromhex("810156")
PPSE = b"2PAY.SYS.DDF01"
MAX_COUNTER = 0xFFFFFFFF

SW_OK = b"\x90\x00"
SW_WRONG_LENGTH = b"\x67\x00"
SW_LOCKED = b"\x69\x85"
SW_MALFORMED = b"\x6a\x80"
SW_FILE_NOT_FOUND = b"\x6a\x82"
SW_RECORD_NOT_FOUND = b"\x6a\x83"
SW_WRONG_P1P2 = b"\x6a\x86"
SW_INS = b"\x6d\x00"
SW_CLA = b"\x6e\x00"
SW_NO_DIAGNOSIS = b"\x6f\x00"
SW_BALANCE = b"\x6a\x90"
SW_PER_PAYMENT = b"\x6a\x91"
SW_DAILY = b"\x6a\x92"
SW_CURRENCY = b"\x6a\x93"


class WalletCard:
    """A hard wallet personalised from a ``cbdc-*`` profile, its state in ``state_dir`` (see :mod:`.state`)."""

    def __init__(
        self,
        profile: WalletProfile | str,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        store: WalletStore | None = None,
        seed: int | None = None,
    ) -> None:
        self.profile = load(profile) if isinstance(profile, str) else profile
        self.store = store or WalletStore(state_dir)
        self.compute_seconds = 0.0
        self.last_error: str | None = None
        self._rng = random.Random(seed)
        self._selected = False
        self._mute_armed = False
        self._emv = SimulatedCard(self.profile.emv, seed=seed) if self.profile.emv else None
        self._emv_active = False  # the EMV application is the selected one
        # INS -> (CLA, handler, needs the application selected)
        self._commands: dict[int, tuple[int, Callable[[CommandApdu], bytes], bool]] = {
            0xA4: (0x00, self._select, False),
            0xCA: (0x80, self._info, True),
            0xB2: (0x80, self._read_certificate, True),
            0x54: (0x80, self._pay, True),
            0x56: (0x80, self._get_record, True),
        }

    # ------------------------------------------------------------ the port

    def exchange(self, command: bytes) -> bytes:
        """Answer one C-APDU with its R-APDU (data + SW1 SW2)."""
        start = time.perf_counter()
        try:
            if self._mute_armed:
                raise CardMuteError(f"wallet {self.profile.name} is mute")
            return self._dispatch(bytes(command))
        except SimulatedCardError:
            raise
        except Exception as exc:  # a card never crashes the reader: report, answer 6F00
            self.last_error = f"{type(exc).__name__}: {exc}"
            return SW_NO_DIAGNOSIS
        finally:
            self.compute_seconds += time.perf_counter() - start

    def reset(self) -> None:
        """Power cycle: the selection goes, a mute or torn wallet answers again."""
        self._selected = False
        self._mute_armed = False
        self._emv_active = False
        if self._emv is not None:
            self._emv.reset()

    def _dispatch(self, command: bytes) -> bytes:
        apdu = parse_command_apdu(command)
        if apdu is None:
            return SW_WRONG_LENGTH
        if self._emv is not None:
            answer = self._to_emv(apdu, command)
            if answer is not None:
                return answer
        entry = self._commands.get(apdu.ins)
        if entry is None:
            return SW_INS
        cla, handler, needs_selection = entry
        if apdu.cla != cla:
            return SW_CLA
        if needs_selection and not self._selected:
            return SW_INS  # under the PPSE (or nothing) the wallet's commands do not exist
        if needs_selection and self.profile.fault == "garbage":
            return self._rng.randbytes(self._rng.randint(1, 64)) + SW_OK
        return handler(apdu)

    def _to_emv(self, apdu: CommandApdu, command: bytes) -> bytes | None:
        """The EMV application's answer when the command is for it (None: the wallet's)."""
        assert self._emv is not None
        is_select = apdu.cla == 0x00 and apdu.ins == 0xA4 and apdu.p1 == 0x04 and apdu.data
        if is_select and apdu.data == PPSE:
            self._emv_active = False
            wallet = self._select(apdu)
            return self._merged_ppse(wallet, self._emv.exchange(command)) if wallet[-2:] == SW_OK else wallet
        if is_select and apdu.data != AID:
            self._selected = False
            answer = self._emv.exchange(command)
            self._emv_active = answer[-2:] == SW_OK
            return answer
        if is_select:
            self._emv_active = False
            return None
        return self._emv.exchange(command) if self._emv_active else None

    @staticmethod
    def _merged_ppse(wallet: bytes, emv: bytes) -> bytes:
        """The wallet's PPSE answer with the EMV application's directory entries after its own."""
        if emv[-2:] != SW_OK:
            return wallet

        def entries(answer: bytes) -> bytes:
            fci = tlv.decode(tlv.decode(answer[:-2])[0][1])
            a5 = dict(fci)[0xA5]
            return dict(tlv.decode(a5))[0xBF0C]

        directory = entries(wallet) + entries(emv)
        fci = tlv.encode(0x6F, tlv.encode(0x84, PPSE) + tlv.encode(0xA5, tlv.encode(0xBF0C, directory)))
        return fci + SW_OK

    # ------------------------------------------------------------ commands

    def _select(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 != 0x04 or apdu.p2 not in (0x00, 0x02):
            return SW_WRONG_P1P2
        if not apdu.data:
            return SW_WRONG_LENGTH
        self._selected = False
        if apdu.p2 == 0x02:
            return SW_FILE_NOT_FOUND  # one application: no next occurrence
        p = self.profile
        label = p.label.encode("ascii")
        if apdu.data == PPSE:
            entry = tlv.template(0x61, [(0x4F, AID), (0x50, label), (0x87, bytes([p.priority])), (0x9F2A, KERNEL_ID)])
            fci = tlv.encode(0x6F, tlv.encode(0x84, PPSE) + tlv.encode(0xA5, tlv.encode(0xBF0C, entry)))
            return fci + SW_OK
        if apdu.data == AID:
            self._selected = True
            if p.fault == "mute":
                self._mute_armed = True
            fci = tlv.encode(0x6F, tlv.encode(0x84, AID) + tlv.template(0xA5, [(0x50, label), (0xDF40, b"\x01")]))
            return fci + SW_OK
        return SW_FILE_NOT_FOUND

    def _info(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 or apdu.p2:
            return SW_WRONG_P1P2
        if apdu.data:
            return SW_WRONG_LENGTH
        with self.store.transaction() as db:
            state = self.store.load(db, self.profile)
        keys = self.profile.keys
        return records.encode_info(keys, state.counter, state.last_hash, self.profile.currency, state.balance) + SW_OK

    def _read_certificate(self, apdu: CommandApdu) -> bytes:
        if apdu.p2 or apdu.p1 not in (0x01, 0x02):
            return SW_WRONG_P1P2
        if apdu.data:
            return SW_WRONG_LENGTH
        keys = self.profile.keys
        if apdu.p1 == 0x01:
            return keys.certificate + SW_OK
        return pki.operator(keys.operator_id.hex()).certificate + SW_OK

    def _pay(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 or apdu.p2:
            return SW_WRONG_P1P2
        if not apdu.data:
            return SW_WRONG_LENGTH
        try:
            request = records.parse_request(apdu.data)
        except records.RequestError:
            return SW_MALFORMED
        with self.store.transaction() as db:
            state = self.store.load(db, self.profile)
            answer = self._refusal(db, state, request)
            if answer is not None:
                return answer
            counter = state.counter + 1
            if self.profile.redirect_to is not None:  # signs for another payee than the terminal asked for
                merchant, terminal = self.profile.redirect_to
                request = replace(request, merchant=merchant.encode("ascii"), terminal=terminal.encode("ascii"))
            record = records.build_record(
                self.profile.keys, counter, request, state.last_hash, tamper=self.profile.fault == "tamper_signature"
            )
            if self.profile.fault != "rollback":  # the rollback wallet's state goes back to what it was
                spent = request.amount + (state.spent_today if request.day <= state.spent_day else 0)
                after = WalletState(
                    counter, records.record_hash(record), state.balance - request.amount,
                    max(request.day, state.spent_day), spent, state.payments + 1,
                )
                self.store.save(db, self.profile, after, record)
        if self.profile.fault == "torn":  # debited and kept: the answer never leaves
            self._mute_armed = True
            raise CardMuteError(f"wallet {self.profile.name} left after debiting (torn)")
        return record + SW_OK

    def _refusal(self, db: sqlite3.Connection, state: WalletState, request: records.PaymentRequest) -> bytes | None:
        """The status word refusing ``request`` before anything is debited, or the replayed answer; None: pay."""
        p = self.profile
        if p.locked or state.counter >= MAX_COUNTER:
            return SW_LOCKED
        if p.fault == "replay":
            last = self.store.record(db, p, None)
            return SW_LOCKED if last is None else last + SW_OK
        if request.currency != p.currency:
            return SW_CURRENCY
        if request.amount <= 0:
            return SW_MALFORMED
        if request.amount > p.keys.per_payment:
            return SW_PER_PAYMENT
        spent_today = state.spent_today if request.day <= state.spent_day else 0
        if spent_today + request.amount > p.keys.daily:
            return SW_DAILY
        if request.amount > state.balance:
            return SW_BALANCE
        return None

    def _get_record(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 or apdu.p2:
            return SW_WRONG_P1P2
        if apdu.data and len(apdu.data) != 4:
            return SW_WRONG_LENGTH
        counter = int.from_bytes(apdu.data, "big") if apdu.data else None
        with self.store.transaction() as db:
            self.store.load(db, self.profile)
            record = self.store.record(db, self.profile, counter)
        return SW_RECORD_NOT_FOUND if record is None else record + SW_OK
