"""``posterm sim wallet``: the simulated digital-currency wallets' state (see :mod:`simulator.cbdc`).

- ``posterm sim wallet list [--json]``: every ``cbdc-*`` wallet, its balance
  and counter, and the state directory;
- ``posterm sim wallet show NAME [--json]``: one wallet: identity, tier,
  limits, certificate dates, balance, counter, last record hash;
- ``posterm sim wallet records NAME [--json]``: the records the wallet holds,
  hex, oldest first (one a line): what its own sync with its operator uploads;
- ``posterm sim wallet reset NAME``: forget its state (the next tap starts
  from the profile again: opening balance, counter 0);
- ``posterm sim wallet code --account A`` and ``posterm sim wallet pay PAYLOAD
  --account A``: a customer's wallet app against the simulated host
  (:mod:`simulator.wallet_app_cli`).

Each takes ``--state-dir DIR`` (default ``$POSTERM_SIM_STATE``, else the user
state directory; :mod:`simulator.cbdc.state`).  ``list`` and ``show`` only
read; ``records`` creates a wallet's state as its first tap would.  An unknown
name is one line and exit status 2; a state file that cannot be used, 3.
"""

from __future__ import annotations

import argparse
from typing import Any

from simulator.cbdc import pki
from simulator.cbdc import profiles as wallet_profiles
from simulator.cbdc.pki import TIER_ANONYMOUS
from simulator.cbdc.state import WalletState, WalletStateError, WalletStore
from simulator.profiles import ProfileError
from terminal.cli_output import CommandError, Unavailable, emit

__all__ = ["add_wallet_commands"]


def _profile(name: str) -> wallet_profiles.WalletProfile:
    if not wallet_profiles.is_wallet_name(name):
        raise CommandError(
            f"{name!r} is not a digital-currency wallet; wallets: {', '.join(wallet_profiles.list_names())}"
        )
    try:
        return wallet_profiles.load(name)
    except ProfileError as exc:
        raise CommandError(str(exc)) from None


def _store(args: argparse.Namespace) -> WalletStore:
    return WalletStore(args.state_dir)


def _initial(profile: wallet_profiles.WalletProfile) -> WalletState:
    """What an unused wallet starts with (its history counted), without creating its state."""
    spent = sum(h.amount for h in profile.history)
    return WalletState(len(profile.history), b"", profile.keys.opening_balance - spent, "", 0, len(profile.history))


def _money(minor: int) -> str:
    return f"{minor // 100:,}.{minor % 100:02d} CNY"


def _summary(profile: wallet_profiles.WalletProfile, state: WalletState, used: bool) -> dict[str, Any]:
    keys = profile.keys
    return {
        "name": profile.name,
        "wallet_id": keys.wallet_id.hex().upper(),
        "operator_id": keys.operator_id.hex().upper(),
        "tier": "anonymous" if keys.tier == TIER_ANONYMOUS else "id_verified",
        "fault": profile.fault,
        "locked": profile.locked,
        "balance": state.balance,
        "counter": state.counter,
        "used": used,
    }


def _cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        used = store.used()
    except WalletStateError as exc:
        raise Unavailable(str(exc)) from None
    rows = []
    for name in wallet_profiles.list_names():
        profile = _profile(name)
        rows.append(_summary(profile, used.get(name) or _initial(profile), name in used))
    lines = [f"state: {store.path}"]
    for r in rows:
        note = "" if r["used"] else " (not used yet)"
        lines.append(
            f"{r['name']:<24} {r['wallet_id']} {r['tier']:<11} balance {_money(r['balance']):>16}  "
            f"counter {r['counter']}{note}"
        )
    emit(args, {"state_dir": str(store.directory), "state_file": str(store.path), "wallets": rows}, "\n".join(lines))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    profile = _profile(args.name)
    store = _store(args)
    try:
        used = store.used()
    except WalletStateError as exc:
        raise Unavailable(str(exc)) from None
    state = used.get(profile.name)
    keys = profile.keys
    obj = _summary(profile, state or _initial(profile), state is not None)
    obj.update({
        "description": profile.description,
        "currency": profile.currency.hex(),
        "per_payment_limit": keys.per_payment,
        "daily_limit": keys.daily,
        "balance_limit": keys.balance_limit,
        "spent_today": state.spent_today if state else 0,
        "spent_day": state.spent_day if state else "",
        "not_before": keys.not_before.isoformat(),
        "not_after": keys.not_after.isoformat(),
        "last_record_hash": state.last_hash.hex().upper() if state else None,
        "public_key": keys.public_key.hex().upper(),
        "expected": dict(profile.expected),
        "state_file": str(store.path),
    })
    text = "\n".join([
        f"{profile.name}: wallet {obj['wallet_id']} of operator {obj['operator_id']}, {obj['tier']}",
        f"  {profile.description}",
        f"  balance {_money(obj['balance'])}, counter {obj['counter']}"
        + ("" if state else " (not used yet)"),
        f"  limits: {_money(keys.per_payment)} a payment, {_money(keys.daily)} a day,"
        f" {_money(keys.balance_limit)} held",
        f"  certificate valid {obj['not_before']} to {obj['not_after']}",
        f"  state: {store.path}",
    ])
    emit(args, obj, text)
    return 0


