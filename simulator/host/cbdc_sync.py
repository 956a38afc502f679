"""A wallet's own sync with its operator (CBDC-SPEC section 11): its records uploaded, torn ones credited back.

``posterm host cbdc wallet-sync WALLET --records FILE`` hands the operator the
wallet's records (hex E4 templates, one a line), and may add the wallet's
two certificates (hex E2 templates: wallet, operator) when the operator has
not yet verified them from an advice. Everything is verified before anything
is kept (the certificates' chain to a trusted root, every record's signature
with the wallet's key, every record of that wallet): an upload that fails is
refused whole (:class:`SyncError`).

Then each record, in counter order, under the wallet's lock:

- another record already held for its counter, or one off the chain
  (:func:`~simulator.host.cbdc_operator.claim_place`): fraud, kept as
  evidence, the wallet blocked (the sync reports it);
- a record nobody claimed is kept as ``unclaimed``; when a terminal declared
  its intent torn (``cbdc_torn``: the same payee, amount, currency, challenge
  and previous hash) it is credited back to the wallet, once: the record
  moves from ``unclaimed`` to ``credited_back`` in one conditional update, so a
  second sync (or two at once) credits nothing more, and a terminal that
  claims it afterwards is declined (``59 credited_back``);
- a record its terminal refused after the wallet debited (``cbdc_refused``
  evidence: no merchant gave anything for it) is credited back too, once;
- a record a merchant was credited for, or that the operator refused (a
  blocked wallet's, an overspend: the merchant may have given the goods),
  stays as it is.

A record nobody claimed and nobody declared torn stays ``unclaimed``: its
terminal may still be offline with the payment in its queue.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulator.host.cbdc_operator import (
    CREDITED_BACK,
    REFUSED,
    REFUSED_AT_TERMINAL,
    UNCLAIMED,
    Operator,
    block,
    checked_record,
    claim_place,
    stored,
    verify_wallet,
)
from simulator.host.store_cbdc import BLOCKED_WALLET

if TYPE_CHECKING:
    from cbdc.protocol import PaymentRecord
    from simulator.host.store import HostStore
    from simulator.host.store_cbdc import StoredRecord

__all__ = ["WALLET_ID", "SyncError", "SyncReport", "read_upload", "wallet_sync"]

WALLET_ID = re.compile(r"^[0-9A-Fa-f]{16}$")
_MAX_LINES = 10_000


class SyncError(ValueError):
    """An upload the operator refuses whole (the message names the line and why); nothing was kept."""


@dataclass(frozen=True)
class SyncReport:
    """What a wallet sync did."""

    wallet_id: str
    records: int  # records uploaded
    new: int  # of which the operator did not hold before
    credited_back: tuple[dict[str, Any], ...]  # why (torn|refused), counter, amount, currency, merchant_id,
    # terminal_id, txn_id
    frauds: tuple[dict[str, Any], ...]  # counter, reason
    blocked: bool  # the wallet is on the block list now

    @property
    def credited_back_total(self) -> int:
        return sum(int(c["amount"]) for c in self.credited_back)

    def to_json(self) -> dict[str, Any]:
        return {
            "wallet_id": self.wallet_id,
            "records": self.records,
            "new": self.new,
            "credited_back": list(self.credited_back),
            "credited_back_total": self.credited_back_total,
            "frauds": list(self.frauds),
            "blocked": self.blocked,
        }


def read_upload(text: str) -> list[bytes]:
    """The templates of an upload: one hex string a line (blank lines and ``#`` comments left out)."""
    out: list[bytes] = []
    for number, line in enumerate(text.splitlines(), 1):
        item = line.split("#", 1)[0].strip()
        if not item:
            continue
        if len(out) >= _MAX_LINES:
            raise SyncError(f"more than {_MAX_LINES} records in one upload")
        try:
            out.append(bytes.fromhex(item))
        except ValueError:
            raise SyncError(f"line {number}: not hex") from None
    return out


def _wallet_first(certificates: list[bytes]) -> tuple[bytes, bytes]:
    """The wallet's certificate and its operator's, in whichever order they were uploaded (by their role)."""
    from cbdc.protocol import Certificate, Role

    first, second = certificates
    try:
        if Certificate.parse(first).role == Role.OPERATOR:
            return second, first
    except ValueError:
        pass  # the chain check refuses it, naming why
    return first, second


def _identity(operator: Operator, wallet_id: str, certificates: list[bytes], on: dt.date) -> str:
    """The wallet's public key (hex): from the certificates uploaded, else the one the operator verified."""
    store = operator.store
    if certificates:
        if len(certificates) != 2:
            raise SyncError("give both certificates (E2): the wallet's and its operator's")
        wallet = verify_wallet(*_wallet_first(certificates), store.cbdc_roots(), on)
        if isinstance(wallet, str):
            raise SyncError(f"the certificates do not verify: {wallet}")
        if wallet.wallet_id != wallet_id:
            raise SyncError(f"the certificates are of wallet {wallet.wallet_id}, not {wallet_id}")
        return wallet.public_key
    account = store.cbdc_wallet(wallet_id)
    if account is None or account.public_key is None:
        raise SyncError(
            f"the operator has not verified wallet {wallet_id}'s certificate yet: add its two certificates "
            "(E2, hex) to the upload"
        )
    return account.public_key


def _checked(
    operator: Operator, wallet_id: str, items: list[bytes], now: dt.datetime
) -> tuple[list[PaymentRecord], list[bytes]]:
    certificates = [i for i in items if i[:1] == b"\xe2"]
    raws = [i for i in items if i[:1] == b"\xe4"]
    if len(certificates) + len(raws) != len(items):
        raise SyncError("every line must be a payment record (E4...) or a certificate (E2...)")
    parsed: list[PaymentRecord] = []
    for index, raw in enumerate(raws, 1):
        record = checked_record(raw)
        if isinstance(record, str):
            raise SyncError(f"record {index}: {record}")
        if record.wallet_id_hex != wallet_id:
            raise SyncError(f"record {index} is of wallet {record.wallet_id_hex}, not {wallet_id}")
        parsed.append(record)
    on = max((r.date_time.date() for r in parsed), default=now.date())
    key = _identity(operator, wallet_id, certificates, on)
    for index, record in enumerate(parsed, 1):
        if isinstance(checked_record(record.raw, key), str):
            raise SyncError(f"record {index} (counter {record.counter}): its signature does not verify")
    counters = [r.counter for r in parsed]
    if len(set(counters)) != len(counters):
        raise SyncError("the upload holds two records of one counter")
    return sorted(parsed, key=lambda r: r.counter), certificates


def _credit_back(store: HostStore, record: PaymentRecord) -> dict[str, Any] | None:
    """Give an unclaimed record back to its wallet if its payee declared its intent torn (once)."""
    for intent in store.cbdc_torn(record.wallet_id_hex, record.counter):
        matches = (
            (intent.merchant_id, intent.terminal_id) == (record.merchant_id, record.terminal_id)
            and (intent.amount, intent.currency) == (record.amount, record.currency)
            and intent.challenge == record.challenge.hex().upper()
            and intent.previous_hash == record.previous_hash.hex().upper()
        )
        if not matches:
            continue
        reason = f"torn at {intent.merchant_id}/{intent.terminal_id} ({intent.txn_id})"
        if not store.settle_cbdc_record(record.wallet_id_hex, record.counter, from_status=UNCLAIMED,
                                        status=CREDITED_BACK, reason=reason):  # fmt: skip
            return None
        store.add_cbdc_money(record.wallet_id_hex, credited_back=record.amount)
        return {
            "why": "torn",
            "counter": record.counter,
            "amount": record.amount,
            "currency": record.currency,
            "merchant_id": intent.merchant_id,
            "terminal_id": intent.terminal_id,
            "txn_id": intent.txn_id,
        }
    return None


def wallet_sync(operator: Operator, wallet_id: str, items: list[bytes], now: dt.datetime) -> SyncReport:
    """Apply a wallet's upload (see the module docstring); :class:`SyncError` when it is refused whole."""
    if not WALLET_ID.fullmatch(wallet_id):
        raise SyncError(f"{wallet_id!r} is not a wallet id (16 hex digits)")
    wallet_id = wallet_id.upper()
    at = now.astimezone(dt.UTC).isoformat(timespec="microseconds")
    store = operator.store
    operator.ensure_seeded(at)
    records, certificates = _checked(operator, wallet_id, items, now)
    new = 0
    credited: list[dict[str, Any]] = []
    frauds: list[dict[str, Any]] = []
    with store.transaction():
        store.lock("cbdc_wallet", wallet_id)
        operator.open_account(wallet_id, at)
        if certificates:
            wallet = verify_wallet(*_wallet_first(certificates), store.cbdc_roots(), now.date())
            if not isinstance(wallet, str):
                store.set_cbdc_wallet_identity(wallet_id, wallet.public_key, wallet.operator_id, None)
        for record in records:
            fraud, held = claim_place(store, record)
            if fraud is not None:
                store.add_cbdc_conflict(wallet_id, record.counter, record.hash.hex().upper(), fraud,
                                        record.raw.hex().upper(), at)  # fmt: skip
                block(store, BLOCKED_WALLET, wallet_id, f"{fraud} at counter {record.counter} (wallet sync)", at)
                frauds.append({"counter": record.counter, "reason": fraud})
                continue
            if held is None:
                store.add_cbdc_record(stored(record, UNCLAIMED, "wallet_sync", at, None))
                new += 1
            elif _refused_at_terminal(held):
                given = _refund_refused(store, held)
                if given is not None:
                    credited.append(given)
                continue
            elif not _unclaimed(held):
                continue
            given = _credit_back(store, record)
            if given is not None:
                credited.append(given)
        blocked = store.cbdc_block_reason(BLOCKED_WALLET, wallet_id) is not None
    return SyncReport(wallet_id, len(records), new, tuple(credited), tuple(frauds), blocked)


def _unclaimed(held: StoredRecord) -> bool:
    return held.status == UNCLAIMED


def _refused_at_terminal(held: StoredRecord) -> bool:
    """A record its terminal refused after the wallet debited (evidence): no merchant gave anything for it."""
    return held.status == REFUSED and held.reason == REFUSED_AT_TERMINAL


def _refund_refused(store: HostStore, held: StoredRecord) -> dict[str, Any] | None:
    """Give a record refused at its terminal back to its wallet, once (the same conditional move as a torn one)."""
    reason = f"refused at {held.claimed_merchant_id}/{held.claimed_terminal_id} ({held.claimed_txn_id})"
    if not store.settle_cbdc_record(held.wallet_id, held.counter, from_status=REFUSED, status=CREDITED_BACK,
                                    reason=reason):  # fmt: skip
        return None
    store.add_cbdc_money(held.wallet_id, credited_back=held.amount)
    return {
        "why": "refused",
        "counter": held.counter,
        "amount": held.amount,
        "currency": held.currency,
        "merchant_id": held.claimed_merchant_id,
        "terminal_id": held.claimed_terminal_id,
        "txn_id": held.claimed_txn_id,
    }
