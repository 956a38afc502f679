"""The journal's integrity: the hash chain, the seals on the tables' rows, verification, the purge.

Two kinds of protection, both keyed by the keystore (HMAC-SHA256 under the
``journal`` key), so that whoever can edit the SQLite file but does not hold
the terminal's keys cannot make an edit that goes unseen:

- the journal is a hash chain: each row's hash covers the previous hash and
  the row, and the head is sealed, so an edited, inserted or removed row, or a
  cut-off tail, shows;
- every row of the tables that carry money or state (``transactions``,
  ``reversals``, ``batches``) has a ``seal``: a MAC over the row's own columns
  that matter (amounts, states, keys, totals), written in the same commit as
  the row.  ``UPDATE transactions SET amount=1`` leaves a row whose seal does
  not match, and :func:`verify` names it.

Retention purges a prefix of the journal; the hash of the last purged row is
kept, sealed, as the anchor that verification starts from.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from terminal.keystore import Keystore

__all__ = [
    "GENESIS",
    "SEALED_COLUMNS",
    "Chain",
    "PurgeReport",
    "VerifyReport",
    "canonical",
    "purge",
    "verify",
]

GENESIS = bytes(32)

# The columns each table's seal covers, in order.  Not covered: bookkeeping of sending
# (attempt counters, next attempt, last error), which changes without a state change,
# and the encrypted blobs, which AES-GCM authenticates with their row's id.
SEALED_COLUMNS: dict[str, tuple[str, ...]] = {
    "transactions": (
        "txn_id", "kind", "state", "amount", "currency", "scheme", "offline_behavior", "batch_id",
        "created_at", "updated_at", "masked_pan", "pan_token", "original_txn_id", "details",
        "saf_id", "saf_kind", "saf_key", "saf_status", "saf_response_code",
    ),
    "reversals": ("id", "txn_id", "idempotency_key", "amount", "currency", "reason", "created_at", "status"),
    "batches": ("batch_id", "opened_at", "closing_at", "closed_at", "in_balance", "host_reference", "totals"),
    "cbdc_counters": ("wallet_id", "counter", "seen_at"),
}  # fmt: skip

# the primary key; what a person knows the row by; what the row is called in a problem
_ROW_ID = {"transactions": "txn_id", "reversals": "id", "batches": "batch_id", "cbdc_counters": "wallet_id"}
_NAMED_BY = {"transactions": "txn_id", "reversals": "txn_id", "batches": "batch_id", "cbdc_counters": "wallet_id"}
_WHAT = {
    "transactions": "transaction",
    "reversals": "reversal of",
    "batches": "batch",
    "cbdc_counters": "counter of wallet",
}


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class PurgeReport:
    journal_rows: int
    transactions: int
    batches: int


@dataclass
class VerifyReport:
    rows: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


class Chain:
    """Appends to the journal and seals rows; keeps the head between commits (see Store._write)."""

    def __init__(self, keystore: Keystore) -> None:
        self._keystore = keystore
        self.head: tuple[int, bytes] | None = None

    def digest(self, prev: bytes, seq: int, txn_id: str, at: str, event: str, state: str, data: str) -> bytes:
        body = canonical([seq, txn_id, at, event, state, data]).encode()
        return self._keystore.mac(prev + body, "journal")

    def head_seal(self, seq: int, digest: bytes) -> str:
        return self._keystore.mac(f"head:{seq}:{digest.hex()}".encode(), "journal").hex()

    def anchor_seal(self, seq: int, digest: bytes) -> str:
        return self._keystore.mac(f"anchor:{seq}:{digest.hex()}".encode(), "journal").hex()

    def row_seal(self, table: str, values: Sequence[Any]) -> bytes:
        """The seal of a row of ``table``: ``values`` in the order of :data:`SEALED_COLUMNS`."""
        return self._keystore.mac(f"row:{table}:".encode() + canonical(list(values)).encode(), "journal")

    def seal_row(self, cur: sqlite3.Cursor, table: str, key: Any) -> None:
        """Compute and store the seal of one row as it now is (within the caller's commit)."""
        columns = SEALED_COLUMNS[table]
        where = f"WHERE {_ROW_ID[table]}=?"
        row = cur.execute(f"SELECT {', '.join(columns)} FROM {table} {where}", (key,)).fetchone()
        if row is None:
            raise KeyError(f"{table} {key}")
        cur.execute(f"UPDATE {table} SET seal=? {where}", (self.row_seal(table, row), key))

    def append(
        self,
        cur: sqlite3.Cursor,
        txn_id: str,
        at: str,
        event: str,
        state: str,
        data: Mapping[str, Any],
        *,
        set_meta: Any,
        seal: bool = True,
    ) -> int:
        """Append one row to the chain; ``seal=False`` when another row follows in the same commit."""
        if self.head is None:
            last = cur.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
            self.head = (0, GENESIS) if last is None else (int(last[0]), bytes(last[1]))
        seq, prev = self.head[0] + 1, self.head[1]
        text = canonical(dict(data))
        digest = self.digest(prev, seq, txn_id, at, event, state, text)
        cur.execute(
            "INSERT INTO journal(seq, txn_id, at, event, state, data, prev_hash, hash) VALUES(?,?,?,?,?,?,?,?)",
            (seq, txn_id, at, event, state, text, prev, digest),
        )
        self.head = (seq, digest)
        if seal:
            set_meta(cur, "journal_head", self.head_seal(seq, digest))
        return seq


def _meta(cur: sqlite3.Cursor, key: str) -> str | None:
    row = cur.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _verify_chain(cur: sqlite3.Cursor, chain: Chain, problems: list[str]) -> tuple[int, dict[str, str]]:
    prev = GENESIS
    expected_seq = 1
    count = 0
    last_state: dict[str, str] = {}
    anchor = _meta(cur, "journal_anchor")
    if anchor is not None:  # the rows up to the anchor were purged by the retention policy
        try:
            mark = json.loads(anchor)
            seq, digest = int(mark["seq"]), bytes.fromhex(mark["hash"])
        except (ValueError, KeyError, TypeError):
            problems.append("the purge anchor is unreadable (edited)")
        else:
            if mark.get("seal") != chain.anchor_seal(seq, digest):
                problems.append("the purge anchor is not sealed by this terminal (edited)")
            prev, expected_seq = digest, seq + 1
    for seq, txn_id, at, event, state, data, prev_hash, digest in cur.execute(
        "SELECT seq, txn_id, at, event, state, data, prev_hash, hash FROM journal ORDER BY seq"
    ):
        count += 1
        if seq != expected_seq:
            problems.append(f"row {expected_seq}" + (f" to {seq - 1}" if seq - 1 > expected_seq else "") + " missing")
        if bytes(prev_hash) != prev:
            problems.append(f"row {seq}: does not follow the row before it")
        if chain.digest(bytes(prev_hash), seq, txn_id, at, event, state, data) != bytes(digest):
            problems.append(f"row {seq}: edited (its hash does not match its content)")
        prev = bytes(digest)
        expected_seq = seq + 1
        last_state[txn_id] = state
    head = _meta(cur, "journal_head")
    if count and head != chain.head_seal(expected_seq - 1, prev):
        problems.append(
            f"the journal ends at row {expected_seq - 1} but was sealed at another row "
            "(rows removed from the end, or the seal edited)"
        )
    if not count and head is not None:
        problems.append("the journal is empty but was sealed: rows removed")
    return count, last_state


def _verify_rows(cur: sqlite3.Cursor, chain: Chain, table: str, problems: list[str]) -> None:
    columns = SEALED_COLUMNS[table]
    key = _NAMED_BY[table]
    for row in cur.execute(f"SELECT {', '.join(columns)}, seal FROM {table} ORDER BY {columns[0]}"):
        values, seal = row[:-1], row[-1]
        if seal is None or bytes(seal) != chain.row_seal(table, values):
            name = values[columns.index(key)]
            problems.append(f"{_WHAT[table]} {name}: row edited outside posterm (its seal does not match its content)")


def verify(conn: sqlite3.Connection, chain: Chain) -> VerifyReport:
    """Walk the chain and check every sealed row: any edit, insertion or removal is a problem."""
    problems: list[str] = []
    count = 0
    cur = conn.cursor()
    try:
        count, last_state = _verify_chain(cur, chain, problems)
        in_table: set[str] = set()
        for txn_id, state in cur.execute("SELECT txn_id, state FROM transactions").fetchall():
            in_table.add(txn_id)
            if last_state.get(txn_id) != state:
                problems.append(
                    f"transaction {txn_id}: state {state} is not what the journal says "
                    f"({last_state.get(txn_id, 'no journal rows')})"
                )
        for txn_id in sorted(set(last_state) - in_table):
            if not txn_id.startswith("batch-") and txn_id != "journal":
                problems.append(f"transaction {txn_id}: in the journal but its row is missing (deleted)")
        for table in SEALED_COLUMNS:
            _verify_rows(cur, chain, table, problems)
    except sqlite3.Error as exc:
        problems.append(f"cannot read the journal: {exc}")
    finally:
        cur.close()
    return VerifyReport(count, problems)


def purge(cur: sqlite3.Cursor, chain: Chain, cutoff: str, now: str, *, set_meta: Any) -> PurgeReport:
    """Delete what the retention policy no longer requires: settled records made before ``cutoff``.

    A transaction goes only when its batch is closed, nothing about it is
    pending (no queued SAF entry or reversal, no unfinished state) and every
    one of its journal rows lies in the purged prefix of the journal.  The
    prefix ends before the first row that must stay (anything at or after
    ``cutoff``, anything of a transaction that stays), so that the journal
    keeps a gapless chain; the last purged row's hash is kept, sealed, as the
    anchor that :func:`verify` starts from, and the purge itself is journalled.
    Runs inside the caller's write transaction.
    """
    keep = (
        "SELECT txn_id FROM transactions t WHERE t.created_at >= :cutoff "
        "OR t.state IN ('started', 'authorising', 'reversal_pending', 'void_pending') "
        "OR t.saf_status = 'queued' "
        "OR t.batch_id NOT IN (SELECT batch_id FROM batches WHERE closed_at IS NOT NULL) "
        "OR t.txn_id IN (SELECT txn_id FROM reversals WHERE status = 'queued')"
    )
    row = cur.execute(
        f"SELECT MIN(seq) FROM journal WHERE at >= :cutoff OR txn_id IN ({keep}) "
        "OR (txn_id LIKE 'batch-%' AND CAST(SUBSTR(txn_id, 7) AS INTEGER) IN "
        "(SELECT batch_id FROM batches WHERE closed_at IS NULL))",
        {"cutoff": cutoff},
    ).fetchone()
    if row[0] is not None:
        first_kept = int(row[0])
    else:
        first_kept = int(cur.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0]) + 1
    last = cur.execute(
        "SELECT seq, hash FROM journal WHERE seq < ? ORDER BY seq DESC LIMIT 1", (first_kept,)
    ).fetchone()
    if last is None:
        return PurgeReport(0, 0, 0)
    through, digest = int(last[0]), bytes(last[1])
    gone = [
        r[0]
        for r in cur.execute(
            "SELECT txn_id FROM journal GROUP BY txn_id HAVING MAX(seq) <= ? AND txn_id NOT LIKE 'batch-%' "
            "AND txn_id != 'journal'",
            (through,),
        )
    ]
    cur.executemany("DELETE FROM transactions WHERE txn_id=?", [(t,) for t in gone])
    cur.executemany("DELETE FROM reversals WHERE txn_id=?", [(t,) for t in gone])
    cur.executemany("DELETE FROM receipts WHERE txn_id=?", [(t,) for t in gone])
    cur.executemany("DELETE FROM requests WHERE txn_id=?", [(t,) for t in gone])
    batches = cur.execute(
        "DELETE FROM batches WHERE closed_at IS NOT NULL AND closed_at < ? "
        "AND batch_id NOT IN (SELECT batch_id FROM transactions)",
        (cutoff,),
    ).rowcount
    # The append-only triggers stand aside for this one statement, in this one commit.
    cur.execute("DROP TRIGGER journal_no_delete")
    rows = cur.execute("DELETE FROM journal WHERE seq <= ?", (through,)).rowcount
    cur.execute(
        "CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal "
        "BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END"
    )
    anchor = {"seq": through, "hash": digest.hex(), "seal": chain.anchor_seal(through, digest)}
    set_meta(cur, "journal_anchor", canonical(anchor))
    chain.append(
        cur,
        "journal",
        now,
        "journal_purged",
        "purged",
        {"through_seq": through, "cutoff": cutoff, "transactions": len(gone), "batches": batches},
        set_meta=set_meta,
    )
    return PurgeReport(rows, len(gone), batches)
