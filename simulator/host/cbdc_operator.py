"""The simulated host's digital-currency operator (CBDC-SPEC sections 10 and 11).

Digital-currency payments reach the host as advices (``POST /v1/advices``)
of three kinds, each carrying the envelope of :mod:`simulator.host.cbdc_envelope`:

==================  ==========================================================================
``cbdc_payment``    approved at the terminal: the merchant is credited if the operator agrees
``cbdc_refused``    refused by the terminal after the wallet debited: evidence, never credited
``cbdc_torn``       torn and never completed: the intent only, nothing to credit
==================  ==========================================================================

The operator verifies every record again with the ``cbdc`` package (the
certificate chain to its trusted roots, at the record's date, and the
record's SM2 signature with the wallet's key) and keeps, per wallet, every
record by (wallet id, counter) -- one per counter, a primary key of the
database -- and an account: opening balance (from the simulator's PKI) plus
top-ups less the payments credited to merchants. Its answers:

====  =====================================  ======================================================
code  reason                                 when
====  =====================================  ======================================================
00    (credited / acknowledged)              a payment credited; a refused record or torn notice kept
59    ``double_spend``                       another record for a (wallet, counter) already held:
                                             a clone or a rollback; the wallet is blocked
59    ``chain_fork``                         the record's previous hash is not the hash of the
                                             record held for counter - 1 (or the record held for
                                             counter + 1 does not chain to it); the wallet is blocked
59    ``overspend``                          credited payments would exceed what the wallet held;
                                             the wallet is blocked
59    ``credited_back``                      a record already given back to its wallet (its intent
                                             was declared torn) claimed as a payment
63    ``record_signature``, ``malformed``,   the record does not verify, its chain does not lead to
      ``untrusted_chain``, ``certificate_*``  a trusted root (or not at the record's date), it is not
      ``wrong_wallet``                       of the wallet the envelope names
63    ``wrong_payee``, ``amount_mismatch``,  a payment claimed by another terminal than its payee,
      ``envelope_mismatch``                  for another amount or currency than the record's, or
                                             whose request or intent (challenge, date, counter,
                                             previous hash) is not the record's
63    ``wallet_blocked``,                    the wallet (or its operator) is on the block list
      ``operator_blocked``
63    ``declared_torn``                      a payment claimed by the terminal that declared it torn,
                                             never completed ("not paid"): the wallet's sync gives it back
94    ``record_replayed``                    the same record claimed again (under another advice
                                             key): never credited twice
====  =====================================  ======================================================

Evidence (``cbdc_refused``) whose record carries another challenge than the
request it was refused at is a replayed record: acknowledged and kept nowhere,
so that it neither takes the place of the payment it is (its payee's claim) nor
is credited back to the wallet.

A record refused for fraud is kept as evidence (``cbdc_conflicts``); a refused
record that verifies, and a payment refused because its wallet is blocked,
keep their counter's place, so that a later clone of it is caught.

Several host workers. Every check and change of a wallet runs in the
acquirer's transaction under ``lock("cbdc_wallet", WALLET)`` (after the
terminal's lock, before the block list's changes): two workers receiving the
two clones' records at once decide one after the other, and the primary key
of ``cbdc_records`` stands behind it (a transaction that still lost a race is
a :class:`~simulator.host.storage.StoreConflict`, run again whole by the
acquirer).

Blocking a wallet logs a change, which moves the version of the parameters'
``cbdc`` section (:func:`cbdc_section`), hence every terminal's parameters
version: each terminal's next download carries the block list.

Wallet sync (:mod:`simulator.host.cbdc_sync`) uploads the wallet's own records:
those nobody claimed whose intent a terminal declared torn, and those a
terminal refused after the wallet debited, are credited back.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from simulator.host.cbdc_envelope import Envelope, EnvelopeError, read_envelope
from simulator.host.store_cbdc import BLOCKED_OPERATOR, BLOCKED_WALLET, StoredRecord, TornIntent

if TYPE_CHECKING:
    from cbdc.protocol import PaymentRecord
    from simulator.host.store import HostStore

__all__ = [
    "CBDC_KINDS",
    "CREDITED",
    "CREDITED_BACK",
    "DEFAULT_LIMITS",
    "REFUSED",
    "REFUSED_AT_TERMINAL",
    "UNCLAIMED",
    "Operator",
    "OperatorPki",
    "Verdict",
    "Wallet",
    "block",
    "cbdc_section",
    "checked_record",
    "claim_place",
    "limits",
    "root_checksum",
    "seed",
    "simulator_pki",
    "stored",
    "verify_wallet",
]

CBDC_KINDS: Final = ("cbdc_payment", "cbdc_refused", "cbdc_torn")
CREDITED: Final = "credited"
REFUSED: Final = "refused"
UNCLAIMED: Final = "unclaimed"
#: The reason of a record kept as evidence of a terminal's refusal after the wallet debited (``cbdc_refused``).
REFUSED_AT_TERMINAL: Final = "refused_at_terminal"
#: evidence whose record is not for the attempt it was refused at (another challenge): a replay, kept nowhere
_REPLAYED_EVIDENCE: Final = "replayed_record"
#: a payment claimed by the terminal that declared it torn, never completed (not paid)
_DECLARED_TORN: Final = "declared_torn"
CREDITED_BACK: Final = "credited_back"
ACCEPTED_CODE: Final = "00"
FRAUD_CODE: Final = "59"
SECURITY_CODE: Final = "63"
REPLAY_CODE: Final = "94"
#: The terminal's offline limits for digital currency, per currency (CBDC-SPEC section 6), by default:
#: an anonymous wallet's per-payment limit (2,000 CNY) and at most 20 payments, 5,000 CNY, one day unsent.
DEFAULT_LIMITS: Final[Mapping[str, Mapping[str, int]]] = {
    "156": {"per_payment": 200000, "max_count": 20, "max_total": 500000, "max_unsent_age_s": 86400},
}
_SEEDED = "cbdc_seeded"
_LIMITS = "cbdc_limits"
_ZERO_HASH: Final = "00" * 32
_log = logging.getLogger("posterm.host")


# ----------------------------------------------------------------------------- the simulator's PKI


@dataclass(frozen=True)
class OperatorPki:
    """What the operator starts from: roots (id, key; hex), opening balances by wallet id, what is blocked, limits.

    ``limits``: the terminals' offline limits per currency (CBDC-SPEC section 6), :data:`DEFAULT_LIMITS` when empty.
    """

    roots: tuple[tuple[str, str], ...] = ()
    opening_balances: Mapping[str, int] = field(default_factory=dict)
    blocked_wallets: tuple[str, ...] = ()
    blocked_operators: tuple[str, ...] = ()
    limits: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


def _shipped_section() -> Mapping[str, Any]:
    """The ``cbdc`` section the terminal ships with (``terminal/data/terminal.json``), if it has one."""
    import json
    from importlib import resources

    shipped = json.loads(resources.files("terminal").joinpath("data", "terminal.json").read_text(encoding="utf-8"))
    section = shipped.get("cbdc") if isinstance(shipped, dict) else None
    return section if isinstance(section, Mapping) else {}


def simulator_pki() -> OperatorPki | None:
    """The simulated world's start: the simulator PKI's roots and opening balances (``simulator.cbdc.pki``),
    and the block list and limits the terminal ships with (its ``cbdc`` section: the operator's list at the
    start, which its downloads then replace). None without the simulator's PKI."""
    try:
        from simulator.cbdc import pki
    except ImportError:  # a tree without the simulator's wallets: nothing to trust, nobody to open
        return None
    roots = tuple((str(r["id"]).upper(), str(r["public_key"]).upper()) for r in pki.trust_roots())
    shipped = _shipped_section()
    limits = shipped.get("limits")
    return OperatorPki(
        roots,
        {str(k).upper(): int(v) for k, v in pki.opening_balances().items()},
        tuple(str(w).upper() for w in shipped.get("blocked_wallets", ())),
        tuple(str(o).upper() for o in shipped.get("blocked_operators", ())),
        dict(limits) if isinstance(limits, Mapping) else {},
    )


