"""The host's compiled schema checks are never more lenient than jsonschema.

:func:`simulator.host.schema.fast_check` answers "valid" or "not sure"; a
body it calls valid skips jsonschema.  So for every component, on bodies made
from the schema and then damaged at random, "valid" from the compiled check
must mean no error from jsonschema; and on the undamaged bodies it should say
"valid" (or the fast path would be useless).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.host.schema import fast_check, first_error, openapi_document, validator

COMPONENTS = sorted(openapi_document()["components"]["schemas"])
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 1.0, 100.0, -1, 999, 1000, 10**12, "", "\n", "00", "A" * 65, "2025-01-31T12:00:00Z"]),
    st.text(max_size=12),
)
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _resolve(ref: str) -> Any:
    node: Any = openapi_document()
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _from_schema(schema: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Instances that aim to be valid (jsonschema has the last word in the tests)."""
    if "$ref" in schema:
        return _from_schema(_resolve(schema["$ref"]), depth)
    if "anyOf" in schema:
        return st.one_of([_from_schema(s, depth) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([_from_schema({**schema, "type": k}, depth) for k in kind])
    if kind == "string":
        if schema.get("pattern") == "^([0-9A-Fa-f]{2})*$":  # hex of a length range
            low, high = schema.get("minLength", 0) // 2, min(schema.get("maxLength", 64), 600) // 2
            return st.binary(min_size=low, max_size=high).map(lambda b: b.hex().upper())
        if "pattern" in schema:
            return st.from_regex(re.compile(schema["pattern"].rstrip("$") + r"\Z"), fullmatch=False).filter(
                lambda s: schema.get("minLength", 0) <= len(s) <= schema.get("maxLength", 10**6)
            )
        if schema.get("format") == "date-time":
            return st.just("2026-11-21T10:00:00Z")
        if schema.get("format") == "date":
            return st.just("2026-11-21")
        return st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 20), 20))
    if kind == "integer":
        return st.integers(schema.get("minimum", -(10**6)), schema.get("maximum", 10**6))
    if kind == "number":
        return st.floats(schema.get("minimum", -1e6), schema.get("maximum", 1e6))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = schema.get("items", {})
        low = schema.get("minItems", 0)
        high = max(low, min(schema.get("maxItems", 3), 3))
        return st.lists(_from_schema(items, depth + 1) if items else JSON, min_size=low, max_size=high)
    if kind == "object":
        props = schema.get("properties", {})
        required = schema.get("required", [])
        optional = [p for p in props if p not in required]
        return st.fixed_dictionaries(
            {p: _from_schema(props[p], depth + 1) for p in required},
            optional={p: _from_schema(props[p], depth + 1) for p in optional},
        )
    return JSON


def _paths(value: Any, where: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [where]
    if isinstance(value, dict):
        for key, sub in value.items():
            out += _paths(sub, (*where, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            out += _paths(sub, (*where, i))
    return out


@st.composite
def _damaged(draw: st.DrawFn, component: str) -> Any:
    value = draw(_from_schema({"$ref": f"#/components/schemas/{component}"}))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(value)))
        action = draw(st.sampled_from(["replace", "delete", "add", "newline", "stretch"]))
        if not path:
            value = draw(JSON) if action == "replace" else value
            continue
        parent: Any = value
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        if action == "replace":
            parent[last] = draw(JSON)
        elif action == "delete" and isinstance(parent, dict):
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(JSON)
        elif action == "newline" and isinstance(parent[last], str):
            parent[last] += "\n"
        elif action == "stretch" and isinstance(parent[last], str):
            parent[last] *= 70
    return value


def test_every_component_has_a_compiled_check() -> None:
    assert [c for c in COMPONENTS if fast_check(c) is None] == []


@pytest.mark.parametrize("component", COMPONENTS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_the_compiled_check_is_never_more_lenient(component: str, data: st.DataObject) -> None:
    check = fast_check(component)
    assert check is not None
    value = data.draw(_damaged(component))
    errors = list(validator(component).iter_errors(value))
    if check(value):
        assert errors == [], f"{component}: compiled check passed {value!r}"
    assert (first_error(component, value) is None) == (not errors)


@pytest.mark.parametrize("component", COMPONENTS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_the_compiled_check_passes_what_jsonschema_passes(component: str, data: st.DataObject) -> None:
    value = data.draw(_from_schema({"$ref": f"#/components/schemas/{component}"}))
    if not list(validator(component).iter_errors(value)):
        check = fast_check(component)
        assert check is not None and check(value), f"{component}: {value!r}"
