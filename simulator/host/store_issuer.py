"""The host store's tables and queries for the acquirer's checks and for parameters per terminal.

A part of :class:`simulator.host.store.HostStore` (a base class of it, kept
apart so that the store's module stays readable): its SQL is the store's, as
portable between SQLite and PostgreSQL, through the store's own helpers.

- the approved records of a transaction, by (merchant, terminal, ``txn_id``):
  the duplicate check, a refund's original, a reversal's target;
- what was refunded against a sale, and the merchants' allowances for
  refunds that no sale of theirs covers (:mod:`simulator.host.rules`);
- each terminal's own part of the parameters and the versions served to it
  (:mod:`simulator.host.params`);
- the wrong PIN tries of each card, by the host's card token
  (:mod:`simulator.host.pin_check`; migration 8, ``0008_pin_tries.sql``).

Every lookup of a transaction names the merchant and the terminal: a
terminal's ``txn_id`` means nothing under another merchant or terminal.

The tables are migration 4 (``simulator/host/storage/migrations/0004_issuer.sql``);
the one constraint that older data may break is made at open when it can be
(:data:`OPTIONAL_CONSTRAINTS`). The checks that read these rows and then write
(:mod:`simulator.host.rules`) take the store's locks first, in the
acquirer's transaction: on PostgreSQL workers run transactions side by side.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

__all__ = [
    "ALLOWANCE_NOTES",
    "DEFAULT_MERCHANT",
    "OPTIONAL_CONSTRAINTS",
    "IssuerTables",
    "OptionalConstraint",
    "Original",
    "Served",
]


@dataclass(frozen=True)
class OptionalConstraint:
    """A constraint that data of an older host may already break: made at open when the data allows.

    ``violations``: a query that finds a row when the data breaks it (then the
    statement is not tried, and the acquirer's own checks stand alone).
    """

    name: str
    statement: str
    violations: str


#: Constraints that an older database may already break (a transaction approved twice, before issue 11):
#: made when they can be (:meth:`simulator.host.store.HostStore._make_optional_constraints`), else the
#: acquirer's own checks stand alone on that database. The one DDL kept out of the numbered migrations
#: (``simulator/host/storage/migrations/``), which cannot depend on the data; portable SQL.
OPTIONAL_CONSTRAINTS: Final = (
    OptionalConstraint(
        "records_approved_once",
        "CREATE UNIQUE INDEX IF NOT EXISTS records_approved_once ON records (merchant_id, terminal_id, txn_id) "
        "WHERE approved = 1 AND method <> 'reverse'",
        "SELECT 1 FROM records WHERE approved = 1 AND method <> 'reverse' "
        "GROUP BY merchant_id, terminal_id, txn_id HAVING COUNT(*) > 1 LIMIT 1",
    ),
)

#: The merchant id of the default refund allowance (of every merchant without one of its own).
DEFAULT_MERCHANT: Final = "*"
#: The ``note`` of an approved refund that used its merchant's allowance (no sale of theirs covers it).
ALLOWANCE_NOTES: Final = ("unreferenced_refund", "refund_to_other_card")
_REFUND_KINDS: Final = ("refund", "offline_refund")


@dataclass(frozen=True)
class Original:
    """An approved authorisation or advice, as the acquirer's checks need it."""

    txn_id: str
    method: str
    kind: str
    amount: int
    currency: int
    card_token: str  # the host's token of its card ("" when it had none)
    reversed: bool

    @property
    def is_sale(self) -> bool:
        return self.kind not in _REFUND_KINDS


@dataclass(frozen=True)
class Served:
    """A parameters version served to one terminal: what it was made of (``basis``) and the document."""

    version: int
    basis: str
    issued_at: str
    document: bytes


class IssuerTables:
    """The queries; :class:`~simulator.host.store.HostStore` provides the connection helpers."""

    if TYPE_CHECKING:  # provided by HostStore (declared here for the type checker)

        def _one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None: ...

        def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...

        def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> int: ...

        def transaction(self) -> contextlib.AbstractContextManager[None]: ...

        def lock(self, *name: str) -> None: ...

    # ------------------------------------------------------------------ transactions

    def approved_records(self, merchant_id: str, terminal_id: str, txn_id: str) -> list[Original]:
        """The approved authorisations and advices (reversed or not) of this transaction, oldest first."""
        rows = self._all(
            "SELECT txn_id, method, kind, amount, currency, pan_token, reversed FROM records "
            "WHERE merchant_id = ? AND terminal_id = ? AND txn_id = ? AND method <> 'reverse' AND approved = 1 "
            "ORDER BY seq",
            (merchant_id, terminal_id, txn_id),
        )
        return [Original(str(t), str(m), str(k), int(a), int(c), str(p), bool(r)) for t, m, k, a, c, p, r in rows]

    def proof_approved(self, proof: str) -> bool:
        """Whether an approved, not reversed authorisation or advice (of any terminal) carried ``proof``."""
        row = self._one(
            "SELECT 1 FROM records WHERE proof = ? AND approved = 1 AND reversed = 0 AND method <> 'reverse' LIMIT 1",
            (proof,),
        )
        return row is not None

    def refunds_against(self, merchant_id: str, terminal_id: str, original_txn_id: str) -> tuple[int, int]:
        """(count, amount) of the approved, not reversed refunds against a sale."""
        row = self._one(
            "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM records WHERE merchant_id = ? AND terminal_id = ? "
            "AND original_txn_id = ? AND method <> 'reverse' AND approved = 1 AND reversed = 0 "
            "AND kind IN ('refund', 'offline_refund')",
            (merchant_id, terminal_id, original_txn_id),
        )
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    # ------------------------------------------------------------------ refund allowances

    def refund_allowance(self, merchant_id: str) -> int:
        """The merchant's allowance for refunds no sale of theirs covers, per currency per 24 h (0: none).

        A merchant without an allowance of its own has the default one (merchant ``*``), if any.
        """
        row = self._one(
            "SELECT daily_amount FROM refund_allowances WHERE merchant_id = ? OR merchant_id = ? "
            "ORDER BY CASE WHEN merchant_id = ? THEN 1 ELSE 0 END LIMIT 1",
            (merchant_id, DEFAULT_MERCHANT, DEFAULT_MERCHANT),
        )
        return 0 if row is None else int(row[0])

    def set_refund_allowance(self, merchant_id: str, daily_amount: int, at: str) -> None:
        """Set a merchant's allowance (``*``: the default of every merchant without one); 0 is none."""
        self._exec(
            "INSERT INTO refund_allowances (merchant_id, daily_amount, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (merchant_id) DO UPDATE SET daily_amount = excluded.daily_amount, "
            "updated_at = excluded.updated_at",
            (merchant_id, max(0, daily_amount), at),
        )

    def refund_allowances(self) -> dict[str, int]:
        rows = self._all("SELECT merchant_id, daily_amount FROM refund_allowances ORDER BY merchant_id")
        return {str(m): int(a) for m, a in rows}

    def allowance_used(self, merchant_id: str, currency: int, since: str) -> int:
        """What the merchant's approved, not reversed allowance refunds in ``currency`` add up to since ``since``."""
        row = self._one(
            "SELECT COALESCE(SUM(amount), 0) FROM records WHERE merchant_id = ? AND currency = ? AND created_at >= ? "
            "AND method <> 'reverse' AND approved = 1 AND reversed = 0 AND note IN (?, ?)",
            (merchant_id, currency, since, *ALLOWANCE_NOTES),
        )
        return 0 if row is None else int(row[0])

    # ------------------------------------------------------------------ PIN tries

    def wrong_pin_tries(self, pan_token: str) -> int:
        """The card's wrong PIN tries since its last right PIN (or the operator's reset)."""
        row = self._one("SELECT wrong FROM pin_tries WHERE pan_token = ?", (pan_token,))
        return 0 if row is None else int(row[0])

    def count_wrong_pin(self, pan_token: str, at: str) -> int:
        """One more wrong PIN try of the card; the count now."""
        row = self._one(
            "INSERT INTO pin_tries (pan_token, wrong, updated_at) VALUES (?, 1, ?) ON CONFLICT (pan_token) "
            "DO UPDATE SET wrong = pin_tries.wrong + 1, updated_at = excluded.updated_at RETURNING wrong",
            (pan_token, at),
        )
        assert row is not None  # RETURNING gives the row written
        return int(row[0])

    def reset_pin_tries(self, pan_token: str) -> bool:
        """Forget the card's wrong PIN tries (a right PIN, or the operator); whether it had any."""
        return self._exec("DELETE FROM pin_tries WHERE pan_token = ?", (pan_token,)) > 0

    def pin_tries(self) -> dict[str, int]:
        """Card token -> wrong PIN tries, of every card that has some."""
        return {str(t): int(w) for t, w in self._all("SELECT pan_token, wrong FROM pin_tries ORDER BY pan_token")}

    # ------------------------------------------------------------------ parameters per terminal

    def terminal_part(self, merchant_id: str, terminal_id: str) -> dict[str, Any]:
        """The operator's own part of a terminal's parameters (config keys; empty when none was set)."""
        row = self._one(
            "SELECT own FROM terminal_parameters WHERE merchant_id = ? AND terminal_id = ?", (merchant_id, terminal_id)
        )
        if row is None:
            return {}
        own = json.loads(row[0])
        return own if isinstance(own, dict) else {}

    def set_terminal_part(self, merchant_id: str, terminal_id: str, own: Mapping[str, Any], at: str) -> None:
        self._exec(
            "INSERT INTO terminal_parameters (merchant_id, terminal_id, own, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (merchant_id, terminal_id) DO UPDATE SET own = excluded.own, updated_at = excluded.updated_at",
            (merchant_id, terminal_id, json.dumps(dict(own), sort_keys=True), at),
        )

    def terminal_parts(self) -> list[tuple[str, str, dict[str, Any]]]:
        sql = "SELECT merchant_id, terminal_id, own FROM terminal_parameters ORDER BY merchant_id, terminal_id"
        rows = self._all(sql)
        return [(str(m), str(t), json.loads(o)) for m, t, o in rows]

    def served(self, merchant_id: str, terminal_id: str, version: int | None = None) -> Served | None:
        """The parameters version ``version`` served to the terminal (default: its latest)."""
        if version is None:
            row = self._one(
                "SELECT version, basis, issued_at, document FROM served_parameters WHERE merchant_id = ? "
                "AND terminal_id = ? ORDER BY version DESC LIMIT 1",
                (merchant_id, terminal_id),
            )
        else:
            row = self._one(
                "SELECT version, basis, issued_at, document FROM served_parameters WHERE merchant_id = ? "
                "AND terminal_id = ? AND version = ?",
                (merchant_id, terminal_id, version),
            )
        return None if row is None else Served(int(row[0]), str(row[1]), str(row[2]), bytes(row[3]))

    def highest_served(self, terminal_id: str) -> int:
        """The highest version served to this terminal id under any merchant (0: none)."""
        row = self._one("SELECT MAX(version) FROM served_parameters WHERE terminal_id = ?", (terminal_id,))
        return 0 if row is None or row[0] is None else int(row[0])

    def add_served(self, merchant_id: str, terminal_id: str, served: Served) -> None:
        """Keep a version served (another process that made the same version first wins: it is the same)."""
        self._exec(
            "INSERT INTO served_parameters (merchant_id, terminal_id, version, basis, issued_at, document) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (merchant_id, terminal_id, version) DO NOTHING",
            (merchant_id, terminal_id, served.version, served.basis, served.issued_at, served.document),
        )