def seed(store: HostStore, pki: OperatorPki | None, at: str) -> None:
    """Trust the PKI's roots and open its wallets' accounts, once per store (the first caller does it).

    Tests give a PKI of their own before anything else touches the store; the
    host gives :func:`simulator_pki`. Nothing is marked done without a PKI.
    """
    if pki is None or store.meta(_SEEDED) is not None:
        return
    with store.transaction():
        store.lock("cbdc_seed")
        if store.meta(_SEEDED) is not None:  # read again under the lock
            return
        for root_id, key in pki.roots:
            store.add_cbdc_root(root_id.upper(), key.upper(), at)
        for wallet_id, opening in sorted(pki.opening_balances.items()):
            store.open_cbdc_wallet(wallet_id.upper(), opening, at)
        for kind, subjects in ((BLOCKED_WALLET, pki.blocked_wallets), (BLOCKED_OPERATOR, pki.blocked_operators)):
            for subject in subjects:
                store.cbdc_block(kind, subject.upper(), "blocked from the start", at)
        if pki.limits:
            store.set_meta(_LIMITS, json.dumps(pki.limits, sort_keys=True))
        store.set_meta(_SEEDED, at)


# ----------------------------------------------------------------------------- the parameters' section


def root_checksum(root_id: str, public_key: str) -> str:
    """SM3(root id || public key), upper-case hex (CBDC-SPEC section 3)."""
    from cbdc.sm3 import sm3

    return sm3(bytes.fromhex(root_id) + bytes.fromhex(public_key)).hex().upper()


