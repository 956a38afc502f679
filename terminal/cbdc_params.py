"""The digital-currency parameters in force (CBDC-SPEC §8), as commands and screens show them.

The ``cbdc`` section of the configuration in force (the parameter version the
host last sent, written there by ``host_link.parameters`` after it verified
every root's checksum; else the shipped terminal.json) read into a plain
:class:`CbdcParameters`: its version, the trusted roots, the wallets and
operators blocked and the offline limits per currency.  The payment code
takes the same section as a ``cbdc.checks.TrustStore``.

>>> section = {"version": 3, "roots": [], "blocked_wallets": ["D1A0000000000007"],
...            "limits": {"156": {"per_payment": 200000, "max_count": 20, "max_total": 500000,
...                               "max_unsent_age_s": 86400}}}
>>> print(CbdcParameters.from_section(section, parameters_version=None).describe())
digital currency: version 3 (shipped), 0 trusted roots, 1 blocked wallet (D1A0000000000007), 0 blocked operators; \
limits CNY: 2000.00 CNY a payment, 20 payments / 5000.00 CNY unsent, oldest unsent 24 h
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cbdc.checks import Limits, ParameterError, TrustStore
from terminal.bootstrap import configuration_document
from terminal.money import MoneyError, currency, format_amount
from terminal.settings import SettingsError

__all__ = ["CbdcParameters", "cbdc_parameters"]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _money(minor: int, code: int) -> str:
    try:
        return format_amount(minor, currency(code))
    except MoneyError:
        return f"{minor} (currency {code:03d}, minor units)"


def _duration(seconds: int) -> str:
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


@dataclass(frozen=True)
class CbdcParameters:
    """The ``cbdc`` section in force; ``parameters_version`` None when it is the shipped configuration's."""

    version: int
    roots: tuple[str, ...]  # root ids, 8 hex digits each
    blocked_wallets: tuple[str, ...]
    blocked_operators: tuple[str, ...]
    limits: Mapping[int, Limits]  # ISO 4217 numeric -> limits
    parameters_version: int | None

    @classmethod
    def from_section(cls, section: Any, *, parameters_version: int | None) -> CbdcParameters:
        """Read (and check) a ``cbdc`` section; :class:`~terminal.settings.SettingsError` when it is refused."""
        try:
            trust = TrustStore.from_parameters(section)
        except ParameterError as exc:
            where = f"parameters version {parameters_version}" if parameters_version is not None else "terminal.json"
            raise SettingsError(f"{where}: {exc}") from None
        return cls(
            version=trust.version,
            roots=tuple(root_id.hex().upper() for root_id in trust.roots),
            blocked_wallets=tuple(sorted(w.hex().upper() for w in trust.blocked_wallets)),
            blocked_operators=tuple(sorted(o.hex().upper() for o in trust.blocked_operators)),
            limits=dict(sorted(trust.limits.items())),
            parameters_version=parameters_version,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "source": "shipped" if self.parameters_version is None else "downloaded",
            "roots": list(self.roots),
            "blocked_wallets": list(self.blocked_wallets),
            "blocked_operators": list(self.blocked_operators),
            "limits": {
                f"{code:03d}": {
                    "per_payment": lim.per_payment,
                    "max_count": lim.max_count,
                    "max_total": lim.max_total,
                    "max_unsent_age_s": lim.max_unsent_age_s,
                }
                for code, lim in self.limits.items()
            },
        }

    def describe(self) -> str:
        """One line: version, roots, block lists (the wallets named while there are few), limits."""
        source = "shipped" if self.parameters_version is None else f"from parameters version {self.parameters_version}"
        wallets = _plural(len(self.blocked_wallets), "blocked wallet")
        if 0 < len(self.blocked_wallets) <= 5:
            wallets += f" ({', '.join(self.blocked_wallets)})"
        limits = "; ".join(
            f"{_code(code)}: {_money(lim.per_payment, code)} a payment, "
            f"{_plural(lim.max_count, 'payment')} / {_money(lim.max_total, code)} unsent, "
            f"oldest unsent {_duration(lim.max_unsent_age_s)}"
            for code, lim in self.limits.items()
        )
        return (
            f"digital currency: version {self.version} ({source}), {_plural(len(self.roots), 'trusted root')}, "
            f"{wallets}, {_plural(len(self.blocked_operators), 'blocked operator')}; "
            + (f"limits {limits}" if limits else "no offline limits: no currency may be taken")
        )


def _code(code: int) -> str:
    try:
        return currency(code).code
    except MoneyError:
        return f"{code:03d}"


def cbdc_parameters(data_dir: Path) -> CbdcParameters | None:
    """The ``cbdc`` section of the configuration in force in ``data_dir``; None when it has none.

    Raises :class:`~terminal.settings.SettingsError` when the configuration
    cannot be read or its section is refused.
    """
    doc, _, version = configuration_document(Path(data_dir))
    section = doc.get("cbdc")
    if section is None:
        return None
    return CbdcParameters.from_section(section, parameters_version=version)
