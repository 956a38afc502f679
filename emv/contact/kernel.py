"""The contact kernel's two entry points: :meth:`ContactKernel.start` and :meth:`ContactKernel.complete`.

``start`` runs a transaction from application selection to the first GENERATE
AC and ends Approved (TC), Declined (AAC), Online Request (ARQC; the result
carries what the host needs) or End Application (with the reason in
``error``).  After an Online Request the caller sends the authorisation and
passes the host's answer (or :meth:`HostAnswer.unable_to_go_online`) to
``complete``, which authenticates the issuer, runs the issuer scripts and asks
for the second GENERATE AC.  Pure: the card is reached through the
:class:`~emv.apdu.ApduTransport` port, the cardholder through
:class:`~emv.contact.ports.Cardholder`; dates and unpredictable numbers come in
with the :class:`~emv.transaction.TransactionData`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from emv import apdu
from emv.apdu import ApduTransport, CardCommunicationError
from emv.contact import actions, online, processing, verification
from emv.contact.config import ContactConfig
from emv.contact.ports import Cardholder, HostAnswer
from emv.contact.selection import (
    CardBlocked,
    Selected,
    SelectionCancelled,
    build_candidates,
    choose,
    final_select,
    order_candidates,
)
from emv.contact.session import SelectNext, Session
from emv.kernel_common import KernelError
from emv.outcome import Message, Outcome, ReaderStatus, TransactionResult, UiMessage
from emv.recorder import ApduRecorder
from emv.transaction import TransactionData
from emv.tvr import Tsi, Tvr

__all__ = ["KERNEL", "REVERSE", "ContactKernel", "ContactResult"]

KERNEL = "contact"
#: Appended to ``error`` when the issuer approved and the card did not complete: the terminal reverses.
REVERSE = " (the issuer approved: reverse the authorisation)"


@dataclass
class ContactResult(TransactionResult):
    """A :class:`TransactionResult` with what only the contact kernel has.

    ``cvm_results`` is 9F34, ``script_results`` 9F5B (5 bytes a script),
    ``issuer_authentication`` "passed", "failed" or "not_performed",
    ``selection`` how the application was found ("PSE" or "AIDs"),
    ``signature_required`` whether the receipt needs the cardholder's signature,
    ``online_pin`` whether the CVM chosen was online PIN (the PIN pad forms that
    PIN block, outside ``emv``).
    """

    cvm_results: bytes = b""
    script_results: bytes = b""
    issuer_authentication: str = "not_performed"
    selection: str | None = None
    signature_required: bool = False
    online_pin: bool = False
    authorisation_response_code: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out.update(
            {
                "cvm_results": self.cvm_results.hex().upper(),
                "script_results": self.script_results.hex().upper(),
                "issuer_authentication": self.issuer_authentication,
                "selection": self.selection,
                "signature_required": self.signature_required,
                "online_pin": self.online_pin,
                "authorisation_response_code": self.authorisation_response_code,
                "tvr_bits": Tvr(self.tvr).names(),
                "tsi_bits": Tsi(self.tsi).names(),
            }
        )
        return out


_FINAL = {
    Outcome.APPROVED: UiMessage(Message.APPROVED, ReaderStatus.CARD_READ_SUCCESSFULLY),
    Outcome.DECLINED: UiMessage(Message.NOT_AUTHORISED, ReaderStatus.CARD_READ_SUCCESSFULLY),
    Outcome.ONLINE_REQUEST: UiMessage(Message.AUTHORISING, ReaderStatus.PROCESSING),
    Outcome.END_APPLICATION: UiMessage(Message.PROCESSING_ERROR, ReaderStatus.PROCESSING_ERROR),
}


class ContactKernel:
    """One contact transaction on one inserted card.

    >>> from emv.transaction import TransactionData
    >>> class NoCard:
    ...     def exchange(self, command: bytes) -> bytes:
    ...         raise CardCommunicationError("no card")
    >>> txn = TransactionData(1234, 978, bytes.fromhex("260301"), bytes(4))
    >>> r = ContactKernel(NoCard(), ContactConfig.example(), txn).start()
    >>> r.outcome.value, r.kernel, r.error
    ('end_application', 'contact', 'card: no card')
    """

    def __init__(
        self,
        transport: ApduTransport,
        config: ContactConfig,
        txn: TransactionData,
        *,
        cardholder: Cardholder | None = None,
        entropy: bytes = b"",
    ) -> None:
        self.transport = transport if isinstance(transport, ApduRecorder) else ApduRecorder(transport)
        self.config = config
        self.txn = txn
        self.cardholder = cardholder
        self.entropy = bytes(entropy) or bytes(txn.unpredictable_number)
        self.session: Session | None = None
        self.selection: str | None = None
        self._awaiting_host = False
        self._started = False

    # ------------------------------------------------------------------ entry points

    def start(self) -> ContactResult:
        """Selection to the first GENERATE AC (see the module docstring); once per kernel."""
        if self._started:
            raise RuntimeError("a ContactKernel runs one transaction: make another for the next")
        self._started = True
        try:
            session = self._select_and_initiate()
            if session is None:
                return self._end("no application the card and the terminal share")
            return self._first_part(session)
        except CardBlocked as exc:
            return self._end(str(exc))
        except (SelectionCancelled, verification.PinCancelled) as exc:
            return self._end(f"cancelled: {exc}")
        except KernelError as exc:
            return self._end(str(exc))
        except CardCommunicationError as exc:
            return self._end(f"card: {exc}")

    def complete(self, answer: HostAnswer) -> ContactResult:
        """Online processing after an Online Request: issuer authentication, scripts, second GENERATE AC."""
        session = self.session
        if session is None or not self._awaiting_host:
            raise RuntimeError("complete() follows a start() that ended in an Online Request")
        self._awaiting_host = False
        try:
            return self._second_part(session, answer)
        except (KernelError, CardCommunicationError) as exc:
            why = f"second GENERATE AC not completed: {exc}"
            if answer.issuer_approved:
                why += REVERSE
            return self._result(session, Outcome.END_APPLICATION, None, error=why)

    # ------------------------------------------------------------------ steps

    def _select_and_initiate(self) -> Session | None:
        candidates, method = build_candidates(self.transport, self.config)
        self.selection = method
        excluded: set[bytes] = set()
        for _ in range(len(candidates) + 1):
            remaining = [c for c in order_candidates(candidates, self.config) if c.adf_name not in excluded]
            picked = choose(remaining, self.cardholder)
            if picked is None:
                return None
            selected: Selected | None = final_select(self.transport, self.config, picked, method)
            if selected is None:
                excluded.add(picked.adf_name)
                continue
            session = Session(self.transport, self.config, self.txn, selected, self.cardholder, self.entropy)
            self.session = session
            try:
                processing.initiate(session)
            except SelectNext:
                excluded.add(picked.adf_name)
                continue
            return session
        return None

    def _first_part(self, session: Session) -> ContactResult:
        processing.read_application_data(session)
        processing.offline_data_authentication(session)
        processing.processing_restrictions(session)
        verification.cardholder_verification(session)
        processing.terminal_risk_management(session)
        decision = actions.first_analysis(session)
        gen = actions.generate_ac(session, decision.reference, second=False)
        if gen.cda_failure is not None:
            if gen.kind == "ARQC":
                self._close_with_aac(session)
            return self._result(session, Outcome.DECLINED, gen, error=f"CDA failed: {gen.cda_failure}")
        if gen.kind == "AAC":
            why = f"card declined (AAC); terminal action analysis asked for {decision.cryptogram}"
            return self._result(session, Outcome.DECLINED, gen, error=why)
        if gen.kind == "TC":
            return self._result(session, Outcome.APPROVED, gen)
        self._awaiting_host = True
        if not self.config.online_capable:
            return self.complete(HostAnswer.unable_to_go_online())
        return self._result(session, Outcome.ONLINE_REQUEST, gen)

    def _close_with_aac(self, session: Session) -> None:
        with contextlib.suppress(KernelError, CardCommunicationError):  # declined whatever the card says now
            actions.generate_ac(session, apdu.AC_AAC, second=True)

    def _second_part(self, session: Session, answer: HostAnswer) -> ContactResult:
        if not answer.online:
            decision = actions.unable_to_go_online(session)
            reference = decision.reference
            session.authorisation_response_code = b"Y3" if reference == apdu.AC_TC else b"Z3"
        else:
            session.authorisation_response_code = answer.response_code
            session.issuer_authentication_data = answer.issuer_authentication_data
            online.external_authenticate(session)
            online.run_scripts(session, answer.scripts, 0x71)
            reference = apdu.AC_TC if answer.issuer_approved else apdu.AC_AAC
        gen = actions.generate_ac(session, reference, second=True)
        if answer.online:
            online.run_scripts(session, answer.scripts, 0x72)
        if gen.kind == "TC" and gen.cda_failure is None:
            return self._result(session, Outcome.APPROVED, gen)
        if gen.cda_failure is not None:
            why = f"CDA failed: {gen.cda_failure}"
        elif reference == apdu.AC_TC:
            why = "card declined (AAC)"
        else:
            why = "declined"
        if not answer.online:
            default = "declined by the default action codes"
            why = "unable to go online: " + (default if reference == apdu.AC_AAC else why)
        elif not answer.issuer_approved:
            why = f"issuer declined ({answer.response_code.decode('ascii', 'replace')})"
        else:
            why += REVERSE  # the host approved what the card refused
        return self._result(session, Outcome.DECLINED, gen, error=why)

    # ------------------------------------------------------------------ results

    def _end(self, why: str) -> ContactResult:
        if self.session is not None:
            return self._result(self.session, Outcome.END_APPLICATION, None, error=why)
        return ContactResult(
            outcome=Outcome.END_APPLICATION,
            kernel=KERNEL,
            messages=[_FINAL[Outcome.END_APPLICATION]],
            commands=list(self.transport.commands),
            error=why,
            selection=self.selection,
        )

    def _result(
        self, session: Session, outcome: Outcome, gen: actions.GenAc | None, *, error: str | None = None
    ) -> ContactResult:
        data = session.terminal_data()
        data.update(session.selected.fci_data)
        data.update(session.card_data)
        data[0x95] = session.tvr.value
        data[0x9B] = session.tsi.value
        data[0x9F34] = session.cvm_results
        scripts = b"".join(session.script_results)
        if scripts:
            data[0x9F5B] = scripts
        final = _FINAL[outcome]
        if outcome is Outcome.APPROVED and session.signature_required:
            final = UiMessage(Message.APPROVED_PLEASE_SIGN, ReaderStatus.CARD_READ_SUCCESSFULLY)
        if session.tsi.is_set(Tsi.ISSUER_AUTHENTICATION_PERFORMED):
            issuer = "failed" if session.tvr.is_set(Tvr.ISSUER_AUTHENTICATION_FAILED) else "passed"
        else:
            issuer = "not_performed"
        label = session.selected.candidate.preferred_name or session.selected.candidate.label
        code = session.authorisation_response_code
        return ContactResult(
            outcome=outcome,
            kernel=KERNEL,
            aid=session.aid,
            application_label=label or session.selected.application.label or None,
            cryptogram_type=gen.kind if gen is not None else None,
            cryptogram=gen.cryptogram if gen is not None else None,
            oda=session.oda_report,
            tvr=session.tvr.value,
            tsi=session.tsi.value,
            cvm=session.cvm_performed,
            messages=[final],
            commands=list(self.transport.commands),
            card_data=data,
            cryptogram_inputs=dict(session.cryptogram_inputs),
            error=error,
            cvm_results=session.cvm_results,
            script_results=scripts,
            issuer_authentication=issuer,
            selection=self.selection,
            signature_required=session.signature_required,
            online_pin=session.online_pin,
            authorisation_response_code=code.decode("ascii", "replace") if code else None,
        )
