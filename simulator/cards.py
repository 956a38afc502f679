"""Every simulated card by its profile name: the EMV cards and the digital-currency wallets (``cbdc-*``).

The one place that knows both kinds, so that a wallet is usable wherever a
card profile is (``sim:card=``, ``posterm sim card``, the nfc-udp field):

>>> "cbdc-anon" in names() and "visa-qvsdc-offline" in names()
True
>>> type(open_card("visa-qvsdc-online")).__name__
'SimulatedCard'
"""

from __future__ import annotations

import os

from simulator import profiles
from simulator.card import SimulatedCard
from simulator.cbdc import profiles as wallet_profiles
from simulator.cbdc.wallet import WalletCard
from simulator.contact import profiles as contact_profiles
from simulator.contact.card import ContactCard

__all__ = ["AnyCard", "check", "names", "open_card"]

AnyCard = SimulatedCard | WalletCard | ContactCard


def names() -> list[str]:
    """Every card profile name, sorted: EMV and wallets together."""
    return sorted(profiles.list_names() + wallet_profiles.list_names() + contact_profiles.list_names())


def check(name: str) -> None:
    """:class:`~simulator.profiles.ProfileError` (naming the valid profiles) unless ``name`` loads."""
    if wallet_profiles.is_wallet_name(name):
        wallet_profiles.load(name)
        return
    if name in contact_profiles.list_names():
        contact_profiles.load(name)
        return
    if name not in profiles.list_names():
        raise profiles.ProfileError(f"unknown card profile {name!r}; valid profiles: {', '.join(names())}")
    profiles.load(name)


def open_card(
    name: str, *, state_dir: str | os.PathLike[str] | None = None, seed: int | None = None
) -> SimulatedCard | WalletCard | ContactCard:
    """The card of profile ``name``; a wallet keeps its state in ``state_dir`` (see :mod:`simulator.cbdc.state`)."""
    check(name)
    if wallet_profiles.is_wallet_name(name):
        return WalletCard(name, state_dir=state_dir, seed=seed)
    if name in contact_profiles.list_names():
        return ContactCard(name, seed=seed)
    return SimulatedCard(name, seed=seed)
