"""Wallets are untrusted: any bytes as any answer end in a defined outcome, and only a true record is approved.

Hypothesis drives a real simulated wallet (SM2-signed records, its state in a
file) through the whole terminal (Entry Point, the digital-currency kernel,
the journal), replacing one of its answers (or corrupting, truncating it, or
making the wallet fall silent) at a position it chooses, across the first tap
and, when the payment is torn, the re-tap.  Whatever happens:

- ``Terminal.sale`` returns a result (a refusal in words at worst), never an
  unhandled exception;
- no payment is left between its intent and its outcome;
- a payment shown approved holds, encrypted, the very record the wallet keeps
  for it (same hash), and was debited from the wallet exactly once;
- a payment not approved took nothing the terminal will claim: its entry, if
  any, is evidence or a torn notice (``cbdc_refused`` / ``cbdc_torn``).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbdc.checks import TrustStore
from cbdc.protocol import PaymentRecord
from simulator.cbdc import profiles as wallet_profiles
from simulator.cbdc.state import WalletStore
from simulator.cbdc.wallet import WalletCard
from terminal.bootstrap import open_terminal
from terminal.lifecycle import APPROVED_STATES, State
from terminal.ports import CancelToken, CardRemovedError, CardSession
from terminal.settings import load_default_settings

EXAMPLES = int(os.environ.get("POSTERM_WALLET_FUZZ_EXAMPLES", "150"))
CNY = 156


class FaultyWallet:
    """The simulated wallet, its ``position``-th answer (counted over every tap) replaced by a fault."""

    kind = "reader"

    def __init__(self, card: WalletCard, position: int, mode: str, payload: bytes) -> None:
        self.card, self.position, self.mode, self.payload = card, position, mode, payload
        self.count = 0

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> CardSession:
        self.card.reset()  # a new tap: the wallet powered up afresh
        outer = self

        class Session:
            atr = bytes.fromhex("3B80800101")

            def exchange(self, command: bytes) -> bytes:
                return outer.exchange(command)

            def close(self) -> None:
                pass

        return Session()

    def exchange(self, command: bytes) -> bytes:
        index = self.count
        self.count += 1
        try:
            real = self.card.exchange(command) if not (index == self.position and self.mode == "silent") else b""
        except Exception as exc:  # the simulator's own mute error: the wallet left
            raise CardRemovedError(str(exc)) from exc
        if index != self.position:
            return real
        if self.mode == "silent":
            raise CardRemovedError("the wallet left the field")
        if self.mode == "replace":
            return self.payload
        if self.mode == "replace_ok":
            return self.payload + b"\x90\x00"
        if self.mode == "truncate":
            return real[: self.payload[0] % max(len(real), 1)] if self.payload else b""
        body = bytearray(real[:-2])  # flip: xor the payload over the data, keeping the status word
        for i, b in enumerate(self.payload):
            if body:
                body[i % len(body)] ^= b
        return bytes(body) + real[-2:]


def _roomy() -> Any:
    settings = load_default_settings()
    section = settings.cbdc.to_parameters()
    section["limits"]["156"] = {"per_payment": 200000, "max_count": 10_000, "max_total": 10**9,
                                "max_unsent_age_s": 10**9}  # fmt: skip
    return replace(settings, cbdc=TrustStore.from_parameters(section))


def test_any_wallet_answer_ends_in_a_defined_outcome_and_only_a_true_record_is_approved() -> None:
    root = Path(tempfile.mkdtemp(prefix="posterm-wallet-fuzz-"))
    terminal = open_terminal(root / "terminal", host="none", reader_url="none", settings=_roomy())
    wallets = WalletStore(root / "wallets")
    profile = wallet_profiles.load("cbdc-anon")
    seen: dict[str, int] = {}

    def saf_kinds() -> list[tuple[str, str]]:
        conn = sqlite3.connect(str(root / "terminal" / "journal.sqlite"))
        try:
            return [(str(t), str(k)) for t, k in conn.execute("SELECT txn_id, kind FROM saf")]
        finally:
            conn.close()

    try:

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            position=st.integers(0, 9),
            mode=st.sampled_from(["silent", "replace", "replace_ok", "truncate", "flip"]),
            payload=st.binary(max_size=300),
            amount=st.integers(1, 2000),
        )
        def one(position: int, mode: str, payload: bytes, amount: int) -> None:
            before, _ = wallets.snapshot(profile)
            terminal.reader = FaultyWallet(  # type: ignore[assignment]
                WalletCard("cbdc-anon", state_dir=root / "wallets"), position, mode, payload
            )
            result = terminal.sale(amount, CNY)
            seen[result.state.value] = seen.get(result.state.value, 0) + 1
            after, records = wallets.snapshot(profile)
            rows = terminal.transactions()
            assert not [r for r in rows if r.state in (State.WALLET_PAYING, State.WALLET_TORN)]
            row = terminal.transaction(result.txn_id)
            assert row is not None and row.state is result.state
            if result.approved:
                assert row.state in APPROVED_STATES and after.counter == before.counter + 1
                assert after.balance == before.balance - amount
                record = PaymentRecord.parse(records[-1])
                assert row.details["record_hash"] == record.hash.hex().upper()[:16]
                assert record.amount == amount
            else:
                queued = [kind for (txn, kind) in saf_kinds() if txn == result.txn_id]
                assert set(queued) <= {"cbdc_refused", "cbdc_torn"}, queued

        one()
        print(seen)
        if EXAMPLES >= 100:  # the faults reached each kind of end: approved, declined, refused, torn, not completed
            assert {"wallet_approved", "declined"} <= set(seen), seen
    finally:
        terminal.close()
