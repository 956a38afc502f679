"""The digital-currency kernel: one hard-wallet payment (§5) and the re-tap of a torn one (§7).

Pure: the caller passes the transport, the trust store, what it knows
(:class:`OfflineState`), the date and time, the challenge (inside the
request) and ``before_payment``, which must write the intent durably.  The
kernel sends PAY only after ``before_payment`` returned; if it raises, PAY is
not sent and the exception goes to the caller.

Every answer of the wallet ends in a :class:`WalletOutcome`: a transport
exception before PAY is ``no_wallet``, during or after PAY ``torn``; a
wallet's refusal status word is ``wallet_declined`` with its named refusal;
anything malformed is ``refused`` with ``malformed``.  Nothing else escapes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from cbdc import protocol as p
from cbdc.checks import Refusal, TrustStore, check_limits, check_record, check_wallet, verify_chain
from cbdc.protocol import Certificate, PaymentRecord, PaymentRequest, ProtocolError, UnsupportedVersion, WalletInfo
from cbdc.state import Intent, OfflineState

__all__ = [
    "Exchange",
    "Intent",
    "OfflineState",
    "OutcomeKind",
    "Transport",
    "WalletOutcome",
    "pay",
    "resume",
]


_T = TypeVar("_T")


class Transport(Protocol):
    """The port to the wallet (the same shape as emv's ApduTransport): a C-APDU in, the R-APDU with SW1 SW2 out."""

    def exchange(self, command: bytes) -> bytes: ...


class OutcomeKind(enum.StrEnum):
    APPROVED = "approved"  # the record verified: paid
    REFUSED = "refused"  # the terminal refused (``record`` set: after the wallet debited, keep it as evidence)
    WALLET_DECLINED = "wallet_declined"  # the wallet refused before debiting (its status word)
    TORN = "torn"  # PAY sent, no usable answer: ask for the same wallet again, then resume()
    NOT_DEBITED = "not_debited"  # resume(retry=False): the wallet shows it never debited for the intent
    OTHER_WALLET = "other_wallet"  # resume(): a different wallet was presented
    NO_WALLET = "no_wallet"  # no usable wallet answered before anything was debited


# A wallet's status words that name its own refusal (it checked before debiting).
WALLET_REFUSALS: dict[int, Refusal] = {
    p.StatusWord.BALANCE_TOO_LOW: Refusal.INSUFFICIENT_BALANCE,
    p.StatusWord.OVER_PAYMENT_LIMIT: Refusal.OVER_WALLET_LIMIT,
    p.StatusWord.OVER_DAILY_LIMIT: Refusal.OVER_DAILY_LIMIT,
    p.StatusWord.CURRENCY_NOT_HELD: Refusal.CURRENCY_MISMATCH,
    p.StatusWord.LOCKED: Refusal.WALLET_LOCKED,
}


@dataclass(frozen=True)
class Exchange:
    """One C-APDU and its R-APDU (None: the transport raised instead of answering)."""

    command: bytes
    response: bytes | None


@dataclass(frozen=True)
class WalletOutcome:
    kind: OutcomeKind
    refusal: Refusal | None = None
    record: PaymentRecord | None = None
    wallet_id: bytes | None = None
    info: WalletInfo | None = None
    wallet_certificate: Certificate | None = None
    operator_certificate: Certificate | None = None
    intent: Intent | None = None
    exchanges: tuple[Exchange, ...] = ()
    detail: str = ""  # why, in a few words (a protocol error's reason, a status word): for logs

    @property
    def approved(self) -> bool:
        return self.kind is OutcomeKind.APPROVED

    @property
    def counter(self) -> int | None:
        """The record's counter, else the intended one, else the wallet's last."""
        if self.record is not None:
            return self.record.counter
        if self.intent is not None:
            return self.intent.expected_counter
        return self.info.counter if self.info is not None else None

    def to_json(self) -> dict[str, Any]:
        """For logs and ``--json``: kind, refusal, wallet id, counter, record hash (no secret in any)."""
        return {
            "kind": self.kind.value,
            "refusal": self.refusal.value if self.refusal else None,
            "wallet_id": self.wallet_id.hex().upper() if self.wallet_id else None,
            "counter": self.counter,
            "record_hash": self.record.hash.hex() if self.record is not None else None,
            "detail": self.detail,
        }


class _Gone(Exception):
    """The transport raised: the wallet left or never answered."""


class _Session:
    def __init__(self, transport: Transport, errors: tuple[type[BaseException], ...]) -> None:
        self.transport = transport
        self.errors = errors
        self.exchanges: list[Exchange] = []

    def send(self, command: bytes) -> bytes:
        try:
            response = self.transport.exchange(command)
        except self.errors as exc:
            self.exchanges.append(Exchange(command, None))
            raise _Gone(type(exc).__name__) from exc
        self.exchanges.append(Exchange(command, bytes(response)))
        return bytes(response)


class _Stop(Exception):
    """Ends a run with an outcome (the fields other than kind, refusal and detail come from the run)."""

    def __init__(self, kind: OutcomeKind, refusal: Refusal | None = None, detail: str = "") -> None:
        super().__init__(detail)
        self.kind = kind
        self.refusal = refusal
        self.detail = detail


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Run:
    """What one tap has learnt so far; ``outcome`` builds the result from it."""

    def __init__(self, transport: Transport, errors: tuple[type[BaseException], ...]) -> None:
        self.session = _Session(transport, errors)
        self.info: WalletInfo | None = None
        self.wallet_cert: Certificate | None = None
        self.operator_cert: Certificate | None = None
        self.intent: Intent | None = None
        self.record: PaymentRecord | None = None

    def outcome(self, kind: OutcomeKind, refusal: Refusal | None = None, detail: str = "") -> WalletOutcome:
        wallet_id = self.info.wallet_id if self.info else (self.intent.wallet_id if self.intent else None)
        return WalletOutcome(
            kind=kind,
            refusal=refusal,
            record=self.record,
            wallet_id=wallet_id,
            info=self.info,
            wallet_certificate=self.wallet_cert,
            operator_certificate=self.operator_cert,
            intent=self.intent,
            exchanges=tuple(self.session.exchanges),
            detail=detail,
        )

    # ---- steps before PAY: a failure here debited nothing

    def command(self, command: bytes, name: str) -> bytes:
        """The data of a 9000 answer; otherwise stop (no_wallet, wallet_declined or malformed)."""
        try:
            response = self.session.send(command)
        except _Gone as exc:
            raise _Stop(OutcomeKind.NO_WALLET, None, f"{name}: no answer ({exc})") from exc
        try:
            data, sw = p.split_response(response)
        except ProtocolError as exc:
            raise _Stop(OutcomeKind.REFUSED, Refusal.MALFORMED, f"{name}: {exc.reason}") from exc
        if sw in WALLET_REFUSALS:
            raise _Stop(OutcomeKind.WALLET_DECLINED, WALLET_REFUSALS[sw], f"{name}: {sw:04X}")
        if sw != p.StatusWord.OK:
            raise _Stop(OutcomeKind.REFUSED, Refusal.MALFORMED, f"{name}: {sw:04X}")
        return data

    def select(self, selected: bytes | None) -> None:
        if selected is None:
            try:
                response = self.session.send(p.select_command())
            except _Gone as exc:
                raise _Stop(OutcomeKind.NO_WALLET, None, f"SELECT: no answer ({exc})") from exc
            if len(response) < 2 or response[-2:] != b"\x90\x00":
                raise _Stop(OutcomeKind.NO_WALLET, None, f"SELECT: {response[-2:].hex().upper()}")
            selected = response[:-2]
        _parse(p.SelectResponse.parse, selected)

    def read_wallet(self) -> None:
        self.info = _parse(WalletInfo.parse, self.command(p.get_wallet_info_command(), "GET WALLET INFO"))
        wallet = self.command(p.read_certificate_command(p.WALLET_CERTIFICATE), "READ CERTIFICATE 01")
        self.wallet_cert = _parse(Certificate.parse, wallet)
        operator = self.command(p.read_certificate_command(p.OPERATOR_CERTIFICATE), "READ CERTIFICATE 02")
        self.operator_cert = _parse(Certificate.parse, operator)

    # ---- PAY and after: the wallet may have debited

    def pay(self, intent: Intent, wallet_key: bytes) -> WalletOutcome:
        try:
            response = self.session.send(p.pay_command(intent.request))
        except _Gone as exc:
            return self.outcome(OutcomeKind.TORN, None, f"PAY: no answer ({exc})")
        if len(response) < 2:
            return self.outcome(OutcomeKind.TORN, None, "PAY: no status word")
        data, sw = response[:-2], int.from_bytes(response[-2:], "big")
        if sw in WALLET_REFUSALS:
            return self.outcome(OutcomeKind.WALLET_DECLINED, WALLET_REFUSALS[sw], f"PAY: {sw:04X}")
        if sw != p.StatusWord.OK:
            return self.outcome(OutcomeKind.TORN, None, f"PAY: {sw:04X}")
        return self.judge(data, intent, wallet_key, "PAY")

    def judge(self, data: bytes, intent: Intent, wallet_key: bytes, name: str) -> WalletOutcome:
        try:
            record = PaymentRecord.parse(data)
        except ProtocolError as exc:
            return self.outcome(OutcomeKind.REFUSED, Refusal.MALFORMED, f"{name}: {exc.reason}")
        self.record = record
        refusal = check_record(record, intent, wallet_key)
        if refusal is not None:
            return self.outcome(OutcomeKind.REFUSED, refusal, f"{name}: {refusal.value}")
        return self.outcome(OutcomeKind.APPROVED)


def _parse(parser: Callable[[bytes], _T], data: bytes) -> _T:
    try:
        return parser(data)
    except UnsupportedVersion as exc:
        raise _Stop(OutcomeKind.REFUSED, Refusal.UNSUPPORTED_VERSION, exc.reason) from exc
    except ProtocolError as exc:
        raise _Stop(OutcomeKind.REFUSED, Refusal.MALFORMED, exc.reason) from exc


def pay(
    transport: Transport,
    request: PaymentRequest,
    trust: TrustStore,
    state: OfflineState,
    on: datetime,
    before_payment: Callable[[Intent], None],
    *,
    selected: bytes | None = None,
    transport_errors: tuple[type[BaseException], ...] = (Exception,),
) -> WalletOutcome:
    """One payment from a hard wallet (§5).

    ``on``: the transaction's date and time (certificates are checked against its UTC date).
    ``selected``: the FCI (data of SELECT's answer) when Entry Point has already selected the
    wallet; otherwise the kernel sends SELECT itself.  ``transport_errors``: what the transport
    raises when the wallet is gone (anything else it raises is a bug and propagates).
    """
    run = _Run(transport, transport_errors)
    try:
        run.select(selected)
        run.read_wallet()
        assert run.info is not None and run.wallet_cert is not None and run.operator_cert is not None
        refusal = (
            verify_chain(run.wallet_cert, run.operator_cert, trust, _utc(on).date())
            or check_wallet(run.info, run.wallet_cert, request, state)
            or check_limits(request, trust, state)
        )
        if refusal is not None:
            return run.outcome(OutcomeKind.REFUSED, refusal, refusal.value)
    except _Stop as stop:
        return run.outcome(stop.kind, stop.refusal, stop.detail)
    run.intent = Intent(
        request=request,
        wallet_id=run.info.wallet_id,
        expected_counter=run.info.counter + 1,
        previous_hash=run.info.last_hash,
        wallet_certificate=run.wallet_cert.raw,
        operator_certificate=run.operator_cert.raw,
    )
    before_payment(run.intent)
    return run.pay(run.intent, run.wallet_cert.public_key)


def resume(
    transport: Transport,
    intent: Intent,
    trust: TrustStore,
    state: OfflineState,
    *,
    retry: bool = True,
    selected: bytes | None = None,
    transport_errors: tuple[type[BaseException], ...] = (Exception,),
) -> WalletOutcome:
    """The re-tap after a torn payment (§7).

    - another wallet: ``other_wallet`` (ask for the same one);
    - the wallet did not debit (counter = expected - 1, same last hash): PAY again with the SAME
      request (``retry``), or ``not_debited`` without ``retry``;
    - it did (counter >= expected): GET RECORD of the expected counter, checked against the intent
      like PAY's answer: ``approved`` completes the same payment;
    - a counter below expected - 1, or the same counter with another last hash: ``refused``
      (``counter_replayed`` / ``chain_broken``) without a record;
    - no usable answer before a record: ``no_wallet`` (ask again); none to PAY or GET RECORD: ``torn``.

    The certificates are the intent's (read and checked at the first tap), checked again against
    ``trust`` at the request's date, so that a root withdrawn or a wallet blocked since then is refused.
    """
    run = _Run(transport, transport_errors)
    run.intent = intent
    try:
        run.wallet_cert = Certificate.parse(intent.wallet_certificate)
        run.operator_cert = Certificate.parse(intent.operator_certificate)
    except ProtocolError as exc:
        raise ValueError(f"the intent's certificates do not parse: {exc.reason}") from exc
    try:
        run.select(selected)
        run.info = _parse(WalletInfo.parse, run.command(p.get_wallet_info_command(), "GET WALLET INFO"))
    except _Stop as stop:
        kind = OutcomeKind.WALLET_DECLINED if stop.kind is OutcomeKind.WALLET_DECLINED else OutcomeKind.NO_WALLET
        return run.outcome(kind, stop.refusal if kind is OutcomeKind.WALLET_DECLINED else None, stop.detail)
    info = run.info
    if info.wallet_id != intent.wallet_id:
        return run.outcome(OutcomeKind.OTHER_WALLET, None, f"presented {info.wallet_id_hex}")
    refusal = verify_chain(run.wallet_cert, run.operator_cert, trust, _utc(intent.request.date_time).date())
    if refusal is None and state.last_counter(intent.wallet_id) >= intent.expected_counter:
        refusal = Refusal.COUNTER_REPLAYED
    if refusal is not None:
        return run.outcome(OutcomeKind.REFUSED, refusal, refusal.value)
    key = run.wallet_cert.public_key
    if info.counter == intent.expected_counter - 1:
        if info.last_hash != intent.previous_hash:
            return run.outcome(OutcomeKind.REFUSED, Refusal.CHAIN_BROKEN, "the wallet's last hash changed")
        if not retry:
            return run.outcome(OutcomeKind.NOT_DEBITED, None, "the wallet did not debit")
        return run.pay(intent, key)
    if info.counter < intent.expected_counter - 1:
        return run.outcome(OutcomeKind.REFUSED, Refusal.COUNTER_REPLAYED, "the wallet's counter went back")
    try:
        response = run.session.send(p.get_record_command(intent.expected_counter))
    except _Gone as exc:
        return run.outcome(OutcomeKind.TORN, None, f"GET RECORD: no answer ({exc})")
    if len(response) < 2 or response[-2:] != b"\x90\x00":
        return run.outcome(OutcomeKind.TORN, None, f"GET RECORD: {response[-2:].hex().upper()}")
    return run.judge(response[:-2], intent, key, "GET RECORD")
