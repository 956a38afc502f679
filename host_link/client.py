"""The terminal's HTTPS client for its acquiring host: :class:`HttpsHostLink`, the real HostLink.

One :class:`httpx.Client` per link keeps connections open between messages
(TLS 1.3 with the terminal's certificate, see :mod:`host_link.tls`), with
explicit connect and read timeouts, no proxies from the environment and no
redirects.

What a failure lets the terminal conclude
-----------------------------------------

===========================================  ===========================  ======================================
What happened                                 ``authorise``                advices, reversal, batch close,
                                                                           sign-on, parameters
===========================================  ===========================  ======================================
connection refused, connect timeout, DNS,     ``HostUnreachable``          ``HostUnreachable`` (first attempt)
TLS handshake failed (also: the server's
TLS alert refusing our certificate)
within the reachability window after that     ``HostUnreachable`` at once  ``HostUnreachable`` at once
read timeout, connection dropped after the    ``HostNoAnswer``, never      retried with backoff (same
request was written, 5xx, 408, 429,           retried                      ``Idempotency-Key``), then
malformed answer                                                           ``HostNoAnswer``
429 with ``Retry-After`` (nothing was done)   after the pause, again       after the pause, again (within the
                                              (within the retry's total    retry's total time), else
                                              time), else ``HostRejected`` ``HostRejected``
401                                           ``HostRejected`` (not        ``HostRejected``
                                              enrolled / not recognised,
                                              certificate revoked)
other 4xx (400, 403, 404, 409, 422, ...)      ``HostRejected`` with the    ``HostRejected``
                                              host's message
===========================================  ===========================  ======================================

Before a request the link may renew its certificate (``POST /v1/certificate``,
see :mod:`host_link.renewal`): when a renewal policy is given and says it is
due; the request then goes out with the new certificate.

A retry that finds the host unreachable ends in ``HostNoAnswer``: the first
attempt may have reached the host.  ``echo`` is never retried.  Every ``POST``
carries an ``Idempotency-Key``: the authorisation's and the reversal's own key,
``batch-close:<terminal>:<batch>`` for a batch close, the SHA-256 of the advice
keys (in the order sent) for a batch of advices, and a fresh random key for a
sign-on (kept across that call's retries).

Card data: the EMV data of a request may hold the PAN (tags 5A, 57); it is sent
to the host but never logged and never put in an exception message.  Nothing
here logs a request or answer body.
"""

from __future__ import annotations

import json
import logging
import secrets
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx

from host_link import wire
from host_link.exchange import Lost, NotSent, exchange
from host_link.idempotency import IdempotentRetry, advices_key, header_key
from host_link.reachability import Reachability
from host_link.tls import client_context
from terminal.host import (
    Advice,
    AuthorisationRequest,
    BatchTotals,
    HostAnswer,
    HostCertificateRejected,
    HostNoAnswer,
    HostRejected,
    HostUnreachable,
    Reversal,
    SettlementAnswer,
)
from terminal.ports import DeviceError, DeviceUrlError

if TYPE_CHECKING:
    from host_link.qr import QrLink

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "HttpsHostLink",
    "IdempotentRetry",
    "RenewalPolicy",
    "advices_key",
    "header_key",
    "open_host_link",
]

DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 10.0
#: Idle connections are dropped before the usual 5 s keep-alive of servers (uvicorn's),
#: so that a request is not written on a connection the server is closing.
KEEPALIVE_SECONDS = 4.0
#: The largest answer read from the host (1 MiB); more is a lost answer, never read to the end.  An
#: answer is a few hundred bytes; a batch (at most wire.MAX_ADVICES_PER_REQUEST advices) under 50 KiB.
MAX_ANSWER_BYTES = 1 << 20
#: The largest parameter download (16 MiB): AIDs, limits, about a hundred CA keys and an exception
#: file are a few hundred KiB; what is stored of it is read back under terminal.limits.MAX_PARAMETERS_FILE_BYTES.
MAX_PARAMETERS_BYTES = 16 << 20

