"""The simulated acquirer in-process: the host link named ``memory``, for tests and the headless CLI.

Tests and the command line need a host without a server process or TLS, but
one that behaves like the HTTPS host, or a test passes against one host and
fails against the other. So :class:`InProcessHost` takes each message through
the steps of the HTTPS path, less the transport: the port's dataclass becomes
the JSON the HTTPS link sends (:mod:`host_link.wire`, the same request keys),
is checked against the same schema of ``host_link/openapi.json`` (a malformed
message is :class:`~terminal.host.HostRejected`, as a ``422`` is for the
link), goes to the same :class:`~simulator.host.acquirer.Acquirer` over a
:class:`~simulator.host.store.HostStore`, and the answer is read back by
:mod:`host_link.wire`. The issuer's rules (:mod:`simulator.host.issuer`:
ARQC verification with an ARPC, blocked cards, expiry, the magic amounts
ending in ``51`` / ``05`` / ``54`` and ``999NN``, velocity), idempotency,
reversals, batch reconciliation and the records are therefore those of the
HTTPS host. One difference in identity: with no client certificate, a message's
``terminal_id`` and ``merchant_id`` are taken as the sender's (a reversal or
batch close, which names no merchant, is booked to the terminal's last one),
and no certificate serial is checked. The host's state is keyed by (merchant,
terminal) here too.

Where it lives. :func:`open_memory_host` (the ``memory`` entry of the
``posterm.hostlinks`` entry points, so that bootstrap opens it like any other
link) keeps the database in ``<data dir>/memory-host/host.db``: separate CLI
commands see the same host, and the host's operator commands work on it
(``posterm host records --data-dir <data dir>/memory-host``, ``posterm host
issuer block PAN --data-dir ...``). It stands for the acquirer of a merchant
the operator has given an allowance for refunds no sale covers (unreferenced,
or to another card; :mod:`simulator.host.rules`): a new ``memory`` host is
made with a default allowance of :data:`MEMORY_HOST_REFUND_ALLOWANCE` per
currency per 24 hours (``posterm host issuer refund-allowance '*' 0
--data-dir ...`` takes it away). Any other host starts with none. The database is opened on first use,
not when the link is made, so a command that never talks to the host creates
nothing. ``InProcessHost()`` without a path keeps an in-memory database and
writes nothing. A database that cannot be opened or used makes each call
raise :class:`~terminal.host.HostUnreachable` naming it (it is never reset).

Faults. :attr:`InProcessHost.faults` (a :class:`HostFaults`) can be changed at
any time from any thread, or replaced by another instance (a test can keep one
across terminal restarts). They are checked in this order, before the message
is validated:

- ``down = True``: :class:`~terminal.host.HostUnreachable`, nothing recorded;
- ``fail_before_processing = N``: the next N calls raise
  :class:`~terminal.host.HostNoAnswer` with no effect;
- ``reject_next = N``: the next N calls raise ``HostRejected``; for
  :meth:`~InProcessHost.advise_many`, the next N advices are each answered
  with a ``HostRejected`` in their place (the others are processed), as a
  malformed advice is;
- ``no_answer = N``: the next N calls are processed (recorded, answer kept for
  a repeat of the key) and then raise ``HostNoAnswer``.

``faults.only = {"advise"}`` limits them to those methods (``"authorise"``,
``"advise"``, ``"reverse"``, ``"close_batch"``, ``"echo"``, ``"qr"`` for every QR message;
:meth:`~InProcessHost.advise_many` counts as ``"advise"``, one call for the
whole batch, as one HTTPS request). ``None`` means every method.

Call log. :attr:`InProcessHost.calls` holds a :class:`Call` per message (per
advice for a batch), faulted and replayed ones included.

>>> from simulator.card_data import card_emv_data
>>> from terminal.host import AuthorisationRequest
>>> host = InProcessHost()
>>> card = card_emv_data(1051, 978)  # a simulated card's data objects, with its ARQC
>>> host.authorise(AuthorisationRequest("t1", "k1", "sale", 1051, 978, "T1", "M1", card, "tok")).response_code
'51'
>>> host.authorise(AuthorisationRequest("t2", "k2", "sale", 1000, 978, "T1", "M1", b"", "tok")).response_code
'14'
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from simulator.host.inprocess_faults import Call, HostFaults
from simulator.host.keys import HostKeys
from simulator.host.storage import Location, describe, parse_location
from simulator.host.store import DB_NAME, HostStore, Record, StoreError
from terminal.files import make_private_dir, private_umask
from terminal.host import (
    Advice,
    AuthorisationRequest,
    BatchTotals,
    HostAnswer,
    HostNoAnswer,
    HostRejected,
    HostUnreachable,
    Reversal,
    SettlementAnswer,
)
from terminal.ports import DeviceError

if TYPE_CHECKING:
    import datetime as dt

    from host_link.qr import QrLink
    from host_link.wire import EchoAnswer
    from simulator.host.acquirer import Acquirer, Reply, SalePosition
    from simulator.host.inprocess_qr import InProcessQr

__all__ = [
    "MEMORY_HOST_DIR",
    "MEMORY_HOST_REFUND_ALLOWANCE",
    "Call",
    "HostFaults",
    "InProcessHost",
    "Record",
    "memory_host_database",
    "open_memory_host",
]

_T = TypeVar("_T")

#: The folder of the ``memory`` host in a terminal's data directory (a host data directory of its own).
MEMORY_HOST_DIR = "memory-host"
#: The default refund allowance a new ``memory`` host is made with: 1000.00 per currency per 24 hours.
MEMORY_HOST_REFUND_ALLOWANCE = 100_000


def memory_host_database(data_dir: Path) -> Path:
    """Where the ``memory`` host of the terminal whose data directory is ``data_dir`` keeps its database."""
    return Path(data_dir) / MEMORY_HOST_DIR / DB_NAME


def open_memory_host(name: str, data_dir: Path) -> InProcessHost:
    """The ``posterm.hostlinks`` factory for ``memory``: the in-process host of this data directory."""
    if name != "memory":
        raise DeviceError(f"host link {name!r}: the in-process host is named 'memory'")
    from simulator.screen_pinpad_key import provision_if_configured

    provision_if_configured(data_dir)  # the simulator's keys for the on-screen PIN pad, if it is this terminal's
    return InProcessHost(memory_host_database(data_dir), refund_allowance=MEMORY_HOST_REFUND_ALLOWANCE)


def _outcome(answer: HostAnswer) -> str:
    return "approved" if answer.approved else f"declined:{answer.response_code}"


class InProcessHost:
    """The simulated acquirer as a :class:`~terminal.host.HostLink` and :class:`~terminal.host.BatchAdvising`.

    ``database``: the host's SQLite file (created on first use), or None for
    an in-memory one; or any host store's location (a ``postgresql://`` URL:
    the same acquirer on PostgreSQL, for tests that run on both engines), with
    ``keys`` naming its key store (the default: ``keys/`` beside a SQLite
    file). ``clock``: the host's time (issuer expiry and velocity checks,
    stored times); the system clock by default. Thread-safe.
    """

    def __init__(
        self,
        database: Location | None = None,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        refund_allowance: int | None = None,
        keys: HostKeys | None = None,
    ) -> None:
        """``refund_allowance``: the default allowance (merchant ``*``) a new database is made with."""
        self.database: Location | None = None if database is None else parse_location(str(database))
        self.faults = HostFaults()
        self._clock = clock
        self._refund_allowance = refund_allowance
        self._keys = keys
        self._lock = threading.RLock()
        self._calls: list[Call] = []
        self._acquirer: Acquirer | None = None
        self._echoes = 0

    def __repr__(self) -> str:
        return f"InProcessHost({self._where})"

    @property
    def _where(self) -> str:
        return ":memory:" if self.database is None else describe(self.database)

    @property
    def url(self) -> str:
        """How the host is named where a link shows its address (diagnostics)."""
        return "in-process host (memory)"

    # ------------------------------------------------------------------ HostLink

    def authorise(self, request: AuthorisationRequest) -> HostAnswer:
        """An online sale or refund, decided by the issuer."""
        from host_link import wire
        from host_link.client import header_key

        def read(reply: Reply) -> tuple[HostAnswer, list[str]]:
            answer = wire.authorisation_answer(reply.json())
            return answer, ["replay" if reply.replayed else _outcome(answer)]

        return self._call(
            "authorise",
            [request.txn_id],
            "authorisation",
            wire.authorisation_json(request),
            (request.terminal_id, request.merchant_id),
            header_key(request.idempotency_key),
            read,
        )

    def advise(self, advice: Advice) -> HostAnswer:
        """One advice (a batch of one); a rejected advice is raised as ``HostRejected``."""
        (result,) = self.advise_many([advice])
        if isinstance(result, HostRejected):
            raise result
        return result

    def advise_many(self, advices: Sequence[Advice]) -> list[HostAnswer | HostRejected]:
        """Several advices in one message; the results in order, a rejected advice as a ``HostRejected``."""
        from host_link import wire
        from host_link.client import advices_key

        if not advices:
            return []
        if len(advices) > wire.MAX_ADVICES_PER_REQUEST:
            raise ValueError(f"at most {wire.MAX_ADVICES_PER_REQUEST} advices per request, not {len(advices)}")
        with self._lock:
            self._faults_before("advise", [a.txn_id for a in advices], reject=False)
            # reject_next strikes advices, not the request: as a malformed advice is answered in its place
            refused: list[HostAnswer | HostRejected] = []
            while len(refused) < len(advices) and self.faults.take("reject_next", "advise"):
                txn_id = advices[len(refused)].txn_id
                refused.append(HostRejected(f"advice {txn_id} rejected: malformed message (injected fault)"))
                self._log("advise", [txn_id], "rejected")
            batch = list(advices[len(refused) :])
            if not batch:
                return refused

            def read(reply: Reply) -> tuple[list[HostAnswer | HostRejected], list[str]]:
                results = wire.advice_results(reply.json(), batch)
                outcomes = [
                    "replay"
                    if reply.replayed or i in reply.replayed_advices
                    else "rejected"
                    if isinstance(result, HostRejected)
                    else _outcome(result)
                    for i, result in enumerate(results)
                ]
                return results, outcomes

            return refused + self._call(
                "advise",
                [a.txn_id for a in batch],
                "advices",
                wire.advices_json(batch),
                (batch[0].terminal_id, batch[0].merchant_id),
                advices_key(batch),
                read,
                faults_checked=True,
            )

    def reverse(self, reversal: Reversal) -> HostAnswer:
        """Undo the approved records of the reversal's ``txn_id`` (acknowledged ``00`` in every case)."""
        from host_link import wire
        from host_link.client import header_key

        def read(reply: Reply) -> tuple[HostAnswer, list[str]]:
            doc = reply.json()
            answer = wire.reversal_answer(doc)
            undone = "nothing_to_reverse" if doc.get("message") else "reversed"
            return answer, ["replay" if reply.replayed else undone]

        return self._call(
            "reverse",
            [reversal.txn_id],
            "reversal",
            wire.reversal_json(reversal),
            (reversal.terminal_id, None),
            header_key(reversal.idempotency_key),
            read,
        )

    def close_batch(self, totals: BatchTotals) -> SettlementAnswer:
        """Reconcile the terminal's totals with its open host batch, then open a new one."""
        from host_link import wire
        from host_link.client import header_key

        def read(reply: Reply) -> tuple[SettlementAnswer, list[str]]:
            answer = wire.settlement_answer(reply.json())
            balance = "in_balance" if answer.in_balance else "out_of_balance"
            return answer, ["replay" if reply.replayed else balance]

        return self._call(
            "close_batch",
            [f"batch-{totals.batch_id}"],
            "batch-close",
            wire.batch_close_json(totals),
            (totals.terminal_id, None),
            header_key(f"batch-close:{totals.terminal_id}:{totals.batch_id}"),
            read,
        )

    def echo(self, *, force: bool = False) -> float:
        """The round-trip time in seconds (see :meth:`echo_details`)."""
        return self.echo_details(force=force).round_trip_seconds

    def echo_details(self, *, force: bool = False) -> EchoAnswer:
        """Is the host there and its database usable: what the diagnostics' host test asks of any link.

        A database that does not exist yet is not created (a fresh host has
        nothing to check); one that exists is opened and read. Faults apply as
        to a message (method ``"echo"``); ``force`` is accepted for the link's
        signature (there is no reachability window here).
        """
        from host_link.client import header_key  # noqa: F401 - what a payment will need, loaded by the echo
        from host_link.wire import EchoAnswer
        from simulator.host.acquirer import host_time

        started = time.monotonic()
        with self._lock:
            self._faults_before("echo", [""])
            if self._acquirer is not None or not isinstance(self.database, Path) or self.database.exists():
                with self._store() as store:
                    store.meta("seq")
            self._echoes += 1
            reference = f"E{self._echoes:010d}"
            self._log("echo", [""], "answered")
        return EchoAnswer(time.monotonic() - started, host_time(self._now()), reference)

    def qr_link(self, terminal_id: str, merchant_id: str) -> QrLink:
        """The terminal's QR calls to this host (what ``terminal.qr_link.qr_host_of`` asks a host link for)."""
        from host_link.qr import QrLink

        return QrLink(self.qr(terminal_id, merchant_id))

    def qr(self, terminal_id: str, merchant_id: str) -> InProcessQr:
        """The QR transport of one terminal to this host (``QrLink(host.qr(tid, mid))``, :mod:`.inprocess_qr`)."""
        from simulator.host.inprocess_qr import InProcessQr

        return InProcessQr(self, terminal_id, merchant_id)

    def close(self) -> None:
        """Close the database (it is opened again on the next call)."""
        with self._lock:
            if self._acquirer is not None:
                self._acquirer.store.close()
                self._acquirer = None

    def __enter__(self) -> InProcessHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ steering and inspection

    def block(self, card: str, code: str = "62") -> None:
        """Decline authorisations of this card (its PAN, or the host's card token) with ``code``.

        ``"62"`` restricted, ``"43"`` stolen...; on every terminal, whatever token the terminal sends.
        """
        from simulator.host.acquirer import stamp
        from simulator.host.admin import card_of

        with self._store() as store:
            store.block_card(card_of(store, card).token, code, stamp(self._now()))

    def unblock(self, card: str) -> None:
        """Stop declining this card (its PAN, or the host's card token)."""
        from simulator.host.admin import card_of

        with self._store() as store:
            store.unblock_card(card_of(store, card).token)

    def card_token(self, pan: str) -> str:
        """The host's own token of the card with ``pan`` (what its records and blocks name)."""
        with self._store() as store:
            return store.card_token(pan)

    def set_refund_allowance(self, merchant_id: str, daily_amount: int) -> None:
        """Let ``merchant_id`` refund what no sale covers, up to ``daily_amount`` per currency per 24 h (0: none)."""
        from simulator.host.acquirer import stamp

        with self._store() as store:
            store.set_refund_allowance(merchant_id, daily_amount, stamp(self._now()))

    def set_velocity(self, max_approvals: int, window_seconds: int) -> None:
        """At most ``max_approvals`` per card within ``window_seconds`` (then ``65``); 0 switches it off."""
        with self._store() as store:
            store.set_velocity(max_approvals, window_seconds)

    @property
    def records(self) -> tuple[Record, ...]:
        """Every processed authorisation, advice and reversal, oldest first (replays and faulted calls add none)."""
        with self._store() as store:
            return tuple(store.records())

    @property
    def calls(self) -> tuple[Call, ...]:
        """The log of every call made to this instance, faulted and replayed ones included."""
        with self._lock:
            return tuple(self._calls)

    def records_for(self, txn_id: str) -> tuple[Record, ...]:
        """The records with this ``txn_id`` (authorisations, advices and reversals)."""
        return tuple(r for r in self.records if r.txn_id == txn_id)

    def accepted_count(self, txn_id: str) -> int:
        """How many times an authorisation/advice with this ``txn_id`` was approved (reversed or not)."""
        return sum(1 for r in self.records_for(txn_id) if r.method != "reverse" and r.approved)

    def processed_count(self, txn_id: str) -> int:
        """How many authorisations/advices with this ``txn_id`` were processed (approved or declined)."""
        return sum(1 for r in self.records_for(txn_id) if r.method != "reverse")

    def is_reversed(self, txn_id: str) -> bool:
        """Whether an authorisation/advice with this ``txn_id`` was approved and then reversed."""
        return any(r.reversed for r in self.records_for(txn_id))

    def duplicates(self) -> dict[str, int]:
        """The ``txn_id`` of every transaction accepted more than once, with its count.

        The host approves a ``txn_id`` once per terminal (a second one is
        declined ``94``), so this is empty unless records of two terminals share
        a ``txn_id`` or an older database held a duplicate: a money check.
        """
        counts: dict[str, int] = {}
        for r in self.records:
            if r.method != "reverse" and r.approved:
                counts[r.txn_id] = counts.get(r.txn_id, 0) + 1
        return {txn: n for txn, n in counts.items() if n > 1}

    def batch_number(self, terminal_id: str, merchant_id: str | None = None) -> int:
        """The number of the terminal's open host batch (1 before the first close).

        The host keys batches by merchant and terminal; ``merchant_id``
        defaults to the one the terminal id last spoke for.
        """
        with self._store() as store:
            return store.batch_number(merchant_id or store.merchant_of(terminal_id) or "", terminal_id)

    def open_totals(self, terminal_id: str, merchant_id: str | None = None) -> dict[tuple[int, str], tuple[int, int]]:
        """The host's totals of the terminal's open batch: (currency, kind) -> (count, amount)."""
        from simulator.host.acquirer import open_totals

        with self._store() as store:
            return open_totals(store.open_records(merchant_id or store.merchant_of(terminal_id) or "", terminal_id))

    def sale_positions(self, terminal_id: str | None = None) -> dict[str, SalePosition]:
        """Per sale ``txn_id``: charged and refunded against it (approved, not reversed), for money checks."""
        from simulator.host.acquirer import sale_positions

        return sale_positions(self.records, terminal_id)

    # ------------------------------------------------------------------ machinery

    def _now(self) -> dt.datetime:
        import datetime as dt

        return self._clock() if self._clock is not None else dt.datetime.now(dt.UTC)

    def _open(self) -> Acquirer:
        """The acquirer over the database, opened on first use (under the lock)."""
        if self._acquirer is None:
            from simulator.host.acquirer import Acquirer

            location = self.database if self.database is not None else Path(":memory:")
            if isinstance(self.database, Path):  # in the terminal's data directory: as private as its journal
                make_private_dir(self.database.parent)
            with private_umask():  # the database file (and its -wal, -shm) readable by its owner only
                acquirer = Acquirer(HostStore(location, keys=self._keys), clock=self._clock)
            if self._refund_allowance is not None:
                self._provision(acquirer.store, self._refund_allowance)
            self._acquirer = acquirer
        return self._acquirer

    def _provision(self, store: HostStore, allowance: int) -> None:
        """Once per database: the default refund allowance (the operator may change it afterwards)."""
        from simulator.host.acquirer import stamp
        from simulator.host.store_issuer import DEFAULT_MERCHANT

        with store.transaction():
            if store.meta("provisioned") is None:
                store.set_refund_allowance(DEFAULT_MERCHANT, allowance, stamp(self._now()))
                store.set_meta("provisioned", "memory-host")

    @contextmanager
    def _store(self) -> Iterator[HostStore]:
        with self._lock, self._database_errors():
            yield self._open().store

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        """A database that cannot be used is a host that cannot be reached: nothing was processed."""
        try:
            yield
        except (StoreError, sqlite3.Error) as exc:
            raise HostUnreachable(f"in-process host database {self._where}: {exc}") from None

    def _log(self, method: str, txn_ids: Sequence[str], outcomes: Sequence[str] | str) -> None:
        if isinstance(outcomes, str):
            outcomes = [outcomes] * len(txn_ids)
        self._calls.extend(Call(method, t, o) for t, o in zip(txn_ids, outcomes, strict=True))

    def _faults_before(self, method: str, txn_ids: Sequence[str], *, reject: bool = True) -> None:
        """The faults that strike before anything is processed (see the module docstring)."""
        faults = self.faults
        if faults.is_down(method):
            self._log(method, txn_ids, "unreachable")
            raise HostUnreachable(f"in-process host is down ({method})")
        if faults.take("fail_before_processing", method):
            self._log(method, txn_ids, "no_answer_before_processing")
            raise HostNoAnswer(f"no answer from the in-process host ({method}, not processed)")
        if reject and faults.take("reject_next", method):
            self._log(method, txn_ids, "rejected")
            raise HostRejected(f"malformed message ({method}, injected fault)")

    def _call(
        self,
        method: str,
        txn_ids: list[str],
        what: str,
        body: dict[str, Any],
        sender: tuple[str, str | None],
        key: str,
        read: Callable[[Reply], tuple[_T, list[str]]],
        *,
        faults_checked: bool = False,
    ) -> _T:
        """Faults, schema, the acquirer, the answer read back: one message, as the HTTPS path takes it."""
        from simulator.host.acquirer import COMPONENTS, IdempotencyConflict, Peer, Refused
        from simulator.host.schema import first_error

        with self._lock:
            faults = self.faults
            if not faults_checked:
                self._faults_before(method, txn_ids)
            error = first_error(COMPONENTS[what], body)
            if error is not None:
                self._log(method, txn_ids, "rejected")
                raise HostRejected(f"malformed message: {error}")
            terminal_id, merchant_id = sender
            try:
                with self._database_errors():
                    acquirer = self._open()
                    if merchant_id is None:
                        merchant_id = acquirer.store.merchant_of(terminal_id) or ""
                    reply = acquirer.handle(what, body, Peer(terminal_id, merchant_id), key)
            except IdempotencyConflict as exc:
                self._log(method, txn_ids, "conflict")
                raise HostRejected(f"idempotency key reused with a different body ({exc})") from None
            except Refused as exc:  # as the HTTPS host's 422: nothing was done
                self._log(method, txn_ids, "refused")
                raise HostRejected(f"refused: {exc}") from None
            except HostUnreachable:
                self._log(method, txn_ids, "unreachable")
                raise
            answer, outcomes = read(reply)
            if faults.take("no_answer", method):
                self._log(method, txn_ids, [f"{o}+no_answer" for o in outcomes])
                raise HostNoAnswer(f"no answer from the in-process host ({method}, processed)")
            self._log(method, txn_ids, outcomes)
            return answer
