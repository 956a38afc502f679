"""What the parts of a terminal share: configuration, store, keys, host link, clock and listeners.

:class:`terminal.facade.Terminal` is the face; the forwarder
(:mod:`terminal.forwarding`) and the settlement (:mod:`terminal.settlement`)
work behind it on one :class:`Core`, so that each sees only what it needs and
every state change goes through one place (:meth:`Core.record`), which also
tells the listeners.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from emv.c2_torn import MemoryTornLog, TornLog
from emv.c7_torn import EcTornLog, MemoryEcTornLog
from emv.config import TerminalConfig
from terminal.host import HostCertificateRejected, HostError, HostLink
from terminal.keystore import DEFAULT_CIPHER, Keystore, check_cipher
from terminal.lifecycle import Event, State
from terminal.offline import OfflineLimits, RetryPolicy
from terminal.ports import PinPad
from terminal.results import TerminalEvent
from terminal.store import Store

__all__ = ["MIN_RETENTION_YEARS", "PIN_ON_REFUND", "Clock", "Core", "SystemClock", "TerminalSettings", "iso"]

MIN_RETENTION_YEARS = 5
#: What :attr:`TerminalSettings.pin_on_refund` may be.
PIN_ON_REFUND = ("never", "online")

_log = logging.getLogger("terminal.security")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class TerminalSettings:
    merchant_name: str = "posterm test shop"
    merchant_address: str = ""
    offline_limits: OfflineLimits = field(default_factory=OfflineLimits)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    card_timeout_seconds: float = 30.0
    retention_years: int = 5  # settled records are kept at least this long (5 at the least)
    # Receipts printed by themselves at the end of a payment when a printer is configured.
    receipt_copies: tuple[str, ...] = ("customer",)
    # How many times a card taken away too early is asked for again ("present card again").
    card_retries: int = 2
    # Digital-currency hard wallets: the ``cbdc`` section of the parameters as a ``cbdc.checks.TrustStore``
    # (roots, block lists, offline limits); None: the terminal takes no wallet.
    cbdc: Any = None
    # The cipher that seals card data at rest (terminal.keystore.CIPHERS); both are always read.
    keystore_cipher: str = DEFAULT_CIPHER
    # PIN entry: the seconds a customer has at the PIN pad, and whether Enter with no digits may
    # bypass a PIN the card asks for (the payment then goes on without it, and says so).
    pin_timeout_seconds: float = 60.0
    pin_bypass: bool = True
    # The cardholder's PIN on a refund that reads a card (terminal.refund_pin): "never" (the default), or
    # "online": asked on the PIN pad and sent to the issuer with the refund (an acquirer's "PIN for refund").
    pin_on_refund: str = "never"

    def __post_init__(self) -> None:
        if self.retention_years < MIN_RETENTION_YEARS:
            raise ValueError(
                f"retention_years is {self.retention_years}: records are kept at least {MIN_RETENTION_YEARS} years"
            )
        for copy in self.receipt_copies:
            if copy not in ("customer", "merchant"):
                raise ValueError(f"receipt copy {copy!r}: expected 'customer' or 'merchant'")
        if not 0 <= self.card_retries <= 5:
            raise ValueError(f"card_retries is {self.card_retries}: expected 0 to 5")
        check_cipher(self.keystore_cipher)
        if self.pin_on_refund not in PIN_ON_REFUND:
            shown = repr(self.pin_on_refund)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise ValueError(f"pin_on_refund is {shown}: expected {' or '.join(map(repr, PIN_ON_REFUND))}")


class Core:
    """The shared state of one terminal and the one door through which its payments change."""

    def __init__(
        self,
        *,
        config: TerminalConfig,
        store: Store,
        keystore: Keystore,
        host: HostLink | None,
        clock: Clock,
        settings: TerminalSettings,
        rng: random.Random,
    ) -> None:
        self.config = config
        self.store = store
        self.keystore = keystore
        self.host = host
        self.clock = clock
        self.settings = settings
        self.rng = rng
        # The PIN pad (terminal.ports.PinPad), None without one: the kernels then advertise no PIN.
        self.pin_pad: PinPad | None = None
        self.listeners: list[Callable[[TerminalEvent], None]] = []
        # The payment the current verb created (its first journal row is written), if any:
        # what an interrupted command reports.
        self.current_txn_id: str | None = None
        self._held: list[TerminalEvent] | None = None  # events of an atomic() block, told after its commit
        # Kernel C-2's torn transaction log (emv.c2_torn): in memory only, as its records hold
        # the card number in clear; a card taken away during GENERATE AC and presented again
        # in this process gets its first cryptogram back (RECOVER AC), not a second charge.
        self.torn_log: TornLog = MemoryTornLog()
        # Kernel C-7's torn electronic-cash log (emv.c7_torn): in memory only, as its records hold the
        # unpredictable number the terminal will send again; an EC card taken away after it debited at
        # GPO and presented again gets the same GPO back and answers it without a second debit.
        self.ec_torn_log: EcTornLog = MemoryEcTornLog()

    def now(self) -> str:
        return iso(self.clock.now())

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Several records in one commit (:meth:`Store.atomic`); the listeners hear of them once it is durable."""
        if self._held is not None:
            yield
            return
        held: list[TerminalEvent] = []
        self._held = held
        try:
            with self.store.atomic():
                yield
        finally:
            self._held = None
        for event in held:
            self._tell(event)

    def emit(self, kind: str, txn_id: str | None = None, **data: Any) -> None:
        event = TerminalEvent(kind, txn_id, data)
        if self._held is not None:
            self._held.append(event)
        else:
            self._tell(event)

    def _tell(self, event: TerminalEvent) -> None:
        for listener in list(self.listeners):
            with contextlib.suppress(Exception):  # a broken listener must not break a payment
                listener(event)

    def record(self, txn_id: str, event: Event, data: dict[str, Any], *, at: str | None = None, **kw: Any) -> State:
        """Apply one lifecycle transition (see :meth:`terminal.store.Store.record`) and tell the listeners."""
        state = self.store.record(txn_id, event, at or self.now(), data, **kw)
        if kw.get("new") is not None:
            self.current_txn_id = txn_id
        if self.listeners:
            self.emit("state_changed", txn_id, state=state.value, event=event.value)
        return state

    def emv_data(self, txn_id: str) -> bytes:
        """The data objects kept (encrypted) for the host's authorisation or advice of ``txn_id``."""
        blob = self.store.read_sensitive(txn_id)
        return b"" if blob is None else self.keystore.decrypt(blob, b"sad:" + txn_id.encode())

    def host_failed(self, exc: HostError) -> None:
        """Note a failure of the host link; a rejected host certificate is a security event.

        A wrong or expired certificate may be an attacker between the terminal
        and its acquirer, not an outage: it is logged at ERROR, counted in the
        store (``saf status`` and ``diag`` show it) and told to the listeners.
        """
        if isinstance(exc, HostCertificateRejected) and not getattr(exc, "repeated", False):
            # (a link may refuse again at once, within its retry window, without a new handshake:
            # such a repeat is marked, and the event was counted when it happened)
            _log.error("security: the host's certificate was rejected: %s", exc)
            with contextlib.suppress(Exception):  # counting must never stop a payment
                self.store.note_security_event(self.now(), f"host certificate rejected: {exc}")
            self.emit("security", None, error=f"host certificate rejected: {exc}")
