"""The host store's tables and queries for QR payments: wallet accounts, payment codes, QR orders, refunds.

A part of :class:`simulator.host.store.HostStore` (a base class of it, as
:mod:`simulator.host.store_issuer` is): portable SQL through the store's own
helpers, inside the caller's transaction. The business rules are in
:mod:`simulator.host.wallets`; the tables are migration 9
(``simulator/host/storage/migrations/0009_wallets.sql``).

What makes the money safe with several host workers is here, in single
conditional statements that the database runs atomically whatever ran
before in the transaction:

- a debit is ``UPDATE ... SET balance = balance - ? WHERE balance >= ?``
  (and the table's ``CHECK (balance >= 0)``): a second debit that would
  overdraw changes nothing;
- a code is claimed by ``UPDATE ... SET order_id = ? WHERE order_id IS NULL``:
  of two workers claiming one code at once, PostgreSQL makes the second wait
  for the first's commit and then finds it taken (unique indexes back it:
  one order per code, one code per order);
- an order changes state only from the states its transition names
  (``WHERE state IN (...)``, :meth:`WalletTables.move_order`): a close and
  an app's payment of one order cannot both win;
- a refund is ``refunded = refunded + ? WHERE refunded + ? <= amount`` (and
  the table's ``CHECK (refunded <= amount)``).

Codes are kept as keyed digests (``HostStore.digest``), never in clear: a
payment code is a bearer credential while it is valid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

__all__ = ["QrOrder", "QrRefund", "WalletAccount", "WalletCode", "WalletTables"]

_MODE_KEY: Final = "wallet_mode"
_ORDER_COLUMNS: Final = (
    "order_id, merchant_id, terminal_id, reference, mode, state, reason, wallet, account, code_hash, amount, "
    "currency, refunded, batch, host_reference, created_at, updated_at, paid_at, expires_at"
)


@dataclass(frozen=True)
class WalletAccount:
    """A simulated wallet account: its wallet and its balance per currency (minor units)."""

    account: str
    wallet: str
    balances: dict[int, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "wallet": self.wallet,
            "balances": [{"currency": c, "balance": b} for c, b in sorted(self.balances.items())],
        }


@dataclass(frozen=True)
class WalletCode:
    """A payment code as the host keeps it (its digest, whose, until when, the order that used it)."""

    code_hash: str
    account: str
    wallet: str
    created_at: str
    expires_at: str
    order_id: str | None


@dataclass(frozen=True)
class QrOrder:
    """One QR order of a terminal: a consumer-presented code payment (``code``) or a merchant-presented order."""

    order_id: str
    merchant_id: str
    terminal_id: str
    reference: str
    mode: str  # "code" | "mpm"
    state: str
    reason: str | None
    wallet: str | None
    account: str | None
    code_hash: str | None
    amount: int
    currency: int
    refunded: int
    batch: int | None
    host_reference: str
    created_at: str
    updated_at: str
    paid_at: str | None
    expires_at: str | None

    def to_json(self) -> dict[str, Any]:
        """For the operator (``posterm host wallet orders --json``): everything but the code's digest."""
        out = dict(self.__dict__)
        out.pop("code_hash")
        return out


@dataclass(frozen=True)
class QrRefund:
    """A refund of a QR order back to its wallet account."""

    merchant_id: str
    terminal_id: str
    refund_reference: str
    order_id: str
    amount: int
    currency: int
    wallet: str
    batch: int
    host_reference: str
    created_at: str


def _order(row: tuple[Any, ...]) -> QrOrder:
    values = list(row)
    for index in (10, 11, 12):
        values[index] = int(values[index])
    values[13] = None if values[13] is None else int(values[13])
    return QrOrder(*values)


