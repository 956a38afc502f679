"""Digital-currency hard-wallet payments through the whole terminal (CBDC-SPEC), in process.

Real parts: the simulator's wallets (SM2-signed records, their state in a
SQLite file of their own), Entry Point selecting the wallet beside the EMV
applications, the terminal's journal and SAF queue in a real SQLite file,
and the simulated host's digital-currency operator (the ``memory`` host in
the data directory).  The clock is the rig's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cbdc.protocol import PaymentRecord
from simulator.cbdc import pki
from simulator.cbdc import profiles as wallet_profiles
from simulator.cbdc.state import WalletStore
from simulator.devices import SimulatorCardReader
from simulator.host import cbdc_admin
from terminal import registry
from terminal.cbdc_state import last_counter
from terminal.lifecycle import State
from terminal.ports import CancelToken, CardSession, NoCardError
from terminal.receipts import render_text

if TYPE_CHECKING:
    from tests.integration.conftest import Rig

CNY = 156


@pytest.fixture(autouse=True)
def wallet_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The simulator's wallets keep their counters and balances here (not in the user's state directory)."""
    directory = tmp_path / "wallets"
    monkeypatch.setenv("POSTERM_SIM_STATE", str(directory))
    return directory


def wallet(wallet_state: Path, profile: str) -> tuple[int, int]:
    """The simulated wallet's (counter, balance), as its secure element holds them."""
    state, _ = WalletStore(wallet_state).snapshot(wallet_profiles.load(profile))
    return state.counter, state.balance


def operator(rig: Rig) -> dict[str, dict[str, Any]]:
    """The operator's accounts of the wallets, by wallet id (the memory host's data directory)."""
    return {w["wallet_id"]: w for w in cbdc_admin.wallets(rig.data_dir / "memory-host")}


def saf(rig: Rig) -> list[tuple[Any, ...]]:
    return rig.sql("SELECT txn_id, kind, status FROM saf ORDER BY id")


def pay(rig: Rig, profile: str, amount: int = 1234) -> Any:
    rig.card(profile)
    return rig.terminal.sale(amount, CNY)


def test_a_good_wallet_pays_offline_with_the_host_down_and_the_record_is_forwarded_once(
    rig: Rig, wallet_state: Path
) -> None:
    rig.host.faults.down = True
    result = pay(rig, "cbdc-anon")
    assert result.approved and result.offline and result.state is State.WALLET_APPROVED
    assert (result.kernel, result.wallet_id, result.refusal) == ("cbdc", "D1A0********0001", None)
    assert result.to_json()["kernel"] == "cbdc"
    assert wallet(wallet_state, "cbdc-anon") == (1, 500000 - 1234)
    # durable before shown: the advice is queued, the counter noted, the record encrypted at rest
    assert saf(rig) == [(result.txn_id, "cbdc_payment", "queued")]
    assert last_counter(rig.terminal.store, "D1A0000000000001") == 1
    _, records = WalletStore(wallet_state).snapshot(wallet_profiles.load("cbdc-anon"))
    record = PaymentRecord.parse(records[-1])
    assert record.raw[20:60] not in rig.db_path.read_bytes()  # not in clear in the journal's file
    # no host was needed; when it is back, the queue goes once, and the operator credits the merchant once
    report = rig.terminal.forward_now()
    assert report.failed == 1 and saf(rig)[0][2] == "queued"
    rig.host.faults.down = False
    assert rig.terminal.forward_now().accepted == 1
    assert rig.terminal.forward_now().accepted == 0
    assert rig.terminal.transaction(result.txn_id).state is State.WALLET_CREDITED
    account = operator(rig)["D1A0000000000001"]
    assert (account["credited"], account["last_counter"], account["blocked"]) == (1234, 1, False)
    assert rig.host.accepted_count(result.txn_id) == 1


def test_the_receipt_shows_the_wallet(rig: Rig) -> None:
    result = pay(rig, "cbdc-anon")
    text = render_text(rig.terminal.receipt(result.txn_id), "customer")
    row = rig.terminal.transaction(result.txn_id)
    assert "DIGITAL CNY" in text and "D1A0********0001" in text and "D1A0000000000001" not in text
    assert "OFFLINE" in text and "COUNTER" in text and row.details["record_hash"] in text
    assert "12.34 CNY" in text
    merchant = render_text(rig.terminal.receipt(result.txn_id, "merchant"), "merchant")
    assert "MERCHANT COPY" in merchant and "TVR" not in merchant and "COUNTER" in merchant


