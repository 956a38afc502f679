"""The host operator's digital-currency actions (``posterm host cbdc ...``), on a data directory like :mod:`admin`.

- :func:`blocklist`: the ``cbdc`` section the terminals get now (version,
  roots, blocked wallets and operators, limits) with why and since when each
  is blocked;
- :func:`block_wallet` / :func:`unblock_wallet`: by hand (the operator blocks
  by itself on a double spend, a chain fork or an overspend); either moves the
  section's version, so every terminal's next parameter download carries it;
  :func:`block_operator` / :func:`unblock_operator` likewise for all the
  wallets of an operator (an authorised institution);
- :func:`wallets`: each wallet's account: balance (opening + top-ups −
  credited payments), what was credited back, last counter, records held,
  blocked or not;
- :func:`topup`: money added to a wallet's account (the simulator's top-ups);
- :func:`wallet_sync`: the wallet's own upload of its records
  (:mod:`simulator.host.cbdc_sync`); what was credited back.

They take effect on a running host at once (it reads the database on every
request). Bad input is :class:`~simulator.host.admin.AdminError` (exit 2).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from simulator.host.admin import AdminError, open_store
from simulator.host.cbdc_operator import Operator, OperatorPki, block, cbdc_section, seed
from simulator.host.cbdc_sync import WALLET_ID, SyncError, SyncReport, read_upload
from simulator.host.cbdc_sync import wallet_sync as _sync
from simulator.host.store_cbdc import BLOCKED_OPERATOR, BLOCKED_WALLET

__all__ = [
    "MAX_TOPUP",
    "OPERATOR_ID",
    "block_operator",
    "block_wallet",
    "blocklist",
    "seed_pki",
    "topup",
    "unblock_operator",
    "unblock_wallet",
    "wallet_sync",
    "wallets",
]

MAX_TOPUP = 999_999_999_999
OPERATOR_ID = re.compile(r"^[0-9A-Fa-f]{8}$")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _wallet_id(text: str) -> str:
    if not WALLET_ID.fullmatch(text):
        raise AdminError(f"{text!r} is not a wallet id (16 hex digits, e.g. D1A0000000000001)")
    return text.upper()


def seed_pki(data_dir: Path, pki: OperatorPki, *, store: str | None = None) -> None:
    """Trust these roots and open these wallets' accounts before the host's first digital-currency use (tests)."""
    with open_store(data_dir, store=store) as db:
        seed(db, pki, _stamp(_now()))


def blocklist(data_dir: Path, *, store: str | None = None) -> dict[str, Any]:
    """The ``cbdc`` section as served now, and the blocked wallets and operators with reason and time."""
    with open_store(data_dir, create=False, store=store) as db:
        Operator(db).ensure_seeded(_stamp(_now()))
        with db.transaction():
            section = cbdc_section(db)
            detail = {
                kind: [{"id": s, "reason": r, "since": a} for s, r, a in db.cbdc_blocked(kind)]
                for kind in (BLOCKED_WALLET, BLOCKED_OPERATOR)
            }
    return {"cbdc": section, "wallets": detail[BLOCKED_WALLET], "operators": detail[BLOCKED_OPERATOR]}


def _operator_id(text: str) -> str:
    if not OPERATOR_ID.fullmatch(text):
        raise AdminError(f"{text!r} is not an operator id (8 hex digits, e.g. 00000101)")
    return text.upper()


def _change(data_dir: Path, kind: str, subject: str, reason: str | None, store: str | None) -> tuple[bool, int]:
    """Block (``reason`` given) or unblock a wallet or an operator; (whether it changed, the section's version)."""
    now = _stamp(_now())
    with open_store(data_dir, store=store) as db:
        Operator(db).ensure_seeded(now)  # the list it starts from first, so that this change is not undone
        with db.transaction():
            if kind == BLOCKED_WALLET:
                db.lock("cbdc_wallet", subject)
            if reason is not None:
                return block(db, kind, subject, reason, now), db.cbdc_version()
            return db.cbdc_unblock(kind, subject, now), db.cbdc_version()


def block_wallet(data_dir: Path, wallet: str, reason: str = "blocked by the operator", *, store: str | None = None
                 ) -> tuple[bool, int]:  # fmt: skip
    """Block a wallet by hand; (whether it was not blocked before, the section's version now)."""
    return _change(data_dir, BLOCKED_WALLET, _wallet_id(wallet), reason, store)


def unblock_wallet(data_dir: Path, wallet: str, *, store: str | None = None) -> tuple[bool, int]:
    """Take a wallet off the block list; (whether it was on it, the section's version now)."""
    return _change(data_dir, BLOCKED_WALLET, _wallet_id(wallet), None, store)


def block_operator(data_dir: Path, operator: str, reason: str = "blocked by the operator", *,
                   store: str | None = None) -> tuple[bool, int]:  # fmt: skip
    """Block every wallet of an operator (an authorised institution); as :func:`block_wallet`."""
    return _change(data_dir, BLOCKED_OPERATOR, _operator_id(operator), reason, store)


def unblock_operator(data_dir: Path, operator: str, *, store: str | None = None) -> tuple[bool, int]:
    return _change(data_dir, BLOCKED_OPERATOR, _operator_id(operator), None, store)


def _account_json(db: Any, wallet_id: str) -> dict[str, Any]:
    account = db.cbdc_wallet(wallet_id)
    records, last = db.cbdc_wallet_records(wallet_id)
    reason = db.cbdc_block_reason(BLOCKED_WALLET, wallet_id)
    return {
        "wallet_id": wallet_id,
        "balance": account.balance,
        "opening": account.opening,
        "topups": account.topups,
        "credited": account.credited,
        "credited_back": account.credited_back,
        "currency": account.currency,
        "operator_id": account.operator_id,
        "last_counter": last,
        "records": records,
        "blocked": reason is not None,
        "blocked_reason": reason,
    }


def wallets(data_dir: Path, *, store: str | None = None) -> list[dict[str, Any]]:
    """Every wallet the operator keeps an account of (see the module docstring), by id."""
    with open_store(data_dir, create=False, store=store) as db:
        Operator(db).ensure_seeded(_stamp(_now()))
        with db.transaction():
            return [_account_json(db, account.wallet_id) for account in db.cbdc_wallets()]


def topup(data_dir: Path, wallet: str, amount: int, *, store: str | None = None) -> dict[str, Any]:
    """Add ``amount`` minor units to the wallet's account; the account now."""
    wallet_id = _wallet_id(wallet)
    if not 0 < amount <= MAX_TOPUP:
        raise AdminError(f"a top-up is 1 to {MAX_TOPUP} minor units")
    now = _stamp(_now())
    with open_store(data_dir, store=store) as db:
        operator = Operator(db)
        operator.ensure_seeded(now)
        with db.transaction():
            db.lock("cbdc_wallet", wallet_id)
            operator.open_account(wallet_id, now)
            db.add_cbdc_money(wallet_id, topups=amount)
            return _account_json(db, wallet_id)


def wallet_sync(data_dir: Path, wallet: str, upload: str, *, store: str | None = None) -> SyncReport:
    """The wallet's upload (hex templates, one a line) applied (:mod:`simulator.host.cbdc_sync`)."""
    wallet_id = _wallet_id(wallet)
    try:
        items = read_upload(upload)
        with open_store(data_dir, store=store) as db:
            return _sync(Operator(db), wallet_id, items, _now())
    except SyncError as exc:
        raise AdminError(f"wallet sync refused, nothing kept: {exc}") from None