class WalletTables:
    """The QR and wallet queries of :class:`~simulator.host.store.HostStore` (see the module docstring)."""

    if TYPE_CHECKING:

        def _one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None: ...
        def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...
        def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> int: ...
        def meta(self, key: str) -> str | None: ...
        def set_meta(self, key: str, value: str) -> None: ...

    # ------------------------------------------------------------------ accounts

    def wallet_accounts(self) -> list[WalletAccount]:
        """Every account with its balances, by name."""
        balances: dict[str, dict[int, int]] = {}
        for account, currency, balance in self._all("SELECT account, currency, balance FROM wallet_balances"):
            balances.setdefault(str(account), {})[int(currency)] = int(balance)
        rows = self._all("SELECT account, wallet FROM wallet_accounts ORDER BY account")
        return [WalletAccount(str(a), str(w), balances.get(str(a), {})) for a, w in rows]

    def wallet_account(self, account: str) -> WalletAccount | None:
        row = self._one("SELECT account, wallet FROM wallet_accounts WHERE account = ?", (account,))
        if row is None:
            return None
        rows = self._all("SELECT currency, balance FROM wallet_balances WHERE account = ?", (account,))
        return WalletAccount(str(row[0]), str(row[1]), {int(c): int(b) for c, b in rows})

    def add_wallet_account(self, account: str, wallet: str, at: str) -> bool:
        """A new account (False: the name is taken)."""
        sql = (
            "INSERT INTO wallet_accounts (account, wallet, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (account) DO NOTHING"
        )
        return self._exec(sql, (account, wallet, at)) == 1

    def credit(self, account: str, currency: int, amount: int, at: str) -> None:
        """Add ``amount`` to the account's balance in ``currency`` (a top-up, a refund, a reversal)."""
        self._exec(
            "INSERT INTO wallet_balances (account, currency, balance, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (account, currency) DO UPDATE SET balance = wallet_balances.balance + excluded.balance, "
            "updated_at = excluded.updated_at",
            (account, currency, amount, at),
        )

    def debit(self, account: str, currency: int, amount: int, at: str) -> bool:
        """Take ``amount`` from the balance if it covers it (one statement); whether it did."""
        return (
            self._exec(
                "UPDATE wallet_balances SET balance = balance - ?, updated_at = ? "
                "WHERE account = ? AND currency = ? AND balance >= ?",
                (amount, at, account, currency, amount),
            )
            == 1
        )

    # ------------------------------------------------------------------ steering

    def wallet_mode(self) -> str:
        """How the wallets answer a code payment: ``normal``, ``confirm`` or ``decline``."""
        return self.meta(_MODE_KEY) or "normal"

    def set_wallet_mode(self, mode: str) -> None:
        self.set_meta(_MODE_KEY, mode)

    # ------------------------------------------------------------------ codes

    def add_wallet_code(self, code_hash: str, account: str, wallet: str, created_at: str, expires_at: str) -> bool:
        """A new code (False: its digest exists already, make another)."""
        return (
            self._exec(
                "INSERT INTO wallet_codes (code_hash, account, wallet, created_at, expires_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (code_hash) DO NOTHING",
                (code_hash, account, wallet, created_at, expires_at),
            )
            == 1
        )

    def wallet_code(self, code_hash: str) -> WalletCode | None:
        row = self._one(
            "SELECT code_hash, account, wallet, created_at, expires_at, order_id FROM wallet_codes WHERE code_hash = ?",
            (code_hash,),
        )
        if row is None:
            return None
        code_hash, account, wallet, created_at, expires_at, order_id = row
        used_by = None if order_id is None else str(order_id)
        return WalletCode(str(code_hash), str(account), str(wallet), str(created_at), str(expires_at), used_by)

    def claim_code(self, code_hash: str, order_id: str) -> bool:
        """Mark the code used by ``order_id`` if no order used it (one statement); whether this order got it."""
        sql = "UPDATE wallet_codes SET order_id = ? WHERE code_hash = ? AND order_id IS NULL"
        return self._exec(sql, (order_id, code_hash)) == 1

    # ------------------------------------------------------------------ orders

    def add_order(self, order: QrOrder) -> None:
        names = _ORDER_COLUMNS.split(", ")
        self._exec(
            f"INSERT INTO qr_orders ({_ORDER_COLUMNS}) VALUES ({', '.join('?' for _ in names)})",
            tuple(getattr(order, n) for n in names),
        )

    def qr_order(self, order_id: str) -> QrOrder | None:
        row = self._one(f"SELECT {_ORDER_COLUMNS} FROM qr_orders WHERE order_id = ?", (order_id,))
        return None if row is None else _order(row)

    def qr_order_by_reference(self, merchant_id: str, terminal_id: str, reference: str) -> QrOrder | None:
        row = self._one(
            f"SELECT {_ORDER_COLUMNS} FROM qr_orders WHERE merchant_id = ? AND terminal_id = ? AND reference = ?",
            (merchant_id, terminal_id, reference),
        )
        return None if row is None else _order(row)

    def qr_orders_by_label(self, terminal_id: str, reference: str) -> list[QrOrder]:
        """The merchant-presented orders with this reference of any terminal with this id (a code's 62/05, 62/07)."""
        rows = self._all(
            f"SELECT {_ORDER_COLUMNS} FROM qr_orders WHERE terminal_id = ? AND reference = ? AND mode = 'mpm'",
            (terminal_id, reference),
        )
        return [_order(r) for r in rows]

    def qr_orders(self, merchant_id: str | None = None, terminal_id: str | None = None) -> list[QrOrder]:
        """The orders, oldest first: all, or a terminal's."""
        conditions = [(n, v) for n, v in (("merchant_id", merchant_id), ("terminal_id", terminal_id)) if v is not None]
        where = " AND ".join(f"{n} = ?" for n, _ in conditions)
        sql = f"SELECT {_ORDER_COLUMNS} FROM qr_orders" + (f" WHERE {where}" if where else "") + " ORDER BY created_at"
        return [_order(r) for r in self._all(sql, tuple(v for _, v in conditions))]

    def move_order(self, order_id: str, before: Iterable[str], after: str, at: str, **sets: Any) -> bool:
        """Move the order to ``after`` if it is in one of ``before`` (one statement), setting ``sets`` too.

        Whether it moved: False means another request moved it first (read it again).
        """
        states = tuple(before)
        columns = sorted(sets)
        assignments = "".join(f", {c} = ?" for c in columns)
        sql = (
            f"UPDATE qr_orders SET state = ?, updated_at = ?{assignments} "
            f"WHERE order_id = ? AND state IN ({', '.join('?' for _ in states)})"
        )
        args = (after, at, *(sets[c] for c in columns), order_id, *states)
        return self._exec(sql, args) == 1

    def add_to_refunded(self, order_id: str, amount: int, at: str) -> bool:
        """Count ``amount`` more as refunded if the paid order still covers it (one statement); whether it did."""
        return (
            self._exec(
                "UPDATE qr_orders SET refunded = refunded + ?, updated_at = ? "
                "WHERE order_id = ? AND state = 'paid' AND refunded + ? <= amount",
                (amount, at, order_id, amount),
            )
            == 1
        )

    # ------------------------------------------------------------------ refunds

    def add_qr_refund(self, refund: QrRefund) -> None:
        names = list(refund.__dict__)
        self._exec(
            f"INSERT INTO qr_refunds ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
            tuple(refund.__dict__.values()),
        )

    def qr_refund(self, merchant_id: str, terminal_id: str, refund_reference: str) -> QrRefund | None:
        row = self._one(
            "SELECT merchant_id, terminal_id, refund_reference, order_id, amount, currency, wallet, batch, "
            "host_reference, created_at FROM qr_refunds WHERE merchant_id = ? AND terminal_id = ? "
            "AND refund_reference = ?",
            (merchant_id, terminal_id, refund_reference),
        )
        if row is None:
            return None
        values = list(row)
        for index in (4, 5, 7):
            values[index] = int(values[index])
        return QrRefund(*values)

    # ------------------------------------------------------------------ settlement

    def qr_totals(self, merchant_id: str, terminal_id: str, batch: int) -> dict[tuple[int, str, str], tuple[int, int]]:
        """(currency, kind, scheme ``qr-<wallet>``) -> (count, amount) of the batch's paid orders and refunds."""
        out: dict[tuple[int, str, str], tuple[int, int]] = {}
        sales = self._all(
            "SELECT currency, wallet, COUNT(*), SUM(amount) FROM qr_orders WHERE merchant_id = ? AND terminal_id = ? "
            "AND batch = ? AND state = 'paid' GROUP BY currency, wallet",
            (merchant_id, terminal_id, batch),
        )
        refunds = self._all(
            "SELECT currency, wallet, COUNT(*), SUM(amount) FROM qr_refunds WHERE merchant_id = ? AND terminal_id = ? "
            "AND batch = ? GROUP BY currency, wallet",
            (merchant_id, terminal_id, batch),
        )
        for kind, rows in (("sale", sales), ("refund", refunds)):
            for currency, wallet, count, amount in rows:
                out[(int(currency), kind, f"qr-{wallet}")] = (int(count), int(amount))
        return out