# profile -> (state, refusal): refused before PAY (declined, nothing debited) or after (record kept)
BAD_WALLETS = {
    "cbdc-low-balance": (State.DECLINED, "insufficient_balance"),
    "cbdc-expired": (State.DECLINED, "certificate_expired"),
    "cbdc-untrusted-operator": (State.DECLINED, "untrusted_chain"),
    "cbdc-blocked": (State.DECLINED, "wallet_blocked"),
    "cbdc-locked": (State.DECLINED, "wallet_locked"),
    "cbdc-garbage": (State.DECLINED, "malformed"),
    "cbdc-tampered": (State.WALLET_REFUSED, "record_signature"),
}


@pytest.mark.parametrize("profile", sorted(BAD_WALLETS))
def test_each_bad_wallet_is_refused_by_name(rig: Rig, profile: str, wallet_state: Path) -> None:
    state, refusal = BAD_WALLETS[profile]
    result = pay(rig, profile)
    assert not result.approved and result.state is state
    assert result.refusal == refusal and result.message.startswith("declined: ")
    assert rig.terminal.result(result.txn_id).refusal == refusal
    if state is State.WALLET_REFUSED:  # the wallet debited: its record goes to the operator as evidence
        assert saf(rig) == [(result.txn_id, "cbdc_refused", "queued")]
        assert rig.terminal.offline_status().evidence_queued == 1
        assert rig.terminal.forward_now().accepted == 1
        assert rig.terminal.transaction(result.txn_id).state is State.DECLINED
        assert operator(rig)["D1A0000000000008"]["credited"] == 0
    else:
        assert saf(rig) == []


def test_a_replayed_record_is_refused_and_never_credited(rig: Rig) -> None:
    result = pay(rig, "cbdc-replay")
    assert not result.approved and result.state is State.WALLET_REFUSED and result.refusal is not None
    rig.terminal.forward_now()
    assert operator(rig)["D1A0000000000009"]["credited"] == 0


def test_a_mute_wallet_is_asked_for_again_then_not_completed(rig: Rig, wallet_state: Path) -> None:
    result = pay(rig, "cbdc-mute")
    assert not result.approved and result.state is State.CANCELLED and "nothing was paid" in result.message
    assert [e.data["prompt"] for e in rig.events_of("card_prompt")][1:] == ["present card again"] * 2
    assert wallet(wallet_state, "cbdc-mute")[0] == 0


def test_a_torn_payment_completes_on_the_re_tap_as_the_same_payment(rig: Rig, wallet_state: Path) -> None:
    result = pay(rig, "cbdc-torn")
    assert result.approved and result.state is State.WALLET_APPROVED
    assert [e.data["prompt"] for e in rig.events_of("card_prompt")] == ["present card", "present the same wallet again"]
    events = [r["event"] for r in rig.terminal.history(result.txn_id)]
    assert events == ["wallet_intent", "wallet_torn", "wallet_approved"]
    assert len(rig.terminal.transactions()) == 1  # one payment, not two
    assert wallet(wallet_state, "cbdc-torn") == (1, 500000 - 1234)  # debited once
    rig.terminal.forward_now()
    assert operator(rig)["D1A000000000000C"]["credited"] == 1234


class WalksAway:
    """A customer who presents the wallet once and never again: the first session is the real
    simulated wallet's, every later wait times out (NoCardError), as a reader's would."""

    kind = "reader"

    def __init__(self, url: str) -> None:
        self._reader = SimulatorCardReader.open(url)
        self._taps = 0

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> CardSession:
        self._taps += 1
        if self._taps > 1:
            raise NoCardError("no card presented")
        return self._reader.wait_for_card(timeout=timeout, cancel=cancel)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


