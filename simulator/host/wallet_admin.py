"""The wallets' side of the simulated host, reached through its data directory (no terminal certificate).

What ``posterm host wallet ...`` (the operator) and ``posterm sim wallet
code|pay`` (a customer's wallet app) do, as :mod:`simulator.host.admin`
does for the other operator commands: directly on the host's store, so it
works whether the server runs or not and takes effect on a running server at
once (the server reads the mode, the codes and the orders on every request).

- :func:`accounts`, :func:`topup`: the simulated wallet accounts and balances;
- :func:`set_mode`: how the wallets answer a code payment: ``normal`` (pay
  at once), ``confirm`` (``user_paying``: the customer confirms in the app,
  later, with :func:`confirm_order`), ``decline``;
- :func:`make_code`: the single-use 18-digit payment code an app shows;
- :func:`pay_payload`: an app that scanned a merchant-presented code pays
  the order it names (:func:`order_in_payload`), if the code shows the
  order's amount and currency.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Final

from simulator.host.admin import AdminError, AdminRefused, open_store
from simulator.host.store import HostStore
from simulator.host.wallets import (
    MODES,
    WALLET_GUI,
    WALLET_PREFIXES,
    AppRefused,
    Unknown,
    app_pay,
    confirm,
    issue_code,
    order_answer,
)

__all__ = [
    "accounts",
    "confirm_order",
    "make_code",
    "order_in_payload",
    "orders",
    "pay_payload",
    "set_mode",
    "topup",
]

_ACCOUNT: Final = re.compile(r"^[a-z0-9_-]{1,32}$")
_ORDER_ID: Final = re.compile(r"^Q[0-9A-F]{10,32}$")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _account(name: str) -> str:
    if not _ACCOUNT.fullmatch(name):
        raise AdminError(f"account {name!r}: 1 to 32 of a-z, 0-9, _ and -")
    return name


def accounts(data_dir: Path, *, store: str | None = None) -> list[dict[str, Any]]:
    """Every wallet account with its wallet and balances (a host must be there: nothing is created)."""
    with open_store(data_dir, create=False, store=store) as db:
        return [a.to_json() for a in db.wallet_accounts()]


def topup(
    data_dir: Path,
    account: str,
    amount: int,
    currency: int = 978,
    *,
    wallet: str | None = None,
    store: str | None = None,
) -> dict[str, Any]:
    """Add ``amount`` (minor units) to the account's balance in ``currency``; a new account needs ``wallet``."""
    _account(account)
    if amount < 1:
        raise AdminError("top-up: an amount in minor units, 1 or more")
    if not 1 <= currency <= 999:
        raise AdminError("currency: an ISO 4217 numeric code (978 EUR, 156 CNY)")
    with open_store(data_dir, store=store) as db, db.transaction():
        at = _now().isoformat(timespec="microseconds")
        if db.wallet_account(account) is None:
            if wallet is None or wallet not in WALLET_PREFIXES.values():
                raise AdminError(
                    f"no wallet account {account!r}: give --wallet ({', '.join(WALLET_PREFIXES.values())}) to open it"
                )
            db.add_wallet_account(account, wallet, at)
        db.credit(account, currency, amount, at)
        found = db.wallet_account(account)
    assert found is not None
    return found.to_json()


def set_mode(data_dir: Path, mode: str, *, store: str | None = None) -> None:
    if mode not in MODES:
        raise AdminError(f"wallet mode {mode!r}: one of {', '.join(MODES)}")
    with open_store(data_dir, store=store) as db:
        db.set_wallet_mode(mode)


def orders(data_dir: Path, terminal_id: str | None = None, *, store: str | None = None) -> list[dict[str, Any]]:
    """The QR orders, oldest first (a terminal's only, if given); no code, not even its digest."""
    with open_store(data_dir, create=False, store=store) as db:
        return [o.to_json() for o in db.qr_orders(terminal_id=terminal_id)]


