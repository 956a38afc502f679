"""emv.qr_cpm under hypothesis: any text or bytes decodes, and is processed, or raises the codec's own error.

``POSTERM_FUZZ_EXAMPLES`` examples (10,000 by default): random text, random
bytes behind the CPM prefix, and the notes' vectors mutated byte by byte
before base64.  What decodes must encode to a payload that decodes the same.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emv.qr_cpm import EXAMPLE_1, EXAMPLE_2, CpmError, decode, encode, process

EXAMPLES = int(os.environ.get("POSTERM_FUZZ_EXAMPLES", "10000"))
VALID = [base64.b64decode(EXAMPLE_1), base64.b64decode(EXAMPLE_2)]
TERMINAL_AIDS = [bytes.fromhex("A0000000555555"), bytes.fromhex("A000000066"), bytes.fromhex("A000000333")]


@st.composite
def mutated(draw: Any) -> str:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["replace", "insert", "delete", "cut"]))
        if op == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        else:
            del data[at:]
    return base64.b64encode(bytes(data)).decode("ascii")


PAYLOADS = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=120).map(lambda b: "hQVDUFYwMW" + base64.b64encode(b).decode("ascii")),
    st.binary(max_size=120).map(lambda b: base64.b64encode(bytes.fromhex("85054350563031") + b).decode("ascii")),
    mutated(),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PAYLOADS)
def test_decode_and_process_never_raise_anything_but_their_errors(payload: str) -> None:
    try:
        code = decode(payload)
    except CpmError as exc:
        assert isinstance(exc, ValueError) and str(exc)
        return
    assert decode(encode(code)) == code
    try:
        poi = process(code, TERMINAL_AIDS)
    except CpmError:
        return
    assert poi.application in code.applications and (poi.get(0x57) or poi.get(0x5A)) is not None