def test_a_torn_payment_never_presented_again_ends_not_paid_and_the_wallet_is_credited_back(
    rig: Rig, wallet_state: Path
) -> None:
    rig.terminal.reader = WalksAway("sim:card=cbdc-torn")
    result = rig.terminal.sale(1234, CNY)
    assert not result.approved and result.state is State.WALLET_NOT_PAID and result.message.startswith("not paid")
    assert wallet(wallet_state, "cbdc-torn") == (1, 500000 - 1234)  # the wallet did debit
    assert saf(rig) == [(result.txn_id, "cbdc_torn", "queued")]
    assert rig.terminal.forward_now().accepted == 1
    assert rig.terminal.transaction(result.txn_id).state is State.CANCELLED
    # the wallet's own sync shows the record: unclaimed, declared torn -> credited back, once
    _, records = WalletStore(wallet_state).snapshot(wallet_profiles.load("cbdc-torn"))
    keys = wallet_profiles.load("cbdc-torn").keys  # the wallet's own certificates go with its upload
    operator_cert = pki.operator(keys.operator_id.hex()).certificate
    upload = "\n".join([r.hex() for r in records] + [keys.certificate.hex(), operator_cert.hex()])
    report = cbdc_admin.wallet_sync(rig.data_dir / "memory-host", "D1A000000000000C", upload)
    assert report.credited_back_total == 1234
    again = cbdc_admin.wallet_sync(rig.data_dir / "memory-host", "D1A000000000000C", upload)
    assert again.credited_back_total == 0
    account = operator(rig)["D1A000000000000C"]
    assert (account["credited"], account["credited_back"]) == (0, 1234)


class DiesAtPay:
    """The terminal's process dies (a BaseException nobody catches) as the PAY command goes out,
    after the intent is journalled: what a crash there leaves on disk."""

    kind = "reader"

    def __init__(self, url: str) -> None:
        self._reader = SimulatorCardReader.open(url)

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> CardSession:
        session = self._reader.wait_for_card(timeout=timeout, cancel=cancel)
        outer = self

        class Dying:
            atr = session.atr

            def exchange(self, command: bytes) -> bytes:
                if command[:2] == b"\x80\x54":
                    raise Crash
                return session.exchange(command)

            def close(self) -> None:
                session.close()

        del outer
        return Dying()  # type: ignore[return-value]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


class Crash(BaseException):
    pass


def test_a_crash_between_intent_and_outcome_recovers_to_not_paid_with_a_notice(rig: Rig, wallet_state: Path) -> None:
    rig.terminal.reader = DiesAtPay("sim:card=cbdc-anon")
    with pytest.raises(Crash):
        rig.terminal.sale(1234, CNY)
    (row,) = rig.terminal.transactions()
    assert row.state is State.WALLET_PAYING  # the intent was durable before PAY
    rig.reopen()
    row = rig.terminal.transaction(row.txn_id)
    assert row.state is State.WALLET_NOT_PAID
    assert saf(rig) == [(row.txn_id, "cbdc_torn", "queued")]
    assert wallet(wallet_state, "cbdc-anon") == (0, 500000)  # PAY never reached it: nothing to credit back
    assert rig.terminal.forward_now().accepted == 1


def test_a_decline_after_forwarding_is_reported_and_the_record_kept(make_rig: Callable[..., Rig]) -> None:
    """Two terminals of one host take the two clones (one identity, one counter) offline: the operator credits
    the first and declines the second (59 suspected fraud), which is told like a card's decline after forwarding."""
    first = make_rig(name="first")
    first.card("cbdc-clone-a")
    a = first.terminal.sale(1000, CNY)
    second = make_rig(name="second")
    second.terminal.host = first.terminal.host  # the same acquirer: its operator sees both records
    second.card("cbdc-clone-b")
    b = second.terminal.sale(2000, CNY)
    assert a.approved and b.approved  # neither terminal can tell offline
    assert first.terminal.forward_now().accepted == 1
    report = second.terminal.forward_now()
    assert report.declined == 1
    row = second.terminal.transaction(b.txn_id)
    assert row.state is State.DECLINED_AFTER_FORWARDING and row.details["response_code"] == "59"
    assert second.terminal.offline_status().declined_after_forwarding == [b.txn_id]
    assert [e.data["response_code"] for e in second.events_of("saf_declined")] == ["59"]
    assert "suspected fraud (59)" in second.terminal.result(b.txn_id).message
    assert second.terminal.store.read_sensitive(b.txn_id) is not None  # the record is kept
    account = operator(first)["D1A000000000000A"]
    assert (account["credited"], account["blocked"]) == (1000, True)


