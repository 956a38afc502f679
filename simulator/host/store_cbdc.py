"""The host store's tables and queries for the digital-currency operator (:mod:`simulator.host.cbdc_operator`).

A part of :class:`simulator.host.store.HostStore` (a base class of it, kept
apart so that the store's module stays readable): portable SQL through the
store's own helpers, like :mod:`simulator.host.store_issuer`. The tables are
migration 7 (``simulator/host/storage/migrations/0007_cbdc.sql``).

- ``cbdc_roots``: the central bank roots the operator trusts (and the
  parameters carry);
- ``cbdc_wallets``: one account per wallet: its opening balance, top-ups, the
  payments credited to merchants, what was credited back to it (torn
  payments), and the key and operator of its verified certificate;
- ``cbdc_records``: every payment record seen, one per (wallet, counter): the
  primary key is what makes two host workers unable to keep two records of
  one counter; its status says whether a merchant was credited;
- ``cbdc_conflicts``: the other records presented for a counter already held
  (the evidence of a clone or a rollback);
- ``cbdc_torn``: the intents that terminals declared torn, never completed;
- ``cbdc_blocked`` and ``cbdc_changes``: the block list, and the log of every
  change to what the parameters' ``cbdc`` section carries (its version is one
  more than the number of changes).

Wallet and operator ids are upper-case hex; amounts minor units. A caller that
checks and then changes a wallet holds ``lock("cbdc_wallet", WALLET)`` first, in
its transaction (the operator does).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

__all__ = [
    "BLOCKED_OPERATOR",
    "BLOCKED_WALLET",
    "CbdcTables",
    "StoredRecord",
    "TornIntent",
    "WalletAccount",
]

BLOCKED_WALLET: Final = "wallet"
BLOCKED_OPERATOR: Final = "operator"


@dataclass(frozen=True)
class WalletAccount:
    """A wallet's account at the operator. ``balance``: what it holds by the operator's books."""

    wallet_id: str
    opening: int
    topups: int
    credited: int
    credited_back: int
    currency: int | None
    public_key: str | None
    operator_id: str | None

    @property
    def balance(self) -> int:
        """Opening balance plus top-ups less the payments credited to merchants."""
        return self.opening + self.topups - self.credited


@dataclass(frozen=True)
class StoredRecord:
    """A payment record the operator holds for (wallet, counter), and what became of it.

    ``status``: ``credited`` (a merchant was credited), ``refused`` (presented,
    never credited: ``reason`` says why), ``unclaimed`` (known from the wallet's
    own sync only) or ``credited_back`` (unclaimed, its intent declared torn:
    given back to the wallet).
    """

    wallet_id: str
    counter: int
    record_hash: str
    previous_hash: str
    amount: int
    currency: int
    payee_merchant_id: str
    payee_terminal_id: str
    status: str
    reason: str
    claimed_merchant_id: str | None
    claimed_terminal_id: str | None
    claimed_txn_id: str | None
    claimed_key: str | None
    record: str
    seen_at: str


@dataclass(frozen=True)
class TornIntent:
    """A payment a terminal declared torn and never completed (its intent)."""

    wallet_id: str
    counter: int
    merchant_id: str
    terminal_id: str
    txn_id: str
    previous_hash: str
    challenge: str
    amount: int
    currency: int
    declared_at: str


_RECORD_COLUMNS = (
    "wallet_id, counter, record_hash, previous_hash, amount, currency, payee_merchant_id, payee_terminal_id, "
    "status, reason, claimed_merchant_id, claimed_terminal_id, claimed_txn_id, claimed_key, record, seen_at"
)
_WALLET_COLUMNS = "wallet_id, opening, topups, credited, credited_back, currency, public_key, operator_id"
_TORN_COLUMNS = (
    "wallet_id, counter, merchant_id, terminal_id, txn_id, previous_hash, challenge, amount, currency, declared_at"
)


def _stored(row: tuple[Any, ...]) -> StoredRecord:
    w, c, h, p, a, cur, pm, pt, st, rs, cm, ct, cx, ck, rec, at = row
    return StoredRecord(
        str(w), int(c), str(h), str(p), int(a), int(cur), str(pm), str(pt), str(st), str(rs),
        None if cm is None else str(cm), None if ct is None else str(ct),
        None if cx is None else str(cx), None if ck is None else str(ck), str(rec), str(at),
    )  # fmt: skip


def _account(row: tuple[Any, ...]) -> WalletAccount:
    w, o, t, c, b, cur, key, op = row
    return WalletAccount(
        str(w), int(o), int(t), int(c), int(b), None if cur is None else int(cur),
        None if key is None else str(key), None if op is None else str(op),
    )  # fmt: skip


class CbdcTables:
    """The queries; :class:`~simulator.host.store.HostStore` provides the connection helpers."""

    if TYPE_CHECKING:  # provided by HostStore (declared here for the type checker)

        def _one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None: ...

        def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...

        def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> int: ...

        def transaction(self) -> contextlib.AbstractContextManager[None]: ...

        def lock(self, *name: str) -> None: ...

    # ------------------------------------------------------------------ what the parameters carry

    def cbdc_version(self) -> int:
        """The version of the parameters' ``cbdc`` section: one more than the changes logged."""
        row = self._one("SELECT COUNT(*) FROM cbdc_changes")
        return 1 + (0 if row is None else int(row[0]))

    def _log_change(self, kind: str, subject: str, action: str, reason: str, at: str) -> None:
        self._exec(
            "INSERT INTO cbdc_changes (kind, subject, action, reason, at) VALUES (?, ?, ?, ?, ?)",
            (kind, subject, action, reason, at),
        )

    def cbdc_changes(self) -> list[dict[str, Any]]:
        rows = self._all("SELECT seq, kind, subject, action, reason, at FROM cbdc_changes ORDER BY seq")
        return [
            {"seq": int(s), "kind": str(k), "subject": str(x), "action": str(a), "reason": str(r), "at": str(t)}
            for s, k, x, a, r, t in rows
        ]

    def cbdc_roots(self) -> list[tuple[str, str]]:
        """(root id, public key), upper-case hex, by id."""
        return [(str(i), str(k)) for i, k in self._all("SELECT root_id, public_key FROM cbdc_roots ORDER BY root_id")]

    def add_cbdc_root(self, root_id: str, public_key: str, at: str) -> bool:
        """Trust a root (logged as a change); False when it was trusted already."""
        added = self._exec(
            "INSERT INTO cbdc_roots (root_id, public_key, added_at) VALUES (?, ?, ?) ON CONFLICT (root_id) DO NOTHING",
            (root_id, public_key, at),
        )
        if added:
            self._log_change("root", root_id, "add", "", at)
        return added > 0

    def cbdc_block_reason(self, kind: str, subject: str) -> str | None:
        row = self._one("SELECT reason FROM cbdc_blocked WHERE kind = ? AND subject = ?", (kind, subject))
        return None if row is None else str(row[0])

    def cbdc_block(self, kind: str, subject: str, reason: str, at: str) -> bool:
        """Put a wallet or operator on the block list (logged); False when it was on it already."""
        added = self._exec(
            "INSERT INTO cbdc_blocked (kind, subject, reason, blocked_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, subject) DO NOTHING",
            (kind, subject, reason, at),
        )
        if added:
            self._log_change(kind, subject, "block", reason, at)
        return added > 0

    def cbdc_unblock(self, kind: str, subject: str, at: str) -> bool:
        """Take it off the block list (logged); False when it was not on it."""
        removed = self._exec("DELETE FROM cbdc_blocked WHERE kind = ? AND subject = ?", (kind, subject))
        if removed:
            self._log_change(kind, subject, "unblock", "", at)
        return removed > 0

    def cbdc_blocked(self, kind: str) -> list[tuple[str, str, str]]:
        """(subject, reason, since) of the wallets or operators blocked, by subject."""
        rows = self._all(
            "SELECT subject, reason, blocked_at FROM cbdc_blocked WHERE kind = ? ORDER BY subject", (kind,)
        )
        return [(str(s), str(r), str(a)) for s, r, a in rows]

    # ------------------------------------------------------------------ wallets

    def cbdc_wallet(self, wallet_id: str) -> WalletAccount | None:
        row = self._one(f"SELECT {_WALLET_COLUMNS} FROM cbdc_wallets WHERE wallet_id = ?", (wallet_id,))
        return None if row is None else _account(row)

    def cbdc_wallets(self) -> list[WalletAccount]:
        return [_account(r) for r in self._all(f"SELECT {_WALLET_COLUMNS} FROM cbdc_wallets ORDER BY wallet_id")]

    def open_cbdc_wallet(self, wallet_id: str, opening: int, at: str) -> None:
        """Open the wallet's account with its opening balance, unless it has one."""
        self._exec(
            "INSERT INTO cbdc_wallets (wallet_id, opening, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (wallet_id) DO NOTHING",
            (wallet_id, opening, at),
        )

    def set_cbdc_wallet_identity(self, wallet_id: str, public_key: str, operator_id: str, currency: int | None) -> None:
        """The key and operator of the wallet's verified certificate, and its currency once known."""
        self._exec(
            "UPDATE cbdc_wallets SET public_key = ?, operator_id = ?, currency = COALESCE(currency, ?) "
            "WHERE wallet_id = ?",
            (public_key, operator_id, currency, wallet_id),
        )

    def add_cbdc_money(self, wallet_id: str, *, topups: int = 0, credited: int = 0, credited_back: int = 0) -> None:
        """Add to the wallet's top-ups, credited payments or credited-back total (one statement, no read)."""
        self._exec(
            "UPDATE cbdc_wallets SET topups = topups + ?, credited = credited + ?, credited_back = credited_back + ? "
            "WHERE wallet_id = ?",
            (topups, credited, credited_back, wallet_id),
        )

    def cbdc_wallet_records(self, wallet_id: str) -> tuple[int, int]:
        """(records held, highest counter; 0 when none) of a wallet."""
        sql = "SELECT COUNT(*), COALESCE(MAX(counter), 0) FROM cbdc_records WHERE wallet_id = ?"
        row = self._one(sql, (wallet_id,))
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    # ------------------------------------------------------------------ records

    def cbdc_record(self, wallet_id: str, counter: int) -> StoredRecord | None:
        row = self._one(
            f"SELECT {_RECORD_COLUMNS} FROM cbdc_records WHERE wallet_id = ? AND counter = ?", (wallet_id, counter)
        )
        return None if row is None else _stored(row)

    def cbdc_records(self, wallet_id: str) -> list[StoredRecord]:
        sql = f"SELECT {_RECORD_COLUMNS} FROM cbdc_records WHERE wallet_id = ? ORDER BY counter"
        rows = self._all(sql, (wallet_id,))
        return [_stored(r) for r in rows]

    def add_cbdc_record(self, record: StoredRecord) -> None:
        """Keep a record; a second one for the same (wallet, counter) is a StoreConflict (the primary key)."""
        self._exec(
            f"INSERT INTO cbdc_records ({_RECORD_COLUMNS}) VALUES ({', '.join('?' for _ in range(16))})",
            (
                record.wallet_id, record.counter, record.record_hash, record.previous_hash, record.amount,
                record.currency, record.payee_merchant_id, record.payee_terminal_id, record.status, record.reason,
                record.claimed_merchant_id, record.claimed_terminal_id, record.claimed_txn_id, record.claimed_key,
                record.record, record.seen_at,
            ),
        )  # fmt: skip

    def settle_cbdc_record(
        self,
        wallet_id: str,
        counter: int,
        *,
        from_status: str,
        status: str,
        reason: str = "",
        claim: tuple[str, str, str, str] | None = None,
    ) -> bool:
        """Move a record from ``from_status`` to ``status`` (and name its claimant); False if it was not there.

        The ``from_status`` condition makes the move happen once, whoever tries it twice.
        """
        if claim is None:
            return (
                self._exec(
                    "UPDATE cbdc_records SET status = ?, reason = ? WHERE wallet_id = ? AND counter = ? AND status = ?",
                    (status, reason, wallet_id, counter, from_status),
                )
                > 0
            )
        return (
            self._exec(
                "UPDATE cbdc_records SET status = ?, reason = ?, claimed_merchant_id = ?, claimed_terminal_id = ?, "
                "claimed_txn_id = ?, claimed_key = ? WHERE wallet_id = ? AND counter = ? AND status = ?",
                (status, reason, *claim, wallet_id, counter, from_status),
            )
            > 0
        )

    def add_cbdc_conflict(
        self,
        wallet_id: str,
        counter: int,
        record_hash: str,
        reason: str,
        record: str,
        at: str,
        claimant: tuple[str, str, str] | None = None,
    ) -> None:
        """Keep a record refused for a counter already held (or off the chain): the evidence."""
        merchant_id, terminal_id, txn_id = claimant or (None, None, None)
        self._exec(
            "INSERT INTO cbdc_conflicts (wallet_id, counter, record_hash, reason, merchant_id, terminal_id, txn_id, "
            "record, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (wallet_id, counter, record_hash, reason, merchant_id, terminal_id, txn_id, record, at),
        )

    def cbdc_conflicts(self, wallet_id: str) -> list[dict[str, Any]]:
        rows = self._all(
            "SELECT counter, record_hash, reason, merchant_id, terminal_id, txn_id, seen_at FROM cbdc_conflicts "
            "WHERE wallet_id = ? ORDER BY seq",
            (wallet_id,),
        )
        keys = ("counter", "record_hash", "reason", "merchant_id", "terminal_id", "txn_id", "seen_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # ------------------------------------------------------------------ torn payments

    def add_cbdc_torn(self, intent: TornIntent) -> bool:
        """Keep a torn intent (the same terminal declaring it again changes nothing); whether it was new."""
        values = (
            intent.wallet_id, intent.counter, intent.merchant_id, intent.terminal_id, intent.txn_id,
            intent.previous_hash, intent.challenge, intent.amount, intent.currency, intent.declared_at,
        )  # fmt: skip
        added = self._exec(
            f"INSERT INTO cbdc_torn ({_TORN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (wallet_id, counter, merchant_id, terminal_id) DO NOTHING",
            values,
        )
        return added > 0

    def cbdc_torn(self, wallet_id: str, counter: int) -> list[TornIntent]:
        rows = self._all(
            f"SELECT {_TORN_COLUMNS} FROM cbdc_torn WHERE wallet_id = ? AND counter = ? ORDER BY declared_at",
            (wallet_id, counter),
        )
        return [
            TornIntent(str(w), int(c), str(m), str(t), str(x), str(p), str(ch), int(a), int(cur), str(d))
            for w, c, m, t, x, p, ch, a, cur, d in rows
        ]
