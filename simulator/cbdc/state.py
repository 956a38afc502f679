"""Wallet state kept across processes: one small SQLite file, ``<state dir>/wallets.sqlite``.

A real wallet's counter and balance live in its secure element: they do not
reset when a terminal restarts, and the same wallet tapped at two terminals is
one wallet.  So the state is the simulator's, not a terminal's: the state
directory is, in order,

1. the one given explicitly (``sim:card=cbdc-anon?state=DIR``,
   ``posterm sim card|wallet --state-dir DIR``);
2. ``$POSTERM_SIM_STATE``;
3. the platform's user state directory for posterm, ``sim`` under it
   (``~/.local/state/posterm/sim`` on Linux).

State is kept per *profile* (so the two clones, one identity, have two
states), created from the profile on first use (opening balance, counter 0,
then the profile's history signed).  Each command runs in its own
``BEGIN IMMEDIATE`` transaction, so two processes serving the same wallet see
one counter.  The wallet keeps its last :data:`KEEP_RECORDS` records.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from simulator.cbdc import records
from simulator.cbdc.profiles import WalletProfile
from simulator.cbdc.sm2 import sm3

__all__ = [
    "DB_NAME",
    "KEEP_RECORDS",
    "STATE_ENV",
    "WalletState",
    "WalletStateError",
    "WalletStore",
    "state_dir",
]

STATE_ENV = "POSTERM_SIM_STATE"
DB_NAME = "wallets.sqlite"
KEEP_RECORDS = 16
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS wallet (
        profile TEXT PRIMARY KEY,
        wallet_id TEXT NOT NULL,
        counter INTEGER NOT NULL,
        last_hash BLOB NOT NULL,
        balance INTEGER NOT NULL,
        spent_day TEXT NOT NULL,
        spent_today INTEGER NOT NULL,
        payments INTEGER NOT NULL,
        created TEXT NOT NULL,
        updated TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS record (
        profile TEXT NOT NULL,
        counter INTEGER NOT NULL,
        raw BLOB NOT NULL,
        PRIMARY KEY (profile, counter))""",
)


class WalletStateError(Exception):
    """The state directory or file cannot be used; the message says which and why."""


