"""Any bytes into any parser of cbdc: a value or a ProtocolError, nothing else; any JSON into the trust store:
a store or a ParameterError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cbdc import tlv
from cbdc.checks import ParameterError, TrustStore
from cbdc.envelope import Envelope
from cbdc.protocol import Certificate, PaymentRecord, PaymentRequest, ProtocolError, SelectResponse, WalletInfo
from tests.unit.cbdc.wallet import parameters

PARSERS: dict[str, Callable[[bytes], object]] = {
    "E1": WalletInfo.parse,
    "E2": Certificate.parse,
    "E3": PaymentRequest.parse,
    "E4": PaymentRecord.parse,
    "E6": Envelope.parse,
    "6F": SelectResponse.parse,
}


def _elements() -> st.SearchStrategy[bytes]:
    """TLV-ish bytes: known tags with values of any length, sometimes broken."""
    tags = st.sampled_from([0xDF40, 0xDF41, 0xDF42, 0xDF43, 0xDF44, 0xDF45, 0xDF51, 0xDF52, 0xDF53, 0xDF54,
                            0xDF56, 0xDF5F, 0xDF71, 0xDF72, 0xDF73, 0xDF74, 0xDF75, 0xDF76, 0xDF77, 0xDF78,
                            0xDF79, 0xDF7A, 0xDF7B, 0xDF60, 0x84, 0xA5, 0x50, 0xE4, 0xE2, 0xE3])  # fmt: skip
    element = st.builds(tlv.encode, tags, st.binary(max_size=70))
    return st.lists(element, max_size=14).map(b"".join)


@pytest.mark.parametrize("template", sorted(PARSERS))
@settings(max_examples=300, deadline=None)
@given(body=_elements(), junk=st.binary(max_size=8), cut=st.integers(min_value=0, max_value=400))
def test_any_bytes_parse_or_raise_a_protocol_error(template: str, body: bytes, junk: bytes, cut: int) -> None:
    parse = PARSERS[template]
    whole = tlv.encode(int(template, 16), body)
    for data in (whole, whole[:cut], whole + junk, junk + whole, body):
        try:
            parsed = parse(data)
        except ProtocolError as exc:
            assert exc.reason and "\n" not in exc.reason  # one line naming what is wrong
        else:
            assert type(parsed).__name__ == parse.__qualname__.split(".")[0]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(["version", "roots", "blocked_wallets", "blocked_operators", "limits"]), value=json_values)
def test_any_parameters_make_a_store_or_a_parameter_error(key: str, value: Any) -> None:
    try:
        store = TrustStore.from_parameters(parameters(**{key: value}))
    except ParameterError as exc:
        assert str(exc).startswith("cbdc") and "\n" not in str(exc)  # one line naming the place
    else:
        assert TrustStore.from_parameters(store.to_parameters()) == store
    with pytest.raises(ParameterError):
        TrustStore.from_parameters(value if not isinstance(value, dict) else {**value, "version": None})
