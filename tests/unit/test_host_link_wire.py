"""host_link.wire: what the host sends is untrusted; anything unexpected is a MalformedAnswer, never a crash."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host_link import wire
from terminal.host import Advice, AnswerStatus, HostAnswer, HostRejected

ADVICE = Advice("a1", "k1", "offline_approval", 1, 978, "T", "M", b"", "tok", "2025-01-01T00:00:00Z")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=6),
    max_leaves=20,
)


def _fields(*names: str) -> st.SearchStrategy[dict[str, Any]]:
    plausible = st.sampled_from(["approved", "declined", "accepted", "rejected", "00", "51", "x", "", None, 1, True])
    return st.dictionaries(st.sampled_from(names), plausible | json_values, max_size=len(names))


@settings(max_examples=300, deadline=None)
@given(doc=json_values | _fields("status", "response_code", "approval_code", "host_reference", "arpc", "message"))
def test_any_authorisation_or_reversal_answer_is_parsed_or_malformed(doc: Any) -> None:
    for parse in (wire.authorisation_answer, wire.reversal_answer):
        try:
            answer = parse(doc)
        except wire.MalformedAnswer:
            continue
        assert isinstance(answer, HostAnswer)


@settings(max_examples=300, deadline=None)
@given(
    doc=json_values
    | st.fixed_dictionaries(
        {
            "results": st.lists(
                _fields(
                    "txn_id",
                    "idempotency_key",
                    "outcome",
                    "response_code",
                    "approval_code",
                    "host_reference",
                    "message",
                )
                | st.just({"txn_id": "a1", "idempotency_key": "k1", "outcome": "accepted", "response_code": "00"}),
                max_size=2,
            )
        }
    )
)
def test_any_advice_answer_is_parsed_or_malformed(doc: Any) -> None:
    try:
        out = wire.advice_results(doc, [ADVICE])
    except wire.MalformedAnswer:
        return
    assert len(out) == 1 and isinstance(out[0], HostAnswer | HostRejected)


@settings(max_examples=300, deadline=None)
@given(doc=json_values | _fields("in_balance", "host_reference", "differences"))
def test_any_settlement_answer_is_parsed_or_malformed(doc: Any) -> None:
    with contextlib.suppress(wire.MalformedAnswer):
        wire.settlement_answer(doc)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_body_is_json_or_malformed(body: bytes) -> None:
    with contextlib.suppress(wire.MalformedAnswer):
        wire.parse_json(body)
    assert isinstance(wire.error_text(body), str)


def test_answers() -> None:
    answer = wire.authorisation_answer(
        {"status": "declined", "response_code": "05", "approval_code": None, "host_reference": "H", "arpc": "aabb"}
    )
    assert answer.status is AnswerStatus.DECLINED and answer.arpc == b"\xaa\xbb"
    base = {"status": "approved", "response_code": "00", "approval_code": "A", "host_reference": "H", "arpc": None}
    for size in (8, 10, 16):  # 91 of ARPC method 2 (8-16 bytes) or method 1 (10)
        data = bytes(range(size))
        got = wire.authorisation_answer(base | {"issuer_authentication_data": data.hex().upper()})
        assert got.issuer_authentication_data == data
    assert wire.authorisation_answer(base).issuer_authentication_data is None
    for bad in ("00" * 7, "00" * 17, "zz" * 8, 8):
        with pytest.raises(wire.MalformedAnswer, match="issuer_authentication_data"):
            wire.authorisation_answer(base | {"issuer_authentication_data": bad})
    settled = wire.settlement_answer({"in_balance": True, "host_reference": "S", "differences": []})
    assert settled.in_balance and settled.differences == ()
    sign_on = wire.sign_on_answer({"host_time": "t", "parameters_version": 0, "host_reference": "r"})
    assert sign_on.parameters_version == 0


DIFF = {"currency": 978, "kind": "sale", "terminal_count": 1, "terminal_amount": 1, "host_count": 0, "host_amount": 0}


@pytest.mark.parametrize(
    "doc",
    [
        {"in_balance": True, "host_reference": "S", "differences": [DIFF]},
        {"in_balance": "yes", "host_reference": "S", "differences": []},
        {"in_balance": False, "host_reference": "S", "differences": [{"currency": 978, "kind": "sale"}]},
        {"in_balance": False, "host_reference": "S", "differences": [{**DIFF, "currency": True}]},
        {"in_balance": False, "host_reference": "S", "differences": [{**DIFF, "kind": "refunds"}]},
    ],
)
def test_bad_settlements(doc: Any) -> None:
    with pytest.raises(wire.MalformedAnswer):
        wire.settlement_answer(doc)


def test_reversal_must_be_an_acknowledgement() -> None:
    with pytest.raises(wire.MalformedAnswer, match="status"):
        wire.reversal_answer({"status": "declined", "response_code": "05", "host_reference": "R"})


def test_parse_json_refuses_duplicates_and_constants() -> None:
    with pytest.raises(wire.MalformedAnswer, match="duplicate"):
        wire.parse_json(b'{"a": 1, "a": 2}')
    with pytest.raises(wire.MalformedAnswer):
        wire.parse_json(b'{"a": Infinity}')
    with pytest.raises(wire.MalformedAnswer):
        wire.parse_json(b"\xff")


def test_clean_text_masks_pans_and_controls() -> None:
    assert wire.clean_text("card 4761739001010010\nend") == "card 476173******0010 end"
    assert len(wire.clean_text("x" * 1000, 50)) == 50


def test_parameters_shape() -> None:
    good = {"version": 1, "issued_at": "t", "config": {}, "capks": []}
    assert wire.parameters_answer(good) == good
    for bad in ({**good, "version": 0}, {**good, "version": "1"}, {**good, "config": []}, {**good, "capks": [1]}):
        with pytest.raises(wire.MalformedAnswer):
            wire.parameters_answer(bad)


def test_a_rejected_result_may_come_back_without_ids() -> None:
    out = wire.advice_results(
        {
            "results": [
                {
                    "txn_id": None,
                    "idempotency_key": None,
                    "outcome": "rejected",
                    "response_code": "30",
                    "message": "advices[0]: not an object",
                }
            ]
        },
        [ADVICE],
    )
    assert isinstance(out[0], HostRejected) and "not an object" in str(out[0])
    with pytest.raises(wire.MalformedAnswer):
        wire.advice_results(
            {"results": [{"txn_id": None, "idempotency_key": None, "outcome": "accepted", "response_code": "00"}]},
            [ADVICE],
        )