_log = logging.getLogger(__name__)
T = TypeVar("T")


class RenewalPolicy(Protocol):
    """When and how a link renews its certificate (:class:`host_link.renewal.AutoRenewal`)."""

    def due(self) -> bool:
        """Whether the next request should renew first (called before every request: cheap)."""
        ...

    def renew(self, link: HttpsHostLink) -> ssl.SSLContext | None:
        """Renew through ``link``: the client context of the new certificate, or None (keep the current one)."""
        ...


def _software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("posterm")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _json_decoder(parse: Callable[[Any], T]) -> Callable[[int, bytes], T]:
    def decode(status: int, body: bytes) -> T:
        if status == 204 or not body:
            raise wire.MalformedAnswer(f"status {status} without a body")
        return parse(wire.parse_json(body))

    return decode


class HttpsHostLink:
    """The terminal's link to its acquiring host over HTTPS with mutual TLS.

    Give either ``ssl_context`` (see :func:`host_link.tls.client_context`) or a
    ready httpx ``transport`` (tests use :class:`httpx.MockTransport`).  The
    link is safe to share between threads (the terminal's payment thread and
    the SAF forwarder).
    """

    def __init__(
        self,
        url: str,
        *,
        terminal_id: str,
        merchant_id: str,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.BaseTransport | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        retry: IdempotentRetry | None = None,
        reachability: Reachability | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        renewal: RenewalPolicy | None = None,
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme != "https" or not parsed.host:
            raise ValueError(f"host URL {url!r}: expected https://HOST[:PORT]")
        if transport is None and ssl_context is None:
            raise ValueError("give ssl_context (or a transport)")
        self.url = url.rstrip("/")
        self.terminal_id = terminal_id
        self.merchant_id = merchant_id
        self.reachability = reachability or Reachability()
        self.retry = retry or IdempotentRetry()
        self._sleep = sleep
        self._clock = clock
        self.renewal = renewal
        self._timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
        )
        self._retired: list[httpx.Client] = []
        self._client = self._make_client(transport if transport is not None else self._tls_transport(ssl_context))

    @staticmethod
    def _tls_transport(ssl_context: ssl.SSLContext | None) -> httpx.HTTPTransport:
        return httpx.HTTPTransport(
            verify=ssl_context if ssl_context is not None else True,
            retries=0,
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2, keepalive_expiry=KEEPALIVE_SECONDS),
        )

    def _make_client(self, transport: httpx.BaseTransport) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            transport=transport,
            timeout=self._timeout,
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: card data goes to the host only
            headers={"Accept": "application/json", "User-Agent": f"posterm/{_software_version()}"},
        )

    def use_certificate(self, ssl_context: ssl.SSLContext) -> None:
        """Send from now on with the client certificate of ``ssl_context`` (after a renewal).

        The previous connections are left to the requests using them and
        closed with the link.
        """
        self._retired.append(self._client)
        self._client = self._make_client(self._tls_transport(ssl_context))

    # ------------------------------------------------------------------ status

    @property
    def reachable(self) -> bool:
        """False from a failure to connect until a call reaches the host again."""
        return self.reachability.reachable

    @property
    def last_error(self) -> str | None:
        """The last failure to connect (kept after recovery, for diagnostics)."""
        return self.reachability.last_error

    def __repr__(self) -> str:
        return f"HttpsHostLink({self.url!r}, terminal_id={self.terminal_id!r})"

    # ------------------------------------------------------------------ the port

    def authorise(self, request: AuthorisationRequest) -> HostAnswer:
        """``POST /v1/authorisations``; never retried (a lost answer is ``HostNoAnswer``: reverse it)."""
        return self._call(
            "POST",
            "/v1/authorisations",
            what=f"authorisation {request.txn_id}",
            body=wire.authorisation_json(request),
            key=request.idempotency_key,
            idempotent=False,
            decode=_json_decoder(wire.authorisation_answer),
        )

    def advise(self, advice: Advice) -> HostAnswer:
        """One advice (a batch of one); a per-advice rejection is raised as ``HostRejected``."""
        (result,) = self.advise_many([advice])
        if isinstance(result, HostRejected):
            raise result
        return result

    def advise_many(self, advices: Sequence[Advice]) -> list[HostAnswer | HostRejected]:
        """One ``POST /v1/advices``; the results in order, a rejected advice as a ``HostRejected`` instance.

        At most :data:`host_link.wire.MAX_ADVICES_PER_REQUEST` advices per call.
        """
        if not advices:
            return []
        if len(advices) > wire.MAX_ADVICES_PER_REQUEST:
            raise ValueError(f"at most {wire.MAX_ADVICES_PER_REQUEST} advices per request, not {len(advices)}")
        batch = list(advices)
        what = f"advice {batch[0].txn_id}" if len(batch) == 1 else f"{len(batch)} advices from {batch[0].txn_id}"
        return self._call(
            "POST",
            "/v1/advices",
            what=what,
            body=wire.advices_json(batch),
            key=advices_key(batch),
            idempotent=True,
            decode=_json_decoder(lambda doc: wire.advice_results(doc, batch)),
        )

    def reverse(self, reversal: Reversal) -> HostAnswer:
        """``POST /v1/reversals``, retried on a lost answer (the key makes a repeat harmless)."""
        return self._call(
            "POST",
            "/v1/reversals",
            what=f"reversal {reversal.txn_id}",
            body=wire.reversal_json(reversal),
            key=reversal.idempotency_key,
            idempotent=True,
            decode=_json_decoder(wire.reversal_answer),
        )

    def close_batch(self, totals: BatchTotals) -> SettlementAnswer:
        """``POST /v1/batches/close``, retried on a lost answer."""
        return self._call(
            "POST",
            "/v1/batches/close",
            what=f"batch close {totals.batch_id}",
            body=wire.batch_close_json(totals),
            key=f"batch-close:{totals.terminal_id}:{totals.batch_id}",
            idempotent=True,
            decode=_json_decoder(wire.settlement_answer),
        )

    # ------------------------------------------------------------------ beyond the port

    def sign_on(self) -> wire.SignOnAnswer:
        """``POST /v1/sign-on``: the host's time and the current parameters version."""
        return self._call(
            "POST",
            "/v1/sign-on",
            what="sign-on",
            body=wire.sign_on_json(self.terminal_id, self.merchant_id, _software_version()),
            key=secrets.token_hex(16),
            idempotent=True,
            decode=_json_decoder(wire.sign_on_answer),
        )

    def echo(self, *, force: bool = False) -> float:
        """``GET /v1/echo``: the round-trip time in seconds (see :meth:`echo_details`)."""
        return self.echo_details(force=force).round_trip_seconds

    def echo_details(self, *, force: bool = False) -> wire.EchoAnswer:
        """``GET /v1/echo``, one attempt, with the round-trip time and the host's time.

        ``force=True`` tries even inside the reachability window (diagnostics).
        """
        started = self._clock()
        doc = self._call(
            "GET", "/v1/echo", what="echo", idempotent=False, force=force, decode=_json_decoder(lambda d: d)
        )
        return wire.echo_answer(doc, self._clock() - started)

    def fetch_parameters(self, have: int | None) -> dict[str, Any] | None:
        """``GET /v1/parameters``: ``None`` when ``have`` is already the current version, else the download.

        The download's shape is checked here; its content (checksums, limits)
        by :mod:`host_link.parameters` before it is applied.
        """

        def decode(status: int, body: bytes) -> dict[str, Any] | None:
            if status == 304:
                if have is None:
                    raise wire.MalformedAnswer("304 to a request without ?have=")
                return None
            return wire.parameters_answer(wire.parse_json(body))

        return self._call(
            "GET",
            "/v1/parameters",
            what="parameters download",
            params={"have": str(have)} if have is not None else None,
            idempotent=True,
            decode=decode,
            limit=MAX_PARAMETERS_BYTES,
            accept_304=True,
        )

    def request_certificate(self, enrolment_code: str, csr_pem: str) -> dict[str, Any]:
        """``POST /v1/enrol`` (see :mod:`host_link.enrolment`): one attempt, no client certificate needed.

        The code is good once: a lost answer is ``HostNoAnswer`` and the code
        may be spent.  The answer's content is checked by the caller.
        """

        def decode(status: int, body: bytes) -> dict[str, Any]:
            doc = wire.parse_json(body)
            if not isinstance(doc, dict):
                raise wire.MalformedAnswer("answer: expected a JSON object")
            return doc

        return self._call(
            "POST",
            "/v1/enrol",
            what="enrolment",
            body={"enrolment_code": enrolment_code, "csr_pem": csr_pem},
            idempotent=False,
            decode=decode,
            renew_first=False,
        )

    def renew_certificate(self, csr_pem: str, key: str) -> dict[str, Any]:
        """``POST /v1/certificate`` (see :mod:`host_link.renewal`): retried on a lost answer.

        The same ``key`` and a CSR of the same public key get the same
        certificate again, also once the certificate asking has been replaced.
        """

        def decode(status: int, body: bytes) -> dict[str, Any]:
            doc = wire.parse_json(body)
            if not isinstance(doc, dict):
                raise wire.MalformedAnswer("answer: expected a JSON object")
            return doc

        return self._call(
            "POST",
            "/v1/certificate",
            what="certificate renewal",
            body={"csr_pem": csr_pem},
            key=key,
            idempotent=True,
            decode=decode,
            renew_first=False,
        )

    def qr_link(self, terminal_id: str | None = None, merchant_id: str | None = None) -> QrLink:
        """The QR calls over this link (:mod:`host_link.qr`; the ids are the certificate's, not the arguments)."""
        from host_link.qr import QrLink

        return QrLink(self)

    def exchange_json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        idempotent: bool,
        parse: Callable[[Any], T],
        body: Mapping[str, Any] | None = None,
        key: str | None = None,
        params: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> T:
        """One message beyond the port (the QR calls, :mod:`host_link.qr`): ``parse`` of its JSON answer.

        Failures as in the table above (``idempotent``: retried with the same
        key on a lost answer); ``parse`` raising :class:`host_link.wire.MalformedAnswer`
        makes the answer a lost one. ``read_timeout``: this request's own (a
        long poll waits longer than the link's).
        """
        return self._call(
            method,
            path,
            what=what,
            body=body,
            key=key,
            params=params,
            idempotent=idempotent,
            decode=_json_decoder(parse),
            read_timeout=read_timeout,
        )

    def close(self) -> None:
        """Close the pooled connections."""
        for retired in self._retired:
            retired.close()
        self._client.close()

    def __enter__(self) -> HttpsHostLink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ machinery

    def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        decode: Callable[[int, bytes], T],
        idempotent: bool,
        body: Mapping[str, Any] | None = None,
        key: str | None = None,
        params: Mapping[str, str] | None = None,
        limit: int = MAX_ANSWER_BYTES,
        force: bool = False,
        accept_304: bool = False,
        renew_first: bool = True,
        read_timeout: float | None = None,
    ) -> T:
        if renew_first and self.renewal is not None and self.renewal.due():
            context = self.renewal.renew(self)
            if context is not None:
                self.use_certificate(context)
        payload = None if body is None else json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        if key is not None:
            headers["Idempotency-Key"] = header_key(key)
        started = self._clock()
        attempt = 0
        lost = ""
        while True:
            attempt += 1
            try:
                self.reachability.admit(force=force and attempt == 1)
            except HostUnreachable as exc:
                if attempt == 1:
                    again = type(exc)(f"{what}: {exc}")  # a rejected certificate stays one
                    again.repeated = True  # type: ignore[attr-defined]
                    raise again from None
                raise HostNoAnswer(f"no answer to {what} ({lost}); then the host became unreachable") from None
            try:
                status, data, retry_after = exchange(
                    self._client, self._timeout, self._clock, method, path, payload, headers, params, limit,
                    read_timeout,
                )  # fmt: skip
            except NotSent as exc:
                if exc.local:
                    self.reachability.release()
                else:
                    self.reachability.failed(exc.reason, certificate=exc.certificate)
                _log.info("%s: host unreachable: %s", what, exc.reason)
                if attempt == 1:
                    if exc.certificate:
                        raise HostCertificateRejected(f"{what}: {exc.reason}") from None
                    raise HostUnreachable(f"{what}: host unreachable: {exc.reason}") from None
                raise HostNoAnswer(
                    f"no answer to {what} ({lost}); then the host could not be reached: {exc.reason}"
                ) from None
            except Lost as exc:
                self.reachability.succeeded()  # a connection was made
                lost = exc.reason
            except BaseException:
                self.reachability.release()  # never leave the probe taken (a bug, an interrupt)
                raise
            else:
                self.reachability.succeeded()
                if 200 <= status < 300 or (status == 304 and accept_304):
                    try:
                        return decode(status, data)
                    except wire.MalformedAnswer as exc:
                        lost = f"malformed answer: {exc}"
                elif status == 401:
                    raise HostRejected(wire.unrecognised_text(what, data))
                elif status == 429 and retry_after is not None:
                    # too many requests, answered before anything was done: wait as told, then again
                    if self._clock() - started + retry_after > self.retry.total_seconds:
                        raise HostRejected(
                            f"{what}: the host is busy (429 {wire.error_text(data)}): try again in {retry_after:g} s"
                        )
                    _log.info("%s: attempt %d: host busy, again in %g s", what, attempt, retry_after)
                    self._sleep(retry_after)
                    continue
                elif status >= 500 or status in (408, 429):
                    lost = f"host error {status}: {wire.error_text(data)}"
                elif 400 <= status < 500:
                    raise HostRejected(f"{what} refused by the host ({status} {wire.error_text(data)})")
                else:
                    lost = f"unexpected status {status}"
            _log.info("%s: attempt %d: %s", what, attempt, lost)
            if not idempotent:
                raise HostNoAnswer(f"no usable answer to {what} ({lost}): the result is unknown")
            delay = self.retry.delay(attempt)
            if attempt >= self.retry.attempts or self._clock() - started + delay > self.retry.total_seconds:
                raise HostNoAnswer(f"no usable answer to {what} after {attempt} attempt(s) ({lost})")
            self._sleep(delay)

