"""The ECR interface fuzzed from its own OpenAPI document (schemathesis), over HTTP on loopback.

Every operation of ``ui/ecr/openapi.json`` gets generated requests, valid and
invalid; schemathesis' checks hold the answers to the document: no 5xx,
documented status codes and content types, bodies matching the response
schemas, invalid input refused with a 4xx, a missing Idempotency-Key refused.
The terminal has a simulated card in the field and the in-process host, so
valid sales and refunds run to their end (each followed before the next
request, as only one runs at a time).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.ecr.conftest import ONLINE, Ecr
from ui.ecr.schema import openapi_document

EXAMPLES = int(os.environ.get("POSTERM_FUZZ_EXAMPLES", "40"))

schema = schemathesis.openapi.from_dict(openapi_document())
SENT = [0]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ecr]:
    ecr = Ecr(Path(tmp_path_factory.mktemp("ecr-fuzz")) / "data", ONLINE)
    yield ecr
    ecr.close()


def _settle(ecr: Ecr) -> None:
    """Let a payment the case started finish, so that the next case finds the terminal free."""
    deadline = time.monotonic() + 20
    while ecr.server.desk.busy_with() is not None and time.monotonic() < deadline:
        time.sleep(0.01)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_the_interface_conforms_to_its_document(case: schemathesis.Case, fuzzed: Ecr) -> None:
    positive = case.meta is not None and case.meta.generation.mode is schemathesis.GenerationMode.POSITIVE
    key = (case.headers or {}).get("Idempotency-Key")
    if positive and isinstance(key, str):  # generated keys repeat a lot (shrinking): made unique
        case.headers["Idempotency-Key"] = f"f{SENT[0]}-{key}"[:64]
    if positive and isinstance(case.body, dict) and "currency" in case.body and SENT[0] % 2 == 0:
        case.body["currency"] = "EUR"  # a currency the terminal knows, so that payments reach the card
    SENT[0] += 1
    # A schema-valid body may still be refused (422) by what the document cannot say: an ISO 4217
    # code the terminal does not know, a sale with a refund's fields; the document says so.
    case.call_and_validate(
        base_url=fuzzed.server.url, timeout=30, excluded_checks=[schemathesis.checks.positive_data_acceptance]
    )
    _settle(fuzzed)


def test_fuzzing_reached_the_card(fuzzed: Ecr) -> None:
    """Past the checks: some generated payments were read from the card and recorded."""
    if SENT[0] < 100:
        pytest.skip("the fuzz test did not run in this session")
    assert fuzzed.terminal.transactions(), f"{SENT[0]} requests, no payment recorded"
