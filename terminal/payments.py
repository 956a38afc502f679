"""Payments: a sale, a refund, a void, from the card's answer to the journal and the host.

The :class:`~terminal.facade.Terminal` facade holds the lock and prints the
receipt; this module decides.  A payment is written to the journal before the
terminal acts on it (write-ahead), through :meth:`terminal.core.Core.record`,
and every refund and void passes the money rule first (the follow-up table of
:mod:`terminal.lifecycle`): what the customer has paid for a sale is its
amount less its refunds, or nothing if voided or reversed, never below nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from emv.outcome import Message, Outcome, ReaderStatus, TransactionResult, UiMessage
from terminal.card_reading import (
    COMPLETION_TAGS,
    CardRequest,
    ExtraKernels,
    card_details,
    card_record,
    host_data,
    scheme_of,
)
from terminal.contact_reading import HeldCard
from terminal.core import Core
from terminal.follow_ups import FollowUps
from terminal.forwarding import Forwarder
from terminal.host import (
    AuthorisationRequest,
    HostAnswer,
    HostCertificateRejected,
    HostError,
    HostNoAnswer,
    HostRejected,
    HostUnreachable,
    Reversal,
)
from terminal.lifecycle import (
    APPROVED_STATES,
    Event,
    State,
)
from terminal.offline import OfflineBehavior, PaymentRefused
from terminal.payment_text import card_after as _card_after
from terminal.payment_text import not_completed_text as _not_completed_text
from terminal.pin_entry import OnlinePin, collect_online_pin, online_pin_wanted, pin_detail, tvr_after_bypass
from terminal.ports import CancelToken
from terminal.refund_pin import collect_refund_pin, refund_pin_needed
from terminal.response_codes import decline_reason
from terminal.results import PaymentResult
from terminal.store import CardRecord, NewPayment, StorageError

if TYPE_CHECKING:
    from terminal.cbdc_payment import WalletSale

__all__ = ["Payments"]


class Payments(FollowUps):
    """The payment verbs behind the facade; callers hold the terminal's lock."""

    def __init__(
        self,
        core: Core,
        forwarder: Forwarder,
        read_card: Callable[[CardRequest, ExtraKernels | None], TransactionResult],
        new_token: Callable[[], CancelToken] | None = None,
    ) -> None:
        self._core = core
        self._forwarder = forwarder
        self._read_card = read_card
        self._new_token = new_token  # the terminal's cancel for a PIN entry (Terminal.cancel reaches it)
        # An inserted card waiting for the host's answer to its ARQC (terminal.contact_reading).
        self._held: HeldCard | None = None

    def hold(self, card: HeldCard) -> None:
        """The card reading hands over an inserted card to complete after the host's answer."""
        self._release()
        self._held = card

    def release(self) -> None:
        """Power off an inserted card still held (a reading that made no payment: a card lookup)."""
        self._release()

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.close()

    def _new_txn_id(self) -> tuple[str, str]:
        """A new transaction id and the moment it was made (ISO 8601 UTC).

        Time-sortable (the id starts with the UTC time, so a range of ids is a
        range of dates); 48 random bits keep two ids of the same second apart.
        """
        moment = self._core.clock.now().astimezone(UTC)
        return f"{moment:%Y%m%d%H%M%S}-{secrets.token_hex(6)}", moment.isoformat(timespec="microseconds")

    def oldest_queued(self) -> tuple[str | None, float | None]:
        """When the oldest SAF entry was made, and its age in seconds now."""
        oldest = self._core.store.saf_oldest()
        age = None if oldest is None else (self._core.clock.now() - datetime.fromisoformat(oldest)).total_seconds()
        return oldest, age

    def _check_offline_room(self, code: int, amount: int) -> None:
        _, age = self.oldest_queued()
        self._core.settings.offline_limits.check(code, amount, self._core.store.saf_totals(), age)

    def _offline_room(self, code: int, amount: int) -> bool:
        try:
            self._check_offline_room(code, amount)
        except PaymentRefused:
            return False
        return True

    def _result(
        self, txn_id: str, message: str, emv: TransactionResult | None = None, warnings: tuple[str, ...] = ()
    ) -> PaymentResult:
        row = self._core.store.get(txn_id)
        if row is None:  # pragma: no cover - record() created it
            raise StorageError(f"transaction {txn_id} vanished")
        return PaymentResult.from_row(row, message, emv, warnings)

    # -- online ---------------------------------------------------------------------------------

    def _reverse_unrecorded(self, txn_id: str, amount: int, code: int) -> None:
        """The host approved but the approval cannot be stored: reverse it now, best effort.

        The payment stays ``authorising`` in the journal, so the next start-up
        queues a reversal too; the host acknowledges a second one as "nothing
        to reverse".
        """
        host = self._core.host
        if host is None:
            return
        with suppress(HostError):
            host.reverse(
                Reversal(
                    txn_id=txn_id,
                    idempotency_key=f"{txn_id}-unrecorded",
                    amount=amount,
                    currency=code,
                    terminal_id=self._core.config.terminal_id,
                    reason="recovery",
                )
            )

    def _go_online(
        self,
        txn_id: str,
        behavior: OfflineBehavior,
        emv: TransactionResult | None,
        online_pin: OnlinePin | None = None,
    ) -> PaymentResult:
        """The payment is journalled as ``authorising``; send it and act on the answer.

        ``online_pin``: the PIN pad's block for the issuer (sent with the
        request, kept nowhere).  An inserted card held open (:meth:`hold`) gets
        the host's answer for its second GENERATE AC; when it refuses what the
        issuer approved, the authorisation is reversed.
        """
        core = self._core
        row = core.store.get(txn_id)
        assert row is not None
        unreachable: HostError | None = None
        warnings: tuple[str, ...] = ()
        if core.host is None:
            unreachable = HostUnreachable("no host link configured")
        elif not self._forwarder.clear_the_way():
            unreachable = HostUnreachable("queued reversals could not be delivered first")
        answer: HostAnswer | None = None
        if unreachable is None and core.host is not None:
            request = AuthorisationRequest(
                txn_id=txn_id,
                idempotency_key=txn_id,
                kind=row.kind,
                amount=row.amount,
                currency=row.currency,
                terminal_id=core.config.terminal_id,
                merchant_id=core.config.merchant_id,
                emv_data=core.emv_data(txn_id),
                pan_token=row.pan_token or "",
                original_txn_id=row.original_txn_id,
                pin=online_pin.entry.pin if online_pin is not None else None,
            )
            if core.listeners and emv is None:  # no card was read: the kernel did not say "Authorising"
                core.emit(
                    "ui_message", None, **UiMessage(Message.AUTHORISING, ReaderStatus.CARD_READ_SUCCESSFULLY).to_json()
                )
            try:
                answer = core.host.authorise(request)
            except HostUnreachable as exc:
                core.host_failed(exc)
                unreachable = exc
            except HostNoAnswer as exc:
                self._release()  # the card is powered off: its ARQC is never completed
                core.record(txn_id, Event.NO_ANSWER, {"error": str(exc)})
                self._forwarder.clear_the_way()
                done = core.store.get(txn_id)
                if done is not None and done.state is State.REVERSED:
                    text = "not completed: no answer from the host; the payment was reversed, nothing was charged"
                else:
                    text = (
                        "not completed: no answer from the host; reversal pending (it is sent before anything "
                        "else); nothing stays charged"
                    )
                return self._result(txn_id, text, emv)
            except HostRejected as exc:
                self._release()
                core.record(
                    txn_id, Event.HOST_DECLINED, {"response_code": "30", "error": str(exc)},
                    details={"response_code": "30"},
                )  # fmt: skip
                return self._result(txn_id, f"declined: the host refused the message ({exc})", emv)
        if answer is not None:
            details = {
                "approval_code": answer.approval_code,
                "response_code": answer.response_code,
                "host_reference": answer.host_reference,
            }
            pin = pin_detail(online_pin, answer.response_code, answer.approved)
            if pin is not None:
                details["pin"] = pin
            event = Event.HOST_APPROVED if answer.approved else Event.HOST_DECLINED
            if self._held is not None:
                refused = self._second_card_part(txn_id, answer, details)
                if refused is not None:
                    return refused
            try:
                core.record(txn_id, event, details, details=details)
            except StorageError:
                if answer.approved:
                    self._reverse_unrecorded(txn_id, row.amount, row.currency)
                raise
            text = "approved" if answer.approved else f"declined: {decline_reason(answer.response_code)}"
            if pin == "verified":
                text = "approved: PIN verified by the issuer"
            elif pin == "bypassed" and answer.approved:
                text = "approved (PIN bypassed)"
            return self._result(txn_id, text, emv)
        # Not sent: a deferred authorisation, if allowed and within the limits.
        reason = str(unreachable) or "host unreachable"
        if online_pin is not None and not online_pin.bypassed:  # no one but the issuer can check that PIN
            self._release()
            refusal = f"declined: the host cannot be reached ({reason}) and only the issuer can check the PIN"
            core.record(txn_id, Event.NOT_SENT_DECLINED, {"error": refusal})
            return self._result(txn_id, refusal, emv, warnings)
        if isinstance(unreachable, HostCertificateRejected):
            # The detail (which check failed) is in the log and in 'saf status'; the cashier needs the fact.
            warnings = ("host certificate rejected: payments are stored offline (a security event: see the log)",)
        why_not: tuple[str, str] | None = None  # (journalled error, the cashier's words)
        if behavior is OfflineBehavior.REQUIRE_ONLINE:
            words = f"declined: the host cannot be reached ({reason}) and this payment requires online authorisation"
            why_not = (reason, words)
        else:
            try:
                self._check_offline_room(row.currency, row.amount)
            except PaymentRefused as exc:
                why_not = (str(exc), f"declined: the host cannot be reached and {exc}")
        if why_not is not None:  # the terminal refuses before an inserted card is asked for its last cryptogram
            self._release()
            core.record(txn_id, Event.NOT_SENT_DECLINED, {"error": why_not[0]})
            return self._result(txn_id, why_not[1], emv, warnings)
        deferred: dict[str, Any] = {"deferred": True}
        sensitive: bytes | None = None
        if self._held is not None:  # an inserted card decides for itself when the host cannot be reached
            final = self._held.complete(None, None)
            self._held = None
            if final.outcome is not Outcome.APPROVED:
                core.record(txn_id, Event.NOT_SENT_DECLINED, {"error": reason}, details=_card_after(final))
                return self._result(
                    txn_id, f"declined by the card: the host cannot be reached ({reason})", final, warnings
                )
            # The advice carries the card's last word: its TC, 8A Y3, the final TVR and TSI, not the ARQC
            # kept at GO_ONLINE; durable (with the entry queued) before "approved" is shown.
            deferred |= _card_after(final)
            sensitive = host_data(core.keystore, txn_id, final, extra=COMPLETION_TAGS)
            emv = final
        core.record(txn_id, Event.NOT_SENT_DEFERRED, {"error": reason}, details=deferred, sensitive=sensitive)
        text = (
            "approved (deferred: the host will confirm later)"
            if row.kind == "sale"
            else "refund stored: the host will confirm it later"
        )
        return self._result(txn_id, text, emv, warnings)

    def _second_card_part(self, txn_id: str, answer: HostAnswer, details: dict[str, Any]) -> PaymentResult | None:
        """The held inserted card gets the host's answer; a result when it refused an approval (reversed)."""
        held, self._held = self._held, None
        assert held is not None
        issuer_data = answer.issuer_authentication_data
        final = held.complete(answer.response_code, answer.arpc, answer.scripts, issuer_authentication_data=issuer_data)
        details.update(_card_after(final))
        if not answer.approved or final.outcome is Outcome.APPROVED:
            return None
        core = self._core
        why = final.error or f"the card answered {final.cryptogram_type or 'nothing'}"
        core.record(txn_id, Event.CARD_REFUSED_APPROVAL, {"error": why}, details=details)
        self._forwarder.clear_the_way()
        done = core.store.get(txn_id)
        text = (
            "declined by the card after the issuer approved: the authorisation was reversed; nothing was charged"
            if done is not None and done.state is State.REVERSED
            else "declined by the card after the issuer approved: reversal pending (sent before anything else); "
            "nothing stays charged"
        )
        return self._result(txn_id, text, final)

    def sale(
        self,
        amount: int,
        code: int,
        *,
        exponent: int = 2,
        offline_behavior: OfflineBehavior = OfflineBehavior.PREFER_ONLINE,
        request_key: str | None = None,
        reference: str | None = None,
    ) -> PaymentResult:
        """Charge ``amount`` (minor units of currency ``code``) to the card the customer presents.

        ``request_key``: a register's idempotency key, kept with the payment
        (see :meth:`terminal.facade.Terminal.sale`); ``reference``: its own
        reference, kept and shown.
        """
        self._core.current_txn_id = None
        if amount <= 0:
            raise PaymentRefused("amount", "the amount must be above zero")
        room = self._offline_room(code, amount)
        wallet = self._wallet_sale(amount, code, offline_behavior, request_key, reference)
        wallet_may_pay = wallet is not None and code in wallet.trust.limits
        if offline_behavior is OfflineBehavior.FORCE_OFFLINE and not room and not wallet_may_pay:
            # (a wallet has offline limits of its own, per currency; a card tapped instead is refused after
            # its reading)
            self._check_offline_room(code, amount)  # raises the named limit
        # require_online: no offline approval by the card either, so ask it for an online cryptogram
        force_online = not room or offline_behavior is OfflineBehavior.REQUIRE_ONLINE
        try:
            try:
                result = self._read_card(CardRequest(amount, code, exponent, 0x00, force_online), wallet)
            except PaymentRefused as exc:
                if wallet is not None and wallet.pending:  # torn, and the same wallet was not presented again
                    from terminal.cbdc_payment import not_paid

                    return not_paid(wallet, str(exc))
                raise
            if wallet is not None and wallet.ran:
                from terminal.cbdc_payment import complete

                return complete(wallet, result)
            return self._complete_sale(
                result, amount, code, offline_behavior, force_online, request_key=request_key, reference=reference
            )
        finally:
            self._release()  # an inserted card not completed (refused before going online): powered off

    def _wallet_sale(
        self, amount: int, code: int, behavior: OfflineBehavior, request_key: str | None, reference: str | None
    ) -> WalletSale | None:
        """The digital-currency kernel for this sale, when the parameters in force have a cbdc section.

        (The protocol code, with its SM2, is loaded only then: a card-only terminal never loads it.)
        """
        if getattr(self._core.settings, "cbdc", None) is None:
            return None
        from terminal.cbdc_payment import WalletSale, trust_of

        trust = trust_of(self._core)
        if trust is None:
            return None
        return WalletSale(
            self._core, amount, code, trust, behavior.value, self._new_txn_id,
            request_key=request_key, reference=reference,
        )  # fmt: skip

    def _complete_sale(
        self,
        result: TransactionResult,
        amount: int,
        code: int,
        offline_behavior: OfflineBehavior,
        force_online: bool,
        *,
        request_key: str | None = None,
        reference: str | None = None,
    ) -> PaymentResult:
        """The part of a sale after the card was read: journal it, then act on the outcome.

        Callers hold the lock.  The benchmark of durable offline approvals
        measures this step (the card's reading is measured apart).
        """
        core = self._core
        txn_id, at = self._new_txn_id()
        new = NewPayment(
            txn_id, "sale", amount, code, scheme_of(result.aid), offline_behavior.value,
            request_key=request_key, reference=reference,
        )  # fmt: skip
        base = {"amount": amount, "currency": code, "card_outcome": result.outcome.value}
        card = card_record(core.keystore, txn_id, result)
        details = card_details(result)
        if result.outcome is Outcome.APPROVED:
            refusal: str | None = None
            if offline_behavior is OfflineBehavior.REQUIRE_ONLINE:
                refusal = "declined: the card approved offline, but this payment requires the host"
            elif force_online:  # the card approved although it was asked to go online
                try:
                    self._check_offline_room(code, amount)
                except PaymentRefused as exc:
                    refusal = f"declined: {exc}"
            if refusal is not None:
                core.record(txn_id, Event.NOT_SENT_DECLINED, base | {"error": refusal}, new=new, card=card,
                            details=details)  # fmt: skip
                return self._result(txn_id, refusal, result)
            state = core.record(
                txn_id,
                Event.OFFLINE_APPROVED,
                base,
                at=at,
                new=new,
                card=card,
                details=details | {"offline": True},
                sensitive=host_data(core.keystore, txn_id, result),
            )
            # Built from what was just written rather than read back: this is the hot path.
            return PaymentResult(
                txn_id=txn_id,
                kind="sale",
                state=state,
                amount=amount,
                currency=code,
                approved=state in APPROVED_STATES,
                message="approved (offline): PIN verified by the card"
                if details.get("pin") == "offline_verified"
                else "approved (offline)",
                masked_pan=card.masked_pan,
                scheme=new.scheme,
                offline=True,
                card_result=result,
                kernel=details.get("kernel"),
                cvm=details.get("cvm"),
                pin=details.get("pin"),
            )
        if result.outcome is Outcome.DECLINED:
            core.record(txn_id, Event.CARD_DECLINED, base, new=new, card=card, details=details)
            return self._result(txn_id, "declined by the card", result)
        if result.outcome is not Outcome.ONLINE_REQUEST:
            core.record(txn_id, Event.NOT_COMPLETED, base | {"error": result.error}, new=new, card=card,
                        details=details)  # fmt: skip
            return self._result(txn_id, _not_completed_text(result), result)
        online_pin: OnlinePin | None = None
        if online_pin_wanted(result):
            if offline_behavior is OfflineBehavior.FORCE_OFFLINE:
                refusal = "declined: the card asks for an online PIN, which only the host can check"
                core.record(txn_id, Event.NOT_SENT_DECLINED, base | {"error": refusal}, new=new, card=card,
                            details=details)  # fmt: skip
                return self._result(txn_id, refusal, result)
            try:
                online_pin = collect_online_pin(
                    core.pin_pad, result, amount, code, allow_bypass=core.settings.pin_bypass,
                    timeout=core.settings.pin_timeout_seconds,
                    cancel=self._new_token() if self._new_token is not None else None,
                )  # fmt: skip
            except PaymentRefused as exc:
                core.record(txn_id, Event.NOT_COMPLETED, base | {"error": str(exc)}, new=new, card=card,
                            details=details | {"pin": exc.reason.removeprefix("pin_")})  # fmt: skip
                return self._result(txn_id, str(exc), result)
            details = details | {"pin": "bypassed" if online_pin.bypassed else "entered"}
            if online_pin.bypassed and details.get("tvr"):
                details["tvr"] = tvr_after_bypass(details["tvr"])
        if offline_behavior is OfflineBehavior.FORCE_OFFLINE:
            try:
                self._check_offline_room(code, amount)
            except PaymentRefused as exc:
                core.record(txn_id, Event.NOT_SENT_DECLINED, base | {"error": str(exc)}, new=new, card=card,
                            details=details)  # fmt: skip
                return self._result(txn_id, f"declined: {exc}", result)
            held, self._held = self._held, None
            if held is not None:  # an inserted card decides with its default action codes (Book 3 10.9)
                final = held.complete(None, None)
                if final.outcome is not Outcome.APPROVED:
                    core.record(txn_id, Event.NOT_SENT_DECLINED, base | {"error": final.error}, new=new, card=card,
                                details=details | _card_after(final))  # fmt: skip
                    return self._result(txn_id, "declined by the card (offline)", final)
                details = details | _card_after(final)
            core.record(
                txn_id,
                Event.NOT_SENT_DEFERRED,
                base,
                new=new,
                card=card,
                details=details | {"deferred": True},
                sensitive=host_data(core.keystore, txn_id, result),
            )
            return self._result(txn_id, "approved (deferred: the host will confirm later)", result)
        core.record(
            txn_id,
            Event.GO_ONLINE,
            base,
            new=new,
            card=card,
            details=details,
            sensitive=host_data(core.keystore, txn_id, result),
        )
        return self._go_online(txn_id, offline_behavior, result, online_pin)

    def refund(
        self,
        amount: int,
        code: int,
        *,
        exponent: int = 2,
        original_txn_id: str | None = None,
        present_card: bool = False,
        to_other_card: bool = False,
        offline_behavior: OfflineBehavior = OfflineBehavior.PREFER_ONLINE,
        request_key: str | None = None,
        reference: str | None = None,
    ) -> PaymentResult:
        """Refund ``amount``: against an original sale, or to the card presented (unreferenced).

        With ``original_txn_id`` the refund goes to the original's card and no
        card is read, unless ``present_card``: then the card presented must be
        the original's, or ``to_other_card`` must say that another card is
        meant.  Without an original, the card presented gets an unreferenced
        refund.  Refused (PaymentRefused, with the reason in words) when it
        would pay back more than the customer paid.
        """
        self._core.current_txn_id = None
        if amount <= 0:
            raise PaymentRefused("amount", "the amount must be above zero")
        original = None if original_txn_id is None else self._refundable(original_txn_id, amount, code)
        if original is not None and original.details.get("qr_mode"):  # back to the wallet, through the host
            if present_card:
                raise PaymentRefused("other_card", "a QR payment is refunded to its wallet: no card is read")
            from terminal.qr_check import qr_flow, refund_to_wallet

            return refund_to_wallet(qr_flow(self._core, self._new_txn_id), original, amount)
        result: TransactionResult | None = None
        online_pin: OnlinePin | None = None  # the PIN a refund asks where pin_on_refund says so (may refuse here)
        asks_pin = refund_pin_needed(self._core, reads_card=original is None or present_card, behavior=offline_behavior)
        if original is None or present_card:
            result = self._read_card(CardRequest(amount, code, exponent, 0x20, False), None)
            self._release()  # an inserted card's cryptogram does not decide a refund: no second GENERATE AC
        txn_id, _ = self._new_txn_id()
        core = self._core
        scheme = scheme_of(result.aid) if result is not None else original.scheme if original else "unknown"
        new = NewPayment(
            txn_id, "refund", amount, code, scheme, offline_behavior.value,
            original.txn_id if original else None, request_key=request_key, reference=reference,
        )  # fmt: skip
        data: dict[str, Any] = {"amount": amount, "currency": code}
        sensitive: bytes | None = None
        if result is not None:
            data["card_outcome"] = result.outcome.value
            card = card_record(core.keystore, txn_id, result)
            details = card_details(result)
            if card.pan_token is None:
                core.record(txn_id, Event.NOT_COMPLETED, data | {"error": result.error}, new=new, details=details)
                return self._result(txn_id, "not completed: the card could not be read", result)
            if original is not None and card.pan_token != original.pan_token and not to_other_card:
                raise PaymentRefused(
                    "other_card",
                    f"the card presented ({card.masked_pan}) is not the card of {original.txn_id} "
                    f"({original.masked_pan}): nothing was refunded; a refund to another card must be asked "
                    "for as such",
                )
            if asks_pin:  # the acquirer's "PIN for refund" (terminal.refund_pin), before anything is journalled
                try:
                    online_pin, details = collect_refund_pin(core, result, amount, code, details, self._new_token)
                except PaymentRefused as exc:
                    core.record(txn_id, Event.NOT_COMPLETED, data | {"error": str(exc)}, new=new, card=card,
                                details=details | {"pin": exc.reason.removeprefix("pin_")})  # fmt: skip
                    return self._result(txn_id, str(exc), result)
            sensitive = host_data(core.keystore, txn_id, result)
        else:
            assert original is not None
            card = CardRecord(original.masked_pan, original.pan_token, None)
            details = {k: original.details.get(k) for k in ("aid", "application_label")}
        if original is not None:
            data["original_txn_id"] = original.txn_id
            details = details | {"to_other_card": card.pan_token != original.pan_token}
        if offline_behavior is OfflineBehavior.FORCE_OFFLINE:
            try:
                self._check_offline_room(code, amount)
            except PaymentRefused as exc:
                core.record(txn_id, Event.NOT_SENT_DECLINED, data | {"error": str(exc)}, new=new, card=card,
                            details=details)  # fmt: skip
                return self._result(txn_id, f"declined: {exc}", result)
            core.record(txn_id, Event.NOT_SENT_DEFERRED, data, new=new, card=card,
                        details=details | {"deferred": True}, sensitive=sensitive)  # fmt: skip
            return self._result(txn_id, "refund stored: the host will confirm it later", result)
        core.record(txn_id, Event.GO_ONLINE, data, new=new, card=card, details=details, sensitive=sensitive)
        return self._go_online(txn_id, offline_behavior, result, online_pin)
