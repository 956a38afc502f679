"""The host's API fuzzed from its own OpenAPI document (schemathesis), over real HTTPS with mutual TLS.

Every operation of ``host_link/openapi.json`` gets generated requests, valid and
invalid (schemathesis' positive and negative modes), sent to a real host
process; schemathesis' checks then hold the answers to the document: no 5xx,
documented status codes and content types, bodies matching the response
schemas, invalid input refused with a 4xx, missing required headers refused.

Half of the generated bodies get the enrolled terminal's ids, so that the
fuzzing reaches the processing behind the ``403`` identity check, with
idempotency keys from a small pool so that replays and conflicts happen too.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from simulator.host.schema import openapi_document
from simulator.host.service import ClientCredentials, HostService, start_host

TERMINAL_ID = "FUZZ0001"
MERCHANT_ID = "FUZZMERCHANT01"
EXAMPLES = int(os.environ.get("POSTERM_FUZZ_EXAMPLES", "120"))

schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def fuzz_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HostService, ClientCredentials]]:
    base = tmp_path_factory.mktemp("fuzz-host")
    with start_host(base / "host", log_level="warning") as host:
        credentials = host.enrol(TERMINAL_ID, MERCHANT_ID, base / "terminal")
        STARTED.append(time.monotonic())
        yield host, credentials
        log = host.log_path.read_text(encoding="utf-8", errors="replace")
        assert "unhandled" not in log, log[-4000:]  # the app's catch-all never fired


@pytest.fixture(scope="module")
def session(fuzz_host: tuple[HostService, ClientCredentials]) -> Iterator[requests.Session]:
    _, credentials = fuzz_host
    with requests.Session() as s:
        s.verify = str(credentials.ca_certificate)
        s.cert = (str(credentials.certificate), str(credentials.key))
        yield s


def _own_ids(body: Any) -> None:
    """Give a generated body the enrolled terminal's ids (where it has such fields)."""
    if not isinstance(body, dict):
        return
    if "terminal_id" in body:
        body["terminal_id"] = TERMINAL_ID
    if "merchant_id" in body:
        body["merchant_id"] = MERCHANT_ID
    advices = body.get("advices")
    if isinstance(advices, list):
        for advice in advices:
            _own_ids(advice)


SENT = [0]
STARTED: list[float] = []


def _spread(value: Any) -> int:
    """A stable number from a generated value (to pick which cases get which tweak)."""
    return zlib.crc32(json.dumps(value, sort_keys=True, default=str).encode())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_api_conforms_to_its_document(
    case: schemathesis.Case, session: requests.Session, fuzz_host: tuple[HostService, ClientCredentials]
) -> None:
    host, _ = fuzz_host
    positive = case.meta is not None and case.meta.generation.mode is schemathesis.GenerationMode.POSITIVE
    if positive:  # a negative case must stay invalid: its ids and key are left as generated
        if case.body is not None and _spread(case.body) % 4 != 0:
            _own_ids(case.body)
        key = (case.headers or {}).get("Idempotency-Key")
        if key is not None:  # generated keys repeat a lot (shrinking): mostly unique, some from a small pool
            unique = SENT[0] % 4 != 0
            case.headers["Idempotency-Key"] = f"u{SENT[0]}-{key}"[:64] if unique else f"pool-{SENT[0] % 3}"
    SENT[0] += 1
    # A CSR is a signed structure no generator makes: a schema-valid one is refused (422) by the rotation
    # (/v1/enrol refuses the generated code first, 403), so "valid data accepted" cannot hold there.
    excluded = [positive_data_acceptance] if case.path == "/v1/certificate" else None
    case.call_and_validate(
        base_url=host.url, session=session, timeout=30, verify=session.verify, cert=session.cert,
        excluded_checks=excluded,
    )


def test_fuzzing_reached_the_processing(fuzz_host: tuple[HostService, ClientCredentials]) -> None:
    """Past validation and the identity check: authorisations, advices and reversals were processed."""
    if SENT[0] < 100:
        pytest.skip("the fuzz test did not run in this session")
    host, _ = fuzz_host
    methods = [r["method"] for r in host.records()]
    counts = {m: methods.count(m) for m in ("authorise", "advise", "reverse")}
    print(f"\nfuzz: {SENT[0]} requests in {time.monotonic() - STARTED[0]:.1f} s; processed {counts}")
    assert all(counts.values()), counts