def _cmd_records(args: argparse.Namespace) -> int:
    profile = _profile(args.name)
    try:
        state, kept = _store(args).snapshot(profile)
    except WalletStateError as exc:
        raise Unavailable(str(exc)) from None
    from simulator.cbdc.records import record_counter

    items = [{"counter": record_counter(raw), "record": raw.hex().upper()} for raw in kept]
    obj = {"name": profile.name, "wallet_id": profile.keys.wallet_id.hex().upper(), "counter": state.counter,
           "records": items}
    lines = [raw.hex().upper() for raw in kept]
    if args.with_certificates:  # the wallet identifies itself to an operator that has not verified it yet
        certificates = [profile.keys.certificate, pki.operator(profile.keys.operator_id.hex()).certificate]
        shown = [c.hex().upper() for c in certificates]
        obj["certificates"] = shown
        lines += shown
    emit(args, obj, "\n".join(lines))
    return 0


def _cmd_reset(args: argparse.Namespace) -> int:
    profile = _profile(args.name)
    try:
        had = _store(args).reset(profile.name)
    except WalletStateError as exc:
        raise Unavailable(str(exc)) from None
    text = (
        f"{profile.name}: state forgotten; its next tap starts from the profile again"
        if had
        else f"{profile.name}: had no state (not used yet)"
    )
    emit(args, {"name": profile.name, "reset": had}, text)
    return 0


def add_wallet_commands(sim_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``wallet`` and its commands under ``posterm sim``."""
    wallet = sim_sub.add_parser(
        "wallet",
        help="the simulated digital-currency wallets' state: list, show, records, reset; "
        "wallet apps: code (a payment code), pay (a merchant-presented code)",
    )
    sub = wallet.add_subparsers(dest="wallet_command", required=True, metavar="COMMAND")
    specs = (
        ("list", "every cbdc-* wallet with its balance and counter", _cmd_list, False, True),
        ("show", "one wallet: identity, limits, balance, counter", _cmd_show, True, True),
        ("records", "the records a wallet holds, hex, oldest first (its operator sync)", _cmd_records, True, True),
        ("reset", "forget a wallet's state: its next tap starts from its profile", _cmd_reset, True, True),
    )
    for name, help_text, func, takes_name, takes_json in specs:
        p = sub.add_parser(name, help=help_text)
        if takes_name:
            p.add_argument("name", metavar="NAME", help="a wallet profile (cbdc-...; see 'posterm sim wallet list')")
        if takes_json:
            p.add_argument("--json", action="store_true", help="one JSON object")
        p.add_argument(
            "--state-dir",
            metavar="DIR",
            help="the wallets' state directory (default: $POSTERM_SIM_STATE, else the user state directory)",
        )
        if name == "records":
            p.add_argument(
                "--with-certificates",
                action="store_true",
                help="add the wallet's two certificates (E2: the wallet's, its operator's) after its records, "
                "as its sync with an operator that has not seen the wallet needs",
            )
        p.set_defaults(func=func)
    from simulator.wallet_app_cli import add_app_commands  # a wallet app's commands against the simulated host

    add_app_commands(sub)