def open_host_link(name: str, data_dir: Path, *, renewal: bool = True) -> HttpsHostLink:
    """The ``posterm.hostlinks`` factory: ``https`` (the enrolled URL) or ``https://HOST:PORT``.

    ``renewal``: the link renews its certificate by itself when it is due
    (:class:`host_link.renewal.AutoRenewal`). Raises
    :class:`~terminal.ports.DeviceError` when the data directory is not
    enrolled or its credentials cannot be used.
    """
    from host_link.credentials import require_credentials

    creds = require_credentials(Path(data_dir))
    if name == "https":
        url = creds.url
    elif name.startswith("https://"):
        url = name
    else:
        raise DeviceUrlError(f"host link {name!r}: expected 'https' or https://HOST[:PORT]")
    try:
        context = client_context(ca_file=creds.ca_file, cert_file=creds.cert_file, key_file=creds.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise DeviceError(f"host link credentials in {creds.directory} cannot be used: {exc}") from None
    policy: RenewalPolicy | None = None
    if renewal:
        from host_link.renewal import AutoRenewal

        try:
            policy = AutoRenewal(Path(data_dir))
        except (OSError, ValueError) as exc:
            raise DeviceError(f"host link certificate in {creds.directory} cannot be read: {exc}") from None
    try:
        return HttpsHostLink(
            url, terminal_id=creds.terminal_id, merchant_id=creds.merchant_id, ssl_context=context, renewal=policy
        )
    except ValueError as exc:
        raise DeviceUrlError(str(exc)) from None