def test_the_wallet_combination_is_configured_only_with_the_cbdc_section() -> None:
    from terminal.settings import load_config, load_settings, shipped_document

    doc = shipped_document()
    assert any(c.kernel_id == 0x810156 for c in load_config(doc).combinations)
    assert load_settings(doc).cbdc is not None
    del doc["cbdc"]
    assert not any(c.kernel_id == 0x810156 for c in load_config(doc).combinations)
    assert load_settings(doc).cbdc is None


def test_a_bad_root_checksum_refuses_the_configuration() -> None:
    from terminal.settings import SettingsError, load_settings, shipped_document

    doc = shipped_document()
    doc["cbdc"]["roots"][0]["checksum"] = "00" * 32
    with pytest.raises(SettingsError, match="checksum"):
        load_settings(doc)


def test_a_card_terminal_without_cbdc_parameters_never_reads_a_wallet(
    make_rig: Callable[..., Rig], wallet_state: Path
) -> None:
    from dataclasses import replace

    from terminal.settings import load_default_settings

    rig = make_rig(settings=replace(load_default_settings(), cbdc=None))
    rig.terminal.reader = registry.open_reader("sim:card=cbdc-anon")
    result = rig.terminal.sale(1234, CNY)
    assert not result.approved and result.state is State.CANCELLED
    assert wallet(wallet_state, "cbdc-anon") == (0, 500000)


def test_a_wallet_blocked_since_the_parameters_is_declined_63_after_forwarding_and_told(rig: Rig) -> None:
    """The operator blocked the wallet after this terminal's parameters were made: the terminal approves offline,
    the operator declines the record 63 (security violation) at sync, and the terminal tells it like a card's."""
    rig.host.echo(force=True)  # the host's database exists
    cbdc_admin.block_wallet(rig.data_dir / "memory-host", "D1A0000000000001", "lost, reported by its holder")
    result = pay(rig, "cbdc-anon")
    assert result.approved
    assert rig.terminal.forward_now().declined == 1
    told = rig.terminal.result(result.txn_id)
    assert told.state is State.DECLINED_AFTER_FORWARDING and told.response_code == "63"
    assert told.message == "declined by the host after forwarding: security violation (63)"
    assert [e.data["response_code"] for e in rig.events_of("saf_declined")] == ["63"]
    text = render_text(rig.terminal.receipt(result.txn_id), "customer")
    assert "DECLINED" in text and "security violation (63)" in text
    assert operator(rig)["D1A0000000000001"]["credited"] == 0


def test_force_offline_takes_a_wallet_by_its_own_limits_and_require_online_refuses_it(rig: Rig) -> None:
    """The card offline limits have no CNY: they must not refuse a wallet, which has limits of its own."""
    from terminal.offline import OfflineBehavior

    rig.card("cbdc-anon")
    paid = rig.terminal.sale(1234, CNY, offline_behavior=OfflineBehavior.FORCE_OFFLINE)
    assert paid.approved and paid.state is State.WALLET_APPROVED
    rig.card("cbdc-verified")
    refused = rig.terminal.sale(1234, CNY, offline_behavior=OfflineBehavior.REQUIRE_ONLINE)
    assert not refused.approved and refused.refusal == "online_required" and "requires the host" in refused.message