def cbdc_section(store: HostStore) -> dict[str, Any]:
    """The ``cbdc`` section of the parameters (CBDC-SPEC section 8), as every terminal gets it now.

    The version is read first: a change committed while the lists are read
    makes the section newer than its version says, never older, and the next
    download (whose version has moved) carries it again.
    """
    version = store.cbdc_version()
    roots = [
        {"id": root_id, "public_key": key, "checksum": root_checksum(root_id, key)}
        for root_id, key in store.cbdc_roots()
    ]
    return {
        "version": version,
        "roots": roots,
        "blocked_wallets": [w for w, _, _ in store.cbdc_blocked(BLOCKED_WALLET)],
        "blocked_operators": [o for o, _, _ in store.cbdc_blocked(BLOCKED_OPERATOR)],
        "limits": limits(store),
    }


def limits(store: HostStore) -> dict[str, dict[str, int]]:
    """The terminals' offline limits for digital currency, per currency: as seeded, else :data:`DEFAULT_LIMITS`."""
    kept = store.meta(_LIMITS)
    chosen = json.loads(kept) if kept is not None else DEFAULT_LIMITS
    return {str(code): {name: int(value) for name, value in entry.items()} for code, entry in chosen.items()}


def block(store: HostStore, kind: str, subject: str, reason: str, at: str) -> bool:
    """Block a wallet or an operator (the parameters' version moves); False when it was blocked already."""
    with store.transaction():
        store.lock("cbdc_blocked", kind, subject)
        added = store.cbdc_block(kind, subject, reason, at)
    if added:
        _log.warning("digital currency: %s %s blocked (%s)", kind, subject, reason)
    return added


# ----------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class Wallet:
    """A wallet whose certificate chain verified: its id and key (hex), and its operator's id."""

    wallet_id: str
    public_key: str
    operator_id: str


def verify_wallet(
    wallet_certificate: bytes, operator_certificate: bytes, roots: list[tuple[str, str]], on: dt.date
) -> Wallet | str:
    """The wallet of a verified chain (root -> operator -> wallet, valid ``on``), else the refusal's name."""
    from cbdc.checks import TrustStore, verify_chain
    from cbdc.protocol import Certificate

    try:
        wallet_cert = Certificate.parse(wallet_certificate)
        operator_cert = Certificate.parse(operator_certificate)
    except ValueError:
        return "malformed"
    trust = TrustStore(roots={bytes.fromhex(i): bytes.fromhex(k) for i, k in roots})
    refusal = verify_chain(wallet_cert, operator_cert, trust, on)
    if refusal is not None:
        return str(refusal.value)
    return Wallet(wallet_cert.subject_id.hex().upper(), wallet_cert.public_key.hex().upper(),
                  operator_cert.subject_id.hex().upper())  # fmt: skip


