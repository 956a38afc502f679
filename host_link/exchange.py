"""One HTTP request to the host, and what its failure lets the terminal conclude.

Apart from :mod:`host_link.client` because this is the one place that tells
"nothing reached the host" (:class:`NotSent`: refused connection, handshake,
the host's certificate, a full pool) from "the answer is unknown"
(:class:`Lost`: a dropped connection after the request was written, a read
timeout, an answer too large).  :class:`~host_link.client.HttpsHostLink`
builds every decision of its table (retry, ``HostUnreachable``,
``HostNoAnswer``) on that split; this module only sends and reads.

Nothing here logs a request or answer body (they may carry card data).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import httpx

from host_link import wire
from host_link.tls import is_handshake_refusal, is_host_certificate_failure

__all__ = ["Lost", "NotSent", "exchange"]

_log = logging.getLogger("host_link.client")  # the link's own logger, as before this module was split off


class NotSent(Exception):
    """Nothing reached the host's application.  ``local``: our side's problem (says nothing of the host)."""

    def __init__(self, reason: str, *, local: bool = False, certificate: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.local = local
        self.certificate = certificate  # the host's certificate failed our check: a security event


class Lost(Exception):
    """The request may have reached the host and no usable answer came."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _describe(exc: BaseException) -> str:
    """An exception as one short line fit for a log or a message (its type, then its text)."""
    text = str(exc) or type(exc).__name__
    return wire.clean_text(f"{type(exc).__name__}: {text}", 200)


def exchange(
    client: httpx.Client,
    timeout: httpx.Timeout,
    clock: Callable[[], float],
    method: str,
    path: str,
    payload: bytes | None,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None,
    limit: int,
    read_timeout: float | None = None,
) -> tuple[int, bytes, float | None]:
    """One request: status, body and ``Retry-After`` in seconds (if given as a number).

    Raises NotSent (nothing reached the host) or Lost (the answer is unknown).
    """
    if read_timeout is not None:
        timeout = httpx.Timeout(connect=timeout.connect, read=read_timeout, write=timeout.write, pool=timeout.pool)
    request = client.build_request(method, path, content=payload, headers=headers, params=params, timeout=timeout)
    started = clock()
    try:
        response = client.send(request, stream=True)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        if is_host_certificate_failure(exc):
            raise NotSent(f"the host's certificate is not trusted ({_describe(exc)})", certificate=True) from None
        raise NotSent(_describe(exc)) from None
    except httpx.PoolTimeout as exc:
        raise NotSent(_describe(exc), local=True) from None
    except httpx.TransportError as exc:
        if is_handshake_refusal(exc):
            raise NotSent(f"the host refused this terminal's certificate ({_describe(exc)})") from None
        raise Lost(_describe(exc)) from None
    try:
        data = bytearray()
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > limit:
                raise Lost(f"answer larger than {limit} bytes")
    except httpx.TransportError as exc:
        raise Lost(_describe(exc)) from None
    finally:
        response.close()
    _log.debug("%s %s -> %d in %.1f ms", method, path, response.status_code, 1000 * (clock() - started))
    after = response.headers.get("retry-after", "")
    retry_after = float(after) if after.isascii() and after.isdigit() and len(after) <= 6 else None
    return response.status_code, bytes(data), retry_after