_KILLED_AT_PAY = """
import os, signal, sys
from pathlib import Path
from simulator.devices import SimulatorCardReader
from terminal.bootstrap import open_terminal

data_dir, wallets, when = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
reader = SimulatorCardReader.open(f"sim:card=cbdc-anon?state-dir={wallets}")


class Killing:
    kind = "reader"

    def wait_for_card(self, timeout=None, cancel=None):
        session = reader.wait_for_card(timeout=timeout, cancel=cancel)

        class Session:
            atr = session.atr

            def exchange(self, command):
                if command[:2] == bytes.fromhex("8054") and when == "before":
                    os.kill(os.getpid(), signal.SIGKILL)
                answer = session.exchange(command)
                if command[:2] == bytes.fromhex("8054"):  # the wallet debited; its record never gets stored
                    os.kill(os.getpid(), signal.SIGKILL)
                return answer

            def close(self):
                session.close()

        return Session()


terminal = open_terminal(data_dir, host="none", reader_url="none")
terminal.reader = Killing()
terminal.sale(1234, 156)
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_process_killed_at_pay_recovers_not_paid_and_nothing_is_lost(tmp_path: Path, when: str) -> None:
    """A real kill (SIGKILL) as PAY goes out, or just after the wallet debited: the next start finds the intent,
    ends the payment not paid with a torn notice queued; the wallet, if it debited, is credited back at its sync."""
    import subprocess
    import sys

    from terminal.bootstrap import open_terminal

    data_dir, wallets = tmp_path / "terminal", tmp_path / "wallets"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_AT_PAY, str(data_dir), str(wallets), when],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    terminal = open_terminal(data_dir, host="memory", reader_url="none")  # start-up recovery
    try:
        (row,) = terminal.transactions()
        assert row.state is State.WALLET_NOT_PAID and not terminal.result(row.txn_id).approved
        assert terminal.forward_now().accepted == 1
        debited = when == "after"
        state, records = WalletStore(wallets).snapshot(wallet_profiles.load("cbdc-anon"))
        assert (state.counter, state.balance) == ((1, 500000 - 1234) if debited else (0, 500000))
        if debited:
            keys = wallet_profiles.load("cbdc-anon").keys
            operator_cert = pki.operator(keys.operator_id.hex()).certificate
            upload = "\n".join([r.hex() for r in records] + [keys.certificate.hex(), operator_cert.hex()])
            report = cbdc_admin.wallet_sync(data_dir / "memory-host", "D1A0000000000001", upload)
            assert report.credited_back_total == 1234  # nothing lost: the customer gets it back, once
    finally:
        terminal.close()


class WaitsForever(WalksAway):
    """The first tap is the wallet's; then nothing comes until the wait is cancelled."""

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> CardSession:
        from terminal.ports import WaitCancelled

        self._taps += 1
        if self._taps == 1:
            return self._reader.wait_for_card(timeout=timeout, cancel=cancel)
        assert cancel is not None
        while not cancel.cancelled:
            time.sleep(0.005)
        raise WaitCancelled("cancelled")


def test_the_cashier_cancels_while_the_same_wallet_is_awaited_and_it_ends_not_paid(rig: Rig) -> None:
    rig.terminal.reader = WaitsForever("sim:card=cbdc-torn")

    def cancel_when_asked(event: Any) -> None:
        if event.kind == "card_prompt" and event.data.get("prompt") == "present the same wallet again":
            threading.Timer(0.05, rig.terminal.cancel).start()

    rig.terminal.subscribe(cancel_when_asked)
    result = rig.terminal.sale(1234, CNY)
    assert result.state is State.WALLET_NOT_PAID and "cancelled" in result.message
    assert saf(rig) == [(result.txn_id, "cbdc_torn", "queued")]


class GarblesPayOnce:
    """The wallet's answer to its first PAY arrives garbled (the wallet did debit): a radio error."""

    kind = "reader"

    def __init__(self, url: str) -> None:
        self._reader = SimulatorCardReader.open(url)
        self.garbled = False

    def wait_for_card(self, timeout: float | None = None, cancel: CancelToken | None = None) -> CardSession:
        session = self._reader.wait_for_card(timeout=timeout, cancel=cancel)
        outer = self

        class Session:
            atr = session.atr

            def exchange(self, command: bytes) -> bytes:
                answer = session.exchange(command)
                if command[:2] == b"\x80\x54" and not outer.garbled:
                    outer.garbled = True
                    return b"\xe4\x03\x01\x02" + answer[-2:]  # not a record
                return answer

            def close(self) -> None:
                session.close()

        return Session()  # type: ignore[return-value]


def test_a_garbled_answer_to_pay_is_torn_and_the_re_tap_completes_the_same_payment(
    rig: Rig, wallet_state: Path
) -> None:
    """CBDC-SPEC section 7: PAY got a garbled answer: the wallet may have debited; the same wallet is asked for
    again and its record fetched, rather than the payment refused (and the customer left to wait for a sync)."""
    reader = GarblesPayOnce("sim:card=cbdc-anon")
    rig.terminal.reader = reader  # type: ignore[assignment]
    result = rig.terminal.sale(1234, CNY)
    assert reader.garbled and result.approved and result.state is State.WALLET_APPROVED
    assert [r["event"] for r in rig.terminal.history(result.txn_id)] == ["wallet_intent", "wallet_torn",
                                                                         "wallet_approved"]  # fmt: skip
    assert wallet(wallet_state, "cbdc-anon") == (1, 500000 - 1234)  # debited once