def checked_record(raw: bytes, public_key: str | None = None) -> PaymentRecord | str:
    """The record parsed (and its signature verified with ``public_key`` when given), else the refusal's name."""
    from cbdc import sm2
    from cbdc.protocol import PaymentRecord

    try:
        record = PaymentRecord.parse(raw)
    except ValueError:
        return "malformed"
    if public_key is not None and not sm2.verify(bytes.fromhex(public_key), record.signed_bytes, record.signature):
        return "record_signature"
    return record


def stored(
    record: PaymentRecord, status: str, reason: str, at: str, claim: tuple[str, str, str, str] | None
) -> StoredRecord:
    """A verified record as the operator keeps it, with its status and claimant (merchant, terminal, txn, key)."""
    merchant_id, terminal_id, txn_id, key = claim or (None, None, None, None)
    return StoredRecord(
        record.wallet_id_hex, record.counter, record.hash.hex().upper(), record.previous_hash.hex().upper(),
        record.amount, record.currency, record.merchant_id, record.terminal_id, status, reason,
        merchant_id, terminal_id, txn_id, key, record.raw.hex().upper(), at,
    )  # fmt: skip


def claim_place(store: HostStore, record: PaymentRecord) -> tuple[str | None, StoredRecord | None]:
    """(fraud, the record held for its counter): ``double_spend`` / ``chain_fork`` / None (in the wallet's lock)."""
    wallet_id, counter = record.wallet_id_hex, record.counter
    record_hash, previous = record.hash.hex().upper(), record.previous_hash.hex().upper()
    held = store.cbdc_record(wallet_id, counter)
    if held is not None:
        return (None if held.record_hash == record_hash else "double_spend"), held
    if counter < 1 or (counter == 1 and previous != _ZERO_HASH):
        return "chain_fork", None
    before = store.cbdc_record(wallet_id, counter - 1) if counter > 1 else None
    if before is not None and before.record_hash != previous:
        return "chain_fork", None
    after = store.cbdc_record(wallet_id, counter + 1)
    if after is not None and after.previous_hash != record_hash:
        return "chain_fork", None
    return None, None


def _declared_torn(store: HostStore, record: PaymentRecord, claim: tuple[str, str, str, str]) -> bool:
    """Whether the claiming terminal declared this very payment torn and never completed (``cbdc_torn``): it told
    the customer "not paid", so it may not be credited for it (the wallet's sync gives it back)."""
    return any(
        (intent.merchant_id, intent.terminal_id) == claim[:2]
        and intent.challenge == record.challenge.hex().upper()
        and intent.previous_hash == record.previous_hash.hex().upper()
        for intent in store.cbdc_torn(record.wallet_id_hex, record.counter)
    )


def _as_asked(record: PaymentRecord, envelope: Envelope) -> bool:
    """Whether an approved record is the one the envelope's request and intent asked for (the terminal's
    after-PAY checks passed it: the same amount, currency, payee, challenge, date-time, counter and chain)."""
    asked = envelope.request
    return (
        (asked.amount, asked.currency, asked.merchant_id, asked.terminal_id) ==
        (record.amount, record.currency, record.merchant_id, record.terminal_id)
        and asked.challenge == record.challenge
        and asked.date_time == record.date_time_bytes.hex()
        and (envelope.expected_counter, envelope.previous_hash) == (record.counter, record.previous_hash)
    )


# ----------------------------------------------------------------------------- the advices


@dataclass(frozen=True)
class Verdict:
    """The operator's answer to one advice.

    ``rejected``: the advice itself is malformed (the acquirer answers
    ``rejected``, ``30``, and keeps nothing); else ``response_code`` (``00``
    accepted, anything else declined), ``credited`` (the merchant is credited:
    the record counts in the batch totals), ``reason`` (kept as the record's
    note) and ``wallet_id`` (hex, or "" when the envelope named none).
    """

    response_code: str
    reason: str
    wallet_id: str = ""
    credited: bool = False
    rejected: bool = False

    @property
    def accepted(self) -> bool:
        return self.response_code == ACCEPTED_CODE

    @property
    def message(self) -> str | None:
        """What the advice's result says (None for a credited payment)."""
        if self.credited:
            return None
        if self.accepted:
            return f"acknowledged, nothing credited ({self.reason})"
        return f"declined after forwarding ({self.reason})"