def state_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The state directory by the rule of the module docstring."""
    if explicit is not None and str(explicit):
        return Path(explicit)
    env = os.environ.get(STATE_ENV)
    if env:
        return Path(env)
    from platformdirs import user_state_dir

    return Path(user_state_dir("posterm", appauthor=False)) / "sim"


@dataclass
class WalletState:
    """What the wallet's secure element holds (besides its records)."""

    counter: int
    last_hash: bytes
    balance: int
    spent_day: str  # YYYYMMDD of the requests counted in spent_today
    spent_today: int
    payments: int  # PAY commands that debited (informative)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class WalletStore:
    """The wallets' state file in ``directory`` (created, mode 0700, when first written)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = state_dir(directory)
        self.path = self.directory / DB_NAME

    # -- connections ------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        try:
            if write:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            elif not self.path.is_file():
                raise FileNotFoundError(self.path)
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise WalletStateError(f"wallet state {self.path} cannot be used: {exc.strerror or exc}") from None
        except sqlite3.Error as exc:
            raise WalletStateError(f"wallet state {self.path} cannot be opened: {exc}") from None
        try:
            yield db
        except sqlite3.Error as exc:
            raise WalletStateError(f"wallet state {self.path}: {exc}") from None
        finally:
            db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction, committed when the block ends without an exception."""
        with self._connect(write=True) as db:
            try:
                db.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    db.execute(statement)
            except sqlite3.Error as exc:
                raise WalletStateError(f"wallet state {self.path}: {exc}") from None
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- in a transaction -------------------------------------------------------------------------------------

    def load(self, db: sqlite3.Connection, profile: WalletProfile) -> WalletState:
        """The wallet's state, created from its profile (and its history signed) when it has none yet."""
        row = db.execute(
            "SELECT counter, last_hash, balance, spent_day, spent_today, payments FROM wallet WHERE profile = ?",
            (profile.name,),
        ).fetchone()
        if row is not None:
            return WalletState(int(row[0]), bytes(row[1]), int(row[2]), str(row[3]), int(row[4]), int(row[5]))
        state = WalletState(0, records.ZERO_HASH, profile.keys.opening_balance, "", 0, 0)
        db.execute(
            "INSERT INTO wallet (profile, wallet_id, counter, last_hash, balance, spent_day, spent_today, payments,"
            " created, updated) VALUES (?, ?, 0, ?, ?, '', 0, 0, ?, ?)",
            (profile.name, profile.keys.wallet_id.hex().upper(), state.last_hash, state.balance, _now(), _now()),
        )
        for entry in profile.history:
            request = records.PaymentRequest(
                amount=entry.amount,
                currency=profile.currency,
                merchant=entry.merchant.encode("ascii"),
                terminal=entry.terminal.encode("ascii"),
                challenge=sm3(b"history" + profile.keys.wallet_id + entry.date_time.isoformat().encode())[:16],
                date_time=bytes.fromhex(entry.date_time.strftime("%Y%m%d%H%M%S")),
            )
            record = records.build_record(profile.keys, state.counter + 1, request, state.last_hash)
            state = WalletState(
                state.counter + 1, records.record_hash(record), state.balance - entry.amount,
                request.day,
                state.spent_today + entry.amount if request.day == state.spent_day else entry.amount,
                state.payments + 1,
            )
            self.save(db, profile, state, record)
        return state

    def save(self, db: sqlite3.Connection, profile: WalletProfile, state: WalletState, record: bytes | None) -> None:
        """Write ``state``; ``record`` (if any) joins the kept records, the oldest beyond the last 16 go."""
        db.execute(
            "UPDATE wallet SET counter = ?, last_hash = ?, balance = ?, spent_day = ?, spent_today = ?, payments = ?,"
            " updated = ? WHERE profile = ?",
            (state.counter, state.last_hash, state.balance, state.spent_day, state.spent_today, state.payments,
             _now(), profile.name),
        )
        if record is not None:
            counter = records.record_counter(record)
            db.execute(
                "INSERT INTO record (profile, counter, raw) VALUES (?, ?, ?)"
                " ON CONFLICT (profile, counter) DO UPDATE SET raw = excluded.raw",
                (profile.name, counter, record),
            )
            db.execute(
                "DELETE FROM record WHERE profile = ? AND counter <= ?", (profile.name, counter - KEEP_RECORDS)
            )

    @staticmethod
    def record(db: sqlite3.Connection, profile: WalletProfile, counter: int | None) -> bytes | None:
        """The kept record with ``counter`` (None: the one of the wallet's current counter)."""
        if counter is None:
            found = db.execute(
                "SELECT r.raw FROM record r JOIN wallet w ON w.profile = r.profile AND w.counter = r.counter"
                " WHERE r.profile = ?",
                (profile.name,),
            ).fetchone()
        else:
            found = db.execute(
                "SELECT raw FROM record WHERE profile = ? AND counter = ?", (profile.name, counter)
            ).fetchone()
        return None if found is None else bytes(found[0])

    # -- outside the card -------------------------------------------------------------------------------------

    def snapshot(self, profile: WalletProfile) -> tuple[WalletState, list[bytes]]:
        """The wallet's state and kept records, oldest first (created on first use, as a tap would)."""
        with self.transaction() as db:
            state = self.load(db, profile)
            rows = db.execute(
                "SELECT raw FROM record WHERE profile = ? ORDER BY counter", (profile.name,)
            ).fetchall()
        return state, [bytes(r[0]) for r in rows]

    def used(self) -> dict[str, WalletState]:
        """The state of every wallet profile used so far in this state directory."""
        try:
            with self._connect(write=False) as db:
                try:
                    rows = db.execute(
                        "SELECT profile, counter, last_hash, balance, spent_day, spent_today, payments FROM wallet"
                    ).fetchall()
                except sqlite3.OperationalError:  # no table yet
                    return {}
        except FileNotFoundError:
            return {}
        return {
            str(r[0]): WalletState(int(r[1]), bytes(r[2]), int(r[3]), str(r[4]), int(r[5]), int(r[6])) for r in rows
        }

    def reset(self, name: str) -> bool:
        """Forget profile ``name``'s state (its next use starts from the profile again); whether it had any."""
        with self.transaction() as db:
            gone = db.execute("DELETE FROM wallet WHERE profile = ?", (name,)).rowcount
            db.execute("DELETE FROM record WHERE profile = ?", (name,))
        return bool(gone)
