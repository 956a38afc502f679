"""emv.qr_mpm under hypothesis: valid codes round-trip; any text decodes or raises the codec's own error.

The fuzz runs ``POSTERM_FUZZ_EXAMPLES`` examples (10,000 by default): random
text, and valid payloads mutated (characters replaced, inserted, deleted,
slices doubled, cut short), half of them with the CRC made right again so
that the mutation reaches the parser behind the CRC check.  Whatever decodes
must encode again to a payload that decodes to the same code.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emv.qr_mpm import (
    ANNEX_B,
    AdditionalData,
    LanguageTemplate,
    MerchantPresentedCode,
    MpmError,
    Template,
    decode,
    encode,
    with_crc,
)

Pairs = tuple[tuple[str, str], ...]
EXAMPLES = int(os.environ.get("POSTERM_FUZZ_EXAMPLES", "10000"))

ANS = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
UNICODE = st.characters(exclude_categories=["Cs"])  # anything UTF-8 encodes


def ans(least: int, most: int) -> st.SearchStrategy[str]:
    return st.text(ANS, min_size=least, max_size=most)


def two_digit_ids(numbers: range | list[int]) -> st.SearchStrategy[str]:
    return st.sampled_from([f"{n:02d}" for n in numbers])


AMOUNT = st.from_regex(r"[1-9][0-9]{0,9}(\.[0-9]{0,2})?", fullmatch=True)
PERCENT = st.integers(1, 9999).map(lambda n: f"{n // 100:02d}.{n % 100:02d}")


@st.composite
def budgeted_pairs(draw: Any, ids: st.SearchStrategy[str], values: st.SearchStrategy[str], budget: int) -> Pairs:
    """(ID, value) pairs with distinct IDs whose encoding fits in ``budget`` characters."""
    pairs = draw(st.lists(st.tuples(ids, values), unique_by=lambda p: p[0], max_size=5))
    out, used = [], 0
    for ident, value in pairs:
        if used + 4 + len(value) <= budget:
            out.append((ident, value))
            used += 4 + len(value)
    return tuple(out)


def size(pairs: Pairs) -> int:
    return sum(4 + len(v) for _, v in pairs)


@st.composite
def templates(draw: Any, ids: list[int], budget: int = 99) -> Template:
    gui = draw(ans(1, min(32, budget - 4)))
    fields = draw(budgeted_pairs(two_digit_ids(range(1, 100)), ans(1, 20), budget - 4 - len(gui)))
    return Template(draw(two_digit_ids(ids)), gui, fields)


@st.composite
def additional_data(draw: Any) -> AdditionalData:
    names = ["bill_number", "mobile_number", "store_label", "loyalty_number", "reference_label", "customer_label",
             "terminal_label", "purpose"]  # fmt: skip
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=4))
    values = {name: draw(ans(1, 15)) for name in chosen}
    used = sum(4 + len(v) for v in values.values())
    request = draw(st.one_of(st.none(), st.permutations("AME").flatmap(lambda p: st.integers(1, 3).map(
        lambda n: "".join(p[:n])))))  # fmt: skip
    if request is not None:
        used += 4 + len(request)
    unknown = draw(budgeted_pairs(two_digit_ids([0, *range(10, 50)]), ans(1, 10), max(0, 99 - used)))
    used += size(unknown)
    extra: tuple[Template, ...] = ()
    if used + 9 <= 99 and draw(st.booleans()):
        extra = (draw(templates(list(range(50, 100)), budget=99 - used - 4)),)
    return AdditionalData(**values, consumer_data_request=request, templates=extra, unknown=unknown)


@st.composite
def codes(draw: Any) -> MerchantPresentedCode:
    accounts = draw(budgeted_pairs(two_digit_ids(range(2, 26)), ans(1, 40), 200))
    account_templates = draw(st.lists(templates([*range(26, 52), *range(80, 100)]), unique_by=lambda t: t.id,
                                      max_size=3))  # fmt: skip
    if not accounts and not any(26 <= int(t.id) <= 51 for t in account_templates):
        accounts = (("15", draw(ans(1, 31))),)
    tip = draw(st.sampled_from([None, "01", "02", "03"]))
    language = draw(st.one_of(st.none(), st.builds(
        LanguageTemplate, st.text(UNICODE, min_size=2, max_size=2), st.text(UNICODE, min_size=1, max_size=25),
        st.one_of(st.none(), st.text(UNICODE, min_size=1, max_size=15)),
        budgeted_pairs(two_digit_ids(range(3, 100)), ans(1, 5), 20))))  # fmt: skip
    return MerchantPresentedCode(
        merchant_category_code=draw(st.from_regex(r"[0-9]{4}", fullmatch=True)),
        currency=draw(st.from_regex(r"[0-9]{3}", fullmatch=True)),
        country=draw(st.from_regex(r"[A-Z]{2}", fullmatch=True)),
        merchant_name=draw(st.text(UNICODE, min_size=1, max_size=25)),
        merchant_city=draw(st.text(UNICODE, min_size=1, max_size=15)),
        accounts=accounts,
        templates=tuple(account_templates),
        point_of_initiation=draw(st.sampled_from([None, "11", "12"])),
        amount=draw(st.one_of(st.none(), AMOUNT)),
        tip_indicator=tip,
        fee_fixed=draw(AMOUNT) if tip == "02" else None,
        fee_percentage=draw(PERCENT) if tip == "03" else None,
        postal_code=draw(st.one_of(st.none(), ans(1, 10))),
        additional_data=draw(st.one_of(st.none(), additional_data().filter(lambda d: d != AdditionalData()))),
        language=language,
        unknown=draw(budgeted_pairs(two_digit_ids(range(65, 80)), st.text(UNICODE, min_size=1, max_size=30), 99)),
    )


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(codes())
def test_valid_codes_round_trip(code: MerchantPresentedCode) -> None:
    payload = encode(code)
    assert payload.startswith("000201") and payload[-8:-4] == "6304"
    assert decode(payload) == code
    assert encode(decode(payload)) == payload


@st.composite
def mutated(draw: Any) -> str:
    payload = draw(st.one_of(st.just(ANNEX_B), codes().map(encode)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(payload)))
        op = draw(st.sampled_from(["replace", "insert", "delete", "double", "cut"]))
        if op == "replace" and at < len(payload):
            payload = payload[:at] + draw(st.sampled_from("0123456789A9.*\x00é")) + payload[at + 1 :]
        elif op == "insert":
            payload = payload[:at] + draw(st.text(max_size=6)) + payload[at:]
        elif op == "delete":
            payload = payload[:at] + payload[at + draw(st.integers(1, 6)) :]
        elif op == "double":
            payload = payload[:at] + payload[at : at + 8] + payload[at:]
        else:
            payload = payload[:at]
    if draw(st.booleans()):  # make the CRC right again: the mutation reaches the parser
        body = payload[:-8] if payload[-8:-4] == "6304" else payload
        payload = with_crc(body)
    return str(payload)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), st.text(st.sampled_from("0123456789"), max_size=120), mutated()))
def test_decode_never_raises_anything_but_its_errors(payload: str) -> None:
    try:
        code = decode(payload)
    except MpmError as exc:
        assert isinstance(exc, ValueError) and f"character {exc.position}" in str(exc)
        assert 0 <= exc.position <= len(payload)
        return
    assert decode(encode(code)) == code