def confirm_order(data_dir: Path, order_id: str, *, accept: bool = True, store: str | None = None) -> dict[str, Any]:
    """The customer confirms (``accept``) or declines in the app an order that is ``user_paying``."""
    with open_store(data_dir, create=False, store=store) as db:
        try:
            return order_answer(confirm(db, order_id, _now(), accept=accept))
        except Unknown as exc:
            raise AdminError(str(exc)) from None
        except AppRefused as exc:
            raise AdminRefused(str(exc)) from None


def make_code(
    data_dir: Path, account: str, *, store: str | None = None, now: dt.datetime | None = None
) -> dict[str, str]:
    """A single-use payment code of the account's wallet: ``{code, account, wallet, expires_at}``."""
    _account(account)
    with open_store(data_dir, store=store) as db:
        try:
            code, wallet, expires = issue_code(db, account, now or _now())
        except AppRefused as exc:
            raise AdminError(str(exc)) from None
    return {"code": code, "account": account, "wallet": wallet, "expires_at": expires}


def order_in_payload(db: HostStore, payload: str) -> str:
    """The host order a scanned merchant-presented code names (its id), or AppRefused.

    Refused with :class:`~simulator.host.wallets.Unknown`. The code is decoded
    with :mod:`emv.qr_mpm` (CRC and structure checked):
    the order id is sub-ID 02 of the simulated acquirer's template
    (:data:`~simulator.host.wallets.WALLET_GUI`); without it, the
    reference label (62/05) with the terminal label (62/07) names a pending
    order. A bare order id is taken as it is (for manual use).
    """
    from emv.qr_mpm import MpmError, decode

    text = payload.strip()
    if _ORDER_ID.fullmatch(text):
        return text
    try:
        code = decode(text)
    except MpmError as exc:
        raise Unknown(f"not a merchant-presented code this wallet can pay: {exc}") from None
    for template in code.templates:
        order_id = template.field("02")
        if template.gui == WALLET_GUI and order_id is not None:
            return order_id
    data = code.additional_data
    if data is None or data.reference_label is None or data.terminal_label is None:
        raise Unknown("the code names no order of this acquirer (no template 26 order id, no 62/05 and 62/07)")
    found = [o for o in db.qr_orders_by_label(data.terminal_label, data.reference_label) if o.state == "pending"]
    if len(found) != 1:
        raise Unknown(f"the code's reference {data.reference_label} names {len(found)} pending orders, not one")
    return found[0].order_id


def _check_shown(db: HostStore, payload: str, order_id: str) -> None:
    """Refuse (AppRefused) a code that shows the customer another amount or currency than its order's.

    The app shows what the code says (54, 53) and the host charges what the
    order says: a code that disagrees is not paid, whatever it claims.
    """
    from decimal import Decimal

    from emv.qr_mpm import decode
    from terminal.money import MoneyError, currency

    if _ORDER_ID.fullmatch(payload.strip()):
        return  # a bare order id shows nothing
    code, order = decode(payload.strip()), db.qr_order(order_id)
    if order is None:
        return  # app_pay names it
    if int(code.currency) != order.currency:
        raise AppRefused(f"the code shows currency {code.currency}, its order is in {order.currency:03d}: nothing paid")
    if code.amount is not None:
        try:
            exponent = currency(order.currency).exponent
        except MoneyError:
            exponent = 2
        if Decimal(code.amount).scaleb(exponent) != order.amount:
            raise AppRefused(f"the code shows {code.amount}, its order is {order.amount} minor units: nothing paid")


def pay_payload(data_dir: Path, payload: str, account: str, *, store: str | None = None) -> dict[str, Any]:
    """A wallet app pays the order of a scanned MPM code from ``account``: the order, paid (AdminRefused if not)."""
    _account(account)
    with open_store(data_dir, create=False, store=store) as db:
        try:
            order_id = order_in_payload(db, payload)
            _check_shown(db, payload, order_id)
            return order_answer(app_pay(db, order_id, account, _now()))
        except Unknown as exc:
            raise AdminError(str(exc)) from None
        except AppRefused as exc:
            raise AdminRefused(str(exc)) from None
