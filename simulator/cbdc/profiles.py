"""The digital-currency wallet profiles: ``simulator/cbdc/profiles/cbdc-*.json``.

A wallet profile names its wallet in the simulator PKI (:mod:`simulator.cbdc.pki`:
identity, keys, certificate, limits, opening balance) and says how the wallet
behaves: its ``fault`` (None for an honest wallet), whether its operator
``locked`` it, and a ``history`` of payments it made before it is first used
(records signed when its state is created, so that a replaying wallet has a
record to replay), and ``emv``: an EMV card profile whose application sits
beside the wallet on the same card (its PPSE lists both).  ``expected`` is what a terminal should conclude
(informational, see docs/card-profiles.md).

Faults:

``tamper_signature``
    the record's signature has one bit flipped (the wallet debits as usual);
``replay``
    PAY is answered with the wallet's last record again; nothing is debited;
``rollback``
    after each payment the wallet's state goes back to what it was before it
    (counter, previous hash, balance, spent today), so each payment reuses one counter;
``torn``
    PAY debits and keeps the record, then the wallet goes mute before answering;
    it answers again (GET RECORD) once presented again;
``mute``
    the wallet stops answering after the SELECT of its application;
``garbage``
    every digital-currency command is answered with random bytes and 9000;
``redirect_payee``
    the wallet debits and signs a genuine record, but to the payee of its
    ``redirect_to`` (``{"merchant": ..., "terminal": ...}``) instead of the
    one the terminal asked for: malware paying someone else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from simulator import profiles as emv_profiles
from simulator._bounded import read_json_file
from simulator.cbdc import pki
from simulator.profiles import ProfileError

__all__ = ["FAULTS", "PREFIX", "HistoryEntry", "WalletProfile", "is_wallet_name", "list_names", "load"]

PREFIX = "cbdc-"
PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
FAULTS = frozenset({"tamper_signature", "replay", "rollback", "torn", "mute", "garbage", "redirect_payee"})
_MAX_BYTES = 64 << 10


@dataclass(frozen=True)
class HistoryEntry:
    """A payment the wallet made before the simulation starts."""

    amount: int
    merchant: str
    terminal: str
    date_time: datetime


@dataclass(frozen=True)
class WalletProfile:
    """A ``cbdc-*`` card profile: a PKI wallet and its behaviour."""

    name: str
    description: str
    keys: pki.WalletKeys
    label: str
    priority: int
    currency: bytes
    fault: str | None
    locked: bool
    history: tuple[HistoryEntry, ...]
    expected: Mapping[str, str]
    emv: str | None = None
    #: the (merchant id, terminal id) a ``redirect_payee`` wallet pays instead of the terminal's payee
    redirect_to: tuple[str, str] | None = None


def is_wallet_name(name: str) -> bool:
    """Whether ``name`` is spelled as a wallet profile (``cbdc-...``)."""
    return name.startswith(PREFIX)


def list_names() -> list[str]:
    """The shipped wallet profiles, sorted."""
    return sorted(p.stem for p in PROFILE_DIR.glob(f"{PREFIX}*.json"))


def load(name: str) -> WalletProfile:
    """The wallet profile ``name``; :class:`~simulator.profiles.ProfileError` naming the valid ones otherwise."""
    if name not in list_names():
        raise ProfileError(f"unknown wallet profile {name!r}; wallet profiles: {', '.join(list_names())}")
    return _load_cached(name)


@lru_cache(maxsize=32)
def _load_cached(name: str) -> WalletProfile:
    path = PROFILE_DIR / f"{name}.json"
    raw = read_json_file(path, _MAX_BYTES, "wallet profile", ProfileError)
    try:
        profile = _from_dict(raw)
    except (KeyError, TypeError, ValueError, pki.CbdcPkiError) as exc:
        raise ProfileError(f"{path.name}: malformed wallet profile: {exc}") from None
    if profile.name != name:
        raise ProfileError(f"{path.name}: names itself {profile.name!r}")
    return profile


def _ascii(text: Any, low: int, high: int, what: str) -> str:
    value = str(text)
    if not low <= len(value) <= high or not all(0x20 <= ord(c) < 0x7F for c in value):
        raise ValueError(f"{what} {value!r}: {low}-{high} printable ASCII characters")
    return value


def _history(raw: Mapping[str, Any]) -> HistoryEntry:
    entry = HistoryEntry(
        amount=int(raw["amount"]),
        merchant=_ascii(raw["merchant"], 1, 15, "merchant id"),
        terminal=_ascii(raw["terminal"], 8, 8, "terminal id"),
        date_time=datetime.strptime(str(raw["date_time"]), "%Y%m%d%H%M%S"),
    )
    if entry.amount <= 0:
        raise ValueError(f"history amount {entry.amount} must be positive")
    return entry


def _from_dict(raw: Mapping[str, Any]) -> WalletProfile:
    fault = raw.get("fault")
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"fault {fault!r} not one of {sorted(FAULTS)}")
    currency = bytes.fromhex(str(raw.get("currency", "0156")))
    if len(currency) != 2 or not currency.hex().isdigit():
        raise ValueError(f"currency {raw.get('currency')!r}: 4 BCD digits")
    history = tuple(_history(h) for h in raw.get("history") or [])
    if fault == "replay" and not history:
        raise ValueError("a replaying wallet needs a history (a record to replay)")
    keys = pki.wallet(str(raw["wallet"]))
    emv = raw.get("emv")
    if emv is not None:
        if str(emv) not in emv_profiles.list_names():
            raise ValueError(f"emv {emv!r} is not an EMV card profile")
        emv_profiles.load(str(emv))
    redirect = raw.get("redirect_to")
    redirect_to = None
    if fault == "redirect_payee" or redirect is not None:
        if fault != "redirect_payee" or not isinstance(redirect, Mapping):
            raise ValueError('redirect_to {"merchant", "terminal"} goes with the fault redirect_payee, only with it')
        redirect_to = (
            _ascii(redirect["merchant"], 1, 15, "merchant id"),
            _ascii(redirect["terminal"], 8, 8, "terminal id"),
        )
    if sum(h.amount for h in history) > keys.opening_balance:
        raise ValueError("the history spends more than the opening balance")
    return WalletProfile(
        name=str(raw["name"]),
        description=str(raw["description"]),
        keys=keys,
        label=_ascii(raw.get("label", "DIGITAL CNY"), 1, 16, "label"),
        priority=int(raw.get("priority", 1)),
        currency=currency,
        fault=None if fault is None else str(fault),
        locked=bool(raw.get("locked", False)),
        history=history,
        expected=MappingProxyType({str(k): str(v) for k, v in dict(raw.get("expected") or {}).items()}),
        emv=None if emv is None else str(emv),
        redirect_to=redirect_to,
    )
