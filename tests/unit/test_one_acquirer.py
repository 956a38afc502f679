"""One simulated acquirer: the HTTPS host and the in-process host answer and record alike.

The same messages go to the HTTPS app (through the real client, HttpsHostLink,
over an httpx transport that calls the ASGI app) and to the in-process host;
their answers and their records must agree field by field, except what is
random by design (host references and approval codes, derived from each host
database's own secret).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from host_link.client import HttpsHostLink, IdempotentRetry
from simulator.card_data import CARDS, card_emv_data
from simulator.host import admin
from simulator.host.app import PEER_STATE_KEY, Peer, create_app
from simulator.host.ca import load_or_create_ca
from simulator.host.inprocess import InProcessHost
from simulator.host.storage import Location
from simulator.host.store import DB_NAME, HostStore, host_keys
from terminal.host import (
    Advice,
    AuthorisationRequest,
    BatchTotals,
    HostAnswer,
    HostLink,
    HostRejected,
    Reversal,
    SettlementAnswer,
    TotalsLine,
)

TID, MID, EUR = "TERM0001", "POSTERM0000001", 978
NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def asgi_transport(app: ASGIApp, peer: Peer) -> httpx.MockTransport:
    """A synchronous transport into the ASGI app, with the peer a TLS handshake would have verified."""

    async def with_peer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "state": {**scope.get("state", {}), PEER_STATE_KEY: peer}}
        await app(scope, receive, send)

    def handle(request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=with_peer)
            async with httpx.AsyncClient(transport=transport, base_url="https://host.test") as client:
                answer = await client.request(
                    request.method, request.url.raw_path.decode(), content=request.content, headers=request.headers
                )
                await answer.aread()
                return answer

        answer = asyncio.run(send())
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return httpx.MockTransport(handle)


@pytest.fixture()
def hosts(tmp_path: Path, host_store_at: Location) -> Iterator[tuple[HttpsHostLink, InProcessHost, Path, str]]:
    """The HTTPS app over a store on each engine (tests/conftest.py), the in-process host on SQLite."""
    https_dir = tmp_path / "https"
    store = HostStore(host_store_at, keys=host_keys(https_dir))  # the host's keys/, as admin opens it
    app = create_app(store, load_or_create_ca(https_dir / "tls"), clock=lambda: NOW)
    store.add_certificate("5E41A1", MID, TID, "2026-03-01T00:00:00+00:00")  # as enrolment registers it
    link = HttpsHostLink(
        "https://host.test",
        terminal_id=TID,
        merchant_id=MID,
        transport=asgi_transport(app, Peer(TID, MID, "5E41A1")),
        retry=IdempotentRetry(attempts=1),
    )
    inprocess = InProcessHost(tmp_path / "memory-host" / DB_NAME, clock=lambda: NOW)
    yield link, inprocess, https_dir, str(host_store_at)
    link.close()
    inprocess.close()
    store.close()


def _un(txn_id: str) -> bytes:
    """One unpredictable number per transaction: its own cryptogram, the same message to both hosts."""
    return hashlib.sha256(txn_id.encode()).digest()[:4]


def auth(txn_id: str, amount: int, kind: str = "sale", **kw: Any) -> AuthorisationRequest:
    refund = kind == "refund"
    card = card_emv_data(
        amount,
        EUR,
        cryptogram="aac" if refund else "arqc",
        transaction_type=0x20 if refund else 0,
        unpredictable_number=_un(txn_id),
    )
    return AuthorisationRequest(txn_id, f"k-{txn_id}", kind, amount, EUR, TID, MID, card, f"tok-{txn_id[:2]}", **kw)


def advice(txn_id: str, amount: int, kind: str, **kw: Any) -> Advice:
    card = card_emv_data(
        amount, EUR, cryptogram="arqc" if kind == "deferred_authorisation" else "tc", unpredictable_number=_un(txn_id)
    )
    return Advice(txn_id, f"k-{txn_id}", kind, amount, EUR, TID, MID, card, "tok-o", "2026-03-02T11:00:00Z", **kw)


def reversal(txn_id: str, amount: int, reason: str) -> Reversal:
    return Reversal(txn_id, f"r-{txn_id}", amount, EUR, TID, reason)


def day(host: HostLink) -> list[Any]:
    """A trading day: approvals, the magic declines, refunds against sales, advices, reversals, a close."""
    steps: list[Callable[[], Any]] = [
        lambda: host.authorise(auth("s1", 1000)),
        lambda: host.authorise(auth("s2", 2051)),
        lambda: host.authorise(auth("s3", 99912)),
        lambda: host.authorise(auth("s4", 3000)),
        lambda: host.authorise(auth("s4", 3000)),  # the same key again: a replay
        lambda: host.authorise(auth("rf1", 400, "refund", original_txn_id="s1")),
        lambda: host.authorise(auth("rf2", 1005, "refund", original_txn_id="s4")),
        lambda: host.advise(advice("o1", 700, "offline_approval")),
        lambda: host.advise(advice("d1", 854, "deferred_authorisation")),
        lambda: host.advise(advice("d2", 600, "deferred_authorisation")),
        lambda: host.advise(advice("orf1", 200, "offline_refund", original_txn_id="s4")),
        lambda: host.reverse(reversal("s4", 3000, "void")),  # refused: a refund against it stands (422)
        lambda: host.reverse(reversal("d2", 600, "expired")),
        lambda: host.reverse(reversal("ghost", 100, "no_answer")),
        lambda: host.close_batch(
            BatchTotals(1, TID, (TotalsLine("visa", EUR, "sale", 2, 1700), TotalsLine("visa", EUR, "refund", 2, 600)))
        ),
        lambda: host.close_batch(BatchTotals(1, TID, ())),  # the same batch with other totals
        lambda: host.close_batch(BatchTotals(2, TID, (TotalsLine("visa", EUR, "sale", 1, 5),))),
    ]
    out: list[Any] = []
    for step in steps:
        try:
            out.append(shape(step()))
        except HostRejected as exc:
            out.append(("rejected", "different body" in str(exc) or "409" in str(exc)))
    return out


def shape(answer: HostAnswer | SettlementAnswer) -> tuple[Any, ...]:
    """What both hosts must agree on (references and approval codes are each host's own)."""
    if isinstance(answer, SettlementAnswer):
        return ("settlement", answer.in_balance, answer.differences, bool(answer.host_reference))
    return ("answer", answer.status, answer.response_code, answer.approval_code is not None, answer.arpc)


RECORD_FIELDS = (
    "method",
    "txn_id",
    "idempotency_key",
    "kind",
    "terminal_id",
    "merchant_id",
    "amount",
    "currency",
    "response_code",
    "approved",
    "reversed",
    "batch",
    "original_txn_id",
    "note",
    "created_at",
)  # not pan_token: each host's card tokens are under its own secret (the same card, one token, per host)


def test_both_hosts_answer_and_record_alike(hosts: tuple[HttpsHostLink, InProcessHost, Path, str]) -> None:
    link, inprocess, https_dir, store = hosts
    over_https, in_process = day(link), day(inprocess)
    assert over_https == in_process
    assert ("rejected", True) in in_process  # the second close of batch 1 with other totals
    assert ("rejected", False) in in_process  # the reversal of a sale that has a refund against it
    https_records = [{f: r[f] for f in RECORD_FIELDS} for r in admin.records(https_dir, store=store)]
    inprocess_records = [{f: getattr(r, f) for f in RECORD_FIELDS} for r in inprocess.records]
    assert https_records == inprocess_records
    assert len(inprocess_records) == 12  # 10 authorisations and advices, 2 reversals
    with admin.open_store(https_dir, store=store) as db:  # one card, one token, whichever message carried it
        token = db.card_token(CARDS["visa"][0])
    assert {r["pan_token"] for r in admin.records(https_dir, store=store) if r["method"] != "reverse"} == {token}


def test_sale_positions_of_both_hosts(hosts: tuple[HttpsHostLink, InProcessHost, Path, str]) -> None:
    link, inprocess, https_dir, store = hosts
    day(link)
    day(inprocess)
    positions = admin.sale_positions(https_dir, store=store)
    assert positions == inprocess.sale_positions()
    assert {t: (p.charged, p.refunded) for t, p in positions.items()} == {
        "s1": (1000, 400),
        "s4": (3000, 200),  # the void was refused while an offline refund against it stands
        "o1": (700, 0),
    }
