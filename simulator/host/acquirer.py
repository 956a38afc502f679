"""The simulated acquirer's business, apart from any transport: one set of rules for both ways in.

The host is reached two ways: over HTTPS (:mod:`simulator.host.app`, which
deals with TLS identity, headers, JSON parsing, schema validation and status
codes) and in-process (:mod:`simulator.host.inprocess`, a
:class:`~terminal.host.HostLink` for tests and the headless CLI, which encodes
the port's dataclasses with :mod:`host_link.wire` and validates them against
the same schemas). Both hand :meth:`Acquirer.handle` a body already valid
against its component of ``host_link/openapi.json`` (:data:`COMPONENTS`), the
:class:`Peer` that sent it and the request's idempotency key, and pass on the
:class:`Reply`. So the two hosts decide with the same :class:`Issuer`, keep
the same :class:`~simulator.host.store.Record` rows in a
:class:`~simulator.host.store.HostStore`, honour idempotency alike and
reconcile batches alike: what a test sees on one is what the other does.

Tenancy. A terminal is its (merchant id, terminal id) pair, the subject of its
certificate: idempotency keys, advice keys, host batches, batch closes and the
records a reversal or a settlement touches are those of that pair only, so a
terminal id used by two merchants never reaches the other's sales or batches.

Idempotency. Per terminal (merchant and terminal id) and request key, the host keeps a keyed digest of
the canonical body (``retransmission`` left out, also inside advices) and the
answer. A known key with the same digest gets the stored answer again
(:attr:`Reply.replayed`), with another digest :class:`IdempotencyConflict`.
Looking up, processing and storing the answer happen in one transaction that
first takes the terminal's lock (:meth:`HostStore.lock`; on SQLite the
transaction's ``BEGIN IMMEDIATE`` already runs one writer at a time), so two
threads, processes or host workers sending the same key cannot both process
it: the second waits and replays the first's answer. A transaction that lost
a race anyway (a deadlock, a key stored meanwhile: :class:`StoreConflict`) was
rolled back whole, and is run again, up to :data:`ATTEMPTS` times. An advice
also has its own key: repeated in another request with the same content it gets its first result
(:attr:`Reply.replayed_advices`), with other content it is rejected. A batch
close is also keyed by ``batch_id``: a second close of the same batch with the
same lines gets the first answer, with other lines a conflict.

What is processed (the whole order of the checks is in :mod:`simulator.host.issuer`):

- an authorisation (sale or refund): a ``txn_id`` approved before is a
  duplicate (``94``, :mod:`simulator.host.rules`); the card must prove itself
  (card data and a cryptogram that verifies, :mod:`simulator.host.proofs`;
  a refund against a sale may come without a card: it goes to the sale's);
  a refund must be covered by its sale or by the merchant's allowance
  (:func:`~simulator.host.rules.check_refund`); then the issuer decides, and
  the record keeps the host's own token of the card;
- a deferred authorisation advice likewise, decided now (so it may be
  declined after forwarding); an offline approval's TC, and an offline
  refund's card and cover, are checked the same way, and then accepted:
  the card approved them;
- a reversal must name the amount and currency of what it undoes
  (:func:`~simulator.host.rules.check_reversal`, else :class:`Refused`, 422);
  it marks the approved, not reversed records of its ``txn_id`` and terminal
  (merchant and terminal id) reversed, and is acknowledged (``00``) even when there is nothing to
  reverse;
- a batch close compares the terminal's totals with the approved, not
  reversed records of its open host batch (:func:`terminal.host.reconcile`)
  and opens a new host batch.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from emv.pan import pan_of
from simulator.host.cbdc_operator import CBDC_KINDS, Operator, Verdict
from simulator.host.issuer import FORMAT_ERROR_CODE, Decision, EmvDataError, Issuer, parse_emv_data
from simulator.host.params import for_terminal
from simulator.host.positions import SalePosition, open_totals, sale_positions
from simulator.host.proofs import Claim, ProofVerifier, Proven, Purpose, Refusal
from simulator.host.rules import Refused, check_refund, check_reversal, duplicate, replayed
from simulator.host.schema import first_error
from simulator.host.store import HostStore, StoreConflict
from simulator.host.wallets import WalletDesk
from terminal.host import reconcile
from terminal.pinblock import EncryptedPin, PinFormat

__all__ = [
    "ATTEMPTS",
    "COMPONENTS",
    "KEY_PATTERN",
    "REJECTED_CODE",
    "Acquirer",
    "IdempotencyConflict",
    "Peer",
    "Refused",
    "Reply",
    "SalePosition",
    "host_time",
    "open_totals",
    "sale_positions",
    "stamp",
]

#: The state-changing messages and the component schema their body must satisfy.
COMPONENTS: Final[dict[str, str]] = {
    "sign-on": "SignOnRequest",
    "authorisation": "AuthorisationRequest",
    "advices": "AdvicesRequest",
    "reversal": "ReversalRequest",
    "batch-close": "BatchCloseRequest",
    "qr-payment": "QrPaymentRequest",
    "qr-cancel": "QrCancelRequest",
    "qr-order": "QrOrderRequest",
    "qr-close": "QrCloseRequest",
    "qr-refund": "QrRefundRequest",
}
#: What an idempotency key (the header, or an advice's own) may be.
KEY_PATTERN: Final = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
REJECTED_CODE: Final = FORMAT_ERROR_CODE  # the response code of a malformed advice
#: How many times a request's transaction is run when it keeps losing races (StoreConflict).
ATTEMPTS: Final = 5


class IdempotencyConflict(Refused):
    """A request key (or a batch) seen before with another body; nothing was done."""

    status = 409
    error = "idempotency_conflict"


@dataclass(frozen=True)
class Peer:
    """The terminal a request comes from: its certificate's identity, or (in-process) its own word.

    ``serial``: the client certificate's serial number (upper-case hex, no
    leading zeros) over HTTPS, which the host checks against the certificates
    it issued and has not revoked; None in-process (no certificate).
    """

    terminal_id: str
    merchant_id: str
    serial: str | None = None


@dataclass(frozen=True)
class Reply:
    """The host's answer: status and JSON body, as sent and as stored for a repeat of the key.

    ``replayed``: the whole request was a repeat; ``replayed_advices``: the
    places of the advices that got their earlier result (a new request that
    carried them again).
    """

    status: int
    body: bytes
    replayed: bool = False
    replayed_advices: tuple[int, ...] = ()

    def json(self) -> Any:
        return json.loads(self.body)


def host_time(now: dt.datetime) -> str:
    """The host's time as it tells terminals (RFC 3339, seconds, Z)."""
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp(now: dt.datetime) -> str:
    """Stored times: ISO 8601 UTC with microseconds (they sort as text)."""
    return now.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _without_retransmission(body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    out = {k: v for k, v in body.items() if k != "retransmission"}
    if isinstance(out.get("advices"), list):
        out["advices"] = [_without_retransmission(a) for a in out["advices"]]
    return out


def _canonical(what: str, body: Any) -> str:
    return json.dumps({"what": what, "body": _without_retransmission(body)}, sort_keys=True, separators=(",", ":"))


def _online_pin(body: dict[str, Any]) -> EncryptedPin | None:
    """The authorisation's online PIN (schema-valid: format, block and KSN agree), or None."""
    pin = body.get("pin")
    if pin is None:
        return None
    return EncryptedPin(bytes.fromhex(pin["block"]), bytes.fromhex(pin["ksn"]), PinFormat(pin["format"]))


_Processed = tuple[int, bytes, tuple[int, ...]]
_Handler = Callable[[dict[str, Any], Peer, str, dt.datetime], _Processed]


class Acquirer:
    """The host's processing of the state-changing messages over one store (thread-safe through it)."""

    def __init__(
        self,
        store: HostStore,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        proofs: tuple[ProofVerifier, ...] | None = None,
    ) -> None:
        """``proofs``: the means of payment the issuer verifies (default: EMV cards; :mod:`simulator.host.proofs`)."""
        self.store = store
        self.issuer = Issuer(store) if proofs is None else Issuer(store, proofs)
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.wallets = WalletDesk(store)
        #: The digital-currency operator (the advices of :data:`~simulator.host.cbdc_operator.CBDC_KINDS`).
        self.operator = Operator(store)
        self._handlers: dict[str, _Handler] = {
            "sign-on": self._sign_on,
            "authorisation": self._authorise,
            "advices": self._advise,
            "reversal": self._reverse,
            "batch-close": self._close_batch,
            "qr-payment": self._qr(self.wallets.pay_by_code),
            "qr-cancel": self._qr(self.wallets.cancel),
            "qr-order": self._qr(self.wallets.create_order),
            "qr-close": self._qr(self.wallets.close_order),
            "qr-refund": self._qr(self.wallets.refund),
        }

    def handle(self, what: str, body: dict[str, Any], peer: Peer, key: str) -> Reply:
        """Process (or replay) the message ``what`` (a key of :data:`COMPONENTS`).

        ``body`` must be valid against its component schema and name ``peer``
        where it names a terminal or merchant (the caller checks both), and
        ``key`` match :data:`KEY_PATTERN`. Raises :class:`Refused` (nothing
        done, nothing stored): :class:`IdempotencyConflict` (409), or a
        reversal that does not name what it reverses (422).
        """
        handler = self._handlers[what]
        digest = self.store.digest(_canonical(what, body))
        attempt = 1
        while True:
            try:
                return self._handle_once(handler, body, peer, key, digest)
            except StoreConflict:
                if attempt >= ATTEMPTS or self.store.in_transaction:
                    raise  # the caller's own transaction is gone: only it can run it again
                attempt += 1

    def _handle_once(self, handler: _Handler, body: dict[str, Any], peer: Peer, key: str, digest: str) -> Reply:
        with self.store.transaction():
            self.store.lock("terminal", peer.merchant_id, peer.terminal_id)
            cached = self.store.cached_response(peer.merchant_id, peer.terminal_id, key)
            if cached is not None:
                if cached.digest != digest:
                    raise IdempotencyConflict("the Idempotency-Key was used before with another body")
                return Reply(cached.status, cached.body, replayed=True)
            now = self.clock()
            status, payload, replayed_advices = handler(body, peer, key, now)
            self.store.save_response(peer.merchant_id, peer.terminal_id, key, digest, status, payload, stamp(now))
        return Reply(status, payload, replayed_advices=replayed_advices)

    @staticmethod
    def _qr(method: Callable[[dict[str, Any], str, str, dt.datetime], dict[str, Any]]) -> _Handler:
        """A QR message's handler: the wallet desk's answer, JSON, status 200 (simulator.host.wallets)."""

        def handle(body: dict[str, Any], peer: Peer, key: str, now: dt.datetime) -> _Processed:
            return 200, _json_bytes(method(body, peer.merchant_id, peer.terminal_id, now)), ()

        return handle

    # ------------------------------------------------------------------ helpers

    def _reference(self, what: str) -> str:
        return self.store.next_reference(what)

    def _approval_code(self, reference: str) -> str:
        """Six characters of [A-Z2-7], derived from the reference under the host's secret."""
        return base64.b32encode(bytes.fromhex(self.store.digest(f"approval:{reference}"))).decode("ascii")[:6]

    @staticmethod
    def _tags(emv_data: str) -> dict[int, bytes]:
        return parse_emv_data(bytes.fromhex(emv_data))

    # ------------------------------------------------------------------ messages (inside the transaction)

    def _sign_on(self, body: dict[str, Any], peer: Peer, key: str, now: dt.datetime) -> _Processed:
        self.store.record_sign_on(peer.terminal_id, peer.merchant_id, body["software_version"], stamp(now))
        version = for_terminal(self.store, peer.merchant_id, peer.terminal_id, operator=self.operator).version
        reference = self._reference("sign_on")
        payload = {"host_time": host_time(now), "parameters_version": version, "host_reference": reference}
        return 200, _json_bytes(payload), ()

    def _decide(
        self,
        message: dict[str, Any],
        peer: Peer,
        tags: dict[int, bytes],
        now: dt.datetime,
        pin: EncryptedPin | None = None,
    ) -> Decision:
        """An authorisation's or an advice's decision: duplicate, proof, refund cover, then the issuer.

        ``pin``: an authorisation's online PIN block (the issuer checks it against the card's PIN).
        """
        refusal = duplicate(self.store, peer.merchant_id, peer.terminal_id, message["txn_id"])
        if refusal is not None:
            return Issuer.refuse(refusal)
        kind, original = message["kind"], message.get("original_txn_id")
        refund = kind in ("refund", "offline_refund")
        purposes = {"offline_approval": Purpose.OFFLINE, "deferred_authorisation": Purpose.DEFERRED}
        purpose = Purpose.REFUND if refund else purposes.get(kind, Purpose.ONLINE)
        proven: Proven | None = None
        if not (refund and original is not None) or any(p.recognises(tags) for p in self.issuer.proofs):
            claim = Claim(purpose, message["amount"], message["currency"])
            checked = self.issuer.prove(tags, claim)  # a refund against a sale may come without a card
            if isinstance(checked, Refusal):
                return Issuer.refuse(checked)
            proven = checked
            refusal = replayed(self.store, checked)
            if refusal is not None:
                return Issuer.refuse(refusal, proven)
        note: str | None = None
        if refund:
            cover = check_refund(
                self.store,
                merchant_id=peer.merchant_id,
                terminal_id=peer.terminal_id,
                original_txn_id=original,
                amount=message["amount"],
                currency=message["currency"],
                card=proven,
                now=now,
            )
            if isinstance(cover, Refusal):
                return Issuer.refuse(cover, proven)
            note = cover.note
            proven = proven if proven is not None else Proven(cover.card_token)  # the sale's card
        assert proven is not None
        if kind in ("offline_approval", "offline_refund"):  # the card approved it: the host takes note
            return Decision("00", note or "offline", None, proven.token, proven.proof)
        if kind == "deferred_authorisation" and proven.cryptogram == "tc":
            note = "deferred_card_tc_y3"  # an inserted card approved it, unable to go online: the issuer decides now
        decided = self.issuer.decide(amount=message["amount"], proven=proven, now=now, pin=pin, pan=pan_of(tags))
        decision = replace(decided, proof=proven.proof)
        return replace(decision, reason=note) if decision.approved and note else decision

    def _authorise(self, body: dict[str, Any], peer: Peer, key: str, now: dt.datetime) -> _Processed:
        try:
            tags = self._tags(body["emv_data"])
        except EmvDataError:
            decision = Decision(FORMAT_ERROR_CODE, "format_error")  # schema-valid hex, but not TLV: ISO "30"
        else:
            decision = self._decide(body, peer, tags, now, _online_pin(body))
        reference = self._reference("authorise")
        approval = self._approval_code(reference) if decision.approved else None
        self.store.add_record(
            method="authorise",
            txn_id=body["txn_id"],
            idempotency_key=key,
            kind=body["kind"],
            terminal_id=peer.terminal_id,
            merchant_id=peer.merchant_id,
            amount=body["amount"],
            currency=body["currency"],
            pan_token=decision.card_token,
            proof=decision.proof if decision.approved else None,
            response_code=decision.response_code,
            approved=decision.approved,
            host_reference=reference,
            approval_code=approval,
            original_txn_id=body.get("original_txn_id"),
            note=decision.reason,
            created_at=stamp(now),
        )
        payload = {
            "status": "approved" if decision.approved else "declined",
            "response_code": decision.response_code,
            "approval_code": approval,
            "host_reference": reference,
            "arpc": decision.arpc.hex().upper() if decision.arpc is not None else None,
        }
        if decision.issuer_authentication_data:
            payload["issuer_authentication_data"] = decision.issuer_authentication_data.hex().upper()
        if decision.scripts:
            payload["issuer_scripts"] = decision.scripts.hex().upper()
        return 200, _json_bytes(payload), ()

    def _advise(self, body: dict[str, Any], peer: Peer, key: str, now: dt.datetime) -> _Processed:
        results: list[dict[str, Any]] = []
        replayed: list[int] = []
        # the terminal's open host batch, for the whole request
        batch = self.store.batch_number(peer.merchant_id, peer.terminal_id)
        for index, item in enumerate(body["advices"]):
            result, again = self._one_advice(item, peer, now, batch)
            results.append(result)
            if again:
                replayed.append(index)
        return 200, _json_bytes({"results": results}), tuple(replayed)

    @staticmethod
    def _rejected(item: Any, message: str) -> dict[str, Any]:
        def ident(name: str) -> str | None:
            value = item.get(name) if isinstance(item, dict) else None
            return value if isinstance(value, str) and KEY_PATTERN.fullmatch(value) else None

        return {
            "txn_id": ident("txn_id"),
            "idempotency_key": ident("idempotency_key"),
            "outcome": "rejected",
            "response_code": REJECTED_CODE,
            "approval_code": None,
            "host_reference": None,
            "message": message,
        }

    def _one_advice(self, item: Any, peer: Peer, now: dt.datetime, batch: int) -> tuple[dict[str, Any], bool]:
        """The result of one advice, and whether it is the result given to its key before."""
        error = first_error("Advice", item)
        if error is not None:
            return self._rejected(item, error), False
        advice: dict[str, Any] = item
        if advice["terminal_id"] != peer.terminal_id:
            return self._rejected(advice, "terminal_id differs from the client certificate's"), False
        if advice["merchant_id"] != peer.merchant_id:
            return self._rejected(advice, "merchant_id differs from the client certificate's"), False
        if advice["kind"] in CBDC_KINDS:
            return self._cbdc_advice(advice, peer, now, batch)
        try:
            tags = self._tags(advice["emv_data"])
        except EmvDataError as exc:
            return self._rejected(advice, str(exc)), False
        digest = self.store.digest(_canonical("advice", advice))
        prior = self.store.advice_result(peer.merchant_id, peer.terminal_id, advice["idempotency_key"])
        if prior is not None:
            if prior[0] == digest:
                return prior[1], True
            return self._rejected(advice, "idempotency_key was used before with another advice"), False
        decision = self._decide(advice, peer, tags, now)
        code, approved, note = decision.response_code, decision.approved, decision.reason
        reference = self._reference("advise")
        approval = self._approval_code(reference) if approved and advice["kind"] == "deferred_authorisation" else None
        self.store.add_record(
            method="advise",
            batch=batch,
            txn_id=advice["txn_id"],
            idempotency_key=advice["idempotency_key"],
            kind=advice["kind"],
            terminal_id=peer.terminal_id,
            merchant_id=peer.merchant_id,
            amount=advice["amount"],
            currency=advice["currency"],
            pan_token=decision.card_token,
            proof=decision.proof if decision.approved else None,
            response_code=code,
            approved=approved,
            host_reference=reference,
            approval_code=approval,
            original_txn_id=advice.get("original_txn_id"),
            note=note,
            created_at=stamp(now),
        )
        result = {
            "txn_id": advice["txn_id"],
            "idempotency_key": advice["idempotency_key"],
            "outcome": "accepted" if approved else "declined",
            "response_code": code,
            "approval_code": approval,
            "host_reference": reference,
            "message": None if approved else f"declined after forwarding ({note})",
        }
        self.store.save_advice_result(peer.merchant_id, peer.terminal_id, advice["idempotency_key"], digest, result)
        return result, False

    def _cbdc_advice(
        self, advice: dict[str, Any], peer: Peer, now: dt.datetime, batch: int
    ) -> tuple[dict[str, Any], bool]:
        """A digital-currency advice: the operator decides (:mod:`simulator.host.cbdc_operator`)."""
        digest = self.store.digest(_canonical("advice", advice))
        prior = self.store.advice_result(peer.merchant_id, peer.terminal_id, advice["idempotency_key"])
        if prior is not None:
            if prior[0] == digest:
                return prior[1], True
            return self._rejected(advice, "idempotency_key was used before with another advice"), False
        refusal = None
        if advice["kind"] == "cbdc_payment":  # a transaction is approved once, whatever it carries
            refusal = duplicate(self.store, peer.merchant_id, peer.terminal_id, advice["txn_id"])
        if refusal is not None:
            verdict = Verdict(refusal.code, refusal.reason)
        else:
            verdict = self.operator.advise(advice, peer.merchant_id, peer.terminal_id, now)
        if verdict.rejected:
            return self._rejected(advice, verdict.reason), False
        reference = self._reference("advise")
        self.store.add_record(
            method="advise",
            batch=batch,
            txn_id=advice["txn_id"],
            idempotency_key=advice["idempotency_key"],
            kind=advice["kind"],
            terminal_id=peer.terminal_id,
            merchant_id=peer.merchant_id,
            amount=advice["amount"],
            currency=advice["currency"],
            pan_token=verdict.wallet_id,
            response_code=verdict.response_code,
            approved=verdict.credited,
            host_reference=reference,
            note=verdict.reason,
            created_at=stamp(now),
        )
        result = {
            "txn_id": advice["txn_id"],
            "idempotency_key": advice["idempotency_key"],
            "outcome": "accepted" if verdict.accepted else "declined",
            "response_code": verdict.response_code,
            "approval_code": None,
            "host_reference": reference,
            "message": verdict.message,
        }
        self.store.save_advice_result(peer.merchant_id, peer.terminal_id, advice["idempotency_key"], digest, result)
        return result, False

    def _reverse(self, body: dict[str, Any], peer: Peer, key: str, now: dt.datetime) -> _Processed:
        check_reversal(
            self.store,
            merchant_id=peer.merchant_id,
            terminal_id=peer.terminal_id,
            txn_id=body["txn_id"],
            amount=body["amount"],
            currency=body["currency"],
        )
        undone = self.store.reverse(peer.merchant_id, peer.terminal_id, body["txn_id"])
        reference = self._reference("reverse")
        self.store.add_record(
            method="reverse",
            txn_id=body["txn_id"],
            idempotency_key=key,
            kind=body["reason"],
            terminal_id=peer.terminal_id,
            merchant_id=peer.merchant_id,
            amount=body["amount"],
            currency=body["currency"],
            pan_token="",
            response_code="00",
            approved=True,
            host_reference=reference,
            note=f"reversed {undone}" if undone else "nothing to reverse",
            created_at=stamp(now),
        )
        payload = {
            "status": "approved",
            "response_code": "00",
            "host_reference": reference,
            "message": None if undone else "nothing to reverse",
        }
        return 200, _json_bytes(payload), ()

    def _close_batch(self, body: dict[str, Any], peer: Peer, key: str, now: dt.datetime) -> _Processed:
        lines_digest = self.store.digest(_canonical("batch-lines", body["lines"]))
        prior = self.store.batch_close(peer.merchant_id, peer.terminal_id, body["batch_id"])
        if prior is not None:
            if prior[0] != lines_digest:
                raise IdempotencyConflict(f"batch {body['batch_id']} was closed before with other totals")
            return 200, prior[1], ()
        lines = ((line["currency"], line["kind"], line["count"], line["amount"]) for line in body["lines"])
        totals = open_totals(self.store.open_records(peer.merchant_id, peer.terminal_id))
        batch = self.store.batch_number(peer.merchant_id, peer.terminal_id)
        qr_totals = self.store.qr_totals(peer.merchant_id, peer.terminal_id, batch)
        for (currency, kind, _), (count, amount) in qr_totals.items():
            had_count, had_amount = totals.get((currency, kind), (0, 0))
            totals[(currency, kind)] = (had_count + count, had_amount + amount)  # QR orders count like card sales
        differences = reconcile(lines, totals)
        reference = self._reference("close")
        self.store.open_new_batch(peer.merchant_id, peer.terminal_id)
        payload = _json_bytes({"in_balance": not differences, "host_reference": reference, "differences": differences})
        self.store.save_batch_close(peer.merchant_id, peer.terminal_id, body["batch_id"], lines_digest, payload)
        return 200, payload, ()