class Operator:
    """The digital-currency operator over a host store (its methods run inside the acquirer's transaction)."""

    def __init__(self, store: HostStore, pki: Callable[[], OperatorPki | None] = simulator_pki) -> None:
        self.store = store
        self._pki_source = pki
        self._pki: OperatorPki | None = None
        self._pki_loaded = False

    def pki(self) -> OperatorPki | None:
        """The PKI (read once, on first need)."""
        if not self._pki_loaded:
            self._pki = self._pki_source()
            self._pki_loaded = True
        return self._pki

    def ensure_seeded(self, at: str) -> None:
        if self.store.meta(_SEEDED) is None:
            seed(self.store, self.pki(), at)

    def open_account(self, wallet_id: str, at: str) -> None:
        """Open a wallet's account (its opening balance from the PKI, else 0) if it has none."""
        if self.store.cbdc_wallet(wallet_id) is None:
            pki = self.pki()
            opening = pki.opening_balances.get(wallet_id, 0) if pki is not None else 0
            self.store.open_cbdc_wallet(wallet_id, opening, at)

    def advise(self, advice: Mapping[str, Any], merchant_id: str, terminal_id: str, now: dt.datetime) -> Verdict:
        """Decide one schema-valid advice of a :data:`CBDC_KINDS` kind from the terminal (merchant, terminal)."""
        kind = str(advice["kind"])
        try:
            envelope = read_envelope(bytes.fromhex(advice["emv_data"]), with_record=kind != "cbdc_torn")
        except EnvelopeError as exc:
            return Verdict("30", str(exc), rejected=True)
        at = now.astimezone(dt.UTC).isoformat(timespec="microseconds")
        self.ensure_seeded(at)
        wallet_id = envelope.wallet_id
        with self.store.transaction():
            self.store.lock("cbdc_wallet", wallet_id)
            if kind == "cbdc_torn":
                return self._torn(envelope, advice, merchant_id, terminal_id, at)
            claim = (merchant_id, terminal_id, str(advice["txn_id"]), str(advice["idempotency_key"]))
            return self._record(envelope, advice, claim, at, payment=kind == "cbdc_payment")

    # ------------------------------------------------------------------ inside the wallet's lock

    def _refuse(self, reason: str, wallet_id: str, *, payment: bool) -> Verdict:
        """A record that cannot be trusted: a payment is declined 63, evidence is acknowledged (kept nowhere)."""
        return Verdict(SECURITY_CODE if payment else ACCEPTED_CODE, reason, wallet_id)

    def _record(
        self, envelope: Envelope, advice: Mapping[str, Any], claim: tuple[str, str, str, str], at: str, *, payment: bool
    ) -> Verdict:
        store = self.store
        wallet_id = envelope.wallet_id
        assert envelope.record is not None
        record = checked_record(envelope.record)
        if isinstance(record, str):
            return self._refuse(record, wallet_id, payment=payment)
        wallet = verify_wallet(envelope.wallet_certificate, envelope.operator_certificate, store.cbdc_roots(),
                               record.date_time.date())  # fmt: skip
        if isinstance(wallet, str):
            return self._refuse(wallet, wallet_id, payment=payment)
        if wallet.wallet_id != wallet_id or record.wallet_id_hex != wallet_id:
            return self._refuse("wrong_wallet", wallet_id, payment=payment)
        signed = checked_record(envelope.record, wallet.public_key)
        if isinstance(signed, str):
            return self._refuse(signed, wallet_id, payment=payment)
        if payment and (record.merchant_id, record.terminal_id) != claim[:2]:
            return Verdict(SECURITY_CODE, "wrong_payee", wallet_id)
        if payment and (record.amount, record.currency) != (advice["amount"], advice["currency"]):
            return Verdict(SECURITY_CODE, "amount_mismatch", wallet_id)
        if payment and not _as_asked(record, envelope):
            return Verdict(SECURITY_CODE, "envelope_mismatch", wallet_id)
        self.open_account(wallet_id, at)
        store.set_cbdc_wallet_identity(wallet_id, wallet.public_key, wallet.operator_id, record.currency)
        blocked = (
            "operator_blocked"
            if store.cbdc_block_reason(BLOCKED_OPERATOR, wallet.operator_id) is not None
            else "wallet_blocked"
            if store.cbdc_block_reason(BLOCKED_WALLET, wallet_id) is not None
            else None
        )
        fraud, held = claim_place(store, record)
        if fraud is not None:
            store.add_cbdc_conflict(wallet_id, record.counter, record.hash.hex().upper(), fraud,
                                    record.raw.hex().upper(), at, claim[:3])  # fmt: skip
            if blocked is not None:
                return Verdict(SECURITY_CODE, f"{blocked} ({fraud})", wallet_id)
            block(store, BLOCKED_WALLET, wallet_id, f"{fraud} at counter {record.counter}", at)
            return Verdict(FRAUD_CODE, fraud, wallet_id)
        if blocked is not None:
            if held is None:
                store.add_cbdc_record(stored(record, REFUSED, blocked, at, claim))
            return Verdict(SECURITY_CODE, blocked, wallet_id)
        if not payment and record.challenge != envelope.request.challenge:
            # not signed for this attempt (a replayed record): no proof of a debit here, so it must not take the
            # place of the payment it is (its payee's claim) nor be credited back to the wallet at its sync
            return Verdict(ACCEPTED_CODE, _REPLAYED_EVIDENCE, wallet_id)
        if not payment:  # evidence of a refusal at the terminal: kept (its counter's place), never credited
            if held is None:
                store.add_cbdc_record(stored(record, REFUSED, REFUSED_AT_TERMINAL, at, claim))
            return Verdict(ACCEPTED_CODE, REFUSED_AT_TERMINAL, wallet_id)
        if held is not None and held.status == CREDITED_BACK:
            return Verdict(FRAUD_CODE, CREDITED_BACK, wallet_id)
        if held is not None and held.status != UNCLAIMED:
            return Verdict(REPLAY_CODE, "record_replayed", wallet_id)
        if _declared_torn(store, record, claim):
            return Verdict(SECURITY_CODE, _DECLARED_TORN, wallet_id)
        return self._credit(record, held, claim, at)

    def _credit(
        self, record: PaymentRecord, held: StoredRecord | None, claim: tuple[str, str, str, str], at: str
    ) -> Verdict:
        """Credit the merchant unless the wallet would have spent more than it held (then: overspend, blocked)."""
        store = self.store
        wallet_id = record.wallet_id_hex
        account = store.cbdc_wallet(wallet_id)
        assert account is not None
        overspent = account.credited + record.amount > account.opening + account.topups
        status, reason = (REFUSED, "overspend") if overspent else (CREDITED, "")
        if held is None:
            store.add_cbdc_record(stored(record, status, reason, at, claim))
        elif not store.settle_cbdc_record(wallet_id, record.counter, from_status=UNCLAIMED, status=status,
                                          reason=reason, claim=claim):  # fmt: skip
            return Verdict(REPLAY_CODE, "record_replayed", wallet_id)  # pragma: no cover - the lock is held
        if overspent:
            block(store, BLOCKED_WALLET, wallet_id, f"overspend at counter {record.counter}", at)
            return Verdict(FRAUD_CODE, "overspend", wallet_id)
        store.add_cbdc_money(wallet_id, credited=record.amount)
        return Verdict(ACCEPTED_CODE, "credited", wallet_id, credited=True)

    def _torn(
        self, envelope: Envelope, advice: Mapping[str, Any], merchant_id: str, terminal_id: str, at: str
    ) -> Verdict:
        asked = envelope.request
        if (asked.merchant_id, asked.terminal_id) != (merchant_id, terminal_id):
            return Verdict(SECURITY_CODE, "wrong_payee", envelope.wallet_id)
        intent = TornIntent(
            envelope.wallet_id, envelope.expected_counter, merchant_id, terminal_id, str(advice["txn_id"]),
            envelope.previous_hash.hex().upper(), asked.challenge.hex().upper(), asked.amount, asked.currency, at,
        )  # fmt: skip
        self.store.add_cbdc_torn(intent)
        return Verdict(ACCEPTED_CODE, "torn_not_paid", envelope.wallet_id)
